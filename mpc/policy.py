"""An owner's policy: which peer may use which columns, for which purposes, how often.

Checked once, at the service boundary, before any cryptography runs. A refusal names the rule that
failed (peer, purpose, dataset, column, use), so that the caller gets a precise PERMISSION_DENIED.
Columns classified ``secret`` are never usable, whatever a grant says.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection, Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mpc.data.schema import DatasetSpec

__all__ = [
    "PURPOSE_PATTERN",
    "SHARE_USES",
    "DatasetGrant",
    "DeclaredDataset",
    "Limits",
    "PeerPolicy",
    "Policy",
    "PolicyError",
    "RateLimitExceeded",
    "RateLimiter",
    "Use",
]

Use = Literal["psi", "oprf", "lookup", "compare", "join_key", "filter", "aggregate", "group_by"]
# Any of these lets a peer have a column encrypted, looked up and secret-shared (the program that
# follows checks the exact use: "compare" for rules, "filter" / "aggregate" / "group_by" for
# aggregates; "group_by" means the column may be used as a *plain* group key, opened to both
# compute parties).
SHARE_USES: tuple[Use, ...] = ("lookup", "compare", "filter", "aggregate", "group_by")
PURPOSE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class DeclaredDataset(Protocol):
    """A dataset as the policy reads it: its name and its declaration (the columns'
    classifications). :class:`mpc.data.sources.Dataset` is one; the policy takes the dataset
    itself, so that no caller can forget a column's classification."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> DatasetSpec: ...


def _never_secret(dataset: DeclaredDataset, column: str) -> None:
    declared = dataset.spec.schema_.columns.get(column)
    if declared is not None and declared.classification == "secret":
        raise PolicyError(f"column {dataset.name}.{column} is classified secret and never usable")


class PolicyError(PermissionError):
    """A request this owner's policy does not allow; the message names the failed rule."""


