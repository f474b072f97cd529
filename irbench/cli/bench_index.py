"""``irbench bench index`` / ``irbench bench vectors`` / ``irbench synth``: sparse query
processing against PISA, Seismic and BMP, the vector files it reads, synthetic corpora."""

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

ParentShare = Annotated[
    float,
    typer.Option(
        help="Share of each doc's terms copied from one real doc (term co-occurrence); "
        "0 draws terms independently, 0.65 matches the nearest-neighbour similarity of "
        "the real splade-tiny scifact+vaswani+cranfield corpus (docs/benchmarks.md)",
        min=0.0,
        max=0.99,
    ),
]


def _echo(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(msg, markup=False, highlight=False)


def bench_index_cmd(
    overrides: Overrides = None,
    vectors: Annotated[
        list[Path] | None,
        typer.Option(
            "--vectors",
            help="Precomputed vectors (.npz from `irbench bench vectors` or `irbench synth`); "
            "repeat to concatenate corpora. Without it: dataset + encoder from the overrides",
        ),
    ] = None,
    k: BenchKs = None,
    engine: Annotated[
        list[str] | None,
        typer.Option(
            "--engine",
            help="Only these engines; repeatable: numba, numba_approx, taat, splade_taat, scipy, "
            "pisa, seismic, bmp (default: all available)",
        ),
    ] = None,
    threads: BenchThreads = None,
    n_postings: Annotated[
        list[int] | None,
        typer.Option(
            "--n-postings",
            help="numba_approx and Seismic builds: postings kept per term; repeatable "
            "(default: irbench's default for the corpus size, and 60% of it)",
        ),
    ] = None,
    query_cut: Annotated[
        list[int] | None,
        typer.Option("--query-cut", help="Approximate search grid: query_cut values; repeatable"),
    ] = None,
    heap_factor: Annotated[
        list[float] | None,
        typer.Option(
            "--heap-factor",
            help="Approximate search grid: heap_factor values; repeatable. With --query-cut, "
            "the grid is every pair (default: a fixed 6-point grid, docs/index.md)",
        ),
    ] = None,
    max_queries: BenchMaxQueries = None,
    min_seconds: BenchMinSeconds = 1.0,
    latency: BenchLatency = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bench.json, bench.md, recall_latency.png "
                     "(default runs/bench/<corpus>/index)"),
    ] = None,
) -> None:  # fmt: skip
    """Build every index backend and peer on the same sparse vectors; time and compare them."""
    from irbench.bench.index import (
        approx_grid,
        bench_index,
        concat,
        default_engines,
        load_vectors,
        vectors_from_cache,
    )

    check_out_dir(out)
    if vectors:
        vs = concat([load_vectors(p) for p in vectors])
    else:
        from irbench.config import compose

        vs = vectors_from_cache(compose(overrides or []), echo=_echo)
    if max_queries is not None and max_queries < vs.queries.shape[0]:
        from irbench.bench.index import VectorSet

        keep = set(vs.qids[:max_queries])
        vs = VectorSet(
            vs.name, vs.docs, vs.queries[:max_queries], vs.docnos, vs.qids[:max_queries],
            [r for r in vs.qrels if r[0] in keep],
        )  # fmt: skip
    out_dir = out or Path("runs") / "bench" / vs.name.replace("/", "_") / "index"
    engines = default_engines(
        vs.docs.shape[0], n_postings, approx_grid(query_cut, heap_factor)
    )  # fmt: skip
    rows, meta = bench_index(
        vs, ks=k or (10, 1000), engines=engines, only=engine, threads=threads,
        min_seconds=min_seconds,
        latency=latency, out_dir=out_dir, command=command_line("bench", "index"), echo=_echo,
    )  # fmt: skip
    print_rows(rows, meta)
    typer.echo(f"wrote {out_dir / 'bench.json'}, bench.md and recall_latency.png")


