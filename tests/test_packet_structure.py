# ruff: noqa: F811  (the signed fixture is imported from test_packet)
"""Changes to a signed packet that pyHanko's difference analysis lets through or never looks at: a second widget on
a signature field, rewritten document information or XMP, widgets and annotations added after signing, orphan
objects, bytes after the last revision, and a copy cut back to an earlier revision. Each one is FAILED (or named,
for the cut-back copy checked against the project), while the untouched packet stays PASSED."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from app.cli import main
from app.core.packet import FAILED, PASSED, Signing, verify_packet
from tests.test_packet import PW, _copy, _incremental, signed  # noqa: F401 (fixture)

N = generic.NameObject


def _floats(*values: float) -> generic.ArrayObject:
    return generic.ArrayObject([generic.FloatObject(v) for v in values])


def _cover(writer):
    ref = writer.root["/Pages"]["/Kids"][0]
    return ref, ref.get_object()


def _add_to_page(writer, page, annot_ref) -> None:
    annots = page["/Annots"] if "/Annots" in page else generic.ArrayObject()
    annots.append(annot_ref)
    page[N("/Annots")] = annots
    writer.update_container(page)


def _second_widget(writer) -> None:
    """Signature1's appearance again, as a second widget of the same field, over the verdict on the cover."""
    form = writer.root["/AcroForm"]
    field_ref = next(f for f in form["/Fields"] if str(f.get_object().get("/T")) == "Signature1")
    field = field_ref.get_object()
    page_ref, page = _cover(writer)
    widget = writer.add_object(generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/Parent"): field_ref, N("/P"): page_ref,
        N("/Rect"): _floats(45, 600, 565, 780), N("/F"): generic.NumberObject(4),
        N("/AP"): field["/AP"]}))
    _add_to_page(writer, page, widget)


def _stray_widget(writer) -> None:
    """A widget annotation belonging to no field (an appearance only), on the cover."""
    page_ref, page = _cover(writer)
    widget = writer.add_object(generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/P"): page_ref, N("/Rect"): _floats(45, 600, 565, 780)}))
    _add_to_page(writer, page, widget)


def _free_text(writer) -> None:
    page_ref, page = _cover(writer)
    note = writer.add_object(generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/FreeText"), N("/P"): page_ref, N("/Rect"): _floats(60, 700, 500, 740),
        N("/Contents"): generic.TextStringObject("Verdict: PASS"), N("/DA"): generic.TextStringObject("/Helv 24 Tf")}))
    _add_to_page(writer, page, note)


def _same_widget_on_page_two(writer) -> None:
    """Signature1's own widget listed again on page 2: one box, shown twice."""
    form = writer.root["/AcroForm"]
    field_ref = next(f for f in form["/Fields"] if str(f.get_object().get("/T")) == "Signature1")
    page = writer.root["/Pages"]["/Kids"][1].get_object()
    _add_to_page(writer, page, field_ref)


def _info(key: str, value: str):
    def change(writer) -> None:
        info = writer.trailer["/Info"]
        info[N(key)] = generic.TextStringObject(value)
        writer.update_container(info)
    return change


def _new_info(path: Path) -> None:
    """A hand-written update whose trailer points /Info at a new dictionary that restates another verdict (pyHanko's
    writer always keeps the old one, so the bytes are written here as a forger would)."""
    import re

    data = path.read_bytes()
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    size, root = int(reader.trailer_view["/Size"]), reader.root_ref.idnum
    prev = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    body = (f"{size} 0 obj\n<< /Title (Validation and approval packet: m:cand) /Subject (m:other -> production at "
            f"P1: PASS) >>\nendobj\n").encode()
    at = len(data) + 1
    xref = (f"xref\n{size} 1\n{at:010d} 00000 n \ntrailer\n<< /Size {size + 1} /Root {root} 0 R /Info {size} 0 R "
            f"/Prev {prev} >>\nstartxref\n{at + len(body)}\n%%EOF\n").encode()
    path.write_bytes(data + b"\n" + body + xref)


def _xmp(writer) -> None:
    xml = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
           b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
           b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description>Verdict PASS, all slices</dc:description>'
           b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
    stream = writer.add_object(generic.StreamObject({N("/Type"): N("/Metadata"), N("/Subtype"): N("/XML")},
                                                    stream_data=xml))
    writer.root[N("/Metadata")] = stream
    writer.update_root()


def _orphan(writer) -> None:
    writer.add_object(generic.StreamObject({}, stream_data=b"BT /F1 24 Tf 60 700 Td (Verdict PASS) Tj ET"))
    info = writer.trailer["/Info"]  # something visible must change for the revision to be written at all
    writer.update_container(info)


def _update(change):
    return lambda path: _incremental(path, change)


