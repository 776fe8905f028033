"""The `oel` command as a user runs it (random policy: no model needed)."""

import json
import os
import subprocess
import sys

import pytest

REQUIRED = {"episodes", "pass_rate", "legal_action_rate", "mean_response_tokens", "mean_turns"}


def oel(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "oel_engine.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_play_random_json_and_saves(tmp_path):
    res = oel("play", "--game", "frozenlake", "--policy", "random", "--episodes", "5", "--seed", "3",
              "--run", "demo", "--json", "--saves", str(tmp_path))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert REQUIRED <= set(summary) and summary["episodes"] == 5 and summary["run"] == "demo"
    lines = (tmp_path / "demo" / "trajectories.jsonl").read_text().splitlines()
    assert sorted(json.loads(l)["seed"] for l in lines) == [3, 4, 5, 6, 7]  # saved as each game ends
    listed = oel("runs", "--saves", str(tmp_path), "--json")
    assert json.loads(listed.stdout)["runs"][0]["episodes"] == 5


def test_play_sokoban_table_output(tmp_path):
    res = oel("play", "--game", "sokoban", "--episodes", "2", "--saves", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "pass_rate" in res.stdout and "seed 0" in res.stdout


def test_eval_random_json(tmp_path):
    res = oel("eval", "--game", "frozenlake", "--policy", "random", "--episodes", "16", "--samples", "2", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert REQUIRED <= set(summary) and summary["samples"] == 2 and "pass_rate_std" in summary


def test_eval_saves_into_a_run(tmp_path):
    res = oel("eval", "--episodes", "4", "--run", "ev", "--json", "--saves", str(tmp_path))
    assert res.returncode == 0
    metrics = [json.loads(l) for l in (tmp_path / "ev" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["phase"] == "eval" and metrics[-1]["episodes"] == 4


@pytest.mark.parametrize(
    "args, needle",
    [
        (["play", "--game", "chess"], "unknown game"),
        (["play", "--seed", "-1"], "--seed"),
        (["play", "--policy", "magic"], "unknown policy"),
        (["play", "--size", "1"], "2x2"),
        (["play", "--policy", "model", "--model", "/does/not/exist"], "does not exist"),
        (["play", "--policy", "model", "--model", "nobody/no-such-model-xyz"], "cannot load model"),
        (["eval", "--experience", "/no/such/file.txt"], "experience file"),
        (["play", "--bogus-flag"], "No such option"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, args, needle):
    res = oel(*args, "--saves", str(tmp_path)) if args[0] == "play" else oel(*args)
    assert res.returncode != 0
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]  # the whole message on one line
    assert "Traceback" not in res.stderr + res.stdout


def test_runs_with_no_saves(tmp_path):
    res = oel("runs", "--saves", str(tmp_path / "empty"))
    assert res.returncode == 0 and "No runs" in res.stdout


def test_library_warnings_go_to_the_log_not_the_screen(tmp_path):
    """A library's warning during a command lands in $OEL_LOG; the command's output stays clean."""
    log = tmp_path / "oel.log"
    code = ("import warnings, sys; sys.argv = ['oel', 'runs', '--saves', sys.argv[1]]\n"
            "from oel_engine.cli.main import main, app\n"
            "@app.command('warn-once')\n"
            "def _w():\n    warnings.warn('`past_key_values` is deprecated', FutureWarning)\n"
            "sys.argv = ['oel', 'warn-once']\nmain()\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "OEL_LOG": str(log)}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "deprecated" not in res.stdout + res.stderr
    assert "FutureWarning" in log.read_text() and "past_key_values" in log.read_text()


def test_an_evaluation_that_fails_after_its_games_keeps_them_and_says_where(tmp_path):
    """A failure after the games (here the probe, as Qwen's tokens once broke it) used to lose them."""
    from oel_engine.config import eval_seeds

    saves = tmp_path / "saves"
    script = tmp_path / "failing_eval.py"
    script.write_text(
        "import sys\nfrom oel_engine.session import Engine\n"
        "def broken(*args, **kwargs):\n    raise ValueError('the probe broke')\n"
        "Engine.probe_held_out = broken\nfrom oel_engine.cli.main import main\n"
        f"sys.argv = ['oel', 'eval', '--episodes', '4', '--samples', '2', '--saves', {str(saves)!r}] + sys.argv[1:]\n"
        "main()\n")
    for extra, run in (([], None), (["--run", "mine"], "mine")):
        res = subprocess.run([sys.executable, str(script), *extra], capture_output=True, text=True, timeout=120)
        said = " ".join((res.stdout + res.stderr).split())
        assert res.returncode == 1 and "unexpected ValueError: the probe broke" in said
        assert "the 8 games played before it are saved in run '" in said and "Traceback" not in said
        run = run or said.split("saved in run '")[1].split("'")[0]
        assert run.startswith("eval-") or run == "mine"
        lines = (saves / run / "trajectories.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["seed"] for line in lines) == sorted(eval_seeds(4) * 2)  # both samples' maps
