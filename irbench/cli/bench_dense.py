"""``irbench bench dense``: index=faiss against FAISS used directly and exact baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.common import (
    BenchKs,
    BenchLatency,
    BenchMaxQueries,
    BenchMinSeconds,
    BenchThreads,
    Overrides,
    check_out_dir,
    command_line,
    groups_help,
)
from irbench.cli.errors import handle_errors


def _echo(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(msg, markup=False, highlight=False)


def bench_dense_cmd(
    overrides: Overrides = None,
    k: BenchKs = None,
    factory: Annotated[
        list[str] | None,
        typer.Option(
            "--factory",
            help="FAISS index_factory strings; repeatable (default: Flat, IVF<~sqrt(docs)>,Flat, "
            "HNSW32)",
        ),
    ] = None,
    nprobe: Annotated[
        list[int] | None,
        typer.Option(
            "--nprobe", help="IVF search grid; repeatable (default 1, 2, 4 ... 128)", min=1
        ),
    ] = None,
    ef_search: Annotated[
        list[int] | None,
        typer.Option(
            "--ef-search", help="HNSW search grid; repeatable (default 16 ... 512)", min=1
        ),
    ] = None,
    engine: Annotated[
        list[str] | None,
        typer.Option(
            "--engine",
            help="Only these engines; repeatable: irbench, faiss, numpy, sentence_transformers",
        ),
    ] = None,
    threads: BenchThreads = None,
    docs: Annotated[
        int | None,
        typer.Option(
            "--docs",
            min=1,
            help="Grow the corpus to N synthetic docs around the real ones (real vector + "
            "noise), to measure memory and speed at scale; no qrels then",
        ),
    ] = None,
    noise: Annotated[
        float, typer.Option(help="--docs: noise norm relative to the doc vector's", min=0.0)
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of --docs and of the FAISS training")] = 0,
    train_size: Annotated[
        int | None,
        typer.Option(
            help="Docs sampled to train IVF/PQ factories (default: index=faiss's, as many as "
            "FAISS's own training keeps)",
            min=1,
        ),
    ] = None,
    max_queries: BenchMaxQueries = None,
    target_recall: Annotated[
        float,
        typer.Option(help="Recall@k an approximate setting must reach in the ratio table"),
    ] = 0.95,
    min_seconds: BenchMinSeconds = 1.0,
    latency: BenchLatency = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bench.json, bench.md, recall_latency.png "
                     "(default runs/bench/<corpus>/dense)"),
    ] = None,
) -> None:  # fmt: skip
    """Build index=faiss, the same FAISS index made directly with FAISS, and exact baselines
    on the same dense vectors; time and compare them (QPS, latency, recall, build memory)."""
    import shutil
    import tempfile

    from irbench.bench import dense
    from irbench.cli.bench_index import print_rows
    from irbench.config import compose
    from irbench.errors import ConfigError

    if not 0.0 < target_recall <= 1.0:
        raise ConfigError(f"--target-recall {target_recall}: give a recall in (0, 1]")
    ks = dense.check_engines(engine, k or (10, 1000))
    check_out_dir(out)
    cfg = compose(overrides or [])
    work = Path(tempfile.mkdtemp(prefix="irbench-bench-dense-data-"))
    try:
        ds = dense.from_cache(cfg, work, echo=_echo)
        if max_queries is not None and max_queries < len(ds.qids):
            keep = set(ds.qids[:max_queries])
            ds = dense.DenseSet(
                ds.name, ds.files, ds.queries[:max_queries], ds.docnos, ds.qids[:max_queries],
                [r for r in ds.qrels if r[0] in keep],
            )  # fmt: skip
        if docs is not None:
            _echo(f"generating {docs:,} synthetic docs around {ds.n_docs:,} real ones ...")
            ds = dense.synthesize(ds, docs, work, noise=noise, seed=seed)
        engines = dense.default_engines(
            ds.n_docs, factory, nprobe=nprobe, ef_search=ef_search, train_size=train_size,
            seed=seed,
        )  # fmt: skip
        out_dir = out or Path("runs") / "bench" / ds.name.replace("/", "_") / "dense"
        rows, meta = dense.bench_dense(
            ds, ks=ks, engines=engines, only=engine, threads=threads,
            min_seconds=min_seconds, latency=latency, target_recall=target_recall,
            out_dir=out_dir, command=command_line("bench", "dense"), echo=_echo,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_rows(rows, meta, memory=True, width=170)
    for line in dense.memory_md(meta):
        typer.echo(line)
    typer.echo(f"wrote {out_dir / 'bench.json'}, bench.md and recall_latency.png")


def register(bench_app: typer.Typer) -> None:
    """Add ``dense`` to ``irbench bench``."""
    bench_app.command("dense", epilog=groups_help())(handle_errors(bench_dense_cmd))
