"""Pacing of one provider account inside a sweep: at most `max_concurrency` sends in flight, and send
starts at least `min_interval_seconds` apart (plus random jitter, as people pace a session gateway)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from nightshift.notification_settings import Pacing


class Pacer:
    def __init__(self, pacing: Pacing, rng: random.Random | None = None, *,
                 last_start_ago: float | None = None) -> None:
        """`last_start_ago`: seconds since the account's last send started (an earlier sweep's), so
        back-to-back sweeps keep the pace between them too."""
        self.pacing = pacing
        self.rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(pacing.max_concurrency)
        self._lock = threading.Lock()
        self._next_start = 0.0 if last_start_ago is None else time.monotonic() - last_start_ago + self._gap()

    def _gap(self) -> float:
        return self.pacing.min_interval_seconds + self.rng.uniform(0, self.pacing.jitter_seconds)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the account's concurrent sends."""
        with self._slots:
            yield

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The moment a send may start: one at a time per paced account, the next one no earlier than
        the interval after this one left (measured when it leaves, so a slow step inside does not let
        the following sends bunch up)."""
        if not self.pacing.paced:
            yield
            return
        with self._lock:
            wait = self._next_start - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                yield
            finally:
                self._next_start = time.monotonic() + self._gap()
