"""Teaching rounds: no extraction, the run's lessons as the teacher's context, lessons carried
from round to round; and the run a teaching round goes to. Tiny model folder, tiny settings."""

import json
from dataclasses import replace

import pytest

from oel_engine.config import GameConfig, ModelConfig
from oel_engine.errors import OelError
from oel_engine.metrics import StageTime
from oel_engine.presets import build
from oel_engine.session import Engine
from tests.support import folder_config


def teach_config(folder, rounds=2):
    tiny = folder_config(folder, rounds)
    return replace(tiny, consolidation=replace(tiny.consolidation, teacher_context="lessons"), preset="teach")


def data(run_dir, r):
    return [json.loads(line) for line in (run_dir / "consolidation" / f"round-{r}.jsonl").read_text().splitlines()]


def test_a_teaching_round_consolidates_the_lessons_and_they_carry_over(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("t", teach_config(tiny_folder))
    engine.add_item("t", "Go down or right.")
    with engine.session("t") as s:
        s.run("round")
    assert not (tmp_path / "t" / "experience" / "round-0" / "run-0").exists()  # no extraction
    assert {d["privileged_context"] for d in data(tmp_path / "t", 0)} == {"- EXPERIENCE ITEM: Go down or right."}
    assert {d["experience_source"] for d in data(tmp_path / "t", 0)} == {"lessons a person wrote"}
    assert engine.report("t").metrics.last(StageTime, stage="extract").detail["skipped"] == "lessons"
    engine.add_item("t", "Never step onto H.")  # round 1: the old lesson and the new one, not a disabled one
    off = engine.add_item("t", "Say nothing.")
    engine.set_item("t", off, enabled=False, text=off.text)
    assert engine.teacher_context("t") == "- EXPERIENCE ITEM: Go down or right.\n- EXPERIENCE ITEM: Never step onto H."
    with engine.session("t") as s:
        s.run("consolidate")
    assert {d["privileged_context"] for d in data(tmp_path / "t", 1)} == {
        "- EXPERIENCE ITEM: Go down or right.\n- EXPERIENCE ITEM: Never step onto H."}
    with engine.session("t") as s:  # one read: what Play's teacher, the data and the summary say agree
        teacher = s.runner().ctx.teacher(1)
        assert s.current_round == 1 and teacher.texts == [engine.teacher_context("t")]
        assert {d["experience_source"] for d in data(tmp_path / "t", 1)} == {teacher.source} == {s.teacher_source(1)}


def test_a_teaching_round_without_lessons_says_what_to_do(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("t", teach_config(tiny_folder))
    with engine.session("t") as s, pytest.raises(OelError, match="no lessons to teach"):
        s.run("round")


def test_a_fresh_run_is_switched_to_the_teach_preset(tmp_path):
    engine = Engine(tmp_path)
    engine.open_run("d", replace(build("demo", GameConfig(), ModelConfig(), 2), seed=7))
    with pytest.raises(OelError, match="write a lesson first"):
        engine.prepare_teaching("d")
    engine.add_item("d", "Go down or right.")
    name, said = engine.prepare_teaching("d")
    config = engine.report("d").config
    assert name == "d" and "teach preset" in said
    assert (config.preset, config.consolidation.teacher_context, config.seed) == ("teach", "lessons", 7)
    assert engine.prepare_teaching("d") == ("d", "")  # already teaching


def test_a_run_with_rounds_of_its_own_teaches_in_a_new_run(tmp_path):
    engine = Engine(tmp_path)
    engine.open_run("d", replace(build("demo", GameConfig(name="sokoban"), ModelConfig(), 2), seed=3))
    engine.add_item("d", "Push the box onto O.")
    with engine.session("d") as s:
        s.art.mark_done(0, "eval_base")  # a stage has run under the demo settings
    name, said = engine.prepare_teaching("d")
    assert name == "d-teach" and "new run, d-teach" in said
    config = engine.report("d-teach").config
    assert (config.preset, config.game.name, config.seed) == ("teach", "sokoban", 3)
    assert [i.text for i in engine.experience("d-teach")] == ["Push the box onto O."]
    assert engine.report("d").config.preset == "demo"  # the old run is left as it was
    assert engine.prepare_teaching("d")[0] == "d-teach-2"


def test_the_probe_can_read_more_maps_than_are_played(tmp_path, tiny_folder, monkeypatch):
    import oel_engine.round.evaluate as evaluate

    asked = []
    real = evaluate.start_states
    monkeypatch.setattr(evaluate, "start_states", lambda game, maps, held_out: asked.append(maps) or real(game, maps, held_out))
    tiny = folder_config(tiny_folder, rounds=1)
    config = replace(tiny, evaluation=replace(tiny.evaluation, episodes=2, samples=1, probe_maps=6))
    engine = Engine(tmp_path)
    with engine.session("p", config) as s:
        s.run("eval_base")
    from oel_engine.metrics import EvalSummary

    summary = engine.report("p").metrics.last(EvalSummary)
    assert asked == [6] and summary.episodes == 2 and summary.good_move_prob is not None


def test_the_teach_preset_reads_the_lessons():
    config = build("teach", GameConfig(), ModelConfig(), 3)
    assert config.consolidation.teacher_context == "lessons" and config.preset == "teach"
    assert config.evaluation.probe_maps > config.evaluation.episodes and config.evaluation.samples >= 2
