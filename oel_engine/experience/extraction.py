"""Experience extraction: the model reads its own trajectories and writes down what it learned.

K independent runs each take N accumulation steps; at each step all K play the SAME map and
differ only in sampling seed. A step plays ONE game with the current policy (no experience in
its prompt); the same model then reads that trajectory (every turn's full response, reasoning
included, and the move parsed from it) plus the experience so far, reasons step by step, and
writes new items. Items are appended and the
text is cut from the front to a token budget (the most recent whole items stay). Every step's
experience is saved, with provenance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..games.actions import strip_thinking
from ..play.trajectory import Episode
from .items import ITEM_PREFIX, format_items, parse_items

FORMATS = ("structured", "unstructured")


@dataclass
class ExperienceItem:
    """One learned item and where it came from."""

    text: str
    round: int
    run: int
    step: int
    episode_id: str
    source: str = "model"  # model | human (the episode's player)
    enabled: bool = True
    edited: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExperienceItem":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class ExperienceState:
    """One extraction run's accumulated items (what a snapshot file holds)."""

    round: int
    run: int
    step: int = 0
    items: list[ExperienceItem] = field(default_factory=list)

    def text(self, fmt: str = "structured") -> str:
        active = [i.text for i in self.items if i.enabled]
        return format_items(active) if fmt == "structured" else "\n\n".join(active)


def join_texts(first: str, second: str, fmt: str = "structured") -> str:
    """Two experience texts as one (either may be empty)."""
    parts = [t.strip() for t in (first, second) if t and t.strip()]
    return ("\n" if fmt == "structured" else "\n\n").join(parts)


def trajectory_text(episode: Episode) -> str:
    """Per turn: what the environment showed, the player's whole answer (reasoning included, as
    the reference keeps it) and the move parsed from it; then the result and its reason."""
    lines = []
    for turn in episode.turns:
        if turn.index == 0:
            shown = turn.prompt[-1]["content"].split("Current situation:\n", 1)[-1].rsplit("\n\nWhat action", 1)[0]
        else:
            shown = episode.turns[turn.index - 1].feedback
        answer = turn.response.strip() or "(empty answer)"
        move = f"[{turn.action}]" if turn.action else "none (no [move] found in the output)"
        lines.append(f"Turn {turn.index + 1}\nEnvironment:\n{shown.strip()}\nYour output:\n{answer}\n"
                     f"Move taken: {move}")
    outcome = episode.outcome
    result = "SUCCESS" if outcome and outcome.success else "FAILURE"
    reason = outcome.reason if outcome else "unfinished"
    lines.append(f"Final result: {result}. {reason}")
    return "\n\n".join(lines)


def trajectories_context(episodes: list[Episode], budget_tokens: int, count_tokens) -> str:
    """Raw games as a teacher's context (the paper's baseline for extracted experience): the newest
    whole games whose text fits in `budget_tokens`, oldest first; if even the newest does not fit,
    its end (where the result is) cut to the budget."""
    texts = [f"Game {i + 1}:\n{trajectory_text(e)}" for i, e in enumerate(episodes)]
    kept: list[str] = []
    for text in reversed(texts):
        if count_tokens("\n\n".join([text] + kept)) > budget_tokens:
            break
        kept.insert(0, text)
    if kept or not texts:
        return "\n\n".join(kept)
    newest, low, high = texts[-1], 0, len(texts[-1])
    while low < high:  # the shortest cut from the front that fits
        middle = (low + high) // 2
        if count_tokens(newest[middle:]) > budget_tokens:
            low = middle + 1
        else:
            high = middle
    return newest[low:]


# A worked example from a toy task unrelated to the games (so it teaches the format of an answer,
# not a game's rules): ExtractionConfig.worked_example puts it before the task.
TOY_GAME = (
    "Turn 1\nEnvironment:\nA vending machine with buttons A1 and B2. Credit: 0 coins.\nYour output:\n"
    "I press [B2].\nMove taken: [B2]\n\nTurn 2\nEnvironment:\nNothing happens. Credit: 0 coins.\nYour output:\n"
    "I insert a coin and press [B2].\nMove taken: [B2]\n\nFinal result: SUCCESS. A drink came out."
)
TOY_REASONING = "Pressing a button did nothing with no credit; after a coin went in, the same button worked."
TOY_LESSONS = ("Put a coin in before you press a button: with no credit a button does nothing.",
               "When an action does nothing, look for what the machine is missing before trying it again.")


def worked_example(fmt: str) -> str:
    if fmt == "structured":
        answer = TOY_REASONING + "\n" + "\n".join(f"{ITEM_PREFIX} {t}" for t in TOY_LESSONS)
    else:
        answer = "\n".join(TOY_LESSONS)
    return (f"An example from a different game, to show what a good answer looks like:\n\n{TOY_GAME}\n\n"
            f"Example answer:\n{answer}\n\nNow your own game.\n\n")


def extraction_prompt(episode: Episode, previous: str | None, fmt: str = "structured",
                      example: bool = False, reasoning: bool = False) -> list[dict]:
    """The extractor's chat prompt for one trajectory (with `example`, a worked example from a toy
    task comes first; with `reasoning`, free text asks for step-by-step reasoning, then the
    additional experience with no count limit)."""
    if fmt == "structured":
        how = (
            "First reason step by step about what happened and why. Then write 1-2 new items, "
            f'each on its own line in exactly this format:\n{ITEM_PREFIX} <one general lesson>'
        )
    elif reasoning:  # the whole answer, reasoning included, becomes the experience (the reference's v3)
        how = ("Compare what won and what lost, guess the rules and the strategies that win, and "
               "reason step by step. Then write your additional experience: possible rules, "
               "instructions or winning strategies, as many as you find useful.")
    else:  # the whole answer becomes the item, so no reasoning is asked for
        how = "Write 1-2 short new lessons as plain text."
    previous_block = previous.strip() if previous and previous.strip() else "(none yet)"
    content = (
        (worked_example(fmt) if example else "")
        + "You played a grid game as an agent. Below is the whole game: what the environment showed "
        "you each turn and what you answered, and how the game ended.\n\n"
        f"{trajectory_text(episode)}\n\n"
        f"Experience you wrote down before:\n{previous_block}\n\n"
        "Task: work out the rules of the game and what makes a game win or lose, and write down "
        "general lessons that will help in future games. Keep them general, not tied to this map. "
        f"Do not repeat the experience above. {how}"
    )
    return [{"role": "user", "content": content}]


def parse_extraction(text: str, fmt: str = "structured", max_items: int = 0) -> list[str]:
    """New item texts from the extractor's answer (thinking removed).

    Structured: every line holding the item marker counts, a line with several markers gives
    several items; `max_items` > 0 caps them (0: no cap, as the reference). Unstructured: the
    whole answer is one item. Returns [] for an answer with nothing usable (counted by the caller).
    """
    answer = strip_thinking(text)
    if fmt == "structured":
        items = parse_items(answer)
        return items[:max_items] if max_items > 0 else items
    answer = answer.strip()
    return [answer] if answer else []


def truncate_items(items: list[ExperienceItem], budget_tokens: int, count_tokens, fmt: str = "structured") -> list[ExperienceItem]:
    """Keep the most recent whole items whose text fits in `budget_tokens`."""
    kept: list[ExperienceItem] = []
    for item in reversed(items):
        candidate = [item] + kept
        probe = ExperienceState(0, 0, items=candidate).text(fmt)
        if count_tokens(probe) > budget_tokens:
            break
        kept = candidate
    return kept
