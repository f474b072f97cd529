"""Hybrid fusion of ranked runs: reciprocal rank fusion and normalised score interpolation.

Runs are ``{query_id: {doc_id: score}}`` (what :func:`irbench.runs.trec.read_run` returns).
Ranks inside an input run and the fused ranking break score ties by doc id, descending, as
trec_eval does when it evaluates a run (and irbench's evaluation, for every measure): the
output depends only on the inputs, never on dict order, and the fused file ranks its hits as
its metrics do.

* ``rrf``: ``score(d) = Σ_i w_i / (rrf_k + rank_i(d))`` with ranks from 1; a run that did not
  retrieve ``d`` adds nothing (Cormack et al., 2009; ``w_i = 1`` unless weights are given).
* ``interpolate``: ``score(d) = Σ_i w_i · norm_i(d)`` with ``w = (alpha, 1 - alpha)`` for two
  runs. Scores are normalised per query and run (``minmax``: to [0, 1], ``zscore``: mean 0,
  sd 1, ``none``: raw). A document a run did not retrieve gets that run's lowest normalised
  score for the query (0 under ``minmax``); a query a run lacks adds 0 for every document.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError
from irbench.types import is_finite_number, is_integer

Run = Mapping[str, Mapping[str, float]]
METHODS = ("rrf", "interpolate")
NORMS = ("minmax", "zscore", "none")


def ranked(hits: Mapping[str, float]) -> list[tuple[str, float]]:
    """Hits by descending score, ties by descending doc id: the order trec_eval evaluates
    (:func:`irbench.runs.trec.trec_order`)."""
    from irbench.runs.trec import trec_order

    return trec_order(hits.items())


def normalize(hits: Mapping[str, float], norm: str) -> dict[str, float]:
    """One query's scores normalised: ``minmax`` (all 1.0 when every score is equal),
    ``zscore`` (population sd; all 0.0 when it is 0) or ``none``."""
    if norm == "none" or not hits:
        return dict(hits)
    values = list(hits.values())
    if norm == "minmax":
        lo, hi = min(values), max(values)
        if hi == lo:
            return dict.fromkeys(hits, 1.0)
        return {d: (s - lo) / (hi - lo) for d, s in hits.items()}
    if norm == "zscore":
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if sd == 0:
            return dict.fromkeys(hits, 0.0)
        return {d: (s - mean) / sd for d, s in hits.items()}
    raise ConfigError(f"unknown normalisation '{norm}'; choose one of: {', '.join(NORMS)}")


def _number(value: Any, key: str, integral: bool = False) -> Any:
    """``value`` if it is a number (an integer where ``integral``), else a ConfigError naming
    ``key``: a string such as ``"60"`` or a bool is a mistake, not a number."""
    if not (is_integer(value) if integral else is_finite_number(value)):
        what = "an integer" if integral else "a finite number"
        raise ConfigError(f"{key} must be {what}, got {value!r}")
    return value


def _weights(n: int, method: str, alpha: float, weights: Sequence[float] | None) -> list[float]:
    if weights is not None:
        if len(weights) != n:
            raise ConfigError(f"{len(weights)} weights for {n} runs; give one weight per run")
        return [float(_number(w, "weights")) for w in weights]
    if method == "rrf":
        return [1.0] * n
    if n != 2:
        raise ConfigError(
            f"interpolation of {n} runs needs one weight per run (weights=...); "
            "alpha applies to exactly two runs"
        )
    if not 0.0 <= _number(alpha, "alpha") <= 1.0:
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha}")
    return [float(alpha), 1.0 - float(alpha)]


def fuse_runs(
    runs: Sequence[Run],
    method: str = "rrf",
    alpha: float = 0.5,
    norm: str = "minmax",
    k: int = 1000,
    rrf_k: int = 60,
    weights: Sequence[float] | None = None,
) -> dict[str, dict[str, float]]:
    """Fuse ``runs`` into one run of at most ``k`` hits per query.

    The result is ``{query_id: {doc_id: score}}`` with each query's hits inserted in rank
    order (descending score, ties by doc id); queries appear in first-seen order over the runs.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown fusion method '{method}'; choose one of: {', '.join(METHODS)}")
    if norm not in NORMS:
        raise ConfigError(f"unknown normalisation '{norm}'; choose one of: {', '.join(NORMS)}")
    if not runs:
        raise ConfigError("fusion needs at least one run")
    if _number(k, "k", integral=True) < 1:
        raise ConfigError(f"k must be a positive integer, got {k}")
    if method == "rrf" and _number(rrf_k, "rrf_k") < 0:
        raise ConfigError(f"rrf_k must be >= 0, got {rrf_k}")
    w = _weights(len(runs), method, alpha, weights)
    qids: dict[str, None] = {}
    for run in runs:
        qids.update(dict.fromkeys(run))
    fused: dict[str, dict[str, float]] = {}
    for qid in qids:
        scores: dict[str, float] = {}
        if method == "rrf":
            for run, weight in zip(runs, w, strict=True):
                for rank, (doc, _) in enumerate(ranked(run.get(qid) or {}), start=1):
                    scores[doc] = scores.get(doc, 0.0) + weight / (rrf_k + rank)
        else:
            normed = [normalize(run.get(qid) or {}, norm) for run in runs]
            docs = set().union(*normed)
            for hits, weight in zip(normed, w, strict=True):
                if not hits:  # a query the run lacks shifts every document equally
                    continue
                floor = 0.0 if norm == "minmax" else min(hits.values())
                for doc in docs:
                    scores[doc] = scores.get(doc, 0.0) + weight * hits.get(doc, floor)
        fused[qid] = dict(ranked(scores)[: int(k)])
    return fused


