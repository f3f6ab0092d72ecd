// sft dashboard: fetch the JSON API, fill tables, draw plotly charts, poll live runs. No framework.
const $ = (id) => document.getElementById(id);
const api = async (path) => { const r = await fetch(path, {cache: "no-store"}); const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText); return j; };
const fmt = (v, d = 4) => v === null || v === undefined ? "-" : typeof v === "number" && !Number.isInteger(v)
  ? (Math.abs(v) < 1e-2 ? v.toExponential(2) : v.toFixed(d)) : typeof v === "object" ? JSON.stringify(v) : String(v);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls; return e; }
function row(tbody, cells) { const tr = el("tr"); for (const c of cells) { const td = el("td");
  if (c instanceof Node) td.appendChild(c); else td.textContent = fmt(c); tr.appendChild(td); }
  tbody.appendChild(tr); return tr; }
function kv(table, obj) { const b = table.tBodies[0]; b.replaceChildren();
  for (const [k, v] of Object.entries(obj || {})) row(b, [k, v]); }
function link(href, text) { const a = el("a", text); a.href = href; return a; }
function showError(e, id = "error") { const p = $(id); if (p) { p.textContent = String(e.message || e); p.hidden = false; } }
function options(sel, values) { const cur = sel.value; for (const v of values) if (![...sel.options].some(o => o.value === v))
  sel.appendChild(Object.assign(el("option", v || "(base)"), {value: v})); sel.value = cur; }
const layout = (title, ytype) => ({title: {text: title, font: {size: 14}, x: 0.02, xanchor: "left"}, margin: {l: 50, r: 10, t: 36, b: 36},
  xaxis: {title: {text: "step"}}, yaxis: {type: ytype || "linear"}, legend: {orientation: "h"}});

async function runsPage() {
  const q = new URLSearchParams(); for (const f of ["status", "variant", "data"]) { const v = $("f-" + f).value;
    if (v) q.set(f, v); }
  const runs = await api("/api/runs?" + q), body = $("runs").tBodies[0];
  const all = q.toString() ? await api("/api/runs") : runs;
  options($("f-status"), [...new Set(all.map(r => r.status))]);
  options($("f-variant"), [...new Set(all.map(r => r.variant || ""))].filter(v => v !== ""));
  options($("f-data"), [...new Set(all.map(r => r.data_name).filter(Boolean))]);
  body.replaceChildren(); $("runs-empty").hidden = runs.length > 0;
  for (const r of runs) { const box = Object.assign(el("input"), {type: "checkbox", value: r.id});
    const tr = row(body, [box, link("/run/" + encodeURIComponent(r.id), r.id), el("span", r.status, "status-" + r.status),
      r.variant || "(base)", r.data_name, r.step !== null ? `${r.step}/${fmt(r.total_steps)}` : r.status === "completed" ? "done" : "-",
      r.final_loss, r.started_at, r.completed_at]); tr.dataset.id = r.id; }
}

let charted = "";
async function runPage() {
  const ref = decodeURIComponent(location.pathname.split("/").pop()), base = "/api/runs/" + encodeURIComponent(ref);
  const rep = await api(base), p = rep.progress;
  $("title").textContent = `Run ${rep.run_id || ref}`;
  $("status").textContent = rep.status; $("status").className = "status-" + rep.status; $("reason").textContent = rep.reason;
  $("step").textContent = p.step === null ? "-" : `${p.step} / ${fmt(p.total_steps)}`;
  $("percent").textContent = p.percentage === null ? "-" : p.percentage + " %"; $("eta").textContent = p.eta || "-";
  $("tps").textContent = fmt(p.tokens_per_second, 1); $("loss").textContent = fmt(p.loss);
  $("eval-loss").textContent = fmt(p.eval_loss); $("lr").textContent = fmt(p.learning_rate);
  $("meta").textContent = `variant ${rep.variant || "(base)"} · data ${rep.data_name || "-"} · started ${rep.started_at || "-"}`
    + ` · ended ${rep.completed_at || "-"} · ${rep.run_dir}`;
  if (rep.error) { $("error").textContent = "Failure: " + rep.error; $("error").hidden = false; }
  const s = await api(base + "/series"), key = JSON.stringify([s.train.step.length, s.eval.step.length]);
  if (key !== charted) { charted = key;
    Plotly.react("chart-loss", [{x: s.train.step, y: s.train.loss, name: "train loss", mode: "lines+markers"},
      {x: s.eval.step, y: s.eval.loss, name: "eval loss", mode: "lines+markers"}], layout("loss"), {responsive: true});
    Plotly.react("chart-lr", [{x: s.train.step, y: s.train.lr, name: "learning rate", mode: "lines"}],
      layout("learning rate"), {responsive: true}); }
  const [ck, ev, log] = await Promise.all([api(base + "/checkpoints"), api(base + "/events"), api(base + "/log")]);
  const cb = $("checkpoints").tBodies[0]; cb.replaceChildren();
  for (const c of ck.checkpoints) row(cb, [c.step, c.complete ? "complete" : "incomplete: " + (c.problem || ""),
    c.best ? `best (${ck.metric})` : "", c.latest ? "latest" : "", c.loss, c.eval_loss, c.time, c.path]);
  const eb = $("events").tBodies[0]; eb.replaceChildren();
  for (const e of ev.events) row(eb, [e.timestamp, e.level, e.message, e.data]);
  $("log").textContent = log.text || "(no console log)";
  if (!$("records").childElementCount) { const rec = await api(base + "/records");
    if (rec.error && !rep.error) { $("error").textContent = "Failure: " + rec.error; $("error").hidden = false; }
    for (const [k, title] of [["config", "resolved config (run_config.yaml)"], ["code_diff", "code.diff"],
      ["environment", "environment.json"], ["dataset", "dataset fingerprint (dataset.json)"]]) {
      const d = el("details"); d.appendChild(el("summary", title + (rec[k] ? "" : " (absent)")));
      d.appendChild(el("pre", rec[k] ? rec[k].text : "")); d.id = "rec-" + k; $("records").appendChild(d); } }
  return rep.status === "running" || rep.status === "queued";
}

