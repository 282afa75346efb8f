// 事件处理台: small progressive enhancements. Every action also works without this file.
"use strict";
(() => {
  const $ = (s, root = document) => root.querySelector(s);

  // Ctrl/Cmd+Enter sends the reply box.
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && t.matches && t.matches("textarea[data-submit]") && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      t.form.requestSubmit ? t.form.requestSubmit() : t.form.submit();
    }
  });

  // Live updates: the server announces changed tickets; refresh the part of the page that shows them.
  const queue = $("[data-live-queue]");
  const ticket = $("[data-ticket-id]");
  async function refresh(url, target) {
    try {
      const before = ($("#ticket-status") || {}).textContent;
      const r = await fetch(url, { headers: { "x-requested-with": "fetch" }, credentials: "same-origin" });
      if (!r.ok) return;
      target.innerHTML = await r.text();
      // A new status changes which actions apply: reload, unless a reply is being typed.
      const after = ($("#ticket-status") || {}).textContent;
      const typing = $("#reply-text") && $("#reply-text").value.trim();
      if (ticket && before !== after && !typing) location.reload();
    } catch (_) { /* the next event retries */ }
  }
  if ((queue || ticket) && window.EventSource) {
    const es = new EventSource("/console/events");
    let pending = null;
    es.addEventListener("ticket", (ev) => {
      if (ticket && ev.data !== "*" && ev.data !== ticket.dataset.ticketId) return;
      clearTimeout(pending);
      pending = setTimeout(() => {
        if (queue) refresh("/console/queue/rows" + location.search, $("#queue-live"));
        if (ticket) refresh("/console/tickets/" + encodeURIComponent(ticket.dataset.number) + "/live", $("#ticket-live"));
      }, 150);
    });
  }

  // Incidents: the list and an incident page refresh on `incident` events (and on `ticket`
  // events, since linked tickets show there too).
  const incidents = $("[data-live-incidents]");
  const incident = $("[data-incident-id]");
  async function refreshIncident() {
    try {
      const before = ($("#incident-status") || {}).textContent;
      const r = await fetch("/console/incidents/" + encodeURIComponent(incident.dataset.number) + "/live", { credentials: "same-origin" });
      if (!r.ok) return;
      $("#incident-live").innerHTML = await r.text();
      const after = ($("#incident-status") || {}).textContent;
      const typing = $("#reply-text") && $("#reply-text").value.trim();
      if (before !== after && !typing) location.reload();
    } catch (_) { /* the next event retries */ }
  }
  if ((incidents || incident) && window.EventSource) {
    const es = new EventSource("/console/events");
    let pending = null;
    const later = () => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        if (incidents) refresh("/console/incidents/rows", $("#incidents-live"));
        if (incident) refreshIncident();
      }, 150);
    };
    es.addEventListener("incident", (ev) => {
      if (incident && ev.data !== "*" && ev.data !== incident.dataset.incidentId) return;
      later();
    });
    if (incident) es.addEventListener("ticket", later);
  }
  if (incidents) setInterval(() => refresh("/console/incidents/rows", $("#incidents-live")), 60000);

  // The board refreshes on every ticket or incident change, and every minute.
  const boardEl = $("[data-live-board]");
  if (boardEl && window.EventSource) {
    const es = new EventSource("/console/events");
    let pending = null;
    const later = () => {
      clearTimeout(pending);
      pending = setTimeout(() => refresh("/console/board/live", $("#board-live")), 150);
    };
    es.addEventListener("ticket", later);
    es.addEventListener("incident", later);
  }
  if (boardEl) setInterval(() => refresh("/console/board/live", $("#board-live")), 60000);

  // SLA countdowns and ages move with time, not only with events: refresh them every minute.
  if (queue) setInterval(() => refresh("/console/queue/rows" + location.search, $("#queue-live")), 60000);
  if (ticket) setInterval(() => refresh("/console/tickets/" + encodeURIComponent(ticket.dataset.number) + "/live", $("#ticket-live")), 60000);

  // Canned replies: search the FAQ and insert an answer into the reply box.
  const q = $("#faq-q"), go = $("#faq-go"), out = $("#faq-results"), reply = $("#reply-text");
  async function search() {
    if (!q.value.trim()) return;
    const r = await fetch("/console/faq/search?q=" + encodeURIComponent(q.value), { credentials: "same-origin" });
    const hits = r.ok ? await r.json() : [];
    out.innerHTML = "";
    if (!hits.length) { out.innerHTML = "<li class=\"muted\">没有找到相关条目</li>"; return; }
    for (const h of hits) {
      const li = document.createElement("li");
      const title = document.createElement("span"); title.className = "q"; title.textContent = h.question;
      const b = document.createElement("button"); b.type = "button"; b.textContent = "插入";
      b.addEventListener("click", () => {
        reply.value = (reply.value ? reply.value.trimEnd() + "\n\n" : "") + h.answer;
        reply.focus();
      });
      li.append(title, b);
      out.append(li);
    }
  }
  if (go && q) {
    go.addEventListener("click", search);
    q.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); search(); } });
  }
})();
