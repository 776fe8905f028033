"""Rounds: start a round (or one stage) in the background, follow it, cancel it, see the curves.

Charts with axes (plotext): per round, the held-out pass rate, legal-move rate and good-move
probability of the base / in-context / consolidated models; per training step, loss, reverse
KL and top-k mass; the in-context curve during extraction; and the table of numbers."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)

from oel_engine.events import MetricsRecorded, Progress, StageFinished, StageStarted
from oel_engine.metrics import CurvePoint, MetricsLog, PrecisionChoice, parse_record
from oel_engine.report.summaries import consolidation_steps, curve, eval_summaries

from ..follow import POLL_SECONDS, RunFollower
from ..jobs import STAGE_JOBS
from ..messages import EngineEvents, WorkFinished
from ..widgets.charts import Chart, Series

KINDS = (("base", "base"), ("in_context", "in context"), ("consolidated", "consolidated"))
TABS = ("per-round", "training", "curve", "table")


class RoundsScreen(Screen):
    BINDINGS = [
        Binding("g", "start('round')", "Run round"),
        Binding("x", "start('extract')", "Extract"),
        Binding("o", "start('collect')", "Collect"),
        Binding("k", "start('consolidate')", "Consolidate"),
        Binding("v", "start('evaluate')", "Evaluate"),
        Binding("c", "cancel", "Cancel"),
        Binding("t", "next_tab", "Next chart"),
        Binding("l", "worker_log", "Worker log"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="rounds"):
            yield Static("", id="run-title")
            yield Static("Idle.", id="stage-label")
            yield ProgressBar(total=1, id="stage-progress", show_eta=True)  # determinate while idle: no animation
            with TabbedContent(initial="per-round", id="chart-tabs"):
                with TabPane("Per round", id="per-round"):
                    with Horizontal(classes="charts"):
                        yield Chart(id="pass-chart")
                        yield Chart(id="legal-chart")
                        yield Chart(id="probe-chart")
                with TabPane("Training steps", id="training"):
                    with Horizontal(classes="charts"):
                        yield Chart(id="loss-chart")
                        yield Chart(id="mass-chart")
                with TabPane("In-context curve", id="curve"):
                    yield Chart(id="curve-chart")
                with TabPane("Table", id="table"):
                    yield DataTable(id="results", cursor_type="none")
            yield Static("", id="pass-label")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#results", DataTable)
        table.add_columns("round", "model", "pass rate", "legal actions", "good-move prob", "tokens", "turns")
        self.metrics = MetricsLog([])
        self.stage_line = ""
        self.follower = RunFollower()
        self.reload()
        self.set_interval(POLL_SECONDS, self._follow)

    def _follow(self) -> None:
        if not self.follower.tick(self.app):
            return
        self.reload()
        self.app.refresh_bindings()
        if self.follower.following:
            live = self.follower.live or {}
            if live.get("total"):
                self.query_one("#stage-progress", ProgressBar).update(total=live["total"], progress=live.get("done", 0))
            self.query_one("#stage-label", Static).update(
                f"{live.get('stage', '')}: {live.get('done', 0)}/{live.get('total', 0)} {live.get('detail', '')}".strip()
                if live else "")
            self.follower.mark(self.query_one("#run-title", Static))

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
        precision = self.metrics.last(PrecisionChoice, use="consolidation")
        sampling = self.metrics.last(PrecisionChoice, use="sampling")
        shown = f"; consolidation in {precision.choice} ({precision.reason})" if precision else ""
        shown += f"; sampling in {sampling.choice}" if sampling else ""
        self.query_one("#run-title", Static).update(
            f"Run {name} - {cfg.game.label()}, preset {cfg.preset}, {view.rounds_done} of {cfg.rounds} round(s) done{shown}")
        self.redraw()

    def redraw(self) -> None:
        steps = consolidation_steps(self.metrics)
        x = list(range(1, len(steps) + 1))  # optimizer steps of every round, in order
        self.query_one("#loss-chart", Chart).show(
            "Training loss and reverse KL per step",
            [Series("loss", x, [m.loss for m in steps]), Series("reverse KL", x, [m.reverse_kl for m in steps])],
            xlabel="optimizer step (all rounds)")
        reported = [(i, m.topk_mass) for i, m in zip(x, steps) if m.topk_mass is not None]  # not by TRL's steps
        self.query_one("#mass-chart", Chart).show(
            "Top-k mass per step", [Series("top-k mass", [i for i, _ in reported], [v for _, v in reported])],
            xlabel="optimizer step (all rounds)")
        summaries = eval_summaries(self.metrics)
        for chart, key, title in (("#pass-chart", "pass_rate", "Pass rate"),
                                  ("#legal-chart", "legal_action_rate", "Legal-move rate"),
                                  ("#probe-chart", "good_move_prob", "Good-move probability")):
            series = []
            for kind, label in KINDS:
                rows = [s for s in summaries if s.kind == kind and getattr(s, key) is not None]
                series.append(Series(label, [s.round for s in rows], [getattr(s, key) for s in rows]))
            self.query_one(chart, Chart).show(title, series, xlabel="round", ylim=(0, 1))
        table = self.query_one("#results", DataTable)
        table.clear()
        for s in summaries:
            probe = "-" if s.good_move_prob is None else f"{s.good_move_prob:.3f}"
            table.add_row(str(s.round), str(s.kind), f"{s.pass_rate:.1%} ± {s.pass_rate_std:.1%}",
                          f"{s.legal_action_rate:.1%}", probe, f"{s.mean_response_tokens:.1f}", f"{s.mean_turns:.2f}")
        progression = [s for s in summaries if s.kind in ("base", "consolidated")]
        rounds = sorted({p.round for p in self.metrics.of(CurvePoint)})
        points = curve(self.metrics, rounds[-1]) if rounds else []
        self.query_one("#curve-chart", Chart).show(
            f"In-context curve, round {rounds[-1] if rounds else 0}: held-out pass rate with the experience after step n",
            [Series("pass rate (mean over runs)", [p["step"] for p in points], [p["pass_rate"] for p in points])],
            xlabel="extraction step", ylim=(0, 1))
        line = " -> ".join(f"{s.pass_rate:.0%}" for s in progression) or "-"
        probe = " -> ".join(f"{s.good_move_prob:.2f}" for s in progression if s.good_move_prob is not None)
        self.query_one("#pass-label", Static).update(
            f"Base then after each round: pass rate {line}" + (f"; good-move probability {probe}" if probe else ""))

    def action_next_tab(self) -> None:
        tabs = self.query_one("#chart-tabs", TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]

    # -- jobs -------------------------------------------------------------------------------------

    def action_start(self, stage: str) -> None:
        name = self.app.settings.run
        if not name:
            self.notify("Choose or create a run on the Start screen first.", severity="warning")
            return
        try:  # a run that is not an OEL run (or not there) gets no worker: one line, nothing written
            self.app.engine.open_run(name, None)
        except Exception as exc:
            self.notify(f"Run {name} cannot run rounds: {' '.join(str(exc).split())}", severity="warning")
            return
        busy_with = self.app.jobs.current
        started = self.app.jobs.start(stage, lambda on_event, stop: self.app.run_stage(name, stage, on_event, stop))
        if started:
            self.query_one("#stage-label", Static).update(f"Starting {stage}...")
        else:
            self.notify(f"The model is busy ({busy_with}); start {stage} again in a moment.", severity="warning")
        self.app.refresh_bindings()

    def action_cancel(self) -> None:
        again = self.app.jobs.stop.is_set()
        self.app.jobs.cancel()  # a second cancel forces: the worker process ends within seconds
        self.query_one("#stage-label", Static).update(
            "Ending the worker now..." if again else "Stopping after the current unit of work (cancel again to end it now)...")

    def action_worker_log(self) -> None:
        from ..worker_process import last_lines

        name = self.app.settings.run
        stages = self.app.stages
        lines = last_lines(stages.log_file(name), 12) if stages is not None and name else []
        self.notify("\n".join(lines) if lines else "No worker log for this run yet.", title="worker log", timeout=20)

    def check_action(self, action: str, parameters) -> bool | None:
        busy = self.app.jobs.busy
        if action == "cancel":
            return True if busy else None
        if action == "start":
            return None if busy or self.follower.following else True
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
        if message.job not in STAGE_JOBS:
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
