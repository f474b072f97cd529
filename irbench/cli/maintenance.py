"""``irbench reproduce`` and ``irbench doctor``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.common import Overrides
from irbench.cli.errors import handle_errors


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_cmd)
    app.command("doctor")(doctor_cmd)


@handle_errors
def reproduce_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by irbench run")],
    work_dir: Annotated[
        Path | None, typer.Option(help="Where to re-run (default RUN_DIR/.reproduce)")
    ] = None,
) -> None:
    """Re-run RUN_DIR from its resolved config; exit 0 if run.trec and metrics.json are byte-identical."""
    from irbench.runs.reproduce import reproduce

    rep = reproduce(run_dir, work_dir)
    for diff in rep.environment:
        typer.echo(f"environment differs: {diff}")
    if rep.error:
        typer.echo(f"NOT REPRODUCED: {rep.error}")
        raise typer.Exit(1)
    for name, same in rep.files.items():
        typer.echo(f"{name}: {'identical' if same else 'DIFFERENT'}")
    if rep.identical:
        typer.echo(f"reproduced: {run_dir} is byte-identical")
        return
    typer.echo(f"diverged at: {rep.diverged_stage}")
    if rep.changed_queries:
        shown = ", ".join(rep.changed_queries[:20])
        more = f" (+{len(rep.changed_queries) - 20} more)" if len(rep.changed_queries) > 20 else ""
        typer.echo(f"queries whose ranking changed ({len(rep.changed_queries)}): {shown}{more}")
    raise typer.Exit(1)


@handle_errors
def doctor_cmd(
    overrides: Overrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Versions, thread settings, numba/FAISS/torch capabilities, GPUs, cache location and size."""
    from irbench.config import compose
    from irbench.runs.doctor import report

    info = report(compose(overrides or []).cache_dir)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    from rich.pretty import pprint

    pprint(info, expand_all=True)
