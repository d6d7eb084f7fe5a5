"""What travels over the service's API (its OpenAPI description is generated from these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mpc.policy import PURPOSE_PATTERN
from mpc.protocols.rules import MAX_MEMBERS, RULE_NAME

__all__ = [
    "ApplicationIn",
    "CheckIn",
    "CheckOut",
    "JobApplication",
    "JobIn",
    "JobOut",
    "OwnerGrant",
    "Refusal",
    "ResultRow",
    "RuleOut",
]

Declared = dict[str, str]
REFERENCE = r"^[^\x00-\x1f\x7f]{1,128}$"  # printable: it ends up in CSV files and audit entries


class ApplicationIn(BaseModel):
    """One application as the form gives it. Ids are normalised as the service's ``id_kind`` says."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(pattern=REFERENCE, description="the application's reference (its row in the results)")
    applicant: str = Field(min_length=1, max_length=64)
    members: list[str] = Field(
        default_factory=list,
        max_length=MAX_MEMBERS,
        description="every household member, the applicant included (empty: the applicant alone)",
    )
    declared: Declared = Field(default_factory=dict, description="what the applicant declared, by name, as written")
    member_declared: list[Declared] = Field(
        default_factory=list,
        max_length=MAX_MEMBERS,
        description="what was declared per member, aligned with members (empty: nothing)",
    )


class RuleRequest(BaseModel):
    """What every check names: the rule, the purpose and the case."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(pattern=RULE_NAME, description="a rule of the service's rules file (GET /v1/rules)")
    purpose: str | None = Field(
        None, pattern=PURPOSE_PATTERN.pattern, description="purpose code (default: the service's default_purpose)"
    )
    case: str = Field(pattern=REFERENCE, description="case reference, written to every owner's audit log and ours")


class CheckIn(RuleRequest, ApplicationIn):
    """One application, checked now."""

    reference: str = Field("", pattern=r"^([^\x00-\x1f\x7f]{1,128})?$", description="default: the case reference")


class JobApplication(ApplicationIn):
    case: str | None = Field(
        None, pattern=REFERENCE, description="its own case reference, in every owner's audit entry (default: the job's)"
    )


class JobIn(RuleRequest):
    """A batch of applications, checked in the background, in chunks of one case reference each."""

    applications: list[JobApplication] = Field(min_length=1)


class ResultRow(BaseModel):
    """One application's outcome: eligible, not eligible (``reason`` names the failed clauses whose
    owners let us see them), or error (``reason`` says why: the application or an owner)."""

    reference: str
    result: Literal["eligible", "not eligible", "error"]
    reason: str = ""


class CheckOut(ResultRow):
    rule: str
    clauses: dict[str, bool] = Field(default_factory=dict, description="the clause bits revealed to us")


class JobOut(BaseModel):
    id: str
    rule: str
    purpose: str
    case: str
    status: Literal["queued", "running", "done", "failed"]
    applications: int
    done: int
    errors: int
    error: str = ""
    created: float
    finished: float | None = None


class OwnerGrant(BaseModel):
    """What an owner's listing shows of a rule (owners publish no approvals: a check is refused by
    an owner that has not approved the rule, with its reason)."""

    owner: str
    columns_granted: bool | None = Field(
        description="the owner grants us every column the rule compares (None: unknown)"
    )
    detail: str = ""


class RuleOut(BaseModel):
    name: str
    description: str
    fingerprint: str = Field(description="what owners approve (mpc-admin rules approve): compare with theirs")
    owners: list[OwnerGrant]
    last_check: str = Field("", description="the outcome of this service's last check of the rule")


class Refusal(BaseModel):
    detail: dict[str, str]
