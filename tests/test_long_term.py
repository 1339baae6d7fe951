"""Packets that still verify years later, and keys that can be withdrawn: a real RFC 3161 timestamp authority on
localhost (pyHanko's responder behind an HTTP server), a site CA that issues certificates for three days, CRLs
issued and imported the way a plant would, and verification as of later dates (`--at`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.cli import main
from app.core.governance import trust
from app.core.governance.approvals import add_user, create_request, decide, revoke_user, unlock
from app.core.governance.identity import (
    cert_pem,
    create_identity,
    create_site_ca,
    profile_certificate,
    unlock_identity,
)
from app.core.governance.revocation import install_crl, issue_crl
from app.core.packet import FAILED, INDETERMINATE, PASSED, Signing, build_packet, verify_packet
from app.core.store.project import Project
from tests.test_packet import PLAN, PW, _pdfsig, needs_poppler

UTC = dt.UTC
NOW = dt.datetime.now(UTC)


def _tsa_certificate(ca_id: str, name: str, days: int):
    """A timestamping certificate issued by the site CA (the TSA is trusted through the site's anchor)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = unlock_identity(ca_id, PW)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=5)).not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(ca.key, hashes.SHA256()))
    return key, cert, ca.cert


def _responder(key, cert, ca_cert):
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = serialization.Encoding.DER
    return DummyTimeStamper(asn1_x509.Certificate.load(cert.public_bytes(der)),
                            asn1_keys.PrivateKeyInfo.load(key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                                            serialization.NoEncryption())),
                            certs_to_embed=SimpleCertificateStore.from_certs(
                                [asn1_x509.Certificate.load(ca_cert.public_bytes(der))]))


class _TSAServer:
    """An RFC 3161 responder over HTTP on 127.0.0.1; `use(...)` swaps the TSA certificate (a renewed TSA)."""

    def __init__(self) -> None:
        self.stamper = None
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                from asn1crypto import tsp

                request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
                body = asyncio.run(outer.stamper.async_request_tsa_response(request)).dump()
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def use(self, key, cert, ca_cert) -> None:
        self.stamper = _responder(key, cert, ca_cert)


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    """A plant whose CA issues 3-day user certificates, a TSA on localhost (certificate for 5 days, renewed
    later for 11 years), and a project with a validation run and an approved request."""
    from app.core.models.model_import import import_model
    from app.core.models.registry import register_model
    from app.core.models.validation import parse_plan, run_validation
    from app.core.store.datasets import register_dataset
    from tests.test_validation_run import _held_out, _score_model

    root = tmp_path_factory.mktemp("longterm")
    old_home = os.environ.get("LINEPROOF_HOME")
    os.environ["LINEPROOF_HOME"] = str(root / "pc")
    server = _TSAServer()
    try:
        ca = create_site_ca("plant-ca", "Plant CA", PW)
        (root / "plant-ca.pem").write_text(cert_pem(ca))
        short = _tsa_certificate("plant-ca", "Plant TSA 2026", days=5)
        server.use(*short)
        trust.set_tsa(server.url)
        project = Project.create(root / "proj", "Long-term", site="P1")
        for user_id, roles in (("vera", ["admin", "validation_lead"]), ("anna", ["approver"]),
                               ("otto", ["approver"]), ("rita", ["approver"]), ("adam", ["admin"])):
            cert = create_identity(user_id, user_id.title(), PW, ca_id="plant-ca", ca_passphrase=PW, days=3)
            add_user(project, user_id, user_id.title(), cert_pem(cert), roles, by=unlock(project, "vera", PW))
        vera = unlock(project, "vera", PW)
        register_model(project, "m", "scorer", "binary", by=vera)
        model = _score_model(root / "m.onnx")
        _held_out().write_parquet(root / "held.parquet")
        register_dataset(project, "held", "held out", "validation", root / "held.parquet")
        import_model(project, model, "m", "cand", 0.5, card={"features": ["cand"]}, by=vera)
        import_model(project, model, "m", "champ", 0.5, card={"features": ["champ"]}, by=vera)
        run = run_validation(project, parse_plan(PLAN), "m:cand", "m:champ", by=vera)
        request = create_request(project, "m:cand", "P1", "production", vera, run.run_id)
        decide(project, request, "review", vera, "checked")
        decide(project, request, "approve", unlock(project, "anna", PW), "approved")
        data = {"project": project, "root": root, "server": server, "run": run, "ca": root / "plant-ca.pem",
                "short_tsa": short}
        yield data
        data["project"].close()  # the one a test reopened, if it did
    finally:
        server.server.shutdown()
        if old_home is None:
            os.environ.pop("LINEPROOF_HOME", None)
        else:
            os.environ["LINEPROOF_HOME"] = old_home


