"""What the teacher reads: the one read of a round's teacher contexts and where they come from.

Used by every place that shows or uses them: the consolidation data and the off-policy teacher's
games (collect.py), the in-context evaluation, `oel consolidate`'s summary, and the Play screen's
teacher (`so_far`: what a teacher would read if the round's extraction stopped now).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import LoopConfig
from ..errors import OelError
from ..run.experience_index import ExperienceIndex


@dataclass(frozen=True)
class TeacherContexts:
    texts: list[str]  # one per extraction run K; one for an experience file or lessons
    source: str  # for provenance records and people: "extracted", "file X + items a person wrote"...


def teacher_source(index: ExperienceIndex, config: LoopConfig, r: int) -> str:
    """Where round `r`'s teacher contexts come from, without reading them."""
    kind = config.consolidation.teacher_context
    if kind == "lessons":
        external = index.external(r)
        return f"file {external[1]['source']} + lessons a person wrote" if external else "lessons a person wrote"
    if kind == "trajectories":
        return "raw trajectories"
    return index.experience_source(r)


def teacher_contexts(index: ExperienceIndex, config: LoopConfig, r: int, *, so_far: bool = False,
                     raw_trajectories: Callable[[int], str] | None = None) -> TeacherContexts:
    """Round `r`'s teacher contexts by the run's `consolidation.teacher_context`:
    - experience: the K extracted experiences at the consolidation step (as a person edited
      them), or the experience file when one applies; then the items a person wrote;
    - lessons: the experience file (if it applies), then every enabled lesson so far;
    - trajectories: extraction run k's games as text (`raw_trajectories(k)`).
    With `so_far`, the newest snapshot of extraction run 0 stands for the experience (nothing
    read yet gives no texts), and a trajectories run shows its extracted experience."""
    kind = config.consolidation.teacher_context
    x = config.extraction
    source = teacher_source(index, config, r)
    if kind == "lessons":
        text = index.lessons_context(r)
        if not text and not so_far:
            raise OelError(f"round {r} has no lessons to teach: write one on the Experience screen (n) "
                           "or give a file with --experience")
        return TeacherContexts([text] if text else [], source)
    if kind == "trajectories" and not so_far:
        if raw_trajectories is None:
            raise OelError("raw trajectories as the teacher's context need the round's model (its tokenizer)")
        return TeacherContexts([raw_trajectories(k) for k in range(x.runs)], source)
    if so_far:
        text = index.current_teacher_context(r)
        return TeacherContexts([text] if text else [], source)
    return TeacherContexts(index.experiences_for_consolidation(r, x.runs, x.consolidation_step, x.format), source)
