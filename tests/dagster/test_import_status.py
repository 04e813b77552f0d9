"""What the UI shows of an import: the run tag nightshift/import_status, the check's severity, the
provenance metadata and the Failure of a refused file; the account's phone region on the upload path;
the dry run's outcome kept out of Dagster's storage; the upload sensor's tick beside a long import log."""

import time
from pathlib import Path

import dagster as dg
import openpyxl
import sqlalchemy as sa

from assets.imports import STATUS_TAG, import_batch
from nightshift.config import load_settings
from nightshift.db.schema import accounts, clients, imports
from nightshift.imports import log as import_log
from sensors.imports import import_failure_sensor, upload_sensor
from tests.conftest import app_resources, definitions

CITIES = "nom;code_postal\nBourg;01000\nLyon;69001\nParis;75001\n"
# One row of four invalid: a partial import.
CITIES_PARTIAL = "nom;code_postal\nBourg;01000\nLyon;69001\nParis;75001\nNulle;x\n"
# Two phone numbers of three invalid (67 %, over imports.abort_invalid_ratio): nothing written.
BAD_PHONE = "12345678901234"
CLIENTS_MOSTLY_INVALID = f"telephone;prenom;nom\n{BAD_PHONE};Awa;Traoré\n{BAD_PHONE}9;Moussa;Keïta\n70 12 34 56;A;B\n"


def tick(instance, cursor, url):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=app_resources(url)) as context:
        return upload_sensor(load_settings())(context)


def upload_and_run(env, instance, relative: str, content: str | bytes):
    """Drop a file in data/uploads/, let the sensor register it, run its partition as the daemon would."""
    path = env["uploads"] / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = tick(instance, tick(instance, None, env["url"]).cursor, env["url"])
    [request] = result.run_requests
    instance.add_dynamic_partitions("import_files", [request.partition_key])
    return dg.materialize([import_batch], instance=instance, partition_key=request.partition_key,
                          tags=request.tags, resources=app_resources(env["url"]), raise_on_error=False)


def status_tag(instance, result) -> str:
    return instance.get_run_by_id(result.run_id).tags[STATUS_TAG]


def failure_of(result):
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.event_specific_data.user_failure_data
    return data.description, {k: v.value for k, v in data.metadata.items()}


def test_a_partial_import_is_tagged_partial_and_warns(env):
    with dg.instance_for_test() as instance:
        partial = upload_and_run(env, instance, "cities/villes.csv", CITIES_PARTIAL)
        assert partial.success, "a partial import is a successful run"
        assert status_tag(instance, partial) == "partial"
        [check] = partial.get_asset_check_evaluations()
        assert (check.check_name, check.passed, check.severity) == ("invalid_row_rate", False,
                                                                    dg.AssetCheckSeverity.WARN)
        [materialization] = partial.asset_materializations_for_node("import_batch")
        assert materialization.metadata["file_name"].value == "villes.csv"
        assert materialization.metadata["status"].value == "partial"


def test_a_clean_import_is_tagged_succeeded_and_its_check_passes(env):
    with dg.instance_for_test() as instance:
        clean = upload_and_run(env, instance, "cities/villes.csv", CITIES)
        assert clean.success and status_tag(instance, clean) == "succeeded"
        [check] = clean.get_asset_check_evaluations()
        assert check.passed


