"""One import, end to end: read → validate → stage → decide → error report → merge and log → file moved.

Stages recorded in the import log: received → parsed → validated → merged → done. Nothing is
half-written: the merge of every target and the log's final state commit in one transaction.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.config import Settings
from nightshift.db.engine import (
    TRANSIENT_DB_ERRORS,
    begin_write,
    checkpoint_after_commit,
    read_transaction,
    sqlite_file,
)
from nightshift.db.schema import accounts, categories, clients
from nightshift.imports import hooks, values
from nightshift.imports import log as import_log
from nightshift.imports.column_maps import ImportColumnMap
from nightshift.imports.files import move_without_overwrite
from nightshift.imports.merge import RowChange, StagingTable
from nightshift.imports.messages import Rejection, message
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
from nightshift.imports.reading import MIXED_SUFFIX, FileRejected, ScoreHeader, TableChunk, TableInfo, open_table
from nightshift.imports.report import REPORT_COLUMNS, ErrorReport, RejectedRows
from nightshift.imports.targets import CATEGORY_REF, MERGE_ORDER, Target, target
from nightshift.imports.validate import ColumnMapping
from nightshift.phones import refusal_reason

logger = logging.getLogger("nightshift.imports")
# One record every PROGRESS_EVERY_ROWS rows and at the end (`nightshift_rows`, `nightshift_rows_per_second`):
# the CLI's terminal progress line.
progress_logger = logging.getLogger("nightshift.imports.progress")

ERRORS_IN_OUTCOME = 100
# Rows validated and staged together: large enough to pay pandas' fixed cost per step rarely, small
# enough to bound memory whatever the file size (several chunks are in flight with worker processes).
CHUNK_ROWS = 10_000
PROGRESS_EVERY_ROWS = 5 * CHUNK_ROWS  # reported as chunks are staged: a whole number of them


class ImportRejected(Rejection):
    """The file as a whole cannot be imported (bad input: the user must fix the file)."""


@dataclass
class ImportOptions:
    profile: str | None = None
    account_id: int | None = None
    strict: bool = False
    dry_run: bool = False
    create_categories: bool | None = None  # None: the setting imports.create_categories
    phone_region: str | None = None
    preview_rows: int = 0  # list what the merge does to the file's first N rows (0: no list)


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
    # The first preview_rows rows by line: new / changed (column as the file names it: old → new) /
    # unchanged / invalid (its errors).
    preview: list[dict[str, Any]] = field(default_factory=list)


Progress = Callable[[int], None]


@dataclass(frozen=True)
class _OpenedFile:
    """The file once its format, header and profile are known; its rows are read as staging takes them."""

    profile: Profile
    info: TableInfo
    mapping: ColumnMapping
    chunks: Iterator[TableChunk]
    workers: int  # worker processes that will validate chunks besides this one

    def outcome_fields(self) -> dict[str, Any]:
        return {"profile": self.profile.name, "encoding": self.info.encoding, "delimiter": self.info.delimiter,
                "sheet": self.info.sheet, "unknown_columns": self.mapping.unknown}


@dataclass(frozen=True)
class _ValidatedFile:
    """Every row of the file validated and staged, with the errors of the whole file."""

    rows_total: int
    errors: pd.DataFrame  # one row per error, with its message, by line
    invalid: int  # rows with at least one error
    nul_bytes_removed: int
    workers: int  # worker processes that validated chunks besides this one

    def outcome_fields(self) -> dict[str, Any]:
        return {"rows_total": self.rows_total, "invalid": self.invalid, "errors": _first_errors(self.errors),
                "error_counts": {str(k): int(v) for k, v in self.errors["code"].value_counts().items()},
                "nul_bytes_removed": self.nul_bytes_removed, "workers": self.workers}


@dataclass(frozen=True)
class _MergeResult:
    """What the merge wrote: the rows of the file's own targets, and the parent categories it created."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    categories_created: int = 0


