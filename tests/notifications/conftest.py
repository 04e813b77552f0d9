"""Fixtures of the notification tests: local WhatsApp providers (tests/notifications/fake_provider.py)."""

from collections.abc import Iterator

import pytest

from tests.notifications.fake_provider import FakeProvider


@pytest.fixture
def wachap_server() -> Iterator[FakeProvider]:
    server = FakeProvider("wachap")
    yield server
    server.close()


@pytest.fixture
def meta_server() -> Iterator[FakeProvider]:
    server = FakeProvider("meta")
    yield server
    server.close()
