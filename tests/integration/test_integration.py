"""Integration tests on the embedded SmolLM2-135M (part of the default suite; ~1-2 min)."""

import json
import subprocess
import sys

import pytest

from oel_engine.config import GameConfig, ModelConfig, SamplingConfig
from oel_engine.play.policies import ModelPolicy
from oel_engine.play.rollout import play_episodes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm():
    from oel_engine.model.loader import load_language_model

    return load_language_model(ModelConfig())


def test_embedded_model_is_cached_as_safetensors(smollm):
    from oel_engine.logs import cache_root

    folder = cache_root() / "smollm2-135m-instruct"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert smollm.model.num_parameters() == pytest.approx(134.5e6, rel=0.01)


def test_embedded_batched_greedy_equals_sequential(smollm):
    """In float32; on a bf16 sampling copy a row's numbers depend on the batch's shape (oneDNN
    picks other kernels), so near-ties can flip (bench/precision_effect.py shows the results
    stay within the sampling spread)."""
    from dataclasses import replace

    from oel_engine.games import make_game
    from oel_engine.model.lm import LanguageModel
    from oel_engine.play.prompts import turn_messages

    smollm = LanguageModel(smollm.model, smollm.tokenizer, smollm.name, replace(smollm.config, inference_dtype="float32"))

    prompts = []
    for seed in (0, 1, 2):
        game = make_game(GameConfig())
        game.reset(seed)
        if seed == 2:
            game.step("[down]")
        prompts.append(smollm.encode_chat(turn_messages(game.player_description, game.messages)))
    greedy = SamplingConfig(temperature=0, max_new_tokens=24)
    seq = []
    for p in prompts:
        smollm.generator.reset_cache()
        seq.append(smollm.generator.generate([p], greedy)[0].token_ids)
    smollm.generator.reset_cache()
    assert [g.token_ids for g in smollm.generator.generate(prompts, greedy, keys=[0, 1, 2])] == seq


def test_embedded_model_plays_games(smollm):
    policy = ModelPolicy(smollm, SamplingConfig(max_new_tokens=32), seed=0)
    episodes = play_episodes(GameConfig(), [0, 1, 2], policy)
    assert len(episodes) == 3
    for e in episodes:
        assert e.outcome is not None and e.policy.kind == "model"
        assert all(t.response_tokens > 0 and t.prompt_tokens > 100 for t in e.turns)


def test_cli_model_play_json(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "oel_engine.cli", "play", "--policy", "model", "--episodes", "2",
         "--max-new-tokens", "24", "--json", "--saves", str(tmp_path), "--run", "m"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["mean_response_tokens"] > 0
    first = json.loads((tmp_path / "m" / "trajectories.jsonl").read_text().splitlines()[0])
    assert first["policy"]["model"].startswith("SmolLM2")


async def test_tui_end_to_end_embedded_model_plays(tmp_path):
    """The real app and engine: load the embedded model from the Start screen, let it move."""
    from oel_tui.app import OelApp, Settings
    from oel_tui.engine import LocalEngine

    app = OelApp(engine=LocalEngine(tmp_path), settings=Settings(game=GameConfig()))
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#model").focus()  # a newcomer starts in the run-name field
        await pilot.press("enter")  # Enter in the model field loads it
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.engine.model_name().startswith("SmolLM2")
        await pilot.press("escape", "2")  # out of the field: 2 is a key again
        await pilot.press("space")  # taken after the bars' reading if that is still running
        for _ in range(4):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert app.screen.agent_game.turns == 1
        assert "agent said:" in app.screen.agent_a.log_view.text()


def test_a_shipped_lesson_moves_the_probe_on_the_embedded_model(smollm):
    """The signal the app shows: a two-line lesson in the prompt moves probability onto the
    good moves by far more than the spread over maps (measured 0.10 -> 0.24 on 32 maps)."""
    from pathlib import Path

    from oel_engine.evaluation.move_probe import MoveProbe, start_states
    from oel_engine.experience.items import read_experience

    lesson = read_experience(Path(__file__).resolve().parents[2] / "examples" / "lessons" / "frozenlake-short.txt")
    states = start_states(GameConfig(), 16)
    probe = MoveProbe(smollm)
    base, taught = probe.states(states), probe.states(states, lesson)
    assert taught.good_move_prob - base.good_move_prob > 3 * (base.good_move_prob_se + taught.good_move_prob_se)
    assert all(abs(sum(p.probs.values()) - 1) < 1e-5 for p in base.per_state + taught.per_state)


def test_the_words_reading_gives_the_numbers_of_the_single_token_probe(smollm):
    """Runs before 2026-12-07 read one token after an appended "[" (SmolLM2 writes each move as
    one token there). The tree-shaped probe, reading the same four words, gives the same numbers
    to rounding (measured: 0.0013 at most per move over 64 maps, move_mass 0.006; the rest is
    tokens such as `upon` that begin with a word); the default reading, every spelling closed by
    "]", moves them (0.103 -> 0.080 on 64 maps: `[w]` alone holds 0.11 after "[" on a start state)."""
    import torch

    from oel_engine.evaluation.move_probe import MoveProbe, start_states
    from oel_engine.games import MOVES

    from oel_engine.model.lm import LanguageModel

    # float32 on both sides: bf16 rounds a batched pass and a single one apart by ~0.03 here
    lm = LanguageModel(smollm.model, smollm.tokenizer, smollm.name, ModelConfig(inference_dtype="float32"))
    states = start_states(GameConfig(), 8)
    tok = lm.tokenizer
    opening = tok("[", add_special_tokens=False)["input_ids"]
    move_ids = [tok(m, add_special_tokens=False)["input_ids"][0] for m in MOVES]
    assert all(len(tok(m, add_special_tokens=False)["input_ids"]) == 1 for m in MOVES)
    words = MoveProbe(lm, 8, "words").states(states)
    every = MoveProbe(lm, 8, "all").states(states)
    legacy_good = []
    for state, read in zip(states, words.per_state):
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([lm.encode_chat(state.prompt) + opening])).logits[0, -1]
        on_moves = torch.softmax(logits.float(), -1)[move_ids]
        legacy = dict(zip(MOVES, (on_moves / on_moves.sum()).tolist()))
        assert [read.probs[m] for m in MOVES] == pytest.approx([legacy[m] for m in MOVES], abs=5e-3)
        assert read.mass == pytest.approx(float(on_moves.sum()), abs=0.01)
        legacy_good.append(sum(legacy[m] for m in state.good))
    assert words.good_move_prob == pytest.approx(sum(legacy_good) / len(legacy_good), abs=2e-3)
    assert abs(every.good_move_prob - words.good_move_prob) > 0.01  # the spellings are not a rounding