def _profile_for(options: ImportOptions, lang: str) -> Profile | None:
    if options.profile is None:
        return None
    try:
        return PROFILES[options.profile]
    except KeyError:
        raise ImportRejected("no_such_profile", lang, profile=options.profile, known=", ".join(PROFILES)) from None


def missing_columns_text(missing: list[tuple[Field, ...]], lang: str) -> str:
    """The missing required columns with the headers a file may give each (a group: one of its fields)."""
    def spelled(field: Field) -> str:
        if not field.aliases:
            return field.name
        return message("column_spellings", lang, column=field.name, spellings=", ".join(field.spellings))

    def group(fields: tuple[Field, ...]) -> str:
        text = spelled(fields[0])
        for alternative in fields[1:]:
            text = message("either_column", lang, first=text, second=spelled(alternative))
        return text

    return ", ".join(group(fields) for fields in missing)


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


def _best_score(profiles: list[Profile]) -> ScoreHeader:
    def score(cells: list[str]) -> float:
        return max(p.score_header(cells) for p in profiles)

    return score


def _account(engine: Engine, account_id: int | None) -> tuple[str | None, str | None]:
    """The owning account's slug (its column map) and region for phone numbers without a country code
    (None, None: no account)."""
    if account_id is None:
        return None, None
    with read_transaction(engine) as conn:
        row = conn.execute(sa.select(accounts.c.slug, accounts.c.phone_region)
                           .where(accounts.c.id == account_id)).one_or_none()
    return (row.slug, row.phone_region) if row else (None, None)


