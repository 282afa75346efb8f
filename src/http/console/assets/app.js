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

  // --- Keyboard --------------------------------------------------------------------------
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const rows = () => [...document.querySelectorAll("#queue-body tr[data-number]")];
  let current = -1;
  const focusRow = (i) => {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(i, all.length - 1));
    all.forEach((r, k) => r.classList.toggle("focused", k === current));
    all[current].scrollIntoView({ block: "nearest" });
  };
  const keys = $("#keys");
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && keys && !keys.hidden) { keys.hidden = true; return; }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    const act = {
      "?": () => { if (keys) keys.hidden = !keys.hidden; },
      "/": () => { const q = $('input[name="q"]') || $("#faq-q"); if (q) q.focus(); },
      j: () => focusRow(current + 1),
      k: () => focusRow(current - 1),
      Enter: () => { const r = rows()[current]; if (r) location.href = "/console/tickets/" + encodeURIComponent(r.dataset.number); },
      r: () => { const t = $("#reply-text"); if (t) { t.form.dataset.mode = "reply"; t.focus(); } },
      n: () => {
        const t = $("#reply-text");
        if (!t) return;
        t.form.dataset.mode = "note";
        t.placeholder = "内部备注（不会推送），Ctrl+Enter 保存";
        t.focus();
      },
      a: () => { const b = $('button[formaction$="/claim"]'); if (b && !b.disabled) b.click(); },
      s: () => { const sel = $('select[name="status"]'); if (sel) sel.focus(); },
    }[e.key];
    if (act) { e.preventDefault(); act(); }
  });
  // A reply with attachments goes as multipart to its own route.
  const files = $("#reply-files");
  if (files) {
    files.form.addEventListener("submit", (e) => {
      const note = files.form.dataset.mode === "note" && !e.submitter;
      const toNote = e.submitter && e.submitter.getAttribute("formaction");
      if (files.files.length && !note && !toNote) {
        files.form.enctype = "multipart/form-data";
        files.form.action = files.form.action.replace(/\/reply$/, "/reply-files");
      }
    });
  }
  // After "n", Ctrl+Enter and the send button save a note instead of a reply.
  const replyForm = $("form.reply");
  if (replyForm && replyForm.action.includes("/console/tickets/")) {
    replyForm.addEventListener("submit", (e) => {
      if (replyForm.dataset.mode === "note" && !e.submitter) {
        replyForm.action = replyForm.action.replace(/\/reply$/, "/note");
      }
    });
  }

  // --- Templates: "/" in the reply box lists them; a click inserts one ----------------------
  const tplList = $("#tpl-list"), replyBox = $("#reply-text");
  if (tplList && replyBox) {
    const items = [...tplList.querySelectorAll("button[data-body]")];
    const filter = () => {
      const v = replyBox.value;
      const m = v.match(/^\/(\S*)$/);
      if (!m || !items.length) { tplList.hidden = true; return; }
      let shown = 0;
      for (const b of items) {
        const ok = b.textContent.includes(m[1]);
        b.parentElement.hidden = !ok;
        if (ok) shown++;
      }
      tplList.hidden = shown === 0;
    };
    replyBox.addEventListener("input", filter);
    tplList.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-body]");
      if (!b) return;
      replyBox.value = b.dataset.body;
      tplList.hidden = true;
      replyBox.focus();
    });
  }
  // "保存视图" saves the queue's current filters.
  const viewQuery = $("#save-view-query");
  if (viewQuery) viewQuery.value = location.search.replace(/^\?/, "");

  // --- Collision warnings: who else has this ticket open, who is typing --------------------
  const presenceEl = $("#presence");
  if (presenceEl && ticket) {
    let typedAt = 0;
    if (replyBox) replyBox.addEventListener("input", () => { typedAt = Date.now(); });
    const beat = async () => {
      const typing = !!replyBox && replyBox.value.trim() !== "" && Date.now() - typedAt < 10000;
      const r = await postJson("/console/tickets/" + encodeURIComponent(ticket.dataset.number) + "/presence", { typing });
      if (!r.ok) return;
      presenceEl.textContent = r.body.others
        .map((o) => o.login + (o.typing ? " 正在输入回复…" : " 也在查看此工单"))
        .join("；");
      presenceEl.classList.toggle("active", r.body.others.length > 0);
    };
    beat();
    setInterval(beat, 5000);
  }

  // --- Bulk actions in the queue -----------------------------------------------------------
  const bulk = $("#bulk");
  if (bulk) {
    const picked = new Set();
    let last = null;
    const show = () => {
      bulk.hidden = picked.size === 0;
      $("#bulk-count").textContent = "已选 " + picked.size + " 个";
      const action = $("#bulk-action").value;
      bulk.querySelectorAll("[data-for]").forEach((el) => { el.hidden = el.dataset.for !== action; });
    };
    $("#bulk-action").addEventListener("change", show);
    document.addEventListener("click", (e) => {
      const box = e.target.closest && e.target.closest("input.pick");
      if (box) {
        const all = [...document.querySelectorAll("input.pick")];
        if (e.shiftKey && last) {
          const [a, b] = [all.indexOf(last), all.indexOf(box)].sort((x, y) => x - y);
          all.slice(a, b + 1).forEach((c) => { c.checked = box.checked; });
        }
        last = box;
        all.forEach((c) => { if (c.checked) picked.add(c.value); else picked.delete(c.value); });
        show();
      }
      if (e.target.id === "pick-page") {
        document.querySelectorAll("input.pick").forEach((c) => { c.checked = e.target.checked; if (c.checked) picked.add(c.value); else picked.delete(c.value); });
        show();
      }
    });
    $("#pick-all").addEventListener("click", async () => {
      const q = new URLSearchParams(location.search);
      q.delete("page"); q.delete("per_page");
      const r = await fetch("/api/v1/tickets?" + q.toString(), { credentials: "same-origin" });
      if (!r.ok) return;
      for (const t of (await r.json()).tickets) picked.add(t.number);
      document.querySelectorAll("input.pick").forEach((c) => { c.checked = picked.has(c.value); });
      show();
    });
    $("#bulk-go").addEventListener("click", async () => {
      const action = $("#bulk-action").value;
      const body = { numbers: [...picked], action };
      if (action === "assign") body.assignee = $("#bulk-assignee").value;
      if (action === "status") { body.status = $("#bulk-status").value; body.reason = $("#bulk-reason").value; }
      if (action === "category") body.category = $("#bulk-category").value;
      if (action === "priority") body.priority = $("#bulk-priority").value;
      if (action === "merge") body.into = $("#bulk-into").value.trim();
      const r = await postJson("/api/v1/tickets/bulk", body);
      if (!r.ok) { $("#bulk-result").textContent = r.body.message || "失败"; return; }
      const failed = r.body.results.filter((x) => !x.ok);
      $("#bulk-result").textContent = "成功 " + r.body.ok + " 个" + (failed.length ? "；未完成：" + failed.map((x) => x.number + "（" + x.message + "）").join("、") : "");
      picked.clear();
      document.querySelectorAll("input.pick").forEach((c) => { c.checked = false; });
      refresh("/console/queue/rows" + location.search, $("#queue-live"));
      bulk.hidden = false;
    });
    show();
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
