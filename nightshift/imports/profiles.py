"""Import profiles: what can be imported, declared in one place.

A profile maps canonical fields to accepted header aliases, a value kind, whether the field is
required, and how the natural key is built. Adding a profile means adding an entry to PROFILES; the
pipeline (reading, validation, merge) is generic. Headers match case-, accent-, space- and
`-`/`_`-insensitively (values.normalize_header).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from nightshift.imports.values import normalize_header

# Value kinds understood by the validator (nightshift/imports/validate.py).
# Integer columns are 32-bit INTEGER on PostgreSQL: a larger number is an out_of_range error of its row.
_INTEGER_MAX = 2**31 - 1

KINDS = (
    "text", "integer", "decimal", "date", "bool", "email", "url", "phone",
    "siren", "siret", "naf", "postal_code", "city_with_postal_code",
)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "text"
    aliases: tuple[str, ...] = ()
    required: bool = False
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    # The value names a row or a parent (its slug is in a key): it must hold a letter or a digit.
    names_row: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: unknown kind {self.kind!r}")

    @property
    def spellings(self) -> tuple[str, ...]:
        """The headers a file may give the column: its name first (the reference export writes it so),
        then its aliases."""
        return (self.name, *self.aliases)

    @property
    def header_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalize_header(h) for h in self.spellings))


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    fields: tuple[Field, ...]
    # Alternatives of required fields: at least one field of each group must be present as a column.
    required_any: tuple[tuple[str, ...], ...] = ()
    description: str = ""
    # Headers one import maps to fields (header as the file writes it, field): they match no spelling, or
    # the user means them for another field than the spelling does.
    mapped_headers: tuple[tuple[str, str], ...] = ()
    _by_header: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for f in self.fields:
            for key in f.header_keys:
                owner = self._by_header.setdefault(key, f.name)
                if owner != f.name:
                    raise ValueError(f"profile {self.name}: header {key!r} claimed by {owner} and {f.name}")
        for header, name in self.mapped_headers:
            self._by_header[normalize_header(header)] = name

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def get(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def with_headers(self, column_map: Mapping[str, str]) -> Profile:
        """The profile reading each header of `column_map` as its field, for the fields it has."""
        mapped = tuple((header, name) for header, name in column_map.items() if name in self.field_names)
        return replace(self, mapped_headers=mapped, _by_header={}) if mapped else self

    def canonical(self, header: str) -> str | None:
        """The canonical field a header cell means, or None for an unknown column."""
        return self._by_header.get(normalize_header(header))

    def score_header(self, cells: Iterable[str]) -> float:
        """How well a candidate header row matches: distinct known fields, required ones weigh more."""
        matched = {self.canonical(str(c)) for c in cells if c is not None and str(c).strip()}
        matched.discard(None)
        if not matched:
            return 0.0
        required = {f.name for f in self.fields if f.required}
        groups = [set(g) for g in self.required_any]
        bonus = sum(1 for g in groups if g & matched) + len(required & matched)
        return len(matched) + 2 * bonus

    def missing_required(self, columns: Iterable[str]) -> list[tuple[Field, ...]]:
        """The required fields the columns lack: each a group of which the file needs one field (a
        required field alone, or a required_any group)."""
        present = {self.canonical(c) for c in columns}
        missing = [(f,) for f in self.fields if f.required and f.name not in present]
        missing += [tuple(self.get(name) for name in g) for g in self.required_any if not set(g) & present]
        return missing


BUSINESSES = Profile(
    name="businesses",
    version="1",
    description="Entreprises (FOX-Reviews export format imports unchanged)",
    fields=(
        Field("nom", aliases=("name", "raison_sociale", "denomination"), required=True, max_length=255,
              names_row=True),
        Field("nom_commercial", aliases=("trade_name", "enseigne"), max_length=255),
        Field("categorie", aliases=("category", "categorie_nom"), max_length=100, names_row=True),
        Field("sous_categorie", aliases=("subcategory", "sub_category", "souscategorie_nom"), max_length=100,
              names_row=True),
        Field("siren", "siren"),
        Field("siret", "siret", aliases=("company_id",)),
        Field("naf_code", "naf", aliases=("code_naf", "naf", "ape", "code_ape")),
        Field("naf_libelle", aliases=("naf_label", "libelle_naf"), max_length=255),
        Field("adresse", aliases=("address", "adresse_complete")),
        Field("code_postal", "postal_code", aliases=("postal_code", "cp", "zip")),
        Field("ville", aliases=("ville_nom", "city", "commune"), max_length=255),
        Field("telephone", "phone", aliases=("phone", "tel", "téléphone")),
        Field("email", "email", aliases=("email_contact", "courriel", "mail")),
        Field("site_web", "url", aliases=("website", "site", "url")),
        Field("latitude", "decimal", aliases=("lat",), min_value=-90, max_value=90),
        Field("longitude", "decimal", aliases=("lng", "lon", "long"), min_value=-180, max_value=180),
        Field("date_creation", "date", aliases=("founded_on", "date_de_creation")),
        Field("is_active", "bool", aliases=("actif", "active")),
        Field("description"),
    ),
)

CATEGORIES = Profile(
    name="categories",
    version="1",
    description="Catégories; the WordPress term export (rows with a parent become sub-categories)",
    fields=(
        Field("nom", aliases=("name", "term_name", "categorie"), required=True, max_length=100, names_row=True),
        Field("description"),
        Field("meta_description", max_length=500),
        Field("ordre", "integer", aliases=("order", "sort_order", "position"), min_value=0, max_value=_INTEGER_MAX),
        Field("parent", aliases=("parent_name", "categorie_parente"), max_length=100, names_row=True),
    ),
)

SUBCATEGORIES = Profile(
    name="subcategories",
    version="1",
    description="Sous-catégories, attached to a category by name or slug",
    fields=(
        Field("categorie", aliases=("category", "categorie_parente", "parent"), required=True, max_length=100,
              names_row=True),
        Field("nom", aliases=("name", "sous_categorie", "subcategory"), required=True, max_length=100,
              names_row=True),
        Field("description"),
        Field("meta_description", max_length=500),
        Field("mots_cles", aliases=("keywords", "mots_clefs"), max_length=500),
        Field("ordre", "integer", aliases=("order", "sort_order", "position"), min_value=0, max_value=_INTEGER_MAX),
    ),
)

CITIES = Profile(
    name="cities",
    version="1",
    description="Villes; also the one-column form `Villes` = `Nom (CP)`",
    fields=(
        Field("nom", aliases=("ville", "commune", "nom_commune", "name", "city"), max_length=255, names_row=True),
        Field("code_postal", "postal_code", aliases=("cp", "postal_code", "zip", "code_postal_commune")),
        Field("villes", "city_with_postal_code", aliases=("ville_cp", "nom_cp"), max_length=300),
        Field("departement", aliases=("department", "dept", "nom_departement"), max_length=100),
        Field("region", aliases=("nom_region",), max_length=100),
        Field("latitude", "decimal", aliases=("lat",), min_value=-90, max_value=90),
        Field("longitude", "decimal", aliases=("lng", "lon", "long"), min_value=-180, max_value=180),
        Field("population", "integer", aliases=("habitants", "nb_habitants"), min_value=0, max_value=_INTEGER_MAX),
    ),
    required_any=(("nom", "villes"), ("code_postal", "villes")),
)

CLIENTS = Profile(
    name="clients",
    version="1",
    description="Clients, keyed by phone number (E.164)",
    fields=(
        Field("telephone", "phone", aliases=("phone", "tel", "numero", "whatsapp"), required=True),
        Field("prenom", aliases=("first_name", "firstname"), max_length=150),
        Field("nom", aliases=("last_name", "lastname", "name"), max_length=150),
        Field("email", "email", aliases=("courriel", "mail")),
        Field("region", max_length=100),
        Field("ville", aliases=("city", "commune"), max_length=255),
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (BUSINESSES, CATEGORIES, SUBCATEGORIES, CITIES, CLIENTS)}

# Upload sub-folder names that choose a profile (uploads/<folder>/… or uploads/<account>/<folder>/…).
FOLDER_ALIASES: dict[str, str] = {
    "businesses": "businesses", "entreprises": "businesses",
    "categories": "categories",
    "subcategories": "subcategories", "souscategories": "subcategories",
    "cities": "cities", "villes": "cities",
    "clients": "clients",
}


def profile_for_folder(folder: str) -> Profile | None:
    name = FOLDER_ALIASES.get(normalize_header(folder))
    return PROFILES[name] if name else None


def _recognised(profile: Profile, header: list[str]) -> int:
    return len({profile.canonical(str(cell)) for cell in header} - {None})


def closest_profile(header: list[str], profiles: Iterable[Profile] = PROFILES.values(),
                    ) -> tuple[Profile, list[tuple[Field, ...]]] | None:
    """The profile missing required columns that recognises most columns of the header, and what it
    misses: what the file most likely is when no profile is detected."""
    incomplete = [p for p in profiles if p.missing_required(header) and _recognised(p, header)]
    if not incomplete:
        return None
    profile = max(incomplete, key=lambda p: _recognised(p, header))
    return profile, profile.missing_required(header)


def detect_profile(header: list[str], profiles: Iterable[Profile] = PROFILES.values()) -> Profile | None:
    """The complete profile (required columns present) whose header matches best; None when there is
    none, or when a profile missing required columns recognises more of the columns: `prenom;nom;email`
    is a clients file without its phone column, not a businesses file. `profiles`: PROFILES, or them with
    an import's column mapping."""
    profiles = list(profiles)
    complete = [p for p in profiles if not p.missing_required(header) and p.score_header(header) > 0]
    if not complete:
        return None
    best = max(complete, key=lambda p: p.score_header(header))
    closest = closest_profile(header, profiles)
    if closest is not None and _recognised(closest[0], header) > _recognised(best, header):
        return None
    return best
