"""``mpc-party serve --config FILE.toml``: the agency daemon's configuration, validated by pydantic.

Errors name the offending key (``party.listen: ...``, ``datasets.0.schema.columns.income.min: ...``).
Relative paths are resolved against the configuration file's directory.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mpc.data.schema import DatasetSpec
from mpc.parallel import ComputeBackend, ComputeConfig, ComputeError, configure
from mpc.policy import Policy
from parties.rpc.tls import TlsConfig

M = TypeVar("M", bound=BaseModel)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The name in ``known`` closest to a misspelt ``name`` (difflib), or None when none is close:
    what every "did you mean" of a check says."""
    near = difflib.get_close_matches(name, sorted(known), n=1)
    return near[0] if near else None


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names each bad key."""


def check_address(value: str) -> str:
    """A ``HOST:PORT`` setting (pydantic validators of every daemon's config call this)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class PartySection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    listen: str = "127.0.0.1:0"
    advertise: str | None = None  # address others use (default: the bound listen address)
    state_dir: Path
    coordinator: str | None = None
    coordinator_name: str = Field("coordinator", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")  # its certificate's name
    metrics_listen: str | None = None  # e.g. "127.0.0.1:9101"; off when unset
    audit_witness_seconds: float = Field(30.0, gt=0)
    max_points_per_request: int = Field(2_000_000, ge=1)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    paillier_bits: int = 2048
    anonymity_set: int = Field(1024, ge=1)  # P3: rows per bucket (a smaller table is one bucket)
    oprf_epoch_hours: float = Field(24.0, gt=0)  # datasets' OPRF keys (and so their tags) rotate every epoch

    @field_validator("listen", "coordinator", "metrics_listen", "advertise")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)


class PredicateSpec(BaseModel):
    """A predicate this owner publishes (P2): ``dataset.column COMPARE value``, per epoch."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    dataset: str
    column: str
    compare: Literal["<", "<=", ">", ">=", "==", "!="]
    value: int
    epoch_hours: float = Field(24.0, gt=0)  # the OPRF key rotates every epoch


class PartyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: PartySection
    tls: TlsConfig
    datasets: list[DatasetSpec] = Field(default_factory=list)
    predicates: list[PredicateSpec] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)  # where heavy batch work runs (mpc.parallel)
    base_dir: Path = Path(".")

    @field_validator("datasets")
    @classmethod
    def _unique(cls, value: list[DatasetSpec]) -> list[DatasetSpec]:
        names = [d.name for d in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dataset names must be unique: {dupes}")
        return value


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def start_compute(config: ComputeConfig) -> ComputeBackend:
    """The process's compute backend as ``[compute]`` names it (the daemon and the requester's
    client call this on start); a Ray cluster that does not answer is a :class:`ConfigError`."""
    try:
        return configure(config)
    except ComputeError as exc:
        raise ConfigError(f"compute.address: {exc}") from None


def load_toml_config(path: Path, model: type[M], section: str, with_base_dir: bool = False) -> M:
    """Read and validate a daemon's TOML configuration; ``<section>.state_dir`` and the TLS paths
    are resolved against the file's directory (which the model also gets as ``base_dir`` when it
    asks). Every failure is a :class:`ConfigError` naming the file and the offending key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    base = path.resolve().parent
    try:
        config = model.model_validate({**raw, "base_dir": base} if with_base_dir else raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from exc
    part = getattr(config, section)
    if not part.state_dir.is_absolute():
        part.state_dir = base / part.state_dir
    config.tls = config.tls.resolved(base)  # type: ignore[attr-defined]
    return config


def load_party_config(path: Path) -> PartyConfig:
    return load_toml_config(path, PartyConfig, "party", with_base_dir=True)
