"""``service.toml``: the requester service of one agency.

    [service]
    agency = "housing.toml"          # the agency's own configuration: identity ([tls]), coordinator,
                                     # state directory (whose requests.log records every call)
    listen = "127.0.0.1:8443"
    callers = ["case-system"]        # certificate names (issued by the deployment CA) allowed to call
    rules = "rules/housing.toml"     # the rules the service checks applications against
    default_purpose = "public-rental-housing"   # for calls that name none
    id_kind = "resident_id"          # how applicants' and members' ids are normalised
    https = true                     # false: plain HTTP (no callers can be told apart), loopback only
    max_job_applications = 100000
    job_chunk = 10000                # applications per eligibility round trip in a job
    keep_jobs = 100                  # finished jobs whose results stay available
    coalesce = true                  # checks that would queue behind others go to the owners as one
    coalesce_most = 32               # batch of at most this many (see .coalesce); false: each alone
    coalesce_ms = 0                  # > 0: a batch also waits this long for more checks to join it
    coalesce_in_flight = 1           # batches of one rule, purpose and size class at the owners at once
    bucket_cache_mb = 1024           # owners' encrypted P3 buckets kept for the next check that falls in
                                     # one (0: none); a 1-million-row table's buckets take 512 MB per column set

Relative paths are resolved against this file's directory. The HTTPS certificate is the agency's
own (``[tls]`` of ``agency``): it must carry serverAuth and the address callers use (``mpc-admin
pki issue NAME --host ...``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mpc.data.ids import IdKind
from mpc.policy import PURPOSE_PATTERN
from parties.config import ConfigError, PartyConfig, check_address, format_validation_error, load_party_config
from parties.rpc.https import check_plain_http

__all__ = ["ServiceConfig", "ServiceSection", "load_service_config"]

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ServiceSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency: Path
    listen: str = "127.0.0.1:8443"
    callers: list[str] = Field(min_length=1)
    rules: Path
    default_purpose: str | None = Field(None, pattern=PURPOSE_PATTERN.pattern)
    id_kind: IdKind = "resident_id"
    https: bool = True
    max_job_applications: int = Field(100_000, ge=1, le=10_000_000)
    job_chunk: int = Field(10_000, ge=1, le=1_000_000)
    keep_jobs: int = Field(100, ge=1, le=100_000)
    coalesce: bool = True
    coalesce_most: int = Field(32, ge=1, le=10_000)
    coalesce_ms: float = Field(0.0, ge=0, le=1000)
    coalesce_in_flight: int = Field(1, ge=1, le=16)
    bucket_cache_mb: int = Field(1024, ge=0, le=1 << 20)

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @field_validator("callers")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if not re.match(NAME, c)]
        if bad:
            raise ValueError(f"caller names are certificate names matching {NAME}: {bad}")
        return value

    @model_validator(mode="after")
    def _plain_http_on_loopback_only(self) -> ServiceSection:
        check_plain_http(self.listen, self.https, "applicants' ids and eligibility results")
        return self


class ServiceConfig(BaseModel):
    """The ``[service]`` section and the agency configuration it names (loaded)."""

    model_config = ConfigDict(extra="forbid")

    service: ServiceSection
    agency: PartyConfig
    agency_path: Path


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: ServiceSection


def load_service_config(path: Path) -> ServiceConfig:
    """Read and validate ``path`` and the agency configuration it names; every failure is a
    :class:`~parties.config.ConfigError` naming the file and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        section = _File.model_validate(raw).service
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from exc
    base = path.resolve().parent
    section.agency, section.rules = (p if p.is_absolute() else base / p for p in (section.agency, section.rules))
    if not section.rules.is_file():
        raise ConfigError(f"{path}: service.rules: no rules file at {section.rules}")
    return ServiceConfig(service=section, agency=load_party_config(section.agency), agency_path=section.agency)