ATTACKS = {
    "second widget on Signature1": (_update(_second_widget), "signature field Signature1 has 2 widgets"),
    "widget of no field": (_update(_stray_widget), "a Widget annotation was added to page 1 after the first signature"),
    "free text annotation": (_update(_free_text), "a FreeText annotation was added to page 1"),
    "one widget listed on two pages": (_update(_same_widget_on_page_two), "is listed 2 times across the pages"),
    "/Info Subject rewritten": (_update(_info("/Subject", "m:cand -> production at P1: PASS (re-validated)")),
                                "document information was rewritten after the first signature (Subject"),
    "/Info Keywords rewritten": (_update(_info("/Keywords", "lineproof-evidence-sha256:" + "0" * 64)),
                                 "document information was rewritten"),
    "/Info custom key added": (_update(_info("/Verdict", "PASS")), "Verdict '(none)' -> 'PASS'"),
    "new /Info dictionary": (_new_info, "document information was rewritten"),
    "XMP metadata added": (_update(_xmp), "XMP metadata was added or changed after the first signature"),
    "orphan object": (_update(_orphan), "object(s) nothing refers to"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_changes_pyhanko_does_not_judge_make_the_packet_failed(signed, tmp_path: Path, attack: str, capsys) -> None:
    apply, named = ATTACKS[attack]
    path = _copy(signed, tmp_path)
    apply(path)
    trust = [signed["certs"]["plant-ca"]]
    result = verify_packet(path, trust)
    assert all(s.integrity == "intact" for s in result.signatures)  # every signed byte is still there
    assert result.indication == FAILED, (result.structure, [s.detail for s in result.signatures])
    assert any(named in p for p in result.structure + [s.detail for s in result.signatures]), result.structure
    assert main(["verify", str(path), "--trust", str(trust[0])]) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("tail", [b"\n% Verdict: PASS\n", b"1 0 obj <</Subject (PASS)>> endobj\n" * 3])
def test_bytes_after_the_last_revision_fail(signed, tmp_path: Path, tail: bytes) -> None:
    path = _copy(signed, tmp_path)
    path.write_bytes(path.read_bytes() + tail)
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert result.indication == FAILED
    assert any("follow the end of the file's last revision" in p for p in result.structure)


def test_trailing_whitespace_and_the_untouched_packet_pass(signed, tmp_path: Path) -> None:
    trust = [signed["certs"]["plant-ca"]]
    untouched = verify_packet(signed["packet"], trust)
    assert untouched.indication == PASSED and untouched.structure == [] and untouched.notes == []
    path = _copy(signed, tmp_path)
    path.write_bytes(path.read_bytes() + b"\r\n\n")  # what a mail gateway adds
    assert verify_packet(path, trust).indication == PASSED


def test_a_third_lineproof_signature_is_the_one_widget_allowed_after_signing(signed, tmp_path: Path) -> None:
    from app.core.governance.identity import unlock_identity
    from app.core.packet import add_signature

    path = _copy(signed, tmp_path)
    add_signature(path, Signing(unlock_identity("anna", PW), "approved by"))
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert result.indication == PASSED and result.structure == []


def _revision_end(data: bytes, index: int) -> int:
    sig = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures[index]
    return sig.byte_range[2] + sig.byte_range[3]


def test_a_copy_cut_back_to_an_earlier_revision_names_the_missing_signatures(signed, tmp_path: Path,
                                                                            capsys) -> None:
    data = signed["packet"].read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[:_revision_end(data, 0)])  # only the validation lead's signature is left
    trust = [signed["certs"]["plant-ca"]]
    alone = verify_packet(path, trust)
    assert [s.field for s in alone.signatures] == ["Signature1"] and alone.indication == PASSED  # a whole PDF...
    result = verify_packet(path, trust, project=signed["project"])  # ...but the project recorded more
    assert result.indication == FAILED
    assert "carries 1 of the 2 signatures the project recorded for this evidence: missing Signature2 by anna " \
           "('approved by')" in result.evidence
    full = verify_packet(signed["packet"], trust, project=signed["project"])
    assert full.indication == PASSED, full.evidence


def test_a_later_signature_recorded_by_lineproof_sign_is_expected_too(signed, tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    project = signed["project"]
    path = tmp_path / "three.pdf"
    path.write_bytes(signed["other"].read_bytes())
    monkeypatch.setenv("LINEPROOF_PASSPHRASE", PW)
    project.close()  # `lineproof sign` opens the project for writing
    from app.core.store.project import Project

    try:
        assert main(["sign", str(path), "--project", str(project.folder), "--as", "anna:approved by"]) == 0
        capsys.readouterr()
        reopened = Project.open(project.folder)
        trust = [signed["certs"]["plant-ca"]]
        assert verify_packet(path, trust, project=reopened).indication == PASSED
        assert verify_packet(signed["other"], trust, project=reopened).indication == FAILED  # the 2-signature copy
        assert "missing Signature3 by anna ('approved by')" in verify_packet(signed["other"], trust,
                                                                            project=reopened).evidence
        reopened.close()
    finally:
        signed["project"] = Project.open(project.folder)


def test_a_signature_with_an_unknown_meaning_fails(signed, tmp_path: Path) -> None:
    from app.core.governance.identity import unlock_identity
    from tests.test_packet import _sign_elsewhere

    path = _copy(signed, tmp_path)
    _sign_elsewhere(path, Signing(unlock_identity("anna", PW), "witnessed by"), (395, 40, 565, 132))  # slot 3
    result = verify_packet(path, [signed["certs"]["plant-ca"]])
    assert result.indication == FAILED and result.signatures[2].indication == FAILED
    assert "meaning 'witnessed by' is not one of" in result.signatures[2].detail


def test_with_the_project_a_signer_who_is_not_its_user_fails(signed, tmp_path: Path) -> None:
    from app.core.governance.identity import create_identity, unlock_identity
    from app.core.packet import add_signature

    create_identity("zed", "Zed Outsider", PW, ca_id="plant-ca", ca_passphrase=PW)
    path = _copy(signed, tmp_path)
    add_signature(path, Signing(unlock_identity("zed", PW), "approved by"))
    trust = [signed["certs"]["plant-ca"]]
    assert verify_packet(path, trust).indication == PASSED  # a valid signature of the site...
    result = verify_packet(path, trust, project=signed["project"])  # ...by someone the project never registered
    assert result.indication == FAILED and result.signatures[2].role == "not a registered user of this project"
