"""The one phone normaliser: text as people write it into E.164, through libphonenumber.

Imports and the notification outbox use it alike, so a number an import stored is the number a
message goes to. A number that is not valid for its region is refused (None), never guessed.

`to_e164_many` is its batch form for imports, with the same results: the numbers written in the shapes
most come in (digits and separators, national or +/00 international) are grouped by region (the
calling code's, or the default one) and checked against libphonenumber's own metadata patterns of that
region in one vectorised pass per group (`phone_patterns.DigitAutomaton`); every other shape, and every
number that route does not find valid, goes through `to_e164`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import phonenumbers
from phonenumbers import PhoneMetadata

from nightshift.phone_patterns import END, DigitAutomaton, Unsupported

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


# Digits with the separators people type, a + only in front; anything else (letters, extensions, other
# digits) takes the libphonenumber route.
_DIGIT, _SEPARATOR = 1, 2
_KIND = np.zeros(256, dtype=np.uint8)  # by character code (codes from 255 on: another character)
_KIND[ord("0"):ord("9") + 1] = _DIGIT
_KIND[[ord(c) for c in " .-()/\u00a0"]] = _SEPARATOR
# Longer texts are never a number in a simple shape: 17 digits and as many separators.
_MAX_SIMPLE_CHARS = 2 * MAX_PHONE_DIGITS
# The descriptions of number types a valid number matches one of (libphonenumber's number type check).
_NUMBER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                 "voicemail", "fixed_line", "mobile")
_GENERAL = np.uint64(1)  # the bit of the general description; the number types' come after it


@dataclass(frozen=True)
class _RegionRule:
    calling_code: str
    # Pattern 0: the general description of the region's numbers; then one per number type.
    numbers: DigitAutomaton
    lengths: np.ndarray  # by number of digits: the bits of the patterns that allow numbers that long
    national_prefix: str | None  # the digits national numbers drop (e.g. 0); None: none, or not digits alone
    national_prefix_simple: bool  # False: prefixes with carrier codes or rewrite rules (the fallback's)
    international_prefix: DigitAutomaton | None
    international_prefix_00: bool  # the region dials abroad with 00 and nothing else

    def valid(self, national: np.ndarray, digits: np.ndarray) -> np.ndarray:
        """Which of the national significant numbers (rows of digits, END after each; `digits` long) are
        valid: of the general description and of one number type, each at an allowed length."""
        allowed = self.numbers.matched(national) & self.lengths[np.minimum(digits, len(self.lengths) - 1)]
        return ((allowed & _GENERAL) != 0) & ((allowed & ~_GENERAL) != 0)


def _description(desc) -> tuple[str, list[int]] | None:
    """One number description: its pattern and the lengths it allows (none listed: any length); None
    when the region has no numbers of the kind."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = [length for length in desc.possible_length if length > 0]
    if desc.possible_length and not lengths:  # (-1,): the region has no numbers of this type
        return None
    return desc.national_number_pattern, lengths


@functools.cache
def _rule(region: str) -> _RegionRule | None:
    """The region's metadata as automata; None when libphonenumber must decide its numbers (no metadata,
    no number types, or a pattern the automata cannot read)."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    general = _description(metadata.general_desc)
    types = [d for d in (_description(getattr(metadata, name)) for name in _NUMBER_TYPES) if d]
    if general is None or not types:
        return None
    descriptions = [general, *types]
    lengths = np.zeros(_MAX_SIMPLE_CHARS + 2, dtype=np.uint64)  # by digit count; the last: more than any
    for bit, (_pattern, allowed) in enumerate(descriptions):
        lengths[[n for n in allowed if n < len(lengths) - 1] if allowed else slice(0, -1)] |= np.uint64(1 << bit)
    prefix = metadata.national_prefix_for_parsing
    simple = prefix is None or (prefix.isdigit() and not metadata.national_prefix_transform_rule)
    idd = metadata.international_prefix
    try:
        numbers = DigitAutomaton.of([pattern for pattern, _lengths in descriptions])
        international = DigitAutomaton.of([idd]) if idd else None
    except Unsupported:
        return None
    return _RegionRule(str(metadata.country_code), numbers, lengths, prefix if prefix and prefix.isdigit() else None,
                       simple, international, idd == "00")


@dataclass
class _Numbers:
    """Rows of a batch of texts written in a simple shape: their digits (END after the last), how many,
    and whether the text began with +."""

    rows: np.ndarray  # the rows' positions in the batch
    digits: np.ndarray
    count: np.ndarray
    plus: np.ndarray

    @classmethod
    def of(cls, texts: list[str]) -> _Numbers:
        """The texts of a simple shape, once a whole number written through a float ("33612345678.0") is
        read as the number."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        rows = np.flatnonzero((lengths > 0) & (lengths <= _MAX_SIMPLE_CHARS))
        lengths = lengths[rows]
        # As wide as the longest text, not the longest allowed; two columns at least: a + and a digit.
        width = max(int(lengths.max(initial=0)), 2)
        chars = np.array([texts[row] for row in rows], dtype=f"<U{width}").view(np.uint32).reshape(len(rows), width)
        column = np.arange(width)
        kind = _KIND[np.minimum(chars, 255)]
        is_digit = kind == _DIGIT
        lengths = _without_float_zeros(chars, lengths, is_digit)
        within = column < lengths[:, None]
        plus = chars[:, 0] == ord("+")
        allowed = kind != 0
        allowed[:, 0] |= plus
        first_is_digit = is_digit[np.arange(len(rows)), plus.astype(np.int64)]
        simple = ~(within & ~allowed).any(axis=1) & first_is_digit & (lengths > plus)
        kept = is_digit & within & simple[:, None]
        count = kept.sum(axis=1)
        # At least as wide as the longest calling code: _international reads three columns.
        digits = np.full((len(rows), max(int(count.max(initial=0)), 3)), END, dtype=np.uint8)
        at_row, at_column = np.nonzero(kept)
        digits[at_row, (np.cumsum(kept, axis=1) - 1)[at_row, at_column]] = chars[at_row, at_column] - ord("0")
        return cls(rows[simple], digits[simple], count[simple], plus[simple])


