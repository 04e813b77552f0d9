"""Rules an output must pass before it is stored, per content kind; a rejected output is asked again (at
most ai.max_reasks times, each ask metered) with the reasons, then the request fails."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

DESCRIPTION_CHARS = (50, 500)
META_DESCRIPTION_MAX_CHARS = 160
FAQ_ITEMS = (1, 10)
# The kinds asked as structured JSON output, with the schema given to the provider.
FAQ_SCHEMA = {
    "type": "object",
    "properties": {"faq": {
        "type": "array", "minItems": FAQ_ITEMS[0], "maxItems": FAQ_ITEMS[1],
        "items": {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                  "required": ["question", "answer"], "additionalProperties": False},
    }},
    "required": ["faq"],
    "additionalProperties": False,
}
_PLACEHOLDER = re.compile(r"\[[^\]]*\]|\{[^}]*\}|<[^>]*>|\blorem\b|\bxxx+\b|\btodo\b", re.IGNORECASE)
# A run of terminators ("...", "?!") ends one sentence.
_TERMINATORS = re.compile(r"[.!?…]+")


@dataclass(frozen=True)
class Verdict:
    text: str  # the output as stored (trimmed; a FAQ as compact JSON)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons


def validate(kind: str, output: str, forbidden_phrases: list[str]) -> Verdict:
    text = output.strip()
    if not text:
        return Verdict(text, ["empty"])
    if kind == "faq":
        return _faq(text, forbidden_phrases)
    reasons = _every_kind(text, forbidden_phrases)
    if kind == "description":
        low, high = DESCRIPTION_CHARS
        if not low <= len(text) <= high:
            reasons.append(f"length {len(text)} not in {low}–{high} characters")
        if not text[0].isupper():
            reasons.append("does not start with a capital letter")
        if text[-1] not in ".!?…":
            reasons.append("does not end with a final punctuation mark")
        if len(_TERMINATORS.findall(text)) > 2:
            reasons.append("more than two sentences")
    elif kind == "meta_description" and len(text) > META_DESCRIPTION_MAX_CHARS:
        reasons.append(f"length {len(text)} over {META_DESCRIPTION_MAX_CHARS} characters")
    return Verdict(text, reasons)


def _every_kind(text: str, forbidden_phrases: list[str]) -> list[str]:
    reasons = []
    if placeholder := _PLACEHOLDER.search(text):
        reasons.append(f"placeholder text {placeholder.group(0)!r}")
    lowered = text.lower()
    reasons += [f"forbidden phrase {phrase!r}" for phrase in forbidden_phrases if phrase.lower() in lowered]
    return reasons


def _faq(text: str, forbidden_phrases: list[str]) -> Verdict:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return Verdict(text, [f"not JSON ({exc.msg})"])
    items = document.get("faq") if isinstance(document, dict) else None
    if not isinstance(items, list) or set(document) != {"faq"}:
        return Verdict(text, ['not an object {"faq": [...]}'])
    low, high = FAQ_ITEMS
    reasons = [] if low <= len(items) <= high else [f"{len(items)} questions, not {low}–{high}"]
    pairs = []
    for number, item in enumerate(items, 1):
        if (not isinstance(item, dict) or set(item) != {"question", "answer"}
                or not all(isinstance(item[k], str) and item[k].strip() for k in ("question", "answer"))):
            reasons.append(f"item {number}: expected a non-empty question and answer, nothing else")
            continue
        question, answer = item["question"].strip(), item["answer"].strip()
        if not question.endswith("?"):
            reasons.append(f"item {number}: the question does not end with '?'")
        reasons += [f"item {number}: {reason}" for reason in _every_kind(f"{question} {answer}", forbidden_phrases)]
        pairs.append({"question": question, "answer": answer})
    return Verdict(json.dumps(pairs, ensure_ascii=False), reasons)
