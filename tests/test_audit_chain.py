"""The hash-chained audit trail: 200+ random tampers made directly in DuckDB are all caught, naming the
first bad entry; untampered projects never raise a false alarm."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

from app.core.models.registry import register_model
from app.core.store.audit import GENESIS, entry_hash, verify_audit
from app.core.store.project import Project

FIELDS = ("ts_text", "ts", "actor", "host", "app_version", "action", "target", "details_json", "reason")
ALL = ("ts", "ts_text", "actor", "host", "app_version", "action", "target", "details_json", "old_json",
       "new_json", "reason", "prev_hash", "entry_hash")


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A project with ~40 audit entries of several kinds."""
    folder = tmp_path_factory.mktemp("audit") / "p"
    with Project.create(folder, "Audit ü 日本", site="P1") as project:
        for i in range(12):
            register_model(project, f"m{i}", f"Model {i} – Łódź", "binary")
        for i in range(25):
            with project.change("note.add", f"n{i}", {"text": f"note {i}", "n": i}):
                pass
    return folder


def _tamper(con: duckdb.DuckDBPyConnection, rng: random.Random, n: int) -> tuple[str, int]:
    """Apply one random tamper; return its kind and the first sequence number it touched."""
    kind = rng.choice(["edit", "delete", "swap", "truncate", "rehash", "edit_prev", "insert_fake"])
    k = rng.randint(1, n)
    if kind == "edit":
        field = rng.choice(FIELDS)
        change = f"{field} + INTERVAL 1 SECOND" if field == "ts" else f"{field} || 'x'"
        con.execute(f"UPDATE audit_log SET {field} = {change} WHERE seq = ?", [k])
        return kind, k
    if kind == "edit_prev":
        con.execute("UPDATE audit_log SET prev_hash = ? WHERE seq = ?", [GENESIS[:-1] + "1", k])
        return kind, k
    if kind == "delete":
        con.execute("DELETE FROM audit_log WHERE seq = ?", [k])
        return kind, k
    if kind == "swap":
        a, b = sorted(rng.sample(range(1, n + 1), 2))
        cols = ", ".join(f"{c} = o.{c}" for c in ALL)
        con.execute("CREATE TEMP TABLE swap AS SELECT * FROM audit_log WHERE seq IN (?, ?)", [a, b])
        con.execute(f"UPDATE audit_log SET {cols} FROM swap o WHERE audit_log.seq = ? AND o.seq = ?", [a, b])
        con.execute(f"UPDATE audit_log SET {cols} FROM swap o WHERE audit_log.seq = ? AND o.seq = ?", [b, a])
        con.execute("DROP TABLE swap")
        return kind, a
    if kind == "truncate":
        con.execute("DELETE FROM audit_log WHERE seq >= ?", [k])
        return kind, k
    if kind == "insert_fake":
        # A forged entry in the middle, chained properly to its predecessor: the next link breaks.
        row = con.sql("SELECT * FROM audit_log WHERE seq = ?", params=[k]).pl().to_dicts()[0]
        row["details_json"] = '{"forged": true}'
        row["entry_hash"] = entry_hash(row)
        con.execute("UPDATE audit_log SET details_json = ?, entry_hash = ? WHERE seq = ?",
                    [row["details_json"], row["entry_hash"], k])
        return kind, k
    # rehash: edit a field and recompute that entry's hash so it is consistent in itself
    row = con.sql("SELECT * FROM audit_log WHERE seq = ?", params=[k]).pl().to_dicts()[0]
    row["actor"] = "mallory"
    row["entry_hash"] = entry_hash(row)
    con.execute("UPDATE audit_log SET actor = ?, entry_hash = ? WHERE seq = ?", [row["actor"], row["entry_hash"], k])
    return kind, k


def test_untampered_chain_verifies(audited: Path) -> None:
    con = duckdb.connect(str(audited / "project.duckdb"), read_only=True)
    verdict = verify_audit(con)
    n = con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
    con.close()
    assert verdict.ok and verdict.entries == n >= 38 and verdict.first_bad_seq is None
    assert verdict.clock_warnings == []


def test_two_hundred_random_tampers_are_all_caught(audited: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    db.write_bytes((audited / "project.duckdb").read_bytes())
    con = duckdb.connect(str(db))
    n = con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
    rng = random.Random(20261125)
    kinds: dict[str, int] = {}
    for _ in range(240):
        con.execute("BEGIN TRANSACTION")
        kind, first = _tamper(con, rng, n)
        verdict = verify_audit(con)
        con.execute("ROLLBACK")
        assert not verdict.ok, f"{kind} at {first} not caught"
        assert verdict.first_bad_seq == first, (kind, first, verdict.problem)
        kinds[kind] = kinds.get(kind, 0) + 1
    assert verify_audit(con).ok  # every tamper was rolled back: no false alarm afterwards
    con.close()
    assert len(kinds) == 7 and min(kinds.values()) >= 15


def test_clock_going_backwards_is_flagged(tmp_path: Path, monkeypatch) -> None:
    from datetime import datetime, timedelta

    import app.core.store.audit as audit

    class SlowClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(days=2)

    with Project.create(tmp_path / "p", "clock") as project:
        with project.change("note.add", "before"):
            pass
        monkeypatch.setattr(audit, "datetime", SlowClock)
        with project.change("note.add", "after the clock was set back"):
            pass
        monkeypatch.undo()
        with project.reading() as con:
            verdict = verify_audit(con)
            con.execute("UPDATE audit_log SET ts = ts + INTERVAL 1 HOUR WHERE seq = 1")
            moved = verify_audit(con)
    assert verdict.ok and len(verdict.clock_warnings) == 1 and "entry 3" in verdict.clock_warnings[0]
    assert not moved.ok and moved.first_bad_seq == 1 and "time was changed" in moved.problem


def test_migrated_schema1_project_chains_its_old_entries(tmp_path: Path) -> None:
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "schema1-project"
    shutil.copytree(fixture, tmp_path / "old")
    with Project.open(tmp_path / "old") as project:
        with project.reading() as con:
            verdict = verify_audit(con)
            actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    assert verdict.ok and actions[-1] == "project.migrate" and verdict.entries == len(actions)
