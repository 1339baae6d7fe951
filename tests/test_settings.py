"""[drift] and [alerts] in lineproof.toml: every key and value is checked, and a bad one stops the command with
exit 2 and a message naming the table, the key and the fix (a typo never silently keeps the default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.core.analysis.alerts import AlertRules
from app.core.analysis.drift import DriftThresholds
from app.core.errors import SettingsError


def test_valid_tables_override_the_defaults():
    rules = AlertRules.from_manifest({"alerts": {"recall_min": 0.7, "min_support": 50, "stale_hours": 12}})
    assert (rules.recall_min, rules.min_support, rules.stale_hours, rules.missing_increase) == (0.7, 50, 12.0, 0.05)
    assert isinstance(rules.min_support, int) and isinstance(rules.stale_hours, float)
    assert DriftThresholds.from_manifest({"drift": {"p_value": 0.01}}).p_value == 0.01
    assert DriftThresholds.from_manifest({}) == DriftThresholds()


@pytest.mark.parametrize(("table", "cls", "values", "message"), [
    ("drift", DriftThresholds, {"psi_moderat": 0.1}, r"\[drift\] has unknown key\(s\): psi_moderat"),
    ("alerts", AlertRules, {"stale_hour": 6, "recall": 0.6}, r"\[alerts\] has unknown key\(s\): recall, stale_hour"),
    ("drift", DriftThresholds, {"p_value": "0.05"}, r"\[drift\] p_value = '0.05' is not a number"),
    ("drift", DriftThresholds, {"p_value": 5}, r"\[drift\] p_value = 5 is out of range"),
    ("alerts", AlertRules, {"min_support": 12.5}, r"\[alerts\] min_support = 12.5 must be a whole number"),
    ("alerts", AlertRules, {"stale_hours": -1}, r"\[alerts\] stale_hours = -1 is out of range"),
    ("alerts", AlertRules, {"recall_min": True}, r"\[alerts\] recall_min = True is not a number"),
    ("alerts", AlertRules, {"stale_hours": float("nan")}, r"stale_hours = nan is not a number"),
])
def test_bad_keys_and_values_are_named(table, cls, values, message):
    with pytest.raises(SettingsError, match=message):
        cls.from_manifest({table: values})


def test_a_table_that_is_not_a_table_is_named():
    with pytest.raises(SettingsError, match=r"lineproof.toml \[drift\] is not a table"):
        DriftThresholds.from_manifest({"drift": 0.1})


@pytest.mark.parametrize(("table", "line", "command", "named"), [
    ("drift", "p_value = \"high\"", ["drift", "--reference", "2026-05-04..2026-06-01", "--current",
                                     "2026-06-01..2026-07-01"], "p_value = 'high' is not a number"),
    ("alerts", "stale_hour = 6", ["alerts", "--evaluate", "--reference", "2026-05-04..2026-06-01", "--current",
                                  "2026-06-01..2026-07-01"], "unknown key(s): stale_hour"),
])
def test_the_commands_stop_with_exit_2(sample_copy: Path, capsys, table, line, command, named):
    manifest = sample_copy / "lineproof.toml"
    manifest.write_text(manifest.read_text() + f"\n[{table}]\n{line}\n")
    before = (sample_copy / "project.duckdb").stat().st_mtime_ns
    assert main([command[0], str(sample_copy), *command[1:], "-q"]) == 2
    err = capsys.readouterr().err
    assert f"lineproof {command[0]}: error: lineproof.toml [{table}]" in err and named in err
    assert "Known keys" in err or "Write a number" in err
    assert (sample_copy / "project.duckdb").stat().st_mtime_ns == before
