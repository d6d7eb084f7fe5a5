"""Curve25519 points and tags on the wire: fixed-width items concatenated in one bytes field
(PSI and OPRF send at most 65 536 points, 2 MiB, per message, well under the size limit)."""

from __future__ import annotations

from mpc.crypto.curve25519 import POINT_BYTES


def split_fixed(blob: bytes, width: int, count: int) -> list[bytes]:
    """``count`` items of ``width`` bytes each; anything else is a malformed message."""
    if count < 0 or len(blob) != count * width:
        raise ValueError(f"batch of {len(blob)} bytes does not hold {count} items of {width} bytes")
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def split_points(blob: bytes, count: int) -> list[bytes]:
    return split_fixed(blob, POINT_BYTES, count)