class _Run:
    """State of one import while it runs (kept off the public API)."""

    def __init__(self, engine: Engine, path: Path, settings: Settings, options: ImportOptions,
                 import_id: int | None, progress: Progress | None, move_file: bool) -> None:
        self.engine, self.path, self.settings, self.options = engine, path, settings, options
        self.import_id, self.progress = import_id, progress
        # A dry run and an import without a log row record nothing in the import log.
        self.logged = import_id is not None and not options.dry_run
        # The upload moves to processed/ or failed/ after the merge: the log says `merged` until it has.
        self.moves_file = move_file and not options.dry_run
        self.timings: dict[str, float] = {"read_s": 0.0, "validate_s": 0.0, "stage_s": 0.0}
        self.errors: list[pd.DataFrame] = []
        self.rejected_rows = RejectedRows()  # what the error report lists, but for its messages
        self.keys: dict[str, list[KeyHashes]] = {}
        self.staging: dict[str, StagingTable] = {}
        self.changes: list[tuple[RowChange, Target]] = []
        self.parent_keys: dict[str, set[str]] = {name: set() for name in PARENT_TARGETS}
        self.category_names: dict[str, str] = {}  # slug -> name, when categories are not created
        self.rows_total = 0
        self.reported_rows = 0
        self.report: Path | None = None  # the error report, once written
        self.create_categories = (settings.imports.create_categories if options.create_categories is None
                                  else options.create_categories)
        self.account_slug, account_region = _account(engine, options.account_id)
        self.phone_region = options.phone_region or account_region or settings.imports.default_phone_region
        self.lang = settings.lang
        self.started = time.perf_counter()

    def open_table(self, score_header: ScoreHeader, **chunking: int) -> tuple[TableInfo, Iterator[TableChunk]]:
        """The file, read within the size, row and cell limits of the settings."""
        limits = self.settings.imports
        return open_table(self.path, score_header=score_header, max_bytes=limits.max_bytes,
                          max_rows=limits.max_rows, max_cells=limits.max_cells, lang=self.lang, **chunking)

    def open(self, profile: Profile | None) -> _OpenedFile:
        """The file with its profile (the one given, else the one its header matches), reading the headers
        the column maps name as their fields."""
        imports = self.settings.imports
        workers = worker_count(imports.workers, imports.parallel_min_bytes, self.path.stat().st_size)
        if workers:
            start_worker_server()  # it loads while this process scans the file
        column_map = ImportColumnMap.of(self.settings, self.account_slug)
        if profile is not None:
            profile = column_map.applied_to(profile)
        profiles = [profile] if profile is not None else column_map.profiles()
        info, chunks = self.open_table(_best_score(profiles), chunk_rows=CHUNK_ROWS)
        if profile is None:
            profile = detect_profile(info.header, profiles)
        if profile is None:
            closest = closest_profile(info.header, profiles)
            looks_like = (message("looks_like_profile", self.lang, profile=closest[0].name,
                                  missing=missing_columns_text(closest[1], self.lang))
                          if closest and closest[1] else "")
            raise ImportRejected("unknown_profile", self.lang, file=self.path.name,
                                 header=", ".join(info.header[:12]), line=info.header_line,
                                 looks_like=looks_like, profiles=", ".join(PROFILES))
        column_map.check(profile, info.header, self.path.name, self.lang)
        mapping = ColumnMapping.from_header(profile, [c for c in info.header if c not in REPORT_COLUMNS])
        return _OpenedFile(profile, info, mapping, chunks, workers)

    def log(self, **values: Any) -> None:
        if self.logged:
            import_log.update_status(self.engine, self.import_id, **values)

    def log_stage(self, stage: str) -> None:
        if self.logged:
            import_log.set_stage(self.engine, self.import_id, stage)

    def stage_chunks(self, conn: Connection, opened: _OpenedFile) -> None:
        suffix = f"{self.import_id or 'dry'}_{int(time.time() * 1000) % 100000}"
        if opened.workers:
            logger.info(message("log_workers", self.lang, file=self.path.name, workers=opened.workers))
        scratch_folder = (tempfile.TemporaryDirectory(prefix="nightshift-import-", ignore_cleanup_errors=True)
                          if conn.dialect.name == "sqlite" and opened.workers else nullcontext())
        # Closed in this order: the workers are done before their scratch folder goes.
        with (scratch_folder as scratch_dir,
              closing(prepared_chunks(ChunkJob(opened.profile.name, opened.mapping, self.phone_region,
                                               conn.dialect.name, scratch_dir=scratch_dir,
                                               keeps_rejected_rows=not self.options.dry_run,
                                               known_categories=self._known_categories()),
                                      _timed(opened.chunks, self.timings, "read_s"),
                                      opened.workers)) as prepared_in_order):
            self._stage_all(conn, prepared_in_order, suffix)

    def _known_categories(self) -> frozenset[str] | None:
        """The database's category slugs, when a row naming another one is refused and the report lists it."""
        if self.create_categories or self.options.dry_run:
            return None
        with read_transaction(self.engine) as conn:
            return frozenset(conn.execute(sa.select(categories.c.slug)).scalars())

    def _stage_all(self, conn: Connection, prepared_in_order: Iterator[PreparedChunk], suffix: str) -> None:
        for prepared in prepared_in_order:
            self.rows_total += prepared.rows
            if not prepared.errors.empty:
                self.errors.append(prepared.errors)
            self.rejected_rows.add(prepared.rejected_rows)
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
        rate = import_log.rows_per_second(self.rows_total, time.perf_counter() - self.started)
        progress_logger.info(message("log_progress", self.lang, file=self.path.name, rows=self.rows_total),
                             extra={"nightshift_rows": self.rows_total, "nightshift_rows_per_second": rate})
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

    def error_frame(self, mapping: ColumnMapping, profile: Profile) -> pd.DataFrame:
        if not self.errors:
            return pd.DataFrame(columns=["line", "column", "value", "code", "message"])
        errors = pd.concat(self.errors, ignore_index=True)
        if "winner" not in errors.columns:
            errors["winner"] = None
        fields = {column: profile.get(name) for name, column in mapping.by_field.items()}
        errors["message"] = _messages(errors, self.lang, self.phone_region, fields)
        return errors.sort_values(["line", "code"], kind="stable").reset_index(drop=True)

    def merge(self, conn: Connection, fields: set[str]) -> _MergeResult:
        """Every staged target, parents first, in the caller's transaction. `fields`: the profile fields the
        file has, the only ones an update writes."""
        inserted = updated = unchanged = categories_created = 0
        for name in MERGE_ORDER:
            staging = self.staging.get(name)
            if staging is None:
                continue
            announce = name == "clients" and bool(hooks.NEW_CLIENT_HOOKS)
            new_keys = staging.absent_keys() if announce else []
            if self.options.preview_rows and name not in PARENT_TARGETS:
                self.changes.extend((change, staging.target)
                                    for change in staging.changes(fields, self.options.preview_rows))
            counts = staging.merge(self.import_id, fields, insert_only=name in PARENT_TARGETS)
            if announce and new_keys and not self.options.dry_run:
                _announce_new_clients(conn, new_keys, self.import_id)
            if name in PARENT_TARGETS:
                categories_created += counts.inserted
            else:
                inserted, updated, unchanged = (inserted + counts.inserted, updated + counts.updated,
                                                unchanged + counts.unchanged)
        return _MergeResult(inserted, updated, unchanged, categories_created)


