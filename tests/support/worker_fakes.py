"""An engine for worker-process tests (no torch): a stage of N units, each a short sleep, each
recorded in the run folder once finished, so a restarted stage resumes after the last one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from oel_engine.events import MetricsRecorded, Progress, StageFinished, StageStarted
from oel_engine.fileio import atomic_write_text


class CountingEngine:
    def __init__(self, saves):
        self.saves = Path(saves)

    def run_stage(self, name, stage, on_event, stop, status=lambda _: None):
        folder = self.saves / name
        folder.mkdir(parents=True, exist_ok=True)
        units = folder / "units.txt"
        done = units.read_text().split() if units.exists() else []
        total = int(os.environ.get("FAKE_UNITS", "6"))
        seconds = float(os.environ.get("FAKE_SECONDS", "0.2"))
        status("fake model loaded")
        on_event(StageStarted(stage, total, "fake"))
        for unit in range(len(done), total):
            stop.check()
            time.sleep(seconds)
            if os.environ.get("FAKE_FAIL_AT") == str(unit):
                raise RuntimeError("out of fake memory")
            done.append(str(unit))
            atomic_write_text(units, "\n".join(done) + "\n")
            on_event(MetricsRecorded(stage, {"phase": "consolidate", "round": 0, "step": unit, "loss": 1.0 / (unit + 1)}))
            on_event(Progress(stage, unit + 1, total))
        on_event(StageFinished(stage, 1.0))
