"""One import, end to end: read → validate → stage → merge → log → error report → file moved.

Stages recorded in the import log: received → parsed → validated → merged → done. Nothing is
half-written: the merge of every target and the log's final state commit in one transaction.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.config import Settings
from nightshift.db.engine import begin_write, checkpoint_after_commit, read_transaction, sqlite_file
from nightshift.db.schema import accounts, clients
from nightshift.imports import hooks
from nightshift.imports import log as import_log
from nightshift.imports.files import move_without_overwrite
from nightshift.imports.merge import MergeCounts, StagingTable
from nightshift.imports.messages import message
from nightshift.imports.prepare import (
    PARENT_TARGETS,
    ChunkJob,
    KeyHashes,
    PreparedChunk,
    PreparedTarget,
    prepared_chunks,
    start_worker_server,
    worker_count,
)
from nightshift.imports.profiles import PROFILES, Field, Profile, closest_profile, detect_profile
from nightshift.imports.reading import MIXED_SUFFIX, FileRejected, TableChunk, TableInfo, open_table
from nightshift.imports.report import REPORT_COLUMNS, ErrorReport
from nightshift.imports.targets import CATEGORY_REF, MERGE_ORDER, target
from nightshift.imports.validate import ColumnMapping

logger = logging.getLogger("nightshift.imports")
# One record every PROGRESS_EVERY_ROWS rows and at the end (`nightshift_rows`): the CLI's terminal progress line.
progress_logger = logging.getLogger("nightshift.imports.progress")

ERRORS_IN_OUTCOME = 100
# Rows validated and staged together: bounds memory whatever the file size (several chunks are in
# flight when worker processes validate). Larger chunks pay pandas' fixed cost per step less often
# (25,000 rows: a tenth less process time than 10,000) but peak higher: for 1M rows, 12,000-row chunks
# about 450 MB on PostgreSQL, 15,000 about 485; 25,000 over 500 MB already on SQLite.
CHUNK_ROWS = 12_000
PROGRESS_EVERY_ROWS = 5 * CHUNK_ROWS  # reported as chunks are staged: a whole number of them


class ImportRejected(Exception):
    """The file as a whole cannot be imported (bad input: the user must fix the file)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class ImportOptions:
    profile: str | None = None
    account_id: int | None = None
    strict: bool = False
    dry_run: bool = False
    create_categories: bool | None = None
    phone_region: str | None = None


@dataclass
class ImportOutcome:
    import_id: int | None
    status: str
    profile: str | None
    rows_total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    error_report: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    rows_per_second: float | None = None
    message: str | None = None
    failure_kind: str | None = None
    categories_created: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    nul_bytes_removed: int = 0
    dry_run: bool = False
    file_path: str | None = None
    unreadable: bool = False
    workers: int = 0  # worker processes that validated the chunks (0: this process)

    def as_json(self) -> dict[str, Any]:
        keys = ("import_id", "status", "profile", "rows_total", "inserted", "updated", "unchanged", "invalid",
                "encoding", "delimiter", "error_report", "errors")
        extra = ("sheet", "error_counts", "message", "dry_run", "rows_per_second", "categories_created",
                 "unknown_columns", "timings")
        return {k: getattr(self, k) for k in keys + extra}


Progress = Callable[[int], None]


def _profile_for(options: ImportOptions) -> Profile | None:
    if options.profile is None:
        return None
    try:
        return PROFILES[options.profile]
    except KeyError:
        raise ImportRejected(
            "unknown_profile", f"unknown profile {options.profile!r} (known: {', '.join(PROFILES)})"
        ) from None


def _timed(items: Iterator[Any], timings: dict[str, float], key: str) -> Iterator[Any]:
    """The items, with the time spent producing them added to timings[key]."""
    while True:
        started = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            timings[key] += time.perf_counter() - started
        yield item


def _score_any(cells: list[str]) -> float:
    return max(p.score_header(cells) for p in PROFILES.values())


def _account_phone_region(engine: Engine, account_id: int | None) -> str | None:
    """The owning account's region for phone numbers without a country code (None: the default)."""
    if account_id is None:
        return None
    with read_transaction(engine) as conn:
        return conn.execute(sa.select(accounts.c.phone_region).where(accounts.c.id == account_id)).scalar()


