"""The preview of changes (`nightshift import FILE --dry-run --diff`): per row new, changed (column as the
file names it: old → new), unchanged or invalid, for the first N rows; the counts stay exact. Both backends."""

from pathlib import Path

import sqlalchemy as sa

from nightshift.db.schema import businesses
from nightshift.imports.service import ImportOptions, run_import

HEADER = "Nom;SIRET;Ville;Téléphone"
FIRST = ["Boulangerie Dupont;73282932000074;Paris;+33 1 42 60 00 00",
         "Garage Martin;55210055400013;Lyon;",
         "Garage Petit;44306184100047;Nantes;"]


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def stored(db) -> dict[str, tuple]:
    with db.connect() as conn:
        return {r.name: (r.city, r.phone) for r in conn.execute(sa.select(businesses))}


def test_a_dry_run_preview_lists_each_row_with_what_would_change(db, settings, tmp_path):
    run_import(db, write(tmp_path / "premier.csv", *FIRST), settings, ImportOptions(profile="businesses"))
    before = stored(db)
    second = write(tmp_path / "second.csv",
                   "Boulangerie Dupont;73282932000074;Paris;+33 1 42 60 00 00",
                   "Garage Martin;55210055400013;Villeurbanne;04 78 00 00 00",
                   "Boulangerie Roux;40483304800022;Lille;",
                   "Garage Faux;12345678901234;Nice;")
    outcome = run_import(db, second, settings, ImportOptions(profile="businesses", dry_run=True, preview_rows=20,
                                                             phone_region="FR"))
    assert (outcome.inserted, outcome.updated, outcome.unchanged, outcome.invalid) == (1, 1, 1, 1)
    assert [(e["line"], e["status"]) for e in outcome.preview] == [
        (2, "unchanged"), (3, "changed"), (4, "new"), (5, "invalid")]
    changed = outcome.preview[1]["changes"]
    assert {(c["column"], c["old"], c["new"]) for c in changed} == {
        ("Ville", "Lyon", "Villeurbanne"), ("Téléphone", None, "+33478000000")}
    [error] = outcome.preview[3]["errors"]
    assert (error["column"], error["code"]) == ("SIRET", "invalid_siret")
    assert stored(db) == before  # a dry run writes nothing


def test_the_preview_is_limited_to_the_first_rows_and_the_counts_stay_exact(db, settings, tmp_path):
    rows = [f"Commerce {n};;Ville {n};" for n in range(30)]
    outcome = run_import(db, write(tmp_path / "trente.csv", *rows), settings,
                         ImportOptions(profile="businesses", dry_run=True, preview_rows=5))
    assert outcome.inserted == 30
    assert [(e["line"], e["status"]) for e in outcome.preview] == [(n, "new") for n in range(2, 7)]
    assert stored(db) == {}


def test_without_a_preview_asked_none_is_built(db, settings, tmp_path):
    outcome = run_import(db, write(tmp_path / "premier.csv", *FIRST), settings,
                         ImportOptions(profile="businesses", dry_run=True))
    assert outcome.preview == [] and outcome.inserted == 3
