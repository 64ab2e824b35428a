"""What reaches a terminal: text that came from a repository (artifact names, metadata, commit
subjects, file names, a library's error message) is shown with its control characters escaped,
never interpreted. An escape sequence in a cloned manifest cannot move the cursor, rewrite a line
already printed, retitle the window or plant a hyperlink; a bidirectional override cannot make a
name read backwards.

``--json`` output needs nothing more: ``json.dumps`` writes every such character as ``\\uXXXX``.
"""

from __future__ import annotations

from rich.console import Console, HighlighterType, JustifyMethod, OverflowMethod
from rich.style import Style
from rich.text import Text

# C0, DEL, C1, and the Unicode marks and overrides that reorder text (Trojan Source).
_HIDDEN = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _HIDDEN}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
# What a console lets through: the newlines and tabs of mreg's own layout.
_LAYOUT = {c: e for c, e in _ESCAPES.items() if chr(c) not in "\n\t"}


def printable(text: str) -> str:
    """``text`` with every control character and bidirectional mark written as a visible
    escape (``\\x1b``, ``\\u202e``), newlines and tabs included: one value, one line."""
    return text.translate(_ESCAPES)


class SafeConsole(Console):
    """A rich console that escapes control characters (but newlines and tabs) in every string
    it renders, before markup: whatever a caller forgets, no data drives the terminal."""

    def render_str(
        self,
        text: str,
        *,
        style: str | Style = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        emoji: bool | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
        highlighter: HighlighterType | None = None,
    ) -> Text:
        return super().render_str(
            text.translate(_LAYOUT),
            style=style,
            justify=justify,
            overflow=overflow,
            emoji=emoji,
            markup=markup,
            highlight=highlight,
            highlighter=highlighter,
        )
