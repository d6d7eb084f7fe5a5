"""The audit verifier: check a whole log file and classify what is wrong with it, line by line.

:func:`verify_log` reads every line of a log written by :class:`mpc.audit.writer.AuditLog`,
checks hashes, signatures and chain links against the daemon's public key and, optionally,
against heads a coordinator witnessed, and returns a :class:`~mpc.audit.report.VerifyReport`
listing every :class:`~mpc.audit.report.VerifyProblem`. See its docstring for the
classification rules.

The work is done in passes, in this order, over a shared :class:`_Scan`:

1. :func:`_read_records` -- parse every line; blank and malformed lines are reported.
2. :func:`_flag_copies_and_forks` -- replayed copies and second entries claiming a seq.
3. :func:`_flag_edited` -- signed entries whose content no longer matches their hash.
4. :func:`_flag_reordered` -- authentic entries out of seq order in the file.
5. :func:`_walk_chain` -- seqs 1..max: every link (:func:`_check_link`) and every gap
   (:func:`_fill_gap`, which may place unsigned or malformed lines in it).
6. :func:`_flag_unplaced_unsigned` -- unsigned entries that fill no gap.
7. :func:`_check_witnesses` -- each witnessed head against the log.
8. :func:`_report` -- problems sorted by line, and the head of the log.

The chain-repair helpers (:func:`_longest_increasing`, :func:`_path_through`,
:func:`_path_forward`) find which entries the chain passes through.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpc.audit.record import GENESIS_HASH, AuditEntry, AuditHead, entry_signature_ok, verify_head
from mpc.audit.report import ProblemKind, VerifyProblem, VerifyReport

__all__ = [
    "verify_log",
]


@dataclass
class _Record:
    """One line that parses as an entry, and what the passes found out about it."""

    line: int
    entry: AuditEntry
    hash_ok: bool
    sig_ok: bool
    seq: int  # trusted seq (inferred for edited entries)
    status: str = ""  # "", "edited", "duplicate", "reordered", "filled", "inserted", ...


@dataclass
class _Scan:
    """What the passes of :func:`verify_log` share; each pass reads it and adds to it."""

    lines_read: int
    records: list[_Record]  # the lines that parse as entries, in file order
    malformed_lines: list[int]  # numbers of the blank and malformed lines
    problems: list[VerifyProblem]  # in the order found; sorted by :func:`_report`
    by_hash: dict[str, _Record] = field(default_factory=dict)  # the record holding each authentic hash
    slots: dict[int, _Record] = field(default_factory=dict)  # the record trusted to hold each seq
    chain: list[_Record] = field(default_factory=list)  # intact entries, less copies and forks
    claimed: set[int] = field(default_factory=set)  # ids of unsigned records used to fill a gap
    claimed_malformed: set[int] = field(default_factory=set)  # malformed lines counted in a gap

    def add(self, line: int, seq: int | None, kind: ProblemKind, message: str) -> None:
        """Record one problem, after those found before it."""
        self.problems.append(VerifyProblem(line, seq, kind, message))

    @property
    def authentic(self) -> list[_Record]:
        """Records whose signature verifies over their stored hash."""
        return [r for r in self.records if r.sig_ok]

    @property
    def intact(self) -> list[_Record]:
        """Authentic records whose content also hashes to the stored hash."""
        return [r for r in self.authentic if r.hash_ok]

    @property
    def unsigned(self) -> list[_Record]:
        """Records whose signature does not verify with the key."""
        return [r for r in self.records if not r.sig_ok]

    @property
    def max_seq(self) -> int:
        """The highest trusted seq (0 when there is none)."""
        return max(self.slots, default=0)

    @property
    def last_line_of_chain(self) -> int:
        """The line of the entry with the highest trusted seq (0 when there is none)."""
        return self.slots[self.max_seq].line if self.max_seq else 0


def verify_log(path: Path, public_key: Ed25519PublicKey, witnessed: Sequence[AuditHead] = ()) -> VerifyReport:
    """Verify a whole audit log and, optionally, that it still contains witnessed heads.

    Classification, per line (each problem names the line, the seq and what is wrong):

    * ``malformed``: not a strict JSON entry (also blank lines and a torn last line).
    * ``edited``: the content no longer matches the signed hash (a field was changed); or an
      entry with a self-consistent hash but an invalid signature sits where an authentic entry
      is missing and the chain does not pass through it (altered and re-hashed, or replaced).
    * ``bad-signature``: hash matches the content and the chain passes through the entry, but the
      signature does not verify (signature altered, or the log is not from this key).
    * ``inserted``: an entry that is not part of the chain: not signed by this key and not
      filling a gap, a replayed copy of another line, or a second entry claiming a seq.
    * ``reordered``: an authentic entry whose seq is lower than one on an earlier line.
    * ``removed``: authentic entries are missing (seq gap; the next entry's prev_hash names an
      entry that is not in the file). Reported on the line after the gap with the first
      missing seq.
    * chain links between authentic neighbours that do not match are reported as ``inserted``
      (two chains spliced together).
    * against each witnessed head: ``truncated-vs-witness`` if the log ends before the head's
      seq, ``diverges-from-witness`` if the entry with that seq is missing or has another hash
      (the log was rewritten after the witness saw it), ``bad-signature`` (line 0) if the
      witnessed head itself does not verify.

    A log rewritten consistently with the right key verifies clean on its own; only witnessed
    heads reveal it.
    """
    scan = _read_records(Path(path), public_key)
    _flag_copies_and_forks(scan)
    _flag_edited(scan)
    _flag_reordered(scan)
    _walk_chain(scan)
    _flag_unplaced_unsigned(scan)
    _check_witnesses(scan, public_key, witnessed)
    return _report(scan)


# ---------------------------------------------------------------------- the passes, in order


def _read_records(path: Path, public_key: Ed25519PublicKey) -> _Scan:
    """Pass 1: parse every line; check each entry's hash and signature.

    A blank line is ``malformed`` ("empty line"); so is a line that is not a strict entry (the
    parser's reason, plus a note when the last line has no newline: a torn write). Every other
    line becomes a :class:`_Record` with ``hash_ok`` and ``sig_ok`` set.
    """
    problems: list[VerifyProblem] = []
    records: list[_Record] = []
    malformed_lines: list[int] = []
    raw_lines = path.read_bytes().split(b"\n")
    torn = bool(raw_lines) and raw_lines[-1] != b""
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    count = 0
    for number, raw in enumerate(raw_lines, start=1):
        count += 1
        if not raw.strip():
            problems.append(VerifyProblem(number, None, "malformed", "empty line"))
            malformed_lines.append(number)
            continue
        try:
            entry = AuditEntry.from_json(raw)
        except ValueError as exc:
            suffix = " (last line has no newline: torn write?)" if torn and number == len(raw_lines) else ""
            problems.append(VerifyProblem(number, None, "malformed", f"{exc}{suffix}"))
            malformed_lines.append(number)
            continue
        hash_ok = entry.computed_hash() == entry.hash
        sig_ok = entry_signature_ok(entry, public_key)
        records.append(_Record(number, entry, hash_ok, sig_ok, entry.seq))
    return _Scan(lines_read=count, records=records, malformed_lines=malformed_lines, problems=problems)


def _flag_copies_and_forks(scan: _Scan) -> None:
    """Pass 2: among intact entries, find replayed lines and forks; the rest form the chain.

    An intact entry with the hash of an earlier line is a copy (``inserted``, status
    ``duplicate``); one with a new hash but the seq of an earlier line forks the chain
    (``inserted``, status ``fork``). The first holder of each hash and seq is recorded in
    ``scan.by_hash`` and ``scan.slots``, and ``scan.chain`` becomes the intact entries left.
    """
    intact = scan.intact
    for r in intact:
        if r.entry.hash in scan.by_hash:
            r.status = "duplicate"
            scan.add(
                r.line,
                r.entry.seq,
                "inserted",
                f"entry seq {r.entry.seq} is a copy of line {scan.by_hash[r.entry.hash].line}",
            )
            continue
        scan.by_hash[r.entry.hash] = r
        other = scan.slots.get(r.entry.seq)
        if other is not None:
            r.status = "fork"
            scan.add(
                r.line,
                r.entry.seq,
                "inserted",
                f"second entry claiming seq {r.entry.seq} (first on line {other.line}) "
                "with a different hash: the chain forks",
            )
            continue
        scan.slots[r.entry.seq] = r
    scan.chain = [r for r in intact if not r.status]


def _flag_edited(scan: _Scan) -> None:
    """Pass 3: signed entries whose content no longer hashes to the signed hash are ``edited``.

    Only the signed hash is trusted: the entry's seq is taken from the chain entry that links to
    that hash when there is one (else from the entry itself). An edited entry holds its seq slot
    unless its hash or seq is already held.
    """
    prev_index = {r.entry.prev_hash: r for r in scan.chain}
    for r in scan.authentic:
        if r.hash_ok:
            continue
        r.status = "edited"
        successor = prev_index.get(r.entry.hash)
        r.seq = successor.entry.seq - 1 if successor is not None else r.entry.seq
        changed = _changed_fields_hint(r.entry)
        scan.add(r.line, r.seq, "edited", f"content of entry seq {r.seq} does not match its signed hash{changed}")
        if r.entry.hash not in scan.by_hash and r.seq not in scan.slots:
            scan.by_hash[r.entry.hash] = r
            scan.slots[r.seq] = r


def _flag_reordered(scan: _Scan) -> None:
    """Pass 4: chain entries off the longest increasing run of seqs (in file order) are ``reordered``.

    The message places each one after the highest seq on an earlier line that exceeds it, or
    else before the lowest seq on a later line that is below it.
    """
    chain = scan.chain
    in_order = _longest_increasing(chain)
    for r in chain:
        if id(r) not in in_order:
            r.status = "reordered"
            earlier = [o for o in chain if o.line < r.line and o.entry.seq > r.entry.seq]
            later = [o for o in chain if o.line > r.line and o.entry.seq < r.entry.seq]
            if earlier:
                other = max(earlier, key=lambda o: o.entry.seq)
                where = f"after seq {other.entry.seq} (line {other.line})"
            else:
                other = min(later, key=lambda o: o.entry.seq)
                where = f"before seq {other.entry.seq} (line {other.line})"
            scan.add(r.line, r.entry.seq, "reordered", f"entry seq {r.entry.seq} appears {where}")


def _walk_chain(scan: _Scan) -> None:
    """Pass 5: walk the seqs 1..max; check every link, and fill every gap.

    A held seq has its link checked (:func:`_check_link`); a run of missing seqs is a gap,
    handed to :func:`_fill_gap`.
    """
    max_seq = scan.max_seq
    seq = 1
    while seq <= max_seq:
        current = scan.slots.get(seq)
        if current is not None:
            _check_link(scan, seq, current)
            seq += 1
            continue
        end = seq
        while end + 1 <= max_seq and (end + 1) not in scan.slots:
            end += 1
        _fill_gap(scan, seq, end)
        seq = end + 1


def _check_link(scan: _Scan, seq: int, current: _Record) -> None:
    """Part of pass 5: the entry holding ``seq`` must link to the entry holding ``seq - 1``.

    Seq 1 must link to the genesis hash. A link that does not match is ``inserted`` (two chains
    spliced together). Edited entries, and entries whose predecessor is missing, are not checked.
    """
    slots = scan.slots
    if current.status != "edited" and seq > 1 and (seq - 1) in slots:
        previous = slots[seq - 1]
        if current.entry.prev_hash != previous.entry.hash:
            scan.add(
                current.line,
                seq,
                "inserted",
                f"entry seq {seq} does not link to seq {seq - 1} (line "
                f"{previous.line}): prev_hash {current.entry.prev_hash[:12]}… "
                f"!= {previous.entry.hash[:12]}…",
            )
    elif seq == 1 and current.status != "edited" and current.entry.prev_hash != GENESIS_HASH:
        scan.add(current.line, 1, "inserted", "first entry does not start from the genesis hash")


def _fill_gap(scan: _Scan, seq: int, end: int) -> None:
    """Part of pass 5: account for the missing seqs ``seq..end``.

    Unsigned entries between the neighbouring authentic lines fill the gap first, in file
    order: ``bad-signature`` if the hash chain passes through them (signature altered, or
    another key), ``edited`` otherwise (replaced). Malformed lines between the neighbours then
    count as filling a slot each. Seqs still unaccounted for are ``removed``, reported on the
    line after the gap with the first missing seq.
    """
    slots = scan.slots
    missing = end - seq + 1
    low = slots[seq - 1].line if (seq - 1) in slots else 0
    after = slots[end + 1]
    high = after.line
    fillers = [r for r in scan.unsigned if low < r.line < high and id(r) not in scan.claimed]
    through = _path_through(
        fillers,
        after.entry.prev_hash,
        slots[seq - 1].entry.hash if (seq - 1) in slots else GENESIS_HASH,
    )
    taken = 0
    for r in fillers:
        if taken == missing:
            break
        scan.claimed.add(id(r))
        taken += 1
        slot = seq + taken - 1
        r.seq = slot
        if id(r) in through:
            r.status = "bad-signature"
            scan.add(
                r.line,
                slot,
                "bad-signature",
                f"signature of entry seq {slot} does not verify (the chain passes "
                "through it: signature altered, or written with another key)",
            )
        else:
            r.status = "edited"
            scan.add(
                r.line,
                slot,
                "edited",
                f"entry seq {slot} was replaced: not signed by this key, and the next "
                f"authentic entry (line {high}) links to a hash absent from the log",
            )
    malformed_between = [n for n in scan.malformed_lines if low < n < high and n not in scan.claimed_malformed]
    for n in malformed_between[: missing - taken]:
        scan.claimed_malformed.add(n)
        taken += 1
    if taken < missing:
        first = seq + taken
        span = f"seq {first}" if first == end else f"seqs {first}..{end}"
        scan.add(
            high,
            first,
            "removed",
            f"{span} missing before line {high} (entry seq {end + 1} links to "
            f"{after.entry.prev_hash[:12]}…, which is not in the log)",
        )


def _flag_unplaced_unsigned(scan: _Scan) -> None:
    """Pass 6: classify the unsigned entries that filled no gap.

    ``bad-signature`` when no entry at all verifies with the key, or when the entry continues
    the chain (hash-consistent, next seq) after the last authentic entry: forged and appended,
    or altered and re-hashed. Otherwise ``inserted``: not part of the chain.
    """
    max_seq = scan.max_seq
    only_unsigned = not scan.authentic
    tail_hash = scan.slots[max_seq].entry.hash if max_seq else GENESIS_HASH
    unsigned = scan.unsigned
    tail = [r for r in unsigned if id(r) not in scan.claimed and r.line > scan.last_line_of_chain]
    tail_through = _path_forward(tail, tail_hash, max_seq)
    for r in unsigned:
        if id(r) in scan.claimed:
            continue
        if only_unsigned or id(r) in tail_through:
            reason = (
                "no entry in this log verifies with the given public key"
                if only_unsigned
                else "entry after the last authentic one is not signed by this key "
                "(forged and appended, or altered and re-hashed)"
            )
            scan.add(
                r.line, r.entry.seq, "bad-signature", f"signature of entry seq {r.entry.seq} does not verify: {reason}"
            )
        else:
            holder = scan.slots.get(r.entry.seq)
            where = f" (seq {r.entry.seq} is on line {holder.line})" if holder is not None else ""
            scan.add(
                r.line,
                r.entry.seq,
                "inserted",
                f"entry seq {r.entry.seq} is not signed by this key and is not part of the chain{where}",
            )


def _check_witnesses(scan: _Scan, public_key: Ed25519PublicKey, witnessed: Sequence[AuditHead]) -> None:
    """Pass 7: check the log against each witnessed head, in the order given.

    A head that does not verify with the key is ``bad-signature`` (line 0); a head of seq 0 says
    nothing. Otherwise the log must reach the head's seq (else ``truncated-vs-witness``) and hold
    an entry with that seq (else ``diverges-from-witness``, line 0) and the head's hash (else
    ``diverges-from-witness`` on that entry's line).
    """
    max_seq = scan.max_seq
    for w in witnessed:
        if not verify_head(w, public_key):
            scan.add(0, w.seq, "bad-signature", f"witnessed head seq {w.seq} ({w.time}) does not verify with this key")
            continue
        if w.seq == 0:
            continue
        holder = scan.slots.get(w.seq)
        if w.seq > max_seq:
            scan.add(
                scan.last_line_of_chain,
                w.seq,
                "truncated-vs-witness",
                f"witnessed head at {w.time} had {w.seq} entries; the log now ends at seq {max_seq}",
            )
        elif holder is None:
            scan.add(
                0,
                w.seq,
                "diverges-from-witness",
                f"witnessed entry seq {w.seq} (hash {w.hash[:12]}…, witnessed {w.time}) is missing from the log",
            )
        elif holder.entry.hash != w.hash:
            scan.add(
                holder.line,
                w.seq,
                "diverges-from-witness",
                f"entry seq {w.seq} has hash {holder.entry.hash[:12]}… but the head "
                f"witnessed at {w.time} says {w.hash[:12]}…: the log was rewritten",
            )


def _report(scan: _Scan) -> VerifyReport:
    """Pass 8: the report; problems sorted by line (line 0 last), then kind, else in the order found.

    The head is the entry with the highest trusted seq, with that entry's time and signature.
    """
    problems = scan.problems
    problems.sort(key=lambda p: (p.line == 0, p.line, p.kind))
    head = None
    max_seq = scan.max_seq
    if max_seq:
        last = scan.slots[max_seq].entry
        head = AuditHead(seq=max_seq, hash=last.hash, time=last.time, signature=last.signature)
    return VerifyReport(entries=scan.lines_read, ok=not problems, problems=problems, head=head)


# ---------------------------------------------------------------------- chain-repair helpers


def _changed_fields_hint(entry: AuditEntry) -> str:
    """The stored and the computed hash of an edited entry, shortened, for its message."""
    return f" (stored hash {entry.hash[:12]}…, content hashes to {entry.computed_hash()[:12]}…)"


def _longest_increasing(chain: list[_Record]) -> set[int]:
    """ids of the records on one longest strictly increasing subsequence of seqs."""
    tails: list[int] = []
    tail_index: list[int] = []
    parent: list[int] = [-1] * len(chain)
    for i, r in enumerate(chain):
        k = bisect.bisect_left(tails, r.entry.seq)
        if k == len(tails):
            tails.append(r.entry.seq)
            tail_index.append(i)
        else:
            tails[k] = r.entry.seq
            tail_index[k] = i
        parent[i] = tail_index[k - 1] if k > 0 else -1
    keep: set[int] = set()
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        keep.add(id(chain[i]))
        i = parent[i]
    return keep


def _path_through(candidates: list[_Record], target: str, origin: str) -> set[int]:
    """ids of candidates on a hash path from ``origin`` to ``target`` (following prev_hash)."""
    by_hash = {r.entry.hash: r for r in candidates if r.hash_ok}
    path: set[int] = set()
    current = target
    while current in by_hash and id(by_hash[current]) not in path:
        r = by_hash[current]
        path.add(id(r))
        current = r.entry.prev_hash
    return path if current == origin else set()


def _path_forward(candidates: list[_Record], origin: str, origin_seq: int) -> set[int]:
    """ids of hash-consistent candidates continuing the chain from ``origin`` in order."""
    by_prev = {r.entry.prev_hash: r for r in candidates if r.hash_ok}
    path: set[int] = set()
    current, seq = origin, origin_seq
    while current in by_prev:
        r = by_prev[current]
        if id(r) in path or r.entry.seq != seq + 1:
            break
        path.add(id(r))
        current, seq = r.entry.hash, r.entry.seq
    return path
