"""Options shared by several commands (declared once)."""

from __future__ import annotations

from typing import Annotated

import typer

Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides, e.g. dataset=scifact encoder=bm25 encoder.k1=1.2 k=100"),
]
Multirun = Annotated[
    bool,
    typer.Option("--multirun", "-m", help="Sweep: comma-separated values run as separate jobs"),
]

# the query-processing benches (`irbench bench index`, `irbench bench dense`)
BenchKs = Annotated[
    list[int] | None, typer.Option("--k", help="Hits per query; repeatable (default 10, 1000)")
]
BenchThreads = Annotated[
    list[int] | None,
    typer.Option("--threads", help="Thread counts to time; repeatable (default 1 and all)", min=1),
]
BenchMaxQueries = Annotated[
    int | None, typer.Option(help="Use only the first N queries (quick runs)", min=1)
]
BenchMinSeconds = Annotated[
    float,
    typer.Option(
        help="Seconds timed per engine setting (or, when some are much slower, that many "
        "per setting for all together)",
        min=0.0,
    ),
]
BenchLatency = Annotated[
    bool, typer.Option("--latency/--no-latency", help="Time queries one at a time too")
]


def check_out_dir(out) -> None:
    """A ConfigError, before any work, when ``--out`` names something other than a folder
    (the results would be computed, then not written)."""
    from irbench.errors import ConfigError

    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file is there; give a folder for the results")


def command_line(*prefix: str) -> str | None:
    """The shell command that ran ``irbench <prefix> ...`` (quoted), or None when called from
    elsewhere (tests, Python)."""
    import shlex
    import sys

    if sys.argv[1 : 1 + len(prefix)] != list(prefix):
        return None
    return "irbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def compose_with_default_recipe(overrides: list[str] | None):
    """Compose the config, adding ``train=splade`` when no ``train=`` override is given."""
    from irbench.config import compose

    overrides = list(overrides or [])
    if not any(o.lstrip("+").split("=", 1)[0] == "train" for o in overrides):
        overrides.insert(0, "train=splade")
    return compose(overrides)


def groups_help() -> str:
    """The config groups and their options, for --help epilogs (reads only the conf/ tree)."""
    from irbench.config import GROUPS, config_dir, group_options

    try:
        root = config_dir()
    except Exception:  # help must never fail
        return ""
    lines = ["Config groups (choose with GROUP=OPTION):"]
    for g in GROUPS:
        lines.append(f"  {g}: {', '.join(group_options(g, root)) or '-'}")
    return "\n\n".join(lines)
