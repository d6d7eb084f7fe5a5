"""Normalisation and validation of the identifiers agencies join on.

Two national standards fix the identifiers that link records across agencies:

* **Citizen identity number**, GB 11643-1999 (公民身份号码): 18 characters, a 6-digit address code
  (first digit 1-8), the birth date as ``YYYYMMDD``, a 3-digit sequence (odd for men, even for
  women) and an ISO 7064 MOD 11-2 check character: with weights
  ``[7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]``, ``S = sum(d_i * w_i) mod 11`` and the
  check is ``"10X98765432"[S]``. Legacy 15-digit numbers (GB 11643-1989: address, ``YYMMDD``,
  sequence, no check) are upgraded by inserting ``19`` before the date and appending the check.
* **Unified social credit code**, GB 32100-2015 (统一社会信用代码): 18 characters over the 31-char
  set ``0-9 A-H J-N P Q R T U W X Y`` (no I, O, S, V, Z). The check character is
  ``charset[(31 - sum(v_i * w_i) mod 31) mod 31]`` with ``w_i = 3^(i-1) mod 31``. Positions 9-17
  embed the GB 11714 organisation code, whose own check (position 17) is
  ``11 - sum(v_i * w_i) mod 11`` over weights ``[3, 7, 9, 10, 5, 8, 4, 2]`` with digits 0-9 and
  letters A-Z valued 10-35; 10 is written ``X`` and 11 is written ``0``.

Normalisation is what makes two agencies' spellings of one identifier compare equal: surrounding
whitespace is stripped, full-width digits and letters (as typed with a Chinese input method) become
ASCII, and letters are upper-cased. Internal whitespace is *not* removed: it is rejected, because an
identifier with a space inside is as likely two fields run together as a formatted one.

Every rejection raises :class:`InvalidIdError` with a message that says exactly what is wrong,
and :func:`normalize_column` reports each rejected row instead of dropping it.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CREDIT_CODE_CHARSET",
    "CREDIT_CODE_WEIGHTS",
    "OPAQUE_MAX_LENGTH",
    "ORGANIZATION_CODE_WEIGHTS",
    "RESIDENT_ID_CHECK_CHARS",
    "RESIDENT_ID_EARLIEST_BIRTH",
    "RESIDENT_ID_WEIGHTS",
    "IdKind",
    "IdReport",
    "InvalidIdError",
    "InvalidRow",
    "credit_code_check",
    "make_credit_code",
    "make_resident_id",
    "normalize_column",
    "normalize_credit_code",
    "normalize_id",
    "normalize_resident_id",
    "organization_code_check",
    "resident_id_check",
]


class InvalidIdError(ValueError):
    """An identifier that cannot be normalised; the message says precisely why."""


IdKind = Literal["resident_id", "credit_code", "opaque"]

RESIDENT_ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK_CHARS = "10X98765432"
RESIDENT_ID_EARLIEST_BIRTH = datetime.date(1900, 1, 1)

CREDIT_CODE_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS: tuple[int, ...] = tuple(pow(3, i, 31) for i in range(17))
ORGANIZATION_CODE_WEIGHTS: tuple[int, ...] = (3, 7, 9, 10, 5, 8, 4, 2)

OPAQUE_MAX_LENGTH = 64

_CREDIT_VALUES = {c: i for i, c in enumerate(CREDIT_CODE_CHARSET)}
_DIGITS = frozenset("0123456789")
# Full-width forms U+FF01..U+FF5E map onto ASCII U+0021..U+007E; the ideographic space is handled
# by str.strip (it is Unicode whitespace).
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


def _fold_width(text: str) -> str:
    """Replace full-width ASCII look-alikes (U+FF01..U+FF5E, e.g. U+FF11, U+FF38) by ASCII."""
    return text.translate(_FULL_WIDTH)


def _reject_internal_whitespace(text: str, what: str) -> None:
    """Raise if ``text`` (already stripped) still contains whitespace."""
    for position, char in enumerate(text, start=1):
        if char.isspace():
            raise InvalidIdError(f"{what} contains whitespace at position {position}")


def _describe(char: str) -> str:
    """A printable rendering of one character for error messages: ``'A'`` or ``U+200B``."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"U+{ord(char):04X}"


