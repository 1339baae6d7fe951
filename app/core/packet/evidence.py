"""The packet's evidence: everything the PDF prints, gathered once from the project as plain data.

The same dict is embedded in the PDF as JSON (and the slice tables as CSV), so a script can re-check the
numbers without Lineproof; its sha256 is written into the signed document information.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from typing import Any

import polars as pl

from app.core.errors import LineproofError
from app.core.governance.receipts import latest_receipt
from app.core.models.integrity import verify_version_files
from app.core.store.audit import verify_audit
from app.core.store.db import one
from app.core.store.project import Project

FORMAT = "lineproof-packet/1"
AUDIT_EXCERPT = 80
RECENT_DAYS = 14  # the same "recent" window as the Slices screen


class PacketError(LineproofError):
    """A packet cannot be built or signed as asked; no file was written."""


def _version(con, version_id: str | None) -> dict[str, Any] | None:
    if not version_id:
        return None
    row = con.execute("""SELECT v.version_id, m.name, m.task, m.risk_tier, v.sha256, v.artifact_path, v.threshold,
                                v.lineage_json, v.card_json, v.runtimes_json, v.size_bytes, v.created_at::VARCHAR,
                                v.model_id
                         FROM model_versions v JOIN models m USING (model_id) WHERE v.version_id = ?""",
                      [version_id]).fetchone()
    if row is None:
        return None
    runtimes = json.loads(row[9] or "{}")
    return {"version_id": row[0], "model_name": row[1], "task": row[2], "risk_tier": row[3], "sha256": row[4],
            "artifact_path": row[5], "threshold": row[6], "lineage": json.loads(row[7] or "{}"),
            "card": json.loads(row[8] or "{}"), "files": runtimes.pop("files", {}), "runtimes": runtimes,
            "size_bytes": row[10], "imported_at": row[11], "model_id": row[12]}


def _request(project: Project, con, request_id: str | None, run_id: str) -> dict[str, Any] | None:
    from app.core.governance.approvals import request_status, verify_decisions

    if request_id is None:
        row = one(con, "SELECT request_id FROM approval_requests WHERE validation_run_id = ? "
                       "ORDER BY requested_at DESC LIMIT 1", [run_id])
        request_id = row[0] if row else None
    if request_id is None:
        return None
    row = one(con, "SELECT version_id, site, target_stage, state, requested_by, requested_at::VARCHAR, "
                   "subject_sha256, validation_run_id, comment FROM approval_requests WHERE request_id = ?",
              [request_id])
    if row is None:
        raise PacketError(f"No approval request {request_id!r}.", "List them with `lineproof request PROJECT --list`.")
    if row[7] != run_id:
        raise PacketError(f"Request {request_id} names validation run {row[7]}, not {run_id}.",
                          "Choose the request that cites this validation run.")
    status = request_status(project, request_id)
    checks = {d["decision_id"]: d for d in verify_decisions(project, request_id)}
    decisions = con.execute("""SELECT d.decision_id, d.step, d.user_id, u.name, d.role, d.decision, d.meaning,
                                      d.comment, d.decided_at, d.payload_sha256, d.cert_sha256
                               FROM approval_decisions d LEFT JOIN users u USING (user_id)
                               WHERE d.request_id = ? ORDER BY d.step""", [request_id]).fetchall()
    names = ("decision_id", "step", "user_id", "name", "role", "decision", "meaning", "comment", "decided_at",
             "payload_sha256", "cert_sha256")
    return {"request_id": request_id, "version_id": row[0], "site": row[1], "target_stage": row[2], "state": row[3],
            "requested_by": row[4], "requested_at": row[5], "subject_sha256": row[6], "comment": row[8],
            "missing": status.describe_missing(),
            "decisions": [{**dict(zip(names, d, strict=True)),
                           "signature_ok": bool(checks.get(d[0], {}).get("ok", False))} for d in decisions]}


def gather(project: Project, run_id: str, request_id: str | None = None) -> dict[str, Any]:
    """Everything the packet shows for one validation run (and the approval request that cites it)."""
    with project.reading() as con:
        run = one(con, """SELECT run_id, candidate_version, champion_version, dataset_id, dataset_sha256, plan_sha256,
                                 plan_toml, candidate_sha256, champion_sha256, verdict, result_json, result_sha256,
                                 tool_version, started_at::VARCHAR, finished_at::VARCHAR, created_by
                          FROM validation_runs WHERE run_id = ?""", [run_id])
        if run is None:
            known = [r[0] for r in con.execute("SELECT run_id FROM validation_runs ORDER BY finished_at DESC "
                                               "LIMIT 5").fetchall()]
            raise PacketError(f"No validation run {run_id!r} in this project.",
                              f"Recent runs: {', '.join(known) or 'none (run lineproof validate first)'}.")
        result = json.loads(run[10])
        candidate, champion = _version(con, run[1]), _version(con, run[2])
    _check_signed_run(project, run_id, run[9], run[11], run[5])
    from app.core.governance.approvals import model_tier

    for version in filter(None, (candidate, champion)):  # the tier the signed record holds, not the row's
        version["risk_tier"] = model_tier(project, version["model_id"])
    for version_id in filter(None, (run[1], run[2])):  # the packet vouches for these bytes: check them all
        verify_version_files(project, version_id)
    with project.reading() as con:
        dataset = one(con, "SELECT dataset_id, name, kind, sha256, row_count, description FROM datasets "
                           "WHERE dataset_id = ?", [run[3]])
        request = _request(project, con, request_id, run_id)
        bench = con.sql("""SELECT run_id, runtime, device, hint, mode, batch, status, strftime(started_at, '%Y-%m-%d %H:%M')
                                  AS started, p50_ms, p99_ms, p999_ms, throughput, peak_rss_mb, compile_ms,
                                  background_load, noisy, fingerprint_id, fingerprint_json
                           FROM bench_runs WHERE version_id = ? AND status = 'ok'
                           ORDER BY started_at DESC LIMIT 8""", params=[run[1]]).pl()
        quality = con.sql("""SELECT line, sum(rows)::BIGINT AS rows, sum(labelled)::BIGINT AS labelled,
                                    strftime(max(last_ts), '%Y-%m-%d %H:%M') AS last_seen
                             FROM coverage_summary GROUP BY line ORDER BY line""").pl() \
            if one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'coverage_summary'")[0] else \
            pl.DataFrame()
        alerts = con.sql("""SELECT rule, scope, severity, message, strftime(raised_at, '%Y-%m-%d %H:%M') AS raised_at,
                                   state FROM alerts ORDER BY raised_at DESC LIMIT 20""").pl() \
            if _has_columns(con, "alerts", ("rule", "scope", "severity", "message", "raised_at", "state")) else \
            pl.DataFrame()
        targets = [run_id, run[1], *([request["request_id"]] if request else [])]
        audit = con.sql(f"""SELECT seq, ts_text, actor, host, action, target, reason, entry_hash FROM audit_log
                            WHERE target IN ({', '.join('?' * len(targets))}) ORDER BY seq DESC LIMIT {AUDIT_EXCERPT}""",
                        params=targets).pl().sort("seq")
        chain = verify_audit(con)
    drift = _drift_summary(result)
    structure = None
    if run[2]:  # a candidate that would replace a champion: what changed inside the model, from the checked files
        from app.core.models.structure import diff_text, diff_versions

        structure = diff_text(diff_versions(project, run[2], run[1]))
    recent = _recent_drift(project, run[3])
    estimates = _recent_estimates(project, run[2] or run[1])
    return {
        "format": FORMAT,
        "project": {"name": project.display_name, "site": project.manifest.site},
        "subject": {"version_id": run[1], "champion": run[2], "verdict": run[9],
                    "site": request["site"] if request else project.manifest.site,
                    "target_stage": request["target_stage"] if request else "production"},
        "candidate": candidate, "champion": champion, "structure_diff": structure,
        "validation": {"run_id": run[0], "dataset_id": run[3], "dataset_sha256": run[4], "plan_sha256": run[5],
                       "plan_toml": run[6], "candidate_sha256": run[7], "champion_sha256": run[8], "verdict": run[9],
                       "result_sha256": run[11], "tool_version": run[12], "started_at": run[13],
                       "finished_at": run[14], "created_by": run[15], "result": result},
        "dataset": dict(zip(("dataset_id", "name", "kind", "sha256", "rows", "description"), dataset, strict=True))
        if dataset else None,
        "data_quality": {"coverage_by_line": quality.to_dicts(), "alerts": alerts.to_dicts(), "inputs": drift,
                         "drift": recent, "estimates": estimates},
        "benchmarks": [{**r, "fingerprint": json.loads(r.pop("fingerprint_json") or "{}")}
                       for r in bench.to_dicts()],
        "approvals": request,
        "audit": {"excerpt": audit.to_dicts(), "chain_ok": chain.ok, "entries": chain.entries,
                  "head_seq": chain.head_seq, "head_hash": chain.head_hash, "problem": chain.problem,
                  "receipt": latest_receipt(project)},
        "tool": _tool(),
    }


def _check_signed_run(project: Project, run_id: str, verdict: str, result_sha: str, plan_sha: str) -> None:
    """In a governed project a packet vouches only for a run whose result its runner signed, as stored."""
    from app.core.governance.approvals import governance, governed

    if not governed(project):
        return
    fact = governance(project).runs.get(run_id)
    if fact is None:
        raise PacketError(f"Validation run {run_id} has no signed result, so no packet can vouch for it.",
                          f"Sign it as the person who ran it (lineproof validations PROJECT --sign {run_id} --as "
                          "USER); nothing was written.")
    if (fact.get("verdict"), fact.get("result_sha256"), fact.get("plan_sha256")) != (verdict, result_sha, plan_sha):
        raise PacketError(f"Validation run {run_id} in the database differs from its signed result (signed verdict "
                          f"{fact.get('verdict')}, stored {verdict}).",
                          "The run row was edited outside Lineproof; validate again. Nothing was written.")


def embedded_receipt(path: Any) -> dict[str, Any] | None:
    """The audit receipt a packet or review record carries in its evidence (None when it has none)."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(open(path, "rb").read()), strict=False)
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        for i in range(0, len(names) - 1, 2):
            if str(names[i]) == "evidence.json":
                evidence = json.loads(names[i + 1]["/EF"]["/F"].data)
                return (evidence.get("audit") or {}).get("receipt") or evidence.get("audit_receipt")
    except Exception:  # not a packet, damaged, no attachments: it simply holds no receipt to check
        return None
    return None


