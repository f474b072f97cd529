"""``irbench leaderboard``, ``compare`` and ``fuse``: thin commands over irbench.report / fusion."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.errors import fail, handle_errors

Measure = Annotated[str, typer.Option("--measure", "-M", help="ir_measures name")]


@handle_errors
def leaderboard(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Run directories, or folders searched for them (default: runs/)"),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="md|csv|latex|html (default: from --output's suffix, else md)"
        ),
    ] = None,
    measure: Measure = "nDCG@10",
    baseline: Annotated[
        str | None,
        typer.Option(help="System to test against: its name, run-folder name or a unique prefix"),
    ] = None,
    test: Annotated[str, typer.Option(help="ttest|wilcoxon (paired, per query)")] = "ttest",
    alpha: Annotated[float, typer.Option(help="Significance level after Holm-Bonferroni")] = 0.05,
    efficiency_dataset: Annotated[
        str | None,
        typer.Option(help="Dataset whose latency/index size fill the efficiency columns"),
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeatable)")
    ] = None,
    output: Annotated[
        list[Path] | None,
        typer.Option("--output", "-o", help="File to write (repeatable; format from suffix)"),
    ] = None,
    figures: Annotated[
        Path | None, typer.Option(help="Folder for latency.png and index_size.png")
    ] = None,
) -> None:
    """Systems x datasets table from run directories, with significance vs a baseline."""
    from irbench.report.leaderboard import build
    from irbench.report.render import format_for, render
    from irbench.runs.atomic import write_text

    lb = build(
        paths or [Path("runs")],
        measure=measure,
        baseline=baseline,
        test=test,
        alpha=alpha,
        efficiency_dataset=efficiency_dataset,
        datasets=dataset,
    )
    for note in lb.notes:
        typer.echo(f"note: {note}", err=True)
    if output and fmt and len(output) > 1:
        fail("--format applies to one --output; with several, the suffixes name the formats")
    texts = [(path, render(lb, format_for(str(path), fmt))) for path in output or []]
    for path, text in texts:  # every format known before the first file is written
        write_text(path, text)
        typer.echo(f"wrote {path}", err=True)
    if not output:
        sys.stdout.write(render(lb, fmt or "md"))
    if figures is not None:
        from irbench.report.figures import figures as make_figures

        figures.mkdir(parents=True, exist_ok=True)
        for name, png in make_figures(lb).items():
            (figures / name).write_bytes(png)
            typer.echo(f"wrote {figures / name}", err=True)


@handle_errors
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run directory or TREC run file (A)")],
    run_b: Annotated[Path, typer.Argument(help="Run directory or TREC run file (B)")],
    measure: Measure = "nDCG@10",
    qrels: Annotated[
        Path | None, typer.Option(help="Qrels (TREC or BEIR TSV); needed for run files")
    ] = None,
    top: Annotated[int, typer.Option(help="How many most-changed queries to list", min=0)] = 10,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text|md|json")] = "text",
) -> None:
    """Compare run A with run B per query: wins/ties/losses, mean difference, 95% CI, p-values.

    Also lists the queries that change most. Run directories use their perquery.tsv.
    """
    from irbench.report.compare import compare_runs, format_text

    comparison, notes = compare_runs(run_a, run_b, measure=measure, qrels=qrels, top=top)
    sys.stdout.write(format_text(comparison, str(run_a), str(run_b), fmt))
    for note in notes:
        typer.echo(f"note: {note}", err=True)


@handle_errors
def fuse(
    runs: Annotated[list[Path], typer.Argument(help="Run directories or TREC run files")],
    method: Annotated[str, typer.Option(help="rrf|interpolate")] = "rrf",
    alpha: Annotated[
        float, typer.Option(help="interpolate: weight of the first run (1 - alpha: second)")
    ] = 0.5,
    norm: Annotated[str, typer.Option(help="interpolate: minmax|zscore|none")] = "minmax",
    k: Annotated[int, typer.Option("--k", help="Hits per query in the fused run")] = 1000,
    rrf_k: Annotated[int, typer.Option("--rrf-k", help="rrf: the constant in 1/(k + rank)")] = 60,
    weight: Annotated[
        list[float] | None, typer.Option(help="One weight per run (repeatable; overrides alpha)")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="TREC run to write")] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Write a run directory (run.trec, metrics, manifest) for the leaderboard"
        ),
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option(help="With --run-dir: qrels (default: the inputs' dataset)")
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Run tag in the TREC file (default: method)")
    ] = None,
) -> None:
    """Fuse runs (reciprocal rank fusion or normalised score interpolation) into one TREC run."""
    from irbench.fusion import fuse_runs, fuse_to_run_dir, read_runs, write_fused

    if len(runs) < 2:
        fail("fusion needs at least two runs; give two or more run directories or files")

    if (output is None) == (run_dir is None):
        fail("give exactly one of --output FILE (a TREC run) or --run-dir DIR")
    if run_dir is not None:
        out, metrics = fuse_to_run_dir(
            runs, run_dir, method, alpha, norm, k, rrf_k, weight, qrels=qrels
        )
        if metrics:
            from irbench.progress import console
            from irbench.report.tables import metrics_table

            console().print(metrics_table(metrics, title=f"{out} · {method}"))
        typer.echo(f"run directory: {out}")
        return
    fused = fuse_runs(read_runs(runs), method, alpha, norm, k, rrf_k, weight)
    write_fused(output, fused, tag or method)
    typer.echo(f"wrote {output} ({len(fused)} queries)")


def register(app: typer.Typer) -> None:
    app.command()(leaderboard)
    app.command()(compare)
    app.command()(fuse)
