"""What an operator sees of a running owner's daemon: ``STATE/status.json`` and Prometheus gauges.

From the moment the daemon starts it reports its datasets (rows loaded, rows rejected by reason),
its peers and what each is granted, the rules it approved, the day's computations each peer used
of its limit, its certificate's expiry, the OPRF epoch and its uptime. The same snapshot is written
to ``STATE/status.json`` (at start, then every :data:`WRITE_SECONDS`; ``mpc-party status`` prints
it) and served as gauges on ``/metrics`` (read at each scrape), and the start-up log line lists it.
Nothing in it is a value or an id of the data.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mpc.files import write_atomic

if TYPE_CHECKING:
    from parties.owner.server import PartyDaemon

__all__ = ["STATUS_FILE", "WRITE_SECONDS", "StatusCollector", "snapshot", "write_status"]

STATUS_FILE = "status.json"
WRITE_SECONDS = 30.0
DAY_SECONDS = 86_400.0


def snapshot(daemon: PartyDaemon, started: float) -> dict[str, Any]:
    """The daemon's state as an operator needs it (see the module docstring)."""
    config = daemon.config
    certificate = x509.load_pem_x509_certificate(config.tls.cert.read_bytes())
    expires = certificate.not_valid_after_utc
    now = time.time()
    peers = {}
    for peer, grant in config.policy.peers.items():
        limits = grant.limits
        used = {
            purpose: daemon.budgets.ledger.used(f"{peer}|{purpose}|computations", DAY_SECONDS)
            for purpose in grant.purposes
        }
        peers[peer] = {
            "purposes": list(grant.purposes),
            "programs": list(grant.programs),
            "datasets": {
                name: {"psi": d.psi, "batch": d.batch, "columns": {c: list(u) for c, u in d.columns.items()}}
                for name, d in grant.datasets.items()
            },
            "computations_today": {"used": used, "limit": limits.computations_per_day},
        }
    return {
        "party": daemon.name,
        "address": daemon.address,
        "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "uptime_seconds": round(now - started, 1),
        "written": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
        "oprf_epoch": daemon.dataset_epoch(),
        "compute": daemon.compute.describe(),
        "certificate": {
            "serial": f"{certificate.serial_number:x}",
            "not_after": expires.isoformat(timespec="seconds"),
            "days_left": round((expires.timestamp() - now) / DAY_SECONDS, 1),
        },
        "datasets": {
            name: {
                "rows_read": d.report.rows_read,
                "rows_loaded": len(d.ids),
                "rejected": {
                    "invalid_ids": len(d.report.invalid_ids),
                    "duplicates": len(d.report.duplicates),
                    "invalid_values": len(d.report.invalid_values),
                },
            }
            for name, d in daemon.datasets.items()
        },
        "peers": peers,
        "approved_rules": [
            {"rule": a.rule, "peer": a.peer, "purposes": a.purposes, "fingerprint": a.fingerprint[:16]}
            for a in daemon.approvals.entries()
        ],
    }


def write_status(daemon: PartyDaemon, started: float) -> dict[str, Any]:
    """Write the snapshot to ``STATE/status.json`` (atomically) and return it."""
    status = snapshot(daemon, started)
    write_atomic(daemon.config.party.state_dir / STATUS_FILE, [json.dumps(status, indent=1).encode()], 0o600)
    return status


class StatusCollector(Collector):
    """The snapshot as Prometheus gauges, computed at each scrape (so they exist from the start)."""

    def __init__(self, daemon: PartyDaemon, started: float) -> None:
        self.daemon, self.started = daemon, started

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = snapshot(self.daemon, self.started)
        party = status["party"]
        rows = GaugeMetricFamily("mpc_dataset_rows", "Rows loaded per dataset", labels=["party", "dataset"])
        rejected = GaugeMetricFamily(
            "mpc_dataset_rejected_rows", "Rows rejected at load, by reason", labels=["party", "dataset", "reason"]
        )
        for name, dataset in status["datasets"].items():
            rows.add_metric([party, name], dataset["rows_loaded"])
            for reason, count in dataset["rejected"].items():
                rejected.add_metric([party, name, reason], count)
        used = GaugeMetricFamily(
            "mpc_computations_used_today",
            "Computations used today per peer and purpose",
            labels=["party", "peer", "purpose"],
        )
        for peer, grant in status["peers"].items():
            for purpose, count in grant["computations_today"]["used"].items():
                used.add_metric([party, peer, purpose], count)
        yield rows
        yield rejected
        yield used
        for name, text, value in (
            ("mpc_peers", "Peers with a grant", len(status["peers"])),
            ("mpc_approved_rules", "Approved (rule, requester) pairs", len(status["approved_rules"])),
            (
                "mpc_certificate_expiry_days",
                "Days until the daemon's certificate expires",
                status["certificate"]["days_left"],
            ),
            ("mpc_oprf_epoch", "The datasets' current OPRF epoch", status["oprf_epoch"]),
            ("mpc_uptime_seconds", "Seconds since the daemon started", status["uptime_seconds"]),
        ):
            gauge = GaugeMetricFamily(name, text, labels=["party"])
            gauge.add_metric([party], value)
            yield gauge
