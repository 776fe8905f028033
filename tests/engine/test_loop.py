"""The OEL loop on a tiny random model: every artifact, and resume == uninterrupted."""

import json
from pathlib import Path

import pytest
import torch

from oel_engine.config import (
    GameConfig,
)
from oel_engine.errors import Stopped
from oel_engine.events import Progress, StopFlag
from oel_engine.metrics import MetricsLog
from oel_engine.report.summaries import run_summary
from oel_engine.round import RoundRunner
from oel_engine.round.collect import build_data
from oel_engine.run.artifacts import RunArtifacts
from oel_engine.run.loop_config import open_loop_run
from oel_engine.session import Engine
from tests.support import new_lm, tiny_config


def run_loop(root, tokenizer, rounds=1, stop_after=None, inference="float32"):
    """Run the loop; with stop_after=(stage, n), ask it to stop at the n-th progress event of that stage."""
    store, config = open_loop_run(root, "r", tiny_config(rounds))
    stop = StopFlag()
    seen = {"n": 0}

    def on_event(event):
        if stop_after and isinstance(event, Progress) and event.stage == stop_after[0]:
            seen["n"] += 1
            if seen["n"] == stop_after[1]:
                stop.set()

    try:
        RoundRunner(store, config, new_lm(tokenizer, inference), on_event=on_event, stop=stop).run(rounds)
        return True
    except Stopped:
        return False
    finally:
        store.close()


def artifacts(root: Path) -> dict:
    run = root / "r"
    trajectories = [json.loads(l) for l in (run / "trajectories.jsonl").read_text().splitlines()]
    for t in trajectories:
        t.pop("created_at")
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    volatile = {"time", "seconds", "sample_seconds", "train_seconds", "peak_memory_mb", "float32_seconds",
                "bf16_seconds", "reason"}
    metrics = [{k: v for k, v in m.items() if k not in volatile} for m in metrics
               if m.get("phase") not in ("stage", "precision")]
    files = {str(p.relative_to(run)): p.read_text() for p in sorted(run.rglob("*"))
             if p.is_file() and (p.suffix == ".txt" or p.parent.name == "consolidation")}
    index = [json.loads(l) for l in (run / "experience" / "index.jsonl").read_text().splitlines()]
    from safetensors.torch import load_file

    adapters = {p.parent.name: load_file(p) for p in sorted((run / "adapters").rglob("*.safetensors"))}
    return {"trajectories": sorted(trajectories, key=lambda t: t["episode_id"]), "metrics": metrics,
            "files": files, "index": index, "adapters": adapters}


def test_one_round_leaves_every_artifact(tmp_path, tiny_tokenizer):
    assert run_loop(tmp_path, tiny_tokenizer)
    run = tmp_path / "r"
    a = artifacts(tmp_path)
    stages = {t["stage"] for t in a["trajectories"]}
    assert stages == {"extract", "collect"}
    assert len([t for t in a["trajectories"] if t["stage"] == "collect"]) == 4  # 2 steps x 2 games
    assert (run / "experience" / "round-0" / "run-1" / "step-002.txt").is_file()
    data = [json.loads(l) for l in (run / "consolidation" / "round-0.jsonl").read_text().splitlines()]
    assert data and {"prompt", "privileged_context", "step", "episode_id"} <= set(data[0])
    assert all("Experience:" not in d["prompt"][-1]["content"] for d in data)  # student prompts have none
    assert (run / "adapters" / "round-0" / "adapter_config.json").is_file()
    kinds = {(m["kind"]) for m in a["metrics"] if m.get("phase") == "eval"}
    assert kinds == {"base", "in_context", "consolidated"}
    steps = [m for m in a["metrics"] if m.get("phase") == "consolidate"]
    assert [m["step"] for m in steps] == [0, 1] and all({"loss", "reverse_kl", "topk_mass"} <= set(m) for m in steps)
    summary = run_summary(MetricsLog.from_dicts(json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()))
    assert summary["rounds"][0]["curve"] and "consolidated" in summary["rounds"][0]
    for kind in ("base", "in_context", "consolidated"):  # the probe, beside the pass rate
        assert 0.0 <= summary["rounds"][0][kind]["good_move_prob"] <= 1.0


