"use strict";
const state = { item: null, rows: [], categories: [], hits: [], active: 0, busy: false };
async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify(body) });
function say(message, ok) { const s = $("#status"); s.textContent = message || ""; s.className = ok ? "ok" : ""; }
function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1).replace(/^"|"$/g, "")) : "";
}
const labeller = () => cookie("prodcat_labeller");

function askName() {
  $("#who").classList.add("show");
  $("#whoname").focus();
  document.body.dataset.state = "name";
}
$("#whoform").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await post("/labeller", { name: $("#whoname").value });
    $("#who").classList.remove("show");
    $("#whoname").blur();
    await next();
  } catch (err) { alert(err.message); }
});

let waiting = null;
async function next() {
  clearTimeout(waiting);
  $("#labeller").textContent = labeller() || "–";
  document.body.dataset.state = "loading";
  try {
    const r = await api("/next");
    $("#done").textContent = r.labelled; $("#queue").textContent = r.queue;
    state.item = r.request;
    state.rows = r.request ? r.request.categories.map((c) => Object.assign({ mark: null }, c)) : [];
    render();
    if (!r.request) {
      say(r.reader_error ? "Kafka: " + r.reader_error : "");
      waiting = setTimeout(next, 2000);
    }
    document.body.dataset.state = r.request ? "ready" : "empty";
  } catch (e) { say(e.message); document.body.dataset.state = "error"; waiting = setTimeout(next, 3000); }
  stats();
}

function render() {
  const p = state.item;
  if (!p) {
    $("#productpanel").replaceChildren(el("div", { class: "empty", text: "Nothing to label right now; waiting for requests…" }));
    $("#cats").replaceChildren();
    return;
  }
  const box = el("div", { class: "thumb" });
  if (p.has_image) {
    const img = el("img", { src: "/images/" + encodeURIComponent(p.id), alt: "" });
    img.addEventListener("error", () => box.replaceChildren(el("span", { class: "noimg", text: "image unavailable" })));
    box.append(img);
  } else box.append(el("span", { class: "noimg", text: "no image" }));
  const meta = (label, value) => value ? el("div", { class: "meta" }, label + " ", el("b", { text: value })) : null;
  $("#productpanel").replaceChildren(el("div", { id: "product", "data-id": p.id }, box,
    el("div", {}, el("h2", { text: p.title || "(no title)" }), meta("brand", p.brand), meta("feed category", p.raw_category),
      meta("id", p.id), el("div", { class: "desc", text: p.description || "" }),
      p.reason ? el("div", { class: "why", text: "asked because " + p.reason + (p.model_version ? " · model " + p.model_version : "") }) : null)));
  renderRows();
}

function renderRows() {
  const marks = { true: "✓ yes", false: "✗ no" };
  $("#cats").replaceChildren(...state.rows.map((c, i) => el("li", {
      class: c.mark === true ? "yes" : c.mark === false ? "no" : "", "data-id": c.id, onclick: () => toggle(i) },
    el("span", { class: "n", text: i < 9 ? String(i + 1) : "·" }),
    el("span", { class: "name" }, c.name, c.added ? el("span", { class: "tag", text: "  (added)" }) : null,
      c.decided ? el("span", { class: "tag", text: "  model: yes" }) : null,
      c.why && c.why.length ? el("div", { class: "rule", text: "rules: " + c.why.join(", ") }) : null),
    c.added ? null : el("span", { class: "bar" }, el("div", { style: "width:" + Math.round(100 * c.score) + "%" })),
    c.added ? null : el("span", { class: "score", text: c.score.toFixed(2) }),
    el("span", { class: "mark", text: marks[c.mark] || "–" }))));
  if (!state.rows.length) $("#cats").append(el("li", { class: "empty", text: "the model proposed nothing: add categories with /" }));
}

function toggle(i) {
  const row = state.rows[i];
  if (!row || !row.known) { if (row) say("category " + row.id + " is not in this taxonomy"); return; }
  row.mark = row.mark === null ? true : row.mark === true ? false : null;
  renderRows();
}

