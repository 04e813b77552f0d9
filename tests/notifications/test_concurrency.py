"""Scenarios on SQLite and PostgreSQL with sweeps in separate processes against a local WaChap server:
two concurrent sweeps, a CLI sweep beside the job run as a run worker runs it, SIGKILL mid-batch, and
an outage followed by recovery. Nothing is lost and no message the provider accepted is sent twice."""

import json
import os
import signal
import subprocess
import time
from datetime import timedelta

import sqlalchemy as sa

from nightshift.db.schema import notifications
from nightshift.notification_settings import BackoffPolicy, BreakerSettings, NotificationSettings
from nightshift.notifications import outbox, sweep
from nightshift.notifications.outbox import now_utc
from tests.conftest import NIGHTSHIFT, PROJECT_ROOT
from tests.notifications.fake_provider import fast_settings, ok, status, wachap_backend

PYTHON = str(PROJECT_ROOT / ".venv" / "bin" / "python")


def fill(db, count, settings=None, **request):
    """`count` due notifications with distinct bodies and distinct, real-looking Malian numbers."""
    settings = settings or NotificationSettings()
    rows = [outbox.prepare(settings, source_app="cargo", to=f"+2237{n:07d}", body=f"colis {n}",
                           message_type=request.get("message_type", "colis_status"),
                           priority=request.get("priority", n % 5 + 1)) for n in range(count)]
    with db.begin() as conn:
        outbox.enqueue_rows(conn, rows)
    return rows


def statuses(db):
    with db.connect() as conn:
        return dict(conn.execute(sa.select(notifications.c.status, sa.func.count()).group_by(notifications.c.status))
                    .all())


