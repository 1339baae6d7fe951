"""A saved operating review as a signed PDF, with the packet machinery (fonts, attachments, PAdES, atomic write),
so it verifies exactly like a validation packet."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
)

from app.core.packet.evidence import PacketError, evidence_bytes, evidence_sha256
from app.core.packet.fonts import markup, register
from app.core.packet.render import SIGNATURE_AREA, _kv, _NumberedCanvas, _styles, _table
from app.core.packet.sign import Signing, _attach, sign_bytes, write_atomically
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.store.project import Project


def _section(title: str, rows: list[dict[str, Any]], empty: str, s: dict, width: float) -> list[Any]:
    out: list[Any] = [Paragraph(title, s["h2"])]
    if not rows:
        return out + [Paragraph(empty, s["small"])]
    return out + [_table([["Finding"]] + [[r["evidence"] if "evidence" in r else r["action"]] for r in rows],
                         [width])]


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _estimates_section(estimates: dict[str, Any] | None, s: dict, width: float) -> list[Any]:
    """Estimated (from the model's confidence) against measured recall and ROC AUC per line."""
    out: list[Any] = [Paragraph("Estimated and measured performance per line", s["h2"])]
    if not estimates or not estimates["per_line"]:
        return out + [Paragraph("No estimate: no binary model with a labelled reference was logged in the period "
                                "(records saved before estimation existed have none).", s["small"])]
    rows = [["Version", "Line", "Labelled", "Recall est. (band)", "Recall meas.", "AUC est.", "AUC meas.", "Gap"]]
    for r in estimates["per_line"]:
        band = "-" if r["recall"] is None else f"{r['recall']:.3f} ({r['recall_lower']:.3f}-{r['recall_upper']:.3f})"
        rows.append([r["version"], r["line"], f"{r['labelled_share']:.0%}", band, _f(r["recall_realized"]),
                     _f(r["auc"]), _f(r["auc_realized"]),
                     ", ".join(r["gap_metrics"].split(",")) if r["gap_flagged"] else "-"])
    out.append(_table(rows, [width * w for w in (0.15, 0.1, 0.1, 0.22, 0.11, 0.1, 0.1, 0.12)]))
    return out + [Paragraph(markup(estimates["method"]), s["small"])]


def _answers_section(answers: dict[str, Any] | None, s: dict, width: float) -> list[Any]:
    """The checkpoint's questions, each answered with a number and where it comes from."""
    from app.core.analysis.quarterly import lead_days_text

    if not answers:
        return []
    t = answers["time_to_production"]

    def days(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} days"
    rows = [["Question", "Answer"],
            ["Is the toolchain reducing time to deployment?",
             f"median build to production {days(t['median_days'])} over {t['releases']} release(s); previous "
             f"period {days(t['median_days_before'])} over {t['releases_before']}"
             + "".join(f"; {r['version']} on {r['site']} released {r['released']} after {r['days']:.0f} days"
                       f"{' (imported history)' if r['source'] == 'history' else ''}" for r in t.get("evidence", ()))],
            ["Did monitoring catch failures early enough?",
             "; ".join(lead_days_text(i) for i in answers["lead_time"]) or "no confirmed recall drop in the period"],
            ["Are governance controls proportionate to risk?",
             "; ".join(f"tier {w['tier']}: {w['requests']} request(s), mean wait {w['mean_days']:.1f} d "
                       f"(max {w['max_days']:.1f})"
                       f"{' from imported history' if w.get('sources') == ['history'] else ''}"
                       for w in answers["approval_wait_by_tier"])
             or "no approval decided in the period"],
            ["Do operators still trust the models?",
             "; ".join(f"{o['line']} {o['rate']:.1%} (before {'-' if o['before'] is None else format(o['before'], '.1%')})"
                       for o in sorted(answers["overrides"], key=lambda o: -(o["rate"] or 0))[:4])
             + (" (highest override rates)" if answers["overrides"] else "no operator decisions logged")],
            ["Have model classes outgrown the stack?",
             "; ".join(f"{o['version']}: {o['rows']:,} rows{' (bounded analysis)' if o['bounded_analysis'] else ''}, "
                       f"{o['latency_budget_misses']} latency budget miss(es)" for o in answers["outgrown"])
             + (f"; the period's drift matrix took {answers['drift_seconds']:.1f} s on this PC"
                if answers.get("drift_seconds") is not None else "") or "nothing logged"]]
    return [Paragraph("The checkpoint's questions, answered", s["h2"]),
            _table(rows, [width * 0.32, width * 0.68])]


def _delivery_section(delivery: dict[str, Any] | None, s: dict, width: float) -> list[Any]:
    """Days from import to each stage, approval wait, hand-offs, and releases without a verified approval chain."""
    out: list[Any] = [Paragraph("Delivery: from candidate to production", s["h2"])]
    if not delivery:
        return out + [Paragraph("Not recorded in this review (saved before delivery metrics existed).", s["small"])]
    bad = delivery["unverified_releases"]
    earlier = sum(1 for r in delivery["versions"] if r["verified_release"] is False) - len(bad)
    verdict = ("Every production release in the period had a verified approval chain"
               + (f"; {earlier} earlier release(s) have none (NO below)." if earlier > 0 else ".") if not bad else
               f"{len(bad)} production release(s) in the period without a verified approval chain (must be 0): "
               + ", ".join(f"{u['version_id']} at {u['site']}" for u in bad)
               + ("" if delivery["governed"] else "; this project has no governance set up (lineproof users)."))
    out.append(Paragraph(markup(verdict), s["body"]))
    rows = [["Version", "Site", "Days to stages", "Approval wait (d)", "Hand-offs", "Verified"]]
    for r in delivery["versions"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["days_to"].items() if v is not None)
        verified = {True: "yes", False: "NO", None: "-"}[r["verified_release"]]
        rows.append([r["version_id"], r["site"], stages, f"{r['approval_wait_days']:.1f}", str(r["handoffs"]),
                     verified])
    out.append(_table(rows, [width * w for w in (0.2, 0.08, 0.34, 0.14, 0.12, 0.12)]))
    return out


def render_review(record: dict[str, Any], sha: str) -> bytes:
    """The review's PDF bytes (unsigned)."""
    register()
    s = _styles()
    buffer = io.BytesIO()
    width = A4[0] - 36 * mm
    review = record["review"]
    period = review["period"]
    cover = Frame(18 * mm, SIGNATURE_AREA, width, A4[1] - 18 * mm - SIGNATURE_AREA, id="cover")
    body = Frame(18 * mm, 16 * mm, width, A4[1] - 34 * mm, id="body")
    doc = BaseDocTemplate(buffer, pagesize=A4, title=f"Operating review {period['label']}", author="Lineproof",
                          subject=f"Operating review {period['label']}: {record['decision'][:80]}",
                          keywords=f"lineproof-evidence-sha256:{sha}", creator="Lineproof",
                          pageTemplates=[PageTemplate("cover", [cover]), PageTemplate("body", [body])])
    h = review["health"]
    story: list[Any] = [
        Paragraph(f"Operating review {markup(period['label'])}", s["h1"]),
        Paragraph(markup(f"{record['project']} · {period['start'][:10]} to {period['end'][:10]} (compared with "
                         f"{period['previous'][0][:10]} to {period['previous'][1][:10]})"), s["body"]), Spacer(1, 6),
        _kv([("Review", record["review_id"]), ("Reviewer", record["reviewer"]), ("Saved", record["saved_at"][:19]),
             ("Decision", record["decision"]), ("Actions", "; ".join(record["actions"]) or "none"),
             ("Findings sha256", record["findings_sha256"])], width), Spacer(1, 6),
        _table([["Section", "Findings"], ["Metric drops (evidence-backed)", str(len(h["drops"]["findings"]))],
                ["Line-specific input drift", str(len(h["drift"]["line_specific"]))],
                ["Plant-wide input changes", str(len(h["drift"]["plant_wide"]))],
                ["Silent assets", str(len(h["silent"]))], ["Latency changes", str(len(h["latency"]))],
                ["Triggers for event reviews", str(len(review["triggers"]))],
                ["Alerts raised / real / false / open", "{raised} / {real} / {false} / {open}".format(**review["alerts"])]],
               [width * 0.6, width * 0.4]),
        NextPageTemplate("body"), PageBreak(),
    ]
    story += _section("Triggers: events that call for an event review", review["triggers"], "None.", s, width)
    story += _section("Metric drops", h["drops"]["findings"], "None the evidence supports.", s, width)
    story += _section("Problems still open from earlier periods",
                      [p for p in h.get("persisting", []) if p["since"] < period["start"][:7]], "None.", s, width)
    story.append(Paragraph(markup(h["drops"]["method"]), s["small"]))
    story += _section("Input drift on single lines", h["drift"]["line_specific"], "None.", s, width)
    story += _section("Plant-wide input changes", h["drift"]["plant_wide"], "None.", s, width)
    story += _section("Silent assets", h["silent"], "None.", s, width)
    story += _section("Latency changes on the same hardware", h["latency"], "None.", s, width)
    outcomes = review.get("outcomes", [])
    story.append(Paragraph("Business outcomes next to the model", s["h2"]))
    story.append(_table([["Line", "KPI", "This period", "Before", "Model recall (before)"]] +
                        [[o["line"], o["kpi"], f"{o['now']:.2f}", "-" if o["before"] is None else f"{o['before']:.2f}",
                          "-" if o["recall_now"] is None else f"{o['recall_now']:.3f} ({o['recall_before']:.3f})"]
                         for o in outcomes], [width * w for w in (0.15, 0.25, 0.17, 0.17, 0.26)])
                 if outcomes else Paragraph("No KPIs imported (lineproof kpis PROJECT FILE.csv).", s["small"]))
    precision = review["alerts"].get("precision_by_line", [])
    story.append(Paragraph("Alert precision per slice (acknowledged real / judged)", s["h2"]))
    story.append(_table([["Line", "This period", "Previous period"]] +
                        [[r["line"], f"{r['precision']:.0%} of {r['judged']}",
                          "-" if r["precision_before"] is None else f"{r['precision_before']:.0%} of {r['judged_before']}"]
                         for r in precision], [width * 0.3, width * 0.35, width * 0.35])
                 if precision else Paragraph("No alert was acknowledged in the period.", s["small"]))
    story += _answers_section(review.get("answers"), s, width)
    story += _estimates_section(h.get("estimates"), s, width)
    story += _delivery_section(review.get("delivery"), s, width)
    inv = review["inventory"]
    story.append(Paragraph("Inventory: stage changes in the period", s["h2"]))
    story.append(_table([["When", "Version", "Site", "Stage", "By", "Reason"]] +
                        [[c["changed_at"], c["version_id"], c["site"], c["stage"], c["changed_by"], c["reason"]]
                         for c in inv["changes"]], [width * w for w in (0.16, 0.18, 0.08, 0.12, 0.14, 0.32)])
                 if inv["changes"] else Paragraph("No stage changes.", s["small"]))
    story.append(Paragraph("Inventory: stages at the end of the period", s["h2"]))
    story.append(_table([["Version", "Site", "Stage"]] + [[r["version_id"], r["site"], r["stage"]]
                                                         for r in inv["at_end"]], [width * 0.4, width * 0.2, width * 0.4])
                 if inv["at_end"] else Paragraph("No version was staged.", s["small"]))
    _NumberedCanvas.header = f"Lineproof operating review {period['label']} · {record['review_id']} · evidence {sha[:16]}…"
    doc.build(story, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()


def export_review(project: Project, review_id: str, out: Path | str, signings: list[Signing],
                  progress: Progress | None = None) -> Path:
    """Render, attach the review as JSON, sign in order and write atomically."""
    from app.core.analysis.operating_review import load_review

    progress = progress or NullProgress()
    if not signings:
        raise PacketError("A review record needs at least one signer.", "Name who signs (--sign-as USER).")
    from app.core.governance.receipts import latest_receipt

    record = {**load_review(project, review_id), "project": project.display_name,
              "audit_receipt": latest_receipt(project)}
    data = evidence_bytes(record)
    sha = evidence_sha256(data)
    progress.report(0.3, "Laying out the review")
    pdf = render_review(record, sha)
    check_cancelled(progress)
    for i, signing in enumerate(signings):
        progress.report(0.6, f"Signing as {signing.signer.name}")
        pdf = sign_bytes(pdf, signing, None, _attach(data, b"") if i == 0 else None)
    path = write_atomically(Path(out), pdf)
    from app.core.store.audit import acting_as

    with acting_as(signings[0].signer.user_id), project.change(
            "review.export", review_id, {"file": path.name, "evidence_sha256": sha,
                                         "signers": [s.signer.user_id for s in signings],
                                         "meanings": [s.meaning for s in signings]}):
        pass
    progress.report(1.0, f"Review written: {path.name}")
    return path
