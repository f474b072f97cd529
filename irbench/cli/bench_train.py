"""``irbench bench train``: training steps/s of irbench's trainer against sentence-transformers'
SparseEncoderTrainer on the same model, batches and loss."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.common import Overrides, command_line, groups_help
from irbench.cli.errors import handle_errors


def bench_train_cmd(
    overrides: Overrides = None,
    steps: Annotated[int, typer.Option(help="Timed optimizer steps per engine and round")] = 20,
    warmup: Annotated[int, typer.Option(help="Untimed steps first (allocator, caches)")] = 2,
    rounds: Annotated[int, typer.Option(help="Alternating rounds per engine")] = 2,
    peer: Annotated[
        bool, typer.Option("--peer/--no-peer", help="Time sentence-transformers too")
    ] = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bench.json, bench.md, meta.json "
                     "(default runs/bench/<dataset>/train-<encoder>)"),
    ] = None,
) -> None:  # fmt: skip
    """Steps/s of `irbench train` vs sentence-transformers' SparseEncoderTrainer (SpladeLoss
    around SparseMultipleNegativesRankingLoss) on the same examples, alternating in one process.
    Example: irbench bench train train=splade dataset=scifact encoder=splade --steps 20"""
    from irbench.bench.train import bench_train
    from irbench.cli.common import compose_with_default_recipe

    cfg = compose_with_default_recipe(overrides or [])
    command = command_line("bench", "train")
    rows, meta = bench_train(
        cfg, steps=steps, warmup=warmup, rounds=rounds, peer=peer, out_dir=out, command=command,
        echo=lambda msg: typer.echo(msg, err=True),
    )  # fmt: skip
    from irbench.bench.train import to_markdown

    typer.echo(to_markdown(rows, meta))
    for note in meta["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {Path(meta['out_dir']) / 'bench.json'}, bench.md and meta.json")


def register(bench_app: typer.Typer) -> None:
    """Add ``train`` to ``irbench bench``."""
    bench_app.command("train", epilog=groups_help())(handle_errors(bench_train_cmd))
