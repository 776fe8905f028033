"""oel_engine: Online Experiential Learning on text games (no UI; never imports textual)."""

__version__ = "0.1.0"
