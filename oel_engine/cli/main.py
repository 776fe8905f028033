"""`oel`: the headless command line. Progress bars and tables by default, `--json` for scripts.

Every user-facing failure is an OelError printed as one line; Ctrl-C stops the work between two
turns and keeps what was finished. Exit statuses: `exit_codes.py`. The commands reach the engine
through its door (`session.Engine`) only.
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..config import EVAL_SEED_BASE, GAMES, GameConfig, ModelConfig, SamplingConfig
from ..errors import OelError, Stopped
from ..events import Event, StageFinished, StageStarted, StopFlag
from ..events import Progress as ProgressEvent
from ..overrides import apply_overrides
from .board import board_text
from .exit_codes import ExitCode

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Online Experiential Learning on Frozen Lake and Sokoban, headless. The TUI is `oel-tui`.",
)
console = Console(stderr=True)
out = Console()

POLICIES = ("random", "model", "human")


# -- shared options -----------------------------------------------------------------------------


def _game_config(game: str, size: int, holes: int, room: int, boxes: int, max_turns: int) -> GameConfig:
    if game not in GAMES:
        raise OelError(f"unknown game '{game}': choose one of {', '.join(GAMES)}")
    if max_turns < 1:
        raise OelError("--max-turns must be at least 1")
    config = GameConfig(name=game, size=size, holes=holes, room=room, boxes=boxes, max_turns=max_turns)
    from ..session import Engine

    Engine.check_game(config)
    return config


def _check_policy(policy: str, allowed=POLICIES) -> str:
    if policy not in allowed:
        raise OelError(f"unknown policy '{policy}': choose one of {', '.join(allowed)}")
    return policy


@contextmanager
def _stop_on_ctrl_c(stop: StopFlag):
    """First Ctrl-C asks the work to stop after the current turn; a second one aborts."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]Stopping after the current step (Ctrl-C again to abort)...[/]")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressView:
    """Turns engine events into rich progress bars (or nothing, in --json mode)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, StageStarted):
            if event.stage in self.tasks:
                self.progress.reset(self.tasks[event.stage], total=event.total, detail=event.detail)
            else:
                self.tasks[event.stage] = self.progress.add_task(event.stage, total=event.total, detail=event.detail)
        elif isinstance(event, ProgressEvent) and event.stage in self.tasks:
            self.progress.update(self.tasks[event.stage], completed=event.done, total=event.total, detail=event.detail[:50])
        elif isinstance(event, StageFinished) and event.stage in self.tasks:
            self.progress.update(self.tasks[event.stage], detail=f"done in {event.seconds:.0f} s")


def _status(message: str) -> None:
    console.print(f"[dim]{message}[/]")


def _model_config(model: str, adapter: Optional[str], device: str, thinking: bool, allow_download: bool,
                  batch: int) -> ModelConfig:
    return ModelConfig(model=model, adapter=adapter, device=device, thinking=thinking,
                       allow_download=allow_download, batch_size=batch)


def _assignments(section: str, **values) -> list[str]:
    """A command's shorthand flags as `section.field=value` settings (the one override mechanism)."""
    return [f"{section}.{key}={value}" for key, value in values.items() if value is not None]


def _engine(saves):
    from ..session import Engine

    return Engine(saves)


def _human_asker(stop: StopFlag):
    def ask(request) -> str:
        out.print()
        out.print(board_text(request.board))
        legal = ", ".join(request.legal_moves)
        while True:
            answer = console.input(f"turn {request.turn + 1} - your move ({legal}; w/a/s/d works; q quits): ").strip().lower()
            if answer in ("q", "quit", "exit"):
                stop.set()
                raise Stopped("you quit")
            if answer in ("up", "down", "left", "right", "w", "a", "s", "d"):
                return f"[{answer}]"
            console.print("[red]Type up, down, left, right (or w, a, s, d).[/]")

    return ask


