"""The real config tree composes for every group option and experiment; mistakes are one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from irbench.cli.app import app
from irbench.config import GROUPS, compose, group_options
from irbench.errors import ConfigError

runner = CliRunner()


@pytest.mark.parametrize("group", ["dataset", "encoder", "index"])
def test_every_group_option_composes(group):
    options = group_options(group)
    assert options, f"no options in conf/{group}"
    for option in options:
        cfg = compose([f"{group}={option}"])
        assert cfg[group].name, f"{group}={option} has no name"


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = compose([f"experiment={experiment}"])
    assert cfg.k >= 1


def test_defaults_and_derived_run_dir():
    cfg = compose([])
    assert list(cfg.measures) == ["nDCG@10", "RR@10", "R@100", "R@1000", "AP"]
    assert cfg.k == 1000
    assert cfg.run_dir == "runs/scifact/bm25.numba"
    cfg = compose(["dataset=vaswani", "k=10"])
    assert cfg.run_dir == "runs/vaswani/bm25.numba" and cfg.k == 10
    assert cfg.dataset.drop_self_hits is False
    assert compose(["dataset=arguana"]).dataset.drop_self_hits is True


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["foo=1"], "unknown config key 'foo'"),
        (["encoder.kk1=1"], "valid keys at 'encoder'"),
        (["encoder=nope"], "unknown encoder 'nope'"),
        (["dataset=nope"], "choose one of:"),
        (["k=0"], "k must be a positive integer"),
        (["threads=-1"], "threads must be an integer"),
        (["measures=[nDCG@10,Bogus@3]"], "unknown measure 'Bogus@3'"),
        (["dataset.name=???"], "without a value"),
    ],
)
def test_config_mistakes_are_config_errors(overrides, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        compose(overrides)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_errors_are_one_line_without_traceback():
    result = runner.invoke(app, ["config", "show", "encoder=nope"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("irbench: error: unknown encoder 'nope'")
    assert "Traceback" not in result.output


def test_help_lists_config_groups():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for group in GROUPS:
        assert f"{group}:" in result.output
    assert "scifact" in result.output and "bm25" in result.output


def test_config_show_prints_resolved_yaml():
    result = runner.invoke(app, ["config", "show", "dataset=cranfield", "k=5"])
    assert result.exit_code == 0
    assert "run_dir: runs/cranfield/bm25.numba" in result.output
    assert "k: 5" in result.output and "${" not in result.output
