"""Offline validation of a candidate model against the production champion under a locked plan."""

from app.core.models.validation.criteria import FAIL, INCONCLUSIVE, PASS, SKIPPED, Check, Criterion
from app.core.models.validation.plan import EXAMPLE_PLAN, PlanError, ValidationPlan, parse_plan
from app.core.models.validation.run import ValidationError, ValidationRun, prepare, run_validation

__all__ = ["EXAMPLE_PLAN", "FAIL", "INCONCLUSIVE", "PASS", "SKIPPED", "Check", "Criterion", "PlanError",
           "ValidationError", "ValidationPlan", "ValidationRun", "parse_plan", "prepare", "run_validation"]
