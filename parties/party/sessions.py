"""What an owner holds between two calls of a session: the shares a masked decryption left it
(until the program that consumes them), and its noised share of released cells (until the
gateway fetches it).

Entries are bound to the peer that may take them, used once, and expire after ``ttl`` seconds, so a
share never outlives the session it belongs to.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from mpc.protocols.aggregate import CellShares

DEFAULT_TTL_SECONDS = 1800.0  # long enough for the other owners of a large batch to decrypt theirs
MAX_SESSIONS = 1024


@dataclass(frozen=True)
class HeldShares:
    peer: str
    dataset: str
    columns: tuple[str, ...]
    shares: np.ndarray  # rows x len(columns), uint64
    created: float
    source: str = ""  # the owner whose data these are shares of ("" for our own)
    reveal_allowed: bool = False  # that owner consents to revealing clause bits to the requester
    # forwarded shares: the approved rule they are for, as (name, fingerprint, applications, slots)
    rule: tuple[str, str, int, int] = ("", "", 0, 0)


@dataclass(frozen=True)
class HeldResult:
    peer: str            # the gateway that may fetch it
    shares: CellShares   # our share of the cells, noised by us
    rows: int
    created: float


class _Held(Protocol):
    @property
    def peer(self) -> str: ...

    @property
    def created(self) -> float: ...


H = TypeVar("H", bound=_Held)


class SessionShares(Generic[H]):
    def __init__(self, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._held: dict[str, H] = {}
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, v in self._held.items() if now - v.created > self._ttl]:
            del self._held[key]

    def put(self, session_id: str, held: H) -> None:
        with self._lock:
            self._expire(time.monotonic())
            if session_id in self._held:
                raise ValueError(f"session {session_id} already holds shares")
            if len(self._held) >= MAX_SESSIONS:
                raise RuntimeError("too many open sessions; retry later")
            self._held[session_id] = held

    def take(self, session_id: str, peer: str) -> H:
        """Remove and return what ``session_id`` holds; only the peer it is bound to may."""
        with self._lock:
            self._expire(time.monotonic())
            held = self._held.get(session_id)
            if held is None or held.peer != peer:
                raise LookupError(f"no shares held for session {session_id!r} from {peer!r} (expired or never decrypted)")
            del self._held[session_id]
            return held
