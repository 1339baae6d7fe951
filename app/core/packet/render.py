"""The packet as a PDF (reportlab Platypus): cover with verdict and signers, model card and hashes, plan,
criteria with evidence, per-slice tables and charts, data quality, benchmarks, approvals, audit excerpt, tool.

The bottom of the cover is kept free for the signature boxes pyHanko draws (see sign.SIGNATURE_SLOTS).
"""

from __future__ import annotations

import io
import json
from functools import cache
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from app.core.packet.charts import slice_chart
from app.core.packet.fonts import BOLD, MONO, REGULAR, markup, register

SIGNATURE_AREA = 150  # points at the bottom of the cover kept for signature boxes
STATUS_COLOURS = {"PASS": "#e2efda", "FAIL": "#f8cbad", "INCONCLUSIVE": "#fff2cc", "SKIPPED": "#ededed",
                  "NOT JUDGED": "#ededed"}
VERDICT_COLOURS = {"PASS": "#375623", "FAIL": "#9c0006", "INCONCLUSIVE": "#7f6000"}
CHART_METRICS = (("recall", "recall (defects caught)"), ("fpr", "false-alarm rate"), ("auc", "ROC AUC"))


@cache
def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=REGULAR, fontSize=8.5, leading=11, alignment=TA_LEFT)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7, leading=8.8),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7, leading=8.6),
        "mono": ParagraphStyle("mono", parent=base, fontName=MONO, fontSize=6.8, leading=8.2),
        "h1": ParagraphStyle("h1", parent=base, fontName=BOLD, fontSize=15, leading=19, spaceAfter=6),
        "h2": ParagraphStyle("h2", parent=base, fontName=BOLD, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4,
                             textColor=colors.HexColor("#1f4e79")),
        "h3": ParagraphStyle("h3", parent=base, fontName=BOLD, fontSize=9, leading=12, spaceBefore=5, spaceAfter=2),
        "verdict": ParagraphStyle("verdict", parent=base, fontName=BOLD, fontSize=22, leading=27),
    }


class _NumberedCanvas(rl_canvas.Canvas):
    """Writes 'page n of m' in the footer once the page count is known."""

    header = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # reportlab API name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont(REGULAR, 7)
            self.setFillColor(colors.HexColor("#555555"))
            self.drawString(18 * mm, 10 * mm, self.header)
            self.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def _table(rows: list[list[Any]], widths: list[float], header: bool = True, status_col: int | None = None,
           style: ParagraphStyle | None = None) -> Table:
    st = style or _styles()["cell"]
    cells = [[c if not isinstance(c, str) else Paragraph(markup(c), st) for c in row] for row in rows]
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0)
    commands: list[tuple] = [("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#c8d0da")),
                             ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
                             ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                             ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f0")))
    if status_col is not None:
        for i, row in enumerate(rows[1:] if header else rows, start=1 if header else 0):
            colour = STATUS_COLOURS.get(str(row[status_col]))
            if colour:
                commands.append(("BACKGROUND", (status_col, i), (status_col, i), colors.HexColor(colour)))
    table.setStyle(TableStyle(commands))
    return table


