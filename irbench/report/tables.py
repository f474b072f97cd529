"""Rich tables for the terminal."""

from __future__ import annotations

from collections.abc import Mapping


def metrics_table(metrics: Mapping[str, float], title: str = ""):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table
