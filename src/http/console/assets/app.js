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

  // --- Editors (admins) -------------------------------------------------------------------
  const csrf = () => { const i = $('input[name="_csrf"]'); return i ? i.value : ""; };
  async function postJson(url, body) {
    const r = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() }, body: JSON.stringify(body) });
    return { ok: r.ok, body: await r.json().catch(() => ({})) };
  }
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  // WeCom renders a reply's Markdown lightly: bold, links, quotes, line breaks.
  function wecomMarkdown(text) {
    return esc(text)
      .replace(/\*\*(.+?)\*\*/g, "<b>$1</b>")
      .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" rel="noopener noreferrer" target="_blank">$1</a>')
      .replace(/^&gt;(.*)$/gm, '<span class="quote">$1</span>')
      .replace(/\n/g, "<br>");
  }
  const kbEditor = $("[data-kb-editor]");
  if (kbEditor) {
    const form = $("#entry-form"), answer = $("#answer"), preview = $("#preview");
    const draw = () => { preview.innerHTML = wecomMarkdown("【" + form.question.value + "】\n" + answer.value); };
    form.addEventListener("input", draw);
    draw();
    const list = (el, ranking) => {
      el.innerHTML = "";
      for (const h of ranking.hits) {
        const li = document.createElement("li");
        li.textContent = h.id + " " + h.question + "（" + h.confidence.toFixed(2) + "）";
        el.append(li);
      }
    };
    const label = { answer: "直接回答", suggest: "给出候选", intake: "转人工提单" };
    async function hitTest() {
      const q = $("#hit-q").value.trim();
      if (!q) return;
      const entry = {
        id: form.id.value.trim(), question: form.question.value, answer: answer.value, system: form.system.value,
        similar: form.similar.value.split("\n").map((s) => s.trim()).filter(Boolean),
        tags: form.tags.value.split(/[、,，]/).map((s) => s.trim()).filter(Boolean),
      };
      const r = await postJson("/api/v1/admin/kb/test", entry.id ? { q, entry } : { q });
      if (!r.ok) { $("#hit-changed").innerHTML = "<li>" + esc(r.body.message || "测试失败") + "</li>"; return; }
      list($("#hit-live"), r.body.live);
      $("#hit-live-decision").textContent = "决定：" + label[r.body.live.decision];
      if (r.body.draft) {
        list($("#hit-draft"), r.body.draft);
        $("#hit-draft-decision").textContent = "决定：" + label[r.body.draft.decision];
      }
      const changed = r.body.changed || [];
      $("#hit-changed").innerHTML = changed.length ? "" : '<li class="muted">没有问题会改变答案</li>';
      for (const c of changed) {
        const li = document.createElement("li");
        li.textContent = c.question + "：" + label[c.before.decision] + (c.before.entry ? " " + c.before.entry : "") + " → " + label[c.after.decision] + (c.after.entry ? " " + c.after.entry : "");
        $("#hit-changed").append(li);
      }
    }
    $("#hit-go").addEventListener("click", hitTest);
    $("#hit-q").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); hitTest(); } });
  }
  const scriptEditor = $("[data-script-editor]");
  if (scriptEditor) {
    const text = $("#script-text"), gutter = $("#gutter");
    const bad = new Set([...document.querySelectorAll("#script-errors li")].map((li) => Number(li.dataset.line)));
    const lines = () => {
      const n = text.value.split("\n").length;
      gutter.innerHTML = Array.from({ length: n }, (_, i) => bad.has(i + 1) ? '<span class="bad">' + (i + 1) + "</span>" : String(i + 1)).join("\n");
      gutter.scrollTop = text.scrollTop;
    };
    text.addEventListener("input", lines);
    text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });
    lines();
    $("#dry-go").addEventListener("click", async () => {
      const inputs = $("#dry-inputs").value.split("\n").map((s) => s.trim()).filter(Boolean);
      const r = await postJson("/api/v1/admin/scripts/" + encodeURIComponent(scriptEditor.dataset.file) + "/dry-run", { text: text.value, inputs });
      const out = $("#dry-out");
      out.innerHTML = "";
      if (!r.ok) {
        for (const e of (r.body.errors || [{ line: 0, message: r.body.message }])) {
          const li = document.createElement("li"); li.className = "event error";
          li.textContent = (e.line ? "第 " + e.line + " 行：" : "") + e.message; out.append(li);
        }
        return;
      }
      for (const t of r.body.turns) {
        const li = document.createElement("li"); li.className = "event";
        li.innerHTML = '<div class="meta">客户经理：' + esc(t.input) + "</div>" + t.replies.map((x) => '<div class="text">' + esc(x) + "</div>").join("");
        out.append(li);
      }
    });
  }

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