async function comparePage() {
  const picked = new URLSearchParams(location.search).get("runs") || "";
  const runs = await api("/api/runs"), pick = $("pick"); pick.replaceChildren();
  for (const r of runs) { const lab = el("label"); const box = Object.assign(el("input"), {type: "checkbox", value: r.id,
    checked: picked.split(",").includes(r.id)}); lab.append(box, ` ${r.id} (${r.variant || "base"}, ${r.status})`);
    pick.appendChild(lab); }
  $("go").onclick = () => { const ids = [...pick.querySelectorAll("input:checked")].map(b => b.value);
    location.search = "?runs=" + ids.join(","); };
  if (picked.split(",").filter(Boolean).length < 2) return;
  const res = await api("/api/compare?runs=" + encodeURIComponent(picked)).catch(showError); if (!res) return;
  const tr = [], ev = [];
  for (const r of res.runs) { const t = r.series.filter(x => x.loss !== null && x.loss !== undefined);
    const e = r.series.filter(x => x.eval_loss !== null && x.eval_loss !== undefined);
    tr.push({x: t.map(x => x.step), y: t.map(x => x.loss), name: r.label, mode: "lines+markers"});
    ev.push({x: e.map(x => x.step), y: e.map(x => x.eval_loss), name: r.label, mode: "lines+markers"}); }
  Plotly.react("chart-train", tr, layout("train loss")); Plotly.react("chart-eval", ev, layout("eval loss"));
  const head = (t) => { t.tHead.replaceChildren(); const h = el("tr"); h.appendChild(el("th", ""));
    for (const r of res.runs) h.appendChild(el("th", r.label)); t.tHead.appendChild(h); t.tBodies[0].replaceChildren(); };
  head($("metrics")); head($("diffs"));
  for (const k of Object.keys(res.runs[0].metrics)) row($("metrics").tBodies[0], [k, ...res.runs.map(r => r.metrics[k])]);
  row($("metrics").tBodies[0], ["status", ...res.runs.map(r => r.status)]);
  for (const [k, vals] of Object.entries(res.config_differences)) row($("diffs").tBodies[0], [k, ...vals]);
  if (!Object.keys(res.config_differences).length) row($("diffs").tBodies[0], ["(identical configs)"]);
}

