"""Smoke test of the built bundle, with no network: prepare a sample project and a signed packet with the
development venv, then make the bundle open the app offscreen, benchmark on OpenVINO CPU (proves its plugins
were collected) and verify the packet. Run by `make installer`; exit code 0 when every step passed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def no_network(command: list[str]) -> list[str]:
    """Prefix a command with `unshare -n` (a private network namespace) where the kernel lets us."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *command]
    print("smoke: unshare -n is not permitted here; running with the network present", flush=True)
    return command


def step(name: str, command: list[str], env: dict[str, str], expect: str) -> None:
    """Run one bundle command and check its exit code and output."""
    done = subprocess.run(no_network(command), capture_output=True, text=True, env=env, timeout=300)
    output = done.stdout + done.stderr
    if done.returncode != 0 or expect not in output:
        print(f"smoke: {name} FAILED (exit {done.returncode}):\n{output[-3000:]}", flush=True)
        raise SystemExit(1)
    print(f"smoke: {name} ok", flush=True)


def first_start(bundle: Path, tmp: Path) -> None:
    """Start the bundle as a new user does: no arguments but the smoke timer, an empty HOME, no network. The
    window opens on the sample project, unpacked from the archive the bundle ships, and nothing is printed as a
    traceback; `lineproof sample DIR` unpacks the same sample."""
    home = tmp / "new-user"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(no_network([str(bundle), "gui", "--quit-after", "25"]), capture_output=True, text=True,
                          env=env, timeout=300)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "smoke: window shown with Weld-seam inspection" not in output or "Traceback" in output:
        print(f"smoke: first start FAILED (exit {done.returncode}):\n{output[-3000:]}", flush=True)
        raise SystemExit(1)
    print("smoke: first start with an empty HOME opened the sample ok", flush=True)
    done = subprocess.run(no_network([str(bundle), "sample", str(home / "sample")]), capture_output=True, text=True,
                          env=env, timeout=300)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Traceback" in output or "Unpacked the prebuilt sample" not in output:
        print(f"smoke: sample FAILED (exit {done.returncode}):\n{output[-3000:]}", flush=True)
        raise SystemExit(1)
    print("smoke: lineproof sample ok (unpacked)", flush=True)


def prepare(tmp: Path) -> tuple[Path, Path, Path]:
    """A small sample project, a validation run and a packet signed by a CA-issued identity."""
    os.environ["LINEPROOF_HOME"] = str(tmp / "profile")
    from app.core.governance.approvals import add_user, unlock
    from app.core.governance.identity import cert_pem, create_identity, create_site_ca
    from app.core.models.validation import parse_plan, run_validation
    from app.core.packet import Signing, build_packet
    from app.core.store.project import Project
    from app.sample.build import build_sample
    from app.sample.release_plan import RELEASE_PLAN

    folder = build_sample(tmp / "sample", scale=0.02)
    ca = tmp / "ca.pem"
    ca.write_text(cert_pem(create_site_ca("smoke-ca", "Smoke CA", "smoke-pass")))
    with Project.open(folder) as project:
        add_user(project, "vera", "Vera Łukasz", cert_pem(create_identity("vera", "Vera Łukasz", "smoke-pass",
                                                                          ca_id="smoke-ca", ca_passphrase="smoke-pass")),
                 ["validation_lead"], by=unlock(project, "vera", "smoke-pass"))
        vera = unlock(project, "vera", "smoke-pass")
        plan = parse_plan(RELEASE_PLAN.replace('source = "run"', 'source = "recorded"'))
        run = run_validation(project, plan, "weld-defect:v2", "weld-defect:v1", by=vera)
        packet = build_packet(project, run.run_id, tmp / "packet.pdf", [Signing(vera, "validated by")])
    return folder, packet, ca


def main() -> int:
    """Prepare, then run the bundle's steps."""
    bundle = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory(prefix="lineproof-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        folder, packet, ca = prepare(tmp)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "QT_QPA_PLATFORM": "offscreen",
               "LINEPROOF_HOME": str(tmp / "profile")}
        step("version", [str(bundle), "--version"], env, "lineproof")
        first_start(bundle, tmp)
        step("gui offscreen", [str(bundle), "gui", str(folder), "--quit-after", "4"], env,
             "smoke: window shown with Weld-seam inspection")
        step("benchmark on OpenVINO CPU", [str(bundle), "bench", str(folder), "--model", "seam-vision:v1",
                                          "--runtime", "openvino", "--device", "CPU", "--seconds", "1",
                                          "--warmup", "2"], env, "throughput")
        step("verify packet", [str(bundle), "verify", str(packet), "--trust", str(ca)], env, "PASSED")
    print("smoke: the bundle works offline", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
