"""Training curves: CSV and PNG in ``run_dir/train``, and the live progress display."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PLOTS = (
    ("loss", ("loss", "rank_loss", "reg_query", "reg_doc")),
    ("avg nnz", ("q_nnz", "d_nnz")),
    ("FLOPS (batch estimate)", ("batch_flops",)),
)


def write(folder: Path, history: list[dict[str, Any]], measure_key: str) -> None:
    """``curves.csv`` (one row per logged step, union of keys) and ``curves.png``."""
    from irbench.runs.atomic import atomic_open

    if not history:
        return
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with atomic_open(folder / "curves.csv") as f:
        f.write(",".join(keys) + "\n")
        for row in history:
            f.write(",".join("" if row.get(k) is None else str(row[k]) for k in keys) + "\n")
    with atomic_open(folder / "curves.png", "wb") as f:
        f.write(plot(history, measure_key))


def plot(history: list[dict[str, Any]], measure_key: str) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dev_key = f"dev_{measure_key}"
    panels = list(PLOTS) + (
        [(f"dev {measure_key}", (dev_key,))] if any(dev_key in r for r in history) else []
    )
    fig = Figure(figsize=(4.2 * len(panels), 3.4), dpi=100)
    FigureCanvasAgg(fig)
    for i, (title, keys) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for k in keys:
            pts = [(r["step"], r[k]) for r in history if r.get(k) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=k, marker="." if k == dev_key else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class Progress:
    """A rich progress bar with steps/s on a terminal; one log line per logged step otherwise
    (on stderr, main process only)."""

    def __init__(self, total: int, start: int, enabled: bool = True):
        self.enabled = enabled
        self.total = total
        self._progress = None
        if not enabled:
            return
        from irbench.progress import bar, console

        con = console()
        if con.is_terminal:
            self._progress = bar("info", label="training", con=con)
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, completed=start, info="")

    def update(self, step: int, row: dict[str, Any]) -> None:
        if self._progress is not None:
            info = f"{row.get('steps_per_s', 0):.2f} steps/s loss {row.get('loss', 0):.4f}"
            self._progress.update(self._task, completed=step, info=info)

    def log(self, row: dict[str, Any], measure_key: str) -> None:
        if not self.enabled:
            return
        parts = [f"step {row['step']}/{self.total}"]
        if "loss" in row:
            parts.append(f"loss {row['loss']:.4f}")
        for k in ("q_nnz", "d_nnz"):
            if k in row:
                parts.append(f"{k} {row[k]:.1f}")
        dev = row.get(f"dev_{measure_key}")
        if dev is not None:
            parts.append(f"dev {measure_key} {dev:.4f}")
        if "steps_per_s" in row:
            parts.append(f"{row['steps_per_s']:.2f} steps/s")
        line = "irbench train: " + ", ".join(parts)
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
