"""Stages in a child process: events across the pipe, cancel, force, crashes and kill -9 at random
points (the app side lives on; the run resumes from its last completed unit)."""

import os
import random
import signal
import threading
import time

import pytest

from oel_engine.errors import OelError, Stopped
from oel_engine.events import (
    EpisodeFinished,
    MetricsRecorded,
    Progress,
    StageFinished,
    StageStarted,
    StopFlag,
    TurnPlayed,
    event_from_dict,
    event_to_dict,
)
from oel_tui.worker_process import StageProcesses

FAKE = "tests.support.worker_fakes:CountingEngine"


@pytest.fixture(autouse=True)
def run_folder(tmp_path):
    """The fake worker's run "r" exists, as a run the app starts a stage for always does."""
    (tmp_path / "r").mkdir()


def units(saves, name="r"):
    path = saves / name / "units.txt"
    return path.read_text().split() if path.exists() else []


def test_events_cross_the_pipe_as_themselves():
    for event in (StageStarted("consolidate", 3, "x"), Progress("eval", 1, 2, "d"), StageFinished("eval", 1.5, {"a": 1}),
                  MetricsRecorded("consolidate", {"step": 0, "loss": 0.5})):
        assert event_from_dict(event_to_dict(event)) == event
    assert event_to_dict(TurnPlayed("play", 0, None, None)) is None
    assert event_to_dict(EpisodeFinished("play", None)) is None
    assert event_from_dict({"event": "Unknown"}) is None and event_from_dict({"event": "Progress", "x": 1}) is None


def test_a_second_stop_is_forced():
    stop = StopFlag()
    stop.set()
    assert stop.is_set() and not stop.forced()
    stop.set()
    assert stop.forced()
    stop.clear()
    assert not stop.is_set() and not stop.forced()


def test_a_stage_runs_in_a_child_and_its_events_arrive(tmp_path):
    events, statuses = [], []
    stages = StageProcesses(tmp_path, FAKE)
    stages.status = statuses.append
    stages.run_stage("r", "consolidate", events.append, StopFlag())
    assert [type(e).__name__ for e in events] == ["StageStarted"] + ["MetricsRecorded", "Progress"] * 6 + ["StageFinished"]
    assert [e.record["step"] for e in events if isinstance(e, MetricsRecorded)] == list(range(6))
    assert statuses == ["fake model loaded"] and units(tmp_path) == [str(i) for i in range(6)]
    assert stages.current is None and "consolidate" in stages.log_file("r").read_text()


def test_cancel_stops_after_the_current_unit_and_the_next_start_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "0.4")
    stages, stop, seen = StageProcesses(tmp_path, FAKE), StopFlag(), []

    def on_event(event):
        seen.append(event)
        if isinstance(event, Progress) and event.done == 2:
            stop.set()

    with pytest.raises(Stopped):
        stages.run_stage("r", "consolidate", on_event, stop)
    assert 2 <= len(units(tmp_path)) <= 3  # the unit under way when asked was finished, no more
    stages.run_stage("r", "consolidate", lambda e: None, StopFlag())
    assert units(tmp_path) == [str(i) for i in range(6)]  # each unit exactly once


def test_a_second_cancel_ends_the_worker_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "30")  # a unit far longer than the test
    stages, stop = StageProcesses(tmp_path, FAKE, grace=2.0), StopFlag()
    threading.Timer(3.0, lambda: (stop.set(), stop.set())).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        stages.run_stage("r", "consolidate", lambda e: None, stop)
    assert time.monotonic() - started < 3.0 + 2.0 + 3.0 and units(tmp_path) == []


def test_a_crash_is_one_line_with_the_reason_and_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_AT", "2")
    stages = StageProcesses(tmp_path, FAKE)
    with pytest.raises(OelError) as caught:
        stages.run_stage("r", "consolidate", lambda e: None, StopFlag())
    message = str(caught.value)
    assert "\n" not in message and "exited with code 1" in message and "RuntimeError: out of fake memory" in message
    assert str(stages.log_file("r")) in message and units(tmp_path) == ["0", "1"]


