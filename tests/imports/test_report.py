"""Error reports: XLSX with typed cells and no apostrophes, CSV with formula cells neutralised; either,
fixed or not, imports again through the normal import path with its values intact. Both backends."""

import csv
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from nightshift.db.schema import businesses, clients
from nightshift.imports.reading import open_table
from nightshift.imports.service import ImportOptions, run_import
from nightshift.imports.writing import TableWriter, cell_from_text


@pytest.fixture
def engine(db):
    return db


def _xlsx_upload(path: Path) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["nom", "telephone", "email", "latitude", "date_creation", "code_postal", "siren", "description"])
    sheet.append(["Garage Martin", "+33 4 74 22 00 00", "garage@exemple.fr", 46.2, date(2001, 5, 3), "01000",
                  "552100554", "Réparations"])
    sheet.append(["Boulangerie Dupont", "+223 66 55 44 33", "pas-un-email", 48.8686, datetime(2012, 3, 15), "01500",
                  732829320, "=1+2"])
    sheet["H3"].data_type = "s"  # a text that looks like a formula
    workbook.save(path)
    return path


def test_xlsx_report_has_typed_cells_no_apostrophes_and_imports_again_fixed_or_not(engine, settings, tmp_path):
    upload = _xlsx_upload(tmp_path / "entreprises.xlsx")
    outcome = run_import(engine, upload, settings, ImportOptions(profile="businesses"))
    assert (outcome.status, outcome.inserted, outcome.invalid) == ("partial", 1, 1)
    report = Path(outcome.error_report)
    assert report.suffix == ".xlsx"

    header, row = openpyxl.load_workbook(report).active.iter_rows()
    cells = {h.value: c for h, c in zip(header, row, strict=True)}
    assert [h.value for h in header][-3:] == ["_ligne", "_colonne", "_erreur"]
    assert (cells["_ligne"].value, cells["_ligne"].data_type) == (3, "n")
    assert (cells["telephone"].value, cells["telephone"].data_type) == ("+223 66 55 44 33", "s")
    assert (cells["latitude"].value, cells["latitude"].data_type) == (48.8686, "n")
    assert (cells["siren"].value, cells["siren"].data_type) == (732829320, "n")
    assert cells["date_creation"].is_date and cells["date_creation"].value == datetime(2012, 3, 15)
    assert (cells["code_postal"].value, cells["code_postal"].data_type) == ("01500", "s")
    assert (cells["description"].value, cells["description"].data_type) == ("=1+2", "s"), "text, not a formula"
    assert not [c.value for c in row if isinstance(c.value, str) and c.value.startswith("'")]

    unfixed = run_import(engine, report, settings, ImportOptions(profile="businesses"))
    # Its one row is still invalid (more than the abort ratio: nothing written), and for the same reason.
    assert (unfixed.status, unfixed.rows_total, unfixed.invalid, unfixed.unknown_columns) == ("failed", 1, 1, [])
    assert [(e["column"], e["value"], e["code"]) for e in unfixed.errors] == [
        ("email", "pas-un-email", "invalid_email")]
    # Its own report has the row as the first one had it, at its line in the report.
    header, row = openpyxl.load_workbook(unfixed.error_report).active.iter_rows()
    again = {h.value: c.value for h, c in zip(header, row, strict=True)}
    assert (again["_ligne"], again["telephone"], again["latitude"], again["date_creation"], again["siren"]) == (
        2, "+223 66 55 44 33", 48.8686, datetime(2012, 3, 15), 732829320)

    workbook = openpyxl.load_workbook(report)
    workbook.active[f"{cells['email'].column_letter}2"] = "contact@dupont.fr"
    workbook.save(report)
    fixed = run_import(engine, report, settings, ImportOptions(profile="businesses"))
    assert (fixed.status, fixed.inserted, fixed.invalid) == ("succeeded", 1, 0)
    with engine.connect() as conn:
        dupont = conn.execute(sa.select(businesses).where(businesses.c.name == "Boulangerie Dupont")).one()
    assert (dupont.phone, dupont.email, dupont.latitude, dupont.founded_on, dupont.postal_code, dupont.siren,
            dupont.description) == ("+22366554433", "contact@dupont.fr", 48.8686, date(2012, 3, 15), "01500",
                                    "732829320", "=1+2")


