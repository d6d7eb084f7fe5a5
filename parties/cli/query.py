"""``mpc-query``: the requester's command line (runs with the requesting agency's certificate).

Only typer is imported up front; each command imports the protocol stacks it needs, so that
``mpc-query --help`` answers at once."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import typer

from parties.cli.cells import console, fail, format_cell, say

if TYPE_CHECKING:
    from mpc.protocols.planner import LookupPlan
    from mpc.protocols.rules import Rule
    from parties.requester import Client

app = typer.Typer(help="Ask other agencies' daemons, privately.", no_args_is_help=True)

EXIT_USAGE = 2  # the command could not start: usage, configuration, rules, an input file it cannot use
EXIT_SOME_ERRORS = 3  # some applications (or lines) are errors, every other one has a result
EXIT_NOTHING_CHECKED = 4  # no application has a result
SHOWN = 10  # problems printed one by one; the rest are counted
POOLED_OBFUSCATORS = 16  # per owner key: a command line checks its file and exits (the SDK's pool: 64)

CONFIG = typer.Option(..., "--config", "-c", help="this agency's configuration (TLS identity, coordinator)")
PURPOSE = typer.Option(..., "--purpose", help="purpose code checked by the owner's policy")
CASE = typer.Option(..., "--case", help="case reference written to both audit logs")


@app.callback()
def main() -> None:
    """Requester commands."""


def report(problems: list[str]) -> None:
    """Print the first problems, and how many more there are."""
    for problem in problems[:SHOWN]:
        say(problem, "yellow")
    if len(problems) > SHOWN:
        console().print(f"… {len(problems) - SHOWN:,} more", style="yellow")


def _client(config: Path, purpose: str, case: str) -> Client:
    """Our client from the agency's configuration; a configuration that does not load, or names a
    certificate that cannot be read or is not valid, stops the command with one line naming the
    file and key, exit status 2."""
    from mpc.audit import AuditLogError
    from parties.config import ConfigError
    from parties.requester import Client
    from parties.rpc.tls import OwnCertificateError, check_own_certificate

    try:
        client = Client.from_config(config, purpose, case)
    except (ConfigError, AuditLogError) as exc:
        fail(str(exc))
    client.pooled_obfuscators = POOLED_OBFUSCATORS  # computed ahead in the background: no more than a few are drawn
    try:
        check_own_certificate(client.tls)
    except OwnCertificateError as exc:
        client.close()
        fail(f"{config}: tls.cert: {exc}")
    except OSError as exc:
        client.close()
        fail(f"{config}: cannot read {exc.filename}: {exc.strerror or exc}; check the paths in [tls]")
    return client


def read_ids(path: Path, column: str, kind: str) -> list[str]:
    """The valid ids in ``column`` of the CSV file at ``path``, normalised as ``kind``; broken lines
    and invalid ids are reported with their line and left out. A file that cannot be read or lacks
    the column stops the command (exit status 2)."""
    from mpc.data.ids import IdKind, normalize_column
    from parties.requester.applications import ApplicationsFileError, MissingColumnError, read_lines

    if kind not in get_args(IdKind):
        fail(f"--kind must be one of {', '.join(get_args(IdKind))}, not {kind!r}")
    numbers: list[int] = []
    raw: list[str] = []
    problems: list[tuple[int, str]] = []
    try:
        for line in read_lines(path, [column], column):
            if line.problem:
                problems.append((line.number, line.problem))
            else:
                numbers.append(line.number)
                raw.append(line.cells[column.strip().lower()])
    except MissingColumnError as exc:
        fail(f"{exc}; --column names the id column")
    except ApplicationsFileError as exc:
        fail(str(exc))
    ids, found = normalize_column(raw, kind)  # type: ignore[arg-type]
    problems += [(numbers[bad.row], f"invalid id: {bad.reason}") for bad in found.invalid]
    report([f"{path}, line {number}: {problem}" for number, problem in sorted(problems)])
    return [i for i in ids if i is not None]


@app.command("psi")
def psi(
    peer: str = typer.Option(..., help="owner party name (or host:port)"),
    dataset: str = typer.Option(..., help="owner's dataset"),
    ids: Path = typer.Option(..., help="CSV with our ids"),
    mode: str = typer.Option("cardinality", help="cardinality (how many match) or intersection (which)"),
    id_column: str = typer.Option(
        "resident_id", "--id-column", "--column", help="the id column of our --ids file (--column: its old name)"
    ),
    kind: str = typer.Option("resident_id", help="resident_id, credit_code or opaque"),
    out: Path | None = typer.Option(None, help="intersection mode: write the matching ids here (CSV)"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """ECDH-PSI with fresh keys: how many of our ids the owner's dataset holds, or which (the
    owner learns only how many distinct ids we sent).

    Example: mpc-query psi --peer tax --dataset income --ids ours.csv --id-column resident_id
    --config housing.toml --purpose statistics --case ST-2026-01"""
    from rich.progress import Progress
    from rich.table import Table

    from parties.requester import RemoteError

    if mode not in ("cardinality", "intersection"):
        fail(f"--mode must be cardinality or intersection, not {mode!r}")
    mine = read_ids(ids, id_column, kind)
    with _client(config, purpose, case) as client, Progress(console=console(), transient=True) as bar:
        task = bar.add_task(f"PSI with {peer}.{dataset}", total=None)
        try:
            result = client.set_intersection(
                peer,
                dataset,
                mine,
                mode,  # type: ignore[arg-type]
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (RemoteError, LookupError) as exc:
            fail(str(exc), 1)
    table = Table(title=f"PSI ({mode}) with {peer}.{dataset}")
    for col in ("our ids", "their rows", "in common", "seconds", "bytes sent", "bytes received"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result.requester_count:,}",
        f"{result.owner_count:,}",
        f"{result.intersection:,}",
        f"{result.seconds:.2f}",
        f"{result.bytes_sent:,}",
        f"{result.bytes_received:,}",
    )
    console().print(table)
    if out is not None and result.matched is not None:
        _write_csv(out, [id_column], ([i] for i in result.matched))
        console().print(f"matching ids written to {out}")


@app.command("intersection-sum")
def intersection_sum(
    peer: str = typer.Option(..., help="owner party name (or host:port)"),
    dataset: str = typer.Option(..., help="owner's dataset"),
    column: list[str] = typer.Option(..., "--column", help="owner's column(s) to sum over the intersection"),
    ids: Path = typer.Option(..., help="CSV with our ids"),
    id_column: str = typer.Option("resident_id", help="the id column of our --ids file"),
    kind: str = typer.Option("resident_id", help="resident_id, credit_code or opaque"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """Private join and compute: how many of our ids the owner holds and the sum of its columns
    over them, computed on secret shares and opened only when the count reaches both sides'
    minimum cell size (the owner learns our count and the intersection's size).

    Example: mpc-query intersection-sum --peer tax --dataset income --column annual_income
    --ids ours.csv --id-column resident_id --config housing.toml --purpose statistics --case ST-2"""
    from rich.table import Table

    from parties.requester import RemoteError

    mine = read_ids(ids, id_column, kind)
    with _client(config, purpose, case) as client:
        try:
            result = client.intersection_sum(peer, dataset, column, mine)
        except (RemoteError, LookupError) as exc:
            fail(str(exc), 1)
    table = Table(title=f"intersection-sum with {peer}.{dataset}")
    for col in ("our ids", "their rows", "in common", *(f"sum({c})" for c in column), "seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result.requester_count:,}",
        f"≈{result.owner_count:,}",
        format_cell(result.intersection),
        *(format_cell(result.sums[c]) for c in column),
        f"{result.seconds:.2f}",
    )
    console().print(table)
    if result.intersection is None:
        say("the intersection is under the minimum cell size: the owners withheld every figure", "yellow")


@app.command("aggregate")
def aggregate(
    sql: str = typer.Option(
        ...,
        help="SELECT keys, COUNT(*), SUM(col), AVG(col) FROM us.dataset a JOIN peer.dataset b "
        "USING (id) [WHERE ...] GROUP BY keys",
    ),
    reveal_to: str = typer.Option("initiator", help="who sees the cells: initiator (us) or peer"),
    out: Path | None = typer.Option(None, help="write the cells here (CSV)"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """COUNT / SUM / AVG per group over one of our datasets joined with a peer's, computed on
    secret shares: neither side's rows leave it, and only the named party sees the cells.

    Example: mpc-query aggregate --sql 'SELECT i.tax_year, COUNT(*) FROM properties p JOIN tax.income i
    USING (resident_id) GROUP BY i.tax_year' --config housing.toml --purpose statistics --case ST-3"""
    from rich.table import Table

    from mpc.protocols.sql import SqlRefused, parse_query
    from parties.requester import RemoteError

    if reveal_to not in ("initiator", "peer"):
        fail(f"--reveal-to must be initiator or peer, not {reveal_to!r}")
    try:
        query = parse_query(sql, reveal_to)  # type: ignore[arg-type]
    except SqlRefused as exc:
        fail(f"query refused: {exc}")
    with _client(config, purpose, case) as client:
        if query.initiator not in ("", client.name):
            fail(f"the FROM table must be ours ({client.name}.<dataset>), not {query.initiator!r}")
        started = time.perf_counter()
        try:
            result = client.aggregate(query.peer, query.request)
        except (RemoteError, ValueError, LookupError) as exc:
            fail(str(exc), 1)
    seconds = time.perf_counter() - started
    if result is None:
        console().print(f"the cells were revealed to {query.peer} only ({seconds:.1f} s)")
        return
    rows = result.table(query.request)
    table = Table(
        title=f"{query.request.initiator_dataset} JOIN {query.peer}.{query.request.peer_dataset} "
        f"({result.rows:,} of our rows, {seconds:.1f} s)"
    )
    for name in rows[0] if rows else []:
        table.add_column(name, justify="left" if name in result.keys else "right")
    for row in rows:
        table.add_row(*(format_cell(v, "—") for v in row.values()))
    console().print(table)
    if out is not None:
        _write_csv(out, list(rows[0]) if rows else [], ([row[k] for k in row] for row in rows))
        console().print(f"cells written to {out}")


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV file; one that cannot be written stops the command naming it (exit status 2)."""
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        fail(f"{path}: cannot write it: {exc.strerror or exc}; check the directory exists and is writable")


def _rule_and_path(rules_file: Path, rule: str, path: str) -> tuple[Rule, Literal["P1", "P3"] | None]:
    """The rule named from the rules file, and the --path forced (None: planned); what cannot be
    used stops the command with one line (exit status 2)."""
    from mpc.protocols.rules import RuleError, load_rules

    if path not in ("auto", "P1", "P3"):
        fail(f"--path must be auto, P1 or P3, not {path!r}")
    forced: Literal["P1", "P3"] | None = None if path == "auto" else path  # type: ignore[assignment]
    try:
        return load_rules(rules_file).get(rule), forced
    except (RuleError, UnicodeDecodeError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{rules_file}: cannot read it: {exc.strerror or exc}; --rules names the rules file")


ELIGIBILITY_HELP = "\n\n".join(  # one paragraph a line: rich help keeps line breaks
    [
        "Check each application in --applicants against RULE: every application gets a row in --out "
        "(application_id, result, reason): eligible, not eligible (with the failed clauses whose owners allow "
        "reason codes), or error with the reason (for a problem in the file: the file and line). Prints which "
        "lookup path each owner's table took and why.",
        "The applications file (UTF-8 CSV, one record per line) has either one row per person, with the columns "
        "application_id, resident_id, relation (exactly one row per application whose relation is applicant; the "
        "others are its members), or one row per application, with the columns application_id, applicant, members "
        "(the members separated by ; or |, the applicant among them or not). A broken line, an invalid id or a "
        "person listed twice sets aside only its application; the others are checked.",
        "--declared NAME passes the column NAME's values, as written, to the rule: the application's value (one row "
        "per person: a column filled on the applicant's row only), or each person's (one row per person: a column "
        "filled on members' rows too; the rule takes the applicant's or sums the household's). An application "
        "whose declared value the rule cannot read is an error row too.",
        "An optional case column gives an application its own case reference (written to every owner's audit "
        "entry); --case is the reference of the others. A not-eligible reason lists the failed clauses the owners "
        "disclose and says so when other clauses were not disclosed.",
        "Example: mpc-query eligibility --rules rules.toml --rule public-rental-housing --applicants applications.csv "
        "--config housing.toml --purpose public-rental-housing --case HZ-2026-001 --out results.csv",
        f"Exit status: 0 every application has a result; {EXIT_SOME_ERRORS} some applications (or lines) are "
        f"errors, every other one has a result; {EXIT_NOTHING_CHECKED} no application has a result; {EXIT_USAGE} "
        "nothing was done (usage, configuration, rules, or a file that cannot be read or lacks the columns).",
    ]
)


@app.command("eligibility", help=ELIGIBILITY_HELP)
def eligibility(
    rule: str = typer.Option(..., help="rule name"),
    rules_file: Path = typer.Option(
        ..., "--rules", help="rules file (TOML) the owners approved, e.g. rules/examples.toml of the repository"
    ),
    applicants: Path = typer.Option(..., help="CSV: one row per person or one row per application (see above)"),
    declared: list[str] = typer.Option(
        [],
        "--declared",
        metavar="NAME",
        help="a column of values the applicant declared (repeatable), passed to the rule as written",
    ),
    out: Path = typer.Option(Path("results.csv"), help="one row per application"),
    chunk: int = typer.Option(10_000, min=1, help="applications per round trip"),
    path: str = typer.Option(
        "auto", help="lookup path at each owner: auto (planned), P3 (buckets) or P1 (whole table)"
    ),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """What ELIGIBILITY_HELP says."""
    from rich.progress import Progress

    from parties.requester import RemoteError
    from parties.requester.applications import (
        ApplicationsFileError,
        MissingColumnError,
        Rejected,
        read_applications,
    )

    chosen, forced = _rule_and_path(rules_file, rule, path)
    try:
        batch = read_applications(applicants, declared)
    except MissingColumnError as exc:
        fail(f"{exc}; --declared names a column of the file")
    except ApplicationsFileError as exc:
        fail(str(exc))
    _write_csv(out, [], [])  # before the work: a results file that cannot be written stops the command now
    if not batch.entries:
        say(f"{applicants}: no applications after the header", "yellow")
    unreadable = [(a, chosen.declared_problem(a)) for a in batch.valid]  # a declared value the rule cannot read
    rejected = batch.rejected + [batch.reject(a, problem) for a, problem in unreadable if problem]
    report([f"{r.reference or '(unknown application)'}: {r}" for r in rejected])
    results: dict[str, tuple[str, str]] = {r.reference: ("error", str(r)) for r in rejected if r.reference}
    plans: dict[tuple[str, str, str], LookupPlan] = {}
    valid = [a for a, problem in unreadable if not problem]
    cases = _cases(applicants, case) if valid else {}
    if valid:
        with _client(config, purpose, case) as client, Progress(console=console()) as progress:
            task = progress.add_task(f"checking {len(valid):,} applications", total=len(valid))
            for case_reference in sorted({cases.get(a.reference, case) for a in valid}):
                client.case = case_reference  # each owner's audit entry names the application's own case
                mine = [a for a in valid if cases.get(a.reference, case) == case_reference]
                for start in range(0, len(mine), chunk):
                    part = mine[start : start + chunk]
                    try:
                        answer = client.eligibility(chosen, part, path=forced)
                    except (RemoteError, LookupError, ValueError) as exc:
                        say(str(exc), "red")
                        results.update({a.reference: ("error", str(exc)) for a in part})
                    except NotImplementedError as exc:
                        fail(str(exc))
                    else:
                        plans.update({(p.owner, p.dataset, p.path): p for p in answer.plans})
                        for k, (a, bit) in enumerate(zip(part, answer.bits.tolist(), strict=True)):
                            verdict = "eligible" if bit else "not eligible"
                            results[a.reference] = (verdict, answer.reason(k, chosen.clauses))
                    progress.advance(task, len(part))
    rows = [
        ("", "error", str(e)) if isinstance(e, Rejected) and not e.reference else (e.reference, *results[e.reference])
        for e in batch.entries
    ]
    _write_csv(out, ["application_id", "result", "reason"], rows)
    _print_outcome(rule, out, rows, list(plans.values()))
    raise typer.Exit(exit_status([result for _, result, _ in rows]))


def _cases(path: Path, default: str) -> dict[str, str]:
    """The case reference of each application from the file's optional ``case`` column (one per
    application; ``default``, the --case, where the column is absent or the cell empty)."""
    from parties.requester.applications import ApplicationsFileError, read_lines

    try:
        lines = list(read_lines(path, ("case",), "application_id"))
    except ApplicationsFileError:  # no case column: every application is --case
        return {}
    out: dict[str, str] = {}
    for line in lines:
        cell = line.cells.get("case", "").strip()
        if line.key and cell:
            if len(cell) > 128 or not cell.isprintable():
                continue  # an unusable reference falls back to --case (the owner would refuse it)
            out.setdefault(line.key, cell)
    return out


def exit_status(results: list[str]) -> int:
    """0 when every application has a result, 3 when some are errors, 4 when none has a result."""
    if not any(r != "error" for r in results):
        return EXIT_NOTHING_CHECKED
    return EXIT_SOME_ERRORS if "error" in results else 0


def _print_outcome(rule: str, out: Path, rows: list[tuple[str, str, str]], plans: list[LookupPlan]) -> None:
    """The lookup path each owner's table took, and how many applications came out which way."""
    from rich.table import Table

    if plans:
        paths = Table(title="lookup paths (planned per owner and chunk)")
        for column in ("owner", "dataset", "path", "rows", "why"):
            paths.add_column(column)
        for plan in plans:
            paths.add_row(plan.owner, plan.dataset, plan.path, f"{plan.rows:,}", plan.reason)
        console().print(paths)
    summary = Table(title=f"{rule}: {len(rows):,} applications → {out}")
    kinds = ("eligible", "not eligible", "error")
    for kind in kinds:
        summary.add_column(kind, justify="right")
    summary.add_row(*(f"{sum(1 for r in rows if r[1] == kind):,}" for kind in kinds))
    console().print(summary)