def _kv(pairs: list[tuple[str, Any]], width: float) -> Table:
    return _table([[k, "-" if v in (None, "") else str(v)] for k, v in pairs], [width * 0.28, width * 0.72],
                  header=False)


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render(evidence: dict[str, Any], evidence_sha256: str) -> bytes:
    """The packet's PDF bytes (unsigned, without attachments)."""
    register()
    s = _styles()
    buffer = io.BytesIO()
    width = A4[0] - 36 * mm
    cover = Frame(18 * mm, SIGNATURE_AREA, width, A4[1] - 18 * mm - SIGNATURE_AREA, id="cover")
    body = Frame(18 * mm, 16 * mm, width, A4[1] - 34 * mm, id="body")
    subject = evidence["subject"]
    doc = BaseDocTemplate(buffer, pagesize=A4, title=f"Validation and approval packet: {subject['version_id']}",
                          author="Lineproof", subject=f"{subject['version_id']} -> {subject['target_stage']} at "
                                                      f"{subject['site']}: {subject['verdict']}",
                          keywords=f"lineproof-evidence-sha256:{evidence_sha256}", creator="Lineproof",
                          pageTemplates=[PageTemplate("cover", [cover]), PageTemplate("body", [body])])
    story: list[Any] = []
    story += _cover(evidence, evidence_sha256, s, width)
    story += [NextPageTemplate("body"), PageBreak()]
    story += _model_section(evidence, s, width)
    story += _plan_section(evidence, s, width)
    story += _criteria_section(evidence, s, width)
    story += _slices_section(evidence, s, width)
    story += _quality_section(evidence, s, width)
    story += _bench_section(evidence, s, width)
    story += _approvals_section(evidence, s, width)
    story += _audit_section(evidence, s, width)
    story += _tool_section(evidence, s, width)
    _NumberedCanvas.header = (f"Lineproof packet · {subject['version_id']} · validation "
                              f"{evidence['validation']['run_id']} · evidence sha256 {evidence_sha256[:16]}…")
    doc.build(story, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()


def _cover(e: dict[str, Any], sha: str, s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    subject, cand, v = e["subject"], e["candidate"] or {}, e["validation"]
    verdict = subject["verdict"]
    plan = v["result"].get("plan", {})
    out: list[Any] = [
        Paragraph("Validation and approval packet", s["h1"]),
        Paragraph(markup(f"{e['project']['name']} · {e['project']['site'] or 'no site'}"), s["body"]),
        Spacer(1, 8),
        Paragraph(f"<font color='{VERDICT_COLOURS.get(verdict, '#000')}'>{verdict}</font>", s["verdict"]),
        Spacer(1, 4),
        _kv([("Model", f"{cand.get('model_name', '')} ({subject['version_id']}), risk tier {cand.get('risk_tier')}"),
             ("Release", f"to {subject['target_stage']} at {subject['site']}"),
             ("Champion (production)", subject["champion"] or "none"),
             ("Validation run", f"{v['run_id']} by {v['created_by']}, {v['started_at'][:19]} – "
                                f"{v['finished_at'][:19]} UTC"),
             ("Held-out dataset", f"{v['dataset_id']} ({(e['dataset'] or {}).get('rows', '-'):,} rows)"
              if e["dataset"] else v["dataset_id"]),
             ("Plan", f"{plan.get('name')} rev {plan.get('revision')} ({plan.get('decision')}, "
                      f"{plan.get('confidence', 0.95):.0%} intervals)"),
             ("Model sha256", v["candidate_sha256"]), ("Evidence sha256", sha)], width),
        Spacer(1, 8),
        Paragraph("Criteria", s["h3"]),
    ]
    crit = v["result"].get("criteria", [])
    out.append(_table([["Status", "Criterion"]] + [[c["status"], c["title"]] for c in crit],
                      [width * 0.16, width * 0.84], status_col=0))
    out += [Spacer(1, 8), Paragraph("Approvals (signed decisions in the project)", s["h3"])]
    approvals = e["approvals"]
    if approvals and approvals["decisions"]:
        out.append(_table([["#", "Meaning", "Name", "Role", "Signed at (UTC)", "Signature"]] +
                          [[str(d["step"]), d["meaning"], f"{d['name'] or d['user_id']} ({d['user_id']})", d["role"],
                            d["decided_at"][:19], "verified" if d["signature_ok"] else "BROKEN"]
                           for d in approvals["decisions"]],
                          [width * w for w in (0.05, 0.15, 0.3, 0.15, 0.2, 0.15)]))
        if approvals.get("missing"):
            out.append(Paragraph(markup(f"Still needed: {approvals['missing']}"), s["small"]))
    else:
        out.append(Paragraph("No approval request cites this validation run yet.", s["small"]))
    out += [Spacer(1, 6), Paragraph(
        "The PDF signatures below (PAdES) seal this packet: each covers every byte before it. Check them with "
        "lineproof verify, Adobe Reader, pyHanko or poppler's pdfsig. The evidence as JSON and the slice tables as "
        "CSV are attached to this PDF.", s["small"])]
    signing = e.get("signing")
    if signing:
        out.append(Paragraph(markup(f"Signature level: PAdES {signing['level']}, verifiable without extension "
                                    f"{signing['until']}."), s["small"]))
    return out


def _model_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    out: list[Any] = [Paragraph("Model card, lineage and hashes", s["h2"])]
    for role in ("candidate", "champion"):
        m = e.get(role)
        if not m:
            continue
        out.append(Paragraph(markup(f"{role.title()}: {m['version_id']} ({m['model_name']}, {m['task']})"), s["h3"]))
        card, lineage = m["card"], m["lineage"]
        pairs = [(k.replace("_", " "), ", ".join(v) if isinstance(v, list) else v) for k, v in card.items()]
        pairs += [(f"lineage: {k.replace('_', ' ')}", v) for k, v in lineage.items()]
        pairs += [("threshold", m["threshold"]), ("imported", m["imported_at"][:19]),
                  ("runtimes", "; ".join(f"{k}: {v}" for k, v in m["runtimes"].items()))]
        out.append(_kv(pairs, width))
        out.append(Spacer(1, 3))
        out.append(_table([["Artifact file", "sha256"]] + [[name, sha] for name, sha in m["files"].items()],
                          [width * 0.3, width * 0.7]))
    if e.get("structure_diff"):
        out.append(Paragraph(markup(f"What changed inside the model ({e['champion']['version_id']} -> "
                                    f"{e['candidate']['version_id']})"), s["h3"]))
        item = ParagraphStyle("diff-item", parent=s["small"], leftIndent=12)  # each change under its heading
        out += [Paragraph(markup(line.strip()), item if line.startswith("    ") else s["body"])
                for line in e["structure_diff"][1:]]
    v = e["validation"]
    out += [Paragraph("Hashes of what was validated", s["h3"]),
            _table([["Item", "sha256"], ["candidate model", v["candidate_sha256"]],
                    ["champion model", v["champion_sha256"] or "-"], ["held-out dataset", v["dataset_sha256"]],
                    ["validation plan (TOML text)", v["plan_sha256"]], ["validation result", v["result_sha256"]],
                    ["per-row scores file", (v["result"].get("scores_file") or {}).get("sha256", "-")]],
                   [width * 0.3, width * 0.7])]
    return out


def _plan_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    text = e["validation"]["plan_toml"]
    lines = [markup(line).replace(" ", "&nbsp;") or "&nbsp;" for line in text.splitlines()]
    return [CondPageBreak(120), Paragraph("Validation plan (as agreed before the run)", s["h2"]),
            Paragraph(f"sha256 {e['validation']['plan_sha256']}", s["small"]), Spacer(1, 3),
            Paragraph("<br/>".join(lines), s["mono"])]


def _criteria_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    out: list[Any] = [PageBreak(), Paragraph("Criteria and their evidence", s["h2"])]
    for c in e["validation"]["result"].get("criteria", []):
        order = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}
        checks = sorted(c["checks"], key=lambda k: order.get(k["status"], 3))
        rows = [["Status", "Where", "Evidence"]] + [
            [k["status"], ", ".join(f"{a} {b}" for a, b in k["slice"].items()) or "overall", k["evidence"]]
            for k in checks]
        out += [CondPageBreak(90), Paragraph(markup(f"{c['status']} · {c['title']}"), s["h3"]),
                _table(rows, [width * 0.14, width * 0.16, width * 0.7], status_col=0)]
        if c.get("note"):
            out.append(Paragraph(markup(c["note"]), s["small"]))
    return out


def _slices_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    result = e["validation"]["result"]
    if "cand_macro_f1" in result.get("slices", {}).get("overall", [{}])[0]:
        return _multiclass_slices_section(result, s, width)
    out: list[Any] = [PageBreak(), Paragraph("Per-slice comparison: candidate vs champion", s["h2"]),
                      Paragraph(f"Intervals at {result.get('plan', {}).get('confidence', 0.95):.0%}; recall and "
                                "false-alarm rate with Wilson intervals, ROC AUC with DeLong's.", s["small"])]
    for grouping, rows in result.get("slices", {}).items():
        if grouping == "overall":
            continue
        keys = grouping.split(",")
        failed = {", ".join(k["slice"][d] for d in keys) for c in result.get("criteria", []) for k in c["checks"]
                  if k["status"] == "FAIL" and set(k["slice"]) == set(keys)}
        out.append(Paragraph(markup(f"By {' x '.join(keys)}"), s["h3"]))
        for metric, label in CHART_METRICS:
            out.append(slice_chart(rows, keys, metric, f"{label} by {' x '.join(keys)}", failed, width))
        table = [[" x ".join(keys), "labelled", "defects", "recall cand", "recall champ", "FPR cand", "FPR champ",
                  "AUC cand", "AUC champ"]]
        for r in rows:
            table.append([", ".join(str(r[k]) for k in keys), f"{r['labelled']:,}", f"{r['positives']:,}",
                          *[f"{_f(r.get(f'{role}_{m}'))} [{_f(r.get(f'{role}_{m}_low'))}, "
                            f"{_f(r.get(f'{role}_{m}_high'))}]" for m in ("recall", "fpr", "auc")
                            for role in ("cand", "champ")]])
        out.append(_table(table, [width * w for w in (0.1, 0.07, 0.07, 0.127, 0.127, 0.127, 0.127, 0.127, 0.128)]))
    overall = result.get("slices", {}).get("overall", [{}])[0]
    if overall:
        out += [Paragraph("Overall", s["h3"]), _kv(
            [(f"{m} candidate / champion", f"{_f(overall.get(f'cand_{m}'))} / {_f(overall.get(f'champ_{m}'))}; "
              f"difference {_f(overall.get(f'diff_{m}'), 4)} [{_f(overall.get(f'diff_{m}_low'), 4)}, "
              f"{_f(overall.get(f'diff_{m}_high'), 4)}]") for m in ("recall", "fpr", "auc", "accuracy", "brier")],
            width)]
    return out


def _multiclass_slices_section(result: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    """A multiclass model's slices: accuracy and macro F1, and each class's recall, candidate vs champion."""
    overall = result["slices"]["overall"][0]
    classes = sorted(k[len("cand_recall:"):] for k in overall if k.startswith("cand_recall:")
                     and not k.endswith(("_low", "_high")))
    out: list[Any] = [PageBreak(), Paragraph("Per-slice comparison: candidate vs champion", s["h2"]),
                      Paragraph(f"Intervals at {result.get('plan', {}).get('confidence', 0.95):.0%}; accuracy and "
                                "each class's recall with Wilson intervals, differences with Newcombe's paired "
                                "interval; macro F1 has no closed-form interval.", s["small"])]

    def cell(r: dict[str, Any], key: str) -> str:
        return f"{_f(r.get(key))} [{_f(r.get(key + '_low'))}, {_f(r.get(key + '_high'))}]"

    for grouping, rows in result.get("slices", {}).items():
        keys = [] if grouping == "overall" else grouping.split(",")
        failed = {", ".join(k["slice"][d] for d in keys) for c in result.get("criteria", []) for k in c["checks"]
                  if k["status"] == "FAIL" and keys and set(k["slice"]) == set(keys)}
        out.append(Paragraph(markup("Overall" if not keys else f"By {' x '.join(keys)}"), s["h3"]))
        if keys:
            out.append(slice_chart(rows, keys, "accuracy", f"accuracy by {' x '.join(keys)}", failed, width))
        table = [[" x ".join(keys) or "overall", "labelled", "accuracy cand", "accuracy champ", "macro F1 c / ch",
                  *[f"recall {c} cand" for c in classes]]]
        for r in rows:
            table.append([", ".join(str(r[k]) for k in keys) or "all", f"{r['labelled']:,}", cell(r, "cand_accuracy"),
                          cell(r, "champ_accuracy"), f"{_f(r.get('cand_macro_f1'))} / {_f(r.get('champ_macro_f1'))}",
                          *[cell(r, f"cand_recall:{c}") for c in classes]])
        rest = (1 - 0.12 - 0.08 - 0.15 * 2 - 0.1) / max(len(classes), 1)
        out.append(_table(table, [width * w for w in (0.12, 0.08, 0.15, 0.15, 0.1, *[rest] * len(classes))]))
    return out


def _quality_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    q = e["data_quality"]
    out: list[Any] = [CondPageBreak(160), Paragraph("Data quality and drift signals", s["h2"])]
    for check in q["inputs"]["checks"]:
        out.append(Paragraph(markup(f"{check['status']} · held-out data: {check['title']}: "
                                    + "; ".join(check["evidence"])), s["body"]))
    if q["coverage_by_line"]:
        out += [Paragraph("Production log: rows, labels and last data per line", s["h3"]),
                _table([["Line", "Predictions", "Labelled", "Labelled %", "Last data (UTC)"]] +
                       [[r["line"] or "(missing)", f"{r['rows']:,}", f"{r['labelled']:,}",
                         f"{r['labelled'] / r['rows']:.1%}" if r["rows"] else "-", r["last_seen"]]
                        for r in q["coverage_by_line"]], [width * w for w in (0.2, 0.2, 0.2, 0.15, 0.25)])]
    drift = q.get("drift") or {}
    out.append(Paragraph("Input drift: recent production vs the held-out data", s["h3"]))
    if drift.get("computed"):
        out.append(Paragraph(markup(
            f"{drift['current']}: {drift['drifted']} of {drift['cells']} line x feature cells drifted "
            f"(PSI, Wasserstein, KS / chi-square as in the Drift screen); reference: {drift['reference']}."),
            s["small"]))
        if drift["rows"]:
            out.append(_table([["Line", "Feature", "PSI", "Method", "Missing (current)"]] +
                              [[r["line"], r["feature"], _f(r["psi"]), r["method"], _f(r["missing_cur"], 0)]
                               for r in drift["rows"]], [width * w for w in (0.15, 0.3, 0.15, 0.2, 0.2)]))
    else:
        out.append(Paragraph(markup(f"Not computed: {drift.get('reason', 'no prediction log')}"), s["small"]))
    out += _estimates_part(q.get("estimates"), s, width)
    out.append(Paragraph("Alerts (newest 20: drift, missing or stale data, performance)", s["h3"]))
    if q["alerts"]:
        out.append(_table([["Raised", "Rule", "Scope", "Severity", "State", "Message"]] +
                          [[a["raised_at"], a["rule"], a["scope"], a["severity"], a["state"], a["message"]]
                           for a in q["alerts"]], [width * w for w in (0.13, 0.12, 0.12, 0.09, 0.08, 0.46)]))
    else:
        out.append(Paragraph("No alerts raised in this project.", s["small"]))
    return out


def _estimates_part(est: dict[str, Any] | None, s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    """Production recall estimated from the model's confidence per line, beside the measured recall."""
    if est is None:  # packets made before estimation existed
        return []
    out: list[Any] = [Paragraph("Production performance per line: estimated and measured", s["h3"])]
    if not est.get("computed"):
        return out + [Paragraph(markup(f"Not computed: {est.get('reason')}"), s["small"])]
    out.append(Paragraph(markup(
        f"{est['version_id']}, {est['span']}: recall estimated from the model's confidence (CBPE calibrated on "
        f"{est['reference'][0][:10]} to {est['reference'][1][:10]}; band +-3 sampling errors), measured where labels "
        "have arrived; a gap means the model's confidence no longer matches the labels."), s["small"]))
    out.append(_table([["Line", "Rows", "Labelled", "Recall est. (band)", "Recall meas.", "AUC est.", "AUC meas.",
                        "Gap"]] +
                      [[r["line"], f"{r['n']:,}", f"{r['labelled']:,}",
                        "-" if r["recall"] is None else
                        f"{r['recall']:.3f} ({r['recall_lower']:.3f}-{r['recall_upper']:.3f})",
                        _f(r["recall_realized"]), _f(r["auc"]), _f(r["auc_realized"]),
                        ", ".join(r["gap_metrics"].split(",")) if r["gap_flagged"] else "-"] for r in est["rows"]],
                      [width * w for w in (0.1, 0.1, 0.1, 0.22, 0.11, 0.1, 0.1, 0.17)]))
    return out


def _bench_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    out: list[Any] = [CondPageBreak(160), Paragraph("Benchmarks of the candidate on recorded hardware", s["h2"])]
    runs = e["benchmarks"]
    if not runs:
        return out + [Paragraph("No benchmark run of the candidate is recorded.", s["small"])]
    out.append(_table([["Run", "Runtime / device", "Batch", "p50 ms", "p99 ms", "Throughput/s", "Bg load",
                        "Hardware"]] +
                      [[r["run_id"], f"{r['runtime']} {r['device']} {r['hint'] or ''} {r['mode'] or ''}",
                        str(r["batch"]), _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r["throughput"], 1),
                        f"{r['background_load']:.0%}" + (" NOISY" if r["noisy"] else "")
                        if r["background_load"] is not None else "-", r["fingerprint_id"]] for r in runs],
                      [width * w for w in (0.2, 0.18, 0.06, 0.08, 0.08, 0.11, 0.11, 0.18)]))
    seen: set[str] = set()
    for r in runs:
        fp = r["fingerprint"]
        if r["fingerprint_id"] in seen or not fp:
            continue
        seen.add(r["fingerprint_id"])
        out.append(Paragraph(markup(
            f"Hardware {r['fingerprint_id']}: {fp.get('cpu_model')}, {fp.get('physical_cores')}/"
            f"{fp.get('logical_cores')} cores, {fp.get('ram_gb')} GB, {fp.get('os')}; ONNX Runtime "
            f"{fp.get('onnxruntime')}, OpenVINO {fp.get('openvino')}"), s["small"]))
    return out


def _approvals_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    a = e["approvals"]
    out: list[Any] = [CondPageBreak(140), Paragraph("Approvals", s["h2"])]
    if not a:
        return out + [Paragraph("No approval request cites this validation run.", s["small"])]
    out.append(_kv([("Request", a["request_id"]), ("Release", f"{a['version_id']} to {a['target_stage']} at "
                                                              f"{a['site']}"),
                    ("Requested by", f"{a['requested_by']} at {a['requested_at'][:19]}"), ("State", a["state"]),
                    ("Subject sha256", a["subject_sha256"]), ("Still needed", a["missing"] or "nothing")], width))
    for d in a["decisions"]:
        out.append(Paragraph(markup(
            f"Step {d['step']}: {d['meaning']} {d['name'] or d['user_id']} ({d['role']}) at {d['decided_at'][:19]} "
            f"UTC: \"{d['comment']}\". Signature over {d['payload_sha256'][:16]}… with certificate "
            f"{d['cert_sha256'][:16]}…: {'verified' if d['signature_ok'] else 'BROKEN'}."), s["body"]))
    return out


def _audit_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    a = e["audit"]
    state = "intact" if a["chain_ok"] else f"BROKEN: {a['problem']}"
    out: list[Any] = [CondPageBreak(160), Paragraph("Audit trail excerpt", s["h2"]),
                      Paragraph(markup(f"Chain of {a['entries']:,} entries {state}; head #{a['head_seq']} "
                                       f"{a['head_hash']}"), s["small"])]
    rows = [["#", "Time (UTC)", "Actor", "Action", "Object", "Entry hash"]] + [
        [str(r["seq"]), r["ts_text"][:19], r["actor"], r["action"], r["target"], r["entry_hash"][:16] + "…"]
        for r in a["excerpt"]]
    out.append(_table(rows, [width * w for w in (0.06, 0.17, 0.12, 0.2, 0.27, 0.18)]))
    return out


def _tool_section(e: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> list[Any]:
    t = e["tool"]
    return [CondPageBreak(140), Paragraph("Tool version and configuration", s["h2"]),
            _kv([("Lineproof", t["lineproof"]), ("Validation run by", e["validation"]["tool_version"]),
                 ("Python", t["python"]), ("Platform", t["platform"]),
                 ("Packages", ", ".join(f"{k} {v}" for k, v in t["packages"].items())),
                 ("Packet format", t["packet_format"]), ("Packet built (UTC)", t["created_at"]),
                 ("Validation timing (s)", json.dumps(e["validation"]["result"].get("timing", {}), sort_keys=True))],
                width)]
