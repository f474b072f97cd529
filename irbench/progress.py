"""Rich progress bars on stderr (silent when stderr is not a terminal)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def console():
    from rich.console import Console

    return Console(stderr=True)


def bar(field: str, label: str = "{task.description}", con=None):
    """A transient rich progress bar: label, bar, n/total, ``task.fields[field]``, elapsed,
    remaining (``con`` defaults to :func:`console`)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )  # fmt: skip

    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(f"[cyan]{{task.fields[{field}]}}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=con or console(), transient=True,
    )  # fmt: skip


def track(
    items: Iterable[T], description: str, total: int | None = None, unit: str = "docs"
) -> Iterator[T]:
    """Yield from ``items`` while showing count, rate and ETA."""
    con = console()
    if not con.is_terminal:
        yield from items
        return
    with bar("rate", con=con) as progress:
        task = progress.add_task(description, total=total, rate="")
        for n, item in enumerate(items, start=1):
            yield item
            if n % 256 == 0 or n == total:
                speed = progress.tasks[0].speed
                rate = f"{speed:,.0f} {unit}/s" if speed else ""
                progress.update(task, completed=n, rate=rate)
