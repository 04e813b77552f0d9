"""A backfill of all failed `import_batch` partitions, launched as the UI launches it and run by Dagster's
own daemon code.

Why this machinery: an asset backfill is a `PartitionBackfill` stored on the instance; the backfill daemon
turns it into runs, the run queue daemon launches them. The test goes through the same steps in process:
the failed partitions are read from the asset's partition status (the GraphQL query behind the UI's
"failed" filter) and compared with `recovery.failed_partition_keys` (the import log's view); the backfill
is of those a backfill can fix (`log.failed_partitions`, what `nightshift imports failed-partitions`
lists: not a file that failed on its data and was not fixed), submitted with the UI's GraphQL mutation
`launchPartitionBackfill` (which calls `instance.add_backfill`); then one iteration at a time of the
backfill daemon (`execute_backfill_iteration`) and of the queued-run daemon (the project's dagster.yaml:
QueuedRunCoordinator with the tag limits) until the backfill is complete. Only the run launcher is swapped
for Dagster's synchronous test launcher, so each run executes in this process instead of a new process per
run. `dagster job backfill` from the command line is tested in tests/cli/test_backfill.py.
"""

import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster_graphql.test.utils import execute_dagster_graphql

from nightshift.config import load_settings
from nightshift.db.schema import cities, imports
from nightshift.imports import log as import_log
from nightshift.imports import recovery
from resources.families import initialize_pools
from sensors.imports import upload_sensor
from tests.conftest import PROJECT_ROOT, app_resources, definitions

FAILED_PARTITIONS = """
query ($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode { assetPartitionStatuses { ... on DefaultPartitionStatuses { failedPartitions } } }
  }
}"""

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


@contextmanager
def nightshift_workspace(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The code location `nightshift` (pipelines.definitions), loaded in process as the daemons see it."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="pipelines.definitions",
                             working_directory=str(PROJECT_ROOT)),
        location_name="nightshift",
    )
    # Runs execute in this process (in-process executor): Dagster keeps the last job it loaded per process,
    # which here would be the previous test's, built with that test's database settings.
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as context:
        yield context


def failed_in_dagster(workspace: WorkspaceProcessContext) -> list[str]:
    result = execute_dagster_graphql(workspace.create_request_context(), FAILED_PARTITIONS,
                                     {"assetKey": {"path": ["import_batch"]}})
    return sorted(result.data["assetNodeOrError"]["assetPartitionStatuses"]["failedPartitions"])


def launch_backfill(workspace: WorkspaceProcessContext, partition_keys: list[str]) -> str:
    result = execute_dagster_graphql(workspace.create_request_context(), LAUNCH_BACKFILL, {"params": {
        "assetSelection": [{"path": ["import_batch"]}], "partitionNames": partition_keys,
        "title": "failed imports",
    }})
    launched = result.data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def run_daemons_until_done(workspace: WorkspaceProcessContext, backfill_id: str) -> BulkActionStatus:
    instance = workspace.instance
    queue = QueuedRunCoordinatorDaemon(interval_seconds=1)
    logger = logging.getLogger("nightshift.tests.backfill")
    deadline = time.monotonic() + 240
    while True:
        errors = [e for e in execute_backfill_iteration(workspace, logger) if e is not None]
        errors += [e for e in queue.run_iteration(workspace) if e is not None]
        assert errors == [], errors
        status = instance.get_backfill(backfill_id).status
        if status != BulkActionStatus.REQUESTED:
            return status
        assert time.monotonic() < deadline, "the backfill did not finish in time"


