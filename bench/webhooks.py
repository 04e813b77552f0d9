"""Webhook receiver benchmark: latency of Meta status posts, next to a bare Starlette app in the same run.

The receiver runs as production runs it: `nightshift webhooks serve` in its own process, on a free port,
against a fresh SQLite file and a fresh PostgreSQL database (each migrated first). The client sends
BENCH_WEBHOOK_POSTS (default 1,000) Meta posts one after another over one keep-alive connection, each a
realistic status (sent, delivered or read, with conversation and pricing) of its own message id,
signed with X-Hub-Signature-256, and times each round trip. The baseline is a Starlette app under
uvicorn in its own process that reads the body and answers 200 without checking or storing anything:
the ratio is what signature, parsing and the database add. Target: p99 < 200 ms.
Every post must come back 200 with its one event stored, and the table must hold them all.
"""

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
import sqlalchemy as sa

from bench._shared import PROJECT_ROOT, create_pg_database, drop_pg_database, write_section
from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import webhook_events
from nightshift.notifications.webhooks import meta_signature

SECTION = "## Webhook receiver (bench/webhooks.py)"
APP_SECRET = "bench-meta-app-secret"
STATUSES = ("sent", "delivered", "read")
WARM_UP = 20
TARGET_P99_MS = 200.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def meta_post(n: int) -> dict:
    """Status n as Meta posts it: its own wamid, the notification id echoed back, a Malian recipient."""
    status = {
        "id": f"wamid.HBgLMjIzNzAxMjM0NTYVAgARGBI{n:012d}A",
        "status": STATUSES[n % 3],
        "timestamp": str(1_764_700_000 + n),
        "recipient_id": f"2237{6000000 + n:07d}",
        "biz_opaque_callback_data": str(100_000 + n),
        "conversation": {"id": f"conv-{n // 3:08d}", "origin": {"type": "utility"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "utility"},
    }
    if status["status"] == "sent":
        status["conversation"]["expiration_timestamp"] = str(1_764_786_400 + n)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "22370000000", "phone_number_id": "106540352242922"},
                "statuses": [status]}}]}]}


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({process.returncode}): {process.stderr.read()}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{url}: the server did not start in 30 s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _post_all(port: int, first: int, count: int) -> tuple[list[float], int]:
    """Post `count` signed statuses from number `first` (after a warm-up); client-side latencies in ms and
    how many events the server said it stored."""
    url = f"http://127.0.0.1:{port}/webhooks/meta"
    latencies: list[float] = []
    stored = 0
    with requests.Session() as http:
        for n in range(first - WARM_UP, first + count):
            body = json.dumps(meta_post(n), separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(APP_SECRET, body),
                       "User-Agent": "facebookexternalua"}
            started = time.perf_counter()
            answer = http.post(url, data=body, headers=headers, timeout=10)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"post {n}: HTTP {answer.status_code} {answer.text[:200]}")
            if n >= first:
                latencies.append(elapsed)
                stored += answer.json().get("stored", 0)
    return latencies, stored


def receiver(url: str, tmp: Path, count: int) -> dict:
    migrate.upgrade(url)
    config = tmp / "empty.yaml"
    config.write_text("{}\n", encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "NIGHTSHIFT_DATABASE_URL": url, "NIGHTSHIFT_CONFIG": str(config),
           "NIGHTSHIFT_DATA_DIR": str(tmp / "data"), "NIGHTSHIFT_META_APP_SECRET": APP_SECRET,
           "NIGHTSHIFT_META_VERIFY_TOKEN": "bench-verify"}
    command = [str(Path(sys.executable).parent / "nightshift"), "webhooks", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        latencies, stored = _post_all(port, WARM_UP, count)
    finally:
        _stop(process)
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(webhook_events)).scalar_one()
    engine.dispose()
    if stored != count or rows != count + WARM_UP:
        raise RuntimeError(f"{url}: {stored} of {count} posts stored, {rows} rows in webhook_events")
    return _figures(latencies)


def baseline(count: int) -> dict:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--baseline", str(port)], cwd=PROJECT_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/", process)
        latencies, _ = _post_all(port, WARM_UP, count)
    finally:
        _stop(process)
    return _figures(latencies)


def serve_baseline(port: int) -> None:
    """A Starlette app under uvicorn that reads each post's body and answers 200, nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def accept(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"events": 1, "stored": 0})

    async def up(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/webhooks/meta", accept, methods=["POST"]), Route("/", up)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _figures(latencies: list[float]) -> dict:
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"posts": len(ordered), "p50": quantile(0.5), "p95": quantile(0.95), "p99": quantile(0.99),
            "max": ordered[-1]}


def main() -> None:
    count = int(os.environ.get("BENCH_WEBHOOK_POSTS", 1_000))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="nightshift-bench-") as tmp:
        results["baseline"] = baseline(count)
        print("baseline", results["baseline"])
        results["sqlite"] = receiver(f"sqlite:///{Path(tmp) / 'webhooks.db'}", Path(tmp), count)
        print("sqlite", results["sqlite"])
        pg_url = create_pg_database()
        try:
            results["postgresql"] = receiver(pg_url, Path(tmp), count)
            print("postgresql", results["postgresql"])
        finally:
            drop_pg_database(pg_url)
    _report(results, count)


def _report(results: dict[str, dict], count: int) -> None:
    base = results["baseline"]
    lines = [
        "",
        f"`make bench` on {datetime.now(UTC):%Y-%m-%d} — {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. `nightshift webhooks serve` in its own process on 127.0.0.1, a fresh "
        f"database each; {count:,} signed Meta status posts (distinct message ids, sent/delivered/read), one after "
        f"another over one keep-alive connection after {WARM_UP} warm-up posts, timed by the client. Baseline: a "
        "bare Starlette app under uvicorn, its own process, that reads the body and answers 200.",
        "",
        "| server | posts | p50 ms | p95 ms | p99 ms | max ms | p99 × baseline | target p99 < 200 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (("sqlite", "receiver, SQLite"), ("postgresql", "receiver, PostgreSQL"),
                        ("baseline", "bare Starlette (no work)")):
        r = results[name]
        verdict = "" if name == "baseline" else "met" if r["p99"] < TARGET_P99_MS else "NOT met"
        lines.append(f"| {label} | {r['posts']:,} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | "
                     f"{r['max']:.1f} | {r['p99'] / base['p99']:.1f} | {verdict} |")
    lines += ["", "Every post came back 200 with its one event stored; webhook_events held every post afterwards."]
    write_section(SECTION, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--baseline"]:
        serve_baseline(int(sys.argv[2]))
    else:
        main()
