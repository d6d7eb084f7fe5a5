// The researcher portal: sign in with a token, browse what the project may use (schemas and uses,
// never values), see the budget, preview and run a query, follow the job, view the cells.
"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("token") || "";

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.detail || {};
    const why = typeof detail === "string" ? detail : [detail.reason, detail.fragment].filter(Boolean).join(": ");
    const left = detail.budget_left ? ` (left: researcher ${detail.budget_left.researcher}, project ${detail.budget_left.project})` : "";
    throw new Error((why || `HTTP ${response.status}`) + left);
  }
  return body;
}

function cell(row, tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  row.appendChild(element);
}

async function signIn() {
  token = $("token").value.trim() || token;
  try {
    const me = await api("/api/me");
    sessionStorage.setItem("token", token);
    $("who").textContent = `signed in as ${me.researcher}`;
    $("signin").hidden = true;
    $("workspace").hidden = false;
    const select = $("project");
    select.innerHTML = "";
    for (const project of me.projects) {
      const option = document.createElement("option");
      option.value = project.name;
      option.textContent = `${project.name} (${project.purpose})`;
      select.appendChild(option);
    }
    await loadProject();
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
}

async function loadBudget() {
  const budget = await api(`/api/projects/${encodeURIComponent($("project").value)}/budget`);
  $("budget-researcher").textContent = budget.researcher.toFixed(3);
  $("budget-project").textContent = budget.project.toFixed(3);
}

async function loadProject() {
  const project = $("project").value;
  if (!project) return;
  await loadBudget();
  const tables = await api(`/api/projects/${encodeURIComponent(project)}/datasets`);
  const catalog = $("catalog");
  catalog.innerHTML = "";
  for (const table of tables) {
    const heading = document.createElement("h3");
    heading.textContent = table.available ? `${table.table} — ${table.description}` : `${table.table} (unavailable: ${table.reason})`;
    catalog.appendChild(heading);
    const grid = document.createElement("table");
    grid.className = "columns";
    const head = grid.insertRow();
    for (const title of ["column", "type", "bounds", "classification", "allowed uses"]) cell(head, "th", title);
    for (const column of table.columns) {
      const row = grid.insertRow();
      cell(row, "td", column.name);
      cell(row, "td", column.type);
      cell(row, "td", column.min !== null ? `${column.min} … ${column.max}` : column.values.length ? `${column.values.length} values` : "");
      cell(row, "td", column.classification);
      cell(row, "td", column.uses.join(", "));
    }
    catalog.appendChild(grid);
  }
  if (!$("sql").value && tables.length) {
    const first = tables.find((t) => t.available);
    if (first) {
      const key = first.columns.find((c) => c.uses.includes("group_by"));
      $("sql").value = key ? `SELECT t.${key.name}, COUNT(*) FROM ${first.table} t GROUP BY t.${key.name}` : `SELECT COUNT(*) FROM ${first.table} t`;
    }
  }
}

function query() {
  return { sql: $("sql").value, epsilon: parseFloat($("epsilon").value) };
}

async function preview() {
  try {
    const cost = await api(`/api/projects/${encodeURIComponent($("project").value)}/preview`, { method: "POST", body: JSON.stringify(query()) });
    const errors = Object.entries(cost.errors).map(([cell, error]) => `${cell} ±${error.toLocaleString()}`).join(", ");
    $("query-message").textContent = `cost ε ${cost.cost.toFixed(3)} for ${cost.groups} groups; ` +
      (cost.affordable ? "your budget covers it" : "your budget does not cover it") +
      `. Expected error (95 %) per released cell: ${errors}.` +
      cost.warnings.map((warning) => ` Warning: ${warning}.`).join("");
    $("query-message").className = cost.affordable && !cost.warnings.length ? "" : "error";
  } catch (error) {
    $("query-message").textContent = error.message;
    $("query-message").className = "error";
  }
}

async function run() {
  try {
    let job = await api(`/api/projects/${encodeURIComponent($("project").value)}/queries`, { method: "POST", body: JSON.stringify(query()) });
    $("query-message").textContent = `job ${job.id}: ${job.status}`;
    $("query-message").className = "";
    $("progress").hidden = false;
    while (job.status === "queued" || job.status === "running") {
      $("progress").value = job.progress;
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await api(`/api/jobs/${job.id}`);
      $("query-message").textContent = `job ${job.id}: ${job.status}`;
    }
    $("progress").value = 1;
    await loadBudget();
    if (job.status === "failed") throw new Error(job.error || "the job failed");
    show(job);
  } catch (error) {
    $("query-message").textContent = error.message;
    $("query-message").className = "error";
  }
}

function show(job) {
  const result = job.result;
  $("result").hidden = false;
  $("result-note").textContent = `ε ${result.epsilon.toFixed(3)} spent; each value ± its 95 % interval (both owners' noise); ` +
    `cells with a noisy count under ${result.min_cell} are withheld (marked); means outside the column's bounds are clamped (marked).` +
    result.warnings.map((warning) => ` Warning: ${warning}.`).join("");
  const grid = $("result-table");
  grid.innerHTML = "";
  const head = grid.insertRow();
  for (const column of result.columns) cell(head, "th", column);
  cell(head, "th", "released");
  for (const row of result.rows) {
    const line = grid.insertRow();
    if (row.suppressed) line.className = "suppressed";
    for (const column of result.columns) {
      const value = row[column];
      const interval = row.intervals && row.intervals[column];
      let text = value === null ? "withheld" : typeof value === "number" ? value.toLocaleString() : String(value);
      if (value !== null && interval) text += ` [${interval[0].toLocaleString()} … ${interval[1].toLocaleString()}]`;
      if (row.clamped && row.clamped.includes(column)) text += " (clamped)";
      cell(line, "td", text);
    }
    cell(line, "td", row.suppressed ? "suppressed" : "yes");
  }
  chart(result);
}

function chart(result) {
  const svg = $("chart");
  svg.innerHTML = "";
  const keys = result.columns.filter((c) => !/^(count|sum\(|mean\()/.test(c));
  const measure = result.columns.find((c) => !keys.includes(c));
  const rows = result.rows.filter((r) => !r.suppressed);
  if (!measure || !rows.length) return;
  const top = Math.max(...rows.map((r) => Math.abs(r[measure])), 1);
  const width = Math.max(8, Math.floor(680 / rows.length) - 4);
  rows.forEach((row, i) => {
    const height = Math.round((Math.abs(row[measure]) / top) * 200);
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    bar.setAttribute("x", 30 + i * (width + 4));
    bar.setAttribute("y", 220 - height);
    bar.setAttribute("width", width);
    bar.setAttribute("height", height);
    bar.setAttribute("data-group", keys.map((k) => row[k]).join(" / "));
    svg.appendChild(bar);
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", 30 + i * (width + 4));
    label.setAttribute("y", 236);
    label.textContent = keys.map((k) => row[k]).join("/").slice(0, 8);
    svg.appendChild(label);
  });
  const title = document.createElementNS("http://www.w3.org/2000/svg", "text");
  title.setAttribute("x", 30);
  title.setAttribute("y", 14);
  title.textContent = measure;
  svg.appendChild(title);
}

$("signin-button").addEventListener("click", signIn);
$("project").addEventListener("change", loadProject);
$("preview-button").addEventListener("click", preview);
$("run-button").addEventListener("click", run);
if (token) signIn();
