"""The signed packet, checked by independent readers: pyHanko's validator, poppler's pdfsig (with the signers
trusted in an NSS database), pdfdetach and pdftotext; tampering, transplanting, untrusted signers, timestamps,
the CLI's exit codes, and kills during export."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from app.cli import main
from app.core.governance.approvals import add_user, create_request, decide, unlock
from app.core.governance.identity import cert_pem, create_identity, create_site_ca, unlock_identity
from app.core.models.registry import register_model
from app.core.models.validation import parse_plan, run_validation
from app.core.packet import (
    FAILED,
    INDETERMINATE,
    PASSED,
    PacketError,
    Signing,
    build_packet,
    verify_packet,
)
from app.core.store.project import Project
from tests.test_validation_run import HEAD, _held_out, _score_model

PW = "packet-pass-1"
PLAN = HEAD + ("[[overall]]\nmetric = 'recall'\nmin = 0.6\n[[per_slice]]\nby = ['line']\nmetric = 'fpr'\nmax = 0.2\n"
               "[[non_regression]]\nby = ['line']\nmetric = 'auc'\nmax_drop = 0.5\nmin_support = 5\n")
needs_poppler = pytest.mark.skipif(not shutil.which("pdfsig") or not shutil.which("certutil"),
                                   reason="poppler-utils and libnss3-tools are needed (make test installs them)")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A project with a validation run, an approved request and a packet signed by the lead, then the approver."""
    root = tmp_path_factory.mktemp("packet")
    old_home = os.environ.get("LINEPROOF_HOME")
    os.environ["LINEPROOF_HOME"] = str(root / "profile")
    try:
        from app.core.models.model_import import import_model
        from app.core.store.datasets import register_dataset

        project = Project.create(root / "proj", "Packet test, Łódź", site="P1")
        # Signers chain to a site CA: NSS (pdfsig) only accepts a CA certificate as a trust anchor.
        certs = {}
        for ca_id in ("plant-ca", "other-ca"):
            certs[ca_id] = root / f"{ca_id}.pem"
            certs[ca_id].write_text(cert_pem(create_site_ca(ca_id, f"{ca_id} root", PW)))
        for user_id, name, roles in (("vera", "Vera Łukasz 日本", ["admin", "validation_lead"]),
                                     ("anna", "Anna Öberg", ["approver"])):
            cert = create_identity(user_id, name, PW, ca_id="plant-ca", ca_passphrase=PW)
            certs[user_id] = root / f"{user_id}.pem"
            certs[user_id].write_text(cert_pem(cert))
            add_user(project, user_id, name, cert_pem(cert), roles,
                     by=unlock(project, "vera", PW))
        vera, anna = unlock(project, "vera", PW), unlock(project, "anna", PW)
        register_model(project, "m", "scorer", "binary", by=vera)
        model = _score_model(root / "m.onnx")
        _held_out().write_parquet(root / "held.parquet")
        register_dataset(project, "held", "held out", "validation", root / "held.parquet")
        import_model(project, model, "m", "cand", 0.5, card={"features": ["cand"], "intended_use": "tests"}, by=vera)
        import_model(project, model, "m", "champ", 0.5, card={"features": ["champ"]}, by=vera)
        runs = [run_validation(project, parse_plan(PLAN), "m:cand", "m:champ", by=vera) for _ in range(2)]
        request = create_request(project, "m:cand", "P1", "production", vera, runs[0].run_id)
        decide(project, request, "review", vera, "slices and parity checked")
        decide(project, request, "approve", anna, "release approved")
        packets = [build_packet(project, r.run_id, project.folder / "packets" / f"{r.run_id}.pdf",
                                [Signing(vera, "validated by"), Signing(anna, "approved by")]) for r in runs]
        yield {"project": project, "packet": packets[0], "other": packets[1], "certs": certs, "root": root,
               "run": runs[0], "request": request}
        project.close()
    finally:
        if old_home is None:
            os.environ.pop("LINEPROOF_HOME", None)
        else:
            os.environ["LINEPROOF_HOME"] = old_home


