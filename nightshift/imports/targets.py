"""Where each profile's rows go: target tables, natural keys, content hashes, references.

`build_rows(profile, valid)` turns validated canonical rows into one frame per target (database column
names, `_line`, and the key: `_key` or the column `Target.key` names), in the order targets must be
merged (parents before children).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
class Target:
    name: str
    table: sa.Table
    conflict: tuple[str, ...]  # unique columns of the table: ON CONFLICT target
    references: tuple[Reference, ...] = ()
    # Staged columns used only to resolve references (not written to the table).
    lookup_columns: tuple[str, ...] = ()
    # Table column -> the profile fields it is made from. A file without any of them says nothing
    # about that column: an existing row keeps its value. Columns not listed come from every file.
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The staged column holding each row's key (duplicates, merge order): `_key`, or the table column that
    # is the key itself (staged once, not twice).
    key: str = "_key"

    def stated_columns(self, columns: list[str], fields: set[str]) -> list[str]:
        """Those of `columns` a file with these profile fields gives values for (empty cells included)."""
        return [c for c in columns if c not in self.sources or fields.intersection(self.sources[c])]


CATEGORY_REF = Reference("category_id", schema.categories, {"slug": "category_slug"})
SUBCATEGORY_REF = Reference(
    "subcategory_id", schema.subcategories, {"category_id": "@category_id", "slug": "subcategory_slug"}
)

# Parent categories a file refers to (created on the fly unless creation is disabled).
CATEGORY_PARENTS = Target("category_parents", schema.categories, ("slug",))
SUBCATEGORY_PARENTS = Target("subcategory_parents", schema.subcategories, ("category_id", "slug"),
                             references=(CATEGORY_REF,), lookup_columns=("category_slug",))

TARGETS: dict[str, Target] = {
    "businesses": Target("businesses", schema.businesses, ("natural_key",),
                         references=(CATEGORY_REF, SUBCATEGORY_REF),
                         lookup_columns=("category_slug", "subcategory_slug"),
                         sources={"name": ("nom",), "trade_name": ("nom_commercial",), "siren": ("siren", "siret"),
                                  "siret": ("siret",), "naf_code": ("naf_code",), "naf_label": ("naf_libelle",),
                                  "address": ("adresse",), "postal_code": ("code_postal",), "city": ("ville",),
                                  "phone": ("telephone",), "email": ("email",), "website": ("site_web",),
                                  "latitude": ("latitude",), "longitude": ("longitude",),
                                  "founded_on": ("date_creation",), "is_active": ("is_active",),
                                  "description": ("description",), "category_id": ("categorie",),
                                  # a sub-category belongs to its category: a new category clears it
                                  "subcategory_id": ("sous_categorie", "categorie")},
                         key="natural_key"),
    "categories": Target("categories", schema.categories, ("slug",),
                         sources={"description": ("description",), "meta_description": ("meta_description",),
                                  "sort_order": ("ordre",)}),
    "subcategories": Target("subcategories", schema.subcategories, ("category_id", "slug"),
                            references=(CATEGORY_REF,), lookup_columns=("category_slug",),
                            sources={"description": ("description",), "meta_description": ("meta_description",),
                                     "keywords": ("mots_cles",), "sort_order": ("ordre",)}),
    "cities": Target("cities", schema.cities, ("slug", "postal_code"),
                     sources={"department": ("departement",), "region": ("region",), "latitude": ("latitude",),
                              "longitude": ("longitude",), "population": ("population",)}),
    "clients": Target("clients", schema.clients, ("phone",),
                      sources={"first_name": ("prenom",), "last_name": ("nom",), "email": ("email",),
                               "region": ("region",)},
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


def _frame(columns: dict[str, pd.Series]) -> pd.DataFrame:
    """Target rows from the validated columns, without copying them: copy-on-write keeps the validated
    frame as it is whatever is done to the rows (a copy of a million-row frame's columns: 0.2 s)."""
    return pd.DataFrame(columns, copy=False)


def _with_meta(rows: pd.DataFrame, valid: pd.DataFrame, key: pd.Series | None, hashed: list[str]) -> pd.DataFrame:
    """The rows with their content hash, line and `_key` (None: the target's key is one of the rows'
    columns, `Target.key`)."""
    rows = rows.copy(deep=False)  # the caller's frame keeps its columns
    rows["content_hash"] = content_hash(rows[hashed])
    rows["_line"] = valid["_line"].to_numpy()
    if key is not None:
        rows["_key"] = key.to_numpy()
    return rows


_NATURAL_KEY_MAX_LENGTH = schema.businesses.c.natural_key.type.length


def _siren_or_siret_prefix(siren: pd.Series, siret: pd.Series) -> pd.Series:
    """The SIREN, else the SIRET's first 9 digits (validated identifiers are text, missing ones NA)."""
    return pd.Series([a if a.__class__ is str else b[:9] if b.__class__ is str else pd.NA
                      for a, b in zip(siren.to_numpy(dtype=object), siret.to_numpy(dtype=object), strict=True)],
                     index=siren.index, dtype=object)


def _businesses(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    natural_key = ("siret:" + valid["siret"].astype(object)).where(
        valid["siret"].notna(), "siren:" + valid["siren"].astype(object)
    )
    by_name = natural_key.isna()
    if by_name.any():
        named = valid.loc[by_name]
        place = named["code_postal"].fillna(values.slugify(named["ville"])).fillna("")
        natural_key[by_name] = values.bounded("name:" + values.slugify(named["nom"]).astype(object) + "|"
                                              + place.astype(object), _NATURAL_KEY_MAX_LENGTH)
    rows = _frame({
        "natural_key": natural_key,
        "name": valid["nom"],
        "trade_name": valid["nom_commercial"],
        "siren": _siren_or_siret_prefix(valid["siren"], valid["siret"]),
        "siret": valid["siret"],
        "naf_code": valid["naf_code"],
        "naf_label": valid["naf_libelle"],
        "address": valid["adresse"],
        "postal_code": valid["code_postal"],
        "city": valid["ville"],
        "phone": valid["telephone"],
        "email": valid["email"],
        "website": valid["site_web"],
        "latitude": valid["latitude"],
        "longitude": valid["longitude"],
        "founded_on": valid["date_creation"],
        "is_active": valid["is_active"],
        "description": valid["description"],
        "category_slug": values.slugify(valid["categorie"]),
        "subcategory_slug": values.slugify(valid["sous_categorie"]),
    })
    out = {"businesses": _with_meta(rows, valid, None, [c for c in rows.columns])}
    out.update(_parents(valid["categorie"], valid["sous_categorie"], valid))
    return out


def _parents(category: pd.Series, subcategory: pd.Series | None, valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Distinct parent categories (and sub-categories) named by the rows, to create when missing."""
    out: dict[str, pd.DataFrame] = {}
    cats = _frame({"name": category, "slug": values.slugify(category), "_line": valid["_line"]})
    cats = cats.dropna(subset=["slug"]).drop_duplicates("slug")
    out["category_parents"] = cats.assign(_key=cats["slug"])
    if subcategory is not None:
        subs = _frame({"name": subcategory, "slug": values.slugify(subcategory),
                             "category_slug": values.slugify(category), "_line": valid["_line"]})
        subs = subs.dropna(subset=["slug", "category_slug"]).drop_duplicates(["category_slug", "slug"])
        out["subcategory_parents"] = subs.assign(_key=subs["category_slug"] + "/" + subs["slug"])
    return out


def _categories(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    has_parent = valid["parent"].notna()
    top, children = valid.loc[~has_parent], valid.loc[has_parent]
    slug = values.slugify(top["nom"])
    cats = _frame({"name": top["nom"], "slug": slug, "description": top["description"],
                         "meta_description": top["meta_description"], "sort_order": top["ordre"]})
    out = {"categories": _with_meta(cats, top, "category:" + slug.astype(object),
                                    ["name", "slug", "description", "meta_description", "sort_order"])}
    out.update(_subcategory_rows(children, parent_column="parent", keywords=None))
    out["category_parents"] = _parents(children["parent"], None, children)["category_parents"]
    return out


def _subcategory_rows(valid: pd.DataFrame, parent_column: str, keywords: str | None) -> dict[str, pd.DataFrame]:
    slug = values.slugify(valid["nom"])
    parent_slug = values.slugify(valid[parent_column])
    subs = _frame({
        "name": valid["nom"], "slug": slug, "description": valid["description"],
        "meta_description": valid["meta_description"],
        "keywords": valid[keywords] if keywords else pd.Series(pd.NA, index=valid.index, dtype=object),
        "sort_order": valid["ordre"], "category_slug": parent_slug,
    })
    key = "subcategory:" + parent_slug.astype(object) + "/" + slug.astype(object)
    return {"subcategories": _with_meta(subs, valid, key, list(subs.columns))}


def _subcategories(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = _subcategory_rows(valid, parent_column="categorie", keywords="mots_cles")
    out["category_parents"] = _parents(valid["categorie"], None, valid)["category_parents"]
    return out


def _cities(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    slug = values.slugify(valid["nom"])
    rows = _frame({
        "name": valid["nom"], "slug": slug, "postal_code": valid["code_postal"],
        "department": valid["departement"], "region": valid["region"],
        "latitude": valid["latitude"], "longitude": valid["longitude"], "population": valid["population"],
    })
    key = slug.astype(object) + "|" + valid["code_postal"].astype(object)
    return {"cities": _with_meta(rows, valid, key, list(rows.columns))}


def _clients(valid: pd.DataFrame) -> dict[str, pd.DataFrame]:
    rows = _frame({"phone": valid["telephone"], "first_name": valid["prenom"], "last_name": valid["nom"],
                         "email": valid["email"], "region": valid["region"]})
    return {"clients": _with_meta(rows, valid, None, list(rows.columns))}


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