class DatasetGrant(BaseModel):
    """What one peer may do with one dataset."""

    model_config = ConfigDict(extra="forbid")

    psi: bool = False  # may match against the id column (PSI cardinality, OPRF, lookups by id)
    # PSI in intersection mode: the peer learns *which* of its ids we hold, not only how many
    psi_intersection: bool = False
    # Whole-table access: P1 batch lookups (the encrypted table, packed decryptions) and the
    # owner's tags (GetTags). This owner then learns, per looked-up row, its position class (one
    # of g, each about rows/g of the table) instead of its bucket. Every grant states it: a
    # grant without it is refused when the configuration loads.
    batch: bool
    columns: dict[str, list[Use]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _batch_is_stated(cls, data: object) -> object:
        if isinstance(data, Mapping) and "batch" not in data:
            raise ValueError(
                "batch: state it (true or false): whole-table access (P1 batches, the owner's tags) "
                "is an explicit choice in every grant"
            )
        return data


class Limits(BaseModel):
    """Budgets per peer and purpose, counted persistently by the owner (they survive a restart).
    Past a limit the call is refused with RESOURCE_EXHAUSTED and an alert is raised."""

    model_config = ConfigDict(extra="forbid")

    computations_per_day: int = Field(default=1_000, ge=0)  # rule and aggregate programs on our data, per UTC day
    computations_per_case: int = Field(default=20, ge=0)  # the same, per case reference (ever)
    oprf_per_epoch: int = Field(default=1_000_000, ge=0)  # ids evaluated per key (dataset or predicate) and epoch
    psi_per_day: int = Field(default=10_000_000, ge=0)  # ids matched by ECDH-PSI per dataset and UTC day
    batch_per_day: int = Field(default=50, ge=0)  # whole-table fetches (P1 tables, owner tags) per dataset and UTC day
    bucket_window_hours: float = Field(default=24.0, gt=0)
    bucket_alert_after: int = Field(default=5, ge=1)  # the same bucket fetched this often in a window raises an alert
    bucket_queries_per_window: int = Field(default=20, ge=1)  # ... and this often is refused


class PeerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purposes: list[str] = Field(default_factory=list)
    datasets: dict[str, DatasetGrant] = Field(default_factory=dict)
    rate_limit_per_minute: int = Field(600, ge=1)
    programs: list[str] = Field(default_factory=list)  # secret-sharing programs it may start here
    co_parties: list[str] = Field(default_factory=list)  # owners we forward this peer's session shares to
    forward_shares: bool = False  # this peer (an owner) may hand us shares as a rule's co-party
    predicates: list[str] = Field(default_factory=list)  # published predicates (P2) it may query
    reveal_clauses: bool = False  # clause bits computed from our data may be revealed to it (reason codes)
    # P4: the largest household a rule's per-member threshold may be multiplied by (slots per application)
    max_household: int = Field(10, ge=1, le=64)
    # Aggregates between agencies: a cell opens only when its count, compared on shares, reaches this
    min_cell: int = Field(default=10, ge=1)
    # ... and, when set, only noised (OpenDP discrete Laplace) with at most this ε per query,
    # within a total budget per purpose (kept with the other budgets)
    release_epsilon: float | None = Field(default=None, gt=0, le=100)
    release_epsilon_budget: float = Field(default=10.0, gt=0)
    # this peer is the platform's researcher sandbox: it may run aggregates here and receive noised
    # cell shares (no requester may name itself the gateway)
    gateway: bool = False
    limits: Limits = Field(default_factory=Limits)

    @field_validator("purposes")
    @classmethod
    def _purpose_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not PURPOSE_PATTERN.match(code):
                raise ValueError(f"purpose code {code!r} must match {PURPOSE_PATTERN.pattern}")
        return value


class Policy(BaseModel):
    """The ``[policy]`` section of a party daemon's configuration."""

    model_config = ConfigDict(extra="forbid")

    peers: dict[str, PeerPolicy] = Field(default_factory=dict)
    # ListDatasets (and so the gateway's catalogue) shows each dataset's row count rounded UP to a
    # multiple of this (0 stays 0), never the exact count: bounds computed from it stay conservative.
    catalogue_row_granularity: int = Field(default=1000, ge=1)

    def catalogue_rows(self, rows: int) -> int:
        """``rows`` as the catalogue shows it: rounded up to a multiple of ``catalogue_row_granularity``."""
        step = self.catalogue_row_granularity
        return -(-rows // step) * step

    def peer(self, name: str) -> PeerPolicy:
        try:
            return self.peers[name]
        except KeyError:
            raise PolicyError(f"peer {name!r} has no grant in this party's policy") from None

    def check_purpose(self, peer: str, purpose: str) -> PeerPolicy:
        grant = self.peer(peer)
        if not purpose:
            raise PolicyError("no purpose code given (metadata x-purpose)")
        if purpose not in grant.purposes:
            raise PolicyError(f"purpose {purpose!r} is not allowed for peer {peer!r}")
        return grant

    def check_dataset(
        self,
        peer: str,
        purpose: str,
        dataset: DeclaredDataset,
        *,
        psi: bool = False,
        batch: bool = False,
        intersection: bool = False,
        columns: Mapping[str, Use | Collection[Use]] | None = None,
    ) -> None:
        """Raise :class:`PolicyError` unless ``peer`` may use ``dataset`` this way for ``purpose``
        (``psi``: match ids, the dataset's join key; ``intersection``: learn which ids match;
        ``batch``: whole-table access, P1 batch lookups and the owner's tags; ``columns``: each
        column for its use, or for every use of a set). A column classified secret never is."""
        name = dataset.name
        grant = self.check_purpose(peer, purpose).datasets.get(name)
        if grant is None:
            raise PolicyError(f"peer {peer!r} has no grant on dataset {name!r}")
        if psi and not grant.psi:
            raise PolicyError(f"peer {peer!r} may not match ids against dataset {name!r} (not a join key for it)")
        if intersection and not grant.psi_intersection:
            raise PolicyError(
                f"peer {peer!r} may not learn which ids match dataset {name!r} "
                f"(PSI intersection is not granted; cardinality is)"
                if grant.psi
                else f"peer {peer!r} may not learn which ids match dataset {name!r}"
            )
        if batch and not grant.batch:
            raise PolicyError(f"peer {peer!r} may not make batch lookups (whole table) of dataset {name!r}")
        for column, uses in (columns or {}).items():
            _never_secret(dataset, column)
            for use in sorted([uses] if isinstance(uses, str) else uses):
                if use not in grant.columns.get(column, []):
                    raise PolicyError(f"peer {peer!r} may not use column {name}.{column} for {use!r}")

    def check_readable(self, peer: str, purpose: str, dataset: DeclaredDataset, columns: Collection[str]) -> None:
        """Each column may be secret-shared with ``peer``: it holds at least one of :data:`SHARE_USES`."""
        self.check_dataset(peer, purpose, dataset, psi=True)
        granted = self.peers[peer].datasets[dataset.name].columns
        for column in columns:
            _never_secret(dataset, column)
            if not set(granted.get(column, [])) & set(SHARE_USES):
                raise PolicyError(
                    f"peer {peer!r} may not use column {dataset.name}.{column} on shares "
                    f"(it needs one of {list(SHARE_USES)})"
                )

    def check_gateway(self, name: str, caller: str | None = None) -> None:
        """``name`` is a gateway in this policy (and not the ``caller`` asking on its behalf)."""
        grant = self.peers.get(name)
        if grant is None or not grant.gateway or name == caller:
            raise PolicyError(f"{name!r} is not a gateway in this party's policy: noised cells go to a gateway only")

    def check_forward(self, requester: str, purpose: str, co_party: str) -> None:
        if co_party not in self.check_purpose(requester, purpose).co_parties:
            raise PolicyError(f"shares of {requester!r} may not be forwarded to {co_party!r}")

    def check_receive(self, owner: str, purpose: str) -> None:
        if not self.check_purpose(owner, purpose).forward_shares:
            raise PolicyError(f"{owner!r} may not hand us shares as co-party")

    def check_predicate(self, peer: str, purpose: str, predicate: str) -> PeerPolicy:
        grant = self.check_purpose(peer, purpose)
        if predicate not in grant.predicates:
            raise PolicyError(f"peer {peer!r} may not query predicate {predicate!r}")
        return grant

    def check_program(self, peer: str, purpose: str, program: str) -> None:
        if program not in self.check_purpose(peer, purpose).programs:
            raise PolicyError(f"peer {peer!r} may not start program {program!r}")


class RateLimitExceeded(RuntimeError):
    """Too many requests from one peer; the message says when to retry."""


class RateLimiter:
    """Token bucket per peer: ``per_minute`` requests, refilled continuously, burst of the same."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, peer: str, per_minute: int) -> None:
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(peer, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[peer] = (tokens, now)
                raise RateLimitExceeded(
                    f"rate limit of {per_minute}/min for peer {peer!r} reached; retry in {(1 - tokens) / rate:.1f} s"
                )
            self._buckets[peer] = (tokens - 1.0, now)
