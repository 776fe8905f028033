"""Heavy stages in a child process (`python -m oel_engine.worker`), followed from the app.

The app never imports torch for a round: the child loads its own model, writes JSON-line events
that become the same typed events a thread would post, and takes its memory (GPU included) with
it when it exits. A crash, an out-of-memory kill or `kill -9` of the child leaves the app
running with a one-line reason; the run resumes from its last completed unit on the next start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from oel_engine.errors import OelError, Stopped
from oel_engine.events import Event, StopFlag, event_from_dict

LOG_NAME = "worker.log"


class StageProcesses:
    """`run_stage` with the engine's signature, each call one child process."""

    def __init__(self, saves: Path | str, engine_spec: str | None = None, python: str = sys.executable,
                 grace: float = 5.0):
        self.saves = Path(saves)
        self.engine_spec = engine_spec  # module:factory for tests; None: the real engine
        self.python = python
        self.grace = grace  # seconds a forced stop waits after SIGTERM before SIGKILL
        self.current: subprocess.Popen | None = None
        self.forced = False  # the last stop was forced: its exit code says nothing about the run
        self.status: Callable[[str], None] = lambda _: None

    def log_file(self, name: str) -> Path:
        return self.saves / name / LOG_NAME

    def command(self, name: str, stage: str) -> list[str]:
        cmd = [self.python, "-m", "oel_engine.worker", "--saves", str(self.saves), "--run", name, "--stage", stage]
        return cmd + (["--engine", self.engine_spec] if self.engine_spec else [])

    def run_stage(self, name: str, stage: str, on_event: Callable[[Event], None], stop: StopFlag) -> None:
        log_path = self.log_file(name)
        if not log_path.parent.is_dir():  # a stage belongs to a run: never make its folder here
            from oel_engine.errors import OelError

            raise OelError(f"no run named '{name}' in {self.saves}: create it on the Start screen (1)")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TRANSFORMERS_VERBOSITY="error")
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {stage} ---\n")
            log.flush()
            proc = subprocess.Popen(self.command(name, stage), stdout=subprocess.PIPE, stderr=log, text=True,
                                    env=env, start_new_session=True)  # the terminal's Ctrl-C is the app's, not the child's
            self.current = proc
            reader = threading.Thread(target=self._follow, args=(proc, on_event), daemon=True)
            reader.start()
            try:
                self._supervise(proc, stop)
            finally:
                reader.join(timeout=5)
                self.current = None
        self._outcome(proc.returncode, log_path)

    def _follow(self, proc: subprocess.Popen, on_event: Callable[[Event], None]) -> None:
        for line in proc.stdout:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "status" in data:
                self.status(str(data["status"]))
                continue
            event = event_from_dict(data)
            if event is not None:
                on_event(event)

    def _supervise(self, proc: subprocess.Popen, stop: StopFlag) -> None:
        asked, forced_at = False, None
        self.forced = False
        while proc.poll() is None:
            if stop.is_set() and not asked:
                asked = True
                proc.send_signal(signal.SIGINT)  # stop after the current unit of work
            if stop.forced() and forced_at is None:
                forced_at, self.forced = time.monotonic(), True
                proc.terminate()
            if forced_at is not None and time.monotonic() - forced_at > self.grace:
                proc.kill()
            time.sleep(0.05)
        proc.wait()

    def _outcome(self, code: int, log_path: Path) -> None:
        if code == 0:
            return
        if code == 130 or self.forced:
            raise Stopped("stopped; the same action resumes it")
        last = last_lines(log_path, 1)
        reason = last[0] if last else ""
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            how = f"the worker was killed ({name}{', out of memory?' if name == 'SIGKILL' else ''})"
        else:
            how = f"the worker exited with code {code}"
        raise OelError(f"{how}{': ' + reason if reason and code > 0 else ''}; its log: {log_path}")

    def shutdown(self) -> None:
        """End a running child at once (the app is quitting)."""
        proc = self.current
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                proc.kill()


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` non-empty lines of a log (the reason a worker died, usually)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = deque((line.rstrip() for line in f if line.strip()), maxlen=count)
    except OSError:
        return []
    return list(tail)
