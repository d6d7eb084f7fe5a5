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


def run() -> None:
    app()


if __name__ == "__main__":
    run()