def test_kill_9_at_random_points_loses_no_finished_unit(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "0.3")
    rng = random.Random(7)
    stages = StageProcesses(tmp_path, FAKE)
    killed = 0
    for _ in range(3):
        before = units(tmp_path)
        if len(before) == 6:
            break
        outcome = {}

        def run():
            try:
                stages.run_stage("r", "consolidate", lambda e: None, StopFlag())
            except Exception as error:  # noqa: BLE001 - the test looks at what it was
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        while stages.current is None and thread.is_alive():
            time.sleep(0.01)
        time.sleep(rng.uniform(0.5, 1.5))  # python start-up, then somewhere inside a unit
        if stages.current is not None:
            os.kill(stages.current.pid, signal.SIGKILL)
        thread.join(30)
        after = units(tmp_path)
        assert after[:len(before)] == before and after == [str(i) for i in range(len(after))]
        if "error" in outcome:
            killed += 1
            assert isinstance(outcome["error"], OelError) and "killed (SIGKILL" in str(outcome["error"])
    assert killed >= 1
    stages.run_stage("r", "consolidate", lambda e: None, StopFlag())
    assert units(tmp_path) == [str(i) for i in range(6)]


def app_with_worker(tmp_path, grace=5.0):
    from oel_engine.config import GameConfig
    from oel_tui.app import OelApp, Settings
    from tests.support.fake_engine import FakeEngine

    stages = StageProcesses(tmp_path, FAKE, grace=grace)
    engine = FakeEngine(tmp_path)
    engine.listed = ["demo", "r"]
    return OelApp(engine=engine, settings=Settings(game=GameConfig(), run="r"), stages=stages), stages


async def start_consolidation(pilot, stages):
    """Rounds screen, `k`; returns once the worker process exists."""
    await pilot.press("4")
    await pilot.press("k")
    for _ in range(100):
        await pilot.pause(0.05)
        if stages.current is not None:
            return


async def test_the_app_survives_a_killed_worker_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "5")
    app, stages = app_with_worker(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await start_consolidation(pilot, stages)
        os.kill(stages.current.pid, signal.SIGKILL)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not app.jobs.busy and app.is_running
        label = str(app.screen.query_one("#stage-label").render())
        assert "consolidate failed: the worker was killed (SIGKILL" in label
        await pilot.press("l")  # the log's last lines, one key away
        await pilot.pause()
        assert app.engine.stage_calls == []  # the app's own engine did none of the work


async def test_quitting_the_app_ends_its_worker_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "60")
    app, stages = app_with_worker(tmp_path, grace=2.0)
    async with app.run_test(size=(100, 32)) as pilot:
        await start_consolidation(pilot, stages)
        child = stages.current
        started = time.monotonic()
        await pilot.press("q")
        await pilot.pause()
    assert child.poll() is not None and time.monotonic() - started < 8


def test_the_real_engine_runs_a_stage_in_the_worker(tmp_path, tiny_folder):
    """The same path with oel_engine.session.Engine on a tiny model: real events arrive typed and
    the stage's files are written by the child (the app process never loads a model for it)."""
    from dataclasses import replace

    from oel_engine.config import ModelConfig
    from oel_engine.run.loop_config import open_loop_run
    from tests.support import tiny_config

    store, _ = open_loop_run(tmp_path, "x", replace(tiny_config(), model=ModelConfig(model=str(tiny_folder))))
    store.close()
    events = []
    StageProcesses(tmp_path).run_stage("x", "extract", events.append, StopFlag())
    assert isinstance(events[0], StageStarted) and any(isinstance(e, Progress) for e in events)
    assert "extract" in {e.stage for e in events if isinstance(e, StageFinished)}
    assert sorted(p.name for p in (tmp_path / "x" / "experience" / "round-0").iterdir()) == ["run-0", "run-1"]
