"""Vectorised validation of one chunk of raw rows against a profile.

Every error of every row is collected (no stop at the first one). The output is the chunk's valid
rows in canonical, normalised form (plus `_line`) and an error frame with one row per
(line, column, code): line as in the file, column as written in the file, raw value, code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nightshift.imports import values
from nightshift.imports.profiles import Field, Profile

ERROR_COLUMNS = ["line", "column", "value", "code"]

_KIND_PARSERS = {
    "integer": (values.parse_integer, "invalid_integer"),
    "decimal": (values.parse_decimal, "invalid_number"),
    "date": (values.parse_date, "invalid_date"),
    "bool": (values.parse_bool, "invalid_boolean"),
    "email": (values.parse_email, "invalid_email"),
    "url": (values.parse_url, "invalid_url"),
    "siren": (values.parse_siren, "invalid_siren"),
    "siret": (values.parse_siret, "invalid_siret"),
    "naf": (values.parse_naf, "invalid_naf"),
    "postal_code": (values.parse_postal_code, "invalid_postal_code"),
}
_CITY_WITH_POSTAL_CODE = r"^(?P<name>.*\S)\s*\(\s*(?P<cp>\d{4,5})\s*\)$"


@dataclass(frozen=True)
class ColumnMapping:
    """Which column of the file feeds which canonical field, and which columns are unknown."""

    by_field: dict[str, str]
    unknown: list[str]

    @classmethod
    def from_header(cls, profile: Profile, header: list[str]) -> ColumnMapping:
        by_field: dict[str, str] = {}
        unknown: list[str] = []
        for column in header:
            name = profile.canonical(column)
            if name is None:
                unknown.append(column)
            else:
                # The first column wins when two columns mean the same field.
                by_field.setdefault(name, column)
        return cls(by_field, unknown)


@dataclass(frozen=True)
class ChunkValidation:
    valid: pd.DataFrame  # canonical columns + _line
    errors: pd.DataFrame  # ERROR_COLUMNS
    rows: int


class _Errors:
    def __init__(self, lines: np.ndarray) -> None:
        self.lines = lines
        self.parts: list[pd.DataFrame] = []
        self.bad = np.zeros(len(lines), dtype=bool)

    def add(self, mask: pd.Series | np.ndarray, column: str, raw: pd.Series | None, code: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.bad |= mask
        raw_values = raw.to_numpy(dtype=object)[mask] if raw is not None else None
        self.parts.append(
            pd.DataFrame({"line": self.lines[mask], "column": column, "value": raw_values, "code": code})
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=ERROR_COLUMNS)
        return pd.concat(self.parts, ignore_index=True)


def _present(series: pd.Series) -> np.ndarray:
    return series.notna().to_numpy()


def _text_field(field: Field, raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Cleaned text, and where it is too long or names a row without a letter or digit."""
    text = values.decode_html_entities(values.clean_text(raw))
    nowhere = np.zeros(len(text), dtype=bool)
    too_long = values.check_max_length(text, field.max_length).to_numpy() if field.max_length else nowhere
    nameless = values.check_no_letter_or_digit(text).to_numpy() if field.names_row else nowhere
    return text, too_long, nameless


def _parse_field(field: Field, raw: pd.Series, column: str, errors: _Errors,
                 phone_region: str) -> tuple[pd.Series, np.ndarray]:
    """The field's normalised values, and where the cell holds something once cleaned (valid or not)."""
    if field.kind in ("text", "city_with_postal_code"):
        found = values.repeated(raw)
        if found is not None:  # each distinct value cleaned once, then spread back
            codes, distinct = found
            text, too_long, nameless = _text_field(field, distinct)
            text = pd.Series(pd.api.extensions.take(text.to_numpy(dtype=object), codes, allow_fill=True,
                                                    fill_value=pd.NA), index=raw.index, dtype=object)
            too_long, nameless = too_long[codes] & (codes >= 0), nameless[codes] & (codes >= 0)
        else:
            text, too_long, nameless = _text_field(field, raw)
        errors.add(too_long, column, raw, "too_long")
        errors.add(nameless, column, raw, "no_letter_or_digit")
        return text, _present(text)
    # Parsers clean the raw text themselves: cleaning it here too would be a second pass.
    if field.kind == "phone":
        parsed = values.on_distinct(values.parse_phone, raw, default_region=phone_region)
        code = "invalid_phone"
    else:
        parser, code = _KIND_PARSERS[field.kind]
        parsed = values.on_distinct(parser, raw)
    errors.add(parsed.invalid, column, raw, code)
    present = _present(parsed.values) | parsed.invalid.to_numpy(dtype=bool)
    result = parsed.values
    if field.min_value is not None or field.max_value is not None:
        numeric = pd.to_numeric(result, errors="coerce")
        outside = pd.Series(False, index=result.index)
        if field.min_value is not None:
            outside |= numeric < field.min_value
        if field.max_value is not None:
            outside |= numeric > field.max_value
        outside = outside.fillna(False).to_numpy(dtype=bool)
        errors.add(outside, column, raw, "out_of_range")
        result = result.mask(outside)
    return result, present


