"""What pyHanko's difference analysis does not judge, checked revision by revision: the document information
and XMP metadata (they restate the verdict in every viewer's Properties), annotations added or removed after the
first signature, signature fields with more than one widget, objects no one refers to, and bytes after the end of
the file's last revision.

pyHanko compares catalogs; the /Info dictionary hangs off the trailer and XMP updates are whitelisted, so a
rewritten "Subject: ... PASS" verifies as "no changes" there. Lineproof never writes either after signing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Document information keys a signing revision rewrites (pyHanko stamps its name and the time).
_INFO_ALLOWED = {"/ModDate", "/Producer"}
_MAX_PAGE_TREE_DEPTH = 32


@dataclass
class StructureReport:
    """Failures make the packet FAILED; notes are reported but change nothing."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _pages(root: Any) -> list[Any]:
    """The page dictionaries in order (the page tree walked with a depth limit: a cyclic tree is not a crash)."""
    out: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth > _MAX_PAGE_TREE_DEPTH:
            return
        if "/Kids" in node:
            for kid in node["/Kids"]:
                walk(kid.get_object() if hasattr(kid, "get_object") else kid, depth + 1)
        else:
            out.append(node)

    walk(root["/Pages"], 0)
    return out


def _ref_id(obj: Any) -> int | None:
    """The object number of a reference, or of a resolved object (pyHanko remembers where it came from)."""
    idnum = getattr(obj, "idnum", None)
    if idnum is None:
        idnum = getattr(getattr(obj, "container_ref", None), "idnum", None)
    return idnum


def _annotations(root: Any) -> dict[int, list[tuple[int | None, str]]]:
    """Per page (0-based): each annotation's object number and subtype."""
    out = {}
    for index, page in enumerate(_pages(root)):
        annots = page.raw_get("/Annots") if "/Annots" in page else None
        items = annots.get_object() if annots is not None and hasattr(annots, "get_object") else annots
        entries = []
        for i in range(len(items or [])):
            raw = items.raw_get(i)
            annot = raw.get_object() if hasattr(raw, "get_object") else raw
            entries.append((_ref_id(raw), str(annot.get("/Subtype", "?"))))
        out[index] = entries
    return out


def _info(reader: Any, revision: int | None) -> dict[str, str]:
    """The document information as of a revision (None: the final one). A trailer view dereferences with the
    latest objects, so the reference is resolved in that revision explicitly."""
    trailer = reader.get_historical_resolver(revision).trailer_view if revision is not None else reader.trailer_view
    raw = trailer.raw_get("/Info") if "/Info" in trailer else None
    if raw is None:
        return {}
    ref = getattr(raw, "reference", None)
    if ref is None:
        info = raw
    elif revision is None:
        info = reader.get_object(ref)
    else:
        info = reader.get_historical_resolver(revision)(ref)
    return {str(k): str(v) for k, v in info.items()} if hasattr(info, "items") else {"(info)": str(info)}


def _xmp(root: Any) -> bytes | None:
    if "/Metadata" not in root:
        return None
    try:
        return root["/Metadata"].data
    except Exception:  # an unreadable stream is a change in itself
        return b"<unreadable metadata stream>"


def _metadata(reader: Any, signed_rev: int, report: StructureReport) -> None:
    signed, final = reader.get_historical_resolver(signed_rev), reader
    before, after = _info(reader, signed_rev), _info(reader, None)
    changed = sorted(k for k in set(before) | set(after)
                     if k not in _INFO_ALLOWED and before.get(k) != after.get(k))
    producer = after.get("/Producer", "")
    if before.get("/Producer") != producer and "pyHanko" not in producer:
        changed.append("/Producer")
    if changed:
        shown = "; ".join(f"{k[1:]} {before.get(k, '(none)')!r} -> {after.get(k, '(removed)')!r}"[:160]
                          for k in changed)
        report.failures.append(f"the document information was rewritten after the first signature ({shown}); "
                               "viewers show it as the packet's subject and title")
    if _xmp(signed.root) != _xmp(final.root):
        report.failures.append("XMP metadata was added or changed after the first signature (viewers show it as "
                               "the packet's description)")


def _annotation_changes(reader: Any, signed_rev: int, later_widgets: set[int], report: StructureReport) -> None:
    from collections import Counter

    before = _annotations(reader.get_historical_resolver(signed_rev).root)
    after = _annotations(reader.root)
    listed_before = Counter(ref for entries in before.values() for ref, _ in entries)
    listed_after = Counter(ref for entries in after.values() for ref, _ in entries)
    for ref, times in listed_after.items():
        if ref is not None and times > max(listed_before[ref], 1):
            report.failures.append(f"annotation object {ref} is listed {times} times across the pages: one box "
                                   "would show in several places")
    for page, entries in after.items():
        had = {ref for ref, _ in before.get(page, [])}
        for ref, subtype in entries:
            if ref is None or (ref not in had and ref not in later_widgets):
                report.failures.append(f"a {subtype[1:] or 'direct'} annotation was added to page {page + 1} "
                                       "after the first signature (only a later Lineproof signature's box may be)")
        gone = had - {ref for ref, _ in entries}
        if gone:
            report.failures.append(f"{len(gone)} annotation(s) were removed from page {page + 1} after the first "
                                   "signature")