def _packet(plant, name: str, signers: list[tuple[str, str]], tsa: bool = True) -> Path:
    project = plant["project"]
    url = trust.tsa_url()
    if not tsa:
        trust.set_tsa("")
    try:
        return build_packet(project, plant["run"].run_id, plant["root"] / f"{name}.pdf",
                            [Signing(unlock(project, u, PW), m) for u, m in signers])
    finally:
        trust.set_tsa(url)


def _copy(path: Path, name: str) -> Path:
    out = path.with_name(name)
    shutil.copyfile(path, out)
    return out


def test_a_b_lta_packet_passes_after_every_user_certificate_expired(plant) -> None:
    path = _packet(plant, "lta", [("vera", "validated by"), ("anna", "approved by")])
    trust_ca = [plant["ca"]]
    now = verify_packet(path, trust_ca)
    assert now.indication == PASSED, [(s.trust, s.detail) for s in now.signatures]
    assert now.level == "B-LTA" and [s.level for s in now.signatures] == ["B-LTA", "B-LTA"]
    assert all("proven by its timestamp" in s.signed_time for s in now.signatures)
    short_tsa_end = plant["short_tsa"][1].not_valid_after_utc
    assert now.valid_until == f"{short_tsa_end:%Y-%m-%d}"  # the timestamp certificate, not the 3-day users'
    # Four days on, both users' certificates have expired; the TSA's has not: long-term validation proves them.
    later = NOW + dt.timedelta(days=4)
    result = verify_packet(path, trust_ca, at=later)
    assert result.indication == PASSED, [(s.trust, s.detail) for s in result.signatures]
    assert all("long-term validation" in s.trust and "expired" in s.trust for s in result.signatures)
    assert plant["server"].requests >= 4  # each signature's own timestamp and a document timestamp, over HTTP


def test_a_b_b_packet_is_indeterminate_later_and_says_why(plant) -> None:
    path = _packet(plant, "bb", [("vera", "validated by")], tsa=False)
    result = verify_packet(path, [plant["ca"]])
    assert result.indication == PASSED and result.level == "B-B"  # validation data, but no timestamp: still B-B
    assert "by the signer's own clock only" in result.signatures[0].signed_time
    later = verify_packet(path, [plant["ca"]], at=NOW + dt.timedelta(days=4))
    assert later.indication == INDETERMINATE
    detail = later.signatures[0].detail
    assert "the certificate is no longer valid and no document timestamp proves when it signed" in detail
    assert "only the signer's claim" in detail and "expired" in later.signatures[0].trust


