"""``GET /v1/rules``: the rules of the service's rules file, each with its fingerprint (what owners
approve) and what each owner's listing shows of it.

Owners publish no approvals: no RPC tells a requester which rules an owner approved for it (the
owner checks the approval when the rule runs, and refuses with its reason). What a requester can
see is each owner's listing of the datasets and columns it grants us (ListDatasets): a rule
whose compared columns an owner does not grant for comparison cannot run there. The last outcome
of this service's own checks of the rule is shown beside it.
"""

from __future__ import annotations

from mpc.protocols.rules import Rule, table_columns
from parties.requester import Client, RemoteError
from parties.requester.service.checks import Checker, error_reason
from parties.requester.service.models import OwnerGrant, RuleOut
from protos import party_pb2

__all__ = ["rules_listing"]

LISTING_CASE = "rules-listing"  # the case reference the owners' audit logs show for these listings


def rules_listing(checker: Checker, purpose: str) -> list[RuleOut]:
    client = checker.for_call(purpose, LISTING_CASE)
    return [
        RuleOut(
            name=name,
            description=rule.description,
            fingerprint=rule.fingerprint(),
            owners=[_grant(client, rule, owner) for owner in rule.owners()],
            last_check=checker.last.get(name, ""),
        )
        for name, rule in sorted(checker.rules.rules.items())
    ]


def _grant(client: Client, rule: Rule, owner: str) -> OwnerGrant:
    wanted = {dataset: columns for (o, dataset), columns in table_columns(rule).items() if o == owner}
    if not wanted:
        return OwnerGrant(owner=owner, columns_granted=None, detail="published predicates only (not listed)")
    try:
        listing = client.listing(owner)
    except RemoteError as exc:
        return OwnerGrant(owner=owner, columns_granted=None, detail=error_reason(exc))
    except LookupError as exc:
        return OwnerGrant(owner=owner, columns_granted=None, detail=str(exc))
    missing = [m for dataset, columns in wanted.items() for m in _missing(listing, dataset, columns)]
    return OwnerGrant(owner=owner, columns_granted=not missing, detail="; ".join(missing))


def _missing(listing: party_pb2.DatasetList, dataset: str, columns: tuple[str, ...]) -> list[str]:
    schema = next((d for d in listing.datasets if d.name == dataset), None)
    if schema is None:
        return [f"dataset {dataset!r} not granted"]
    uses = {c.name: set(c.allowed_uses) for c in schema.columns}
    return [f"{dataset}.{c} not granted for comparison" for c in columns if "compare" not in uses.get(c, set())]
