"""One compute party of a two-party secret-sharing session, and an in-process harness.

A :class:`Party` bundles what a party's program needs: its index (0 or 1), the :class:`Channel` to
its peer and its :class:`Correlations` from the dealer. Both parties run the same program
(single program, multiple data); every interactive step uses a numbered label so a desynchronised
peer is caught at once.

What each step reveals: :meth:`Party.share` shows the non-owner a PRG seed whose expansion is its
share (uniform, independent of the input); :meth:`Party.reveal` shows the named party the other's
share, i.e. the value; nothing else is ever opened except uniformly masked differences inside
multiplication, AND and B2A.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from mpc.crypto.prg import SEED_BYTES, expand_words, new_seed
from mpc.sharing import kernels, ring
from mpc.sharing.channel import Channel, ChannelError, InProcessChannel
from mpc.sharing.dealer import Correlations, TrustedDealer
from mpc.sharing.types import ArithmeticShare, BooleanShare

__all__ = ["Party", "run_in_process"]

T = TypeVar("T")


class Party:
    """Party ``index`` of a two-party session."""

    def __init__(self, index: int, channel: Channel, correlations: Correlations) -> None:
        if index not in (0, 1):
            raise ValueError("party index must be 0 or 1")
        if correlations.party != index:
            raise ValueError("correlations were dealt for the other party")
        self.index = index
        self.channel = channel
        self.correlations = correlations
        self._step = 0

    @property
    def first(self) -> bool:
        return self.index == 0

    def label(self, name: str) -> str:
        """A fresh step label; both parties generate the same sequence."""
        self._step += 1
        return f"{name}#{self._step}"

    # ----------------------------------------------------------------- inputs
    def _input_mask(self, owner: int, count: int | None, name: str) -> tuple[np.ndarray, int]:
        """Owner: draw a seed, send it with the count, return its expansion. Other: receive it."""
        label = self.label(name)
        if self.index == owner:
            assert count is not None
            seed = new_seed()
            header = np.frombuffer(seed + count.to_bytes(8, "little"), dtype=np.uint8)
            self.channel.send(label, header)
        else:
            header = self.channel.recv(label)
            if header.dtype != np.uint8 or header.shape != (SEED_BYTES + 8,):
                raise ValueError(f"malformed input header at {label}")
            seed, count = header[:SEED_BYTES].tobytes(), int.from_bytes(header[SEED_BYTES:].tobytes(), "little")
        return expand_words(seed, 0, count), count

    def share(self, values: Sequence[int] | np.ndarray | None, owner: int) -> ArithmeticShare:
        """Secret-share the owner's signed values in [-2^62, 2^62) (others pass ``None``).

        The owner keeps ``x - r`` and sends only a seed of ``r``: 24 bytes on the wire, any batch.
        Out-of-range values raise :class:`~mpc.sharing.ring.ValueRangeError` before anything is sent.
        """
        if self.index == owner:
            if values is None:
                raise ValueError("the owner of an input must supply its values")
            x = ring.encode(values).reshape(-1)
            r, _ = self._input_mask(owner, len(x), "input")
            return ArithmeticShare(self, x - r)
        r, _ = self._input_mask(owner, None, "input")
        return ArithmeticShare(self, r.copy())

    def share_bits(self, bits: Sequence[int] | np.ndarray | None, owner: int) -> BooleanShare:
        """Secret-share the owner's 0/1 values as a packed XOR sharing."""
        if self.index == owner:
            if bits is None:
                raise ValueError("the owner of an input must supply its bits")
            array = np.asarray(bits).reshape(-1)
            if array.size and not np.isin(array, (0, 1)).all():
                raise ValueError("boolean inputs must be 0 or 1")
            packed = kernels.pack_bits(array.astype(np.uint64))
            r, _ = self._input_mask(owner, len(array), "input-bits")
            return BooleanShare(self, packed ^ r[: len(packed)], len(array))
        r, count = self._input_mask(owner, None, "input-bits")
        return BooleanShare(self, r[: (count + 63) // 64].copy(), count)

    def public(self, values: Sequence[int] | np.ndarray) -> ArithmeticShare:
        """A trivial sharing of public values (party 0 holds them, party 1 holds zeros)."""
        x = ring.encode(values).reshape(-1)
        return ArithmeticShare(self, x if self.first else np.zeros_like(x))

    # ----------------------------------------------------------------- outputs
    def open(self, share: ArithmeticShare, name: str = "open") -> np.ndarray:
        """Both parties learn the values (internal use: only for uniformly masked values)."""
        theirs = self.channel.exchange(self.label(name), share.value)
        opened: np.ndarray = share.value + theirs
        return opened

    def reveal(self, share: ArithmeticShare, to: int) -> np.ndarray | None:
        """The party ``to`` learns the signed values; the other learns nothing and gets ``None``."""
        label = self.label("reveal")
        if self.index == to:
            return ring.decode(share.value + self.channel.recv(label))
        self.channel.send(label, share.value)
        return None

    def reveal_bits(self, share: BooleanShare, to: int) -> np.ndarray | None:
        """The party ``to`` learns the bits (as a 0/1 uint8 array); the other gets ``None``."""
        label = self.label("reveal-bits")
        if self.index == to:
            words = share.words ^ self.channel.recv(label)
            return kernels.unpack_bits(words, share.length).astype(np.uint8)
        self.channel.send(label, share.words)
        return None


def run_in_process(
    program: Callable[[Party], T],
    dealer: TrustedDealer | None = None,
    channels: tuple[Channel, Channel] | None = None,
) -> tuple[T, T]:
    """Run ``program`` as party 0 and party 1 in two threads of this process.

    numba kernels release the GIL, so the two parties use two cores. An exception in either
    party is re-raised here (the other party then fails on its channel timeout at the latest).
    """
    dealer = dealer or TrustedDealer()
    left, right = channels or InProcessChannel.pair()
    parties = (Party(0, left, dealer.correlations_for(0)), Party(1, right, dealer.correlations_for(1)))
    results: list[T | None] = [None, None]
    errors: list[BaseException | None] = [None, None]

    def body(i: int) -> None:
        try:
            results[i] = program(parties[i])
        except BaseException as exc:
            errors[i] = exc
            parties[i].channel.abort(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=body, args=(i,), name=f"party-{i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Prefer the root cause over the peer's "aborted" channel error.
    for err in sorted((e for e in errors if e is not None), key=lambda e: isinstance(e, ChannelError)):
        raise err
    return results[0], results[1]  # type: ignore[return-value]
