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
    def __init__(self, pacing: Pacing, rng: random.Random | None = None) -> None:
        self.pacing = pacing
        self.rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(pacing.max_concurrency)
        self._lock = threading.Lock()
        self._next_start = 0.0

    def _wait_for_start(self) -> None:
        if not self.pacing.min_interval_seconds and not self.pacing.jitter_seconds:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            gap = self.pacing.min_interval_seconds + self.rng.uniform(0, self.pacing.jitter_seconds)
            self._next_start = start + gap
        if start > now:
            time.sleep(start - now)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the account's concurrent sends, started no earlier than its pace allows."""
        with self._slots:
            self._wait_for_start()
            yield
