"""A Ray cluster on this machine's loopback, for tests and benchmarks of the Ray compute backend:
a head node process and more node processes (Ray's own ``ray.cluster_utils.Cluster``), each with
its CPUs, every Ray process bound to 127.0.0.1.

A production cluster is started by the owner's operators on the owner's machines
(``docs/scaling.md``); this one lives as long as the ``with`` block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["LoopbackRay", "loopback_ray"]

ROOT = Path(__file__).resolve().parent.parent


class LoopbackRay:
    """A running loopback cluster: its address, and the means to lose a node (as a machine would)."""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self.address = str(cluster.address)

    def remove_node(self) -> None:
        """Stop a node process other than the head (its raylet and its workers), as if its machine were lost."""
        added = list(self._cluster.worker_nodes)
        if not added:
            raise ValueError("the cluster has its head node only")
        self._cluster.remove_node(added[0], allow_graceful=False)  # killed: the cluster is not told


@contextmanager
def loopback_ray(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[LoopbackRay]:
    """Start ``nodes`` Ray node processes (the first is the head) and yield the running cluster.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when it is first imported: set to 0, every Ray
    process binds and advertises the loopback address only. The caller's process must not have
    imported ray before (this sets it if it is unset). Workers get this repository on
    ``PYTHONPATH``, so they import the same ``mpc`` as the caller.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from ray.cluster_utils import Cluster

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved) if p)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus_per_node)
        cluster.wait_for_nodes()
        yield LoopbackRay(cluster)
    finally:
        from mpc import parallel

        previous = parallel.use(parallel.LocalPool())  # the process's backend leaves the cluster with it
        if previous is not None:
            previous.close()
        cluster.shutdown()  # type: ignore[no-untyped-call]
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
