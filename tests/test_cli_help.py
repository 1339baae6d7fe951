"""Every command answers --help, and the internal benchmark child stays out of the help."""

from __future__ import annotations

import argparse

import pytest

from app import cli
from app.cli import bench, build_parser, main


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_command_list_is_complete():
    assert {"init", "sample", "info", "gui", "ingest", "labels", "kpis", "slices", "drift", "estimate", "overrides", "events",
            "freshness",
            "alerts", "import-model", "models", "stage", "bench", "bench-compare", "user", "request", "review",
            "approve", "reject", "audit", "trust", "validate", "validations", "packet", "sign", "verify", "export-project",
            "dataset", "tier", "history", "attach-log", "card", "variant", "compare-variants", "diff",
            "import-project"} == set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_each_command_prints_its_help(command: str, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lineproof {command} ")
    assert "SUPPRESS" not in out


def test_top_level_help_hides_the_benchmark_child(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "bench-compare" in out and "_bench-child" not in out and "SUPPRESS" not in out


def test_the_benchmark_child_is_still_reachable(monkeypatch):
    """A frozen bundle starts its benchmark process as `lineproof _bench-child`."""
    monkeypatch.setattr(bench, "run_child", lambda: 42)
    assert cli.main(["_bench-child"]) == 42
