"""What an owner holds between two calls of a session: the shares a masked decryption left it
(until the program that consumes them), and its noised share of released cells (until the
gateway fetches it).

Entries are bound to the peer that may take them, used once, and expire after ``ttl`` seconds, so a
share never outlives the session it belongs to.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from mpc.policy import PolicyError, RateLimitExceeded
from mpc.protocols.aggregate import CellShares
from mpc.protocols.programs import SESSION_ID

# Long enough for the other owners of a large batch to decrypt theirs (a 100 000-application batch
# takes about 3 minutes in all), short enough that shares left by a program that never ran (its
# co-party died) do not lock a busy requester out for long.
DEFAULT_TTL_SECONDS = 600.0
MAX_SESSIONS = 2048
# One requester cannot fill the table for the others, yet 64 concurrent clients of one agency, each
# holding one session per table of a rule, plus those a failure left, stay within it.
MAX_SESSIONS_PER_PEER = 512


_SESSION_ID = re.compile(SESSION_ID)


def check_session_id(value: str) -> str:
    """A session id as the owner accepts it (32 lowercase hex digits): it keys held shares and
    results, so nothing a requester sends can name a file or collide with another form."""
    if not _SESSION_ID.fullmatch(value):  # fullmatch: '$' alone lets a trailing newline through
        raise ValueError(f"session_id must be 32 lowercase hex digits, not {value[:40]!r}")
    return value


class TooManySessions(RateLimitExceeded):
    """A peer holds too many open sessions (RESOURCE_EXHAUSTED at the boundary)."""


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
    peer: str  # the gateway that may fetch it
    shares: CellShares  # our share of the cells, noised by us
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
            if sum(1 for h in self._held.values() if h.peer == held.peer) >= MAX_SESSIONS_PER_PEER:
                raise TooManySessions(
                    f"{held.peer} holds {MAX_SESSIONS_PER_PEER} open sessions here; "
                    f"finish or let them expire ({self._ttl:.0f} s) first"
                )
            if len(self._held) >= MAX_SESSIONS:
                raise TooManySessions("too many open sessions; retry later")
            self._held[session_id] = held

    def take(self, session_id: str, peer: str) -> H:
        """Remove and return what ``session_id`` holds; only the peer it is bound to may."""
        with self._lock:
            self._expire(time.monotonic())
            held = self._held.get(session_id)
            if held is None or held.peer != peer:
                raise LookupError(
                    f"no shares held for session {session_id!r} from {peer!r} (expired or never decrypted)"
                )
            del self._held[session_id]
            return held


@dataclass(frozen=True)
class Fetch:
    """Encrypted rows served to ``peer``: a whole table (P1) or one bucket (P3) of a table."""

    peer: str
    dataset: str
    columns: tuple[str, ...]
    whole_table: bool
    epoch: int  # of the table (and so of its key)
    created: float


class FetchTokens:
    """Tokens the owner issues with each fetch of encrypted rows; a masked decryption must redeem
    tokens of its own fetches (each once), so every decryption is preceded by fetches that were
    counted (a P3 bucket, or a whole table) and a kept ciphertext cannot be decrypted again."""

    def __init__(self, ttl: float = DEFAULT_TTL_SECONDS, per_peer: int = 4096) -> None:
        self._ttl, self._per_peer = ttl, per_peer
        self._held: dict[bytes, Fetch] = {}
        self._lock = threading.Lock()

    def issue(self, fetch: Fetch) -> bytes:
        token = os.urandom(16)
        with self._lock:
            now = time.monotonic()
            for key in [k for k, v in self._held.items() if now - v.created > self._ttl]:
                del self._held[key]
            if sum(1 for f in self._held.values() if f.peer == fetch.peer) >= self._per_peer:
                raise TooManySessions(
                    f"{fetch.peer} holds {self._per_peer} fetches not yet decrypted here; "
                    f"decrypt them or let them expire ({self._ttl:.0f} s) first"
                )
            self._held[token] = fetch
        return token

    def redeem(
        self, tokens: Sequence[bytes], peer: str, dataset: str, columns: tuple[str, ...], whole_table: bool
    ) -> int:
        """Consume ``tokens``; each must be this peer's, unexpired, for this table and path, and
        all of one epoch. Returns that epoch (whose table key decrypts)."""
        if not tokens:
            raise PolicyError("a masked decryption cites the fetch tokens of its rows (fetch them first)")
        with self._lock:
            fetches = [self._held.pop(bytes(t), None) for t in tokens]
        now = time.monotonic()
        for fetch in fetches:
            if fetch is None or fetch.peer != peer or now - fetch.created > self._ttl:
                raise PolicyError("a fetch token is unknown, used already, expired or not yours")
            if (fetch.dataset, fetch.columns, fetch.whole_table) != (dataset, columns, whole_table):
                raise PolicyError(
                    f"a fetch token is for {fetch.dataset}{list(fetch.columns)} "
                    f"{'whole table' if fetch.whole_table else 'bucket'}, not this decryption"
                )
        epochs = {f.epoch for f in fetches if f is not None}
        if len(epochs) != 1:
            raise PolicyError("the fetch tokens of one decryption come from one epoch")
        return epochs.pop()
