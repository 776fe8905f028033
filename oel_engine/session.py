"""The engine's one door, used the same way by the `oel` CLI and the `oel-tui` app.

`Engine` holds the saves folder and the loaded model (the app keeps one model across stages and
runs; the model itself records which adapters are merged into it). `Engine.session(name)` opens
a run for work: a `RunSession` owns the run's store (and its writer lock) and runs stages, edits
experience, and records a person's games. Reading a run (listing, reports, experience) never
takes the writer lock. Heavy imports (torch, transformers) happen inside methods, so importing
this module stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .play.agents import AgentChoice, choices_for
from .run.artifacts import RunArtifacts
from .run.experience_index import FILE_RUN, PERSON_RUN
from .config import GameConfig, LoopConfig, ModelConfig, SamplingConfig
from .errors import OelError
from .events import EventSink, StopFlag, ignore
from .games import Game, make_game
from .metrics import MetricsLog
from .play.policies import RandomPolicy, TurnRequest
from .play.prompts import insert_experience, turn_messages
from .play.rollout import episode_from_game
from .run.listing import RunSummary, list_runs
from .run.loop_config import open_loop_run
from .run.store import RunStore
from .play.trajectory import Episode
from .round.names import StageName

Status = Callable[[str], None]
STAGE_REQUESTS = ("round", StageName.EXTRACT, StageName.COLLECT, StageName.CONSOLIDATE, "evaluate")


@dataclass
class AgentMove:
    response: str
    response_tokens: int = 0


@dataclass
class ItemView:
    """One experience item with its provenance, as the Experience screen lists it."""

    round: int
    run: int
    step: int
    text: str
    episode_id: str
    source: str
    enabled: bool = True
    edited: bool = False
    new_this_round: bool = False


@dataclass
class EpisodeRow:
    """One saved game as the Replay screen lists it (read from the id index, no trajectories)."""

    episode_id: str
    round: int
    stage: str
    policy: str
    seed: int
    success: bool
    turns: int

    @property
    def outcome(self) -> str:
        return "won" if self.success else "lost"


@dataclass
class RunReport:
    """A run as read (no lock taken): its settings, rounds done and typed metrics."""

    name: str
    config: LoopConfig | None
    metrics: MetricsLog
    rounds_done: int = 0

    def summary(self) -> dict:
        """Per round: held-out results, the in-context curve, seconds per stage, peak memory."""
        from .report.summaries import run_summary

        return run_summary(self.metrics)

    def eval_rows(self) -> list:
        """The held-out evaluations in round order (typed EvalSummary records)."""
        from .report.summaries import eval_summaries

        return eval_summaries(self.metrics)

    def consolidation_steps(self, round_index: int) -> list:
        from .report.summaries import consolidation_steps

        return consolidation_steps(self.metrics, round_index)


def _quiet(_: str) -> None:
    pass


class Engine:
    def __init__(self, saves: Path | str | None = None):
        from .run.store import saves_root

        self.saves = saves_root(saves)  # given, else $OEL_SAVES, else ./saves
        self.lm = None
        self._random = RandomPolicy(0)
        self._adapters = None  # a run's round adapters on self.lm while Play uses one (RoundAdapters)

    # -- runs (reading) -----------------------------------------------------------------------

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

    # -- the model and play ---------------------------------------------------------------------

    def load_model(self, model: ModelConfig, status: Status = _quiet) -> str:
        from .model.loader import load_language_model

        self.lm = load_language_model(model, status=status)
        self._adapters = None
        return self.lm.name

    def ensure_model(self, model: ModelConfig, status: Status = _quiet):
        """The loaded model if it is `model` (same name, device, dtype), else `model` loaded; either
        way with `model`'s thinking switch, so every stage of a run prompts as the run says."""
        current = self.lm.config if self.lm is not None else None
        if current is None or (current.model, current.device, current.dtype) != (model.model, model.device, model.dtype):
            self.load_model(model, status)
        elif current.thinking != model.thinking:
            self.lm.config = replace(current, thinking=model.thinking)
        return self.lm

    def model_name(self) -> str | None:
        return self.lm.name if self.lm is not None else None

    def new_game(self, game: GameConfig, seed: int) -> Game:
        g = make_game(game)
        g.reset(seed)
        return g

    def agent_choices(self, run: str | None) -> list[AgentChoice]:
        """Who can play on the Play screen: the base, every finished round's model, and the
        teacher when the run has experience or lessons (read now: a round that has just finished
        elsewhere is listed)."""
        if not run or not (self.saves / run).is_dir():
            return choices_for(None, 0, False)
        with RunStore(self.saves, run, readonly=True) as store:
            adapters = len(RunArtifacts(store).adapters())
        return choices_for(run, adapters, self.teacher_context(run) is not None)

    def use_agent(self, agent: AgentChoice | None, status: Status = _quiet) -> str | None:
        """Make the loaded weights `agent`'s (the run's base model, loaded if another is, with its
        round adapters switched on as the choice says). Returns the experience its prompt reads."""
        if agent is None or agent.run is None:
            return None
        from .model.loader import restore_base
        from .model.round_adapters import RoundAdapters
        from .model.round_weights import apply_rounds, is_full_model

        store, config = open_loop_run(self.saves, agent.run, None, readonly=True)
        try:
            folders, run_key = RunArtifacts(store).adapters(), str(store.path.resolve())
        finally:
            store.close()
        lm = self.ensure_model(config.model, status)
        if self._adapters is None or self._adapters.lm is not lm:
            self._adapters = RoundAdapters(lm)
        if any(is_full_model(f) for f in folders[:agent.rounds]):
            # full fine-tuned rounds hold whole models: that round's weights are loaded instead
            self._adapters.release()
            apply_rounds(lm, run_key, folders, agent.rounds, status)
        else:
            if lm.merged != (None, 0):  # a stage in this process merged rounds in, or an --adapter: the base first
                self._adapters.release()
                status("Reloading the base model...")
                restore_base(lm, status)
            self._adapters.select(run_key, folders, agent.rounds)
        return self.teacher_context(agent.run) if agent.teacher else None

    def release_agents(self) -> None:
        """The plain base weights back in the loaded model (before a stage or a merge uses it)."""
        if self._adapters is not None:
            self._adapters.release()

    def agent_move(self, game: Game, sampling: SamplingConfig, agent: AgentChoice | None = None) -> AgentMove:
        """One move by `agent` (default: the loaded model as it is), or a random legal move
        when no model is loaded and no run's model is asked for."""
        experience = self.use_agent(agent)
        request = TurnRequest(("tui", game.seed), turn_messages(game.player_description, game.messages, experience),
                              game.board(), game.legal_moves(), game.turns)
        if self.lm is None:
            return AgentMove(self._random.act([request])[0].text)
        from .play.policies import ModelPolicy

        reply = ModelPolicy(self.lm, sampling, seed=game.turns).act([request])[0]
        return AgentMove(reply.text, reply.response_tokens)

    def play(self, game: GameConfig, seeds: list[int], policy, run: str | None, *, concurrent: int = 32,
             on_event: EventSink = ignore, stop: StopFlag | None = None) -> tuple[str, list[Episode], bool]:
        """Play one game per seed, saving each finished game to run `run` (a plain run, made if
        new; default a new play-<time> run) as it ends. Returns the run's name, the saved games
        and whether a stop request cut the work short."""
        from .errors import Stopped
        from .play.rollout import play_episodes

        from .run.store import new_run_name

        run = run or new_run_name("play")
        saved: list[Episode] = []
        with RunStore(self.saves, run, holder="playing games") as store:
            store.set_meta(game=game.name, game_config=game.__dict__, model=policy.info.model or policy.info.kind)

            def save(episode: Episode) -> None:
                store.add_episodes([episode])
                saved.append(episode)

            try:
                play_episodes(game, seeds, policy, concurrent=concurrent, on_event=on_event, on_episode=save, stop=stop)
            except Stopped:
                return run, saved, True
        return run, saved, False

    @staticmethod
    def check_game(config: GameConfig) -> None:
        """Refuse sizes the game cannot build, with one clear line."""
        make_game(config)

    @staticmethod
    def episode_metrics(episodes: list[Episode]) -> dict:
        from .evaluation.held_out import episode_metrics

        return episode_metrics(episodes)

    @staticmethod
    def read_experience_file(path: Path) -> str:
        """An experience file's text, checked (one clear line if it holds no items)."""
        from .experience.items import read_experience

        return read_experience(path)

    @staticmethod
    def follower_rank() -> int:
        """This process's rank under `accelerate launch` (0 alone or on the main process)."""
        from .consolidation.distributed import rank

        return rank()

    def evaluate(self, game: GameConfig, policy, episodes: int, samples: int, *, experience: str | None = None,
                 experience_name: str | None = None, run: str | None = None, concurrent: int = 32,
                 on_event: EventSink = ignore, stop: StopFlag | None = None) -> dict:
        """Held-out evaluation (mean and spread over samples); with `run`, its games and summary
        are saved there. A stopped evaluation raises Stopped and records nothing."""
        from .evaluation.held_out import evaluate
        from .metrics import EvalKind, EvalSummary

        result, played = evaluate(game, policy, episodes, samples, experience=experience,
                                  experience_name=experience_name, concurrent=concurrent, on_event=on_event, stop=stop)
        summary = {**result.summary(), **self.probe_held_out(game, episodes, experience, stop), "experience": experience_name}
        if run:
            with RunStore(self.saves, run, holder="saving an evaluation") as store:
                store.set_meta(game=game.name, game_config=game.__dict__, model=summary["policy"])
                store.add_episodes(played)
                extra = {k: summary[k] for k in ("game", "policy", "experience")}
                record = EvalSummary(kind=EvalKind.STANDALONE, **{k: v for k, v in summary.items()
                                                                 if k in EvalSummary.__dataclass_fields__})
                record.extra = extra
                store.add_metrics(record)
            summary["run"] = run
        return summary

    def probe_held_out(self, game: GameConfig, episodes: int, experience: str | None = None,
                       stop: StopFlag | None = None) -> dict:
        """good_move_prob on the held-out start states: the loaded model (with `experience` in its
        prompt), or a random legal-move player without one. The probe samples nothing, so its
        spread over samples is 0; `good_move_prob_se` is the spread over maps."""
        from .evaluation.move_probe import held_out_probe, start_states

        result = held_out_probe(self.lm, start_states(game, episodes), experience, stop)
        return {**result.summary(), "good_move_prob_std": 0.0}

    def move_probs(self, game: Game, experience: str | None = None, agent: AgentChoice | None = None):
        """The probe on the current state of `game` with `agent`'s weights (default: the loaded
        model as it is): (student: the plain prompt, teacher: `experience` inserted, or None; good
        moves). Without a model, the student is a random legal-move player's uniform choice."""
        from .evaluation.move_probe import MoveProbe, state_of, uniform_legal

        self.use_agent(agent)
        state = state_of(game)
        if self.lm is None:
            return uniform_legal([state])[0], None, state.good
        probe = MoveProbe(self.lm, 2)
        prompts = [state.prompt] + ([insert_experience(state.prompt, experience)] if experience else [])
        read = probe.read(prompts)
        return read[0], (read[1] if experience else None), state.good

    def teacher_context(self, name: str) -> str | None:
        """What a teacher of run `name`'s current round would read: its experience file or first
        extraction run's newest snapshot, plus the items a person wrote (None if there is none)."""
        from .run.loop_config import read_config

        from .round.teacher import teacher_contexts

        with RunStore(self.saves, name, readonly=True) as store:
            art, config = RunArtifacts(store), read_config(store)
            if config is None:  # games saved from Play: only the items a person wrote
                return art.experience.current_teacher_context(art.rounds_done())
            texts = teacher_contexts(art.experience, config, art.rounds_done(), so_far=True).texts
            return texts[0] if texts else None

    def prepare_teaching(self, name: str) -> tuple[str, str]:
        """The run a teaching round (the teach preset: no extraction, the run's lessons as the
        teacher's context) goes to, and a line saying what was done to get it. A run that
        teaches its lessons already is itself; one that has not begun any stage is switched to
        the teach preset (same game, model and seed); any other gets a new run, NAME-teach, with
        the same game, model and seed and its enabled lessons copied."""
        from .presets import build
        from .run.loop_config import save_config

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
        from .run.merge import merge_run

        store, config = open_loop_run(self.saves, name, None, readonly=True)
        try:
            return merge_run(store, config, out_dir, last_round, status=status)
        finally:
            store.close()

    # -- runs (writing) -----------------------------------------------------------------------

    def session(self, name: str, config: LoopConfig | None = None, *, status: Status = _quiet,
                holder: str = "") -> "RunSession":
        store, cfg = open_loop_run(self.saves, name, config, holder=holder or f"work on run {name}")
        return RunSession(self, store, cfg, status)

    def run_stage(self, name: str, stage: str, on_event: EventSink, stop: StopFlag, status: Status = _quiet) -> None:
        with self.session(name, status=status, holder=f"its {stage} job") as s:
            s.run(stage, on_event, stop)

    def follow_consolidation(self, name: str, assignments: list[str], status: Status = _quiet) -> int:
        """A follower rank of `accelerate launch`: train in lockstep with rank 0, write nothing.
        `assignments` are the command's `consolidation.*` settings (the same ones rank 0 applies)."""
        from .round.follower import follow_consolidation

        return follow_consolidation(self.saves, name, assignments, status=status)

    # -- runs read for people, forks, answers judged (the CLI's reports) ---------------------------

    def write_report(self, name: str, out_dir: Path | None = None) -> Path:
        from .report.markdown import write_report

        return write_report(self.saves / name, out_dir)

    def write_comparison(self, names: list[str], out_dir: Path | None = None) -> Path:
        from .report.markdown import write_comparison

        return write_comparison([self.saves / n for n in names], out_dir or self.saves / f".compare-{names[0]}")

    def fork(self, source: str, name: str, round_index: int, assignments: list[str]) -> tuple[dict, list[str]]:
        """A new run `name` copying `source` with `consolidation.*` settings changed (an
        ablation). Returns the changed settings and the stages of `round_index` it redoes."""
        from dataclasses import asdict

        from .overrides import apply_overrides
        from .round.fork import fork_run
        from .run.loop_config import read_config

        if any(not a.startswith("consolidation.") for a in assignments):
            raise OelError("a fork changes consolidation settings only (consolidation.FIELD=VALUE)")
        with RunStore(self.saves, source, readonly=True) as store:
            config = read_config(store)
        if config is None:
            raise OelError(f"run '{source}' was not started by `oel loop`; only an OEL run can be forked")
        changed = asdict(apply_overrides(config, assignments).consolidation)
        settings = {k: v for k, v in changed.items() if v != getattr(config.consolidation, k)}
        fork_run(self.saves, source, name, round_index, **settings)
        with RunStore(self.saves, name, readonly=True) as store:
            return settings, list(store.meta()["forked_from"]["redone"])

    def instruction_probe(self, model: ModelConfig, samples: int, max_new_tokens: int, stop: StopFlag,
                          on_batch=None, status: Status = _quiet) -> dict:
        """The offline instruction-following probe on `model` (thinking off): prompt-level strict
        accuracy per sampling seed 0..samples-1, with its mean and spread."""
        from .evaluation.instructions.probe import OOD_SAMPLING, load_prompts, run_probe
        from .metrics import mean_sd

        if samples < 1 or max_new_tokens < 1:
            raise OelError("--samples and --max-new-tokens must be at least 1")
        prompts = load_prompts()
        self.load_model(model, status)
        scores = run_probe(self.lm, list(range(samples)), replace(OOD_SAMPLING, max_new_tokens=max_new_tokens),
                           prompts, stop, on_batch=on_batch)
        accuracy, spread = mean_sd(s.accuracy for s in scores)
        return {"model": self.lm.name, "adapter": model.adapter, "prompts": len(prompts), "samples": samples,
                "accuracy": round(accuracy, 4), "accuracy_std": round(spread, 4),
                "instruction_accuracy": round(mean_sd(s.instruction_accuracy for s in scores)[0], 4),
                "per_seed": [round(s.accuracy, 4) for s in scores],
                "mean_response_tokens": round(mean_sd(s.mean_response_tokens for s in scores)[0], 1)}

    @staticmethod
    def score_answers(path: Path):
        """Judge answers given in a JSON-lines file (no model): yields one verdict per line, then
        returns the totals (`yield from` gets them)."""
        from .evaluation.instructions.score_file import score_lines, summary

        results = []
        for result in score_lines(path):
            results.append(result)
            yield result
        return summary(results)

    def make_policy(self, kind: str, sampling: SamplingConfig, seed: int, batch_size: int = 32,
                    ask=None, stop: StopFlag | None = None):
        """A policy for `oel play`/`oel eval`: "random", "model" (the loaded model) or "human"
        (`ask(request) -> answer text`)."""
        from .play.policies import HumanPolicy, ModelPolicy

        if kind == "human":
            return HumanPolicy(ask)
        if kind == "random" or self.lm is None:
            return RandomPolicy(seed)
        policy = ModelPolicy(self.lm, sampling, seed=seed, batch_size=batch_size)
        if stop is not None:
            policy.should_stop = stop.is_set
        return policy

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
            from .run.store import new_run_name

            if new_config is None:
                raise OelError("no run to save the game in")
            name = new_run_name("play")
        with self.session(name, new_config if not (self.saves / name).is_dir() else None,
                          holder="saving your game") as s:
            return name, s.add_human_game(game)


