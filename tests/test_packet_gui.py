"""Export and Verify packet dialogs (pytest-qt): preview, sign in order with passphrases, verify a dropped file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.packet import PASSED, verify_packet
from app.views.packet_dialogs import ExportPacketDialog, VerifyPacketDialog
from tests.test_packet import PW, signed  # noqa: F401  (the module-scoped fixture)

pytestmark = pytest.mark.gui


def test_export_dialog_previews_signs_in_order_and_writes_the_packet(qtbot, signed, tmp_path: Path):  # noqa: F811
    dialog = ExportPacketDialog(signed["project"], signed["run"].run_id)
    qtbot.addWidget(dialog)
    assert dialog.run.currentData() == signed["run"].run_id
    assert dialog.request.findData(signed["request"]) > 0
    dialog.out.setText(str(tmp_path / "from-gui.pdf"))
    with qtbot.waitSignal(dialog.start_preview().done, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: "pages" in dialog.preview_label.text(), timeout=5000)
    assert int(dialog.preview_label.text().split()[0]) >= 5

    dialog.add_signer("vera", "validated by")
    dialog.add_signer("anna", "approved by")
    dialog.ask_passphrase = lambda user: None  # the first signer cancels: nothing happens
    assert dialog.start_export() is None and not (tmp_path / "from-gui.pdf").exists()
    asked = []
    dialog.ask_passphrase = lambda user: asked.append(user) or PW
    with qtbot.waitSignal(dialog.exported, timeout=60_000) as blocker:
        assert dialog.start_export() is not None
    assert asked == ["vera", "anna"] and blocker.args[0] == tmp_path / "from-gui.pdf"
    result = verify_packet(tmp_path / "from-gui.pdf", [signed["certs"]["plant-ca"]])
    assert result.indication == PASSED and [s.meaning for s in result.signatures] == ["validated by", "approved by"]
    assert "Packet written" in dialog.status.text()


def test_verify_dialog_shows_three_lines_per_signature(qtbot, signed):  # noqa: F811
    dialog = VerifyPacketDialog(None)
    qtbot.addWidget(dialog)
    dialog.path.setText(str(signed["packet"]))
    with qtbot.waitSignal(dialog.start().done, timeout=30_000):
        pass
    text = dialog.result.text()
    assert text.count("integrity: intact") == 2 and "INDETERMINATE" in text and "untrusted" in text
    dialog.add_trust(str(signed["certs"]["plant-ca"]))
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)
    with qtbot.waitSignal(dialog.start().done, timeout=30_000):
        pass
    assert "<b>PASSED</b>" in dialog.result.text() and "modifications after signing: none" in dialog.result.text()
    not_pdf = Path(signed["root"]) / "not.pdf"
    not_pdf.write_text("hello")
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)
    dialog.path.setText(str(not_pdf))
    with qtbot.waitSignal(dialog.start().error, timeout=30_000):
        pass
    assert "is not a PDF" in dialog.result.text()


def test_verify_dialog_shows_what_the_packet_certifies_before_its_signatures(qtbot, signed):  # noqa: F811
    from app.core.packet.verify import verify_packet

    result = verify_packet(signed["packet"], [signed["certs"]["plant-ca"]])
    assert result.indication == "PASSED" and result.content["verdict"] == "PASS"
    result.content["verdict"] = "FAIL"  # as a packet that certifies a failed validation would say
    dialog = VerifyPacketDialog(None)
    qtbot.addWidget(dialog)
    dialog.show_result(result)
    text = dialog.result.text()
    assert text.index("Verdict") < text.index("Signatures and evidence") < text.index("Signature1")
    assert "The signatures are valid; the verdict they certify is FAIL." in text
    assert "#e2efda" not in dialog.result.styleSheet()  # no green banner over a FAIL
