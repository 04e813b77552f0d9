"""Fixtures of the ai tests: the fake OpenAI-compatible server, a client of it, an account with tokens."""

import pytest
import sqlalchemy as sa

from nightshift.ai.client import OpenAICompatibleClient
from nightshift.db.schema import accounts
from nightshift.quotas.accounts import add_account
from tests.ai.fake_openai import FakeOpenAI


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def client_of(fake: FakeOpenAI, **options) -> OpenAICompatibleClient:
    settings = {"timeout_s": 5.0, "http_retries": 3, "retry_base_s": 0.01, "retry_cap_s": 0.05, **options}
    return OpenAICompatibleClient(fake.base_url, "sk-test-secret", "test-model", **settings)


def account_id(engine, slug: str, quota: int) -> int:
    add_account(engine, slug, quota)
    with engine.connect() as conn:
        return conn.execute(sa.select(accounts.c.id).where(accounts.c.slug == slug)).scalar_one()


@pytest.fixture
def account(db) -> int:
    """The account fox with a million tokens a month."""
    return account_id(db, "fox", 1_000_000)
