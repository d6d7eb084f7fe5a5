"""The gateway's HTTP/JSON API (FastAPI: its OpenAPI description is at ``/openapi.json``) and the
web portal it serves at ``/``.

Every ``/api`` route but the health check needs ``Authorization: Bearer <token>``. Refusals carry
``{"detail": {"reason": ..., "fragment": ...}}``: 400 for a query outside the accepted shape,
403 for a table or column outside the project or the owners' policies, 404 for something that is
not the caller's, 409 (with ``budget_left``) when the budget does not cover a query, 503 when an
owner cannot be reached. A submitted query is a job (202); its cells are kept and can be fetched
again without spending budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from parties.gateway.sandbox import QueryRefused, Sandbox
from parties.gateway.store import Job, StoreError

PORTAL = Path(__file__).with_name("portal")
_bearer = HTTPBearer(auto_error=False)


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(
        min_length=1,
        max_length=10_000,
        description="restricted SQL: SELECT keys, COUNT(*), SUM(col), "
        "AVG(col) FROM party.dataset [JOIN party.dataset USING (id)] [WHERE ...] GROUP BY keys",
    )
    epsilon: float | None = Field(None, gt=0, le=100, description="privacy cost of the query (default: the gateway's)")


class Refusal(BaseModel):
    model_config = ConfigDict(extra="allow")  # 409 also says the budget left

    reason: str
    fragment: str = ""


class RefusalOut(BaseModel):
    detail: Refusal


class Budget(BaseModel):
    researcher: float
    project: float


class ProjectOut(BaseModel):
    name: str
    purpose: str
    tables: list[str]
    budget_left: Budget


class MeOut(BaseModel):
    researcher: str
    projects: list[ProjectOut]


class ColumnOut(BaseModel):
    name: str
    type: str
    min: int | None = None
    max: int | None = None
    classification: str
    uses: list[str]
    values: list[str] = []


class TableOut(BaseModel):
    table: str
    available: bool
    description: str = ""
    rows: int | None = None
    reason: str = ""
    columns: list[ColumnOut]


class PreviewOut(BaseModel):
    cost: float
    groups: int
    cells: list[str]
    noise_scales: dict[str, float]
    errors: dict[str, int]  # each cell kind's 95 % error (half-width), both owners' noise together
    warnings: list[str]  # sums whose error exceeds the column's whole range
    budget_left: Budget
    affordable: bool


class JobOut(BaseModel):
    id: str
    project: str
    sql: str
    epsilon: float
    status: str
    progress: float
    error: str | None = None
    result: dict[str, Any] | None = None
    created: float
    finished: float | None = None


def _job(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        project=job.project,
        sql=job.sql,
        epsilon=job.epsilon,
        status=job.status,
        progress=job.progress,
        error=job.error,
        result=job.result,
        created=job.created,
        finished=job.finished,
    )


def _researcher(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The caller, from its bearer token (401 otherwise)."""
    sandbox: Sandbox = request.app.state.sandbox
    name = sandbox.store.researcher_for(credentials.credentials) if credentials is not None else None
    if name is None:
        raise HTTPException(
            401, {"reason": "sign in with a valid API token", "fragment": ""}, headers={"WWW-Authenticate": "Bearer"}
        )
    return name


Researcher = Annotated[str, Depends(_researcher)]


def create_app(sandbox: Sandbox) -> FastAPI:
    app = FastAPI(
        title="mpc-agencies researcher sandbox",
        version="1",
        description="Noised, thresholded statistics across agencies; no row ever leaves its owner.",
    )
    app.state.sandbox = sandbox
    refusals: dict[int | str, dict[str, Any]] = {
        code: {"model": RefusalOut, "description": text}
        for code, text in (
            (400, "query outside the accepted shape"),
            (401, "missing or unknown token"),
            (403, "outside the project or the owners' policies"),
            (404, "not found (or not yours)"),
            (409, "budget exhausted"),
            (503, "an owner cannot be reached"),
        )
    }

    @app.exception_handler(QueryRefused)
    async def refused(request: Request, exc: QueryRefused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail()}, status_code=exc.status)

    @app.exception_handler(StoreError)
    async def missing(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": {"reason": str(exc), "fragment": ""}}, status_code=404)

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "serving"}

    @app.get("/api/me", responses=refusals, tags=["projects"])
    def me(name: Researcher) -> MeOut:
        projects = []
        for p in sandbox.store.projects_of(name):
            left = sandbox.store.budget(name, p.name)
            projects.append(
                ProjectOut(
                    name=p.name,
                    purpose=p.purpose,
                    tables=sorted(p.scope),
                    budget_left=Budget(researcher=left.researcher_left, project=left.project_left),
                )
            )
        return MeOut(researcher=name, projects=projects)

    @app.get("/api/projects/{project}/datasets", responses=refusals, tags=["projects"])
    def datasets(project: str, name: Researcher) -> list[TableOut]:
        return [TableOut.model_validate(t) for t in sandbox.catalog(name, project)]

    @app.get("/api/projects/{project}/budget", responses=refusals, tags=["projects"])
    def budget(project: str, name: Researcher) -> Budget:
        sandbox.store.project_for(name, project)
        left = sandbox.store.budget(name, project)
        return Budget(researcher=left.researcher_left, project=left.project_left)

    @app.post("/api/projects/{project}/preview", responses=refusals, tags=["queries"])
    def preview(project: str, query: QueryIn, name: Researcher) -> PreviewOut:
        """What the query would cost (and whether the budget covers it); nothing is computed or spent."""
        return PreviewOut.model_validate(sandbox.preview(name, project, query.sql, query.epsilon))

    @app.post("/api/projects/{project}/queries", status_code=202, responses=refusals, tags=["queries"])
    def submit(project: str, query: QueryIn, name: Researcher) -> JobOut:
        """Spend the query's cost and compute it as a job (follow it at ``/api/jobs/{id}``)."""
        return _job(sandbox.submit(name, project, query.sql, query.epsilon))

    @app.get("/api/jobs", responses=refusals, tags=["queries"])
    def jobs(name: Researcher) -> list[JobOut]:
        return [_job(j) for j in sandbox.store.jobs_of(name)]

    @app.get("/api/jobs/{job_id}", responses=refusals, tags=["queries"])
    def job(job_id: str, name: Researcher) -> JobOut:
        """Status, progress, and the released cells once done (again as often as asked, free)."""
        return _job(sandbox.store.job(job_id, name))

    @app.get("/", include_in_schema=False)
    def portal() -> FileResponse:
        return FileResponse(PORTAL / "index.html")

    @app.get("/portal/{name}", include_in_schema=False)
    def portal_file(name: str) -> FileResponse:
        if name not in ("portal.js", "portal.css"):
            raise HTTPException(404, {"reason": "no such file", "fragment": name})
        return FileResponse(PORTAL / name)

    return app