def test_revocation_before_and_after_signing(plant, tmp_path: Path) -> None:
    stamped = _packet(plant, "otto-lta", [("vera", "validated by"), ("otto", "approved by")])
    plain = _packet(plant, "otto-bb", [("vera", "validated by"), ("otto", "approved by")], tsa=False)
    otto = profile_certificate("otto")
    time.sleep(1.1)
    # Revoked after both were signed (superseded): the timestamped one still PASSES, the other cannot show it.
    crl_file, _ = issue_crl("plant-ca", PW, [(otto, "superseded", None)])
    after = verify_packet(stamped, [plant["ca"]])
    assert after.indication == PASSED
    assert "before its key was revoked" in after.signatures[1].revocation
    untimed = verify_packet(plain, [plant["ca"]])
    assert untimed.indication == INDETERMINATE and untimed.signatures[1].indication == INDETERMINATE
    assert "only the signer's claim (no timestamp proves it came before)" in untimed.signatures[1].detail
    # Key compromise discovered later, dated back before the signing: the timestamp proves it was signed after.
    crl_file, _ = issue_crl("plant-ca", PW, [(otto, "keyCompromise", NOW - dt.timedelta(hours=1))])
    before = verify_packet(stamped, [plant["ca"]])
    assert before.indication == FAILED and before.signatures[1].indication == FAILED
    assert "after its key was revoked" in before.signatures[1].detail and "keyCompromise" in before.signatures[1].detail
    # ...and a revoked key signs nothing more on a PC that holds the CRL.
    from app.core.governance.approvals import GovernanceError

    with pytest.raises(GovernanceError, match="otto's certificate was revoked"):
        unlock(plant["project"], "otto", PW)
    # Another PC learns of it by importing the CRL file the site distributes.
    os.environ["LINEPROOF_HOME"], home = str(tmp_path / "auditor-pc"), os.environ["LINEPROOF_HOME"]
    try:
        trust.add_anchor(plant["ca"])
        assert verify_packet(stamped, [plant["ca"]]).indication == PASSED  # no CRL here yet
        install_crl(crl_file)
        assert verify_packet(stamped, [plant["ca"]]).indication == FAILED
    finally:
        os.environ["LINEPROOF_HOME"] = home


def test_an_older_or_foreign_crl_is_refused(plant, tmp_path: Path) -> None:
    from app.core.governance.trust import TrustError

    first, _ = issue_crl("plant-ca", PW)
    older = tmp_path / "older.crl.pem"
    older.write_bytes(first.read_bytes())
    issue_crl("plant-ca", PW)
    with pytest.raises(TrustError, match="older than the CRL this PC keeps"):
        install_crl(older)
    os.environ["LINEPROOF_HOME"], home = str(tmp_path / "other-site"), os.environ["LINEPROOF_HOME"]
    try:
        create_site_ca("rogue-ca", "Rogue CA", PW)
        rogue, _ = issue_crl("rogue-ca", PW)
    finally:
        os.environ["LINEPROOF_HOME"] = home
    with pytest.raises(TrustError, match="not one of this PC's trust anchors"):
        install_crl(rogue)


def test_a_revoked_user_signs_no_decision_and_their_later_packet_fails_with_the_project(plant) -> None:
    from app.core.governance.approvals import GovernanceError, verify_decisions

    project = plant["project"]
    path = _packet(plant, "rita-before", [("vera", "validated by"), ("rita", "approved by")])
    revoke_user(project, "rita", "cessationOfOperation", unlock(project, "adam", PW))
    with pytest.raises(GovernanceError, match="rita's signing key was revoked .*cessationOfOperation"):
        unlock(project, "rita", PW)
    assert all(d["ok"] for d in verify_decisions(project))  # decisions before the revocation keep their value
    before = verify_packet(path, [plant["ca"]], project=project)
    assert before.indication == PASSED, before.evidence
    assert "before its key was revoked" in before.signatures[1].revocation
    # A packet she signs afterwards with the leaked key (outside Lineproof's refusal) fails against the project.
    late = _copy(path, "rita-late.pdf")
    from app.core.packet.sign import add_signature

    add_signature(late, Signing(unlock_identity("rita", PW), "approved by"))
    result = verify_packet(late, [plant["ca"]], project=project)
    assert result.signatures[2].indication == FAILED and "after its key was revoked" in result.signatures[2].detail


