"""Notification sweep benchmark: our sweep vs the old pattern, measured side by side in one run.

A local WaChap-speaking server (0 ms and 50 ms of latency per request) receives the messages of
BENCH_NOTIFICATIONS (default 50,000) due notifications with distinct Malian numbers. Measured:
- our sweep (a subprocess, so its peak memory is its own) on PostgreSQL and SQLite: sends/s, peak RSS;
- at 50 ms, on BENCH_SLOW_NOTIFICATIONS (default 5,000): sends/s against 0.8 × concurrency × 20/s;
- pacing: an account limited to 70 sends/s (Meta's default): the rate the server measured;
- the old pattern: one row at a time, its row lock held across the HTTP call (PostgreSQL SELECT … FOR
  UPDATE; SQLite BEGIN IMMEDIATE), on BENCH_OLD_NOTIFICATIONS (default 2,000; 200 at 50 ms);
- the path users take: `make run`'s `dagster dev` with a PostgreSQL app database and the WaChap backend
  pointed at the local server; the notifications are enqueued, the outbox sensor starts the sweep: its
  run's sends/s (run worker start-up included) and the seconds from the enqueue to the last send.
Duplicates (a recipient accepted twice) are counted everywhere and must be 0. Targets: ≥ 1,000 sends/s
on PostgreSQL at 0 ms; ≥ 0.8 × (concurrency × 20/s) at 50 ms; the paced rate ≤ its limit; peak memory
of the sweep ≤ 200 MB.
"""

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from bench._shared import PROJECT_ROOT, create_pg_database, drop_pg_database, write_section
from nightshift.db import migrate
from nightshift.db.engine import create_engine, is_sqlite, write_transaction
from nightshift.db.schema import notifications
from nightshift.notification_settings import NotificationSettings, Pacing
from nightshift.notifications import outbox
from nightshift.notifications.providers import OutboundMessage, Timeouts, WaChapBackend
from nightshift.notifications.sweep import run_sweep

CONCURRENCY = 8
PACED_RATE = 70


class Provider(ThreadingHTTPServer):
    """Accepts every message after `latency` seconds; counts each recipient and when it was accepted."""

    daemon_threads = True
    request_queue_size = 512

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = 0.0
        self.lock = threading.Lock()
        self.accepted: Counter = Counter()
        self.times: list[float] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self, latency: float) -> None:
        with self.lock:
            self.latency, self.accepted, self.times = latency, Counter(), []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.latency:
            time.sleep(self.server.latency)
        with self.server.lock:
            self.server.accepted[payload["data"]["to"]] += 1
            self.server.times.append(time.monotonic())
        body = b'{"success": true, "messageId": "m"}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.wfile.write(head.encode() + body)  # one write: no Nagle / delayed-ACK stall between the parts


BATCH_SIZE, SWEEP_MAX_SECONDS = 500, 3600
SWEEP_RUNS = ('{ runsOrError(filter: {pipelineName: "notification_sweep"}) { ... on Runs { results { status '
              'startTime endTime tags { key value } } } } }')


def settings(pacing: Pacing) -> NotificationSettings:
    base = NotificationSettings()
    return NotificationSettings(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                                   "pacing": {"wachap": pacing}, "batch_size": BATCH_SIZE,
                                   "sweep_max_seconds": SWEEP_MAX_SECONDS})


def fill(url: str, count: int) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(notifications.delete())
    if not is_sqlite(url):
        # The deleted rows of the previous run would otherwise slow every scan of the old pattern.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE notifications"))
    base = NotificationSettings()
    for start in range(0, count, 5000):
        rows = [outbox.prepare(base, source_app="cargo", to=f"+2237{6000000 + n:07d}",
                               body=f"Votre colis {n} est arrivé", message_type="colis_status", priority=n % 5 + 1)
                for n in range(start, min(count, start + 5000))]
        with write_transaction(engine) as conn:
            outbox.enqueue_rows(conn, rows)
    engine.dispose()


def child(url: str, provider_url: str, interval: float) -> None:
    """The sweep, in this process: prints its summary, seconds and peak RSS."""
    engine = create_engine(url)
    backend = WaChapBackend(provider_url, "bench-key", "bench-account", Timeouts(5, 20))
    started = time.perf_counter()
    summary = run_sweep(engine, settings(Pacing(min_interval_seconds=interval, max_concurrency=CONCURRENCY)),
                        backend)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sent": summary.counts["sent"], "seconds": seconds, "peak_mb": peak_mb}))


