"""The import_files policy on both databases (the import log says which files are still needed): files past
30 days deleted, nothing outside the data folder, no symlink followed or deleted, files an import still
points to kept, dry runs that only count."""

import os
from datetime import timedelta
from pathlib import Path

from tests.retention import rows
from tests.retention.rows import NOW, clean

AGE = timedelta(days=30)


def _file(path: Path, age: timedelta, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_files_past_their_age_go_files_exactly_at_it_stay(db, tmp_path):
    data = tmp_path / "data"
    _file(data / "processed" / "2026-04-01" / "old.csv", AGE + timedelta(seconds=1), size=100)
    _file(data / "failed" / "2026-04-01" / "old.xlsx", AGE + timedelta(days=3), size=50)
    _file(data / "reports" / "old_errors.csv", AGE + timedelta(days=1), size=7)
    _file(data / "processed" / "2026-05-02" / "exact.csv", AGE)
    _file(data / "processed" / "2026-05-30" / "young.csv", timedelta(days=2))
    _file(data / "uploads" / "waiting.csv", AGE * 10)  # uploads are not covered
    report = clean(db, data, "import_files")["import_files"]
    assert _files(data) == {"processed/2026-05-02/exact.csv", "processed/2026-05-30/young.csv", "uploads/waiting.csv"}
    assert not (data / "processed" / "2026-04-01").exists() and not (data / "failed" / "2026-04-01").exists()
    assert (report.deleted, report.bytes, report.remaining, report.would_delete) == (3, 157, 2, 0)
    assert report.oldest_remaining_age_s == AGE.total_seconds()


def test_symlinks_and_files_outside_the_data_folder_are_never_touched(db, tmp_path):
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    target = _file(outside / "precious.csv", AGE * 3)
    linked_folder = _file(outside / "folder" / "inside.csv", AGE * 3).parent
    (data / "processed" / "2026-01-01").mkdir(parents=True)
    link = data / "processed" / "2026-01-01" / "link.csv"
    link.symlink_to(target)
    os.utime(link, ((NOW - AGE * 3).timestamp(),) * 2, follow_symlinks=False)
    (data / "processed" / "linked").symlink_to(linked_folder, target_is_directory=True)
    (data / "reports").symlink_to(outside, target_is_directory=True)  # a whole folder pointing out
    report = clean(db, data, "import_files")["import_files"]
    assert link.is_symlink() and target.exists()
    assert (data / "processed" / "linked").is_symlink() and (linked_folder / "inside.csv").exists()
    assert _files(outside) == {"precious.csv", "folder/inside.csv"}
    assert report.deleted == 0 and report.remaining == 0


def test_a_file_an_unfinished_or_younger_import_points_to_is_kept(db, tmp_path):
    data = tmp_path / "data"
    running = _file(data / "failed" / "2026-03-01" / "being_fixed.csv", AGE * 2)
    young_import = _file(data / "processed" / "2026-03-01" / "old_mtime.csv", AGE * 5)
    report = _file(data / "reports" / "young_report.csv", AGE * 5)
    orphan = _file(data / "processed" / "2026-03-01" / "orphan.csv", AGE * 2)
    rows.import_row(db, NOW - AGE * 3, "running", file_path=running)
    rows.import_row(db, NOW - timedelta(days=1), file_path=young_import, error_report_path=str(report))
    rows.import_row(db, NOW - AGE * 3, file_path=orphan)  # finished long ago: does not keep its file
    clean(db, data, "import_files")
    assert running.exists() and young_import.exists() and report.exists()
    assert not orphan.exists()


def test_a_dry_run_counts_files_and_bytes_and_deletes_nothing(db, tmp_path):
    data = tmp_path / "data"
    for n in range(4):
        _file(data / "processed" / "2026-01-01" / f"f{n}.csv", AGE * 4 - timedelta(days=n), size=1000)
    _file(data / "reports" / "young.csv", timedelta(days=1), size=3)
    before = _files(data)
    report = clean(db, data, "import_files", dry_run=True)["import_files"]
    assert _files(data) == before
    assert (report.deleted, report.would_delete, report.bytes, report.remaining) == (0, 4, 4000, 5)
    assert report.oldest_remaining_age_s == (AGE * 4).total_seconds()


def test_file_deletes_come_in_batches_and_stop_between_them(db, tmp_path):
    from nightshift.retention.cleanup import run_policies
    from nightshift.retention.run import Run

    data = tmp_path / "data"
    for n in range(5):
        _file(data / "processed" / "d" / f"f{n}.csv", AGE * 2)
    applied = rows.retention(batch_size=2)
    batches = []
    run = Run(NOW, data, on_batch=batches.append, should_stop=lambda: len(batches) >= 2)
    [first] = run_policies(db, applied, applied.selected(["import_files"]), run)
    assert (first.deleted, first.would_delete, first.stopped) == (4, 1, True)
    assert [b.rows for b in batches] == [2, 2]
    [second] = run_policies(db, applied, applied.selected(["import_files"]), Run(NOW, data))
    assert (second.deleted, second.remaining) == (1, 0)
