//! The console and its API over real HTTP: login, sessions, CSRF, roles, every bad input,
//! queue filters, live events, media, SLA announcements and publishing FAQ drafts.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use wecom_helpdesk::tickets::{Category, Status};

use super::common::{TestApp, file_ticket, repo_root};

/// A browser-like client: no automatic redirects, cookies kept by hand.
struct Console {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
    csrf: String,
}

fn token_in(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..at + html[at..].find('"').expect("end")].to_owned()
}

impl Console {
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client")
    }

    fn new(app: &TestApp) -> Console {
        Console {
            http: Console::client(),
            base: app.base.clone(),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    /// A new connection pool: after a body refused as too large the server closes the
    /// connection, and a request reusing it would fail instead of reaching the server.
    fn reconnect(&mut self) {
        self.http = Console::client();
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let s = v.to_str().expect("ascii");
            // The session is Lax (links from WeCom notices), the login form's token Strict.
            let same_site = if s.starts_with("hd_session=") {
                "SameSite=Lax"
            } else {
                "SameSite=Strict"
            };
            assert!(s.contains("HttpOnly") && s.contains(same_site), "{s}");
            let (kv, _) = s.split_once(';').unwrap_or((s, ""));
            let (k, val) = kv.split_once('=').expect("k=v");
            self.cookies.retain(|(name, _)| name != k);
            if !val.is_empty() {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.keep_cookies(&r);
        r
    }

    async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("post");
        self.keep_cookies(&r);
        r
    }

    /// Submit the admin page's 添加账号 form.
    async fn add_user(&mut self, login: &str, role: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf.clone();
        self.post_form(
            "/console/admin/users",
            &[
                ("_csrf", &csrf),
                ("login", login),
                ("role", role),
                ("password", password),
            ],
        )
        .await
    }

    async fn login(&mut self, login: &str, password: &str) -> reqwest::Response {
        let page = self.get("/console/login").await.text().await.expect("page");
        let token = token_in(&page);
        self.post_form(
            "/console/login",
            &[("login", login), ("password", password), ("_csrf", &token)],
        )
        .await
    }

    async fn logged_in(app: &TestApp, login: &str, password: &str) -> Console {
        let mut c = Console::new(app);
        let r = c.login(login, password).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login as {login}");
        let page = c.get("/console/").await.text().await.expect("queue");
        c.csrf = token_in(&page);
        c
    }

    /// A form action with this session's CSRF token.
    async fn act(
        &mut self,
        number: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let csrf = self.csrf.clone();
        let mut form = vec![("_csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post_form(&format!("/console/tickets/{number}/{action}"), &form)
            .await
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        if csrf {
            r = r.header("x-csrf-token", &self.csrf);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("api")
    }
}

async fn app_with_ticket() -> (TestApp, String) {
    let app = TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", "script-token-123")]).await;
    let number = file_ticket(
        &app.sim(),
        "app:zhangsan",
        "zhangsan",
        "客户账户里有钱但是买股票提示资金不足",
    )
    .await;
    (app, number)
}

fn events(app: &TestApp, number: &str) -> usize {
    let t = app
        .tickets()
        .by_number(number)
        .expect("read")
        .expect("ticket");
    app.tickets().events(t.id).expect("events").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_and_bad_credentials() {
    let app = TestApp::start().await;
    let mut c = Console::new(&app);
    // Anonymous: pages redirect to the login, the API answers 401.
    let r = c.get("/console/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/login");
    assert_eq!(
        c.get("/api/v1/tickets").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Wrong password: a clear message, no session.
    let r = c.login("handler", "wrong-password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.expect("page").contains("用户名或密码错误"));
    assert!(!c.cookies.iter().any(|(k, _)| k == "hd_session"));
    // A login post without the form's token is refused.
    let r = c
        .post_form(
            "/console/login",
            &[("login", "handler"), ("password", "handler-demo")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Right password: a session, the queue.
    let r = c.login("handler", "handler-demo").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = c.get("/console/").await.text().await.expect("queue");
    assert!(page.contains("工单队列") && page.contains("handler"));
    let csrf = token_in(&page);
    // Logout needs the token too; afterwards the session is gone.
    assert_eq!(
        c.post_form("/console/logout", &[]).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = c.post_form("/console/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(c.get("/console/").await.status(), StatusCode::SEE_OTHER);
    // An expired or forged session cookie is no session.
    c.cookies = vec![("hd_session".into(), "0".repeat(64))];
    assert_eq!(c.get("/console/").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(c.get("/api/v1/me").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited() {
    let app = TestApp::start().await;
    let mut c = Console::new(&app);
    for _ in 0..5 {
        assert_eq!(
            c.login("admin", "nope-nope").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = c.login("admin", "admin-demo").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let page = r.text().await.expect("page");
    assert!(
        page.contains("过于频繁") && page.contains("30 秒后再试"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_behind_one_address_can_all_log_in() {
    // Successful logins do not count: a shift starting behind one office NAT logs in freely.
    let app = TestApp::start().await;
    for _ in 0..8 {
        let mut c = Console::new(&app);
        assert_eq!(
            c.login("handler", "handler-demo").await.status(),
            StatusCode::SEE_OTHER
        );
    }
    // Invented names count against the address only, and grow nothing per name.
    let mut c = Console::new(&app);
    let long = "x".repeat(60_000);
    for _ in 0..3 {
        let status = c.login(&long, "whatever").await.status();
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::PAYLOAD_TOO_LARGE);
        c.reconnect();
    }
    assert_eq!(
        c.login("admin", "admin-demo").await.status(),
        StatusCode::SEE_OTHER,
        "the real admin is not locked out by someone else's failures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_keep_handlers_out_of_admin() {
    let app = TestApp::start().await;
    let mut h = Console::logged_in(&app, "handler", "handler-demo").await;
    assert_eq!(
        h.get("/console/admin").await.status(),
        StatusCode::FORBIDDEN
    );
    let r = h.add_user("mallory", "admin", "12345678x").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        app.services()
            .accounts
            .user("mallory")
            .expect("read")
            .is_none(),
        "nothing created"
    );
    let r = h
        .api(
            reqwest::Method::GET,
            "/api/v1/admin/outbox/dead",
            None,
            false,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "forbidden");

    let mut a = Console::logged_in(&app, "admin", "admin-demo").await;
    assert_eq!(a.get("/console/admin").await.status(), StatusCode::OK);
    let r = a.add_user("zhao.handler", "handler", "s3cure-pass").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The new account works.
    Console::logged_in(&app, "zhao.handler", "s3cure-pass").await;
    // A weak password is refused with a reason.
    let r = a.add_user("weak", "handler", "short").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_actions_and_every_bad_input() {
    let (app, number) = app_with_ticket().await;
    let mut c = Console::logged_in(&app, "handler", "handler-demo").await;
    let page = c
        .get(&format!("/console/tickets/{number}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("11010519491231002X"),
        "the whole identifier, here only"
    );
    let queue = c.get("/console/").await.text().await.expect("queue");
    assert!(
        queue.contains(&number) && !queue.contains("11010519491231002X"),
        "masked in the queue"
    );

    // Missing or wrong CSRF token: 403, nothing changed.
    let before = events(&app, &number);
    let r = c
        .post_form(
            &format!("/console/tickets/{number}/reply"),
            &[("text", "你好")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post_form(
            &format!("/console/tickets/{number}/reply"),
            &[("_csrf", "forged"), ("text", "你好")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Empty reply: a message, nothing changed.
    let r = c.act(&number, "reply", &[("text", "   ")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.expect("page").contains("内容不能为空"));
    // Unknown status, category, priority, assignee, action.
    assert_eq!(
        c.act(&number, "status", &[("status", "bogus")])
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.act(&number, "category", &[("category", "x")])
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.act(&number, "priority", &[("priority", "P9")])
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.act(&number, "assign", &[("assignee", "nobody")])
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.act(&number, "explode", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    // Resolving needs a category.
    let r = c
        .act(
            &number,
            "status",
            &[("status", "resolved"), ("reason", "已处理")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.expect("page").contains("请先设置问题分类"));
    // Unknown ticket, oversized body.
    assert_eq!(
        c.get("/console/tickets/IT20000101-9999").await.status(),
        StatusCode::NOT_FOUND
    );
    let huge = "字".repeat(40_000);
    // Refused with 413 as soon as the limit is passed; a client still sending may see the
    // connection close instead. Either way nothing is written.
    let csrf = c.csrf.clone();
    match reqwest::Client::new()
        .post(format!("{}/console/tickets/{number}/reply", c.base))
        .header("cookie", c.cookie_header())
        .form(&[("_csrf", csrf.as_str()), ("text", huge.as_str())])
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request() || e.is_body(), "refused: {e}"),
    }
    assert_eq!(events(&app, &number), before, "nothing was written");

    // The real actions.
    let actions: [(&str, &[(&str, &str)]); 6] = [
        ("claim", &[]),
        ("priority", &[("priority", "P2")]),
        ("note", &[("text", "内部：查清算流水")]),
        ("reply", &[("text", "您好，正在核查")]),
        ("category", &[("category", "data")]),
        (
            "status",
            &[("status", "resolved"), ("reason", "数据已修正")],
        ),
    ];
    for (action, form) in actions {
        let r = c.act(&number, action, form).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
    }
    let t = app.tickets().by_number(&number).expect("read").expect("t");
    assert_eq!(t.assignee.as_deref(), Some("handler"));
    assert_eq!(t.status, Status::Resolved);
    assert_eq!(t.category, Some(Category::Data));
    // The note never reached the agent; the reply did.
    let sim = app.sim();
    sim.wait_text("app:zhangsan", "zhangsan", 0, "您好，正在核查")
        .await;
    assert!(sim.messages("app:zhangsan", 0).await.iter().all(|m| {
        !m["text"]
            .as_str()
            .unwrap_or_default()
            .contains("查清算流水")
    }));
    // The reply shows its delivery state on the page.
    let page = c
        .get(&format!("/console/tickets/{number}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("推送：") && page.contains("内部备注"),
        "thread with delivery state"
    );

    // Closed: no more replies.
    assert_eq!(
        c.act(&number, "status", &[("status", "closed"), ("reason", "")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let before = events(&app, &number);
    let r = c.act(&number, "reply", &[("text", "再补一句")]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.expect("page").contains("工单已关闭"));
    assert_eq!(events(&app, &number), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_with_sessions_and_bearer_tokens() {
    let (app, number) = app_with_ticket().await;
    let c = Console::logged_in(&app, "handler", "handler-demo").await;
    let me: Value = c
        .api(reqwest::Method::GET, "/api/v1/me", None, false)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["login"], "handler");
    // Writes with a session need the CSRF header.
    let path = format!("/api/v1/tickets/{number}/reply");
    let r = c
        .api(
            reqwest::Method::POST,
            &path,
            Some(json!({ "text": "您好" })),
            false,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "csrf");
    // Malformed JSON: 422 with a message.
    let r = c
        .http
        .post(format!("{}{path}", c.base))
        .header("cookie", c.cookie_header())
        .header("x-csrf-token", &c.csrf)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = c
        .api(
            reqwest::Method::POST,
            &path,
            Some(json!({ "text": "您好，API 回复" })),
            true,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["ticket"]["status"], "in_progress");
    // A bearer token works without cookies or CSRF; a wrong one does not.
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{}/api/v1/tickets?status=all&q={number}", app.base))
        .bearer_auth("script-token-123")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(list["tickets"][0]["number"], number.as_str());
    let r = http
        .get(format!("{}/api/v1/tickets", app.base))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let detail: Value = http
        .get(format!("{}/api/v1/tickets/{number}", app.base))
        .bearer_auth("script-token-123")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(detail["events"].as_array().expect("events").len() >= 2);
    assert_eq!(
        http.get(format!("{}/api/v1/tickets/IT20000101-0000", app.base))
            .bearer_auth("script-token-123")
            .send()
            .await
            .expect("get")
            .status(),
        StatusCode::NOT_FOUND
    );
    let faq: Value = http
        .get(format!("{}/api/v1/faq/search?q=银证转账失败", app.base))
        .bearer_auth("script-token-123")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(faq["hits"][0]["id"], "bank-transfer-failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_filters_search_counts_and_live_events() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let a = file_ticket(&sim, "app:lisi", "lisi", "理财产品赎回资金三天没有到账").await;
    let b = file_ticket(&sim, "app:wangwu", "wangwu", "融资融券担保比例计算不对").await;
    let mut c = Console::logged_in(&app, "handler", "handler-demo").await;
    c.act(&b, "claim", &[]).await;
    let q = c
        .get("/console/?status=open")
        .await
        .text()
        .await
        .expect("queue");
    assert!(q.contains(&a) && q.contains(&b));
    assert!(
        q.contains("待处理 <b>2</b>") && q.contains("处理中 <b>0</b>"),
        "counts per status (claiming assigns, it does not start)"
    );
    let mine = c.get("/console/?mine=1").await.text().await.expect("queue");
    assert!(mine.contains(&b) && !mine.contains(&a));
    let by_word = c
        .get(&format!("/console/?q={}", urlencode("赎回")))
        .await
        .text()
        .await
        .expect("queue");
    assert!(by_word.contains(&a) && !by_word.contains(&b));
    let by_number = c
        .get(&format!("/console/?status=all&q={b}"))
        .await
        .text()
        .await
        .expect("queue");
    assert!(by_number.contains(&b) && !by_number.contains(&a));
    let by_id = c
        .get("/console/?q=0519491231")
        .await
        .text()
        .await
        .expect("queue");
    assert!(
        by_id.contains(&a) && by_id.contains(&b),
        "both used the same ID card"
    );
    let unassigned = c
        .get("/console/?assignee=-")
        .await
        .text()
        .await
        .expect("queue");
    assert!(unassigned.contains(&a) && !unassigned.contains(&b));
    let by_age = c
        .get("/console/?sort=age")
        .await
        .text()
        .await
        .expect("queue");
    assert!(by_age.find(&a) < by_age.find(&b), "oldest first");

    // Live: a change is announced on the event stream.
    let mut stream = c
        .http
        .get(format!("{}/console/events", c.base))
        .header("cookie", c.cookie_header())
        .send()
        .await
        .expect("events");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    c.act(&a, "priority", &[("priority", "P1")]).await;
    let id = app.tickets().by_number(&a).expect("read").expect("t").id;
    let mut seen = String::new();
    while !seen.contains(&format!("data: {id}")) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: ticket"));
}

fn urlencode(s: &str) -> String {
    wecom_helpdesk::sim::urlencode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_are_for_logged_in_users_only() {
    let (app, number) = app_with_ticket().await;
    let hash = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("t")
        .screenshots[0]
        .clone();
    let mut anon = Console::new(&app);
    let r = anon.get(&format!("/console/media/{hash}")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let mut c = Console::logged_in(&app, "handler", "handler-demo").await;
    let r = c.get(&format!("/console/media/{hash}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(
        c.get("/console/media/..%2F..%2Fetc%2Fpasswd")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(&format!("/console/media/{}", "f".repeat(64)))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_tickets_are_announced_once() {
    let (app, number) = app_with_ticket().await;
    let sim = app.sim();
    let later = wecom_helpdesk::util::unix_millis() + 3 * 24 * 3600 * 1000;
    let n = app
        .tickets()
        .announce_overdue(&app.cfg.sla, later)
        .expect("check");
    assert_eq!(n, 2, "first response and resolution");
    assert_eq!(
        app.tickets()
            .announce_overdue(&app.cfg.sla, later)
            .expect("again"),
        0,
        "once"
    );
    let notice = sim.wait_text("robot", "-", 0, "超时").await;
    assert!(
        notice
            .iter()
            .any(|m| m["text"].as_str().is_some_and(|t| t.contains(&number)))
    );
    // The queue marks it (by its real clock it is not overdue yet, so look at the view).
    let t = app.tickets().by_number(&number).expect("read").expect("t");
    let s = wecom_helpdesk::tickets::sla::state(&t, &app.cfg.sla, later);
    assert!(s.is_overdue());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_ticket_becomes_an_faq_draft_then_an_entry() {
    let kb = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(repo_root().join("kb")).expect("kb/") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, kb.path().join(p.file_name().expect("name"))).expect("copy");
    }
    let kb_dir = kb.path().display().to_string();
    let app = TestApp::start_with(&[("HELPDESK__PATHS__KB_DIR", &kb_dir)]).await;
    let number = file_ticket(
        &app.sim(),
        "app:lisi",
        "lisi",
        "客户在夜盘时间无法委托期权合约",
    )
    .await;
    let mut h = Console::logged_in(&app, "handler", "handler-demo").await;
    // Not before it is resolved.
    assert_eq!(
        h.act(&number, "publish", &[]).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    h.act(&number, "category", &[("category", "consulting")])
        .await;
    h.act(
        &number,
        "reply",
        &[("text", "夜盘时段期权不接受委托，请白天交易时间再下单。")],
    )
    .await;
    h.act(
        &number,
        "status",
        &[
            ("status", "resolved"),
            ("reason", "期权夜盘不开放委托，请在交易时间内下单。"),
        ],
    )
    .await;
    assert_eq!(
        h.act(&number, "publish", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let id = format!("faq-{}", number.to_lowercase());
    let draft = std::fs::read_to_string(kb.path().join(format!("{id}.md"))).expect("draft written");
    assert!(draft.contains("draft = true") && draft.contains("夜盘不开放委托"));
    assert!(
        draft.contains("夜盘时段期权不接受委托"),
        "the handler's reply is part of the answer: {draft}"
    );
    assert!(
        app.services().kb.current().get(&id).is_none(),
        "drafts are not served"
    );
    assert_eq!(
        h.act(&number, "publish", &[]).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "one draft per ticket"
    );
    // An admin reviews and publishes it.
    let mut a = Console::logged_in(&app, "admin", "admin-demo").await;
    let admin = a.get("/console/admin").await.text().await.expect("admin");
    assert!(admin.contains(&id));
    let csrf = a.csrf.clone();
    let r = a
        .post_form(
            &format!("/console/admin/drafts/{id}/publish"),
            &[
                ("_csrf", &csrf),
                ("question", "期权夜盘能委托吗？"),
                (
                    "similar",
                    "夜盘时间能买期权吗\n晚上能下期权单吗\n期权夜里委托不了",
                ),
                (
                    "answer",
                    "期权不设夜盘交易，请在交易日 9:30–11:30、13:00–15:00 委托。",
                ),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let hits = app.services().kb.search("晚上能下期权单吗", 1);
    assert_eq!(hits[0].entry.id, id, "published and served");
    assert!(
        !std::fs::read_to_string(kb.path().join(format!("{id}.md")))
            .expect("file")
            .contains("draft = true")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_and_error_pages_show_it() {
    let app = TestApp::start().await;
    let c = Console::logged_in(&app, "handler", "handler-demo").await;
    let r = c
        .http
        .get(format!("{}/console/tickets/IT20200101-0001", c.base))
        .header("cookie", c.cookie_header())
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(
            r.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} on an error page"
        );
    }
    let csp = r.headers().get("content-security-policy").expect("a CSP");
    assert!(
        csp.to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );
    let page = r.text().await.expect("page");
    assert!(page.contains("找不到该内容"), "{page}");
    assert!(page.contains("<code>trace-me-42</code>"), "{page}");
    // Without one, the gateway makes one up.
    let r = app.get("/healthz").await;
    let id = r.headers().get("x-request-id").expect("an id was made");
    let again = app.get("/healthz").await;
    assert_ne!(Some(id), again.headers().get("x-request-id"), "ids differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_must_match_exactly() {
    let app = TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", "script-token-123")]).await;
    let get = |auth: &'static str| {
        app.http
            .get(format!("{}/api/v1/me", app.base))
            .header("authorization", auth)
            .send()
    };
    assert_eq!(
        get("Bearer script-token-123").await.expect("get").status(),
        StatusCode::OK
    );
    // (Whitespace around a header value is removed by HTTP itself; inside it must match.)
    for wrong in [
        "Bearer  script-token-123",
        "Bearer script-token-12",
        "bearer script-token-123",
    ] {
        assert_eq!(
            get(wrong).await.expect("get").status(),
            StatusCode::UNAUTHORIZED,
            "{wrong:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_link_returns_to_its_ticket_after_the_login() {
    let (app, number) = app_with_ticket().await;
    let mut c = Console::new(&app);
    let path = format!("/console/tickets/{number}");
    let r = c.get(&path).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert_eq!(
        location,
        format!("/console/login?next=%2Fconsole%2Ftickets%2F{number}")
    );
    let page = c.get(&location).await.text().await.expect("login page");
    assert!(
        page.contains(&format!(r#"name="next" value="{path}""#)),
        "{page}"
    );
    let token = token_in(&page);
    let r = c
        .post_form(
            "/console/login",
            &[
                ("login", "handler"),
                ("password", "handler-demo"),
                ("_csrf", &token),
                ("next", &path),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], path.as_str());
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hd_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(session.contains("SameSite=Lax"), "{session}");
    // Another site as `next` is ignored.
    let mut c = Console::new(&app);
    let page = c
        .get("/console/login")
        .await
        .text()
        .await
        .expect("login page");
    let token = token_in(&page);
    let r = c
        .post_form(
            "/console/login",
            &[
                ("login", "handler"),
                ("password", "handler-demo"),
                ("_csrf", &token),
                ("next", "//evil.example/console/"),
            ],
        )
        .await;
    assert_eq!(r.headers()["location"], "/console/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_and_the_api_page_through_many_tickets() {
    let (app, _first) = app_with_ticket().await;
    // Sixty more tickets straight through the ticket service.
    let store = &app.services().store;
    let tickets = app.tickets();
    for i in 0..60 {
        let new = wecom_helpdesk::tickets::NewTicket {
            reporter: "lisi".into(),
            reporter_name: "李四".into(),
            channel: wecom_helpdesk::wecom::Channel::App,
            chat_type: wecom_helpdesk::wecom::ChatType::Single,
            chat_id: "lisi".into(),
            customer_id: wecom_helpdesk::ident::CustomerId {
                kind: wecom_helpdesk::ident::IdKind::Mobile,
                value: "13812345678".into(),
            },
            system: "交易".into(),
            description: format!("第 {i} 个：委托一直未报"),
            screenshots: vec!["ab".repeat(32)],
        };
        store
            .transaction::<_, std::convert::Infallible>(&tickets.trees(), |tx| {
                tickets.create_in(tx, &new, wecom_helpdesk::util::unix_millis())
            })
            .map_err(wecom_helpdesk::store::TxError::into_store)
            .expect("file");
    }
    let mut c = Console::logged_in(&app, "handler", "handler-demo").await;
    let page = c
        .get("/console/?sort=age")
        .await
        .text()
        .await
        .expect("queue");
    assert_eq!(page.matches("data-number=").count(), 50, "one page of 50");
    assert!(
        page.contains("共 61 条") && page.contains("第 1/2 页"),
        "pager"
    );
    assert!(
        page.contains(r#"href="?status=open&#38;sort=age&#38;page=2" rel="next""#),
        "the next page keeps the filters: {}",
        page.split("pager").nth(1).unwrap_or_default()
    );
    let page2 = c
        .get("/console/?sort=age&page=2")
        .await
        .text()
        .await
        .expect("queue");
    assert_eq!(page2.matches("data-number=").count(), 11);
    let rows = c
        .get("/console/queue/rows?sort=age&page=2")
        .await
        .text()
        .await
        .expect("rows");
    assert_eq!(
        rows.matches("data-number=").count(),
        11,
        "live rows keep the page"
    );

    let r = c
        .api(
            reqwest::Method::GET,
            "/api/v1/tickets?per_page=25&page=3",
            None,
            false,
        )
        .await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["count"].as_u64(), v["total"].as_u64()),
        (Some(11), Some(61))
    );
    assert_eq!(v["pages"], 3);
    let all: Value = c
        .api(reqwest::Method::GET, "/api/v1/tickets", None, false)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["count"], 61, "unpaged calls get everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_favicon_and_error_headings_are_the_consoles() {
    let app = TestApp::start().await;
    let r = app.get("/favicon.ico").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let c = Console::logged_in(&app, "handler", "handler-demo").await;
    let page = c
        .http
        .get(format!("{}/console/admin", c.base))
        .header("cookie", c.cookie_header())
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let page = page.text().await.expect("page");
    assert!(page.contains("<h1>没有权限</h1>"), "{page}");
    assert!(!page.contains("Forbidden"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_forms_start_without_a_choice() {
    let (app, number) = app_with_ticket().await;
    let mut c = Console::logged_in(&app, "handler", "handler-demo").await;
    let page = c
        .get(&format!("/console/tickets/{number}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains(r#"<option value="" selected disabled>未分类</option>"#),
        "an uncategorized ticket shows 未分类, not 咨询类"
    );
    assert!(page.contains(r#"<option value="" selected disabled>选择新状态</option>"#));
    assert!(!page.contains(r#"value="consulting" selected"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_form_comes_back_with_the_reason_and_what_was_typed() {
    let (app, number) = app_with_ticket().await;
    let mut h = Console::logged_in(&app, "handler", "handler-demo").await;
    h.act(&number, "status", &[("status", "in_progress")]).await;
    // Resolving without a category: the ticket page again, the reason typed still there.
    let r = h
        .act(
            &number,
            "status",
            &[("status", "resolved"), ("reason", "已为客户重置交易密码")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("page");
    assert!(page.contains("请先设置问题分类"), "{page}");
    assert!(page.contains(r#"value="已为客户重置交易密码""#), "{page}");
    assert!(
        page.contains("reply-text"),
        "the whole ticket page, not an error page"
    );

    // A taken login: the admin page again, the login typed still there.
    let mut a = Console::logged_in(&app, "admin", "admin-demo").await;
    let r = a.add_user("handler", "handler", "long-enough-1").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("page");
    assert!(page.contains("用户已存在"), "{page}");
    assert!(page.contains(r#"value="handler""#), "{page}");
    assert!(
        page.contains("添加账号"),
        "the admin page, not an error page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_ticket_shows_the_group_by_its_name() {
    let app = TestApp::start().await;
    let number = file_ticket(
        &app.sim(),
        "group:wrSimGroup01",
        "wangwu",
        "客户在群里反馈行情刷新很慢",
    )
    .await;
    let mut h = Console::logged_in(&app, "handler", "handler-demo").await;
    let page = h
        .get(&format!("/console/tickets/{number}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("群聊 华东区业务群"), "{page}");
    assert!(!page.contains("群聊 wrSimGroup01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_faq_entries_are_listed_by_their_question() {
    let app = TestApp::start().await;
    app.sim()
        .say("app:lisi", "lisi", "股票交易不了", "解决您的问题了吗")
        .await;
    app.settled(0).await;
    let mut a = Console::logged_in(&app, "admin", "admin-demo").await;
    let page = a.get("/console/admin").await.text().await.expect("admin");
    assert!(
        page.contains("股票交易不了、下单失败怎么办？（1）"),
        "{page}"
    );
}
