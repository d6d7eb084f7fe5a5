"""Checks of an owner's configuration before it serves (``mpc-party check``, and ``serve`` at start).

Each check returns problems as one-line messages naming the key and, for a misspelling, the
nearest valid name: a grant to a peer the coordinator's directory does not know, of a dataset the
configuration does not declare, of a column its schema
lacks (or classifies ``secret``), or of a co-party or predicate that does not exist; a
certificate whose name is not the party's, that has
expired or expires within :data:`EXPIRY_WARNING_DAYS`, or that the CRL revokes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from parties.config import PartyConfig, closest
from parties.pki import certificate_identity

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "Problem",
    "certificate_problems",
    "coordinator_directory",
    "grant_problems",
    "revoked_serials",
]

EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class Problem:
    """One finding: its message (naming the key) and whether it only warns (the daemon serves)."""

    message: str
    warning: bool = False

    def __str__(self) -> str:
        return self.message


def _nearest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or a list of them when none is close."""
    near = closest(name, known)
    return f" (did you mean {near!r}?)" if near else f" (known: {', '.join(sorted(known)) or 'none'})"


def _unlisted(where: str, party: str, directory: set[str]) -> Problem:
    """A party the directory does not list: an error when it is a near miss of a listed one, a
    warning otherwise (a requester that runs no daemon is never listed)."""
    near = closest(party, directory)
    hint = _nearest(party, directory)
    return Problem(f"{where}: no party {party!r} in the coordinator's directory{hint}", warning=near is None)


def grant_problems(config: PartyConfig, directory: set[str] | None = None) -> list[Problem]:
    """Every grant of ``[policy.peers]`` checked against the declared datasets and their schemas,
    and, given the coordinator's ``directory`` (party names), against the deployment's parties."""
    problems: list[Problem] = []
    datasets = {d.name: d for d in config.datasets}
    predicates = {p.name for p in config.predicates}
    for peer, grant in config.policy.peers.items():
        where = f"policy.peers.{peer}"
        if directory is not None and peer not in directory:
            problems.append(_unlisted(where, peer, directory))
        for co_party in grant.co_parties:
            if directory is not None and co_party not in directory:
                problems.append(_unlisted(f"{where}.co_parties", co_party, directory))
        for predicate in grant.predicates:
            if predicate not in predicates:
                problems.append(
                    Problem(f"{where}.predicates: no predicate {predicate!r}{_nearest(predicate, predicates)}")
                )
        for name, dataset_grant in grant.datasets.items():
            spec = datasets.get(name)
            if spec is None:
                problems.append(Problem(f"{where}.datasets.{name}: no dataset {name!r}{_nearest(name, datasets)}"))
                continue
            columns = spec.schema_.columns
            for column in dataset_grant.columns:
                if column not in columns:
                    problems.append(
                        Problem(
                            f"{where}.datasets.{name}.columns.{column}: dataset {name!r} has no column {column!r}"
                            f"{_nearest(column, columns)}"
                        )
                    )
                elif not columns[column].usable:
                    problems.append(
                        Problem(
                            f"{where}.datasets.{name}.columns.{column}: the column is classified secret; "
                            "no protocol may use it (remove the grant or reclassify the column)"
                        )
                    )
    return problems


def certificate_problems(config: PartyConfig, revoked_serials: set[int] | None = None) -> list[Problem]:
    """The daemon's own certificate: its name, its expiry (soon or past), and its revocation."""
    pem = config.tls.cert.read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    problems: list[Problem] = []
    identity = certificate_identity(pem)
    if identity != config.party.name:
        problems.append(Problem(f"tls.cert: issued to {identity!r}, not to party.name {config.party.name!r}"))
    days_left = (certificate.not_valid_after_utc.timestamp() - time.time()) / 86_400
    if days_left <= 0:
        problems.append(
            Problem(f"tls.cert: expired on {certificate.not_valid_after_utc:%Y-%m-%d}; renew it (mpc-admin pki)")
        )
    elif days_left < EXPIRY_WARNING_DAYS:
        problems.append(
            Problem(
                f"tls.cert: expires in {days_left:.0f} days ({certificate.not_valid_after_utc:%Y-%m-%d}); "
                "renew it soon",
                warning=True,
            )
        )
    if revoked_serials is not None and certificate.serial_number in revoked_serials:
        problems.append(
            Problem(f"tls.cert: serial {certificate.serial_number:x} is revoked by the CRL; issue a new one")
        )
    return problems


def coordinator_directory(config: PartyConfig) -> tuple[set[str] | None, str]:
    """The party names in the coordinator's directory, or (None, why it could not be read)."""
    if not config.party.coordinator:
        return None, ""
    import grpc

    from parties.rpc.tls import secure_channel
    from protos import common_pb2, coordinator_pb2_grpc

    try:
        with secure_channel(config.party.coordinator, config.tls, config.party.coordinator_name) as channel:
            directory = coordinator_pb2_grpc.CoordinatorStub(channel).GetDirectory(common_pb2.Empty(), timeout=10)
    except grpc.RpcError as exc:
        return (
            None,
            f"party.coordinator: {config.party.coordinator} does not answer ({exc.code().name}: {exc.details()})",
        )
    except OSError as exc:
        return None, f"tls: a file cannot be read: {exc}"
    return {entry.party for entry in directory.parties}, ""


def revoked_serials(config: PartyConfig) -> tuple[set[int] | None, str]:
    """The serials the deployment's CRL revokes, or (None, why the CRL cannot be used)."""
    from parties.pki import load_crl

    if config.tls.crl is None:
        return None, ""
    try:
        ca = x509.load_pem_x509_certificate(config.tls.ca.read_bytes())
        serials, next_update = load_crl(config.tls.crl.read_bytes(), ca)
    except (OSError, ValueError) as exc:
        return None, f"tls.crl: {config.tls.crl} cannot be used: {exc}"
    if next_update is not None and next_update.timestamp() < time.time():
        return (
            serials,
            f"tls.crl: past its nextUpdate ({next_update:%Y-%m-%d %H:%M}); every peer is refused until the "
            "CA renews it (mpc-admin pki crl)",
        )
    return serials, ""
