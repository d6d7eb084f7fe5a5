"""numpy arrays on the wire, and the message-size limits every channel is built with.

gRPC messages are capped deliberately: a channel accepts at most ``MAX_MESSAGE_BYTES`` per
message; arrays larger than ``CHUNK_BYTES`` travel as several messages (``more = true`` on all but
the last), so a batch of any size streams with bounded memory per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from protos import common_pb2

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024
MAX_ARRAY_BYTES = 1024 * 1024 * 1024  # a single logical array (after reassembly)
_ALLOWED_DTYPES = {"<u8", "<i8", "|u1", "<u4", "<i4"}

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 0),
]


class WireError(ValueError):
    """A peer sent an array we refuse: unknown dtype, inconsistent shape, oversized."""


def to_message(array: np.ndarray) -> common_pb2.NdArray:
    a = np.ascontiguousarray(array)
    return common_pb2.NdArray(dtype=a.dtype.str, shape=list(a.shape), data=a.tobytes())


def from_message(message: common_pb2.NdArray) -> np.ndarray:
    if message.dtype not in _ALLOWED_DTYPES:
        raise WireError(f"array dtype {message.dtype!r} is not accepted")
    dtype = np.dtype(message.dtype)
    shape = tuple(int(s) for s in message.shape)
    if any(s < 0 for s in shape):
        raise WireError(f"negative array dimension in {shape}")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected != len(message.data):
        raise WireError(
            f"array of shape {shape} and dtype {message.dtype} needs {expected} bytes, got {len(message.data)}"
        )
    return np.frombuffer(message.data, dtype=dtype).reshape(shape)


def chunks(array: np.ndarray, limit: int = CHUNK_BYTES) -> Iterator[tuple[np.ndarray, bool]]:
    """Split a 1-d array into pieces of at most ``limit`` bytes; yields (piece, more)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    per = max(1, limit // max(1, flat.dtype.itemsize))
    if flat.size <= per:
        yield flat, False
        return
    for start in range(0, flat.size, per):
        yield flat[start : start + per], start + per < flat.size


def join(pieces: Iterable[np.ndarray]) -> np.ndarray:
    parts = list(pieces)
    total = sum(p.nbytes for p in parts)
    if total > MAX_ARRAY_BYTES:
        raise WireError(f"array of {total} bytes exceeds the {MAX_ARRAY_BYTES}-byte limit")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
