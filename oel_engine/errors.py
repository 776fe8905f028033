"""The one error type users see: its message is a single line that says what to do."""


class OelError(Exception):
    """A user-facing failure (bad input, a model that cannot load, a corrupt file)."""


class Stopped(Exception):
    """Raised inside long work when the stop flag is set; the work so far is kept."""
