"""``python -m demo primitives``: the cryptographic core in one process.

A housing office (the requester) asks whether applicants' annual income is below a limit and whether
they own no property, against a tax bureau's table (the owner), without the tax bureau learning who
was asked about and without the housing office learning any income:

1. OPRF (Curve25519): the housing office learns the tax bureau's tag of each applicant's id.
2. Paillier-masked lookup: it picks the matching encrypted row, adds a masked encryption, and the
   tax bureau's decryption leaves both holding additive shares of the row.
3. Secret-shared comparison over Z_2^64: ``income < limit AND property == 0``, revealed only to the
   housing office.
"""

from __future__ import annotations

import time

import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mpc.crypto.curve25519 import OprfClient, OprfServer
from mpc.crypto.obfuscators import CrtObfuscator, ShortExponentObfuscator
from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey, generate_keypair
from mpc.protocols.lookup import RowLayout, mask_rows, unmask
from mpc.sharing.runtime import Party, run_in_process
from mpc.sharing.types import ArithmeticShare

console = Console()


TAX_TABLE = [  # resident id, annual income (CNY), registered properties
    ("110101199003077777", 28_000, 0),
    ("110101198507151234", 96_000, 1),
    ("11010119770101003X", 41_500, 0),
    ("110101200012240021", -3_000, 0),
    ("110101196911110016", 29_999, 2),
    ("110101199912319998", 30_000, 0),
]
APPLICANTS = [
    "110101199003077777",
    "11010119770101003X",
    "110101200012240021",
    "110101199912319998",
    "440301199001010000",
]
INCOME_LIMIT = 30_000


def primitives(key_bits: int = typer.Option(2048, help="Paillier modulus size (2048 or 3072).")) -> None:
    """The building blocks between two in-process parties: OPRF, masked lookup, comparison."""
    console.rule("[bold]Cross-agency eligibility, the cryptographic core")
    console.print(
        f"Tax bureau (owner) holds {len(TAX_TABLE)} rows; the housing office (requester) has "
        f"{len(APPLICANTS)} applicants and asks: [italic]income < {INCOME_LIMIT:,} and no property[/]."
    )

    # --- owner: keys, OPRF tags and the encrypted table --------------------------------------
    started = time.perf_counter()
    owner_pk, owner_sk = generate_keypair(key_bits)
    owner_pk.use_obfuscator(CrtObfuscator(owner_sk))  # the owner may use its factorisation
    oprf = OprfServer.generate(domain=b"tax/residents")
    tags = oprf.evaluate_ids([row[0] for row in TAX_TABLE], parallel=False)
    values = np.array([[income, props] for _, income, props in TAX_TABLE], dtype=np.int64)
    layout = RowLayout.for_bounds(["annual_income", "property_count"], [(-(10**9), 10**9), (0, 1000)], key_bits)
    rows = owner_pk.encrypt_batch(layout.plaintexts(values, layout.positions(tags)))
    console.print(
        f"[dim]owner set-up: {key_bits}-bit Paillier key, {len(tags)} OPRF tags, {len(tags)} ciphertexts "
        f"(slots of {'/'.join(map(str, layout.slot_bits))} bits, {layout.rows_per_plaintext} rows per plaintext) in "
        f"{time.perf_counter() - started:.2f} s[/]"
    )

    # --- requester: OPRF round trip, then masked lookups ---------------------------------------
    requester_pk = PaillierPublicKey(int(owner_pk.n))  # the requester holds the public key only
    requester_pk.use_obfuscator(ShortExponentObfuscator(requester_pk, window_bits=8))
    published = {tag: PaillierCiphertext(requester_pk, c.value) for tag, c in zip(tags, rows, strict=True)}
    client = OprfClient(domain=b"tax/residents")
    query = client.blind(APPLICANTS, parallel=False)
    answers = oprf.evaluate_blinded(query.points, parallel=False)  # the owner sees only blinded points
    applicant_tags = client.finalize(query, answers, parallel=False)

    selected = [published.get(t) for t in applicant_tags]
    present = [int(c is not None) for c in selected]  # the requester sees which tags the table holds
    masked, requester_shares = mask_rows(requester_pk, layout, selected)
    owner_shares = unmask(layout, owner_sk.decrypt_batch(masked))
    owner_view = [int(s[0]) for s in owner_shares]  # what the owner kept for the income column

    # --- both: compare on shares, reveal to the requester only ---------------------------------
    owner_cols = np.array(owner_shares, dtype=np.uint64).T
    requester_cols = np.array(requester_shares, dtype=np.uint64).T

    def program(p: Party) -> np.ndarray | None:
        cols = owner_cols if p.index == 0 else requester_cols
        income, props = (ArithmeticShare(p, cols[i].copy()) for i in range(2))
        limit = p.share([INCOME_LIMIT] * len(APPLICANTS) if p.index == 1 else None, owner=1)
        known = p.share_bits(present if p.index == 1 else None, owner=1)  # the requester's secret input
        eligible = (income < limit) & props.eq(0) & known
        return p.reveal_bits(eligible, to=1)

    owner_result, eligible = run_in_process(program)
    assert owner_result is None and eligible is not None

    results = Table(title="Housing office's results (all it learns)")
    results.add_column("applicant")
    results.add_column("eligible", justify="center")
    truth = {rid: inc < INCOME_LIMIT and props == 0 for rid, inc, props in TAX_TABLE}
    for applicant, bit in zip(APPLICANTS, eligible, strict=True):
        assert bool(bit) == truth.get(applicant, False)  # the demo checks itself against plaintext
        results.add_row(applicant, "[green]yes[/]" if bit else "[red]no[/]")
    console.print(results)

    learned = Table(title="What each side learned")
    learned.add_column("party")
    learned.add_column("learned")
    learned.add_column("never saw")
    learned.add_row(
        "housing office (requester)",
        "one eligibility bit per applicant",
        "incomes, property counts, which rows exist beyond its applicants",
    )
    learned.add_row(
        "tax bureau (owner)",
        f"{len(query.points)} blinded points and {len(masked)} masked rows, e.g. income slot "
        f"{owner_view[0]:#x}… (income + 40-bit-wider mask, summed over positions)",
        "applicant ids, the limit, the results",
    )
    console.print(learned)
    console.print(
        Panel.fit(
            "next: `make test` runs the whole suite; `make bench` compares against python-paillier, "
            "openmined-psi, MPyC and SecretFlow SPU; docs/architecture.md explains the layers.",
            title="done",
        )
    )
