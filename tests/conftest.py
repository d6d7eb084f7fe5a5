"""Shared fixtures: Paillier key pairs are slow to generate, so each size is made once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.load_profile("default")


@pytest.fixture(scope="session")
def keypair_1024() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(1024)


@pytest.fixture(scope="session")
def keypair_2048() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(2048)
