"""Models, model versions and their lifecycle stage per site (the foundation part of the registry)."""

from __future__ import annotations

import json
from contextlib import nullcontext

import polars as pl

from app.core.errors import LineproofError
from app.core.governance.identity import Signer
from app.core.governance.receipts import sign_head
from app.core.store.audit import acting_as, current_actor
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.schema import STAGES

TASKS = ("binary", "regression", "multiclass")
RISK_TIERS = ("low", "medium", "high", "safety-relevant")


class RegistryError(LineproofError):
    """A model cannot be registered or moved as asked."""


def register_model(project: Project, model_id: str, name: str, task: str, risk_tier: str = "medium",
                   description: str = "", by: Signer | None = None) -> None:
    """Create a model entry (a name that versions belong to). In a governed project its risk tier is a statement
    signed by `by`; without one the model counts as the strictest tier."""
    if task not in TASKS:
        raise RegistryError(f"Unknown task {task!r}.", f"Use one of {', '.join(TASKS)}.")
    if risk_tier not in RISK_TIERS:
        raise RegistryError(f"Unknown risk tier {risk_tier!r}.", f"Use one of {', '.join(RISK_TIERS)}.")
    if one(project.con, "SELECT 1 FROM models WHERE model_id = ?", [model_id]):
        raise RegistryError(f"A model with id {model_id!r} already exists.", "Choose another id.")
    from app.core.governance.approvals import governed, sign_statement

    def insert(con) -> None:
        con.execute("INSERT INTO models (model_id, name, task, description, created_at, risk_tier) "
                    "VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?)", [model_id, name, task, description, risk_tier])

    if by is not None and governed(project):  # the row and the signed tier commit together
        sign_statement(project, "model.register", "model.tier", model_id, {"tier": risk_tier}, by,
                       {"name": name, "task": task, "risk_tier": risk_tier}, apply=insert)
        return
    with project.change("model.register", model_id, {"name": name, "task": task, "risk_tier": risk_tier}) as con:
        insert(con)


def set_risk_tier(project: Project, model_id: str, tier: str, by: Signer, reason: str) -> None:
    """Change a model's risk tier: a signed statement (lowering it needs an admin or a validation lead)."""
    from app.core.governance.approvals import GovernanceError, model_tier, sign_statement, user_roles
    from app.core.governance.ledger import TIER_ORDER

    if tier not in RISK_TIERS:
        raise RegistryError(f"Unknown risk tier {tier!r}.", f"Use one of {', '.join(RISK_TIERS)}.")
    if not reason.strip():
        raise RegistryError("Changing a risk tier needs a reason.", "Say why; nothing was changed.")
    old = model_tier(project, model_id)
    if TIER_ORDER.index(tier) < TIER_ORDER.index(old) and not {"admin", "validation_lead"} & set(
            user_roles(project, by.user_id)):
        raise GovernanceError(f"Lowering {model_id} from {old} to {tier} needs an admin or a validation lead.",
                              "Nothing was changed.")
    sign_statement(project, "model.tier", "model.tier", model_id, {"tier": tier, "reason": reason}, by,
                   {"old": old}, apply=lambda con: con.execute("UPDATE models SET risk_tier = ? WHERE model_id = ?",
                                                              [tier, model_id]))


def set_stage(project: Project, version_id: str, site: str, stage: str, reason: str = "",
              rolling_back: bool = False, by: Signer | None = None) -> None:
    """Move a version to a stage at a site; a new production version retires to pilot the previous one.

    Production needs the risk tier's approvals once the project has users; a rollback returns to a version
    that was in production before and needs none (it is audited as a rollback). Once the project has users,
    every stage change is made by one of them (`by`, an unlocked identity) and audited under their name.
    """
    from app.core.governance.approvals import GovernanceError, governed, user_roles

    if governed(project):
        if by is None:
            raise GovernanceError("Stage changes in this project are made by a registered user.",
                                  "Sign in as yourself (--as USER, or choose the user on the Models screen); "
                                  "nothing was changed.")
        roles = user_roles(project, by.user_id)
        if not roles or roles == ["viewer"]:
            raise GovernanceError(f"{by.user_id} may not change stages (roles: {', '.join(roles) or 'none'}).",
                                  "Ask an engineer, a validation lead or an approver; nothing was changed.")
        with acting_as(by.user_id):
            _set_stage(project, version_id, site, stage, reason, rolling_back, by)
        sign_head(project, by)
        return
    _set_stage(project, version_id, site, stage, reason, rolling_back)


