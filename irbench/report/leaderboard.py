"""A leaderboard built only from run directories: systems x datasets, significance vs a baseline.

One row per system, where a system is what produced the run apart from the data: encoder name
and its result-relevant config (the encoder's cache key in the manifest), index name and config,
``k`` and ``tag``. Rows get readable names (``bm25``, ``bm25 (k1=1.2)``, ``splade``); see
:func:`system_names`. Each dataset cell is the run's ``metrics.json`` value, unchanged.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError
from irbench.report.rundir import RunDir, discover, load_run_dir

EFFICIENCY = ("ms_per_query", "qps", "index_mb", "avg_doc_nnz", "flops")
_INDEX_SKIP = {"_target_", "_partial_", "name"}


@dataclass
class Cell:
    value: float | None
    p: float | None = None  # raw p-value vs the baseline
    p_holm: float | None = None  # Holm-adjusted across the systems compared on this dataset
    sig: str = ""  # "+" significantly higher than the baseline, "-" lower, "" neither


@dataclass
class Row:
    name: str
    key: str
    runs: dict[str, RunDir]
    cells: dict[str, Cell] = field(default_factory=dict)
    mean: float | None = None
    efficiency: dict[str, float] = field(default_factory=dict)
    baseline: bool = False


@dataclass
class Leaderboard:
    measure: str
    datasets: list[str]
    rows: list[Row]
    baseline: str | None
    test: str
    alpha: float
    efficiency_dataset: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def show_mean(self) -> bool:
        return len(self.datasets) > 1

    @property
    def run_dirs(self) -> list[RunDir]:
        return [r for row in self.rows for r in row.runs.values()]

    def best(self, column: str) -> float | None:
        """Best value of a dataset column, ``mean``, or an efficiency key (higher is better
        except latency, index size, nnz and FLOPS)."""
        if column in self.datasets:
            values = [row.cells[column].value for row in self.rows if column in row.cells]
        elif column == "mean":
            values = [row.mean for row in self.rows]
        else:
            values = [row.efficiency.get(column) for row in self.rows]
        values = [v for v in values if v is not None and not math.isnan(v)]
        if not values:
            return None
        return max(values) if column in (*self.datasets, "mean", "qps") else min(values)

    def threads(self) -> list[int]:
        return sorted(
            {int(r.efficiency["threads"]) for r in self.rows if "threads" in r.efficiency}
        )


def _canonical_measure(measure: str) -> str:
    from irbench.eval.measures import parse_measures

    return str(parse_measures([measure])[0])


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _strip(node: Any) -> dict[str, Any]:
    return {k: v for k, v in (node or {}).items() if k not in _INDEX_SKIP}


def describe(run: RunDir) -> dict[str, Any]:
    """What identifies the system behind a run (everything but the data).

    The encoder's config is its cache key from the manifest (only what changes results), else
    the config.yaml section. Fused runs (a ``fusion`` block with a ``method``) are named
    ``method(first+second)`` and described by both inputs and the fusion parameters.
    """
    enc_cfg = run.manifest.get("encoder", {}).get("config")
    if enc_cfg is None:
        enc_cfg = _strip(run.config_get("encoder"))
    flat: dict[str, Any] = {}
    _flatten("", enc_cfg, flat)
    _flatten("index", _strip(run.config_get("index")), flat)
    if run.config_get("k") is not None:
        flat["depth"] = run.config_get("k")
    encoder, index = run.encoder_name, run.index_name
    fusion = run.config_get("fusion") or run.manifest.get("fusion")
    if isinstance(fusion, dict) and fusion.get("method") and "second" in fusion:
        # `irbench run fusion=...`: the run's encoder/index fused with fusion.second
        method = str(fusion["method"])
        second = fusion.get("second") or {}
        second_name = (second.get("encoder") or {}).get("name", "?")
        encoder, index = f"{method}({encoder}+{second_name})", "fusion"
        _flatten("second", _strip(second.get("encoder")), flat)
        _flatten("second.index", _strip(second.get("index")), flat)
        relevant = {"rrf": ("rrf_k",), "interpolate": ("alpha", "norm")}.get(method, ())
        for key in (*relevant, "weights"):
            if fusion.get(key) is not None:
                flat[f"fusion.{key}"] = fusion[key]
    return {"encoder": encoder, "index": index, "tag": run.config_get("tag"), "config": flat}


def _short(value: Any) -> str:
    if isinstance(value, str) and ("/" in value or os.sep in value):
        return Path(value.rstrip("/")).name
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return str(value)


def system_names(descriptions: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Readable, unique names for system keys.

    A run ``tag`` is the name when set. Otherwise the encoder name, plus ``.index`` when systems
    with that encoder use several indexes, plus the config values that differ between the
    systems sharing that base name, e.g. ``bm25 (k1=1.2)``. Paths are shortened to their last
    component (``backbone=splade-tiny``).
    """
    indexes: dict[str, set[str]] = {}
    for d in descriptions.values():
        indexes.setdefault(d["encoder"], set()).add(d["index"])
    base: dict[str, str] = {}
    for key, d in descriptions.items():
        if d["tag"]:
            base[key] = str(d["tag"])
        elif len(indexes[d["encoder"]]) > 1:
            base[key] = f"{d['encoder']}.{d['index']}"
        else:
            base[key] = d["encoder"]
    names: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for key, b in base.items():
        groups.setdefault(b, []).append(key)
    for b, keys in groups.items():
        if len(keys) == 1:
            names[keys[0]] = b
            continue
        configs = [descriptions[k]["config"] for k in keys]
        all_keys = sorted({c for cfg in configs for c in cfg})
        varying = [
            c
            for c in all_keys
            if len({json.dumps(cfg.get(c), sort_keys=True, default=str) for cfg in configs}) > 1
        ]
        leaves = [c.split(".")[-1] for c in varying]
        labels = [
            leaf if leaves.count(leaf) == 1 else c for c, leaf in zip(varying, leaves, strict=True)
        ]
        for k, cfg in zip(keys, configs, strict=True):
            parts = [
                f"{label}={_short(cfg.get(c))}" for c, label in zip(varying, labels, strict=True)
            ]
            names[k] = f"{b} ({', '.join(parts)})" if parts else b
    return names


