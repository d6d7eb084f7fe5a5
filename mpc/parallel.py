"""Where a party's CPU-bound batch work runs: the compute backend (curve operations, Paillier
obfuscators, encryption and decryption of whole tables).

Protocol code cuts its work into chunks and hands them to :func:`backend` with
``backend().map(function, calls)``; it never names a process pool or a cluster. Two backends:

- :class:`LocalPool` (the default): one process per core of this machine, started once with
  'spawn' (safe beside gRPC and other threads) and without re-running the caller's ``__main__``.
- :class:`RayCluster`: chunks on a Ray cluster that the party runs inside its own domain
  (``[compute] backend = "ray"``, ``address = ...``), run by long-lived runner actors, one per CPU
  of each node, each chunk sent to the runner with the fewest in flight (a Ray task per chunk would
  lease a worker for every batch afresh, and the lease of another node's worker leaves a core idle
  between batches). A chunk whose runner dies (its worker killed, its node lost), or whose
  result is lost with its node, is sent to a runner again, up to ``max_retries`` times; a chunk
  sent again computes its result afresh (the same bytes for the deterministic ones: tags,
  decryptions; fresh randomness for encryptions and obfuscators).

Chunk functions are module-level functions of ``mpc`` (pickled by reference) whose arguments and
results are bytes and integers, so that the same call gives the same result on either backend.
What a chunk carries is the party's own: an owner's decryption chunks carry its table keys' factors
and its curve chunks its OPRF and PSI scalars, which is why a Ray cluster must be the owner's own
(``docs/scaling.md``). Nothing here crosses to another party.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ComputeBackend",
    "ComputeConfig",
    "ComputeError",
    "LocalPool",
    "RayCluster",
    "backend",
    "configure",
    "split",
    "use",
]

R = TypeVar("R")
RESOURCES_SECONDS = 30.0  # how long a Ray cluster's nodes and CPUs are taken as known (nodes come and go)


class ComputeError(RuntimeError):
    """The backend could not run a chunk (a Ray cluster that does not answer, a task that failed on
    every retry); the message names the backend and the cause."""


class ComputeConfig(BaseModel):
    """``[compute]`` of a party's configuration: where its heavy work runs."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "ray"] = "local"
    # Ray: the cluster's address as `ray.init` takes it ("HOST:6379", the head's GCS, from a node
    # of the cluster; "ray://HOST:10001" for Ray Client from elsewhere); never "auto", never a
    # cluster outside the party's own domain.
    address: str | None = None
    max_retries: int = Field(default=3, ge=0)  # Ray: times a chunk is sent again after its runner dies
    task_timeout_seconds: float = Field(default=900.0, gt=0)  # Ray: a chunk not done by then abandons its batch

    @model_validator(mode="after")
    def _ray_needs_an_address(self) -> ComputeConfig:
        if self.backend == "ray" and not self.address:
            raise ValueError('backend = "ray" needs address (the Ray cluster of this party, e.g. "127.0.0.1:6379")')
        if self.backend == "ray" and self.address == "auto":
            raise ValueError('address = "auto" would join whatever cluster this host knows: name the party\'s own')
        if self.backend == "local" and self.address:
            raise ValueError('address is for backend = "ray"; the local pool has none')
        return self


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """``[0, count)`` in at most ``parts`` contiguous ranges of near-equal size."""
    if count <= 0:
        return []
    step = -(-count // max(parts, 1))
    return [(lo, min(lo + step, count)) for lo in range(0, count, step)]


class ComputeBackend(ABC):
    """Runs chunks of work: ``map`` yields ``function(*call)`` for each call, in order, with at most
    ``window`` chunks in flight (so a caller that streams its input holds a bounded amount)."""

    name: str

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks = 0

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many chunks run at once (cores of the pool or of the cluster)."""

    @property
    def tasks(self) -> int:
        """Chunks submitted since start (shown in the party's status)."""
        return self._tasks

    def _count(self) -> None:
        with self._lock:
            self._tasks += 1

    def map(
        self, function: Callable[..., R], calls: Iterable[tuple[Any, ...]], window: int | None = None
    ) -> Iterator[R]:
        """``function(*call)`` for each call, in order; at most ``window`` (default two per worker)
        in flight; chunks not yet collected are cancelled when the caller stops early or fails."""
        limit = window or 2 * self.workers
        pending: deque[Any] = deque()
        try:
            for call in calls:
                pending.append(self._submit(function, call))
                self._count()
                if len(pending) >= limit:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:
            for handle in pending:
                self._cancel(handle)

    @abstractmethod
    def _submit(self, function: Callable[..., Any], call: tuple[Any, ...]) -> Any:
        """Start one chunk; a handle for :meth:`_result`."""

    @abstractmethod
    def _result(self, handle: Any) -> Any:
        """The chunk's result (its own exception raised as itself; the backend's failures as
        :class:`ComputeError`)."""

    @abstractmethod
    def _cancel(self, handle: Any) -> None: ...

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "workers": self.workers, "tasks": self.tasks}

    def warm(self) -> None:
        """Start every worker now (both backends start them on first use)."""
        list(self.map(_worker_pid, [() for _ in range(4 * self.workers)]))

    def close(self) -> None:  # noqa: B027 (a backend without resources has nothing to release)
        """Release the backend's workers or connection."""


def _worker_pid() -> int:
    return os.getpid()


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start 'spawn' workers without re-running the caller's ``__main__`` (a script without an
    ``if __name__ == "__main__"`` guard would otherwise run again in every worker)."""
    main = sys.modules.get("__main__")
    saved: dict[str, object] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__
    }
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class LocalPool(ComputeBackend):
    """One process per core of this machine, started on first use."""

    name = "local"

    def __init__(self, processes: int | None = None) -> None:
        super().__init__()
        self._processes = processes or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._processes

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                executor = ProcessPoolExecutor(
                    max_workers=self._processes, mp_context=multiprocessing.get_context("spawn")
                )
                with _main_module_hidden():
                    for future in [executor.submit(os.getpid) for _ in range(self._processes)]:
                        future.result()
                self._executor = executor
            return self._executor

    def _submit(self, function: Callable[..., Any], call: tuple[Any, ...]) -> Future[Any]:
        pool = self._pool()
        try:
            return pool.submit(function, *call)
        except BrokenProcessPool as exc:
            raise self._broken(pool, exc) from None

    def _result(self, handle: Future[Any]) -> Any:
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            raise self._broken(None, exc) from None

    def _cancel(self, handle: Future[Any]) -> None:
        handle.cancel()

    def _broken(self, pool: ProcessPoolExecutor | None, exc: BaseException) -> ComputeError:
        """A worker died (killed, out of memory): the pool is dropped, so the next call starts a new one."""
        with self._lock:
            if pool is None or self._executor is pool:
                self._executor = None
        return ComputeError(f"local pool: a worker process died ({exc}); the next batch starts a new pool")

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(cancel_futures=True)


class _ChunkRunner:
    """A Ray actor that runs chunks in its worker process (:class:`RayCluster` keeps one per CPU)."""

    def run(self, function: Callable[..., R], *call: Any) -> R:
        return function(*call)


class _Runner:
    """One runner actor of a :class:`RayCluster`, the node it was placed on and its chunks in flight."""

    def __init__(self, node: str, actor: Any) -> None:
        self.node, self.actor, self.load = node, actor, 0


class _RayChunk:
    """A chunk sent to a runner: what it runs (to send it again if the runner dies), where, how often."""

    def __init__(self, function: Callable[..., Any], call: tuple[Any, ...]) -> None:
        self.function, self.call, self.retries = function, call, 0
        self.runner: _Runner | None = None
        self.ref: Any = None


class _RunnerDied(Exception):
    """A runner died with a chunk in flight (its worker killed, its node lost), or the chunk's result was
    lost with its node."""


class RayCluster(ComputeBackend):
    """Chunks on a Ray cluster of this party's own domain (connected on construction), run by
    runner actors: one per CPU that each live node advertises, placed on that node.

    Runners reserve no CPU of Ray's accounting (two backends of one process never wait for a CPU
    to be freed); their number follows the nodes' CPUs, read again every :data:`RESOURCES_SECONDS`
    and whenever a runner is lost: a node that joins gets runners, a lost node's are dropped, a
    dead runner of a live node is replaced. A chunk whose runner died, or whose result was lost
    with its node, is sent again, first to a runner of a node that lost none in the last
    :data:`RESOURCES_SECONDS` (a machine lost outright is listed alive until Ray's health check
    gives up on it); a chunk that outlives ``task_timeout`` abandons its batch and its runner is
    killed (a stuck chunk would hold every chunk queued behind it)."""

    name = "ray"

    def __init__(self, address: str, max_retries: int = 3, task_timeout: float = 900.0) -> None:
        super().__init__()
        self.task_timeout = task_timeout
        try:
            import ray
        except ImportError:
            raise ComputeError(
                'backend = "ray" needs the ray package in this environment: pip install "ray>=2.40"'
            ) from None
        self._ray: Any = ray
        self.address, self.max_retries = address, max_retries
        _answers(address)
        if ray.is_initialized():
            connected = ray.get_runtime_context().gcs_address
            if connected != address.removeprefix("ray://"):
                raise ComputeError(
                    f"this process is already connected to the Ray cluster at {connected}, not {address}"
                )
        try:
            ray.init(
                address=address,
                namespace="mpc-agencies",
                logging_level=logging.WARNING,
                log_to_driver=False,
                ignore_reinit_error=True,
                configure_logging=False,
            )
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError by cause
            raise ComputeError(f"the Ray cluster at {address} does not answer: {exc}") from None
        self._runner_class = ray.remote(_ChunkRunner)
        self._runners: list[_Runner] = []
        self._runners_read = -RESOURCES_SECONDS - 1.0
        self._lost_at: dict[str, float] = {}  # node -> when it last lost a runner or a result
        self._resent = 0
        # a runner lost (its worker killed, out of memory, its node gone) or a result lost with its node
        self._lost = (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnschedulableError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.ObjectLostError,
        )

    @property
    def resent(self) -> int:
        """Chunks sent again since start because their runner or their result was lost."""
        return self._resent

    @property
    def workers(self) -> int:
        """The cluster's CPUs (its runners), asked of the cluster at most every :data:`RESOURCES_SECONDS`."""
        with self._lock:
            return len(self._current_runners())

    def _current_runners(self) -> list[_Runner]:
        """The runners, one per CPU of each live node, after a fresh look at the nodes when the last
        is older than :data:`RESOURCES_SECONDS` (the caller holds the lock)."""
        now = time.monotonic()
        if now - self._runners_read <= RESOURCES_SECONDS and self._runners:
            return self._runners
        try:
            cpus = {n["NodeID"]: int(n["Resources"].get("CPU", 0)) for n in self._ray.nodes() if n["Alive"]}
        except Exception as exc:  # the GCS gone: ray raises by cause
            raise ComputeError(f"Ray cluster {self.address}: its nodes cannot be read: {exc}") from None
        kept: list[_Runner] = []
        for node, count in cpus.items():
            kept += [r for r in self._runners if r.node == node][:count]
            kept += [self._start_runner(node) for _ in range(count - sum(r.node == node for r in kept))]
        if not kept:
            raise ComputeError(f"Ray cluster {self.address}: no live node has a CPU")
        self._runners, self._runners_read = kept, now
        return kept

    def _start_runner(self, node: str) -> _Runner:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = self._runner_class.options(
            num_cpus=0,
            max_restarts=0,  # a runner that dies is replaced, and its chunks sent again, by this backend
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote()
        return _Runner(node, actor)

    def _submit(self, function: Callable[..., Any], call: tuple[Any, ...]) -> _RayChunk:
        return self._send(_RayChunk(function, call))

    def _send(self, chunk: _RayChunk) -> _RayChunk:
        """To the runner with the fewest chunks in flight, of a node that lost none lately if any."""
        with self._lock:
            now = time.monotonic()
            recent = {n for n, at in self._lost_at.items() if now - at <= RESOURCES_SECONDS}
            runner = min(self._current_runners(), key=lambda r: (r.node in recent, r.load))
            runner.load += 1
            chunk.runner = runner
        try:
            chunk.ref = runner.actor.run.remote(chunk.function, *chunk.call)
        except BaseException:
            self._done(chunk)
            raise
        return chunk

    def _done(self, chunk: _RayChunk, lost: bool = False) -> None:
        """The chunk's runner is free of it; when ``lost``, the runner is killed and dropped (a new
        one takes its place if its node lives) and its node marked as having lost one."""
        with self._lock:
            runner, chunk.runner = chunk.runner, None
            if runner is None:
                return
            runner.load -= 1
            if not lost:
                return
            self._lost_at[runner.node] = time.monotonic()
            if runner in self._runners:
                self._runners.remove(runner)
                self._runners_read = -RESOURCES_SECONDS - 1.0
        with suppress(Exception):  # already gone, or the cluster with it
            self._ray.kill(runner.actor, no_restart=True)  # it may live on, unreachable for a while

    def _result(self, handle: _RayChunk) -> Any:
        chunk = handle
        while True:
            try:
                return self._collect(chunk)
            except _RunnerDied as died:
                if chunk.retries >= self.max_retries:
                    raise ComputeError(
                        f"Ray cluster {self.address}: a chunk's runner or its result was lost "
                        f"{chunk.retries + 1} times ({died})"
                    ) from None
                chunk.retries += 1
                with self._lock:
                    self._resent += 1
                self._send(chunk)

    def _collect(self, chunk: _RayChunk) -> Any:
        """The chunk's result from its runner; :class:`_RunnerDied` when the runner died with it, or
        the result was lost with its node."""
        ray, lost = self._ray, False
        try:
            return ray.get(chunk.ref, timeout=self.task_timeout)
        except ray.exceptions.GetTimeoutError:
            lost = True  # the runner is killed: the chunks queued behind a stuck one would wait as long
            raise ComputeError(
                f"Ray cluster {self.address}: a chunk took longer than {self.task_timeout:.0f} s (no worker free, "
                "or nodes lost); the batch is abandoned"
            ) from None
        except ray.exceptions.RayTaskError as exc:  # the chunk's own exception, as the local pool raises it
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except self._lost as exc:
            lost = True
            raise _RunnerDied(f"{type(exc).__name__}: {exc}") from None
        except ray.exceptions.RayError as exc:  # the cluster's own failure (its runtime environment, its store)
            raise ComputeError(f"Ray cluster {self.address}: {type(exc).__name__}: {exc}") from None
        finally:
            self._done(chunk, lost)

    def _cancel(self, handle: _RayChunk) -> None:
        with suppress(Exception):  # the cluster gone: nothing left to cancel
            self._ray.cancel(handle.ref)  # a chunk still queued is dropped; one running finishes unseen
        self._done(handle)

    def describe(self) -> dict[str, object]:
        try:
            workers: int | None = self.workers
        except Exception:  # a status snapshot must not fail because the cluster does not answer
            workers = None
        return {
            "backend": self.name,
            "workers": workers,
            "tasks": self.tasks,
            "resent": self.resent,
            "address": self.address,
        }

    def close(self) -> None:
        with self._lock:
            self._runners = []
        self._ray.shutdown()


def _answers(address: str, timeout: float = 5.0) -> None:
    """A cluster address that names a host and port must accept a connection (``ray.init`` itself
    would retry a dead address for minutes); "auto" is left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ComputeError(f"the Ray cluster at {address} does not answer: {exc.strerror or exc}") from None


_lock = threading.Lock()
_configure_lock = threading.Lock()
_active: ComputeBackend | None = None
_configured: ComputeConfig | None = None


def backend() -> ComputeBackend:
    """The process's compute backend: the one :func:`configure` or :func:`use` set, else a
    :class:`LocalPool` (created on first use)."""
    global _active
    with _lock:
        if _active is None:
            _active = LocalPool()
        return _active


def use(chosen: ComputeBackend) -> ComputeBackend | None:
    """Make ``chosen`` the process's backend; returns the previous one (not closed)."""
    global _active
    with _lock:
        previous, _active = _active, chosen
    return previous


def configure(config: ComputeConfig) -> ComputeBackend:
    """The backend a party's ``[compute]`` section names, made the process's backend. Raises
    :class:`ComputeError` when a Ray cluster does not answer."""
    global _active, _configured
    with _configure_lock:
        with _lock:
            active = _active
        if active is not None and _configured == config:
            return active  # already this one (a second client of the same party in this process)
        previous = use(LocalPool())  # released first: a process holds one Ray connection at a time
        if previous is not None:
            previous.close()
        _configured = config
        if config.backend == "local":
            return backend()
        try:
            chosen = RayCluster(config.address or "", config.max_retries, config.task_timeout_seconds)
        except ComputeError:
            _configured = None
            raise
        use(chosen)
        return chosen


@atexit.register
def _close_active() -> None:
    with _lock:
        active = _active
    if active is not None:
        active.close()