def test_csv_report_neutralises_formula_cells_and_imports_again_fixed_or_not(engine, settings, tmp_path):
    upload = tmp_path / "clients.csv"
    upload.write_text("telephone;prenom;nom;email;region\n"
                      "70 12 34 56;Awa;Traoré;awa@exemple.ml;Bamako\n"
                      '+223 66 55 44 33;=HYPERLINK("http://x.example");@Keita;pas-un-email;-Sud\n', encoding="utf-8")
    outcome = run_import(engine, upload, settings, ImportOptions(profile="clients"))
    assert (outcome.status, outcome.inserted, outcome.invalid) == ("partial", 1, 1)
    report = Path(outcome.error_report)
    with report.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[1][:6] == ["'+223 66 55 44 33", "'=HYPERLINK(\"http://x.example\")", "'@Keita", "pas-un-email",
                           "'-Sud", "3"]

    unfixed = run_import(engine, report, settings, ImportOptions(profile="clients"))
    assert [(e["column"], e["value"], e["code"]) for e in unfixed.errors] == [
        ("email", "pas-un-email", "invalid_email")]
    with Path(unfixed.error_report).open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle, delimiter=";"))[1][:6] == rows[1][:5] + ["2"], "one apostrophe, not two"

    rows[1][3] = "moussa@exemple.ml"
    with report.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)
    fixed = run_import(engine, report, settings, ImportOptions(profile="clients"))
    assert (fixed.status, fixed.inserted, fixed.invalid) == ("succeeded", 1, 0)
    with engine.connect() as conn:
        client = conn.execute(sa.select(clients).where(clients.c.email == "moussa@exemple.ml")).one()
    assert (client.phone, client.first_name, client.last_name, client.region) == (
        "+22366554433", '=HYPERLINK("http://x.example")', "@Keita", "-Sud")


TYPED = {"12": 12, "-4.5": -4.5, "48.8566": 48.8566, "1e-05": 1e-05, "732829320": 732829320,
         "2024-01-15": date(2024, 1, 15), "2024-01-15 10:30:00": datetime(2024, 1, 15, 10, 30)}
# Texts kept as text: leading zeros, a decimal comma, more than 11 digits (Excel would show 7.32829E+13), a
# float openpyxl would round, midnight (read as the date alone), signs and words.
TEXT = ["0612345678", "007", "-0", "1,5", "73282932000074", "12345678901234567", "0.30000000000000004",
        "2024-01-15 00:00:00", "2024-1-5", "+33", "nan", "inf", "1_000", "=1+2", "Paris"]


def test_cell_from_text_types_exactly_the_texts_of_number_and_date_cells():
    assert {text: cell_from_text(text) for text in TYPED} == TYPED
    assert all(type(TYPED[t]) is type(cell_from_text(t)) for t in TYPED)
    assert [cell_from_text(text) for text in TEXT] == TEXT


def test_typed_cells_read_back_as_the_same_text(tmp_path):
    path = tmp_path / "cells.xlsx"
    texts = [*TYPED, *TEXT]
    writer = TableWriter(path, "xlsx", ["nom", *(f"c{i}" for i in range(len(texts)))])
    writer.write([["x", *(cell_from_text(text) for text in texts)]])
    writer.close()
    _, chunks = open_table(path, score_header=lambda cells: float("nom" in cells), max_bytes=10**7, max_rows=10,
                           lang="en")
    [chunk] = list(chunks)
    assert chunk.frame.iloc[0].tolist() == ["x", *texts]