def print_rows(rows: list[dict], meta: dict, memory: bool = False, width: int = 160) -> None:
    """The rows of ``irbench bench index`` / ``bench dense`` (with ``memory``, the build's
    peak MiB too), the ratio table, and the notes on stderr."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from irbench.bench.index import row_cells
    from irbench.bench.timing import describe_machine

    con = Console()
    if not con.is_terminal:
        con = Console(width=width)
    table = Table(
        title=meta["corpus"],
        title_justify="left",
        caption=describe_machine(meta["machine"]),
        caption_justify="left",
    )
    names = ["engine", "setting", "k", "thr", "build_s", "MB", *(["build MiB"] if memory else []),
             "QPS", "cores", "mean_ms", "p50_ms", "p99_ms", "recall", "nDCG@10"]  # fmt: skip
    for name in names:
        table.add_column(name, justify="left" if name in ("engine", "setting") else "right")
    for r in rows:
        table.add_row(*(escape(c) for c in row_cells(r, memory)))  # "[exact]" is not markup
    con.print(table)
    if meta["ratios"]:
        rt = Table(title="single-thread QPS ratios", title_justify="left")
        for name in ("k", "irbench", "vs", "their setting", "ratio"):
            rt.add_column(name)
        for r in meta["ratios"]:
            cells = (str(r["k"]), r["ours"], r["vs"], r["vs_setting"], f"{r['ratio']:.2f}x")
            rt.add_row(*(escape(c) for c in cells))
        con.print(rt)
    for note in meta["notes"]:
        typer.echo(f"note: {note}", err=True)


def bench_vectors_cmd(
    overrides: Overrides = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="The .npz file to write")] = Path(
        "vectors.npz"
    ),
) -> None:
    """Write a dataset's doc and query vectors (and qrels) under an encoder to one .npz file."""
    from irbench.bench.index import save_vectors, vectors_from_cache
    from irbench.config import compose

    vs = vectors_from_cache(compose(overrides or []), echo=_echo)
    save_vectors(output, vs)
    typer.echo(f"wrote {output}: {vs.describe()}")


def synth_cmd(
    source: Annotated[
        list[Path],
        typer.Option("--from", help="Real vectors (.npz) whose statistics to follow; repeatable"),
    ],
    n_docs: Annotated[int, typer.Option("--docs", help="Docs to generate", min=1)] = 1_000_000,
    output: Annotated[Path, typer.Option("-o", "--output", help="The .npz file to write")] = Path(
        "synth.npz"
    ),
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    parent_share: ParentShare = 0.0,
) -> None:
    """Generate sparse doc vectors following a real encoded corpus (per-doc nnz, term document
    frequencies, weight distribution, optionally term co-occurrence); the real queries are
    kept."""
    from irbench.bench.index import concat, load_vectors, save_vectors
    from irbench.bench.synth import synthesize

    real = concat([load_vectors(p) for p in source])
    vs = synthesize(real, n_docs, seed=seed, echo=_echo, parent_share=parent_share)
    save_vectors(output, vs)
    typer.echo(f"wrote {output}: {vs.describe()}")


