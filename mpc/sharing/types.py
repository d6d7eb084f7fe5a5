"""Share types: additive shares of Z_2^64 values and XOR shares of bit-packed booleans.

A share knows the :class:`~mpc.sharing.runtime.Party` it belongs to, so that operators read like
the computation (``(income < limit) & ~owns_property``); every operator is a batched call into
:mod:`mpc.sharing.arithmetic` or :mod:`mpc.sharing.boolean`. Both parties run the same program on
their own shares. There is room for a MAC field when malicious security arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

__all__ = ["ArithmeticShare", "BooleanShare", "Public"]

if TYPE_CHECKING:
    from mpc.sharing.runtime import Party

Public = int | np.integer | np.ndarray


@dataclass(eq=False)
class ArithmeticShare:
    """This party's additive share ``x_i`` of a batch of values ``x = x_0 + x_1 mod 2^64``."""

    party: Party
    value: np.ndarray  # uint64, shape (n,)

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def __getitem__(self, index: slice | np.ndarray) -> ArithmeticShare:
        return ArithmeticShare(self.party, self.value[index])

    # arithmetic (local unless both operands are shares and the operation is *)
    def __add__(self, other: ArithmeticShare | Public) -> ArithmeticShare:
        from mpc.sharing import arithmetic

        return arithmetic.add(self, other)

    __radd__ = __add__

    def __sub__(self, other: ArithmeticShare | Public) -> ArithmeticShare:
        from mpc.sharing import arithmetic

        return arithmetic.sub(self, other)

    def __rsub__(self, other: Public) -> ArithmeticShare:
        from mpc.sharing import arithmetic

        return arithmetic.add(arithmetic.neg(self), other)

    def __neg__(self) -> ArithmeticShare:
        from mpc.sharing import arithmetic

        return arithmetic.neg(self)

    def __mul__(self, other: ArithmeticShare | Public) -> ArithmeticShare:
        from mpc.sharing import arithmetic

        if isinstance(other, ArithmeticShare):
            return arithmetic.mul(self, other)
        return arithmetic.mul_public(self, other)

    __rmul__ = __mul__

    # comparisons: each returns a BooleanShare (interactive)
    def __lt__(self, other: ArithmeticShare | Public) -> BooleanShare:  # type: ignore[misc]
        from mpc.sharing import boolean

        return boolean.lt(self, other)

    def __le__(self, other: ArithmeticShare | Public) -> BooleanShare:  # type: ignore[misc]
        from mpc.sharing import boolean

        return boolean.le(self, other)

    def __gt__(self, other: ArithmeticShare | Public) -> BooleanShare:  # type: ignore[misc]
        from mpc.sharing import boolean

        return boolean.gt(self, other)

    def __ge__(self, other: ArithmeticShare | Public) -> BooleanShare:  # type: ignore[misc]
        from mpc.sharing import boolean

        return boolean.ge(self, other)

    def eq(self, other: ArithmeticShare | Public) -> BooleanShare:
        from mpc.sharing import boolean

        return boolean.eq(self, other)

    def ne(self, other: ArithmeticShare | Public) -> BooleanShare:
        from mpc.sharing import boolean

        return boolean.ne(self, other)


@dataclass(eq=False)
class BooleanShare:
    """This party's XOR share of ``length`` bits, packed 64 per uint64 word (LSB first)."""

    party: Party
    words: np.ndarray  # uint64, shape (ceil(length / 64),)
    length: int

    def __len__(self) -> int:
        return self.length

    def __and__(self, other: BooleanShare) -> BooleanShare:
        from mpc.sharing import boolean

        return boolean.and_(self, other)

    def __or__(self, other: BooleanShare) -> BooleanShare:
        from mpc.sharing import boolean

        return boolean.or_(self, other)

    def __xor__(self, other: BooleanShare) -> BooleanShare:
        from mpc.sharing import boolean

        return boolean.xor(self, other)

    def __invert__(self) -> BooleanShare:
        from mpc.sharing import boolean

        return boolean.not_(self)

    def to_arithmetic(self) -> ArithmeticShare:
        from mpc.sharing import boolean

        return boolean.b2a(self)
