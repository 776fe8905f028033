"""PNG charts for reports (matplotlib, no screen needed): one function per figure, each taking
plain numbers and a path, so the run report, the comparison and the claims matrix share them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..fileio import atomic_write_bytes

# Colours that stay apart for colour-blind readers (Okabe-Ito).
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def grouped_bars(path: Path, title: str, groups: Sequence[str], series: dict[str, list[tuple[float, float] | None]],
                 ylabel: str, baseline: tuple[str, float] | None = None, percent: bool = True) -> Path:
    """Bars per group (x) for each series, with error bars (mean, spread); None leaves a gap.
    `baseline` draws a labelled horizontal line (the random player)."""
    plt = _pyplot()
    wrapped = any("\n" in g for g in groups)  # several-line labels need room, not a slant
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(series)) / 2 + 2,
                                        1.6 * len(groups) + 1.5 if wrapped else 0), 3.6))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        points = [(x, v) for x, v in zip(xs, values) if v is not None]
        if not points:
            continue
        scale = 100 if percent else 1
        bars = ax.bar([x for x, _ in points], [v[0] * scale for _, v in points], width,
                      yerr=[v[1] * scale for _, v in points], capsize=3, label=name, color=COLOURS[i % len(COLOURS)])
        ax.bar_label(bars, fmt="%.0f" if percent else "%.1f", fontsize=7, padding=2)
    if baseline is not None:
        ax.axhline(baseline[1] * (100 if percent else 1), color="grey", linestyle="--", linewidth=1, label=baseline[0])
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1] * 1.1, 10 if percent else 1))  # zero bars keep a readable axis
    ax.set_xticks(range(len(groups)), groups, rotation=15 if len(groups) > 4 and not wrapped else 0, fontsize=8)
    ax.set_ylabel(f"{ylabel} (%)" if percent else ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def lines(path: Path, title: str, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str,
          percent: bool = False, marks: Sequence[float] = ()) -> Path:
    """One line per series of (x, y) points; `marks` are dashed vertical lines (round boundaries)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    scale = 100 if percent else 1
    for i, (name, points) in enumerate(series.items()):
        if points:
            ax.plot([x for x, _ in points], [y * scale for _, y in points], marker="o", markersize=3, label=name,
                    color=COLOURS[i % len(COLOURS)])
    for x in marks:
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} (%)" if percent else ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)
