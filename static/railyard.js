// The dashboard's behaviour: live run pages and run lists, charts, copy buttons. No build step.
"use strict";

function drawCharts(specs) {
  const box = document.getElementById("charts");
  if (!box || !window.Plotly) return;
  // Lay out every card first, so that each chart is drawn at the width it will keep.
  const plots = specs.map((spec, i) => {
    const card = document.createElement("div");
    card.className = "card chart";
    const plot = document.createElement("div");
    plot.id = "chart-" + i;
    card.appendChild(plot);
    return plot;
  });
  box.replaceChildren(...plots.map((plot) => plot.parentElement));
  plots.forEach((plot, i) => {
    Plotly.newPlot(plot, specs[i].data, specs[i].layout, {displaylogo: false, responsive: true});
  });
}

function setBadge(badge, status) {
  badge.className = "badge status-" + status;
  badge.textContent = status;
}

function followRun(root) {
  const url = root.dataset.liveUrl;
  const badge = document.getElementById("status-badge");
  const bar = document.getElementById("stage-progress");
  const stage = document.getElementById("stage-label");
  const log = document.getElementById("log");
  const message = document.getElementById("status-message");
  const failure = document.getElementById("failure");
  const timer = setInterval(async () => {
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    if (!response.ok) return;
    const run = await response.json();
    setBadge(badge, run.status);
    bar.value = run.progress;
    stage.textContent = run.stage ? `${run.stage} (${run.progress}%)` : "waiting to start";
    const left = document.getElementById("time-left");
    left.hidden = !run.time_left;
    if (run.time_left) {
      const n = run.time_left.runs;
      left.textContent = `About ${run.time_left.seconds} s left (from ${n} earlier run${n === 1 ? "" : "s"} of this workflow on a similar number of rows).`;
    }
    log.textContent = run.log || "No log yet.";
    message.textContent = run.status_message;
    message.hidden = !run.status_message;
    if (run.is_active) return;
    clearInterval(timer);
    document.getElementById("progress").hidden = true;
    document.querySelectorAll("[data-while-active]").forEach((el) => el.remove());
    failure.hidden = !run.failure_reason;
    failure.querySelector("span").textContent = run.failure_reason;
    document.getElementById("results").innerHTML = run.results_html;
    drawCharts(run.charts);
  }, 1500);
}

function followRunList(table) {
  const url = table.dataset.statusesUrl;
  const timer = setInterval(async () => {
    const rows = [...table.querySelectorAll("tr[data-active]")];
    if (!rows.length) return clearInterval(timer);
    const ids = rows.map((row) => row.dataset.runId).join(",");
    const response = await fetch(`${url}?ids=${ids}`, {headers: {Accept: "application/json"}});
    if (!response.ok) return;
    const statuses = await response.json();
    rows.forEach((row) => {
      const status = statuses[row.dataset.runId];
      if (!status) return;
      setBadge(row.querySelector(".badge"), status);
      if (!["queued", "submitted", "running"].includes(status)) row.removeAttribute("data-active");
    });
  }, 2000);
}

