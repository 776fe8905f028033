"""Good moves by search, and the move-probability probe on the tiny model."""

from __future__ import annotations

import pytest
import torch

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
from oel_engine.play.prompts import EXPERIENCE_HEADER, insert_experience
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


def direct_log_probs(lm, prompt: list[int], path: list[int]):
    """Log-probabilities of the next token after `prompt` + `path`, by one plain forward pass."""
    import torch

    with torch.no_grad():
        return torch.log_softmax(lm.model(input_ids=torch.tensor([prompt + path])).logits[0, -1].float(), -1)


@pytest.mark.parametrize("which", ["tiny_lm", "qwen_lm"])
def test_the_answer_tree_reads_what_separate_forward_passes_read(which, request):
    """Every node of the answers' token tree, read in one batched pass behind prompts of several
    lengths (left padding, the shared root), equals a plain forward over prompt + the node's path."""
    lm = request.getfixturevalue(which)
    probe = MoveProbe(lm, batch_size=8)
    tree, columns = probe.map.tree, list(probe.map.columns)
    assert len(tree.tokens) > 8  # spellings of several tokens: a real tree, not one level
    states = start_states(GameConfig(), 3)
    with lm.thinking(False):
        prompts = [lm.encode_chat(s.prompt) for s in states]
        prompts.append(lm.encode_chat(insert_experience(states[0].prompt, "- EXPERIENCE ITEM: go down first.")))
    read = lm.generator.tree_log_probs(prompts, tree, columns)
    paths = []
    for token, parent in zip(tree.tokens, tree.parents):
        paths.append((paths[parent] if parent >= 0 else []) + [token])
    for row, prompt in enumerate(prompts):
        for at, path in enumerate([[]] + paths):
            expected = direct_log_probs(lm, prompt, path)[columns]
            assert read[row, at].tolist() == pytest.approx(expected.tolist(), abs=1e-4), (row, path)


def test_a_second_pass_reads_the_deeper_nodes_it_is_asked_for_and_no_others(qwen_lm):
    """The first pass reads the prompt's end and the tree's first level; what `deeper` names is
    read by a second pass over the same cache, equal to reading the whole tree at once."""
    import math

    probe = MoveProbe(qwen_lm)
    tree, columns = probe.map.tree, probe.map.columns
    with qwen_lm.thinking(False):
        prompts = [qwen_lm.encode_chat(s.prompt) for s in start_states(GameConfig(), 3)]
    whole = qwen_lm.generator.tree_log_probs(prompts, tree, columns)
    first = [i for i, p in enumerate(tree.parents) if p < 0]
    below = [i for i in range(len(tree.tokens)) if i not in first]
    chosen = [i for i in below if tree.parents[i] in first][::2]  # some second-level nodes only
    seen = []
    part = qwen_lm.generator.tree_log_probs(prompts, tree, columns, lambda read: seen.append(read) or chosen)
    assert torch.isfinite(seen[0][:, [0] + [1 + i for i in first]]).all()
    assert torch.isinf(seen[0][:, [1 + i for i in below]]).all()  # asked before the second pass
    read = [0] + [1 + i for i in first + chosen]
    torch.testing.assert_close(part[:, read], whole[:, read], atol=1e-4, rtol=0)
    skipped = [1 + i for i in below if i not in chosen]
    assert skipped and all(math.isinf(v) for v in part[:, skipped].flatten().tolist())
    orphan = next(i for i in below if tree.parents[i] not in first)  # its parent is not read
    with pytest.raises(ValueError, match="before its parent"):
        qwen_lm.generator.tree_log_probs(prompts, tree, columns, lambda read: [orphan])


