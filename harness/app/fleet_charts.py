"""The control chart drawn as inline SVG: the individuals panel (points in run order, centre
line, natural process limits, spec limits, flagged points) over the moving-range panel (MR̄
and its UCL). matplotlib (Agg, no pyplot state) is imported when a chart is drawn."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.evidence.records.control import ControlChart

_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def control_chart_svg(chart: ControlChart, *, width: float = 9.0, height: float = 6.0) -> str:
    """The chart as an ``<svg>`` element (text kept as text), for a chart with points."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = list(range(1, chart.n + 1))
    values = [p.value for p in chart.points]
    unit = f" [{chart.unit}]" if chart.unit else ""
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "harness-fleet"}):
        fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        top.plot(xs, values, "o-", color="tab:blue", ms=4, lw=1, label="value")
        flagged = [(x, p.value) for x, p in zip(xs, chart.points, strict=True) if p.beyond]
        if flagged:
            top.plot(*zip(*flagged, strict=True), "o", ms=9, mfc="none", mec="tab:red",
                     mew=2, label="beyond natural limits")
        lines = [(chart.centre, "x̄", "black", "-"), (chart.unpl, "UNPL", "tab:red", "--"),
                 (chart.lnpl, "LNPL", "tab:red", "--"), (chart.high, "USL", "tab:orange", "-"),
                 (chart.low, "LSL", "tab:orange", "-")]
        for y, label, colour, style in lines:
            if y is not None:
                top.axhline(y, color=colour, ls=style, lw=1.2)
                top.annotate(f"{label} {_fmt(y)}", (1.0, y), xycoords=("axes fraction", "data"),
                             xytext=(4, 0), textcoords="offset points", va="center",
                             fontsize=8, color=colour)
        top.set(ylabel=f"{chart.name}{unit}", title=f"Individuals: {chart.name}")
        top.grid(alpha=0.3)
        top.legend(loc="upper left", fontsize=8)
        mr_x = xs[1:]
        bottom.plot(mr_x, list(chart.moving_ranges), "s-", color="tab:green", ms=3, lw=1)
        high_mr = [(mr_x[i], chart.moving_ranges[i]) for i in chart.mr_flagged]
        if high_mr:
            bottom.plot(*zip(*high_mr, strict=True), "s", ms=9, mfc="none", mec="tab:red",
                        mew=2)
        for y, label, colour, style in ((chart.mr_bar, "MR̄", "black", "-"),
                                        (chart.mr_ucl, "UCL", "tab:red", "--")):
            if y is not None:
                bottom.axhline(y, color=colour, ls=style, lw=1.2)
                bottom.annotate(f"{label} {_fmt(y)}", (1.0, y),
                                xycoords=("axes fraction", "data"), xytext=(4, 0),
                                textcoords="offset points", va="center", fontsize=8,
                                color=colour)
        bottom.set(xlabel="run, in run order", ylabel=f"moving range{unit}",
                   title="Moving range")
        bottom.grid(alpha=0.3)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    return _PROLOGUE.sub("", buf.getvalue(), count=1)


__all__ = ["control_chart_svg"]
