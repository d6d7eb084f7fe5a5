from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class NdArray(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("bit_triple_words", "beaver_triples", "dabits")
    BIT_TRIPLE_WORDS_FIELD_NUMBER: _ClassVar[int]
    BEAVER_TRIPLES_FIELD_NUMBER: _ClassVar[int]
    DABITS_FIELD_NUMBER: _ClassVar[int]
    bit_triple_words: int
    beaver_triples: int
    dabits: int
    def __init__(self, bit_triple_words: _Optional[int] = ..., beaver_triples: _Optional[int] = ..., dabits: _Optional[int] = ...) -> None: ...

class AuditHead(_message.Message):
    __slots__ = ("party", "seq", "hash", "time", "signature")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    party: str
    seq: int
    hash: str
    time: str
    signature: str
    def __init__(self, party: _Optional[str] = ..., seq: _Optional[int] = ..., hash: _Optional[str] = ..., time: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...
