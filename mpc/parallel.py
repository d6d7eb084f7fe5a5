"""One process pool per process for CPU-bound batch work (curve operations, obfuscators).

Workers are started once with 'spawn' (safe beside gRPC and other threads) and without
re-running the caller's ``__main__``, one per core.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

__all__ = ["process_pool"]

_executor: ProcessPoolExecutor | None = None


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


def process_pool() -> ProcessPoolExecutor:
    """One process per core, started once with 'spawn' (safe beside gRPC and other threads)."""
    global _executor
    if _executor is None:
        workers = os.cpu_count() or 1
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        with _main_module_hidden():
            for future in [executor.submit(os.getpid) for _ in range(workers)]:
                future.result()
        atexit.register(executor.shutdown, cancel_futures=True)
        _executor = executor
    return _executor