def _copy(signed, tmp_path: Path, name: str = "copy.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(signed["packet"].read_bytes())
    return path


def _pyhanko_statuses(path: Path, trust: list[Path]):
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    roots = [asn1_x509.Certificate.load(pem.unarmor(p.read_bytes())[2]) for p in trust]
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    reader = PdfFileReader(io.BytesIO(path.read_bytes()), strict=False)
    return [asyncio.run(async_validate_pdf_signature(s, context)) for s in reader.embedded_signatures]


def _pdfsig(path: Path, certs: list[Path], nss: Path) -> list[dict[str, str]]:
    """pdfsig's verdict per signature, with the given certificates trusted in a fresh NSS database."""
    if not nss.exists():
        nss.mkdir()
        subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
        for i, cert in enumerate(certs):
            subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", f"signer{i}", "-t", "CT,C,C", "-i",
                            str(cert)], check=True, capture_output=True)
    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(path)], capture_output=True, text=True)
    blocks = re.split(r"^Signature #\d+:", out.stdout, flags=re.M)[1:]
    def field(pattern: str, block: str) -> str:
        match = re.search(pattern, block)
        return match.group(1).strip() if match else ""  # pdfsig skips the certificate after a digest mismatch

    return [{"signature": field(r"Signature Validation: (.+)", b), "certificate": field(r"Certificate Validation: (.+)", b),
             "total": "Total document signed" in b} for b in blocks]


@needs_poppler
def test_the_packet_verifies_in_lineproof_pyhanko_and_pdfsig(signed, tmp_path: Path):
    trust = [signed["certs"]["plant-ca"]]
    ours = verify_packet(signed["packet"], trust)
    assert ours.indication == PASSED and ours.evidence_ok and len(ours.signatures) == 2
    assert [s.meaning for s in ours.signatures] == ["validated by", "approved by"]
    statuses = _pyhanko_statuses(signed["packet"], trust)
    assert all(s.intact and s.valid and s.trusted and s.bottom_line for s in statuses)
    sigs = _pdfsig(signed["packet"], trust, tmp_path / "nss")
    assert [s["signature"] for s in sigs] == ["Signature is Valid."] * 2
    assert [s["certificate"] for s in sigs] == ["Certificate is Trusted."] * 2
    assert sigs[-1]["total"] and not sigs[0]["total"]  # the approver's revision covers the whole file
    # A signer's own certificate may be trusted directly too (Lineproof and pyHanko; NSS wants a CA).
    assert verify_packet(signed["packet"], [signed["certs"]["vera"], signed["certs"]["anna"]]).indication == PASSED


@needs_poppler
def test_the_attached_evidence_is_the_projects_and_names_render(signed, tmp_path: Path):
    out = tmp_path / "detached"
    out.mkdir()
    listing = subprocess.run(["pdfdetach", "-list", str(signed["packet"])], capture_output=True, text=True).stdout
    assert "evidence.json" in listing and "slices.csv" in listing
    subprocess.run(["pdfdetach", "-saveall", "-o", str(out), str(signed["packet"])], check=True)
    evidence = json.loads((out / "evidence.json").read_text())
    stored = json.loads(signed["project"].con.execute("SELECT result_json FROM validation_runs WHERE run_id = ?",
                                                      [signed["run"].run_id]).fetchone()[0])
    assert evidence["validation"]["result"]["criteria"] == stored["criteria"]
    assert evidence["approvals"]["request_id"] == signed["request"]
    assert [d["meaning"] for d in evidence["approvals"]["decisions"]] == ["reviewed by", "approved by"]
    assert all(d["signature_ok"] for d in evidence["approvals"]["decisions"]) and evidence["audit"]["chain_ok"]
    csv = pl.read_csv(out / "slices.csv")
    by_line = csv.filter(pl.col("grouping") == "line")
    assert set(by_line["slice"]) == {"L1", "L2", "L3"}
    assert by_line.filter(pl.col("slice") == "L2")["cand_recall"][0] == pytest.approx(0.6)
    text = subprocess.run(["pdftotext", str(signed["packet"]), "-"], capture_output=True, text=True).stdout
    for needle in ("Vera Łukasz 日本", "Anna Öberg", "Packet test, Łódź", "Validation and approval packet", "PASS"):
        assert needle in text, needle
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(signed["packet"])], capture_output=True,
                                                            text=True).stdout).group(1))
    assert pages >= 5


