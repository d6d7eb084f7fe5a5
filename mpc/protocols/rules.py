"""P4 rule language: named eligibility rules over owners' columns, validated, with a plaintext
reference evaluator (the oracle every private execution is tested against).

A rules file (TOML) holds named rules; each rule has clauses and a boolean ``expression`` over the
clause names (``AND``, ``OR``, ``NOT``, parentheses; parsed with sqlglot):

```toml
[rules.public-rental-housing]
description = "household income per member below 30 000, no registered property, local hukou"
expression = "income_per_member AND no_property AND local_resident"

[rules.public-rental-housing.clauses.income_per_member]
owner = "tax"
dataset = "income"
column = "annual_income"
scope = "household-sum"   # or "applicant"
compare = "<"
value = 30000
per_member = true         # sum < 30000 * members: a per-capita limit without division
absent = "zero"           # a member the owner does not know contributes 0; or "false": the clause fails
reveal = true             # a reason code for the citizen, if the owner's policy allows it

[rules.public-rental-housing.clauses.local_resident]
owner = "public-security"
predicate = "local-resident"   # published by the owner (P2 OPRF filter)
```

Validation errors name the rule and clause (``rules.public-rental-housing.clauses.income_per_member
.compare: …``). :func:`evaluate_plain` computes the answer from plaintext tables.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import sqlglot
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlglot import exp

from mpc.data.values import ValueParseError, code_value, composite_key, date_value, normalize_code, number_value
from mpc.protocols import formula
from mpc.sharing import boolean as _boolean
from mpc.sharing.boolean import COMPARISON_GATES
from mpc.sharing.dealer import Reservation
from mpc.sharing.ring import VALUE_MAX, VALUE_MIN
from mpc.sharing.runtime import Party
from mpc.sharing.types import ArithmeticShare, BooleanShare

__all__ = [
    "CLAUSE_NAME",
    "MAX_MEMBERS",
    "RULE_NAME",
    "SLOT_CLASSES",
    "Application",
    "Clause",
    "Comparison",
    "DeclaredValueError",
    "OwnerValues",
    "Predicates",
    "RequesterInputs",
    "Rule",
    "RuleError",
    "RuleOutcome",
    "RuleSet",
    "RuleShape",
    "ShareTable",
    "TableKey",
    "ValueKind",
    "clause_plain",
    "evaluate_plain",
    "evaluate_tree",
    "household_tables",
    "load_rules",
    "padded_slots",
    "parse_expression",
    "rule_program",
    "rule_reservation",
    "table_columns",
    "table_rows",
]

T = TypeVar("T")
Comparison = Literal["<", "<=", ">", ">=", "==", "!="]
ValueKind = Literal["number", "date", "code"]
DECLARED_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
CLAUSE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
RULE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_MEMBERS = 64
SLOT_CLASSES = (4, 8, 16, 32, MAX_MEMBERS)  # households are padded to one of these sizes (at most the owners' cap)

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _check_names(value: dict[str, T], pattern: str, what: str) -> dict[str, T]:
    bad = [n for n in value if not re.match(pattern, n)]
    if bad:
        raise ValueError(f"{what} names must match {pattern}: {bad}")
    return value


class RuleError(ValueError):
    """A rules file that cannot be used; each line names the rule, clause and key."""


class DeclaredValueError(ValueError):
    """An application whose declared value a clause needs is missing or unreadable."""


class Clause(BaseModel):
    """One fact from one owner: a comparison of a column with a constant ``value`` or with what
    the applicant ``declared``, or an owner-published predicate.

    ``kind`` says how the constant and the declared values are read: ``number`` (integers),
    ``date`` (compared as days; a constant may be a TOML date) or ``code`` (a certificate or
    licence number or type: ``==``/``!=`` only, compared as hashes, see :mod:`mpc.data.values`).
    ``compare = "within"`` holds when the owner's value is within ``tolerance`` (absolute) or
    ``tolerance_percent`` (of the declared value) of the declared value. ``key_declared`` names a
    declared code that completes the owner's composite key (the applicant's id plus, say, the
    certificate number cited): the lookup is of that pair, and an absent pair is an absent row.
    """

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(pattern=RULE_NAME)
    dataset: str | None = None
    column: str | None = None
    predicate: str | None = None
    scope: Literal["applicant", "household-sum"] = "applicant"
    compare: Comparison | Literal["within"] | None = None
    value: int | None = None
    kind: ValueKind = "number"
    declared: str | None = Field(None, pattern=DECLARED_NAME)
    tolerance: int | None = Field(None, ge=0, lt=VALUE_MAX)
    tolerance_percent: float | None = Field(None, gt=0, le=100)
    key_declared: str | None = Field(None, pattern=DECLARED_NAME)
    per_member: bool = False
    absent: Literal["zero", "false"] = "false"
    reveal: bool = False

    @model_validator(mode="before")
    @classmethod
    def _constant(cls, data: object) -> object:
        """A date or code constant as the integer it is compared as."""
        if isinstance(data, dict) and data.get("value") is not None and not isinstance(data["value"], int):
            kind, raw = data.get("kind", "number"), data["value"]
            try:
                if kind == "date" and isinstance(raw, str | dt.date):
                    data = {**data, "value": date_value(raw)}
                elif kind == "code" and isinstance(raw, str):
                    data = {**data, "value": code_value(raw)}
            except ValueParseError as exc:
                raise ValueError(f"value: {exc}") from None
        return data

    @model_validator(mode="after")
    def _shape(self) -> Clause:
        if self.predicate is not None:
            extra = [
                k for k in ("dataset", "column", "compare", "value", "declared", "key_declared") if getattr(self, k)
            ]
            if extra or self.per_member or self.scope != "applicant":
                raise ValueError(f"a predicate clause takes no {extra or ['per_member/scope']}: the owner evaluates it")
            return self
        missing = [k for k in ("dataset", "column", "compare") if getattr(self, k) is None]
        if self.value is None and self.declared is None:
            missing.append("value (or declared)")
        if self.value is not None and self.declared is not None:
            raise ValueError("a comparison clause compares with a value or a declared value, not both")
        if missing:
            raise ValueError(f"a comparison clause needs {missing} (or a 'predicate' published by the owner)")
        if self.value is not None and not VALUE_MIN <= self.value < VALUE_MAX:
            raise ValueError(f"value {self.value} outside [-2^62, 2^62)")
        tolerances = [k for k in ("tolerance", "tolerance_percent") if getattr(self, k) is not None]
        if (self.compare == "within") != (len(tolerances) == 1) or len(tolerances) > 1:
            raise ValueError("compare = 'within' takes exactly one of tolerance or tolerance_percent; others take none")
        if self.compare == "within" and self.declared is None:
            raise ValueError("compare = 'within' compares with a declared value: set declared")
        if self.kind == "code" and self.compare not in ("==", "!="):
            raise ValueError("a code is compared only with == or != (codes are compared as hashes)")
        if self.per_member and (self.scope != "household-sum" or self.declared is not None):
            raise ValueError("per_member compares a household sum with a constant: scope = 'household-sum', a value")
        if self.per_member and self.value is not None and abs(self.value) * MAX_MEMBERS >= VALUE_MAX:
            raise ValueError(f"value * members could leave the value range (at most {MAX_MEMBERS} members)")
        if self.key_declared is not None and self.scope != "applicant":
            raise ValueError("a composite key (key_declared) is looked up for the applicant: scope = 'applicant'")
        return self

    @property
    def is_predicate(self) -> bool:
        return self.predicate is not None

    def declared_value(self, application: Application) -> int:
        """The declared value this clause compares with, read as its ``kind``: the application's
        own, else (a household sum) the sum of the members' or (the applicant) the applicant's.
        Raises :class:`DeclaredValueError` naming the value when it is missing or unreadable."""
        assert self.declared is not None
        name = self.declared
        if name in application.declared:
            return _read_declared(self.kind, name, application.declared[name])
        per_member = [m.get(name) for m in application.member_declared]
        if self.scope == "household-sum" and per_member and all(v is not None for v in per_member):
            if self.kind != "number":
                raise DeclaredValueError(f"declared {name!r}: only numbers are summed over members")
            return sum(_read_declared(self.kind, name, str(v)) for v in per_member)
        if self.scope == "applicant" and per_member and per_member[0] is not None:
            return _read_declared(self.kind, name, str(per_member[0]))
        raise DeclaredValueError(f"declared {name!r} is missing")

    def lookup_key(self, application: Application) -> str:
        """The id looked up at the owner: the applicant's, or with ``key_declared`` the composite
        key of the applicant's id and the declared code (:func:`mpc.data.values.composite_key`)."""
        if self.key_declared is None:
            return application.applicant
        raw = application.declared.get(self.key_declared)
        if raw is None and application.member_declared:
            raw = application.member_declared[0].get(self.key_declared)
        if raw is None:
            raise DeclaredValueError(f"declared {self.key_declared!r} (part of the owner's key) is missing")
        try:
            return composite_key(application.applicant, normalize_code(raw))
        except ValueParseError as exc:
            raise DeclaredValueError(f"declared {self.key_declared!r}: {exc}") from None


