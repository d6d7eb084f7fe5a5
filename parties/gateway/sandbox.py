"""The researcher sandbox's core (P5): check a query, price it, spend the budget, have the owners
compute it, release only noised, thresholded cells, and record everything.

A query is restricted SQL (:mod:`mpc.protocols.sql`) over ``party.dataset`` tables. Before any
cryptography runs it must fit the researcher's project (the tables and columns it names) and the
owners' policies towards this gateway (each column's use: filter, aggregate, plain group-by key,
as the owners report them in ``ListDatasets``). Its cost is priced with OpenDP
(:mod:`mpc.protocols.privacy`) and spent atomically from both the researcher's and the project's
budget. The FROM table's owner then initiates the join with the JOIN table's owner
(``Party.RunAggregate``; the owners re-check their policies themselves), each adds its own noise
to its share of every cell, and this gateway adds the two shares (the peer's by
``Party.GetResultShare``): cells whose noisy count is under the minimum are withheld and marked.
The gateway never holds a row, a share of a row, or a noise-free cell.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc.audit import AuditEvent, AuditLog, load_or_create_signing_key
from mpc.protocols import aggregate as agg
from mpc.protocols import privacy
from mpc.protocols.sql import ParsedQuery, SqlRefused, parse_query
from mpc.sharing import ring
from parties.config import closest
from parties.gateway.config import GatewayConfig
from parties.gateway.store import BudgetExceeded, Job, Project, Store, StoreError
from parties.requester import Client, RemoteError
from parties.rpc import wire
from protos import party_pb2

SCHEMA_SECONDS = 30.0


class QueryRefused(Exception):
    """A query that does not run: an HTTP status, the reason and what it refers to."""

    def __init__(self, status: int, reason: str, fragment: str = "", **extra: Any) -> None:
        super().__init__(f"{reason}: {fragment}" if fragment else reason)
        self.status, self.reason, self.fragment, self.extra = status, reason, fragment, extra

    def detail(self) -> dict[str, Any]:
        return {"reason": self.reason, "fragment": self.fragment, **self.extra}


@dataclass(frozen=True)
class Table:
    party: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.party}.{self.dataset}"


@dataclass(frozen=True)
class Prepared:
    """A query checked and priced, ready to run."""

    sql: str
    initiator: Table
    peer: Table | None
    request: agg.AggregateRequest
    schemas: dict[agg.Side, dict[str, agg.ColumnInfo]]
    measurements: list[privacy.Measurement]
    groups: list[tuple[Any, ...]]
    cost: float

    def names(self) -> dict[agg.Side, str]:
        return {"initiator": self.initiator.dataset, "peer": self.peer.dataset if self.peer else ""}

    def label(self, ref: agg.ColumnRef) -> str:
        return f"{self.names()[ref.side]}.{ref.column}"

    def errors(self) -> dict[str, int]:
        """Each cell kind's 95 % error (half-width of its interval, both owners' noise together)."""
        return {m.cell: privacy.error_bound(m) for m in self.measurements}

    def warnings(self) -> list[str]:
        """The sums whose 95 % error exceeds the summed column's whole declared range: their
        cells (and means) say next to nothing unless a group holds very many rows."""
        out = []
        errors = self.errors()
        for ref in self.request.summed():
            low, high = self.schemas[ref.side][ref.column].bounds()
            error = errors[f"sum({ref})"]
            if error > high - low:
                out.append(
                    f"sum({self.label(ref)}): the 95 % error of each released sum (±{error:,}) exceeds the column's "
                    f"whole range [{low:,}, {high:,}]; a mean is off by about ±{error:,} / the group's count"
                )
        return out


class Sandbox:
    def __init__(self, config: GatewayConfig, store: Store) -> None:
        section = config.gateway
        self.config, self.store = config, store
        self.name = section.name
        section.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.audit = AuditLog(
            section.state_dir / "audit.log",
            load_or_create_signing_key(section.state_dir / "audit-signing.pem"),
            repair_torn_tail=True,
        )
        self._pool = ThreadPoolExecutor(max_workers=section.workers, thread_name_prefix="query")
        self._schemas: dict[str, tuple[float, party_pb2.DatasetList]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.audit.close()

    def _client(self, purpose: str = "", case: str = "") -> Client:
        return Client(self.name, self.config.tls, self.config.gateway.coordinator, purpose, case)

    # ------------------------------------------------------------------ what a project may see
    def _listing(self, party: str, purpose: str) -> party_pb2.DatasetList:
        with self._lock:
            asked, listing = self._schemas.get(party, (0.0, None))
        if listing is None or time.monotonic() - asked > SCHEMA_SECONDS:
            client = self._client(purpose)
            try:
                listing = client.list_datasets(party)
            except (RemoteError, LookupError) as exc:
                raise QueryRefused(503, f"the owner {party} cannot be reached", str(exc)) from None
            finally:
                client.close()
            with self._lock:
                self._schemas[party] = (time.monotonic(), listing)
        return listing

    def _schema(self, table: Table, purpose: str) -> party_pb2.DatasetSchema:
        schema = next((d for d in self._listing(table.party, purpose).datasets if d.name == table.dataset), None)
        if schema is None:
            raise QueryRefused(403, f"{table.party} grants this gateway no dataset {table.dataset!r}", str(table))
        return schema

    def catalog(self, researcher: str, project_name: str) -> list[dict[str, Any]]:
        """The datasets and columns the project may use: schemas and allowed uses, never values."""
        project = self._project(researcher, project_name)
        out = []
        for name, allowed in sorted(project.scope.items()):
            party, _, dataset = name.partition(".")
            try:
                schema = self._schema(Table(party, dataset), project.purpose)
            except QueryRefused as exc:
                out.append({"table": name, "available": False, "reason": exc.reason, "columns": []})
                continue
            columns = [
                {
                    "name": c.name,
                    "type": c.type,
                    "min": c.min if c.has_bounds else None,
                    "max": c.max if c.has_bounds else None,
                    "classification": c.classification,
                    "uses": [u for u in c.allowed_uses if u in ("filter", "aggregate", "group_by")],
                    "values": list(c.categories),
                    "description": c.description,
                }
                for c in schema.columns
                if c.name in allowed
            ]
            out.append(
                {
                    "table": name,
                    "available": True,
                    "description": schema.description,
                    "rows": schema.rows,
                    "join_key": schema.id_kind,
                    "columns": columns,
                }
            )
        for table in out:
            table["examples"] = _examples(table, [t for t in out if t is not table]) if table["available"] else []
        return out

    def _project(self, researcher: str, project_name: str) -> Project:
        try:
            return self.store.project_for(researcher, project_name)
        except StoreError as exc:
            raise QueryRefused(404, str(exc)) from None

    # ------------------------------------------------------------------ checking and pricing
    def prepare(self, researcher: str, project_name: str, sql: str, epsilon: float | None) -> tuple[Project, Prepared]:
        """Parse, scope-check, policy-check and price ``sql``; nothing is computed."""
        project = self._project(researcher, project_name)
        section = self.config.gateway
        epsilon = section.default_epsilon if epsilon is None else epsilon
        if not 0 < epsilon <= section.max_epsilon_per_query:
            raise QueryRefused(
                400, f"epsilon must be in (0, {section.max_epsilon_per_query:g}] per query", f"{epsilon:g}"
            )
        try:
            query = parse_query(sql, "gateway", epsilon, self.name)
        except SqlRefused as exc:
            raise QueryRefused(400, exc.reason, exc.fragment) from None
        initiator, peer = self._tables(query)
        request = query.request
        schemas: dict[agg.Side, dict[str, agg.ColumnInfo]] = {"initiator": {}, "peer": {}}
        rows = 0
        for side, table in (("initiator", initiator), ("peer", peer)):
            if table is None:
                continue
            allowed = project.scope.get(str(table))
            if allowed is None:
                raise QueryRefused(403, f"project {project.name!r} may not use table {table}", str(table))
            schema = self._schema(table, project.purpose)
            columns = {c.name: c for c in schema.columns}
            for column, uses in request.uses(side).items():  # type: ignore[arg-type]
                if column == schema.id_kind:
                    raise QueryRefused(
                        403,
                        f"may not use column {table}.{column}: it is the join key, named only in USING ({column})",
                        f"{table}.{column}",
                    )
                if column not in columns:  # a misspelling is named as one, not as a permission refusal
                    near = closest(column, set(columns) & set(allowed))
                    hint = f"; did you mean {near!r}?" if near else ""
                    raise QueryRefused(
                        400, f"no such column: {table} has no column {column!r}{hint}", f"{table}.{column}"
                    )
                if column not in allowed:
                    raise QueryRefused(
                        403, f"project {project.name!r} may not use column {table}.{column}", f"{table}.{column}"
                    )
                missing = sorted(uses - set(columns[column].allowed_uses))
                if missing:
                    raise QueryRefused(
                        403,
                        f"{table.party} does not allow {table}.{column} as {', '.join(missing)} for this gateway",
                        f"{table}.{column}",
                    )
            schemas[side] = {c.name: _info(c) for c in schema.columns}  # type: ignore[index]
            rows = max(rows, int(schema.rows))
        try:
            request.check(schemas, rows)
        except agg.AggregateError as exc:
            raise QueryRefused(400, "the query cannot run", str(exc)) from None
        measurements = privacy.plan(request, schemas, epsilon)
        groups = request.groups(schemas)
        prepared = Prepared(
            sql, initiator, peer, request, schemas, measurements, groups, privacy.cost(measurements, len(groups))
        )
        return project, prepared

    @staticmethod
    def _tables(query: ParsedQuery) -> tuple[Table, Table | None]:
        if not query.initiator or (query.request.peer_dataset and not query.peer):
            raise QueryRefused(400, "name every table as party.dataset", query.request.initiator_dataset)
        initiator = Table(query.initiator, query.request.initiator_dataset)
        peer = Table(query.peer, query.request.peer_dataset) if query.peer else None
        if peer is not None and peer.party == initiator.party:
            raise QueryRefused(400, "a join is between two agencies", f"{initiator} JOIN {peer}")
        return initiator, peer

    def preview(self, researcher: str, project_name: str, sql: str, epsilon: float | None) -> dict[str, Any]:
        project, prepared = self.prepare(researcher, project_name, sql, epsilon)
        left = self.store.budget(researcher, project.name)
        return {
            "cost": prepared.cost,
            "groups": len(prepared.groups),
            "cells": prepared.request.cells(),
            "noise_scales": {m.cell: m.scale for m in prepared.measurements},
            "errors": prepared.errors(),
            "warnings": prepared.warnings(),
            "budget_left": {"researcher": left.researcher_left, "project": left.project_left},
            "affordable": prepared.cost <= min(left.researcher_left, left.project_left) + 1e-9,
        }

    # ------------------------------------------------------------------ running
    def submit(
        self,
        researcher: str,
        project_name: str,
        sql: str,
        epsilon: float | None,
        on_done: Callable[[str], None] | None = None,
    ) -> Job:
        """Check, price and spend now; compute in the background (a job to follow)."""
        project, prepared = self.prepare(researcher, project_name, sql, epsilon)
        try:
            self.store.spend(researcher, project.name, prepared.cost)
        except BudgetExceeded as exc:
            self._record(researcher, project, prepared, "BUDGET_EXCEEDED", str(exc))
            raise QueryRefused(
                409,
                "the privacy budget does not cover this query",
                f"cost {prepared.cost:g}",
                budget_left={"researcher": exc.researcher_left, "project": exc.project_left},
            ) from None
        job = Job(uuid.uuid4().hex[:16], researcher, project.name, sql, prepared.cost, "queued", 0.0)
        self.store.add_job(job)
        self._record(researcher, project, prepared, "SUBMITTED", f"job={job.id}")
        self._pool.submit(self._run, job, project, prepared, on_done)
        return job

    def _run(self, job: Job, project: Project, prepared: Prepared, on_done: Callable[[str], None] | None) -> None:
        self.store.update_job(job.id, status="running", progress=0.1)
        client = self._client(project.purpose, f"job-{job.id}")
        try:
            request = party_pb2.AggregateJob(
                request=prepared.request.model_dump_json().encode(), peer=prepared.peer.party if prepared.peer else ""
            )
            mine = client.call(
                prepared.initiator.party,
                client.party_stub(prepared.initiator.party).RunAggregate,
                request,
                timeout=3600,
            )
            self.store.update_job(job.id, progress=0.8)
            total = wire.from_message(mine.values)
            if prepared.peer is not None:
                theirs = client.call(
                    prepared.peer.party,
                    client.party_stub(prepared.peer.party).GetResultShare,
                    party_pb2.ResultRequest(session_id=mine.session_id),
                    timeout=60,
                )
                total = total + wire.from_message(theirs.values)
            result = self._release(prepared, ring.decode(total), int(mine.rows))
        except Exception as exc:  # whatever failed, nothing was released: refund, and say why
            self.store.refund(job.researcher, project.name, job.epsilon)
            self.store.update_job(job.id, status="failed", progress=1.0, error=str(exc)[:1000])
            self._record(job.researcher, project, prepared, "FAILED", f"job={job.id} refunded: {str(exc)[:300]}")
        else:
            self.store.update_job(job.id, status="done", progress=1.0, result=result)
            suppressed = sum(1 for r in result["rows"] if r["suppressed"])
            self._record(
                job.researcher,
                project,
                prepared,
                "RELEASED",
                f"job={job.id} cells released={len(result['rows']) - suppressed} suppressed={suppressed}",
            )
        finally:
            client.close()
            if on_done is not None:
                on_done(job.id)

    def _release(self, prepared: Prepared, noisy: np.ndarray, rows: int) -> dict[str, Any]:
        """Rows of released cells: the group's keys, then COUNT / SUM / MEAN, or the mark of a
        withheld cell (noisy count under the minimum cell size); each value with its 95 %
        interval (``intervals``), and the means clamped to the column's bounds named in
        ``clamped``."""
        request = prepared.request
        keys = [prepared.label(k) for k in request.group_by]
        names = {
            a.name: "count" if a.column is None else f"{a.kind}({prepared.label(a.column)})" for a in request.aggregates
        }
        cells, withheld = request.cells(), privacy.suppressed(noisy[:, 0], self.config.gateway.min_cell)
        errors = prepared.errors()
        out = []
        for g, group in enumerate(prepared.groups):
            cell = dict(zip(cells, noisy[g].tolist(), strict=True))
            row: dict[str, Any] = {
                **dict(zip(keys, group, strict=True)),
                "suppressed": bool(withheld[g]),
                "intervals": {},
                "clamped": [],
            }
            for aggregate in request.aggregates:
                label = names[aggregate.name]
                if withheld[g]:
                    row[label] = None
                    continue
                kind = "count" if aggregate.column is None else f"sum({aggregate.column})"
                if aggregate.kind != "mean":
                    row[label] = cell[kind]
                    row["intervals"][label] = [cell[kind] - errors[kind], cell[kind] + errors[kind]]
                    continue
                assert aggregate.column is not None
                bounds = prepared.schemas[aggregate.column.side][aggregate.column.column].bounds()
                mean, interval, clamped = privacy.mean_interval(
                    cell[kind], errors[kind], cell["count"], errors["count"], bounds
                )
                row[label] = None if mean is None else round(mean, 6)
                if interval is not None:
                    row["intervals"][label] = [round(interval[0], 6), round(interval[1], 6)]
                if clamped:
                    row["clamped"].append(label)
            out.append(row)
        columns = [*keys, *names.values()]
        return {
            "columns": columns,
            "rows": out,
            "epsilon": prepared.cost,
            "min_cell": self.config.gateway.min_cell,
            "confidence": privacy.CONFIDENCE,
            "noise_scales": {m.cell: m.scale for m in prepared.measurements},
            "errors": errors,
            "warnings": prepared.warnings(),
        }

    def _record(self, researcher: str, project: Project, prepared: Prepared, outcome: str, detail: str) -> None:
        self.audit.append(
            AuditEvent(
                peer=researcher,
                action="query",
                purpose=project.purpose,
                case=project.name,
                protocol="P5",
                rows=len(prepared.groups),
                outcome=outcome,
                detail=f"{detail} cost={prepared.cost:g} sql={prepared.sql[:300]}",
            )
        )


def _info(column: party_pb2.ColumnSchema) -> agg.ColumnInfo:
    if column.type == "category":
        return agg.ColumnInfo("category", labels=tuple(column.categories))
    return agg.ColumnInfo(
        column.type, column.min if column.has_bounds else None, column.max if column.has_bounds else None
    )


def quoted(table: str) -> str:
    """``party.dataset`` as the SQL must spell it: a part that is not a plain identifier (such as
    ``civil-affairs``) in double quotes."""
    return ".".join(part if re.fullmatch(r"[a-z_][a-z0-9_]*", part) else f'"{part}"' for part in table.split("."))


def _examples(table: dict[str, Any], others: list[dict[str, Any]]) -> list[str]:
    """Queries over ``table`` that are valid as written: a count per group (or in all), and a join
    with each other available table of the same join key, summing a column the project may sum."""
    columns = table["columns"]
    key = next((c["name"] for c in columns if "group_by" in c["uses"]), None)
    single = (
        f"SELECT a.{key}, COUNT(*) FROM {quoted(table['table'])} a GROUP BY a.{key}"
        if key
        else f"SELECT COUNT(*) FROM {quoted(table['table'])} a"
    )
    out = [single]
    for other in others:
        if not other["available"] or other["join_key"] != table["join_key"]:
            continue
        summed = next((c["name"] for c in other["columns"] if "aggregate" in c["uses"]), None)
        measure = f"COUNT(*), SUM(b.{summed})" if summed else "COUNT(*)"
        grouping = (f"a.{key}, ", f" GROUP BY a.{key}") if key else ("", "")
        out.append(
            f"SELECT {grouping[0]}{measure} FROM {quoted(table['table'])} a JOIN {quoted(other['table'])} b "
            f"USING ({table['join_key']}){grouping[1]}"
        )
    return out
