"""``gateway.toml``: the researcher sandbox's identity (TLS towards the agencies' daemons), its HTTP
address, where it keeps its records, and its release rules.

    [gateway]
    name = "gateway"                 # its certificate name: owners grant it uses in their policy
    listen = "127.0.0.1:8080"        # the HTTP API and the portal
    state_dir = "state/gateway"
    coordinator = "127.0.0.1:7000"   # the directory of agencies
    database = ""                    # "" = SQLite in state_dir; or postgresql://...
    min_cell = 10                    # cells whose noisy count is below are withheld (marked)
    max_epsilon_per_query = 1.0
    default_epsilon = 0.5
    https = true                     # the default: the API over TLS with the [tls] certificate
                                     # (false: plain HTTP, refused unless listen is a loopback address)

    [tls]
    ca = "pki/ca.pem"
    cert = "pki/issued/gateway.pem"
    key = "pki/issued/gateway.key"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from parties.config import check_address, load_toml_config
from parties.rpc.https import check_plain_http
from parties.rpc.tls import TlsConfig


class GatewaySection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("gateway", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    listen: str = "127.0.0.1:8080"
    state_dir: Path
    coordinator: str
    database: str = ""
    min_cell: int = Field(10, ge=0)
    max_epsilon_per_query: float = Field(1.0, gt=0, le=100)
    default_epsilon: float = Field(0.5, gt=0, le=100)
    workers: int = Field(2, ge=1, le=64)  # queries computed at once
    # the API over TLS with the [tls] certificate (researchers verify it with the deployment CA);
    # plain HTTP only when set to false, and then only on a loopback address
    https: bool = True

    @field_validator("listen", "coordinator")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @model_validator(mode="after")
    def _plain_http_on_loopback_only(self) -> GatewaySection:
        check_plain_http(self.listen, self.https, "researchers' tokens and results")
        return self

    @property
    def database_url(self) -> str:
        return self.database or str(self.state_dir / "gateway.sqlite")


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway: GatewaySection
    tls: TlsConfig


def load_gateway_config(path: Path) -> GatewayConfig:
    return load_toml_config(path, GatewayConfig, "gateway")
