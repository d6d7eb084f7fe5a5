"""The link between the two compute parties of a secret-sharing session.

Protocol code only ever calls :meth:`Channel.send` and :meth:`Channel.recv` with a *label* naming
the protocol step (``"ltz/carry-3"``); the receiver checks that the labels match, so a desynchronised
peer is reported at the step where it happened instead of producing a wrong result. The in-process
implementation here uses queues; the gRPC implementation of the party daemon implements the same
interface over a mutually authenticated stream.
"""

from __future__ import annotations

import queue
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ABORT_LABEL", "DEFAULT_TIMEOUT_S", "Channel", "ChannelError", "InProcessChannel", "RecordingChannel"]

DEFAULT_TIMEOUT_S = 120.0
ABORT_LABEL = "__abort__"  # an abort travels as a message with this label


class ChannelError(RuntimeError):
    """The peer is gone, too slow, or out of step; the message names the peer and the step."""


class Channel(ABC):
    """A reliable, ordered, authenticated link to the one peer of this party."""

    peer: str
    bytes_sent: int = 0
    messages_sent: int = 0

    @abstractmethod
    def _put(self, label: str, payload: np.ndarray) -> None: ...

    @abstractmethod
    def _get(self, timeout: float) -> tuple[str, np.ndarray]: ...

    def send(self, label: str, payload: np.ndarray) -> None:
        self.bytes_sent += int(payload.nbytes)
        self.messages_sent += 1
        self._put(label, payload)

    def recv(self, label: str, timeout: float = DEFAULT_TIMEOUT_S) -> np.ndarray:
        try:
            got_label, payload = self._get(timeout)
        except queue.Empty:
            raise ChannelError(f"no message from {self.peer} at step {label!r} within {timeout:.0f} s") from None
        if got_label == ABORT_LABEL:
            reason = payload.tobytes().decode("utf-8", "replace")
            raise ChannelError(f"{self.peer} aborted the session before step {label!r}: {reason}")
        if got_label != label:
            raise ChannelError(f"{self.peer} is out of step: expected {label!r}, received {got_label!r}")
        return payload

    def abort(self, reason: str) -> None:
        """Tell the peer this party gave up, so it fails at once instead of timing out."""
        self._put(ABORT_LABEL, np.frombuffer(reason.encode("utf-8"), dtype=np.uint8))

    def exchange(self, label: str, payload: np.ndarray) -> np.ndarray:
        """Both parties send, then both receive (one communication round)."""
        self.send(label, payload)
        return self.recv(label)


class InProcessChannel(Channel):
    """One end of a queue pair; both ends live in one process (tests, demo, benchmarks)."""

    def __init__(
        self, outbox: queue.Queue[tuple[str, np.ndarray]], inbox: queue.Queue[tuple[str, np.ndarray]], peer: str
    ) -> None:
        self._outbox, self._inbox, self.peer = outbox, inbox, peer
        self.bytes_sent = 0
        self.messages_sent = 0

    @classmethod
    def pair(cls, names: tuple[str, str] = ("party-0", "party-1")) -> tuple[InProcessChannel, InProcessChannel]:
        a: queue.Queue[tuple[str, np.ndarray]] = queue.Queue()
        b: queue.Queue[tuple[str, np.ndarray]] = queue.Queue()
        return cls(a, b, peer=names[1]), cls(b, a, peer=names[0])

    def _put(self, label: str, payload: np.ndarray) -> None:
        self._outbox.put((label, payload))

    def _get(self, timeout: float) -> tuple[str, np.ndarray]:
        return self._inbox.get(timeout=timeout)


@dataclass
class RecordingChannel(Channel):
    """Wraps a channel and keeps a copy of everything received: a party's incoming view."""

    inner: Channel
    received: list[tuple[str, np.ndarray]] = field(default_factory=list)

    @property
    def peer(self) -> str:  # type: ignore[override]
        return self.inner.peer

    def _put(self, label: str, payload: np.ndarray) -> None:
        self.inner.send(label, payload)

    def _get(self, timeout: float) -> tuple[str, np.ndarray]:
        raise NotImplementedError  # recv is overridden

    def recv(self, label: str, timeout: float = DEFAULT_TIMEOUT_S) -> np.ndarray:
        payload = self.inner.recv(label, timeout)
        self.received.append((label, payload.copy()))
        return payload
