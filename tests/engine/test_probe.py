"""Good moves by search, and the move-probability probe on the tiny model."""

from __future__ import annotations

import pytest

from oel_engine.config import GameConfig
from oel_engine.evaluation.move_probe import (
    MoveProbe,
    ProbeState,
    start_states,
    summarise,
    uniform_legal,
)
from oel_engine.games import MOVES, Board, make_game
from oel_engine.games.solve import good_moves
from oel_engine.play.prompts import EXPERIENCE_HEADER
from tests.support import frozenlake_solution, sokoban_solution


def lake(*rows: str) -> Board:
    player = next((r, row.index("P")) for r, row in enumerate(rows) if "P" in row)
    return Board("frozenlake", [row.replace("P", ".") for row in rows], player)


def room(*rows: str) -> Board:
    player = next((r, row.index("P")) for r, row in enumerate(rows) if "P" in row)
    boxes = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v == "X"]
    return Board("sokoban", [row.replace("P", ".").replace("X", ".") for row in rows], player, boxes)


@pytest.mark.parametrize("board, expected", [
    (lake("P.H", ".H.", "..G"), ["down"]),  # right leads only past holes
    (lake("P..", "...", "..G"), ["down", "right"]),  # both start a shortest path
    (lake("...", ".HP", "H.G"), ["down"]),
    (lake("PH.", "H..", "..G"), []),  # walled in by holes: no way to win
    (lake("..P", "...", "H.G"), ["down"]),
])
def test_frozenlake_good_moves_on_hand_made_boards(board, expected):
    assert good_moves(board) == expected


def test_frozenlake_player_on_goal_has_no_good_move():
    board = Board("frozenlake", ["...", "...", "..G"], (2, 2))
    assert good_moves(board) == []


@pytest.mark.parametrize("board, expected", [
    (room("#######", "#P.X.O#", "#######"), ["right"]),
    # the box must go down: only from above it, so first step right, not down
    (room("#####", "#P..#", "#.X.#", "#.O.#", "#####"), ["right"]),
    # two routes of the same length (push right then down, or down then right)
    (room("#####", "#P..#", "#.X.#", "#..O#", "#####"), ["down", "right"]),
    # the box is in a corner off target: the room cannot be solved
    (room("#####", "#X..#", "#..P#", "#..O#", "#####"), []),
])
def test_sokoban_good_moves_on_hand_made_boards(board, expected):
    assert good_moves(board) == expected


@pytest.mark.parametrize("config, solve", [
    (GameConfig("frozenlake", size=3, holes=2, max_turns=10), frozenlake_solution),
    (GameConfig("sokoban", room=6, boxes=1, max_turns=30), sokoban_solution),
])
def test_following_good_moves_wins_in_the_fewest_moves(config, solve):
    """Independent check against the test helpers' searches, on real generated maps."""
    checked = 0
    for seed in range(12):
        game = make_game(config)
        game.reset(seed)
        shortest = solve(game.board())
        if not shortest:
            assert good_moves(game.board()) == []
            continue
        moves = 0
        while not game.done:
            good = good_moves(game.board())
            assert good, f"seed {seed}: no good move on a winnable board"
            game.step(f"[{good[-1]}]")
            moves += 1
        assert game.success and moves == len(shortest), f"seed {seed}"
        checked += 1
    assert checked >= 6


def test_probe_probabilities_sum_to_one_and_batching_changes_nothing(tiny_lm):
    states = start_states(GameConfig(), 5)
    prompts = [s.prompt for s in states]
    batched = MoveProbe(tiny_lm, batch_size=4).read(prompts)
    single = MoveProbe(tiny_lm, batch_size=1).read(prompts)
    assert len(batched) == len(states) == 5
    for a, b in zip(batched, single):
        assert set(a.probs) == set(MOVES)
        assert sum(a.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 < a.mass <= 1.0
        for m in MOVES:  # left padding must not change a row's answer
            assert a.probs[m] == pytest.approx(b.probs[m], abs=1e-4)


def test_probe_matches_a_direct_forward_pass(tiny_lm):
    import torch

    state = start_states(GameConfig(), 1)[0]
    probe = MoveProbe(tiny_lm)
    read = probe.read([state.prompt])[0]
    ids = torch.tensor([tiny_lm.encode_chat(state.prompt) + probe._opening])
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=ids).logits[0, -1]
    direct = torch.softmax(logits[probe._move_ids], dim=-1)
    assert [read.probs[m] for m in MOVES] == pytest.approx(direct.tolist(), abs=1e-5)


def test_teacher_reads_the_experience_and_the_student_does_not(sharp_lm, monkeypatch):
    states = start_states(GameConfig(), 3)
    probe = MoveProbe(sharp_lm)
    seen = []
    original = probe.read
    monkeypatch.setattr(probe, "read", lambda prompts, should_stop=None: seen.append(prompts) or original(prompts))
    student = probe.states(states)
    teacher = probe.states(states, experience="- EXPERIENCE ITEM: go down first.")
    assert all(EXPERIENCE_HEADER not in p[-1]["content"] for p in seen[0])
    assert all("go down first." in p[-1]["content"] for p in seen[1])
    assert [p[-1]["content"].replace(EXPERIENCE_HEADER + "- EXPERIENCE ITEM: go down first.\n\n", "") for p in seen[1]] \
        == [p[-1]["content"] for p in seen[0]]
    assert student.good_move_prob != pytest.approx(teacher.good_move_prob, abs=1e-6)


def test_good_move_prob_averages_the_probability_on_good_moves():
    board = lake("P..", "...", "..G")
    states = [ProbeState([], board, ["down", "right"], ["down", "right"]),
              ProbeState([], lake("P.H", ".H.", "..G"), ["down", "right"], ["down"])]
    result = summarise(states, uniform_legal(states))
    assert result.good_move_prob == pytest.approx((1.0 + 0.5) / 2)
    assert result.states == 2 and result.good_move_prob_se > 0


def test_start_states_leave_out_maps_that_cannot_be_won():
    states = start_states(GameConfig("sokoban"), 16)
    assert states and all(s.good for s in states)
    assert all(set(s.good) <= set(s.legal) for s in states)