def sweeper(db, server):
    url = db.url.render_as_string(hide_password=False)
    return subprocess.Popen([PYTHON, "-m", "tests.notifications.sweeper", url, server.url], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_sweep_processes_send_5000_messages_once_each(db, wachap_server):
    fill(db, 5000)
    first, second = sweeper(db, wachap_server), sweeper(db, wachap_server)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(s["sent"] for s in summaries) == 5000
    assert len(wachap_server.accepted) == 5000 and max(wachap_server.accepted.values()) == 1
    assert statuses(db) == {"sent": 5000}


def test_a_cli_sweep_beside_the_job_run_by_a_run_worker(db, wachap_server, tmp_path):
    fill(db, 1500)
    url = db.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")}
    config = tmp_path / "nightshift.yaml"
    config.write_text("notifications:\n  pacing:\n    wachap: {min_interval_seconds: 0, max_concurrency: 8}\n")
    env.update(NIGHTSHIFT_DATABASE_URL=url, NIGHTSHIFT_CONFIG=str(config), DAGSTER_HOME=str(tmp_path / "home"),
               NIGHTSHIFT_DATA_DIR=str(tmp_path / "data"), NIGHTSHIFT_WHATSAPP_PROVIDER="wachap",
               NIGHTSHIFT_WACHAP_BASE_URL=wachap_server.url, NIGHTSHIFT_WACHAP_API_KEY="k",
               NIGHTSHIFT_WACHAP_ACCOUNT_ID="acc")
    worker = ("import dagster as dg\n"
              "from nightshift.config import load_settings\n"
              "from pipelines.definitions import build_definitions\n"
              "job = build_definitions(load_settings()).resolve_job_def('notification_sweep')\n"
              "with dg.DagsterInstance.get() as instance:\n"
              "    result = job.execute_in_process(instance=instance, tags={'nightshift/launched_by': 'daemon'})\n"
              "    assert result.success\n")
    (tmp_path / "home").mkdir()
    # The daemon's instance exists before anyone sweeps from a terminal; two processes creating a fresh
    # SQLite instance storage at once race on its tables ("table job_ticks already exists").
    subprocess.run([PYTHON, "-c", "import dagster as dg; dg.DagsterInstance.get().dispose()"], cwd=PROJECT_ROOT,
                   env=env, check=True, capture_output=True)
    run_worker = subprocess.Popen([PYTHON, "-c", worker], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    cli = subprocess.Popen([NIGHTSHIFT, "notify", "sweep", "--json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    worker_out, cli_out = run_worker.communicate(timeout=300), cli.communicate(timeout=300)
    assert run_worker.returncode == 0, worker_out[1][-3000:]
    assert cli.returncode == 0, cli_out[1][-3000:]
    assert len(wachap_server.accepted) == 1500 and max(wachap_server.accepted.values()) == 1
    assert statuses(db) == {"sent": 1500}


def test_sigkill_mid_batch_loses_nothing_and_resends_nothing_accepted(db, wachap_server):
    fill(db, 400)
    wachap_server.latency = 0.02
    process = sweeper(db, wachap_server)
    deadline = time.monotonic() + 60
    while sum(wachap_server.accepted.values()) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    accepted_before = dict(wachap_server.accepted)
    assert 60 <= len(accepted_before) < 400
    settings = fast_settings()
    # The dead sweep's leases run out (its rows' and, on SQLite, the sweep lease it held).
    time.sleep(max(settings.lease_seconds, settings.sweep_lease_seconds) + 0.5)
    summary = sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    assert max(wachap_server.accepted.values()) == 1  # nothing the provider accepted went twice
    counts = statuses(db)
    assert set(counts) <= {"sent", "unknown"} and sum(counts.values()) == 400  # nothing lost
    assert counts.get("unknown", 0) == summary.counts["reaped_unknown"]
    with db.connect() as conn:
        unknown = {r.body for r in conn.execute(sa.select(notifications.c.body)
                                                .where(notifications.c.status == "unknown"))}
        sent = {r.body for r in conn.execute(sa.select(notifications.c.body).where(notifications.c.status == "sent"))}
    # A request that may have left waits for its receipt; every accepted one is accounted for.
    assert set(accepted_before) <= sent | unknown
    assert sent | unknown == {f"colis {n}" for n in range(400)}


def test_outage_then_recovery_drains_by_priority_with_jitter_and_loses_nothing(db, wachap_server):
    policy = BackoffPolicy(base_seconds=0.6, factor=1.0, cap_seconds=0.6, max_attempts=10, jitter="plus_minus")
    settings = fast_settings(backoff={"default": policy, "short": policy},
                             breaker=BreakerSettings(probe_interval_seconds=1, half_open_messages=3))
    fill(db, 300, settings)
    wachap_server.default = lambda request: status(503)
    wachap_server.probe_status = 503
    for _ in range(3):  # the outage: every send fails, then the breaker holds the rest
        sweep.run_sweep(db, settings, wachap_backend(wachap_server))
        time.sleep(0.7)
    with db.connect() as conn:
        due_times = [r.next_attempt_at for r in conn.execute(sa.select(notifications.c.next_attempt_at)
                                                             .where(notifications.c.status == "failed_retry"))]
    assert len(set(due_times)) > len(due_times) * 0.9  # spread out, not in lockstep
    outage_sends = len(wachap_server.sends())
    assert outage_sends < 300  # the open breaker stopped hammering the provider
    wachap_server.default = lambda request: ok()
    wachap_server.probe_status = 200
    deadline = time.monotonic() + 60
    while statuses(db).get("sent", 0) < 300 and time.monotonic() < deadline:
        time.sleep(1.1)  # the probe is due
        sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    assert statuses(db) == {"sent": 300}
    assert len(wachap_server.accepted) == 300 and max(wachap_server.accepted.values()) == 1
    recovered = [r["json"]["data"]["content"] for r in wachap_server.sends()[outage_sends:]
                 if r["json"] and "content" in r["json"]["data"]]
    order = {f"colis {n}": n % 5 + 1 for n in range(300)}
    accepted_order = [order[body] for body in recovered if body in wachap_server.accepted]
    first_half, second_half = accepted_order[:150], accepted_order[150:]
    assert sum(first_half) / len(first_half) < sum(second_half) / len(second_half)


def test_an_otp_due_after_its_ttl_in_a_backlog_is_never_sent(db, wachap_server):
    fill(db, 20, message_type="otp")
    with db.begin() as conn:
        conn.execute(notifications.update().values(expires_at=now_utc() - timedelta(seconds=1)))
    sweep.run_sweep(db, fast_settings(), wachap_backend(wachap_server))
    assert statuses(db) == {"expired": 20} and not wachap_server.sends()
