// Browser test of the console and the simulator page, in headless Debian chromium.
// Run by `cargo test` (tests/it/browser.rs), which starts the gateway and passes BASE_URL.
//
// 1. The simulator's chat page: a member sends 帮助 and sees the bot's reply.
// 2. A handler logs in; an agent files a ticket through the simulator; it appears in the
//    queue without a reload; the handler opens it, sees the screenshot, replies with
//    Ctrl+Enter; the reply reaches the agent's chat; the handler resolves it with a
//    category; the agent rates it on the card; the rating appears on the ticket page.
// 3. Incidents: the simulator's monitoring panel fires a sample alert; the incident appears
//    on the incidents page without a reload; the handler links the ticket and posts an
//    update, which reaches the agent's chat; the queue tags the ticket; resolving the alert
//    in the panel resolves the incident on its open page.
// 4. Reports: the board shows today's figures; the reports page draws its charts (non-empty
//    SVG) and a drill-down link opens the queue with the same filters.
// 6. Handler tools: keyboard (j/Enter/r), a template with variables found by "/", a macro,
//    bulk assign, and the collision warning with a second browser context.
// 5. The FAQ editor: an admin adds an entry (with a live preview and hit test), and an agent
//    in the simulator asking a paraphrase gets its answer.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const base = process.env.BASE_URL;
const shots = process.env.SHOTS_DIR || "";
if (!base) throw new Error("BASE_URL is not set");

const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==",
  "base64",
);

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
  console.log("ok -", what);
}

