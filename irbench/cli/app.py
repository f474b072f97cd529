"""The ``irbench`` command: thin Typer commands that compose config and call library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbench.cli.common import Multirun, Overrides, groups_help
from irbench.cli.errors import fail, handle_errors

app = typer.Typer(
    help="Reproducible IR experiments: BM25, learned sparse and dense retrieval from Hydra configs.",
    epilog=groups_help(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the composed configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
from irbench.cli.maintenance import register as _register_maintenance  # noqa: E402

_register_maintenance(app)
from irbench.cli.bench import bench_app  # noqa: E402, I001

app.add_typer(bench_app, name="bench")

_EPILOG = groups_help()


def _compose(overrides: list[str] | None):
    from irbench.config import compose

    return compose(overrides or [])


def _print_metrics(cfg, metrics: dict[str, float], title: str) -> None:
    from irbench.progress import console
    from irbench.report.tables import metrics_table

    console().print(metrics_table(metrics, title=title))


def _print_calibration(summary: dict | None) -> None:
    if summary:
        from irbench.index.tuning import Calibration

        cached = " (cached)" if summary.get("cached") else ""
        split = f" on split {summary['split']}" if summary.get("split") else ""
        line = Calibration.from_dict(summary).describe()
        typer.echo(f"calibrated{cached}{split}: {line}", err=True)


@app.command(epilog=_EPILOG)
@handle_errors
def run(overrides: Overrides = None, multirun: Multirun = False) -> None:
    """Index, retrieve and evaluate: writes run.trec, metrics.json, perquery.tsv, manifest.json."""
    if multirun:
        from irbench.cli.sweep import sweep

        sweep(overrides or [])
        return
    from irbench.pipeline import run as run_pipeline

    cfg = _compose(overrides)
    metrics, objects = run_pipeline(cfg)
    from irbench.pipeline import run_tag

    _print_metrics(cfg, metrics, f"{cfg.dataset.name} · {run_tag(cfg)}")
    _print_calibration(objects.get("calibration"))
    for note in objects["evaluation"].notes:
        typer.echo(f"note: {note}", err=True)
    reused = "index" in objects and objects["index"].reused
    typer.echo(f"run directory: {cfg.run_dir}" + (" (index reused from cache)" if reused else ""))


@app.command(epilog=_EPILOG)
@handle_errors
def index(overrides: Overrides = None, multirun: Multirun = False) -> None:
    """Encode the corpus and build the index into cache_dir (reused when the content key matches)."""
    if multirun:
        from irbench.cli.sweep import sweep

        sweep(overrides or [], stage="index")
        return
    from irbench.pipeline import build_index, seed_everything, write_manifest
    from irbench.runs.manifest import stage

    cfg = _compose(overrides)
    seed_everything(int(cfg.seed))
    stages: dict = {}
    details: dict = {}
    with stage(stages, "index") as info:
        handle = build_index(cfg, details)
        info["cached"] = handle.reused
    if write_manifest(cfg, stages, details) is None:
        typer.echo(
            f"note: {cfg.run_dir} holds the results of another config; this index stage is "
            "not recorded there (give another run_dir to record it)",
            err=True,
        )
    i = handle.info
    state = "reused" if handle.reused else "built"
    shape = (
        f"{i['nnz']:,} postings, avg doc nnz {i['avg_doc_nnz']}"
        if "nnz" in i
        else f"dim {i.get('dim')}"
    )
    typer.echo(
        f"index {state}: {handle.path} ({i['n_docs']:,} docs, {shape}, "
        f"{i['index_bytes'] / 2**20:.1f} MiB)"
    )


@app.command(epilog=_EPILOG)
@handle_errors
def retrieve(overrides: Overrides = None) -> None:
    """Search the split's queries with the cached index; writes run_dir/run.trec."""
    from irbench.pipeline import build_index, write_manifest
    from irbench.pipeline import retrieve as retrieve_run
    from irbench.runs.manifest import stage

    cfg = _compose(overrides)
    stages: dict = {}
    details: dict = {}
    handle = build_index(cfg, details, require_cached=True)
    with stage(stages, "retrieve") as info:
        path = retrieve_run(cfg, handle, info)
    write_manifest(cfg, stages, details)
    _print_calibration(info.get("calibration"))
    typer.echo(f"wrote {path} ({info['queries']} queries, {info['ms_per_query']} ms/query)")


