"""AI generation benchmark against a local OpenAI-compatible server answering after 100 ms.

- Throughput under the client-side rate limit: BENCH_AI_RPM (default 300) requests a minute for
  BENCH_AI_SECONDS (default 30) of generations on SQLite; the rate measured at the server (arrivals) must
  stay at or under the limit and reach at least 0.9 × it.
- Overhead per generation (open and claim the request, reserve, book the rate limit, validate, store,
  settle) against the bare HTTP call of the same client to the same server, in the same run, on SQLite and
  PostgreSQL. Target on SQLite: ≤ 10 ms.
Figures go to the AI content section of BENCHMARKS.md.
"""

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

import sqlalchemy as sa

from bench._shared import create_pg_database, drop_pg_database, write_section
from nightshift.ai.client import ChatRequest, OpenAICompatibleClient
from nightshift.ai.generate import GenerationSummary, Generator, businesses_of_import
from nightshift.ai.prompts import business_inputs, template_for
from nightshift.config import AISettings, QuotaSettings
from nightshift.db import migrate
from nightshift.db.engine import create_engine, write_transaction
from nightshift.db.schema import businesses
from nightshift.quotas import TokenLedger
from nightshift.quotas.accounts import add_account
from tests.ai.fake_openai import FakeOpenAI

LATENCY_S = 0.1
RPM = int(os.environ.get("BENCH_AI_RPM", 300))
SECONDS = int(os.environ.get("BENCH_AI_SECONDS", 30))
OVERHEAD_ITEMS = int(os.environ.get("BENCH_AI_ITEMS", 200))
SECTION = "## AI content (bench/ai.py)"


def _prepare(url: str, count: int) -> sa.Engine:
    migrate.upgrade(url)
    engine = create_engine(url)
    add_account(engine, "bench", 10**12)
    with write_transaction(engine) as conn:
        account_id = conn.execute(sa.text("SELECT id FROM accounts WHERE slug = 'bench'")).scalar_one()
        conn.execute(businesses.insert(), [
            {"natural_key": f"bench-{n}", "name": f"Boulangerie {n}", "city": "Paris", "postal_code": "75002",
             "naf_label": "Boulangerie", "content_hash": f"h{n}", "import_id": 1, "account_id": account_id}
            for n in range(count)])
    return engine


def _generator(engine, client, rpm: int) -> Generator:
    settings = AISettings(kinds=["description"], requests_per_minute=rpm, tokens_per_minute=10**9)
    return Generator(engine, settings, "fr", client, TokenLedger(engine, QuotaSettings(), UTC),
                     rate_limit_name=f"bench:{rpm}")


def _client(server: FakeOpenAI) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(server.base_url, "", "bench-model", timeout_s=10, http_retries=0,
                                  retry_base_s=0.1, retry_cap_s=1)


def _chat() -> ChatRequest:
    inputs = business_inputs({"name": "Boulangerie", "city": "Paris", "postal_code": "75002"}, 500)
    return ChatRequest("description", template_for("description", "fr").messages(inputs), 300, 0.7, inputs)


def throughput(folder: Path) -> dict:
    count = RPM * SECONDS // 60 + 1
    engine = _prepare(f"sqlite:///{folder / 'rate.db'}", count)
    with FakeOpenAI(latency_s=LATENCY_S) as server:
        client = _client(server)
        generator = _generator(engine, client, RPM)
        summary = GenerationSummary()
        work = generator.plan(businesses_of_import(engine, 1), None, summary)
        client.complete(_chat())  # the connection opened before the measure, as in a long run
        generator.run(work, summary)
        arrivals = server.arrivals[1:]
    engine.dispose()
    measured = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) * 60
    return {"limit": RPM, "generated": summary.generated, "measured_rpm": measured,
            "ratio": measured / RPM, "span_s": arrivals[-1] - arrivals[0]}


def overhead(url: str) -> dict:
    engine = _prepare(url, OVERHEAD_ITEMS)
    with FakeOpenAI(latency_s=LATENCY_S) as server:
        client = _client(server)
        chat = _chat()
        bare = []
        for _ in range(OVERHEAD_ITEMS):
            started = time.perf_counter()
            client.complete(chat)
            bare.append(time.perf_counter() - started)
        generator = _generator(engine, client, 10**7)
        summary = GenerationSummary()
        work = generator.plan(businesses_of_import(engine, 1), None, summary)
        started = time.perf_counter()
        generator.run(work, summary)
        elapsed = time.perf_counter() - started
    engine.dispose()
    per_generation, per_call = elapsed / summary.generated, statistics.mean(bare)
    return {"generated": summary.generated, "per_generation_ms": per_generation * 1000,
            "bare_call_ms": per_call * 1000, "overhead_ms": (per_generation - per_call) * 1000}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rate = throughput(folder)
        print(f"rate limit {RPM}/min: {rate['measured_rpm']:.1f}/min measured ({rate['ratio']:.3f} × the limit) "
              f"over {rate['span_s']:.1f} s, {rate['generated']} generated")
        sqlite = overhead(f"sqlite:///{folder / 'overhead.db'}")
        print(f"sqlite: {sqlite['overhead_ms']:.2f} ms overhead per generation "
              f"({sqlite['per_generation_ms']:.1f} ms vs bare call {sqlite['bare_call_ms']:.1f} ms)")
    pg_url = create_pg_database()
    try:
        postgres = overhead(pg_url)
    finally:
        drop_pg_database(pg_url)
    print(f"postgresql: {postgres['overhead_ms']:.2f} ms overhead per generation "
          f"({postgres['per_generation_ms']:.1f} ms vs bare call {postgres['bare_call_ms']:.1f} ms)")
    within = rate["ratio"] <= 1.0 and rate["ratio"] >= 0.9
    write_section(SECTION, [
        "",
        f"Local OpenAI-compatible server answering after {LATENCY_S * 1000:.0f} ms; Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs. One process, descriptions only.",
        "",
        "| measure | figure | target |",
        "|---|---|---|",
        f"| rate under a limit of {RPM}/min ({rate['generated']} generations over {rate['span_s']:.0f} s, "
        f"measured at the server) | {rate['measured_rpm']:.1f}/min = {rate['ratio']:.3f} × the limit | "
        f"≤ 1 and ≥ 0.9 × {'(met)' if within else '(NOT met)'} |",
        f"| SQLite: per generation / bare HTTP call ({sqlite['generated']} each) | "
        f"{sqlite['per_generation_ms']:.1f} ms / {sqlite['bare_call_ms']:.1f} ms | |",
        f"| SQLite: overhead (reserve + claim + rate limit + validate + store + settle) | "
        f"{sqlite['overhead_ms']:.2f} ms | ≤ 10 ms {'(met)' if sqlite['overhead_ms'] <= 10 else '(NOT met)'} |",
        f"| PostgreSQL: per generation / bare HTTP call ({postgres['generated']} each) | "
        f"{postgres['per_generation_ms']:.1f} ms / {postgres['bare_call_ms']:.1f} ms | |",
        f"| PostgreSQL: overhead | {postgres['overhead_ms']:.2f} ms | |",
        "",
        "The limit spaces request starts 60 / RPM seconds apart in a database row every process shares, so the "
        "rate stays under it from the first request (no burst at a window boundary).",
    ])


if __name__ == "__main__":
    sys.exit(main())
