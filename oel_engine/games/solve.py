"""Good moves: the moves that start a shortest safe path to a win, found by search on the board.

Frozen Lake: breadth-first distances from the goal over cells that are not holes. Sokoban: the
length of the shortest solution from each successor state (player and box positions),
breadth-first; fine for the 6x6 one-box default (a few thousand states), capped for big rooms.
A state with no way to win has no good moves (callers leave it out of averages).
"""

from __future__ import annotations

from collections import deque

from .base import DELTAS, MOVES, Board

Cell = tuple[int, int]


def good_moves(board: Board) -> list[str]:
    """Moves (in MOVES order) that begin a shortest winning path from this board; [] if none."""
    if board.game == "frozenlake":
        return _frozenlake_good(board)
    if board.game == "sokoban":
        return _sokoban_good(board)
    raise ValueError(f"no solver for game '{board.game}'")


def _cells(board: Board, code: str) -> set[Cell]:
    return {(r, c) for r, row in enumerate(board.terrain) for c, v in enumerate(row) if v == code}


def _inside(board: Board, cell: Cell) -> bool:
    return 0 <= cell[0] < board.rows and 0 <= cell[1] < board.cols


def _step(cell: Cell, move: str) -> Cell:
    return cell[0] + DELTAS[move][0], cell[1] + DELTAS[move][1]


def _frozenlake_good(board: Board) -> list[str]:
    holes, goals = _cells(board, "H"), _cells(board, "G")
    distance = {g: 0 for g in goals}
    queue = deque(goals)
    while queue:  # moves are reversible on the ice, so distances from the goal are distances to it
        cell = queue.popleft()
        for move in MOVES:
            nxt = _step(cell, move)
            if _inside(board, nxt) and nxt not in holes and nxt not in distance:
                distance[nxt] = distance[cell] + 1
                queue.append(nxt)
    here = tuple(board.player)
    if here not in distance or distance[here] == 0:
        return []
    return [m for m in MOVES if distance.get(_step(here, m)) == distance[here] - 1]


SokobanState = tuple[Cell, frozenset]


def _sokoban_next(walls: set[Cell], state: SokobanState, move: str) -> SokobanState | None:
    player, boxes = state
    nxt = _step(player, move)
    if nxt in walls:
        return None
    if nxt in boxes:
        beyond = _step(nxt, move)
        if beyond in walls or beyond in boxes:
            return None
        boxes = (boxes - {nxt}) | {beyond}
    return nxt, frozenset(boxes)


def sokoban_solution_length(walls: set[Cell], targets: set[Cell], start: SokobanState, limit: int = 100_000) -> int | None:
    """Moves in the shortest solution from `start` (None: none found within `limit` states)."""
    seen = {start}
    frontier, depth = [start], 0
    while frontier and len(seen) < limit:
        if any(boxes <= targets for _, boxes in frontier):
            return depth
        following = []
        for state in frontier:
            for move in MOVES:
                nxt = _sokoban_next(walls, state, move)
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    following.append(nxt)
        frontier, depth = following, depth + 1
    return None


def _sokoban_good(board: Board, limit: int = 100_000) -> list[str]:
    walls, targets = _cells(board, "#"), _cells(board, "O")
    start = (tuple(board.player), frozenset(map(tuple, board.boxes)))
    if start[1] <= targets:
        return []
    lengths = {}
    for move in MOVES:
        nxt = _sokoban_next(walls, start, move)
        if nxt is not None:
            found = sokoban_solution_length(walls, targets, nxt, limit)
            if found is not None:
                lengths[move] = found
    if not lengths:
        return []
    best = min(lengths.values())
    return [m for m in MOVES if lengths.get(m) == best]
