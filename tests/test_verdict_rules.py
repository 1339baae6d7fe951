# ruff: noqa: F811  (the governed fixture is imported from test_governance)
"""The validation and approval rules, each pinned by a hand-worked case that a plausible slip in the code would get
wrong (the survivors of an outside mutation run): lower-is-better gains, parity on the largest difference, the
latency percentile the plan names, NOISY benchmark runs, the author in high tiers, the requester's own approval in
the re-check from signed decisions, a revoked approver's earlier decision."""

from __future__ import annotations

import types

import duckdb
import numpy as np
import polars as pl
import pytest

from app.core.governance import approvals
from app.core.governance.approvals import GovernanceError, create_request, decide, revoke_user
from app.core.models.registry import edit_version_metadata, set_stage
from app.core.models.validation.checks import (
    latency_criterion,
    parity_criterion,
    parity_summary,
    pick_bench_run,
)
from app.core.models.validation.criteria import FAIL, INCONCLUSIVE, PASS, regression_criterion
from app.core.models.validation.plan import LatencyRule, ParityRule, RegressionRule
from app.core.store.project import Project
from app.core.store.schema import migrate
from tests.test_governance import governed, governed_template, profile, signer  # noqa: F401 (fixtures)


@pytest.mark.parametrize("metric", ["fpr", "brier"])
def test_a_lower_is_better_gain_has_its_interval_reversed(metric: str) -> None:
    """Candidate minus champion = +0.05 (worse), interval [0.04, 0.10]: the gain is -0.05 in [-0.10, -0.04].
    Allowed drop 0.045: the gain's upper end (-0.04) does not prove a drop beyond it, so INCONCLUSIVE, not FAIL
    (unreversed, the interval would read [-0.04, -0.10] and FAIL)."""
    table = pl.DataFrame({f"diff_{metric}": [0.05], f"diff_{metric}_low": [0.04], f"diff_{metric}_high": [0.10],
                          f"cand_{metric}": [0.15], f"champ_{metric}": [0.10], "negatives": [500],
                          "cand_flagged": [100],
                          "positives": [500], "labelled": [1000]})
    criterion = regression_criterion(RegressionRule(metric, 0.045), table, 0.95, "fail_on_evidence")
    check = criterion.checks[0]
    assert (check.value, check.low, check.high) == pytest.approx((-0.05, -0.10, -0.04))
    assert criterion.status == INCONCLUSIVE
    assert regression_criterion(RegressionRule(metric, 0.11), table, 0.95, "pass_on_evidence").status == PASS
    assert regression_criterion(RegressionRule(metric, 0.03), table, 0.95, "fail_on_evidence").status == FAIL


def test_parity_is_judged_on_the_largest_difference_not_the_mean() -> None:
    ort = np.linspace(0.05, 0.95, 1000)
    ov = ort.copy()
    ov[17] += 0.004  # one row far off, the rest equal
    summary = parity_summary(types.SimpleNamespace(scores=ort, skipped=""), types.SimpleNamespace(scores=ov, skipped=""),
                             0.5)
    assert summary["max_abs_diff"] == pytest.approx(0.004) and summary["mean_abs_diff"] == pytest.approx(4e-6)
    criterion = parity_criterion(ParityRule(max_abs_diff=1e-3, min_agreement=0.99), {"candidate": summary},
                                 {"candidate": "m:v2"})
    assert criterion.status == FAIL
    assert parity_criterion(ParityRule(max_abs_diff=5e-3, min_agreement=0.99), {"candidate": summary},
                            {"candidate": "m:v2"}).status == PASS


RUN = {"run_id": "B-1", "started_at": "2026-12-01 10:00", "p50_ms": 1.0, "p90_ms": 2.0, "p95_ms": 3.0,
       "p99_ms": 9.0, "p999_ms": 14.0, "max_ms": 20.0, "mean_ms": 1.5, "inferences": 5000, "fingerprint_id": "fp-1"}


