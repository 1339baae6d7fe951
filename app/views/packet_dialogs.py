"""Export packet and Verify packet dialogs. Thin over app.core.packet; long work runs in the shared worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import LineproofError
from app.core.governance import approvals as gov
from app.core.governance.identity import identity_path
from app.core.models.validation.store import list_runs
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.signing import ask_passphrase_dialog
from app.views.workers import Task, start_task

MEANINGS = ("validated by", "reviewed by", "approved by", "prepared by")
INDICATION_COLOURS = {"PASSED": ("#375623", "#e2efda"), "FAILED": ("#9c0006", "#f8cbad"),
                      "INDETERMINATE": ("#7f6000", "#fff2cc")}
VERDICT_COLOURS = {"PASS": "#375623", "FAIL": "#9c0006", "INCONCLUSIVE": "#7f6000"}


def preview(project: Project, run_id: str, request_id: str | None) -> tuple[int, int]:
    """(pages, bytes) of the packet as it would be exported, before any signature."""
    # The packet modules pull in reportlab and pyHanko (0.5 s of imports): loaded by the worker, not the dialog.
    from app.core.packet import gather
    from app.core.packet.evidence import evidence_bytes, evidence_sha256
    from app.core.packet.render import render
    from app.core.packet.sign import page_count

    evidence = gather(project, run_id, request_id)
    pdf = render(evidence, evidence_sha256(evidence_bytes(evidence)))
    return page_count(pdf), len(pdf)


class ExportPacketDialog(QDialog):
    """Choose the validation run, the approval request and the signers; preview; sign and export."""

    exported = Signal(object)

    def __init__(self, project: Project, run_id: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export signed packet")
        self.setMinimumWidth(760)  # a run's id, verdict and both versions show whole (1366x768 has room)
        self.project = project
        self.task: Task | None = None
        self.ask_passphrase: Callable[[str], str | None] = lambda user: ask_passphrase_dialog(self, user)
        self.run = QComboBox(toolTip="The validation run the packet documents")
        with project.reading() as con:
            runs = list_runs(con)
        for r in runs.iter_rows(named=True):
            self.run.addItem(f"{r['run_id']}  {r['verdict']}  {r['candidate_version']} vs "
                             f"{r['champion_version'] or '-'}", r["run_id"])
        if run_id:
            self.run.setCurrentIndex(max(0, self.run.findData(run_id)))
        self.request = QComboBox(toolTip="The approval request whose signed decisions are printed")
        self.out = QLineEdit(toolTip="Where the PDF is written (only ever complete: temp file, then rename)")
        browse = QPushButton("Browse…")
        self.signers = QListWidget(toolTip="Signers, in order; each is asked for the passphrase")
        self.signer_user = QComboBox(toolTip="Users of this project whose identity is in your profile")
        self.signer_meaning = QComboBox(toolTip="What the signature means")
        self.signer_meaning.addItems(MEANINGS)
        add = QPushButton("Add signer")
        remove = QPushButton("Remove")
        users = gov.list_users(project)
        for r in users.iter_rows(named=True):
            if identity_path(r["user_id"]).exists():
                self.signer_user.addItem(f"{r['name']} ({r['user_id']})", r["user_id"])
        self.preview_label = QLabel("", wordWrap=True)
        self.preview_button = QPushButton("Preview page count")
        self.progress = QProgressBar(maximum=1000, textVisible=True)
        self.progress.hide()
        self.status = QLabel(wordWrap=True, objectName="packetStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Sign and export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)

        form = QFormLayout()
        form.addRow("Validation run", self.run)
        form.addRow("Approval request", self.request)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        form.addRow("Save as", out_row)
        signer_row = QHBoxLayout()
        signer_row.addWidget(self.signer_user, 1)
        signer_row.addWidget(self.signer_meaning)
        signer_row.addWidget(add)
        signer_row.addWidget(remove)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Signers (in order; at most three boxes on the cover)"))
        layout.addWidget(self.signers)
        layout.addLayout(signer_row)
        prow = QHBoxLayout()
        prow.addWidget(self.preview_button)
        prow.addWidget(self.preview_label, 1)
        layout.addLayout(prow)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self.run.currentIndexChanged.connect(lambda _i: self._run_changed())
        browse.clicked.connect(self._browse)
        add.clicked.connect(self.add_signer)
        remove.clicked.connect(lambda: self.signers.takeItem(self.signers.currentRow()))
        self.preview_button.clicked.connect(self.start_preview)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self._close_or_cancel)
        self._run_changed()
        if self.run.count() == 0:
            self.status.setText("No validation run yet: run one on the Validation screen first.")
            self.export_button.setEnabled(False)
            self.preview_button.setEnabled(False)
        if self.signer_user.count() == 0:
            self.status.setText("No user of this project has a signing identity in your profile. Create one: "
                                "lineproof user create PROJECT --id ID --name NAME --role validation_lead")
            self.export_button.setEnabled(False)

    def _run_changed(self) -> None:
        run_id = self.run.currentData()
        self.request.clear()
        self.request.addItem("(the newest request citing the run, if any)", None)
        if run_id:
            requests = gov.list_requests(self.project)
            for r in requests.filter(requests["validation_run_id"] == run_id).iter_rows(named=True):
                self.request.addItem(f"{r['request_id']} ({r['state']})", r["request_id"])
            self.out.setText(str(self.project.folder / "packets" / f"{run_id}.pdf"))
        self.preview_label.setText("")

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save packet as", self.out.text(), "PDF (*.pdf)")
        if path:
            self.out.setText(path if path.lower().endswith(".pdf") else path + ".pdf")

    def add_signer(self, user_id: str | None = None, meaning: str | None = None) -> None:
        """Append a signer (the chosen user and meaning, or the given ones)."""
        user_id = user_id or self.signer_user.currentData()
        meaning = meaning or self.signer_meaning.currentText()
        if user_id:
            name = self.signer_user.itemText(max(0, self.signer_user.findData(user_id)))
            item_text = f"{len(self.chosen_signers()) + 1}. {meaning.capitalize()} {name or user_id}"
            self.signers.addItem(item_text)
            self.signers.item(self.signers.count() - 1).setData(Qt.ItemDataRole.UserRole, (user_id, meaning))

    def chosen_signers(self) -> list[tuple[str, str]]:
        """(user id, meaning) in signing order."""
        return [self.signers.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.signers.count())]

    def _busy(self, task: Task, what: str) -> None:
        self.task = task
        self.export_button.setEnabled(False)
        self.preview_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.progress.show()
        self.progress.setValue(0)
        self.progress.setFormat(what)
        task.progress.connect(lambda f, m: (self.progress.setValue(int(f * 1000)), self.progress.setFormat(m)))
        task.error.connect(lambda exc: show_error(self, exc, "Packet"))
        task.ended.connect(self._idle)

    def _idle(self) -> None:
        self.task = None
        self.export_button.setEnabled(True)
        self.preview_button.setEnabled(True)
        self.cancel_button.setText("Close")
        self.progress.hide()

    def start_preview(self) -> Task | None:
        """Lay the packet out (unsigned) in the worker and report its page count."""
        if self.task is not None or not self.run.currentData():
            return None
        project, run_id, request_id = self.project, self.run.currentData(), self.request.currentData()
        task = start_task("Packet preview", lambda _p: preview(project, run_id, request_id), self)
        self._busy(task, "Laying out the pages…")
        task.done.connect(lambda r: self.preview_label.setText(f"{r[0]} pages, {r[1] / 1024:.0f} KiB before "
                                                               "signatures"))
        return task

    def start_export(self) -> Task | None:
        """Ask each signer's passphrase, then build, sign and write the packet in the worker."""
        if self.task is not None:
            return None
        chosen = self.chosen_signers()
        if not chosen:
            show_error(self, LineproofError("A packet needs at least one signer.", "Add a signer first."), "Packet")
            return None
        passphrases = []
        for user_id, _ in chosen:
            passphrase = self.ask_passphrase(user_id)
            if passphrase is None:
                return None
            passphrases.append(passphrase)
        project, run_id, request_id = self.project, self.run.currentData(), self.request.currentData()
        out = Path(self.out.text())

        def work(progress: Any) -> Path:
            from app.core.packet import Signing, build_packet

            signings = [Signing(gov.unlock(project, user_id, pw), meaning, project.manifest.site)
                        for (user_id, meaning), pw in zip(chosen, passphrases, strict=True)]
            return build_packet(project, run_id, out, signings, request_id, progress=progress)

        task = start_task("Export packet", work, self)
        self._busy(task, "Exporting…")
        task.done.connect(self._exported)
        return task

    def _exported(self, path: Path) -> None:
        self.status.setText(f"Packet written: {path}")
        self.exported.emit(path)

    def _close_or_cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        else:
            self.reject()


