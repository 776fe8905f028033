"""Regenerate the README's screenshots (SVG, exported by Textual) from the app with a fake engine.

    python docs/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oel_engine.config import GameConfig  # noqa: E402
from oel_tui.app import OelApp, Settings  # noqa: E402
from tests.support.fake_engine import FakeEngine  # noqa: E402

SHOTS = {
    "start": [],
    "play": ["2", "right", "down", "space"],
    "versus": ["2", "v", "space", "space"],
    "experience": ["3"],
    "rounds": ["4", "k"],
    "replay": ["5", "n", "n"],
}


async def shoot(name: str, keys: list[str]) -> None:
    engine = FakeEngine(Path("/nonexistent"))
    engine.release.set()
    engine.rounds_done = 2  # two finished rounds to pick from on Play
    app = OelApp(engine=engine, settings=Settings(game=GameConfig(), run="demo"))
    async with app.run_test(size=(100, 30)) as pilot:
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        app.save_screenshot(f"{name}.svg", str(ROOT / "docs"))


async def main() -> None:
    for name, keys in SHOTS.items():
        await shoot(name, keys)
        print(f"docs/{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