def test_the_probe_reads_deeper_only_where_a_spelling_holds_a_share_of_the_opening(qwen_lm):
    """`worth_reading` keeps a second-level node (and all under it) exactly when its path holds at
    least the share in some prompt, by the path's probability computed here from a full read."""
    probe = MoveProbe(qwen_lm)
    mapped = probe.map
    with qwen_lm.thinking(False):
        prompts = [qwen_lm.encode_chat(s.prompt) for s in start_states(GameConfig(), 3)]
    whole = qwen_lm.generator.tree_log_probs(prompts, mapped.tree, mapped.columns).exp()
    parents, col = mapped.tree.parents, {c: i for i, c in enumerate(mapped.columns)}
    token_col = [col[t] for t in mapped.tree.tokens]
    opening = whole[:, 0, list(mapped.opening)].sum(-1)
    second = {i: whole[:, 0, token_col[p]] * whole[:, 1 + p, token_col[i]]
              for i, p in enumerate(parents) if p >= 0 and parents[p] < 0}
    shares = sorted(float((path / opening).max()) for path in second.values())
    share = shares[len(shares) // 2]  # a threshold that keeps about half of them
    chosen = mapped.worth_reading(torch.log(whole), share)
    expected = {i for i, path in second.items() if float((path / opening).max()) >= share}
    assert {i for i in chosen if i in second} == expected and 0 < len(expected) < len(second)
    for node in chosen:
        parent = parents[node]
        assert parent in second or parent in chosen or parents[parent] < 0


def test_qwen_like_tokenizer_splits_the_moves_as_qwen_does(qwen_tokenizer):
    """The premise of the Qwen tests (Qwen2.5/Qwen3's vocabulary, measured on the real one)."""
    pieces = lambda text: qwen_tokenizer.convert_ids_to_tokens(qwen_tokenizer(text, add_special_tokens=False)["input_ids"])
    assert pieces("[left]") == ["[left", "]"] and pieces("[right]") == ["[right", "]"]
    assert pieces("[up]") == ["[", "up", "]"] and pieces("[down]") == ["[", "down", "]"]
    assert all(pieces(f"[{k}]") == [f"[{k}", "]"] for k in "wasd")


def test_a_move_is_the_sum_over_the_ways_to_write_it(qwen_lm):
    """On Qwen's shapes, by hand from plain forward passes: `[left]` is `[left` `]` or `[` `left`
    `]` (any token starting with "]" closes it, `],` too); `[up]` is `[` `up` `]`."""
    import math

    from oel_engine.evaluation.answer_paths import answer_map

    tok = qwen_lm.tokenizer
    texts = [tok.decode([i], clean_up_tokenization_spaces=False) for i in range(len(tok))]
    starting = lambda prefix: [i for i, t in enumerate(texts) if t.startswith(prefix)]
    one = lambda text: tok.convert_tokens_to_ids(text)
    with qwen_lm.thinking(False):
        context = qwen_lm.chat_text([{"role": "user", "content": "Move."}])
        prompt = qwen_lm.encode_chat(start_states(GameConfig(), 1)[0].prompt)
    p = lambda path: direct_log_probs(qwen_lm, prompt, path).exp()
    closes = lambda path: float(p(path)[starting("]")].sum())
    root, bracket = p([]), p([one("[")])
    left = (float(root[starting("[left]")].sum()) + float(root[one("[left")]) * closes([one("[left")])
            + float(root[one("[")]) * (float(bracket[starting("left]")].sum())
                                       + float(bracket[one("left")]) * closes([one("["), one("left")])))
    up = float(root[starting("[up]")].sum()) + float(root[one("[")]) * (
        float(bracket[starting("up]")].sum()) + float(bracket[one("up")]) * closes([one("["), one("up")]))
    mapped = answer_map(tok, context, {"left": ("[left]",), "up": ("[up]",)})
    moves, opening = mapped.score(qwen_lm.generator.tree_log_probs([prompt], mapped.tree, mapped.columns))
    assert math.exp(moves["left"][0]) == pytest.approx(left, rel=1e-3)
    assert math.exp(moves["up"][0]) == pytest.approx(up, rel=1e-3)
    # opening like a move: "[" or the merged "[left" (the tokens a counted answer can start with)
    assert math.exp(opening[0]) == pytest.approx(float(root[one("[")]) + float(root[one("[left")]), rel=1e-3)


@pytest.mark.parametrize("spellings", ["all", "words"])
def test_the_probe_reads_qwen_shaped_models(qwen_lm, spellings):
    states = start_states(GameConfig(), 4) + start_states(GameConfig("sokoban"), 2)
    read = MoveProbe(qwen_lm, batch_size=4, spellings=spellings).read([s.prompt for s in states])
    assert len(read) == len(states)
    for probs in read:
        assert set(probs.probs) == set(MOVES) and sum(probs.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(v > 0 for v in probs.probs.values())  # every move reachable, the merged ones too
        assert 0.0 < probs.mass <= 1.0


def test_every_spelling_counts_toward_its_move(qwen_lm):
    """`all` reads [w], [Up], [ up ] ... beside [up]: each move's probability (before the forced
    choice) is at least that of its plain `[move]` alone, and strictly more here (a random model
    gives every spelling some probability); the spellings are what the parser reads as the move."""
    from oel_engine.evaluation.answer_paths import answer_map
    from oel_engine.evaluation.move_probe import probe_spellings
    from oel_engine.games.actions import parse_action

    for move, spelled in probe_spellings("all").items():
        assert "[" + move + "]" in spelled and len(spelled) == len(set(spelled)) == 20
        assert all(parse_action(s) == move for s in spelled)
    with qwen_lm.thinking(False):
        context = qwen_lm.chat_text([{"role": "user", "content": "Move."}])
        prompt = qwen_lm.encode_chat(start_states(GameConfig(), 1)[0].prompt)
    scores = {}
    for which, spellings in (("plain", {m: (f"[{m}]",) for m in MOVES}), ("all", probe_spellings("all"))):
        mapped = answer_map(qwen_lm.tokenizer, context, spellings)
        scores[which], _ = mapped.score(qwen_lm.generator.tree_log_probs([prompt], mapped.tree, mapped.columns))
    for move in MOVES:
        assert float(scores["all"][move][0]) > float(scores["plain"][move][0]) + 1e-3
    with pytest.raises(ValueError, match="unknown probe spellings 'many'"):
        probe_spellings("many")


def test_plays_bars_read_qwen_shapes_as_student_and_teacher(tmp_path, qwen_folder):
    """What the Play screen asks the engine for each turn, on a model with Qwen's bracket merges."""
    from oel_engine.config import ModelConfig
    from oel_engine.session import Engine

    engine = Engine(tmp_path)
    engine.load_model(ModelConfig(model=str(qwen_folder), inference_dtype="float32"))
    game = engine.new_game(GameConfig(), 0)
    student, teacher, good = engine.move_probs(game, "- EXPERIENCE ITEM: go down first.")
    assert good == good_moves(game.board()) and good
    for read in (student, teacher):
        assert sum(read.probs.values()) == pytest.approx(1.0, abs=1e-5) and 0.0 < read.mass <= 1.0
    assert student.probs != teacher.probs


def test_the_probe_reads_a_thinking_model_after_an_empty_thought(qwen_lm, monkeypatch):
    from dataclasses import replace

    from oel_engine.model.lm import LanguageModel

    qwen_lm.config = replace(qwen_lm.config, thinking=True)
    seen = []
    render = LanguageModel.chat_text
    monkeypatch.setattr(LanguageModel, "chat_text", lambda self, m: seen.append(render(self, m)) or seen[-1])
    MoveProbe(qwen_lm).read([start_states(GameConfig(), 1)[0].prompt])
    assert seen and all(text.endswith("<think>\n\n</think>\n\n") for text in seen)
    assert qwen_lm.config.thinking is True


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
