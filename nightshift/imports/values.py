"""Vectorised value normalisers for imported cells (French business data).

Every parser takes a Series of raw cell text (object or str dtype), cleans it like `clean_text` and
returns `Parsed(values, invalid)`: normalised values (NA where empty or invalid) and a mask that is
True only where a non-empty cell could not be parsed ("required" is checked elsewhere). The index of
the input is kept. Text results are object Series with `pd.NA` for missing values.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nightshift.phones import to_e164_many

# What old exporters wrote for empty cells (str(None), str(nan), JavaScript, SQL dumps). Exactly
# these spellings: "Nan" or "none" may be a name or a word.
_EMPTY_TEXTS = frozenset(["", "None", "nan", "NaN", "NULL", "null"])
# Cells starting with one of these run as formulas in a spreadsheet; our error reports put an
# apostrophe before them (see neutralize_formula), which cleaning removes again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A whole number that went through an Excel float: "123456789.0".
_FLOAT_ARTEFACT = re.compile(r"^(\d+)\.0+$")
_SPACES = re.compile(r"\s")
# Latin letters NFKD does not split into a base letter and a mark: "Œuvres" -> "oeuvres", not "uvres".
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "ø": "o",
                            "Ø": "O", "đ": "d", "Đ": "D", "ı": "i"})
_COMBINING_MARKS = r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"


@dataclass(frozen=True)
class Parsed:
    values: pd.Series
    invalid: pd.Series  # bool


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or value != value  # NaN is the only value unequal to itself


def _stripped_non_text(value: object) -> str | None:
    return None if _missing(value) else str(value).strip()


def _cleaned_cells(s: pd.Series) -> list[str | None]:
    # Two inline Python passes per column: cheaper than chaining pandas string methods (a pass each)
    # or calling a function per cell. strip() removes NBSP and narrow NBSP too.
    cells = [v.strip() if v.__class__ is str else _stripped_non_text(v) for v in s.to_numpy(dtype=object)]
    return [None if c is None or c in _EMPTY_TEXTS else c[1:] if c[0] == "'" and c[1:2] in _FORMULA_START else c
            for c in cells]


def _text(s: pd.Series) -> pd.Series:
    """`clean_text` as pandas' str dtype (missing = NaN) on a 0..n-1 index, the form the parsers work
    on: results computed on a subset realign by label even when the caller's index has duplicates
    (`_result` puts the caller's index back)."""
    return pd.Series(_cleaned_cells(s), dtype="str")


def _as_object(text: pd.Series) -> pd.Series:
    return text.astype(object).where(text.notna(), pd.NA)


def _result(values: pd.Series, text: pd.Series, index: pd.Index) -> Parsed:
    invalid = (text.notna() & values.isna()).astype(bool)
    return Parsed(values.set_axis(index), invalid.set_axis(index))


def _text_result(cells: list[str | None], normalised: list[str | None], index: pd.Index) -> Parsed:
    """`Parsed` of a text parser that works on the cleaned cells as a list (one Python pass, where
    pandas' str methods take a pass and a missing-value scan each): `normalised` holds None where a
    cell is empty or invalid."""
    values = np.empty(len(normalised), dtype=object)
    values[:] = normalised
    missing = np.fromiter((value is None for value in normalised), dtype=bool, count=len(normalised))
    values[missing] = pd.NA
    present = np.fromiter((cell is not None for cell in cells), dtype=bool, count=len(cells))
    return Parsed(pd.Series(values, index=index, dtype=object), pd.Series(present & missing, index=index))


def _all_present_result(values: np.ndarray, valid: np.ndarray, index: pd.Index) -> Parsed:
    """`Parsed` of cells that are all present: `values` (an array of its own, NA set where not valid),
    the others invalid."""
    values[~valid] = pd.NA
    return Parsed(pd.Series(values, index=index, dtype=object), pd.Series(~valid, index=index))


def _all_plain_str(cells: np.ndarray) -> bool:
    """There are cells and every one is a `str` itself, not missing, not a spreadsheet's number, not a
    subclass of str (cleaning would turn one into a plain str): cells a parser may hand back as they are."""
    return set(map(type, cells)) == {str}


def _as_text(value: object) -> str | None:
    """A cell as pandas' str dtype would hold it: text as is, NA as None, anything else as its str()."""
    if value.__class__ is str:
        return value
    return None if _missing(value) else str(value)


def clean_text(s: pd.Series) -> pd.Series:
    """Trimmed text (incl. NBSP, narrow NBSP); empty cells and "None"/"nan"/"NaN"/"NULL"/"null" -> NA.

    A leading apostrophe before = + - @ tab CR is removed: it is the one `neutralize_formula` wrote
    into an error report, so a corrected report can be imported again.
    """
    cells = np.array(_cleaned_cells(s), dtype=object)
    cells[pd.isna(cells)] = pd.NA
    return pd.Series(cells, index=s.index, dtype=object)


def filled(column: pd.Series) -> bool:
    """The column holds a value in at least one row. Most filled columns show it in their first row; an
    empty one (a field the file does not have) is told by one missing-value scan."""
    return len(column) > 0 and (not pd.isna(column.iloc[0]) or bool(column.notna().any()))


# Values sampled, evenly spread, to tell a column of mostly distinct values without factorizing it all.
_REPEAT_SAMPLE = 1000


def repeated(s: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """(codes, distinct values) of a column whose values repeat enough (cities, NAF codes, flags,
    sites...) that working on the distinct ones pays; None otherwise. Code -1 marks a missing cell.
    None too for Python objects that are not all text (spreadsheet cells): factorizing takes 1, 1.0
    and True as one value, which as cells they are not."""
    if len(s) > 2 * _REPEAT_SAMPLE:
        sample = s.to_numpy(dtype=object)[::len(s) // _REPEAT_SAMPLE]
        if len(pd.unique(sample)) > 0.95 * len(sample):  # names, e-mails, SIRETs: factorizing would not pay
            return None
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) != "string":
        return None
    codes, uniques = pd.factorize(s)
    if len(uniques) == 0 or len(uniques) > len(s) // 2:
        return None
    return codes, pd.Series(uniques, dtype=object)


def on_distinct(parser, text: pd.Series, **kwargs) -> Parsed:
    """Run an element-wise parser on the distinct values only when they repeat, then spread the results
    back: same output, a fraction of the work."""
    found = repeated(text)
    if found is None:
        return parser(text, **kwargs)
    codes, distinct = found
    parsed = parser(distinct, **kwargs)
    spread = pd.api.extensions.take(parsed.values.array, codes, allow_fill=True)
    invalid = parsed.invalid.to_numpy(dtype=bool)[codes] & (codes >= 0)
    return Parsed(pd.Series(spread, index=text.index), pd.Series(invalid, index=text.index))


def normalize_header(name: str) -> str:
    """Case-, accent-, space-, punctuation-insensitive key: "Sous-catégorie" -> "souscategorie"."""
    text = unicodedata.normalize("NFKD", str(name).translate(_LIGATURES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[\W_]", "", text.lower())


def _unescape(text: pd.Series) -> pd.Series:
    """html.unescape on the distinct str values that contain "&"."""
    has_entity = text.str.contains("&", regex=False, na=False)
    if not has_entity.any():
        return text
    distinct = pd.unique(text[has_entity])
    decoded = dict(zip(distinct, map(html.unescape, distinct), strict=True))
    return text.where(~has_entity, text.map(decoded))


def decode_html_entities(s: pd.Series) -> pd.Series:
    """ "&amp;" -> "&", "&eacute;" -> "é"; other values and NA unchanged."""
    cells = s.to_numpy(dtype=object)
    # Text is looked at as is; other values (numbers, dates) hold no "&" as text.
    has_entity = np.fromiter((cell.__class__ is str and "&" in cell for cell in cells), dtype=bool, count=len(cells))
    if not has_entity.any():
        return s
    texts = [_as_text(cell) for cell in cells]
    return s.where(~has_entity, _unescape(pd.Series(texts, index=s.index, dtype="str")))


def _slugs(text: pd.Series) -> pd.Series:
    slug = (
        _unescape(text)
        .str.replace(r"['’‘ʼ`´&]", "", regex=True)
        .str.translate(_LIGATURES)
        .str.normalize("NFKD")
        .str.replace(_COMBINING_MARKS, "", regex=True)
        .str.lower()
        # Letters of other scripts stay (北京饭店 has a slug too); punctuation and spaces become "-".
        .str.replace(r"[\W_]+", "-", regex=True)
        .str.strip("-")
    )
    return slug.mask(slug == "")


def bounded(text: pd.Series, limit: int) -> pd.Series:
    """Text of at most `limit` characters, for a column of that width: a longer one keeps its start and
    ends with "~" and a 64-bit hash of the whole, so that long texts sharing a start stay distinct."""
    long = (text.astype("str").str.len() > limit).fillna(False).to_numpy(dtype=bool)
    if not long.any():
        return text
    whole = text[long].astype(object)
    hashes = pd.util.hash_array(whole.to_numpy(dtype=object), categorize=False)
    shortened = [f"{t[:limit - 17]}~{h:016x}" for t, h in zip(whole, hashes, strict=True)]
    result = text.astype(object).copy()
    result[long] = shortened
    return result


# Width of every slug column (categories, sub-categories, cities).
SLUG_MAX_LENGTH = 255


def slugify(s: pd.Series) -> pd.Series:
    """Slugs of the de-accented text, like Django's slugify: "Artisanat d’art" -> "artisanat-dart",
    "北京饭店" -> "北京饭店" (letters without a Latin form are kept, as Django's allow_unicode does).

    Apostrophes and "&" are dropped, every other run of non-alphanumerics becomes one "-", "-" is
    stripped at both ends; HTML entities are decoded first. NA (or nothing left) -> NA. At most
    SLUG_MAX_LENGTH characters (`bounded`: ligatures can make a slug longer than its name).
    """
    if not filled(s):  # a column the file does not fill
        return pd.Series(pd.NA, index=s.index, dtype=object)
    # Names repeat a lot (categories, cities): slugify each distinct one once.
    codes, distinct = pd.factorize(s.astype("str"))
    slugs = bounded(_as_object(_slugs(pd.Series(distinct, dtype="str"))), SLUG_MAX_LENGTH).to_numpy()
    return pd.Series(pd.api.extensions.take(slugs, codes, allow_fill=True, fill_value=pd.NA), index=s.index)


# sign, integer part (optionally grouped by thousands with ONE separator), decimal part, exponent.
_NUMBER = (
    r"^(?P<sign>[+-]?)"
    r"(?P<int>\d{1,3}(?:(?P<sep>[ .,])\d{3})+|\d*)"
    r"(?:(?P<dec>[.,])(?P<frac>\d*))?"
    r"(?:[eE](?P<exp>[+-]?\d+))?$"
)


def _canonical_number(text: pd.Series) -> pd.Series:
    """Cleaned text -> "-1234.5" / "1.5e-3", the form pd.to_numeric reads; NaN where not a number."""
    parts = text.str.replace(r"\s", " ", regex=True).str.extract(_NUMBER)  # NBSP etc. are spaces
    # "1.234" / "1,234": a single '.' or ',' is the decimal separator, never thousands.
    single_group = parts["int"].str.fullmatch(r"\d{1,3}[.,]\d{3}") & parts["dec"].isna()
    integer = parts["int"].where(~single_group, parts["int"].str[:-4]).str.replace(r"\D", "", regex=True)
    fraction = parts["frac"].where(~single_group, parts["int"].str[-3:]).fillna("")
    has_digits = (integer.str.len() + fraction.str.len()) > 0
    same_separator = parts["sep"].notna() & (parts["sep"] == parts["dec"])  # "1.234.5"
    exponent = ("e" + parts["exp"]).fillna("")
    return (parts["sign"] + integer + "." + fraction + exponent).where(has_digits & ~same_separator)


def _numbers(text: pd.Series) -> pd.Series:
    """float64 of cleaned text, NaN where not a finite number."""
    # Nearly every cell is a plain number that pd.to_numeric reads once a decimal comma is a point;
    # only the others go through the regex.
    numbers = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce").astype("float64")
    rest = text.notna() & ~np.isfinite(numbers)
    if rest.any():
        canonical = _canonical_number(text[rest]).astype(object)
        numbers = numbers.where(~rest, pd.to_numeric(canonical, errors="coerce").astype("float64"))
    return numbers.where(np.isfinite(numbers))


def parse_decimal(s: pd.Series) -> Parsed:
    """float64. Decimal comma or point; thousands separated by spaces (also NBSP, narrow NBSP) or by
    the other of '.'/',' in groups of 3; an exponent is accepted ("1,5E-3").

    '.' and ',': when both occur the last one is the decimal separator ("1.234.567,89", "1,234.56");
    the same one repeated between groups of 3 is thousands ("1.234.567" = 1234567); a single one is
    always the decimal separator, so "1.234" = 1.234 and "1,234" = 1.234 (French).
    """
    text = _text(s)
    return _result(_numbers(text), text, s.index)


# Beyond this a float64 no longer holds every integer exactly.
_EXACT_INTEGER_LIMIT = 2**53


def parse_integer(s: pd.Series) -> Parsed:
    """Nullable Int64: numbers as `parse_decimal` reads them whose fraction is zero ("1 200", "1.0",
    "12,0", "1E3"). "1.5" is invalid, and so are "1.000" / "1,000" (1 by the decimal rule but most
    likely meant 1000) and values beyond ±2**53."""
    text = _text(s)
    numbers = _numbers(text)
    whole = (numbers % 1 == 0) & (numbers.abs() < _EXACT_INTEGER_LIMIT)
    maybe_thousands = text.str.endswith((".000", ",000"))
    if maybe_thousands.any():
        whole &= ~text.where(maybe_thousands).str.fullmatch(r"[+-]?\d{1,3}[.,]000")
    return _result(numbers.where(whole).astype("Int64"), text, s.index)


_DAY_FIRST = r"^(?P<day>\d{1,2})(?P<sep>[/.-])(?P<month>\d{1,2})(?P=sep)(?P<year>\d{4})$"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
_ISO = rf"^(?P<date>\d{{4}}-\d{{2}}-\d{{2}})(?:[ T]{_TIME})?$"
_EXCEL_SERIAL = r"^\d{1,7}(?:\.\d+)?$"
_EXCEL_LAST_SERIAL = 2958465  # 31/12/9999
# A bare year in a date column would read as a 1905 serial: rejected as ambiguous.
_YEAR = r"^(?:1[89]|2[01])\d\d(?:\.0+)?$"


def _from_excel_serial(serials: np.ndarray) -> np.ndarray:
    """1900 date system. Excel counts a 29/02/1900 that never was (serial 60, invalid here): below
    60 the days start one day later. Returns datetime64[us] with NaT where out of range."""
    days = np.floor(serials)
    usable = (days >= 1) & (days <= _EXCEL_LAST_SERIAL) & (days != 60)
    days = np.where(usable, days, 0).astype("int64") + (days < 60)
    dates = (np.datetime64("1899-12-30", "D") + days).astype("datetime64[us]")
    return np.where(usable, dates, np.datetime64("NaT", "us"))


def _dates_other_than_dd_mm_yyyy(text: pd.Series) -> pd.Series:
    dates = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    day_first = text.str.extract(_DAY_FIRST)
    if day_first["day"].notna().any():
        joined = day_first["day"] + "/" + day_first["month"] + "/" + day_first["year"]
        dates = dates.fillna(pd.to_datetime(joined, format="%d/%m/%Y", errors="coerce"))
    iso = text.str.extract(_ISO)["date"]
    if iso.notna().any():
        dates = dates.fillna(pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce"))
    is_serial = text.str.fullmatch(_EXCEL_SERIAL) & ~text.str.fullmatch(_YEAR)
    if is_serial.any():
        serials = pd.to_numeric(text.where(is_serial).astype(object), errors="coerce").to_numpy("float64")
        dates = dates.fillna(pd.Series(_from_excel_serial(serials), index=text.index))
    return dates


def parse_date(s: pd.Series) -> Parsed:
    """datetime64[us] at midnight. dd/mm/yyyy, d/m/yyyy, dd-mm-yyyy, dd.mm.yyyy; ISO yyyy-mm-dd (a time
    part is dropped); Excel serial numbers 1..2958465 (a fractional part, the time, is dropped).

    Never month-first: "12/31/2024" is invalid, as are impossible dates (31/02/2024) and bare years
    ("2024", which would otherwise be the serial of 16/07/1905). Microseconds, not nanoseconds, so
    that 31/12/9999 ("no end date") and the whole Excel range fit.
    """
    text = _text(s)
    # The common dd/mm/yyyy first, by pandas' own parser; the regexes only see what is left.
    dates = pd.to_datetime(text, format="%d/%m/%Y", errors="coerce").astype("datetime64[us]")
    rest = text.notna() & dates.isna()
    if rest.any():
        dates = dates.fillna(_dates_other_than_dd_mm_yyyy(text[rest]))
    return _result(dates, text, s.index)


_TRUE = ["oui", "true", "vrai", "1", "1.0", "yes", "o", "y", "x"]
_FALSE = ["non", "false", "faux", "0", "0.0", "no", "n"]


def parse_bool(s: pd.Series) -> Parsed:
    """Nullable boolean, case-insensitive: oui/non, true/false, vrai/faux, 1/0, 1.0/0.0, yes/no, o/n,
    y/n; "x" (a ticked box) is True, an empty cell NA."""
    text = _text(s)
    lower = text.str.lower()
    values = pd.Series(pd.NA, index=text.index, dtype="boolean")
    values = values.mask(lower.isin(_TRUE), True).mask(lower.isin(_FALSE), False)
    return _result(values, text, s.index)


# One @, no spaces, no list or display-name punctuation; a domain of non-empty dot-separated labels.
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[\w-]+(?:\.[\w-]+)+")
# Lines of such addresses whose domain is lower-case ASCII already.
_PLAIN_EMAIL_LINES = re.compile(r"(?:[^@\s<>(),;:\"\[\]\\]+@[a-z0-9_-]+(?:\.[a-z0-9_-]+)+\n)*")
_EMAIL_MAX_LENGTH = 254


def parse_email(s: pd.Series) -> Parsed:
    """Pragmatic check, not RFC 5322; at most 254 characters; the domain is lower-cased, the local
    part kept as written."""
    cells = s.to_numpy(dtype=object)
    # As systems export addresses: a lower-case domain already.
    if _valid_as_they_stand(cells, _PLAIN_EMAIL_LINES, _EMAIL_MAX_LENGTH):
        return _all_present_result(cells.copy(), np.ones(len(cells), dtype=bool), s.index)
    cleaned = _cleaned_cells(s)
    return _text_result(cleaned, [None if cell is None else _email(cell) for cell in cleaned], s.index)


def _valid_as_they_stand(cells: np.ndarray, lines_pattern: re.Pattern, max_length: int | None = None) -> bool:
    """Every cell a plain str with nothing to clean (to trim, an apostrophe to remove) that is valid as it
    is: told by one match of `lines_pattern` (a valid cell per line) over the joined cells instead of one
    per cell."""
    if not _all_plain_str(cells):
        return False
    lines = "\n".join(cells) + "\n"
    return (lines.count("\n") == len(cells) and not lines.startswith("'") and "\n'" not in lines
            and (max_length is None or max(map(len, cells)) <= max_length)
            and lines_pattern.fullmatch(lines) is not None)


def _email(cell: str) -> str | None:
    if len(cell) > _EMAIL_MAX_LENGTH or _EMAIL.fullmatch(cell) is None:
        return None
    local, _, domain = cell.rpartition("@")
    lowered = domain.lower()
    return cell if lowered == domain else f"{local}@{lowered}"


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# http(s), a host with a dot and no user info ("a@b.fr" is an e-mail address, not a site), optional
# port, then anything but spaces.
_URL_AFTER_SCHEME = r"[^\s/?#:.@]+(?:\.[^\s/?#:.@]+)+(?::\d{1,5})?(?:[/?#]\S*)?"
_URL = re.compile(f"https?://{_URL_AFTER_SCHEME}")
# Lines of such sites, written with http(s):// in lower case or with no scheme.
_PLAIN_URL_LINES = re.compile(f"(?:(?:https?://)?{_URL_AFTER_SCHEME}\n)*")
_HTTP = ("http://", "https://")


def parse_url(s: pd.Series) -> Parsed:
    """ "https://" is added when there is no scheme; only http and https are accepted (scheme
    lower-cased). Invalid when the host has no dot or the text has spaces."""
    plain = s.to_numpy(dtype=object)
    if _valid_as_they_stand(plain, _PLAIN_URL_LINES):
        urls = np.array([cell if cell.startswith(_HTTP) else "https://" + cell for cell in plain], dtype=object)
        return _all_present_result(urls, np.ones(len(plain), dtype=bool), s.index)
    cells = _cleaned_cells(s)
    return _text_result(cells, [None if cell is None else _url(cell) for cell in cells], s.index)


def _url(cell: str) -> str | None:
    scheme = _URL_SCHEME.match(cell)
    url = "https://" + cell if scheme is None else scheme.group(0).lower() + cell[scheme.end():]
    return url if _URL.fullmatch(url) else None


def parse_phone(s: pd.Series, default_region: str = "ML") -> Parsed:
    """E.164 strings via libphonenumber, each distinct value parsed once. A number that is not valid
    for its region is invalid: a national number of another country is never given the default
    region's code."""
    cells = _cleaned_cells(s)
    distinct = [raw for raw in dict.fromkeys(cells) if raw is not None]
    e164 = dict(zip(distinct, to_e164_many(distinct, default_region), strict=True))
    return _text_result(cells, [None if cell is None else e164[cell] for cell in cells], s.index)


def _plain_digits(cells: np.ndarray) -> tuple[str, np.ndarray] | None:
    """(the cells joined, their lengths) when every cell is a plain `str` of ASCII digits only, as systems
    export identifiers and codes: nothing to clean. None otherwise (an empty cell, a space, a number)."""
    if not _all_plain_str(cells):
        return None
    joined = "".join(cells)
    if not (joined.isascii() and joined.isdigit()):
        return None
    lengths = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells))
    return (joined, lengths) if lengths.all() else None


def _digit_matrix(digits: str, width: int) -> np.ndarray:
    """ASCII digit strings of length `width`, joined -> (n, width) matrix of their digits."""
    codes = np.frombuffer(digits.encode("ascii"), dtype=np.uint8)
    return codes.reshape(-1, width) - ord("0")


# Luhn doubles every second digit from the right, minus 9 when over 9.
_LUHN_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)


def _luhn_valid(matrix: np.ndarray) -> np.ndarray:
    """Luhn check of each row of a digit matrix."""
    width = matrix.shape[1]
    doubled = (width - 1 - np.arange(width)) % 2 == 1
    weighted = matrix.copy()
    weighted[:, doubled] = _LUHN_DOUBLED[matrix[:, doubled]]
    return weighted.sum(axis=1) % 10 == 0


_LA_POSTE_SIREN_DIGITS = np.frombuffer(b"356000000", dtype=np.uint8) - ord("0")


def _siret_valid(matrix: np.ndarray) -> np.ndarray:
    """Luhn on the SIRET and on its SIREN, or La Poste's rule."""
    la_poste = (matrix[:, :9] == _LA_POSTE_SIREN_DIGITS).all(axis=1) & (matrix.sum(axis=1) % 5 == 0)
    return (_luhn_valid(matrix) & _luhn_valid(matrix[:, :9])) | la_poste


_SPACES_AND_DOTS = re.compile(r"[\s.]")


def _parse_identifier(s: pd.Series, width: int, valid_rows: Callable[[np.ndarray], np.ndarray]) -> Parsed:
    """`width` digits once Excel's ".0", spaces (incl. NBSP) and dots are dropped, checked by `valid_rows`
    (a digit matrix -> whether each row is valid)."""
    cells = s.to_numpy(dtype=object)
    plain = _plain_digits(cells)
    if plain is not None and (plain[1] == width).all():  # nothing to clean: no Python pass per cell
        return _all_present_result(cells.copy(), valid_rows(_digit_matrix(plain[0], width)), s.index)
    cleaned = _cleaned_cells(s)
    digits = [cell if cell is None or (cell.isascii() and cell.isdigit())
              else _SPACES_AND_DOTS.sub("", _FLOAT_ARTEFACT.sub(r"\1", cell)) for cell in cleaned]
    shaped = np.fromiter((d is not None and len(d) == width and d.isascii() and d.isdigit() for d in digits),
                         dtype=bool, count=len(digits))
    if shaped.any():
        candidates = "".join(d for d, ok in zip(digits, shaped, strict=True) if ok)
        shaped[shaped] = valid_rows(_digit_matrix(candidates, width))
    return _text_result(cleaned, [d if ok else None for d, ok in zip(digits, shaped, strict=True)], s.index)


def parse_siren(s: pd.Series) -> Parsed:
    """9 digits, Luhn-valid. A number that lost its leading zeros is not padded: it is invalid."""
    return _parse_identifier(s, 9, _luhn_valid)


def parse_siret(s: pd.Series) -> Parsed:
    """14 digits, Luhn-valid, whose first 9 digits are a valid SIREN.

    La Poste establishments (SIREN 356000000) do not follow Luhn: their digit sum is a multiple of 5
    instead (Luhn stays accepted for them, as for the head office 35600000000048)."""
    return _parse_identifier(s, 14, _siret_valid)


# Division, group (1 or 2 digits each: Excel may have read "01.10" as the number 1.1), sub-class letter.
_NAF = re.compile(r"(?P<division>\d{1,2})(?P<dot>\.?)(?P<group>\d{1,2})(?P<letter>[A-Z]?)")


def parse_naf(s: pd.Series) -> Parsed:
    """NAF rev. 2 as "NN.NN" or "NN.NNX": "6201Z" -> "62.01Z", "62 01z" -> "62.01Z", "1.11Z" -> "01.11Z".

    Zeros lost by Excel are restored only when the dot shows where they were: "1.11" -> "01.11",
    "10.2" -> "10.20"; "620" is invalid."""
    cells = _cleaned_cells(s)
    return _text_result(cells, [None if cell is None else _naf(cell) for cell in cells], s.index)


def _naf(cell: str) -> str | None:
    parts = _NAF.fullmatch(_SPACES.sub("", cell.upper()))
    if parts is None:
        return None
    division, dot, group, letter = parts.groups()
    if len(division) < 2 and not dot:  # "620": no dot to show which zero was lost
        return None
    if len(group) < 2 and (letter or not dot):  # "10.2" is "10.20"; "10.2Z" is not a lost zero
        return None
    return f"{division.zfill(2)}.{group.ljust(2, '0')}{letter}"


def parse_postal_code(s: pd.Series, pad_french: bool = True) -> Parsed:
    """Text of 5 digits, leading zeros kept. With `pad_french` a 4-digit code is a French code that
    lost its leading zero as an Excel number: "1400" and "1400.0" -> "01400"."""
    cells = s.to_numpy(dtype=object)
    if (plain := _plain_digits(cells)) is not None:  # nothing to clean: no Python pass per cell
        lengths = plain[1]
        codes, valid = cells.copy(), lengths == 5
        if pad_french:
            four = lengths == 4
            codes[four] = ["0" + code for code in cells[four]]
            valid |= four
        return _all_present_result(codes, valid, s.index)
    cleaned = _cleaned_cells(s)
    # Most codes are already 5 plain digits: only the others go through the regexes.
    codes = [cell if cell is None or (len(cell) == 5 and cell.isascii() and cell.isdigit())
             else _other_postal_code(cell, pad_french) for cell in cleaned]
    return _text_result(cleaned, codes, s.index)


_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_FIVE_DIGITS = re.compile(r"[0-9]{5}")


def _other_postal_code(cell: str, pad_french: bool) -> str | None:
    digits = _SPACES.sub("", _FLOAT_ARTEFACT.sub(r"\1", cell))
    if pad_french and _FOUR_DIGITS.fullmatch(digits):
        digits = "0" + digits
    return digits if _FIVE_DIGITS.fullmatch(digits) else None


def check_no_letter_or_digit(s: pd.Series) -> pd.Series:
    """True where the text holds no letter or digit of any script ("...", "--"): it has no slug, so it
    cannot name a row (never for NA)."""
    texts = (value if value.__class__ is str else _as_text(value) for value in s.to_numpy(dtype=object))
    nameless = np.fromiter((text is not None and not (text[:1].isalnum() or _LETTER_OR_DIGIT.search(text))
                            for text in texts), dtype=bool, count=len(s))
    return pd.Series(nameless, index=s.index, name=s.name)


# A letter or digit of any script: what str.isalnum() accepts, one character at a time.
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def check_max_length(s: pd.Series, n: int) -> pd.Series:
    """True where the text is longer than n characters (never for NA)."""
    too_long = np.fromiter((len(value) > n if value.__class__ is str else _longer_than(value, n)
                            for value in s.to_numpy(dtype=object)), dtype=bool, count=len(s))
    return pd.Series(too_long, index=s.index, name=s.name)


def _longer_than(value: object, n: int) -> bool:
    text = _as_text(value)
    return text is not None and len(text) > n


def neutralize_formula(s: pd.Series) -> pd.Series:
    """Prefix "'" to text starting with = + - @ tab or CR so spreadsheets never run it (OWASP CSV
    injection). Numbers written as text ("-4,5", "+33...") are prefixed too: simple and safe, and
    importing the report again removes the apostrophe (clean_text). NA and non-text values stay."""
    is_text = s.map(lambda value: isinstance(value, str)).astype(bool)
    if not is_text.any():
        return s
    text = s.where(is_text, "").astype("str")
    risky = is_text & text.str.startswith(_FORMULA_START)
    return s.where(~risky, "'" + text)
