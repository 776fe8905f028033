"""Which token paths write each move, for a given tokenizer: the move probe's map of the answer.

Tokenizers split the moves unevenly: SmolLM2 writes `[left]` as `[` `left` `]`, Qwen2.5/Qwen3 as
`[left` `]` while `[up]` stays `[` `up` `]`. So the probe asks for the probability that the answer
*begins with the text* of a move, summed over every spelling the action parser reads as that move
(`games.actions.move_spellings`). The probability that text begins with a string s is the sum,
over the tokens t at the next position, of P(t) when t starts with s (it may run on: `],` closes
a move as well as `]`) plus P(t) times the probability the rest of s follows t when t is a proper
prefix of s. That sum runs over every tokenization of s; this map keeps the tokenizations the
model can be expected to write: each spelling as the tokenizer writes it, and, where the
tokenizer merges the bracket into the word (`[left`), the bracket alone then the rest (`[`
`left`), which a model can sample too. The paths' nodes form one token tree per tokenizer
(`BatchGenerator.tree_log_probs` reads it after a batch of prompts: the prompts and the first level
in one pass, the deeper nodes `worth_reading` picks in a second); `score` turns what was read into
one log-probability per move and one for opening like a move at all.
"""

from __future__ import annotations

import bisect
import math
import weakref
from dataclasses import dataclass

import torch

from ..model.generation import TokenTree

# Per tokenizer: every token's text (decoded alone), sorted for prefix search; and built maps.
_TEXTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MAPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Term:
    """One way to write a spelling: the path's steps (where to read, which column), then the
    tokens that finish the text (the columns whose token starts with what is left of it)."""

    steps: tuple[tuple[int, int], ...]
    finish_at: int
    finish: tuple[int, ...]


