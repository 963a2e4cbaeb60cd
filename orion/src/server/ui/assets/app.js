// orion dashboard: actions through the API, the Custom Run form, live logs and self-refreshing
// lists. Polls only while the tab is visible, so an idle tab costs nothing.
"use strict";

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (method !== "GET") {
    // The server takes only JSON posts: a form from another site can never act here.
    init.headers["Content-Type"] = "application/json";
    init.body = body === undefined ? "{}" : typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (!response.ok) {
    const error = new Error((data && data.detail) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function after(then, result) {
  if (then === "run" && result && result.id) location.href = "/runs/" + result.id;
  else location.reload();
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-post], button[data-patch]");
  if (!button) return;
  event.preventDefault();
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const method = button.dataset.post ? "POST" : "PATCH";
    const url = button.dataset.post || button.dataset.patch;
    const result = await api(method, url, button.dataset.body || (method === "PATCH" ? "{}" : undefined));
    if (result && result.status === "ABORT") throw new Error(result.details.reason);
    after(button.dataset.then, result);
  } catch (e) {
    button.disabled = false;
    alert(e.message);
  }
});

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.matches("form.inline[data-patch]")) {
    event.preventDefault();
    const input = form.querySelector("input");
    const field = form.dataset.field;
    const value = input.value.trim() === "" ? null : Number(input.value);
    try {
      await api("PATCH", form.dataset.patch, { [field]: value });
      location.reload();
    } catch (e) { alert(e.message); }
    return;
  }
  if (!form.matches("form.custom-run")) return;
  event.preventDefault();
  form.querySelectorAll(".field-error, .form-error").forEach((e) => (e.textContent = ""));
  const parameters = {};
  let bad = false;
  for (const input of form.querySelectorAll("input[name]")) {
    if (input.dataset.kind === "text") { parameters[input.name] = input.value; continue; }
    if (input.value.trim() === "") continue;
    try { parameters[input.name] = JSON.parse(input.value); } catch (_) {
      form.querySelector(`.field-error[data-for="${input.name}"]`).textContent = "not valid JSON: " + input.value;
      bad = true;
    }
  }
  if (bad) return;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const run = await api("POST", `/api/deployments/${form.dataset.deployment}/create_flow_run`, { parameters });
    location.href = "/runs/" + run.id;
  } catch (e) {
    button.disabled = false;
    const named = /parameter '([^']+)'/.exec(e.message);
    const slot = named && form.querySelector(`.field-error[data-for="${named[1]}"]`);
    (slot || form.querySelector(".form-error")).textContent = e.message;
  }
});

function visible() { return document.visibilityState === "visible"; }

// Times: the server writes them in UTC; shown here in the browser's time zone, the UTC time
// kept as the tooltip.
const pad = (n, width = 2) => String(n).padStart(width, "0");
function local(iso, form) {
  // Nanoseconds cut to milliseconds, which every browser parses.
  const d = new Date(iso.replace(/(\.\d{3})\d+/, "$1"));
  if (isNaN(d)) return null;
  const minutes = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (form === "minutes") return minutes;
  const seconds = `${minutes}:${pad(d.getSeconds())}`;
  if (form === "clock") return `${seconds}.${pad(d.getMilliseconds(), 3)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${seconds}`;
}
function localize(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const text = local(t.getAttribute("datetime"), t.dataset.form);
    if (text === null || t.dataset.local) continue;
    t.title = t.textContent + (t.dataset.form === "clock" ? " UTC" : "");
    t.textContent = text;
    t.dataset.local = "1";
  }
  // The chart's bars say which bucket they are in their tooltips.
  for (const title of root.querySelectorAll("title[data-at]")) {
    const minutes = local(title.dataset.at, "minutes");
    if (minutes !== null) title.textContent = title.textContent.replace(/^\d\d:\d\d UTC/, minutes);
  }
}
localize(document);

// Live logs: new lines are appended while the run is not final; the page reloads once when
// it ends, to show its final state and task runs.
const logs = document.getElementById("logs");
if (logs && logs.dataset.live === "true") {
  const run = logs.dataset.run;
  let shown = logs.querySelectorAll(".log").length;
  const tick = async () => {
    if (!visible()) return;
    try {
      // Only the lines after those shown.
      const lines = await api("POST", "/api/logs/filter", { logs: { flow_run_id: { any_: [run] } }, offset: shown });
      const empty = logs.querySelector(".empty");
      for (const l of lines) {
        if (empty) empty.remove();
        const div = document.createElement("div");
        div.className = "log " + l.level.toLowerCase();
        const t = document.createElement("time");
        t.dateTime = l.timestamp; t.dataset.form = "clock"; t.textContent = l.timestamp.slice(11, 23);
        const b = document.createElement("b"); b.textContent = l.level;
        const s = document.createElement("span"); s.className = "muted"; s.textContent = l.name;
        div.append(t, " ", b, " ", s, " ", l.message);
        localize(div);
        logs.append(div);
      }
      shown += lines.length;
      const flowRun = await api("GET", "/api/flow_runs/" + run);
      const final = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"].includes(flowRun.state && flowRun.state.type);
      if (final) { clearInterval(timer); location.reload(); }
    } catch (_) { /* the next tick tries again */ }
  };
  const timer = setInterval(tick, 1000);
}

// Lists that refresh themselves (the runs page), swapped in place while visible.
const refreshing = document.querySelector("[data-refresh]");
if (refreshing) {
  setInterval(async () => {
    if (!visible() || document.activeElement.closest("form")) return;
    try {
      const response = await fetch(location.href);
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.querySelector("[data-refresh]");
      if (fresh) { refreshing.innerHTML = fresh.innerHTML; localize(refreshing); }
    } catch (_) { /* next time */ }
  }, Number(refreshing.dataset.refresh));
}