@app.command("eval", epilog=_EPILOG)
@handle_errors
def eval_(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="A TREC run file (with --qrels), or Hydra overrides naming the run_dir"
        ),
    ] = None,
    qrels: Annotated[Path | None, typer.Option(help="Qrels file (TREC or BEIR TSV)")] = None,
    measure: Annotated[
        list[str] | None, typer.Option("--measure", "-M", help="ir_measures name; repeatable")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="With --qrels: folder for metrics.json and perquery.tsv")
    ] = None,
) -> None:
    """Evaluate a run: `irbench eval RUN --qrels QRELS` or `irbench eval OVERRIDES...` for run_dir."""
    from irbench.eval import check_evaluable, evaluate
    from irbench.pipeline import check_same_run, write_manifest, write_metrics
    from irbench.pipeline import evaluate as evaluate_cfg
    from irbench.runs.manifest import stage

    if qrels is not None:
        from irbench.data import read_qrels_file
        from irbench.runs.trec import read_run

        if not args or len(args) != 1:
            fail("with --qrels give exactly one run file: irbench eval RUN --qrels QRELS")
        measures = measure or ["nDCG@10", "RR@10", "R@100", "R@1000", "AP"]
        if output is not None and (output / "manifest.json").is_file():
            fail(
                f"--output {output} is a run directory; its metrics belong to its own run "
                "(use irbench eval OVERRIDES there), so give another folder"
            )
        result = evaluate(read_run(args[0]), read_qrels_file(qrels), measures)
        check_evaluable(result, args[0], str(qrels))
        if output is not None:
            write_metrics(output, result)
        _print_metrics(None, result.aggregate, f"{args[0]}")
        for note in result.notes:
            typer.echo(f"note: {note}", err=True)
        return
    overrides = list(args or [])
    files = [a for a in overrides if "=" not in a and Path(a).is_file()]
    if files:
        fail(f"{files[0]} is a run file: give --qrels QRELS to evaluate it")
    if output is not None:
        fail("--output goes with --qrels; with overrides the results go to run_dir")
    if measure:
        overrides.append("measures=[" + ",".join(measure) + "]")
    cfg = _compose(overrides)
    same_run = check_same_run(cfg)  # refuses to relabel a run made with another config
    stages: dict = {}
    with stage(stages, "eval") as info:
        result = evaluate_cfg(cfg, record=info)
    write_manifest(cfg, stages, {}, same_run=same_run)
    _print_metrics(cfg, result.aggregate, str(Path(cfg.run_dir) / "run.trec"))
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)


@config_app.command("show")
@handle_errors
def config_show(overrides: Overrides = None) -> None:
    """Print the resolved config (YAML) for these overrides."""
    from irbench.config import to_yaml

    typer.echo(to_yaml(_compose(overrides)), nl=False)


from irbench.cli.report import register as register_report  # noqa: E402, I001

register_report(app)
from irbench.cli.bench_index import register_synth  # noqa: E402

register_synth(app)
from irbench.cli.train import register as register_train  # noqa: E402

register_train(app)


def main(argv: list[str] | None = None) -> None:
    """The ``irbench`` console script: usage mistakes (an unknown option, a value out of
    range, a missing argument) are one line and exit 2 like every other error."""
    import sys

    from typer import Abort

    try:  # Typer >= 0.2x vendors click
        from typer._click import exceptions
    except ImportError:  # pragma: no cover
        from click import exceptions
    ClickException = exceptions.ClickException
    NoArgsIsHelpError = getattr(exceptions, "NoArgsIsHelpError", ())  # click >= 8.2

    try:
        code = app(args=argv, prog_name="irbench", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # bare `irbench` / `irbench bench`: the help
        exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        print(f"irbench: error: {message}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Abort:
        print("irbench: error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
