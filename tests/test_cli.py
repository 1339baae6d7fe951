"""The `lineproof` command run as a user runs it: help, output, errors on stderr with a non-zero code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_csv

ROOT = Path(__file__).parents[1]


def lineproof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.mark.parametrize("command", ["init", "sample", "info", "ingest", "labels", "slices", "drift", "events", "alerts", "import-model", "models", "stage",
                                     "freshness", "gui"])
def test_every_command_has_help(command: str):
    out = lineproof(command, "--help")
    assert out.returncode == 0 and f"lineproof {command}" in out.stdout


def test_init_ingest_labels_info_round_trip(tmp_path: Path):
    proj = tmp_path / "line7"
    assert lineproof("init", str(proj), "--name", "Line 7", "--dimensions", "line,shift").returncode == 0
    log = write_csv(tmp_path / "log.csv", "Serial,Time,Model,P,Line,Shift,temp",
                    "a1,2026-02-01 06:00,m:v1,0.9,L7,early,180", "a2,2026-02-01 07:00,m:v1,0.1,L7,early,175")
    out = lineproof("ingest", str(proj), str(log), "--map", "record_id=Serial", "--map", "timestamp=Time",
                    "--map", "model_version=Model", "--map", "score=P", "--slice", "line=Line",
                    "--slice", "shift=Shift", "-q")
    assert out.returncode == 0, out.stderr
    assert "Imported 2 predictions from log.csv" in out.stdout
    labels = write_csv(tmp_path / "labels.csv", "record_id,label", "a1,1", "zz,0")
    refused = lineproof("labels", str(proj), str(labels), "-q")
    assert refused.returncode == 2 and "zz" in refused.stderr and refused.stdout == ""
    out = lineproof("labels", str(proj), str(labels), "--skip-unknown", "-q")
    assert out.returncode == 0 and "Imported 1 labels" in out.stdout and "skipped 1" in out.stderr
    info = json.loads(lineproof("info", str(proj), "--json").stdout)
    assert (info["name"], info["prediction_rows"], info["label_rows"]) == ("Line 7", 2, 1)
    text = lineproof("info", str(proj)).stdout
    assert "2 predictions, 1 labels (50.0% labelled)" in text


def test_errors_go_to_stderr_with_exit_code_2(tmp_path: Path):
    out = lineproof("info", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert "is not a Lineproof project" in out.stderr and "lineproof init" in out.stderr
    assert lineproof("init", str(tmp_path / "p")).returncode == 0
    bad = lineproof("ingest", str(tmp_path / "p"), str(tmp_path / "missing.csv"))
    assert bad.returncode == 2 and "no such file" in bad.stderr
    wrong = lineproof("ingest", str(tmp_path / "p"), str(tmp_path / "missing.csv"), "--map", "score")
    assert wrong.returncode == 2 and "NAME=COLUMN" in wrong.stderr


def test_info_on_a_project_held_by_another_process_uses_a_snapshot(tmp_path: Path):
    proj = tmp_path / "held"
    assert lineproof("init", str(proj)).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom app.core.store.project import Project\n"
                               "p = Project.open(sys.argv[1]); print('ok', flush=True); time.sleep(60)", str(proj)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "ok"
        out = lineproof("info", str(proj))
        assert out.returncode == 0 and "read-only snapshot" in out.stderr and "[read-only]" in out.stdout
        ingest = lineproof("ingest", str(proj), str(write_csv(tmp_path / "x.csv", "record_id,ts,model_version,score",
                                                                "a,2026-01-01,v,0.1")))
        assert ingest.returncode == 2 and f"PID {holder.pid}" in ingest.stderr
    finally:
        holder.kill()
        holder.wait()


def test_slices_command_formats(sample_folder: Path):
    table = lineproof("slices", str(sample_folder), "--model", "weld-defect", "--by", "line",
                      "--from", "2026-09-07", "-q")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("weld-defect:v1  Recall") and lines[4].split()[:2] == ["1", "P2-L02"]
    as_json = json.loads(lineproof("slices", str(sample_folder), "--model", "weld-defect:v1", "--by", "line",
                                   "--window", "week", "--metric", "auc", "--format", "json").stdout)
    assert as_json["metric"] == "auc" and as_json["window"] == "week" and len(as_json["slices"]) > 12
    ranks = [s["rank"] for s in as_json["slices"]]
    assert ranks == sorted(ranks)
    csv = lineproof("slices", str(sample_folder), "--model", "weld-defect", "--by", "shift", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("rank,shift,n,labelled") and len(csv.stdout.splitlines()) == 4
    bad = lineproof("slices", str(sample_folder), "--model", "weld-defect:v2", "--by", "line")
    assert bad.returncode == 2 and "No predictions are logged for weld-defect:v2" in bad.stderr
    wrong = lineproof("slices", str(sample_folder), "--model", "weld-defect", "--by", "robot")
    assert wrong.returncode == 2 and "Unknown slice dimension" in wrong.stderr and "asset" in wrong.stderr


def test_drift_events_and_freshness_commands(sample_copy: Path):
    drift = lineproof("drift", str(sample_copy), "--reference", "2026-05-04..2026-08-24",
                      "--current", "2026-09-07..2026-10-19", "--features", "contact_tip_temp_c",
                      "--only-drifted", "--format", "json", "-q")
    assert drift.returncode == 0, drift.stderr
    cells = json.loads(drift.stdout)
    assert [c["line"] for c in cells] == ["P2-L02"] and cells[0]["psi"] > 0.2
    bad = lineproof("drift", str(sample_copy), "--reference", "2026-05-04", "--current", "2026-09-07..2026-10-19")
    assert bad.returncode == 2 and "FROM..TO" in bad.stderr
    events = lineproof("events", str(sample_copy), "--detect")
    assert events.returncode == 0 and "Detected" in events.stdout and "5.0.0" in events.stdout
    added = lineproof("events", str(sample_copy), "--add", "Tooling change", "--at", "2026-07-01",
                      "--scope", "line=P1-L04")
    assert added.returncode == 0 and "Tooling change" in added.stdout
    fresh = lineproof("freshness", str(sample_copy), "--expected-hours", "120")
    assert fresh.returncode == 0 and fresh.stdout.split()[0] == "P3-L02-R05"


@pytest.mark.slow  # ~10 s of benchmark children; the core's bench tests run by default (make test-slow, CI)
def test_bench_and_bench_compare(sample_copy: Path) -> None:
    folder = str(sample_copy)
    refused = lineproof("bench", folder, "--model", "weld-defect:v2", "--runtime", "openvino")
    assert refused.returncode == 2 and "not supported (TreeEnsembleClassifier)" in refused.stderr
    runs = []
    for batch in ("1", "8"):
        out = lineproof("bench", folder, "--model", "weld-defect:v2", "--batch", batch, "--iterations", "200",
                        "--format", "json")
        assert out.returncode == 0, out.stderr
        record = json.loads(out.stdout)
        assert record["status"] == "ok" and record["config"]["batch"] == int(batch)
        assert record["p50_ms"] <= record["p99_ms"] <= record["max_ms"]
        runs.append(record)
    compared = lineproof("bench-compare", folder, runs[0]["run_id"], runs[1]["run_id"], "--format", "json")
    rows = json.loads(compared.stdout)
    assert [r["run_id"] for r in rows] == [runs[0]["run_id"], runs[1]["run_id"]]
    assert rows[1]["throughput_vs_base"] == pytest.approx(runs[1]["throughput"] / runs[0]["throughput"])
    table = lineproof("bench-compare", folder)
    assert runs[0]["run_id"] in table.stdout and "weld-defect:v2" in table.stdout
    missing = lineproof("bench-compare", folder, "nope")
    assert missing.returncode == 2 and "No benchmark run nope" in missing.stderr


@pytest.mark.slow  # 19 CLI processes (~23 s); governance itself is tested by default (make test-slow, CI)
def test_governance_commands(sample_copy: Path, tmp_path: Path, monkeypatch) -> None:
    import os

    env = {**os.environ, "LINEPROOF_HOME": str(tmp_path / "profile"), "LINEPROOF_PASSPHRASE": "pass-word-1",
           "LINEPROOF_ADMIN_PASSPHRASE": "pass-word-1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=120)

    folder = str(sample_copy)
    unanchored = run("user", "create", folder, "--id", "ada", "--name", "Ada", "--role", "admin")
    assert unanchored.returncode == 2 and "no trust anchor configured" in unanchored.stderr
    env["LINEPROOF_CA_PASS"] = "pass-word-1"
    created = run("user", "create-ca", folder, "--id", "site-ca", "--name", "Site CA")
    assert created.returncode == 0 and "trusted on this PC" in created.stdout, created.stderr
    ca = ("--ca", "site-ca", "--ca-passphrase-env", "LINEPROOF_CA_PASS")
    out = run("user", "create", folder, "--id", "ada", "--name", "Ada", "--role", "admin", *ca)
    assert out.returncode == 0, out.stderr
    for user_id, role in (("vera", "validation_lead"), ("anna", "approver"), ("eve", "engineer")):
        out = run("user", "create", folder, "--id", user_id, "--name", user_id.title(), "--role", role, "--as", "ada",
                  *ca)
        assert out.returncode == 0, out.stderr
    assert "site-ca" in run("trust", "list", folder).stdout
    listed = run("user", "list", folder).stdout
    assert "vera" in listed and "validation_lead" in listed
    anonymous = run("stage", folder, "weld-defect:v2", "--site", "P1", "--to", "pilot")
    assert anonymous.returncode == 2 and "made by a registered user" in anonymous.stderr
    refused = run("stage", folder, "weld-defect:v2", "--site", "P1", "--to", "production", "--as", "eve")
    assert refused.returncode == 2 and "risk tier high needs a passed validation run" in refused.stderr
    out = run("request", folder, "--model", "seam-vision:v1", "--stage", "production", "--site", "P1", "--as", "eve")
    assert out.returncode == 0, out.stderr
    request_id = out.stdout.split(":")[0]
    early = run("approve", folder, request_id, "--as", "anna", "--comment", "ok")
    assert early.returncode == 2 and "first needs a review" in early.stderr
    assert run("review", folder, request_id, "--as", "vera", "--comment", "checked").returncode == 0
    assert "request is approved" in run("approve", folder, request_id, "--as", "anna", "--comment", "go").stdout
    assert run("stage", folder, "seam-vision:v1", "--site", "P1", "--to", "production", "--as", "eve").returncode == 0
    verified = run("audit", "verify", folder)
    assert verified.returncode == 0 and "Audit trail intact" in verified.stdout
    assert "approval.approve" in run("audit", "list", folder, "--action", "approval.").stdout
    import duckdb

    con = duckdb.connect(str(sample_copy / "project.duckdb"))
    con.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 4")
    con.close()
    broken = run("audit", "verify", folder)
    assert broken.returncode == 1 and "BROKEN at entry 4" in broken.stdout