# The advice for a phone number to_e164 refused, by why it did (phones.refusal_reason).
_PHONE_MESSAGES = {"not_a_number": "not_a_phone", "international": "invalid_international_phone",
                   "national": "invalid_phone"}


def _messages(errors: pd.DataFrame, lang: str, region: str, fields: dict[str, Field]) -> pd.Series:
    """One message per error, formatted once per (code, column) group, per distinct value for phones,
    per row for duplicates."""
    result = pd.Series(index=errors.index, dtype=object)
    for (code, column), group in errors.groupby(["code", "column"], dropna=False, sort=False):
        column = None if pd.isna(column) else column
        if code == "duplicate_key":
            result[group.index] = [message(code, lang, winner=int(w), key=k)
                                   for w, k in zip(group["winner"], group["value"], strict=True)]
        elif code == "invalid_phone":
            distinct = group["value"].drop_duplicates()
            advice = {raw: message(_PHONE_MESSAGES[refusal_reason(text)], lang, column=column, region=region)
                      for raw, text in zip(distinct, values.clean_text(distinct), strict=True)}
            result[group.index] = group["value"].map(advice).to_numpy()
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
    run = _Run(engine, path, settings, options, import_id, progress, move_file)
    run.log(status="running", stage="received")
    opened: _OpenedFile | None = None
    validated: _ValidatedFile | None = None
    try:
        opened = run.open(_profile_for(options, run.lang))
        with engine.connect() as conn:
            try:
                validated = _execute(run, conn, opened)
                outcome = _merge_or_abort(run, conn, opened, validated)
            finally:
                run.rejected_rows.close()
                _drop_staging(run, conn)
    except Rejection as exc:  # the file, or how the command asks to read it
        outcome = _outcome(run, opened, validated, status="failed", failure_kind="bad_input",
                           message=exc.message, unreadable=isinstance(exc, FileRejected))
        run.log(**_log_values(outcome))  # the stage stays the one the import reached
        committed = False
    except Exception as exc:
        outcome = _outcome(run, opened, validated, status="failed", failure_kind=failure_kind(exc),
                           message=f"{type(exc).__name__}: {exc}")
        try:
            run.log(**_log_values(outcome))
        except Exception:  # the database itself may be what failed; the original error matters more
            logger.exception(message("log_failure_not_recorded", run.lang, import_id=import_id))
        raise
    else:
        committed = True  # the merge transaction, with the log's final state
    if run.moves_file and path.exists():
        outcome = _move(run, outcome, committed)
    return outcome


def failure_kind(exc: Exception) -> str:
    """`transient` (database unreachable, disk or network): worth another try; `internal`: a bug."""
    return "transient" if isinstance(exc, (*TRANSIENT_DB_ERRORS, OSError)) else "internal"