def _set_stage(project: Project, version_id: str, site: str, stage: str, reason: str, rolling_back: bool,
               by: Signer | None = None) -> None:
    if stage not in STAGES:
        raise RegistryError(f"Unknown stage {stage!r}.", f"Use one of {', '.join(STAGES)}.")
    row = one(project.con, "SELECT model_id FROM model_versions WHERE version_id = ?", [version_id])
    if not row:
        raise RegistryError(f"No model version {version_id!r}.", "Check the id with `lineproof info`.")
    if stage != "retired":  # a version is only put to use with the bytes it was imported with
        from app.core.models.integrity import verify_version_files

        verify_version_files(project, version_id)
    request_id = None
    if stage == "production" and rolling_back and by is not None:
        from app.core.governance.approvals import GovernanceError, require_anchor

        if not any(v == version_id and s == site for _, s, v in require_anchor(project).production_log):
            raise GovernanceError(f"{version_id} was never released to production at {site} by the signed record, "
                                  "so it cannot be rolled back to.", "Nothing was changed.")
    if stage == "production" and not rolling_back:
        from app.core.governance.approvals import GovernanceError, clearing_request

        missing, request_id = clearing_request(project, version_id, site)
        if missing:
            raise GovernanceError(missing, "Nothing was changed.")
    action = "stage.rollback" if rolling_back else "stage.set"
    details = {"site": site, "stage": stage, "reason": reason}
    with project.change(action, version_id, details) as con:
        first_id = next_id = one(con, "SELECT coalesce(max(change_id), 0) + 1 FROM stage_history")[0]
        if stage == "production":
            # At most one production version per model and site: the previous one goes back to pilot.
            current = con.execute(
                "SELECT version_id FROM current_stages WHERE model_id = ? AND site = ? AND stage = 'production' "
                "AND version_id <> ?", [row[0], site, version_id]).fetchall()
            for (old,) in current:
                con.execute("INSERT INTO stage_history VALUES (?, ?, ?, 'pilot', now()::TIMESTAMP, ?, ?)",
                            [next_id, old, site, current_actor(), f"superseded by {version_id}"])
                next_id += 1
        con.execute("INSERT INTO stage_history VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?, ?)",
                    [next_id, version_id, site, stage, current_actor(), reason])
        if by is not None:  # the stage change itself is a signed statement; replay decides what is current
            from app.core.governance.ledger import append_statement

            details["statement_sha256"] = append_statement(con, "stage.set", f"{version_id}@{site}", {
                "version_id": version_id, "model_id": row[0], "site": site, "stage": stage, "reason": reason,
                "rollback": rolling_back, "request_id": request_id,
                "stage_rows": [list(r) for r in con.execute(
                    "SELECT change_id, version_id, site, stage FROM stage_history WHERE change_id >= ? "
                    "ORDER BY change_id", [first_id]).fetchall()]}, by)
        if stage == "production":
            from app.core.governance.approvals import mark_applied

            mark_applied(con, version_id, site)


def current_production(project: Project, model_id: str, site: str) -> str | None:
    """The version in production for a model at a site, if any (by the signed record once governed)."""
    from app.core.governance.approvals import governance, governed

    if governed(project):
        state = governance(project)
        found = [v for (v, s), stage in state.stages.items()
                 if s == site and stage == "production" and state.version_model.get(v) == model_id]
        return found[0] if found else None
    with project.reading() as con:
        row = one(con, "SELECT version_id FROM current_stages WHERE model_id = ? AND site = ? AND stage = 'production'",
                  [model_id, site])
    return row[0] if row else None


