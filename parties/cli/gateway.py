"""``mpc-gateway``: run the researcher sandbox, and administer its researchers, projects and budgets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from parties.cli.cells import console, fail

if TYPE_CHECKING:
    from parties.gateway.config import GatewayConfig
    from parties.gateway.store import Store

app = typer.Typer(help="The researcher sandbox (HTTP API, portal) and its administration.", no_args_is_help=True)
researcher_app = typer.Typer(help="Researcher accounts.", no_args_is_help=True)
project_app = typer.Typer(help="Projects: approved purpose, tables and columns, budget.", no_args_is_help=True)
app.add_typer(researcher_app, name="researcher")
app.add_typer(project_app, name="project")
CONFIG = typer.Option(..., "--config", "-c", help="gateway configuration (TOML)")
T = TypeVar("T")


def _settings(config: Path) -> GatewayConfig:
    """The gateway's configuration; one that does not load stops the command naming the file and
    key (exit status 2)."""
    from parties.config import ConfigError
    from parties.gateway.config import load_gateway_config

    try:
        return load_gateway_config(config)
    except ConfigError as exc:
        fail(str(exc))


def _store(config: Path) -> Store:
    """The gateway's store of researchers and projects."""
    from parties.gateway.store import Store

    settings = _settings(config)
    settings.gateway.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Store(settings.gateway.database_url)


def _stored(change: Callable[[], T]) -> T:
    """What ``change`` of the store returns; a refusal (an unknown researcher, a name taken...)
    ends the command with its message, exit status 1."""
    from parties.gateway.store import StoreError

    try:
        return change()
    except StoreError as exc:
        fail(str(exc), 1)


@app.command()
def serve(config: Path = CONFIG, log_level: str = typer.Option("INFO")) -> None:
    """Serve the HTTP API and the portal until SIGTERM/SIGINT."""
    from parties.cli.serve import configure_logs, open_daemon
    from parties.cli.serve import serve as serve_loop
    from parties.gateway.config import load_gateway_config
    from parties.gateway.server import GatewayDaemon

    configure_logs(log_level)
    daemon = open_daemon(lambda: GatewayDaemon(load_gateway_config(config)), config, "gateway")
    serve_loop(daemon, "gateway", daemon.config.gateway.state_dir / "address")


@researcher_app.command("add")
def researcher_add(
    name: str, epsilon: float = typer.Option(..., help="the researcher's privacy budget (ε)"), config: Path = CONFIG
) -> None:
    """Create a researcher; prints the API token once (it is stored hashed)."""
    token = _stored(lambda: _store(config).add_researcher(name, epsilon))
    console().print(f"researcher {name} (budget ε {epsilon:g}); API token (shown once):")
    print(token)


@researcher_app.command("rotate")
def researcher_rotate(name: str, config: Path = CONFIG) -> None:
    """A new API token for NAME (printed once); the old one stops working at once."""
    token = _stored(lambda: _store(config).rotate_token(name))
    console().print(f"researcher {name}: new API token (shown once; the old one no longer signs in):")
    print(token)


@researcher_app.command("revoke")
def researcher_revoke(name: str, config: Path = CONFIG) -> None:
    """NAME's token stops working (its budget and jobs stay); `rotate` issues a new one."""
    _stored(lambda: _store(config).revoke_token(name))
    console().print(f"researcher {name}: token revoked")


@researcher_app.command("list")
def researcher_list(config: Path = CONFIG) -> None:
    """The researchers, their budgets and what they spent."""
    from rich.table import Table

    table = Table(title="researchers")
    for column in ("name", "budget ε", "spent ε"):
        table.add_column(column)
    for name, total, spent in _store(config).researchers():
        table.add_row(name, f"{total:g}", f"{spent:.3f}")
    console().print(table)


@project_app.command("add")
def project_add(
    name: str,
    purpose: str = typer.Option(..., help="the approved purpose code (sent to the owners)"),
    epsilon: float = typer.Option(..., help="the project's privacy budget (ε)"),
    table: list[str] = typer.Option(
        ..., "--table", help="party.dataset=col1,col2 the project may touch (party.dataset alone: every column granted)"
    ),
    offline: bool = typer.Option(False, help="do not ask the owners (the scope is then checked at each query)"),
    config: Path = CONFIG,
) -> None:
    """Create a project: its purpose, budget and the tables and columns it may touch, checked
    against what the owners grant the gateway for the purpose (or taken from it).

    Example: mpc-gateway project add welfare --purpose statistics --epsilon 20 --table tax.income -c gateway.toml"""
    scope: dict[str, list[str]] = {}
    for item in table:
        name_part, _, columns = item.partition("=")
        if "." not in name_part:
            raise typer.BadParameter(f"--table takes party.dataset[=col1,col2], not {item!r}")
        scope[name_part] = [c.strip() for c in columns.split(",") if c.strip()]
    if not offline:
        from parties.gateway.scope import ScopeError, resolve_scope
        from parties.requester import Client

        settings = _settings(config)
        section = settings.gateway
        try:
            scope = resolve_scope(lambda: Client(section.name, settings.tls, section.coordinator, purpose), scope)
        except ScopeError as exc:
            fail(str(exc), 1)
    elif any(not columns for columns in scope.values()):
        raise typer.BadParameter("--offline needs the columns of every --table (party.dataset=col1,col2)")
    _stored(lambda: _store(config).add_project(name, purpose, epsilon, scope))
    console().print(
        f"project {name} ({purpose}, budget ε {epsilon:g}): "
        + "; ".join(f"{t}: {', '.join(c)}" for t, c in scope.items())
    )


@project_app.command("member")
def project_member(project: str, researcher: str, config: Path = CONFIG) -> None:
    """Let a researcher query within a project."""
    _stored(lambda: _store(config).add_member(researcher, project))
    console().print(f"{researcher} may query in {project}")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
