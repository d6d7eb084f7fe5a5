"""The owner's policy gate: every request's policy requirements, checked by one call per request.

Handlers never read the policy themselves. A P1/P2/P3 handler asks the gate for the dataset or
predicate it serves, and a program (or a forwarding for one) hands the gate the
:class:`~mpc.protocols.programs.Requirements` of its registry entry: the program grant, the
size limits, the rule's approval by fingerprint, the household cap, the owners' consent to
reveal clause bits, each column for its use, minimum cells, noise and the gateway. Budgets are
charged by :meth:`Admission.charge`, after the handler's own consistency checks, so a refused
request costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from pydantic import ValidationError

from mpc.data.sources import Dataset
from mpc.policy import PeerPolicy, Policy
from mpc.protocols import aggregate as agg
from mpc.protocols import privacy, rules
from mpc.protocols.programs import PROGRAMS, Program, Requirements, program
from parties.config import PredicateSpec, format_validation_error
from parties.rpc.boundary import Call, ServiceError

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["Admission", "Gate", "Handlers"]


@dataclass
class Admission:
    """A request the policy admits: the approved rule's fingerprint (rules), the dataset the
    aggregate reads, and the budgets to charge once the handler has checked its inputs."""

    gate: Gate
    call: Call
    requirements: Requirements
    fingerprint: str = ""
    dataset: Dataset | None = None
    epsilon_cost: float | None = None

    def charge(self) -> None:
        """Spend the computation (and privacy) budgets; RESOURCE_EXHAUSTED past a limit."""
        budgets = self.gate.daemon.budgets
        if self.requirements.computation:
            budgets.computation(self.call, self.requirements.computation)
        if self.epsilon_cost is not None:
            budgets.epsilon(self.call, self.epsilon_cost)


class Gate:
    """One daemon's policy, applied at the service boundary."""

    def __init__(self, daemon: PartyDaemon) -> None:
        self.daemon = daemon

    @property
    def _policy(self) -> Policy:
        return self.daemon.config.policy

    # ------------------------------------------------------------------ P1, P2, P3
    def grant(self, call: Call) -> PeerPolicy:
        """The caller's grant for its purpose (PERMISSION_DENIED without one)."""
        return self._policy.check_purpose(call.peer, call.purpose)

    def listing(self, call: Call) -> PeerPolicy:
        """The caller's grant, purpose or not (what ListDatasets shows it)."""
        return self._policy.peer(call.peer)

    def catalogue_rows(self, rows: int) -> int:
        """A dataset's row count as our catalogue shows it (rounded up to our granularity)."""
        return self._policy.catalogue_rows(rows)

    def predicate(self, call: Call, name: str) -> PredicateSpec:
        """P2: a published predicate the caller may query."""
        spec = self.daemon.predicate(name)
        self._policy.check_predicate(call.peer, call.purpose, spec.name)
        return spec

    def dataset(
        self, call: Call, name: str, *, psi: bool = False, batch: bool = False, intersection: bool = False
    ) -> Dataset:
        """A dataset the caller may match ids against (``psi``), learn which match
        (``intersection``), or read whole (``batch``)."""
        data = self.daemon.require_dataset(name)
        self._policy.check_dataset(call.peer, call.purpose, data, psi=psi, batch=batch, intersection=intersection)
        return data

    def readable(
        self, call: Call, name: str, columns: list[str], *, batch: bool = False
    ) -> tuple[Dataset, tuple[str, ...]]:
        """P3: columns the caller may have looked up on shares (each once, each granted a share use)."""
        data = self.daemon.require_dataset(name)
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("name at least one column, each once")
        unknown = [c for c in columns if c not in data.columns]
        if unknown:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"dataset {name!r} has no column(s) {unknown}")
        self._policy.check_readable(call.peer, call.purpose, data, columns)
        if batch:  # P1 over the whole table: the owner learns position classes only
            self._policy.check_dataset(call.peer, call.purpose, data, batch=True)
        return data, tuple(columns)

    # ------------------------------------------------------------------ programs (P4, P5, selftest)
    def program(self, call: Call, name: str) -> Program[Any]:
        """The registry entry of a program the caller may start here (its grant first, so an
        ungranted name is refused the same whether or not it exists)."""
        self._policy.check_program(call.peer, call.purpose, name)
        if name not in PROGRAMS:
            raise ServiceError(grpc.StatusCode.UNIMPLEMENTED, f"unknown program {name!r}")
        return program(name)

    def admit(self, call: Call, requirements: Requirements) -> Admission:
        """Every policy requirement of one run (or forwarding) of a program, in order; nothing is
        charged yet (:meth:`Admission.charge`)."""
        policy, me = self._policy, self.daemon.name
        if requirements.program is not None:
            policy.check_program(call.peer, call.purpose, requirements.program)
        grant = policy.check_purpose(call.peer, call.purpose)
        limit = requirements.limit or self.daemon.config.party.max_points_per_request
        if not 0 <= requirements.rows <= limit:
            raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{requirements.rows} rows: more than {limit}")
        admission = Admission(self, call, requirements)
        if requirements.rule is not None:
            name, rule = requirements.rule
            # thresholds are never the caller's to choose: exactly the rule we approved
            admission.fingerprint = self.daemon.approvals.check(call.peer, call.purpose, name, rule)
            if requirements.slots is not None and requirements.slots > grant.max_household:
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"households of {requirements.slots} members exceed {me}'s cap of {grant.max_household} "
                    f"for {call.peer}",
                )
            for (owner, dataset), columns in rules.table_columns(rule).items():  # our columns, compared
                if owner == me:
                    policy.check_dataset(
                        call.peer,
                        call.purpose,
                        self.daemon.require_dataset(dataset),
                        psi=True,
                        columns=dict.fromkeys(columns, "compare"),
                    )
            for clause_name in requirements.reveal:  # a clause bit is revealed only with its owner's consent
                clause = rule.clauses.get(clause_name)
                if clause is None or not clause.reveal or clause.is_predicate:
                    raise ValueError(f"clause {clause_name!r} is not a revealable column clause of this rule")
                if clause.owner == me and not grant.reveal_clauses:
                    raise ServiceError(
                        grpc.StatusCode.PERMISSION_DENIED, f"{me} does not let {call.peer} see clause {clause_name!r}"
                    )
        if requirements.aggregate is not None:
            admission.dataset = self._aggregate(call, requirements.aggregate, grant)
        return admission

    def aggregate(self, call: Call, raw: str | bytes, rows: int) -> tuple[agg.AggregateRequest, Dataset]:
        """CheckAggregate: an aggregate request (as sent) against our policy, before anything runs."""
        try:
            request = agg.AggregateRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"malformed aggregate request: {format_validation_error(exc, 'request')}") from None
        admission = self.admit(call, Requirements(None, rows, aggregate=request))
        assert admission.dataset is not None
        return request, admission.dataset

    def _aggregate(self, call: Call, request: agg.AggregateRequest, grant: PeerPolicy) -> Dataset:
        """The join key (id matching) and each of our columns for what the request does with it;
        the gateway's consent, or between agencies our minimum cell, one-sided filters and noise."""
        policy, me = self._policy, self.daemon.name
        data = self.daemon.require_dataset(request.peer_dataset)
        uses = request.uses("peer")
        unknown = sorted(set(uses) - set(data.columns))
        if unknown:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"dataset {data.name!r} has no column(s) {unknown}")
        policy.check_dataset(call.peer, call.purpose, data, psi=True, columns=uses)
        if request.reveal_to == "gateway":  # we also consent to the gateway seeing the noised cells
            policy.check_gateway(request.gateway, call.peer)
            policy.check_dataset(request.gateway, call.purpose, data, columns=uses)
        else:  # cells between agencies open only above our minimum count (compared on shares), noised if we say so
            if request.min_cell < grant.min_cell:
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{me} opens cells of at least {grant.min_cell} rows to {call.peer}; "
                    f"the request asks for {request.min_cell}",
                )
            mixed = request.mixed_sides()
            if mixed:  # an OR (or NOT) over both sides lets the requester's own rows fill a cell
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{me} takes filters between agencies as (our comparisons) AND (yours) only; "
                    f"{mixed!r} mixes both sides",
                )
            if grant.release_epsilon is not None and any(r.side == "initiator" for r in request.summed()):
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{me} adds noise to releases to {call.peer}: sums of the requester's "
                    f"own columns (whose bounds it declares) are not released with it",
                )
            if grant.release_epsilon is not None and (
                request.epsilon is None or request.epsilon > grant.release_epsilon
            ):
                raise ServiceError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{me} releases cells to {call.peer} only noised with epsilon <= "
                    f"{grant.release_epsilon:g}; the request asks for "
                    + ("exact cells" if request.epsilon is None else f"epsilon {request.epsilon:g}"),
                )
        return data

    def epsilon_cost(self, admission: Admission, schemas: agg.Schemas) -> None:
        """A noised release between agencies spends the purpose's ε budget (charged with the rest)."""
        request = admission.requirements.aggregate
        if request is not None and request.reveal_to != "gateway" and request.epsilon is not None:
            admission.epsilon_cost = privacy.release_cost(request, schemas)

    def gateway_job(self, call: Call, request: agg.AggregateRequest) -> Admission:
        """RunAggregate: the gateway's own job over our dataset (as initiator, or alone); the
        computation is charged once the handler has checked the job (:meth:`Admission.charge`)."""
        if request.reveal_to != "gateway" or request.gateway != call.peer:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED, f"{call.peer} may only run aggregates it receives itself"
            )
        policy = self._policy
        policy.check_gateway(call.peer)  # a requester naming itself the gateway is refused here
        policy.check_program(call.peer, call.purpose, "aggregate")
        data = self.daemon.require_dataset(request.initiator_dataset)
        uses = request.uses("initiator")
        unknown = sorted(set(uses) - set(data.columns))
        if unknown:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"dataset {data.name!r} has no column(s) {unknown}")
        policy.check_dataset(call.peer, call.purpose, data, columns=uses)
        return Admission(self, call, Requirements("aggregate", 0, computation="aggregate"), dataset=data)

    # ------------------------------------------------------------------ co-party forwarding (P4)
    def forward(self, call: Call, co_party: str) -> bool:
        """The caller's shares may go to ``co_party``; whether its clause bits may be revealed."""
        self._policy.check_forward(call.peer, call.purpose, co_party)
        return bool(self._policy.peer(call.peer).reveal_clauses)

    def receive(self, call: Call) -> None:
        """The caller (an owner) may hand us shares as a rule's co-party."""
        self._policy.check_receive(call.peer, call.purpose)


class Handlers:
    """The handlers of one protocol: the daemon they serve and the gate they ask."""

    def __init__(self, daemon: PartyDaemon, gate: Gate) -> None:
        self.daemon, self.gate = daemon, gate
