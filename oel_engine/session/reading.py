"""Reading runs without the writer lock: the listing, a run's report, experience and games, what its teacher reads, and reports for people."""

from __future__ import annotations

from pathlib import Path

from ..config import LoopConfig
from ..errors import OelError
from ..play.trajectory import Episode
from ..run.artifacts import RunArtifacts
from ..run.listing import RunSummary, list_runs
from ..run.loop_config import open_loop_run
from ..run.store import RunStore
from .views import EpisodeRow, ItemView, RunReport, list_items


class RunReading:
    def runs(self) -> list[RunSummary]:
        return list_runs(self.saves)

    def run_settings(self, name: str) -> tuple[LoopConfig, list[str]]:
        """An existing OEL run's configuration and the `section.field=value` changes it recorded."""
        store, config = open_loop_run(self.saves, name, None, readonly=True)
        try:
            return config, list(store.meta().get("overrides", []))
        finally:
            store.close()

    def open_run(self, name: str, config: LoopConfig | None = None) -> RunReport:
        """A run's report; with `config`, a run that does not exist yet is created with it."""
        if config is not None and not (self.saves / name).is_dir():
            store, _ = open_loop_run(self.saves, name, config, holder="creating the run")
            store.close()
        return self.report(name)

    def report(self, name: str) -> RunReport:
        store, config = open_loop_run(self.saves, name, None, readonly=True)
        try:
            return RunReport(name, config, store.metrics(), RunArtifacts(store).rounds_done())
        finally:
            store.close()

    def experience(self, name: str) -> list[ItemView]:
        with RunStore(self.saves, name, readonly=True) as store:
            return list_items(RunArtifacts(store))

    def episodes(self, name: str) -> list[EpisodeRow]:
        """The run's saved games, oldest first."""
        with RunStore(self.saves, name, readonly=True) as store:
            rows = store.episode_rows()
        return [EpisodeRow(r["episode_id"], int(r.get("round") or 0), str(r.get("stage", "")), str(r.get("policy", "")),
                           int(r.get("seed") or 0), bool(r.get("success")), int(r.get("turns") or 0)) for r in rows]

    def episode(self, name: str, episode_id: str) -> Episode:
        with RunStore(self.saves, name, readonly=True) as store:
            found = store.episodes(where=lambda row: row["episode_id"] == episode_id)
        if not found:
            raise OelError(f"run {name} has no game {episode_id}")
        return found[0]

    def teacher_context(self, name: str) -> str | None:
        """What a teacher of run `name`'s current round would read: its experience file or first
        extraction run's newest snapshot, plus the items a person wrote (None if there is none)."""
        from ..round.teacher import teacher_contexts
        from ..run.loop_config import read_config

        with RunStore(self.saves, name, readonly=True) as store:
            art, config = RunArtifacts(store), read_config(store)
            if config is None:  # games saved from Play: only the items a person wrote
                return art.experience.current_teacher_context(art.rounds_done())
            texts = teacher_contexts(art.experience, config, art.rounds_done(), so_far=True).texts
            return texts[0] if texts else None

    def write_report(self, name: str, out_dir: Path | None = None) -> Path:
        from ..report.markdown import write_report

        return write_report(self.saves / name, out_dir)

    def write_comparison(self, names: list[str], out_dir: Path | None = None) -> Path:
        from ..report.markdown import write_comparison

        return write_comparison([self.saves / n for n in names], out_dir or self.saves / f".compare-{names[0]}")
