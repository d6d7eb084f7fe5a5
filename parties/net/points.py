"""Curve25519 points on the wire: 32-byte u-coordinates concatenated in ``PointBatch`` messages
of at most ``CHUNK_POINTS`` points (2 MiB), well under the message-size limit."""

from __future__ import annotations

from collections.abc import Iterator

from mpc.crypto.curve25519 import POINT_BYTES
from protos import party_pb2

CHUNK_POINTS = 65_536


def split_fixed(blob: bytes, width: int, count: int) -> list[bytes]:
    """``count`` items of ``width`` bytes each; anything else is a malformed message."""
    if count < 0 or len(blob) != count * width:
        raise ValueError(f"batch of {len(blob)} bytes does not hold {count} items of {width} bytes")
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def split_points(blob: bytes, count: int) -> list[bytes]:
    return split_fixed(blob, POINT_BYTES, count)


def point_batches(points: list[bytes], dataset: str = "") -> Iterator[party_pb2.PointBatch]:
    for start in range(0, len(points), CHUNK_POINTS):
        part = points[start : start + CHUNK_POINTS]
        yield party_pb2.PointBatch(dataset=dataset if start == 0 else "", points=b"".join(part), count=len(part))
