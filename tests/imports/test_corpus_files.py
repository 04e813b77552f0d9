"""The import corpus (tests/corpus/files, made by tests/corpus/make_corpus.py): every file with its
expected outcome (tests/corpus/expected.json), on SQLite and PostgreSQL.

For each file: the outcome is exactly the expected one, no exception escapes, a failed import writes no
row, the error report (when rows need fixing: all rejected rows but the earlier lines of repeated keys)
has the `_ligne/_colonne/_erreur` columns and no cell a spreadsheet would run, and importing the same
file again changes nothing.
"""

import csv
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from nightshift.db import schema
from nightshift.imports.service import ImportOptions, run_import

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
TARGET_TABLES = ("businesses", "categories", "subcategories", "cities", "clients")
RISKY_START = ("=", "+", "-", "@", "\t", "\r")


def test_every_corpus_file_has_an_expected_outcome_and_there_are_at_least_25():
    files = {p.name for p in (CORPUS / "files").iterdir()}
    assert files == set(EXPECTED)
    assert len(files) >= 25


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[name])).scalar_one()
                for name in TARGET_TABLES}


def _report_cells(path: Path) -> list[list[str]]:
    if path.suffix == ".xlsx":
        sheet = openpyxl.load_workbook(path, read_only=True).active
        return [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(values_only=True)]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        return list(csv.reader(handle, delimiter=csv.Sniffer().sniff(sample, delimiters=";,\t|").delimiter))


def _plain(value):
    return value.isoformat() if isinstance(value, date) else value


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name, db, settings, tmp_path):
    expected = EXPECTED[name]
    source = CORPUS / "files" / name
    path = source
    if "upload_as" in expected:
        uploads = settings.uploads_dir / "cities"
        uploads.mkdir(parents=True, exist_ok=True)
        path = uploads / expected["upload_as"].replace("/", "_")
        path.write_bytes(source.read_bytes())
    if "settings" in expected:
        settings = replace(settings, imports=replace(settings.imports, **expected["settings"]))
    options = ImportOptions(profile=expected["profile"], **expected.get("options", {}))

    outcome = run_import(db, path, settings, options, move_file="upload_as" in expected)

    assert (outcome.status, outcome.rows_total, outcome.inserted, outcome.invalid) == (
        expected["status"], expected["rows_total"], expected["inserted"], expected["invalid"]), outcome.message
    assert outcome.unreadable == expected.get("unreadable", False)
    for key in ("encoding", "delimiter", "sheet", "nul_bytes_removed", "error_counts", "unknown_columns"):
        if key in expected:
            assert getattr(outcome, key) == expected[key], key
    if "detected_profile" in expected:
        assert outcome.profile == expected["detected_profile"]
    for fragment in expected.get("message_contains", []):
        assert fragment in outcome.message
    if "errors" in expected:
        assert [[e["line"], e["column"], e["code"]] for e in outcome.errors] == expected["errors"]
        assert all(e["message"] for e in outcome.errors)
    for line, winner in expected.get("message_per_line", {}).items():
        [error] = [e for e in outcome.errors if e["line"] == int(line)]
        assert winner in error["message"]

    counts = _counts(db)
    if outcome.status == "failed":
        assert set(counts.values()) == {0}, "a failed import writes nothing"
    for table, count in expected.get("table_counts", {}).items():
        assert counts[table] == count, table
    with db.connect() as conn:
        for check in expected.get("rows", []):
            table = schema.metadata.tables[check["table"]]
            row = conn.execute(sa.select(table).where(*(table.c[k] == v for k, v in check["match"].items()))).one()
            for column, value in check.get("expect", {}).items():
                actual = _plain(getattr(row, column))
                assert actual == (pytest.approx(value) if isinstance(value, float) else value), column
            for column, length in check.get("expect_length", {}).items():
                assert len(getattr(row, column)) == length

    # An earlier line of a repeated key has no other error; its later line was imported: nothing to fix.
    to_fix = outcome.invalid - outcome.error_counts.get("duplicate_key", 0)
    if not to_fix:
        assert outcome.error_report is None
    else:
        cells = _report_cells(Path(outcome.error_report))
        assert cells[0][-3:] == ["_ligne", "_colonne", "_erreur"]
        data_cells = [cell for row in cells[1:] for cell in row]
        assert not [cell for cell in data_cells if cell.startswith(RISKY_START)], "formula cells are neutralised"
        assert len(cells) - 1 == to_fix
        for cell in expected.get("report_cells", []):
            assert cell in data_cells

    if "upload_as" in expected:
        moved = Path(outcome.file_path)
        assert moved.resolve().is_relative_to(settings.processed_dir.resolve())
        assert not any(ch in moved.name for ch in "\n\x07,/") and ".." not in moved.name
        assert moved.read_bytes() == source.read_bytes() and not path.exists()
        return

    if outcome.status in ("succeeded", "partial"):
        again = run_import(db, path, settings, options)
        assert (again.status, again.inserted, again.updated, again.unchanged) == (
            outcome.status, 0, 0, outcome.inserted + outcome.updated), "the same file again changes nothing"
        assert _counts(db) == counts