def _metrics_table(title: str, summary: dict) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("spread (sd over samples)", justify="right")
    for key in ("pass_rate", "legal_action_rate", "mean_response_tokens", "mean_turns"):
        value = summary.get(key, 0.0)
        spread = summary.get(f"{key}_std")
        fmt = "{:.1%}" if key.endswith("rate") else "{:.2f}"
        table.add_row(key, fmt.format(value), "" if spread is None else fmt.format(spread))
    if summary.get("good_move_prob") is not None:
        table.add_row("good_move_prob (probe, start states)", f"{summary['good_move_prob']:.3f}",
                      f"{summary.get('good_move_prob_se', 0):.3f} (se over maps)")
        table.add_row("move_mass (share on move tokens)", f"{summary['move_mass']:.3f}", "")
    table.add_row("episodes", str(summary.get("episodes")), "")
    return table


def _sampling(temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> SamplingConfig:
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0 or max_new_tokens < 1:
        raise OelError("sampling needs temperature >= 0, 0 < top-p <= 1, top-k >= 0, max-new-tokens >= 1")
    return SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens)


# -- commands -----------------------------------------------------------------------------------

GameOpt = typer.Option("frozenlake", "--game", help="frozenlake or sokoban")
SizeOpt = typer.Option(3, "--size", help="Frozen Lake grid side (paper: 3)")
HolesOpt = typer.Option(2, "--holes", help="Frozen Lake holes (paper: 2)")
RoomOpt = typer.Option(6, "--room", help="Sokoban room side (paper: 6)")
BoxesOpt = typer.Option(1, "--boxes", help="Sokoban boxes (paper: 1)")
TurnsOpt = typer.Option(5, "--max-turns", help="model calls per game, invalid ones included")
ModelOpt = typer.Option("embedded", "--model", help="embedded, a Hugging Face id, or a local folder")
AdapterOpt = typer.Option(None, "--adapter", help="a PEFT LoRA adapter folder")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda")
ThinkOpt = typer.Option(False, "--thinking/--no-thinking", help="Qwen3-style thinking in the chat template")
DownloadOpt = typer.Option(False, "--allow-download", help="let transformers download a missing Hugging Face model")
SavesOpt = typer.Option(None, "--saves", help="folder of runs (default: $OEL_SAVES or ./saves)")
JsonOpt = typer.Option(False, "--json", help="print one JSON object as the last line; no progress bars")
TempOpt = typer.Option(0.7, "--temperature", help="0 = greedy")
TopPOpt = typer.Option(0.8, "--top-p")
TopKOpt = typer.Option(20, "--top-k")
MaxNewOpt = typer.Option(256, "--max-new-tokens")
BatchOpt = typer.Option(32, "--batch", help="games whose turns share one model batch")


@app.command()
def play(
    game: str = GameOpt,
    policy: str = typer.Option("random", "--policy", help="random, model or human"),
    episodes: int = typer.Option(4, "--episodes", help="games to play"),
    seed: int = typer.Option(0, "--seed", help="first map seed (seeds S, S+1, ...)"),
    model: str = ModelOpt,
    adapter: Optional[str] = AdapterOpt,
    run: Optional[str] = typer.Option(None, "--run", help="run to save into (default: a new play-<time> run)"),
    json_out: bool = JsonOpt,
    saves: Optional[Path] = SavesOpt,
    size: int = SizeOpt, holes: int = HolesOpt, room: int = RoomOpt, boxes: int = BoxesOpt, max_turns: int = TurnsOpt,
    temperature: float = TempOpt, top_p: float = TopPOpt, top_k: int = TopKOpt, max_new_tokens: int = MaxNewOpt,
    device: str = DeviceOpt, thinking: bool = ThinkOpt, allow_download: bool = DownloadOpt, batch: int = BatchOpt,
):
    """Play games with a policy; every game is saved to a run."""
    game_config = _game_config(game, size, holes, room, boxes, max_turns)
    _check_policy(policy)
    if episodes < 1:
        raise OelError("--episodes must be at least 1")
    if seed < 0 or seed + episodes > EVAL_SEED_BASE:
        raise OelError(f"--seed must be between 0 and {EVAL_SEED_BASE - episodes} (higher seeds are held out for evaluation)")
    sampling = _sampling(temperature, top_p, top_k, max_new_tokens)
    stop = StopFlag()
    engine = _engine(saves)
    if policy == "model":
        engine.load_model(_model_config(model, adapter, device, thinking, allow_download, batch), _status)
    chosen = engine.make_policy(policy, sampling, seed, batch, ask=_human_asker(stop), stop=stop)
    with _stop_on_ctrl_c(stop), ProgressView(enabled=not json_out and policy != "human") as view:
        run_name, saved, stopped = engine.play(game_config, list(range(seed, seed + episodes)), chosen, run,
                                               concurrent=1 if policy == "human" else batch, on_event=view, stop=stop)
    if stopped:
        console.print(f"[yellow]Stopped: {len(saved)} finished game(s) saved in run '{run_name}'.[/]")
        if not saved:
            raise typer.Exit(ExitCode.STOPPED)
    summary = {**engine.episode_metrics(saved), "run": run_name, "game": game, "policy": policy}
    if policy == "human" or not json_out:
        for e in saved:
            status = "[green]won[/]" if e.success else "[red]lost[/]"
            out.print(f"seed {e.seed}: {status} in {len(e.turns)} turn(s) - {e.outcome.reason}")
    _finish(summary, json_out, f"play: {game_config.label()}, policy {policy}, run {run_name}")
    if stopped:
        raise typer.Exit(ExitCode.STOPPED)


