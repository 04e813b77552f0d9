"""Big files are validated in worker processes: the outcome, the errors and the rows written must be
exactly those of the same import done in one process (chunks come back in file order)."""

import multiprocessing.forkserver
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from nightshift.db.schema import businesses, categories, subcategories
from nightshift.imports import prepare, service
from nightshift.imports.merge import StagingTable
from nightshift.imports.reading import CsvLines, _single_line_records
from nightshift.imports.service import ImportOptions, run_import

ROWS = 3_000
CHUNK = 500  # six chunks: more than the two workers keep in flight


def luhn(prefix: str) -> str:
    """`prefix` followed by its Luhn check digit."""
    total = sum(d if i % 2 else (2 * d if d < 5 else 2 * d - 9) for i, d in enumerate(map(int, reversed(prefix))))
    return prefix + str((10 - total % 10) % 10)


def siret(number: int) -> str:
    """A valid SIRET whose SIREN (itself valid) is made from `number`."""
    return luhn(luhn(f"{number:08d}") + "0001")


def big_file(path):
    lines = ["nom;siret;categorie;sous_categorie;email;code_postal;ville"]
    for n in range(ROWS):
        key = siret(7_000_000 + n % 2_000)  # rows 2000+ repeat keys of rows 0–999: the later line wins
        email = "pas-un-email" if n % 97 == 0 else f"contact{n}@exemple.fr"
        category = ("Boulangerie", "Café d’art", "北京饭店", "Garage")[n % 4]
        name = f"Société n°{n}" if n % 250 else "..."
        lines.append(f"{name};{key};{category};Sous {n % 3};{email};{(n % 900) + 1000};Lyon")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def with_processes(settings, processes: int):
    return replace(settings, imports=replace(settings.imports, workers=processes, parallel_min_bytes=0))


def snapshot(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.select(businesses.c.natural_key, businesses.c.name, businesses.c.email,
                                      businesses.c.postal_code, businesses.c.content_hash,
                                      categories.c.slug, subcategories.c.slug)
                            .select_from(businesses.outerjoin(categories, businesses.c.category_id == categories.c.id)
                                         .outerjoin(subcategories, businesses.c.subcategory_id == subcategories.c.id))
                            .order_by(businesses.c.natural_key)).all()
        return [tuple(r) for r in rows]


def clear(engine):
    with engine.begin() as conn:
        for table in (businesses, subcategories, categories):
            conn.execute(table.delete())


def scratch_files_through(monkeypatch) -> list[str]:
    """Paths of the scratch files this process copies into staging tables (SQLite)."""
    copied = []
    copy_scratch = StagingTable._copy_scratch

    def recording(self, cursor, scratch):
        copied.append(scratch.path)
        copy_scratch(self, cursor, scratch)

    monkeypatch.setattr(StagingTable, "_copy_scratch", recording)
    return copied


