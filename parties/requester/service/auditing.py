"""Every call of the service's ``/v1`` routes becomes an entry of the agency's signed audit log,
durable before the caller sees the answer: the caller's certificate name (``-`` when it was
refused before one was known), ``http:METHOD PATH``, the purpose, case and number of applications
the route noted in ``request.state``, the status (``OK`` or ``HTTP 4xx``) and the refusal's reason;
never ids or results. A plain ASGI middleware: the entry is written when the response starts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from mpc.audit import AuditEvent, AuditLog

__all__ = ["Audited"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Audited:
    """``app`` with an audit entry per ``/v1`` call in ``log`` (``protocol``: https or http)."""

    def __init__(self, app: App, log: AuditLog, protocol: str) -> None:
        self.app, self.log, self.protocol = app, log, protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started, answered = time.perf_counter(), False

        async def send_once_recorded(message: MutableMapping[str, Any]) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                await self._record(scope, int(message["status"]), started)
            await send(message)

        try:
            await self.app(scope, receive, send_once_recorded)
        except Exception:
            if not answered:  # the server answers 500
                await self._record(scope, 500, started)
            raise

    async def _record(self, scope: Scope, status: int, started: float) -> None:
        state = scope.get("state", {})
        event = AuditEvent(
            peer=state.get("caller", "-"),
            action=f"http:{scope['method']} {scope['path']}"[:200],
            purpose=state.get("purpose", ""),
            case=state.get("case", ""),
            protocol=self.protocol,
            rows=state.get("rows", 0),
            outcome="OK" if status < 400 else f"HTTP {status}",
            detail=str(state.get("detail", ""))[:300],
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        await run_in_threadpool(self.log.append, event)
