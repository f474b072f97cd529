"""``irbench bench ...``: throughput and effectiveness of irbench against peer libraries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.common import Overrides, command_line, groups_help
from irbench.cli.errors import handle_errors

bench_app = typer.Typer(
    help="Benchmark irbench against peer libraries on the same data, in one process.",
    no_args_is_help=True,
)


@bench_app.command("bm25", epilog=groups_help())
@handle_errors
def bm25(
    overrides: Overrides = None,
    k: Annotated[
        list[int] | None,
        typer.Option("--k", help="Hits per query to time; repeatable (default: 10 and 1000)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bench.json and bench.md (default runs/bench/<dataset>/bm25)"),
    ] = None,
    min_seconds: Annotated[
        float,
        typer.Option(
            help="Seconds timed per engine in the batch and latency loops (or, when one is "
            "much slower, twice that for both together)",
            min=0.0,
        ),
    ] = 1.0,
    fresh_index: Annotated[
        bool,
        typer.Option(
            "--fresh-index",
            help="Build irbench's index in a temporary cache so build_s is timed now",
        ),
    ] = False,
) -> None:
    """BM25 query throughput and nDCG@10: irbench (encoder + index) vs bm25s, same docs and queries."""
    from rich.console import Console
    from rich.table import Table

    from irbench.bench.bm25 import bench_bm25
    from irbench.bench.timing import describe_machine, fmt_cell
    from irbench.config import compose

    cfg = compose(overrides or [])
    command = command_line("bench", "bm25")
    err = Console(stderr=True)
    df = bench_bm25(
        cfg, ks=k or (10, 1000), out_dir=out, min_seconds=min_seconds, fresh_index=fresh_index, command=command,
        echo=lambda msg: err.print(msg, markup=False, highlight=False),
    )  # fmt: skip

    con = Console()
    if not con.is_terminal:  # piped or captured: do not squeeze the columns to 80
        con = Console(width=140)
    a = df.attrs
    table = Table(
        title=f"BM25 · {cfg.dataset.name} · {a['docs']:,} docs · {a['queries']:,} queries",
        title_justify="left",
        caption=describe_machine(a["machine"]),
        caption_justify="left",
    )
    for name in (
        "engine",
        "k",
        "threads",
        "build_s",
        "size_mb",
        "qps",
        "mean_ms",
        "p50_ms",
        "p99_ms",
        "recall@k",
        "nDCG@10",
    ):
        table.add_column(name, justify="left" if name == "engine" else "right")
    for _, r in df.iterrows():
        table.add_row(
            r.engine, str(r.k), str(r.threads), f"{r.build_s:.2f}", f"{r.size_mb:.1f}",
            f"{r.qps:,.0f}", f"{r.mean_ms:.3f}", f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}",
            fmt_cell(r.recall, 4), fmt_cell(r["ndcg@10"], 4),
        )  # fmt: skip
    con.print(table)
    if a["ratios"]:
        rt = Table(title="irbench / bm25s", title_justify="left")
        for name in ("k", "threads", "QPS ratio", "p50 speed-up"):
            rt.add_column(name, justify="right")
        for r in a["ratios"]:
            rt.add_row(
                str(r["k"]), str(r["threads"]), f"{r['qps_ratio']:.2f}x", f"{r['p50_speedup']:.2f}x"
            )
        con.print(rt)
    if a["top1_agreement"]:
        agree, compared = a["top1_agreement"]
        typer.echo(f"top-1 doc agreement: {agree}/{compared} queries")
    for note in a["notes"]:
        typer.echo(f"note: {note}", err=True)
    runs = ", ".join(f"{name}.trec" for name in dict.fromkeys(df.engine))
    typer.echo(f"wrote {Path(a['out_dir'])}/: bench.json, bench.md, recall_latency.png, {runs}")


from irbench.cli.bench_index import register as _register_index  # noqa: E402

_register_index(bench_app)

from irbench.cli.bench_encode import register as _register_encode  # noqa: E402

_register_encode(bench_app)

from irbench.cli.bench_train import register as _register_train  # noqa: E402

_register_train(bench_app)

from irbench.cli.bench_dense import register as _register_dense  # noqa: E402

_register_dense(bench_app)