@app.command("eval")
def evaluate_cmd(
    game: str = GameOpt,
    policy: str = typer.Option("random", "--policy", help="random or model"),
    episodes: int = typer.Option(128, "--episodes", help="held-out maps to play"),
    samples: int = typer.Option(1, "--samples", help="repeats over sampling seeds (mean and spread)"),
    experience: Optional[Path] = typer.Option(None, "--experience", help="experience file to put in the prompt"),
    model: str = ModelOpt,
    adapter: Optional[str] = AdapterOpt,
    run: Optional[str] = typer.Option(None, "--run", help="also save the games and the result into this run"),
    json_out: bool = JsonOpt,
    saves: Optional[Path] = SavesOpt,
    size: int = SizeOpt, holes: int = HolesOpt, room: int = RoomOpt, boxes: int = BoxesOpt, max_turns: int = TurnsOpt,
    temperature: float = TempOpt, top_p: float = TopPOpt, top_k: int = TopKOpt, max_new_tokens: int = MaxNewOpt,
    device: str = DeviceOpt, thinking: bool = ThinkOpt, allow_download: bool = DownloadOpt, batch: int = BatchOpt,
):
    """Pass rate, legal-action rate, response length and turns on the held-out maps."""
    game_config = _game_config(game, size, holes, room, boxes, max_turns)
    _check_policy(policy, ("random", "model"))
    if episodes < 1 or samples < 1:
        raise OelError("--episodes and --samples must be at least 1")
    sampling = _sampling(temperature, top_p, top_k, max_new_tokens)
    stop = StopFlag()
    engine = _engine(saves)
    experience_text = engine.read_experience_file(experience) if experience else None
    if policy == "model":
        engine.load_model(_model_config(model, adapter, device, thinking, allow_download, batch), _status)

    try:
        with _stop_on_ctrl_c(stop), ProgressView(enabled=not json_out) as view:
            summary = engine.evaluate(game_config, engine.make_policy(policy, sampling, 0, batch, stop=stop), episodes, samples, experience=experience_text,
                                      experience_name=str(experience) if experience else None, run=run,
                                      concurrent=batch, on_event=view, stop=stop)
    except Stopped:
        console.print("[yellow]Stopped; an interrupted evaluation is not recorded.[/]")
        raise typer.Exit(ExitCode.STOPPED)
    _finish(summary, json_out, f"eval: {game_config.label()}, policy {policy}, {samples} sample(s)")


def _score_answers(path: Path, json_out: bool) -> None:
    from ..session import Engine

    total = Engine.score_answers(path, lambda verdict: json_out and print(json.dumps(verdict), flush=True))
    if json_out:
        return
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"
    out.print(f"{path}: {total['answers']} answer(s); prompt-level strict accuracy {pct(total['prompt_accuracy'])}, "
              f"instructions followed {pct(total['instruction_accuracy'])}")
    for iid, accuracy in total["per_instruction"].items():
        out.print(f"  {iid}: {accuracy:.1%}")
    for reason, count in total["not_judged"].items():
        out.print(f"[yellow]not judged: {count} x {reason}[/]")


