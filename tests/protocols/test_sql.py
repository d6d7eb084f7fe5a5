"""Restricted SQL: the accepted shape becomes the request; everything else is refused with the
reason and the offending fragment."""

from __future__ import annotations

import pytest

from mpc.protocols.aggregate import Aggregate, ColumnRef
from mpc.protocols.sql import SqlRefused, parse_query


def test_one_table_for_the_gateway() -> None:
    query = parse_query("SELECT t.k, AVG(t.v) FROM a.t GROUP BY t.k", reveal_to="gateway", epsilon=0.5, gateway="g")
    assert (query.initiator, query.peer, query.request.peer_dataset, query.request.single_table) == ("a", "", "", True)
    with pytest.raises(SqlRefused, match="unknown table or alias"):
        parse_query("SELECT COUNT(*) FROM a.t WHERE u.v > 1", reveal_to="gateway", epsilon=0.5, gateway="g")


def test_the_accepted_shape() -> None:
    query = parse_query(
        "SELECT h.district, COUNT(*), SUM(i.annual_income) AS total, AVG(i.annual_income) "
        "FROM civil.households h JOIN tax.income i USING (resident_id) "
        "WHERE h.disabled = 1 AND (i.annual_income > 50000 OR NOT i.annual_income < -3) "
        "GROUP BY h.district",
        reveal_to="peer",
    )
    assert (query.initiator, query.peer, query.id_column) == ("civil", "tax", "resident_id")
    request = query.request
    assert (request.initiator_dataset, request.peer_dataset, request.reveal_to) == ("households", "income", "peer")
    assert request.where == "initiator.disabled = 1 AND (peer.annual_income > 50000 OR NOT peer.annual_income < -3)"
    assert request.group_by == (ColumnRef(side="initiator", column="district"),)
    income = ColumnRef(side="peer", column="annual_income")
    assert request.aggregates == (
        Aggregate(kind="count"),
        Aggregate(kind="sum", column=income),
        Aggregate(kind="mean", column=income),
    )
    same_names = parse_query("SELECT COUNT(*) FROM a.t x JOIN b.t y USING (id) WHERE y.v > 1")
    assert same_names.request.where == "peer.v > 1"
    unqualified_table = parse_query(
        "SELECT COUNT(*) FROM households JOIN tax.income USING (id) WHERE households.d = 'x'"
    )
    assert unqualified_table.initiator == "" and unqualified_table.request.where == "initiator.d = 'x'"


@pytest.mark.parametrize(
    ("sql", "reason", "fragment"),
    [
        ("SELECT * FROM a.t JOIN b.u USING (id)", "SELECT * would output rows", "*"),
        ("SELECT t.x FROM a.t JOIN b.u USING (id)", "a raw column can only be selected as a GROUP BY key", "t.x"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id) ORDER BY 1", "ORDER BY is not allowed", "ORDER BY 1"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id) LIMIT 5", "LIMIT is not allowed", "LIMIT 5"),
        ("SELECT COUNT(*) FROM a.t LEFT JOIN b.u USING (id)", "only an inner JOIN", "LEFT JOIN b.u USING (id)"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u ON t.id = u.id", "only an inner JOIN", "ON t.id = u.id"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id) JOIN c.v USING (id)", "only one join", "JOIN c.v USING (id)"),
        (
            "SELECT MAX(u.v) FROM a.t JOIN b.u USING (id)",
            "only group keys, COUNT(*), SUM(column) and AVG(column)",
            "MAX(u.v)",
        ),
        ("SELECT COUNT(u.v) FROM a.t JOIN b.u USING (id)", "only COUNT(*)", "COUNT(u.v)"),
        ("SELECT SUM(u.v + 1) FROM a.t JOIN b.u USING (id)", "SUM and AVG take a plain column", "u.v + 1"),
        (
            "SELECT COUNT(*) FROM a.t JOIN b.u USING (id) WHERE u.v IN (SELECT 1)",
            "subqueries are not allowed",
            "(SELECT 1)",
        ),
        (
            "SELECT COUNT(*) FROM a.t JOIN b.u USING (id) WHERE LENGTH(t.id) > 3",
            "WHERE takes comparisons",
            "LENGTH(t.id) > 3",
        ),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id) WHERE u.v > u.w", "WHERE takes comparisons", "u.v > u.w"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id) WHERE v > 1", "qualify every column", "v"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id) WHERE z.v > 1", "unknown table or alias 'z'", "z.v"),
        ("SELECT COUNT(*) FROM a.x JOIN b.x USING (id) WHERE x.v > 1", "ambiguous table name", "x.v"),
        (
            "SELECT COUNT(*) FROM a.t JOIN b.u USING (id) GROUP BY UPPER(t.k)",
            "GROUP BY takes plain columns",
            "UPPER(t.k)",
        ),
        (
            "SELECT COUNT(*) FROM a.t JOIN b.u USING (id) GROUP BY t.k HAVING COUNT(*) > 1",
            "HAVING is not allowed",
            "HAVING",
        ),
        ("SELECT DISTINCT t.k FROM a.t JOIN b.u USING (id) GROUP BY t.k", "DISTINCT is not allowed", "DISTINCT"),
        ("SELECT COUNT(*) FROM a.t", "the query cannot run", "released to the gateway (noised) only"),
        ("SELECT COUNT(*) FROM a.t JOIN b.u USING (id, other)", "join on exactly one id column", "id, other"),
        ("DELETE FROM a.t", "only SELECT is allowed", "DELETE FROM a.t"),
        ("SELECT COUNT(*) FROM a.t; SELECT 1", "exactly one statement", "SELECT"),
        ("SELEC COUNT(*)", "not valid SQL", ""),
        (
            "SELECT t.k FROM a.t JOIN b.u USING (id) GROUP BY t.k",
            "the query cannot run",
            "at least one of COUNT, SUM, MEAN",
        ),
    ],
)
def test_everything_else_is_refused_with_reason_and_fragment(sql: str, reason: str, fragment: str) -> None:
    with pytest.raises(SqlRefused) as refused:
        parse_query(sql)
    assert reason in refused.value.reason and fragment in refused.value.fragment