def _curve_points_played(monkeypatch) -> list[tuple[int, list[int]]]:
    """(step, runs) of every curve point played as games of its own, by extraction or evaluation."""
    from oel_engine.round import evaluate, extract

    played, real = [], extract.play_curve_point

    def spy(ctx, r, n, states):
        played.append((n, [s.run for s in states]))
        real(ctx, r, n, states)

    monkeypatch.setattr(extract, "play_curve_point", spy)
    monkeypatch.setattr(evaluate, "play_curve_point", spy)
    return played


def test_the_curve_point_at_the_consolidation_step_comes_from_the_in_context_evaluation(tmp_path, tiny_tokenizer,
                                                                                          monkeypatch):
    played = _curve_points_played(monkeypatch)
    assert run_loop(tmp_path, tiny_tokenizer)
    assert played == [(2, [0, 1])]  # step 1 is the consolidation step: its games are the evaluation's
    metrics = artifacts(tmp_path)["metrics"]
    points = {(m["step"], m["run"]): m for m in metrics if m.get("phase") == "curve"}
    assert set(points) == {(1, 0), (1, 1), (2, 0), (2, 1)}
    assert all(p["episodes"] == 2 for p in points.values())  # the curve's own maps, not all the evaluation's
    order = [(m.get("phase"), m.get("kind"), m.get("step")) for m in metrics]
    assert order.index(("curve", None, 1)) > order.index(("eval_sample", "in_context", None))


def test_an_evaluation_that_read_other_texts_plays_the_curve_point_itself(tmp_path, tiny_tokenizer, monkeypatch):
    from oel_engine.run.experience_index import ExperienceIndex

    played = _curve_points_played(monkeypatch)
    # a person's items after each extracted experience: the evaluation did not read the curve's texts
    monkeypatch.setattr(ExperienceIndex, "with_person_items",
                        lambda self, r, texts, fmt, records: [t + "\nA lesson a person wrote." for t in texts])
    assert run_loop(tmp_path, tiny_tokenizer)
    assert sorted(played) == [(1, [0, 1]), (2, [0, 1])]
    points = {(m["step"], m["run"]) for m in artifacts(tmp_path)["metrics"] if m.get("phase") == "curve"}
    assert points == {(1, 0), (1, 1), (2, 0), (2, 1)}


@pytest.mark.parametrize("stop_after", [("extract", 2), ("eval_in_context", 1), ("collect", 2), ("consolidate", 2), ("eval_consolidated", 2),
                                        ("eval_consolidated games", 2)],
                         ids=lambda s: s[0].replace(" ", "-"))
def test_resume_after_interruption_matches_uninterrupted(tmp_path, tiny_tokenizer, stop_after):
    assert run_loop(tmp_path / "whole", tiny_tokenizer)
    assert not run_loop(tmp_path / "cut", tiny_tokenizer, stop_after=stop_after)
    assert run_loop(tmp_path / "cut", tiny_tokenizer)
    whole, cut = artifacts(tmp_path / "whole"), artifacts(tmp_path / "cut")
    assert cut["trajectories"] == whole["trajectories"]
    assert cut["files"] == whole["files"]
    # the same records, none lost and none duplicated (order may differ only by when work was redone)
    canon = lambda ms: sorted(json.dumps(m, sort_keys=True) for m in ms)
    assert canon(cut["metrics"]) == canon(whole["metrics"])
    assert cut["index"] == whole["index"]
    for name, tensors in whole["adapters"].items():
        for key, value in tensors.items():
            assert torch.allclose(cut["adapters"][name][key], value, atol=1e-6), key


def test_resume_with_a_bf16_sampling_copy_matches_uninterrupted(tmp_path, tiny_tokenizer):
    """Sampling on a bf16 copy (refreshed after every optimizer step and on resume) is as
    resumable as float32."""
    assert run_loop(tmp_path / "whole", tiny_tokenizer, inference="bf16")
    assert not run_loop(tmp_path / "cut", tiny_tokenizer, stop_after=("consolidate", 1), inference="bf16")
    assert run_loop(tmp_path / "cut", tiny_tokenizer, inference="bf16")
    whole, cut = artifacts(tmp_path / "whole"), artifacts(tmp_path / "cut")
    assert cut["trajectories"] == whole["trajectories"]
    canon = lambda ms: sorted(json.dumps(m, sort_keys=True) for m in ms)
    assert canon(cut["metrics"]) == canon(whole["metrics"])
    for name, tensors in whole["adapters"].items():
        for key, value in tensors.items():
            assert torch.allclose(cut["adapters"][name][key], value, atol=1e-6), key