def _without_float_zeros(chars: np.ndarray, lengths: np.ndarray, is_digit: np.ndarray) -> np.ndarray:
    """The lengths of the texts once ".0…" is dropped from those that are digits, one dot and zeros only."""
    dot = chars == ord(".")
    rows = np.flatnonzero(dot.sum(axis=1) == 1)
    chars, is_digit, length = chars[rows], is_digit[rows], lengths[rows]
    column = np.arange(chars.shape[1])
    at = np.argmax(dot[rows], axis=1)
    before, after = column < at[:, None], (column > at[:, None]) & (column < length[:, None])
    artefact = ((at >= 1) & (at < length - 1) & ~(before & ~is_digit).any(axis=1)
                & ~(after & (chars != ord("0"))).any(axis=1))
    lengths = lengths.copy()
    lengths[rows[artefact]] = at[artefact]
    return lengths


def _shifted(digits: np.ndarray, count: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The digits after the first `skip` of each row, from column 0, and how many."""
    width = digits.shape[1]
    columns = np.minimum(skip[:, None] + np.arange(width), width - 1)
    shifted = np.take_along_axis(digits, columns, axis=1)
    left = np.maximum(count - skip, 0)
    shifted[np.arange(width) >= left[:, None]] = END
    return shifted, left


def _starts_with(digits: np.ndarray, prefix: str) -> np.ndarray:
    wanted = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8) - ord("0")
    if len(wanted) > digits.shape[1]:  # no number here is that long
        return np.zeros(len(digits), dtype=bool)
    return (digits[:, :len(wanted)] == wanted).all(axis=1)


def _as_text(digits: np.ndarray) -> list[str]:
    """Rows of digit values (END after the last) as strings of those digits."""
    characters = np.where(digits < END, digits + ord("0"), 0).astype(np.uint8)
    return characters.view(f"S{digits.shape[1]}").ravel().astype(str).tolist()


_CALLING_CODES = np.zeros(1000, dtype=bool)
_CALLING_CODES[list(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)] = True


def _international(digits: np.ndarray, count: np.ndarray, results: list[str | None], rows: np.ndarray) -> None:
    """+<digits>: E.164 (into `results` at `rows`) where the number after its calling code is valid in the
    code's main region."""
    code = np.zeros(len(digits), dtype=np.int64)
    size = np.zeros(len(digits), dtype=np.int64)
    value = np.zeros(len(digits), dtype=np.int64)
    for length in (1, 2, 3):  # calling codes are prefix-free: the first known one is the number's
        has = count >= length
        value = np.where(has, value * 10 + np.where(has, digits[:, length - 1], 0), value)
        known = (size == 0) & _CALLING_CODES[value] & (digits[:, 0] != 0) & (count > 0)
        code, size = np.where(known, value, code), np.where(known, length, size)
    for calling_code in np.unique(code[size > 0]):
        rule = _rule(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[int(calling_code)][0])
        if rule is None:
            continue
        group = np.flatnonzero(code == calling_code)
        national, left = _shifted(digits[group], count[group], size[group])
        valid = rule.valid(national, left)
        # A national prefix written after the code ("+33 0…") is libphonenumber's to strip.
        if rule.national_prefix:
            valid &= ~_starts_with(national, rule.national_prefix)
        for row, text in zip(rows[group[valid]], _as_text(national[valid]), strict=True):
            results[row] = f"+{calling_code}{text}"


def _metadata_route(texts: list[str], region: str) -> list[str | None]:
    """E.164 of the texts written in a simple shape whose number the metadata of its region finds valid;
    None for the others (invalid, or another shape: libphonenumber decides)."""
    results: list[str | None] = [None] * len(texts)
    numbers = _Numbers.of(texts)
    plus = numbers.plus
    _international(numbers.digits[plus], numbers.count[plus], results, numbers.rows[plus])
    rule = _rule(region)
    if rule is None or not rule.national_prefix_simple:
        return results
    national = ~plus
    if rule.international_prefix is not None:
        abroad = national & rule.international_prefix.matches_a_start(numbers.digits)
        if rule.international_prefix_00:
            dialled, left = _shifted(numbers.digits[abroad], numbers.count[abroad], np.full(abroad.sum(), 2))
            _international(dialled, left, results, numbers.rows[abroad])
        national &= ~abroad
    digits, count = numbers.digits[national], numbers.count[national]
    skip = np.zeros(len(digits), dtype=np.int64)
    if rule.national_prefix:
        skip[_starts_with(digits, rule.national_prefix)] = len(rule.national_prefix)
    number, left = _shifted(digits, count, skip)
    valid = rule.valid(number, left)
    for row, text in zip(numbers.rows[national][valid], _as_text(number[valid]), strict=True):
        results[row] = f"+{rule.calling_code}{text}"
    return results


def to_e164_many(texts: Iterable[str], region: str) -> list[str | None]:
    """`to_e164` of each text, for a column of numbers."""
    texts = list(texts)
    return [e164 or to_e164(raw, region) for raw, e164 in zip(texts, _metadata_route(texts, region), strict=True)]
