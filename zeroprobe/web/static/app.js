// zeroprobe status page: refreshes the server-rendered page from the JSON API.
//
// Every node is built with createElement and text nodes; nothing from the data is ever parsed
// as HTML. renderProbe mirrors probe_card in zeroprobe/ui.py: keep them in step.
"use strict";

(() => {
  const HISTORY_SIZE = 60;
  const PENDING = "PENDING";
  const STATUS_ORDER = ["RED", "YELLOW", PENDING, "GREEN"];
  const INLINE_TAGS = new Set(["code", "strong", "em", "s", "a", "br"]);
  const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
  const LINK_REL = "noopener noreferrer nofollow";

  const body = document.body;
  const page = body.dataset.page;
  const source = body.dataset.source;
  const refreshMs = Math.max(1000, Number(body.dataset.refreshMs) || 10000);
  let filter = body.dataset.filter || "all";
  let clockOffsetMs = 0; // the server's clock minus ours
  let lastDataMs = null; // the server's clock at the last data received
  let failingSinceMs = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === "") continue;
      node.append(child); // a string becomes a text node
    }
    return node;
  }

  function safeHref(href) {
    try {
      return SAFE_PROTOCOLS.has(new URL(href, window.location.href).protocol);
    } catch {
      return false;
    }
  }

  function renderInline(nodes) {
    return (nodes || []).map((node) => {
      if (typeof node === "string") return node;
      const children = renderInline(node.children);
      if (!INLINE_TAGS.has(node.tag)) return children;
      if (node.tag === "a") {
        const ok = typeof node.href === "string" && safeHref(node.href);
        return ok ? el("a", { href: node.href, rel: LINK_REL }, children) : children;
      }
      return el(node.tag, null, children);
    });
  }

  // Words ------------------------------------------------------------------------------------

  const statusClass = (status) => `status-${status || PENDING}`;
  const pad = (n) => String(n).padStart(2, "0");

  function formatAge(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function localTime(epochMs) {
    const d = new Date(epochMs);
    const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function ageOf(collectedAtMs) {
    if (collectedAtMs === null || collectedAtMs === undefined || Number.isNaN(collectedAtMs)) {
      return null;
    }
    return Math.max(0, (Date.now() + clockOffsetMs - collectedAtMs) / 1000);
  }

  function ageText(ageS, staleAfterS) {
    if (ageS === null) return "no result yet: the first run has not finished";
    const text = `collected ${formatAge(ageS)} ago`;
    return ageS > staleAfterS ? `${text}: stale, older than ${formatAge(staleAfterS)}` : text;
  }

  function historyTitle(point) {
    const text = `${point.status} at ${localTime(point.collected_at_ms)}`;
    return point.outcome === "success" ? text : `${text} (${point.outcome})`;
  }

  // A service id that a narrow screen may wrap after each dot.
  function breakable(serviceId) {
    return serviceId.split(".").flatMap((piece, i) => (i ? [".", el("wbr"), piece] : [piece]));
  }

  // One probe --------------------------------------------------------------------------------

  function renderProbe(probe, link) {
    const word = probe.status || PENDING;
    const age = ageOf(probe.collected_at_ms);
    const stale = age !== null && age > probe.stale_after_s;
    const name = el(
      link ? "a" : "h1",
      { class: "probe-id", href: link ? probe.links.ui : null },
      breakable(probe.service_id),
    );
    const points = probe.history.slice(-HISTORY_SIZE);
    const cells = [];
    for (let i = points.length; i < HISTORY_SIZE; i += 1) {
      cells.push(el("li", { class: "cell empty" }));
    }
    for (const point of points) {
      const title = historyTitle(point);
      cells.push(el("li", { class: `cell ${statusClass(point.status)}`, title, tabindex: 0 }));
    }
    const lines = probe.lines.map((line) =>
      el(
        "li",
        { class: `line ${statusClass(line.status)}` },
        el(
          "span",
          { class: "line-mark", title: line.status === null ? "not graded" : null },
          line.status || "–",
        ),
        el("span", { class: "line-text" }, renderInline(line.nodes)),
      ),
    );
    return el(
      "li",
      {
        class: `probe ${statusClass(probe.status)}`,
        id: `probe-${probe.service_id}`,
        "data-service-id": probe.service_id,
        "data-status": word,
        "data-problem": String(word !== "GREEN" || stale),
        "data-collected-at-ms": probe.collected_at_ms,
        "data-stale-after-s": probe.stale_after_s,
      },
      el(
        "div",
        { class: "probe-head" },
        el("span", { class: `badge ${statusClass(probe.status)}` }, word),
        name,
        el("span", { class: "stale-mark", hidden: !stale }, "STALE"),
      ),
      el("p", { class: "probe-desc" }, probe.description),
      el(
        "p",
        { class: "probe-meta" },
        el("span", { class: stale ? "age is-stale" : "age" }, ageText(age, probe.stale_after_s)),
        el("span", { class: "kind" }, probe.kind),
      ),
      el("ul", { class: "lines" }, lines),
      el("ol", { class: "history", "aria-label": `last ${HISTORY_SIZE} results, oldest first` }, cells),
      el("p", { class: "history-caption", "aria-live": "polite" }),
    );
  }

  // The page around the probes ---------------------------------------------------------------

  const cards = () => Array.from(document.querySelectorAll("#probes > .probe"));

  // Ages grow between refreshes, and a result turns stale without any new data.
  function tick() {
    for (const card of cards()) {
      const age = ageOf(Number(card.dataset.collectedAtMs || NaN));
      const staleAfterS = Number(card.dataset.staleAfterS);
      const stale = age !== null && age > staleAfterS;
      const ageNode = card.querySelector(".age");
      if (ageNode) {
        ageNode.textContent = ageText(age, staleAfterS);
        ageNode.classList.toggle("is-stale", stale);
      }
      const mark = card.querySelector(".stale-mark");
      if (mark) mark.hidden = !stale;
      card.dataset.problem = String(card.dataset.status !== "GREEN" || stale);
    }
    if (page === "index") applyFilter();
  }

  function applyFilter() {
    const all = cards();
    const problems = all.filter((card) => card.dataset.problem === "true");
    for (const card of all) card.hidden = filter === "problems" && card.dataset.problem !== "true";
    for (const link of document.querySelectorAll(".filter a[data-filter]")) {
      if (link.dataset.filter === filter) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const counts = { all: all.length, problems: problems.length };
    for (const count of document.querySelectorAll(".filter-count[data-count]")) {
      count.textContent = String(counts[count.dataset.count]);
    }
    const note = document.getElementById("empty-note");
    if (note) {
      note.textContent = all.length
        ? "No problems: every probe is GREEN and fresh."
        : "No probes loaded.";
      note.hidden = all.length > 0 && !(filter === "problems" && problems.length === 0);
    }
    const byStatus = {};
    for (const card of all) byStatus[card.dataset.status] = (byStatus[card.dataset.status] || 0) + 1;
    const present = STATUS_ORDER.filter((status) => byStatus[status]);
    const summary = document.getElementById("summary");
    if (summary) {
      summary.replaceChildren(
        ...present.map((s) => el("span", { class: `count ${statusClass(s)}` }, `${byStatus[s]} ${s}`)),
      );
    }
    const bad = present.filter((s) => s === "RED" || s === "YELLOW").map((s) => `${byStatus[s]} ${s}`);
    document.title = `zeroprobe: ${bad.length ? bad.join(", ") : all.length ? "all GREEN" : "no probes"}`;
  }

  function render(results) {
    const list = document.getElementById("probes");
    if (!list) return;
    list.replaceChildren(...results.map((probe) => renderProbe(probe, page === "index")));
    if (page === "detail" && results.length === 1) {
      const probe = results[0];
      document.title = `${probe.status || PENDING} ${probe.service_id}: zeroprobe`;
    }
    tick();
  }

  function showContact(problem) {
    const banner = document.getElementById("contact");
    if (!banner) return;
    if (problem === null) {
      banner.hidden = true;
      banner.textContent = "";
      return;
    }
    const since = localTime(failingSinceMs + clockOffsetMs);
    const shown = lastDataMs === null ? "the data of the page load" : `data of ${localTime(lastDataMs)}`;
    banner.textContent =
      `Lost contact with zeroprobe since ${since} (${problem}). ` +
      `Showing ${shown}; retrying every ${formatAge(refreshMs / 1000)}.`;
    banner.hidden = false;
  }

  // The Notifications section of the index page: mirrors notifications_section in page.py.
  function renderSinks(data, atMs) {
    const section = document.getElementById("notifications");
    if (!section) return;
    const storage = data.outbox === "disk"
      ? "outbox on disk"
      : data.outbox_problem ? `outbox in memory only: ${data.outbox_problem}` : "outbox in memory only";
    const items = data.sinks.map((row) => {
      const meta = [
        row.pending ? `${row.pending} waiting` : "nothing waiting",
        row.oldest_age_s ? `oldest ${formatAge(row.oldest_age_s)}` : "",
        row.last_ok_ms
          ? `last delivered ${formatAge((atMs - row.last_ok_ms) / 1000)} ago`
          : "nothing delivered yet",
        row.failed ? `${row.failed} refused` : "",
        row.dropped ? `${row.dropped} dropped` : "",
      ].filter(Boolean).join(" · ");
      return el(
        "li",
        { class: `sink sink-${row.state.replace(/ /g, "-")}`, "data-sink": row.name },
        el("span", { class: "sink-state" }, row.state),
        " ",
        el("strong", { class: "sink-name" }, row.name),
        ` (${row.type})`,
        el("span", { class: "sink-meta" }, meta),
        row.detail ? el("span", { class: "sink-detail" }, row.detail) : null,
      );
    });
    section.replaceChildren(
      el("h2", null, "Notifications"),
      el("p", { class: "muted" }, storage),
      items.length ? el("ul", { class: "sinks" }, items) : el("p", null, "No sinks configured."),
    );
  }

  async function fetchJson(url) {
    const response = await fetch(url, {
      cache: "no-store",
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(Math.min(refreshMs, 10000)),
    });
    if (!response.ok) throw new Error(`it answered HTTP ${response.status}`);
    return response.json();
  }

  async function refresh() {
    try {
      const response = await fetch(source, {
        cache: "no-store",
        headers: { Accept: "application/json" },
        signal: AbortSignal.timeout(Math.min(refreshMs, 10000)),
      });
      if (response.status === 404 && page === "detail") {
        throw new Error("this probe is no longer loaded: HTTP 404");
      }
      if (!response.ok) throw new Error(`it answered HTTP ${response.status}`);
      const data = await response.json();
      clockOffsetMs = data.now_ms - Date.now();
      lastDataMs = data.now_ms;
      render(data.results || (data.result ? [data.result] : []));
      const updated = document.getElementById("updated-at");
      if (updated) updated.textContent = localTime(data.now_ms);
      failingSinceMs = null;
      showContact(null);
      const sinks = document.getElementById("notifications");
      if (sinks && sinks.dataset.source) renderSinks(await fetchJson(sinks.dataset.source), data.now_ms);
      body.dataset.refreshedAt = String(data.now_ms); // tests wait for this
    } catch (error) {
      if (failingSinceMs === null) failingSinceMs = Date.now();
      const reason = error instanceof TypeError || error.name === "TimeoutError"
        ? "no answer"
        : error.message;
      showContact(reason);
    } finally {
      window.setTimeout(refresh, refreshMs);
    }
  }

  // Interaction ------------------------------------------------------------------------------

  for (const link of document.querySelectorAll(".filter a[data-filter]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      filter = link.dataset.filter;
      const url = new URL(window.location.href);
      if (filter === "problems") url.searchParams.set("only", "problems");
      else url.searchParams.delete("only");
      window.history.replaceState(null, "", url);
      applyFilter();
    });
  }

  // A phone has no hover: tapping a history cell writes its tooltip under the strip.
  function showCell(event) {
    const cell = event.target instanceof Element ? event.target.closest(".cell[title]") : null;
    const caption = cell?.closest(".probe")?.querySelector(".history-caption");
    if (caption) caption.textContent = cell.getAttribute("title");
  }
  document.addEventListener("click", showCell);
  document.addEventListener("focusin", showCell);

  if (source && page !== "missing") {
    window.setInterval(tick, 1000);
    refresh();
  }
})();
