"""The dry-run job's preview of changes in the UI: one row per line of the file with what the import
would do to it, values masked (no personal data in Dagster's storage); nothing written."""

import dagster as dg
import sqlalchemy as sa

from nightshift.config import load_settings
from nightshift.db.schema import clients
from nightshift.imports.service import ImportOptions, run_import
from tests.conftest import definitions


def test_the_dry_run_job_lists_the_first_rows_changes_with_values_masked(env, tmp_path):
    first = tmp_path / "clients.csv"
    first.write_text("telephone;prenom;nom\n+22370123456;Awa;Traoré\n+22376543210;Moussa;Keïta\n")
    run_import(env["engine"], first, load_settings(), ImportOptions(profile="clients"))
    second = tmp_path / "clients-2.csv"
    second.write_text("telephone;prenom;nom\n+22370123456;Awa;Diarra\n+22365012345;Fanta;Coulibaly\nabc;X;Y\n")
    config = {"path": str(second), "profile": "clients", "preview_rows": 10}
    with dg.instance_for_test() as instance:
        result = definitions().resolve_job_def("import_dry_run").execute_in_process(
            instance=instance, run_config={"ops": {"dry_run_import": {"config": config}}})
    [metadata] = [e.event_specific_data.metadata for e in result.all_events if e.is_successful_output]
    assert metadata["changes_preview"].value.splitlines()[2:] == [
        "| 2 | changed | nom: T••• → D••• |",
        "| 3 | new |  |",
        "| 4 | invalid | telephone: invalid_phone |",
    ]
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(clients)).scalar() == 2
