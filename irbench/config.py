"""Config composition: Hydra's Compose API for single runs, with one-line errors.

The config tree lives in ``conf/`` at the project root (or ``$IRBENCH_CONFIG_DIR``).
Sweeps (``-m``) go through :mod:`irbench.cli.sweep`, a ``@hydra.main`` entry point, so
that Hydra's sweepers and launchers (joblib, submitit) work unchanged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError

GROUPS = ("dataset", "encoder", "index", "fusion", "train", "experiment")


def config_dir() -> Path:
    env = os.environ.get("IRBENCH_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here.parent / "conf", here / "conf"]
    for c in candidates:
        if (c / "config.yaml").is_file():
            return c.resolve()
    raise ConfigError(
        f"no config tree found (looked in {', '.join(map(str, candidates))}); "
        "set IRBENCH_CONFIG_DIR to a folder holding config.yaml"
    )


def group_options(group: str, root: Path | None = None) -> list[str]:
    root = root or config_dir()
    folder = root / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "default")


def _check_choices(overrides: list[str], root: Path) -> None:
    """Unknown group options get a one-line error listing the valid ones."""
    for ov in overrides:
        m = re.fullmatch(r"\+?(\w+)=(.*)", ov)
        if not m or m.group(1) not in GROUPS:
            continue
        group, value = m.groups()
        options = group_options(group, root)
        for v in value.split(","):
            if v and v != "null" and v not in options:
                raise ConfigError(
                    f"unknown {group} '{v}' in override '{ov}'; choose one of: {', '.join(options)}"
                )


def _one_line(exc: Exception, valid_keys=None) -> str:
    msg = " ".join(str(exc).split())
    m = re.search(r"Could not override '([^']+)'", msg) or re.search(
        r"Key '([^']+)' is not in struct", msg
    )
    if m and ("append to your config" in msg or "not in struct" in msg):
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        valid = valid_keys(parent) if valid_keys else []
        where = f"'{parent}'" if parent else "the top level"
        hint = f"; valid keys at {where}: {', '.join(valid)}" if valid else ""
        return f"unknown config key '{key}'{hint} (to add a new key use +{key}=...)"
    m = re.search(r"Missing mandatory value: ([\w.]+)", msg)
    if m:
        return f"config keys without a value: {m.group(1)}; set them on the command line"
    return msg


def compose(overrides: list[str] | None = None) -> Any:
    """Compose the config with Hydra overrides; errors become :class:`ConfigError`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides or [])
    root = config_dir()
    _check_choices(overrides, root)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(root), version_base="1.3"):
            try:
                cfg = hydra_compose("config", overrides=overrides)
            except Exception as exc:  # hydra and omegaconf raise several types
                if type(exc).__module__.split(".")[0] not in ("hydra", "omegaconf"):
                    raise
                groups = [o for o in overrides if o.split("=", 1)[0].lstrip("+") in GROUPS]

                def valid_keys(parent: str) -> list[str]:
                    base = hydra_compose("config", overrides=groups)
                    node = OmegaConf.select(base, parent) if parent else base
                    return [str(k) for k in node.keys()] if OmegaConf.is_dict(node) else []

                raise ConfigError(_one_line(exc, valid_keys)) from None
        validate(cfg)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc)) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg


def config_int(value: Any, key: str, digits_ok: bool = False) -> int:
    """``value`` as an int; ConfigError naming ``key`` for anything else (a bool included).
    With ``digits_ok`` a string of digits counts too (``${oc.env:...}`` gives strings)."""
    if digits_ok and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    return value


#: config keys that hold paths (at any depth); see :func:`anchor_paths`
PATH_KEYS = frozenset({"path", "corpus", "topics", "qrels", "cache_dir", "backbone", "triples",
                       "teacher_scores", "teacher_backbone"})  # fmt: skip


def anchor_paths(cfg: Any, base: str | os.PathLike | None) -> Any:
    """``cfg`` with its relative paths (keys in :data:`PATH_KEYS`) made absolute against
    ``base``, the folder the run was started from (a run directory's manifest records it as
    ``cwd``), where such a path exists there; hub ids and paths that exist nowhere stay as
    they are. So a stored config works from any working directory."""
    from omegaconf import OmegaConf

    if not base:
        return cfg
    base = Path(base)

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(value, dict | list):
                walk(value)
            elif key in PATH_KEYS and isinstance(value, str) and value:
                p = Path(value).expanduser()
                if not p.is_absolute() and (base / p).exists():
                    node[key] = os.path.abspath(base / p)

    data = OmegaConf.to_container(cfg, resolve=False)
    walk(data)
    return OmegaConf.create(data)


def load_stored_config(path: str | os.PathLike) -> Any:
    """A run directory's stored ``config.yaml`` at ``path``, its relative paths anchored
    (:func:`anchor_paths`) at the ``cwd`` the ``manifest.json`` beside it records; left as
    stored when the manifest is missing or unreadable."""
    import json

    from omegaconf import OmegaConf

    path = Path(path)
    cfg = OmegaConf.load(path)
    try:
        cwd = json.loads((path.parent / "manifest.json").read_text("utf-8")).get("cwd")
    except (OSError, ValueError, AttributeError):
        cwd = None
    return anchor_paths(cfg, cwd)


def validate(cfg: Any) -> None:
    """Checks Hydra cannot do: types and ranges of irbench's top-level keys."""
    from omegaconf import OmegaConf

    missing = OmegaConf.missing_keys(cfg)
    if missing:
        keys = ", ".join(sorted(missing))
        raise ConfigError(f"config keys without a value: {keys}; set them on the command line")

    def integer(key: str, low: int | None, what: str) -> None:
        value = cfg.get(key)
        try:
            config_int(value, key)
        except ConfigError:
            raise ConfigError(f"{key} must be {what}, got {value!r}") from None
        if low is not None and value < low:
            raise ConfigError(f"{key} must be {what}, got {value!r}")

    integer("k", 1, "a positive integer")
    integer("threads", 0, "an integer >= 0 (0 = all cores)")
    integer("seed", None, "an integer")
    if "query_batch_size" in cfg:
        integer("query_batch_size", 1, "a positive integer")
    if isinstance(cfg.measures, str) or not OmegaConf.is_list(cfg.measures):
        raise ConfigError(f"measures must be a list like [nDCG@10,AP], got {cfg.measures!r}")
    from irbench.eval.measures import parse_measures

    parse_measures(list(cfg.measures))
    if "encode" in cfg:
        from irbench.runs.shards import check_encode

        check_encode(cfg.encode)
    drop = cfg.get("dataset", {}).get("drop_self_hits")
    if drop is not None and not isinstance(drop, bool):
        raise ConfigError(f"dataset.drop_self_hits must be true or false, got {drop!r}")


def to_yaml(cfg: Any) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(cfg, resolve=True)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with import errors turned into one-line config errors."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        from irbench.errors import IrbenchError

        if isinstance(cause, IrbenchError):
            raise cause from None
        target = node.get("_target_") if hasattr(node, "get") else None
        raise ConfigError(f"cannot instantiate '{target}': {' '.join(str(exc).split())}") from None
