"""oel_tui: the Textual app. Imports no torch/transformers at module import; engine work runs in workers."""