SCREEN_HELP = "\n\n".join(
    [
        "Screen a whole register: every application in --applicants checked against RULE in chunks of --chunk, "
        "with bounded memory, the results appended to JOB/results.csv (application_id, result, reason) as each "
        "chunk completes. Stopped by a crash, a refusal or Ctrl-C, the same command resumes after the last "
        "completed chunk (JOB/progress.json); another file or rule needs a new --job directory.",
        "The file is as for eligibility, with each application's lines together (sorted by application_id); a "
        "line of an application whose lines ended earlier is an error row. Heavy work runs on the agency's "
        "compute backend ([compute] in --config: the local pool, or its own Ray cluster).",
        "Example: mpc-query screen --rules rules.toml --rule public-rental-housing --applicants residents.csv "
        "--job screening-2026-12 --config housing.toml --purpose public-rental-housing --case SCREEN-2026-12",
        f"Exit status: 0 every application has a result; {EXIT_SOME_ERRORS} some are errors; "
        f"{EXIT_NOTHING_CHECKED} none has a result; {EXIT_USAGE} nothing was done, or the job stopped (run it again "
        "to resume).",
    ]
)


@app.command("screen", help=SCREEN_HELP)
def screen(
    rule: str = typer.Option(..., help="rule name"),
    rules_file: Path = typer.Option(..., "--rules", help="rules file (TOML) the owners approved"),
    applicants: Path = typer.Option(..., help="CSV: one row per person or per application, grouped by application"),
    job: Path = typer.Option(..., help="the job's directory (results.csv, progress.json): resumes if it exists"),
    declared: list[str] = typer.Option([], "--declared", metavar="NAME", help="a column of declared values"),
    chunk: int = typer.Option(10_000, min=1, help="applications per chunk (one batch at each owner)"),
    path: str = typer.Option("auto", help="lookup path at each owner: auto, P3 or P1"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """What SCREEN_HELP says."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mpc.parallel import ComputeError
    from parties.requester import RemoteError
    from parties.requester.applications import ApplicationsFileError
    from parties.requester.screening import JobMismatchError, ScreeningJob, ScreeningProgress, client_checker

    chosen, forced = _rule_and_path(rules_file, rule, path)
    try:
        context = {"config": str(config.resolve()), "purpose": purpose, "case": case}
        screening = ScreeningJob(job, applicants, chosen, declared, chunk, context)
    except ApplicationsFileError as exc:
        fail(str(exc))
    done = ScreeningProgress()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with _client(config, purpose, case) as client, Progress(*columns, console=console()) as progress:
        task = progress.add_task("screening", total=None)

        def advanced(now: ScreeningProgress) -> None:
            done.applications = now.applications
            progress.update(task, description=f"{now.applications:,} applications screened ({now.errors:,} errors)")

        try:
            done = screening.run(client_checker(client, forced), on_chunk=advanced)
        except (JobMismatchError, ApplicationsFileError) as exc:
            fail(str(exc))
        except (RemoteError, LookupError, ValueError, OSError, ComputeError) as exc:
            fail(f"stopped after {done.applications:,} applications: {exc}; run the same command to resume")
        except KeyboardInterrupt:
            fail(f"interrupted after {done.applications:,} applications; run the same command to resume")
    resumed = f" (resumed after {done.resumed_from:,})" if done.resumed_from else ""
    say(
        f"{rule}: {done.applications:,} applications{resumed}: {done.results:,} results, {done.errors:,} errors "
        f"→ {screening.results_path}"
    )
    if not done.results and done.applications:
        raise typer.Exit(EXIT_NOTHING_CHECKED)
    raise typer.Exit(EXIT_SOME_ERRORS if done.errors else 0)


@app.command("datasets")
def datasets(
    peer: str = typer.Option(..., help="the owner party"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = typer.Option("catalogue", "--case", help="case reference written to both audit logs"),
) -> None:
    """What the owner grants us for the purpose: its datasets (rows rounded, id kind, whether
    batch lookups are allowed), each column's type, bounds and the uses granted, and whether it
    discloses clause bits (reason codes).

    Example: mpc-query datasets --peer tax --config housing.toml --purpose public-rental-housing"""
    from rich.table import Table

    from parties.requester import RemoteError

    with _client(config, purpose, case) as client:
        try:
            listing = client.list_datasets(peer)
        except RemoteError as exc:
            fail(str(exc), 1)
    say(f"{peer} grants us for {purpose}: reason codes {'disclosed' if listing.reveal_clauses else 'not disclosed'}")
    for dataset in listing.datasets:
        table = Table(
            title=f"{peer}.{dataset.name} (≈{dataset.rows:,} rows, ids {dataset.id_kind}, batch "
            f"{'allowed' if dataset.batch else 'not allowed'})"
        )
        for title in ("column", "type", "bounds or values", "uses granted"):
            table.add_column(title)
        for granted in dataset.columns:
            bounds = f"{granted.min} … {granted.max}" if granted.has_bounds else ", ".join(granted.categories)
            table.add_row(granted.name, granted.type, bounds, ", ".join(granted.allowed_uses) or "—")
        console().print(table)


@app.command("selftest-compare")
def selftest_compare(
    peer: str = typer.Option(..., help="co-party name (or host:port)"),
    n: int = typer.Option(100_000, help="number of comparisons"),
    seed: int = typer.Option(1, help="public seed of the co-party's values"),
    config: Path = CONFIG,
    purpose: str = PURPOSE,
    case: str = CASE,
) -> None:
    """Secret-shared comparisons with a co-party daemon, the coordinator dealing; checks the result.

    Example: mpc-query selftest-compare --peer tax --n 100000 --config housing.toml --purpose selftest
    --case SELFTEST-1"""
    import numpy as np

    from mpc.protocols.selftest import public_values
    from parties.requester import RemoteError

    values = np.random.default_rng(seed + 1).integers(-(2**62), 2**62, n, dtype=np.int64)
    with _client(config, purpose, case) as client:
        started = time.perf_counter()
        try:
            bits, summary = client.selftest_compare(peer, values, seed)
        except (RemoteError, LookupError) as exc:
            fail(str(exc), 1)
        seconds = time.perf_counter() - started
    ok = bool(np.array_equal(bits, (values < public_values(seed, n)).astype(np.uint8)))
    console().print(
        f"{n:,} comparisons in {seconds:.2f} s ({n / seconds:,.0f}/s); correct: {ok}; co-party learned: "
        f"{summary.get('learned')}"
    )
    if not ok:
        raise typer.Exit(1)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
