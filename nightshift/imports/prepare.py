"""Chunk preparation: parse (a CSV chunk of raw lines), validate the raw rows, build the target rows,
encode them for the staging tables.

This is the CPU-bound part of an import. For a big file it runs in worker processes, a few chunks in
flight per worker, while this process cuts the file into chunks, writes the staging tables and
prepares chunks itself when the workers are busy; results come back in file order, so the import is
the same whichever way it ran. A CSV read by pandas' C parser travels to a worker as its raw lines,
which the worker parses. On SQLite a worker also writes its rows to a scratch file (`scratch_dir`),
which this process copies into the staging table in one statement.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.forkserver
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nightshift.imports.merge import ScratchRows, StagingPayload, staging_payload, write_scratch
from nightshift.imports.profiles import PROFILES
from nightshift.imports.reading import TableChunk
from nightshift.imports.report import REPORT_COLUMNS
from nightshift.imports.targets import CATEGORY_REF, build_rows, target
from nightshift.imports.validate import ColumnMapping, validate_chunk

# Parent categories a file names: few rows, filtered against the ones already staged by this process.
PARENT_TARGETS = ("category_parents", "subcategory_parents")
MAX_PROCESSES = 4
# Chunks submitted ahead per worker: enough to keep workers busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 3


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs besides the chunk (all picklable)."""

    profile: str
    mapping: ColumnMapping
    phone_region: str
    dialect: str
    scratch_dir: str | None = None  # SQLite: where worker processes write the rows they prepared
    # Keep the raw rows of rejected lines (the error report is written from them, not from a second read).
    keeps_rejected_rows: bool = False
    # When categories are not created, the database's category slugs: a row naming another one may be
    # refused once the whole file is staged (unknown_category), so its raw row is kept too.
    known_categories: frozenset[str] | None = None


@dataclass
class KeyHashes:
    """64-bit hashes of the rows' keys and their lines: duplicate detection across the whole file at
    16 bytes a row (the key text stays in the staging table)."""

    hashes: np.ndarray
    lines: np.ndarray


@dataclass
class PreparedTarget:
    name: str
    columns: list[str]
    keys: KeyHashes | None = None
    payload: StagingPayload | ScratchRows | None = None
    parents: pd.DataFrame | None = None  # parent targets: the rows, filtered by the caller


@dataclass
class PreparedChunk:
    rows: int
    errors: pd.DataFrame
    targets: list[PreparedTarget]
    read_s: float  # parsing a chunk of raw lines
    validate_s: float
    build_s: float
    # With keeps_rejected_rows: the raw cells of the lines the report may list, with their line as `_ligne`.
    rejected_rows: pd.DataFrame | None = None


def hash_keys(keys: pd.Series) -> np.ndarray:
    # Keys are mostly distinct: hashing them directly beats factorizing them first.
    return pd.util.hash_array(keys.to_numpy(dtype=object), categorize=False)


def prepare_chunk(job: ChunkJob, chunk: TableChunk) -> PreparedChunk:
    started = time.perf_counter()
    frame, lines = chunk.frame, chunk.lines  # a chunk of raw lines is parsed here
    parsed = time.perf_counter()
    profile = PROFILES[job.profile]
    result = validate_chunk(frame, lines, profile, job.mapping, phone_region=job.phone_region)
    validated = time.perf_counter()
    targets = []
    rejected_lines = [result.errors["line"].to_numpy(np.int64)]
    for name, rows in build_rows(profile, result.valid).items():
        columns = list(rows.columns)
        if name in PARENT_TARGETS:
            targets.append(PreparedTarget(name, columns, parents=rows))
            continue
        hashes = hash_keys(rows[target(name).key])
        targets.append(PreparedTarget(name, columns, keys=KeyHashes(hashes, rows["_line"].to_numpy(np.int64)),
                                      payload=staging_payload(rows, job.dialect)))
        if job.known_categories is not None and CATEGORY_REF in target(name).references:
            slugs = rows[CATEGORY_REF.match["slug"]]
            names_another = slugs.notna() & ~slugs.isin(job.known_categories)
            rejected_lines.append(rows.loc[names_another, "_line"].to_numpy(np.int64))
    rejected_rows = _raw_rows(frame, lines, np.concatenate(rejected_lines)) if job.keeps_rejected_rows else None
    return PreparedChunk(result.rows, result.errors, targets, parsed - started, validated - parsed,
                         time.perf_counter() - validated, rejected_rows)


def _raw_rows(frame: pd.DataFrame, lines: np.ndarray, selected: np.ndarray) -> pd.DataFrame:
    """The chunk's raw rows at the `selected` lines, as read, with their line as `_ligne`. A report uploaded
    again brings its own report columns: the next report's replace them."""
    kept = np.isin(lines, selected)
    rows = frame.loc[kept].drop(columns=list(REPORT_COLUMNS), errors="ignore")
    rows["_ligne"] = lines[kept]
    return rows


def _prepare_in_worker(job: ChunkJob, chunk: TableChunk, number: int) -> PreparedChunk:
    prepared = prepare_chunk(job, chunk)
    if job.scratch_dir is not None:
        started = time.perf_counter()
        for target in prepared.targets:
            if isinstance(target.payload, StagingPayload) and target.payload.rows:
                target.payload = write_scratch(target.payload, Path(job.scratch_dir) / f"{number}-{target.name}.db")
        prepared.build_s += time.perf_counter() - started
    return prepared


def worker_count(processes: int, min_bytes: int, file_bytes: int) -> int:
    """Worker processes for a file: none below `min_bytes` (starting them would cost more than they
    save); else `processes` prepare the chunks (0: one per core, at most MAX_PROCESSES), this one
    included, as it prepares chunks too."""
    if file_bytes < min_bytes:
        return 0
    return (processes or min(os.cpu_count() or 1, MAX_PROCESSES)) - 1


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: workers start from a clean process (this one may hold threads and database sockets).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def start_worker_server() -> None:
    """Start the process workers fork from now, so that its imports (pandas, this module) overlap the scan
    of the file."""
    _context()
    multiprocessing.forkserver.ensure_running()


def prepared_chunks(job: ChunkJob, chunks: Iterator[TableChunk], workers: int) -> Iterator[PreparedChunk]:
    """The chunks prepared, in file order. With workers, each chunk goes to a worker while fewer than
    IN_FLIGHT_PER_WORKER per worker are queued; otherwise this process prepares it itself."""
    if workers == 0:
        for chunk in chunks:
            yield prepare_chunk(job, chunk)
        return
    context = _context()
    pending: deque[Future[PreparedChunk] | PreparedChunk] = deque()
    # gc.freeze: a worker's collections need not walk the modules it started with (pandas and ours).
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=gc.freeze) as pool:
        try:
            for number, chunk in enumerate(chunks):
                queued = sum(1 for item in pending if isinstance(item, Future) and not item.done())
                if queued < workers * IN_FLIGHT_PER_WORKER:
                    pending.append(pool.submit(_prepare_in_worker, job, chunk, number))
                else:
                    pending.append(prepare_chunk(job, chunk))
                # Hand over what is ready at the head; wait for it once enough is held back.
                while pending and (_ready(pending[0]) or len(pending) > 2 * workers * IN_FLIGHT_PER_WORKER):
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        finally:
            for item in pending:
                if isinstance(item, Future):
                    item.cancel()


def _ready(item: Future[PreparedChunk] | PreparedChunk) -> bool:
    return not isinstance(item, Future) or item.done()


def _result(item: Future[PreparedChunk] | PreparedChunk) -> PreparedChunk:
    return item.result() if isinstance(item, Future) else item
