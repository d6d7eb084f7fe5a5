"""Parts of the requester service without a cluster: the coalescer's batching (a fake checker
records what reaches the owners) and the callers' certificate checks (a real PKI). The service end
to end is tests/e2e/test_requester_service.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from starlette.requests import Request

from mpc.protocols.rules import Application, load_rules
from parties.pki import Pki
from parties.requester import Eligibility
from parties.requester.service.callers import Callers, Refused
from parties.requester.service.checks import Checker
from parties.requester.service.coalesce import Coalescer
from parties.rpc.tls import TlsConfig

RULE = load_rules(
    """
[rules.r]
expression = "c"
[rules.r.clauses.c]
owner = "tax"
dataset = "income"
column = "annual_income"
compare = "<"
value = 1
"""
).get("r")


class FakeChecker:
    """What reaches the owners: each round trip's case reference and applications; the answer's
    bit k is the k-th application's reference ending in an odd digit. ``gate`` holds round trips
    until set; ``fail`` makes them raise."""

    def __init__(self) -> None:
        self.trips: list[tuple[str, list[str]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.running = 0
        self.most_running = 0
        self.fail = False
        self._lock = threading.Lock()

    def check(self, rule: Any, purpose: str, case: str, applications: Sequence[Application]) -> Eligibility:
        with self._lock:
            self.trips.append((case, [a.reference for a in applications]))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.gate.wait(10)
            time.sleep(0.01)
            if self.fail:
                raise RuntimeError("owner unavailable")
            return Eligibility(np.array([int(a.reference[-1]) % 2 for a in applications], dtype=np.uint8))
        finally:
            with self._lock:
                self.running -= 1


def _app(k: int, members: int = 1) -> Application:
    people = tuple(f"P{k}-{m}" for m in range(members))
    return Application(f"APP-{k}", people[0], people)


def _coalescer(fake: FakeChecker, **kwargs: Any) -> Coalescer:
    settings: dict[str, Any] = {"window_ms": 0.0, "most": 32, **kwargs}
    return Coalescer(cast(Checker, fake), settings.pop("window_ms"), settings.pop("most"), **settings)


def _bit(coalescer: Coalescer, k: int, members: int = 1) -> tuple[int, str]:
    answer, index, case = coalescer.check(RULE, "p", f"CASE-{k}", _app(k, members))
    return int(answer.bits[index]), case


def test_a_check_alone_runs_at_once_under_its_own_case() -> None:
    fake = FakeChecker()
    coalescer = _coalescer(fake, window_ms=1000.0)  # a window only holds back checks that would queue
    started = time.perf_counter()
    assert _bit(coalescer, 3) == (1, "CASE-3")
    assert _bit(coalescer, 4) == (0, "CASE-4")
    assert time.perf_counter() - started < 0.5
    assert fake.trips == [("CASE-3", ["APP-3"]), ("CASE-4", ["APP-4"])]


def _in_its_round_trip(pool: ThreadPoolExecutor, coalescer: Coalescer, fake: FakeChecker) -> Future[tuple[int, str]]:
    """Check 0 started, and returned once it holds the key's slot (its round trip is at the gate)."""
    first = pool.submit(_bit, coalescer, 0)
    while not fake.trips:
        time.sleep(0.001)
    return first


def test_checks_that_would_queue_go_as_one_batch() -> None:
    """One check runs alone; the 12 that arrive meanwhile wait for its slot and leave together,
    each with its own answer; never more round trips at once than the slots."""
    fake = FakeChecker()
    coalescer = _coalescer(fake, in_flight=1)
    fake.gate.clear()
    with ThreadPoolExecutor(13) as pool:
        first = _in_its_round_trip(pool, coalescer, fake)
        rest = [pool.submit(_bit, coalescer, k) for k in range(1, 13)]
        time.sleep(0.2)  # all 12 are waiting
        fake.gate.set()
        assert first.result() == (0, "CASE-0")
        answers = [f.result() for f in rest]
    assert [bit for bit, _ in answers] == [k % 2 for k in range(1, 13)]
    cases = {case for _, case in answers}
    assert len(cases) == 1 and next(iter(cases)).startswith("coalesced-")
    assert len(fake.trips) == 2 and sorted(fake.trips[1][1]) == sorted(f"APP-{k}" for k in range(1, 13))
    assert fake.most_running == 1


