"""A run's experience: the extracted snapshots, a person's items and edits, an experience file.

saves/<run>/
  experience/round-R/run-K/step-NNN.txt   experience after step N of extraction run K (item format)
  experience/round-R/yours.txt            items a person wrote for round R (run -1 in the index)
  experience/index.jsonl                  one record per snapshot or edit: round, run, step, file,
                                          episode, items with provenance (the latest record wins)
  experience/external.txt, external.json  an experience file given with --experience: the teacher's
                                          context from round `from_round` on, instead of extraction
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import OelError
from ..experience.extraction import ExperienceItem, ExperienceState, join_texts
from ..fileio import append_jsonl, atomic_write_text, read_jsonl
from .store import RunStore

# Items a person writes for a round live in the experience index as one more "run" of that round.
PERSON_RUN, PERSON_STEP = -1, -1
# Items from an experience file are listed under this run number (read-only in the app).
FILE_RUN = -2


class ExperienceIndex:
    def __init__(self, store: RunStore):
        self.store = store
        self.root = store.path

    @property
    def experience_index(self) -> Path:
        return self.root / "experience" / "index.jsonl"

    def snapshot_file(self, round_index: int, run: int, step: int) -> Path:
        if run == PERSON_RUN:
            return self.root / "experience" / f"round-{round_index}" / "yours.txt"
        return self.root / "experience" / f"round-{round_index}" / f"run-{run}" / f"step-{step:03d}.txt"

    def save_snapshots(self, states: list[ExperienceState], fmt: str, episodes: dict[int, str], kind: str = "extract",
                       answers: dict[int, str] | None = None) -> None:
        """Write each run's experience file, then one index record per run (the commit point)."""
        records = []
        for state in states:
            path = self.snapshot_file(state.round, state.run, state.step)
            atomic_write_text(path, state.text(fmt) + "\n")
            records.append({
                "round": state.round, "run": state.run, "step": state.step, "kind": kind, "format": fmt,
                "file": str(path.relative_to(self.root)), "episode_id": episodes.get(state.run),
                "items": [i.to_dict() for i in state.items],
                "answer": (answers or {}).get(state.run),  # the extractor's raw answer, for inspection
            })
        append_jsonl(self.experience_index, records)

    def snapshot_records(self, round_index: int | None = None) -> dict[tuple[int, int, int], dict]:
        """The latest record per (round, run, step): an edit overrides the extracted snapshot."""
        records, bad = read_jsonl(self.experience_index)
        latest = {}
        for r in records:
            try:
                key = (int(r["round"]), int(r["run"]), int(r["step"]))
            except (KeyError, TypeError, ValueError):
                continue
            if round_index is None or key[0] == round_index:
                latest[key] = r
        return latest

    def load_state(self, round_index: int, run: int, step: int, records: dict | None = None) -> ExperienceState:
        """One run's experience after `step`; pass `records` (from snapshot_records) to skip a reread."""
        if records is None:
            records = self.snapshot_records(round_index)
        record = records.get((round_index, run, step))
        if record is None:
            return ExperienceState(round_index, run, step)
        items = [ExperienceItem.from_dict(i) for i in record.get("items", [])]
        return ExperienceState(round_index, run, step, items)

    @staticmethod
    def newest_step(records: dict, round_index: int, run: int) -> int | None:
        """The newest snapshot step of extraction run `run` in `records` (from snapshot_records)."""
        return max((n for (r, k, n) in records if r == round_index and k == run), default=None)

    def with_person_items(self, round_index: int, texts: list[str], fmt: str, records: dict) -> list[str]:
        """Each teacher context followed by the items a person wrote for the round."""
        yours = self.load_state(round_index, PERSON_RUN, PERSON_STEP, records).text(fmt)
        return [join_texts(t, yours, fmt) for t in texts]

    def current_teacher_context(self, round_index: int) -> str | None:
        """What a teacher of round R would read now: the experience file, or extraction run 0's
        newest snapshot, then a person's items (as items); None if there is nothing yet."""
        records = self.snapshot_records(round_index)
        external = self.external(round_index)
        base = external[0] if external is not None else ""
        newest = self.newest_step(records, round_index, 0)
        if external is None and newest is not None:
            fmt = records[(round_index, 0, newest)].get("format", "structured")
            base = self.load_state(round_index, 0, newest, records).text(fmt)
        return self.with_person_items(round_index, [base], "structured", records)[0] or None

    def experiences_for_consolidation(self, round_index: int, runs: int, step: int, fmt: str) -> list[str]:
        """The teacher's contexts of round R: the K extracted experiences at the fixed step (as a
        person edited them), or the experience file when the run has one for this round; either
        way followed by the items a person wrote for the round."""
        records = self.snapshot_records(round_index)
        external = self.external(round_index)
        if external is not None:
            texts = [external[0]]
        else:
            texts = []
            for run in range(runs):
                if (round_index, run, step) not in records:
                    raise OelError(f"round {round_index} has no experience for run {run} at step {step}: run extraction first")
                texts.append(self.load_state(round_index, run, step, records).text(fmt))
        return self.with_person_items(round_index, texts, fmt, records)

    def lessons(self, round_index: int) -> list[ExperienceItem]:
        """Every enabled item a person wrote in round `round_index` or before, oldest first."""
        records = self.snapshot_records()
        return [item for r in range(round_index + 1)
                for item in self.load_state(r, PERSON_RUN, PERSON_STEP, records).items if item.enabled]

    def lessons_context(self, round_index: int) -> str:
        """A teaching round's teacher context: the experience file (if it applies), then the lessons."""
        external = self.external(round_index)
        lessons = ExperienceState(round_index, PERSON_RUN, PERSON_STEP, self.lessons(round_index)).text("structured")
        return join_texts(external[0] if external is not None else "", lessons, "structured")

    def experience_source(self, round_index: int) -> str:
        """Where round R's teacher context comes from, for provenance records."""
        external = self.external(round_index)
        source = f"file {external[1]['source']}" if external else "extracted"
        if self.load_state(round_index, PERSON_RUN, PERSON_STEP).items:
            source += " + items a person wrote"
        return source

    def add_person_item(self, round_index: int, text: str) -> ExperienceItem:
        state = self.load_state(round_index, PERSON_RUN, PERSON_STEP)
        item = ExperienceItem(text, round_index, PERSON_RUN, PERSON_STEP, "", source="human")
        state.items.append(item)
        self.save_snapshots([state], "structured", {}, kind="person")
        return item

    # -- an experience file as the teacher's context -----------------------------------------------

    @property
    def external_file(self) -> Path:
        return self.root / "experience" / "external.txt"

    def external(self, round_index: int | None = None) -> tuple[str, dict] | None:
        """(text, provenance) of the run's experience file, if it applies to `round_index`."""
        meta_file = self.external_file.with_suffix(".json")
        if not meta_file.is_file() or not self.external_file.is_file():
            return None
        meta = json.loads(meta_file.read_text())
        if round_index is not None and round_index < meta.get("from_round", 0):
            return None
        return self.external_file.read_text().strip(), meta

    def set_external(self, text: str, source: str, from_round: int, items: int) -> None:
        """Write the text first, then the provenance (the commit point)."""
        atomic_write_text(self.external_file, text.strip() + "\n")
        meta = {"source": source, "from_round": from_round, "items": items}
        atomic_write_text(self.external_file.with_suffix(".json"), json.dumps(meta) + "\n")

    def save_edit(self, state: ExperienceState, fmt: str) -> None:
        """A person's edit (items disabled or rewritten) of one snapshot; it overrides the original."""
        self.save_snapshots([state], fmt, {}, kind="edit")
