"""One writer per run: others read while it writes, and a second writer is told who holds the lock."""

import subprocess
import sys

import pytest

from oel_engine.errors import OelError
from oel_engine.session import Engine
from tests.support import distill_config as distill_config
from tests.support import folder_config


def test_reading_a_run_while_this_process_writes_it(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    with engine.session("r", holder="its round job"):
        report = engine.report("r")
        assert report.name == "r" and report.rounds_done == 0
        assert engine.experience("r") == []
        assert [r.name for r in engine.runs()] == ["r"]
        with pytest.raises(OelError) as err:
            engine.session("r")
        assert "busy in this app (its round job)" in str(err.value) and "another process" not in str(err.value)


def test_a_lock_held_by_another_process_says_so(tmp_path):
    from oel_engine.run.store import RunStore

    RunStore(tmp_path, "r").close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from oel_engine.run.store import RunStore; "
        f"s = RunStore({str(tmp_path)!r}, 'r'); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OelError, match="another process"):
            RunStore(tmp_path, "r")
        RunStore(tmp_path, "r", readonly=True).close()  # readers are never blocked
    finally:
        holder.kill()
        holder.wait()