@app.command()
def ood(
    model: str = ModelOpt,
    adapter: Optional[str] = AdapterOpt,
    samples: int = typer.Option(3, "--samples", help="sampling seeds (0, 1, ...): the spread over them is printed"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    batch: int = BatchOpt,
    device: str = DeviceOpt,
    allow_download: bool = DownloadOpt,
    score: Optional[Path] = typer.Option(None, "--score", help="score the answers in this JSON-lines file "
                                         "(no model): one verdict line out per line in with --json"),
    json_out: bool = JsonOpt,
):
    """Instruction following, offline: 120 IFEval-like prompts with programmatic checks, thinking
    off (as the reference runs IFEval). Prints prompt-level strict accuracy (every instruction of
    a prompt followed), mean and spread over seeds. With --score FILE, judges answers given in a
    file instead, each line {"instructions": [{"id": ..., "kwargs": {...}}], "response": "..."}."""
    if score is not None:
        _score_answers(score, json_out)
        return
    engine, stop, label = _engine(None), StopFlag(), "instruction probe"
    with _stop_on_ctrl_c(stop), ProgressView(enabled=not json_out) as view:
        view(StageStarted(label, 0, f"{samples} seed(s)"))
        try:
            summary = engine.instruction_probe(_model_config(model, adapter, device, False, allow_download, batch),
                                               samples, max_new_tokens, stop,
                                               on_batch=lambda done, total: view(ProgressEvent(label, done, total)),
                                               status=_status)
        except Stopped:
            console.print("[yellow]Stopped: nothing scored.[/]")
            raise typer.Exit(ExitCode.STOPPED)
    accuracy, spread, per_instruction = summary["accuracy"], summary["accuracy_std"], summary["instruction_accuracy"]
    if json_out:
        print(json.dumps(summary))
        return
    out.print(f"{summary['model']}{' + ' + adapter if adapter else ''}: prompt-level strict accuracy "
              f"{accuracy:.1%} ± {spread:.1%} over {samples} seed(s) (per seed: "
              f"{', '.join(f'{a:.1%}' for a in summary['per_seed'])}); instructions followed {per_instruction:.1%}; "
              f"{summary['mean_response_tokens']:.0f} tokens per answer")


@app.command()
def runs(saves: Optional[Path] = SavesOpt, json_out: bool = JsonOpt):
    """List saved runs."""
    engine = _engine(saves)
    root, found = engine.saves, engine.runs()
    if json_out:
        rows = [{"name": r.name, "game": r.game, "model": r.model, "created": r.created, "rounds": r.rounds, "episodes": r.episodes,
                 "wins": r.wins, "last_pass_rate": r.last_pass_rate, "problem": r.problem} for r in found]
        out.print_json(json.dumps({"saves": str(root), "runs": rows}))
        return
    if not found:
        out.print(f"No runs in {root}. Start one with `oel play`.")
        return
    table = Table(title=f"Runs in {root}")
    for col in ("run", "game", "model", "created", "rounds", "games", "wins", "last pass rate", "note"):
        table.add_column(col)
    for r in found:
        rate = "-" if r.last_pass_rate is None else f"{r.last_pass_rate:.1%}"
        table.add_row(r.name, r.game, r.model, r.created, str(r.rounds), str(r.episodes), str(r.wins), rate, r.problem)
    out.print(table)


# -- OEL rounds ------------------------------------------------------------------------------------

ExperienceFileOpt = typer.Option(None, "--experience", help="an experience file: the teacher's context instead of extracted experience (see examples/lessons/)")
BackendOpt = typer.Option(None, "--backend", help="ours (default) or trl: TRL's SDFTTrainer with the same settings (the [trl] extra; runs under accelerate launch)")
TeacherContextOpt = typer.Option(None, "--teacher-context", help="experience (the method), trajectories (the paper's raw-game baseline) or lessons (no extraction: the --experience file and the lessons written in the app)")
PresetOpt = typer.Option(None, "--preset", help="demo (CPU, embedded model; the default for a new run), teach "
                         "(rounds of lessons, about 3 minutes each on a CPU), paper-frozenlake or paper-sokoban (the "
                         "reference's recipes, GPU); an existing run keeps its own")
RunOpt = typer.Option(..., "--run", help="run name (created if new, resumed if it exists)")
RunGameOpt = typer.Option(None, "--game", help="frozenlake or sokoban (default: the preset's game, else frozenlake)")
RunModelOpt = typer.Option(None, "--model", help="embedded, a Hugging Face id, or a local folder (default: the "
                           "preset's model: Qwen/Qwen3-1.7B for paper-frozenlake, Qwen/Qwen3-4B-Instruct-2507 for "
                           "paper-sokoban, else embedded)")
RunThinkOpt = typer.Option(None, "--thinking/--no-thinking", help="Qwen3-style thinking (default: the preset's)")
SetOpt = typer.Option(None, "--set", help="section.field=value, repeatable: any setting of the run "
                      "(`oel config --preset NAME` lists them); on an existing run only what has not started")


def _resuming(exists: bool, preset: Optional[str], game: Optional[str], model: Optional[str]) -> bool:
    """`--run NAME` alone on an existing run: it goes on with its own settings (a paper-preset run or
    a fork resumes without repeating its preset and model); with any of them, they are checked."""
    return exists and preset is None and game is None and model is None


@contextmanager
def _working(engine, run: str, config, json_out: bool):
    """A run session with progress bars and Ctrl-C handling: yields (session, view, stop); a stop
    request exits 130 with a note that the same command resumes the run."""
    stop = StopFlag()
    try:
        with engine.session(run, config, status=_status, holder="this command") as session, \
                _stop_on_ctrl_c(stop), ProgressView(enabled=not json_out) as view:
            yield session, view, stop
    except Stopped:
        _interrupted(run)


def _interrupted(run: str) -> None:
    console.print(f"[yellow]Stopped. Everything finished so far is saved; the same command resumes run '{run}'.[/]")
    raise typer.Exit(ExitCode.STOPPED)


def _round_table(name: str, report) -> Table:
    table = Table(title=f"run {name}: held-out results per round (mean ± sd over samples)")
    for col in ("round", "model", "pass rate", "legal actions", "good-move prob", "response tokens", "turns"):
        table.add_column(col)
    for row in report.eval_rows():
        probe = "-" if row.good_move_prob is None else f"{row.good_move_prob:.3f} ± {row.good_move_prob_se or 0:.3f}"
        table.add_row(str(row.round), str(row.kind), f"{row.pass_rate:.1%} ± {row.pass_rate_std:.1%}",
                      f"{row.legal_action_rate:.1%} ± {row.legal_action_rate_std:.1%}", probe,
                      f"{row.mean_response_tokens:.1f}", f"{row.mean_turns:.2f}")
    return table


def _run_config(preset: str | None, game: Optional[str], model: Optional[str], device: str, thinking: Optional[bool],
                allow_download: bool, rounds: int | None, size: int, holes: int, room: int, boxes: int, max_turns: int,
                settings: list[str] = (), seed: int | None = None):
    """A new run's configuration: the preset (`demo` unless given, with its own game and model
    unless given), then `--thinking` and every `--set`. Returns it with the assignments to record."""
    from ..presets import build, default_game, default_model, default_rounds

    preset = preset or "demo"
    game_config = _game_config(game or default_game(preset).name, size, holes, room, boxes, max_turns)
    model_config = ModelConfig(model=model or default_model(preset), device=device, allow_download=allow_download)
    config = build(preset, game_config, model_config, rounds or default_rounds(preset))
    changes = ([f"model.thinking={thinking}"] if thinking is not None else []) + list(settings)
    if seed is not None:
        config = replace(config, seed=seed)
    return apply_overrides(config, changes), changes


@app.command("config")
def config_cmd(
    preset: str = PresetOpt,
    game: Optional[str] = RunGameOpt,
    model: Optional[str] = RunModelOpt,
    thinking: Optional[bool] = RunThinkOpt,
    rounds: Optional[int] = typer.Option(None, "--rounds", help="rounds (default: the preset's)"),
    settings: Optional[list[str]] = SetOpt,
    run: Optional[str] = typer.Option(None, "--run", help="show the settings an existing run keeps instead"),
    json_out: bool = JsonOpt,
    saves: Optional[Path] = SavesOpt,
    device: str = DeviceOpt,
    size: int = SizeOpt, holes: int = HolesOpt, room: int = RoomOpt, boxes: int = BoxesOpt, max_turns: int = TurnsOpt,
):
    """Print every setting a run would use (a preset, then --set), or those of an existing run."""
    from ..config import to_dict

    if run is not None:
        config, overrides = _engine(saves).run_settings(run)
    else:
        config, overrides = _run_config(preset, game, model, device, thinking, False, rounds, size, holes, room,
                                        boxes, max_turns, settings or [])
    data = to_dict(config)
    if json_out:
        print(json.dumps(data))
        return
    for line in _flat(data) + [f"# set: {line}" for line in overrides]:
        print(line)  # plain lines, never wrapped: for diff and grep


def _flat(data: dict, prefix: str = "") -> list[str]:
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines += _flat(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key} = {json.dumps(value)}")
    return lines


@app.command()
def loop(
    game: Optional[str] = RunGameOpt,
    preset: str = PresetOpt,
    rounds: Optional[int] = typer.Option(None, "--rounds", help="OEL rounds to run (default: the preset's; a resumed run may add more)"),
    run: str = RunOpt,
    experience: Optional[Path] = ExperienceFileOpt,
    teacher_context: Optional[str] = TeacherContextOpt,
    loss: Optional[str] = typer.Option(None, "--loss", help="topk (reference), full, or offpolicy (baseline)"),
    backend: Optional[str] = BackendOpt,
    seed: int = typer.Option(0, "--seed", help="root of the run's random streams (repeat a run with other seeds for its spread)"),
    ood_samples: Optional[int] = typer.Option(None, "--ood", help="seeds of the instruction-following probe on the base and every consolidated model (0: off)"),
    settings: Optional[list[str]] = SetOpt,
    model: Optional[str] = RunModelOpt,
    device: str = DeviceOpt,
    thinking: Optional[bool] = RunThinkOpt,
    allow_download: bool = DownloadOpt,
    json_out: bool = JsonOpt,
    saves: Optional[Path] = SavesOpt,
    size: int = SizeOpt, holes: int = HolesOpt, room: int = RoomOpt, boxes: int = BoxesOpt, max_turns: int = TurnsOpt,
):
    """Run whole OEL rounds: extract -> collect -> consolidate -> evaluate. Resumable: rerun the same command."""
    # the shorthand flags are settings like any other: one mechanism, recorded in the run
    shorthands = (_assignments("consolidation", teacher_context=teacher_context, loss=loss, backend=backend)
                  + _assignments("evaluation", ood_samples=ood_samples))
    engine = _engine(saves)
    new_run = not (engine.saves / run).is_dir()
    if _resuming(not new_run, preset, game, model):
        config = None
        changes = ([f"model.thinking={thinking}"] if thinking is not None else []) + shorthands + list(settings or [])
    else:
        config, changes = _run_config(preset, game, model, device, thinking, allow_download, rounds, size, holes, room,
                                      boxes, max_turns, shorthands + list(settings or []), seed=seed)
    with _working(engine, run, config, json_out) as (session, view, stop):
        if new_run:
            session.note_settings([f"created: {c}" for c in changes])
        else:
            session.apply_settings(changes + ([f"rounds={rounds}"] if rounds and rounds > session.config.rounds else []))
        if experience is not None:
            session.use_experience_file(experience)
        _status(f"Run {run} is in {session.store.path}; watch it live from another terminal (or over SSH): "
                f"oel-tui --saves {session.store.path.parent} --run {run}")
        session.run_rounds(session.config.rounds if rounds is None else rounds, view, stop)
        report = session.report()
    summary = report.summary()
    if not json_out:
        out.print(_round_table(run, report))
        for entry in summary["rounds"]:
            points = ", ".join(f"step {p['step']}: {p['pass_rate']:.1%}" for p in entry["curve"])
            if points:
                out.print(f"round {entry['round']} in-context curve (held-out pass rate): {points}")
            times = ", ".join(f"{k} {v:.0f} s" for k, v in entry["seconds"].items())
            out.print(f"round {entry['round']} seconds per stage: {times}; peak memory {entry['peak_memory_mb']:.0f} MB")
    if json_out:
        print(json.dumps({"run": run, **summary}))


@app.command()
def extract(
    run: str = RunOpt,
    format: Optional[str] = typer.Option(None, "--format", help="structured or unstructured"),
    runs: Optional[int] = typer.Option(None, "--runs", help="K independent extraction runs"),
    steps: Optional[int] = typer.Option(None, "--steps", help="N accumulation steps per run"),
    game: Optional[str] = RunGameOpt,
    preset: str = PresetOpt,
    model: Optional[str] = RunModelOpt,
    device: str = DeviceOpt,
    thinking: Optional[bool] = RunThinkOpt,
    json_out: bool = JsonOpt,
    saves: Optional[Path] = SavesOpt,
    size: int = SizeOpt, holes: int = HolesOpt, room: int = RoomOpt, boxes: int = BoxesOpt, max_turns: int = TurnsOpt,
):
    """Extract experience for the run's current round (a new run starts from --preset)."""
    engine = _engine(saves)
    config = None if _resuming((engine.saves / run).is_dir(), preset, game, model) else \
        _run_config(preset, game, model, device, thinking, False, 1, size, holes, room, boxes, max_turns)[0]
    with _working(engine, run, config, json_out) as (session, view, stop):
        session.apply_settings(_assignments("extraction", format=format, runs=runs, steps=steps))
        session.run("extract", view, stop)
        x, r = session.config.extraction, session.current_round
        states, files = session.extracted(r, x.steps)
        folder = session.store.path / "experience"
    summary = {"run": run, "round": r, "runs": x.runs, "steps": x.steps,
               "items": [len(s.items) for s in states], "files": [str(f) for f in files]}
    if json_out:
        print(json.dumps(summary))
        return
    for k, s in enumerate(states):
        out.print(f"[bold]run {k}[/] after step {s.step}: {len(s.items)} item(s)")
        for item in s.items:
            out.print(f"  - {item.text}")
    out.print(f"Experience files: {folder}")


@app.command()
def consolidate(
    run: str = RunOpt,
    loss: Optional[str] = typer.Option(None, "--loss", help="topk (reference), full, or offpolicy (baseline)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="optimizer steps T"),
    experience: Optional[Path] = ExperienceFileOpt,
    teacher_context: Optional[str] = TeacherContextOpt,
    backend: Optional[str] = BackendOpt,
    json_out: bool = JsonOpt,
    saves: Optional[Path] = SavesOpt,
):
    """Collect deploy games and distil the round's experience into a LoRA adapter."""
    changes = _assignments("consolidation", loss=loss, steps=steps, teacher_context=teacher_context, backend=backend)
    engine = _engine(saves)
    if engine.follower_rank() > 0:  # another process of `accelerate launch`: train in lockstep with rank 0, write nothing
        engine.follow_consolidation(run, changes, status=_status)
        return

    with _working(_engine(saves), run, None, json_out) as (session, view, stop):
        r = session.current_round
        session.apply_settings(changes)
        if experience is not None:
            session.use_experience_file(experience)
        session.run("consolidate", view, stop)
        steps_done = session.consolidation_steps(r)
        adapter = str(session.art.adapter_dir(r))
        source = session.teacher_source(r)
    summary = {"run": run, "round": r, "steps": len(steps_done), "adapter": adapter, "experience_source": source,
               "first_loss": steps_done[0].loss if steps_done else None,
               "last_loss": steps_done[-1].loss if steps_done else None}
    if json_out:
        print(json.dumps(summary))
        return
    table = Table(title=f"consolidation, round {r}")
    for col in ("step", "loss", "reverse KL", "top-k mass", "response tokens", "seconds"):
        table.add_column(col, justify="right")
    for m in steps_done:
        table.add_row(str(m.step), f"{m.loss:.4f}", f"{m.reverse_kl:.4f}",
                      "-" if m.topk_mass is None else f"{m.topk_mass:.3f}",  # TRL's steps do not report it
                      f"{m.mean_response_tokens:.1f}", f"{m.seconds:.1f}")
    out.print(table)
    out.print(f"Teacher's context: {source}")
    out.print(f"Adapter: {summary['adapter']}")


@app.command()
def report(
    run: str = typer.Option(..., "--run", help="the run to report (read only; it may be running)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder (default: saves/RUN/report)"),
    saves: Optional[Path] = SavesOpt,
):
    """Write saves/RUN/report/report.md with PNG charts: pass rate, legal moves, good-move
    probability and response length per round, the in-context curve, the training curves, the
    experience the teacher read and the settings. Several runs side by side: `oel compare`."""
    out.print(f"Report: {_engine(saves).write_report(run, out_dir)}")


@app.command("compare")
def compare_cmd(
    runs: list[str] = typer.Argument(..., help="two or more run names"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder (default: saves/.compare-<first run>)"),
    saves: Optional[Path] = SavesOpt,
):
    """Several runs side by side (ablations): one table and one chart per metric."""
    out.print(f"Comparison: {_engine(saves).write_comparison(runs, out_dir)}")


@app.command()
def fork(
    run: str = typer.Option(..., "--run", help="the run to copy (only read)"),
    name: str = typer.Option(..., "--as", help="name of the new run"),
    round_index: int = typer.Option(0, "--round", help="the round whose consolidation changes"),
    loss: Optional[str] = typer.Option(None, "--loss", help="topk, full or offpolicy"),
    teacher_context: Optional[str] = TeacherContextOpt,
    learning_rate: Optional[float] = typer.Option(None, "--lr", help="LoRA learning rate"),
    steps: Optional[int] = typer.Option(None, "--steps", help="optimizer steps T (collects its games again)"),
    ood: Optional[int] = typer.Option(None, "--ood", help="instruction-probe seeds in the fork's own evaluations "
                                      "(default: the source's; 0 skips the probe)"),
    saves: Optional[Path] = SavesOpt,
):
    """A new run with the same games and experience as RUN and other consolidation settings (an
    ablation): only what the change affects is run again. Then `oel loop --run NAME`."""
    changes = _assignments("consolidation", loss=loss, teacher_context=teacher_context,
                           learning_rate=learning_rate, steps=steps)
    if not changes:
        raise OelError("a fork needs at least one changed setting (for example --loss or --teacher-context)")
    changes += _assignments("evaluation", ood_samples=ood)
    settings, redone = _engine(saves).fork(run, name, round_index, changes)
    redo = ", ".join(redone)
    probe = "" if ood is None else f" and {ood} instruction-probe seed{'s' * (ood != 1)}"
    out.print(f"Run '{name}' is a copy of '{run}' with {settings}{probe}; round {round_index} will redo: {redo}.")
    out.print(f"Run it with: oel loop --run {name}")


@app.command()
def merge(
    run: str = typer.Option(..., "--run"),
    out_dir: Path = typer.Option(..., "--out", help="folder for the merged Hugging Face checkpoint"),
    round_index: Optional[int] = typer.Option(None, "--round", help="last round to include (default: all)"),
    saves: Optional[Path] = SavesOpt,
):
    """Merge the run's LoRA adapters (rounds 0..R, in order) into a full Hugging Face checkpoint."""
    target = _engine(saves).merge(run, out_dir, round_index, status=_status)
    out.print(f"Merged checkpoint written to {target}")


def _finish(summary: dict, json_out: bool, title: str) -> None:
    if json_out:
        print(json.dumps(summary))
    else:
        out.print(_metrics_table(title, summary))


def _print_notes(exc: BaseException) -> None:
    """What the failing work kept (`exc.add_note`): the games an evaluation played before it."""
    for note in getattr(exc, "__notes__", []):
        console.print(note, highlight=False, soft_wrap=True, markup=False)


def main() -> None:
    """Entry point: one-line errors, no tracebacks, library warnings in the log file."""
    from ..logs import route_warnings_to_log

    route_warnings_to_log()
    try:
        code = app(standalone_mode=False)  # click returns a typer.Exit's code instead of raising it
        sys.exit(code if isinstance(code, int) else ExitCode.OK)
    except OelError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        _print_notes(exc)
        sys.exit(ExitCode.REFUSED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]aborted[/]")
        sys.exit(ExitCode.STOPPED)
    except Exception as exc:  # usage errors and anything unexpected: still one line
        if hasattr(exc, "exit_code") and hasattr(exc, "format_message"):  # click/typer usage errors
            console.print(f"[red]error:[/] {exc.format_message()} (see --help)", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(ExitCode.STOPPED)
        first = str(exc).splitlines()[0] if str(exc) else ""
        console.print(f"[red]error:[/] unexpected {type(exc).__name__}: {first}", highlight=False, soft_wrap=True)
        _print_notes(exc)
        console.print("[dim]set OEL_DEBUG=1 to see the traceback[/]")
        import os

        if os.environ.get("OEL_DEBUG"):
            raise
        sys.exit(ExitCode.UNEXPECTED)


if __name__ == "__main__":
    main()
