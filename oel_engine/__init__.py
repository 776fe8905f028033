"""oel_engine: Online Experiential Learning on text games (no UI; never imports textual).

The packages in layers, top first. A module imports only from its own package and from packages
of lower layers, never sideways or up (tests/unit/test_boundaries.py checks every import, lazy ones
too):

    cli, worker                 the `oel` command; the app's child process for heavy stages
    session                     the engine's one door (Engine, RunSession)
    round, report               a round's stages under one driver; runs read for people
    run                         everything that knows a run folder
    consolidation, evaluation, experience   the algorithm; measuring a model; writing experience
    play                        prompts, policies, rollout, trajectories
    model, games                loading/sampling a model; the games
    config, presets, overrides, events, errors, metrics, fileio, logs   the shared vocabulary
"""

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "worker"),
    ("session",),
    ("round", "report"),
    ("run",),
    ("consolidation", "evaluation", "experience"),
    ("play",),
    ("model", "games"),
    ("config", "presets", "overrides", "events", "errors", "metrics", "fileio", "logs"),
)
