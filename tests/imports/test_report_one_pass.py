"""The error report comes from the import's one pass over the upload: the rows it lists are those the
validation read, kept as it rejected them. The upload can be gone by the time the report is written (here it
is deleted as soon as its last chunk is validated), with the rows validated by worker processes or by the
import's own, for a CSV and a workbook, for rows refused at the end (unknown categories) and for an import
refused for its many invalid rows."""

import csv
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest

from nightshift.imports.service import ImportOptions, run_import

CLIENTS = ("telephone;prenom;nom\n+22370123456;Awa;Traoré\nabc;=1+1;Keïta\n+22376543210;Moussa;Diarra\n"
           "12;Fanta;\n")


def deleted_once_read(path: Path):
    """A progress callback that deletes the upload once every row is validated and staged."""
    def progress(rows: int) -> None:
        path.unlink()

    return progress


def report_rows(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle, delimiter=";"))


@pytest.mark.parametrize("processes", [1, 2], ids=["this-process", "worker-processes"])
def test_a_csv_report_is_written_from_the_one_pass(db, settings, tmp_path, processes):
    run_settings = replace(settings, imports=replace(settings.imports, workers=processes, parallel_min_bytes=0))
    path = tmp_path / "clients.csv"
    path.write_text(CLIENTS, encoding="utf-8")
    outcome = run_import(db, path, run_settings, ImportOptions(profile="clients"), progress=deleted_once_read(path))
    assert not path.exists()
    assert (outcome.status, outcome.inserted, outcome.invalid, outcome.workers) == ("partial", 2, 2, processes - 1)
    header, *rows = report_rows(outcome.error_report)
    assert header == ["telephone", "prenom", "nom", "_ligne", "_colonne", "_erreur"]
    assert [row[:5] for row in rows] == [["abc", "'=1+1", "Keïta", "3", "telephone"],
                                         ["12", "Fanta", "", "5", "telephone"]]


def test_an_xlsx_report_is_written_from_the_one_pass(db, settings, tmp_path):
    path = tmp_path / "villes.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in (["nom", "code_postal", "population"], ["Lyon", "69001", 522250], ["Nulle", "x", 12],
                ["Bron", "69500", 42000]):
        sheet.append(row)
    workbook.save(path)
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"), progress=deleted_once_read(path))
    assert (outcome.status, outcome.inserted, outcome.invalid) == ("partial", 2, 1)
    report = openpyxl.load_workbook(outcome.error_report).active
    assert [[cell.value for cell in row] for row in report.iter_rows()][:2] == [
        ["nom", "code_postal", "population", "_ligne", "_colonne", "_erreur"],
        ["Nulle", "x", 12, 3, "code_postal", outcome.errors[0]["message"]]]


def test_rows_refused_once_the_file_is_staged_are_in_the_report(db, settings, tmp_path):
    """Without creating categories, a row naming an unknown category is refused after the whole file is
    staged: its raw row was kept as its chunk was validated."""
    path = tmp_path / "entreprises.csv"
    path.write_text("nom;categorie;email\nDupont;Boulangerie;contact@dupont.fr\nMartin;;pas-un-email\n"
                    "Diallo;;diallo@exemple.ml\nKeïta;;\nTraoré;;\n", encoding="utf-8")
    outcome = run_import(db, path, settings, ImportOptions(profile="businesses", create_categories=False),
                         progress=deleted_once_read(path))
    assert (outcome.status, outcome.inserted, outcome.invalid) == ("partial", 3, 2)
    assert sorted(outcome.error_counts) == ["invalid_email", "unknown_category"]
    header, *rows = report_rows(outcome.error_report)
    assert [row[:5] for row in rows] == [["Dupont", "Boulangerie", "contact@dupont.fr", "2", "categorie"],
                                         ["Martin", "", "pas-un-email", "3", "email"]]


def test_an_import_refused_for_its_invalid_rows_still_reports_them_all(db, settings, tmp_path):
    path = tmp_path / "villes.csv"
    path.write_text("nom;code_postal\n" + "".join(f"Ville {n};{n}\n" for n in range(30)) + "Lyon;69001\n",
                    encoding="utf-8")
    outcome = run_import(db, path, settings, ImportOptions(profile="cities"), progress=deleted_once_read(path))
    assert (outcome.status, outcome.invalid, outcome.inserted) == ("failed", 30, 0)
    header, *rows = report_rows(outcome.error_report)
    assert header[2] == "_ligne" and [row[2] for row in rows] == [str(line) for line in range(2, 32)]
