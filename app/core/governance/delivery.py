"""Delivery metrics of the change process, per model and site: how long a candidate takes to each stage, how long
it waits for approvals, how many hand-offs it passes, and whether every production release had a verified
approval chain (anything but zero is an alert).

Read from the registry's stage history, the approval requests and their signed decisions; a release counts as
verified only when a request for that version, site and production was made before the release, is approved or
applied, and every one of its decisions verifies (`approvals.verify_decisions`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.governance.approvals import governed, verify_decisions
from app.core.store.project import Project

STAGE_ORDER = ("candidate", "shadow", "pilot", "production")


def _naive_utc(text: str) -> datetime:
    """A signed decision's time (ISO text, UTC) as the naive UTC the registry's TIMESTAMP columns hold."""
    at = datetime.fromisoformat(text)
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def _days(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (b - a).total_seconds() / 86400


def delivery_metrics(project: Project, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """Per (model, site, version): days from import to each stage, approval wait, hand-offs; and the production
    releases in [start, end) without a verified approval chain."""
    with project.reading() as con:
        versions = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT version_id, model_id, created_at FROM model_versions").fetchall()}
        changes = con.execute("SELECT version_id, site, stage, changed_at, changed_by FROM stage_history "
                              "ORDER BY changed_at, change_id").fetchall()
        requests = con.execute("SELECT request_id, version_id, site, target_stage, requested_by, requested_at, state "
                               "FROM approval_requests ORDER BY requested_at").fetchall()
        decisions = con.execute("SELECT request_id, user_id, decided_at, step FROM approval_decisions "
                                "ORDER BY decided_at, step").fetchall()
    checked = {}
    if decisions:
        for d in verify_decisions(project):
            checked.setdefault(d["request_id"], []).append(d["ok"])
    by_request: dict[str, list[tuple[str, datetime, int]]] = {}
    for request_id, user, at, step in decisions:
        by_request.setdefault(request_id, []).append((user, _naive_utc(at), step))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    # (time, order within the same second: request, its decisions by step, then the stage change, who)
    actors: dict[tuple[str, str], list[tuple[datetime, int, str]]] = {}
    for version, site, stage, at, by in changes:
        model, imported = versions.get(version, (None, None))
        row = rows.setdefault((version, site), {"model_id": model, "version_id": version, "site": site,
                                                "imported_at": imported, "stages": {}, "approval_wait_days": 0.0})
        row["stages"].setdefault(stage, at)
        actors.setdefault((version, site), []).append((at, 99, by))
    for request_id, version, site, _, by, at, _ in requests:
        if (version, site) in rows:
            actors[(version, site)].append((at, 0, by))
            decided = by_request.get(request_id, [])
            actors[(version, site)] += [(t, 1 + step, u) for u, t, step in decided]
            if decided:
                rows[(version, site)]["approval_wait_days"] += _days(at, max(t for _, t, _ in decided)) or 0.0
    unverified = []
    for (version, site), row in rows.items():
        row["days_to"] = {stage: _days(row["imported_at"], at) for stage, at in row["stages"].items()}
        # signed decisions carry whole seconds: order everything by the second, then by its place in the chain
        people = [who for _, _, who in sorted(actors[(version, site)],
                                               key=lambda a: (a[0].replace(microsecond=0), a[1]))]
        row["handoffs"] = sum(1 for a, b in zip(people, people[1:], strict=False) if a != b)
        released = row["stages"].get("production")
        row["verified_release"] = None
        if released is not None:
            ok = any(v == version and s == site and target == "production" and at <= released
                     and state in ("approved", "applied") and checked.get(rid) and all(checked[rid])
                     for rid, v, s, target, _, at, state in requests)
            row["verified_release"] = ok
            in_span = (start is None or released >= start) and (end is None or released < end)
            if not ok and in_span:
                unverified.append({"version_id": version, "site": site, "released_at": released})
        row["stages"] = {k: v.isoformat() for k, v in row["stages"].items()}
        row["imported_at"] = row["imported_at"].isoformat() if row["imported_at"] else None
    return {"governed": governed(project), "versions": sorted(rows.values(), key=lambda r: (r["model_id"] or "",
                                                                                             r["site"],
                                                                                             r["version_id"])),
            "unverified_releases": [{**u, "released_at": u["released_at"].isoformat()} for u in unverified]}
