"""Chat completions: an OpenAI-compatible HTTP client (OpenAI, Ollama /v1, vLLM, llama.cpp server) and the
offline default, a deterministic template generator (`template-v1`, NOT a language model).

One classifier decides what an HTTP outcome is (retried within the call, a temporary failure of the
request, or a permanent one); one backoff function (nightshift.backoff) spaces the retries.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from nightshift.ai.prompts import estimate_prompt_tokens, estimate_tokens
from nightshift.backoff import exponential_delay
from nightshift.backoff import retry_after_seconds as retry_after_header

TEMPLATE_MODEL = "template-v1"
RETRIED_STATUSES = frozenset({408, 409, 429})
# Longest Retry-After honoured inside one call; beyond it the request fails temporarily and is re-requested.
MAX_RETRY_AFTER_S = 120.0
# OpenAI's reset times are Go durations: "6m0s", "1s", "20ms", "1h2m3.5s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class ChatRequest:
    kind: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    inputs: dict[str, str]  # the facts of the prompt: all the template generator reads
    json_schema: dict | None = None  # asked as structured output (response_format json_schema)


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool  # the provider sent no usage: counted locally (prompts.CHARS_PER_TOKEN)
    latency_ms: int
    # The provider said (x-ratelimit-*) its requests or tokens are used up for this long: no request before.
    rate_limit_wait_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ProviderError(Exception):
    """A call that produced no content. `temporary`: the request may be tried again later; `billed` says
    what the provider may have charged: "no" (an error answer: release the hold), "unknown" (no answer:
    settle at the hold), "yes" (an answer that is not content, e.g. truncated: settle its usage)."""

    def __init__(self, code: str, message: str, *, temporary: bool, billed: str = "no", tokens: int | None = None,
                 http_status: int | None = None, rate_limit_wait_s: float = 0.0):
        super().__init__(f"{code}: {message}")
        self.code, self.temporary, self.billed, self.tokens, self.http_status = (
            code, temporary, billed, tokens, http_status)
        self.rate_limit_wait_s = rate_limit_wait_s


def error_code(body: Any) -> str | None:
    """OpenAI's error.code (or error.type): `insufficient_quota`, `rate_limit_exceeded`, …"""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("code") or error.get("type")
    return None


def is_retried(status: int, code: str | None) -> bool:
    """The one retry classifier: 408, 409, 429 and 5xx are retried; never other 4xx nor a spent account."""
    if code == "insufficient_quota":
        return False
    return status in RETRIED_STATUSES or status >= 500


