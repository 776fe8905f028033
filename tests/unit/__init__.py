"""Tests without a model: games, prompts, configuration, storage, the CLI's parsing, the layers."""
