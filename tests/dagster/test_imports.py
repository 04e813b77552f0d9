"""The import asset, the upload sensor and the failure sensor against real folders and databases."""

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from assets.imports import import_batch, import_files
from nightshift.config import load_settings
from nightshift.db.schema import cities, imports
from nightshift.imports import log as import_log
from sensors.imports import import_failure_sensor, upload_sensor
from tests.conftest import app_resources, definitions


def tick(instance, cursor, url):
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources=app_resources(url)) as context:
        return upload_sensor(load_settings())(context)


def test_new_file_is_requested_once_it_stopped_growing(env):
    path = env["uploads"] / "cities" / "villes, été.csv"
    path.parent.mkdir()
    path.write_text("nom,code_postal\nBourg,01000\n")
    with dg.instance_for_test() as instance:
        first = tick(instance, None, env["url"])
        assert first.run_requests == []  # seen once: maybe still being written
        second = tick(instance, first.cursor, env["url"])
        [request] = second.run_requests
        assert "," not in request.partition_key and request.partition_key.startswith("villes_ete-")
        [add] = second.dynamic_partitions_requests
        assert add.partition_keys == [request.partition_key]
        row = import_log.by_partition(env["engine"], request.partition_key)
        assert (row["status"], row["profile"]) == ("received", "cities")
        assert request.run_key.startswith(row["sha256"])
        third = tick(instance, second.cursor, env["url"])
        assert third.run_requests == []  # registered and still waiting for its run: not requested again


