"""Exports and templates: a profile's rows written as a file the importer reads back as it is.

The columns are the profile's own (each field's name, the spelling its files use), read from the
profile's target table (targets.TARGETS): export → edit → import changes exactly the edited rows. A
reference (a business's category) is written as the name of the row it points to. Values are written in
the form the importer reads: in CSV (`;`, utf-8-sig), dates dd/mm/yyyy, decimal commas, booleans
oui/non, phones E.164; in XLSX, numbers, dates and booleans as typed cells. A template is the header and
one example row that imports cleanly.

Rows hold personal data (names, phones, emails): they go to the file or stream the caller gives, nowhere
else (no log line holds a value).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.engine import read_transaction
from nightshift.db.schema import imports
from nightshift.imports.profiles import Field, Profile
from nightshift.imports.targets import TARGETS
from nightshift.imports.writing import TableWriter, exact_in_xlsx

EXPORT_BATCH_ROWS = 5_000
# Staged columns made from their fields that hold the field's value itself: the SIREN column is the SIREN,
# or the SIRET's first 9 digits when a file gave only the SIRET (the same number a siren column gives).
_MADE_BUT_STORED_AS_IS = ("siren",)
_BOOLEAN_TEXTS = {True: "oui", False: "non"}


@dataclass(frozen=True)
class ExportColumn:
    field: Field
    value: sa.ColumnElement


def export_columns(profile: Profile) -> tuple[list[ExportColumn], sa.FromClause]:
    """The profile's fields that a column of its target table holds, in the profile's order, and the table
    joined with what its references point to (a reference's field: the name of the referenced row)."""
    target = TARGETS[profile.name]
    table = target.table
    by_field: dict[str, sa.ColumnElement] = {}
    for name, column in target.columns.items():
        if name in table.c and (column.make is None or name in _MADE_BUT_STORED_AS_IS):
            by_field.setdefault(column.fields[0], table.c[name])
    source: sa.FromClause = table
    for reference in target.references:
        [field_name] = next(target.columns[staged].fields for staged in reference.match.values()
                            if not staged.startswith("@"))
        referenced = reference.table.alias(f"{reference.column}_row")
        source = source.outerjoin(referenced, table.c[reference.column] == referenced.c.id)
        by_field[field_name] = referenced.c.name
    return [ExportColumn(f, by_field[f.name]) for f in profile.fields if f.name in by_field], source


def _rows_select(profile: Profile, account_id: int | None) -> tuple[list[ExportColumn], sa.Select]:
    columns, source = export_columns(profile)
    table = TARGETS[profile.name].table
    select = sa.select(*(c.value for c in columns)).select_from(source).order_by(table.c.id)
    if account_id is not None:
        # The account's rows: its own, and those an import of the account wrote last.
        written = table.c.import_id.in_(sa.select(imports.c.id).where(imports.c.account_id == account_id))
        select = select.where(sa.or_(table.c.account_id == account_id, written) if "account_id" in table.c
                              else written)
    return columns, select


def cell(value: object, file_format: str) -> object:
    """A database value as the importer reads it back from a cell of the format."""
    if value is None:
        return None
    if file_format == "xlsx":
        return value if value.__class__ is not float or exact_in_xlsx(value) else repr(value)
    if isinstance(value, bool):
        return _BOOLEAN_TEXTS[value]
    if isinstance(value, float):
        return repr(value).replace(".", ",")  # one comma: always the decimal separator (values.parse_decimal)
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def _batches(engine: Engine, select: sa.Select) -> Iterator[Sequence[sa.Row]]:
    with read_transaction(engine) as conn:
        result = conn.execution_options(stream_results=True, yield_per=EXPORT_BATCH_ROWS).execute(select)
        yield from result.partitions()


def export_rows(engine: Engine, profile: Profile, target: Path | TextIO, file_format: str,
                account_id: int | None = None) -> int:
    """Write the rows of the profile's target table (the account's only, given one) to `target`: a path,
    or for CSV a text stream. Returns how many rows were written."""
    columns, select = _rows_select(profile, account_id)
    writer = TableWriter(target, file_format, [c.field.name for c in columns])
    try:
        for batch in _batches(engine, select):
            writer.write([cell(value, file_format) for value in row] for row in batch)
    finally:
        writer.close()
    return writer.rows


# One valid row per profile: every field, typed as the database holds it (an empty parent: a top-level category).
EXAMPLES: dict[str, dict[str, object]] = {
    "businesses": {
        "nom": "Boulangerie Dupont", "nom_commercial": "Chez Dupont", "categorie": "Restauration",
        "sous_categorie": "Boulangerie", "siren": "732829320", "siret": "73282932000074", "naf_code": "10.71C",
        "naf_libelle": "Boulangerie et boulangerie-pâtisserie", "adresse": "12 rue de la Paix",
        "code_postal": "75002", "ville": "Paris", "telephone": "+33142600000", "email": "contact@dupont.fr",
        "site_web": "https://www.dupont.fr", "latitude": 48.8686, "longitude": 2.3314,
        "date_creation": date(2012, 3, 15), "is_active": True, "description": "Pains et viennoiseries",
    },
    "categories": {
        "nom": "Restauration", "description": "Restaurants, maquis et cafés",
        "meta_description": "Trouvez un restaurant près de chez vous", "ordre": 1, "parent": None,
    },
    "subcategories": {
        "categorie": "Restauration", "nom": "Boulangerie", "description": "Pains et viennoiseries",
        "meta_description": "Les boulangeries près de chez vous", "mots_cles": "pain, croissant", "ordre": 1,
    },
    "cities": {
        "nom": "Paris", "code_postal": "75002", "villes": "Paris (75002)", "departement": "Paris",
        "region": "Île-de-France", "latitude": 48.8686, "longitude": 2.3314, "population": 20260,
    },
    "clients": {
        "telephone": "+22366554433", "prenom": "Awa", "nom": "Traoré", "email": "awa.traore@exemple.ml",
        "region": "Bamako", "ville": "Bamako",
    },
}


def write_template(profile: Profile, target: Path | TextIO, file_format: str) -> None:
    """Every column of the profile and one example row."""
    example = EXAMPLES[profile.name]
    writer = TableWriter(target, file_format, [f.name for f in profile.fields])
    try:
        writer.write([[cell(example[f.name], file_format) for f in profile.fields]])
    finally:
        writer.close()