async function submit() {
  if (!state.item || state.busy) return;
  const decisions = state.rows.filter((r) => r.mark !== null).map((r) => ({ category: r.id, positive: r.mark }));
  if (!decisions.length) { say("nothing decided: press 1-9 or add a category with /, or s to skip"); return; }
  state.busy = true;
  try {
    const r = await post("/labels", { product_id: state.item.id, decisions });
    say(`${r.published} label(s) sent for ${state.item.id}`, true);
    await next();
  } catch (e) { say("not sent: " + e.message); }
  finally { state.busy = false; }
}

async function skip() {
  if (!state.item) return;
  try { await post("/skip", { product_id: state.item.id }); say("skipped " + state.item.id, true); await next(); }
  catch (e) { say(e.message); }
}

// --- the searchable category tree ---------------------------------------------------------
function filterTree(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  const list = $("#treelist");
  state.hits = []; state.active = 0;
  if (!words.length) { list.replaceChildren(); return; }
  const shown = new Map();
  for (const c of state.categories) {
    const path = c.path.join(" > ").toLowerCase();
    if (!words.every((w) => path.includes(w))) continue;
    state.hits.push(c);
    for (let d = 1; d < c.path.length; d++) {
      const key = c.path.slice(0, d).join(" > ");
      if (!shown.has(key)) shown.set(key, { label: c.path[d - 1], depth: d - 1, hit: null });
    }
    shown.set(c.path.join(" > "), { label: c.path[c.path.length - 1], depth: c.path.length - 1, hit: c });
    if (state.hits.length >= 60) break;
  }
  const rows = [...shown.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  state.hits = rows.filter(([, v]) => v.hit).map(([, v]) => v.hit);
  list.replaceChildren(...rows.map(([key, v]) => el("li", {
      class: v.hit ? "hit" : "ctx", "data-id": v.hit ? v.hit.id : "", title: key,
      style: "padding-left:" + (6 + 16 * v.depth) + "px",
      onmousedown: v.hit ? (e) => { e.preventDefault(); addCategory(v.hit); } : null }, v.label)));
  if (!rows.length) list.append(el("li", { class: "ctx", text: "no category matches" }));
  highlight();
}
function highlight() {
  const hits = [...document.querySelectorAll("#treelist li.hit")];
  hits.forEach((li, i) => li.classList.toggle("active", i === state.active));
  if (hits[state.active]) hits[state.active].scrollIntoView({ block: "nearest" });
}
function addCategory(c) {
  if (!state.item) return;
  const existing = state.rows.find((r) => r.id === c.id);
  if (existing) existing.mark = true;
  else state.rows.push({ id: c.id, name: c.path.join(" > "), known: true, score: 0, added: true, mark: true, why: [] });
  renderRows();
  $("#search").value = ""; filterTree(""); $("#search").blur();
  say("added " + c.path.join(" > "), true);
}
$("#search").addEventListener("input", (e) => filterTree(e.target.value));
$("#search").addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const n = state.hits.length;
    if (n) { state.active = (state.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n; highlight(); }
  } else if (e.key === "Enter") {
    e.preventDefault(); e.stopPropagation();
    if (state.hits[state.active]) addCategory(state.hits[state.active]);
  } else if (e.key === "Escape") { $("#search").value = ""; filterTree(""); $("#search").blur(); }
});

document.addEventListener("keydown", (e) => {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName) || $("#who").classList.contains("show")) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) { e.preventDefault(); toggle(Number(e.key) - 1); }
  else if (e.key === "/") { e.preventDefault(); $("#search").focus(); }
  else if (e.key === "Enter") { e.preventDefault(); submit(); }
  else if (e.key === "s") { e.preventDefault(); skip(); }
});

async function stats() {
  try {
    const s = await api("/stats");
    const names = new Set([...Object.keys(s.published), ...Object.keys(s.stored || {})]);
    const rows = [...names].map((n) => el("tr", {}, el("td", { text: n }),
      el("td", { class: "num", title: "sent by this tool", text: s.published[n] || 0 }),
      el("td", { class: "num", title: "stored in total", text: s.stored ? (s.stored[n] || 0) : "" })));
    $("#stats tbody").replaceChildren(el("tr", {}, el("td", { class: "keys", text: "labeller" }),
      el("td", { class: "num keys", text: "session" }), el("td", { class: "num keys", text: s.stored ? "stored" : "" })),
      ...rows);
  } catch (e) { /* stats are optional */ }
}

(async () => {
  try { state.categories = await api("/categories"); } catch (e) { say(e.message); }
  if (labeller()) await next(); else askName();
})();