def _widget_count(reader: Any, sig: Any) -> int:
    """Widgets of one signature field: itself when merged, its /Kids, and any page annotation naming it parent."""
    field_obj = sig.sig_field
    widgets = set()
    if str(field_obj.get("/Subtype", "")) == "/Widget":
        widgets.add(("self",))
    for i, kid in enumerate(field_obj["/Kids"] if "/Kids" in field_obj else []):
        widgets.add(("kid", _ref_id(kid) or i))
    field_id = _ref_id(field_obj)
    for page in _pages(reader.root):
        annots = page["/Annots"] if "/Annots" in page else []
        for i in range(len(annots)):
            raw = annots.raw_get(i)
            annot = raw.get_object() if hasattr(raw, "get_object") else raw
            parent = annot.raw_get("/Parent") if "/Parent" in annot else None
            if parent is not None and field_id is not None and _ref_id(parent) == field_id:
                widgets.add(("kid", _ref_id(raw)))
    return len(widgets)


def _reachable(reader: Any) -> set[int]:
    """Object numbers reachable from the final trailer (the document as any viewer sees it)."""
    from pyhanko.pdf_utils import generic

    seen: set[int] = set()
    trailer = reader.trailer_view
    stack = [trailer.raw_get(k) for k in trailer]
    while stack:
        obj = stack.pop()
        if isinstance(obj, generic.IndirectObject):
            if obj.idnum in seen:
                continue
            seen.add(obj.idnum)
            obj = obj.get_object()
        if isinstance(obj, generic.DictionaryObject):
            stack.extend(obj.raw_get(k) for k in obj)
        elif isinstance(obj, generic.ArrayObject):
            stack.extend(obj.raw_get(i) for i in range(len(obj)))
    return seen


def _orphans(reader: Any, signed_rev: int, report: StructureReport) -> None:
    reachable = _reachable(reader)
    for rev in range(signed_rev + 1, reader.xrefs.total_revisions):
        written = {ref.idnum for ref in reader.xrefs.explicit_refs_in_revision(rev)}
        orphans = sorted(written - reachable)
        if orphans:
            report.failures.append(f"revision {rev + 1} (after the first signature) holds {len(orphans)} object(s) "
                                   f"nothing refers to (e.g. object {orphans[0]}): data hidden in the file")


def _tail(data: bytes, sigs: list[Any], report: StructureReport) -> None:
    end = data.rfind(b"%%EOF")
    extra = data[end + 5:] if end >= 0 else b""
    if extra.strip():
        report.failures.append(f"{len(extra):,} byte(s) follow the end of the file's last revision (%%EOF); "
                               "a lenient reader may show them")
    last = max((s.byte_range[2] + s.byte_range[3] for s in sigs), default=0)
    unsigned = len(data.rstrip()) - last
    if unsigned > 0:
        report.notes.append(f"{unsigned:,} byte(s) after the last signature or timestamp (an unsigned revision, "
                            "e.g. validation data); judged by the checks above")


def _invisible(field_obj: Any) -> bool:
    rect = [float(v) for v in field_obj["/Rect"]] if "/Rect" in field_obj else [0, 0, 0, 0]
    return len(rect) == 4 and rect[0] == rect[2] and rect[1] == rect[3]


def check_structure(reader: Any, data: bytes, sigs: list[Any], stamps: list[Any] = ()) -> StructureReport:
    """Everything after the first signature that is not a later Lineproof signature (or an invisible document
    timestamp), and every signature field with other than one widget."""
    report = StructureReport()
    if not sigs:
        return report
    signed_rev = min(s.signed_revision for s in sigs)
    later_widgets = {_ref_id(s.sig_field) for s in sigs if s.signed_revision > signed_rev} - {None}
    later_widgets |= {_ref_id(s.sig_field) for s in stamps if _invisible(s.sig_field)} - {None}
    for sig in sigs:
        count = _widget_count(reader, sig)
        if count != 1:
            report.failures.append(f"signature field {sig.field_name} has {count} widgets: a Lineproof signature "
                                   "shows exactly one box, in its slot on the cover")
    _metadata(reader, signed_rev, report)
    _annotation_changes(reader, signed_rev, later_widgets, report)
    _orphans(reader, signed_rev, report)
    _tail(data, [*sigs, *stamps], report)
    return report
