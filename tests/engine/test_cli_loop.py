"""`oel extract / consolidate / merge / loop` on a tiny model folder, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.support import last_json, oel


def test_extract_consolidate_merge(tmp_path, tiny_folder):
    saves = str(tmp_path / "saves")
    ex = last_json(oel("extract", "--run", "x", "--model", str(tiny_folder), "--runs", "2", "--steps", "2",
                       "--format", "unstructured", "--json", "--saves", saves))
    assert ex["round"] == 0 and ex["runs"] == 2 and len(ex["files"]) == 2
    assert all(os.path.exists(f) for f in ex["files"])
    co = last_json(oel("consolidate", "--run", "x", "--steps", "2", "--json", "--saves", saves))
    assert co["steps"] == 2 and co["first_loss"] is not None
    assert os.path.exists(os.path.join(co["adapter"], "adapter_config.json"))
    merged = tmp_path / "merged"
    res = oel("merge", "--run", "x", "--out", str(merged), "--saves", saves)
    assert res.returncode == 0, res.stderr
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(merged).num_parameters() > 0
    again = oel("consolidate", "--run", "x", "--loss", "full", "--saves", saves)
    assert again.returncode == 2 and "started with other settings" in again.stderr


def test_loop_errors_are_one_line(tmp_path, tiny_folder):
    res = oel("consolidate", "--run", "nothing", "--saves", str(tmp_path))
    assert res.returncode == 2 and "no run named" in res.stderr and "Traceback" not in res.stderr
    res = oel("loop", "--run", "p", "--preset", "turbo", "--saves", str(tmp_path))
    assert res.returncode == 2 and "unknown preset" in res.stderr
    res = oel("merge", "--run", "nothing", "--out", str(tmp_path / "m"), "--saves", str(tmp_path))
    assert res.returncode == 2


def test_loop_survives_kill_9_and_resumes(tmp_path, tiny_folder):
    """kill -9 in the middle of consolidation; the same command finishes the run with nothing duplicated."""
    saves = tmp_path / "saves"
    args = [sys.executable, "-m", "oel_engine.cli", "loop", "--run", "k", "--model", str(tiny_folder),
            "--rounds", "1", "--json", "--saves", str(saves)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = saves / "k" / "checkpoints" / "round-0.pt"
    deadline = time.time() + 900
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    summary = last_json(res)
    assert summary["rounds"][0]["consolidated"]["samples"] == 2
    ids = [json.loads(l)["episode_id"] for l in (saves / "k" / "trajectories.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids))
    steps = [json.loads(l) for l in (saves / "k" / "metrics.jsonl").read_text().splitlines()]
    consolidate_steps = [m["step"] for m in steps if m.get("phase") == "consolidate"]
    assert sorted(consolidate_steps) == list(range(4))


def test_ctrl_c_stops_with_code_130_and_the_same_command_resumes(tmp_path, tiny_folder):
    saves = tmp_path / "saves"
    args = [sys.executable, "-m", "oel_engine.cli", "loop", "--run", "c", "--model", str(tiny_folder),
            "--rounds", "1", "--saves", str(saves)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    index = saves / "c" / "experience" / "index.jsonl"
    deadline = time.time() + 300
    while not index.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-1000:]
    assert "the same command resumes run 'c'" in err and "Traceback" not in err
    summary = last_json(subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=900))
    assert summary["rounds"][0]["consolidated"]["samples"] == 2
