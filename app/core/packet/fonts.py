"""Embedded TrueType fonts for the packet: DejaVu for Latin, Greek and Cyrillic (ö, ł), a CJK fallback (日本).

reportlab has no per-glyph fallback, so text is split into runs: characters DejaVu lacks are set in the
fallback font. Fonts are looked up in resources/fonts first (a bundle ships them), then the system.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from app.core.errors import LineproofError

ROOT = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[3]))  # a PyInstaller bundle, or the checkout
SEARCH = [ROOT / "resources" / "fonts", Path("/usr/share/fonts/truetype/dejavu"),
          Path("/usr/share/fonts/truetype/droid"), Path("/usr/share/fonts/truetype/wqy"),
          Path("/usr/share/fonts/dejavu"), Path("C:/Windows/Fonts")]
FACES = {"LP": "DejaVuSans.ttf", "LP-Bold": "DejaVuSans-Bold.ttf", "LP-Mono": "DejaVuSansMono.ttf"}
FALLBACKS = ("DroidSansFallbackFull.ttf", "wqy-microhei.ttc")
REGULAR, BOLD, MONO, CJK = "LP", "LP-Bold", "LP-Mono", "LP-CJK"


def _find(name: str) -> Path | None:
    return next((d / name for d in SEARCH if (d / name).is_file()), None)


@cache
def register() -> frozenset[int]:
    """Register the fonts once; returns the code points DejaVu covers."""
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for name, file in FACES.items():
        path = _find(file)
        if path is None:
            raise LineproofError(f"The packet font {file} is missing.",
                                 "Install it: sudo apt-get install fonts-dejavu-core (or copy it to resources/fonts).")
        pdfmetrics.registerFont(TTFont(name, str(path)))
    addMapping(REGULAR, 0, 0, REGULAR)
    addMapping(REGULAR, 1, 0, BOLD)
    addMapping(REGULAR, 0, 1, REGULAR)
    addMapping(REGULAR, 1, 1, BOLD)
    for file in FALLBACKS:
        path = _find(file)
        if path is not None and path.suffix == ".ttf":
            pdfmetrics.registerFont(TTFont(CJK, str(path)))
            break
    face = pdfmetrics.getFont(REGULAR).face
    return frozenset(face.charToGlyph)


def has_fallback() -> bool:
    """Whether a CJK fallback font was found."""
    from reportlab.pdfbase import pdfmetrics

    register()
    return CJK in pdfmetrics.getRegisteredFontNames()


def markup(text: object) -> str:
    """Escaped paragraph markup; runs of characters DejaVu lacks are set in the fallback font."""
    covered = register()
    s = "" if text is None else str(text)
    if all(ord(ch) in covered or ch in "\n\t" for ch in s) or not has_fallback():
        return escape(s)
    out, run, in_fallback = [], [], False
    for ch in s:  # characters of one label, not rows of data
        need = ord(ch) not in covered and not ch.isspace()
        if need != in_fallback and run:
            chunk = escape("".join(run))
            out.append(f'<font name="{CJK}">{chunk}</font>' if in_fallback else chunk)
            run = []
        in_fallback = need
        run.append(ch)
    if run:
        chunk = escape("".join(run))
        out.append(f'<font name="{CJK}">{chunk}</font>' if in_fallback else chunk)
    return "".join(out)