def _resolve_baseline(baseline: str, rows: list[Row]) -> Row:
    """A row by readable name, by one of its run directories (path or folder name such as
    ``bm25.numba``) or by a unique case-insensitive prefix of its name."""
    for row in rows:
        if row.name == baseline:
            return row
    target = Path(baseline).resolve()
    for row in rows:
        if any(run.path.resolve() == target for run in row.runs.values()):
            return row
    by_folder = [r for r in rows if any(run.path.name == baseline for run in r.runs.values())]
    if len(by_folder) == 1:
        return by_folder[0]
    prefix = [r for r in rows if r.name.lower().startswith(baseline.lower())]
    if len(prefix) == 1:
        return prefix[0]
    names = ", ".join(repr(r.name) for r in rows)
    how = "is ambiguous" if len(by_folder) > 1 or len(prefix) > 1 else "matches no system"
    raise ConfigError(f"baseline '{baseline}' {how}; systems: {names}")


def _qrels_fingerprint(run: RunDir) -> str | None:
    return ((run.manifest.get("dataset") or {}).get("fingerprint") or {}).get("qrels")


def _same_qrels(
    by_key: dict[str, dict[str, RunDir]],
    names: dict[str, str],
    baseline: str | None,
    notes: list[str],
) -> None:
    """Keep, per dataset, the runs evaluated on one qrels: the baseline's when it has a run
    there, else those most systems used (the first system's on a tie). Other runs are left
    out with a note, since their values and per-query tests would not compare; runs that
    record no qrels fingerprint are kept."""
    from collections import Counter

    base_key = None
    if baseline:
        rows = [Row(names[k], k, slot) for k, slot in by_key.items()]
        base_key = _resolve_baseline(baseline, rows).key
    datasets = {ds for slot in by_key.values() for ds in slot}
    for ds in sorted(datasets):
        prints = {k: _qrels_fingerprint(slot[ds]) for k, slot in by_key.items() if ds in slot}
        known = [fp for fp in prints.values() if fp is not None]
        if len(set(known)) < 2:
            continue
        chosen = prints.get(base_key) if base_key in prints else None
        if chosen is None:
            chosen = Counter(known).most_common(1)[0][0]  # Counter keeps first-seen order
        for key, fp in prints.items():
            if fp is not None and fp != chosen:
                run = by_key[key].pop(ds)
                notes.append(
                    f"{run.path} was evaluated on other qrels than "
                    + ("the baseline's" if base_key in prints else "most systems'")
                    + f" on {ds} (fingerprints differ); left out"
                )


