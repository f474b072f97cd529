"""``irbench bench encode``: corpus encoding throughput of a neural encoder against
sentence-transformers, and against the machine's fp32 matmul limit for that model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.common import Overrides, command_line, groups_help
from irbench.cli.errors import handle_errors


def bench_encode_cmd(
    overrides: Overrides = None,
    docs: Annotated[
        int | None, typer.Option("--docs", help="Encode N docs of the corpus (default: all)")
    ] = None,
    select: Annotated[
        str,
        typer.Option(
            "--select",
            help="Which N docs: stratified (evenly spaced quantiles of the token length) or first",
        ),
    ] = "stratified",
    slice_size: Annotated[
        int, typer.Option("--slice", help="Docs per interleaved round (each engine encodes it)")
    ] = 1024,
    repeats: Annotated[int, typer.Option(help="Passes over all slices")] = 1,
    scale: Annotated[
        list[int] | None,
        typer.Option(
            "--scale",
            help="Also stream the docs repeated K times through irbench alone and report peak "
            "memory; repeatable (e.g. --scale 1 --scale 4)",
        ),
    ] = None,
    peer: Annotated[
        bool, typer.Option("--peer/--no-peer", help="Time sentence-transformers too")
    ] = True,
    probe_seconds: Annotated[
        float, typer.Option(help="Seconds per matmul burst of the FLOP-limit probe")
    ] = 0.05,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bench.json, bench.md, meta.json "
                     "(default runs/bench/<dataset>/encode-<encoder>)"),
    ] = None,
) -> None:  # fmt: skip
    """Docs/s, % of the fp32 FLOP limit, peak memory and vector identity: irbench's encoder vs
    sentence-transformers on the same docs, interleaved in one process."""
    from rich.console import Console
    from rich.table import Table

    from irbench.bench.encode import bench_encode
    from irbench.bench.timing import describe_machine
    from irbench.config import compose

    cfg = compose(overrides or [])
    command = command_line("bench", "encode")
    err = Console(stderr=True)
    rows, meta = bench_encode(
        cfg, docs, select, slice_size=slice_size, repeats=repeats, scales=scale or (),
        peer=peer, probe_seconds=probe_seconds, out_dir=out, command=command,
        echo=lambda msg: err.print(msg, markup=False, highlight=False),
    )  # fmt: skip
    con = Console()
    if not con.is_terminal:
        con = Console(width=150)
    lim = meta["flop_limit"]
    table = Table(
        title=f"encode · {meta['corpus']} · encoder={meta['encoder']} · {meta['docs']:,} docs · "
        f"{meta['avg_tokens']:.0f} tokens/doc · {meta['gflop_per_doc']:.3f} GFLOP/doc · "
        f"fp32 limit {lim['gflops_median']:.1f} GFLOP/s "
        f"({lim['gflops_per_cpu_s_median']:.1f} per CPU-second)",
        title_justify="left",
        caption=f"{describe_machine(meta['machine'])}; load {meta['load_before'][0]:.2f} -> "
        f"{meta['load_after'][0]:.2f}",
        caption_justify="left",
    )
    for name in ("engine", "mode", "docs", "docs/s", "GFLOP/s", "% limit", "% core limit",
                 "peak RSS MB", "growth MB", "max |diff|"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("engine", "mode") else "right")

    def f(v, nd=1):
        return "—" if v is None or v != v else f"{v:,.{nd}f}"

    for r in rows:
        d = r["max_abs_diff"]
        table.add_row(
            r["engine"], r["mode"], f"{r['docs']:,}", f(r["docs_per_s"], 2), f(r["gflops"]),
            f(r["pct_of_limit"]), f(r["pct_of_core_limit"]), f(r["peak_rss_mb"], 0), f(r["rss_growth_mb"], 0),
            "—" if d is None else f"{d:.2e}",
        )  # fmt: skip
    con.print(table)
    if meta["ratio"]:
        typer.echo(
            f"irbench / sentence-transformers: {meta['ratio']['docs_per_s']:.2f}x docs/s "
            f"(per-round median {meta['ratio']['per_round_median']:.2f}x)"
        )
    for note in meta["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {Path(meta['out_dir']) / 'bench.json'}, bench.md and meta.json")


def register(bench_app: typer.Typer) -> None:
    """Add ``encode`` to ``irbench bench``."""
    bench_app.command("encode", epilog=groups_help())(handle_errors(bench_encode_cmd))
