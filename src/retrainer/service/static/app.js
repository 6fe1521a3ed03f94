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
      else if (v !== null && v !== undefined) node.setAttribute(k, v);
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

  function day(iso) { return iso ? iso.slice(0, 10) : "–"; }
  function span(from, to) { return day(from) === day(to) ? day(to) : day(from) + " → " + day(to); }
  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : /(s|ch|sh|x)$/.test(word) ? "es" : "s");
  }

  // Reasons grouped by cause, then column: one expandable line per cause, one per column.
  function reasonGroups(groups, open) {
    if (!groups.length) return el("p", { class: "muted" }, "no trigger fired");
    return el("div", { class: "groups" }, groups.map((g) => el("details", { class: "group" + (g.blocking ? " blocking" : ""), open: open ? "" : null },
      el("summary", {}, el("b", {}, (g.blocking ? "blocked by " : "") + g.cause.replace(/_/g, " ")),
        " in " + g.columns.map((c) => (c.column || "the whole batch") + " (" + c.count + ")").join(", "),
        el("span", { class: "count" }, "×" + g.count)),
      g.columns.map((c) => el("details", { class: "column" },
        el("summary", {}, (c.column || "the whole batch") + ": " + plural(c.count, "reason")),
        el("ul", {}, distinct(c.reasons).slice(0, 10).map(([r, n]) => el("li", {}, r + (n > 1 ? " (×" + n + ")" : ""))),
          c.reasons.length > 10 ? el("li", { class: "muted" }, "…") : null))))));
  }
  function distinct(items) {
    const seen = new Map();
    for (const x of items) seen.set(x, (seen.get(x) || 0) + 1);
    return [...seen.entries()];
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

  // The token lives in this tab's sessionStorage (never in a URL or a cookie). A new tab of
  // the same browser session asks the open ones for it over a same-origin BroadcastChannel,
  // so it is pasted once per session; closing every tab forgets it.
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("retrainer.token") : null;
  if (channel) {
    channel.onmessage = (event) => {
      const m = event.data || {};
      if (m.ask && sessionStorage.getItem(KEY)) channel.postMessage({ token: sessionStorage.getItem(KEY) });
      else if (m.forget) { sessionStorage.removeItem(KEY); }
      else if (m.token && !sessionStorage.getItem(KEY) && waiting) waiting(m.token);
    };
  }
  let waiting = null;
  function askOtherTabs(ms) {
    if (!channel) return Promise.resolve(null);
    return new Promise((resolve) => {
      const done = (token) => { waiting = null; resolve(token); };
      waiting = done;
      channel.postMessage({ ask: true });
      setTimeout(() => { if (waiting === done) done(null); }, ms);
    });
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
    const d = o.last_decision;
    content.append(
      el("p", { class: "freshness " + o.freshness.state, id: "freshness" }, o.freshness.sentence),
      el("div", { class: "cards" },
        el("div", { class: "card", id: "champion" }, "Champion", el("b", {}, c ? "v" + c.version : "none"),
          c ? o.metric + " " + fmt(c.metrics.holdout, 3) + " on its holdout" : ""),
        el("div", { class: "card" }, "Batches", el("b", {}, o.batches.total || 0),
          (o.rows || 0) + " rows, " + (o.batches.quarantined || 0) + " quarantined"),
        el("div", { class: "card" }, "Model versions", el("b", {}, o.models)),
        el("div", { class: "card" }, "Recent " + o.metric,
          el("b", {}, fmt(o.recent_performance, 3)), "champion, latest labelled batches")),
      el("p", { class: "health " + o.health.level, id: "health" }, o.health.words),
      el("h2", {}, "Last decision"),
      d ? el("div", { id: "decision" }, el("p", {}, el("b", {}, d.action), " on ", when(d.at), " — ",
        plural(d.reasons.length, "reason"), " ", el("a", { href: "/ui/decisions" }, "all decisions")),
      reasonGroups(o.last_decision_groups))
        : el("p", { class: "muted" }, "No cycle has run yet."),
      el("h2", {}, "Latest events"),
      table(["time", "kind", "what happened"], runs(o.events.slice().reverse()).map((r) =>
        [el("span", { class: "nowrap" }, when(r[0].at)), r[0].kind + (r.length > 1 ? " ×" + r.length : ""),
          clip(r[0].message, 160)])));
  }
  // Consecutive events of one kind, as one row each (the newest shown).
  function runs(events) {
    const out = [];
    for (const e of events) {
      if (out.length && out[out.length - 1][0].kind === e.kind) out[out.length - 1].push(e);
      else out.push([e]);
    }
    return out;
  }
  function clip(text, n) {
    return text.length <= n ? text : el("span", { title: text }, text.slice(0, n - 1) + "…");
  }

  function markersPlugin(markers, gaps) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = "rgba(230, 57, 70, 0.12)";
          for (const x of gaps) {
            const left = u.valToPos(x, "x", true);
            if (left < u.bbox.left || left > u.bbox.left + u.bbox.width) continue;
            ctx.fillRect(left - 2 * devicePixelRatio, u.bbox.top, 4 * devicePixelRatio, u.bbox.height);
          }
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
    // null breaks a line (a quarantined or missing batch); undefined joins across a batch that
    // only lacks this one series (uPlot's convention).
    const line = (role) => p.points.map((pt) => (pt.gap ? null : pt[role] === undefined
      || pt[role] === null ? undefined : pt[role]));
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
        "Vertical lines: retrains (solid green promoted, dashed grey rejected by the gate). " +
        "Lines break where a batch was quarantined or missing (" + p.points.filter((pt) => pt.gap)
          .length + " gaps, shaded red)."),
      box);
    if (!xs.length) {
      box.append(el("p", { class: "muted" }, "No labelled batch has been scored yet."));
    } else {
      const width = Math.max(400, content.clientWidth - 20);
      state.charts.performance = new uPlot({
        width: width, height: 340, scales: { x: { time: timed } },
        series: [{}, { label: "champion (retrained)", stroke: "#1d70b8", width: 2 },
          { label: "never retrained", stroke: "#d62728", width: 1.5 },
          { label: "estimated (no labels yet)", stroke: "#f28e2b", width: 1.5, dash: [6, 4] },
          { label: "served", stroke: "#7b3294", width: 1.5 }],
        axes: [{}, { label: p.metric }],
        plugins: [markersPlugin(markers, p.points.filter((pt) => pt.gap).map(xOf))],
      }, [xs, champ, base, est, served], box);
    }
    state.charts.gaps = p.points.map((pt, i) => (pt.gap ? i : -1)).filter((i) => i >= 0);
    content.append(el("h2", {}, "Retrains"), table(["run", "version", "data time", "outcome"],
      p.retrains.slice().reverse().slice(0, 20).map((r) => [r.run, "v" + r.version, when(r.time),
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
    for (const c of d.cells) cell[c.column + "|" + c.span] = c;
    const labels = [];
    for (let i = 0; i < d.spans.length; i += 4) labels.push(d.spans.slice(i, i + 4));
    const head = el("tr", {}, el("th", {}, "column \\ data time"),
      labels.map((group) => el("th", { class: "time", colspan: group.length, title:
        span(group[group.length - 1].from, group[0].to) }, day(group[0].to))));
    const body = d.columns.map((col) => el("tr", {}, el("th", { class: "col" }, col),
      d.spans.map((sp, i) => {
        const c = cell[col + "|" + i];
        const td = el("td", { class: c && c.alarms ? "alarm" : "", title: c
          ? col + ", " + span(sp.from, sp.to) + ": largest " + c.test + " score " + fmt(c.score, 3) +
            ", " + c.alarms + " alarm(s) in " + plural(c.checked, "batch")
          : "no check" }, c && c.alarms ? (d.per_span > 1 ? c.alarms : "!") : "");
        td.style.background = heat(c ? c.score : null);
        return td;
      })));
    state.charts.drift = { columns: d.columns.length, spans: d.spans.length, cells: d.cells.length };
    const batches = d.spans.reduce((n, sp) => n + sp.batches, 0);
    content.append(el("p", { class: "legend" }, "Each cell is a column over a stretch of data time " +
      "(newest on the left), compared with the champion's training data: darker means a larger " +
      "shift (KS distance, or 1 - p of chi-square for categories). " + (d.per_span > 1
      ? "Each stretch merges " + d.per_span + " batches (" + batches + " in all, " +
        span(d.spans[d.spans.length - 1].from, d.spans[0].to) + "): a cell shows the largest " +
        "score and the number of alarms." : "'!' marks an alarm.")),
    el("table", { class: "heatmap", id: "heatmap" }, el("thead", {}, head), el("tbody", {}, body)));
  }

  async function alarms() {
    const a = await api("/api/alarms/summary");
    if (!a.total) { content.append(el("p", { class: "muted" }, "No alarm so far.")); return; }
    const rows = (items) => table(["batch", "data time", "severity", "what", "action", "decision"],
      items.map((x) => [x.batch ? el("a", { href: "/ui/batches/" + x.batch }, x.batch) : "–",
        el("span", { class: "nowrap" }, when(x.data_time)), x.severity, clip(x.message, 120),
        x.action, x.decision || "–"]));
    content.append(
      el("p", { class: "legend" }, plural(a.total, "alarm") + " of the latest checks, by cause, " +
        "then column; open a line for its newest alarms."),
      el("div", { id: "alarm-groups", class: "groups" }, a.groups.map((g) => el("details", { class: "group" },
        el("summary", {}, el("b", {}, g.words), " in " + g.columns.map((c) =>
          (c.column || "no single column") + " (" + c.count + ")").join(", ") + " — on " +
          plural(g.batches, "batch") + ", " + span(g.from, g.to),
          el("span", { class: "count" }, "×" + g.count)),
        g.columns.map((c) => el("details", { class: "column" },
          el("summary", {}, (c.column || "no single column") + ": " + plural(c.count, "alarm") +
            ", " + span(c.from, c.to)),
          rows(c.latest), c.count > c.latest.length
            ? el("p", { class: "muted" }, "and " + (c.count - c.latest.length) + " older") : null))))),
      el("h2", {}, "Newest alarms"), el("div", { id: "alarm-latest" }, rows(a.latest)));
  }

  async function decisions() {
    const log = await api("/api/decision-log");
    if (!log.total) { content.append(el("p", { class: "muted" }, "No decision yet.")); return; }
    const counts = Object.entries(log.actions).map(([k, n]) => n + " " + k).join(", ");
    content.append(
      el("p", { class: "legend" }, plural(log.total, "decision") + " (" + counts + "), newest " +
        "first. Decisions in a row that agree form one line; open it for each decision and its " +
        "reasons."),
      el("div", { id: "decision-log", class: "groups" }, log.stretches.map((st) => el("details", {
        class: "group stretch " + st.action },
      el("summary", {}, el("b", {}, st.action), " " + (st.count > 1 ? "× " + st.count + ", " : "") +
        span(st.from, st.to) + " — " + (st.groups.length ? st.groups.map((g) =>
        (g.blocking ? "blocked by " : "") + g.cause.replace(/_/g, " ") + (g.columns[0].column
          ? " in " + g.columns.map((c) => c.column).join(", ") : "")).join("; ") : "no trigger fired")),
      table(["decision", "time", "cycle", "reasons"], st.decisions.map((d) => [d.id,
        el("span", { class: "nowrap" }, when(d.at)), d.cycle, reasonGroups(d.groups)]))))));
  }

  // Why a version failed its gate (as the server's promotion check says), or "" if it passed.
  function gateFailure(m) {
    if (m.metrics.gate_passed !== false) return "";
    const gate = m.lineage.gate || {};
    const why = gate.passed === false && gate.reason ? [gate.reason] : [];
    for (const [target, r] of Object.entries(m.lineage.deploy || {}))
      for (const x of (r && r.reasons) || []) why.push("target " + target + ": " + x);
    return why.join("; ") || "its gate did not pass";
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
      firstRows(["version", "created", "aliases", "holdout", "gate", "parent", "window", "why", ""],
        versions.slice().reverse().map((m) => {
          const w = (m.lineage && m.lineage.window) || {};
          const champion = m.aliases.includes("champion");
          return [
            "v" + m.version, el("span", { class: "nowrap" }, when(m.created_at)),
            m.aliases.map((a) => el("span", { class: "badge" }, a)),
            fmt(m.metrics.holdout, 3), gateFailure(m) ? clip("failed: " + gateFailure(m), 80)
              : "passed",
            m.lineage.parent ? "v" + m.lineage.parent : "–",
            (w.from || "").slice(0, 10) + " … " + (w.to || "").slice(0, 10),
            (m.lineage.reasons || []).join("; "),
            champion ? "" : el("button", { class: "primary promote", "data-version": m.version,
              on: { click: () => {
                const failed = gateFailure(m);
                if (failed && !window.confirm("v" + m.version + " failed its gate: " + failed +
                  "\n\nMake it the champion anyway?")) return;
                act("/api/promote", { version: m.version, force: Boolean(failed),
                  reason: "promoted from the dashboard" + (failed ? " despite its failed gate" : "") });
              } } }, gateFailure(m) ? "Make champion anyway…" : "Make champion"),
          ];
        }), 12, "older version"),
      el("h2", {}, "Champion history"),
      firstRows(["time", "version", "before", "how", "by", "why"], history.slice().reverse().map(
        (h) => [when(h.at), "v" + h.version, h.previous ? "v" + h.previous : "–", h.kind, h.actor,
          clip(h.reason, 140)]), 8, "older change"));
  }

  // The first n rows as a table, the rest in a closed <details> below it.
  function firstRows(headers, rows, n, what) {
    if (rows.length <= n + 2) return table(headers, rows);
    return el("div", {}, table(headers, rows.slice(0, n)), el("details", { class: "group more" },
      el("summary", {}, plural(rows.length - n, what)), table(headers, rows.slice(n))));
  }

  async function batches() {
    const PAGE = 25;
    const [status, quarantined, first] = await Promise.all([api("/api/status"),
      api("/api/batches?status=quarantined&limit=1000"), api("/api/batches?limit=" + PAGE)]);
    const counts = Object.entries(status.batches).filter(([k]) => k !== "total")
      .map(([k, n]) => n + " " + k).join(", ");
    const headers = ["batch", "key", "received", "data time", "rows", "labelled", "status"];
    const row = (b) => [el("a", { href: "/ui/batches/" + b.id }, b.id), el("span", { class: "nowrap" }, b.key),
      el("span", { class: "nowrap" }, when(b.received_at)),
      el("span", { class: "nowrap" }, when(b.data_time)), b.n_rows, b.n_labelled,
      b.note ? clip(b.status + ": " + b.note, 120) : b.status];
    const list = table(headers, first.map(row));
    list.id = "batch-list";
    let offset = first.length;
    const more = el("button", { id: "more-batches", on: { click: async () => {
      const next = await api("/api/batches?limit=" + PAGE + "&offset=" + offset);
      offset += next.length;
      list.querySelector("tbody").append(...next.map((b) => el("tr", {}, row(b).map((c) => el("td", {}, c)))));
      if (next.length < PAGE) more.hidden = true;
    } } }, "Show " + PAGE + " older");
    more.hidden = first.length < PAGE;
    content.append(
      el("p", {}, plural(status.batches.total || 0, "batch") + (counts ? ": " + counts : "") + "."),
      quarantined.length ? el("details", { class: "group blocking", id: "quarantined" },
        el("summary", {}, el("b", {}, plural(quarantined.length, "quarantined batch")),
          " — set aside for broken data, not used for training until released"),
        table(headers, quarantined.map(row))) : null,
      el("h2", {}, "Newest batches"), list, more);
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
    const checks = (rows) => table(["kind", "check", "column", "statistic", "p", "alarm",
      "message"], rows.map((c) => [c.kind, c.name, c.column || "–", fmt(c.statistic),
      fmt(c.p_value), c.alarm ? "yes" : "", clip((c.detail && c.detail.message) || "", 200)]));
    const raised = b.checks.filter((c) => c.alarm);
    content.append(el("h2", {}, "Checks"),
      raised.length ? checks(raised) : el("p", { class: "muted" }, "No check raised an alarm."),
      el("details", { class: "group", id: "all-checks" }, el("summary", {}, "All " +
        plural(b.checks.length, "check") + " of this batch (" + raised.length + " with an alarm)"),
      checks(b.checks)));
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

  const PAGES = { overview, performance, drift, alarms, decisions, models, batches, batch, fleet };

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
    if (channel) channel.postMessage({ forget: true });
    location.reload();
  });
  if (sessionStorage.getItem(KEY)) render();
  else {
    showLogin();
    askOtherTabs(1000).then((token) => {
      if (token && !sessionStorage.getItem(KEY)) { sessionStorage.setItem(KEY, token); render(); }
    });
  }
})();
