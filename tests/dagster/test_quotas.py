"""The quotas domain in Dagster, on SQLite and PostgreSQL: monthly partitions in the service's time zone,
the month-opening job, the schedule's partition, expired holds, and the reconcile check."""

import json
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa

from nightshift.config import QuotaSettings
from nightshift.db.schema import token_ledger, token_periods
from nightshift.quotas import TokenLedger
from nightshift.quotas.accounts import add_account
from nightshift.quotas.periods import month_of
from tests.conftest import definitions, nightshift


def _open(month: str, **config) -> dict | None:
    """Run the month-opening job as the schedule does: the token_periods metadata, None when the run failed."""
    job = definitions().resolve_job_def("token_month_opening")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, partition_key=month, raise_on_error=False,
                                        run_config={"ops": {"token_periods": {"config": config}}} if config else None)
        if not result.success:
            return None
        [event] = result.asset_materializations_for_node("token_periods")
        return {key: getattr(value, "value", value) for key, value in event.metadata.items()}


def test_months_are_partitions_in_the_service_time_zone_and_the_schedule_opens_the_new_one(env, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_TIMEZONE", "Africa/Kinshasa")
    defs = definitions()
    job = defs.resolve_job_def("token_month_opening")
    keys = job.partitions_def.get_partition_keys()
    assert keys[0] == "2026-01"
    assert keys[-1] == f"{month_of(datetime.now(UTC), ZoneInfo('Africa/Kinshasa')):%Y-%m}"  # the current month
    schedule = defs.get_repository_def().get_schedule_def("token_month_opening_monthly")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 0 1 * *", "Africa/Kinshasa")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = datetime(2026, 11, 1, 0, 0, tzinfo=ZoneInfo("Africa/Kinshasa"))
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.partition_key == "2026-11"


def test_opening_a_month_twice_is_the_same_as_once_and_says_already_open(env):
    add_account(env["engine"], "fox", 20_000)
    add_account(env["engine"], "adha", 5_000)
    first = _open("2026-10")
    assert {k: v for k, v in first.items() if k != "low_balance_accounts"} == {
        "month": "2026-10", "accounts_opened": 2, "accounts_already_open": 0, "tokens_granted": 25_000,
        "tokens_rolled_over": 0, "tokens_regranted": 0, "accounts_low_balance": 1}
    second = _open("2026-10")
    assert (second["accounts_opened"], second["accounts_already_open"]) == (0, 2)
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_ledger)).scalar_one() == 2


def test_a_forced_reset_without_a_reason_fails_its_run_and_writes_nothing(env):
    add_account(env["engine"], "fox", 20_000)
    assert _open("2026-10", force=True, reason=" ") is None
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_periods)).scalar_one() == 0


def test_a_cli_reset_and_a_scheduled_run_of_the_same_month_at_once_grant_once(env, tmp_path):
    for n in range(200):
        add_account(env["engine"], f"account-{n:03d}", 1_000)
    cli_env = {"PATH": "/usr/bin:/bin", "NIGHTSHIFT_DATABASE_URL": env["url"], "NIGHTSHIFT_DATA_DIR": str(env["data"]),
               "NIGHTSHIFT_CONFIG": str(tmp_path / "nightshift.yaml"), "DAGSTER_HOME": str(tmp_path / "cli_home")}
    outcome = {}
    scheduled = threading.Thread(target=lambda: outcome.update(result=_open("2026-10")))
    scheduled.start()
    cli = nightshift("tokens", "reset", "--month", "2026-10", "--json", env=cli_env, cwd=tmp_path)
    scheduled.join()
    assert cli.returncode == 0, cli.stderr
    opened_by_cli = json.loads(cli.stdout.strip().splitlines()[-1])["opened"]
    opened_by_schedule = outcome["result"]["accounts_opened"]
    assert opened_by_cli + opened_by_schedule == 200
    with env["engine"].connect() as conn:
        grants = conn.execute(sa.select(token_ledger.c.idempotency_key).where(token_ledger.c.entry_kind == "grant")
                              ).scalars().all()
        granted = conn.execute(sa.select(sa.func.sum(token_periods.c.granted))).scalar_one()
    assert (len(grants), len(set(grants)), granted) == (200, 200, 200_000)


def test_the_expiry_job_ends_a_crashed_request_s_hold_once(env):
    add_account(env["engine"], "fox", 20_000)
    ledger = TokenLedger(env["engine"], QuotaSettings(), ZoneInfo("UTC"))
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    ledger.reserve("fox", 3_000, "crashed", ttl_seconds=60, now=long_ago)
    job = definitions().resolve_job_def("release_expired_reservations")
    with dg.instance_for_test() as instance:
        runs = [job.execute_in_process(instance=instance) for _ in range(2)]
        expired = [e.event_specific_data.metadata for run in runs for e in run.all_events
                   if e.event_type_value == "STEP_OUTPUT"]
    assert [(m["holds_expired"].value, m["tokens_returned"].value) for m in expired] == [(1, 3_000), (0, 0)]
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(token_periods.c.reserved)).scalar_one() == 0


def test_the_reconcile_check_fails_with_error_on_a_drift_and_says_by_how_much(env):
    add_account(env["engine"], "fox", 20_000)
    ledger = TokenLedger(env["engine"], QuotaSettings(), ZoneInfo("UTC"))
    reservation = ledger.reserve("fox", 1_000, "a")
    ledger.settle(reservation.reservation_id, 700)
    job = definitions().resolve_job_def("token_reconcile")

    def check() -> dg.AssetCheckEvaluation:
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(instance=instance)
        assert result.success
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    assert check().passed
    with env["engine"].begin() as conn:
        conn.execute(token_periods.update().values(used=token_periods.c.used + 250))
    failed = check()
    assert (failed.passed, failed.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert (failed.metadata["periods_drifted"].value, failed.metadata["used_drift"].value) == (1, 250)
    assert "fox" in failed.metadata["drifts"].value
    with dg.instance_for_test() as instance:
        repaired = job.execute_in_process(instance=instance,
                                          run_config={"ops": {"token_balances": {"config": {"repair": True}}}})
    assert repaired.success
    assert check().passed
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(token_periods.c.used)).scalar_one() == 700


def test_a_month_reserved_before_the_schedule_ran_is_opened_on_demand_and_the_run_finds_it_open(env):
    add_account(env["engine"], "fox", 20_000)
    TokenLedger(env["engine"], QuotaSettings(), ZoneInfo("UTC")).reserve(
        "fox", 10, "early", now=datetime(2026, 10, 1, 0, 0, 1, tzinfo=UTC))
    assert _open("2026-10")["accounts_already_open"] == 1
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(token_periods.c.period_start)).scalar_one() == date(2026, 10, 1)