def retry_after_seconds(headers: Any, now: datetime | None = None) -> float | None:
    """retry-after-ms, else retry-after in seconds or as an HTTP date."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    return retry_after_header(headers.get("retry-after"), now)


def duration_seconds(text: str) -> float | None:
    """A reset time: a Go duration ("6m0s", "20ms") or plain seconds ("1.5"); None when unreadable."""
    value = text.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        return None
    return sum(float(number) * _DURATION_UNIT_S[unit] for number, unit in parts)


def rate_limit_wait_seconds(headers: Any) -> float:
    """How long the provider's x-ratelimit-* headers say nothing more can be sent: the reset time of each
    budget (requests, tokens) whose remaining count is 0; 0.0 when neither is used up or they are absent."""
    wait = 0.0
    for budget in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{budget}")
        reset = headers.get(f"x-ratelimit-reset-{budget}")
        try:
            exhausted = remaining is not None and float(remaining) <= 0
        except ValueError:
            continue
        if exhausted and reset is not None and (seconds := duration_seconds(reset)) is not None:
            wait = max(wait, seconds)
    return wait


class OpenAICompatibleClient:
    def __init__(self, base_url: str, api_key: str, model: str, *, timeout_s: float, http_retries: int,
                 retry_base_s: float, retry_cap_s: float, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout_s, self.http_retries = model, timeout_s, http_retries
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s
        self.sleep, self.rng = sleep, rng or random.Random()
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def complete(self, request: ChatRequest) -> Completion:
        body: dict[str, Any] = {"model": self.model, "messages": request.messages, "max_tokens": request.max_tokens,
                                "temperature": request.temperature}
        if request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": request.kind, "schema": request.json_schema,
                                                       "strict": True}}
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                response = self.session.post(self.url, json=body, timeout=(min(self.timeout_s, 10), self.timeout_s))
            except requests.exceptions.ConnectionError as exc:
                # Nothing reached the provider (refused, DNS, connect timeout): safe to try again.
                if attempt > self.http_retries:
                    raise ProviderError("unreachable", f"cannot reach the AI provider ({type(exc).__name__})",
                                        temporary=True) from None
                self._wait(attempt, None)
                continue
            except requests.exceptions.Timeout as exc:
                # The provider may be generating (and billing) it: not sent twice within this call.
                raise ProviderError("timeout", f"no answer within {self.timeout_s:g} s ({type(exc).__name__})",
                                    temporary=True, billed="unknown") from None
            latency_ms = round((time.perf_counter() - started) * 1000)
            exhausted_s = rate_limit_wait_seconds(response.headers)
            if response.status_code == 200:
                return self._completion(request, response, latency_ms, exhausted_s)
            payload = _json_or_none(response)
            code = error_code(payload)
            if is_retried(response.status_code, code) and attempt <= self.http_retries:
                wait = retry_after_seconds(response.headers)
                if wait is None and exhausted_s:
                    wait = exhausted_s
                if wait is None or wait <= MAX_RETRY_AFTER_S:
                    self._wait(attempt, wait)
                    continue
            message = _error_message(payload) or response.reason or "error"
            raise ProviderError(code or f"http_{response.status_code}", f"HTTP {response.status_code}: {message}",
                                temporary=is_retried(response.status_code, code), http_status=response.status_code,
                                rate_limit_wait_s=max(exhausted_s, retry_after_seconds(response.headers) or 0.0))

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        self.sleep(exponential_delay(attempt, base=self.retry_base_s, cap=self.retry_cap_s, floor=retry_after or 0.0,
                                     rng=self.rng))

    def _completion(self, request: ChatRequest, response: requests.Response, latency_ms: int,
                    exhausted_s: float) -> Completion:
        payload = _json_or_none(response)
        try:
            choice = payload["choices"][0]
            text = choice["message"]["content"] or ""
        except (TypeError, KeyError, IndexError):
            raise ProviderError("bad_response", "the answer has no choices[0].message.content", temporary=True,
                                billed="unknown", rate_limit_wait_s=exhausted_s) from None
        usage = payload.get("usage") or {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int)
        if estimated:
            prompt_tokens, completion_tokens = estimate_prompt_tokens(request.messages), estimate_tokens(text)
        if choice.get("finish_reason") == "length":
            raise ProviderError("length", f"output cut at max_tokens={request.max_tokens}: not content",
                                temporary=False, billed="yes", tokens=prompt_tokens + completion_tokens,
                                rate_limit_wait_s=exhausted_s)
        return Completion(text, payload.get("model") or self.model, prompt_tokens, completion_tokens, estimated,
                          latency_ms, exhausted_s)


class TemplateGenerator:
    """The offline default: fills fixed French sentences from the business's facts. It is NOT a language
    model; its token counts are estimated. Point NIGHTSHIFT_AI_BASE_URL at a real provider (for example
    Ollama: http://127.0.0.1:11434/v1 with NIGHTSHIFT_AI_MODEL=llama3.1) to generate real text."""

    model = TEMPLATE_MODEL

    def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        # Sentence marks inside a fact ("n.c.a.") would break the sentence rules of the output.
        facts = {key: re.sub(r"[.!?…\[\]{}<>]", "", value).strip() for key, value in request.inputs.items()}
        facts["name"] = facts["name"][:1].upper() + facts["name"][1:]
        place = " ".join(part for part in (facts["city"], facts["postal_code"]) if part) or "France"
        activity = facts["activity"] if facts["activity"] != "non précisée" else "ses services"
        if request.kind == "faq":
            text = json.dumps({"faq": [
                {"question": f"Où se trouve {facts['name']} ?", "answer": f"{facts['name']} est située à {place}."},
                {"question": f"Quelle est l'activité de {facts['name']} ?", "answer": f"Son activité : {activity}."},
            ]}, ensure_ascii=False)
        elif request.kind == "meta_description":
            text = f"{facts['name']} à {place} : {activity}. Coordonnées et informations pratiques."
            if len(text) > 160:
                text = f"{facts['name'][:100]} à {place[:40]}."
        else:
            variant = int(hashlib.sha256(facts["name"].encode()).hexdigest(), 16) % 2
            opening = ("est une entreprise installée à", "exerce son activité à")[variant]
            text = (f"{facts['name']} {opening} {place}, dans le domaine suivant : {activity}. "
                    f"Retrouvez ici ses coordonnées et les informations utiles pour la contacter.")
            if len(text) > 500:
                text = f"{facts['name'][:200]} {opening} {place[:60]}. Retrouvez ici ses coordonnées."
        return Completion(text, self.model, estimate_prompt_tokens(request.messages), estimate_tokens(text), True,
                          round((time.perf_counter() - started) * 1000))


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_message(payload: Any) -> str | None:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")[:300] or None
    return None
