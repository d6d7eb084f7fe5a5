"""Curve25519 points on the wire: 32-byte u-coordinates concatenated in ``PointBatch`` messages
of at most ``CHUNK_POINTS`` points (2 MiB), well under the message-size limit."""

from __future__ import annotations

from collections.abc import Iterator

from mpc.crypto.curve25519 import POINT_BYTES
from protos import party_pb2

CHUNK_POINTS = 65_536


def split_points(blob: bytes, count: int) -> list[bytes]:
    if len(blob) != count * POINT_BYTES:
        raise ValueError(f"point batch of {len(blob)} bytes does not hold {count} points of {POINT_BYTES} bytes")
    return [blob[i : i + POINT_BYTES] for i in range(0, len(blob), POINT_BYTES)]


def point_batches(points: list[bytes], dataset: str = "") -> Iterator[party_pb2.PointBatch]:
    for start in range(0, len(points), CHUNK_POINTS):
        part = points[start : start + CHUNK_POINTS]
        yield party_pb2.PointBatch(dataset=dataset if start == 0 else "", points=b"".join(part), count=len(part))
