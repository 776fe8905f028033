"""`python -m oel_engine.cli` runs the `oel` command."""

from .main import main

if __name__ == "__main__":
    main()
