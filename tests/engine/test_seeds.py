"""Map seeds: training maps never repeat across stages, steps or rounds, and never reach the held-out maps."""

import pytest

from oel_engine.config import EVAL_SEED_BASE, EvalConfig
from oel_engine.errors import OelError
from oel_engine.round.seeds import MAX_ROUNDS, collect_seed, extract_seed


def test_training_maps_are_disjoint_for_the_references_longest_runs():
    held_out = set(EvalConfig(episodes=128).seeds()) | set(EvalConfig(episodes=128, held_out="reference").seeds())
    seen: dict[int, str] = {}
    for r in range(MAX_ROUNDS):
        # T = 100 steps of 128 games (the Sokoban recipe), and 100 extraction steps
        for step in range(100):
            for game in range(128):
                seed = collect_seed(r, step, game)
                assert seed not in seen, (seed, seen.get(seed), f"collect r{r} s{step} g{game}")
                seen[seed] = f"collect r{r} s{step} g{game}"
        for step in range(1000):
            seed = extract_seed(r, step)
            assert seed not in seen, (seed, seen.get(seed), f"extract r{r} s{step}")
            seen[seed] = f"extract r{r} s{step}"
    assert not held_out & set(seen)
    assert collect_seed(0, 3, 7) == 3_007 and extract_seed(1, 2) == 150_002  # what earlier runs played stays


def test_a_round_past_the_last_is_refused():
    with pytest.raises(OelError, match="at most 10 rounds"):
        collect_seed(MAX_ROUNDS, 0, 0)


def test_held_out_maps_ours_and_the_references():
    assert EvalConfig(episodes=3).seeds() == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1, EVAL_SEED_BASE + 2]
    assert EvalConfig(episodes=3, held_out="reference").seeds() == [468460046, 468461046, 468462046]
    assert EvalConfig(episodes=3).seeds(2) == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1]


def test_a_run_evaluates_on_the_held_out_maps_it_is_set_to(tmp_path, tiny_folder, monkeypatch):
    from dataclasses import replace

    import oel_engine.evaluation.held_out as held_out
    import oel_engine.round.evaluate as evaluate
    from oel_engine.session import Engine
    from tests.support import folder_config

    played, probed = [], []
    real_play, real_states = held_out.play_episodes, evaluate.start_states
    monkeypatch.setattr(held_out, "play_episodes", lambda game, seeds, *a, **k: played.extend(seeds) or real_play(game, seeds, *a, **k))
    monkeypatch.setattr(evaluate, "start_states", lambda game, n, held_out: probed.extend(
        s.seed for s in real_states(game, n, held_out)) or real_states(game, n, held_out))
    tiny = folder_config(tiny_folder, rounds=1)
    config = replace(tiny, evaluation=replace(tiny.evaluation, episodes=2, samples=1, held_out="reference"))
    with Engine(tmp_path).session("ref", config) as s:
        s.run("eval_base")
    assert sorted(played) == [468460046, 468461046]
    assert probed and set(probed) <= {468460046, 468461046}
