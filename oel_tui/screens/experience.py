"""Experience: the run's items with provenance; disable or edit one before consolidation, or
write a new lesson (an item with source "human" for this round's teacher)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from oel_engine.events import MetricsRecorded, Progress, StageStarted

from ..follow import POLL_SECONDS, RunFollower
from ..messages import EngineEvents, WorkFinished


class EditItem(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, text: str, prompt: str = "Edit the item (Enter saves, Esc cancels):"):
        super().__init__()
        self.text, self.prompt = text, prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Static(self.prompt)
            yield Input(self.text, id="edit-input", placeholder="one general lesson, e.g. Never step onto H.")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class ExperienceScreen(Screen):
    BINDINGS = [
        Binding("e", "toggle", "Enable/disable"),
        Binding("enter", "edit", "Edit"),  # the table's row-select also opens the editor
        Binding("n", "new_item", "New lesson"),
        Binding("t", "teach", "Teach"),
        Binding("f", "reload", "Refresh"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("", id="experience-title")
            yield Static("", id="teach-status")
            yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.show_teaching("")
        table = self.query_one("#items", DataTable)
        table.add_columns("", "round", "run", "step", "from", "item")
        self.items = []
        self.follower = RunFollower()
        self.action_reload()
        self.set_interval(POLL_SECONDS, self._follow)

    def _follow(self) -> None:
        if self.follower.tick(self.app):
            self.action_reload()  # new items the other process extracted
            self.follower.mark(self.query_one("#experience-title", Static))

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        name = self.app.settings.run
        title = self.query_one("#experience-title", Static)
        table = self.query_one("#items", DataTable)
        table.clear()
        if not name:
            title.update("No run chosen: pick or create one on the Start screen (1).")
            self.items = []
            return
        try:
            self.items = self.app.engine.experience(name)
        except Exception as exc:
            title.update(f"Run {name}: {exc}")
            self.items = []
            return
        new = sum(i.new_this_round for i in self.items)
        title.update(f"Run {name}: {len(self.items)} item(s), {new} new this round (marked +). "
                     "Disabled items (-) are left out of consolidation.")
        for item in self.items:
            mark = ("+" if item.new_this_round else " ") + (" " if item.enabled else "-") + ("*" if item.edited else " ")
            run = {-1: "you", -2: "file"}.get(item.run, str(item.run))
            step = "-" if item.run < 0 else str(item.step)
            # Text, not str: a table reads strings as markup, and lessons name moves as [down]
            table.add_row(mark, str(item.round), run, step, Text(f"{item.source} {item.episode_id}".strip()),
                          Text(item.text[:200]))

    def _selected(self):
        table = self.query_one("#items", DataTable)
        if not self.items or table.cursor_row is None or table.cursor_row >= len(self.items):
            return None
        return self.items[table.cursor_row]

    def _change(self, item, enabled: bool, text: str) -> None:
        try:
            self.app.engine.set_item(self.app.settings.run, item, enabled, text)
        except Exception as exc:  # an item from a file, a run busy elsewhere: say so, keep going
            self.notify(str(exc), title="Not changed", severity="warning")
        self.action_reload()

    def action_toggle(self) -> None:
        item = self._selected()
        if item is not None:
            self._change(item, not item.enabled, item.text)

    def action_new_item(self) -> None:
        name = self.app.settings.run
        if not name:
            self.notify("Choose or create a run on the Start screen first.", severity="warning")
            return

        def add(text: str | None) -> None:
            if not text:
                return
            try:
                self.app.engine.add_item(name, text)
            except Exception as exc:
                self.notify(str(exc), title="Lesson not added", severity="warning")
                return
            self.notify("Added: this round's teacher reads it after the extracted experience.")
            self.action_reload()

        self.app.push_screen(EditItem("", "Write a lesson for the model (Enter adds it, Esc cancels):"), add)

    def action_edit(self) -> None:
        item = self._selected()
        if item is None:
            return

        def save(text: str | None) -> None:
            if text and text != item.text:
                self._change(item, item.enabled, text)

        self.app.push_screen(EditItem(item.text), save)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def action_teach(self) -> None:
        """A teaching round: the run's lessons consolidated (no extraction), then Play in versus."""
        name = self.app.settings.run
        if not name:
            self.notify("Choose or create a run on the Start screen first.", severity="warning")
            return
        if self.app.jobs.busy:
            self.notify(f"The model is busy ({self.app.jobs.current}); teach again in a moment.", severity="warning")
            return
        try:
            target, said = self.app.engine.prepare_teaching(name)
        except Exception as exc:
            self.notify(str(exc), title="Nothing to teach yet", severity="warning")
            return
        if target != name:
            self.app.settings.run = target
        if said:
            self.notify(said, timeout=8)
        self.app.jobs.start("teach", lambda on_event, stop: self.app.run_stage(target, "round", on_event, stop))
        self.show_teaching(
            f"Teaching run {target}: a round with your lessons as the teacher's context (c on Rounds (4) cancels)...")
        self.action_reload()
        self.app.refresh_bindings()

    def on_engine_events(self, message: EngineEvents) -> None:
        if self.app.jobs.current == "teach":
            for event in message.events:
                if isinstance(event, (StageStarted, Progress)) and not event.stage.endswith(" games"):
                    done = f" {event.done}/{event.total}" if isinstance(event, Progress) else ""
                    self.show_teaching(f"Teaching: {event.stage}{done}")
        if any(isinstance(e, MetricsRecorded) or getattr(e, "stage", "") == "extract" for e in message.events):
            self.action_reload()

    def on_work_finished(self, message: WorkFinished) -> None:
        if message.job != "teach":
            return
        if message.outcome == "ok":
            self.show_teaching("Taught: Play (2) shows the base against the taught model on a held-out map.")
        elif message.outcome == "stopped":
            self.show_teaching("Teaching stopped; t resumes it where it stopped.")
        else:
            self.show_teaching(f"Teaching failed: {message.detail}")
        self.action_reload()

    def show_teaching(self, text: str) -> None:
        status = self.query_one("#teach-status", Static)
        status.update(text)
        status.display = bool(text)

    def check_action(self, action: str, parameters) -> bool | None:
        if action in ("toggle", "edit", "new_item", "teach"):
            if self.app.jobs.current in ("round", "consolidate", "teach"):
                return None  # edits during consolidation would not be used; keep them for later
            return True if self.items or action in ("new_item", "teach") else None
        return True