def test_an_extended_packet_verifies_ten_years_after_its_last_timestamp_certificate(plant) -> None:
    path = _packet(plant, "extend", [("vera", "validated by")])
    renewed = _tsa_certificate("plant-ca", "Plant TSA 2027", days=11 * 366)
    ten_years = renewed[1].not_valid_before_utc + dt.timedelta(days=3653)
    assert verify_packet(path, [plant["ca"]], at=ten_years).indication == INDETERMINATE  # its TSA expired
    plant["server"].use(*renewed)
    try:
        assert main(["packet", "extend", str(path)]) == 0
    finally:
        plant["server"].use(*plant["short_tsa"])
    result = verify_packet(path, [plant["ca"]], at=ten_years)
    assert result.indication == PASSED, [(s.trust, s.detail) for s in result.signatures]
    assert result.valid_until == f"{renewed[1].not_valid_after_utc:%Y-%m-%d}"
    assert main(["verify", str(path), "--trust", str(plant["ca"]), "--at", f"{ten_years:%Y-%m-%d}"]) == 0


@needs_poppler
def test_pdfsig_agrees_on_the_b_lta_packet_today(plant, tmp_path: Path) -> None:
    """pdfsig validates at the current time only (it has no --at): today both agree; later dates are pyHanko's."""
    path = _packet(plant, "pdfsig", [("vera", "validated by"), ("anna", "approved by")])
    sigs = _pdfsig(path, [plant["ca"]], tmp_path / "nss")
    # Signature1, a document timestamp, Signature2, a document timestamp (the last one covers the whole file).
    assert [s["signature"] for s in sigs[0::2]] == ["Signature is Valid."] * 2
    assert [s["certificate"] for s in sigs[0::2]] == ["Certificate is Trusted."] * 2
    # pdfsig cannot judge RFC 3161 document timestamps ("Unable to validate this type of signature").
    assert [s["signature"] for s in sigs[1::2]] == ["Signature has not yet been verified."] * 2
    assert sigs[-1]["total"]
    result = verify_packet(path, [plant["ca"]])
    assert result.indication == PASSED and result.level == "B-LTA"


def test_verify_cli_prints_the_level_and_the_signing_time(plant, capsys) -> None:
    path = _packet(plant, "cli", [("vera", "validated by")], tsa=False)
    assert main(["verify", str(path), "--trust", str(plant["ca"])]) == 0
    out = capsys.readouterr().out
    assert "level: PAdES B-B; verifiable without extension until" in out
    assert "by the signer's own clock only" in out and "revocation:" in out
    assert main(["verify", str(path), "--trust", str(plant["ca"]), "--at", "2040-01-01"]) == 3
    assert "validated as of 2040-01-01" in capsys.readouterr().out
    assert main(["verify", str(path), "--at", "someday"]) == 2


def test_the_cli_issues_imports_and_lists_crls_and_revokes_in_the_project(plant, tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    monkeypatch.setenv("CA_PASS", PW)
    assert main(["trust", "crl", "--ca", "plant-ca", "--ca-passphrase-env", "CA_PASS"]) == 0
    assert "give the file to every PC that verifies" in capsys.readouterr().out
    assert main(["trust", "list"]) == 0
    out = capsys.readouterr().out
    assert "CRL of O=Lineproof,UID=plant-ca" in out and "Timestamp authority: http://127.0.0.1:" in out
    assert main(["trust", "import-crl", str(tmp_path / "missing.crl")]) == 2
    assert "Cannot read" in capsys.readouterr().err
    project = plant["project"]
    folder = project.folder
    project.close()
    monkeypatch.setenv("LINEPROOF_ADMIN_PASSPHRASE", PW)
    try:
        assert main(["user", "revoke", str(folder), "--id", "otto", "--reason", "superseded", "--as", "adam"]) == 0
        assert main(["user", "list", str(folder)]) == 0
        listed = capsys.readouterr().out
        assert "(key revoked" in listed and "superseded" in listed
        assert main(["user", "revoke", str(folder), "--id", "otto", "--reason", "superseded", "--as", "adam"]) == 2
        assert "not a user with a valid key" in capsys.readouterr().err
        assert main(["audit", "verify", str(folder)]) == 0
    finally:
        plant["project"] = Project.open(folder)