def test_backfill_of_all_failed_partitions_reimports_each_file_once(env):
    folder = env["uploads"] / "cities"
    folder.mkdir()
    (folder / "bon.csv").write_text("nom;code_postal\nBourg;01000\nLyon;69001\n")
    (folder / "colonnes.csv").write_text("nom;population\nAgen;33000\nLyon;520000\n")  # no code_postal column
    (folder / "codes.csv").write_text("nom;code_postal\nPau;XYZ\nTarbes;6\n")  # every row invalid: nothing written
    (folder / "entete.csv").write_text("commune;population\nDax;20000\n")  # no postal code: left unfixed
    instance_config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides=instance_config, synchronous_run_launcher=True) as instance:
        with dg.build_sensor_context(instance=instance, resources=app_resources(env["url"])) as ctx:
            sensor = upload_sensor(load_settings())
            ctx.update_cursor(sensor(ctx).cursor)
            registered = sensor(ctx)
        assert len(registered.run_requests) == 4
        instance.add_dynamic_partitions("import_files", [r.partition_key for r in registered.run_requests])
        job = definitions().resolve_job_def("import_job")
        for request in registered.run_requests:
            job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                   raise_on_error=False)
        with env["engine"].connect() as conn:
            first = {r.file_name: r for r in conn.execute(sa.select(imports)).all()}
            assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == 2
        assert {name: r.status for name, r in first.items()} == {
            "bon.csv": "succeeded", "colonnes.csv": "failed", "codes.csv": "failed", "entete.csv": "failed"}
        # The operator fixes both rejected files where they were kept (failed/<date>/).
        for name, fixed in {"colonnes.csv": "nom;code_postal\nAgen;47000\nLyon;69001\n",
                            "codes.csv": "nom;code_postal\nPau;64000\nTarbes;65000\n"}.items():
            kept = Path(first[name].file_path)
            assert kept.parent.parent == env["data"] / "failed"
            kept.write_text(fixed)

        unfixed = first["entete.csv"].partition_key
        failed = recovery.failed_partition_keys(env["engine"])
        assert failed == sorted(first[name].partition_key for name in ("colonnes.csv", "codes.csv", "entete.csv"))
        fixable = [f["partition_key"] for f in import_log.failed_partitions(env["engine"]) if f["backfill"]]
        assert fixable == sorted([first["colonnes.csv"].partition_key, first["codes.csv"].partition_key])
        with nightshift_workspace(instance) as workspace:
            assert failed_in_dagster(workspace) == failed
            backfill_id = launch_backfill(workspace, fixable)
            assert run_daemons_until_done(workspace, backfill_id) == BulkActionStatus.COMPLETED_SUCCESS
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            assert sorted(r.tags["dagster/partition"] for r in runs) == fixable, "one run per fixable partition"
            assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
            assert failed_in_dagster(workspace) == [unfixed]

    assert recovery.failed_partition_keys(env["engine"]) == [unfixed]
    [left] = import_log.failed_partitions(env["engine"])
    assert (left["partition_key"], left["kind"], left["backfill"]) == (unfixed, "data", False)
    with env["engine"].connect() as conn:
        after = {r.file_name: r for r in conn.execute(sa.select(imports)).all()}
        names = sorted(conn.execute(sa.select(cities.c.name)).scalars())
    # The same import rows were re-run (no new registration), each file now in processed/.
    assert {name: r.id for name, r in after.items()} == {name: r.id for name, r in first.items()}
    assert {name: r.status for name, r in after.items()} == {**dict.fromkeys(first, "succeeded"),
                                                             "entete.csv": "failed"}
    for name in ("colonnes.csv", "codes.csv"):  # the log describes the file as fixed, not as first uploaded
        fixed = Path(after[name].file_path).read_bytes()
        assert (after[name].sha256, after[name].size_bytes) == (hashlib.sha256(fixed).hexdigest(), len(fixed))
        assert after[name].sha256 != first[name].sha256
    for name, row in after.items():
        path = Path(row.file_path)
        folder = "failed" if name == "entete.csv" else "processed"
        assert path.parent.parent == env["data"] / folder and path.exists(), row.file_path
    # Idempotent: Lyon, already imported by bon.csv, is left unchanged rather than duplicated.
    assert (after["colonnes.csv"].inserted, after["colonnes.csv"].unchanged) == (1, 1)
    assert (after["codes.csv"].inserted, after["codes.csv"].invalid) == (2, 0)
    assert names == ["Agen", "Bourg", "Lyon", "Pau", "Tarbes"]


def test_a_backfill_starts_no_more_import_runs_at_once_than_the_imports_limit(tmp_path):
    """Backfill runs (launched as the UI launches them) carry none of the job's tags: the `imports` pool,
    limited per run in dagster.yaml, is what keeps them to 4 at a time. The runs are launched by a
    launcher that never finishes them, so the queue daemon shows what it lets start."""
    instance_config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    instance_config["run_launcher"] = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
    keys = [f"fichier-{n}" for n in range(6)]
    with dg.instance_for_test(overrides=instance_config) as instance:
        instance.add_dynamic_partitions("import_files", keys)
        initialize_pools(instance)  # as `nightshift init` does
        with nightshift_workspace(instance) as workspace:
            launch_backfill(workspace, keys)
            logger = logging.getLogger("nightshift.tests.backfill")
            assert [e for e in execute_backfill_iteration(workspace, logger) if e is not None] == []
            assert len(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))) == 6
            assert [e for e in QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace)
                    if e is not None] == []
            started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING]))
            queued = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    assert (len(started), len(queued)) == (4, 2)
    assert all("nightshift/family" not in run.tags for run in started + queued)
