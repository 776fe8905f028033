"""Rounds: start a round (or one stage) in the background, follow it, cancel it, see the curves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Sparkline, Static

from oel_engine.events import MetricsRecorded, Progress, StageFinished, StageStarted
from oel_engine.metrics import CurvePoint, MetricsLog, PrecisionChoice, parse_record
from oel_engine.reporting import consolidation_steps, curve, eval_summaries

from ..messages import EngineEvents, WorkFinished

STAGES = ("round", "extract", "collect", "consolidate", "evaluate")


class RoundsScreen(Screen):
    BINDINGS = [
        Binding("g", "start('round')", "Run round"),
        Binding("x", "start('extract')", "Extract"),
        Binding("o", "start('collect')", "Collect"),
        Binding("k", "start('consolidate')", "Consolidate"),
        Binding("v", "start('evaluate')", "Evaluate"),
        Binding("c", "cancel", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="rounds"):
            yield Static("", id="run-title")
            yield Static("Idle.", id="stage-label")
            yield ProgressBar(total=1, id="stage-progress", show_eta=True)  # determinate while idle: no animation
            with Horizontal(id="charts"):
                with Vertical(classes="chart"):
                    yield Static("loss", classes="chart-title", id="loss-title")
                    yield Sparkline([], id="loss-chart")
                with Vertical(classes="chart"):
                    yield Static("reverse KL", classes="chart-title", id="kl-title")
                    yield Sparkline([], id="kl-chart")
                with Vertical(classes="chart"):
                    yield Static("top-k mass", classes="chart-title", id="mass-title")
                    yield Sparkline([], id="mass-chart")
            yield Static("Held-out results per round", classes="section")
            yield DataTable(id="results", cursor_type="none")
            yield Static("", id="pass-label")
            yield Sparkline([], id="pass-chart")
            yield Static("", id="curve-label")
            yield Sparkline([], id="curve-chart")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#results", DataTable)
        table.add_columns("round", "model", "pass rate", "legal actions", "tokens", "turns")
        self.metrics = MetricsLog([])
        self.stage_line = ""
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        name = self.app.settings.run
        if not name:
            self.query_one("#run-title", Static).update("No run chosen: pick or create one on the Start screen (1).")
            return
        try:
            view = self.app.engine.open_run(name, None)
        except Exception as exc:  # an unreadable run: say so, keep the app usable
            self.query_one("#run-title", Static).update(f"Run {name}: {exc}")
            return
        self.metrics = view.metrics
        cfg = view.config
        precision = self.metrics.last(PrecisionChoice)
        shown = f"; consolidation in {precision.choice} ({precision.reason})" if precision else ""
        self.query_one("#run-title", Static).update(
            f"Run {name} - {cfg.game.label()}, preset {cfg.preset}, {view.rounds_done} of {cfg.rounds} round(s) done{shown}")
        self.redraw()

    def redraw(self) -> None:
        steps = consolidation_steps(self.metrics)
        for key, chart in (("loss", "#loss-chart"), ("reverse_kl", "#kl-chart"), ("topk_mass", "#mass-chart")):
            self.query_one(chart, Sparkline).data = [float(getattr(m, key)) for m in steps]
        if steps:
            last = steps[-1]
            self.query_one("#loss-title", Static).update(f"loss {last.loss:.4f}")
            self.query_one("#kl-title", Static).update(f"reverse KL {last.reverse_kl:.4f}")
            self.query_one("#mass-title", Static).update(f"top-k mass {last.topk_mass:.3f}")
        table = self.query_one("#results", DataTable)
        table.clear()
        summaries = eval_summaries(self.metrics)
        for s in summaries:
            table.add_row(str(s.round), str(s.kind), f"{s.pass_rate:.1%} ± {s.pass_rate_std:.1%}",
                          f"{s.legal_action_rate:.1%}", f"{s.mean_response_tokens:.1f}", f"{s.mean_turns:.2f}")
        progression = [s for s in summaries if s.kind in ("base", "consolidated")]
        self.query_one("#pass-chart", Sparkline).data = [s.pass_rate for s in progression]
        self.query_one("#pass-label", Static).update(
            "Pass rate, base then after each round: " + (" -> ".join(f"{s.pass_rate:.0%}" for s in progression) or "-"))
        rounds = sorted({p.round for p in self.metrics.of(CurvePoint)})
        points = curve(self.metrics, rounds[-1]) if rounds else []
        self.query_one("#curve-chart", Sparkline).data = [p["pass_rate"] for p in points]
        label = ", ".join(f"step {p['step']}: {p['pass_rate']:.0%}" for p in points) or "not measured yet"
        self.query_one("#curve-label", Static).update(f"In-context curve (held-out pass rate with experience): {label}")

    # -- jobs -------------------------------------------------------------------------------------

    def action_start(self, stage: str) -> None:
        name = self.app.settings.run
        if not name:
            self.notify("Choose or create a run on the Start screen first.", severity="warning")
            return
        started = self.app.jobs.start(stage, lambda on_event, stop: self.app.engine.run_stage(name, stage, on_event, stop))
        if started:
            self.query_one("#stage-label", Static).update(f"Starting {stage}...")
        self.app.refresh_bindings()

    def action_cancel(self) -> None:
        self.app.jobs.cancel()
        self.query_one("#stage-label", Static).update("Stopping after the current unit of work...")

    def check_action(self, action: str, parameters) -> bool | None:
        busy = self.app.jobs.busy
        if action == "cancel":
            return True if busy else None
        if action == "start":
            return None if busy else True
        return True

    def on_engine_events(self, message: EngineEvents) -> None:
        bar = self.query_one("#stage-progress", ProgressBar)
        label = self.query_one("#stage-label", Static)
        for event in message.events:
            inner = getattr(event, "stage", "").endswith(" games")  # games inside a stage's unit
            if isinstance(event, StageStarted) and not inner:
                bar.update(total=event.total, progress=0)
                label.update(f"{event.stage}: {event.detail}")
            elif isinstance(event, Progress) and inner:
                label.update(f"{self.stage_line}  ({event.stage} {event.done}/{event.total})")
            elif isinstance(event, Progress):
                bar.update(total=event.total, progress=event.done)
                self.stage_line = f"{event.stage}: {event.done}/{event.total} {event.detail}".rstrip()
                label.update(self.stage_line)
            elif isinstance(event, StageFinished) and not inner:
                label.update(f"{event.stage} finished in {event.seconds:.0f} s")
            elif isinstance(event, MetricsRecorded):
                record = parse_record(event.record)
                if record is not None:
                    self.metrics.append(record)
        self.redraw()

    def on_work_finished(self, message: WorkFinished) -> None:
        if message.job not in STAGES:
            return
        label = self.query_one("#stage-label", Static)
        if message.outcome == "ok":
            label.update(f"{message.job} finished.")
            self.notify(f"{message.job} finished", title="oel-tui")
        elif message.outcome == "stopped":
            label.update(f"{message.job} stopped; start it again to resume.")
            self.notify(f"{message.job} stopped; start it again to resume", severity="warning")
        else:
            label.update(f"{message.job} failed: {message.detail}")
            self.notify(message.detail, title=f"{message.job} failed", severity="error", timeout=10)
        self.reload()
        self.app.refresh_bindings()
