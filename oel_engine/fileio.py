"""Files that survive a crash: atomic whole-file writes, real appends, tolerant JSON-lines reads.

Atomic = write a temp file in the same folder, fsync, rename over the target; a crash leaves
either the old or the new file, never half of one. An append is one write + fsync: a crash can
at worst leave a torn last line, which readers skip (and count) and the next append cuts off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

log = logging.getLogger("oel_engine")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_directory(target: Path):
    """Yield a temp folder beside `target`; when the block succeeds it replaces `target` whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def jsonl_bytes(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def append_bytes(path: Path, data: bytes) -> int:
    """Append `data` (whole lines) with one write and an fsync; returns the file's new size.

    A torn last line left by a crash is cut off first, so a new record never glues onto it."""
    path = Path(path)
    if not data:
        return path.stat().st_size if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "ab+") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                _cut_torn_line(f, size)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    if created:
        _fsync_dir(path.parent)
    return size


def _cut_torn_line(f, size: int) -> None:
    """Truncate an open file after its last newline (the torn record was never committed)."""
    step, end = 4096, size
    while end > 0:
        start = max(0, end - step)
        f.seek(start)
        chunk = f.read(end - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            f.truncate(start + cut + 1)
            log.warning("%s: a torn last line (%d bytes) was cut off", f.name, size - start - cut - 1)
            f.seek(0, os.SEEK_END)
            return
        end = start
    f.truncate(0)
    f.seek(0)


def append_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Append records as JSON lines (one write + fsync); returns the file's new size."""
    return append_bytes(path, jsonl_bytes(records))


def parse_jsonl(data: bytes, source: str | Path = "") -> tuple[list[dict], int]:
    records, bad = [], 0
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            log.warning("%s line %d is not valid JSON; skipped", source, number)
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            bad += 1
    return records, bad


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """Records of a JSON-lines file and the number of unreadable lines (skipped, logged)."""
    path = Path(path)
    if not path.exists():
        return [], 0
    return parse_jsonl(path.read_bytes(), path)


def rewrite_jsonl(path: Path, records: Iterable[dict]) -> None:
    """Replace the whole file atomically (for the rare edit that removes records)."""
    atomic_write_bytes(path, jsonl_bytes(records))
