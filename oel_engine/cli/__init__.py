"""The `oel` command line: parsing, options to configs, output (tables, progress), exit codes."""
