"""The engine on tiny models built from a config in memory (no download)."""
