"""Test helpers: shortest solutions found by search over the structured board."""

from __future__ import annotations

from collections import deque

from oel_engine.games.base import DELTAS, Board


def frozenlake_solution(board: Board) -> list[str]:
    """Shortest hole-free path from the player to the goal, as moves."""
    goal = next((r, c) for r, row in enumerate(board.terrain) for c, v in enumerate(row) if v == "G")
    start = tuple(board.player)
    prev = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        if cur == goal:
            break
        for move, (dr, dc) in DELTAS.items():
            nxt = (cur[0] + dr, cur[1] + dc)
            if 0 <= nxt[0] < board.rows and 0 <= nxt[1] < board.cols and nxt not in prev and board.terrain[nxt[0]][nxt[1]] != "H":
                prev[nxt] = (cur, move)
                queue.append(nxt)
    path, cur = [], goal
    while prev[cur] is not None:
        cur, move = prev[cur]
        path.append(move)
    return path[::-1]


def sokoban_solution(board: Board, limit: int = 200_000) -> list[str] | None:
    """Shortest push sequence putting every box on a target (breadth-first over positions)."""
    walls = {(r, c) for r, row in enumerate(board.terrain) for c, v in enumerate(row) if v == "#"}
    targets = {(r, c) for r, row in enumerate(board.terrain) for c, v in enumerate(row) if v == "O"}
    start = (tuple(board.player), frozenset(map(tuple, board.boxes)))
    prev = {start: None}
    queue = deque([start])
    while queue and len(prev) < limit:
        state = queue.popleft()
        player, boxes = state
        if boxes <= targets:
            path = []
            while prev[state] is not None:
                state, move = prev[state]
                path.append(move)
            return path[::-1]
        for move, (dr, dc) in DELTAS.items():
            nxt = (player[0] + dr, player[1] + dc)
            if nxt in walls:
                continue
            new_boxes = boxes
            if nxt in boxes:
                beyond = (nxt[0] + dr, nxt[1] + dc)
                if beyond in walls or beyond in boxes:
                    continue
                new_boxes = (boxes - {nxt}) | {beyond}
            new_state = (nxt, frozenset(new_boxes))
            if new_state not in prev:
                prev[new_state] = (state, move)
                queue.append(new_state)
    return None
