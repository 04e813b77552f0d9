"""Masking of personal data in logs and UI metadata: phone numbers keep country code and last digits."""

from __future__ import annotations

import re

# A run of 8+ digits, optionally with + and separators: long enough to be a phone number.
_PHONE_LIKE = re.compile(r"\+?\d[\d \-.()\u00a0]{6,}\d")


def mask_phone(phone: str) -> str:
    """+22370123456 -> +2237••••456 (the first 5 and last 3 characters stay)."""
    compact = re.sub(r"[^\d+]", "", phone)
    if len(compact) <= 8:
        return "•" * len(compact)
    return compact[:5] + "•" * (len(compact) - 8) + compact[-3:]


def mask_text(text: str) -> str:
    return _PHONE_LIKE.sub(lambda m: mask_phone(m.group(0)), text)


def mask_value(value: object) -> str:
    """A stored value shown in UI metadata: that it is there and what it starts with, not what it is (a
    name, an e-mail); anything written like a phone number as mask_phone shows it. None: ∅."""
    if value is None:
        return "∅"
    text = str(value)
    if _PHONE_LIKE.fullmatch(text):
        return mask_phone(text)
    return text[:1] + "•••" if len(text) > 1 else "•"
