"""Turn prompts: a fresh single-turn prompt per move, holding the whole environment history.

Student (deploy) and teacher prompts differ ONLY by the experience block, which sits between the
introduction and the situation, so the response tokens line up under both.
"""

from __future__ import annotations

from ..games.base import Message

INTRO = "You are an agent playing a grid game."
SITUATION_MARKER = "Current situation:\n"
QUESTION = "What action do you take? Wrap your action in square brackets."
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
        f"{SITUATION_MARKER}{situation_text(messages)}\n\n"
        f"{QUESTION}"
    )


def turn_messages(player_description: str, messages: list[Message], experience: str | None = None) -> list[dict]:
    """Chat messages for one turn (a single user message)."""
    return [{"role": "user", "content": turn_prompt_text(player_description, messages, experience)}]



def insert_experience(messages: list[dict], experience: str | None) -> list[dict]:
    """The teacher's view of a student prompt: the same messages with the experience block
    inserted at the one place `turn_prompt_text` puts it (nothing else changes)."""
    block = experience_block(experience)
    if not block:
        return messages
    out = [dict(m) for m in messages]
    content = out[-1]["content"]
    if SITUATION_MARKER not in content:
        raise ValueError("not a turn prompt: no 'Current situation:' section")
    out[-1]["content"] = content.replace(SITUATION_MARKER, block + SITUATION_MARKER, 1)
    return out


def remove_experience(messages: list[dict], experience: str | None) -> list[dict]:
    """The student's view of a teacher prompt: `insert_experience` undone (the off-policy
    baseline's games are played with the experience; the student learns from them without it)."""
    block = experience_block(experience)
    if not block:
        return messages
    out = [dict(m) for m in messages]
    content = out[-1]["content"]
    if block + SITUATION_MARKER not in content:
        raise ValueError("the prompt does not hold this experience block")
    out[-1]["content"] = content.replace(block + SITUATION_MARKER, SITUATION_MARKER, 1)
    return out