def rollback(project: Project, model_id: str, site: str, reason: str = "rollback", by: Signer | None = None) -> str:
    """Make the version that was in production before the current one current again; returns its id."""
    current = current_production(project, model_id, site)
    if current is None:
        raise RegistryError(f"{model_id} has no production version at {site}.", "Nothing to roll back.")
    from app.core.governance.approvals import governed, require_anchor

    if governed(project):  # the target comes from verified stage statements, never from stage_history rows
        state = require_anchor(project)
        earlier = [v for m, s, v in state.production_log if m == model_id and s == site and v != current]
        if not earlier:
            raise RegistryError(f"By the signed record, {current} is the only version {model_id} ever had in "
                                f"production at {site}.", "Promote another version instead; nothing was changed.")
        set_stage(project, earlier[-1], site, "production", f"{reason} (from {current})", rolling_back=True, by=by)
        return earlier[-1]
    with project.reading() as con:
        row = one(con, """SELECT h.version_id FROM stage_history h JOIN model_versions v USING (version_id)
                          WHERE v.model_id = ? AND h.site = ? AND h.stage = 'production' AND h.version_id <> ?
                          ORDER BY h.change_id DESC LIMIT 1""", [model_id, site, current])
    if row is None:
        raise RegistryError(f"{current} is the only version {model_id} ever had in production at {site}.",
                            "Promote another version instead; nothing was changed.")
    set_stage(project, row[0], site, "production", f"{reason} (from {current})", rolling_back=True, by=by)
    return row[0]


LINEAGE_FIELDS = ("training_dataset", "code_revision", "parent_version", "author")
CARD_FIELDS = ("intended_use", "out_of_scope", "known_limits", "training_data", "features", "classes", "preprocess")


def card_text(value: object) -> str:
    """A lineage or card value as the text a form shows (the feature list comma-separated)."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value or "")


def _card_values(card: dict, version_id: str) -> dict:
    """Card text as stored: features and classes as lists, preprocess as a checked table (JSON text)."""
    card = dict(card)
    for key in ("features", "classes"):  # the model's input columns / its output classes, in order
        if isinstance(card.get(key), str):
            card[key] = [f.strip() for f in card[key].split(",") if f.strip()]
    if isinstance(card.get("preprocess"), str):
        text = card["preprocess"].strip()
        try:
            card["preprocess"] = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise RegistryError(f"The preprocess of {version_id} is not JSON: {exc}.",
                                'Write e.g. {"resize": [224, 224], "mean": [0.485, 0.456, 0.406], '
                                '"std": [0.229, 0.224, 0.225], "layout": "NCHW"}.') from exc
    if card.get("preprocess"):
        from app.core.store.tensor_datasets import Preprocess, TensorDatasetError

        try:
            Preprocess.from_card(card, version_id)
        except TensorDatasetError as exc:
            raise RegistryError(exc.what, exc.todo) from exc
    return card


def edit_version_metadata(project: Project, version_id: str, lineage: dict[str, str] | None = None,
                          card: dict[str, str] | None = None, reason: str = "", by: Signer | None = None
                          ) -> dict[str, dict]:
    """Change lineage and model-card fields of a version; the audit entry keeps old and new values.

    The author decides who may approve a release (four eyes), so in a governed project changing it is a signed
    change by an unlocked user who is not a viewer, and never by the author-to-be's approver alone."""
    if not reason.strip():
        raise RegistryError("A change to lineage or the model card needs a reason.",
                            "Say why (e.g. 'author corrected after review'); nothing was changed.")
    unknown = sorted(set(lineage or {}) - set(LINEAGE_FIELDS)) + sorted(set(card or {}) - set(CARD_FIELDS))
    if unknown:
        raise RegistryError(f"Unknown field {unknown[0]!r}.",
                            f"Lineage: {', '.join(LINEAGE_FIELDS)}; card: {', '.join(CARD_FIELDS)}.")
    with project.reading() as con:
        row = one(con, "SELECT lineage_json, card_json FROM model_versions WHERE version_id = ?", [version_id])
    if row is None:
        raise RegistryError(f"No model version {version_id!r}.", "Check the id with `lineproof models`.")
    old_lineage, old_card = json.loads(row[0] or "{}"), json.loads(row[1] or "{}")
    if card:
        card = _card_values(card, version_id)
    new_lineage = {**old_lineage, **(lineage or {})}
    new_card = {**old_card, **(card or {})}
    changes = {f"lineage.{k}": {"old": old_lineage.get(k), "new": v} for k, v in (lineage or {}).items()
               if old_lineage.get(k) != v}
    changes |= {f"card.{k}": {"old": old_card.get(k), "new": v} for k, v in (card or {}).items()
                if old_card.get(k) != v}
    from app.core.governance.approvals import GovernanceError, governed, user_roles, version_author

    is_governed = governed(project)
    sign_author = is_governed and "author" in (lineage or {}) and \
        str(lineage["author"]) != version_author(project, version_id)  # also re-signs an unsigned author
    if not changes and not sign_author:
        return {}
    details: dict = {"changes": changes, "reason": reason}
    if sign_author or "lineage.author" in changes and is_governed:
        roles = set(user_roles(project, by.user_id)) if by else set()
        if by is None or not roles - {"viewer"}:
            raise GovernanceError("Changing the author of a version is a signed change by a registered user.",
                                  "Choose who makes the change and give the passphrase; nothing was changed.")
    with acting_as(by.user_id) if by else nullcontext(), project.change("model_version.edit", version_id,
                                                                         details) as con:
        con.execute("UPDATE model_versions SET lineage_json = ?, card_json = ? WHERE version_id = ?",
                    [json.dumps(new_lineage, sort_keys=True), json.dumps(new_card, sort_keys=True), version_id])
        if sign_author:
            from app.core.governance.ledger import append_statement

            assert by is not None
            details["signed_by"] = by.user_id
            details["statement_sha256"] = append_statement(con, "version.author", version_id, {
                "author": str(lineage["author"]), "reason": reason}, by)
    if by is not None:
        sign_head(project, by)
    return changes


