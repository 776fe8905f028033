import pytest

from oel_engine.games.actions import parse_action


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[up]", "up"),
        ("I go [left] no wait [right]", "right"),  # the LAST occurrence wins
        ("[W]", "up"),
        ("[ s ]", "down"),
        ("move [a] then [D]", "right"),
        ("Answer: up", None),
        ("[upward]", None),
        ("[jump] [north]", None),
        ("", None),
        ("[left]\n<think>[up]</think> final [down].", "down"),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


def test_none_input_is_no_action():
    assert parse_action(None) is None