def _read_declared(kind: ValueKind, name: str, raw: str) -> int:
    try:
        value = {"number": number_value, "date": date_value, "code": code_value}[kind](raw)
    except ValueParseError as exc:
        raise DeclaredValueError(f"declared {name!r}: {exc}") from None
    if not VALUE_MIN <= value < VALUE_MAX:
        raise DeclaredValueError(f"declared {name!r}: {value} outside [-2^62, 2^62)")
    return value


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", pattern=r"^([a-z0-9][a-z0-9-]{0,62})?$")  # its key in the rules file; owners approve by name
    description: str = ""
    expression: str
    clauses: dict[str, Clause]
    # who holds the second share of every input (P4); default: the first owner of a column clause
    # other than the requester (see :meth:`co_party_for`)
    co_party: str | None = Field(None, pattern=RULE_NAME)

    @field_validator("clauses")
    @classmethod
    def _names(cls, value: dict[str, Clause]) -> dict[str, Clause]:
        if not value:
            raise ValueError("a rule needs at least one clause")
        return _check_names(value, CLAUSE_NAME, "clause")

    @model_validator(mode="after")
    def _expression(self) -> Rule:
        tree = parse_expression(self.expression)
        used = {c.name for c in tree.find_all(exp.Column)}
        unknown = sorted(used - set(self.clauses))
        if unknown:
            raise ValueError(f"expression uses undefined clause(s) {unknown}; defined: {sorted(self.clauses)}")
        unused = sorted(set(self.clauses) - used)
        if unused:
            raise ValueError(f"clause(s) {unused} are defined but not used in the expression")
        return self

    @model_validator(mode="after")
    def _one_key_per_table(self) -> Rule:
        keys: dict[TableKey, set[str | None]] = {}
        for clause in self.clauses.values():
            if not clause.is_predicate:
                keys.setdefault((clause.owner, str(clause.dataset)), set()).add(clause.key_declared)
        mixed = sorted(f"{owner}/{dataset}" for (owner, dataset), names in keys.items() if len(names) > 1)
        if mixed:
            raise ValueError(f"the clauses reading {mixed} must name the same key_declared (one lookup per table)")
        return self

    def tree(self) -> exp.Expr:
        return parse_expression(self.expression)

    def declared_problem(self, application: Application) -> str | None:
        """Why ``application`` cannot be checked against this rule (a declared value it needs is
        missing or unreadable), or None."""
        for name, clause in self.clauses.items():
            try:
                if clause.declared is not None:
                    clause.declared_value(application)
                clause.lookup_key(application)
            except DeclaredValueError as exc:
                return f"clause {name}: {exc}"
        return None

    def canonical(self) -> bytes:
        """The rule as owners approve it: every clause with every setting (columns, comparisons,
        thresholds, ``per_member``, absent defaults, reveal flags), their order (which decides the
        default co-party), the co-party and the normalised expression, as sorted compact JSON.
        The description is left out: it changes nothing that runs."""
        body = self.model_dump(mode="json", exclude={"name", "description"})
        for clause in body["clauses"].values():  # settings added later are left out at their defaults,
            for key, default in _LATER_SETTINGS.items():  # so earlier approvals keep their fingerprints
                if clause.get(key) == default:
                    del clause[key]
        body["expression"] = _normalised(self.expression)
        body["clause_order"] = list(self.clauses)  # the default co-party is the first owner named
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def fingerprint(self) -> str:
        """SHA-256 of :meth:`canonical`, hex: changing any threshold or flag changes it."""
        return hashlib.sha256(self.canonical()).hexdigest()

    def owners(self) -> list[str]:
        return sorted({c.owner for c in self.clauses.values()})

    def co_party_for(self, requester: str) -> str:
        """The owner that computes with ``requester``: the rule's ``co_party`` if it names one
        (an owner of a column clause, never the requester), else the first such owner."""
        column_owners = [c.owner for c in self.clauses.values() if not c.is_predicate and c.owner != requester]
        if self.co_party is not None:
            if self.co_party == requester or self.co_party not in column_owners:
                raise RuleError(
                    f"co_party {self.co_party!r} must own a column clause of the rule and not be the requester"
                )
            return self.co_party
        if not column_owners:
            raise RuleError("the rule reads only the requester's data: there is nobody to compute with")
        return column_owners[0]


