// The retrainer dashboard: every page is a shell; this script fetches its data from the JSON
// API with the tab's token and draws it (text through textContent only, charts with uPlot).
"use strict";
(function () {
  const KEY = "retrainer.token";
  const page = document.body.dataset.page;
  const content = document.getElementById("content");
  const state = { page: page, ready: false, charts: {}, error: null };
  window.retrainer = state;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "on") for (const [e, f] of Object.entries(v)) node.addEventListener(e, f);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmt(x, digits) {
    return x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 4 : digits);
  }
  function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "–"; }

  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
  }

  function fail(message) {
    state.error = message;
    const box = document.getElementById("error");
    box.textContent = message;
    box.hidden = false;
  }

  function showLogin(message) {
    document.getElementById("login").hidden = false;
    document.getElementById("logout").hidden = true;
    if (message) fail(message);
  }

  async function api(path, options) {
    const token = sessionStorage.getItem(KEY);
    const opts = Object.assign({}, options || {});
    opts.headers = { Authorization: "Bearer " + token };
    if (opts.body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.body);
    }
    const res = await fetch(path, opts);
    const data = await res.json();
    if (res.status === 401) {
      sessionStorage.removeItem(KEY);
      showLogin("The token was refused; paste another one.");
      throw new Error("unauthorised");
    }
    if (!res.ok) throw new Error(data.detail || res.statusText);
    return data;
  }

  // ------------------------------------------------------------------------ pages
  async function overview() {
    const o = await api("/api/overview");
    const c = o.champion;
    content.append(
      el("p", { class: "health " + o.health.level, id: "health" }, o.health.words),
      el("div", { class: "cards" },
        el("div", { class: "card", id: "champion" }, "Champion", el("b", {}, c ? "v" + c.version : "none"),
          c ? o.metric + " " + fmt(c.metrics.holdout, 3) + " on its holdout" : ""),
        el("div", { class: "card" }, "Batches", el("b", {}, o.batches.total || 0),
          (o.rows || 0) + " rows, " + (o.labelled_rows || 0) + " labelled"),
        el("div", { class: "card" }, "Model versions", el("b", {}, o.models)),
        el("div", { class: "card" }, "Recent " + o.metric,
          el("b", {}, fmt(o.recent_performance, 3)), "champion, latest labelled batches")),
      el("h2", {}, "Last decision"),
      o.last_decision
        ? el("div", { id: "decision" }, el("p", {}, el("b", {}, o.last_decision.action), " at ",
          when(o.last_decision.at)),
          el("ul", {}, (o.last_decision.reasons.length ? o.last_decision.reasons
            : ["no trigger fired"]).map((r) => el("li", {}, r))))
        : el("p", { class: "muted" }, "No cycle has run yet."),
      el("h2", {}, "Latest events"),
      table(["time", "kind", "what happened"], o.events.slice().reverse().map(
        (e) => [when(e.at), e.kind, e.message])));
  }

  function markersPlugin(markers) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          for (const m of markers) {
            const x = u.valToPos(m.x, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = m.promoted ? "#2a9d8f" : "#8d99ae";
            ctx.setLineDash(m.promoted ? [] : [4, 4]);
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  async function performance() {
    const p = await api("/api/performance");
    const timed = p.points.length > 0 && p.points.every((pt) => pt.time);
    const xOf = (pt) => (timed ? Date.parse(pt.time) / 1000 : pt.batch);
    const xs = p.points.map(xOf);
    const line = (role) => p.points.map((pt) => (pt[role] === undefined ? null : pt[role]));
    const champ = line("champion"), base = line("baseline"), est = line("estimated");
    const served = line("serving");
    const markers = p.retrains.filter((r) => r.time).map((r) => ({
      x: timed ? Date.parse(r.time) / 1000 : null, promoted: r.promoted })).filter((m) => m.x !== null);
    const box = el("div", { class: "chart", id: "performance-chart" });
    content.append(
      el("p", { class: "legend" }, "Realised " + p.metric + " per batch once its labels arrived: the " +
        "continuously trained champion (blue) against the first model never retrained (red); " +
        "the champion's estimate before labels came (orange, dashed) and, where a serving system " +
        "posted its predictions, what it really served (purple). " +
        "Vertical lines: retrains (solid green promoted, dashed grey rejected by the gate)."),
      box);
    if (!xs.length) {
      box.append(el("p", { class: "muted" }, "No labelled batch has been scored yet."));
    } else {
      const width = Math.max(400, content.clientWidth - 20);
      state.charts.performance = new uPlot({
        width: width, height: 340, scales: { x: { time: timed } },
        series: [{}, { label: "champion (retrained)", stroke: "#1d70b8", width: 2, spanGaps: true },
          { label: "never retrained", stroke: "#d62728", width: 1.5, spanGaps: true },
          { label: "estimated (no labels yet)", stroke: "#f28e2b", width: 1.5, dash: [6, 4],
            spanGaps: true },
          { label: "served", stroke: "#7b3294", width: 1.5, spanGaps: true }],
        axes: [{}, { label: p.metric }],
        plugins: [markersPlugin(markers)],
      }, [xs, champ, base, est, served], box);
    }
    content.append(el("h2", {}, "Retrains"), table(["run", "version", "time", "outcome"],
      p.retrains.map((r) => [r.run, "v" + r.version, when(r.time),
        r.promoted ? "promoted" : r.status])));
  }

  function heat(score) {
    if (score === null || score === undefined) return "#eee";
    const s = Math.max(0, Math.min(1, score));
    const g = Math.round(245 - 170 * s), b = Math.round(240 - 190 * s);
    return "rgb(250," + g + "," + b + ")";
  }

  async function drift() {
    const d = await api("/api/drift");
    if (!d.columns.length) {
      content.append(el("p", { class: "muted" }, "No drift check has run yet: the first cycle after a " +
        "champion exists compares each batch with its training data."));
      return;
    }
    const cell = {};
    for (const c of d.cells) cell[c.column + "|" + c.batch] = c;
    const head = el("tr", {}, el("th", {}, "column \\ batch"),
      d.batches.map((b) => el("th", { title: when(b.time) }, el("a", { href: "/ui/batches/" + b.id }, b.id))));
    const body = d.columns.map((col) => el("tr", {}, el("th", { class: "col" }, col),
      d.batches.map((b) => {
        const c = cell[col + "|" + b.id];
        const td = el("td", { class: c && c.alarm ? "alarm" : "", title: c
          ? col + ", batch " + b.id + ": " + c.test + " statistic " + fmt(c.statistic) +
            ", p " + fmt(c.p_value) + (c.alarm ? " (alarm)" : "") : "no check" }, c && c.alarm ? "!" : "");
        td.style.background = heat(c ? c.score : null);
        return td;
      })));
    state.charts.drift = { columns: d.columns.length, batches: d.batches.length, cells: d.cells.length };
    content.append(el("p", { class: "legend" }, "Each cell is a column of a batch compared with the " +
      "champion's training data: darker means a larger shift (KS distance, or 1 - p of chi-square " +
      "for categories); '!' marks an alarm."),
    el("table", { class: "heatmap", id: "heatmap" }, el("thead", {}, head), el("tbody", {}, body)));
  }

  async function alarms() {
    const rows = await api("/api/alarms");
    content.append(rows.length ? table(["cycle", "time", "cause", "severity", "check", "column",
      "what", "action", "decision"], rows.map((a) => [a.cycle, when(a.at), a.cause_words,
      a.severity, a.check, a.column || "–", a.message, a.action, a.decision || "–"]))
      : el("p", { class: "muted" }, "No alarm so far."));
  }

  async function models() {
    const [versions, history] = await Promise.all([api("/api/models"),
      api("/api/aliases/champion/history")]);
    const act = async (path, body) => {
      try {
        await api(path, { method: "POST", body: body });
        location.reload();
      } catch (e) { if (e.message !== "unauthorised") fail(e.message); }
    };
    content.append(
      el("p", {}, el("button", { id: "rollback", on: { click: () => act("/api/rollback",
        { reason: "rolled back from the dashboard" }) } }, "Roll back the champion")),
      table(["version", "created", "aliases", "holdout", "gate", "parent", "window", "why", ""],
        versions.slice().reverse().map((m) => {
          const w = (m.lineage && m.lineage.window) || {};
          const champion = m.aliases.includes("champion");
          return [
            "v" + m.version, when(m.created_at),
            m.aliases.map((a) => el("span", { class: "badge" }, a)),
            fmt(m.metrics.holdout, 3), m.metrics.gate_passed ? "passed" : "failed",
            m.lineage.parent ? "v" + m.lineage.parent : "–",
            (w.from || "").slice(0, 10) + " … " + (w.to || "").slice(0, 10),
            (m.lineage.reasons || []).join("; "),
            champion ? "" : el("button", { class: "primary promote", "data-version": m.version,
              on: { click: () => act("/api/promote", { version: m.version,
                reason: "promoted from the dashboard" }) } }, "Make champion"),
          ];
        })),
      el("h2", {}, "Champion history"),
      table(["time", "version", "before", "how", "by", "why"], history.slice().reverse().map(
        (h) => [when(h.at), "v" + h.version, h.previous ? "v" + h.previous : "–", h.kind, h.actor,
          h.reason])));
  }

  async function batches() {
    const rows = await api("/api/batches?limit=200");
    content.append(table(["batch", "key", "received", "data time", "rows", "labelled", "status"],
      rows.map((b) => [el("a", { href: "/ui/batches/" + b.id }, b.id), b.key, when(b.received_at),
        when(b.data_time), b.n_rows, b.n_labelled, b.status + (b.note ? ": " + b.note : "")])));
  }

  async function batch() {
    const id = Number(location.pathname.split("/").pop());
    const b = await api("/api/batches/" + id);
    content.append(el("p", {}, "Batch " + b.id + " (" + b.key + "): " + b.n_rows + " rows, " +
      b.n_labelled + " labelled, " + b.status + (b.note ? " – " + b.note : "")));
    if (b.profile) {
      const cols = Object.values(b.profile.columns);
      content.append(el("h2", {}, "Profile"), table(["column", "kind", "count", "nulls", "min",
        "max", "mean", "distinct"], cols.map((c) => [c.name, c.kind, c.count, c.nulls,
        fmt(c.min, 3), fmt(c.max, 3), fmt(c.mean, 3), c.distinct])));
    } else {
      content.append(el("p", { class: "muted" }, "Not profiled yet: the next cycle does it."));
    }
    const causes = b.diagnosis ? b.diagnosis.causes : [];
    content.append(el("h2", {}, "Diagnosis"), causes.length
      ? table(["cause", "confidence", "columns", "what it means", "action"], causes.map((c) =>
        [c.cause, fmt(c.confidence, 2), c.columns.join(", ") || "–", c.words, c.action]))
      : el("p", { class: "muted", id: "diagnosis" }, b.diagnosis
        ? "Nothing wrong: no check raised an alarm." : "Not checked yet: the next cycle does it."));
    content.append(el("h2", {}, "Checks"), table(["kind", "check", "column", "statistic", "p",
      "alarm", "message"], b.checks.map((c) => [c.kind, c.name, c.column || "–",
      fmt(c.statistic), fmt(c.p_value), c.alarm ? "yes" : "", (c.detail && c.detail.message) || ""])));
  }

  function bytes(used, budget) {
    if (used === null || used === undefined) return "–";
    return used.toLocaleString("en") + " B" + (budget ? " of " + budget.toLocaleString("en") : "");
  }

  async function fleet() {
    const f = await api("/api/fleet");
    const v = (x) => (x === null || x === undefined ? "–" : "v" + x);
    content.append(
      el("h2", {}, "Targets: the champion's C build"),
      f.targets.length ? el("div", { id: "fleet-targets" }, table(["target", "version", "model",
        "C = Python (host)", "C = Python (board)", "flash", "RAM", "ms / prediction", "bundle"],
      f.targets.map((t) => [t.target, v(t.version), t.model,
        fmt(t.agreement) + " of " + (t.rows || 0), t.board_rows
          ? fmt(t.board_agreement) + " of " + t.board_rows : "–",
        bytes(t.flash_bytes, t.flash_budget), bytes(t.ram_bytes, t.ram_budget),
        fmt(t.ms_per_prediction, 3), t.bundle ? "yes" : "no"])))
        : el("p", { class: "muted" }, "No champion with a deploy target yet."),
      el("h2", {}, "Rollouts"),
      el("div", { id: "fleet-rollouts" }, Object.keys(f.rollouts).length
        ? table(["target", "offered", "to devices", "the others", "since", "why"],
          Object.entries(f.rollouts).map(([target, r]) => r
            ? [target, v(r.version), r.percent + " %", r.percent < 100 ? v(r.base) : "–",
              when(r.at), r.reason || "–"]
            : [target, "the champion's bundle", "100 %", "–", "–", "no rollout started"]))
        : el("p", { class: "muted" }, "No deploy target in the project file.")),
      el("h2", {}, "Devices"),
      f.devices.length ? el("div", { id: "fleet-devices" }, table(["device", "target", "runs",
        "offered", "last report", "reports", "rows"], f.devices.map((d) => [d.device, d.target,
        v(d.version), d.offered === d.version ? v(d.offered)
          : el("span", { class: "badge" }, v(d.offered) + " (update pending)"),
        when(d.last_seen), d.reports, d.rows])))
        : el("p", { class: "muted" }, "No device has sent a telemetry report yet."),
      el("h2", {}, "Fleet drift"),
      el("p", { class: "legend" }, "The devices' telemetry of each version, merged and checked " +
        "against that version's training data (no rows leave the devices)."),
      Object.keys(f.checks).length ? el("div", { id: "fleet-drift" }, table(["version", "verdict",
        "columns tested", "alarms"], Object.entries(f.checks).map(([version, c]) => [v(version),
        c.dataset_drift ? c.dataset_drift.message : "not tested", c.tested,
        c.alarms.map((a) => a.name + (a.column ? ":" + a.column : "")).join(", ") || "none"])))
        : el("p", { class: "muted" }, "No fleet data yet."));
  }

  const PAGES = { overview, performance, drift, alarms, models, batches, batch, fleet };

  async function render() {
    document.getElementById("login").hidden = true;
    document.getElementById("logout").hidden = false;
    content.replaceChildren();
    try {
      await PAGES[page]();
      state.ready = true;
    } catch (e) {
      if (e.message !== "unauthorised") fail(e.message);
    }
  }

  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("token").value.trim());
    document.getElementById("error").hidden = true;
    render();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  if (sessionStorage.getItem(KEY)) render(); else showLogin();
})();
