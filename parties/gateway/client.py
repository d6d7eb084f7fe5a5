"""The researcher's Python client of the gateway's HTTP API.

with ResearchClient("https://127.0.0.1:8080", token, ca="pki/ca.pem") as sandbox:
    print(sandbox.budget("health-2026"))
    job = sandbox.query("health-2026", 'SELECT h.district, COUNT(*) FROM "civil-affairs".households h '
                                       "GROUP BY h.district")
    for row in job["result"]["rows"]: ...
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import httpx


class SandboxError(RuntimeError):
    """The gateway refused or failed a request: the HTTP status, the reason and the fragment."""

    def __init__(self, status: int, reason: str, fragment: str = "", detail: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {reason}" + (f": {fragment}" if fragment else ""))
        self.status, self.reason, self.fragment, self.detail = status, reason, fragment, detail or {}


class ResearchClient:
    def __init__(self, url: str, token: str, timeout: float = 60.0, ca: str | None = None) -> None:
        """``ca``: the deployment CA's certificate (PEM file) to verify an https gateway with."""
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=ssl.create_default_context(cafile=ca) if ca else True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ResearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cells_csv(self, job_id: str) -> str:
        """A finished job's released cells as CSV (values, 95 % intervals, released or not)."""
        response = self._checked(self._http.request("GET", f"/api/jobs/{job_id}/cells.csv"))
        return response.text

    def _request(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        return self._checked(self._http.request(method, path, json=json)).json()

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            detail = (
                response.json().get("detail", {})
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            if not isinstance(detail, dict):
                detail = {"reason": str(detail)}
            raise SandboxError(
                response.status_code,
                str(detail.get("reason", response.text[:200])),
                str(detail.get("fragment", "")),
                detail,
            )
        return response

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/api/me")
        return result

    def datasets(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/api/projects/{project}/datasets")
        return result

    def budget(self, project: str) -> dict[str, Any]:
        """ε left (``researcher``, ``project``), the totals, and the spending ``history``."""
        result: dict[str, Any] = self._request("GET", f"/api/projects/{project}/budget")
        return result

    def preview(self, project: str, sql: str, epsilon: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", f"/api/projects/{project}/preview", {"sql": sql, "epsilon": epsilon}
        )
        return result

    def submit(self, project: str, sql: str, epsilon: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", f"/api/projects/{project}/queries", {"sql": sql, "epsilon": epsilon}
        )
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/api/jobs/{job_id}")
        return result

    def wait(self, job_id: str, timeout: float = 3600.0, poll: float = 0.25) -> dict[str, Any]:
        """The job once done (or failed); SandboxError if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in ("done", "failed"):
                if job["status"] == "failed":
                    raise SandboxError(500, "the query failed", str(job.get("error", "")), job)
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not done within {timeout:.0f} s")
            time.sleep(poll)

    def query(self, project: str, sql: str, epsilon: float | None = None) -> dict[str, Any]:
        """Submit and wait: the job with its released cells."""
        return self.wait(self.submit(project, sql, epsilon)["id"])