_LATER_SETTINGS: dict[str, object] = {
    "kind": "number",
    "declared": None,
    "tolerance": None,
    "tolerance_percent": None,
    "key_declared": None,
}


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: dict[str, Rule]

    @field_validator("rules")
    @classmethod
    def _rule_names(cls, value: dict[str, Rule]) -> dict[str, Rule]:
        _check_names(value, RULE_NAME, "rule")
        renamed = [k for k, rule in value.items() if rule.name not in ("", k)]
        if renamed:
            raise ValueError(f"rule(s) {renamed} name another rule than their key")
        return {k: rule.model_copy(update={"name": k}) for k, rule in value.items()}

    def get(self, name: str) -> Rule:
        try:
            return self.rules[name]
        except KeyError:
            raise RuleError(f"unknown rule {name!r}; known: {sorted(self.rules)}") from None


def parse_expression(text: str) -> exp.Expr:
    """Parse ``a AND (b OR NOT c)``; anything but clause names and AND/OR/NOT is refused. (A
    copy of the tree parsed once per text: owners and requesters parse the same rules per call.)"""
    return _parsed(text).copy()


@functools.lru_cache(maxsize=256)
def _normalised(text: str) -> str:
    """The expression as :meth:`Rule.canonical` writes it (parsed and printed again)."""
    return _parsed(text).sql()


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> exp.Expr:
    """The checked tree of ``text`` (:func:`parse_expression`), never handed out: callers get copies."""
    try:
        tree: exp.Expr = sqlglot.parse_one(text)
    except sqlglot.errors.ParseError as exc:
        raise ValueError(f"cannot parse expression {text!r}: {exc}") from None
    allowed = (exp.And, exp.Or, exp.Not, exp.Paren, exp.Column, exp.Identifier)
    for node in tree.walk():
        if not isinstance(node, allowed) or (isinstance(node, exp.Column) and node.table):
            raise ValueError(f"expression {text!r}: {node.sql()!r} is not a clause name, AND, OR, NOT or parentheses")
    return tree


