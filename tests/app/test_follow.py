"""Watching a run another process writes: live.json, the lock test, and the app following along."""

import subprocess
import sys
import textwrap
import time

from oel_engine.events import Progress, StageFinished, StageStarted
from oel_engine.run.live import live_writer, read_live, snapshot, written_elsewhere
from oel_engine.run.loop_config import open_loop_run
from tests.support import tiny_config

WRITER = textwrap.dedent("""
    import sys, time
    from oel_engine.events import Progress, StageStarted
    from oel_engine.run.live import live_writer
    from oel_engine.session import Engine

    saves, name, lessons = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Engine(saves).session(name, holder="a test writer") as s:
        sink = live_writer(s.store.path, lambda e: None, interval=0)
        sink(StageStarted("extract", lessons, "test"))
        print("locked", flush=True)
        for i in range(lessons):
            time.sleep(1.0)
            s.add_item(f"Lesson number {i} from the other process.")
            sink(Progress("extract", i + 1, lessons))
        time.sleep(float(sys.argv[4]))
""")


def start_writer(saves, name, lessons=2, linger=30.0):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(saves), name, str(lessons), str(linger)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_live_json_follows_the_stage_and_is_throttled(tmp_path):
    seen = []
    sink = live_writer(tmp_path, seen.append, interval=60)
    sink(StageStarted("consolidate", 4, "topk"))
    assert read_live(tmp_path)["stage"] == "consolidate" and read_live(tmp_path)["total"] == 4
    sink(Progress("consolidate", 1, 4))
    assert read_live(tmp_path)["done"] == 0  # within the interval: not written again
    sink(Progress("collect games", 3, 8))  # games inside a unit do not replace the stage
    sink(StageFinished("consolidate", 12.0))
    live = read_live(tmp_path)
    assert (live["stage"], live["done"], live["total"]) == ("consolidate", 4, 4) and "12 s" in live["detail"]
    assert len(seen) == 4  # every event still reaches the real sink
    assert read_live(tmp_path / "nowhere") is None


def test_a_lock_held_by_another_process_is_seen(tmp_path):
    store, _ = open_loop_run(tmp_path, "r", tiny_config())
    store.close()
    assert not written_elsewhere(tmp_path / "r")
    before = snapshot(tmp_path / "r")
    writer = start_writer(tmp_path, "r", lessons=1, linger=0.0)
    assert written_elsewhere(tmp_path / "r")
    writer.wait(30)
    assert not written_elsewhere(tmp_path / "r")
    assert snapshot(tmp_path / "r") != before  # the lesson and live.json changed what a screen shows


async def test_the_app_follows_a_run_another_process_writes(tmp_path):
    from oel_engine.config import GameConfig
    from oel_engine.session import Engine
    from oel_tui.app import OelApp, Settings

    store, _ = open_loop_run(tmp_path, "r", tiny_config())
    store.close()
    app = OelApp(engine=Engine(tmp_path), settings=Settings(game=GameConfig(), run="r"))
    writer = start_writer(tmp_path, "r", lessons=2, linger=30.0)
    try:
        async with app.run_test(size=(110, 32)) as pilot:
            await pilot.press("3")
            deadline = time.monotonic() + 20
            text = ""
            while time.monotonic() < deadline:
                await pilot.pause(0.5)
                table = app.screen.query_one("#items")
                text = " ".join(str(c) for r in range(table.row_count) for c in table.get_row_at(r))
                if "Lesson number 1" in text:
                    break
            assert "Lesson number 0" in text and "Lesson number 1" in text  # appeared while the app was open
            assert "another process is writing this run" in str(app.screen.query_one("#experience-title").render())
            await pilot.press("4")
            await pilot.pause(2.5)
            screen = app.screen
            assert "following it live" in str(screen.query_one("#run-title").render())
            assert screen.check_action("start", ("round",)) is None  # read-only: no stage can start here
            assert "extract: 2/2" in str(screen.query_one("#stage-label").render())
    finally:
        writer.kill()
        writer.wait()
