"""The upload path follows the account's imports.column_maps: a file dropped in data/uploads/<account>/ whose
headers match no spelling imports with the account's map (the asset passes the account, not the map)."""

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from nightshift.db.schema import accounts, clients
from tests.dagster.test_import_status import status_tag, upload_and_run

CONTACTS = "Portable;Prénom;Nom de famille\n+22370123456;Awa;Traoré\n"


def test_an_upload_of_an_account_reads_its_headers_with_the_accounts_map(env, tmp_path):
    Path(tmp_path / "nightshift.yaml").write_text(
        "imports:\n  settle_seconds: 0\n"
        "  column_maps:\n    paris:\n      Portable: telephone\n      Nom de famille: nom\n")
    with env["engine"].begin() as conn:
        conn.execute(accounts.insert().values(slug="paris", name="Paris"))
    with dg.instance_for_test() as instance:
        result = upload_and_run(env, instance, "paris/contacts.csv", CONTACTS)
        assert result.success and status_tag(instance, result) == "succeeded"
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(clients.c.phone, clients.c.last_name)).all() == [("+22370123456", "Traoré")]