def bench_scale_cmd(
    source: Annotated[
        list[Path],
        typer.Option("--from", help="Real vectors (.npz) whose statistics to follow; repeatable"),
    ],
    n_docs: Annotated[
        list[int] | None,
        typer.Option("--docs", help="Corpus sizes; repeatable (default 100k, 1M, 10M)", min=1),
    ] = None,
    k: Annotated[int, typer.Option(help="Hits per query", min=1)] = 10,
    quantize: Annotated[
        str | None, typer.Option(help="Index weights: uint8 or uint16 (default float32)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic corpus")] = 0,
    parent_share: ParentShare = 0.0,
    max_queries: Annotated[
        int | None, typer.Option(help="Use only the first N queries", min=1)
    ] = None,
    min_seconds: Annotated[
        float, typer.Option(help="Least seconds timed per measurement", min=0.0)
    ] = 1.0,
    approx: Annotated[
        bool,
        typer.Option(
            "--approx/--no-approx",
            help="Also build index=numba_approx at each size (its build holds the corpus in "
            "memory) and report its recall@k against the exact top-k",
        ),
    ] = False,
    n_postings: Annotated[
        int | None,
        typer.Option(help="--approx: postings kept per term (default: scales with the size)"),
    ] = None,
    query_cut: Annotated[
        int | None, typer.Option(help="--approx: query terms traversed (default 10)")
    ] = None,
    heap_factor: Annotated[
        float | None, typer.Option(help="--approx: block skip factor (default 0.9)")
    ] = None,
    target_recall: Annotated[
        float | None,
        typer.Option(
            help="--approx: also calibrate numba_approx's query_cut / heap_factor to this "
            "recall@k on a seeded half of the queries and report it on the other half",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for bench.json, bench.md, meta.json and growth.png")
    ] = Path("runs/bench/scale"),
) -> None:
    """Indexes at growing synthetic corpus sizes: the exact index built by streaming (never
    holding the corpus), with --approx also numba_approx: build time, index size, peak
    memory, QPS, latency and recall per size."""
    from irbench.bench import scale, timing
    from irbench.bench.index import concat, load_vectors
    from irbench.errors import ConfigError
    from irbench.runs.atomic import atomic_open, write_json, write_text

    knobs = {"n_postings": n_postings, "query_cut": query_cut, "heap_factor": heap_factor}
    approx_cfg = {key: v for key, v in knobs.items() if v is not None} if approx else None
    if not approx and any(v is not None for v in [*knobs.values(), target_recall]):
        raise ConfigError(
            "--n-postings/--query-cut/--heap-factor/--target-recall apply to --approx; add it"
        )
    real = concat([load_vectors(p) for p in source])
    sizes = n_docs or [100_000, 1_000_000, 10_000_000]
    rows = scale.bench_scale(
        real, sizes, k=k, quantize=quantize, seed=seed, parent_share=parent_share,
        max_queries=max_queries, min_seconds=min_seconds, approx=approx_cfg,
        target_recall=target_recall, echo=_echo,
    )  # fmt: skip
    meta = {
        "source": real.describe(),
        "machine": timing.describe_machine(),
        "command": command_line("bench", "scale"),
        "quantize": quantize,
        "seed": seed,
        "parent_share": parent_share,
        "approx": approx_cfg,
        "target_recall": target_recall,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", scale.json_rows(rows))
    write_json(out / "meta.json", meta)
    md = scale.to_markdown(rows, meta) + "\n" + "\n".join(f"- {g}" for g in scale.growth(rows))
    write_text(out / "bench.md", md + "\n")
    with atomic_open(out / "growth.png", "wb") as f:
        f.write(scale.plot(rows))
    typer.echo(md)
    typer.echo(f"wrote {out}/: bench.json, bench.md, meta.json, growth.png")


def bench_bounds_cmd(
    vectors: Annotated[
        list[Path],
        typer.Option("--vectors", help="Vectors (.npz); repeat to concatenate corpora"),
    ],
    k: Annotated[
        list[int] | None, typer.Option("--k", help="Hits per query; repeatable (default 10, 1000)")
    ] = None,
    block: Annotated[
        list[int] | None,
        typer.Option("--block", help="Block-max block sizes in docs; repeatable (default 32, 64)"),
    ] = None,
    reorder: Annotated[
        str,
        typer.Option(help="Doc order for the blocks: 'none' (as given) or 'bp' (graph bisection)"),
    ] = "none",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bounds.json and bounds.md (default runs/bench/<corpus>)"),
    ] = None,
) -> None:
    """Share of postings that safe MaxScore / block-max pruning must still read when it knows
    each query's true k-th score (an oracle): the cap on what safe pruning can save."""
    import json

    from irbench.bench.bounds import pruning_bounds, to_markdown
    from irbench.bench.index import concat, load_vectors
    from irbench.errors import ConfigError
    from irbench.runs.atomic import write_text

    if any(x < 1 for x in (k or [])) or any(b < 1 for b in (block or [])):
        raise ConfigError("--k and --block take positive integers")
    if reorder not in ("none", "bp"):
        raise ConfigError(f"--reorder {reorder!r}: use 'none' or 'bp'")
    vs = concat([load_vectors(p) for p in vectors])
    if vs.docs.shape[0] == 0 or vs.queries.shape[0] == 0:
        raise ConfigError(f"{vs.name}: no docs or no queries to measure")
    docs, corpus = vs.docs, vs.describe()
    if reorder == "bp":
        from irbench.index.reorder import bp_order

        docs = docs[bp_order(docs)]
        corpus += ", docs reordered by BP"
    rows = pruning_bounds(docs, vs.queries, k or [10, 1000], block or [32, 64])
    out_dir = out or Path("runs") / "bench" / vs.name.replace("/", "_")
    meta = {"corpus": corpus, "reorder": reorder, "command": command_line("bench", "bounds")}
    md = to_markdown(rows, corpus)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "bounds.json", json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    head = f"`{meta['command']}`\n\n" if meta["command"] else ""
    write_text(out_dir / "bounds.md", f"{head}{md}\n")
    typer.echo(md)
    typer.echo(f"wrote {out_dir / 'bounds.json'} and bounds.md")


def register(bench_app: typer.Typer) -> None:
    """Add ``index``, ``vectors``, ``scale`` and ``bounds`` to ``irbench bench``."""
    epilog = groups_help()
    bench_app.command("index", epilog=epilog)(handle_errors(bench_index_cmd))
    bench_app.command("vectors", epilog=epilog)(handle_errors(bench_vectors_cmd))
    bench_app.command("scale")(handle_errors(bench_scale_cmd))
    bench_app.command("bounds")(handle_errors(bench_bounds_cmd))


def register_synth(app: typer.Typer) -> None:
    """Add ``irbench synth``."""
    app.command("synth")(handle_errors(synth_cmd))
