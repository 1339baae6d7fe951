"""A CI-sized mutation run (`make mutation`): each mutant below is a plausible slip in a verdict or approval rule;
the named tests must fail on it ("killed"). Prints the tally and exits 1 if any mutant survives.

The source file is changed in place for one mutant at a time and always restored.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (file, original text, mutated text, tests that must kill it)
MUTANTS = [
    ("app/core/models/validation/criteria.py", "None if high is None else -high, None if low is None else -low",
     "None if low is None else -low, None if high is None else -high", "tests/test_verdict_rules.py"),
    ("app/core/models/validation/checks.py", 'ok_diff, ok_agree = s["max_abs_diff"] <= rule.max_abs_diff',
     'ok_diff, ok_agree = s["mean_abs_diff"] <= rule.max_abs_diff', "tests/test_verdict_rules.py"),
    ("app/core/models/validation/checks.py", 'value = run[f"{rule.percentile}_ms"]', 'value = run["p50_ms"]',
     "tests/test_verdict_rules.py"),
    ("app/core/models/validation/checks.py", "quiet = [r for r in here if not r[\"noisy\"]]",
     "quiet = list(here)", "tests/test_verdict_rules.py"),
    ("app/core/governance/approvals.py", 'and (decision == "approve" or status.rule.get("exclude_author"))',
     'and decision == "approve"', "tests/test_verdict_rules.py"),
    ("app/core/governance/ledger.py", 'if action == "approve" and user_id in (request["requested_by"], author):',
     'if action == "approve" and user_id == author:', "tests/test_verdict_rules.py"),
    ("app/core/governance/ledger.py", "held = user.roles if user.revoked_at else state.roles(user_id)",
     "held = state.roles(user_id)", "tests/test_verdict_rules.py"),
    ("app/core/store/ingest.py", '"WHERE n.labelled_at < l.labelled_at")[0]', '"WHERE false")[0]',
     "tests/test_ingest_edge_cases.py"),
    ("app/core/store/ingest.py", "f\"CASE WHEN {score} IS NULL THEN error('empty score') \"", '""',
     "tests/test_ingest_edge_cases.py"),
    ("app/core/packet/structure.py", 'if k not in _INFO_ALLOWED and before.get(k) != after.get(k))',
     'if k not in _INFO_ALLOWED and k != "/Subject" and before.get(k) != after.get(k))',
     "tests/test_packet_structure.py"),
    ("app/core/packet/verify.py", "if check.meaning not in SIGNING_ROLES:", "if False:",
     "tests/test_packet_structure.py"),
    ("app/core/packet/verify.py", 'check.role = "not a registered user of this project"',
     'check.role = "not a registered user of this project"\n                continue',
     "tests/test_packet_structure.py"),
    ("app/core/analysis/slices.py", 'bound = f"{metric}_low" if lower_better else f"{metric}_high"',
     'bound = metric', "tests/test_slices.py"),
    ("app/core/analysis/slices.py", ".sort(bound, descending=lower_better, nulls_last=True)",
     ".sort(bound, descending=False, nulls_last=True)", "tests/test_slices.py"),
]


def main() -> int:
    """Apply each mutant, run its tests, restore; 0 when every mutant was killed."""
    survivors = []
    for path, old, new, tests in MUTANTS:
        target = ROOT / path
        original = target.read_text(encoding="utf-8")
        if original.count(old) != 1:
            print(f"STALE   {path}: the original text is not found once; update tests/mutation/run.py")
            survivors.append(path)
            continue
        try:
            target.write_text(original.replace(old, new), encoding="utf-8")
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", tests],
                                  cwd=ROOT, capture_output=True, text=True)
        finally:
            target.write_text(original, encoding="utf-8")
        killed = done.returncode != 0
        print(f"{'killed ' if killed else 'SURVIVED'} {path}: {new[:70]!r}")
        if not killed:
            survivors.append(path)
    print(f"{len(MUTANTS) - len(survivors)} of {len(MUTANTS)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
