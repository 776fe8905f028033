"""Measuring a model: held-out play, the move-probability probe, the instruction probe."""
