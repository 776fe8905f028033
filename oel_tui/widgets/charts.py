"""Line charts with axes (plotext inside Textual), fed with plain lists of points."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual_plotext import PlotextPlot

MARKERS = ("●", "■", "▲", "◆")


@dataclass
class Series:
    label: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)


class Chart(PlotextPlot):
    """One chart: a title, axis labels, and any number of labelled series (empty ones skipped)."""

    def show(self, title: str, series: list[Series], *, xlabel: str = "", ylabel: str = "",
             ylim: tuple[float, float] | None = None, integer_x: bool = True) -> None:
        plt = self.plt
        plt.clear_figure()
        drawn = [s for s in series if s.x]
        plt.title(title if drawn else f"{title}: no data yet")
        for marker, s in zip(MARKERS * 4, drawn):
            plt.plot(s.x, s.y, label=s.label, marker=marker)
        if xlabel:
            plt.xlabel(xlabel)
        if ylabel:
            plt.ylabel(ylabel)
        if ylim is not None:
            plt.ylim(*ylim)
        xs = sorted({x for s in drawn for x in s.x})
        if integer_x and xs:
            plt.xticks(xs, [f"{x:g}" for x in xs])
            if len(xs) == 1:  # one point: give it room instead of a zero-width axis
                plt.xlim(xs[0] - 1, xs[0] + 1)
        self.series = drawn  # what is drawn, for tests and the table beside it
        self.refresh()
