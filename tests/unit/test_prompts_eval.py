from oel_engine.config import GameConfig
from oel_engine.evaluation.held_out import episode_metrics, evaluate
from oel_engine.games import make_game
from oel_engine.play.policies import RandomPolicy, ScriptedPolicy
from oel_engine.play.prompts import EXPERIENCE_HEADER, turn_prompt_text
from oel_engine.play.rollout import play_episodes
from tests.support import frozenlake_solution


def test_prompt_replaces_rules_and_keeps_history():
    game = make_game(GameConfig())
    game.reset(0)
    game.step("[down]")
    text = turn_prompt_text(game.player_description, game.messages)
    assert "Welcome to Frozen Lake" not in text  # the rules preamble is replaced
    assert "'P'" in text and "[up]" in text
    assert text.count("Current Board") == 2 and "You played: [down]" in text
    assert text.rstrip().endswith("Wrap your action in square brackets.")


def test_experience_block_is_the_only_difference():
    game = make_game(GameConfig())
    game.reset(1)
    plain = turn_prompt_text(game.player_description, game.messages)
    with_exp = turn_prompt_text(game.player_description, game.messages, "- EXPERIENCE ITEM: avoid H.")
    assert EXPERIENCE_HEADER in with_exp
    block_start = with_exp.index(EXPERIENCE_HEADER)
    block_end = with_exp.index("avoid H.") + len("avoid H.\n\n")
    assert with_exp[:block_start] + with_exp[block_end:] == plain


def test_metrics_from_known_episodes():
    def oracle(request):
        return f"[{frozenlake_solution(request.board)[0]}]"

    won = play_episodes(GameConfig(), [0, 1], ScriptedPolicy(oracle))
    lost = play_episodes(GameConfig(), [2], ScriptedPolicy(["no idea", "still none"]))
    m = episode_metrics(won + lost)
    assert m["episodes"] == 3
    assert m["pass_rate"] == 2 / 3
    assert m["mean_turns"] == (4 + 4 + 2) / 3
    assert m["legal_action_rate"] == 8 / 10


def test_evaluate_uses_held_out_seeds_and_reports_spread():
    result, played = evaluate(GameConfig(), RandomPolicy(0), episodes=20, samples=3, concurrent=7)
    assert len(result.samples) == 3 and len(played) == 60
    assert min(e.seed for e in played) >= 1_000_000
    assert [e.seed for e in played] == [e.seed for e in played[:20]] * 3  # sample after sample, maps in order
    assert 0 <= result.mean("pass_rate") <= 1 and result.spread("mean_turns") >= 0
    assert set(result.summary()) >= {"pass_rate", "pass_rate_std", "legal_action_rate", "mean_turns"}


def test_play_episodes_keeps_seed_order_and_refills_slots():
    seeds = list(range(10, 20))
    episodes = play_episodes(GameConfig(), seeds, RandomPolicy(0), concurrent=3)
    assert [e.seed for e in episodes] == seeds
    assert all(e.outcome is not None and 1 <= len(e.turns) <= 5 for e in episodes)
