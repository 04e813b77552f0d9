"""Where each profile's rows go: target tables, natural keys, content hashes, references.

Each target declares its staged columns (`Target.columns`: the profile fields each is made from, and
how); `build_rows(profile, valid)` makes them from validated canonical rows, one frame per target
(database column names, `_line`, and the key: `_key` or the column `Target.key` names), and the merge
reads from the same declaration which columns a file gives values for (`Target.stated_columns`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import pandas as pd
import sqlalchemy as sa

from nightshift.db import schema
from nightshift.imports import values
from nightshift.imports.profiles import Profile


@dataclass(frozen=True)
class Reference:
    """A foreign key resolved in the database at merge time: `column` = id of the `table` row whose
    `match` columns equal the staged values (a staged value prefixed with '@' is an earlier reference)."""

    column: str
    table: sa.Table
    match: dict[str, str]


@dataclass(frozen=True)
class Column:
    """A staged column: `make` applied to the validated columns of the profile `fields`, in this order;
    without `make`, the first field's column as it is (any other field is one validation fills it from)."""

    fields: tuple[str, ...]
    make: Callable[..., pd.Series] | None = None

    def build(self, valid: pd.DataFrame) -> pd.Series:
        columns = [valid[name] for name in self.fields]
        return self.make(*columns) if self.make is not None else columns[0]


@dataclass(frozen=True)
class Target:
    name: str
    table: sa.Table
    conflict: tuple[str, ...]  # unique columns of the table: ON CONFLICT target
    references: tuple[Reference, ...] = ()
    # The staged columns, in staging (and content hash) order: table columns and the lookup columns of
    # the references.
    columns: dict[str, Column] = field(default_factory=dict)
    # The staged column holding each row's key (duplicates, merge order): `_key`, or the table column that
    # is the key itself (staged once, not twice).
    key: str = "_key"
    # The `_key` of staged rows, from their columns (None: `key` is one of them).
    make_key: Callable[[pd.DataFrame], pd.Series] | None = None

    @property
    def lookup_columns(self) -> tuple[str, ...]:
        """Staged columns used only to resolve references (not written to the table)."""
        return tuple(staged for reference in self.references for staged in reference.match.values()
                     if not staged.startswith("@"))

    @property
    def sources(self) -> dict[str, tuple[str, ...]]:
        """Column -> the profile fields it is made from; a reference's are those of the columns it matches."""
        sources = {name: column.fields for name, column in self.columns.items()}
        for reference in self.references:
            matched = (sources[staged.removeprefix("@")] for staged in reference.match.values())
            sources[reference.column] = tuple(dict.fromkeys(chain.from_iterable(matched)))
        return sources

    def stated_columns(self, columns: list[str], fields: set[str]) -> list[str]:
        """Those of `columns` a file with these profile fields gives values for (empty cells included): a
        file without any of a column's fields says nothing about it, so an existing row keeps its value."""
        sources = self.sources
        return [c for c in columns if c not in sources or fields.intersection(sources[c])]


_NATURAL_KEY_MAX_LENGTH = schema.businesses.c.natural_key.type.length


def _natural_key(siret: pd.Series, siren: pd.Series, name: pd.Series, postal_code: pd.Series,
                 city: pd.Series) -> pd.Series:
    """`siret:…`, else `siren:…`, else `name:<slug of the name>|<postal code, else slug of the city>`."""
    key = ("siret:" + siret.astype(object)).where(siret.notna(), "siren:" + siren.astype(object))
    by_name = key.isna()
    if by_name.any():
        place = postal_code.loc[by_name].fillna(values.slugify(city.loc[by_name])).fillna("")
        key[by_name] = values.bounded("name:" + values.slugify(name.loc[by_name]).astype(object) + "|"
                                      + place.astype(object), _NATURAL_KEY_MAX_LENGTH)
    return key


def _siren_or_siret_prefix(siren: pd.Series, siret: pd.Series) -> pd.Series:
    """The SIREN, else the SIRET's first 9 digits (validated identifiers are text, missing ones NA)."""
    return pd.Series([a if a.__class__ is str else b[:9] if b.__class__ is str else pd.NA
                      for a, b in zip(siren.to_numpy(dtype=object), siret.to_numpy(dtype=object), strict=True)],
                     index=siren.index, dtype=object)


def _as_is(name: str) -> Column:
    return Column((name,))


def _slug_of(name: str) -> Column:
    return Column((name,), values.slugify)