def _execute(run: _Run, conn: Connection, opened: _OpenedFile) -> _ValidatedFile:
    """Every row of the open file validated and staged on `conn`; repeated keys and unknown categories
    rejected."""
    profile, info, mapping = opened.profile, opened.info, opened.mapping
    run.log(profile=profile.name, profile_version=profile.version, encoding=info.encoding,
            delimiter=info.delimiter, sheet=info.sheet, header_line=info.header_line)
    missing = profile.missing_required(info.header)
    if missing:
        raise ImportRejected("missing_columns", run.lang, file=run.path.name,
                             missing=missing_columns_text(missing, run.lang), line=info.header_line,
                             headers=", ".join(info.header))
    if mapping.unknown:
        logger.info(message("log_unknown_columns", run.lang, file=run.path.name, columns=", ".join(mapping.unknown)))
    run.stage_chunks(conn, opened)
    run.log_stage("parsed")
    with conn.begin():
        run.reject_duplicates()
        run.reject_unknown_categories(mapping)
    errors = run.error_frame(mapping, profile)
    run.log_stage("validated")
    invalid = len(np.unique(errors["line"].dropna().to_numpy(dtype=np.int64)))
    return _ValidatedFile(run.rows_total, errors, invalid, info.nul_bytes_removed, opened.workers)


def _drop_staging(run: _Run, conn: Connection) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        if sqlite_file(conn.engine.url):
            # Closing the connection deletes its temporary database in one go, where DROP TABLE would
            # free a big staging table page by page. Not for an in-memory database, which would go with it.
            conn.invalidate()
            return
        with conn.begin():
            for staging in run.staging.values():
                staging.drop()
    except sa.exc.DBAPIError:
        # A dead connection takes its TEMP tables with it; the import's own error is what matters.
        logger.warning(message("log_staging_not_dropped", run.lang, import_id=run.import_id))


class _DryRun(Exception):
    """Raised inside the merge transaction of a dry run so that it rolls back."""


def _merge_or_abort(run: _Run, conn: Connection, opened: _OpenedFile, validated: _ValidatedFile) -> ImportOutcome:
    """The decision and what it writes. `--strict` with any invalid row, or more invalid rows than
    imports.abort_invalid_ratio: nothing is merged; otherwise every target is. Either way the log's final
    state and the detailed errors commit in that one transaction (a dry run rolls it back); the error
    report is written before it, so that the final state records its path."""
    if validated.rows_total == 0:
        raise ImportRejected("no_rows", run.lang, file=run.path.name, line=opened.info.header_line)
    invalid, limit = validated.invalid, run.settings.imports.abort_invalid_ratio
    ratio = invalid / validated.rows_total
    abort_reason = None
    if run.options.strict and invalid:
        abort_reason = message("strict_abort", run.lang, invalid=invalid)
    elif ratio > limit:
        abort_reason = message("too_many_invalid", run.lang, invalid=invalid, rows=validated.rows_total, ratio=ratio,
                               limit=limit)
    if not run.options.dry_run:
        run.report = _write_report(run, opened, validated.errors)

    merge_started = time.perf_counter()
    try:
        with checkpoint_after_commit(conn), begin_write(conn) as transaction:
            if abort_reason is None:
                merged = run.merge(transaction, set(opened.mapping.by_field))
                status, failure, text = ("partial" if invalid else "succeeded", None,
                                         _summary(opened, validated, merged, run.lang))
            else:
                merged, status, failure, text = _MergeResult(), "failed", "bad_input", abort_reason
            run.timings["merge_s"] = time.perf_counter() - merge_started
            outcome = _outcome(run, opened, validated, status=status, failure_kind=failure, message=text,
                               merged=merged)
            if run.options.preview_rows:
                outcome.preview = _preview(run, opened.mapping, validated.errors)
            if run.options.dry_run:
                raise _DryRun
            if run.import_id is not None:
                import_log.store_errors(transaction, run.import_id, validated.errors)
                import_log.update(transaction, run.import_id, stage="merged" if run.moves_file else "done",
                                  **_log_values(outcome))
    except _DryRun:
        pass
    return outcome


