"""Experience: extraction prompts and parsing, and the experience file format."""