@needs_poppler
def test_one_flipped_byte_in_the_signed_range_fails_everywhere(signed, tmp_path: Path):
    path = _copy(signed, tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(b"stream", 3000) + 40  # inside a page content stream of the first, signed revision
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    trust = [signed["certs"]["plant-ca"]]
    assert verify_packet(path, trust).indication == FAILED
    assert not any(s.intact for s in _pyhanko_statuses(path, trust))
    assert {s["signature"] for s in _pdfsig(path, trust, tmp_path / "nss")} == {"Digest Mismatch."}
    assert main(["verify", str(path), "--trust", str(trust[0])]) == 1


def _append_update(path: Path, change: str) -> None:
    """An incremental update after the last signature: an extra page, or an annotation on the cover."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(path.read_bytes()), strict=False)
    pages = writer.root["/Pages"]
    if change == "page":
        kids = pages["/Kids"]
        kids.append(kids[1])  # page 2 again, as a new last page
        pages["/Count"] = generic.NumberObject(len(kids))
        writer.update_container(pages)
    else:
        page = pages["/Kids"][0].get_object()
        note = writer.add_object(generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Text"),
            generic.NameObject("/Rect"): generic.ArrayObject([generic.FloatObject(v) for v in (100, 500, 120, 520)]),
            generic.NameObject("/Contents"): generic.TextStringObject("verdict was PASS")}))
        annots = page["/Annots"] if "/Annots" in page else generic.ArrayObject()
        annots.append(note)
        page[generic.NameObject("/Annots")] = annots
        writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    path.write_bytes(out.getvalue())


@pytest.mark.parametrize("change", ["page", "annotation"])
def test_content_appended_after_signing_is_not_passed(signed, tmp_path: Path, change: str):
    path = _copy(signed, tmp_path)
    _append_update(path, change)
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert result.indication != PASSED
    assert all(s.integrity == "intact" for s in result.signatures)  # the bytes are still there...
    assert any("after signing" in s.modifications for s in result.signatures)  # ...but something came after


def test_a_signature_transplanted_from_another_packet_fails(signed, tmp_path: Path):
    from pyhanko.pdf_utils.reader import PdfFileReader

    def gap(data: bytes) -> tuple[int, int]:
        sig = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures[0]
        r = sig.byte_range
        return r[1], r[2]

    target, donor = bytearray(signed["packet"].read_bytes()), signed["other"].read_bytes()
    (t0, t1), (d0, d1) = gap(bytes(target)), gap(donor)
    blob = donor[d0:d1]
    assert len(blob) <= t1 - t0
    target[t0:t1] = blob[:-1] + b"0" * (t1 - t0 - len(blob)) + blob[-1:]  # keep '<' ... '>' in place
    path = tmp_path / "transplanted.pdf"
    path.write_bytes(bytes(target))
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert result.indication == FAILED and result.signatures[0].indication == FAILED


@needs_poppler
def test_an_untrusted_signer_is_indeterminate_never_passed(signed, tmp_path: Path, capsys):
    only_vera = [signed["certs"]["vera"]]
    result = verify_packet(signed["packet"], only_vera)
    assert result.indication == INDETERMINATE
    assert [s.indication for s in result.signatures] == [PASSED, INDETERMINATE]
    assert "untrusted" in result.signatures[1].trust
    other_ca = [signed["certs"]["other-ca"]]
    assert [s.indication for s in verify_packet(signed["packet"], other_ca).signatures] == [INDETERMINATE] * 2
    assert verify_packet(signed["packet"], []).indication == INDETERMINATE
    assert main(["verify", str(signed["packet"]), "--trust", str(other_ca[0])]) == 3
    out = capsys.readouterr().out
    assert "INDETERMINATE" in out and "untrusted" in out
    # The global --trust (before the command) counts as much as the command's own.
    assert main(["--trust", str(signed["certs"]["plant-ca"]), "verify", str(signed["packet"])]) == 0
    assert "PASSED" in capsys.readouterr().out
    # Trusting the project's registered users, from another process (the project is open here).
    done = subprocess.run([sys.executable, "-m", "app", "verify", str(signed["packet"]), "--project",
                           str(signed["project"].folder)], capture_output=True, text=True)
    assert done.returncode == 0 and "PASSED" in done.stdout
    sigs = _pdfsig(signed["packet"], other_ca, tmp_path / "nss-other")
    assert [s["signature"] for s in sigs] == ["Signature is Valid."] * 2
    assert not any(s["certificate"] == "Certificate is Trusted." for s in sigs)


def _dummy_tsa(common_name: str):
    """pyHanko's in-process timestamper with a fresh self-signed TSA certificate: (timestamper, certificate)."""
    from datetime import UTC, datetime, timedelta

    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(key, hashes.SHA256()))
    der = serialization.Encoding.DER
    tsa = DummyTimeStamper(asn1_x509.Certificate.load(cert.public_bytes(der)),
                           asn1_keys.PrivateKeyInfo.load(key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                                           serialization.NoEncryption())))
    return tsa, cert