def load_rules(source: str | Path) -> RuleSet:
    """A rules file (path) or TOML text, validated; errors name rule, clause and key."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    where = str(source) if isinstance(source, Path) else "rules"
    try:
        return RuleSet.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{where}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        lines = [f"{where}: invalid rules"]
        for item in exc.errors():
            key = ".".join(str(p) for p in item["loc"])
            lines.append(f"  {key}: {item['msg']}")
        raise RuleError("\n".join(lines)) from None


# ----------------------------------------------------------------------------- plaintext oracle
@dataclass(frozen=True)
class Application:
    """One application: the applicant and the household members listed on the form."""

    reference: str
    applicant: str
    members: tuple[str, ...]  # including the applicant
    # what the applicant declared, by name, as written on the form (a number, a date, a code):
    # ``declared`` once per application, ``member_declared`` per member, aligned with ``members``
    declared: Mapping[str, str] = field(default_factory=dict)
    member_declared: tuple[Mapping[str, str], ...] = ()


OwnerValues = Mapping[tuple[str, str, str], Mapping[str, int]]  # (owner, dataset, column) -> id -> value
Predicates = Mapping[tuple[str, str], set[str]]  # (owner, predicate) -> ids for which it holds


def clause_plain(clause: Clause, application: Application, values: OwnerValues, predicates: Predicates) -> bool:
    if clause.is_predicate:
        assert clause.predicate is not None
        return application.applicant in predicates.get((clause.owner, clause.predicate), set())
    assert clause.dataset and clause.column and clause.compare
    table = values.get((clause.owner, clause.dataset, clause.column), {})
    people = application.members if clause.scope == "household-sum" else (clause.lookup_key(application),)
    if clause.absent == "false" and any(p not in table for p in people):
        return False
    total = sum(table.get(p, 0) for p in people)
    if clause.declared is not None:
        declared = clause.declared_value(application)
        if clause.compare == "within":
            if clause.tolerance is not None:
                return abs(total - declared) <= clause.tolerance
            return abs(total - declared) * 10_000 <= _basis_points(clause) * declared
        return _COMPARE[clause.compare](total, declared)
    assert clause.value is not None and clause.compare != "within"
    limit = clause.value * (len(application.members) if clause.per_member else 1)
    return _COMPARE[clause.compare](total, limit)


def _basis_points(clause: Clause) -> int:
    """A relative tolerance in hundredths of a percent (what the comparison on shares scales by)."""
    assert clause.tolerance_percent is not None
    return round(clause.tolerance_percent * 100)


def evaluate_tree(tree: exp.Expr, bits: Mapping[str, bool]) -> bool:
    return formula.evaluate(tree, lambda leaf: bits[leaf.name], formula.PLAIN)


def evaluate_plain(
    rule: Rule, applications: Sequence[Application], values: OwnerValues, predicates: Predicates
) -> list[tuple[bool, dict[str, bool]]]:
    """The reference answer: (eligible, clause bits) per application."""
    tree = rule.tree()
    out = []
    for application in applications:
        bits = {name: clause_plain(c, application, values, predicates) for name, c in rule.clauses.items()}
        out.append((evaluate_tree(tree, bits), bits))
    return out


# ----------------------------------------------------------------------------- evaluation on shares
TableKey = tuple[str, str]  # (owner, dataset)


@dataclass(frozen=True)
class ShareTable:
    """One party's shares of looked-up rows for one (owner, dataset): ``applications * slots`` rows
    (application-major, slot 0 is the applicant; one row per application where only applicant
    clauses read the table) of the looked-up columns. Absent members and padding read as zeros."""

    columns: tuple[str, ...]
    shares: np.ndarray  # uint64 (rows, len(columns))

    def column(self, name: str, applications: int) -> np.ndarray:
        """The column as (applications, rows per application) uint64 shares."""
        index = self.columns.index(name)
        return self.shares[:, index].reshape(applications, -1) if applications else self.shares[:0, index].reshape(0, 1)


def _slot_sum(party: Party, share: np.ndarray) -> ArithmeticShare:
    return ArithmeticShare(party, share.sum(axis=1, dtype=np.uint64))


def _first_slot(party: Party, share: np.ndarray) -> ArithmeticShare:
    return ArithmeticShare(party, np.ascontiguousarray(share[:, 0]))


@dataclass(frozen=True)
class RuleShape:
    """What both parties of :func:`rule_program` know: the approved rule, the number of
    applications, the member slots per application and the clauses whose bits are revealed."""

    rule: Rule
    applications: int
    slots: int
    reveal: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequesterInputs:
    """The requester's secret inputs to :func:`rule_program`.

    ``members``: each application's household size (secret-shared: the co-party learns only the
    number of applications and the slots). ``predicate_bits``: per predicate clause, the bits of
    owner-published predicates the requester learned through the OPRF filter (P2), one per
    application. ``presence``: per table and row, whether the owner had the row (the requester
    learned that in the lookup; padding rows count as present), for clauses with
    ``absent = "false"``. ``declared``: per clause comparing with a declared value, that value
    per application (:meth:`Clause.declared_value`): the co-party and the owners never see it.
    """

    members: Sequence[int]
    predicate_bits: Mapping[str, Sequence[int]] = field(default_factory=dict)
    presence: Mapping[TableKey, np.ndarray] = field(default_factory=dict)
    declared: Mapping[str, Sequence[int]] = field(default_factory=dict)  # per clause with ``declared``


@dataclass(frozen=True)
class RuleOutcome:
    """What :func:`rule_program` reveals to the requester: one bit per application, and the bits
    of the clauses named in :attr:`RuleShape.reveal` (reason codes)."""

    bits: np.ndarray
    clauses: dict[str, np.ndarray]


def rule_program(
    party: Party,
    shape: RuleShape,
    tables: Mapping[TableKey, ShareTable],
    inputs: RequesterInputs | None = None,
    requester: int = 0,
) -> RuleOutcome | None:
    """Evaluate ``shape.rule`` on shares between the requester (party ``requester``, which passes
    ``inputs``) and the co-party; reveal the final bit per application, and the bits of the
    clauses in ``shape.reveal``, to the requester only (the co-party gets None).

    Absent members and padding slots (households smaller than ``slots``) read as zero values.
    Clauses with ``absent = "false"`` take the presence of rows as the requester's secret input, so
    the co-party learns nothing of it; so are the household sizes and the predicate bits.
    """
    rule, applications, slots = shape.rule, shape.applications, shape.slots
    mine = party.index == requester
    if mine and (inputs is None or len(inputs.members) != applications):
        raise ValueError("the requester supplies one household size per application")
    size = party.share(list(inputs.members) if mine and inputs is not None else None, owner=requester)
    # The household size a per-member threshold is multiplied by is the requester's input: a clause
    # holds only for sizes 1..slots (the owners' cap bounds slots), compared on shares, so a size
    # claimed beyond the slots never scales an approved threshold.
    plausible = (_boolean.ge(size, 1) & _boolean.le(size, slots)) if _per_member(rule) else None
    bits: dict[str, BooleanShare] = {}
    for name, clause in rule.clauses.items():
        if clause.is_predicate:
            known_bits = None
            if mine:
                assert inputs is not None
                if len(inputs.predicate_bits.get(name, ())) != applications:
                    raise ValueError(f"clause {name}: the requester supplies one predicate bit per application")
                known_bits = list(inputs.predicate_bits[name])
            bits[name] = party.share_bits(known_bits, owner=requester)
            continue
        assert clause.dataset and clause.column and clause.compare
        key = (clause.owner, clause.dataset)
        values = tables[key].column(clause.column, applications)
        household = clause.scope == "household-sum"
        total = _slot_sum(party, values) if household else _first_slot(party, values)
        if clause.declared is not None:
            declared_known = None
            if mine:
                assert inputs is not None
                if len(inputs.declared.get(name, ())) != applications:
                    raise ValueError(f"clause {name}: the requester supplies one declared value per application")
                declared_known = list(inputs.declared[name])
            bit = _compare_declared(clause, total, party.share(declared_known, owner=requester))
        else:
            assert clause.value is not None and clause.compare != "within"
            limit: ArithmeticShare | int = size * clause.value if clause.per_member else clause.value
            bit = COMPARISON_GATES[clause.compare](total, limit)
        if clause.per_member:
            assert plausible is not None
            bit = bit & plausible
        if clause.absent == "false":
            known: np.ndarray | None = None
            if mine:
                assert inputs is not None
                if key not in inputs.presence:
                    raise ValueError(f"clause {name}: the requester supplies the presence of {key}'s rows")
                rows = np.asarray(inputs.presence[key], dtype=bool).reshape(applications, -1)
                known = np.asarray(rows.all(axis=1) if household else rows[:, 0], dtype=np.uint8)
            bit = bit & party.share_bits(known, owner=requester)
        bits[name] = bit
    final = party.reveal_bits(_evaluate_shared(rule.tree(), bits), to=requester)
    opened = {name: party.reveal_bits(bits[name], to=requester) for name in shape.reveal}
    if final is None:
        return None
    return RuleOutcome(final, {name: bit for name, bit in opened.items() if bit is not None})


def _compare_declared(clause: Clause, total: ArithmeticShare, declared: ArithmeticShare) -> BooleanShare:
    """The owner's value against the applicant's declared value, both on shares: a comparison,
    or for ``within`` two (``|total - declared| <= tolerance``; a relative tolerance is scaled to
    basis points, so ``|total - declared| * 10 000 <= bp * declared``, which holds for values up
    to about 4.6 * 10^14)."""
    if clause.compare != "within":
        assert clause.compare is not None
        return COMPARISON_GATES[clause.compare](total, declared)
    difference = total - declared
    if clause.tolerance is not None:
        return _boolean.le(difference, clause.tolerance) & _boolean.ge(difference, -clause.tolerance)
    scaled, allowed = difference * 10_000, declared * _basis_points(clause)
    return _boolean.le(scaled - allowed, 0) & _boolean.ge(scaled + allowed, 0)


def _comparison_words(clause: Clause, applications: int) -> int:
    """Bit-triple words of a clause's comparison (two and their AND for ``within``)."""
    assert clause.compare is not None
    if clause.compare == "within":
        return 2 * _boolean.comparison_triple_words("<=", applications) + (applications + 63) // 64
    return _boolean.comparison_triple_words(clause.compare, applications)


