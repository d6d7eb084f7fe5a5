"""The registry of secret-sharing programs: one entry per program two parties run on shares.

Each entry owns what the two parties must agree on before the dealer deals anything:

- a typed parameter model (pydantic): what the requester (party 0) sends the co-party in
  ``ShareStart.params``, validated on arrival (a malformed field is a one-line error naming it);
- its correlated-randomness reservation (what the coordinator deals up front);
- its policy requirements (:class:`Requirements`): the grants, approvals, caps, consents and
  budgets an owner's policy must allow; the owner's daemon checks them in one gate;
- the function each role runs, from the protocol module that explains its steps
  (:mod:`mpc.protocols.rules`, :mod:`mpc.protocols.aggregate`, :mod:`mpc.protocols.selftest`).

The requester's client builds the parameters and runs party 0; the co-party's daemon looks the
program up by name, parses the parameters, admits the requirements and runs party 1. A name not
in :data:`PROGRAMS` is refused before anything else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mpc.protocols import aggregate as agg
from mpc.protocols import rules, selftest
from mpc.sharing.dealer import Reservation
from mpc.sharing.runtime import Party

__all__ = [
    "AGGREGATE",
    "PROGRAMS",
    "RULE",
    "SELFTEST_COMPARE",
    "SESSION_ID",
    "AggregateParams",
    "AggregateProgram",
    "Program",
    "ProgramError",
    "ProgramParams",
    "Requirements",
    "RuleParams",
    "RuleProgram",
    "SelftestCompare",
    "SelftestParams",
    "SharesRef",
    "program",
]

SESSION_ID = r"^[0-9a-f]{32}$"  # what uuid4().hex gives: it keys held shares, so it can name nothing else
P = TypeVar("P", bound="ProgramParams")


class ProgramError(ValueError):
    """An unknown program or parameters that do not validate; the message names the field."""


class ProgramParams(BaseModel):
    """What party 0 sends with ``ShareStart``: public to both parties, validated by the co-party."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SelftestParams(ProgramParams):
    n: int = Field(ge=0)
    seed: int


class SharesRef(ProgramParams):
    """Shares the co-party holds for the requester: of ``owner``'s ``dataset``, under ``session``
    (from its own masked decryption, or forwarded by that owner)."""

    owner: str
    dataset: str
    session: str = Field(pattern=SESSION_ID)
    columns: tuple[str, ...] = ()  # as the requester reads them (the co-party checks its held shares)


class RuleParams(ProgramParams):
    """P4: the approved rule (by name and content; its owners check the fingerprint), the batch's
    size, the shares each table's lookup left with the co-party, and the clauses whose bits the
    requester asks to see (reason codes)."""

    name: str
    rule: rules.Rule
    applications: int = Field(ge=0)
    slots: int = Field(ge=1, le=rules.MAX_MEMBERS)
    tables: tuple[SharesRef, ...]
    reveal: tuple[str, ...] = ()

    @property
    def shape(self) -> rules.RuleShape:
        return rules.RuleShape(self.rule, self.applications, self.slots, self.reveal)


class AggregateParams(ProgramParams):
    """P5: the request, the rows of the intersection it is computed on, the session of the peer's
    masked decryption (None when the request reads no column of the peer's) and the declared
    columns of the initiator's dataset (the peer's own it takes from its own schema)."""

    request: agg.AggregateRequest
    rows: int = Field(ge=0)
    session: str | None = Field(default=None, pattern=SESSION_ID)
    initiator: dict[str, agg.ColumnInfo] = Field(default_factory=dict)
    peer: dict[str, agg.ColumnInfo] = Field(default_factory=dict)

    @field_validator("initiator", "peer")
    @classmethod
    def _declared(cls, columns: dict[str, agg.ColumnInfo]) -> dict[str, agg.ColumnInfo]:
        for name, info in columns.items():
            if info.type == "int" and (info.min is None or info.max is None or info.min > info.max):
                raise ValueError(f"column {name!r}: an int column needs bounds min <= max")
            if info.type == "category" and not info.labels:
                raise ValueError(f"column {name!r}: a category column needs its labels")
            if info.type not in ("int", "bool", "category"):
                raise ValueError(f"column {name!r}: type {info.type!r} is not int, bool or category")
        return columns

    def schemas(self, peer: Mapping[str, agg.ColumnInfo] | None = None) -> dict[agg.Side, dict[str, agg.ColumnInfo]]:
        """Both sides' columns; ``peer`` (the co-party's own declaration) overrides what was sent."""
        return {"initiator": dict(self.initiator), "peer": dict(self.peer if peer is None else peer)}


@dataclass(frozen=True)
class Requirements:
    """What an owner's policy must allow before a program (or a forwarding for one) touches its
    data. The owner's daemon checks all of them in one call, in this order, and charges the
    budgets last, so a refused request costs nothing."""

    program: str | None  # the program grant (PeerPolicy.programs); None: not started here
    rows: int  # rows or applications, within ``limit``
    limit: int | None = None  # the most rows the program takes (None: the owner's per-request limit)
    computation: str | None = None  # charged to the computation budgets under this name
    rule: tuple[str, rules.Rule] | None = None  # the rule, approved by name and fingerprint
    slots: int | None = None  # member slots per application, within the owner's household cap
    reveal: tuple[str, ...] = ()  # clause bits revealed to the requester: each needs its owner's consent
    aggregate: agg.AggregateRequest | None = None  # the peer's columns and uses, min cell, noise, gateway


