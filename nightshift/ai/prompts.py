"""Prompt templates (files `templates/<kind>.v<N>.<lang>.txt`, the highest version in use), the inputs a
business gives them, the cache key of a generation, and the token estimate used where usage is unknown."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

TEMPLATES_DIR = Path(__file__).parent / "templates"
_FILE_NAME = re.compile(r"(?P<kind>[a-z_]+)\.v(?P<version>\d+)\.(?P<lang>[a-z]{2})\.txt")
# Without a tokenizer for the model: OpenAI's rule of thumb of about four characters of text per token.
CHARS_PER_TOKEN = 4
# Tokens a chat message costs beyond its text (role and separators).
MESSAGE_OVERHEAD_TOKENS = 4
# Completion budgets per kind: asked as max_tokens and held (with the prompt) before each call.
MAX_COMPLETION_TOKENS = {"description": 300, "meta_description": 120, "faq": 600}


@dataclass(frozen=True)
class PromptTemplate:
    kind: str
    version: str  # "v1"
    lang: str
    system: str
    user: str

    def messages(self, inputs: dict[str, str]) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": Template(self.user).substitute(inputs)}]


class TemplateError(ValueError):
    """No template for a kind and language, or a template file that is not [system] … [user] …."""


@cache
def templates() -> dict[tuple[str, str], PromptTemplate]:
    """The newest version of each (kind, language)."""
    found: dict[tuple[str, str], PromptTemplate] = {}
    for path in sorted(TEMPLATES_DIR.glob("*.txt")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise TemplateError(f"{path.name}: a template is named <kind>.v<N>.<lang>.txt")
        text = path.read_text(encoding="utf-8")
        parts = re.split(r"^\[(system|user)\]\s*$", text, flags=re.MULTILINE)
        sections = dict(zip(parts[1::2], (part.strip() for part in parts[2::2]), strict=True))
        if set(sections) != {"system", "user"}:
            raise TemplateError(f"{path.name}: expected a [system] and a [user] section")
        template = PromptTemplate(match["kind"], f"v{match['version']}", match["lang"], sections["system"],
                                  sections["user"])
        key = (template.kind, template.lang)
        if key not in found or int(found[key].version[1:]) < int(template.version[1:]):
            found[key] = template
    return found


def template_for(kind: str, lang: str) -> PromptTemplate:
    """The template of a kind in the language, French when the language has none (French is the default)."""
    available = templates()
    template = available.get((kind, lang)) or available.get((kind, "fr"))
    if template is None:
        raise TemplateError(f"no prompt template for kind {kind!r} (files in {TEMPLATES_DIR})")
    return template


def business_inputs(business: dict[str, Any], context_chars: int) -> dict[str, str]:
    """What a prompt says of a business: its public facts, never its phone or e-mail."""
    context = " ".join(part for part in (business.get("description") or "", business.get("subcategory") or "")
                       if part).strip()
    return {
        "name": (business.get("trade_name") or business["name"]).strip(),
        "activity": (business.get("naf_label") or business.get("subcategory") or "non précisée").strip(),
        "category": (business.get("category") or "non précisée").strip(),
        "city": (business.get("city") or "").strip(),
        "postal_code": (business.get("postal_code") or "").strip(),
        "context": context[:context_chars] or "aucune",
    }


def cache_key(model: str, template: PromptTemplate, inputs: dict[str, str], params: dict[str, Any]) -> str:
    """sha256 of everything that decides the output: the same key, the same text (a hit costs nothing)."""
    payload = {"model": model, "kind": template.kind, "template": f"{template.version}.{template.lang}",
               "inputs": inputs, "params": params}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(message["content"]) + MESSAGE_OVERHEAD_TOKENS for message in messages)
