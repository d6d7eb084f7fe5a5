"""P4 eligibility, the requester's role: predicate bits by the owners' filters (P2), lookups of
every household member at every owner whose table a household clause reads (P3 or P1, planned
per owner; of the applicant alone elsewhere), the other owners forwarding their shares to the
rule's co-party, then the approved rule on shares with it (:mod:`mpc.protocols.rules`); one bit
per application, and the consented clause bits, revealed to us only.

Households are padded to a size class (:func:`mpc.protocols.rules.padded_slots`), so owners and
the co-party learn the number of applications and that class, not who belongs to which household.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mpc.protocols import planner, rules
from mpc.protocols.programs import RULE, RuleParams, SharesRef
from parties.requester import lookup, oprf, programs
from parties.requester.results import Eligibility
from protos import party_pb2

if TYPE_CHECKING:
    from parties.requester.client import Client

__all__ = ["check"]


def check(
    client: Client,
    rule: rules.Rule,
    applications: Sequence[rules.Application],
    reveal: Sequence[str] = (),
    path: planner.Path | None = None,
) -> Eligibility:
    """The bits, the bits of the clauses in ``reveal`` (whose owners consent), and the path each
    owner's lookup took (planned unless ``path`` forces one)."""
    if not applications:
        return Eligibility(np.zeros(0, dtype=np.uint8))
    predicate_bits = {
        name: oprf.predicate_bits(client, c.owner, str(c.predicate), [a.applicant for a in applications]).tolist()
        for name, c in rule.clauses.items()
        if c.is_predicate
    }
    known = {n: np.array(predicate_bits[n], dtype=np.uint8) for n in reveal if n in predicate_bits}  # ours anyway
    reveal = [n for n in reveal if n not in predicate_bits]
    if all(c.is_predicate for c in rule.clauses.values()):  # we already know every bit
        tree = rule.tree()
        bits = np.array(
            [
                int(rules.evaluate_tree(tree, {n: bool(b[i]) for n, b in predicate_bits.items()}))
                for i in range(len(applications))
            ],
            dtype=np.uint8,
        )
        return Eligibility(bits, known)
    if not rule.name:
        raise ValueError("owners approve rules by name: load the rule from a rules file (RuleSet.get)")
    repeated = next((a.reference for a in applications if len(set(a.members)) != len(a.members)), None)
    if repeated is not None:  # a member counted twice would scale a per-member threshold by j/k
        raise ValueError(f"application {repeated} lists a member more than once")
    for application in applications:
        problem = rule.declared_problem(application)
        if problem is not None:
            raise rules.DeclaredValueError(f"application {application.reference}: {problem}")
    cap = min(
        client.listing(c.owner).max_household or rules.MAX_MEMBERS for c in rule.clauses.values() if not c.is_predicate
    )
    slots = rules.padded_slots(max(len(a.members) for a in applications), cap)
    co_party = rule.co_party_for(client.name)
    params = RuleParams(
        name=rule.name, rule=rule, applications=len(applications), slots=slots, tables=(), reveal=tuple(reveal)
    )
    ids: list[str | None] = [a.members[k] if k < len(a.members) else None for a in applications for k in range(slots)]
    padding = np.array([i is None for i in ids])
    household = rules.household_tables(rule)
    layout = rules.table_columns(rule)
    # Every owner's rows first (first use may make an owner encrypt its table), then the masked
    # decryptions back to back, so that no owner holds shares long before the program runs.
    fetched = {
        key: lookup.fetch(
            client, key[0], key[1], columns, ids if key in household else _keys(rule, key, applications), path
        )
        for key, columns in layout.items()
    }
    co_party_name = next(f.owner for key, f in fetched.items() if key[0] == co_party)
    # the dealer's reply arrives while the owners decrypt
    dealer = programs.dealer_session(client, co_party_name, RULE.reservation(params))
    tables: dict[rules.TableKey, rules.ShareTable] = {}
    presence: dict[rules.TableKey, np.ndarray] = {}
    refs: list[SharesRef] = []
    try:
        for (owner, dataset), columns in layout.items():
            shared = lookup.decrypt(client, fetched[(owner, dataset)])
            present = shared.present
            if (owner, dataset) in household:
                present[padding] = 1  # padding counts as present (with zero values): only we know it
            tables[(owner, dataset)] = rules.ShareTable(tuple(columns), shared.shares)
            presence[(owner, dataset)] = present
            refs.append(SharesRef(owner=owner, dataset=dataset, session=shared.session_id, columns=tuple(columns)))
            if owner != co_party:  # only for the rule it approved, over exactly these rows
                client.call(
                    owner,
                    client.party_stub(owner).ForwardShares,
                    party_pb2.ForwardRequest(
                        session_id=shared.session_id,
                        co_party=co_party,
                        rule_name=rule.name,
                        rule=rule.model_dump_json().encode(),
                        applications=len(applications),
                        slots=slots,
                    ),
                    timeout=300,
                )
    except BaseException:
        dealer.close()
        raise
    params = params.model_copy(update={"tables": tuple(refs)})
    declared = {
        name: [c.declared_value(a) for a in applications] for name, c in rule.clauses.items() if c.declared is not None
    }
    inputs = rules.RequesterInputs([len(a.members) for a in applications], predicate_bits, presence, declared)
    outcome, _ = programs.run(
        client, co_party, dealer, RULE, params, lambda p: programs.revealed(RULE.run(p, params, tables, inputs))
    )
    return Eligibility(outcome.bits, {**known, **outcome.clauses}, tuple(f.plan for f in fetched.values()))


def _keys(rule: rules.Rule, table: rules.TableKey, applications: Sequence[rules.Application]) -> list[str | None]:
    """The ids an applicant-only table is looked up by: the applicants', or the composite keys of
    applicant and declared code where the clauses name ``key_declared``."""
    clause = next(c for c in rule.clauses.values() if not c.is_predicate and (c.owner, c.dataset) == table)
    return [clause.lookup_key(a) for a in applications]
