"""Following a run that another process writes (`oel loop` on a server, the app opened over SSH):
the screens poll the run's files and reload when something they show has changed."""

from __future__ import annotations

from pathlib import Path

from oel_engine.run.live import read_live, snapshot, written_elsewhere

POLL_SECONDS = 2.0


class RunFollower:
    """One per screen. `tick(app)` says whether the screen should reload now."""

    def __init__(self) -> None:
        self.following = False
        self.snap: tuple | None = None
        self.live: dict | None = None

    def tick(self, app) -> bool:
        name = app.settings.run
        saves = getattr(app.engine, "saves", None)
        if not name or saves is None or app.jobs.busy:  # our own job: its events drive the screen
            return self._stop()
        run_dir = Path(saves) / name
        if not written_elsewhere(run_dir):
            return self._stop()  # reload once more when the other writer has just finished
        snap = snapshot(run_dir)
        changed = not self.following or snap != self.snap
        self.following, self.snap, self.live = True, snap, read_live(run_dir)
        return changed

    def _stop(self) -> bool:
        was = self.following
        self.following, self.snap, self.live = False, None, None
        return was

    def mark(self, title) -> None:
        """Add the read-only line under a screen's title (a Static) while following."""
        if self.following:
            title.update(f"{title.render()}\n{self.line()}")

    def line(self) -> str:
        """What the screen says while it follows."""
        where = ""
        if self.live:
            where = f" (pid {self.live.get('pid')}, {self.live.get('stage')} {self.live.get('done')}/{self.live.get('total')})"
        return f"Read-only: another process is writing this run{where}; following it live."
