"""Running engine work off the UI thread: one job at a time, stoppable, with throttled events."""

from __future__ import annotations

import threading
import time
from typing import Callable

from oel_engine.errors import OelError, Stopped
from oel_engine.events import Event, MetricsRecorded, Progress, StopFlag, TurnPlayed

from .messages import EngineEvents, WorkFinished

# Jobs that run a run's stages (in the worker process): a teaching round is a whole round.
STAGE_JOBS = ("round", "extract", "collect", "consolidate", "evaluate", "teach")


class Coalescer:
    """Collects events from a worker and posts them in batches at most every `interval` seconds.

    Only the newest Progress of each stage and the newest TurnPlayed survive a batch; metrics,
    stage starts and ends are all kept (charts need every point)."""

    def __init__(self, post: Callable, interval: float = 0.25):
        self.post, self.interval = post, interval
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._last = 0.0

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, (Progress, TurnPlayed)):
                self._pending = [e for e in self._pending
                                 if not (type(e) is type(event) and getattr(e, "stage", None) == event.stage)]
            self._pending.append(event)
            due = time.monotonic() - self._last >= self.interval or isinstance(event, MetricsRecorded)
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last = time.monotonic()
        if batch:
            self.post(EngineEvents(batch))


class JobRunner:
    """Starts one background job at a time in a thread worker of `app`."""

    def __init__(self, app):
        self.app = app
        self.stop = StopFlag()
        self.current: str | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None

    def start(self, name: str, work: Callable[[Callable[[Event], None], StopFlag], object]) -> bool:
        """Run `work(on_event, stop)` in a thread; returns False if a job is already running."""
        if self.busy:
            return False
        self.current = name
        self.stop = StopFlag()
        coalescer = Coalescer(self.app.post_message)

        def run():
            outcome, detail = "ok", ""
            try:
                work(coalescer, self.stop)
            except Stopped:
                outcome, detail = "stopped", "stopped; the same action resumes it"
            except OelError as exc:
                outcome, detail = "failed", str(exc)
            except Exception as exc:  # keep the app alive and say what happened in one line
                outcome, detail = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            finally:
                coalescer.flush()
                self.current = None
            self.app.post_message(WorkFinished(name, outcome, detail))

        self.app.run_worker(run, thread=True, group="engine", name=name, exit_on_error=False)
        return True

    def cancel(self) -> None:
        """Ask the job to stop after its current unit of work."""
        self.stop.set()