@pytest.mark.parametrize(("percentile", "expected"), [("p50", PASS), ("p95", PASS), ("p99", FAIL), ("p999", FAIL)])
def test_the_latency_budget_is_judged_on_the_percentile_the_plan_names(percentile: str, expected: str) -> None:
    criterion = latency_criterion(LatencyRule(max_ms=5.0, percentile=percentile), RUN, "")
    assert criterion.status == expected
    assert criterion.checks[0].value == RUN[f"{percentile}_ms"]


def _bench_db(runs: list[tuple[str, bool, str]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    migrate(con)
    for i, (fingerprint, noisy, started) in enumerate(runs):
        con.execute("INSERT INTO bench_runs (run_id, version_id, model_sha256, runtime, device, batch, status, "
                    "started_at, p50_ms, p90_ms, p95_ms, p99_ms, p999_ms, max_ms, mean_ms, inferences, noisy, "
                    "fingerprint_id, config_json) VALUES (?, 'm:v2', 'x', 'onnxruntime', 'CPU', 1, 'ok', ?, 1, 1, 1, "
                    "1, 1, 1, 1, 100, ?, ?, '{}')", [f"B-{i}", started, noisy, fingerprint])
    return con


def test_a_noisy_benchmark_run_never_passes_a_latency_budget_silently() -> None:
    rule = LatencyRule(max_ms=5.0)
    run, why = pick_bench_run(_bench_db([("fp-1", True, "2026-12-02 10:00")]), "m:v2", rule, "fp-1")
    assert run is None and "NOISY" in why
    assert latency_criterion(rule, run, why).status == INCONCLUSIVE
    quiet_elsewhere = _bench_db([("fp-1", True, "2026-12-02 10:00"), ("fp-2", False, "2026-12-03 10:00")])
    run, why = pick_bench_run(quiet_elsewhere, "m:v2", rule, "fp-1")
    assert run is None and "NOISY" in why
    newer_noisy = _bench_db([("fp-1", False, "2026-12-01 10:00"), ("fp-1", True, "2026-12-03 10:00")])
    run, _ = pick_bench_run(newer_noisy, "m:v2", rule, "fp-1")
    assert run is not None and run["run_id"] == "B-0" and not run["noisy"]  # the quiet one, not the newer noisy


def test_the_author_may_not_review_a_high_tier_release(governed: Project) -> None:
    edit_version_metadata(governed, "hi:v1", lineage={"author": "vera"}, reason="author corrected",
                          by=signer(governed, "eve"))
    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    with pytest.raises(GovernanceError, match="vera is the author of hi:v1 and may not review"):
        decide(governed, req, "review", signer(governed, "vera"), "my own model")
    # In the medium tier the rule does not exclude the author from the review.
    edit_version_metadata(governed, "med:v1", lineage={"author": "vera"}, reason="author corrected",
                          by=signer(governed, "eve"))
    med = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    assert decide(governed, med, "review", signer(governed, "vera"), "checked").decisions


def test_the_recheck_from_signed_decisions_refuses_the_requesters_own_approval(governed: Project,
                                                                               monkeypatch) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "anna"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    real = approvals.governance

    def requester_hidden(project):  # the decide-time check is bypassed, as a forged tool would
        import dataclasses

        state = real(project)
        return dataclasses.replace(state, requests={k: {**v, "requested_by": "someone-else"}
                                                    for k, v in state.requests.items()})

    monkeypatch.setattr(approvals, "governance", requester_hidden)
    decide(governed, req, "approve", signer(governed, "anna"), "approving my own request")
    monkeypatch.setattr(approvals, "governance", real)
    with pytest.raises(GovernanceError, match="anna approved their own request or model"):
        set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "anna"))


def test_a_revoked_approvers_earlier_decision_still_counts(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    decide(governed, req, "approve", signer(governed, "anna"), "approved")
    revoke_user(governed, "anna", "superseded", signer(governed, "admin"))
    set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "eve"))  # her approval came before
    assert governed.con.execute("SELECT count(*) FROM stage_history WHERE stage = 'production'").fetchall()[0][0] == 1
