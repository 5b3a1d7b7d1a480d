"use strict";
const state = { query: null, neighbours: [], marks: {}, cursor: 0 };
function thumb(id, cls) {
  const box = el("div", { class: "thumb " + (cls || "") });
  const img = el("img", { src: "/images/" + encodeURIComponent(id), alt: "", loading: "lazy" });
  img.addEventListener("error", () => box.replaceChildren(el("span", { class: "noimg", text: "no image" })));
  box.append(img);
  return box;
}
async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function say(message) { $("#status").textContent = message || ""; }
const judge = () => $("#judge").value.trim() || "anonymous";
const k = () => Number($("#k").value);

async function search(text) {
  const list = $("#results");
  if (!text.trim()) { list.replaceChildren(); return; }
  try {
    const found = await api("/products?q=" + encodeURIComponent(text.trim()));
    list.replaceChildren(...found.map((p) => el("li", {}, el("button", { onclick: () => pick(p.id) },
      el("span", { class: "rid", text: p.id }), el("span", { class: "rtitle", text: p.title })))));
    if (!found.length) list.replaceChildren(el("li", { class: "empty", text: "no match" }));
  } catch (e) { say(e.message); }
}

async function pick(id) {
  say("");
  if (document.activeElement) document.activeElement.blur();
  document.body.dataset.state = "loading";
  try {
    const everywhere = $("#everywhere").checked ? 1 : 0;
    const [query, neighbours, marks] = await Promise.all([
      api("/products/" + encodeURIComponent(id)),
      api(`/similar/${encodeURIComponent(id)}?k=${k()}&everywhere=${everywhere}`),
      api(`/judgements?query_id=${encodeURIComponent(id)}&judge=${encodeURIComponent(judge())}`),
    ]);
    state.query = query; state.neighbours = neighbours; state.cursor = 0;
    state.marks = Object.fromEntries(marks.map((m) => [m.neighbour_id, m.good]));
    render();
    document.body.dataset.state = "ready";
  } catch (e) { say(e.message); document.body.dataset.state = "error"; }
}

function render() {
  const q = state.query;
  $("#querypanel").replaceChildren(el("div", { id: "query" }, thumb(q.id),
    el("div", {}, el("h2", { text: q.title || q.id }),
      el("div", { class: "cat", text: (q.category || q.level2 || "") + "  ·  id " + q.id }),
      el("span", { class: "pill", text: q.level2_name || q.level2 || "not indexed" }),
      el("div", { class: "progress" }, el("div", { id: "progressbar" })),
      el("div", { class: "keys", id: "progresstext" }))));
  const where = $("#everywhere").checked ? "in all categories" : "in " + (q.level2_name || q.level2 || "?");
  $("#gridtitle").textContent = `${state.neighbours.length} most similar ${where}`;
  $("#grid").replaceChildren(...state.neighbours.map((n, i) => card(n, i)));
  update();
}

function card(n, i) {
  return el("div", { class: "card", "data-rank": n.rank, "data-id": n.id, onclick: () => select(i) },
    thumb(n.id), el("span", { class: "rank", text: "#" + n.rank }),
    el("span", { class: "score", text: n.score.toFixed(3) }),
    el("div", { class: "id", text: n.id }), el("div", { class: "title", text: n.title, title: n.title }),
    el("div", { class: "l2" + (n.level2 === state.query.level2 ? "" : " other"), text: n.level2_name || n.level2 }),
    el("div", { class: "actions" },
      el("button", { class: "g", title: "good (g)", onclick: (e) => { e.stopPropagation(); mark(i, true); } }, "✓ good"),
      el("button", { class: "b", title: "bad (b)", onclick: (e) => { e.stopPropagation(); mark(i, false); } }, "✗ bad")));
}

function update() {
  const cards = document.querySelectorAll("#grid .card");
  cards.forEach((c, i) => {
    const m = state.marks[state.neighbours[i].id];
    c.classList.toggle("selected", i === state.cursor);
    c.classList.toggle("good", m === true);
    c.classList.toggle("bad", m === false);
  });
  const judged = state.neighbours.filter((n) => n.id in state.marks).length;
  const bar = $("#progressbar");
  if (bar) bar.style.width = (state.neighbours.length ? 100 * judged / state.neighbours.length : 0) + "%";
  const text = $("#progresstext");
  if (text) text.textContent = `${judged} of ${state.neighbours.length} judged by ${judge()}`;
}

function select(i) {
  if (!state.neighbours.length) return;
  state.cursor = Math.max(0, Math.min(state.neighbours.length - 1, i));
  update();
  const c = document.querySelectorAll("#grid .card")[state.cursor];
  if (c) c.scrollIntoView({ block: "nearest" });
}

async function mark(i, good) {
  const n = state.neighbours[i];
  if (!n) return;
  state.marks[n.id] = good;
  select(i + 1);
  try {
    await api("/judgements", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query_id: state.query.id, neighbour_id: n.id, rank: n.rank, good, judge: judge() }) });
    await summary();
  } catch (e) { delete state.marks[n.id]; update(); say("not saved: " + e.message); }
}

async function summary() {
  $("#sumk").textContent = k();
  try {
    const rows = await api("/judgements/summary?k=" + k());
    const body = $("#summary tbody");
    const entries = Object.entries(rows);
    let judged = 0, good = 0, queries = 0;
    body.replaceChildren(...entries.map(([level2, s]) => {
      judged += s.judged; good += s.good; queries += s.queries;
      const current = state.query && state.query.level2 === level2;
      return el("tr", { class: current ? "current" : "", "data-level2": level2 },
        el("td", { text: s.name || level2 }), el("td", { class: "num", text: s.queries }),
        el("td", { class: "num", text: `${s.good}/${s.judged}` }),
        el("td", { class: "num p", text: s.precision_at_k.toFixed(2) }));
    }));
    if (entries.length > 1) body.append(el("tr", { class: "total" }, el("td", { text: "all" }),
      el("td", { class: "num", text: queries }), el("td", { class: "num", text: `${good}/${judged}` }),
      el("td", { class: "num", text: (good / judged).toFixed(2) })));
    if (!entries.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "empty", text: "no judgements yet" })));
  } catch (e) { say(e.message); }
}

async function randomProduct() {
  try { const r = await api("/random"); await pick(r.id); } catch (e) { say(e.message); }
}

let timer = null;
$("#search").addEventListener("input", (e) => { clearTimeout(timer); timer = setTimeout(() => search(e.target.value), 150); });
$("#search").addEventListener("keydown", async (e) => {
  if (e.key !== "Enter") return;
  const first = $("#results li button");
  if (first) first.click();
});
$("#random").addEventListener("click", randomProduct);
$("#judge").value = localStorage.getItem("prodcat.judge") || "anonymous";
$("#judge").addEventListener("change", () => { localStorage.setItem("prodcat.judge", judge()); if (state.query) pick(state.query.id); });
$("#k").addEventListener("change", () => { summary(); if (state.query) pick(state.query.id); });
$("#everywhere").addEventListener("change", () => { if (state.query) pick(state.query.id); });
document.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName);
  if (typing) { if (e.key === "Escape") e.target.blur(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const actions = { j: () => select(state.cursor + 1), k: () => select(state.cursor - 1),
                    g: () => mark(state.cursor, true), b: () => mark(state.cursor, false),
                    r: randomProduct, "/": () => $("#search").focus() };
  if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
});
summary();
document.body.dataset.state = "idle";
