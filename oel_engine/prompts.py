"""Turn prompts: a fresh single-turn prompt per move, holding the whole environment history.

Student (deploy) and teacher prompts differ ONLY by the experience block, which sits between the
introduction and the situation, so the response tokens line up under both.
"""

from __future__ import annotations

from .games.base import Message

INTRO = "You are an agent playing a grid game."
QUESTION = "What action do you take? Wrap your action in square brackets, for example [up]."
EXPERIENCE_HEADER = (
    "Base your decisions on the experience below, learned from earlier games. "
    "It may be incomplete or wrong.\n"
    "Experience:\n"
)


def situation_text(messages: list[Message]) -> str:
    """The environment's messages so far, minus its rules preamble; the player's own moves as sent."""
    parts = []
    for m in messages:
        if m.kind == "rules":
            continue
        parts.append(f"You played: {m.text}" if m.sender == "player" else m.text.strip())
    return "\n\n".join(parts)


def experience_block(experience: str | None) -> str:
    return f"{EXPERIENCE_HEADER}{experience.strip()}\n\n" if experience and experience.strip() else ""


def turn_prompt_text(player_description: str, messages: list[Message], experience: str | None = None) -> str:
    return (
        f"{INTRO} {player_description}\n\n"
        f"{experience_block(experience)}"
        f"Current situation:\n{situation_text(messages)}\n\n"
        f"{QUESTION}"
    )


def turn_messages(player_description: str, messages: list[Message], experience: str | None = None) -> list[dict]:
    """Chat messages for one turn (a single user message)."""
    return [{"role": "user", "content": turn_prompt_text(player_description, messages, experience)}]
