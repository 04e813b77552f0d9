"""A generating process killed (SIGKILL) while its call is in flight, on SQLite and PostgreSQL: once the
lease ran out, the next run times the request out and ends its hold exactly once (settled at the hold,
flagged estimated: the provider may have billed), and nothing stays held."""

import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from nightshift.ai.generate import GenerationSummary
from nightshift.db.schema import ai_requests, token_ledger, token_periods
from tests.ai.conftest import client_of
from tests.ai.fake_openai import FakeOpenAI, slow
from tests.ai.test_ai_generation import add_business, generator
from tests.conftest import PROJECT_ROOT

WORKER = """
import sys
from datetime import UTC
from nightshift.ai.client import OpenAICompatibleClient
from nightshift.ai.generate import GenerationSummary, Generator, businesses_of_import
from nightshift.config import AISettings, QuotaSettings
from nightshift.db.engine import create_engine
from nightshift.quotas import TokenLedger

url, base_url = sys.argv[1], sys.argv[2]
engine = create_engine(url)
client = OpenAICompatibleClient(base_url, "", "test-model", timeout_s=60, http_retries=0, retry_base_s=1,
                                retry_cap_s=1)
settings = AISettings(kinds=["description"], lease_seconds=2, requests_per_minute=60000)
gen = Generator(engine, settings, "fr", client, TokenLedger(engine, QuotaSettings(), UTC), rate_limit_name="kill")
summary = GenerationSummary()
gen.run(gen.plan(businesses_of_import(engine, 1), None, summary), summary)
"""


def test_a_worker_killed_mid_call_is_timed_out_after_its_lease_and_its_hold_ends_once(db, account):
    add_business(db, "Dupont", account_id=account)
    url = db.url.render_as_string(hide_password=False)
    with FakeOpenAI() as server:
        server.then(slow(30))
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url, server.base_url], cwd=PROJECT_ROOT)
        try:
            deadline = time.monotonic() + 60
            while not server.requests:
                assert worker.poll() is None and time.monotonic() < deadline, "the worker never called"
                time.sleep(0.05)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        with db.connect() as conn:
            [request] = conn.execute(sa.select(ai_requests)).all()
        assert request.status == "processing" and request.call_started_at is not None
        reaper = generator(db, client_of(server))
        early = GenerationSummary()
        reaper.reap(early)
        assert early.timed_out == 0  # the lease still runs: a live worker could be finishing
        time.sleep(2.5)
        for _ in range(2):
            summary = GenerationSummary()
            reaper.reap(summary)
    with db.connect() as conn:
        [request] = conn.execute(sa.select(ai_requests)).all()
        entries = conn.execute(sa.select(token_ledger.c.entry_kind, token_ledger.c.tokens, token_ledger.c.estimated)
                               .where(token_ledger.c.entry_kind != "grant").order_by(token_ledger.c.id)).all()
        used, reserved = conn.execute(sa.select(token_periods.c.used, token_periods.c.reserved)).one()
    assert (request.status, request.error_code, request.claim_token) == ("timeout", "abandoned", None)
    assert request.next_attempt_at is not None  # attempts remain: ai_requests_sensor takes it again
    [(kind, hold, _), (ending, tokens, estimated)] = entries
    assert (kind, ending, tokens, estimated) == ("reserve", "settle", hold, True)
    assert (used, reserved) == (hold, 0)
