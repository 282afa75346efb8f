//! The simulator's chat page: one self-contained HTML document (no CDN, works offline).
//! A person picks a member, a chat (1:1 with the app, 1:1 with the AI bot, the group where
//! the bot is @-mentioned, or the read-only handler group) and talks like an agent would.

pub(super) const PAGE: &str = r##"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>企业微信模拟器 · 事件助手</title>
<style>
  :root { --green:#07c160; --bg:#ededed; --line:#ddd; --ink:#1f1f1f; --muted:#888; --blue:#2b6de5; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.5 -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; color:var(--ink); background:#f7f7f7; height:100vh; height:100dvh; display:flex; overflow:hidden; }
  aside { width:260px; background:#2e2e2e; color:#eee; display:flex; flex-direction:column; }
  aside h1 { font-size:15px; margin:0; padding:14px 16px; border-bottom:1px solid #444; }
  aside label { padding:10px 16px 4px; color:#aaa; font-size:12px; }
  aside select { margin:0 16px 8px; padding:6px; border-radius:4px; border:0; }
  .chat-item { padding:10px 16px; cursor:pointer; border-left:3px solid transparent; }
  .chat-item small { display:block; color:#999; }
  .chat-item.active, .chat-item:hover { background:#3a3a3a; border-left-color:var(--green); }
  main { flex:1; display:flex; flex-direction:column; min-width:0; min-height:0; }
  header { padding:12px 18px; border-bottom:1px solid var(--line); background:#fff; font-weight:600; }
  header small { font-weight:normal; color:var(--muted); margin-left:8px; }
  #messages { flex:1; min-height:0; overflow-y:auto; padding:16px 18px; background:var(--bg); }
  .msg { display:flex; margin:10px 0; gap:8px; align-items:flex-start; }
  .msg .who { font-size:12px; color:var(--muted); }
  .msg > div { min-width:0; max-width:80%; }
  .msg .bubble { max-width:560px; background:#fff; border-radius:6px; padding:8px 12px; white-space:pre-wrap; word-break:break-word; overflow:hidden; box-shadow:0 1px 1px rgba(0,0,0,.05); }
  .bubble .quote { display:block; border-left:3px solid #ccc; padding-left:8px; color:#555; }
  .msg.mine { flex-direction:row-reverse; }
  .msg.mine .bubble { background:#95ec69; }
  .msg .meta { font-size:11px; color:var(--muted); margin-top:2px; }
  .msg.mine .meta { text-align:right; }
  .msg.dropped .bubble { opacity:.45; text-decoration:line-through; }
  .bubble img { max-width:min(220px, 100%); max-height:220px; display:block; margin-top:4px; border-radius:4px; cursor:zoom-in; }
  .card { border:1px solid #e3e3e3; border-radius:6px; background:#fff; padding:10px 12px; min-width:min(260px, 60vw); }
  .card .title { font-weight:600; margin-bottom:4px; }
  .card .desc { color:#555; white-space:pre-wrap; }
  .card .buttons { display:flex; gap:6px; flex-wrap:wrap; margin-top:8px; }
  .card button { border:1px solid var(--blue); background:#fff; color:var(--blue); border-radius:4px; padding:4px 10px; cursor:pointer; }
  .card button.primary { background:var(--blue); color:#fff; }
  .card .options label { display:inline-block; margin-right:8px; }
  .card .replaced { margin-top:8px; color:var(--muted); }
  footer { border-top:1px solid var(--line); background:#fff; padding:10px 14px; }
  footer .row { display:flex; gap:8px; align-items:flex-end; }
  footer textarea { flex:1; resize:none; height:64px; padding:8px; border:1px solid var(--line); border-radius:4px; font:inherit; }
  footer button { background:var(--green); color:#fff; border:0; border-radius:4px; padding:8px 18px; cursor:pointer; font:inherit; }
  footer .tools { display:flex; gap:12px; align-items:center; color:var(--muted); font-size:12px; margin-bottom:6px; }
  #status { color:#c0392b; font-size:12px; min-height:16px; }
  .monitor { margin-top:auto; border-top:1px solid #444; padding-bottom:12px; display:flex; flex-direction:column; }
  .monitor-buttons { display:flex; gap:6px; padding:0 16px; }
  .monitor button { flex:1; border:0; border-radius:4px; padding:6px; cursor:pointer; background:#c0392b; color:#fff; font:inherit; font-size:12px; }
  .monitor button#alert-resolve { background:#2e8b57; }
  #alert-status { padding:6px 16px 0; font-size:12px; color:#ccc; min-height:18px; }
  .readonly footer { display:none; }
  @media (max-width: 720px) {
    body { flex-direction:column; }
    aside { width:auto; flex:none; }
    aside h1 { display:none; }
    aside label { display:none; }
    aside select { margin:6px 10px; }
    #chats { display:flex; overflow-x:auto; }
    .chat-item { white-space:nowrap; padding:6px 10px; }
    .chat-item small { display:none; }
    header { padding:8px 12px; }
    #messages { padding:10px; }
    footer textarea { height:44px; }
  }
</style>
</head>
<body>
<aside>
  <h1>企业微信模拟器</h1>
  <label for="member">我是</label>
  <select id="member"></select>
  <label>会话</label>
  <div id="chats"></div>
  <div class="monitor" id="monitor">
    <label>监控告警（模拟 Alertmanager）</label>
    <div class="monitor-buttons">
      <button type="button" id="alert-fire">触发示例告警</button>
      <button type="button" id="alert-resolve">恢复告警</button>
    </div>
    <div id="alert-status"></div>
  </div>
</aside>
<main id="main">
  <header id="title">选择会话</header>
  <div id="messages"></div>
  <footer>
    <div class="tools">
      <label>截图 <input type="file" id="file" accept="image/*" multiple></label>
      <span id="hint"></span>
    </div>
    <div class="row">
      <textarea id="text" placeholder="输入消息，Enter 发送，Shift+Enter 换行"></textarea>
      <button id="send">发送</button>
    </div>
    <div id="status"></div>
  </footer>
</main>
<script>
"use strict";
const base = location.pathname.replace(/\/$/, "");
let state = null, member = null, chat = null, after = 0, polling = 0;
const names = {};
const $ = (s) => document.querySelector(s);

function esc(s) { return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c])); }
function render(text, kind) {
  let h = esc(text);
  h = h.replace(/&lt;@([A-Za-z0-9_.-]+)&gt;/g, (_, u) => "@" + esc(names[u] || u));
  if (kind === "markdown") {
    h = h.replace(/\*\*(.+?)\*\*/g, "<b>$1</b>")
         .replace(/&lt;font color=&quot;\w+&quot;&gt;(.*?)&lt;\/font&gt;/g, "$1")
         .replace(/\[([^\]]+)\]\((https?:[^)]+)\)/g, '<a href="$2" target="_blank">$1</a>')
         .replace(/^&gt;(.*)$/gm, '<span class="quote">$1</span>');
  }
  return h;
}

async function alertAction(action) {
  const out = $("#alert-status");
  try {
    const r = await fetch(base + "/api/alert", { method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({ action }) });
    const j = await r.json();
    if (!r.ok) { out.textContent = j.error || j.errmsg || "失败"; return; }
    const g = j.gateway || {};
    const list = (g.incidents || []).join("、");
    out.textContent = j.gateway_status >= 300 ? "网关拒绝：" + (g.message || j.gateway_status)
      : (action === "fire" ? "已触发" : "已恢复") + (list ? "，事件 " + list : "");
  } catch (e) { out.textContent = "发送失败"; }
}
document.addEventListener("DOMContentLoaded", () => {
  $("#alert-fire").addEventListener("click", () => alertAction("fire"));
  $("#alert-resolve").addEventListener("click", () => alertAction("resolve"));
});

async function api(path, body) {
  const r = await fetch(base + path, body === undefined ? {} : { method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}

function chatsFor(m) {
  return [
    { id: "app:" + m, name: "事件助手（应用）", sub: "与应用单聊" },
    { id: "bot:" + m, name: state.bot_name + "（机器人）", sub: "与智能机器人单聊" },
    { id: state.group.chat, name: state.group.name, sub: "群聊 · @" + state.bot_name },
    { id: "robot", name: state.handler_group.name, sub: "群机器人通知（只读）" },
  ];
}

function drawChats() {
  const box = $("#chats"); box.innerHTML = "";
  for (const c of chatsFor(member)) {
    const d = document.createElement("div");
    d.className = "chat-item" + (c.id === chat ? " active" : "");
    d.dataset.chat = c.id;
    d.innerHTML = esc(c.name) + "<small>" + esc(c.sub) + "</small>";
    d.onclick = () => openChat(c.id);
    box.appendChild(d);
  }
}

function openChat(id) {
  chat = id; after = 0; polling++;
  $("#messages").innerHTML = "";
  const c = chatsFor(member).find(x => x.id === id);
  $("#title").innerHTML = esc(c.name) + "<small>" + esc(c.sub) + "</small>";
  $("#main").classList.toggle("readonly", id === "robot");
  $("#hint").textContent = id.startsWith("group:") ? "群聊中截图需与文字一起发送（自动@机器人）" : "";
  drawChats();
  poll(polling);
}

function cardHtml(m) {
  const c = m.card || {};
  const title = (c.main_title && c.main_title.title) || c.title || "";
  const desc = (c.main_title && c.main_title.desc) || c.description || c.sub_title_text || "";
  let h = '<div class="card"><div class="title">' + esc(title) + '</div>';
  if (desc) h += '<div class="desc">' + esc(desc) + '</div>';
  if (c.horizontal_content_list) for (const kv of c.horizontal_content_list) h += '<div class="desc">' + esc(kv.keyname) + "：" + esc(kv.value || "") + "</div>";
  if (m.replaced) {
    h += '<div class="replaced">' + esc(m.replaced) + "</div>";
  } else if (c.checkbox && c.checkbox.option_list) {
    h += '<div class="options">' + c.checkbox.option_list.map(o => '<label><input type="radio" name="q' + m.seq + '" value="' + esc(o.id) + '"> ' + esc(o.text) + "</label>").join("") + "</div>";
    if (c.submit_button) h += '<div class="buttons"><button class="primary" data-seq="' + m.seq + '" data-key="' + esc(c.submit_button.key) + '" data-q="' + esc(c.checkbox.question_key) + '">' + esc(c.submit_button.text) + "</button></div>";
  } else if (c.button_list) {
    const sel = c.button_selection;
    if (sel) {
      h += '<div class="options">' + esc(sel.title || "") + ' <select class="card-select" data-seq="' + m.seq + '" data-q="' + esc(sel.question_key) + '">' +
        sel.option_list.map(o => '<option value="' + esc(o.id) + '"' + (o.id === sel.selected_id ? " selected" : "") + ">" + esc(o.text) + "</option>").join("") + "</select></div>";
    }
    h += '<div class="buttons">' + c.button_list.map(b => '<button data-seq="' + m.seq + '" data-key="' + esc(b.key) + '">' + esc(b.text) + "</button>").join("") + "</div>";
  } else if (c.url) {
    h += '<div class="buttons"><a href="' + esc(c.url) + '" target="_blank">' + esc(c.btntxt || "详情") + "</a></div>";
  }
  return h + "</div>";
}

function addMessage(m) {
  const mine = m.from === member;
  const d = document.createElement("div");
  d.className = "msg" + (mine ? " mine" : "") + (m.dropped ? " dropped" : "");
  d.dataset.seq = m.seq; d.dataset.from = m.from; d.dataset.kind = m.kind;
  const who = m.from === "app" ? "事件助手" : m.from === "bot" ? state.bot_name : m.from === "robot" ? "群机器人" : (names[m.from] || m.from);
  let body = m.card && (m.kind === "template_card" || m.kind === "textcard" || m.kind === "news") ? cardHtml(m) : render(m.text, m.kind);
  for (const u of m.images || []) body += '<img src="' + esc(u) + '" alt="截图" onclick="window.open(this.src)">';
  let meta = new Date(m.at_ms).toLocaleTimeString();
  if (m.delivery) meta += " · " + m.delivery;
  if (m.dropped) meta += " · 超出频率被丢弃";
  if (m.truncated) meta += " · 已截断";
  d.innerHTML = '<div><div class="who">' + esc(who) + '</div><div class="bubble">' + body + '</div><div class="meta">' + esc(meta) + "</div></div>";
  const old = document.querySelector('#messages .msg[data-seq="' + m.seq + '"]');
  if (old) old.replaceWith(d); else $("#messages").appendChild(d);
}

async function poll(gen) {
  while (gen === polling) {
    try {
      const r = await fetch(base + "/api/messages?chat=" + encodeURIComponent(chat) + "&after=" + after + "&wait_ms=20000");
      const list = await r.json();
      if (gen !== polling) return;
      for (const m of list) { addMessage(m); after = Math.max(after, m.seq); }
      if (list.length) $("#messages").scrollTop = 1e9;
    } catch (e) { await new Promise(res => setTimeout(res, 1000)); }
  }
}

async function refreshPending() {
  // Delivery labels change after a message was first drawn: re-read the recent ones.
  const r = await fetch(base + "/api/messages?chat=" + encodeURIComponent(chat) + "&after=" + Math.max(0, after - 20));
  for (const m of await r.json()) addMessage(m);
}

async function send() {
  const text = $("#text").value.trim();
  const files = $("#file").files;
  if (!text && !files.length) return;
  $("#status").textContent = "";
  const form = new FormData();
  form.append("chat", chat); form.append("from", member);
  if (text) form.append("text", text);
  for (const f of files) form.append("file", f);
  $("#send").disabled = true;
  try {
    const r = await fetch(base + "/api/upload", { method: "POST", body: form });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || "发送失败");
    $("#text").value = ""; $("#file").value = "";
    await refreshPending();
  } catch (e) { $("#status").textContent = e.message; }
  finally { $("#send").disabled = false; $("#text").focus(); }
}

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest(".card button");
  if (!b) return;
  const seq = Number(b.dataset.seq);
  const body = { seq, from: member, key: b.dataset.key, selected: [] };
  if (b.dataset.q) {
    const picked = document.querySelector('input[name="q' + seq + '"]:checked');
    if (!picked) { $("#status").textContent = "请先选择一项"; return; }
    body.selected = [{ question_key: b.dataset.q, option_ids: [picked.value] }];
  }
  const select = document.querySelector('.card-select[data-seq="' + seq + '"]');
  if (select) body.selected.push({ question_key: select.dataset.q, option_ids: [select.value] });
  try { await api("/api/card", body); } catch (e) { $("#status").textContent = e.message; return; }
  // The card is updated by the desk a moment later (update_template_card): redraw it then.
  for (const ms of [300, 1000, 2500, 5000]) setTimeout(refreshPending, ms);
});

$("#send").onclick = send;
$("#text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } });
$("#member").onchange = () => { member = $("#member").value; openChat("app:" + member); };

(async () => {
  state = await api("/api/state");
  for (const m of state.members) {
    names[m.userid] = m.name;
    const o = document.createElement("option"); o.value = m.userid; o.textContent = m.name + "（" + m.userid + "）";
    $("#member").appendChild(o);
  }
  member = state.members[0].userid;
  openChat("app:" + member);
})();
</script>
</body>
</html>
"##;