class VerifyPacketDialog(QDialog):
    """Drop or choose a packet; see integrity, changes after signing and trust per signature."""

    def __init__(self, project: Project | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Verify packet")
        self.setMinimumSize(640, 420)
        self.setAcceptDrops(True)
        self.project = project
        self.task: Task | None = None
        self.trust: list[str] = []
        self.path = QLineEdit(placeholderText="Drop a packet PDF here, or Browse…")
        browse = QPushButton("Browse…")
        self.trust_label = QLabel(wordWrap=True)
        add_trust = QPushButton("Trust a certificate…", toolTip="A signer's or a site CA's certificate (PEM/DER)")
        self.trust_project = QCheckBox("Trust this project's registered users", checked=project is not None)
        self.trust_project.setEnabled(project is not None)
        self.verify_button = QPushButton("Verify", toolTip="Check every signature and the evidence (Enter)")
        self.verify_button.setDefault(True)
        self.result = QLabel(wordWrap=True, objectName="verifyResult")
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.result.setText("<span style='color:#666'>The report appears here: for each signature, whether the "
                            "document is intact, what changed after it was signed, and whether the signer is "
                            "trusted; then whether the evidence inside matches what was signed.<br><br>A packet "
                            "passes only when every signature does. Trust this project's users, or a signer's or "
                            "site CA's certificate, before verifying.</span>")
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        trow = QHBoxLayout()
        trow.addWidget(self.trust_project)
        trow.addWidget(add_trust)
        trow.addStretch(1)
        trow.addWidget(self.verify_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(trow)
        layout.addWidget(self.trust_label)
        layout.addWidget(self.result, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        browse.clicked.connect(self._browse)
        add_trust.clicked.connect(self._add_trust)
        self.verify_button.clicked.connect(self.start)
        self.trust_project.toggled.connect(lambda _on: self._show_trust())
        self._show_trust()

    def dragEnterEvent(self, event) -> None:  # Qt API name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # Qt API name
        urls = event.mimeData().urls()
        if urls:
            self.path.setText(urls[0].toLocalFile())
            self.start()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Packet to verify", "", "PDF (*.pdf)")
        if path:
            self.path.setText(path)
            self.start()

    def _add_trust(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Trusted certificate", "", "Certificates (*.pem *.crt *.cer *.der)")
        if path:
            self.add_trust(path)

    def add_trust(self, path: str) -> None:
        """Trust a certificate file for the next verification."""
        self.trust.append(path)
        self._show_trust()

    def _show_trust(self) -> None:
        who = [Path(p).name for p in self.trust]
        if self.project is not None and self.trust_project.isChecked():
            who.insert(0, "this project's registered users")
        self.trust_label.setText("Trusted: " + (", ".join(who) if who else "nobody (signatures will be "
                                                                           "INDETERMINATE at best)"))

    def start(self) -> Task | None:
        """Verify the chosen file in the worker."""
        if self.task is not None or not self.path.text().strip():
            return None
        path, files = self.path.text().strip(), list(self.trust)
        project = self.project if self.project is not None and self.trust_project.isChecked() else None

        def job(_progress):
            from app.core.packet.verify import project_certificates, verify_packet

            # The users' certificates come from replaying the signed record: worker work, not the GUI thread's.
            pems = project_certificates(project) if project is not None else []
            return verify_packet(path, files, pems, project=project if pems else None)

        task = start_task("Verify packet", job, self)
        self.task = task
        self.verify_button.setEnabled(False)
        task.done.connect(self.show_result)
        task.error.connect(lambda exc: self.show_error_text(exc))
        task.ended.connect(lambda: (setattr(self, "task", None), self.verify_button.setEnabled(True)))
        return task

    def show_error_text(self, exc: BaseException) -> None:
        """Show why the file could not be checked at all."""
        self.result.setText(f"<b>Cannot verify.</b><br>{_html(str(exc))}")
        self.result.setStyleSheet("")

    def show_result(self, result) -> None:
        """The overall indication and three lines per signature."""
        fg, bg = INDICATION_COLOURS[result.indication]
        lines = []
        content = result.content
        if content.get("verdict"):
            # What the packet certifies comes first: valid signatures on a FAIL verdict certify a FAIL.
            verdict_fg = VERDICT_COLOURS.get(content["verdict"], "#333333")
            lines.append(f"<span style='font-size:13pt'>Verdict <b style='color:{verdict_fg}'>"
                         f"{_html(content['verdict'])}</b></span> &nbsp; validation run {_html(content['run'])}: "
                         f"{_html(content['candidate'])} against {_html(content['champion'])}, release "
                         f"{_html(content['release'])}")
            if bg != INDICATION_COLOURS["FAILED"][1] and content["verdict"] != "PASS":
                bg = "#f2f2f2"  # never a green banner over a verdict that is not PASS
        lines.append(f"<span style='font-size:13pt'>Signatures and evidence: <b>{result.indication}</b></span> "
                     f"&nbsp; {_html(result.path)}" + (
                         f"<br>The signatures are valid; the verdict they certify is {_html(content['verdict'])}."
                         if content.get("verdict") not in (None, "PASS") and result.indication == "PASSED" else ""))
        if result.level:
            lines.append(f"Level: PAdES {result.level}, verifiable without extension until "
                         f"{result.valid_until or 'unknown'}" + ("" if result.level == "B-LTA" else
                                                                 " (a timestamp authority makes packets B-LTA)"))
        if not result.signatures:
            lines.append("No signature: this is not a signed packet.")
        for s in result.signatures:
            lines.append(f"<br><b>{s.field}: {s.indication}</b> &nbsp; {_html(s.meaning)} {_html(s.signer)} at "
                         f"{s.signed_at}<br>&nbsp;&nbsp;integrity: {_html(s.integrity)}<br>&nbsp;&nbsp;"
                         f"modifications after signing: {_html(s.modifications)}<br>&nbsp;&nbsp;identity: "
                         f"{_html(s.trust)}<br>&nbsp;&nbsp;role: {_html(s.role)}"
                         f"<br>&nbsp;&nbsp;signed: {_html(s.signed_time)}<br>&nbsp;&nbsp;revocation: "
                         f"{_html(s.revocation)}"
                         + (f"<br>&nbsp;&nbsp;{_html(s.timestamp)}" if s.timestamp else "")
                         + (f"<br>&nbsp;&nbsp;<b>{_html(s.detail)}</b>" if s.detail else ""))
        lines.append(f"<br>Evidence: {'ok' if result.evidence_ok else 'FAILED'}: {_html(result.evidence)}")
        lines += [f"<b>FAILED: {_html(p)}</b>" for p in result.structure]
        lines += [f"Note: {_html(n)}" for n in result.notes]
        self.result.setText("<br>".join(lines))
        self.result.setStyleSheet(f"QLabel#verifyResult {{ color: {fg}; background: {bg}; padding: 8px; }}")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
