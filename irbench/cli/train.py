"""``irbench train``: fine-tune a learned sparse encoder from a ``train/`` recipe."""

from __future__ import annotations

import typer

from irbench.cli.common import Overrides, groups_help
from irbench.cli.errors import handle_errors


def register(app: typer.Typer) -> None:
    app.command("train", epilog=groups_help())(train_cmd)


@handle_errors
def train_cmd(overrides: Overrides = None) -> None:
    """Train the configured encoder (default recipe train=splade); writes run_dir/checkpoint,
    run_dir/train/curves.csv|png. Multi-GPU: torchrun --nproc_per_node=N $(which irbench) train ..."""
    from irbench.cli.common import compose_with_default_recipe
    from irbench.train import train

    cfg = compose_with_default_recipe(overrides)
    record: dict = {}
    result = train(cfg, record)
    s = result.summary
    if not s:  # a non-zero rank of a distributed run
        return
    state = "reused (already trained with this config)" if result.reused else "trained"
    best = s.get("best")
    last = s.get("last", {})
    parts = [f"{s.get('steps')} steps"]
    if not result.reused:
        parts.append(f"{s.get('train_s', 0) / 60:.1f} min, {s.get('steps_per_s')} steps/s")
    if "loss" in last:
        parts.append(f"last loss {last['loss']:.4f}")
    if "d_nnz" in last:
        parts.append(f"doc nnz {last['d_nnz']:.1f}")
    if best:
        parts.append(
            f"best dev {cfg.train.eval.measure} {best['value']:.4f} at step {best['step']}"
        )
    typer.echo(f"model {state}: {result.checkpoint} ({', '.join(parts)})")
    typer.echo(f"use it: irbench run ... encoder.backbone={result.checkpoint}")
