"""``mpc-party serve --config FILE.toml``: run an agency's party daemon."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The party daemon an agency runs next to its data.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Party daemon commands."""


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="daemon configuration (TOML)"),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING"),
) -> None:
    """Load the datasets, bind with mutual TLS, register with the coordinator and serve."""
    from parties.cli.join import initiate_join
    from parties.cli.serve import configure_logs, open_daemon
    from parties.cli.serve import serve as serve_loop
    from parties.config import load_party_config
    from parties.owner.server import PartyDaemon

    configure_logs(log_level)
    daemon = open_daemon(lambda: PartyDaemon(load_party_config(config), initiator=initiate_join), config, "party")
    serve_loop(daemon, f"party {daemon.name}", daemon.config.party.state_dir / "address")


CHECK_EXIT = {"clean": 0, "warnings": 3, "errors": 4}  # and 2: the configuration cannot be used


@app.command()
def check(
    config: Path = typer.Option(..., "--config", "-c", help="daemon configuration (TOML)"),
    rejects: Path | None = typer.Option(
        None, help="write every refused row here (row, line, reason; ids masked, never values in full)"
    ),
) -> None:
    """Check before serving: load each dataset (rows read, accepted, refused by reason), check every
    grant against the schemas and the coordinator's directory, the certificate's name, expiry and
    revocation, and that the coordinator answers. Exit 0: clean; 3: warnings (rows refused, a
    certificate expiring soon); 4: errors (a grant naming nothing, a source unreadable, a certificate
    expired, misnamed or revoked, the coordinator unreachable); 2: the configuration cannot be used.

    Example: mpc-party check --config tax.toml --rejects tax-rejects.txt"""
    from parties.cli.cells import fail, say
    from parties.config import ConfigError, load_party_config
    from parties.owner.check import certificate_problems, coordinator_directory, grant_problems, revoked_serials

    try:
        party = load_party_config(config)
    except ConfigError as exc:
        fail(str(exc))
    from mpc.data.sources import DataSourceError
    from mpc.data.sources.report import check_dataset, report_lines

    errors: list[str] = []
    warnings: list[str] = []
    listing: list[str] = []
    for index, spec in enumerate(party.datasets):
        try:
            loaded = check_dataset(spec, party.base_dir)
        except DataSourceError as exc:
            errors.append(f"datasets.{index} ({spec.name}): {exc}")
            continue
        lines = report_lines(loaded)
        say(lines[0])
        listing += lines
        if loaded.rows_refused:
            warnings.append(f"dataset {spec.name}: {loaded.rows_refused} rows refused (see the rejects file)")
    if rejects is not None:
        rejects.write_text("\n".join(listing) + "\n", encoding="utf-8")
        say(f"refused rows written to {rejects} (ids masked)")
    directory, unreachable = coordinator_directory(party)
    if unreachable:
        errors.append(unreachable)
    revoked, crl_problem = revoked_serials(party)
    if crl_problem:
        errors.append(crl_problem)
    for found in grant_problems(party, directory) + certificate_problems(party, revoked):
        (warnings if found.warning else errors).append(found.message)
    for message in errors:
        say(f"error: {message}", "red")
    for message in warnings:
        say(f"warning: {message}", "yellow")
    outcome = "errors" if errors else "warnings" if warnings else "clean"
    say(f"{config}: {len(errors)} error(s), {len(warnings)} warning(s)")
    raise typer.Exit(CHECK_EXIT[outcome])


@app.command()
def status(config: Path = typer.Option(..., "--config", "-c", help="daemon configuration (TOML)")) -> None:
    """What the running daemon reports of itself (STATE/status.json): datasets with rows and refused
    rows, peers and their grants, approved rules, computations used today, certificate expiry,
    OPRF epoch and uptime. Example: mpc-party status --config tax.toml"""
    import json
    import time

    from parties.cli.cells import console, fail, say
    from parties.config import ConfigError, load_party_config
    from parties.owner.status import STATUS_FILE

    try:
        party = load_party_config(config)
    except ConfigError as exc:
        fail(str(exc))
    path = party.party.state_dir / STATUS_FILE
    try:
        snapshot = json.loads(path.read_text())
    except (OSError, ValueError):
        fail(f"{path}: no status yet: the daemon has not started with this state directory (mpc-party serve)")
    age = time.time() - path.stat().st_mtime
    from rich.table import Table

    say(
        f"{snapshot['party']} at {snapshot['address']}: up since {snapshot['started']} "
        f"(status written {age:.0f} s ago{'; the daemon may have stopped' if age > 90 else ''}); "
        f"OPRF epoch {snapshot['oprf_epoch']}; certificate {snapshot['certificate']['serial']} valid until "
        f"{snapshot['certificate']['not_after']} ({snapshot['certificate']['days_left']} days)"
    )
    datasets = Table(title="datasets")
    for column in ("dataset", "rows read", "loaded", "invalid ids", "duplicates", "invalid values"):
        datasets.add_column(column)
    for name, d in snapshot["datasets"].items():
        r = d["rejected"]
        datasets.add_row(
            name,
            str(d["rows_read"]),
            str(d["rows_loaded"]),
            *(str(r[k]) for k in ("invalid_ids", "duplicates", "invalid_values")),
        )
    console().print(datasets)
    peers = Table(title="peers and their grants")
    for column in ("peer", "purposes", "datasets (columns: uses)", "computations today"):
        peers.add_column(column)
    for name, grant in snapshot["peers"].items():
        granted = "; ".join(
            f"{d} (psi {g['psi']}, batch {g['batch']}): "
            + ", ".join(f"{c} {'/'.join(u)}" for c, u in g["columns"].items())
            for d, g in grant["datasets"].items()
        )
        used = sum(grant["computations_today"]["used"].values())
        peers.add_row(
            name, ", ".join(grant["purposes"]), granted or "—", f"{used} of {grant['computations_today']['limit']}"
        )
    console().print(peers)
    rules = [
        f"{a['rule']} for {a['peer']} ({', '.join(a['purposes'])}; {a['fingerprint']}…)"
        for a in snapshot["approved_rules"]
    ]
    say("approved rules: " + ("; ".join(rules) if rules else "none"))


def run() -> None:
    app()


if __name__ == "__main__":
    run()
