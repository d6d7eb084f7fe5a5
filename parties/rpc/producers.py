"""Several producers feeding one response stream: each runs in its own thread, a handler yields
what they make as it comes (both halves of a PSI round overlap), and the first failure is raised
in the handler once every producer has stopped."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside a producer's ``put`` once the stream is gone: the producer should end."""


class _Done:
    pass


class Interleave(Generic[T]):
    def __init__(self, *producers: Callable[[Callable[[T], None]], None], capacity: int = 8) -> None:
        self._items: queue.Queue[T | _Done | BaseException] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()  # producers should end (a failure, or the consumer left)
        self._closed = threading.Event()  # the consumer left: nobody drains the queue any more
        self._threads = [
            threading.Thread(target=self._run, args=(p,), daemon=True, name=f"producer-{i}")
            for i, p in enumerate(producers)
        ]

    def _put(self, item: T | _Done | BaseException) -> None:
        data = not isinstance(item, _Done | BaseException)
        while not self._closed.is_set():
            if data and self._stop.is_set():
                raise Stopped
            try:
                self._items.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        if data:
            raise Stopped

    def _run(self, producer: Callable[[Callable[[T], None]], None]) -> None:
        try:
            producer(self._put)
        except Stopped:
            pass
        except BaseException as exc:
            self._put(exc)
        finally:
            self._put(_Done())

    def __iter__(self) -> Iterator[T]:
        for thread in self._threads:
            thread.start()
        running, failure = len(self._threads), None
        try:
            while running:
                item = self._items.get()
                if isinstance(item, _Done):
                    running -= 1
                elif isinstance(item, BaseException):
                    failure = failure or item
                    self._stop.set()  # the others end at their next put
                elif failure is None:
                    yield item
        finally:
            self._stop.set()
            self._closed.set()
        if failure is not None:
            raise failure
