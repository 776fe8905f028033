"""The engine's one door, used the same way by the `oel` CLI and the `oel-tui` app.

`Engine` holds the saves folder and the loaded model (the app keeps one model across stages and
runs; the model itself records which adapters are merged into it). `Engine.session(name)` opens
a run for work: a `RunSession` owns the run's store (and its writer lock) and runs stages, edits
experience, and records a person's games. Reading a run (listing, reports, experience) never
takes the writer lock. Heavy imports (torch, transformers) happen inside methods, so importing
this module stays light.

Layout: views.py (the plain data it hands out), reading.py, playing.py, standalone.py,
writing.py (the Engine's parts by concern), engine.py (the door), run_session.py.
"""

from .engine import Engine
from .run_session import RunSession
from .views import STAGE_REQUESTS, AgentMove, EpisodeRow, ItemView, RunReport

__all__ = ["AgentMove", "Engine", "EpisodeRow", "ItemView", "RunReport", "RunSession", "STAGE_REQUESTS"]