async function api(path, body) {
  const r = await fetch(base + "/sim/api" + path, body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(path + ": " + JSON.stringify(j));
  return j;
}

async function messages(chat) {
  return api("/messages?chat=" + encodeURIComponent(chat) + "&after=0");
}

async function waitFor(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function shot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

try {
  // --- 1. The simulator's chat page --------------------------------------------------------
  const agent = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  await agent.goto(base + "/sim/");
  await agent.waitForSelector('.chat-item[data-chat="app:zhangsan"]');
  await agent.click('.chat-item[data-chat="app:zhangsan"]');
  await agent.fill("#text", "帮助");
  await agent.press("#text", "Enter");
  await agent.waitForSelector('.msg[data-from="app"] .bubble >> text=事件助手');
  check(true, "the simulator page shows the bot's reply to 帮助");
  await shot(agent, "sim-chat");

  // The simulator at phone width: the chat pane scrolls, the newest message and the input
  // stay on screen, the page does not grow.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await phone.goto(base + "/sim/");
  await phone.waitForSelector('.chat-item[data-chat="app:zhangsan"]');
  for (let i = 0; i < 6; i++) {
    await phone.fill("#text", "帮助");
    await phone.press("#text", "Enter");
    await phone.waitForFunction((n) => document.querySelectorAll('.msg[data-from="app"]').length >= n, i + 2);
  }
  const inView = async (sel) => phone.evaluate((s) => {
    const all = document.querySelectorAll(s);
    const r = all[all.length - 1].getBoundingClientRect();
    return r.bottom <= window.innerHeight + 1 && r.top >= 0;
  }, sel);
  await phone.waitForTimeout(200);
  check(await inView("#text"), "the input is on screen at 390 px");
  check(await inView('.msg[data-from="app"]'), "the newest message is on screen at 390 px");
  check(await phone.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight + 1), "the page does not grow at 390 px");
  await shot(phone, "sim-phone");
  await phone.close();

  // --- 2. The console ----------------------------------------------------------------------
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(base + "/console/");
  await page.waitForURL("**/console/login");
  await page.fill('input[name="login"]', "handler");
  await page.fill('input[name="password"]', "wrong-password");
  await page.click('button[type="submit"]');
  await page.waitForSelector(".flash.error >> text=用户名或密码错误");
  check(true, "a wrong password is refused with a message");
  await page.fill('input[name="login"]', "handler");
  await page.fill('input[name="password"]', "handler-demo");
  await page.click('button[type="submit"]');
  await page.waitForURL("**/console/");
  check(await page.isVisible("text=工单队列") || (await page.title()).includes("工单队列"), "logged in to the queue");
  const before = await page.locator("#queue-body tr[data-number]").count();

  // The agent files a ticket (the page stays as it is: no reload).
  const say = (text) => api("/send", { chat: "app:zhangsan", from: "zhangsan", text });
  await say("提单");
  await say("11010519491231002X");
  await say("2");
  await say("早上九点半买入委托一直显示未报，客户很着急");
  await api("/send", { chat: "app:zhangsan", from: "zhangsan", images: [PNG.toString("base64")] });
  await say("完成");
  await say("提交");
  const row = await page.waitForSelector("#queue-body tr[data-number]:not(.empty) >> nth=0", { timeout: 15000 });
  await waitFor("the new row", async () => (await page.locator("#queue-body tr[data-number]").count()) > before);
  const number = await row.getAttribute("data-number");
  check(/^IT\d{8}-\d{4}$/.test(number), "the filed ticket " + number + " appeared without a reload");
  await shot(page, "queue");

  // The handler group's notice renders its markdown quotes (no literal ">"), and at phone
  // width a screenshot stays inside its bubble.
  const group = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await group.goto(base + "/sim/");
  await group.waitForSelector('.chat-item[data-chat="robot"]');
  await group.click('.chat-item[data-chat="robot"]');
  await group.waitForSelector(".msg .bubble .quote", { timeout: 15000 });
  check(!(await group.textContent("#messages")).includes(">报告人"), "markdown quotes render in 事件处理群");
  await group.click('.chat-item[data-chat="app:zhangsan"]');
  await group.waitForSelector(".msg .bubble img");
  check(await group.$$eval(".msg .bubble img", (imgs) => imgs.every((i) => {
    const b = i.closest(".bubble").getBoundingClientRect(), r = i.getBoundingClientRect();
    return r.right <= b.right + 1 && r.left >= b.left - 1;
  })), "screenshots stay inside their bubbles at 390 px");
  await group.close();

  // Open it: fields, the whole identifier, the screenshot.
  await page.click(`a[href="/console/tickets/${number}"]`);
  await page.waitForURL("**/console/tickets/" + number);
  check(await page.isVisible("text=11010519491231002X"), "the ticket page shows the whole identifier");
  const img = page.locator(".shots img.thumb").first();
  await img.waitFor();
  const loaded = await img.evaluate((el) => el.complete && el.naturalWidth > 0);
  check(loaded, "the screenshot is shown");

  // Reply with Ctrl+Enter; it reaches the agent's chat.
  const reply = "您好，已查到委托未报的原因，正在处理。";
  await page.fill("#reply-text", reply);
  await page.press("#reply-text", "Control+Enter");
  await page.waitForURL(/msg=replied/);
  check(await page.isVisible("text=" + reply), "the reply is in the thread");
  await waitFor("the reply in the agent's chat", async () =>
    (await messages("app:zhangsan")).some((m) => m.from === "app" && m.text.includes(reply)));
  check(true, "the reply reached the agent's chat in the simulator");
  await waitFor("the delivery state", async () => {
    await page.reload();
    return page.isVisible(".delivery.sent");
  });
  check(true, "the reply shows as sent");

  // Resolve: a category first, then the status with a reason.
  await page.selectOption('select[name="category"]', "program");
  await page.click('form[action$="/category"] button[type="submit"]');
  await page.waitForURL(/msg=category/);
  await page.selectOption('select[name="status"]', "resolved");
  await page.fill('input[name="reason"]', "交易系统已修复，请客户重新下单。");
  await page.click('form[action$="/status"] button[type="submit"]');
  await page.waitForURL(/msg=status/);
  check((await page.textContent("#ticket-status")).includes("已解决"), "resolved with a category");
  await shot(page, "ticket-resolved");

  // The agent rates it on the card in the simulator's page: the card updates in place (no
  // reopening the chat), and the ticket page updates by itself.
  await agent.waitForSelector('.card .card-select', { timeout: 15000 });
  await agent.selectOption('.card .card-select', "4");
  await agent.click('.card button[data-key="rate_solved"]');
  await agent.waitForSelector(".card .replaced", { timeout: 15000 });
  check((await agent.textContent(".card .replaced")).includes("已评价"), "the card updates in the simulator page after the click");
  await page.waitForSelector("#ticket-rating >> text=满意度 4 分", { timeout: 15000 });
  check(true, "the agent's rating shows on the ticket without a reload");
  check((await page.textContent("#ticket-status")).includes("已关闭"), "a solved rating closes the ticket");
  await shot(page, "ticket-rated");

  // --- 3. Incidents ------------------------------------------------------------------------
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(base + "/console/incidents");
  await page.waitForSelector("text=当前没有进行中的事件");
  await agent.click("#alert-fire");
  await agent.waitForSelector("#alert-status >> text=已触发");
  const incidentRow = await page.waitForSelector("#incidents-active tr[data-number]", { timeout: 15000 });
  const incident = await incidentRow.getAttribute("data-number");
  check(/^INC\d{8}-\d{3}$/.test(incident), "the alert became incident " + incident + " on the list without a reload");
  await shot(page, "incidents");
  await page.click(`a[href="/console/incidents/${incident}"]`);
  await page.waitForURL("**/console/incidents/" + incident);
  check(await page.isVisible("text=TradeGatewayLatency"), "the incident page lists its alert");
  check(await page.isVisible("text=system=trading"), "the alert's labels are shown");
  await page.fill('input[name="ticket"]', number);
  await page.click('form[action$="/link"] button[type="submit"]');
  await page.waitForURL(/msg=linked/);
  check(await page.isVisible(`#incident-tickets a[href="/console/tickets/${number}"]`), "the ticket is linked");
  const update = "交易网关已切换到备用线路，正在观察。";
  await page.fill("#reply-text", update);
  await page.click('form[action$="/update"] button.primary');
  await page.waitForURL(/msg=updated/);
  await waitFor("the incident update in the agent's chat", async () =>
    (await messages("app:zhangsan")).some((m) => m.from === "app" && m.text.includes(update)));
  check(true, "the update reached the linked reporter's chat in the simulator");
  await page.goto(base + "/console/?status=all");
  check(await page.isVisible(`tr[data-number="${number}"] a.tag.incident >> text=${incident}`), "the queue tags the ticket with its open incident");
  await page.goto(base + "/console/incidents/" + incident);
  await page.waitForSelector("#incident-status >> text=待响应");
  await agent.click("#alert-resolve");
  await page.waitForSelector("#incident-status >> text=已恢复", { timeout: 15000 });
  check(true, "resolving the alert resolves the incident on its open page");
  await shot(page, "incident-resolved");
  await waitFor("the resolution in the agent's chat", async () =>
    (await messages("app:zhangsan")).some((m) => m.from === "app" && m.text.includes(incident) && m.text.includes("已恢复")));
  check(true, "the resolution reached the reporter");
  await page.goto(base + "/console/tickets/" + number);
  check(await page.isVisible(`#ticket-incident >> text=${incident}`), "the ticket page names its incident");
  check(pageErrors.length === 0, "no script errors on the incident pages: " + pageErrors.join(" | "));

  // --- 4. Board and reports -----------------------------------------------------------------
  await page.goto(base + "/console/board");
  const filedToday = Number(await page.textContent("#tile-filed-today"));
  check(filedToday >= 1, "the board shows today's filed tickets: " + filedToday);
  await page.goto(base + "/console/reports");
  const charts = await page.$$eval(".chart svg", (svgs) => svgs.map((s) => s.querySelectorAll("rect").length));
  check(charts.length === 5 && charts.every((n) => n > 0), "the reports page draws five non-empty charts: " + charts.join(","));
  await shot(page, "reports");
  await page.click("#by-category a >> text=程序类");
  await page.waitForURL(/\/console\/\?status=all&from=.*category=program/);
  check(await page.isVisible(`#queue-body tr[data-number="${number}"]`), "the 程序类 drill-down opens the queue with the ticket");
  check(pageErrors.length === 0, "no script errors on the board and reports pages: " + pageErrors.join(" | "));

  // --- 6. Handler tools ---------------------------------------------------------------------
  const fileAs = async (member, text) => {
    const chat = "app:" + member;
    const send = (t) => api("/send", { chat, from: member, text: t });
    for (const t of ["提单", "11010519491231002X", "2", text]) await send(t);
    await api("/send", { chat, from: member, images: [PNG.toString("base64")] });
    await send("完成");
    await send("提交");
    return waitFor("the ticket of " + member, async () => {
      const m = (await messages(chat)).reverse().find((x) => x.from === "app" && /工单已提交：IT\d{8}-\d{4}/.test(x.text));
      return m && m.text.match(/IT\d{8}-\d{4}/)[0];
    });
  };
  const t1 = await fileAs("lisi", "委托撤单一直失败，提示系统繁忙");
  const t2 = await fileAs("zhaoliu", "银证转账转不进来，提示存管银行异常");
  await page.goto(base + "/console/tools");
  await page.fill('#template-form input[name="name"]', "已收到");
  await page.fill('#template-form textarea[name="body"]', "{报告人}您好，工单 {工单号}（{系统}）已收到，正在处理。— {处理人}");
  await page.click('#template-form button[type="submit"]');
  await page.waitForURL(/msg=saved/);
  await page.fill('#macro-form input[name="name"]', "请补截图");
  await page.selectOption('#macro-form select[name="status"]', "need_info");
  await page.fill('#macro-form input[name="reason"]', "请补充报错截图");
  await page.check('#macro-form input[name="assign_me"]');
  await page.click('#macro-form button[type="submit"]');
  await page.waitForURL(/msg=saved/);
  // Keyboard: j selects the newest row, Enter opens it, r goes to the reply box.
  await page.goto(base + "/console/");
  await page.waitForSelector(`#queue-body tr[data-number="${t2}"]`);
  await page.keyboard.press("?");
  check(await page.isVisible("#keys"), "? shows the shortcuts");
  await page.keyboard.press("?");
  await page.keyboard.press("j");
  check(await page.isVisible("#queue-body tr.focused"), "j selects a row, visibly");
  const chosen = await page.getAttribute("#queue-body tr.focused", "data-number");
  await page.keyboard.press("Enter");
  await page.waitForURL("**/console/tickets/" + chosen);
  check(true, "Enter opens the selected ticket");
  await page.keyboard.press("r");
  check(await page.evaluate(() => document.activeElement.id) === "reply-text", "r focuses the reply box");
  await page.keyboard.type("/已收");
  await page.waitForSelector("#tpl-list button >> text=已收到");
  await page.click("#tpl-list button >> text=已收到");
  const filled = await page.inputValue("#reply-text");
  check(filled.includes(chosen) && filled.includes("— handler") && !filled.includes("{"), "the template's variables are filled: " + filled);
  await page.press("#reply-text", "Control+Enter");
  await page.waitForURL(/msg=replied/);
  // The macro: 待补充 and assigned to me in one click.
  await page.click("#macros button >> text=请补截图");
  await page.waitForURL(/msg=macro/);
  check((await page.textContent("#ticket-status")).includes("待补充"), "the macro set 待补充");
  // Collision: the admin opens the same ticket and types.
  const other = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const adminPage = await other.newPage();
  await adminPage.goto(base + "/console/login");
  await adminPage.fill('input[name="login"]', "admin");
  await adminPage.fill('input[name="password"]', "admin-demo");
  await adminPage.click('button[type="submit"]');
  await adminPage.waitForURL("**/console/");
  await adminPage.goto(base + "/console/tickets/" + chosen);
  await adminPage.fill("#reply-text", "我来回复这个");
  await adminPage.type("#reply-text", "。");
  await page.waitForSelector("#presence >> text=admin 正在输入回复", { timeout: 20000 });
  check(true, "the handler sees the admin typing on the same ticket");
  await other.close();
  // Bulk: select both new tickets, assign them to admin.
  await page.goto(base + "/console/");
  await page.waitForSelector(`input.pick[value="${t1}"]`);
  await page.check(`input.pick[value="${t1}"]`);
  await page.check(`input.pick[value="${t2}"]`);
  await page.selectOption("#bulk-action", "assign");
  await page.selectOption("#bulk-assignee", "admin");
  await page.click("#bulk-go");
  await page.waitForSelector("#bulk-result >> text=成功 2 个");
  check(true, "bulk assign of two tickets");
  await waitFor("the rows to show the assignee", async () => {
    const cells = await page.$$eval(`#queue-body tr[data-number="${t1}"] td, #queue-body tr[data-number="${t2}"] td`, (tds) => tds.map((td) => td.textContent));
    return cells.filter((c) => c.trim() === "admin").length === 2;
  });
  check(pageErrors.length === 0, "no script errors with the handler tools: " + pageErrors.join(" | "));

  // Phone width: the queue stays usable.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(base + "/console/?status=all");
  check(await page.isVisible(`a[href="/console/tickets/${number}"]`), "the queue works at phone width");
  await shot(page, "queue-phone");

  // The queue ticks by itself: its rows are fetched again within a minute without any event.
  await page.goto(base + "/console/?status=all");
  await page.waitForRequest((r) => r.url().includes("/console/queue/rows"), { timeout: 75000 });
  check(true, "the queue refreshes its SLA countdowns and ages by itself");

  // The admin page loads without console errors (the username pattern is valid under
  // Chromium's v-flag regex, the CSP blocks nothing the page needs).
  const admin = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  admin.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  admin.on("pageerror", (e) => errors.push(String(e)));
  await admin.goto(base + "/console/login");
  await admin.fill('input[name="login"]', "admin");
  await admin.fill('input[name="password"]', "admin-demo");
  await admin.click('button[type="submit"]');
  await admin.waitForURL("**/console/");
  await admin.goto(base + "/console/admin");
  await admin.waitForSelector("text=添加账号");
  await admin.fill('input[name="login"]', "bad name!");
  check(!(await admin.$eval('input[name="login"]', (i) => i.checkValidity())), "the username pattern validates in the browser");
  check(errors.length === 0, "no console errors on the admin page: " + errors.join(" | "));

  // --- 5. The FAQ editor ----------------------------------------------------------------------
  await admin.goto(base + "/console/admin/kb/edit");
  await admin.fill('input[name="id"]', "bse-ipo");
  await admin.fill('input[name="question"]', "北交所新股怎么申购？");
  await admin.fill('textarea[name="similar"]', "北交所打新怎么操作\n北交所新股申购流程");
  await admin.fill('input[name="system"]', "交易");
  await admin.fill("#answer", "**北交所新股申购**需要先开通北交所交易权限，再在申购日通过“新股申购”菜单申购。");
  await admin.waitForSelector("#preview b >> text=北交所新股申购");
  check(true, "the preview renders the answer as WeCom would");
  await admin.click('#entry-form button[type="submit"]');
  await admin.waitForURL(/msg=saved/);
  await admin.fill("#hit-q", "北交所的新股要怎么申购");
  await admin.click("#hit-go");
  await admin.waitForSelector("#hit-live li >> text=bse-ipo", { timeout: 15000 });
  check(true, "the hit test ranks the new entry");
  const ask = "北交所的新股要怎么申购";
  await api("/send", { chat: "app:wangwu", from: "wangwu", text: ask });
  await waitFor("the new entry's answer in the agent's chat", async () =>
    (await messages("app:wangwu")).some((m) => m.from === "app" && m.text.includes("北交所交易权限")));
  check(true, "an agent asking a paraphrase gets the new entry's answer");
  await admin.goto(base + "/console/admin/scripts/report.toml");
  await admin.waitForSelector("#gutter");
  await admin.click("#dry-go");
  await admin.waitForSelector("#dry-out li >> text=第2步", { timeout: 15000 });
  check(true, "the script editor's dry run plays the flow");
  check(errors.length === 0, "no console errors on the editors: " + errors.join(" | "));
  await admin.close();
  console.log("all browser checks passed");
} finally {
  await browser.close();
}