def test_a_timestamped_signature_is_b_t(signed, tmp_path: Path):
    from app.core.governance.trust import add_anchor
    from app.core.packet import add_signature

    tsa, cert = _dummy_tsa("Test TSA")
    path = tmp_path / "timestamped.pdf"
    path.write_bytes(signed["other"].read_bytes())
    os.environ["LINEPROOF_HOME"] = str(signed["root"] / "profile")
    with pytest.raises(PacketError, match="(?s)Test TSA.*must chain to this PC's trust anchors"):
        add_signature(path, Signing(unlock_identity("vera", PW), "reviewed by"), timestamper=tsa)
    assert path.read_bytes() == signed["other"].read_bytes()
    add_anchor(cert, name="test-tsa")  # the plant's TSA, trusted on this PC
    add_signature(path, Signing(unlock_identity("vera", PW), "reviewed by"), timestamper=tsa)
    tsa_pem = tmp_path / "tsa.pem"
    tsa_pem.write_text(cert_pem(cert))
    result = verify_packet(path, [signed["certs"]["plant-ca"], tsa_pem])
    assert result.indication == PASSED and len(result.signatures) == 3
    assert result.signatures[2].timestamp.startswith("timestamp") and "valid" in result.signatures[2].timestamp


def test_bad_requests_write_nothing(signed, tmp_path: Path, capsys):
    project = signed["project"]
    before = sorted(p.name for p in (project.folder / "packets").iterdir())
    vera = unlock_identity("vera", PW) if os.environ.get("LINEPROOF_HOME") else None
    with pytest.raises(PacketError, match="No validation run 'VAL-nope'"):
        build_packet(project, "VAL-nope", project.folder / "packets" / "x.pdf", [Signing(vera, "validated by")])
    with pytest.raises(PacketError, match="at least one signer"):
        build_packet(project, signed["run"].run_id, project.folder / "packets" / "x.pdf", [])
    assert sorted(p.name for p in (project.folder / "packets").iterdir()) == before
    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_text("hello")
    assert main(["verify", str(not_pdf)]) == 2
    assert "is not a PDF" in capsys.readouterr().err


