"""``irbench run -m``: hand the overrides to a ``@hydra.main`` app so Hydra's sweepers and
launchers (basic, joblib, submitit, ...) run the jobs; each job calls :func:`irbench.pipeline.run`."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from irbench.config import GROUPS

SWEEP_KEYS_ENV = "IRBENCH_SWEEP_KEYS"  # inherited by launcher workers (joblib, SLURM)
SWEEP_STAGE_ENV = "IRBENCH_SWEEP_STAGE"  # "run" or "index"
#: a folder where failed jobs leave a note, seen by the sweep's own process whatever process
#: ran the job (the basic launcher's, joblib's workers)
SWEEP_FAILED_ENV = "IRBENCH_SWEEP_FAILED"


def _check_run_dir(overrides: list[str]) -> None:
    """A ``run_dir`` given once for a whole sweep would hold every job's files in turn."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from irbench.errors import ConfigError

    parsed = OverridesParser.create().parse_overrides(overrides)
    sweeps = [ov for ov in parsed if ov.is_sweep_override()]
    for ov in parsed:
        if ov.key_or_group == "run_dir" and not ov.is_sweep_override() and sweeps:
            value = ov.input_line.split("=", 1)[1] if ov.input_line else ""
            if "${" not in value:
                raise ConfigError(
                    f"run_dir={value} is the same folder for every job of the sweep; leave "
                    "run_dir unset (each job gets its own folder) or put the swept keys in it, "
                    "e.g. 'run_dir=runs/mine/k1=${encoder.k1}'"
                )


def _swept_keys(overrides: list[str]) -> list[str]:
    """Keys the sweep varies, other than group choices (those are already in run_dir)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = []
    for ov in OverridesParser.create().parse_overrides(overrides):
        key = ov.key_or_group
        if ov.is_sweep_override() and key not in GROUPS and not key.startswith("hydra"):
            keys.append(key)
    return keys


def _job_suffix(task_overrides: list[str], swept: list[str]) -> str:
    """The job's values of the swept keys, as a folder-safe suffix (``encoder.k1=1.2,k=100``)."""
    parts = []
    for ov in task_overrides:
        key = ov.split("=", 1)[0].lstrip("+~")
        if key in swept:
            parts.append(re.sub(r"[^\w.=,@+-]", "_", ov.lstrip("+~")))
    return ",".join(sorted(parts))


def _task(cfg: Any) -> float | None:
    import typer
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from irbench.cli.errors import handle_errors
    from irbench.config import validate
    from irbench.pipeline import run
    from irbench.progress import console
    from irbench.report.tables import metrics_table

    hc = HydraConfig.get()
    task_overrides = list(hc.overrides.task)
    explicit_run_dir = any(o.split("=", 1)[0].lstrip("+") == "run_dir" for o in task_overrides)
    swept = [k for k in os.environ.get(SWEEP_KEYS_ENV, "").split(",") if k]
    suffix = _job_suffix(task_overrides, swept)
    with open_dict(cfg):
        cfg.pop("hydra", None)
        if suffix and not explicit_run_dir:
            cfg.run_dir = f"{cfg.run_dir}/{suffix}"

    @handle_errors
    def job() -> dict[str, float]:
        validate(cfg)
        OmegaConf.resolve(cfg)
        if os.environ.get(SWEEP_STAGE_ENV) == "index":
            from irbench.pipeline import build_index

            handle = build_index(cfg)
            return {"docs": float(len(handle.docnos))}
        metrics, _ = run(cfg)
        return metrics

    try:
        metrics = job() or {}
    except typer.Exit as exc:  # its one-line error is printed; the other jobs go on
        if exc.exit_code == 130:  # interrupted: stop the sweep
            raise
        failed = os.environ.get(SWEEP_FAILED_ENV)
        if failed and Path(failed).is_dir():
            (Path(failed) / f"{hc.job.num:06d}").write_text(f"[{hc.job.num}] {cfg.run_dir}")
        return None
    console().print(metrics_table(metrics, title=f"[{hc.job.num}] {cfg.run_dir}"))
    first = next(iter(metrics.values()), None)
    return first  # sweepers that optimise (e.g. Optuna) read the first measure


def sweep(overrides: list[str], stage: str = "run") -> None:
    import hydra

    from irbench.config import _check_choices, config_dir

    root = config_dir()
    _check_choices(overrides, root)
    _check_run_dir(overrides)
    os.environ[SWEEP_KEYS_ENV] = ",".join(_swept_keys(overrides))
    os.environ[SWEEP_STAGE_ENV] = stage
    main = hydra.main(config_path=str(root), config_name="config", version_base="1.3")(_task)
    argv = sys.argv
    sys.argv = ["irbench-run", "--multirun", *overrides]
    failed_dir = Path(tempfile.mkdtemp(prefix="irbench-sweep-"))
    os.environ[SWEEP_FAILED_ENV] = str(failed_dir)
    try:
        main()
        failed = [f.read_text() for f in sorted(failed_dir.iterdir())]
    finally:
        sys.argv = argv
        os.environ.pop(SWEEP_FAILED_ENV, None)
        shutil.rmtree(failed_dir, ignore_errors=True)
    if failed:
        from irbench.errors import IrbenchError

        raise IrbenchError(f"{len(failed)} job(s) of the sweep failed: {', '.join(failed)}")
