"""The embedded SmolLM2 model end to end (marked integration)."""
