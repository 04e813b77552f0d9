"""Registration of uploads in the import log (no Dagster): duplicates, run keys and partition keys, on
SQLite and PostgreSQL."""


import dataclasses
import threading
import time

import sqlalchemy as sa

from nightshift.db.schema import imports
from nightshift.imports import intake
from nightshift.imports.files import PARTITION_KEY_MAX, partition_key, sha256_of
from nightshift.imports.profiles import PROFILES

CITIES = "nom;code_postal\nBourg;01000\n"


def drop(settings, relative: str, content: str = CITIES) -> intake.Upload:
    """A file dropped in the upload folder, classified as the sensor does (profile and account folders)."""
    path = settings.uploads_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return intake.classify(path, settings.uploads_dir)


def register(db, settings, *uploads: intake.Upload, **options):
    return intake.register_many(db, [(u, sha256_of(u.path)) for u in uploads], settings, **options)


def set_row(db, import_id: int, **values) -> None:
    with db.begin() as conn:
        conn.execute(imports.update().where(imports.c.id == import_id).values(**values))


def row(db, import_id: int):
    with db.connect() as conn:
        return conn.execute(sa.select(imports).where(imports.c.id == import_id)).one()


def test_each_registration_of_the_same_bytes_gets_its_own_partition_key(db, settings, tmp_path):
    """`nightshift import` of one file twice, and the same bytes under two profiles in one batch."""
    cli = tmp_path / "villes.csv"
    cli.write_text(CITIES, encoding="utf-8")
    first, again = (intake.register(db, intake.Upload(cli, PROFILES["cities"], None), settings,
                                    detect_duplicates=False) for _ in range(2))
    assert first.partition_key != again.partition_key
    other = "nom;code_postal\nLyon;69001\n"
    auto, cities = register(db, settings, drop(settings, "villes.csv", other),
                            drop(settings, "cities/villes.csv", other))
    keys = [r.partition_key for r in (first, again, auto, cities)]
    assert len(set(keys)) == 4 and all(k.startswith("villes-") for k in keys)
    assert [row(db, r.import_id).partition_key for r in (first, again, auto, cities)] == keys


def test_partition_keys_stay_bounded_whatever_the_name_and_the_import_id():
    sha = "ab" * 32
    for name in ["a" * 400 + ".csv", "été, " * 100 + ".xlsx", ",,,.csv", ""]:
        for import_id in (1, 10**18):
            key = partition_key(name, sha, import_id)
            assert len(key) <= PARTITION_KEY_MAX and "," not in key
            assert key.endswith(f"-{sha[:12]}-{import_id}") and not key.startswith(("-", "_", "."))


def test_duplicates_and_intake_rejections_have_no_partition(db, settings):
    [registered] = register(db, settings, drop(settings, "cities/a.csv"))
    duplicate, rejected = register(db, settings, drop(settings, "cities/b.csv"),
                                   drop(settings, "nobody/cities/c.csv", "x;y\n"))
    assert (duplicate.status, rejected.status) == ("duplicate", "failed")
    assert row(db, duplicate.import_id).duplicate_of_id == registered.import_id
    assert row(db, duplicate.import_id).partition_key is None and row(db, rejected.import_id).partition_key is None


def test_reupload_after_an_intake_rejection_is_registered_under_the_content_run_key(db, settings):
    [rejected] = register(db, settings, drop(settings, "acme/cities/v.csv"))
    assert rejected.status == "failed"
    [again] = register(db, settings, drop(settings, "cities/v.csv"))
    assert isinstance(again, intake.Registered)
    assert again.run_key == intake.run_key(row(db, again.import_id).sha256, PROFILES["cities"])


def test_reupload_after_a_transient_failure_points_at_the_partition_to_re_execute(db, settings):
    [failed] = register(db, settings, drop(settings, "cities/v.csv"))
    set_row(db, failed.import_id, status="failed", failure_kind="transient", dagster_run_id="run-1")
    [duplicate] = register(db, settings, drop(settings, "cities/v (2).csv"))
    message = row(db, duplicate.import_id).message
    assert duplicate.status == "duplicate"
    assert message.endswith(f"re-execute partition {failed.partition_key!r} to retry it")


def test_reupload_when_the_failed_import_lost_its_file_is_registered_under_a_fresh_run_key(db, settings):
    """The file of a failed run was deleted from failed/ (nothing to re-execute): the re-upload is a new
    import, and its run key is not the content run key the first run already used."""
    [failed] = register(db, settings, drop(settings, "cities/v.csv"))
    set_row(db, failed.import_id, status="failed", failure_kind="bad_input", dagster_run_id="run-1")
    failed.path.unlink()
    [again] = register(db, settings, drop(settings, "cities/v-bis.csv"))
    assert isinstance(again, intake.Registered)
    assert again.run_key == f"{failed.run_key}:{again.import_id}"
    assert again.partition_key != failed.partition_key


def test_succeeded_import_whose_file_was_cleaned_up_still_makes_a_duplicate(db, settings):
    [done] = register(db, settings, drop(settings, "cities/v.csv"))
    set_row(db, done.import_id, status="succeeded", dagster_run_id="run-1")
    done.path.unlink()
    [duplicate] = register(db, settings, drop(settings, "cities/v2.csv"))
    assert duplicate.status == "duplicate"


def _settling(settings, seconds: int):
    return dataclasses.replace(settings, imports=dataclasses.replace(settings.imports, settle_seconds=seconds))


def test_a_file_unchanged_for_the_settle_time_is_registered_by_the_scan_that_first_sees_it(db, settings):
    drop(settings, "cities/villes.csv")
    started = time.monotonic()
    result = intake.scan(db, _settling(settings, 1), {})
    assert [r.path.name for r in result.registered] == ["villes.csv"] and not result.waiting
    assert time.monotonic() - started >= 1


def test_a_file_written_to_during_the_settle_wait_is_left_for_a_later_scan(db, settings):
    growing = drop(settings, "cities/growing.csv")

    def append_later() -> None:  # well inside the scan's wait, well after its first look
        time.sleep(0.8)
        with growing.path.open("a", encoding="utf-8") as out:
            out.write("Lyon;69001\n")

    writer = threading.Thread(target=append_later)
    writer.start()
    first = intake.scan(db, _settling(settings, 2), {})
    writer.join()
    assert not first.registered and first.waiting == {"cities/growing.csv": [growing.path.stat().st_size,
                                                                              growing.path.stat().st_mtime_ns]}
    second = intake.scan(db, _settling(settings, 1), first.waiting)
    assert [r.path.name for r in second.registered] == ["growing.csv"]


def test_without_a_settle_wait_a_file_is_registered_by_the_next_scan_that_sees_it_unchanged(db, settings):
    growing = drop(settings, "cities/growing.csv")
    settings = _settling(settings, 0)
    first = intake.scan(db, settings, {})
    with growing.path.open("a", encoding="utf-8") as out:
        out.write("Lyon;69001\n")
    second = intake.scan(db, settings, first.waiting)
    assert not first.registered and not second.registered
    assert first.waiting["cities/growing.csv"] != second.waiting["cities/growing.csv"]
    assert [r.path.name for r in intake.scan(db, settings, second.waiting).registered] == ["growing.csv"]