def variant_parent(lineage_json: str | None) -> str | None:
    """The version a variant (INT8, FP16) was made from, read from its lineage; None for any other version."""
    return json.loads(lineage_json or "{}").get("variant_of") or None


def list_versions(project: Project) -> pl.DataFrame:
    """Every version with its model, tier, hash, runtime states and current stages per site."""
    with project.reading() as con:
        return con.sql("""
            SELECT v.version_id, v.model_id, m.name AS model_name, v.version, v.format, m.task, m.risk_tier,
                   v.sha256, v.size_bytes, v.threshold, v.created_at,
                   coalesce(v.runtimes_json, '{}') AS runtimes_json,
                   coalesce(json_extract_string(v.runtimes_json, '$.onnxruntime'), 'not checked') AS onnxruntime,
                   coalesce(json_extract_string(v.runtimes_json, '$.openvino'), 'not checked') AS openvino,
                   v.inputs_json, v.outputs_json,
                   v.lineage_json, v.card_json,
                   (SELECT string_agg(c.site || ': ' || c.stage, ', ' ORDER BY c.site) FROM current_stages c
                    WHERE c.version_id = v.version_id) AS stages
            FROM model_versions v JOIN models m USING (model_id) ORDER BY v.model_id, v.created_at, v.version_id
        """).pl()


def stage_history(project: Project, version_id: str | None = None, model_id: str | None = None) -> pl.DataFrame:
    """Every stage change, newest first (for one version, one model, or all)."""
    where, params = [], []
    if version_id:
        where.append("h.version_id = ?")
        params.append(version_id)
    if model_id:
        where.append("v.model_id = ?")
        params.append(model_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    with project.reading() as con:
        return con.sql(f"""SELECT h.change_id, h.version_id, h.site, h.stage, h.changed_at, h.changed_by, h.reason
                           FROM stage_history h JOIN model_versions v USING (version_id) {clause}
                           ORDER BY h.change_id DESC""", params=params).pl()


def model_ids(project: Project, task: str | None = None) -> list[str]:
    """The registered models' ids, sorted; only those of one task (binary, multiclass, …) when given."""
    with project.reading() as con:
        return [r[0] for r in con.execute("SELECT model_id FROM models WHERE ? IS NULL OR task = ? ORDER BY 1",
                                          [task, task]).fetchall()]


def stages_by_version(project: Project) -> dict[str, str]:
    """Each version's current stages over the sites, e.g. {'m:v1': 'production, shadow'}."""
    with project.reading() as con:
        return dict(con.execute("SELECT version_id, string_agg(DISTINCT stage, ', ' ORDER BY stage) "
                                "FROM current_stages GROUP BY 1").fetchall())
