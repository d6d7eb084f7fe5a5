"""Dataset OPRF keys rotate per epoch, against real daemons with a 4-second epoch: tags differ
between epochs, an OPRF answer of an ended epoch selects nothing (FAILED_PRECONDITION), old
epochs' caches are deleted, and an SDK lookup across a rollover asks again and stays right."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from demo.cluster import LocalCluster, PartySpec
from demo.deployment import with_ids
from demo.synthetic import AgencyTables, write_csv
from mpc.protocols import oprf_filter
from parties.requester import Client, oprf
from parties.requester import psi as psi_driver
from protos import party_pb2
from tests.e2e.conftest import AGGREGATING_POLICY, audit_entries, client_for, income_dataset, owner_values

EPOCH_HOURS = 4 / 3600


def epoch_now() -> int:
    return oprf_filter.epoch_of(time.time(), EPOCH_HOURS)


def next_epoch(after: int) -> int:
    """Wait until the epoch after ``after`` has begun."""
    while epoch_now() <= after:
        time.sleep(0.05)
    return epoch_now()


def fresh_epoch() -> int:
    """Wait for the start of an epoch, so that a few quick calls stay inside it."""
    return next_epoch(epoch_now())


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory, tables: AgencyTables) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("rotating")
    paths = write_csv(tables, root / "data")
    income = income_dataset(paths["tax"])
    deployment = LocalCluster(
        root,
        [
            PartySpec(
                "tax",
                [income],
                {"peers": {"housing": AGGREGATING_POLICY}},
                extra={"anonymity_set": 256, "oprf_epoch_hours": EPOCH_HOURS},
            ),
            PartySpec("housing", daemon=False),
        ],
        paillier_bits=1024,
    )
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


def epochs_on_disk(cluster: LocalCluster) -> set[int]:
    return {
        int(p.name.removeprefix("epoch-")) for p in Path(cluster.root / "state" / "tax" / "encrypted").glob("epoch-*")
    }


def test_tags_of_an_ended_epoch_are_refused(rotating: LocalCluster, tables: AgencyTables) -> None:
    some = list(owner_values(tables.tax, "annual_income"))[:3]
    with client_for(rotating, "housing", purpose="statistics", case="ROT-1") as client:
        stub = client.party_stub("tax")
        fresh_epoch()
        tags, epoch = oprf.dataset_tags(client, "tax", "tax", "income", some)
        assert epoch == epoch_now() and client.list_datasets("tax").datasets[0].epoch == epoch
        request = party_pb2.BucketRequest(dataset="income", columns=["annual_income"], bucket=0, epoch=epoch)
        assert next(iter(stub.GetEncryptedBucket(request, metadata=client.metadata(), timeout=60))).total > 0
        now = next_epoch(epoch)
        with pytest.raises(grpc.RpcError) as ended:
            list(stub.GetEncryptedBucket(request, metadata=client.metadata(), timeout=60))
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert ended.value.details() == f"epoch {epoch} has ended (now {now}); ask again"
        with pytest.raises(grpc.RpcError) as ended:
            list(
                stub.GetTags(
                    party_pb2.TagsRequest(dataset="income", epoch=epoch), metadata=client.metadata(), timeout=60
                )
            )
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        again, later = oprf.dataset_tags(client, "tax", "tax", "income", some)
        assert later > epoch and not set(again.values()) & set(tags.values())  # the same ids, other tags
        owner = psi_driver.owner_tags(client, "tax", "income", later)  # the new epoch's tags hold ours
        assert set(again.values()) <= {int(t).to_bytes(8, "little") for t in owner}
        # two more epochs with a fetch each: only the last two epochs' caches stay on disk
        for _ in range(2):
            current = fresh_epoch()
            request = party_pb2.BucketRequest(dataset="income", columns=["annual_income"], bucket=0, epoch=current)
            list(stub.GetEncryptedBucket(request, metadata=client.metadata(), timeout=60))
        assert epochs_on_disk(rotating) <= {current - 1, current} and current in epochs_on_disk(rotating)


def test_a_lookup_across_a_rollover_asks_again(
    rotating: LocalCluster, tables: AgencyTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    incomes = owner_values(tables.tax, "annual_income")
    mine = [i for i, _ in with_ids(tables.housing)][:200]
    common = [i for i in dict.fromkeys(mine) if i in incomes]
    dataset_tags = oprf.dataset_tags
    calls: list[int] = []

    def slow_first(client: Client, *args: Any) -> tuple[dict[str, bytes], int]:
        tags, epoch = dataset_tags(client, *args)
        calls.append(epoch)
        if len(calls) == 1:  # the epoch ends before the rows are fetched
            next_epoch(epoch)
        return tags, epoch

    monkeypatch.setattr(oprf, "dataset_tags", slow_first)
    with client_for(rotating, "housing", purpose="statistics", case="ROT-2") as client:
        fresh_epoch()
        result = client.intersection_sum("tax", "income", ["annual_income"], mine)
    assert len(calls) == 2 and calls[1] > calls[0]
    assert common and (result.intersection, result.sums) == (
        len(common),
        {"annual_income": sum(incomes[i] for i in common)},
    )
    refused = [
        e
        for e in audit_entries(rotating, "tax")
        if e.get("case") == "ROT-2" and e.get("action") == "rpc:GetEncryptedBucket"
    ]
    assert [e["outcome"] for e in refused][:1] == ["FAILED_PRECONDITION"] and refused[-1]["outcome"] == "OK"
