"""What an ``mpc-admin`` command acts on: whose configuration a file is, and the signed logs in
that party's state directory.

A configuration file belongs to one kind of process, named by its top-level table: ``[party]``
(an agency: a daemon, or a requester that runs none), ``[coordinator]`` or ``[gateway]``.
:func:`load_config` loads it with that process's loader, or refuses it -- naming the file, what
it is, and what the command takes -- when the command does not act on that kind.

Signed logs (:func:`signed_logs`) live in the state directory: ``audit.log``, a daemon's log of
what it served (the one the coordinator witnesses), and ``requests.log`` (``requests.PID.log``
from a second process), the requesting agency's log of what ``mpc-query`` and the SDK asked. All
are signed with ``audit-signing.pem``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from parties.config import ConfigError, PartyConfig, load_party_config

if TYPE_CHECKING:
    from parties.coordinator.server import CoordinatorConfig
    from parties.gateway.config import GatewayConfig

__all__ = [
    "DAEMON_LOG",
    "SIGNING_KEY",
    "Kind",
    "Target",
    "load_config",
    "signed_logs",
]

Kind = Literal["party", "coordinator", "gateway"]
DAEMON_LOG = "audit.log"
SIGNING_KEY = "audit-signing.pem"
_KINDS: tuple[Kind, ...] = ("party", "coordinator", "gateway")


@dataclass(frozen=True)
class Target:
    """A loaded configuration and its kind."""

    path: Path
    kind: Kind
    config: PartyConfig | CoordinatorConfig | GatewayConfig

    @property
    def name(self) -> str:
        """The process's name (its certificate's)."""
        name: str = getattr(self.config, self.kind).name
        return name

    @property
    def state_dir(self) -> Path:
        """The process's state directory (absolute, or relative to the working directory)."""
        state: Path = getattr(self.config, self.kind).state_dir
        return state


def _kind_of(path: Path) -> Kind:
    """The kind named by the file's top-level table; ``party`` when it names none or cannot be
    read (the party loader then says what is wrong)."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not TOML: reported by the loader
        return "party"
    return next((kind for kind in _KINDS if kind in tables), "party")


def _loader(kind: Kind) -> Callable[[Path], PartyConfig | CoordinatorConfig | GatewayConfig]:
    """The loader of ``kind``'s configuration (imported on use: the coordinator's pulls in its server)."""
    if kind == "coordinator":
        from parties.coordinator.server import load_coordinator_config

        return load_coordinator_config
    if kind == "gateway":
        from parties.gateway.config import load_gateway_config

        return load_gateway_config
    return load_party_config


def load_config(path: Path, accepted: tuple[Kind, ...], command: str) -> Target:
    """Load ``path`` if its kind is one of ``accepted``. Every failure is a :class:`ConfigError`
    naming the file (and the key, line or byte): also a file that is not UTF-8, and a
    configuration of another kind (``coordinator.toml is the coordinator's configuration ...``)."""
    kind = _kind_of(path)
    if kind not in accepted:
        wanted = " or ".join(f"a {k}'s ([{k}])" for k in accepted)
        raise ConfigError(f"{path} is the {kind}'s configuration ([{kind}]); mpc-admin {command} needs {wanted}")
    try:
        return Target(path, kind, _loader(kind)(path))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def signed_logs(state: Path) -> list[Path]:
    """The signed logs in ``state``: the daemon's ``audit.log`` first, then the requests logs."""
    daemon = state / DAEMON_LOG
    return ([daemon] if daemon.is_file() else []) + sorted(state.glob("requests*.log"))