@dataclass(frozen=True)
class AnswerMap:
    """A token tree to read after every prompt, the vocabulary columns to read there, and how the
    moves' probabilities add up from them. Read positions: 0 the prompt's end, 1 + i after node i."""

    tree: TokenTree
    columns: tuple[int, ...]
    opening: tuple[int, ...]  # columns whose token begins a path: the answer opens like a move
    terms: dict[str, tuple[Term, ...]]
    node_columns: tuple[int, ...]  # the column of each node's own token

    def worth_reading(self, log_probs: torch.Tensor, share: float) -> list[int]:
        """The nodes below the tree's first level to read, given what the first level read
        ([B, 1 + nodes, columns], unread at -inf): those whose path, at its second token, holds
        at least `share` of the probability of opening like a move in some row, with everything
        under them. A node left out adds less than `share` of that probability to a move, in
        every row."""
        opening = torch.logsumexp(log_probs[:, 0, list(self.opening)], -1)
        floor = math.log(share)
        paths: dict[int, torch.Tensor] = {}
        chosen: list[int] = []
        for node, parent in enumerate(self.tree.parents):  # parents come first
            if parent < 0:
                paths[node] = log_probs[:, 0, self.node_columns[node]]
            elif self.tree.parents[parent] < 0:
                path = paths[parent] + log_probs[:, 1 + parent, self.node_columns[node]]
                if bool(((path - opening) >= floor).any()):
                    chosen.append(node)
            elif parent in chosen:
                chosen.append(node)
        return chosen

    def score(self, log_probs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """From [B, 1 + nodes, columns] log-probabilities: each move's log-probability that the
        answer begins with one of its spellings, and the log-probability it opens like a move (its
        first token begins one of the paths)."""
        rows = log_probs.shape[0]
        moves = {}
        for move, terms in self.terms.items():
            parts = []
            for term in terms:
                total = torch.logsumexp(log_probs[:, term.finish_at, list(term.finish)], -1)
                for at, column in term.steps:
                    total = total + log_probs[:, at, column]
                parts.append(total)
            moves[move] = torch.logsumexp(torch.stack(parts), 0) if parts else torch.full((rows,), float("-inf"))
        return moves, torch.logsumexp(log_probs[:, 0, list(self.opening)], -1)


def token_texts(tokenizer) -> tuple[list[str], list[tuple[str, int]]]:
    """Every token's text decoded alone, and the same sorted with ids (for prefix search)."""
    if tokenizer not in _TEXTS:
        texts = [tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in range(len(tokenizer))]
        _TEXTS[tokenizer] = (texts, sorted((t, i) for i, t in enumerate(texts)))
    return _TEXTS[tokenizer]


def tokens_starting_with(tokenizer, prefix: str) -> list[int]:
    _, ordered = token_texts(tokenizer)
    start = bisect.bisect_left(ordered, (prefix, -1))
    stop = bisect.bisect_left(ordered, (prefix + "\U0010ffff", -1))
    return [i for _, i in ordered[start:stop]]


def answer_map(tokenizer, context: str, spellings: dict[str, tuple[str, ...]], opening: str = "[") -> AnswerMap:
    """The map for answers following `context` (a chat prompt ending where the answer begins),
    kept per tokenizer. Raises ValueError when the tokenizer merges the answer into the prompt."""
    key = (context, tuple((m, tuple(s)) for m, s in spellings.items()), opening)
    built = _MAPS.setdefault(tokenizer, {})
    if key not in built:
        built[key] = _build(tokenizer, context, spellings, opening)
    return built[key]


def _build(tokenizer, context: str, spellings: dict[str, tuple[str, ...]], opening: str) -> AnswerMap:
    texts, _ = token_texts(tokenizer)
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
    base = encode(context)

    def written(answer: str) -> list[int]:
        full = encode(context + answer)
        if full[: len(base)] != base:
            raise ValueError("the tokenizer merges the answer into the prompt; the probe cannot read it")
        return full[len(base):]

    def spells(path: list[int], text: str) -> bool:  # the tokens write exactly `text`
        return "".join(texts[t] for t in path) == text

    opened = written(opening)
    nodes: dict[tuple[int, ...], int] = {(): 0}  # token path -> read position
    tokens, parents, node_columns = [], [], []
    columns: dict[int, int] = {}

    def column(token: int) -> int:
        return columns.setdefault(token, len(columns))

    def node(path: tuple[int, ...]) -> int:
        if path not in nodes:
            parent = node(path[:-1])
            nodes[path] = len(nodes)
            tokens.append(path[-1])
            parents.append(parent - 1)
            node_columns.append(column(path[-1]))
        return nodes[path]

    def expand(path: tuple[int, ...], rest: str, ways: list[list[int]]) -> list[Term]:
        """The terms writing `rest` after `path`, following the ways that pass through it."""
        at = node(path)
        finish = tuple(column(t) for t in tokens_starting_with(tokenizer, rest))
        terms = [Term((), at, finish)] if finish else []
        children = dict.fromkeys(w[len(path)] for w in ways if len(w) > len(path) and tuple(w[:len(path)]) == path)
        for child in children:
            piece = texts[child]
            if len(piece) < len(rest) and rest.startswith(piece):
                for term in expand(path + (child,), rest[len(piece):], ways):
                    terms.append(Term(((at, column(child)),) + term.steps, term.finish_at, term.finish))
        return terms

    terms = {}
    for move, texts_of_move in spellings.items():
        found = []
        for spelling in texts_of_move:
            ways = [written(spelling)]
            if ways[0][: len(opened)] != opened and spelling.startswith(opening):
                ways.append(opened + encode(spelling[len(opening):]))  # the bracket alone, then the rest
            found += expand((), spelling, [w for w in ways if spells(w, spelling)])
        terms[move] = tuple(found)
    # the answer opens like a move when its first token begins one of the paths: "[" alone for
    # SmolLM2 (the probe's mass is then the share after "[", as it always was), "[" or a merged
    # "[left" for Qwen
    first = {c for ts in terms.values() for t in ts for c in (t.steps[0][1:] if t.steps else t.finish)}
    return AnswerMap(TokenTree(tuple(tokens), tuple(parents)), tuple(columns), tuple(sorted(first)), terms,
                     tuple(node_columns))