def _has_columns(con, table: str, columns: tuple[str, ...]) -> bool:
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                      [table]).fetchall()}
    return set(columns) <= have


def _drift_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Held-out data checks from the validation result (label coverage, overlap) in one place."""
    checks = [c for c in result.get("criteria", []) if c["kind"] == "data"]
    return {"checks": [{"title": c["title"], "status": c["status"],
                        "evidence": [k["evidence"] for k in c["checks"]]} for c in checks]}


def _recent_drift(project: Project, dataset_id: str, days: int = RECENT_DAYS, shown: int = 40) -> dict[str, Any]:
    """Inputs of the last `days` of the production log per line against the held-out data the model was judged on."""
    from datetime import timedelta

    from app.core.analysis.drift import DriftQuery, compute_drift
    from app.core.analysis.slices import logged_span

    first, last = logged_span(project)
    if last is None:
        return {"computed": False, "reason": "no prediction log in this project"}
    try:
        table = compute_drift(project, DriftQuery(reference=(first, first), current=(last - timedelta(days=days), last),
                                                  by=("line",), reference_dataset=dataset_id))
    except LineproofError as exc:
        return {"computed": False, "reason": exc.what}
    rows = table.rows
    drifted = rows.filter(pl.col("drifted").fill_null(False)).sort("psi", descending=True, nulls_last=True)
    return {"computed": True, "reference": f"held-out dataset {dataset_id}",
            "current": f"last {days} days of the log up to {last:%Y-%m-%d}", "cells": rows.height,
            "drifted": drifted.height,
            "rows": drifted.head(shown).select("line", "feature", "psi", "method", "missing_cur").to_dicts()}


def _recent_estimates(project: Project, version_id: str, days: int = RECENT_DAYS) -> dict[str, Any]:
    """The production model's recall estimated from its confidence over the last `days` per line, beside the
    measured recall where labels have arrived (analysis.estimate; one window, the default reference)."""
    from datetime import timedelta

    from app.core.analysis.estimate import EstimateQuery, compute_estimates, default_reference
    from app.core.analysis.slices import logged_span, model_info

    first, last = logged_span(project)
    with project.reading() as con:
        logged = one(con, "SELECT count(*) FROM coverage_summary WHERE version_id = ?", [version_id])[0]
    if last is None or not logged:
        return {"computed": False, "reason": f"{version_id} has no prediction log in this project"}
    reference = default_reference(project, version_id)
    if reference is None or model_info(project, version_id)[0] != "binary":
        return {"computed": False, "reason": f"{version_id} has no labelled reference weeks (or is not binary)"}
    start = last - timedelta(days=days)
    try:
        table = compute_estimates(project, EstimateQuery(version_id, reference, by=("line",), window="all",
                                                         start=start, end=last + timedelta(seconds=1)))
    except LineproofError as exc:
        return {"computed": False, "reason": exc.what}
    rows = table.rows.select("line", "n", "labelled", "status", "recall", "recall_lower", "recall_upper",
                             "recall_realized", "auc", "auc_realized", "gap_flagged", "gap_metrics")
    return {"computed": True, "version_id": version_id, "span": f"last {days} days up to {last:%Y-%m-%d}",
            "reference": [t.isoformat() for t in reference], "rows": rows.to_dicts()}


def _tool() -> dict[str, Any]:
    """Tool version and configuration, for tool qualification (ISO 26262-8 clause 11)."""
    from app import __version__

    versions: dict[str, str] = {}
    for name in ("duckdb", "polars", "numpy", "onnxruntime", "openvino", "reportlab", "pyhanko", "cryptography"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # a frozen bundle may lack the metadata; say so rather than guess
            versions[name] = "unknown"
    return {"lineproof": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": versions, "packet_format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds")}


def evidence_bytes(evidence: dict[str, Any]) -> bytes:
    """The canonical JSON embedded in the packet."""
    return json.dumps(evidence, sort_keys=True, indent=1, default=str, ensure_ascii=False).encode("utf-8")


def evidence_sha256(data: bytes) -> str:
    """sha256 of the embedded evidence."""
    return hashlib.sha256(data).hexdigest()


def slices_csv(evidence: dict[str, Any]) -> bytes:
    """Every per-slice table of the validation result as one CSV (a `grouping` column names the slices)."""
    frames = []
    for grouping, rows in evidence["validation"]["result"].get("slices", {}).items():
        if not rows:
            continue
        frame = pl.DataFrame(rows, infer_schema_length=None)
        keys = [] if grouping == "overall" else grouping.split(",")
        label = pl.concat_str([pl.col(k).cast(pl.Utf8).fill_null("(missing)") for k in keys], separator=" | ") \
            if keys else pl.lit("overall")
        frames.append(frame.select(pl.lit(grouping).alias("grouping"), label.alias("slice"),
                                   *[c for c in frame.columns if c not in keys]))
    if not frames:
        return b""
    return pl.concat(frames, how="diagonal_relaxed").write_csv().encode("utf-8")
