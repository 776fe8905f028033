"""The presets: the reference's two released recipes value by value, and `--set` overrides.

The reference is microsoft/LMOps, folder oel/ (commit 4f2a9de); each value below names the file
and line it comes from.
"""

import json

import pytest

from oel_engine.config import ModelConfig
from oel_engine.errors import OelError
from oel_engine.overrides import apply_overrides
from oel_engine.presets import build, default_game, default_model, default_rounds


def recipe(name):
    return build(name, default_game(name), ModelConfig(model=default_model(name)), default_rounds(name))


def test_paper_frozenlake_is_the_references_frozen_lake_recipe():
    c = recipe("paper-frozenlake")
    assert c.model.model == "Qwen/Qwen3-1.7B"  # usage_example.sh:35
    assert c.model.thinking is True  # "--textgame_no_think False" (usage_example.sh:37,39)
    assert (c.game.name, c.game.size, c.game.holes, c.game.max_turns) == ("frozenlake", 3, 2, 5)  # usage_example.sh:35 "FrozenLake-v0-raw,1024,5"
    assert c.game.objective is True  # the turn prompt's objective sentence (vllm_rollout_spmd.py:277)
    x = c.extraction
    assert (x.format, x.reasoning) == ("unstructured", True)  # prompt v3: reason step by step, free text (ray_trainer.py:1664-1680)
    assert x.accumulate is False  # EXP_SEL_WITH_PREV False (usage_example.sh:35)
    assert (x.runs, x.steps, x.consolidation_step) == (10, 30, 15)  # 50..500 step 50; 30 samples; make_exp_list "30,15" (usage_example.sh:35)
    assert x.budget_tokens == x.max_new_tokens == 2048  # experience_max_length 2048 (usage_example.sh:37, textgame_extract_inturn.sh:22)
    k = c.consolidation
    assert (k.steps, k.games_per_step) == (20, 128)  # --total_training_steps 20 (usage_example.sh:39); train_batch_size 128 (ppo_trainer.yaml:42)
    assert (k.update, k.learning_rate) == ("full", 5e-6)  # full fine-tuning, --actor_lr 5e-6 (usage_example.sh:39)
    assert c.rounds == 2  # Round 1, Round 2 (usage_example.sh:33,43)


def test_paper_sokoban_is_the_references_sokoban_recipe():
    c = recipe("paper-sokoban")
    assert c.model.model == "Qwen/Qwen3-4B-Instruct-2507"  # usage_example.sh:4
    assert c.model.thinking is False  # "--textgame_no_think True" (usage_example.sh:6,8)
    assert (c.game.name, c.game.room, c.game.boxes, c.game.max_turns) == ("sokoban", 6, 1, 5)  # "Sokoban-v0,1024,5" (usage_example.sh:4)
    assert c.game.objective is True  # vllm_rollout_spmd.py:274
    x = c.extraction
    assert (x.format, x.reasoning) == ("structured", False)  # prompt v4: "- EXPERIENCE ITEM:" (ray_trainer.py:1682-1710)
    assert x.accumulate is True  # EXP_SEL_WITH_PREV True (usage_example.sh:4)
    assert (x.runs, x.steps, x.consolidation_step) == (10, 100, 50)  # 50..500 step 50; 100 samples; "100,50" (usage_example.sh:4)
    assert x.budget_tokens == x.max_new_tokens == 8192  # experience_max_length 8192 (usage_example.sh:6)
    k = c.consolidation
    assert (k.steps, k.games_per_step) == (100, 128)  # --total_training_steps 100 (usage_example.sh:8); ppo_trainer.yaml:42
    assert (k.update, k.learning_rate) == ("full", 1e-6)  # --actor_lr 1e-6 (usage_example.sh:8)
    assert c.rounds == 3  # Round 1-3 (usage_example.sh:2,12,20)


@pytest.mark.parametrize("name", ["paper-frozenlake", "paper-sokoban"])
def test_what_both_recipes_share(name):
    c = recipe(name)
    d, k, e = c.deploy, c.consolidation, c.evaluation
    assert (d.temperature, d.top_p, d.top_k, d.max_new_tokens) == (0.7, 1.0, 0, 1024)  # rollout.temperature=0.7 (textgame_generate_deploy.sh:106), MAX_RESPONSE_LENGTH=1024 (:7)
    assert (k.loss, k.top_k, k.renormalize) == ("topk", 256, False)  # --kl_loss_type full --kl_topk 256 (usage_example.sh:8,39); KL_RENORM_TOPK=False (textgame_consolidate.sh:10)
    assert (k.temperature, k.top_p, k.max_new_tokens) == (0.7, 1.0, 1024)  # textgame_consolidate.sh:152, :11
    assert (k.weight_decay, k.grad_clip, k.autocast) == (0.01, 1.0, "bf16")  # ppo_trainer.yaml:287, :177; bf16
    assert c.model.dtype == "float32"  # master weights: a 1e-6 step rounds away in bf16 weights
    s = e.sampling
    assert (s.temperature, s.top_p, s.top_k, s.max_new_tokens) == (0.7, 0.8, 20, 1024)  # val_kwargs (textgame_eval.sh:96-98)
    assert e.episodes == 128 and e.seeds()[:2] == [468460046, 468461046]  # held_out_size=128 (textgame_eval.sh:113); ray_trainer.py:949


