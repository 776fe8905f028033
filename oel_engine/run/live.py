"""A run watched from another process: where its writer is (`live.json`) and whether it has one.

The writer of a run (`oel loop`, the app's worker) keeps `live.json` in the run folder: its
process id, the stage, the progress of the stage and when it was written (atomic writes, at
most about once a second, every stage start and end). A reader (the app opened with `--run` on
a server's run over SSH) polls it along with the run's files; the writer's lock says whether
anyone is writing at all.

saves/<run>/
  live.json           the writer's pid, stage and progress (atomic, about once a second)
  worker.log          what the app's worker processes printed besides their events (oel_tui writes it)
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from ..events import EventSink, Progress, StageFinished, StageStarted
from ..fileio import atomic_write_text

LIVE_FILE = "live.json"
WATCHED = ("metrics.jsonl", "trajectories.jsonl", "experience/index.jsonl", LIVE_FILE)


def live_writer(run_dir: Path, on_event: EventSink, interval: float = 1.0) -> EventSink:
    """`on_event`, also recording the newest stage progress in `run_dir/live.json`."""
    path = Path(run_dir) / LIVE_FILE
    state = {"pid": os.getpid(), "stage": "", "done": 0, "total": 0, "detail": "", "updated": 0.0}
    last = [0.0]

    def sink(event) -> None:
        on_event(event)
        boundary = isinstance(event, (StageStarted, StageFinished))
        if boundary or isinstance(event, Progress):
            if " games" in event.stage:  # games inside a unit: the stage's own progress says enough
                return
            if isinstance(event, StageStarted):
                state.update(stage=event.stage, done=0, total=event.total, detail=event.detail)
            elif isinstance(event, Progress):
                state.update(stage=event.stage, done=event.done, total=event.total, detail=event.detail)
            else:
                state.update(stage=event.stage, done=state["total"], detail=f"finished in {event.seconds:.0f} s")
            now = time.time()
            if boundary or now - last[0] >= interval:
                last[0] = state["updated"] = now
                try:
                    atomic_write_text(path, json.dumps(state))
                except OSError:
                    pass  # a status file must never stop the work
    return sink


def read_live(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / LIVE_FILE).read_text())
    except (OSError, ValueError):
        return None


def written_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds the run's writer lock right now (a shared lock would wait)."""
    lock = Path(run_dir) / ".lock"
    if not lock.is_file():
        return False
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def snapshot(run_dir: Path) -> tuple:
    """What changes when a writer adds something a screen shows (sizes and modification times)."""
    out = []
    for name in WATCHED:
        try:
            st = (Path(run_dir) / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)