def rule_reservation(rule: Rule, applications: int) -> Reservation:
    """The correlated randomness :func:`rule_program` takes for ``applications`` (bit triples:
    each clause's comparison, its presence AND, one AND or OR per connective), dealt up front."""
    words = (applications + 63) // 64
    total = 0
    for clause in rule.clauses.values():
        if clause.is_predicate:
            continue
        total += _comparison_words(clause, applications)
        total += words if clause.absent == "false" else 0
    connectives = sum(1 for _ in rule.tree().find_all(exp.And, exp.Or))
    if _per_member(rule):  # the household size's range check, and its AND into each per-member clause
        total += _boolean.comparison_triple_words(">=", applications) + _boolean.comparison_triple_words(
            "<=", applications
        )
        total += words * (1 + sum(1 for c in rule.clauses.values() if c.per_member))
    return Reservation.covering(bit_triple_words=total + connectives * words)


def _per_member(rule: Rule) -> bool:
    return any(c.per_member for c in rule.clauses.values())


def _evaluate_shared(tree: exp.Expr, bits: Mapping[str, BooleanShare]) -> BooleanShare:
    return formula.evaluate(tree, lambda leaf: bits[leaf.name], formula.SHARED)


def padded_slots(largest: int, cap: int) -> int:
    """Member slots per application for a batch whose largest household has ``largest`` members:
    the next of :data:`SLOT_CLASSES`, at most ``cap`` (the smallest cap of the owners involved).
    Owners and the co-party see the slots, so they learn the size class, not a household's size."""
    if largest > cap:
        raise RuleError(f"a household of {largest} members exceeds the owners' cap of {cap} members")
    return min(next(c for c in SLOT_CLASSES if c >= largest), cap)


def household_tables(rule: Rule) -> set[TableKey]:
    """Tables read by a household-sum clause: looked up for every member slot. Tables that only
    applicant clauses read are looked up for the applicant alone (one row per application)."""
    return {
        (c.owner, str(c.dataset)) for c in rule.clauses.values() if not c.is_predicate and c.scope == "household-sum"
    }


def table_rows(rule: Rule, key: TableKey, applications: int, slots: int) -> int:
    """Rows of a table's shares: ``applications * slots`` for household tables, else one per application."""
    return applications * (slots if key in household_tables(rule) else 1)


def table_columns(rule: Rule) -> dict[TableKey, tuple[str, ...]]:
    """The columns each (owner, dataset) must supply, in a stable order."""
    needed: dict[TableKey, list[str]] = {}
    for clause in rule.clauses.values():
        if clause.is_predicate:
            continue
        assert clause.dataset and clause.column
        columns = needed.setdefault((clause.owner, clause.dataset), [])
        if clause.column not in columns:
            columns.append(clause.column)
    return {key: tuple(columns) for key, columns in needed.items()}