class RunSession:
    """One run opened for work (holds its writer lock until closed)."""

    def __init__(self, engine: Engine, store: RunStore, config: LoopConfig, status: Status = _quiet):
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

    def override(self, section: str, **values) -> None:
        """Change `extraction` or `consolidation` settings of the current round; refused once
        that stage has started (a run's artifacts must come from one set of settings)."""
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            self._save_settings(replace(self.config, **{section: replace(getattr(self.config, section), **values)}),
                                [f"{section}.{k}={v}" for k, v in values.items()])

    def apply_settings(self, assignments: list[str]) -> None:
        """`section.field=value` assignments (`oel loop --set`) onto this run: extraction and
        consolidation settings until that stage of the current round has started, `rounds` at
        any time; anything else a run keeps from its start."""
        from .overrides import apply_overrides

        if assignments:
            self._save_settings(apply_overrides(self.config, assignments), list(assignments))

    def _save_settings(self, config: LoopConfig, assignments: list[str]) -> None:
        from dataclasses import asdict

        from .run.loop_config import save_config

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
        from .round import RoundRunner

        from .run.live import live_writer

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
        text = _one_line(text)
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
        text = _one_line(text)
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
        from .experience.items import format_items, parse_items, read_experience

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
        return self.runner().ctx.teacher(round_index).source


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise OelError("an experience item cannot be empty")
    if len(text) > 1000:
        raise OelError(f"an experience item holds at most 1000 characters, not {len(text)}")
    return text


def list_items(art: RunArtifacts) -> list[ItemView]:
    """The newest snapshot's items of every extraction run, the items a person wrote, and the
    items of the run's experience file, with provenance."""
    latest: dict[tuple[int, int], dict] = {}
    for (r, k, n), rec in sorted(art.experience.snapshot_records().items()):
        latest[(r, k)] = rec
    last_round = max((r for r, _ in latest), default=art.rounds_done())
    items = []
    external = art.experience.external()
    if external is not None:
        from .experience.items import parse_items

        text, meta = external
        for line in parse_items(text):
            items.append(ItemView(meta.get("from_round", 0), FILE_RUN, 0, line, meta["source"], "file"))
    for (r, k), rec in sorted(latest.items()):
        for i in rec.get("items", []):
            items.append(ItemView(i["round"], i["run"], i["step"], i["text"], i["episode_id"], i.get("source", "model"),
                                  i.get("enabled", True), i.get("edited", False), new_this_round=i["round"] == last_round))
    return items
