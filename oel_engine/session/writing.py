"""Work on a run that writes: sessions and stages, teaching rounds, a person's items and games, forks and merges, the follower ranks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import GameConfig, LoopConfig
from ..errors import OelError
from ..events import EventSink, StopFlag
from ..games import Game
from ..play.trajectory import Episode
from ..run.artifacts import RunArtifacts
from ..run.loop_config import open_loop_run
from ..run.store import RunStore
from .run_session import RunSession
from .views import ItemView, Status
from .views import quiet as _quiet


class RunWriting:
    def session(self, name: str, config: LoopConfig | None = None, *, status: Status = _quiet,
                holder: str = "") -> RunSession:
        store, cfg = open_loop_run(self.saves, name, config, holder=holder or f"work on run {name}")
        return RunSession(self, store, cfg, status)

    def games_session(self, name: str, game: GameConfig, model: str, holder: str) -> RunSession:
        """A run that only keeps games (made if new), opened for writing like any other."""
        from ..run.store import RunStore

        store = RunStore(self.saves, name, holder=holder)
        store.set_meta(game=game.name, game_config=game.__dict__, model=model)
        return RunSession(self, store, None)

    def run_stage(self, name: str, stage: str, on_event: EventSink, stop: StopFlag, status: Status = _quiet) -> None:
        with self.session(name, status=status, holder=f"its {stage} job") as s:
            s.run(stage, on_event, stop)

    def follow_consolidation(self, name: str, assignments: list[str], status: Status = _quiet) -> int:
        """A follower rank of `accelerate launch`: train in lockstep with rank 0, write nothing.
        `assignments` are the command's `consolidation.*` settings (the same ones rank 0 applies)."""
        from ..round.follower import follow_consolidation

        return follow_consolidation(self.saves, name, assignments, status=status)

    @staticmethod
    def follower_rank() -> int:
        """This process's rank under `accelerate launch` (0 alone or on the main process)."""
        from ..consolidation.distributed import rank

        return rank()

    def prepare_teaching(self, name: str) -> tuple[str, str]:
        """The run a teaching round (the teach preset: no extraction, the run's lessons as the
        teacher's context) goes to, and a line saying what was done to get it. A run that
        teaches its lessons already is itself; one that has not begun any stage is switched to
        the teach preset (same game, model and seed); any other gets a new run, NAME-teach, with
        the same game, model and seed and its enabled lessons copied."""
        from ..presets import build
        from ..run.loop_config import save_config

        store, config = open_loop_run(self.saves, name, None, holder="preparing a teaching round")
        try:
            art = RunArtifacts(store)
            lessons = [i.text for i in art.experience.lessons(art.rounds_done())]
            if config.consolidation.teacher_context == "lessons" and (lessons or art.experience.external() is not None):
                return name, ""
            if not lessons:
                raise OelError("write a lesson first (n): a teaching round consolidates the run's lessons")
            taught = replace(build("teach", config.game, config.model, config.rounds), seed=config.seed)
            started = (store.db.table("state").all() or art.data_file(0).exists()
                       or any(k >= 0 for (_, k, _) in art.experience.snapshot_records()))
            if not started:
                save_config(store, taught)
                return name, f"Run {name} now uses the teach preset: the teacher reads your lessons, no extraction."
        finally:
            store.close()
        target = next(n for n in (f"{name}-teach{'' if i == 0 else f'-{i + 1}'}" for i in range(1000))
                      if not (self.saves / n).exists())
        with self.session(target, taught, holder="copying your lessons") as s:
            for text in lessons:
                s.add_item(text)
        return target, (f"Run {name} has rounds of its own, so your {len(lessons)} lesson(s) went to a new run, "
                        f"{target} (teach preset), which is now the current run.")

    def merge(self, name: str, out_dir: Path, last_round: int | None = None, status: Status = _quiet) -> Path:
        from ..run.merge import merge_run

        store, config = open_loop_run(self.saves, name, None, readonly=True)
        try:
            return merge_run(store, config, out_dir, last_round, status=status)
        finally:
            store.close()

    def fork(self, source: str, name: str, round_index: int, assignments: list[str]) -> tuple[dict, list[str]]:
        """A new run `name` copying `source` with `consolidation.*` settings changed (an
        ablation), and optionally `evaluation.ood_samples` (the instruction probe's seeds in the
        fork's own evaluations). Returns the changed consolidation settings and the stages of
        `round_index` it redoes."""
        from dataclasses import asdict

        from ..overrides import apply_overrides
        from ..round.fork import fork_run
        from ..run.loop_config import read_config

        probe = "evaluation.ood_samples="
        if any(not a.startswith(("consolidation.", probe)) for a in assignments):
            raise OelError("a fork changes only consolidation settings (consolidation.FIELD=VALUE) "
                           "and the instruction probe's seeds (evaluation.ood_samples=N)")
        with RunStore(self.saves, source, readonly=True) as store:
            config = read_config(store)
        if config is None:
            raise OelError(f"run '{source}' was not started by `oel loop`; only an OEL run can be forked")
        new = apply_overrides(config, assignments)
        changed = asdict(new.consolidation)
        settings = {k: v for k, v in changed.items() if v != getattr(config.consolidation, k)}
        ood = new.evaluation.ood_samples if any(a.startswith(probe) for a in assignments) else None
        fork_run(self.saves, source, name, round_index, ood_samples=ood, **settings)
        with RunStore(self.saves, name, readonly=True) as store:
            return settings, list(store.meta()["forked_from"]["redone"])

    def set_item(self, name: str, item: ItemView, enabled: bool, text: str) -> None:
        with self.session(name, holder="an experience edit") as s:
            s.edit_item(item, enabled, text)

    def add_item(self, name: str, text: str) -> ItemView:
        with self.session(name, holder="adding your lesson") as s:
            return s.add_item(text)

    def save_human_game(self, name: str | None, game: Game, new_config: LoopConfig | None = None) -> tuple[str, Episode]:
        """Save a person's finished game in run `name`; with no run, in a new one made from
        `new_config` (named play-<time>). Returns the run's name and the saved episode."""
        if not name:
            from ..run.store import new_run_name

            if new_config is None:
                raise OelError("no run to save the game in")
            name = new_run_name("play")
        with self.session(name, new_config if not (self.saves / name).is_dir() else None,
                          holder="saving your game") as s:
            return name, s.add_human_game(game)
