"""``irbench reproduce RUN_DIR``: re-run a run directory from its resolved config and say
whether ``run.trec`` and ``metrics.json`` come out byte-identical, and if not, where not."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irbench.errors import DataError, IrbenchError


@dataclass
class Reproduction:
    run_dir: Path
    identical: bool = False
    files: dict[str, bool] = field(default_factory=dict)  # name -> byte-identical
    environment: list[str] = field(default_factory=list)  # differences from the manifest
    diverged_stage: str | None = None
    changed_queries: list[str] = field(default_factory=list)
    error: str | None = None


def _load_run_dir(run_dir: Path) -> tuple[Any, dict[str, Any]]:
    from omegaconf import OmegaConf

    for name in ("config.yaml", "manifest.json", "run.trec"):
        if not (run_dir / name).is_file():
            raise DataError(f"not a complete run directory: {name} is missing", run_dir)
    try:
        cfg = OmegaConf.load(run_dir / "config.yaml")
    except Exception as exc:  # yaml's and omegaconf's parse errors
        raise DataError(f"unreadable config ({' '.join(str(exc).split())[:160]})",
                        run_dir / "config.yaml") from None  # fmt: skip
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable manifest ({exc})", run_dir / "manifest.json") from None
    if not OmegaConf.is_dict(cfg) or not isinstance(manifest, dict):
        raise DataError("config.yaml or manifest.json is not a mapping", run_dir)
    inputs = (cfg.get("fusion") or {}).get("inputs")
    if inputs is not None:  # written by `irbench fuse --run-dir`, not by a config
        raise DataError(
            "made by `irbench fuse`: reproduce its inputs ("
            + ", ".join(map(str, inputs))
            + ") and fuse them again with the options in its config.yaml",
            run_dir,
        )
    return cfg, manifest


def environment_differences(manifest: dict[str, Any], cfg: Any) -> list[str]:
    """Versions, Python and thread count now versus when the run was made."""
    from irbench.pipeline import effective_threads
    from irbench.runs.manifest import environment

    now = environment()
    diffs = []
    for key in ("irbench", "python"):
        if manifest.get(key) != now.get(key):
            diffs.append(f"{key}: {manifest.get(key)} -> {now.get(key)}")
    then_git, now_git = manifest.get("git") or {}, now.get("git") or {}
    for key in ("commit", "diff_sha256"):  # the code itself, committed or not
        if then_git.get(key) != now_git.get(key) and (then_git.get(key) or now_git.get(key)):
            diffs.append(f"git {key}: {then_git.get(key)} -> {now_git.get(key)}")
    for name, version in (manifest.get("packages") or {}).items():
        if now["packages"].get(name) != version:
            diffs.append(f"{name}: {version} -> {now['packages'].get(name)}")
    threads = effective_threads(int(cfg.threads))
    if manifest.get("threads") not in (None, threads):
        diffs.append(f"threads: {manifest.get('threads')} -> {threads}")
    return diffs


def _run_lines(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            out.setdefault(parts[0], []).append(" ".join(parts[1:5]))
    return out


def reproduce(run_dir: str | Path, work_dir: str | Path | None = None) -> Reproduction:
    """Re-execute the run in ``work_dir`` (default: a fresh ``RUN_DIR/.reproduce``) and compare."""
    from omegaconf import open_dict

    from irbench.config import anchor_paths
    from irbench.pipeline import run

    run_dir = Path(run_dir)
    cfg, manifest = _load_run_dir(run_dir)
    cfg = anchor_paths(cfg, manifest.get("cwd"))
    report = Reproduction(run_dir)
    report.environment = environment_differences(manifest, cfg)
    work = Path(work_dir) if work_dir else run_dir / ".reproduce"
    if work.exists():
        if work.is_dir() and any(work.iterdir()) and not (work / "config.yaml").is_file():
            raise DataError(
                "exists and is not a run directory; give a new or empty folder as --work-dir",
                work,
            )  # never delete a folder the user did not get from a run
        shutil.rmtree(work) if work.is_dir() else work.unlink()
    with open_dict(cfg):
        cfg.run_dir = str(work)
    try:
        _, objects = run(cfg, on_corrupt="error")
    except IrbenchError as exc:
        report.error = str(exc)
        report.diverged_stage = "index" if "cache" in str(exc).lower() else None
        return report
    new = json.loads((work / "manifest.json").read_text())
    for name in ("run.trec", "metrics.json"):
        a, b = run_dir / name, work / name
        report.files[name] = a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
    report.identical = all(report.files.values())
    if not report.identical:
        old_fp = manifest.get("dataset", {}).get("fingerprint")
        if old_fp != new.get("dataset", {}).get("fingerprint"):
            report.diverged_stage = "dataset (fingerprints differ)"
        elif manifest.get("encoder") != new.get("encoder") or _index_shape(
            manifest
        ) != _index_shape(new):
            report.diverged_stage = "index (encoder or index differs)"
        elif not report.files["run.trec"]:
            report.diverged_stage = "retrieve"
        else:
            report.diverged_stage = "eval"
        old, cur = _run_lines(run_dir / "run.trec"), _run_lines(work / "run.trec")
        report.changed_queries = sorted(q for q in set(old) | set(cur) if old.get(q) != cur.get(q))
    del objects
    return report


def _index_shape(manifest: dict[str, Any]) -> tuple:
    index = manifest.get("index", {})
    return tuple(index.get(k) for k in ("n_docs", "nnz", "vocab_size", "dim"))
