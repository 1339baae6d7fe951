"""`make bench`: build + sign the sample's full packet (two signers) and verify it.
Targets: build + sign <= 3 s, verify <= 1 s on this machine. Reports the first call in a fresh process (imports,
font loading) and the median of the following ones, with the page count.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

SCALE = float(os.environ.get("LINEPROOF_BENCH_SCALE", "1.0"))
ROUNDS = 4


def main() -> None:
    """Build the sample, validate v2, approve, then time packet export and verification."""
    with tempfile.TemporaryDirectory(prefix="lineproof-bench-packet-") as tmp:
        tmp_path = Path(tmp)
        os.environ["LINEPROOF_HOME"] = str(tmp_path / "profile")
        from app.core.governance.approvals import add_user, create_request, decide, unlock
        from app.core.governance.identity import cert_pem, create_identity, create_site_ca
        from app.core.models.validation import parse_plan, run_validation
        from app.core.store.project import Project
        from app.sample.build import build_sample
        from app.sample.release_plan import RELEASE_PLAN

        build_sample(tmp_path / "sample", scale=SCALE)
        project = Project.open(tmp_path / "sample")
        ca = create_site_ca("plant-ca", "Plant CA", "bench-pass")
        (tmp_path / "ca.pem").write_text(cert_pem(ca))
        for user_id, name, roles in (("vera", "Vera Łukasz", ["admin", "validation_lead"]),
                                     ("anna", "Anna Öberg", ["approver"])):
            cert = create_identity(user_id, name, "bench-pass", ca_id="plant-ca", ca_passphrase="bench-pass")
            add_user(project, user_id, name, cert_pem(cert), roles, by=unlock(project, "vera", "bench-pass"))
        plan = parse_plan(RELEASE_PLAN.replace('source = "run"', 'source = "recorded"'))
        vera, anna = unlock(project, "vera", "bench-pass"), unlock(project, "anna", "bench-pass")
        run = run_validation(project, plan, "weld-defect:v2", "weld-defect:v1", by=vera)
        request = create_request(project, "weld-defect:v2", "P1", "pilot", vera, run.run_id)
        decide(project, request, "review", vera, "checked")
        decide(project, request, "approve", anna, "approved for the pilot")

        from app.core.packet import Signing, build_packet, verify_packet
        from app.core.packet.sign import page_count

        builds, verifies = [], []
        for i in range(ROUNDS):
            out = tmp_path / "packets" / f"packet-{i}.pdf"
            started = time.perf_counter()
            build_packet(project, run.run_id, out, [Signing(vera, "validated by"), Signing(anna, "approved by")])
            builds.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = verify_packet(out, [tmp_path / "ca.pem"])
            verifies.append(time.perf_counter() - started)
            assert result.indication == "PASSED", result.as_dict()
        pages, size = page_count(out.read_bytes()), out.stat().st_size
        project.close()
    print(f"Packet of the sample (scale {SCALE}: validation {run.verdict}, two signers), {pages} pages, "
          f"{size / 1024:.0f} KiB")
    print(f"  build + sign: first {builds[0]:.2f} s, then median {statistics.median(builds[1:]):.2f} s (target <= 3 s)")
    print(f"  verify:       first {verifies[0]:.2f} s, then median {statistics.median(verifies[1:]):.2f} s "
          "(target <= 1 s)")


if __name__ == "__main__":
    main()
