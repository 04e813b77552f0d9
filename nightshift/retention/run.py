"""One cleanup run's parameters and what each policy did."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger("nightshift.retention")


@dataclass
class PolicyReport:
    """What one policy did (or, in a dry run, would do). `remaining` and `oldest_remaining_age_s` describe
    what the policy covers once this run is over (unchanged by a dry run); `would_delete` is what a run
    would still delete after it; `bytes`: file sizes deleted (or that would be), for files only."""

    name: str
    deleted: int = 0
    would_delete: int = 0
    remaining: int = 0
    oldest_remaining_age_s: float | None = None
    bytes: int | None = None
    batches: int = 0
    stopped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    policy: str
    batch: int
    rows: int  # rows (or files) of this batch
    total: int  # of this policy so far


@dataclass(frozen=True)
class Run:
    """How a cleanup runs: when "now" is (the ages are measured from it), the data folder, a dry run,
    a callback per batch and a question asked between batches (stop now?)."""

    now: datetime
    data_dir: Path
    dry_run: bool = False
    on_batch: Callable[[Progress], None] | None = None
    should_stop: Callable[[], bool] = lambda: False

    def progress(self, policy: str, batch: int, rows: int, total: int) -> None:
        logger.info("%s: batch %d, %d rows (%d so far)", policy, batch, rows, total)
        if self.on_batch is not None:
            self.on_batch(Progress(policy, batch, rows, total))


def utc_now() -> datetime:
    return datetime.now(UTC)
