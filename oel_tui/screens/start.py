"""Start: the game, the model, and the run (new, or one from saves/ to resume)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Select, Static

from oel_engine.config import GameConfig, ModelConfig

from ..messages import WorkFinished

GAME_CHOICES = [
    ("Frozen Lake 3x3, 2 holes (paper)", GameConfig(name="frozenlake", size=3, holes=2)),
    ("Frozen Lake 4x4, 3 holes", GameConfig(name="frozenlake", size=4, holes=3)),
    ("Sokoban 6x6, 1 box (paper)", GameConfig(name="sokoban", room=6, boxes=1)),
]


class StartScreen(Screen):
    BINDINGS = [
        Binding("l", "load_model", "Load model"),
        Binding("n", "new_run", "New run"),
        Binding("escape", "leave_field", "Leave the field", show=False),
    ]

    def compose(self) -> ComposeResult:
        # the game the app was started with is the one selected (its Changed event on mount
        # must not switch the app to the first choice)
        current = self.app.settings.game
        self.choices = list(GAME_CHOICES)
        if all(config != current for _, config in self.choices):
            self.choices.append((current.label(), current))
        self.chosen = next(i for i, (_, config) in enumerate(self.choices) if config == current)
        yield Header()
        with VerticalScroll(id="start"):
            yield Static("Game", classes="section")
            yield Select([(label, i) for i, (label, _) in enumerate(self.choices)], value=self.chosen,
                         allow_blank=False, id="game")
            yield Static("Model: 'embedded' (SmolLM2-135M, offline), a Hugging Face id, or a local folder", classes="section")
            with Horizontal(classes="row"):
                yield Input("embedded", id="model")
                yield Button("Load (l)", id="load")
            yield Static("", id="model-status")
            yield Static("Runs (Enter selects one to resume)", classes="section")
            yield DataTable(id="runs", cursor_type="row")
            with Horizontal(classes="row"):
                yield Input(placeholder="new run name", id="run-name")
                yield Button("Create (n)", id="create")
            yield Static("", id="run-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "game", "model", "rounds", "games", "last pass rate", "note")
        self.refresh_runs()
        wanted = self.app.settings.run
        if wanted and wanted not in self.run_names:  # `oel-tui --run NEW`: offer to create it
            self.app.settings.run = None
            self.query_one("#run-name", Input).value = wanted
            self.show_run(f"Run {wanted} does not exist yet: press Enter to create it (demo preset, "
                          "with the game and model above).")
        else:
            self.show_run()
        self.query_one("#model", Input).value = self.app.settings.model.model
        # A newcomer (no runs yet, or a new name given) starts by typing the run's name; anyone
        # else by choosing a run, and keeps 1-5 for the screens (typed into a text field, they
        # would be part of the text). Tab goes top to bottom either way.
        if not self.run_names or self.query_one("#run-name", Input).value:
            self.query_one("#run-name", Input).focus()
        else:
            self.query_one("#runs", DataTable).focus()
        if self.app.settings.autoload:
            self.action_load_model()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    def refresh_runs(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        self.run_names = []
        for r in self.app.engine.runs():
            rate = "-" if r.last_pass_rate is None else f"{r.last_pass_rate:.1%}"
            table.add_row(r.name, r.game, r.model, str(r.rounds), str(r.episodes), rate, r.problem)
            self.run_names.append(r.name)

    def show_run(self, note: str = "") -> None:
        run = self.app.settings.run
        self.query_one("#run-status", Static).update(
            note or (f"Current run: {run}" if run else "No run chosen yet: type a name above and press Enter."))

    def action_leave_field(self) -> None:
        """Out of a text field (where 1-5 and the letters are typed, not keys) onto the run list."""
        self.query_one("#runs", DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "run-name":
            self.action_new_run()
        elif event.input.id == "model":
            self.action_load_model()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "game" and event.value is not Select.BLANK:
            self.app.settings.game = self.choices[int(event.value)][1]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs" and 0 <= event.cursor_row < len(self.run_names):
            self.app.settings.run = self.run_names[event.cursor_row]
            self.show_run()
            self.notify(f"Run {self.app.settings.run} selected: see Rounds (4) and Experience (3).")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load":
            self.action_load_model()
        elif event.button.id == "create":
            self.action_new_run()

    def action_load_model(self) -> None:
        spec = self.query_one("#model", Input).value.strip() or "embedded"
        self.app.settings.model = ModelConfig(model=spec)
        status = self.query_one("#model-status", Static)

        def work(on_event, stop):
            def say(text):
                self.app.call_from_thread(status.update, text)

            return self.app.engine.load_model(self.app.settings.model, say)

        if self.app.jobs.start("load-model", work):
            status.update(f"Loading {spec}...")
        else:
            self.notify("Busy: wait for the current job or cancel it.", severity="warning")

    def action_new_run(self) -> None:
        from oel_engine.presets import build

        name = self.query_one("#run-name", Input).value.strip()
        if not name:
            self.show_run("Type a name for the new run first (letters, digits, '.', '_' or '-').")
            return
        if name in self.run_names:
            self.show_run(f"A run named {name} exists already: choose it in the list (Enter) or type another name.")
            return
        try:
            config = build("demo", self.app.settings.game, self.app.settings.model, 2)
            self.app.engine.open_run(name, config)
        except Exception as exc:
            self.show_run(f"Cannot create run '{name}': {' '.join(str(exc).split())}")
            return
        self.app.settings.run = name
        self.refresh_runs()
        self.show_run()
        self.query_one("#runs", DataTable).focus()  # out of the text field, so 1-5 switch screens again
        self.notify(f"Run {name} created (demo preset). Start a round on the Rounds screen (4).")

    def on_work_finished(self, message: WorkFinished) -> None:
        if message.job != "load-model":
            return
        status = self.query_one("#model-status", Static)
        if message.outcome == "ok":
            status.update(f"Loaded: {self.app.engine.model_name()}")
        else:
            status.update(f"Could not load the model: {message.detail}")
            self.notify(message.detail, title="Model not loaded", severity="error", timeout=10)
