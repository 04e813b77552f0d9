"""The one phone normaliser: text as people write it into E.164, through libphonenumber.

Imports and the notification outbox use it alike, so a number an import stored is the number a
message goes to. A number that is not valid for its region is refused (None), never guessed.

`to_e164_many` is its batch form for imports, with the same results: the shapes most numbers come in
(digits and separators, national or +/00 international) are checked against libphonenumber's own
metadata patterns of their region, one precompiled regular expression per region; every other shape,
and every number that route does not find valid, goes through `to_e164`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata

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


# Written like a phone number: digits (any script) and the separators people type, a + only in front.
_PHONE_SHAPE = re.compile(r"\+?[\d .\-()/\u00a0\u202f]+")
# Fewer digits than any number with its country code, more than E.164's 15 after a 00 prefix.
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 6, 17


def refusal_reason(raw: str) -> str:
    """Why `to_e164` refused `raw`: `not_a_number` (no digits, letters or other signs mixed in, far too
    few or too many digits), `international` (written with a +/00 country code that the rest does not
    fit) or `national` (a plausible number, not valid in the region: maybe a foreign one without its
    country code)."""
    artefact = _FLOAT_ARTEFACT.fullmatch(raw.strip())
    text = artefact.group(1) if artefact else raw.strip()
    digits = sum(character.isdigit() for character in text)
    if not _PHONE_SHAPE.fullmatch(text) or not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        return "not_a_number"
    return "international" if text.startswith(("+", "00")) else "national"


def region_of(e164: str) -> str | None:
    """The ISO region of a valid E.164 number (+22370123456 -> ML)."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))


# Digits with the separators people type; anything else (letters, extensions, other digits) takes
# the libphonenumber route.
_SIMPLE_SHAPE = re.compile(r"\+?[0-9][0-9 .\-()/\u00a0]*")
_SEPARATORS = str.maketrans("", "", " .-()/\u00a0")
# The descriptions of number types a valid number matches one of (libphonenumber's number type check).
_NUMBER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                 "voicemail", "fixed_line", "mobile")


@dataclass(frozen=True)
class _RegionRule:
    calling_code: str
    valid: re.Pattern  # fullmatch: a valid national significant number of the region
    national_prefix: str | None  # a literal prefix that national numbers drop (e.g. 0), when that simple
    national_prefix_simple: bool  # False: prefixes with carrier codes or rewrite rules (the fallback's)
    international_prefix: re.Pattern | None


def _description(desc) -> str | None:
    """One number description as a regular expression anchored at both ends, lengths included."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = [length for length in desc.possible_length if length > 0]
    if desc.possible_length and not lengths:  # (-1,): the region has no numbers of this type
        return None
    length = f"(?=(?:{'|'.join(f'[0-9]{{{n}}}' for n in lengths)})$)" if lengths else ""
    return f"{length}(?:{desc.national_number_pattern})$"


@functools.cache
def _rule(region: str) -> _RegionRule | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    general = _description(metadata.general_desc) if metadata else None
    types = [d for d in (_description(getattr(metadata, name)) for name in _NUMBER_TYPES) if d] if metadata else []
    if general is None or not types:
        return None
    prefix = metadata.national_prefix_for_parsing
    simple = prefix is None or (prefix.isdigit() and not metadata.national_prefix_transform_rule)
    idd = metadata.international_prefix
    return _RegionRule(str(metadata.country_code), re.compile(f"(?={general})(?:{'|'.join(types)})"),
                       prefix, simple, re.compile(idd) if idd else None)


def _international(digits: str) -> str | None:
    """+<digits>: E.164 when the number after its calling code is valid in the code's main region."""
    if not digits[:1].isdigit() or digits[0] == "0":  # no calling code starts with 0
        return None
    for size in (1, 2, 3):  # calling codes are prefix-free: the first known one is the number's
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if regions:
            rule = _rule(regions[0])
            national = digits[size:]
            # A national prefix written after the code ("+33 0…") is libphonenumber's to strip.
            if rule is None or (rule.national_prefix and national.startswith(rule.national_prefix)):
                return None
            return "+" + digits if rule.valid.fullmatch(national) else None
    return None


def _fast_e164(text: str, region: str) -> str | None:
    """E.164 of a simply written valid number; None: ask libphonenumber (invalid, or another shape)."""
    if not _SIMPLE_SHAPE.fullmatch(text):
        return None
    rule = _rule(region)
    digits = text.translate(_SEPARATORS)
    if text.startswith("+"):
        return _international(digits[1:])
    if rule is None or not rule.national_prefix_simple:
        return None
    if rule.international_prefix is not None and rule.international_prefix.match(digits):
        return _international(digits[2:]) if rule.international_prefix.pattern == "00" else None
    national = digits
    if rule.national_prefix and digits.startswith(rule.national_prefix):
        national = digits[len(rule.national_prefix):]
    return "+" + rule.calling_code + national if rule.valid.fullmatch(national) else None


def to_e164_many(texts: Iterable[str], region: str) -> list[str | None]:
    """`to_e164` of each text, for a column of numbers."""
    results = []
    for raw in texts:
        artefact = _FLOAT_ARTEFACT.fullmatch(raw)
        results.append(_fast_e164(artefact.group(1) if artefact else raw, region) or to_e164(raw, region))
    return results
