"""Reading finished run directories (never recomputing them) and checking their integrity.

A run directory holds ``manifest.json`` and ``metrics.json`` (plus ``run.trec``,
``perquery.tsv``, ``config.yaml``, ``stats.json``). Before anything is reported from one, the
sha256 of every output recorded in ``manifest["outputs"]`` must match the file on disk: a
``run.trec`` edited after the run is refused, naming the folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from irbench.errors import DataError

REQUIRED = ("manifest.json", "metrics.json")


@dataclass
class RunDir:
    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return str(self.manifest.get("dataset", {}).get("name") or self.config_get("dataset.name"))

    @property
    def encoder_name(self) -> str:
        return str(self.manifest.get("encoder", {}).get("name") or self.config_get("encoder.name"))

    @property
    def index_name(self) -> str:
        return str(self.manifest.get("index", {}).get("name") or self.config_get("index.name"))

    def config_get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @cached_property
    def stats(self) -> dict[str, Any]:
        """Efficiency figures: ``stats.json``, else the manifest's ``stats``, else derived
        from what the manifest's stages recorded."""
        path = self.path / "stats.json"
        if path.is_file():
            return _read_json(path)
        if self.manifest.get("stats"):
            return dict(self.manifest["stats"])
        from irbench.pipeline import efficiency_stats

        return efficiency_stats(self.manifest)

    @cached_property
    def _perquery(self) -> dict[str, dict[str, float]]:
        path = self.path / "perquery.tsv"
        if not path.is_file():
            raise DataError("no perquery.tsv (needed for significance tests)", self.path)
        out: dict[str, dict[str, float]] = {}
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip("\n").split("\t")
                if lineno == 1 and parts[:2] == ["query_id", "measure"]:
                    continue
                if len(parts) != 3:
                    raise DataError("expected 'query_id<TAB>measure<TAB>value'", path, lineno)
                try:
                    out.setdefault(parts[1], {})[parts[0]] = float(parts[2])
                except ValueError:
                    raise DataError(f"value {parts[2]!r} is not a number", path, lineno) from None
        return out

    def perquery(self, measure: str) -> dict[str, float]:
        """``{query_id: value}`` of one measure from ``perquery.tsv``."""
        values = self._perquery.get(measure)
        if values is None:
            have = ", ".join(sorted(self._perquery)) or "none"
            raise DataError(f"perquery.tsv has no '{measure}' values (has: {have})", self.path)
        return values


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable JSON ({exc})", path) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object", path)
    return data


def verify_outputs(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse a run directory whose outputs no longer match the sha256 in its manifest."""
    from irbench.runs.manifest import sha256_file

    outputs = manifest.get("outputs") or {}
    if "run.trec" not in outputs:
        raise DataError(
            "manifest.json records no sha256 of run.trec, so the run cannot be verified; "
            "re-run it with irbench",
            path,
        )
    for name, digest in outputs.items():
        file = path / name
        if not file.is_file():
            raise DataError(f"{name} is listed in manifest.json but missing", path)
        if sha256_file(file) != digest:
            raise DataError(
                f"{name} no longer matches the sha256 in manifest.json (modified after the run); "
                "re-run the experiment or leave this folder out",
                path,
            )


def load_run_dir(path: str | os.PathLike, verify: bool = True) -> RunDir:
    path = Path(path)
    for name in REQUIRED:
        if not (path / name).is_file():
            raise DataError(f"not a run directory: no {name}", path)
    manifest = _read_json(path / "manifest.json")
    if verify:
        verify_outputs(path, manifest)
    metrics = _read_json(path / "metrics.json")
    config: dict[str, Any] = {}
    if (path / "config.yaml").is_file():
        import yaml

        try:
            config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DataError(
                f"unreadable config.yaml ({' '.join(str(exc).split())})", path
            ) from None
    return RunDir(path, manifest, {k: float(v) for k, v in metrics.items()}, config)


def is_run_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED)


def discover(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories among ``paths``: each path is a run directory or a folder searched
    recursively (hidden folders such as ``.cache`` are skipped). Sorted, without duplicates."""
    found: dict[Path, None] = {}
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DataError("no such file or directory", p)
        if is_run_dir(p):
            found[p] = None
            continue
        if not p.is_dir():
            raise DataError("not a run directory (needs manifest.json and metrics.json)", p)
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if all(name in files for name in REQUIRED):
                found[Path(root)] = None
    return sorted(found)
