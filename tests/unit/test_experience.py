from oel_engine.config import GameConfig
from oel_engine.experience.extraction import (
    ExperienceItem,
    ExperienceState,
    extraction_prompt,
    parse_extraction,
    trajectory_text,
    truncate_items,
)
from oel_engine.experience.items import ITEM_PREFIX
from oel_engine.play.policies import ScriptedPolicy
from oel_engine.play.rollout import play_episodes


def a_lost_game():
    return play_episodes(GameConfig(), [0], ScriptedPolicy(["I think <think>hmm [left]</think> [up]", "[up] again"]))[0]


def test_trajectory_text_has_inputs_outputs_and_result():
    text = trajectory_text(a_lost_game())
    assert "Turn 1\nEnvironment:\nCurrent Board" in text
    # the whole answer, reasoning included (the reference's keep-reasoning default), and the move
    assert "Your output:\nI think <think>hmm [left]</think> [up]\nMove taken: [up]" in text
    assert text.rstrip().splitlines()[-1].startswith("Final result: FAILURE. Invalid Move")


def test_extraction_prompt_shows_previous_experience_and_format():
    episode = a_lost_game()
    first = extraction_prompt(episode, None)[0]["content"]
    assert "(none yet)" in first and ITEM_PREFIX in first
    assert first.index("reason step by step") < first.index(ITEM_PREFIX)  # reasoning first, then the items
    later = extraction_prompt(episode, f"{ITEM_PREFIX} walls block moves")[0]["content"]
    assert "walls block moves" in later and "Do not repeat" in later
    free = extraction_prompt(episode, None, fmt="unstructured")[0]["content"]
    assert ITEM_PREFIX not in free


def test_parse_structured_keeps_every_line_with_the_marker():
    answer = (f"Sure! Here you go:\n{ITEM_PREFIX} Moving up from the top row hits a wall.\n"
              f"blah\n  {ITEM_PREFIX} Holes end the game.\n{ITEM_PREFIX} third one\n{ITEM_PREFIX}   \n"
              f"1. {ITEM_PREFIX} numbered {ITEM_PREFIX} and a second on the same line")
    assert parse_extraction(answer) == ["Moving up from the top row hits a wall.", "Holes end the game.", "third one",
                                        "numbered", "and a second on the same line"]
    assert parse_extraction(answer, max_items=2) == ["Moving up from the top row hits a wall.", "Holes end the game."]
    assert parse_extraction("nothing useful here") == []
    assert parse_extraction(f"<think>{ITEM_PREFIX} secret</think>{ITEM_PREFIX} visible") == ["visible"]
    assert parse_extraction("  free text lesson  ", fmt="unstructured") == ["free text lesson"]
    assert parse_extraction("<think>only thinking</think>", fmt="unstructured") == []


def test_truncation_keeps_the_most_recent_whole_items():
    items = [ExperienceItem(f"item number {i} " + "x" * 20, 0, 0, i, f"e{i}") for i in range(6)]
    count = lambda text: len(text)  # characters as "tokens"
    line = len(f"{ITEM_PREFIX} {items[0].text}")
    kept = truncate_items(items, budget_tokens=2 * line + 1, count_tokens=count)
    assert [i.step for i in kept] == [4, 5]
    assert truncate_items(items, budget_tokens=10, count_tokens=count) == []
    assert truncate_items(items, budget_tokens=10**6, count_tokens=count) == items


def test_disabled_items_leave_the_text():
    state = ExperienceState(0, 0, 1, [ExperienceItem("a", 0, 0, 1, "e"), ExperienceItem("b", 0, 0, 1, "e", enabled=False)])
    assert state.text() == f"{ITEM_PREFIX} a"
    assert state.text("unstructured") == "a"


def test_a_worked_example_shows_the_format_on_a_toy_task_before_the_game():
    episode = a_lost_game()
    for fmt in ("structured", "unstructured"):
        plain = extraction_prompt(episode, None, fmt)[0]["content"]
        shown = extraction_prompt(episode, None, fmt, example=True)[0]["content"]
        assert shown.endswith(plain) and "vending machine" in shown and "vending" not in plain
        example = shown[: len(shown) - len(plain)]
        assert (f"{ITEM_PREFIX} Put a coin in" in example) == (fmt == "structured")
        for rule_word in ("hole", "goal", "Frozen", "[down]", "grid"):  # none of the game's rules
            assert rule_word not in example
