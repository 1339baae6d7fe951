"""Building and signing the packet: attachments, PAdES signatures (pyHanko) with visible boxes, atomic writes.

Each signer adds an incremental revision, so the validation lead's signature stays intact when the approver
signs after. A file only appears under its final name once it is complete (temp file, fsync, rename).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from app.core.errors import LineproofError
from app.core.governance.identity import Signer
from app.core.packet.evidence import (
    PacketError,
    evidence_bytes,
    evidence_sha256,
    gather,
    slices_csv,
)
from app.core.packet.render import render
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.store.project import Project

# Signature boxes on the cover (x1, y1, x2, y2 in points), below its content.
SIGNATURE_SLOTS = ((45, 40, 215, 132), (220, 40, 390, 132), (395, 40, 565, 132))


@dataclass(frozen=True)
class Signing:
    """One signature to add: who (an unlocked identity) and what it means."""

    signer: Signer
    meaning: str  # "validated by", "reviewed by", "approved by"
    location: str = ""


def _pyhanko_signer(signer: Signer):
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = serialization.Encoding.DER
    cert = asn1_x509.Certificate.load(signer.cert.public_bytes(der))
    key = asn1_keys.PrivateKeyInfo.load(signer.key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                                 serialization.NoEncryption()))
    chain = [asn1_x509.Certificate.load(c.public_bytes(der)) for c in signer.chain]
    return SimpleSigner(signing_cert=cert, signing_key=key,
                        cert_registry=SimpleCertificateStore.from_certs([cert, *chain]))


def _stamp_style(signing: Signing, folder: Path, size: tuple[float, float]):
    """The visible signature box, drawn with the packet's fonts (names like Łukasz or 日本 render)."""
    from pyhanko.stamp import StaticStampStyle
    from reportlab.lib import colors
    from reportlab.pdfgen import canvas
    from reportlab.platypus import Paragraph

    from app.core.packet.fonts import BOLD, REGULAR, markup, register
    from app.core.packet.render import _styles

    register()
    path = folder / "stamp.pdf"
    c = canvas.Canvas(str(path), pagesize=size)
    c.setStrokeColor(colors.HexColor("#1f4e79"))
    c.setLineWidth(1)
    c.rect(0.5, 0.5, size[0] - 1, size[1] - 1)
    c.setFont(BOLD, 9)
    c.drawString(6, size[1] - 14, signing.meaning.capitalize())
    name = Paragraph(markup(signing.signer.name), _styles()["body"])
    _, used = name.wrap(size[0] - 12, 24)
    name.drawOn(c, 6, size[1] - 18 - used)
    c.setFont(REGULAR, 7)
    c.drawString(6, 24, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    c.drawString(6, 13, f"{signing.signer.user_id} · PAdES signature")
    c.setFillColor(colors.HexColor("#555555"))
    c.drawString(6, 4, "Signed with Lineproof")
    c.save()
    return StaticStampStyle.from_pdf_file(str(path), border_width=0)


def long_term_context(signer: Signer) -> Any:
    """The validation data to embed with a signature (B-LT): this PC's anchors and CRLs, nothing fetched. None when
    the signer does not chain to an anchor here (their certificate alone goes in: B-B or B-T)."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko_certvalidator import ValidationContext

    from app.core.governance import trust
    from app.core.governance.revocation import pc_crls

    roots = trust.anchors()
    if not roots or trust.chain_problem(signer.cert, roots):
        return None
    import logging

    # Offline by design: pyHanko's warning that nothing will be fetched says what Lineproof always intends.
    logging.getLogger("pyhanko.sign.signers.pdf_signer").setLevel(logging.ERROR)
    der = serialization.Encoding.DER
    return ValidationContext(trust_roots=[asn1_x509.Certificate.load(c.public_bytes(der)) for c in roots],
                             crls=[c.public_bytes(der) for c in pc_crls()], allow_fetching=False,
                             revocation_mode="soft-fail")


def planned_level(signings: list[Signing], timestamper: Any = None) -> dict[str, str]:
    """The PAdES level the packet will have and until when it verifies without extension, for its cover."""
    from app.core.governance.revocation import pc_crls

    timestamped = (timestamper if timestamper is not None else configured_timestamper()) is not None
    long_term = all(long_term_context(s.signer) is not None for s in signings)
    crls = {c.issuer for c in pc_crls()}
    revocation_data = long_term and all(s.signer.cert.issuer in crls or s.signer.cert.issuer == s.signer.cert.subject
                                        for s in signings)
    first_expiry = min(s.signer.cert.not_valid_after_utc for s in signings)
    if timestamped and revocation_data:
        return {"level": "B-LTA", "until": "until the timestamp authority's certificate expires (extend the packet "
                                           "before then: lineproof packet extend)"}
    if timestamped:
        return {"level": "B-T", "until": f"until {first_expiry:%Y-%m-%d}, when the first signer's certificate "
                                         "expires (no revocation data to embed: import the site CA's CRL)"}
    return {"level": "B-B", "until": f"until {first_expiry:%Y-%m-%d}, when the first signer's certificate expires; "
                                     "no timestamp authority is configured, so each signing time is only the "
                                     "signer's claim"}


def configured_timestamper() -> Any:
    """The plant's TSA configured on this PC (`lineproof trust tsa URL`), or None."""
    from app.core.governance import trust

    url = trust.tsa_url()
    if not url:
        return None
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(url, timeout=10)


def page_count(pdf: bytes) -> int:
    """Pages of a PDF."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    return int(PdfFileReader(io.BytesIO(pdf), strict=False).root["/Pages"]["/Count"])


def existing_signatures(pdf: bytes) -> int:
    """How many signatures a PDF already carries (document timestamps not counted)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    return len(PdfFileReader(io.BytesIO(pdf)).embedded_regular_signatures)


def sign_bytes(pdf: bytes, signing: Signing, timestamper: Any = None, prepare: Callable[[Any], None] | None = None
               ) -> bytes:
    """Add one PAdES signature (B-B, or B-T with a timestamper) with a visible box in the next free slot."""

    slot = existing_signatures(pdf)
    timestamper = timestamper if timestamper is not None else configured_timestamper()
    if slot >= len(SIGNATURE_SLOTS):
        raise PacketError(f"The packet already carries {slot} signatures, the most its cover has room for.",
                          "Export a new packet for further signatures.")
    box = SIGNATURE_SLOTS[slot]
    with tempfile.TemporaryDirectory(prefix="lineproof-stamp-") as tmp:
        style = _stamp_style(signing, Path(tmp), (box[2] - box[0], box[3] - box[1]))
        return _sign(pdf, signing, slot, box, style, timestamper, prepare)


def _sign(pdf: bytes, signing: Signing, slot: int, box: tuple[int, int, int, int], style: Any, timestamper: Any,
          prepare: Callable[[Any], None] | None) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    if prepare is not None:
        prepare(writer)
    name = f"Signature{slot + 1}"
    context = long_term_context(signing.signer)
    lta = context is not None and timestamper is not None
    # Without a document timestamp the validation data goes into the signature's own revision, so the last
    # signature still covers the whole file; with one, it goes with the timestamp.
    placement = signers.pdf_signer.SigDSSPlacementPreference
    dss = signers.pdf_signer.DSSContentSettings(include_vri=False, placement=placement.TOGETHER_WITH_NEXT_TS if lta
                                                else placement.TOGETHER_WITH_SIGNATURE)
    meta = signers.PdfSignatureMetadata(field_name=name, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES, reason=signing.meaning,
                                        name=signing.signer.name, location=signing.location or None,
                                        embed_validation_info=context is not None, validation_context=context,
                                        use_pades_lta=lta, dss_settings=dss)
    pdf_signer = signers.PdfSigner(meta, signer=_pyhanko_signer(signing.signer), timestamper=timestamper,
                                   stamp_style=style,
                                   new_field_spec=fields.SigFieldSpec(name, on_page=0, box=box))
    out = io.BytesIO()
    try:
        pdf_signer.sign_pdf(writer, output=out)
    except Exception as exc:
        from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

        chain = exc
        while chain is not None and not isinstance(chain, PathBuildingError | PathValidationError):
            chain = chain.__cause__ or chain.__context__
        if chain is None:
            raise
        raise PacketError(f"The validation data for a long-term signature cannot be gathered: {chain}.",
                          "The timestamp authority's certificate (and the signer's) must chain to this PC's trust "
                          "anchors: add the CA that issued it (lineproof trust add CA.pem). Nothing was written.") \
            from exc
    return out.getvalue()


def _attach(evidence: bytes, csv: bytes) -> Callable[[Any], None]:
    def prepare(writer: Any) -> None:
        from pyhanko.pdf_utils import embed

        for data, name, mime, what in ((evidence, "evidence.json", "application/json",
                                        "Everything this packet shows, as JSON"),
                                       (csv, "slices.csv", "text/csv", "Per-slice results of the validation")):
            if not data:
                continue
            stream = embed.EmbeddedFileObject.from_file_data(writer, data=data, mime_type=mime,
                                                             params=embed.EmbeddedFileParams(embed_size=True))
            embed.embed_file(writer, embed.FileSpec(file_spec_string=name, embedded_data=stream, description=what,
                                                    file_name=name))

    return prepare


def write_atomically(path: Path, data: bytes) -> Path:
    """Write `data` to `path` so that the final name only ever holds a complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file lives beside packets/ (same file system), so no partial file ever shows up in it.
    staging = path.parent.parent / ".staging" if path.parent.name == "packets" else path.parent
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".partial", dir=staging)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # not every platform can fsync a folder
        pass
    return path


def build_packet(project: Project, run_id: str, out: Path | str, signings: list[Signing],
                 request_id: str | None = None, timestamper: Any = None, progress: Progress | None = None
                 ) -> Path:
    """Gather, render, attach the evidence and sign (in order); the packet appears at `out` only when whole."""
    progress = progress or NullProgress()
    if not signings:
        raise PacketError("A packet needs at least one signer.", "Name who signs (--sign-as USER).")
    from app.core.governance.approvals import check_signing_meaning
    from app.core.governance.identity import check_validity

    for signing in signings:  # every refusal before a byte is written
        try:
            check_validity(signing.signer.cert, signing.signer.user_id)
        except LineproofError as exc:
            raise PacketError(f"{exc.what} A packet cannot be signed with it.", exc.todo) from None
        check_signing_meaning(project, signing.signer.user_id, signing.meaning)
    progress.report(0.05, "Gathering the evidence")
    evidence = gather(project, run_id, request_id)
    evidence["signing"] = planned_level(signings, timestamper)
    data = evidence_bytes(evidence)
    sha = evidence_sha256(data)
    check_cancelled(progress)
    progress.report(0.2, "Laying out the pages")
    pdf = render(evidence, sha)
    check_cancelled(progress)
    for i, signing in enumerate(signings):
        progress.report(0.6 + 0.35 * i / len(signings), f"Signing as {signing.signer.name} ({signing.meaning})")
        pdf = sign_bytes(pdf, signing, timestamper, _attach(data, slices_csv(evidence)) if i == 0 else None)
        check_cancelled(progress)
    path = write_atomically(Path(out), pdf)
    from app.core.store.audit import acting_as

    with acting_as(signings[0].signer.user_id), project.change("packet.export", run_id, {"file": path.name, "evidence_sha256": sha,
                                                   "signers": [s.signer.user_id for s in signings],
                                                   "meanings": [s.meaning for s in signings],
                                                   "request": (evidence["approvals"] or {}).get("request_id")}):
        pass
    from app.core.governance.receipts import sign_head

    sign_head(project, signings[0].signer)
    progress.report(1.0, f"Packet written: {path.name}")
    return path


def read_packet(path: Path | str) -> bytes:
    """The bytes of an existing packet, or a clear error naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PacketError(f"Cannot read the packet {path}: {exc.strerror or exc}.",
                          "Give the path of an exported packet PDF; nothing was signed.") from exc
    if not data.startswith(b"%PDF"):
        raise PacketError(f"{path} is not a PDF.", "Give the path of an exported packet PDF; nothing was signed.")
    return data


def add_signature(path: Path | str, signing: Signing, timestamper: Any = None) -> Path:
    """Add a later signer (e.g. the approver) to an existing packet, as a new incremental revision."""
    path = Path(path)
    return write_atomically(path, sign_bytes(read_packet(path), signing, timestamper))


def sign_packet(project: Project, path: Path | str, signing: Signing, timestamper: Any = None) -> Path:
    """Add a project user's signature to a packet and record it (with the packet's evidence hash, so that a copy
    cut back to fewer signatures can be told apart later)."""
    from app.core.governance.approvals import check_signing_meaning
    from app.core.governance.identity import check_validity
    from app.core.store.audit import acting_as

    path = Path(path)
    data = read_packet(path)
    try:
        check_validity(signing.signer.cert, signing.signer.user_id)
    except LineproofError as exc:
        raise PacketError(f"{exc.what} A packet cannot be signed with it.", exc.todo) from None
    check_signing_meaning(project, signing.signer.user_id, signing.meaning)
    from app.core.packet.verify import evidence_hash_of

    sha = evidence_hash_of(data)
    signed = sign_bytes(data, signing, timestamper)
    write_atomically(path, signed)
    with acting_as(signing.signer.user_id), project.change("packet.sign", path.name, {
            "signer": signing.signer.user_id, "meaning": signing.meaning, "evidence_sha256": sha,
            "field": f"Signature{existing_signatures(signed)}"}):
        pass
    from app.core.governance.receipts import sign_head

    sign_head(project, signing.signer)
    return path


def extend_packet(path: Path | str, timestamper: Any = None) -> Path:
    """Add the validation data of the newest timestamp and a fresh archive timestamp (B-LTA), before the old
    timestamp's certificate expires; the packet is rewritten atomically."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers import PdfTimeStamper
    from pyhanko_certvalidator import ValidationContext

    from app.core.governance import trust
    from app.core.governance.revocation import pc_crls

    path = Path(path)
    data = read_packet(path)
    timestamper = timestamper if timestamper is not None else configured_timestamper()
    if timestamper is None:
        raise PacketError("Extending a packet needs a timestamp authority.",
                          "Configure the plant's TSA (lineproof trust tsa URL) or pass --tsa-url; nothing was changed.")
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    if not reader.embedded_timestamp_signatures:
        raise PacketError(f"{path.name} carries no document timestamp to extend (it is not B-LTA).",
                          "Only a packet signed with a timestamp authority can be extended; nothing was changed.")
    der = serialization.Encoding.DER
    context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(c.public_bytes(der)) for c in trust.anchors()],
                                crls=[c.public_bytes(der) for c in pc_crls()], allow_fetching=False,
                                revocation_mode="soft-fail")
    out = io.BytesIO()
    PdfTimeStamper(timestamper).update_archival_timestamp_chain(reader, context, in_place=False, output=out)
    return write_atomically(path, out.getvalue())
