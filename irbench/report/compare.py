"""``irbench compare``: two runs query by query on one measure.

Inputs are run directories (their ``perquery.tsv`` is used as recorded, after the manifest
check) or TREC run files evaluated against ``qrels``. With ``qrels`` given, run directories are
evaluated from their ``run.trec`` too, so both sides use the same judgements.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError, DataError
from irbench.eval.significance import Comparison, compare
from irbench.report.rundir import is_run_dir, load_run_dir


def per_query(
    path: str | os.PathLike, measure: str, qrels: str | os.PathLike | None = None
) -> tuple[dict[str, float], dict]:
    """``({query_id: value}, info)`` for a run directory or a run file (with ``qrels``)."""
    from irbench.eval import check_evaluable, evaluate
    from irbench.runs.trec import read_run

    path = Path(path)
    if is_run_dir(path):
        run = load_run_dir(path)
        info = {"path": str(path), "dataset": run.manifest.get("dataset", {})}
        if qrels is None:
            return run.perquery(measure), info
        path = path / "run.trec"
    elif path.is_dir():
        raise DataError("not a run directory (needs manifest.json and metrics.json)", path)
    elif not path.exists():
        raise DataError("no such run directory or run file", path)
    else:
        info = {"path": str(path)}
    if qrels is None:
        raise ConfigError(f"{path} is a run file; give --qrels to evaluate it")
    from irbench.data import read_qrels_file

    result = evaluate(read_run(path), read_qrels_file(qrels), [measure])
    check_evaluable(result, str(path), str(qrels))
    return {q: v for q, m, v in result.per_query if m == measure}, info


def compare_runs(
    a: str | os.PathLike,
    b: str | os.PathLike,
    measure: str = "nDCG@10",
    qrels: str | os.PathLike | None = None,
    top: int = 10,
) -> tuple[Comparison, list[str]]:
    """Compare run A with run B (difference = A - B); returns the comparison and notes."""
    from irbench.eval.measures import parse_measures

    measure = str(parse_measures([measure])[0])
    va, ia = per_query(a, measure, qrels)
    vb, ib = per_query(b, measure, qrels)
    notes = []
    fa = (ia.get("dataset") or {}).get("fingerprint", {}).get("qrels")
    fb = (ib.get("dataset") or {}).get("fingerprint", {}).get("qrels")
    if qrels is None and fa and fb and fa != fb:
        raise DataError(
            f"{a} and {b} were evaluated on different qrels (fingerprints differ); "
            "compare runs of the same dataset or pass --qrels"
        )
    only_a, only_b = len(va.keys() - vb.keys()), len(vb.keys() - va.keys())
    if only_a or only_b:
        notes.append(
            f"{only_a} queries only in A and {only_b} only in B count as 0 on the other side"
        )
    return compare(va, vb, measure, top=top), notes


def _p(p: float) -> str:
    return "nan" if math.isnan(p) else f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def format_text(c: Comparison, a: str, b: str, fmt: str = "text") -> str:
    """Plain text (``text``), Markdown (``md``) or JSON (``json``)."""
    if fmt == "json":
        # NaN (no test with fewer than two queries) as null: valid JSON
        return json.dumps(_nan_to_none({"a": a, "b": b, **c.as_dict()}), indent=2) + "\n"
    if fmt not in ("text", "md"):
        raise ConfigError(f"unknown format '{fmt}'; choose one of: text, md, json")
    lines = [
        f"A: {a}",
        f"B: {b}",
        f"{c.measure} over {c.n} queries: A {c.mean_a:.4f}, B {c.mean_b:.4f}",
        f"mean A - B: {c.mean_diff:+.4f} (95% CI {c.ci_low:+.4f} .. {c.ci_high:+.4f})",
        f"A better / tied / worse: {c.wins} / {c.ties} / {c.losses}",
        f"p-values: paired t-test {_p(c.p_ttest)}, Wilcoxon signed-rank {_p(c.p_wilcoxon)}",
    ]
    if fmt == "md":
        lines = [f"- {line}" for line in lines]
    if c.changes:
        lines += ["", f"queries that change most ({len(c.changes)}):"]
        if fmt == "md":
            lines += ["", "| query | A | B | A - B |", "| :--- | ---: | ---: | ---: |"]
            lines += [f"| {q} | {x:.4f} | {y:.4f} | {d:+.4f} |" for q, x, y, d in c.changes]
        else:
            width = max(len(q) for q, *_ in c.changes)
            lines.append(f"  {'query':<{width}}  {'A':>7}  {'B':>7}  {'A - B':>8}")
            lines += [f"  {q:<{width}}  {x:7.4f}  {y:7.4f}  {d:+8.4f}" for q, x, y, d in c.changes]
    return "\n".join(lines) + "\n"
