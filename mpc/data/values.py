"""Dates and codes as ring integers, the same way on both sides of a comparison.

An owner's ``date`` and ``code`` columns and an applicant's declared dates and codes travel on
secret shares as integers of the ring's value range (:mod:`mpc.sharing.ring`):

- a **date** is its day number since 1970-01-01 (negative before), so ``<``/``>`` compare dates;
- a **code** (a certificate or licence number, a licence type) is first normalised by
  :func:`normalize_code` (surrounding whitespace stripped, full-width forms folded, letters upper
  case) and then hashed with SHA-256 under a fixed domain tag to 62 bits (:func:`code_value`): two
  codes are equal on shares exactly when their normalised texts are (up to a 2^-62 collision),
  and nothing else about a code can be compared.

Both the owner (loading its table) and the requester (reading an application) call these
functions, so a declared value and an owner's value meet in the same representation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata

__all__ = [
    "CODE_MAX",
    "CODE_MAX_LENGTH",
    "DATE_MAX",
    "DATE_MIN",
    "KEY_SEPARATOR",
    "ValueParseError",
    "code_value",
    "composite_key",
    "date_value",
    "normalize_code",
    "number_value",
]

CODE_MAX_LENGTH = 64
KEY_SEPARATOR = "\x1f"  # joins the parts of a composite key; never inside a normalised id or code
_CODE_DOMAIN = b"mpc-agencies/code/v1\x00"
_EPOCH = dt.date(1970, 1, 1)
DATE_MIN = (dt.date(1900, 1, 1) - _EPOCH).days  # the dates a column or a declaration may hold
DATE_MAX = (dt.date(2199, 12, 31) - _EPOCH).days
CODE_MAX = 2**62 - 1  # a code's hash lies in [0, CODE_MAX]
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d")
_NUMBER = re.compile(r"[+-]?[0-9]+")


class ValueParseError(ValueError):
    """A declared or loaded value that is not a number, date or code as required; the message says why."""


def normalize_code(raw: str) -> str:
    """A code as both sides compare it: full-width forms folded (NFKC), surrounding whitespace
    stripped, letters upper case; empty, over-long or control-character codes are refused."""
    text = unicodedata.normalize("NFKC", str(raw)).strip().upper()
    if not text:
        raise ValueParseError("empty code")
    if len(text) > CODE_MAX_LENGTH:
        raise ValueParseError(f"code longer than {CODE_MAX_LENGTH} characters ({len(text)})")
    if not text.isprintable():
        raise ValueParseError("code contains control or non-printable characters")
    return text


def code_value(raw: str) -> int:
    """The code's 62-bit hash (non-negative, within the ring's value range)."""
    digest = hashlib.sha256(_CODE_DOMAIN + normalize_code(raw).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def date_value(raw: str | dt.date) -> int:
    """Days since 1970-01-01 of a date (``YYYY-MM-DD``, ``YYYYMMDD``, ``YYYY/MM/DD`` or
    ``YYYY.MM.DD``, or a :class:`datetime.date`; a datetime counts by its date), between
    1900-01-01 and 2199-12-31."""
    if isinstance(raw, dt.datetime):
        raw = raw.date()
    if not isinstance(raw, dt.date):
        text = unicodedata.normalize("NFKC", str(raw)).strip()
        for layout in _DATE_FORMATS:
            try:
                raw = dt.datetime.strptime(text, layout).date()
                break
            except ValueError:
                continue
        else:
            raise ValueParseError(f"not a date (YYYY-MM-DD): {text[:20]!r}")
    days = (raw - _EPOCH).days
    if not DATE_MIN <= days <= DATE_MAX:
        raise ValueParseError(f"date {raw.isoformat()} outside 1900-01-01 .. 2199-12-31")
    return days


def number_value(raw: str) -> int:
    """An integer written with ASCII or full-width digits, an optional sign, and optionally
    thousands separators (``,``, ``_`` or spaces); decimals are refused, not rounded."""
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    for separator in (",", "_", " "):
        text = text.replace(separator, "")
    if not _NUMBER.fullmatch(text) or len(text.lstrip("+-")) > 19:
        raise ValueParseError(f"not an integer: {str(raw)[:20]!r}")
    return int(text)


def composite_key(*parts: str) -> str:
    """The id of a row keyed by several columns: the normalised parts joined by
    :data:`KEY_SEPARATOR` (a control character, which no normalised id or code contains)."""
    return KEY_SEPARATOR.join(parts)