def test_worker_processes_give_the_same_import_as_one_process(db, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(service, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    copied = scratch_files_through(monkeypatch)
    path = big_file(tmp_path / "entreprises.csv")
    options = ImportOptions(profile="businesses")

    parallel = run_import(db, path, with_processes(settings, 3), options)
    parallel_rows = snapshot(db)
    # On SQLite the workers' rows came through scratch files, each removed once copied, with their folder.
    assert bool(copied) == (db.dialect.name == "sqlite")
    assert not any(Path(p).exists() for p in copied) and list(tmp_path.glob("nightshift-import-*")) == []
    clear(db)
    serial = run_import(db, path, with_processes(settings, 1), options)

    assert (parallel.workers, serial.workers) == (2, 0)  # worker processes besides the import's own
    # Invalid: 31 bad e-mails (every 97th row), 12 names without a letter (every 250th), and the earlier
    # line of each SIRET repeated on rows 2000–2999 (duplicate_key).
    assert parallel.status == serial.status == "partial"
    assert parallel.rows_total == serial.rows_total == ROWS
    assert (parallel.inserted, parallel.invalid) == (serial.inserted, serial.invalid)
    assert parallel.errors == serial.errors and parallel.error_counts == serial.error_counts
    assert parallel.error_counts["invalid_email"] == 31 and parallel.error_counts["no_letter_or_digit"] == 12
    assert parallel.inserted + parallel.invalid == ROWS
    assert parallel_rows == snapshot(db) and len(parallel_rows) == parallel.inserted
    assert {row[5] for row in parallel_rows} == {"boulangerie", "cafe-dart", "北京饭店", "garage"}


def test_keys_are_compared_by_hash_then_confirmed_by_their_text(db, settings, tmp_path, monkeypatch):
    """Every key hashing alike (the worst collision): only rows whose staged key texts are equal are
    duplicates; the others are imported."""
    monkeypatch.setattr(prepare, "hash_keys", lambda keys: np.zeros(len(keys), dtype=np.uint64))
    path = tmp_path / "villes.csv"
    path.write_text("nom;code_postal\nLyon;69001\nBron;69500\nLYON;69001\nVénissieux;69200\n", encoding="utf-8")

    outcome = run_import(db, path, settings, ImportOptions(profile="cities"))

    assert (outcome.status, outcome.rows_total, outcome.inserted, outcome.invalid) == ("partial", 4, 3, 1)
    assert [(e["line"], e["code"]) for e in outcome.errors] == [(2, "duplicate_key")]
    assert "line 4 of the file" in outcome.errors[0]["message"]  # the later line won


def test_a_bad_file_found_out_while_workers_run_fails_cleanly(db, settings, tmp_path, monkeypatch):
    """A quoted field left open near the end is only found once workers hold chunks: the import fails
    with the line, writes nothing, and the workers are shut down with it."""
    monkeypatch.setattr(service, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = big_file(tmp_path / "entreprises.csv")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('"Garage sans fin;12345678900011;Garage;Sous 1;a@b.fr;1000;Lyon\nSuite;;;;;;\n')

    outcome = run_import(db, path, with_processes(settings, 2), ImportOptions(profile="businesses"))

    assert (outcome.status, outcome.unreadable, outcome.inserted) == ("failed", True, 0)
    assert f"line {ROWS + 2}" in outcome.message and "never closes" in outcome.message
    assert snapshot(db) == []
    assert list(tmp_path.glob("nightshift-import-*")) == []  # the workers' scratch folder went with them
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    deadline = time.monotonic() + 10  # the server reaps its exited children asynchronously
    while children_of(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children_of(server) == []


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if parent == pid:
                children.append(int(entry.name))
    return children


def test_a_chunk_the_c_parser_refuses_is_read_by_the_csv_module_in_the_worker_too(db, settings, tmp_path,
                                                                                  monkeypatch):
    """Chunks of raw lines are parsed by the process that validates them. The second chunk's lines are
    all narrower than the header, a shape pandas' C parser refuses: the csv module reads that chunk
    (short lines padded), in a worker as in one process, with the same import."""
    monkeypatch.setattr(service, "CHUNK_ROWS", CHUNK)
    path = big_file(tmp_path / "entreprises.csv")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for number in range(CHUNK + 1, 2 * CHUNK + 1):  # lines 502–1001: the second chunk, without their city
        lines[number] = lines[number].removesuffix(";Lyon\n") + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    assert _single_line_records(path, ";") is not None
    read_by_csv_module = []
    parse_with_csv_module = CsvLines._parse_with_csv_module

    def recording(self, codec, errors):
        read_by_csv_module.append(self.first_line)
        return parse_with_csv_module(self, codec, errors)

    monkeypatch.setattr(CsvLines, "_parse_with_csv_module", recording)
    options = ImportOptions(profile="businesses")

    parallel = run_import(db, path, with_processes(settings, 2), options)  # the second chunk goes to the worker
    parallel_rows = snapshot(db)
    clear(db)
    serial = run_import(db, path, with_processes(settings, 1), options)

    assert read_by_csv_module == [CHUNK + 2]  # in this process, the one-process import only
    assert (parallel.status, parallel.rows_total, parallel.inserted) == (serial.status, ROWS, serial.inserted)
    assert parallel.errors == serial.errors and parallel_rows == snapshot(db)
    with db.connect() as conn:
        cities = dict(conn.execute(sa.select(businesses.c.city, sa.func.count()).group_by(businesses.c.city)).all())
    assert cities[None] > 0 and cities["Lyon"] > 0


WORKER_SERVER_AFTER_IMPORT = """
import multiprocessing.forkserver, os, sys
from dataclasses import replace
from pathlib import Path
from nightshift.config import load_settings
from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.imports.service import ImportOptions, run_import

if __name__ == "__main__":
    url = f"sqlite:///{Path(sys.argv[1]).with_suffix('.db')}"
    migrate.upgrade(url)
    settings = load_settings({"NIGHTSHIFT_DATA_DIR": "data"})
    settings = replace(settings, imports=replace(settings.imports, workers=2, parallel_min_bytes=1000))
    outcome = run_import(create_engine(url), Path(sys.argv[1]), settings, ImportOptions(profile="cities"))
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    print(outcome.status, outcome.workers, server is not None and os.path.exists(f"/proc/{server}"))
"""


def test_the_worker_server_starts_for_a_file_big_enough_for_workers_only(tmp_path):
    """An import starts the workers' server only for a file that will use them."""
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("nom;code_postal\nLyon;69001\n", encoding="utf-8")
    big.write_text("nom;code_postal\n" + "".join(f"Ville {n};{10000 + n}\n" for n in range(100)), encoding="utf-8")
    printed = {path.name: subprocess.run([sys.executable, "-c", WORKER_SERVER_AFTER_IMPORT, str(path)],
                                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
               for path in (small, big)}
    assert printed == {"small.csv": ["succeeded", "0", "False"], "big.csv": ["succeeded", "1", "True"]}
