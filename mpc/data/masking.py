"""Showing an identifier to an operator without showing it in full.

An owner's load report (``mpc-admin datasets check``) points at the rows whose id was refused or
repeated. The row number locates the row; the id itself is shown masked, so that the report can
go into a ticket or a mail without the identities of the people (or enterprises) in it:

* :func:`mask_id` keeps the first 3 and the last 2 characters of an id of at least 12 characters
  and writes ``*`` for each character between them (so a wrong length stays visible); a shorter
  value is all ``*``. A resident id ``110101198005170012`` shows as ``110*************12``: the
  province and city digits and the last sequence digit with the check character, never the birth
  date or the sequence number.
* :func:`redact_id_fragments` removes from a message (a normaliser's reason) any fragment copied
  from the id: ``birth date 19801317 is not a calendar date`` would otherwise give back 8 of
  the 13 masked characters.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "MASK_MIN_LENGTH",
    "mask_id",
    "redact_id_fragments",
]

MASK_MIN_LENGTH = 12
"""Shorter values are masked entirely: showing 5 of them would show about half."""

_HEAD, _TAIL = 3, 2
_MASK_MAX_STARS = 20  # a longer value shows 20 stars and its length
_FRAGMENT = 6  # a run of this many characters of the id, found in a message, is redacted
_TOKEN = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*")  # a word, a number, or a date written 1980-05-17


def _shown(char: str) -> str:
    """A character kept at either end of a mask: itself if printable, else ``?``."""
    return char if char.isprintable() and not char.isspace() else "?"


def mask_id(raw: str) -> str:
    """``raw`` (surrounding whitespace stripped) with all but its first 3 and last 2 characters
    replaced by ``*``; all of it when it has fewer than :data:`MASK_MIN_LENGTH` characters.

    An empty value is ``(empty)``; past 25 characters the stars stop at 20 and the length follows
    (``abc********************yz (64 characters)``).
    """
    text = raw.strip()
    if not text:
        return "(empty)"
    if len(text) < MASK_MIN_LENGTH:
        return "*" * len(text)
    hidden = len(text) - _HEAD - _TAIL
    head = "".join(_shown(char) for char in text[:_HEAD])
    tail = "".join(_shown(char) for char in text[-_TAIL:])
    masked = f"{head}{'*' * min(hidden, _MASK_MAX_STARS)}{tail}"
    return masked if hidden <= _MASK_MAX_STARS else f"{masked} ({len(text)} characters)"


def _comparable(text: str) -> str:
    """Text folded as the normalisers fold ids (full-width forms to ASCII, upper case), without
    the hyphens and spaces that separate the parts of a date."""
    return re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", text)).upper()


def redact_id_fragments(message: str, raw: str) -> str:
    """``message`` with every word, number or date that shares a run of 6 characters with
    ``raw`` replaced by ``*`` (one per character), so that it cannot give back what
    :func:`mask_id` hides.

    The comparison folds full-width characters and case and ignores the hyphens of a date, so
    ``birth date 1980-05-17`` is redacted for the legacy id ``110101800517001`` too. A fragment
    that happens to match (a constant date, a long word of an opaque id) is redacted as well:
    the message then says less, never more.
    """
    source = _comparable(raw)
    if len(source) < _FRAGMENT:
        return message

    def redacted(match: re.Match[str]) -> str:
        token = _comparable(match.group())
        shares = any(token[start : start + _FRAGMENT] in source for start in range(len(token) - _FRAGMENT + 1))
        return "*" * len(match.group()) if shares else match.group()

    return _TOKEN.sub(redacted, message)
