"""The one phone normaliser: text as people write it into E.164, through libphonenumber.

Imports and the notification outbox use it alike, so a number an import stored is the number a
message goes to. A number that is not valid for its region is refused (None), never guessed.
"""

from __future__ import annotations

import re

import phonenumbers

# A whole number that went through an Excel float: "22370123456.0".
_FLOAT_ARTEFACT = re.compile(r"^(\d+)\.0+$")


def to_e164(raw: str, region: str) -> str | None:
    """`raw` as +<country><number>, reading a national number as one of `region`; None when invalid."""
    artefact = _FLOAT_ARTEFACT.fullmatch(raw)
    text = artefact.group(1) if artefact else raw
    candidates = [text]
    if text.startswith("00"):
        # libphonenumber knows "00" only where it is the region's international prefix (not US: 011).
        candidates.append("+" + text[2:])
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def region_of(e164: str) -> str | None:
    """The ISO region of a valid E.164 number (+22370123456 -> ML)."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
