"""Lessons a person writes: an experience file as the teacher's context, items typed in the app,
and the probe recorded by the round's evaluations. Tiny model folder, tiny settings."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oel_engine.errors import OelError, Stopped
from oel_engine.events import StopFlag
from oel_engine.metrics import EvalSample, EvalSummary, StageTime
from oel_engine.play.prompts import EXPERIENCE_HEADER
from oel_engine.session import Engine
from tests.support import folder_config, stop_at

LESSON = "- EXPERIENCE ITEM: Holes end the game; walk around them.\n- EXPERIENCE ITEM: The goal is down and right.\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lessons"


def lesson_file(tmp_path, text=LESSON, name="lesson.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def games(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]


def test_an_experience_file_reaches_the_teacher_and_nothing_else(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    with engine.session("r", folder_config(tiny_folder, rounds=1)) as s:
        s.use_experience_file(lesson_file(tmp_path))
        s.run("round")
        log = s.report().metrics
    run_dir = tmp_path / "r"
    assert not (run_dir / "experience" / "round-0").exists()  # extraction skipped: it had not started
    extract_time = log.last(StageTime, stage="extract")
    assert extract_time.detail["skipped"] == "experience file"
    data = [json.loads(line) for line in (run_dir / "consolidation" / "round-0.jsonl").read_text().splitlines()]
    assert data and {d["privileged_context"] for d in data} == {LESSON.strip()}
    assert all("lesson.txt" in d["experience_source"] for d in data)
    for game in games(run_dir):
        prompts = " ".join(t["prompt"][-1]["content"] for t in game["turns"])
        if game["stage"] == "eval_in_context":
            assert "Holes end the game" in prompts  # the in-context evaluation reads the teacher's context
        else:  # the student's own games (collection, base and consolidated evaluation) never see it
            assert "Holes end the game" not in prompts and EXPERIENCE_HEADER not in prompts, game["stage"]
    items = engine.experience("r")
    assert [i.source for i in items] == ["file", "file"] and "walk around them" in items[0].text
    with pytest.raises(OelError, match="edit that file"):
        engine.set_item("r", items[0], enabled=False, text=items[0].text)


def test_a_run_keeps_one_experience_file(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    with engine.session("r", folder_config(tiny_folder, rounds=1)) as s:
        first = lesson_file(tmp_path)
        s.use_experience_file(first)
        s.use_experience_file(first)  # the same command again (a resume) is fine
        with pytest.raises(OelError, match="already uses the experience file"):
            s.use_experience_file(lesson_file(tmp_path, "- EXPERIENCE ITEM: other.\n", "other.txt"))
        with pytest.raises(OelError, match="no '- EXPERIENCE ITEM"):
            s.use_experience_file(lesson_file(tmp_path, "just prose\n", "prose.txt"))
        with pytest.raises(OelError, match="does not exist"):
            s.use_experience_file(tmp_path / "missing.txt")


def test_items_a_person_writes_go_to_the_teacher_of_the_round(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    config = folder_config(tiny_folder, rounds=1)
    engine.open_run("r", config)
    added = engine.add_item("r", "  Step around   every hole.\n")
    assert added.text == "Step around every hole." and added.source == "human"
    with pytest.raises(OelError, match="cannot be empty"):
        engine.add_item("r", "   ")
    with engine.session("r") as s:
        s.run("collect")  # extraction, then collection
        texts = s.runner().ctx.teacher(0).texts
        assert len(texts) == config.extraction.runs
        assert all(t.endswith("Step around every hole.") for t in texts)
        assert "items a person wrote" in s.art.experience.experience_source(0)
        s.run("consolidate")
    listed = engine.experience("r")
    assert any(i.source == "human" and i.text == "Step around every hole." for i in listed)
    yours = next(i for i in listed if i.source == "human")
    with pytest.raises(OelError, match="consolidation has started"):
        engine.add_item("r", "Too late for this round.")
    engine.set_item("r", yours, enabled=False, text=yours.text)  # a person's item can be switched off
    assert not next(i for i in engine.experience("r") if i.source == "human").enabled


def test_round_evaluations_record_the_probe(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    with engine.session("r", folder_config(tiny_folder, rounds=1)) as s:
        s.run("eval_in_context")
        log = s.report().metrics
    samples = log.of(EvalSample)
    assert {s.kind for s in samples} == {"base", "in_context"}
    assert all(0.0 <= s.good_move_prob <= 1.0 and 0.0 < s.move_mass <= 1.0 for s in samples)
    base = [s.good_move_prob for s in samples if s.kind == "base"]
    assert len(set(base)) == 1  # same prompt, same weights: the probe samples nothing
    summary = log.last(EvalSummary, kind="in_context")
    assert summary.good_move_prob is not None and summary.good_move_prob_std is not None


def oel(*args):
    return subprocess.run([sys.executable, "-m", "oel_engine.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_eval_reports_the_probe(tmp_path, tiny_folder):
    res = oel("eval", "--policy", "random", "--episodes", "8", "--json", "--saves", str(tmp_path))
    random_row = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0.0 < random_row["good_move_prob"] < 1.0 and random_row["move_mass"] == 1.0
    res = oel("eval", "--policy", "model", "--model", str(tiny_folder), "--episodes", "3", "--max-new-tokens", "4",
              "--experience", str(EXAMPLES / "frozenlake.txt"), "--json", "--saves", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0.0 <= row["good_move_prob"] <= 1.0 and row["good_move_prob_std"] == 0.0 and row["probe_states"] == 3


def test_cli_consolidate_with_an_experience_file(tmp_path, tiny_folder):
    Engine(tmp_path).open_run("x", folder_config(tiny_folder, rounds=1))
    res = oel("consolidate", "--run", "x", "--experience", str(EXAMPLES / "sokoban.txt"), "--json",
              "--saves", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert "sokoban.txt" in row["experience_source"] and row["steps"] == 2
    assert not (tmp_path / "x" / "experience" / "round-0").exists()


@pytest.mark.parametrize("name", ["frozenlake.txt", "frozenlake-short.txt", "sokoban.txt"])
def test_shipped_lessons_are_valid_experience_files(name):
    from oel_engine.experience.items import parse_items, read_experience

    items = parse_items(read_experience(EXAMPLES / name))
    assert len(items) >= 2 and all(len(i) < 300 for i in items)


def test_the_play_screens_probe_reads_the_runs_teacher_context(tmp_path, tiny_folder):
    from oel_engine.config import ModelConfig

    engine = Engine(tmp_path)
    config = folder_config(tiny_folder, rounds=1)
    engine.open_run("r", config)
    assert engine.teacher_context("r") is None
    engine.add_item("r", "Go down first.")
    context = engine.teacher_context("r")
    assert context == "- EXPERIENCE ITEM: Go down first."
    game = engine.new_game(config.game, 0)
    student, teacher, good = engine.move_probs(game, context)  # no model: a random legal-move player
    assert teacher is None and sum(student.probs.values()) == pytest.approx(1.0)
    engine.load_model(ModelConfig(model=str(tiny_folder), device="cpu"))
    student, teacher, good = engine.move_probs(game, context)
    assert good == ["right"]
    assert sum(teacher.probs.values()) == pytest.approx(1.0) and student.probs != teacher.probs


def test_an_edit_then_resuming_extraction_does_not_double_items(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    on_event, stop = stop_at("extract", 2)  # the 2nd progress event: after step 1
    with pytest.raises(Stopped):
        engine.run_stage("r", "extract", on_event, stop)
    item = next(i for i in engine.experience("r") if i.run == 0 and i.step == 1)
    engine.set_item("r", item, enabled=False, text=item.text)
    engine.run_stage("r", "extract", lambda e: None, StopFlag())
    index = [json.loads(l) for l in (tmp_path / "r" / "experience" / "index.jsonl").read_text().splitlines()]
    extracted = [rec for rec in index if rec["kind"] == "extract"]
    assert sorted((rec["run"], rec["step"]) for rec in extracted) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    last = {(rec["run"], rec["step"]): rec for rec in index}
    for run in (0, 1):
        step1 = [i["text"] for i in last[(run, 1)]["items"]]
        assert step1
        step2_old = [i["text"] for i in last[(run, 2)]["items"] if i["step"] == 1]
        assert step2_old == step1[-len(step2_old):] if step2_old else True  # at most once, never twice
        assert len(step2_old) <= len(step1)
    kept = [i for i in last[(0, 2)]["items"] if i["step"] == 1 and i["text"] == item.text]
    assert all(not i["enabled"] for i in kept)  # the edit carried into later steps