def our_sweep(url: str, provider: Provider, count: int, latency: float, interval: float = 0.0) -> dict:
    fill(url, count)
    provider.reset(latency)
    out = subprocess.run([sys.executable, "-m", "bench.sweep", "--child", url, provider.url, str(interval)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    times = sorted(provider.times)
    result.update(rate=result["sent"] / result["seconds"], duplicates=sum(v - 1 for v in provider.accepted.values()),
                  peak_rate=_peak_rate(times), mean_rate=(len(times) - 1) / (times[-1] - times[0]))
    return result


def daemon_sweep(url: str, provider: Provider, count: int, workdir: Path, timeout_s: float = 900) -> dict:
    """`dagster dev` running (SQLite instance, `url` the app database, the same settings as `our_sweep` in its
    YAML); `count` notifications enqueued at once; then until the server accepted them all and no sweep is
    left in flight. The sweeps are the ones the outbox sensor (every 30 s) or the backstop schedule started."""
    from tests.e2e.dagster_dev import dagster_dev_env, query_workspace, running_dagster_dev

    config = workdir / "nightshift.yaml"
    config.write_text(f"notifications:\n  batch_size: {BATCH_SIZE}\n  sweep_max_seconds: {SWEEP_MAX_SECONDS}\n"
                      f"  pacing:\n    wachap: {{min_interval_seconds: 0, max_concurrency: {CONCURRENCY}}}\n",
                      encoding="utf-8")
    env = dagster_dev_env(workdir, PROJECT_ROOT / "dagster.yaml", {
        "NIGHTSHIFT_CONFIG": str(config), "NIGHTSHIFT_WHATSAPP_PROVIDER": "wachap",
        "NIGHTSHIFT_WACHAP_BASE_URL": provider.url, "NIGHTSHIFT_WACHAP_API_KEY": "bench-key",
        "NIGHTSHIFT_WACHAP_ACCOUNT_ID": "bench-account"})
    env["NIGHTSHIFT_DATABASE_URL"] = url
    migrate.upgrade(url)
    provider.reset(0.0)
    with running_dagster_dev(workdir, env) as dev:
        query_workspace(dev)
        enqueue_started = time.monotonic()
        fill(url, count)
        enqueue_s = time.monotonic() - enqueue_started
        while time.monotonic() - enqueue_started < timeout_s:
            runs = dev.graphql(SWEEP_RUNS)["runsOrError"]["results"]
            ended_badly = [r["status"] for r in runs if r["status"] in ("FAILURE", "CANCELED")]
            if ended_badly:
                raise RuntimeError(f"a sweep run ended {ended_badly[0]}:\n{dev.log_tail()}")
            if len(provider.accepted) >= count and runs and all(r["endTime"] for r in runs):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{len(provider.accepted):,} of {count:,} notifications sent within {timeout_s:.0f} s")
    run_seconds = sum(r["endTime"] - r["startTime"] for r in runs)
    return {"sent": len(provider.accepted), "runs": len(runs),
            "launched_by": sorted({t["value"] for r in runs for t in r["tags"]
                                   if t["key"] in ("nightshift/launched_by", "dagster/schedule_name")}),
            "run_seconds": run_seconds, "rate": len(provider.accepted) / run_seconds,
            "enqueue_s": enqueue_s, "enqueue_to_last_send_s": max(provider.times) - enqueue_started,
            "duplicates": sum(v - 1 for v in provider.accepted.values())}


def _peak_rate(times: list[float], window: float = 1.0) -> float:
    """The most sends the server accepted in any `window` seconds [t, t + window), per second."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best / window


def old_pattern(url: str, provider: Provider, count: int, latency: float) -> dict:
    """One row at a time, its lock held across the HTTP call, as the replaced systems did."""
    fill(url, count)
    provider.reset(latency)
    engine = create_engine(url)
    backend = WaChapBackend(provider.url, "bench-key", "bench-account", Timeouts(5, 20))
    lock = "" if is_sqlite(url) else " FOR UPDATE"
    sent = 0
    started = time.perf_counter()
    while True:
        with write_transaction(engine) as conn:
            row = conn.execute(sa.text(f"SELECT id, recipient, body FROM notifications WHERE status = 'pending' "
                                       f"ORDER BY priority, id LIMIT 1{lock}")).first()
            if row is None:
                break
            reply = backend.send(OutboundMessage(row.id, row.recipient, row.body, "default"), None)
            conn.execute(sa.text("UPDATE notifications SET status = :s, attempts = attempts + 1 WHERE id = :id"),
                         {"s": "sent" if reply.http_status == 200 else "failed_retry", "id": row.id})
            sent += reply.http_status == 200
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"sent": sent, "seconds": seconds, "rate": sent / seconds}


def main() -> None:
    count = int(os.environ.get("BENCH_NOTIFICATIONS", 50_000))
    slow_count = int(os.environ.get("BENCH_SLOW_NOTIFICATIONS", 5_000))
    old_count = int(os.environ.get("BENCH_OLD_NOTIFICATIONS", 2_000))
    provider = Provider()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="nightshift-bench-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'sweep.db'}"
        pg_url = create_pg_database()
        try:
            for name, url in (("postgresql", pg_url), ("sqlite", sqlite_url)):
                results[f"{name} 0 ms"] = our_sweep(url, provider, count, 0.0)
                results[f"{name} 50 ms"] = our_sweep(url, provider, slow_count, 0.05)
                results[f"old {name} 0 ms"] = old_pattern(url, provider, old_count, 0.0)
                results[f"old {name} 50 ms"] = old_pattern(url, provider, max(old_count // 10, 50), 0.05)
                for key in (f"{name} 0 ms", f"{name} 50 ms", f"old {name} 0 ms", f"old {name} 50 ms"):
                    print(key, results[key])
            results["paced postgresql"] = our_sweep(pg_url, provider, 2_000, 0.0, interval=1 / PACED_RATE)
            print("paced", results["paced postgresql"])
            (Path(tmp) / "daemon").mkdir()
            results["daemon postgresql"] = daemon_sweep(pg_url, provider, count, Path(tmp) / "daemon")
            print("daemon", results["daemon postgresql"])
        finally:
            drop_pg_database(pg_url)
    provider.shutdown()
    _report(results, count, slow_count, old_count)


def _report(results: dict[str, dict], count: int, slow_count: int, old_count: int) -> None:
    slow_target = 0.8 * CONCURRENCY * 20
    paced = results["paced postgresql"]
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, {os.cpu_count()} cores, `make bench` "
        "(bench/sweep.py): a local WaChap-speaking server in the bench process, our sweep in a subprocess, "
        f"concurrency {CONCURRENCY}, distinct Malian numbers.",
        "",
        "| run | messages | sends/s | peak memory | duplicates |",
        "|---|---|---|---|---|",
    ]
    for backend in ("postgresql", "sqlite"):
        for latency, messages in (("0 ms", count), ("50 ms", slow_count)):
            r = results[f"{backend} {latency}"]
            lines.append(f"| sweep, {backend}, {latency} | {messages:,} | {r['rate']:,.0f} | {r['peak_mb']:.0f} MB | "
                         f"{r['duplicates']} |")
        for latency, messages in (("0 ms", old_count), ("50 ms", max(old_count // 10, 50))):
            r = results[f"old {backend} {latency}"]
            lines.append(f"| old pattern (row lock across HTTP), {backend}, {latency} | {messages:,} | "
                         f"{r['rate']:,.0f} | — | — |")
    daemon = results["daemon postgresql"]
    lines.append(f"| the path users take: `dagster dev`, the sweep the outbox sensor started, postgresql, 0 ms | "
                 f"{count:,} | {daemon['rate']:,.0f} | — | {daemon['duplicates']} |")
    pg0, pg50 = results["postgresql 0 ms"], results["postgresql 50 ms"]
    lines += [
        "",
        f"- PostgreSQL at 0 ms: {pg0['rate']:,.0f} sends/s "
        f"(target ≥ 1,000: {'met' if pg0['rate'] >= 1000 else 'NOT met'}); "
        f"{pg0['rate'] / results['old postgresql 0 ms']['rate']:.1f} × the old pattern.",
        f"- SQLite at 0 ms: {results['sqlite 0 ms']['rate']:,.0f} sends/s, "
        f"{results['sqlite 0 ms']['rate'] / results['old sqlite 0 ms']['rate']:.1f} × the old pattern (its one "
        "transaction per message writes no attempt row before the request).",
        f"- At 50 ms: PostgreSQL {pg50['rate']:,.0f}, SQLite {results['sqlite 50 ms']['rate']:,.0f} sends/s "
        f"(target ≥ 0.8 × {CONCURRENCY} × 20/s = {slow_target:.0f}: "
        f"{'met' if min(pg50['rate'], results['sqlite 50 ms']['rate']) >= slow_target else 'NOT met'}); "
        f"{pg50['rate'] / results['old postgresql 50 ms']['rate']:.1f} × the old pattern.",
        f"- The path users take: with `dagster dev` running (PostgreSQL app database, the same settings in its "
        f"YAML), {count:,} notifications enqueued at once were sent by {daemon['runs']} sweep run(s) started by "
        f"{', '.join(daemon['launched_by'])}: {daemon['rate']:,.0f} sends/s over the run, its run worker's start "
        f"included ({daemon['rate'] / pg0['rate']:.2f} × the subprocess sweep; target ≥ 1,000: "
        f"{'met' if daemon['rate'] >= 1000 else 'NOT met'}); {daemon['enqueue_to_last_send_s']:.0f} s from the "
        f"start of the enqueue ({daemon['enqueue_s']:.0f} s) to the last send, the sensor's wait (it looks every 30 s) "
        "included.",
        f"- Paced at {PACED_RATE}/s (2,000 messages): the server measured {paced['mean_rate']:.1f} sends/s over the "
        f"run ({'within' if paced['mean_rate'] <= PACED_RATE else 'OVER'} the limit) and at most "
        f"{paced['peak_rate']:.0f} in any one second (arrival jitter of the local network included).",
        f"- Peak memory of the sweep: {max(r.get('peak_mb', 0) for r in results.values()):.0f} MB (target ≤ 200 MB).",
    ]
    write_section("## Notification sweep", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