def _announce_new_clients(conn: Connection, phones: list[str], import_id: int | None) -> None:
    ids = [row[0] for start in range(0, len(phones), 500) for row in conn.execute(
        sa.select(clients.c.id).where(clients.c.phone.in_(phones[start:start + 500])))]
    for hook in hooks.NEW_CLIENT_HOOKS:
        hook(conn, ids, import_id)


def _summary(opened: _OpenedFile, validated: _ValidatedFile, merged: _MergeResult, lang: str) -> str:
    parts = [message("summary", lang, rows=validated.rows_total, inserted=merged.inserted, updated=merged.updated,
                     unchanged=merged.unchanged, invalid=validated.invalid)]
    if opened.mapping.unknown:
        parts.append(message("unknown_columns_ignored", lang, columns=", ".join(opened.mapping.unknown)))
    if validated.nul_bytes_removed:
        parts.append(message("nul_bytes_removed", lang, count=validated.nul_bytes_removed))
    if opened.info.encoding and opened.info.encoding.endswith(MIXED_SUFFIX):
        parts.append(message("read_as_cp1252", lang))
    if validated.workers:
        parts.append(message("validated_by_processes", lang, processes=validated.workers + 1))
    return message("summary_separator", lang).join(parts)


def _preview(run: _Run, mapping: ColumnMapping, errors: pd.DataFrame) -> list[dict[str, Any]]:
    """The first preview_rows rows of the file: what the merge did (or, in a dry run, would do) to each
    and the invalid ones with their errors; columns named as the file's header."""
    limit = run.options.preview_rows
    entries: dict[int, dict[str, Any]] = {}
    for change, staged_into in run.changes:
        sources = staged_into.sources
        entries[change.line] = {"line": change.line, "status": change.status, "changes": [
            {"column": _header(sources.get(column, ()), mapping, column), "old": _shown(old), "new": _shown(new)}
            for column, old, new in change.changes]}
    first_invalid = errors[errors["line"].isin(errors["line"].drop_duplicates().sort_values().head(limit))]
    for line, group in first_invalid.groupby("line", sort=True):
        entries[int(line)] = {"line": int(line), "status": "invalid", "errors": [
            {"column": r.column, "code": r.code, "message": r.message} for r in group.itertuples(index=False)]}
    return [entries[line] for line in sorted(entries)[:limit]]


def _header(fields: tuple[str, ...], mapping: ColumnMapping, column: str) -> str:
    """The file's header for a stored column: that of the first of its fields the file has."""
    return next((mapping.by_field[f] for f in fields if f in mapping.by_field), column)


