"""The Ray compute backend when the cluster's nodes change (issue 17): a node killed while its
runner has chunks in flight and results waiting in its object store, on a cluster of its own (a
head and a second node process on loopback). The lost runner's chunks are sent again, to the
runner left: the batch's results are all there, in order; the backend then counts the CPUs left.

Where Ray cannot be imported the module is skipped with the reason, except under ``CI=true``.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from demo.raycluster import loopback_ray
from mpc import parallel
from mpc.parallel import ComputeConfig, RayCluster

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only (demo.raycluster.loopback_ray explains)
if os.environ.get("CI") != "true":
    pytest.importorskip("ray", reason="ray is not installed (pip install 'ray>=2.40'; make venv installs it)")


def _slow_square(seconds: float, value: int) -> tuple[int, str, bytes]:
    """A chunk that takes ``seconds``: its value squared, the Ray node that ran it, and 256 KiB (a
    result that large waits in the object store of the node that ran it until it is read)."""
    import ray

    time.sleep(seconds)
    return value * value, ray.get_runtime_context().get_node_id(), bytes(256 * 1024)


def test_a_node_lost_with_chunks_in_flight_loses_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    with loopback_ray(nodes=2, cpus_per_node=1) as cluster:
        backend = parallel.configure(ComputeConfig(backend="ray", address=cluster.address))
        assert isinstance(backend, RayCluster) and backend.workers == 2
        both_answered = threading.Event()
        results: list[tuple[int, str, bytes]] = []
        failures: list[BaseException] = []

        def collect() -> None:
            try:
                for result in backend.map(_slow_square, [(1.0, v) for v in range(12)]):
                    results.append(result)
                    if len({node for _, node, _ in results}) == 2:
                        both_answered.set()
            except BaseException as exc:
                failures.append(exc)
                both_answered.set()

        batch = threading.Thread(target=collect)
        batch.start()
        assert both_answered.wait(60)  # each runner answered; each has its next chunks in flight
        seen = len(results)
        cluster.remove_node()  # killed, as a machine that is lost
        batch.join(240)
        assert not batch.is_alive() and not failures
        assert [square for square, _, _ in results] == [v * v for v in range(12)]
        assert all(len(blob) == 256 * 1024 for _, _, blob in results)
        assert backend.resent >= 1  # the lost runner's chunks were sent again
        assert len({node for _, node, _ in results[seen + 2 :]}) == 1  # after the loss, the head's runner alone

        monkeypatch.setattr(parallel, "RESOURCES_SECONDS", 0.0)  # read the nodes again now
        deadline = time.monotonic() + 60
        while backend.workers != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert backend.workers == 1  # the lost node's runner is dropped; the head's is kept
        assert [s for s, _, _ in backend.map(_slow_square, [(0.0, v) for v in range(4)])] == [0, 1, 4, 9]