def test_batches_hold_at_most_most_and_keys_do_not_mix() -> None:
    fake = FakeChecker()
    coalescer = _coalescer(fake, in_flight=1, most=4)
    fake.gate.clear()
    with ThreadPoolExecutor(12) as pool:
        blocker = _in_its_round_trip(pool, coalescer, fake)
        singles = [pool.submit(_bit, coalescer, k) for k in range(1, 9)]
        time.sleep(0.1)
        larger = [pool.submit(_bit, coalescer, k, 5) for k in range(9, 12)]  # another household size class
        time.sleep(0.2)
        fake.gate.set()
        blocker.result()
        assert [f.result()[0] for f in singles] == [k % 2 for k in range(1, 9)]
        assert [f.result()[0] for f in larger] == [k % 2 for k in range(9, 12)]
    sizes = sorted(len(refs) for _, refs in fake.trips[1:])
    assert sizes == [1, 2, 4, 4]  # 8 singles in batches of 4; of the larger households one alone, then two
    for _, refs in fake.trips:
        assert len({int(r.split("-")[1]) >= 9 for r in refs}) == 1


def test_a_failed_batch_fails_each_of_its_checks() -> None:
    fake = FakeChecker()
    coalescer = _coalescer(fake, in_flight=1)
    fake.gate.clear()
    with ThreadPoolExecutor(4) as pool:
        first = _in_its_round_trip(pool, coalescer, fake)
        rest = [pool.submit(_bit, coalescer, k) for k in range(1, 4)]
        time.sleep(0.1)
        fake.fail = True
        fake.gate.set()
        for future in [first, *rest]:
            with pytest.raises(RuntimeError, match="owner unavailable"):
                future.result()
    fake.fail = False
    assert _bit(coalescer, 5) == (1, "CASE-5")  # the slots were given back


def test_without_coalescing_every_check_goes_alone() -> None:
    fake = FakeChecker()
    coalescer = _coalescer(fake, enabled=False)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda k: _bit(coalescer, k), range(8)))
    assert answers == [(k % 2, f"CASE-{k}") for k in range(8)]
    assert sorted(case for case, _ in fake.trips) == sorted(f"CASE-{k}" for k in range(8))


# ---------------------------------------------------------------------- callers


def _request(pem: str | None) -> Request:
    extensions = {"tls": {"client_cert_chain": [pem]}} if pem is not None else {}
    return Request({"type": "http", "method": "GET", "path": "/v1/rules", "headers": [], "extensions": extensions})


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    pki = Pki.init(tmp_path / "pki")
    for name in ("case-system", "other-system", "service"):
        pki.issue(name, roles=("client",))
    return pki


def test_a_verified_caller_is_still_refused_once_revoked(pki: Pki) -> None:
    """The chain is verified once a minute per certificate; revocation on every call."""
    tls = TlsConfig(ca=pki.ca_path, cert=pki.cert_path("service"), key=pki.key_path("service"), crl=pki.crl_path)
    callers = Callers(["case-system"], tls)
    pem = pki.cert_path("case-system").read_text()
    assert callers.identify(_request(pem)) == "case-system"
    assert callers.identify(_request(pem)) == "case-system"  # from the cache
    with pytest.raises(Refused) as refused:
        callers.identify(_request(pki.cert_path("other-system").read_text()))
    assert refused.value.status_code == 403
    time.sleep(0.01)  # a new CRL file (its mtime) is read again
    pki.revoke("case-system")
    with pytest.raises(Refused) as refused:
        callers.identify(_request(pem))
    assert refused.value.status_code == 403 and "revoked" in str(refused.value.detail)
    with pytest.raises(Refused) as refused:
        callers.identify(_request(None))
    assert refused.value.status_code == 401


def test_a_certificate_of_another_ca_is_never_cached_as_verified(pki: Pki, tmp_path: Path) -> None:
    tls = TlsConfig(ca=pki.ca_path, cert=pki.cert_path("service"), key=pki.key_path("service"), crl=pki.crl_path)
    callers = Callers(["case-system"], tls)
    foreign = Pki.init(tmp_path / "foreign")
    foreign.issue("case-system", roles=("client",))
    pem = foreign.cert_path("case-system").read_text()
    for _ in range(2):
        with pytest.raises(Refused) as refused:
            callers.identify(_request(pem))
        assert refused.value.status_code == 403 and "untrusted" in str(refused.value.detail)