class _Run:
    """State of one import while it runs (kept off the public API)."""

    def __init__(self, engine: Engine, path: Path, settings: Settings, options: ImportOptions,
                 import_id: int | None, progress: Progress | None) -> None:
        self.engine, self.path, self.settings, self.options = engine, path, settings, options
        self.import_id, self.progress = import_id, progress
        self.timings: dict[str, float] = {"read_s": 0.0, "validate_s": 0.0, "stage_s": 0.0}
        self.errors: list[pd.DataFrame] = []
        self.keys: dict[str, list[KeyHashes]] = {}
        self.staging: dict[str, StagingTable] = {}
        self.parent_keys: dict[str, set[str]] = {name: set() for name in PARENT_TARGETS}
        self.fields: set[str] = set()  # the profile fields the file has
        self.category_names: dict[str, str] = {}  # slug -> name, when categories are not created
        # The upload moves to processed/ or failed/ after the merge: the log says `merged` until it has.
        self.moves_file = False
        self.merged = False  # the merge transaction committed (its log stage: merged, or done)
        self.rows_total = 0
        self.reported_rows = 0
        self.workers = 0
        self.create_categories = (settings.imports.create_categories if options.create_categories is None
                                  else options.create_categories)
        self.phone_region = (options.phone_region or _account_phone_region(engine, options.account_id)
                             or settings.imports.default_phone_region)

    def open(self, profile: Profile | None) -> tuple[TableInfo, Any, Profile]:
        imports = self.settings.imports
        self.workers = worker_count(imports.workers, imports.parallel_min_bytes, self.path.stat().st_size)
        if self.workers:
            start_worker_server()  # it loads while this process scans the file
        scorer = profile.score_header if profile else _score_any
        info, chunks = open_table(self.path, score_header=scorer, max_bytes=self.settings.imports.max_bytes,
                                  max_rows=self.settings.imports.max_rows,
                                  max_cells=self.settings.imports.max_cells, chunk_rows=CHUNK_ROWS)
        if profile is None:
            profile = detect_profile(info.header)
            if profile is None:
                closest = closest_profile(info.header)
                looks_like = (f"; it looks like a {closest[0].name} file without its required column(s) "
                              f"{', '.join(closest[1])}" if closest and closest[1] else "")
                raise ImportRejected(
                    "unknown_profile",
                    f"{self.path.name}: no import profile matches the header {info.header[:12]} "
                    f"(line {info.header_line}){looks_like}; choose one with --profile or the upload sub-folder "
                    f"({', '.join(PROFILES)})",
                )
        return info, chunks, profile

    def stage_chunks(self, conn: Connection, chunks: Iterator[TableChunk], profile: Profile,
                     mapping: ColumnMapping) -> None:
        suffix = f"{self.import_id or 'dry'}_{int(time.time() * 1000) % 100000}"
        self.fields = set(mapping.by_field)
        if self.workers:
            logger.info("%s: validating in this process and %d worker processes", self.path.name, self.workers)
        scratch_folder = (tempfile.TemporaryDirectory(prefix="nightshift-import-", ignore_cleanup_errors=True)
                          if conn.dialect.name == "sqlite" and self.workers else nullcontext())
        # Closed in this order: the workers are done before their scratch folder goes.
        with (scratch_folder as scratch_dir,
              closing(prepared_chunks(ChunkJob(profile.name, mapping, self.phone_region, conn.dialect.name,
                                               scratch_dir=scratch_dir),
                                      _timed(chunks, self.timings, "read_s"), self.workers)) as prepared_in_order):
            self._stage_all(conn, prepared_in_order, suffix)

    def _stage_all(self, conn: Connection, prepared_in_order: Iterator[PreparedChunk], suffix: str) -> None:
        for prepared in prepared_in_order:
            self.rows_total += prepared.rows
            if not prepared.errors.empty:
                self.errors.append(prepared.errors)
            self.timings["read_s"] += prepared.read_s
            self.timings["validate_s"] += prepared.validate_s
            started = time.perf_counter()
            for prepared_target in prepared.targets:
                self._stage(conn, prepared_target, suffix)
            self.timings["stage_s"] += prepared.build_s + time.perf_counter() - started
            if self.rows_total - self.reported_rows >= PROGRESS_EVERY_ROWS:
                self.report_progress()
        if self.rows_total > self.reported_rows:
            self.report_progress()

    def report_progress(self) -> None:
        self.reported_rows = self.rows_total
        progress_logger.info("%s: %d rows read and validated", self.path.name, self.rows_total,
                             extra={"nightshift_rows": self.rows_total})
        if self.progress:
            self.progress(self.rows_total)

    def _stage(self, conn: Connection, prepared: PreparedTarget, suffix: str) -> None:
        name = prepared.name
        if prepared.parents is not None and not self.create_categories:
            if name == "category_parents":  # for unknown_category errors: the name as the file writes it
                for slug, category in zip(prepared.parents["slug"], prepared.parents["name"], strict=True):
                    self.category_names.setdefault(slug, category)
            return
        if name not in self.staging:
            self.staging[name] = StagingTable(conn, target(name), prepared.columns, suffix)
        if prepared.parents is not None:
            rows = prepared.parents[~prepared.parents["_key"].isin(self.parent_keys[name])]
            self.parent_keys[name].update(rows["_key"])
            self.staging[name].append(rows)
        else:
            self.keys.setdefault(name, []).append(prepared.keys)
            self.staging[name].write(prepared.payload)

    def reject_duplicates(self) -> None:
        """Later row wins; each earlier line gets a duplicate_key error naming the winning line. Keys travel
        as hashes: the rows whose hash repeats are then compared by their staged key text (a hash
        collision is not a duplicate)."""
        for name, parts in self.keys.items():
            hashes = pd.Series(np.concatenate([p.hashes for p in parts]))
            lines = np.concatenate([p.lines for p in parts])
            candidates = lines[hashes.duplicated(keep=False).to_numpy()]
            if len(candidates) == 0:
                continue
            staging = self.staging[name]
            texts = staging.keys_at(candidates)
            keys = pd.DataFrame({"line": np.sort(candidates)})
            keys["key"] = keys["line"].map(texts)
            earlier = keys.duplicated("key", keep="last")
            if not earlier.any():
                continue
            winner_of = keys.drop_duplicates("key", keep="last").set_index("key")["line"]
            losers = keys.loc[earlier]
            self.errors.append(pd.DataFrame({
                "line": losers["line"].to_numpy(), "column": None, "value": losers["key"].to_numpy(),
                "code": "duplicate_key", "winner": losers["key"].map(winner_of).to_numpy(),
            }))
            staging.delete_lines(losers["line"].to_numpy())

    def reject_unknown_categories(self, mapping: ColumnMapping) -> None:
        if self.create_categories:
            return
        staged_categories = self.staging.get("categories")
        known = sa.select(staged_categories.table.c.slug) if staged_categories is not None else None
        for staging in self.staging.values():
            if CATEGORY_REF not in staging.target.references:
                continue
            unresolved = staging.unresolved_lines(CATEGORY_REF, known)
            if not unresolved:
                continue
            lines, slugs = zip(*unresolved, strict=True)
            names = [self.category_names.get(slug, slug) for slug in slugs]
            column = mapping.by_field.get("categorie") or mapping.by_field.get("parent") or "categorie"
            self.errors.append(pd.DataFrame({"line": lines, "column": column, "value": names,
                                             "code": "unknown_category"}))
            staging.delete_lines(np.array(lines))

    def error_frame(self, lang: str, mapping: ColumnMapping, profile: Profile) -> pd.DataFrame:
        if not self.errors:
            return pd.DataFrame(columns=["line", "column", "value", "code", "message"])
        errors = pd.concat(self.errors, ignore_index=True)
        if "winner" not in errors.columns:
            errors["winner"] = None
        fields = {column: profile.get(name) for name, column in mapping.by_field.items()}
        errors["message"] = _messages(errors, lang, self.phone_region, fields)
        return errors.sort_values(["line", "code"], kind="stable").reset_index(drop=True)