CATEGORY_REF = Reference("category_id", schema.categories, {"slug": "category_slug"})
# A sub-category belongs to its category: a file that names categories states the sub-categories too (a new
# category without one clears it).
SUBCATEGORY_REF = Reference(
    "subcategory_id", schema.subcategories, {"category_id": "@category_id", "slug": "subcategory_slug"}
)

# Parent categories a file refers to (created on the fly unless creation is disabled).
CATEGORY_PARENTS = Target("category_parents", schema.categories, ("slug",),
                          columns={"name": _as_is("categorie"), "slug": _slug_of("categorie")},
                          make_key=lambda rows: rows["slug"])
SUBCATEGORY_PARENTS = Target("subcategory_parents", schema.subcategories, ("category_id", "slug"),
                             references=(CATEGORY_REF,),
                             columns={"name": _as_is("sous_categorie"), "slug": _slug_of("sous_categorie"),
                                      "category_slug": _slug_of("categorie")},
                             make_key=lambda rows: rows["category_slug"] + "/" + rows["slug"])

TARGETS: dict[str, Target] = {
    "businesses": Target(
        "businesses", schema.businesses, ("natural_key",), references=(CATEGORY_REF, SUBCATEGORY_REF),
        columns={
            "natural_key": Column(("siret", "siren", "nom", "code_postal", "ville"), _natural_key),
            "name": _as_is("nom"), "trade_name": _as_is("nom_commercial"),
            "siren": Column(("siren", "siret"), _siren_or_siret_prefix), "siret": _as_is("siret"),
            "naf_code": _as_is("naf_code"), "naf_label": _as_is("naf_libelle"), "address": _as_is("adresse"),
            "postal_code": _as_is("code_postal"), "city": _as_is("ville"), "phone": _as_is("telephone"),
            "email": _as_is("email"), "website": _as_is("site_web"), "latitude": _as_is("latitude"),
            "longitude": _as_is("longitude"), "founded_on": _as_is("date_creation"),
            "is_active": _as_is("is_active"), "description": _as_is("description"),
            "category_slug": _slug_of("categorie"), "subcategory_slug": _slug_of("sous_categorie"),
        },
        key="natural_key"),
    "categories": Target(
        "categories", schema.categories, ("slug",),
        columns={"name": _as_is("nom"), "slug": _slug_of("nom"), "description": _as_is("description"),
                 "meta_description": _as_is("meta_description"), "sort_order": _as_is("ordre")},
        make_key=lambda rows: "category:" + rows["slug"].astype(object)),
    "subcategories": Target(
        "subcategories", schema.subcategories, ("category_id", "slug"), references=(CATEGORY_REF,),
        columns={"name": _as_is("nom"), "slug": _slug_of("nom"), "description": _as_is("description"),
                 "meta_description": _as_is("meta_description"), "keywords": _as_is("mots_cles"),
                 "sort_order": _as_is("ordre"), "category_slug": _slug_of("categorie")},
        make_key=lambda rows: ("subcategory:" + rows["category_slug"].astype(object) + "/"
                               + rows["slug"].astype(object))),
    "cities": Target(
        "cities", schema.cities, ("slug", "postal_code"),
        # Validation fills nom from a `villes` column (`Nom (CP)`): a file with either names the city.
        columns={"name": Column(("nom", "villes")), "slug": _slug_of("nom"), "postal_code": _as_is("code_postal"),
                 "department": _as_is("departement"), "region": _as_is("region"), "latitude": _as_is("latitude"),
                 "longitude": _as_is("longitude"), "population": _as_is("population")},
        make_key=lambda rows: rows["slug"].astype(object) + "|" + rows["postal_code"].astype(object)),
    "clients": Target(
        "clients", schema.clients, ("phone",),
        columns={"phone": _as_is("telephone"), "first_name": _as_is("prenom"), "last_name": _as_is("nom"),
                 "email": _as_is("email"), "region": _as_is("region"), "city": _as_is("ville")},
        key="phone"),
}


def _texts(items: np.ndarray) -> np.ndarray:
    """The items as text: numbers, dates and flags by str()."""
    if pd.api.types.infer_dtype(items, skipna=False) != "string":
        items = np.array([v if v.__class__ is str else str(v) for v in items], dtype=object)
    return items


