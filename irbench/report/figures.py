"""Efficiency/effectiveness figures as PNG bytes (matplotlib's Agg canvas, no pyplot state).

One labelled point per system, on the leaderboard's efficiency dataset (the dataset whose
latency and index size are reported), so both axes describe the same runs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from irbench.report.leaderboard import Leaderboard

DPI = 110


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y),
    ordered by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _points(lb: Leaderboard, xkey: str) -> list[tuple[str, float, float]]:
    ds = lb.efficiency_dataset
    out = []
    for row in lb.rows:
        cell = row.cells.get(ds) if ds else None
        x = row.efficiency.get(xkey)
        if cell is None or cell.value is None or x is None or x <= 0:
            continue
        out.append((row.name, float(x), float(cell.value)))
    return out


def _figure(lb: Leaderboard, xkey: str, xlabel: str, title: str, pareto: bool) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.9), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pts = _points(lb, xkey)
    ax.set_title(f"{title} ({lb.efficiency_dataset})", fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(lb.measure)
    ax.grid(True, alpha=0.3, which="both")
    if not pts:
        ax.text(0.5, 0.5, "no runs with this figure recorded", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
    else:
        front = set(pareto_front([(x, y) for _, x, y in pts])) if pareto else set()
        xs = [x for _, x, _ in pts]
        ys = [y for _, _, y in pts]
        colors = ["#d62728" if i in front else "#1f77b4" for i in range(len(pts))]
        ax.scatter(xs, ys, c=colors, s=40, zorder=3)
        if front:
            fx = sorted(front, key=lambda i: xs[i])
            ax.step([xs[i] for i in fx], [ys[i] for i in fx], where="post", color="#d62728",
                    alpha=0.6, zorder=2, label="Pareto front")  # fmt: skip
            ax.legend(loc="lower right", fontsize=8)
        if max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.margins(x=0.25, y=0.15)
        _labels(fig, ax, pts)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _labels(fig, ax, pts: list[tuple[str, float, float]]) -> None:
    """Label each point, moving a label down a line while it would overlap one placed before."""
    fig.canvas.draw()  # fixes the limits, so data -> pixel transforms are final
    placed: list[tuple[float, float, float]] = []  # (x0, x1, y) of labels, in pixels
    line = 10.0
    for name, x, y in sorted(pts, key=lambda p: -p[2]):
        px, py = ax.transData.transform((x, y))
        width = 5.5 * len(name)
        dy = 4.0
        while any(
            abs((py + dy) - ly) < line and px + 5 < x1 and px + 5 + width > x0
            for x0, x1, ly in placed
        ):
            dy -= line
        placed.append((px + 5, px + 5 + width, py + dy))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, dy * 72 / fig.dpi),
                    fontsize=8)  # fmt: skip


def latency_figure(lb: Leaderboard) -> bytes:
    """Effectiveness vs query latency, the Pareto front (faster and better) highlighted."""
    return _figure(lb, "ms_per_query", "ms / query (lower is better)",
                   f"{lb.measure} vs latency", pareto=True)  # fmt: skip


def size_figure(lb: Leaderboard) -> bytes:
    """Effectiveness vs index size on disk."""
    return _figure(lb, "index_mb", "index size, MiB (lower is better)",
                   f"{lb.measure} vs index size", pareto=True)  # fmt: skip


def figures(lb: Leaderboard) -> dict[str, bytes]:
    return {"latency.png": latency_figure(lb), "index_size.png": size_figure(lb)}