def _messages(errors: pd.DataFrame, lang: str, region: str, fields: dict[str, Field]) -> pd.Series:
    """One message per error, formatted once per (code, column) group, per row only for duplicates."""
    result = pd.Series(index=errors.index, dtype=object)
    for (code, column), group in errors.groupby(["code", "column"], dropna=False, sort=False):
        column = None if pd.isna(column) else column
        if code == "duplicate_key":
            result[group.index] = [message(code, lang, winner=int(w), key=k)
                                   for w, k in zip(group["winner"], group["value"], strict=True)]
        elif code == "unknown_category":
            result[group.index] = [message(code, lang, value=v or "") for v in group["value"]]
        elif code == "too_long":
            lengths = group["value"].astype(str).str.strip().str.len()
            limit = fields[column].max_length if column in fields else "?"
            result[group.index] = [message(code, lang, column=column, length=n, max_length=limit)
                                   for n in lengths]
        else:
            spec = fields.get(column)
            result[group.index] = message(code, lang, column=column, region=region,
                                          min_value=getattr(spec, "min_value", None),
                                          max_value=getattr(spec, "max_value", None))
    return result


def run_import(
    engine: Engine,
    path: Path,
    settings: Settings,
    options: ImportOptions | None = None,
    *,
    import_id: int | None = None,
    progress: Progress | None = None,
    move_file: bool = False,
) -> ImportOutcome:
    """Import one file. Bad input gives an outcome with status `failed` (never an exception);
    infrastructure errors (database down, disk full) are raised after the log records them."""
    options = options or ImportOptions()
    run = _Run(engine, path, settings, options, import_id, progress)
    started = time.perf_counter()
    outcome = ImportOutcome(import_id=import_id, status="failed", profile=options.profile, dry_run=options.dry_run,
                            file_path=str(path))
    run.moves_file = move_file and not options.dry_run
    if import_id is not None and not options.dry_run:
        import_log.update_status(engine, import_id, status="running", stage="received")
    try:
        _execute(run, outcome, started)
    except (FileRejected, ImportRejected) as exc:
        outcome.status, outcome.failure_kind = "failed", "bad_input"
        outcome.unreadable = isinstance(exc, FileRejected)
        outcome.message = str(getattr(exc, "message", None) or exc)
        _finish_failed(run, outcome, started)
    except Exception as exc:
        outcome.status, outcome.failure_kind = "failed", failure_kind(exc)
        outcome.message = f"{type(exc).__name__}: {exc}"
        try:
            _finish_failed(run, outcome, started)
        except Exception:  # the database itself may be what failed; the original error matters more
            logger.exception("could not record the failure of import %s", import_id)
        raise
    if run.moves_file and path.exists():
        try:
            _move(run, outcome)
        except OSError as exc:
            # The rows are committed: redoing the import would only lose its counts. The log stays at
            # `merged` (the upload sensor leaves such a file alone) and says where the file is.
            logger.error("import %s: %s could not be moved out of the upload folder: %s", import_id, path.name, exc)
            outcome.message = f"{outcome.message} (the file could not be moved: {exc}; it is still at {path})"
            if import_id is not None:
                import_log.update_status(engine, import_id, message=outcome.message)
    return outcome