def read_runs(paths: Sequence[str | os.PathLike]) -> list[dict[str, dict[str, float]]]:
    """TREC runs from files or run directories (their ``run.trec``)."""
    from irbench.runs.trec import read_run

    return [read_run(run_file(p)) for p in paths]


def run_file(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path/run.trec`` for a run directory."""
    p = Path(path)
    return p / "run.trec" if p.is_dir() else p


def write_fused(
    path: str | os.PathLike, fused: Mapping[str, Mapping[str, float]], tag: str = "fusion"
) -> None:
    """Write a fused run as TREC (atomically; hits already in rank order)."""
    from irbench.runs.trec import write_run

    write_run(path, ((qid, list(hits.items())) for qid, hits in fused.items()), tag)


def fusion_config(
    method: str, alpha: float, norm: str, k: int, rrf_k: int, weights: Sequence[float] | None
) -> dict[str, Any]:
    """The parameters that matter for ``method`` (recorded in manifests, used in names)."""
    cfg: dict[str, Any] = {"method": method, "k": int(k)}
    if method == "rrf":
        cfg["rrf_k"] = int(rrf_k) if float(rrf_k).is_integer() else float(rrf_k)
    else:
        cfg.update(alpha=float(alpha), norm=norm)
    if weights is not None:
        cfg["weights"] = [float(x) for x in weights]
    return cfg


def fuse_to_run_dir(
    inputs: Sequence[str | os.PathLike],
    run_dir: str | os.PathLike,
    method: str = "rrf",
    alpha: float = 0.5,
    norm: str = "minmax",
    k: int = 1000,
    rrf_k: int = 60,
    weights: Sequence[float] | None = None,
    qrels: str | os.PathLike | None = None,
    measures: Sequence[str] | None = None,
) -> tuple[Path, dict[str, float] | None]:
    """Fuse run directories into a new run directory that the leaderboard can read.

    Writes ``run.trec``; ``metrics.json`` and ``perquery.tsv`` against ``qrels`` (default: the
    first input's dataset, from its ``config.yaml``); and ``manifest.json`` with the fusion
    parameters, the inputs and their ``run.trec`` sha256, the dataset fingerprint and, in
    ``stats``, the inputs' summed latency and index size (a hybrid system runs both).
    """
    from irbench.eval import check_evaluable, evaluate
    from irbench.report.rundir import load_run_dir
    from irbench.runs.atomic import atomic_dir

    dirs = [load_run_dir(p) for p in inputs]

    def collection(d: Any) -> str:  # docs and queries: runs judged on other qrels still fuse
        fp = dict((d.manifest.get("dataset") or {}).get("fingerprint") or {})
        fp.pop("qrels", None)
        return json.dumps(fp, sort_keys=True)

    prints = {collection(d) for d in dirs}
    if len(prints) > 1:
        raise ConfigError(
            "the runs to fuse come from different datasets (fingerprints differ): "
            + ", ".join(str(d.path) for d in dirs)
        )
    out = Path(run_dir)
    _check_fusion_target(out)
    fused = fuse_runs(read_runs([d.path for d in dirs]), method, alpha, norm, k, rrf_k, weights)
    cfg = fusion_config(method, alpha, norm, k, rrf_k, weights)  # the arguments are checked
    first = dirs[0]
    dataset = dict(first.manifest.get("dataset") or {})
    measures = list(measures or first.config_get("measures") or ["nDCG@10"])
    if qrels is not None:
        from irbench.data import read_qrels_file
        from irbench.data.fingerprint import file_fingerprint

        judged = list(read_qrels_file(qrels))
        # the qrels used, so that the leaderboard only compares runs judged alike
        dataset["fingerprint"] = {
            **(dataset.get("fingerprint") or {}),
            "qrels": file_fingerprint(qrels),
        }
    else:
        judged = _dataset_qrels(first)
    result = None
    if judged is not None:  # evaluated before anything is written
        result = evaluate(fused, judged, measures)
        check_evaluable(result, "the fused run", str(qrels) if qrels else "the inputs' qrels")
    with atomic_dir(out) as tmp:
        _write_fusion_dir(tmp, out, dirs, fused, result, cfg, dataset, measures, method, k)
    return out, (result.aggregate if result is not None else None)


def _check_fusion_target(out: Path) -> None:
    """A ConfigError unless ``out`` is new, an empty folder or an earlier fused run directory:
    the fused run replaces it whole, and nothing else may be deleted."""
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    manifest = out / "manifest.json"
    try:
        earlier = json.loads(manifest.read_text()) if manifest.is_file() else None
    except (OSError, ValueError):
        earlier = None
    if not (out.is_dir() and isinstance(earlier, dict) and "fusion" in earlier):
        raise ConfigError(
            f"--run-dir {out}: exists and is not an earlier fused run directory; it would be "
            "replaced whole, so give a new or empty folder"
        )


def _write_fusion_dir(
    tmp: Path, out: Path, dirs: list, fused: Run, result: Any, cfg: dict[str, Any],
    dataset: dict[str, Any], measures: list[str], method: str, k: int,
) -> None:  # fmt: skip
    """The files of a fused run directory, written into ``tmp`` (moved to ``out`` after)."""
    from irbench.pipeline import write_metrics
    from irbench.runs.atomic import write_json, write_text
    from irbench.runs.manifest import environment, sha256_file

    write_fused(tmp / "run.trec", fused, tag=method)
    if result is not None:
        write_metrics(tmp, result)
    first = dirs[0]
    inputs_info = [
        {
            "run_dir": str(d.path),
            "encoder": d.encoder_name,
            "index": d.index_name,
            "encoder_config": d.manifest.get("encoder", {}).get("config"),
            "run.trec": d.manifest["outputs"]["run.trec"],
        }
        for d in dirs
    ]
    name = f"{method}({'+'.join(d.encoder_name for d in dirs)})"
    stats: dict[str, Any] = {}
    for key in ("ms_per_query", "index_mb"):
        values = [d.stats.get(key) for d in dirs]
        if all(v is not None for v in values):
            stats[key] = round(sum(values), 4)
    if stats.get("ms_per_query"):
        stats["qps"] = round(1000 / stats["ms_per_query"], 1)
    threads = {d.stats.get("threads") for d in dirs} - {None}
    if len(threads) == 1:
        stats["threads"] = threads.pop()
    stats["n_docs"] = first.stats.get("n_docs")
    stats = {key: v for key, v in stats.items() if v is not None}
    config = {
        "run_dir": str(out),
        "measures": measures,
        "k": int(k),
        "tag": None,
        "dataset": first.config_get("dataset"),
        "fusion": {**cfg, "inputs": [str(d.path) for d in dirs]},
    }
    import yaml

    write_text(tmp / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    if stats:
        write_json(tmp / "stats.json", stats)
    manifest = {
        **environment(),
        "dataset": dataset,
        "encoder": {"name": name, "config": {**cfg, "inputs": [i["encoder"] for i in inputs_info]}},
        "index": {"name": "fusion"},
        "fusion": {**cfg, "inputs": inputs_info},
        "stats": {**stats, "note": "latency and index size: sums over the fused inputs"},
        "outputs": {
            n: sha256_file(tmp / n)
            for n in ("run.trec", "metrics.json", "perquery.tsv", "stats.json")
            if (tmp / n).is_file()
        },
    }
    write_json(tmp / "manifest.json", manifest)


def _dataset_qrels(run: Any) -> list | None:
    """The qrels of the dataset a run directory was made on, from its config.yaml."""
    from omegaconf import OmegaConf

    from irbench.data import make_dataset
    from irbench.errors import IrbenchError

    ds = run.config_get("dataset")
    if not ds:
        return None
    try:
        params = OmegaConf.to_container(OmegaConf.create(ds), resolve=True)
        return list(make_dataset(**params).qrels_iter())
    except (IrbenchError, OSError) as exc:
        raise ConfigError(
            f"cannot load the qrels of {run.path}'s dataset ({exc}); pass --qrels"
        ) from None