class Program(ABC, Generic[P]):
    """One registry entry. ``requester_starts``: the requester runs party 0 (its results are
    revealed to it alone), so a co-party refuses to run party 0 of it."""

    name: ClassVar[str]
    params: type[P]
    requester_starts: ClassVar[bool] = True
    learned: ClassVar[str] = "nothing (shares only)"  # what the co-party learns, as it reports

    def parse(self, raw: bytes | str) -> P:
        """The parameters as sent, validated (:class:`ProgramError` names the first bad field)."""
        try:
            return self.params.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(parameters)"
            raise ProgramError(f"bad parameters for {self.name}: {where}: {first['msg']}") from None

    @abstractmethod
    def reservation(self, params: P) -> Reservation:
        """What the dealer deals up front for this run (both parties announce the same)."""

    @abstractmethod
    def requirements(self, params: P) -> Requirements:
        """The owner's policy requirements of this run (see :class:`Requirements`)."""


class SelftestCompare(Program[SelftestParams]):
    """``x < y`` for the initiator's values and the co-party's public ones (:mod:`mpc.protocols.selftest`)."""

    name = "selftest-compare"
    params = SelftestParams
    requester_starts = False

    def reservation(self, params: SelftestParams) -> Reservation:
        return selftest.compare_reservation(params.n)

    def requirements(self, params: SelftestParams) -> Requirements:
        return Requirements(self.name, params.n, limit=selftest.MAX_SELFTEST_VALUES)

    @staticmethod
    def run(
        party: Party, params: SelftestParams, initiator: int, values: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Both roles: the initiator passes its values and gets the bits."""
        return selftest.compare_program(party, params.n, params.seed, initiator, values)


class RuleProgram(Program[RuleParams]):
    """P4: an approved eligibility rule on shares (:mod:`mpc.protocols.rules`)."""

    name = "rule"
    params = RuleParams

    def reservation(self, params: RuleParams) -> Reservation:
        return rules.rule_reservation(params.rule, params.applications)

    def requirements(self, params: RuleParams) -> Requirements:
        return Requirements(
            self.name,
            params.applications,
            computation="rule",
            rule=(params.name, params.rule),
            slots=params.slots,
            reveal=params.reveal,
        )

    def forwarding(self, name: str, rule: rules.Rule, applications: int, slots: int) -> Requirements:
        """An owner handing its shares of this rule to the co-party: the same approval, cap and
        columns, and a computation on its data, without a program started here."""
        return Requirements(None, applications, computation="rule", rule=(name, rule), slots=slots)

    @staticmethod
    def run(
        party: Party,
        params: RuleParams,
        tables: Mapping[rules.TableKey, rules.ShareTable],
        inputs: rules.RequesterInputs | None = None,
    ) -> rules.RuleOutcome | None:
        """Both roles: the requester is party 0 and passes ``inputs``; the co-party gets None."""
        return rules.rule_program(party, params.shape, tables, inputs, requester=0)


class AggregateProgram(Program[AggregateParams]):
    """P5: COUNT / SUM / MEAN per group over a join, on shares (:mod:`mpc.protocols.aggregate`)."""

    name = "aggregate"
    params = AggregateParams

    def reservation(self, params: AggregateParams) -> Reservation:
        groups = len(params.request.groups(params.schemas()))
        return agg.aggregate_reservation(params.request, params.rows, groups)

    def requirements(self, params: AggregateParams) -> Requirements:
        return Requirements(self.name, params.rows, computation="aggregate", aggregate=params.request)

    @staticmethod
    def run(
        party: Party,
        params: AggregateParams,
        schemas: agg.Schemas,
        shares: np.ndarray,
        inputs: agg.InitiatorInputs | None = None,
        noise: np.ndarray | None = None,
    ) -> agg.AggregateResult | agg.CellShares | None:
        """Both roles: the initiator is party 0 and passes ``inputs``; ``shares`` are this party's
        of the peer's looked-up columns; ``noise`` its own sample (see the protocol module)."""
        return agg.aggregate_program(party, params.request, schemas, params.rows, shares, inputs, noise)


SELFTEST_COMPARE = SelftestCompare()
RULE = RuleProgram()
AGGREGATE = AggregateProgram()
PROGRAMS: dict[str, Program[Any]] = {p.name: p for p in (SELFTEST_COMPARE, RULE, AGGREGATE)}


def program(name: str) -> Program[Any]:
    """The registry entry of ``name`` (:class:`ProgramError` for a name not offered)."""
    entry = PROGRAMS.get(name)
    if entry is None:
        raise ProgramError(f"unknown program {name!r} (offered: {sorted(PROGRAMS)})")
    return entry