def failure_kind(exc: Exception) -> str:
    """`transient` (database unreachable, disk or network): worth another try; `internal`: a bug."""
    transient = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, OSError)
    return "transient" if isinstance(exc, transient) else "internal"


def _execute(run: _Run, outcome: ImportOutcome, started: float) -> None:
    info, chunks, profile = run.open(_profile_for(run.options))
    outcome.profile = profile.name
    outcome.encoding, outcome.delimiter, outcome.sheet = info.encoding, info.delimiter, info.sheet
    mapping = ColumnMapping.from_header(profile, [c for c in info.header if c not in REPORT_COLUMNS])
    outcome.unknown_columns = mapping.unknown
    if run.import_id is not None and not run.options.dry_run:
        import_log.update_status(run.engine, run.import_id, profile=profile.name,
                                 profile_version=profile.version, encoding=info.encoding,
                                 delimiter=info.delimiter, sheet=info.sheet, header_line=info.header_line)
    missing = profile.missing_required(info.header)
    if missing:
        raise ImportRejected(
            "missing_columns",
            f"{run.path.name}: required column(s) missing: {', '.join(missing)}; headers found on line "
            f"{info.header_line}: {', '.join(info.header)}",
        )
    if mapping.unknown:
        logger.info("%s: unknown columns ignored: %s", run.path.name, ", ".join(mapping.unknown))

    with run.engine.connect() as conn:
        try:
            run.stage_chunks(conn, chunks, profile, mapping)
            _log_stage(run, "parsed")
            with conn.begin():
                run.reject_duplicates()
                run.reject_unknown_categories(mapping)
            outcome.nul_bytes_removed, outcome.workers = info.nul_bytes_removed, run.workers
            errors = run.error_frame(run.settings.lang, mapping, profile)
            _log_stage(run, "validated")
            _decide_and_merge(run, conn, info, profile, errors, outcome, started)
        finally:
            _drop_staging(run, conn)


def _drop_staging(run: _Run, conn: Connection) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        if sqlite_file(conn.engine.url):
            # Closing the connection deletes its temporary database in one go; DROP TABLE would free a
            # big staging table page by page (about a second per million rows). Not for an in-memory
            # database, which would go with it.
            conn.invalidate()
            return
        with conn.begin():
            for staging in run.staging.values():
                staging.drop()
    except sa.exc.DBAPIError:
        # A dead connection takes its TEMP tables with it; the import's own error is what matters.
        logger.warning("could not drop the staging tables of import %s", run.import_id)


