"""Vectorised value normalisers for imported cells.

`clean_text` turns raw cells into trimmed text (NA for empty); every parser takes such cleaned text
(the validator cleans each column once) and returns `Parsed(values, invalid)`: normalised values (NA
where empty or invalid) and a mask that is True only where a non-empty cell could not be parsed
("required" is checked elsewhere).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import phonenumbers

_SPACES = "\u00a0\u202f\u2007\u2009"
_NULL_TEXTS = {"none", "nan", "null", "n/a", "#n/a"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_EXCEL_EPOCH = date(1899, 12, 30)


@dataclass(frozen=True)
class Parsed:
    values: pd.Series
    invalid: pd.Series


def _as_object(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None)


_STRIP = " \t\r\n" + _SPACES


def _clean_cell(value: object) -> object:
    if value is None or value is pd.NA or value != value:  # None, NA or NaN
        return pd.NA
    text = (value if isinstance(value, str) else str(value)).strip(_STRIP)
    if not text or (len(text) <= 4 and text.lower() in _NULL_TEXTS):
        return pd.NA
    if text[0] == "'" and len(text) > 1 and text[1] in "=+-@\t\r":
        return text[1:]
    return text


def clean_text(s: pd.Series) -> pd.Series:
    """Trim (incl. NBSP and narrow NBSP); empty and the texts exporters wrote for empty cells -> NA;
    the apostrophe our error reports put before = + - @ is removed again."""
    # One pass in plain Python beats a chain of pandas string operations on object columns.
    return pd.Series([_clean_cell(v) for v in s.to_numpy(dtype=object)], index=s.index, dtype=object)


def on_distinct(parser, text: pd.Series, **kwargs) -> Parsed:
    """Run an element-wise parser on the distinct values only when they repeat (cities, NAF codes,
    flags, sites...), then spread the results back: same output, a fraction of the work."""
    codes, uniques = pd.factorize(text)
    if len(uniques) == 0 or len(uniques) > len(text) // 2:
        return parser(text, **kwargs)
    parsed = parser(pd.Series(uniques, dtype=object), **kwargs)
    spread = pd.api.extensions.take(parsed.values.array, codes, allow_fill=True)
    invalid = parsed.invalid.to_numpy(dtype=bool)[codes] & (codes >= 0)
    return Parsed(pd.Series(spread, index=text.index), pd.Series(invalid, index=text.index))


def _result(values: pd.Series, raw_present: pd.Series) -> Parsed:
    invalid = raw_present & values.isna()
    return Parsed(values.where(~invalid, pd.NA), invalid.astype(bool))


def normalize_header(name: str) -> str:
    """Case-, accent-, space-, punctuation-insensitive key: "Sous-catégorie" -> "souscategorie"."""
    text = unicodedata.normalize("NFKD", str(name).replace("\ufeff", ""))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]", "", text.lower())


# Ligatures NFKD leaves alone: "Œuvres" -> "oeuvres", not "uvres".
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})



def slugify(s: pd.Series) -> pd.Series:
    """Django-style slugs of de-accented text: apostrophes and '&' dropped, other runs -> '-'."""
    codes, uniques = pd.factorize(s)
    if 0 < len(uniques) <= len(s) // 2:
        slugs = _slugify(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
        return pd.Series(np.where(codes >= 0, slugs[codes], pd.NA), index=s.index, dtype=object)
    return _slugify(s)


def _slugify(s: pd.Series) -> pd.Series:
    mask = s.notna()
    out = pd.Series(pd.NA, index=s.index, dtype=object)
    if not mask.any():
        return out
    text = s[mask].astype(object).astype(str)
    entity = text.str.contains("&", regex=False)
    if entity.any():
        text[entity] = text[entity].map(html.unescape)
    ascii_text = (text.str.translate(_LIGATURES).str.normalize("NFKD").str.encode("ascii", "ignore")
                  .str.decode("ascii").str.lower())
    slug = ascii_text.str.replace(r"['`&]", "", regex=True).str.replace(r"[^a-z0-9]+", "-", regex=True).str.strip("-")
    out[mask] = slug.where(slug != "", pd.NA)
    return out


def decode_html_entities(s: pd.Series) -> pd.Series:
    text = _as_object(s)
    has_entity = text.notna() & text.astype(str).str.contains("&", regex=False)
    if not has_entity.any():
        return s
    out = s.astype(object).copy()
    out[has_entity] = text[has_entity].map(html.unescape)
    return out


def _compact_number(text: pd.Series) -> pd.Series:
    return text.str.replace(f"[ {_SPACES}]", "", regex=True)


def parse_decimal(text: pd.Series) -> Parsed:
    """Decimal comma or point; thousands separators space/NBSP/narrow NBSP, or '.'/',' in groups of 3.

    When both '.' and ',' occur the last one is the decimal separator; several '.' groups of 3 digits
    (1.234.567) are thousands; a single '.' or ',' is the decimal separator (1.234 = 1.234).
    """
    s = text
    present = text.notna()
    compact = _compact_number(text.fillna(""))
    last_comma, last_dot = compact.str.rfind(","), compact.str.rfind(".")
    comma_decimal = last_comma > last_dot
    normal = compact.where(~comma_decimal, compact.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    both = (last_comma >= 0) & (last_dot >= 0) & ~comma_decimal
    normal = normal.where(~both, normal.str.replace(",", "", regex=False))
    dotted_thousands = compact.str.fullmatch(r"[-+]?\d{1,3}(\.\d{3}){2,}")
    normal = normal.where(~dotted_thousands, compact.str.replace(".", "", regex=False))
    valid_shape = normal.str.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
    numbers = pd.to_numeric(normal.where(valid_shape & present), errors="coerce").astype("float64")
    return _result(pd.Series(numbers, index=s.index), present)


def parse_integer(text: pd.Series) -> Parsed:
    decimal = parse_decimal(text)
    whole = decimal.values.notna() & (decimal.values % 1 == 0)
    values = decimal.values.where(whole).round().astype("Int64")
    return _result(values, text.notna())


def parse_date(text: pd.Series) -> Parsed:
    """dd/mm/yyyy (also - and .), ISO (time dropped), Excel serial numbers; never month-first."""
    s = text
    present = text.notna()
    result = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    filled = text.fillna("")
    day_first = filled.str.fullmatch(r"\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}")
    if day_first.any():
        parts = filled[day_first].str.replace(r"[.\-]", "/", regex=True)
        result[day_first] = pd.to_datetime(parts, format="%d/%m/%Y", errors="coerce")
    iso = filled.str.fullmatch(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")
    if iso.any():
        result[iso] = pd.to_datetime(filled[iso].str[:10], format="%Y-%m-%d", errors="coerce")
    serial = filled.str.fullmatch(r"\d{1,7}(\.0+)?")
    if serial.any():
        days = pd.to_numeric(filled[serial], errors="coerce")
        days = days.where((days >= 1) & (days <= 2958465))
        result[serial] = pd.Timestamp(_EXCEL_EPOCH) + pd.to_timedelta(days, unit="D")
    return _result(result.dt.normalize(), present)


_TRUE = {"oui", "true", "vrai", "1", "yes", "o", "y", "x", "1.0", "t"}
_FALSE = {"non", "false", "faux", "0", "no", "n", "0.0", "f"}


def parse_bool(text: pd.Series) -> Parsed:
    s = text
    lower = text.fillna("").str.lower()
    values = pd.Series(pd.NA, index=s.index, dtype="boolean")
    values[lower.isin(_TRUE)] = True
    values[lower.isin(_FALSE)] = False
    return _result(values, text.notna())


_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}"


def parse_email(text: pd.Series) -> Parsed:
    filled = text.fillna("")
    ok = filled.str.fullmatch(_EMAIL) & (filled.str.len() <= 254)
    normalised = filled.copy()
    upper = ok & (filled != filled.str.lower())
    if upper.any():
        parts = filled[upper].str.rpartition("@")
        normalised[upper] = parts[0] + parts[1] + parts[2].str.lower()
    return _result(normalised.where(ok), text.notna())


def parse_url(text: pd.Series) -> Parsed:
    filled = text.fillna("")
    has_scheme = filled.str.match(r"(?i)https?://")
    url = filled.where(has_scheme, "https://" + filled)
    ok = url.str.fullmatch(r"(?i)https?://[^\s/.]+(\.[^\s/.]+)+(/\S*)?")
    return _result(url.where(ok), text.notna())


def _e164(raw: str, region: str) -> str | None:
    text = raw.strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]  # Excel stored the number as a float
    digits = re.sub(r"\D", "", text)
    if not text.startswith("+") and text.startswith("00") and len(digits) > 4:
        text = "+" + digits[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_phone(text: pd.Series, default_region: str = "ML") -> Parsed:
    """E.164 via libphonenumber. A number not valid for its region is invalid, never re-prefixed."""
    present = text.notna()
    values = pd.Series(pd.NA, index=text.index, dtype=object)
    if present.any():
        mapping = {u: _e164(u, default_region) for u in pd.unique(text[present])}
        values[present] = text[present].map(mapping)
    return _result(values, present)


def _digits(text: pd.Series) -> pd.Series:
    text = text.fillna("")
    messy = ~text.str.isdigit()
    if messy.any():
        # Excel float artefact ("732829320.0"), then spaces and dots used as separators.
        text = text.copy()
        text[messy] = text[messy].str.replace(r"\.0+$", "", regex=True).str.replace(f"[ .{_SPACES}]", "", regex=True)
    return text


def luhn_valid(digits: pd.Series) -> pd.Series:
    """Luhn check of equal- or mixed-length digit strings (vectorised over a digit matrix)."""
    if digits.empty:
        return pd.Series(dtype=bool, index=digits.index)
    width = int(digits.str.len().max())
    padded = digits.str.zfill(width)
    matrix = np.frombuffer("".join(padded).encode("ascii"), dtype=np.uint8).reshape(-1, width) - ord("0")
    doubled = matrix.copy()
    # Double every second digit from the right.
    positions = np.arange(width)[::-1] % 2 == 1
    doubled[:, positions] = matrix[:, positions] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    return pd.Series(doubled.sum(axis=1) % 10 == 0, index=digits.index)


def _identifier(s: pd.Series, length: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    digits = _digits(s)
    present = s.notna()
    shaped = (digits.str.len() == length) & digits.str.isdigit() & present
    ok = pd.Series(False, index=s.index)
    if shaped.any():
        ok[shaped] = luhn_valid(digits[shaped])
    return digits, ok, present


def parse_siren(s: pd.Series) -> Parsed:
    digits, ok, present = _identifier(s, 9)
    return _result(digits.where(ok), present)


LA_POSTE_SIREN = "356000000"


def parse_siret(s: pd.Series) -> Parsed:
    """14 digits, Luhn; La Poste establishments (SIREN 356000000) use "digit sum divisible by 5"."""
    digits, ok, present = _identifier(s, 14)
    la_poste = digits.str.fullmatch(r"356000000\d{5}") & present
    if la_poste.any():
        sums = digits[la_poste].map(lambda d: sum(int(c) for c in d))
        ok[la_poste] = (sums % 5 == 0) | ok[la_poste]
    return _result(digits.where(ok), present)


def parse_naf(text: pd.Series) -> Parsed:
    """NAF rev. 2: "6201Z" -> "62.01Z", "1.11" -> "01.11", "62 01z" -> "62.01Z"."""
    filled = text.fillna("").str.upper().str.replace(f"[ {_SPACES}]", "", regex=True)
    parts = filled.str.extract(r"^(?P<a>\d{1,2})(?P<dot>\.?)(?P<b>\d{2})(?P<c>[A-Z]?)$")
    # Without a dot the division needs both digits ("620" is not a code); "1.11" is "01.11".
    ok = parts["a"].notna() & ((parts["dot"] == ".") | (parts["a"].str.len() == 2))
    code = parts["a"].str.zfill(2) + "." + parts["b"] + parts["c"].fillna("")
    return _result(code.where(ok), text.notna())


def parse_postal_code(text: pd.Series, pad_french: bool = True) -> Parsed:
    """Text, leading zeros kept; a French 4-digit code that lost its leading zero is padded."""
    digits = text.fillna("").str.replace(r"\.0+$", "", regex=True).str.replace(f"[ {_SPACES}]", "", regex=True)
    if pad_french:
        digits = digits.where(~digits.str.fullmatch(r"\d{4}"), "0" + digits)
    ok = digits.str.fullmatch(r"\d{5}")
    return _result(digits.where(ok), text.notna())


def check_max_length(s: pd.Series, n: int) -> pd.Series:
    lengths = s.astype(object).where(s.notna(), "").astype(str).str.len()
    return (lengths > n) & s.notna()


def neutralize_formula(s: pd.Series) -> pd.Series:
    """Prefix an apostrophe to text starting with = + - @ tab or CR (OWASP CSV injection), numbers too:
    simple and safe; re-importing the report removes it again (clean_text)."""
    text = s.astype(object)
    is_text = text.map(lambda v: isinstance(v, str))
    risky = is_text & text.where(is_text, "").astype(str).str.startswith(_FORMULA_START)
    out = text.copy()
    out[risky] = "'" + text[risky].astype(str)
    return out

