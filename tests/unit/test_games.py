import random

import pytest

from oel_engine.config import GameConfig
from oel_engine.errors import OelError
from oel_engine.games import make_game
from tests.support import frozenlake_solution, sokoban_solution

FL = GameConfig(name="frozenlake")
SOKO = GameConfig(name="sokoban")


def fresh(config, seed):
    game = make_game(config)
    game.reset(seed)
    return game


@pytest.mark.parametrize("config", [FL, SOKO], ids=["frozenlake", "sokoban"])
def test_same_seed_same_map_and_seeds_differ(config):
    a, b = fresh(config, 7), fresh(config, 7)
    assert a.board() == b.board()
    assert a.messages[-1].text == b.messages[-1].text
    boards = {tuple(fresh(config, s).board().terrain) + (fresh(config, s).board().player,) for s in range(12)}
    assert len(boards) > 1


def test_frozenlake_paper_defaults():
    board = fresh(FL, 3).board()
    assert board.rows == board.cols == 3
    assert sum(row.count("H") for row in board.terrain) == 2
    assert board.player == (0, 0) and board.terrain[2][2] == "G"


def test_frozenlake_textarena_default_size():
    board = fresh(GameConfig(name="frozenlake", size=4, holes=3), 1).board()
    assert board.rows == 4 and sum(row.count("H") for row in board.terrain) == 3


def test_reset_does_not_touch_global_random():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    fresh(FL, 5)
    assert random.random() == expected


@pytest.mark.parametrize("seed", range(5))
def test_frozenlake_win(seed):
    game = fresh(FL, seed)
    moves = frozenlake_solution(game.board())
    assert len(moves) == 4  # every 3x3 map with the start and goal in corners needs 4 moves
    for i, move in enumerate(moves):
        result = game.step(f"I think [{move}] is right")
        assert result.valid and result.done == (i == len(moves) - 1)
    assert result.reward == 1.0 and game.success
    assert "reached the goal" in result.reason


def test_frozenlake_hole_loses():
    for seed in range(30):
        game = fresh(FL, seed)
        board = game.board()
        if board.terrain[0][1] == "H":
            result = game.step("[right]")
            assert result.done and not game.success and result.reward < 1.0
            assert "hole" in result.reason.lower()
            return
    pytest.skip("no map with a hole right of the start in the first 30 seeds")


def test_one_invalid_move_is_forgiven_the_second_ends_the_game():
    game = fresh(FL, 0)
    first = game.step("I don't know")
    assert not first.valid and not first.done and first.action is None
    assert "invalid" in first.feedback.lower()
    second = game.step("[left]")  # walks into the wall: invalid again, second in a row
    assert second.done and not second.valid
    assert second.reason.startswith("Invalid Move")
    assert game.turns == 2


def test_invalid_then_valid_resets_the_warning():
    game = fresh(FL, 0)
    moves = frozenlake_solution(game.board())
    game.step("nothing")
    game.step(f"[{moves[0]}]")
    result = game.step("nothing again")
    assert not result.done  # a valid move in between resets the count


def test_turn_cap_counts_every_call():
    game = fresh(GameConfig(name="frozenlake", max_turns=3), 0)
    moves = frozenlake_solution(game.board())
    game.step("junk")  # invalid, counted
    game.step(f"[{moves[0]}]")
    result = game.step(f"[{moves[1]}]")
    assert result.done and game.turns == 3 and result.reward < 1.0
    assert "Turn limit" in result.reason
    with pytest.raises(RuntimeError):
        game.step("[up]")


def test_legal_moves_exclude_walls():
    game = fresh(FL, 0)
    assert set(game.legal_moves()) == {"down", "right"}  # top-left corner


@pytest.mark.parametrize("seed", range(4))
def test_sokoban_solvable_and_win(seed):
    game = fresh(GameConfig(name="sokoban", max_turns=60), seed)
    board = game.board()
    assert board.rows == board.cols == 6 and len(board.boxes) == 1
    moves = sokoban_solution(board)
    assert moves is not None
    for move in moves:
        result = game.step(f"[{move}]")
        assert result.valid
    assert result.done and result.reward == 1.0
    assert "solved" in result.reason


def test_sokoban_wall_is_invalid():
    game = fresh(SOKO, 0)
    board = game.board()
    blocked = [m for m in ("up", "down", "left", "right") if m not in game.legal_moves()]
    assert blocked, "the player starts beside at least one wall in a 6x6 room"
    result = game.step(f"[{blocked[0]}]")
    assert not result.valid and game.board() == board


@pytest.mark.parametrize(
    "config",
    [GameConfig(name="chess"), GameConfig(size=1), GameConfig(size=3, holes=9), GameConfig(name="sokoban", room=3)],
)
def test_bad_configs_raise_clear_errors(config):
    with pytest.raises(OelError):
        make_game(config)
