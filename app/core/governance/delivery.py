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
        history = con.execute("SELECT version_id, site, event, happened_at, actor FROM release_history "
                              "ORDER BY happened_at, import_id, source_row").fetchall()
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
    own_release: dict[tuple[str, str], datetime] = {}

    def row_for(version: str, site: str) -> dict[str, Any]:
        model, imported = versions.get(version, (None, None))
        actors.setdefault((version, site), [])
        return rows.setdefault((version, site), {"model_id": model, "version_id": version, "site": site,
                                                 "imported_at": imported, "stages": {}, "approval_wait_days": 0.0,
                                                 "approvals": [], "from_history": []})

    for version, site, stage, at, by in changes:
        row_for(version, site)["stages"].setdefault(stage, at)
        if stage == "production":
            own_release.setdefault((version, site), at)
        actors[(version, site)].append((at, 99, by))
    _merge_history(history, row_for, actors)
    _date_builds(history, rows)
    for request_id, version, site, _, by, at, _ in requests:
        if (version, site) in rows:
            actors[(version, site)].append((at, 0, by))
            decided = by_request.get(request_id, [])
            actors[(version, site)] += [(t, 1 + step, u) for u, t, step in decided]
            if decided:
                last = max(t for _, t, _ in decided)
                rows[(version, site)]["approval_wait_days"] += _days(at, last) or 0.0
                rows[(version, site)]["approvals"].append({"requested": at, "decided": last,
                                                           "days": _days(at, last), "source": "lineproof"})
    unverified = []
    for (version, site), row in rows.items():
        row["days_to"] = {stage: _days(row["imported_at"], at) for stage, at in row["stages"].items()}
        # signed decisions carry whole seconds: order everything by the second, then by its place in the chain
        people = [who for _, _, who in sorted(actors[(version, site)],
                                               key=lambda a: (a[0].replace(microsecond=0), a[1]))]
        row["handoffs"] = sum(1 for a, b in zip(people, people[1:], strict=False) if a != b)
        # only Lineproof's own release can be verified: an imported date shortens the metrics, never vouches
        released = own_release.get((version, site))
        row["verified_release"] = None
        if released is not None:
            ok = any(v == version and s == site and target == "production" and at <= released
                     and state in ("approved", "applied") and checked.get(rid) and all(checked[rid])
                     for rid, v, s, target, _, at, state in requests)
            row["verified_release"] = ok
            in_span = (start is None or released >= start) and (end is None or released < end)
            if not ok and in_span:
                unverified.append({"version_id": version, "site": site, "released_at": released})
        row["stages"] = {k: v.isoformat() for k, v in sorted(row["stages"].items(), key=lambda kv: kv[1])}
        row["approvals"] = [{**a, "requested": a["requested"].isoformat(), "decided": a["decided"].isoformat()}
                            for a in row["approvals"]]
        row["imported_at"] = row["imported_at"].isoformat() if row["imported_at"] else None
    return {"governed": governed(project), "versions": sorted(rows.values(), key=lambda r: (r["model_id"] or "",
                                                                                             r["site"],
                                                                                             r["version_id"])),
            "unverified_releases": [{**u, "released_at": u["released_at"].isoformat()} for u in unverified]}


def _merge_history(history: list[tuple], row_for: Any, actors: dict) -> None:
    """Imported release history: a stage reached earlier than Lineproof saw it moves the date back; each
    requested-then-approved pair is an approval wait; the people count as hand-offs."""
    asked: dict[tuple[str, str], tuple[datetime, str]] = {}
    for version, site, event, at, actor in history:
        if event == "built":
            continue
        row = row_for(version, site)
        if event == "approval_requested":
            asked[(version, site)] = (at, actor)
            actors[(version, site)].append((at, 0, actor))
        elif event == "approved":
            actors[(version, site)].append((at, 1, actor))
            if (version, site) in asked:
                start = asked.pop((version, site))[0]
                row["approval_wait_days"] += _days(start, at) or 0.0
                row["approvals"].append({"requested": start, "decided": at, "days": _days(start, at),
                                         "source": "history"})
        else:
            actors[(version, site)].append((at, 99, actor))
            if event not in row["stages"] or at < row["stages"][event]:
                row["stages"][event] = at
                row["from_history"].append(event)


def _date_builds(history: list[tuple], rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """A version built before it was imported into Lineproof counts its days from the build."""
    built: dict[str, datetime] = {}
    for version, _, event, at, _ in history:
        if event == "built":
            built[version] = min(at, built.get(version, at))
    for (version, _), row in rows.items():
        if version in built and (row["imported_at"] is None or built[version] < row["imported_at"]):
            row["imported_at"] = built[version]
            row["from_history"].append("built")
