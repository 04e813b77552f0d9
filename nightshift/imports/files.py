"""Upload files: content hashes, safe names, partition keys, moves to processed/ and failed/."""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from datetime import date
from pathlib import Path

HASH_BLOCK = 1024 * 1024
# Names of files still being written by editors, browsers and copy tools.
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download")
PARTIAL_PREFIXES = ("~$", ".~lock", ".")
PARTITION_KEY_MAX = 120


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def is_partial_name(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(PARTIAL_SUFFIXES) or name.startswith(PARTIAL_PREFIXES)


def safe_name(name: str, max_length: int = 150) -> str:
    """A file name without directories, control characters or shell-hostile characters."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    base = re.sub(r"[^\w.\- ()]+", "_", base).strip(" .")
    base = re.sub(r"\.{2,}", ".", base)
    if not base:
        base = "upload"
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = suffix[:10]
    room = max_length - len(suffix) - 1
    return f"{stem[:room]}.{suffix}" if suffix else stem[:max_length]


def partition_key(name: str, sha256: str, import_id: int) -> str:
    """Dynamic partition key of a registered import: `<file stem>-<12 hex of sha256>-<import id>`.

    Readable (the file's stem in ASCII), no ',' (breaks UI backfills), at most PARTITION_KEY_MAX
    characters, and unique per import: the same bytes registered twice (another profile folder, a re-upload
    after the first import can no longer run) get two partitions, each resolving to its own import. Stored
    on the import row when it is registered and never recomputed, so re-executions and backfills of the
    partition find the same import for its whole life."""
    suffix = f"-{sha256[:12]}-{import_id}"
    stem = safe_name(name).rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode())
    stem = re.sub(r"_{2,}", "_", stem).strip("._-")[: PARTITION_KEY_MAX - len(suffix)].rstrip("._-") or "upload"
    return f"{stem}{suffix}"


def move_without_overwrite(source: Path, folder: Path, day: date) -> Path:
    """Move a handled upload into folder/<yyyy-mm-dd>/, adding a numbered suffix on a name clash."""
    target_dir = folder / day.isoformat()
    target_dir.mkdir(parents=True, exist_ok=True)
    name = safe_name(source.name)
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate = target_dir / name
    counter = 1
    while candidate.exists():
        candidate = target_dir / (f"{stem} ({counter}).{suffix}" if suffix else f"{stem} ({counter})")
        counter += 1
    shutil.move(str(source), str(candidate))
    return candidate