async function dataPage() {
  const sets = await api("/api/data"), sel = $("dataset");
  if (!sets.length) { showError("No converted dataset under artifacts/data yet."); return; }
  const name = new URLSearchParams(location.search).get("name") || sets[0].name;
  sel.replaceChildren(...sets.map(s => Object.assign(el("option", s.name), {value: s.name}))); sel.value = name;
  sel.onchange = () => { location.search = "?name=" + encodeURIComponent(sel.value); };
  const ds = await api("/api/data/" + encodeURIComponent(name)), rep = ds.report || {}, st = ds.stats || {};
  const sum = $("summary"); sum.replaceChildren();
  for (const [k, v] of [["trials", rep.trials && rep.trials.total], ["kept", rep.trials && rep.trials.kept],
    ["skipped", rep.trials && rep.trials.skipped], ["rows", st.rows], ["tokens", st.total_tokens],
    ["over cutoff", st.token_length && st.token_length.count_over_cutoff]]) {
    const c = el("div", k, "card"); c.appendChild(el("b", fmt(v))); sum.appendChild(c); }
  kv($("by-status"), {...(rep.trials || {}).by_status, ...Object.fromEntries(Object.entries(
    (rep.rows || {}).dropped_by_reason || {}).map(([k, v]) => ["rows dropped: " + k, v]))});
  kv($("issues"), Object.fromEntries(Object.entries(rep.reader_issues || {}).map(([k, v]) =>
    [k, `${v.count} in ${v.trials} trials; e.g. ${(v.examples || []).join(", ")}`])));
  const flat = (o, p = "") => Object.entries(o || {}).flatMap(([k, v]) => k === "histogram" ? [] : v && typeof v ===
    "object" ? flat(v, p + k + " · ") : [[p + k, v]]);
  kv($("stats"), Object.fromEntries(flat({"token length": st.token_length, "assistant turns": st.assistant_turns,
    score: st.score, "tool-call error rate": st.tool_call_error_rate, "samples per agent type": st.samples_per_agent_type})));
  api(`/api/data/${encodeURIComponent(name)}/checks`).then((res) => { const b = $("checks").tBodies[0]; b.replaceChildren();
    for (const c of res.checks) { const tr = row(b, [c.name, el("span", c.ok ? "ok" : "FAIL", c.ok ? "ok" : "bad"),
      c.count, c.total, c.detail]); tr.dataset.check = c.name; } }).catch(e => showError(e, "checks-error"));
  const load = async () => { const q = new URLSearchParams({limit: 500});
    for (const f of ["state", "scaffold", "agent_type", "min_score", "max_score"]) { const v = $("f-" + f).value.trim();
      if (v) q.set(f, v); }
    const res = await api(`/api/data/${encodeURIComponent(name)}/samples?${q}`).catch(showError); if (!res) return;
    for (const f of ["state", "scaffold", "agent_type"]) options($("f-" + f), res.facets[f]);
    $("matched").textContent = `${res.matched} of ${res.total}`;
    const b = $("samples").tBodies[0]; b.replaceChildren();
    for (const s of res.samples) { const issues = Object.entries(s.reader_issues).map(([k, v]) => `${k}×${v}`).join(" ");
      const idx = s.index === null ? "-" : link(`#sample-${s.index}`, String(s.index));
      const tr = row(b, [idx, s.state, s.trial_name, s.scaffold, s.agent_type, s.score, s.assistant_turns,
        [s.reason, issues].filter(Boolean).join("; ")]);
      if (s.index !== null) { tr.dataset.index = s.index; idx.onclick = () => tokenView(name, s.index, tr); } } };
  for (const f of ["state", "scaffold", "agent_type", "min_score", "max_score"]) $("f-" + f).onchange = load;
  await load();
  const m = location.hash.match(/^#sample-(\d+)$/);
  if (m) tokenView(name, +m[1], document.querySelector(`#samples tr[data-index="${m[1]}"]`));
}

async function tokenView(name, index, tr) {
  document.querySelectorAll("#samples tr.sel").forEach(r => r.classList.remove("sel")); if (tr) tr.classList.add("sel");
  $("token-title").textContent = `Token view: sample ${index}`; const box = $("tokens"); box.replaceChildren();
  $("token-summary").textContent = "rendering with LLaMA-Factory's template and tokenizer...";
  const v = await api(`/api/data/${encodeURIComponent(name)}/samples/${index}/tokens`).catch(e => {
    $("token-summary").textContent = "error: " + e.message; });
  if (!v) return;
  $("token-summary").textContent = `${v.n_tokens} tokens, ${v.n_trained} trained, ${v.n_tokens - v.n_trained} masked;`
    + ` cutoff_len ${v.cutoff_len}` + (v.truncated ? `, truncated at token ${v.cutoff_index}` : ", not truncated");
  const frag = document.createDocumentFragment();
  v.tokens.forEach((t, i) => { if (v.truncated && i === v.cutoff_index) frag.appendChild(el("span", `✂ cutoff ${v.cutoff_len}`, "cutoff"));
    const s = el("span", t.text, "tok " + (t.trained ? "trained" : "masked") + (v.truncated && i >= v.cutoff_index ? " after-cut" : ""));
    s.title = `#${i} id ${t.id}`; frag.appendChild(s); });
  box.appendChild(frag); box.dataset.index = index;
  const first = box.querySelector(".tok.trained");  // long masked prompts: start the view at the first target
  if (first) box.scrollTop = Math.max(0, first.offsetTop - box.offsetTop - 60);
}

async function poll(fn, everyMs) { let live = true;
  while (live) { try { live = (await fn()) === true; } catch (e) { showError(e); }
    if (everyMs && live) await new Promise(r => setTimeout(r, everyMs)); } }

window.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "runs") { for (const f of ["status", "variant", "data"]) $("f-" + f).onchange = () => runsPage().catch(showError);
    $("compare-selected").onclick = () => { const ids = [...document.querySelectorAll("#runs input:checked")].map(b => b.value);
      location.href = "/compare?runs=" + ids.join(","); };
    poll(async () => { await runsPage(); return true; }, 5000); }
  if (page === "run") poll(runPage, 2000);
  if (page === "compare") comparePage().catch(showError);
  if (page === "data") dataPage().catch(showError);
});
