"""Work on one run: its writer lock, settings, stages, experience edits and a person's games."""

from __future__ import annotations

from pathlib import Path

from ..config import LoopConfig
from ..errors import OelError
from ..events import EventSink, StopFlag, ignore
from ..games import Game
from ..play.rollout import episode_from_game
from ..play.trajectory import Episode
from ..round.names import StageName
from ..run.artifacts import RunArtifacts
from ..run.experience_index import FILE_RUN, PERSON_RUN
from ..run.store import RunStore
from .views import ItemView, RunReport, Status, list_items, one_line
from .views import quiet as _quiet


class RunSession:
    """One run opened for work (holds its writer lock until closed); `engine` is the Engine that
    opened it (its saves folder and loaded model). Every write to a run goes through one: an OEL
    run's (`Engine.session`) or a games-only run's (`Engine.games_session`, config None: `oel
    play` and `oel eval --run`, which only save games and an evaluation summary)."""

    def __init__(self, engine, store: RunStore, config: LoopConfig | None, status: Status = _quiet):
        self.engine, self.store, self.config, self.status = engine, store, config, status
        self.art = RunArtifacts(store)

    def __enter__(self) -> "RunSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    @property
    def current_round(self) -> int:
        return self.art.rounds_done()

    # -- settings ---------------------------------------------------------------------------------

    def apply_settings(self, assignments: list[str]) -> None:
        """`section.field=value` assignments (`oel loop --set`) onto this run: extraction and
        consolidation settings until that stage of the current round has started, `rounds` at
        any time; anything else a run keeps from its start."""
        from ..overrides import apply_overrides

        if assignments:
            self._save_settings(apply_overrides(self.config, assignments), list(assignments))

    def _save_settings(self, config: LoopConfig, assignments: list[str]) -> None:
        from dataclasses import asdict

        from ..run.loop_config import save_config

        config = config.validate()
        r = self.current_round
        for section in ("game", "model", "deploy", "evaluation", "seed", "preset"):
            if getattr(config, section) != getattr(self.config, section):
                raise OelError(f"run {self.store.name} keeps the {section} settings it was started with; "
                               "use a new run to change them")
        started = {"extraction": lambda: bool(self.art.experience.snapshot_records(r)),
                   "consolidation": lambda: self.art.checkpoint_file(r).exists() or self.art.stage_done(r, StageName.CONSOLIDATE)}
        for section, has_started in started.items():
            if asdict(getattr(config, section)) != asdict(getattr(self.config, section)) and has_started():
                raise OelError(f"{section} of round {r} has started with other settings; use a new run to change them")
        if config == self.config:
            return
        save_config(self.store, config)
        self.note_settings([f"round {r}: {a}" for a in assignments])
        self.config = config

    def note_settings(self, lines: list[str]) -> None:
        """Keep, in the run's index, how its settings came to differ from its preset."""
        if lines:
            self.store.set_meta(overrides=self.store.meta().get("overrides", []) + list(lines))

    # -- stages -----------------------------------------------------------------------------------

    def runner(self, on_event: EventSink = ignore, stop: StopFlag | None = None):
        from ..round import RoundRunner
        from ..run.live import live_writer

        self.engine.release_agents()  # stages merge rounds into the plain weights, never into Play's stack
        lm = self.engine.ensure_model(self.config.model, self.status)
        on_event = live_writer(self.store.path, on_event)  # where the run is, for readers elsewhere
        return RoundRunner(self.store, self.config, lm, on_event=on_event, stop=stop, status=self.status)

    def run(self, stage: str, on_event: EventSink = ignore, stop: StopFlag | None = None) -> None:
        """Run `stage` of the current round ("round", StageName.EXTRACT, StageName.COLLECT, StageName.CONSOLIDATE,
        "evaluate", or a stage name such as StageName.EVAL_IN_CONTEXT); earlier stages not done run first."""
        runner = self.runner(on_event, stop)
        r = self.current_round
        if stage == "round":
            runner.run_round(r)
        elif stage == "evaluate":
            done = self.art.stages_done(r)
            target = (StageName.EVAL_CONSOLIDATED if StageName.CONSOLIDATE in done else StageName.EVAL_IN_CONTEXT if StageName.EXTRACT in done
                      else StageName.EVAL_BASE if r == 0 else StageName.EVAL_IN_CONTEXT)
            runner.run_until(target, r)
        else:
            runner.run_until(stage, r)

    def run_rounds(self, rounds: int, on_event: EventSink = ignore, stop: StopFlag | None = None) -> None:
        self.runner(on_event, stop).run(rounds)

    # -- experience and a person's games ------------------------------------------------------

    def experience(self) -> list[ItemView]:
        return list_items(self.art)

    def edit_item(self, item: ItemView, enabled: bool, text: str) -> None:
        """Disable or rewrite one item in every snapshot of its run that still holds it; saved as
        edit records, which override the snapshots they edit."""
        if item.run == FILE_RUN:
            raise OelError(f"this item comes from the experience file {item.episode_id}: edit that file, not the run")
        if text != item.text:  # a person's rewrite is one line; an item disabled as it is keeps its text
            text = one_line(text)
        art = self.art
        records = art.experience.snapshot_records(item.round)
        steps = sorted(n for (r, k, n) in records if k == item.run)
        fmt = records[(item.round, item.run, steps[-1])].get("format", "structured") if steps else "structured"
        for n in steps:
            state = art.experience.load_state(item.round, item.run, n, records)
            changed = False
            for it in state.items:
                if it.text == item.text and it.step == item.step and it.episode_id == item.episode_id:
                    it.enabled, it.edited = enabled, it.edited or text != it.text
                    it.text = text
                    changed = True
            if changed:
                art.experience.save_edit(state, fmt)

    def add_item(self, text: str) -> ItemView:
        """A lesson a person writes: an item with source "human" in the current round, given to
        the round's teacher after the extracted (or file) experience."""
        text = one_line(text)
        r = self.current_round
        if self.art.data_file(r).exists():
            raise OelError(f"round {r}'s consolidation has started with the experience it had; "
                           "add your lesson after the round ends (it then goes to the next round)")
        item = self.art.experience.add_person_item(r, text)
        return ItemView(r, PERSON_RUN, item.step, text, "", "human", new_this_round=True)

    def use_experience_file(self, path: str | Path) -> str:
        """Make an experience file the teacher's context from the current round on, instead of
        extracted experience (a round whose extraction has not started skips it). Returns the
        normalised text. The same file again (a resumed command) is accepted; another is not."""
        from ..experience.items import format_items, parse_items, read_experience

        items = parse_items(read_experience(path))
        if not items:
            raise OelError(f"experience file '{path}' has no '- EXPERIENCE ITEM: ...' lines")
        text = format_items(items)
        current = self.art.experience.external()
        if current is not None:
            if current[0] == text:
                return text
            raise OelError(f"run {self.store.name} already uses the experience file {current[1]['source']}; "
                           "start a new run for another one")
        r = self.current_round
        if self.art.data_file(r).exists():
            raise OelError(f"round {r}'s consolidation has started with other experience; use a new run")
        self.art.experience.set_external(text, str(path), r, len(items))
        self.status(f"From round {r} on, the teacher reads {path} ({len(items)} items) instead of extracted experience")
        return text

    def add_games(self, episodes: list[Episode]) -> None:
        self.store.add_episodes(episodes)

    def add_metrics(self, record) -> None:
        self.store.add_metrics(record)

    def add_human_game(self, game: Game) -> Episode:
        """A person's finished game, saved in the run's current round (its extraction reads it)."""
        episode = episode_from_game(game)
        episode.round = self.current_round
        self.store.add_episodes([episode])
        return episode

    def report(self) -> RunReport:
        return RunReport(self.store.name, self.config, self.store.metrics(), self.current_round)

    def consolidation_steps(self, round_index: int) -> list:
        return self.report().consolidation_steps(round_index)

    def extracted(self, round_index: int, step: int) -> tuple[list, list[Path]]:
        """Each extraction run's experience after `step` of round `round_index`, and its file."""
        runs = range(self.config.extraction.runs)
        index = self.art.experience
        return ([index.load_state(round_index, k, step) for k in runs],
                [index.snapshot_file(round_index, k, step) for k in runs])

    def teacher_source(self, round_index: int) -> str:
        """Where round `round_index`'s teacher context comes from (extracted, a file, lessons...)."""
        from ..round.teacher import teacher_source

        return teacher_source(self.art.experience, self.config, round_index)