function setupLaunchForm(button) {
  const field = (name) => document.getElementById("id_" + name);
  const picker = document.getElementById("column-picker");
  const status = document.getElementById("columns-status");
  const [label, date, features] = ["pick-label", "pick-date", "pick-features"].map((id) => document.getElementById(id));
  const option = (value, text, selected) => new Option(text, value, selected, selected);

  // Features and a label from other (joined) sources are not in these lists: keep them as they are.
  let fromOtherSources = {features: [], label: ""};

  function write() {
    const chosen = [...features.selectedOptions].map((o) => o.value);
    const labelHere = fromOtherSources.label ? "" : label.value;
    field("label").value = fromOtherSources.label || label.value;
    field("date_column").value = date.value;
    field("classifier_features").value = [...chosen, ...fromOtherSources.features].join(", ");
    field("names").value = [...new Set([date.value, ...chosen, labelHere, ...joinKeys()].filter(Boolean))]
      .join(", ");
  }

  // The keys other sources join on must stay among this source's columns.
  function joinKeys() {
    try {
      return JSON.parse(field("extra_sources").value || "[]").flatMap((s) => [].concat(s.join_on || []));
    } catch (error) {
      return [];
    }
  }

  button.addEventListener("click", async () => {
    const params = new URLSearchParams({source: field("source_kind").value, format: field("source_format").value,
                                        path: field("source_path").value, project: field("project").value});
    status.textContent = "Reading columns…";
    const response = await fetch(`${button.dataset.url}?${params}`, {headers: {Accept: "application/json"}});
    const body = await response.json();
    if (!response.ok) {
      status.textContent = body.error;
      picker.hidden = true;
      return;
    }
    const current = {label: field("label").value, date: field("date_column").value,
                     features: field("classifier_features").value.split(",").map((s) => s.trim()).filter(Boolean)};
    const here = new Set(body.columns.map((c) => c.name));
    fromOtherSources = {features: current.features.filter((f) => !here.has(f)),
                        label: current.label && !here.has(current.label) ? current.label : ""};
    label.replaceChildren(...body.columns.map((c) => option(c.name, `${c.name} (${c.type})`, c.name === current.label)));
    date.replaceChildren(option("", "none", !current.date),
                         ...body.columns.map((c) => option(c.name, `${c.name} (${c.type})`, c.name === current.date)));
    features.replaceChildren(...body.columns.map((c) => option(c.name, `${c.name} (${c.type})`,
                                                                  current.features.includes(c.name))));
    status.textContent = `${body.columns.length} columns.`;
    picker.hidden = false;
    write();
    button.dispatchEvent(new CustomEvent("columns-read", {detail: body.columns.map((c) => c.name)}));
  });
  [label, date, features].forEach((select) => select.addEventListener("change", write));

  // Filters as rows (column, predicate, value), written to the filters field as the request's JSON.
  const rows = document.getElementById("filter-rows");
  // The request's words come from the server (railyard_trainer.vocabulary), never repeated here.
  const vocabulary = JSON.parse(document.getElementById("railyard-vocabulary")?.textContent || "{}");
  const predicates = vocabulary.predicates || [];
  let columnNames = [];

  function parseValue(predicate, text) {
    if ((vocabulary.valueless_predicates || []).includes(predicate)) return undefined;
    const one = (v) => (v.trim() !== "" && !isNaN(Number(v)) ? Number(v) : v.trim());
    return (vocabulary.list_predicates || []).includes(predicate) ? text.split(",").map(one) : one(text);
  }

  function writeFilters() {
    const filters = [...rows.children].map((row) => {
      const [column, predicate, value] = row.querySelectorAll("select, input");
      const filter = {feature_name: column.value, predicate: predicate.value};
      const parsed = parseValue(predicate.value, value.value);
      if (parsed !== undefined) filter.feature_value = parsed;
      return filter;
    });
    field("filters").value = JSON.stringify(filters);
  }

  function addFilterRow(filter = {}) {
    const row = document.createElement("div");
    row.className = "filter-row";
    const n = rows.children.length + 1;
    const column = document.createElement("select");
    column.setAttribute("aria-label", `Filter ${n} column`);
    column.replaceChildren(...columnNames.map((name) => option(name, name, name === filter.feature_name)));
    const predicate = document.createElement("select");
    predicate.setAttribute("aria-label", `Filter ${n} predicate`);
    predicate.replaceChildren(...predicates.map((p) => option(p, p, p === filter.predicate)));
    const value = document.createElement("input");
    value.setAttribute("aria-label", `Filter ${n} value`);
    value.value = filter.feature_value === undefined ? "" : [].concat(filter.feature_value).join(", ");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => { row.remove(); writeFilters(); });
    row.append(column, predicate, value, remove);
    [column, predicate, value].forEach((el) => el.addEventListener("change", writeFilters));
    rows.appendChild(row);
  }

  document.getElementById("add-filter").addEventListener("click", () => { addFilterRow(); writeFilters(); });
  button.addEventListener("columns-read", (event) => {
    columnNames = event.detail;
    let existing = [];
    try {
      existing = JSON.parse(field("filters").value || "[]");
    } catch (error) {
      existing = [];
    }
    rows.replaceChildren();
    existing.forEach((filter) => addFilterRow(filter));
  });

  const catalogue = JSON.parse(document.getElementById("workflow-catalogue").textContent);
  const info = document.getElementById("workflow-info");
  const describe = () => {
    const workflow = catalogue[field("workflow_name").value];
    info.textContent = workflow ? `${workflow.description} Task: ${workflow.task}. Defaults: ` +
      `${JSON.stringify(workflow.default_params)}.` : "";
  };
  field("workflow_name").addEventListener("change", describe);
  describe();
}

document.addEventListener("DOMContentLoaded", () => {
  const readColumns = document.getElementById("read-columns");
  if (readColumns) setupLaunchForm(readColumns);
  const specs = document.getElementById("chart-specs");
  if (specs) drawCharts(JSON.parse(specs.textContent));
  const run = document.querySelector("[data-live-url]");
  if (run && run.dataset.active === "true") followRun(run);
  const table = document.querySelector("table[data-statuses-url]");
  if (table) followRunList(table);
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(document.getElementById(button.dataset.copy).textContent);
      button.textContent = "Copied";
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
});