# --------------------------------------------------------------------------------------------------
# GB 11643-1999 resident identity numbers
# --------------------------------------------------------------------------------------------------


def resident_id_check(body17: str) -> str:
    """Return the GB 11643 check character (``0``-``9`` or ``X``) for 17 ASCII digits."""
    if len(body17) != 17 or not set(body17) <= _DIGITS:
        raise ValueError(f"a resident id body is 17 ASCII digits, got {body17!r}")
    total = sum(int(d) * w for d, w in zip(body17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK_CHARS[total % 11]


def _check_address(address: str) -> None:
    """Raise unless the 6-digit address code starts with 1-8 (the GB/T 2260 regions)."""
    if address[0] not in "12345678":
        raise InvalidIdError(f"address code {address} must start with a digit 1-8")


def _check_birth(digits8: str, today: datetime.date | None = None) -> datetime.date:
    """Parse ``YYYYMMDD`` and raise unless it is a real date from 1900-01-01 to today."""
    try:
        birth = datetime.date(int(digits8[:4]), int(digits8[4:6]), int(digits8[6:8]))
    except ValueError:
        raise InvalidIdError(f"birth date {digits8} is not a calendar date") from None
    if birth < RESIDENT_ID_EARLIEST_BIRTH:
        raise InvalidIdError(f"birth date {birth.isoformat()} is before {RESIDENT_ID_EARLIEST_BIRTH.isoformat()}")
    limit = today if today is not None else datetime.date.today()
    if birth > limit:
        raise InvalidIdError(f"birth date {birth.isoformat()} is after today ({limit.isoformat()})")
    return birth


def _first_non_digit(text: str) -> tuple[int, str] | None:
    """The 1-based position and character of the first non-digit in ``text``, if any."""
    for position, char in enumerate(text, start=1):
        if char not in _DIGITS:
            return position, char
    return None


def _prepared(raw: str, what: str) -> str:
    """Full-width folded, stripped, upper-cased text; refuses non-strings, blanks, inner spaces."""
    if not isinstance(raw, str):
        raise InvalidIdError(f"{what} must be a string, got {type(raw).__name__}")
    text = _fold_width(raw).strip().upper()
    if not text:
        raise InvalidIdError("missing id")
    _reject_internal_whitespace(text, what)
    return text


def _normalize_resident_id(raw: str) -> tuple[str, bool]:
    """Normalise a resident id; also say whether it was upgraded from the 15-digit form."""
    text = _prepared(raw, "resident id")
    if len(text) == 15:
        bad = _first_non_digit(text)
        if bad is not None:
            raise InvalidIdError(f"legacy 15-digit resident id has non-digit {_describe(bad[1])} at position {bad[0]}")
        _check_address(text[:6])
        body = f"{text[:6]}19{text[6:]}"
        try:
            _check_birth(body[6:14])
        except InvalidIdError as error:
            raise InvalidIdError(f"legacy 15-digit resident id: {error}") from None
        return body + resident_id_check(body), True
    if len(text) != 18:
        raise InvalidIdError(f"resident id has length {len(text)}, expected 18 (or 15 for a legacy number)")
    bad = _first_non_digit(text[:17])
    if bad is not None:
        raise InvalidIdError(f"resident id has non-digit {_describe(bad[1])} at position {bad[0]}")
    if text[17] not in _DIGITS and text[17] != "X":
        raise InvalidIdError(f"resident id check character {_describe(text[17])} is not 0-9 or X")
    _check_address(text[:6])
    _check_birth(text[6:14])
    expected = resident_id_check(text[:17])
    if text[17] != expected:
        raise InvalidIdError(f"check digit is {text[17]}, expected {expected}")
    return text, False


def normalize_resident_id(raw: str) -> str:
    """Return the canonical 18-character form of a GB 11643 citizen identity number.

    Strips surrounding whitespace, folds full-width digits and X (U+FF38) to ASCII, upper-cases
    ``x``, upgrades a legacy 15-digit number to 18 digits, and validates the address code, the
    birth date (a real date from 1900-01-01 to today) and the check character. Raises
    :class:`InvalidIdError` saying what is wrong.
    """
    return _normalize_resident_id(raw)[0]


def make_resident_id(area_code: str, birth: datetime.date, sequence: int) -> str:
    """Build a valid 18-character resident id from its parts, appending the check character.

    ``area_code`` is 6 digits starting with 1-8, ``birth`` a date from 1900-01-01 to today and
    ``sequence`` in 0..999 (odd for men, even for women by convention; not enforced). Raises
    :class:`ValueError` for parts that would not make a valid id.
    """
    if len(area_code) != 6 or not set(area_code) <= _DIGITS or area_code[0] not in "12345678":
        raise ValueError(f"area code must be 6 ASCII digits starting with 1-8, got {area_code!r}")
    if isinstance(sequence, bool) or not 0 <= sequence <= 999:
        raise ValueError(f"sequence must be in 0..999, got {sequence!r}")
    digits8 = f"{birth.year:04d}{birth.month:02d}{birth.day:02d}"
    try:
        _check_birth(digits8)
    except InvalidIdError as error:
        raise ValueError(str(error)) from None
    body = f"{area_code}{digits8}{sequence:03d}"
    return body + resident_id_check(body)


# --------------------------------------------------------------------------------------------------
# GB 32100-2015 unified social credit codes (with the GB 11714 organisation code inside)
# --------------------------------------------------------------------------------------------------


def credit_code_check(body17: str) -> str:
    """Return the GB 32100 check character for a 17-character body over the 31-char set."""
    if len(body17) != 17:
        raise ValueError(f"a credit code body has 17 characters, got {len(body17)}")
    try:
        total = sum(_CREDIT_VALUES[c] * w for c, w in zip(body17, CREDIT_CODE_WEIGHTS, strict=True))
    except KeyError as error:
        raise ValueError(f"{error.args[0]!r} is not in the GB 32100 character set") from None
    return CREDIT_CODE_CHARSET[(31 - total % 31) % 31]


def _organization_value(char: str) -> int:
    """GB 11714 value of a code character: digits 0-9, letters A-Z 10-35."""
    if char in _DIGITS:
        return int(char)
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    raise ValueError(f"{char!r} is not a GB 11714 code character")


def organization_code_check(body8: str) -> str:
    """Return the GB 11714 check character (``0``-``9`` or ``X``) for an 8-character body."""
    if len(body8) != 8:
        raise ValueError(f"an organisation code body has 8 characters, got {len(body8)}")
    total = sum(_organization_value(c) * w for c, w in zip(body8, ORGANIZATION_CODE_WEIGHTS, strict=True))
    value = 11 - total % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


def normalize_credit_code(raw: str) -> str:
    """Return the canonical form of a GB 32100 unified social credit code.

    Strips surrounding whitespace, folds full-width characters to ASCII, upper-cases, then checks
    the length (18), the character set (no I, O, S, V, Z), the embedded GB 11714 organisation code
    check (position 17) and the GB 32100 check character (position 18). Raises
    :class:`InvalidIdError` saying what is wrong.
    """
    text = _prepared(raw, "credit code")
    if len(text) != 18:
        raise InvalidIdError(f"credit code has length {len(text)}, expected 18")
    for position, char in enumerate(text, start=1):
        if char not in _CREDIT_VALUES:
            raise InvalidIdError(
                f"credit code character {_describe(char)} at position {position} is not in the "
                "GB 32100 character set (digits and letters except I, O, S, V, Z)"
            )
    organization = text[8:17]
    expected_org = organization_code_check(organization[:8])
    if organization[8] != expected_org:
        raise InvalidIdError(
            f"embedded organisation code {organization} has check character {organization[8]}, expected {expected_org}"
        )
    expected = credit_code_check(text[:17])
    if text[17] != expected:
        raise InvalidIdError(f"check character is {text[17]}, expected {expected}")
    return text


def make_credit_code(body17: str) -> str:
    """Append the GB 32100 check character to a 17-character body over the 31-char set.

    The body's last 9 characters are the embedded organisation code, so its 17th character must
    already be that code's GB 11714 check (see :func:`organization_code_check`); otherwise the
    result would not normalise and :class:`ValueError` is raised.
    """
    body = body17.upper()
    if len(body) != 17:
        raise ValueError(f"a credit code body has 17 characters, got {len(body)}")
    for position, char in enumerate(body, start=1):
        if char not in _CREDIT_VALUES:
            raise ValueError(f"character {_describe(char)} at position {position} is not in the GB 32100 set")
    expected_org = organization_code_check(body[8:16])
    if body[16] != expected_org:
        raise ValueError(
            f"embedded organisation code {body[8:17]} has check character {body[16]}, expected {expected_org}"
        )
    return body + credit_code_check(body)


# --------------------------------------------------------------------------------------------------
# Opaque identifiers and dispatch
# --------------------------------------------------------------------------------------------------


def _normalize_opaque(raw: str) -> str:
    """Strip an opaque id and reject it if empty, longer than 64 or holding control characters.

    Control (Cc) and format (Cf) characters are both rejected: the latter include zero-width
    spaces and byte-order marks, which make equal-looking ids fail to join.
    """
    if not isinstance(raw, str):
        raise InvalidIdError(f"id must be a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise InvalidIdError("missing id")
    if len(text) > OPAQUE_MAX_LENGTH:
        raise InvalidIdError(f"id has length {len(text)}, longer than {OPAQUE_MAX_LENGTH}")
    for position, char in enumerate(text, start=1):
        if unicodedata.category(char) in ("Cc", "Cf"):
            raise InvalidIdError(f"id has control character U+{ord(char):04X} at position {position}")
    return text


def _normalize(raw: str, kind: IdKind) -> tuple[str, bool]:
    """Normalise by kind; the flag says whether a legacy resident id was upgraded."""
    if kind == "resident_id":
        return _normalize_resident_id(raw)
    if kind == "credit_code":
        return normalize_credit_code(raw), False
    if kind == "opaque":
        return _normalize_opaque(raw), False
    raise ValueError(f"unknown id kind {kind!r}; expected resident_id, credit_code or opaque")


def normalize_id(raw: str, kind: IdKind) -> str:
    """Normalise ``raw`` as an identifier of ``kind``; raises :class:`InvalidIdError` if invalid.

    ``"opaque"`` ids are only stripped of surrounding whitespace and must be non-empty, at most
    64 characters and free of control characters.
    """
    return _normalize(raw, kind)[0]


@dataclass(frozen=True)
class InvalidRow:
    """One rejected input row: its 0-based index, the raw text ("" for None) and why."""

    row: int
    raw: str
    reason: str


@dataclass
class IdReport:
    """What :func:`normalize_column` did to a column.

    ``valid`` counts rows with a normalised id (duplicates included), ``upgraded`` the 15-digit
    resident ids among them, and ``duplicates`` lists ``(row, id)`` for every repeat of an id
    after its first occurrence, compared after normalisation. ``total == valid + len(invalid)``.
    """

    total: int
    valid: int
    invalid: list[InvalidRow] = field(default_factory=list)
    upgraded: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)


def normalize_column(values: Iterable[str | None], kind: IdKind) -> tuple[list[str | None], IdReport]:
    """Normalise every value of a column of ids; invalid rows become None and are reported.

    Returns one output per input row, in order, and an :class:`IdReport`. None, empty and
    whitespace-only values are invalid with reason ``"missing id"``. No row is dropped.
    """
    if kind not in ("resident_id", "credit_code", "opaque"):
        raise ValueError(f"unknown id kind {kind!r}; expected resident_id, credit_code or opaque")
    out: list[str | None] = []
    report = IdReport(total=0, valid=0)
    first_seen: dict[str, int] = {}
    for row, raw in enumerate(values):
        report.total += 1
        if raw is None:
            report.invalid.append(InvalidRow(row, "", "missing id"))
            out.append(None)
            continue
        try:
            normalised, upgraded = _normalize(raw, kind)
        except InvalidIdError as error:
            raw_text = raw if isinstance(raw, str) else repr(raw)
            report.invalid.append(InvalidRow(row, raw_text, str(error)))
            out.append(None)
            continue
        report.valid += 1
        report.upgraded += upgraded
        if normalised in first_seen:
            report.duplicates.append((row, normalised))
        else:
            first_seen[normalised] = row
        out.append(normalised)
    return out, report