def validate_chunk(
    frame: pd.DataFrame,
    lines: np.ndarray,
    profile: Profile,
    mapping: ColumnMapping,
    *,
    phone_region: str,
) -> ChunkValidation:
    errors = _Errors(np.asarray(lines, dtype=np.int64))
    out = pd.DataFrame(index=frame.index)
    present: dict[str, np.ndarray] = {}  # by column: a value is there once cleaned (valid or not)
    for field in profile.fields:
        column = mapping.by_field.get(field.name)
        if column is None:
            out[field.name] = pd.Series(pd.NA, index=frame.index, dtype=object)
            continue
        out[field.name], present[column] = _parse_field(field, frame[column], column, errors, phone_region)

    if profile.name == "cities":
        _split_city_with_postal_code(out, frame, mapping, errors)
    if profile.name == "businesses":
        _check_siret_matches_siren(out, frame, mapping, errors)

    # Each required field, then each group of fields of which one is required; the error names the group's
    # first column the file has.
    for group in [(field.name,) for field in profile.fields if field.required] + list(profile.required_any):
        missing = np.ones(len(out), dtype=bool)
        for name in group:
            missing &= ~_present(out[name])
        present_columns = [mapping.by_field[n] for n in group if n in mapping.by_field]
        column = present_columns[0] if present_columns else group[0]
        # A value that failed to parse already has its own error; required means "nothing there".
        if column in present:
            missing &= ~present[column]
        errors.add(missing, column, frame[column] if column in frame.columns else None, "required")

    valid = out.loc[~errors.bad]  # copy-on-write: adding _line needs no copy first
    valid["_line"] = errors.lines[~errors.bad]
    return ChunkValidation(valid=valid, errors=errors.frame(), rows=len(frame))


def _split_city_with_postal_code(out: pd.DataFrame, frame: pd.DataFrame, mapping: ColumnMapping,
                                 errors: _Errors) -> None:
    """`Villes` = `Nom (CP)`: fills nom and code_postal where the file has no separate columns."""
    column = mapping.by_field.get("villes")
    if column is None:
        return
    combined = out["villes"]
    parts = combined.str.extract(_CITY_WITH_POSTAL_CODE)
    # The name must hold a letter or digit: it becomes the city's slug.
    parts["name"] = parts["name"].mask(values.check_no_letter_or_digit(parts["name"]))
    malformed = combined.notna() & parts["name"].isna()
    errors.add(malformed.to_numpy(), column, frame[column], "invalid_city")
    postal = values.parse_postal_code(parts["cp"])
    out["nom"] = out["nom"].fillna(parts["name"])
    out["code_postal"] = out["code_postal"].fillna(postal.values)


def _check_siret_matches_siren(out: pd.DataFrame, frame: pd.DataFrame, mapping: ColumnMapping,
                               errors: _Errors) -> None:
    # Valid identifiers are text, missing ones NA: one Python pass, where pandas' str slicing and
    # comparison take a pass and a missing-value scan each.
    mismatch = np.fromiter(
        (siren.__class__ is str and siret.__class__ is str and siret[:9] != siren
         for siren, siret in zip(out["siren"].to_numpy(dtype=object), out["siret"].to_numpy(dtype=object),
                                 strict=True)),
        dtype=bool, count=len(out))
    column = mapping.by_field.get("siret", "siret")
    errors.add(mismatch, column, frame[column] if column in frame.columns else None, "siret_siren_mismatch")
