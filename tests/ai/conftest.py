"""Fixtures of the ai tests: the fake OpenAI-compatible server and a client of it."""

import pytest

from nightshift.ai.client import OpenAICompatibleClient
from tests.ai.fake_openai import FakeOpenAI


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def client_of(fake: FakeOpenAI, **options) -> OpenAICompatibleClient:
    settings = {"timeout_s": 5.0, "http_retries": 3, "retry_base_s": 0.01, "retry_cap_s": 0.05, **options}
    return OpenAICompatibleClient(fake.base_url, "sk-test-secret", "test-model", **settings)
