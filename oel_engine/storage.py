"""Saves: one folder per run, every write atomic, one writer per run.

saves/<run>/
  index.json          TinyDB: meta (game, model, created), episodes (id, seed, round, outcome)
  trajectories.jsonl  one Episode per line (readable by any JSON-lines tool)
  metrics.jsonl       one metrics record per line (evaluations, later training steps)
  .lock               held by the process writing the run

Atomic = write a temp file in the same folder, fsync, rename over the target; a crash leaves
either the old or the new file, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from tinydb import TinyDB
from tinydb.storages import Storage

from .errors import OelError
from .trajectory import Episode

log = logging.getLogger(__name__)

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TRAJECTORIES = "trajectories.jsonl"
METRICS = "metrics.jsonl"
INDEX = "index.json"


def saves_root(explicit: str | os.PathLike | None = None) -> Path:
    """--saves DIR, else $OEL_SAVES, else ./saves of the current directory."""
    return Path(explicit or os.environ.get("OEL_SAVES") or "saves").expanduser()


# -- atomic files -----------------------------------------------------------------------------


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


def append_jsonl(path: Path, records: Iterable[dict]) -> None:
    """Append records by rewriting the file atomically (old content + new lines)."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not lines:
        return
    old = Path(path).read_bytes() if Path(path).exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + lines.encode("utf-8"))


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """Records of a JSON-lines file and the number of unreadable lines (skipped, logged)."""
    path = Path(path)
    if not path.exists():
        return [], 0
    records, bad = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            log.warning("%s line %d is not valid JSON; skipped", path, number)
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            bad += 1
    return records, bad


class AtomicJSONStorage(Storage):
    """TinyDB storage whose every write is atomic."""

    def __init__(self, path: str):
        self.path = Path(path)

    def read(self):
        if not self.path.exists():
            return None
        text = self.path.read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None

    def write(self, data) -> None:
        atomic_write_json(self.path, data)

    def close(self) -> None:
        pass


# -- runs -------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    name: str
    path: Path
    game: str
    model: str
    created: str
    episodes: int
    wins: int
    last_pass_rate: float | None
    problem: str = ""
    rounds: int = 0  # OEL rounds finished


def check_run_name(name: str) -> str:
    if not RUN_NAME.match(name or ""):
        raise OelError(f"bad run name '{name}': use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def new_run_name(prefix: str) -> str:
    return f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class RunStore:
    """A run folder opened for writing; holds the run's lock until closed."""

    def __init__(self, root: Path, name: str, create: bool = True):
        self.name = check_run_name(name)
        self.path = Path(root) / name
        if not self.path.is_dir():
            if not create:
                raise OelError(f"no run named '{name}' in {root}")
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise OelError(f"run '{name}' is in use by another process (one writer per run)") from None
        self.db = self._open_index()
        records, _ = read_jsonl(self.path / TRAJECTORIES)
        self._episode_ids = {r.get("episode_id") for r in records}
        if len(self.db.table("episodes")) != len(self._episode_ids):  # a crash between the two writes
            table = self.db.table("episodes")
            table.truncate()
            table.insert_multiple(_index_row(Episode.from_dict(r)) for r in _dedupe(records))

    def _open_index(self) -> TinyDB:
        index = self.path / INDEX
        try:
            db = TinyDB(str(index), storage=AtomicJSONStorage)
            db.tables()  # forces a read
            return db
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            # Keep the damaged file for inspection and rebuild the index from the trajectories.
            kept = index.with_name(f"{INDEX}.corrupt-{int(time.time())}")
            os.replace(index, kept)
            log.warning("run %s: index was unreadable (%s); kept as %s and rebuilt", self.name, exc, kept.name)
            db = TinyDB(str(index), storage=AtomicJSONStorage)
            episodes, _ = read_jsonl(self.path / TRAJECTORIES)
            db.table("episodes").insert_multiple(_index_row(Episode.from_dict(e)) for e in episodes)
            return db

    def close(self) -> None:
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        finally:
            self._lock_file.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # meta --------------------------------------------------------------------------------

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

    # episodes ----------------------------------------------------------------------------

    def add_episodes(self, episodes: list[Episode]) -> int:
        """Append episodes not saved before (by episode_id); returns how many were new."""
        fresh = [e for e in episodes if e.episode_id not in self._episode_ids]
        if not fresh:
            return 0
        append_jsonl(self.path / TRAJECTORIES, (e.to_dict() for e in fresh))
        self._episode_ids.update(e.episode_id for e in fresh)
        self.db.table("episodes").insert_multiple(_index_row(e) for e in fresh)
        return len(fresh)

    def has_episode(self, episode_id: str) -> bool:
        return episode_id in self._episode_ids

    def episodes(self) -> list[Episode]:
        return load_episodes(self.path)

    def add_metrics(self, record: dict) -> None:
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        append_jsonl(self.path / METRICS, [record])

    def metrics(self) -> list[dict]:
        return read_jsonl(self.path / METRICS)[0]

    def drop_metrics(self, predicate) -> int:
        """Remove metric records matching `predicate` (work that will be redone after a resume)."""
        records = self.metrics()
        kept = [r for r in records if not predicate(r)]
        if len(kept) != len(records):
            atomic_write_text(self.path / METRICS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        return len(records) - len(kept)


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


def list_runs(root: Path) -> list[RunSummary]:
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out.append(summarize_run(path))
    return out


def summarize_run(path: Path) -> RunSummary:
    """Read a run without taking its lock (readers never block the writer)."""
    problem = ""
    meta, rows, state = {}, [], []
    try:
        data = AtomicJSONStorage(str(path / INDEX)).read() or {}
        meta = next(iter(data.get("meta", {}).values()), {})
        rows = list(data.get("episodes", {}).values())
        state = list(data.get("state", {}).values())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        problem = f"index unreadable ({type(exc).__name__}); it is rebuilt when the run is next opened"
        rows = [_index_row(e) for e in load_episodes(path)]
    metrics, _ = read_jsonl(path / METRICS)
    passes = [m["pass_rate"] for m in metrics
              if isinstance(m.get("pass_rate"), (int, float)) and m.get("phase") == "eval" and "sample" not in m]
    return RunSummary(
        name=path.name,
        path=path,
        game=str(meta.get("game", "?")),
        model=str(meta.get("model", "-")),
        created=str(meta.get("created", "?")),
        episodes=len(rows),
        wins=sum(1 for r in rows if r.get("success")),
        last_pass_rate=passes[-1] if passes else None,
        problem=problem,
        rounds=sum(1 for s in state if s.get("stage") == "eval_consolidated"),
    )
