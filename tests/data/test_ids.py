"""Id normalisation: known answers from the standards and real codes, properties, reports."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.data.ids import (
    CREDIT_CODE_CHARSET,
    CREDIT_CODE_WEIGHTS,
    RESIDENT_ID_CHECK_CHARS,
    IdKind,
    InvalidIdError,
    InvalidRow,
    credit_code_check,
    make_credit_code,
    make_resident_id,
    normalize_column,
    normalize_credit_code,
    normalize_id,
    normalize_resident_id,
    organization_code_check,
    resident_id_check,
)

# --------------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------------

# GB 11643-1999 Appendix A (Beijing, Chaoyang district) and the Appendix B worked example, whose
# 17-digit body 11010519491231002 has S = 1 and hence check character X.
GB11643_EXAMPLE = "11010519491231002X"
# GB 11643-1999 Appendix A (Guangdong, Chaoyang county): its check digit 4 is right, but the birth
# date 1880-01-01 is before the 1900-01-01 lower bound this module enforces.
GB11643_EXAMPLE_1880 = "440524188001010014"

# Real unified social credit codes, published on business licences and repeated in many public
# repositories; each also passes the embedded GB 11714 organisation-code check.
REAL_CREDIT_CODES = {
    "914403001922038216": "Huawei Technologies Co., Ltd. (org code 19220382-1)",
    "91440300708461136T": "Shenzhen Tencent Computer Systems Co., Ltd. (org code 70846113-6)",
    "91110000802100433B": "Beijing Baidu Netcom Science and Technology Co., Ltd. (80210043-3)",
    "91110108551385082Q": "Xiaomi Inc. (org code 55138508-2)",
    # GB 32100 explanatory material's worked example 91350100M000100Y4Z: sum 1640, 1640 mod 31 =
    # 28, check value 31 - 28 = 3, so the correct code ends in 3.
    "91350100M000100Y43": "GB 32100 worked example, corrected check character",
}


def test_gb11643_worked_example() -> None:
    assert resident_id_check("11010519491231002") == "X"
    assert normalize_resident_id(GB11643_EXAMPLE) == GB11643_EXAMPLE
    assert make_resident_id("110105", datetime.date(1949, 12, 31), 2) == GB11643_EXAMPLE


def test_gb11643_1880_example_has_right_check_but_is_out_of_range() -> None:
    assert resident_id_check(GB11643_EXAMPLE_1880[:17]) == GB11643_EXAMPLE_1880[17]
    with pytest.raises(InvalidIdError, match="before 1900-01-01"):
        normalize_resident_id(GB11643_EXAMPLE_1880)


def test_gb11643_check_table() -> None:
    # S = 0..10 maps to 1 0 X 9 8 7 6 5 4 3 2 (ISO 7064 MOD 11-2).
    assert RESIDENT_ID_CHECK_CHARS == "10X98765432"


@pytest.mark.parametrize("code", sorted(REAL_CREDIT_CODES))
def test_real_credit_codes(code: str) -> None:
    assert normalize_credit_code(code) == code
    assert normalize_credit_code(f"  {code.lower()}\t") == code
    assert make_credit_code(code[:17]) == code
    assert organization_code_check(code[8:16]) == code[16]


def test_gb32100_worked_example_step_by_step() -> None:
    values = [CREDIT_CODE_CHARSET.index(c) for c in "91350100M000100Y4"]
    assert sum(v * w for v, w in zip(values, CREDIT_CODE_WEIGHTS, strict=True)) == 1640
    assert credit_code_check("91350100M000100Y4") == "3"
    with pytest.raises(InvalidIdError, match=r"'Z' at position 18"):
        normalize_credit_code("91350100M000100Y4Z")


def test_credit_code_weights_are_powers_of_three() -> None:
    expected = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    assert expected == CREDIT_CODE_WEIGHTS
    assert len(CREDIT_CODE_CHARSET) == 31
    assert not set("IOSVZ") & set(CREDIT_CODE_CHARSET)


def test_organization_code_check_values() -> None:
    # Weights 3 7 9 10 5 8 4 2; C9 = 11 - (sum mod 11); 10 is written X and 11 is written 0.
    assert organization_code_check("00000000") == "0"  # 11 - 0 = 11 -> 0
    assert organization_code_check("00000001") == "9"  # 11 - 2
    assert organization_code_check("00000006") == "X"  # 12 mod 11 = 1, 11 - 1 = 10 -> X
    assert organization_code_check("01000000") == "4"  # 11 - 7
    assert organization_code_check("M000100Y") == "4"  # M = 22, Y = 34: 66 + 5 + 68 = 139
    # Letters are valued A = 10 .. Z = 35 including the letters GB 32100 skips: J is 19, not 18.
    assert organization_code_check("A0000000") == "3"  # 30 mod 11 = 8
    assert organization_code_check("J0000000") == "9"  # 57 mod 11 = 2


# --------------------------------------------------------------------------------------------------
# Resident id normalisation
# --------------------------------------------------------------------------------------------------


def test_legacy_15_digit_upgrade() -> None:
    # The GB 11643-1989 form of the standard's example: no century, no check character.
    assert normalize_resident_id("110105491231002") == GB11643_EXAMPLE
    assert normalize_resident_id(" 110105491231002\n") == GB11643_EXAMPLE
    out, report = normalize_column(["110105491231002", GB11643_EXAMPLE], "resident_id")
    assert out == [GB11643_EXAMPLE, GB11643_EXAMPLE]
    assert report.upgraded == 1
    assert report.duplicates == [(1, GB11643_EXAMPLE)]


def test_legacy_15_digit_date_is_validated() -> None:
    with pytest.raises(
        InvalidIdError,
        match=r"^legacy 15-digit resident id: birth date 19490231 is not a calendar date$",
    ):
        normalize_resident_id("110105490231002")
    with pytest.raises(InvalidIdError, match=r"legacy 15-digit resident id has non-digit 'X'"):
        normalize_resident_id("11010549123100X")


def test_full_width_and_lower_case() -> None:
    full = "".join(chr(0xFF10 + int(c)) for c in GB11643_EXAMPLE[:17]) + "\uff38"
    assert normalize_resident_id(full) == GB11643_EXAMPLE
    assert normalize_resident_id(full[:17] + "\uff58") == GB11643_EXAMPLE  # full-width x
    assert normalize_resident_id(GB11643_EXAMPLE.lower()) == GB11643_EXAMPLE
    assert normalize_resident_id("\u3000" + GB11643_EXAMPLE + " \t") == GB11643_EXAMPLE


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", r"^missing id$"),
        ("   ", r"^missing id$"),
        ("1101051949123100", r"length 16"),
        ("11010519491231002X1", r"length 19"),
        ("110105 19491231002X", r"whitespace at position 7"),
        ("11010519491231002Y", r"check character 'Y' is not 0-9 or X"),
        ("1101051949123100XX", r"non-digit 'X' at position 17"),
        ("11010A19491231002X", r"non-digit 'A' at position 6"),
        ("110105194912310021", r"^check digit is 1, expected X$"),
        ("010105194912310021", r"address code 010105 must start with a digit 1-8"),
        ("910105194912310021", r"address code 910105 must start with a digit 1-8"),
        ("11010519491331002X", r"birth date 19491331 is not a calendar date"),
        ("11010519490229002X", r"birth date 19490229 is not a calendar date"),
        ("11010518991231002X", r"before 1900-01-01"),
        ("11010529991231002X", r"after today"),
        ("1101051949123100\u200bX", r"non-digit U\+200B at position 17"),
    ],
)
def test_malformed_resident_ids(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdError, match=reason):
        normalize_resident_id(raw)


def test_leap_day_is_a_date() -> None:
    rid = make_resident_id("110105", datetime.date(2000, 2, 29), 17)
    assert normalize_resident_id(rid) == rid
    assert rid[6:14] == "20000229"


def test_make_resident_id_rejects_bad_parts() -> None:
    with pytest.raises(ValueError, match="area code"):
        make_resident_id("11010", datetime.date(1990, 1, 1), 1)
    with pytest.raises(ValueError, match="area code"):
        make_resident_id("910105", datetime.date(1990, 1, 1), 1)
    with pytest.raises(ValueError, match="sequence"):
        make_resident_id("110105", datetime.date(1990, 1, 1), 1000)
    with pytest.raises(ValueError, match="sequence"):
        make_resident_id("110105", datetime.date(1990, 1, 1), -1)
    with pytest.raises(ValueError, match="before 1900"):
        make_resident_id("110105", datetime.date(1899, 12, 31), 1)
    with pytest.raises(ValueError, match="after today"):
        make_resident_id("110105", datetime.date.today() + datetime.timedelta(days=1), 1)


# --------------------------------------------------------------------------------------------------
# Credit code normalisation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", r"^missing id$"),
        ("91440300192203821", r"length 17"),
        ("9144030019220382166", r"length 19"),
        ("9144030O1922038216", r"'O' at position 8 is not in the GB 32100 character set"),
        ("914403001922038I16", r"'I' at position 16"),
        ("914403001922038217", r"^check character is 7, expected 6$"),
        ("914403001922038316", r"organisation code 192203831 has check character 1, expected X"),
        ("9144 30019220382166", r"whitespace at position 5"),
    ],
)
def test_malformed_credit_codes(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdError, match=reason):
        normalize_credit_code(raw)


def test_full_width_credit_code() -> None:
    code = "91440300708461136T"
    full = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert normalize_credit_code(full) == code


def test_make_credit_code_rejects_bad_bodies() -> None:
    with pytest.raises(ValueError, match="17 characters"):
        make_credit_code("9144030019220382")
    with pytest.raises(ValueError, match="position 3"):
        make_credit_code("91S403001922038211"[:17])
    with pytest.raises(ValueError, match="organisation code"):
        make_credit_code("91440300192203822")


# --------------------------------------------------------------------------------------------------
# Opaque ids and dispatch
# --------------------------------------------------------------------------------------------------


def test_opaque_ids() -> None:
    assert normalize_id("  case-0042 ", "opaque") == "case-0042"
    assert normalize_id("x" * 64, "opaque") == "x" * 64
    with pytest.raises(InvalidIdError, match="length 65"):
        normalize_id("x" * 65, "opaque")
    with pytest.raises(InvalidIdError, match="missing id"):
        normalize_id(" \t", "opaque")
    with pytest.raises(InvalidIdError, match=r"control character U\+0000 at position 2"):
        normalize_id("a\x00b", "opaque")
    with pytest.raises(InvalidIdError, match=r"control character U\+200B"):
        normalize_id("ab\u200bc", "opaque")


def test_dispatch() -> None:
    assert normalize_id("11010519491231002x", "resident_id") == GB11643_EXAMPLE
    assert normalize_id("91440300708461136t", "credit_code") == "91440300708461136T"
    with pytest.raises(ValueError, match="unknown id kind"):
        normalize_id("abc", "passport")  # type: ignore[arg-type]
    assert issubclass(InvalidIdError, ValueError)


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

AREA_CODES = st.from_regex(r"[1-8][0-9]{5}", fullmatch=True)
BIRTHS = st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date.today())
SEQUENCES = st.integers(min_value=0, max_value=999)


@given(AREA_CODES, BIRTHS, SEQUENCES)
def test_made_resident_ids_normalise_to_themselves(area: str, birth: datetime.date, sequence: int) -> None:
    rid = make_resident_id(area, birth, sequence)
    assert len(rid) == 18
    assert normalize_resident_id(rid) == rid
    assert normalize_resident_id(f" {rid.lower()} ") == rid
    assert rid[:6] == area
    assert rid[6:14] == birth.strftime("%Y%m%d")
    assert int(rid[14:17]) == sequence


@given(AREA_CODES, BIRTHS, SEQUENCES, st.sampled_from("0123456789X"))
def test_wrong_resident_check_is_always_rejected(area: str, birth: datetime.date, sequence: int, check: str) -> None:
    rid = make_resident_id(area, birth, sequence)
    if check == rid[17]:
        return
    with pytest.raises(InvalidIdError, match=f"check digit is {check}, expected {rid[17]}"):
        normalize_resident_id(rid[:17] + check)


@given(AREA_CODES, BIRTHS, SEQUENCES, st.integers(0, 16), st.integers(1, 9))
def test_single_digit_change_in_body_is_detected(
    area: str, birth: datetime.date, sequence: int, position: int, delta: int
) -> None:
    # MOD 11-2 detects every single-digit substitution: weights are non-zero mod 11 and the
    # change delta * w is non-zero mod 11 for delta in 1..9 (11 is prime).
    rid = make_resident_id(area, birth, sequence)
    digit = (int(rid[position]) + delta) % 10
    changed = rid[:position] + str(digit) + rid[position + 1 :]
    with pytest.raises(InvalidIdError):
        normalize_resident_id(changed)


CREDIT_CHARS = st.sampled_from(CREDIT_CODE_CHARSET)


@st.composite
def credit_bodies(draw: st.DrawFn) -> str:
    """17-character bodies whose embedded organisation code carries a correct GB 11714 check."""
    head = "".join(draw(st.lists(CREDIT_CHARS, min_size=2, max_size=2)))
    region = draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
    org = "".join(draw(st.lists(CREDIT_CHARS, min_size=8, max_size=8)))
    return head + region + org + organization_code_check(org)


@given(credit_bodies())
def test_made_credit_codes_normalise_to_themselves(body: str) -> None:
    code = make_credit_code(body)
    assert normalize_credit_code(code) == code
    assert normalize_credit_code(code.lower()) == code


@given(credit_bodies(), CREDIT_CHARS)
def test_wrong_credit_check_is_always_rejected(body: str, check: str) -> None:
    code = make_credit_code(body)
    if check == code[17]:
        return
    with pytest.raises(InvalidIdError, match=f"check character is {check}, expected {code[17]}"):
        normalize_credit_code(code[:17] + check)


@given(credit_bodies(), st.integers(0, 15), st.integers(1, 30))
def test_single_character_change_in_credit_code_is_detected(body: str, position: int, delta: int) -> None:
    # Weights 3^k mod 31 are non-zero and 31 is prime, so every substitution changes the sum.
    code = make_credit_code(body)
    value = (CREDIT_CODE_CHARSET.index(code[position]) + delta) % 31
    changed = code[:position] + CREDIT_CODE_CHARSET[value] + code[position + 1 :]
    with pytest.raises(InvalidIdError):
        normalize_credit_code(changed)


# --------------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------------


def test_normalize_column_counts_and_indexes() -> None:
    other = make_resident_id("310104", datetime.date(1985, 6, 1), 123)
    values: list[str | None] = [
        GB11643_EXAMPLE,  # 0 first occurrence
        None,  # 1 missing
        "",  # 2 missing
        "110105491231002",  # 3 legacy form of row 0: upgraded and a duplicate
        other,  # 4 first occurrence
        "110105194912310021",  # 5 wrong check
        f" {other} ",  # 6 duplicate of row 4
        GB11643_EXAMPLE.lower(),  # 7 duplicate of row 0
        "12345",  # 8 wrong length
    ]
    out, report = normalize_column(values, "resident_id")
    assert out == [
        GB11643_EXAMPLE,
        None,
        None,
        GB11643_EXAMPLE,
        other,
        None,
        other,
        GB11643_EXAMPLE,
        None,
    ]
    assert report.total == 9
    assert report.valid == 5
    assert report.upgraded == 1
    assert [r.row for r in report.invalid] == [1, 2, 5, 8]
    assert report.invalid[0] == InvalidRow(1, "", "missing id")
    assert report.invalid[1] == InvalidRow(2, "", "missing id")
    assert report.invalid[2] == InvalidRow(5, "110105194912310021", "check digit is 1, expected X")
    assert report.invalid[3].raw == "12345"
    assert "length 5" in report.invalid[3].reason
    assert report.duplicates == [(3, GB11643_EXAMPLE), (6, other), (7, GB11643_EXAMPLE)]


def test_normalize_column_accepts_generators_and_empty() -> None:
    out, report = normalize_column(iter(()), "opaque")
    assert out == []
    assert (report.total, report.valid, report.invalid, report.duplicates) == (0, 0, [], [])
    out, report = normalize_column((c for c in ["a", "a", " b"]), "opaque")
    assert out == ["a", "a", "b"]
    assert report.duplicates == [(1, "a")]


KINDS: list[IdKind] = ["resident_id", "credit_code", "opaque"]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from([GB11643_EXAMPLE, "110105491231002", "bad", "", " x "]),
            st.sampled_from(sorted(REAL_CREDIT_CODES)),
            st.text(max_size=20),
        ),
        max_size=40,
    ),
    st.sampled_from(KINDS),
)
def test_normalize_column_never_drops_rows(values: list[str | None], kind: IdKind) -> None:
    out, report = normalize_column(values, kind)
    assert len(out) == len(values) == report.total
    assert report.valid + len(report.invalid) == report.total
    invalid_rows = {r.row for r in report.invalid}
    assert invalid_rows == {i for i, v in enumerate(out) if v is None}
    for r in report.invalid:
        assert r.reason
        with pytest.raises(InvalidIdError):
            normalize_id(values[r.row] or "", kind)
    seen: set[str] = set()
    expected_duplicates = []
    for i, v in enumerate(out):
        if v is None:
            continue
        assert normalize_id(v, kind) == v  # idempotent
        if v in seen:
            expected_duplicates.append((i, v))
        seen.add(v)
    assert report.duplicates == expected_duplicates