def _shown(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _first_errors(errors: pd.DataFrame) -> list[dict[str, Any]]:
    head = errors.head(ERRORS_IN_OUTCOME)
    return [
        {"line": int(r.line), "column": r.column, "value": None if pd.isna(r.value) else str(r.value),
         "code": r.code, "message": r.message}
        for r in head.itertuples(index=False)
    ]


def _write_report(run: _Run, opened: _OpenedFile, errors: pd.DataFrame) -> Path | None:
    """The rows to fix and upload again, with their original values as the one pass read them, in file order
    (None: there are none). The earlier lines of a repeated key are left out: the later line was imported,
    and importing an earlier one again would undo it."""
    to_fix = np.unique(errors.loc[errors["code"] != "duplicate_key", "line"].dropna().to_numpy(dtype=np.int64))
    if len(to_fix) == 0:
        return None
    started = time.perf_counter()
    info = opened.info
    suffix = ".xlsx" if info.file_format != "csv" else ".csv"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{run.path.stem}.erreurs.{run.import_id or 'import'}.{stamp}{suffix}"
    report = ErrorReport(run.settings.reports_dir / name, info.header, info.delimiter)
    # Sorted by line once (stable: a line's messages keep their order), a chunk's errors are one slice, not a
    # scan of every error per chunk.
    by_line = errors.dropna(subset=["line"]).sort_values("line", kind="stable")
    lines = by_line["line"].to_numpy(dtype=np.int64)
    try:
        for rejected in run.rejected_rows:
            rows = rejected[rejected["_ligne"].isin(to_fix)]
            if rows.empty:
                continue
            first = np.searchsorted(lines, rows["_ligne"].min(), side="left")
            last = np.searchsorted(lines, rows["_ligne"].max(), side="right")
            # The report columns of these rows only: for every invalid line at once, they would take as much
            # memory again as the errors themselves.
            rows = rows.join(_report_columns(by_line.iloc[first:last]), on="_ligne")
            rows["_ligne"] = rows["_ligne"].astype(str)
            report.add(rows)
    finally:
        report.close()
    run.timings["report_s"] = time.perf_counter() - started
    return report.path


def _report_columns(errors: pd.DataFrame) -> pd.DataFrame:
    """`_colonne` and `_erreur` of each line of `errors`: its columns and its messages, each once."""
    return errors.groupby("line", sort=True).agg(
        _colonne=("column", lambda c: " ; ".join(dict.fromkeys(str(x) for x in c if x is not None and pd.notna(x)))),
        _erreur=("message", lambda m: " | ".join(dict.fromkeys(m))),
    )


def _outcome(run: _Run, opened: _OpenedFile | None, validated: _ValidatedFile | None, *, status: str,
             message: str, failure_kind: str | None = None, unreadable: bool = False,
             merged: _MergeResult = _MergeResult()) -> ImportOutcome:
    """The outcome of the run so far: the file's format once it is open, its rows and errors once all are
    validated, the error report once written, what the merge wrote once it has."""
    total_s = time.perf_counter() - run.started
    known: dict[str, Any] = {"profile": run.options.profile}
    if opened is not None:
        known |= opened.outcome_fields()
    if validated is not None:
        known |= validated.outcome_fields()
    rows_total = known.get("rows_total", 0)
    return ImportOutcome(
        import_id=run.import_id, status=status, message=message, failure_kind=failure_kind, unreadable=unreadable,
        inserted=merged.inserted, updated=merged.updated, unchanged=merged.unchanged,
        categories_created=merged.categories_created, error_report=None if run.report is None else str(run.report),
        timings={k: round(v, 4) for k, v in {**run.timings, "total_s": total_s}.items()},
        rows_per_second=import_log.rows_per_second(rows_total, total_s),
        dry_run=run.options.dry_run, file_path=str(run.path), **known,
    )


def _log_values(outcome: ImportOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status, "profile": outcome.profile,
        "rows_total": outcome.rows_total, "inserted": outcome.inserted, "updated": outcome.updated,
        "unchanged": outcome.unchanged, "invalid": outcome.invalid, "error_counts": outcome.error_counts,
        "timings": outcome.timings, "rows_per_second": outcome.rows_per_second,
        "error_report_path": outcome.error_report, "message": outcome.message,
        "failure_kind": outcome.failure_kind, "finished_at": datetime.now(UTC),
    }


def _move(run: _Run, outcome: ImportOutcome, committed: bool) -> ImportOutcome:
    """The outcome once the upload has moved to processed/ or failed/, or with why it could not."""
    folder = run.settings.failed_dir if outcome.status == "failed" else run.settings.processed_dir
    try:
        moved = move_without_overwrite(run.path, folder, datetime.now(run.settings.tz).date())
    except OSError as exc:
        # The rows are committed: redoing the import would only lose its counts. The log stays at
        # `merged` (the upload sensor leaves such a file alone) and says where the file is.
        logger.error(message("log_file_not_moved", run.lang, import_id=run.import_id, file=run.path.name, reason=exc))
        text = message("file_not_moved", run.lang, message=outcome.message, reason=exc, path=run.path)
        run.log(message=text)
        return replace(outcome, message=text)
    # Bad input found before the merge keeps the stage it reached; a merged import is now done.
    run.log(file_path=str(moved), **({"stage": "done"} if committed else {}))
    return replace(outcome, file_path=str(moved))