def test_metadata_names_the_original_file_its_sheet_and_the_account(env, tmp_path):
    with env["engine"].begin() as conn:
        conn.execute(accounts.insert().values(slug="lyon", name="Lyon"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Villes du Rhône"
    for row in (["nom", "code_postal"], ["Lyon", "69001"], ["Villeurbanne", "69100"]):
        sheet.append(row)
    book.save(tmp_path / "book.xlsx")
    with dg.instance_for_test() as instance:
        workbook = (tmp_path / "book.xlsx").read_bytes()
        result = upload_and_run(env, instance, "lyon/cities/Communes été 2026.xlsx", workbook)
        assert result.success
        metadata = {k: v.value for k, v in result.asset_materializations_for_node("import_batch")[0].metadata.items()}
    assert (metadata["file_name"], metadata["sheet"], metadata["account"]) == (
        "Communes été 2026.xlsx", "Villes du Rhône", "lyon")


def test_a_data_failure_is_tagged_failed_with_its_reason_and_a_masked_preview(env):
    with dg.instance_for_test() as instance:
        result = upload_and_run(env, instance, "clients/clients.csv", CLIENTS_MOSTLY_INVALID)
        assert not result.success and status_tag(instance, result) == "failed"
        description, metadata = failure_of(result)
    assert "abort_invalid_ratio" in description and "clients.csv" in description
    assert (metadata["failure_kind"], metadata["file_name"], metadata["invalid"]) == ("bad_input", "clients.csv", 2)
    assert "invalid_phone" in metadata["errors_preview"] and "12345••" in metadata["errors_preview"]
    assert BAD_PHONE not in str(metadata), "the rejected values are masked"


def test_no_profile_matches_says_which_upload_folder_to_use_not_a_cli_option(env):
    with dg.instance_for_test() as instance:
        result = upload_and_run(env, instance, "inconnu.csv", "colonne;autre\n1;2\n")
        assert not result.success and status_tag(instance, result) == "failed"
        description, metadata = failure_of(result)
    uploads = str(load_settings().uploads_dir)
    assert "--profile" not in description
    assert f"{uploads}/<profil>/" in description and f"{uploads}/<compte>/<profil>/" in description
    assert metadata["file_name"] == "inconnu.csv"


def test_an_upload_of_an_account_is_read_in_the_accounts_phone_region(env):
    """A French account's national numbers are valid (the default region is ML)."""
    with env["engine"].begin() as conn:
        conn.execute(accounts.insert().values(slug="paris", name="Paris", phone_region="FR"))
    content = "telephone;prenom;nom\n06 12 34 56 78;Jean;Dupont\n01 23 45 67 89;Marie;Curie\n"
    with dg.instance_for_test() as instance:
        result = upload_and_run(env, instance, "paris/clients/clients.csv", content)
        assert result.success and status_tag(instance, result) == "succeeded"
    with env["engine"].connect() as conn:
        phones = sorted(conn.execute(sa.select(clients.c.phone)).scalars())
    assert phones == ["+33123456789", "+33612345678"]


def dry_run_job() -> dg.JobDefinition:
    return definitions().resolve_job_def("import_dry_run")


def test_a_dry_run_keeps_the_rejected_values_out_of_dagster_storage(env, tmp_path):
    """Run as the daemon runs a job launched from the UI (its IO managers, not execute_in_process's
    in-memory default); the CLI reads the outcome from the run's memory (execute_in_process)."""
    path = tmp_path / "clients.csv"
    path.write_text(f"telephone;prenom;nom\n{BAD_PHONE};Awa;Traoré\n70 12 34 56;A;B\n70 12 34 57;C;D\n")
    run_config = {"ops": {"dry_run_import": {"config": {"path": str(path), "profile": "clients"}}}}
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        with dg.execute_job(dg.reconstructable(dry_run_job), instance, run_config=run_config) as result:
            assert result.success
            run_id = result.run_id
        in_process = dry_run_job().execute_in_process(instance=instance, run_config=run_config)
        outcome = in_process.output_for_node("dry_run_import")
        assert (outcome.status, outcome.errors[0]["value"]) == ("partial", BAD_PHONE)
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(run_id.encode() in p.read_bytes() for p in stored), "the files searched hold the run's records"
    holding = [str(p.relative_to(home)) for p in stored if BAD_PHONE.encode() in p.read_bytes()]
    assert holding == [], f"raw values of rejected cells in Dagster's storage: {holding}"


def test_a_tick_stays_fast_beside_fifty_thousand_failed_imports(env):
    """The in-flight check loads only the imports whose file is still under data/uploads/."""
    failed_dir = env["data"] / "failed" / "2026-11-01"
    rows = [{"file_name": f"f{i}.csv", "file_path": str(failed_dir / f"f{i}.csv"), "sha256": f"{i:064x}",
             "size_bytes": 1, "status": "failed", "stage": "received", "failure_kind": "bad_input",
             "partition_key": f"f{i}-key", "dagster_run_id": "run"} for i in range(50_000)]
    with env["engine"].begin() as conn:
        conn.execute(imports.insert(), rows)
    (env["uploads"] / "cities").mkdir()
    (env["uploads"] / "cities" / "villes.csv").write_text(CITIES)
    with dg.instance_for_test() as instance:
        resources = app_resources(env["url"])
        sensor = upload_sensor(load_settings())
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            started = time.monotonic()
            first = sensor(context)
            first_s = time.monotonic() - started
        with dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources) as context:
            started = time.monotonic()
            second = sensor(context)
            second_s = time.monotonic() - started
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            started = time.monotonic()
            import_failure_sensor(context)
            failure_s = time.monotonic() - started
    assert len(second.run_requests) == 1
    assert max(first_s, second_s, failure_s) < 2, (first_s, second_s, failure_s)
    assert Path(import_log.by_partition(env["engine"], second.run_requests[0].partition_key)["file_path"]).exists()
