"""``mpc-party serve --config FILE.toml``: run an agency's party daemon."""

from __future__ import annotations

from pathlib import Path

import typer

from parties import logs
from parties.cli.serve import serve as serve_loop
from parties.config import ConfigError, load_party_config

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
    logs.configure(log_level)
    try:
        settings = load_party_config(config)
        from parties.cli.join import initiate_join
        from parties.owner.server import PartyDaemon

        daemon = PartyDaemon(settings, initiator=initiate_join)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    serve_loop(daemon, f"party {settings.party.name}", settings.party.state_dir / "address")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