def test_paper_is_the_old_name_of_the_frozen_lake_recipe():
    assert build("paper", default_game("paper"), ModelConfig(), 2).preset == "paper-frozenlake"
    with pytest.raises(OelError, match="choose demo, teach, paper-frozenlake, paper-sokoban"):
        build("papers", default_game("demo"), ModelConfig(), 2)


def test_the_demo_plays_a_whole_evaluation_in_one_batch_of_the_embedded_model_only():
    demo = build("demo", default_game("demo"), ModelConfig(), 2)
    assert demo.model.batch_size == demo.evaluation.episodes * demo.evaluation.samples == 64
    other = build("demo", default_game("demo"), ModelConfig(model="some/other-model"), 2)
    assert other.model.batch_size == ModelConfig().batch_size
    assert build("teach", default_game("teach"), ModelConfig(), 2).model.batch_size == 64  # built on the demo
    assert apply_overrides(demo, ["model.batch_size=16"]).model.batch_size == 16  # a person's setting still wins


def test_set_parses_each_field_by_its_type_and_says_what_is_wrong():
    config = build("demo", default_game("demo"), ModelConfig(), 2)
    changed = apply_overrides(config, ["consolidation.learning_rate=5e-4", "rounds=4", "model.thinking=true",
                                       "extraction.use_step=none", "consolidation.target_modules=q_proj, v_proj",
                                       "evaluation.sampling.top_k=5"])
    assert changed.consolidation.learning_rate == 5e-4 and changed.rounds == 4 and changed.model.thinking is True
    assert changed.extraction.use_step is None and changed.consolidation.target_modules == ("q_proj", "v_proj")
    assert changed.evaluation.sampling.top_k == 5 and config.evaluation.sampling.top_k == 20
    for bad, message in (("consolidation.nope=1", "unknown setting 'consolidation.nope'"),
                         ("consolidation.steps=abc", "needs a whole number"),
                         ("model.thinking=maybe", "needs true or false"),
                         ("consolidation=1", "is a section"),
                         ("rounds", "is not section.field=value"),
                         ("consolidation.loss=sideways", "loss must be topk, full or offpolicy")):
        with pytest.raises(OelError, match=message):
            apply_overrides(config, [bad])


def test_oel_config_prints_what_a_run_would_use(tmp_path):
    from typer.testing import CliRunner

    from oel_engine.cli.main import app

    result = CliRunner().invoke(app, ["config", "--preset", "paper-sokoban", "--set", "consolidation.steps=7", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["model"]["model"] == "Qwen/Qwen3-4B-Instruct-2507" and data["consolidation"]["steps"] == 7
    assert data["rounds"] == 3 and data["game"]["name"] == "sokoban"
    plain = CliRunner().invoke(app, ["config", "--preset", "demo"])
    assert "consolidation.learning_rate = 0.001" in plain.output.splitlines()


def test_set_on_a_run_changes_only_what_has_not_started(tmp_path):
    from oel_engine.session import Engine

    engine = Engine(tmp_path)
    engine.open_run("r", build("demo", default_game("demo"), ModelConfig(), 2))
    with engine.session("r") as s:
        s.apply_settings(["consolidation.steps=3", "rounds=5"])
        assert (s.config.consolidation.steps, s.config.rounds) == (3, 5)
        with pytest.raises(OelError, match="keeps the evaluation settings"):
            s.apply_settings(["evaluation.episodes=8"])
        s.art.mark_done(0, "consolidate")
        with pytest.raises(OelError, match="consolidation of round 0 has started"):
            s.apply_settings(["consolidation.steps=4"])
        s.apply_settings(["consolidation.steps=3"])  # the same value again (a resumed command) is fine
    config = engine.report("r").config
    assert config.consolidation.steps == 3 and config.evaluation.episodes == 32
    with engine.session("r") as s:
        assert s.store.meta()["overrides"] == ["round 0: consolidation.steps=3", "round 0: rounds=5"]