def test_two_rounds_advance_policy_and_teacher(tmp_path, tiny_tokenizer):
    assert run_loop(tmp_path, tiny_tokenizer, rounds=2)
    run = tmp_path / "r"
    assert (run / "adapters" / "round-1" / "adapter_config.json").is_file()
    with open_loop_run(tmp_path, "r")[0] as store:
        art = RunArtifacts(store)
        assert art.rounds_done() == 2


def test_a_persons_games_are_read_first_and_labelled_human(tmp_path, tiny_tokenizer):
    from oel_engine.games import make_game

    store, config = open_loop_run(tmp_path, "r", tiny_config())
    store.close()
    game = make_game(GameConfig())
    game.reset(5)
    for move in ("right", "right", "down", "down"):
        if not game.done:
            game.step(f"[{move}]")
    _, saved = Engine(tmp_path).save_human_game("r", game)
    assert saved.policy.kind == "human" and saved.round == 0
    assert run_loop(tmp_path, tiny_tokenizer)
    index = [json.loads(l) for l in (tmp_path / "r" / "experience" / "index.jsonl").read_text().splitlines()]
    step0 = [rec for rec in index if rec["step"] == 0]
    assert len(step0) == 2  # one per extraction run
    assert all(i["source"] == "human" and i["episode_id"] == saved.episode_id for rec in step0 for i in rec["items"])
    step1 = [rec for rec in index if rec["step"] == 1]
    assert any(i["source"] == "human" for rec in step1 for i in rec["items"])  # accumulated into later steps
    assert any(i["source"] == "model" for rec in step1 for i in rec["items"])


def test_edits_from_the_app_are_saved_and_used_by_consolidation(tmp_path, tiny_tokenizer):
    """Extract, then disable one item and rewrite another through the app's engine; the
    consolidation data must carry the edited experience."""
    store, config = open_loop_run(tmp_path, "r", tiny_config())
    runner = RoundRunner(store, config, new_lm(tiny_tokenizer))
    runner.run_until("extract", 0)
    store.close()
    engine = Engine(tmp_path)
    items = engine.experience("r")
    step = config.extraction.consolidation_step
    first, second = [next(i for i in items if i.run == k and i.step == step) for k in (0, 1)]
    assert all(i.new_this_round for i in items)
    engine.set_item("r", first, enabled=False, text=first.text)
    engine.set_item("r", second, enabled=True, text="Holes end the game.")
    edited = {(i.run, i.step, i.text): i for i in engine.experience("r")}
    assert not edited[(0, step, first.text)].enabled
    assert edited[(1, step, "Holes end the game.")].edited
    store, config = open_loop_run(tmp_path, "r", None)
    try:
        runner = RoundRunner(store, config, new_lm(tiny_tokenizer))
        texts = runner.ctx.teacher(0).texts
        runner.run_until("collect", 0)
        data = build_data(runner.ctx, 0)
    finally:
        store.close()
    assert first.text not in texts[0]  # disabled: left out
    assert "Holes end the game." in texts[1] and second.text not in texts[1]  # rewritten
    assert {d["privileged_context"] for d in data} <= set(texts)


def test_extraction_runs_play_the_same_map_with_their_own_sampling(tmp_path, tiny_tokenizer):
    assert run_loop(tmp_path, tiny_tokenizer)
    games = [json.loads(l) for l in (tmp_path / "r" / "trajectories.jsonl").read_text().splitlines()]
    extract = [g for g in games if g["stage"] == "extract"]
    by_step = {}
    for g in extract:
        by_step.setdefault(g["tags"]["step"], []).append(g)
    assert set(by_step) == {1, 2}
    for step, same in by_step.items():
        assert len({g["seed"] for g in same}) == 1  # all K runs on one map
        assert len({g["tags"]["run"] for g in same}) == 2
    assert by_step[1][0]["seed"] != by_step[2][0]["seed"]
    responses = [[t["response"] for t in g["turns"]] for g in by_step[1]]
    assert responses[0] != responses[1]  # different sampling streams
