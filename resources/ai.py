"""The AI provider as a Dagster resource: an OpenAI-compatible chat completions endpoint when
NIGHTSHIFT_AI_BASE_URL is set (OpenAI, Ollama /v1, vLLM, llama.cpp server), else the offline template
generator `template-v1`, which is NOT a language model.

The URL, key and model come from the environment through dg.EnvVar, so their values never appear in run
config, the UI or logs.
"""

import hashlib
from collections.abc import Mapping
from typing import Any

import dagster as dg

from nightshift.ai.client import TEMPLATE_MODEL, OpenAICompatibleClient, TemplateGenerator
from nightshift.ai.generate import Provider
from nightshift.config import Settings

ENV_FIELDS = {"base_url": "NIGHTSHIFT_AI_BASE_URL", "api_key": "NIGHTSHIFT_AI_API_KEY",
              "model": "NIGHTSHIFT_AI_MODEL"}
TEMPLATE_NOTICE = (f"{TEMPLATE_MODEL}: fixed French sentences filled from each business's facts — NOT a language "
                   "model. To generate real text set NIGHTSHIFT_AI_BASE_URL (e.g. Ollama: "
                   "http://127.0.0.1:11434/v1) and NIGHTSHIFT_AI_MODEL (e.g. llama3.1).")


class AIProvider(dg.ConfigurableResource):
    """Chat completions for the ai domain; limits, timeouts and retries come from the `ai:` settings."""

    settings: dg.ResourceDependency[Settings]
    base_url: str = ""
    api_key: str = ""
    model: str = ""

    @property
    def is_language_model(self) -> bool:
        return bool(self.base_url.strip())

    @property
    def model_name(self) -> str:
        return self.model.strip() if self.is_language_model else TEMPLATE_MODEL

    def client(self) -> Provider:
        if not self.is_language_model:
            return TemplateGenerator()
        ai = self.settings.ai
        if not self.model.strip():
            raise dg.Failure("NIGHTSHIFT_AI_MODEL: not set; a provider at NIGHTSHIFT_AI_BASE_URL needs the model "
                             "to ask for (e.g. llama3.1 for Ollama)", allow_retries=False)
        return OpenAICompatibleClient(self.base_url.strip(), self.api_key, self.model.strip(),
                                      timeout_s=ai.timeout_seconds, http_retries=ai.http_retries,
                                      retry_base_s=ai.retry_base_seconds, retry_cap_s=ai.retry_cap_seconds)

    @property
    def rate_limit_name(self) -> str | None:
        """The shared limiter row: one per endpoint and model (the URL is hashed, never stored). None for the
        template generator: it runs in the process and has no provider limits to respect."""
        if not self.is_language_model:
            return None
        return f"{hashlib.sha256(self.base_url.strip().encode()).hexdigest()[:16]}:{self.model_name}"[:200]

    @property
    def notice(self) -> str:
        """What the UI and the CLI say about what generated the text."""
        return f"model {self.model_name} (OpenAI-compatible endpoint)" if self.is_language_model else TEMPLATE_NOTICE


def ai_provider(settings: Settings, environ: Mapping[str, str]) -> AIProvider:
    """The resource with a dg.EnvVar for each variable that is set (the others keep their defaults)."""
    values: dict[str, Any] = {name: dg.EnvVar(variable) for name, variable in ENV_FIELDS.items()
                              if environ.get(variable)}
    return AIProvider(settings=settings, **values)