def _as_text(column: pd.Series) -> np.ndarray | pd.Categorical:
    """The column's values as text, missing ones as "": a categorical when values repeat or the file does
    not fill the column, which hash_pandas_object hashes by its distinct values."""
    if not values.filled(column):
        return pd.Categorical.from_codes(np.zeros(len(column), dtype=np.int8), [""])
    found = values.repeated(column)
    if found is not None:  # codes mark the missing cells: no scan for them
        codes, distinct = found
        # Missing cells (code -1) take the "" appended last; factorizing merges it with a value "" if any.
        remap, texts = pd.factorize(np.append(_texts(distinct.to_numpy(dtype=object)), ""))
        return pd.Categorical.from_codes(remap[codes], texts)
    missing = column.isna().to_numpy()
    return _texts(np.where(missing, "", column.to_numpy(dtype=object)))  # NaT, NaN, None, NA alike


def content_hash(frame: pd.DataFrame) -> pd.Series:
    """Stable per-row hash of the imported content (64-bit, hex): changes iff a written value changes.
    `hash_pandas_object` of the rows as text, missing values as "", the values every import has stored."""
    as_text = pd.DataFrame({name: _as_text(frame[name]) for name in frame.columns}, index=frame.index, copy=False)
    hashed = pd.util.hash_pandas_object(as_text, index=False, categorize=False).to_numpy()
    hex_text = hashed.astype(">u8").tobytes().hex()  # big-endian: each hash's digits in reading order
    hex_texts = np.frombuffer(hex_text.encode("ascii"), dtype="S16").astype(str).astype(object)
    return pd.Series(hex_texts, index=frame.index)


def _columns(target: Target, valid: pd.DataFrame) -> dict[str, pd.Series]:
    return {name: column.build(valid) for name, column in target.columns.items()}


def _rows(target: Target, valid: pd.DataFrame) -> pd.DataFrame:
    """The rows to stage: the target's columns, their content hash, the line and `_key` (unless the key
    is one of the columns). Copy-on-write keeps the validated frame as it is whatever is done to the
    rows, so its columns are not copied."""
    rows = pd.DataFrame(_columns(target, valid), copy=False)
    rows["content_hash"] = content_hash(rows)
    rows["_line"] = valid["_line"].to_numpy()
    if target.make_key is not None:
        rows["_key"] = target.make_key(rows).to_numpy()
    return rows


def _parent_rows(target: Target, valid: pd.DataFrame) -> pd.DataFrame:
    """The distinct parents the rows name, to create when missing (rows without a slug for one are left out)."""
    rows = pd.DataFrame({**_columns(target, valid), "_line": valid["_line"]}, copy=False).dropna()
    rows = rows.assign(_key=target.make_key(rows))
    return rows.loc[~rows["_key"].duplicated()]


def _businesses(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"businesses": _rows(TARGETS["businesses"], valid),
            "category_parents": _parent_rows(CATEGORY_PARENTS, valid),
            "subcategory_parents": _parent_rows(SUBCATEGORY_PARENTS, valid)}


def _categories(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows with a parent are sub-categories of it: read with the subcategories profile's field names."""
    has_parent = valid["parent"].notna()
    children = valid.loc[has_parent].rename(columns={"parent": "categorie"})
    children["mots_cles"] = pd.Series(pd.NA, index=children.index, dtype=object)  # a categories file has none
    return {"categories": _rows(TARGETS["categories"], valid.loc[~has_parent]),
            "subcategories": _rows(TARGETS["subcategories"], children),
            "category_parents": _parent_rows(CATEGORY_PARENTS, children)}


def _subcategories(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"subcategories": _rows(TARGETS["subcategories"], valid),
            "category_parents": _parent_rows(CATEGORY_PARENTS, valid)}


def _cities(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"cities": _rows(TARGETS["cities"], valid)}


def _clients(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"clients": _rows(TARGETS["clients"], valid)}


_BUILDERS = {
    "businesses": _businesses,
    "categories": _categories,
    "subcategories": _subcategories,
    "cities": _cities,
    "clients": _clients,
}

# Merge order: parents before the rows that refer to them.
MERGE_ORDER = ("categories", "category_parents", "subcategory_parents", "subcategories",
               "businesses", "cities", "clients")


def build_rows(profile: Profile, valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return _BUILDERS[profile.name](valid)


def target(name: str) -> Target:
    if name == "category_parents":
        return CATEGORY_PARENTS
    if name == "subcategory_parents":
        return SUBCATEGORY_PARENTS
    return TARGETS[name]