class _DryRun(Exception):
    """Raised inside the merge transaction of a dry run so that it rolls back."""


def _decide_and_merge(run: _Run, conn: Connection, info: TableInfo, profile: Profile, errors: pd.DataFrame,
                      outcome: ImportOutcome, started: float) -> None:
    invalid_lines = np.unique(errors["line"].dropna().to_numpy(dtype=np.int64))
    outcome.rows_total = run.rows_total
    outcome.invalid = len(invalid_lines)
    outcome.error_counts = {str(k): int(v) for k, v in errors["code"].value_counts().items()}
    outcome.errors = _first_errors(errors)

    if run.rows_total == 0:
        raise ImportRejected("no_rows", f"{run.path.name}: the header (line {info.header_line}) has no data rows")
    # Rows to fix and upload again: not an earlier line of a repeated key (its later line was imported,
    # and importing it again would undo that), and nothing at all for a dry run, which writes nothing.
    to_fix = np.unique(errors.loc[errors["code"] != "duplicate_key", "line"].dropna().to_numpy(dtype=np.int64))
    if len(to_fix) and not run.options.dry_run:
        report_started = time.perf_counter()
        outcome.error_report = str(_write_report(run, info, profile, errors, to_fix))
        run.timings["report_s"] = time.perf_counter() - report_started

    ratio = outcome.invalid / run.rows_total
    reason = None
    if run.options.strict and outcome.invalid:
        reason = f"--strict: {outcome.invalid} invalid row(s), nothing written"
    elif ratio > run.settings.imports.abort_invalid_ratio:
        reason = (f"{outcome.invalid} of {run.rows_total} rows invalid ({ratio:.0%}, more than "
                  f"{run.settings.imports.abort_invalid_ratio:.0%}: imports.abort_invalid_ratio): nothing written")
    merge_started = time.perf_counter()
    try:
        _merge_all(run, conn, reason, errors, outcome, started, merge_started)
    except _DryRun:
        pass


def _merge_all(run: _Run, conn: Connection, reason: str | None, errors: pd.DataFrame, outcome: ImportOutcome,
               started: float, merge_started: float) -> None:
    totals, created = MergeCounts(), 0
    with checkpoint_after_commit(conn), begin_write(conn) as transaction_conn:
        if reason is None:
            for name in MERGE_ORDER:
                staging = run.staging.get(name)
                if staging is None:
                    continue
                announce = name == "clients" and bool(hooks.NEW_CLIENT_HOOKS)
                new_keys = staging.absent_keys() if announce else []
                counts = staging.merge(run.import_id, run.fields, insert_only=name in PARENT_TARGETS)
                if announce and new_keys and not run.options.dry_run:
                    _announce_new_clients(transaction_conn, new_keys, run.import_id)
                if name in PARENT_TARGETS:
                    created += counts.inserted
                else:
                    totals.inserted += counts.inserted
                    totals.updated += counts.updated
                    totals.unchanged += counts.unchanged
        outcome.inserted, outcome.updated, outcome.unchanged = totals.inserted, totals.updated, totals.unchanged
        outcome.categories_created = created
        run.timings["merge_s"] = time.perf_counter() - merge_started
        if reason is not None:
            outcome.status, outcome.failure_kind, outcome.message = "failed", "bad_input", reason
        else:
            outcome.status = "partial" if outcome.invalid else "succeeded"
            outcome.message = _summary(outcome)
        _finalise_timings(run, outcome, started)
        if run.options.dry_run:
            raise _DryRun
        if run.import_id is not None:
            import_log.store_errors(transaction_conn, run.import_id, errors)
            stage = "merged" if run.moves_file else "done"
            import_log.update(transaction_conn, run.import_id, **_log_values(outcome, stage=stage))
    run.merged = True


def _announce_new_clients(conn: Connection, phones: list[str], import_id: int | None) -> None:
    ids = [row[0] for start in range(0, len(phones), 500) for row in conn.execute(
        sa.select(clients.c.id).where(clients.c.phone.in_(phones[start:start + 500])))]
    for hook in hooks.NEW_CLIENT_HOOKS:
        hook(conn, ids, import_id)


