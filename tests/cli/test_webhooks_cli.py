"""`nightshift webhooks serve` as the Makefile starts it: a process that stores signed posts, and a clear
exit when its port is taken."""

import json
import socket
import subprocess
import time

import requests
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import webhook_events
from nightshift.notifications.webhooks import meta_signature
from tests.conftest import NIGHTSHIFT, nightshift
from tests.notifications.live_receiver import free_port


def test_serve_stores_a_signed_post_and_stops(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    port = free_port()
    env = {**cli_env, "NIGHTSHIFT_META_APP_SECRET": "s3cret", "NIGHTSHIFT_WEBHOOKS_PORT": str(port)}
    process = subprocess.Popen([NIGHTSHIFT, "webhooks", "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        body = json.dumps({"entry": [{"changes": [{"value": {"statuses": [
            {"id": "wamid.9", "status": "read", "timestamp": "1700000000"}]}}]}]}).encode()
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/webhooks/meta", data=body, timeout=5, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature("s3cret", body)})
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["stored"] == 1
    finally:
        process.terminate()
        process.wait(timeout=20)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(webhook_events.c.dedupe_key)).scalars().all() == ["meta:status:wamid.9:read"]
    engine.dispose()


def test_serve_on_a_taken_port_exits_1_with_a_clear_line(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = nightshift("webhooks", "serve", "--port", str(port), env=cli_env, cwd=tmp_path)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use: the webhook receiver did not start" in result.stderr
    assert "Traceback" not in result.stderr
