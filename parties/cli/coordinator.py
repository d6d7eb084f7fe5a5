"""``mpc-coordinator serve --config FILE.toml``: run the directory, dealer and audit witness."""

from __future__ import annotations

from pathlib import Path

import typer

from parties import logs
from parties.cli.serve import serve as serve_loop
from parties.config import ConfigError
from parties.coordinator.server import CoordinatorDaemon, load_coordinator_config

app = typer.Typer(help="The coordinator: directory, dealer, audit witness.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Coordinator commands."""


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="coordinator configuration (TOML)"),
    log_level: str = typer.Option("INFO"),
) -> None:
    """Bind with mutual TLS and serve until SIGTERM/SIGINT."""
    logs.configure(log_level)
    try:
        settings = load_coordinator_config(config)
        daemon = CoordinatorDaemon(settings)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    serve_loop(daemon, "coordinator", settings.coordinator.state_dir / "address")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