def _summary(outcome: ImportOutcome) -> str:
    summary = (f"{outcome.rows_total} rows: {outcome.inserted} inserted, {outcome.updated} updated, "
               f"{outcome.unchanged} unchanged, {outcome.invalid} invalid")
    if outcome.unknown_columns:
        summary += f"; unknown columns ignored: {', '.join(outcome.unknown_columns)}"
    if outcome.nul_bytes_removed:
        summary += f"; {outcome.nul_bytes_removed} NUL byte(s) removed from the text"
    if outcome.encoding and outcome.encoding.endswith(MIXED_SUFFIX):
        summary += "; bytes that are not UTF-8 were read as Windows-1252: check the accents"
    if outcome.workers:
        summary += f"; validated by {outcome.workers + 1} processes"
    return summary


def _first_errors(errors: pd.DataFrame) -> list[dict[str, Any]]:
    head = errors.head(ERRORS_IN_OUTCOME)
    return [
        {"line": int(r.line), "column": r.column, "value": None if pd.isna(r.value) else str(r.value),
         "code": r.code, "message": r.message}
        for r in head.itertuples(index=False)
    ]


def _write_report(run: _Run, info: TableInfo, profile: Profile, errors: pd.DataFrame,
                  lines: np.ndarray) -> Path:
    """Second pass over the file: the rejected rows with their original values, in file order."""
    per_line = errors.groupby("line", sort=True).agg(
        _colonne=("column", lambda c: " ; ".join(dict.fromkeys(str(x) for x in c if x is not None and pd.notna(x)))),
        _erreur=("message", lambda m: " | ".join(dict.fromkeys(m))),
    )
    suffix = ".xlsx" if info.file_format != "csv" else ".csv"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{run.path.stem}.erreurs.{run.import_id or 'import'}.{stamp}{suffix}"
    report = ErrorReport(run.settings.reports_dir / name, info.header, info.delimiter)
    try:
        _, chunks = open_table(run.path, score_header=profile.score_header,
                               max_bytes=run.settings.imports.max_bytes, max_rows=run.settings.imports.max_rows,
                               max_cells=run.settings.imports.max_cells)
        for chunk in chunks:
            selected = np.isin(chunk.lines, lines)
            if not selected.any():
                continue
            rows = chunk.frame.loc[selected].copy()
            rows["_ligne"] = chunk.lines[selected]
            rows = rows.join(per_line, on="_ligne")
            rows["_ligne"] = rows["_ligne"].astype(str)
            report.add(rows)
    finally:
        report.close()
    return report.path


def _finalise_timings(run: _Run, outcome: ImportOutcome, started: float) -> None:
    run.timings["total_s"] = time.perf_counter() - started
    outcome.timings = {k: round(v, 4) for k, v in run.timings.items()}
    total = run.timings["total_s"]
    outcome.rows_per_second = round(outcome.rows_total / total, 1) if total > 0 else None


def _log_values(outcome: ImportOutcome, stage: str) -> dict[str, Any]:
    return {
        "status": outcome.status, "stage": stage, "profile": outcome.profile,
        "rows_total": outcome.rows_total, "inserted": outcome.inserted, "updated": outcome.updated,
        "unchanged": outcome.unchanged, "invalid": outcome.invalid, "error_counts": outcome.error_counts,
        "timings": outcome.timings, "rows_per_second": outcome.rows_per_second,
        "error_report_path": outcome.error_report, "message": outcome.message,
        "failure_kind": outcome.failure_kind, "finished_at": datetime.now(UTC),
    }


def _log_stage(run: _Run, stage: str) -> None:
    if run.import_id is not None and not run.options.dry_run:
        import_log.set_stage(run.engine, run.import_id, stage)


def _finish_failed(run: _Run, outcome: ImportOutcome, started: float) -> None:
    _finalise_timings(run, outcome, started)
    if run.import_id is None or run.options.dry_run:
        return
    current = import_log.get(run.engine, run.import_id)
    import_log.update_status(run.engine, run.import_id, **_log_values(outcome, stage=current["stage"]))


def _move(run: _Run, outcome: ImportOutcome) -> None:
    folder = run.settings.failed_dir if outcome.status == "failed" else run.settings.processed_dir
    day = datetime.now(run.settings.tz).date()
    moved = move_without_overwrite(run.path, folder, day)
    outcome.file_path = str(moved)
    if run.import_id is not None:
        # Bad input found before the merge keeps the stage it reached; a merged import is now done.
        done = {"stage": "done"} if run.merged else {}
        import_log.update_status(run.engine, run.import_id, file_path=str(moved), **done)
