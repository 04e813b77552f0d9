"""Awkward files users really upload: each imports correctly or fails cleanly, never half-written."""

import csv
from dataclasses import replace

import sqlalchemy as sa

from nightshift.db.schema import cities
from nightshift.imports.service import ImportOptions, run_import
from tests.imports.bad_files import truncated_xlsx


def city_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one()


def test_bom_and_cr_only_line_endings(db, settings, tmp_path):
    path = tmp_path / "villes.csv"
    path.write_bytes("\ufeffnom;code_postal\rÉvian;74500\rNulle;X\r".encode("utf-8"))
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"))
    assert (outcome.encoding, outcome.inserted) == ("utf-8-sig", 1)
    assert [(e["line"], e["code"]) for e in outcome.errors] == [(3, "invalid_postal_code")]


def test_quoted_newlines_keep_physical_line_numbers(db, settings, tmp_path):
    path = tmp_path / "villes.csv"
    path.write_text('nom,code_postal,region\r\n"Saint-Denis",93200,"Île-de-\r\nFrance, nord"\r\n'
                    '"Lyon",ABC,Rhône\r\n', encoding="utf-8")
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"))
    assert outcome.inserted == 1
    assert [(e["line"], e["column"], e["code"]) for e in outcome.errors] == [(4, "code_postal", "invalid_postal_code")]


def test_truncated_xlsx_fails_cleanly(db, settings, tmp_path):
    path = tmp_path / "villes.xlsx"
    path.write_bytes(truncated_xlsx())
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"))
    assert (outcome.status, outcome.failure_kind, outcome.unreadable) == ("failed", "bad_input", True)
    assert "villes.xlsx" in outcome.message and "again" in outcome.message
    assert city_count(db) == 0


def test_file_over_the_size_limit_names_the_setting(db, settings, tmp_path):
    small = replace(settings, imports=replace(settings.imports, max_bytes=100))
    path = tmp_path / "villes.csv"
    path.write_text("nom,code_postal\n" + "Bourg,01000\n" * 20)
    outcome = run_import(db, path, small, ImportOptions(profile="cities"))
    assert outcome.status == "failed" and "imports.max_bytes" in outcome.message
    assert city_count(db) == 0


def test_formula_values_are_neutralised_in_the_report(db, settings, tmp_path):
    path = tmp_path / "villes.csv"
    path.write_text("nom;code_postal\nBourg;01000\n=HYPERLINK(\"http://x\");@SUM(A1)\n", encoding="utf-8")
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"))
    assert outcome.invalid == 1
    with open(outcome.error_report, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[1][:2] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)"]


def test_a_100_kb_field_and_nul_bytes(db, settings, tmp_path):
    path = tmp_path / "villes.csv"
    path.write_bytes(("nom;code_postal;region\nBo\x00urg;01000;" + "x" * 100_000 + "\n").encode("utf-8"))
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"))
    # region is limited to 100 characters: the row is reported, not truncated or crashed on.
    assert (outcome.invalid, outcome.error_counts) == (1, {"too_long": 1})
    assert outcome.nul_bytes_removed == 1
