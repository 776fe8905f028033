"""A run's folder: trajectories, metrics, its index and its one-writer lock.

saves/<run>/
  index.json          TinyDB: meta (game, model, config, created) and the stage state table
  trajectories.jsonl  one Episode per line (readable by any JSON-lines tool)
  episodes.jsonl      the id index: one short row per episode (id, seed, round, outcome, and the
                      byte offset where its trajectory line ends), so opening a run never parses
                      the trajectories
  metrics.jsonl       one metrics record per line (oel_engine.metrics)
  .lock               held by the process writing the run

Appends are one write + fsync (fileio). Trajectories are appended before their index rows; a
crash between the two is repaired on the next open by indexing the trajectory tail.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import Storage

from ..errors import OelError
from ..fileio import (
    append_bytes,
    append_jsonl,
    atomic_write_json,
    jsonl_bytes,
    log,
    parse_jsonl,
    read_jsonl,
    rewrite_jsonl,
)
from ..play.trajectory import Episode

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TRAJECTORIES = "trajectories.jsonl"
EPISODE_INDEX = "episodes.jsonl"
METRICS = "metrics.jsonl"
INDEX = "index.json"

# Locks this process holds, by run folder, with what holds them: a lock message must never
# blame "another process" when the holder is this very app.
_held: dict[Path, str] = {}
_held_guard = threading.Lock()


def saves_root(explicit: str | os.PathLike | None = None) -> Path:
    """--saves DIR, else $OEL_SAVES, else ./saves of the current directory."""
    return Path(explicit or os.environ.get("OEL_SAVES") or "saves").expanduser()


class AtomicJSONStorage(Storage):
    """TinyDB storage whose every write is atomic; `readonly` refuses writes (readers)."""

    def __init__(self, path: str, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly

    def read(self):
        if not self.path.exists():
            return None
        text = self.path.read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None

    def write(self, data) -> None:
        if self.readonly:
            raise OelError(f"{self.path.parent.name} was opened for reading only")
        atomic_write_json(self.path, data)

    def close(self) -> None:
        pass


def check_run_name(name: str) -> str:
    if not RUN_NAME.match(name or ""):
        raise OelError(f"bad run name '{name}': use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def new_run_name(prefix: str) -> str:
    return f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class RunStore:
    """A run folder. Opened for writing it holds the run's lock until closed; opened with
    `readonly=True` it takes no lock and never writes (listing, charts, experience, replay)."""

    def __init__(self, root: Path, name: str, create: bool = True, readonly: bool = False, holder: str = ""):
        self.name = check_run_name(name)
        self.path = Path(root) / name
        self.readonly = readonly
        if not self.path.is_dir():
            if not create or readonly:
                raise OelError(f"no run named '{name}' in {root}")
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = None
        if not readonly:
            self._lock(holder or "a job of this process")
        self.db = self._open_index()
        self._rows: list[dict] | None = None
        self._ids: set[str] | None = None
        if not readonly:
            self._repair_episode_index()

    # -- the lock -------------------------------------------------------------------------------

    def _lock(self, holder: str) -> None:
        key = self.path.resolve()
        with _held_guard:
            if key in _held:
                raise OelError(f"run '{self.name}' is busy in this app ({_held[key]}); "
                               "wait for it to finish or cancel it")
            self._lock_file = open(self.path / ".lock", "a+")
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.close()
                self._lock_file = None
                raise OelError(f"run '{self.name}' is being written by another process (one writer per run); "
                               "open it read-only or wait for that process to finish") from None
            _held[key] = holder

    def close(self) -> None:
        if self._lock_file is None:
            return
        with _held_guard:
            _held.pop(self.path.resolve(), None)
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            finally:
                self._lock_file.close()
                self._lock_file = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the TinyDB index (meta and stage state) ----------------------------------------------

    def _open_index(self) -> TinyDB:
        index = self.path / INDEX
        try:
            db = TinyDB(str(index), storage=AtomicJSONStorage, readonly=self.readonly)
            db.tables()  # forces a read
            return db
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            if self.readonly:
                raise OelError(f"run '{self.name}': index.json is unreadable; opening the run for writing rebuilds it") from None
            # Keep the damaged file for inspection; the episode index lives apart and survives.
            kept = index.with_name(f"{INDEX}.corrupt-{int(time.time())}")
            os.replace(index, kept)
            log.warning("run %s: index was unreadable (%s); kept as %s and started anew", self.name, exc, kept.name)
            return TinyDB(str(index), storage=AtomicJSONStorage)

    def meta(self) -> dict:
        rows = self.db.table("meta").all()
        return dict(rows[0]) if rows else {}

    def set_meta(self, **values) -> None:
        table = self.db.table("meta")
        current = self.meta()
        if not current:
            values.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        current.update(values)
        table.truncate()
        table.insert(current)

    # -- episodes ---------------------------------------------------------------------------------

    def _repair_episode_index(self) -> None:
        """Index trajectory lines a crash left unindexed (or every line, for a run made before
        the index existed); a damaged index is rebuilt from the trajectories."""
        traj = self.path / TRAJECTORIES
        size = traj.stat().st_size if traj.exists() else 0
        # the index file itself, never the fallback that parses trajectories: a run made before
        # the index existed must get every line indexed here, once
        rows = _dedupe([r for r in read_jsonl(self.path / EPISODE_INDEX)[0] if "episode_id" in r])
        end = rows[-1].get("end", 0) if rows else 0
        if size == end:
            return
        if not isinstance(end, int) or end > size:  # the index is ahead of the file: start over
            rows, end = [], 0
            rewrite_jsonl(self.path / EPISODE_INDEX, [])
        with open(traj, "rb") as f:
            f.seek(end)
            tail = f.read()
        fresh, offset = [], end
        for line in tail.splitlines(keepends=True):
            start, offset = offset, offset + len(line)
            if not line.endswith(b"\n"):
                break  # a torn last line: never committed
            records, _ = parse_jsonl(line, traj)
            for r in records:
                try:
                    fresh.append({**_index_row(Episode.from_dict(r)), "start": start, "end": offset})
                except (KeyError, TypeError):
                    continue
        known = {r["episode_id"] for r in rows}
        fresh = [r for r in fresh if r["episode_id"] not in known]
        if fresh or not rows:
            log.info("run %s: indexed %d trajectory line(s)", self.name, len(fresh))
            append_jsonl(self.path / EPISODE_INDEX, fresh)
        self._rows = None
        self._ids = None

    def episode_rows(self) -> list[dict]:
        """The id index: one small row per saved episode (no prompts, no responses)."""
        if self._rows is None:
            self._rows = read_episode_rows(self.path)
        return self._rows

    def add_episodes(self, episodes: list[Episode]) -> int:
        """Append episodes not saved before (by episode_id); returns how many were new."""
        if self._ids is None:
            self._ids = {r["episode_id"] for r in self.episode_rows()}
        fresh = [e for e in episodes if e.episode_id not in self._ids]
        if not fresh:
            return 0
        lines = [jsonl_bytes([e.to_dict()]) for e in fresh]
        end = append_bytes(self.path / TRAJECTORIES, b"".join(lines))
        start = end - sum(map(len, lines))
        rows = []
        for e, line in zip(fresh, lines):
            rows.append({**_index_row(e), "start": start, "end": start + len(line)})
            start += len(line)
        append_jsonl(self.path / EPISODE_INDEX, rows)
        self._ids.update(e.episode_id for e in fresh)
        if self._rows is not None:
            self._rows.extend(rows)
        return len(fresh)

    def has_episode(self, episode_id: str) -> bool:
        if self._ids is None:
            self._ids = {r["episode_id"] for r in self.episode_rows()}
        return episode_id in self._ids

    def episodes(self, where=None) -> list[Episode]:
        """Every saved episode, or those whose index row satisfies `where(row)`: only their
        lines are read (seeking by the offsets in the index)."""
        if where is None:
            return load_episodes(self.path)
        rows = [r for r in self.episode_rows() if where(r)]
        out = []
        with open(self.path / TRAJECTORIES, "rb") as f:
            for row in rows:
                if not isinstance(row.get("start"), int):  # an index row without offsets: read all
                    return [e for e in load_episodes(self.path) if e.episode_id in {r["episode_id"] for r in rows}]
                f.seek(row["start"])
                records, _ = parse_jsonl(f.read(row["end"] - row["start"]), self.path / TRAJECTORIES)
                out.extend(Episode.from_dict(r) for r in records)
        return out

    # -- metrics ----------------------------------------------------------------------------------

    def add_metrics(self, record) -> None:
        """Append one metrics record (a dataclass from oel_engine.metrics, or a dict)."""
        data = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        append_jsonl(self.path / METRICS, [{"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **data}])

    def metric_dicts(self) -> list[dict]:
        return read_jsonl(self.path / METRICS)[0]

    def metrics(self):
        """The run's metrics as typed records (oel_engine.metrics.MetricsLog)."""
        from ..metrics import MetricsLog

        return MetricsLog.from_dicts(self.metric_dicts())

    def drop_metrics(self, predicate) -> int:
        """Remove records matching `predicate(record)` (typed; work that will be redone after a resume)."""
        from ..metrics import parse_record

        dicts = self.metric_dicts()
        kept = [d for d in dicts if not ((rec := parse_record(d)) is not None and predicate(rec))]
        if len(kept) != len(dicts):
            rewrite_jsonl(self.path / METRICS, kept)
        return len(dicts) - len(kept)


def _dedupe(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        if r.get("episode_id") not in seen:
            seen.add(r.get("episode_id"))
            out.append(r)
    return out


def _index_row(e: Episode) -> dict:
    return {
        "episode_id": e.episode_id,
        "seed": e.seed,
        "round": e.round,
        "stage": e.stage,
        "policy": e.policy.kind,
        "success": e.success,
        "reward": e.outcome.reward if e.outcome else None,
        "turns": len(e.turns),
    }


def read_episode_rows(run_path: Path) -> list[dict]:
    """The id index of a run; falls back to reading the trajectories for a run without one."""
    path = Path(run_path)
    if (path / EPISODE_INDEX).exists():
        rows, _ = read_jsonl(path / EPISODE_INDEX)
        return _dedupe([r for r in rows if "episode_id" in r])
    return [_index_row(e) for e in load_episodes(path)]


def load_episodes(run_path: Path) -> list[Episode]:
    records, bad = read_jsonl(Path(run_path) / TRAJECTORIES)
    episodes = []
    for r in _dedupe(records):
        try:
            episodes.append(Episode.from_dict(r))
        except (KeyError, TypeError):
            bad += 1
    if bad:
        log.warning("%s: %d unreadable trajectory lines skipped", run_path, bad)
    return episodes
