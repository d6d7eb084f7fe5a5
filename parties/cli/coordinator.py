"""``mpc-coordinator serve --config FILE.toml``: run the directory, dealer and audit witness."""

from __future__ import annotations

from pathlib import Path

import typer

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
    from parties.cli.serve import configure_logs, open_daemon
    from parties.cli.serve import serve as serve_loop
    from parties.coordinator.server import CoordinatorDaemon, load_coordinator_config

    configure_logs(log_level)
    daemon = open_daemon(lambda: CoordinatorDaemon(load_coordinator_config(config)), config, "coordinator")
    serve_loop(daemon, "coordinator", daemon.config.coordinator.state_dir / "address")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
