"""``mpc-requester``: the requesting agency's service (an HTTPS API for its case-management systems)."""

from __future__ import annotations

from pathlib import Path

import typer

from parties import logs

app = typer.Typer(help="The requesting agency's eligibility service.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Requester service commands."""


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="service configuration (TOML with a [service] section)"),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING"),
) -> None:
    """Serve the HTTPS API until SIGTERM/SIGINT, keeping the agency's client warm."""
    from mpc.audit import AuditLogError
    from parties.cli.serve import serve as serve_loop
    from parties.config import ConfigError
    from parties.requester.service.config import load_service_config
    from parties.requester.service.server import RequesterService
    from parties.rpc.tls import OwnCertificateError

    logs.configure(log_level)
    try:
        settings = load_service_config(config)
        service = RequesterService(settings)
    except (ConfigError, OwnCertificateError, AuditLogError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    serve_loop(service, "requester service", settings.agency.party.state_dir / "service-address")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