def test_growing_and_partial_files_are_left_alone(env):
    growing = env["uploads"] / "villes.csv"
    growing.write_text("nom,code_postal\n")
    (env["uploads"] / "big.csv.part").write_text("x")
    (env["uploads"] / "~$villes.xlsx").write_text("x")
    with dg.instance_for_test() as instance:
        first = tick(instance, None, env["url"])
        with growing.open("a") as handle:
            handle.write("Bourg,01000\n")
        os.utime(growing, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        second = tick(instance, first.cursor, env["url"])
        assert second.run_requests == []
        third = tick(instance, second.cursor, env["url"])
        assert len(third.run_requests) == 1
        # Partial-download names are never tracked; the imported file left the waiting list.
        assert json.loads(third.cursor) == {}


def test_same_bytes_twice_are_recorded_as_a_duplicate(env):
    content = "nom,code_postal\nBourg,01000\n"
    (env["uploads"] / "a.csv").write_text(content)
    with dg.instance_for_test() as instance:
        cursor = tick(instance, None, env["url"]).cursor
        [request] = tick(instance, cursor, env["url"]).run_requests
        (env["uploads"] / "b.csv").write_text(content)
        cursor = tick(instance, None, env["url"]).cursor
        result = tick(instance, cursor, env["url"])
        assert result.run_requests == []
    with env["engine"].connect() as conn:
        rows = conn.execute(sa.select(imports.c.id, imports.c.status, imports.c.duplicate_of_id,
                                      imports.c.file_path).order_by(imports.c.id)).all()
    assert [(r.status, r.duplicate_of_id) for r in rows] == [("received", None), ("duplicate", rows[0].id)]
    assert "/processed/" in rows[1].file_path and not (env["uploads"] / "b.csv").exists()


def test_ten_thousand_files_in_one_tick(env):
    for i in range(10_000):
        (env["uploads"] / f"villes_{i:05d}.csv").write_text(f"nom,code_postal\nVille {i},{10000 + i}\n")
    with dg.instance_for_test() as instance:
        started = time.monotonic()
        cursor = tick(instance, None, env["url"]).cursor
        result = tick(instance, cursor, env["url"])
        elapsed = time.monotonic() - started
    assert len(result.run_requests) == 10_000
    assert len({r.partition_key for r in result.run_requests}) == 10_000
    assert elapsed < 60, f"two ticks took {elapsed:.1f} s: over the sensor tick budget"


def materialize(env, instance, partition_key, **config):
    return dg.materialize(
        [import_batch], instance=instance, partition_key=partition_key,
        resources=app_resources(env["url"]),
        run_config={"ops": {"import_batch": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def test_materialize_imports_moves_the_file_and_records_metadata(env):
    (env["uploads"] / "villes.csv").write_text("nom;code_postal\nBourg;1000\nLyon;69001\nNulle;x\n")
    with dg.instance_for_test() as instance:
        cursor = tick(instance, None, env["url"]).cursor
        [request] = tick(instance, cursor, env["url"]).run_requests
        instance.add_dynamic_partitions("import_files", [request.partition_key])
        result = materialize(env, instance, request.partition_key)
        assert result.success
        [materialization] = result.asset_materializations_for_node("import_batch")
        metadata = materialization.metadata
        assert (metadata["inserted"].value, metadata["invalid"].value, metadata["rows_total"].value) == (2, 1, 3)
        assert "invalid_postal_code" in metadata["errors_preview"].value
        [check] = result.get_asset_check_evaluations()
        assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    row = import_log.by_partition(env["engine"], request.partition_key)
    assert row["status"] == "partial" and "/processed/" in row["file_path"]
    assert Path(row["file_path"]).exists() and not (env["uploads"] / "villes.csv").exists()


def test_bad_file_fails_its_run_without_retries_and_moves_to_failed(env):
    (env["uploads"] / "garbage.csv").write_bytes(bytes(range(256)) * 64)
    with dg.instance_for_test() as instance:
        cursor = tick(instance, None, env["url"]).cursor
        [request] = tick(instance, cursor, env["url"]).run_requests
        instance.add_dynamic_partitions("import_files", [request.partition_key])
        result = materialize(env, instance, request.partition_key)
        assert not result.success
        retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert retries == []
    row = import_log.by_partition(env["engine"], request.partition_key)
    assert (row["status"], row["failure_kind"]) == ("failed", "bad_input")
    assert "/failed/" in row["file_path"]


def test_backfill_of_a_failed_partition_reimports_from_where_the_file_was_kept(env):
    (env["uploads"] / "villes.csv").write_text("nom;code_postal\nBourg;01000\nLyon;69001\n")
    with dg.instance_for_test() as instance:
        cursor = tick(instance, None, env["url"]).cursor
        [request] = tick(instance, cursor, env["url"]).run_requests
        key = request.partition_key
        instance.add_dynamic_partitions("import_files", [key])
        first = materialize(env, instance, key, strict=True, create_categories=None)
        assert first.success
        # The row is re-imported after a (simulated) failure: the file kept in processed/ is used again.
        with env["engine"].begin() as conn:
            conn.execute(imports.update().values(status="failed", failure_kind="transient"))
        again = materialize(env, instance, key)
        assert again.success
        [materialization] = again.asset_materializations_for_node("import_batch")
        assert (materialization.metadata["inserted"].value, materialization.metadata["unchanged"].value) == (0, 2)
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == 2


def test_failure_sensor_rerequests_transient_failures_once(env):
    with env["engine"].begin() as conn:
        conn.execute(imports.insert(), [
            {"file_name": "a.csv", "sha256": "a" * 64, "size_bytes": 1, "status": "failed", "stage": "received",
             "failure_kind": "transient", "partition_key": "a-aaaaaaaaaaaa"},
            {"file_name": "b.csv", "sha256": "b" * 64, "size_bytes": 1, "status": "failed", "stage": "received",
             "failure_kind": "bad_input", "partition_key": "b-bbbbbbbbbbbb"},
        ])
    with dg.instance_for_test() as instance:
        def evaluate():
            with dg.build_sensor_context(instance=instance,
                                         resources=app_resources(env["url"])) as context:
                return import_failure_sensor(context)

        [request] = evaluate().run_requests
        assert request.partition_key == "a-aaaaaaaaaaaa"
        assert evaluate().run_requests == []


def test_import_job_is_partitioned_by_file_and_tagged_imports():
    job = definitions().resolve_job_def("import_job")
    assert job.partitions_def == import_files
    assert job.tags["nightshift/family"] == "imports"


def evaluate_failure_sensor(instance, url):
    with dg.build_sensor_context(instance=instance, resources=app_resources(url)) as context:
        return import_failure_sensor(context)


def test_stalled_registrations_are_rerequested_once_unless_a_run_is_in_flight(env):
    """`received` imports whose run never started them: re-requested once after the grace period; one
    with a run in flight for its partition, or registered recently, is left alone."""
    from dagster._core.test_utils import create_run_for_test

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    rows = [("old.csv", "o", long_ago), ("queued.csv", "q", long_ago), ("new.csv", "n", datetime.now(UTC))]
    with env["engine"].begin() as conn:
        conn.execute(imports.insert(), [
            {"file_name": name, "sha256": letter * 64, "size_bytes": 1, "status": "received", "stage": "received",
             "partition_key": f"{letter}-{letter * 12}", "created_at": created}
            for name, letter, created in rows])
    with dg.instance_for_test() as instance:
        create_run_for_test(instance, job_name="import_job", status=dg.DagsterRunStatus.STARTED,
                            tags={"dagster/partition": "q-qqqqqqqqqqqq"})
        [request] = evaluate_failure_sensor(instance, env["url"]).run_requests
        assert request.partition_key == "o-oooooooooooo" and request.run_key.startswith("import-stalled:")
        assert evaluate_failure_sensor(instance, env["url"]).run_requests == [], "once only"
    with env["engine"].connect() as conn:
        retries = dict(conn.execute(sa.select(imports.c.file_name, imports.c.auto_retries)).all())
    assert retries == {"old.csv": 1, "queued.csv": 0, "new.csv": 0}


def test_in_flight_paths_are_only_those_under_the_upload_folder(env, tmp_path):
    """The upload sensor loads the registered files still in uploads/, not the failed ones of the past
    (a sibling folder whose name extends `uploads` with `_` or `%` must not match either)."""
    from nightshift.imports.intake import _in_flight_paths

    uploads = load_settings().uploads_dir
    waiting = str(uploads / "cities" / "villes.csv")
    elsewhere = [str(env["data"] / "failed" / "2026-11-01" / "vieux.csv"), str(env["data"] / "uploads_old" / "a.csv"),
                 str(env["data"] / "uploads%" / "b.csv")]
    with env["engine"].begin() as conn:
        conn.execute(imports.insert(), [
            {"file_name": Path(p).name, "sha256": str(n) * 64, "size_bytes": 1, "status": "failed",
             "stage": "received", "file_path": p} for n, p in enumerate([waiting, *elsewhere])])
    assert _in_flight_paths(env["engine"], uploads) == {waiting}


def evaluate_as_the_daemon_does(instance):
    """The code server's own evaluation of import_failure_sensor (grpc impl): the definitions' resources,
    an instance ref, and every partitioned RunRequest checked against the instance's partitions."""
    from dagster._grpc.impl import get_external_sensor_execution

    result = get_external_sensor_execution(definitions().get_repository_def(), None, instance.get_ref(),
                                           "import_failure_sensor", None, None, None, None, None)
    assert not hasattr(result, "error"), result.error.to_string()
    return result


def backdate_registrations(engine, **since):
    with engine.begin() as conn:
        conn.execute(imports.update().values(created_at=datetime.now(UTC) - timedelta(**since)))


def test_stalled_registration_whose_sensor_tick_never_reached_dagster_is_added_and_requested(env):
    """upload_sensor committed the registration, then its tick was lost (timeout, daemon restart): no
    partition, no run. The failure sensor adds the partition with its request; without it the request
    fails the tick (unknown partition) after the claim, and the import would stay `received` forever."""
    (env["uploads"] / "villes.csv").write_text("nom;code_postal\nBourg;01000\n")
    with dg.instance_for_test() as instance:
        [lost] = tick(instance, tick(instance, None, env["url"]).cursor, env["url"]).run_requests
        assert not instance.has_dynamic_partition("import_files", lost.partition_key)
        backdate_registrations(env["engine"], hours=1)
        result = evaluate_as_the_daemon_does(instance)
        [request] = result.run_requests
        assert request.partition_key == lost.partition_key and request.run_key.startswith("import-stalled:")
        [add] = result.dynamic_partitions_requests
        assert (add.partitions_def_name, add.partition_keys) == ("import_files", [lost.partition_key])
        instance.add_dynamic_partitions("import_files", add.partition_keys)  # what the daemon does with it
        assert evaluate_as_the_daemon_does(instance).run_requests == [], "once only"
    row = import_log.by_partition(env["engine"], lost.partition_key)
    assert (row["status"], row["auto_retries"]) == ("received", 1)


def test_a_run_of_the_partition_from_any_job_keeps_a_stalled_import_waiting(env):
    """The UI's Materialize and asset backfills run the partition as __ASSET_JOB: while such a run is
    waiting to start, the import is not re-requested; once it ended without starting the import, it is."""
    from dagster._core.test_utils import create_run_for_test

    (env["uploads"] / "villes.csv").write_text("nom;code_postal\nBourg;01000\n")
    with dg.instance_for_test() as instance:
        [registered] = tick(instance, tick(instance, None, env["url"]).cursor, env["url"]).run_requests
        backdate_registrations(env["engine"], hours=1)
        waiting = create_run_for_test(instance, job_name="__ASSET_JOB", status=dg.DagsterRunStatus.NOT_STARTED,
                                      tags={"dagster/partition": registered.partition_key})
        assert evaluate_failure_sensor(instance, env["url"]).run_requests == []
        instance.report_run_canceled(waiting)
        [request] = evaluate_failure_sensor(instance, env["url"]).run_requests
        assert request.partition_key == registered.partition_key
        # The one automatic retry is spent: a transient failure of that run is not retried again.
        with env["engine"].begin() as conn:
            conn.execute(imports.update().values(status="failed", failure_kind="transient"))
        assert evaluate_failure_sensor(instance, env["url"]).run_requests == []


def test_upload_folder_whose_path_holds_like_wildcards(env, tmp_path, monkeypatch):
    """`_` and `%` in the data folder's path are literal in the in-flight prefix; files in flight (here a
    transient failure waiting for its retry) are still skipped by the upload sensor."""
    from nightshift.imports.intake import _in_flight_paths

    data = tmp_path / "lot_1%" / "data"
    monkeypatch.setenv("NIGHTSHIFT_DATA_DIR", str(data))
    (data / "uploads").mkdir(parents=True)
    (data / "uploads" / "villes.csv").write_text("nom;code_postal\nBourg;01000\n")
    # An unescaped prefix `…/lot_1%/data/uploads/%` would match both of these.
    decoys = [str(tmp_path / "lotX1%" / "data" / "uploads" / "a.csv"),
              str(tmp_path / "lot_1-old" / "data" / "uploads" / "b.csv")]
    with env["engine"].begin() as conn:
        conn.execute(imports.insert(), [
            {"file_name": Path(p).name, "sha256": str(n) * 64, "size_bytes": 1, "status": "failed",
             "stage": "received", "file_path": p} for n, p in enumerate(decoys)])
    with dg.instance_for_test() as instance:
        cursor = tick(instance, None, env["url"]).cursor
        [request] = tick(instance, cursor, env["url"]).run_requests
        with env["engine"].begin() as conn:
            conn.execute(imports.update().where(imports.c.partition_key == request.partition_key)
                         .values(status="failed", failure_kind="transient"))
        assert _in_flight_paths(env["engine"], data / "uploads") == {str(data / "uploads" / "villes.csv")}
        for _ in range(2):
            later = tick(instance, cursor, env["url"])
            assert later.run_requests == [] and json.loads(later.cursor) == {}, "skipped, not even tracked"
            cursor = later.cursor
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(imports)).scalar_one() == 3
