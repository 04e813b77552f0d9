"""Chunk preparation: validate the raw rows, build the target rows, encode them for the staging tables.

This is the CPU-bound part of an import (Python string work). For a big file it runs in worker
processes, a few chunks in flight per worker, while this process reads the file and writes the staging
tables; results come back in file order, so the import is the same whichever way it ran.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nightshift.imports.merge import staging_payload
from nightshift.imports.profiles import PROFILES
from nightshift.imports.reading import TableChunk
from nightshift.imports.targets import build_rows
from nightshift.imports.validate import ColumnMapping, validate_chunk

# Parent categories a file names: few rows, filtered against the ones already staged by this process.
PARENT_TARGETS = ("category_parents", "subcategory_parents")
# Below this size starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
MAX_AUTO_WORKERS = 4
# Chunks submitted ahead per worker: enough to keep workers busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs besides the chunk (all picklable)."""

    profile: str
    mapping: ColumnMapping
    phone_region: str
    dialect: str


@dataclass
class PreparedTarget:
    name: str
    columns: list[str]
    count: int
    keys: pd.DataFrame | None = None  # `_key`, `_line`: duplicate detection across the whole file
    payload: str | list[tuple] | None = None  # staging_payload of the rows
    parents: pd.DataFrame | None = None  # parent targets: the rows, filtered by the caller


@dataclass
class PreparedChunk:
    rows: int
    errors: pd.DataFrame
    targets: list[PreparedTarget]
    validate_s: float
    build_s: float


def prepare_chunk(job: ChunkJob, frame: pd.DataFrame, lines: np.ndarray) -> PreparedChunk:
    started = time.perf_counter()
    profile = PROFILES[job.profile]
    result = validate_chunk(frame, lines, profile, job.mapping, phone_region=job.phone_region)
    validated = time.perf_counter()
    targets = []
    for name, rows in build_rows(profile, result.valid).items():
        columns = list(rows.columns)
        if name in PARENT_TARGETS:
            targets.append(PreparedTarget(name, columns, len(rows), parents=rows))
        else:
            targets.append(PreparedTarget(name, columns, len(rows), keys=rows[["_key", "_line"]],
                                          payload=staging_payload(rows, job.dialect) if len(rows) else None))
    return PreparedChunk(result.rows, result.errors, targets, validated - started, time.perf_counter() - validated)


def worker_count(setting: int, file_bytes: int) -> int:
    """Worker processes for a file: none for small files; `imports.workers`, or one per core (0)."""
    if file_bytes < PARALLEL_MIN_BYTES or setting == 1:
        return 0
    return setting or min(os.cpu_count() or 1, MAX_AUTO_WORKERS)


def prepared_chunks(job: ChunkJob, chunks: Iterator[TableChunk], workers: int) -> Iterator[PreparedChunk]:
    """The chunks prepared, in file order: in this process (workers == 0) or in `workers` processes."""
    if workers == 0:
        for chunk in chunks:
            yield prepare_chunk(job, chunk.frame, chunk.lines)
        return
    # forkserver: workers start from a clean process (this one may hold threads and database sockets).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pending: deque[Future[PreparedChunk]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for chunk in chunks:
                pending.append(pool.submit(prepare_chunk, job, chunk.frame, chunk.lines))
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