def build(
    paths: Iterable[str | os.PathLike],
    measure: str = "nDCG@10",
    baseline: str | None = None,
    test: str = "ttest",
    alpha: float = 0.05,
    efficiency_dataset: str | None = None,
    datasets: Sequence[str] | None = None,
) -> Leaderboard:
    """Read (and verify) the run directories under ``paths`` and assemble the leaderboard."""
    from irbench.eval.significance import aligned, check_test, holm, paired_pvalue

    check_test(test)
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    measure = _canonical_measure(measure)
    dirs = discover(paths)
    if not dirs:
        raise ConfigError(
            f"no run directories (folders with manifest.json and metrics.json) under "
            f"{', '.join(map(str, paths))}; run `irbench run ...` first"
        )
    runs = [load_run_dir(d) for d in dirs]
    notes: list[str] = []
    descriptions: dict[str, dict[str, Any]] = {}
    by_key: dict[str, dict[str, RunDir]] = {}
    for run in runs:
        desc = describe(run)
        key = json.dumps(desc, sort_keys=True, default=str)
        descriptions[key] = desc
        slot = by_key.setdefault(key, {})
        ds = run.dataset
        if ds in slot:  # same config, same data: keep the first folder (sorted order)
            notes.append(
                f"{run.path} repeats the system of {slot[ds].path} on {ds}; using {slot[ds].path}"
            )
        else:
            slot[ds] = run
    names = system_names(descriptions)
    _same_qrels(by_key, names, baseline, notes)
    all_datasets = sorted({ds for slot in by_key.values() for ds in slot})
    if datasets:
        unknown = [d for d in datasets if d not in all_datasets]
        if unknown:
            raise ConfigError(
                f"no runs for dataset(s) {', '.join(unknown)}; have: {', '.join(all_datasets)}"
            )
        all_datasets = list(datasets)
    rows = []
    for key, slot in by_key.items():
        slot = {ds: r for ds, r in slot.items() if ds in all_datasets}
        if not slot:
            continue
        row = Row(names[key], key, slot)
        for ds, run in slot.items():
            value = run.metrics.get(measure)
            if value is None:
                notes.append(f"{run.path}: metrics.json has no {measure}")
            row.cells[ds] = Cell(value)
        values = [row.cells[ds].value for ds in all_datasets if ds in row.cells]
        if len(values) == len(all_datasets) and all(v is not None for v in values):
            row.mean = sum(values) / len(values)  # type: ignore[arg-type]
        rows.append(row)
    if not any(cell.value is not None for row in rows for cell in row.cells.values()):
        have = sorted({m for run in runs for m in run.metrics})
        raise ConfigError(
            f"no run has {measure} in metrics.json; measures present: {', '.join(have)}"
        )

    # efficiency on one dataset: the one most systems were timed on, then the largest corpus
    if efficiency_dataset is None:

        def coverage(ds: str) -> tuple[int, int]:
            timed = [r.runs[ds].stats for r in rows if ds in r.runs]
            return (
                sum(1 for s in timed if s.get("ms_per_query")),
                max((int(s.get("n_docs") or 0) for s in timed), default=0),
            )

        efficiency_dataset = max(all_datasets, key=lambda ds: (coverage(ds), ds), default=None)
    elif efficiency_dataset not in all_datasets:
        raise ConfigError(
            f"efficiency dataset '{efficiency_dataset}' has no runs; have: {', '.join(all_datasets)}"
        )
    for row in rows:
        run = row.runs.get(efficiency_dataset) if efficiency_dataset else None
        if run is not None:
            stats = run.stats
            row.efficiency = {
                k: float(stats[k]) for k in (*EFFICIENCY, "threads") if stats.get(k) is not None
            }

    base_row = None
    if baseline:
        base_row = _resolve_baseline(baseline, rows)
        base_row.baseline = True
        for ds in all_datasets:
            base_run = base_row.runs.get(ds)
            others = [r for r in rows if r is not base_row and ds in r.runs]
            if base_run is None:
                if others:
                    notes.append(f"the baseline has no run on {ds}: no significance tests there")
                continue
            base_pq = base_run.perquery(measure)
            pvalues, signs = [], []
            for row in others:
                _, x, y = aligned(row.runs[ds].perquery(measure), base_pq)
                pvalues.append(paired_pvalue(x, y, test))
                signs.append(sum(x) - sum(y))
            for row, p, adj, sign in zip(others, pvalues, holm(pvalues), signs, strict=True):
                cell = row.cells[ds]
                cell.p, cell.p_holm = p, adj
                if not math.isnan(adj) and adj < alpha and sign != 0:
                    cell.sig = "+" if sign > 0 else "-"
    rows.sort(key=lambda r: (r.mean is None, -(r.mean or 0.0), r.name))
    return Leaderboard(
        measure=measure,
        datasets=all_datasets,
        rows=rows,
        baseline=base_row.name if base_row else None,
        test=test,
        alpha=alpha,
        efficiency_dataset=efficiency_dataset,
        notes=notes,
    )