@pytest.mark.slow
def test_killing_the_export_never_leaves_a_partial_packet(signed, tmp_path: Path):
    import random

    folder = tmp_path / "proj"
    signed["project"].close()
    try:
        shutil.copytree(signed["project"].folder, folder)
    finally:
        signed["project"] = Project.open(signed["project"].folder)
    packets = folder / "packets"
    shutil.rmtree(packets, ignore_errors=True)
    env = {**os.environ, "LINEPROOF_HOME": str(signed["root"] / "profile"), "LINEPROOF_PASSPHRASE": PW}
    rng = random.Random(5)
    for i in range(10):
        proc = subprocess.Popen([sys.executable, "-m", "app", "packet", str(folder), "--validation",
                                 signed["run"].run_id, "--out", str(packets / f"p{i}.pdf"), "--sign-as", "vera",
                                 "--sign-as", "anna", "-q"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.5, 6.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pdf in packets.glob("*") if packets.exists() else []:
            assert pdf.suffix == ".pdf", pdf  # no temp file ever lands in packets/
            assert verify_packet(pdf, [signed["certs"]["plant-ca"]]).indication == PASSED, pdf


@pytest.mark.parametrize("forgery", ["signed hash of other evidence", "evidence result edited"])
def test_evidence_that_does_not_match_its_hashes_fails_although_the_signature_is_intact(
        signed, tmp_path: Path, monkeypatch, forgery: str):
    """A packet signed in good order over evidence that does not match: the signature alone proves nothing."""
    import hashlib

    from app.core.packet import sign as packet_sign

    if forgery == "signed hash of other evidence":
        monkeypatch.setattr(packet_sign, "evidence_sha256",
                            lambda data: hashlib.sha256(data + b" ").hexdigest())
    else:
        real = packet_sign.evidence_bytes

        def edited(evidence: dict) -> bytes:
            evidence["validation"]["result"]["verdict"] = "PASS" if evidence["validation"]["result"].get(
                "verdict") != "PASS" else "FAIL"
            return real(evidence)

        monkeypatch.setattr(packet_sign, "evidence_bytes", edited)
    project = signed["project"]
    out = build_packet(project, signed["run"].run_id, tmp_path / "forged.pdf",
                       [Signing(unlock(project, "vera", PW), "validated by")])
    verdict = verify_packet(out, [signed["certs"]["plant-ca"]])
    assert [s.integrity for s in verdict.signatures] == ["intact"]
    assert verdict.indication == FAILED and not verdict.evidence_ok
    assert ("does not match the signed hash" if forgery.startswith("signed") else "does not match its recorded sha256") \
        in verdict.evidence


def _incremental(path: Path, change) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(path.read_bytes()), strict=False)
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    path.write_bytes(out.getvalue())


def _add_empty_signature_field(writer) -> None:
    from pyhanko.sign import fields

    fields.append_signature_field(writer, fields.SigFieldSpec("Approval", on_page=0, box=(60, 620, 560, 760)))


def _fill_a_text_field(writer) -> None:
    """A text field over the verdict, filled with 'PASS' (what a form filler could add after signing)."""
    from pyhanko.pdf_utils import generic

    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    n = generic.NameObject
    field = writer.add_object(generic.DictionaryObject({
        n("/Type"): n("/Annot"), n("/Subtype"): n("/Widget"), n("/FT"): n("/Tx"),
        n("/T"): generic.TextStringObject("Verdict"), n("/V"): generic.TextStringObject("PASS"),
        n("/Rect"): generic.ArrayObject([generic.FloatObject(v) for v in (60, 640, 560, 760)]), n("/P"): page_ref}))
    annots = page["/Annots"] if "/Annots" in page else generic.ArrayObject()
    annots.append(field)
    page[n("/Annots")] = annots
    writer.update_container(page)
    form = writer.root["/AcroForm"]
    form["/Fields"].append(field)
    writer.update_container(form)


@pytest.mark.parametrize(("change", "named"), [(_add_empty_signature_field, "Approval (empty signature field)"),
                                                (_fill_a_text_field, "Verdict")])
def test_fields_added_after_signing_fail_and_are_named(signed, tmp_path: Path, change, named: str):
    path = _copy(signed, tmp_path)
    _incremental(path, change)
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert result.indication == FAILED
    assert all(s.integrity == "intact" for s in result.signatures)
    assert any(named in s.detail for s in result.signatures), [s.detail for s in result.signatures]
    assert main(["verify", str(path), "--trust", str(signed["certs"]["plant-ca"])]) == 1


def _sign_elsewhere(path: Path, signing, box: tuple[int, int, int, int]) -> None:
    """A real signature by a trusted identity, but with its appearance where Lineproof never puts one."""
    import tempfile

    from app.core.packet import sign as packet_sign

    pdf = path.read_bytes()
    slot = packet_sign.existing_signatures(pdf)
    with tempfile.TemporaryDirectory() as tmp:
        style = packet_sign._stamp_style(signing, Path(tmp), (box[2] - box[0], box[3] - box[1]))
        path.write_bytes(packet_sign._sign(pdf, signing, slot, box, style, None, None))


def test_a_later_signature_whose_box_covers_the_cover_fails(signed, tmp_path: Path):
    path = _copy(signed, tmp_path)
    _sign_elsewhere(path, Signing(unlock_identity("anna", PW), "approved by"), (40, 560, 570, 800))
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert [s.integrity for s in result.signatures] == ["intact"] * 3
    assert result.indication == FAILED and result.signatures[2].indication == FAILED
    assert "is not signature slot 3 on the cover" in result.signatures[2].detail


def test_with_the_project_a_signer_needs_the_role_for_the_meaning(signed, tmp_path: Path, capsys):
    project = signed["project"]
    if "victor" not in {r[0] for r in project.con.execute("SELECT user_id FROM users").fetchall()}:
        cert = create_identity("victor", "Victor Viewer", PW, ca_id="plant-ca", ca_passphrase=PW)
        add_user(project, "victor", "Victor Viewer", cert_pem(cert), ["viewer"], by=unlock(project, "vera", PW))
    path = _copy(signed, tmp_path)
    from app.core.packet import add_signature

    add_signature(path, Signing(unlock_identity("victor", PW), "approved by"))  # in slot 3, a proper box
    trust = [signed["certs"]["plant-ca"]]
    assert verify_packet(path, trust).indication == PASSED  # without the project, roles cannot be known...
    result = verify_packet(path, trust, project=project)  # ...with it, the viewer's approval is refused
    assert result.indication == FAILED
    assert [s.indication for s in result.signatures] == [PASSED, PASSED, FAILED]
    assert "victor (viewer) may not sign 'approved by': that needs approver" in result.signatures[2].role
    assert "validation_lead" in result.signatures[0].role and "approver" in result.signatures[1].role
    assert verify_packet(signed["packet"], trust, project=project).indication == PASSED


def test_with_the_project_the_run_verdict_and_evidence_must_be_the_stored_ones(signed, tmp_path: Path):
    project = signed["project"]
    trust = [signed["certs"]["plant-ca"]]
    run_id = signed["run"].run_id
    verdict = project.con.execute("SELECT verdict FROM validation_runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
    other = "PASS" if verdict != "PASS" else "FAIL"
    project.con.execute("UPDATE validation_runs SET verdict = ? WHERE run_id = ?", [other, run_id])
    try:
        result = verify_packet(signed["packet"], trust, project=project)
    finally:
        project.con.execute("UPDATE validation_runs SET verdict = ? WHERE run_id = ?", [verdict, run_id])
    assert result.indication == FAILED and f"the project stored {other}" in result.evidence
    # A packet this project never exported (made elsewhere, from a copy): its evidence hash is in no audit entry.
    copy_root = tmp_path / "copy"
    shutil.copytree(project.folder, copy_root, ignore=shutil.ignore_patterns("*.lock", ".lineproof-lock"))
    with Project.open(copy_root) as twin:
        foreign = build_packet(twin, run_id, tmp_path / "foreign.pdf", [Signing(unlock(twin, "vera", PW),
                                                                                "validated by")])
    result = verify_packet(foreign, trust, project=project)
    assert result.indication == FAILED and "never exported a packet with this evidence" in result.evidence


def test_a_timestamp_from_an_untrusted_tsa_is_never_passed(signed, tmp_path: Path, monkeypatch):
    from app.core.packet import add_signature
    from app.core.packet import sign as packet_sign

    tsa, cert = _dummy_tsa("Rogue TSA")
    path = _copy(signed, tmp_path)
    with pytest.raises(PacketError, match="Rogue TSA"):  # Lineproof itself refuses a TSA this PC does not trust...
        add_signature(path, Signing(unlock_identity("anna", PW), "approved by"), timestamper=tsa)
    # ...so the packet is made as another tool would: a B-T signature without validation data.
    monkeypatch.setattr(packet_sign, "long_term_context", lambda _signer: None)
    add_signature(path, Signing(unlock_identity("anna", PW), "approved by"), timestamper=tsa)
    result = verify_packet(path, [signed["certs"]["plant-ca"]])  # the signer is trusted, the TSA is not
    assert result.signatures[2].trust == "trusted"
    assert result.indication == INDETERMINATE and result.signatures[2].indication == INDETERMINATE
    assert "untrusted TSA" in result.signatures[2].timestamp
