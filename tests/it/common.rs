//! Shared helpers: start the gateway on port 0 with a temporary data directory, talk to the
//! simulator's test hooks, wait for replies.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use wecom_helpdesk::app::Services;
use wecom_helpdesk::config::Config;
use wecom_helpdesk::shutdown::{self, Trigger};
use wecom_helpdesk::wecom::{self, Channel, ChatType, Content, Inbound, MsgCrypt};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy a folder (kb/, bot-scripts/) so a test may edit it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// The shipped config.toml with test overrides (as `HELPDESK__…` pairs).
pub fn config_with(data_dir: &Path, overrides: &[(&str, &str)]) -> Config {
    let path = repo_root().join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config.toml is readable");
    let mut env = vec![
        (
            "HELPDESK__STORAGE__DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        ),
        (
            "HELPDESK__SERVER__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
        (
            "HELPDESK__OUTBOX__BACKOFF_BASE_MS".to_owned(),
            "50".to_owned(),
        ),
        (
            "HELPDESK__OUTBOX__BACKOFF_MAX_SECS".to_owned(),
            "1".to_owned(),
        ),
    ];
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_sources(&path, &text, &env).expect("test config is valid")
}

/// A running gateway with the built-in simulator.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub cfg: Config,
    services: Option<Arc<Services>>,
    trigger: Trigger,
    handle: Option<tokio::task::JoinHandle<wecom_helpdesk::Result<()>>>,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(&[]).await
    }

    pub async fn start_with(overrides: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, overrides).await
    }

    /// Start on an existing data directory (restart tests).
    pub async fn start_in(dir: tempfile::TempDir, overrides: &[(&str, &str)]) -> TestApp {
        let cfg = config_with(dir.path(), overrides);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, sd) = shutdown::channel();
        let services = Arc::new(
            Services::build(
                Arc::new(cfg.clone()),
                cfg.api_base(addr),
                cfg.public_url(addr),
            )
            .expect("services"),
        );
        let handle = tokio::spawn(wecom_helpdesk::app::serve(services.clone(), listener, sd));
        let app = TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            cfg,
            services: Some(services),
            trigger,
            handle: Some(handle),
            dir,
        };
        app.wait_healthy().await;
        app
    }

    pub async fn wait_healthy(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway did not become healthy");
    }

    /// The running services (act as a handler through the ticket service API).
    pub fn services(&self) -> &Services {
        self.services.as_ref().expect("running")
    }

    pub fn tickets(&self) -> &wecom_helpdesk::tickets::Tickets {
        &self.services().tickets
    }

    /// Wait until the desk is quiescent: every stored message processed and at most
    /// `waiting` outbound jobs left (0: everything delivered or dead-lettered). Nothing more
    /// happens on its own after that, so "exactly once" can be judged.
    pub async fn settled(&self, waiting: usize) {
        let s = self.services();
        for _ in 0..400 {
            let jobs = s.outbox.pending().expect("outbox").len();
            if s.inbox.pending_count() == 0 && jobs <= waiting {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the desk did not settle");
    }

    /// GET a path of the gateway without a session.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get")
    }

    /// The HTML of a console page, fetched with the session `cookie`.
    pub async fn console_page(&self, cookie: &str, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .expect("console page")
            .text()
            .await
            .expect("html")
    }

    /// Nothing was dead-lettered: every outbound reply could be delivered.
    pub fn assert_no_dead_letters(&self) {
        let dead = self.services().outbox.dead_letters().expect("dead letters");
        assert!(dead.is_empty(), "every reply could be delivered: {dead:?}");
    }

    /// Stop the gateway and give back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.trigger.trigger();
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("app ran cleanly");
        }
        self.services.take();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn sim(&self) -> SimClient {
        SimClient {
            base: format!("{}/sim", self.base),
            http: self.http.clone(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

/// The simulator's test hooks.
#[derive(Clone)]
pub struct SimClient {
    pub base: String,
    pub http: reqwest::Client,
}

impl SimClient {
    pub async fn send(&self, chat: &str, from: &str, text: &str) -> Value {
        self.send_full(chat, from, Some(text), &[]).await
    }

    pub async fn send_full(
        &self,
        chat: &str,
        from: &str,
        text: Option<&str>,
        images: &[&[u8]],
    ) -> Value {
        use base64::Engine;
        let images: Vec<String> = images
            .iter()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .collect();
        let r = self
            .http
            .post(format!("{}/api/send", self.base))
            .json(&json!({ "chat": chat, "from": from, "text": text, "images": images }))
            .send()
            .await
            .expect("sim send");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "sim send failed: {v}");
        assert_eq!(v["ok"], true, "callback not acknowledged: {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("sim post")
    }

    pub async fn messages(&self, chat: &str, after: u64) -> Vec<Value> {
        self.http
            .get(format!("{}/api/messages", self.base))
            .query(&[("chat", chat), ("after", &after.to_string())])
            .send()
            .await
            .expect("messages")
            .json()
            .await
            .expect("json")
    }

    /// Messages from the other side (not `from_member`) in `chat`, after `after`.
    pub async fn replies(&self, chat: &str, member: &str, after: u64) -> Vec<Value> {
        self.messages(chat, after)
            .await
            .into_iter()
            .filter(|m| m["from"] != member)
            .collect()
    }

    /// Wait until `pred` holds for the replies in `chat` after `after`; return them.
    pub async fn wait_replies(
        &self,
        chat: &str,
        member: &str,
        after: u64,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        for _ in 0..400 {
            let r = self.replies(chat, member, after).await;
            if pred(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let r = self.replies(chat, member, after).await;
        panic!("timed out waiting for replies in {chat}; have: {r:#?}");
    }

    /// Wait for at least one reply whose text contains `needle`.
    pub async fn wait_text(
        &self,
        chat: &str,
        member: &str,
        after: u64,
        needle: &str,
    ) -> Vec<Value> {
        self.wait_replies(chat, member, after, |r| {
            r.iter()
                .any(|m| m["text"].as_str().is_some_and(|t| t.contains(needle)))
        })
        .await
    }

    pub async fn calls(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/api/calls", self.base))
            .send()
            .await
            .expect("calls")
            .json()
            .await
            .expect("json")
    }

    /// Send as `member` in `chat` and wait for a reply containing `expect`; returns the texts
    /// of every reply after the message.
    pub async fn say(&self, chat: &str, member: &str, text: &str, expect: &str) -> Vec<String> {
        self.say_full(chat, member, Some(text), &[], expect).await
    }

    pub async fn say_full(
        &self,
        chat: &str,
        member: &str,
        text: Option<&str>,
        images: &[&[u8]],
        expect: &str,
    ) -> Vec<String> {
        let seq = self.last_seq().await;
        self.send_full(chat, member, text, images).await;
        texts(&self.wait_text(chat, member, seq, expect).await)
    }

    /// The highest message seq so far (to read only what comes after).
    pub async fn last_seq(&self) -> u64 {
        let all: Vec<Value> = self
            .http
            .get(format!("{}/api/messages", self.base))
            .send()
            .await
            .expect("messages")
            .json()
            .await
            .expect("json");
        all.iter()
            .filter_map(|m| m["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }
}

/// A tiny valid PNG (1×1).
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The texts of messages.
pub fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A distinct valid PNG for each `n` (bytes after IEND make the hash differ).
pub fn png(n: u32) -> Vec<u8> {
    let mut v = PNG.to_vec();
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// A valid 18-digit ID number (GB 11643 check digit), the example from the standard.
pub const ID_CARD: &str = "11010519491231002X";

pub fn app_crypt(app: &TestApp) -> MsgCrypt {
    let w = &app.cfg.wecom;
    MsgCrypt::new(
        w.app.token.expose(),
        w.app.encoding_aes_key.expose(),
        &w.corp_id,
    )
    .expect("key")
}

pub fn bot_crypt(app: &TestApp) -> MsgCrypt {
    let w = &app.cfg.wecom;
    MsgCrypt::new(w.bot.token.expose(), w.bot.encoding_aes_key.expose(), "").expect("key")
}

pub fn text_msg(sender: &str, msg_no: u64, text: &str) -> Inbound {
    Inbound {
        channel: Channel::App,
        chat_type: ChatType::Single,
        chat_id: sender.into(),
        sender: sender.into(),
        msg_id: format!("msg/1000002/{msg_no}"),
        create_time: wecom_helpdesk::util::unix_now(),
        content: Content::Text { text: text.into() },
        quote: None,
        response_url: None,
    }
}

/// A signed, encrypted app callback: (query string, body).
pub fn app_callback(app: &TestApp, inbound: &Inbound, timestamp: i64) -> (String, String) {
    let c = app_crypt(app);
    let w = &app.cfg.wecom;
    let plain = wecom::app::message_xml(&w.corp_id, w.agent_id, inbound);
    let enc = c.encrypt(&plain);
    let ts = timestamp.to_string();
    let sig = c.sign(&ts, "12345", &enc);
    (
        format!("msg_signature={sig}&timestamp={ts}&nonce=12345"),
        wecom::app::envelope(&w.corp_id, w.agent_id, &enc),
    )
}

pub fn number_in(texts: &[String]) -> String {
    let re = regex::Regex::new(r"IT\d{8}-\d{4}").expect("regex");
    texts
        .iter()
        .find_map(|t| re.find(t).map(|m| m.as_str().to_owned()))
        .unwrap_or_else(|| panic!("no ticket number in {texts:?}"))
}

/// Walk the report flow to the end and return the ticket number.
pub async fn file_ticket(sim: &SimClient, chat: &str, member: &str, description: &str) -> String {
    sim.say(chat, member, "提单", "第1步").await;
    sim.say(chat, member, ID_CARD, "第2步").await;
    sim.say(chat, member, "2", "第3步").await;
    sim.say(chat, member, description, "第4步").await;
    if chat.starts_with("group:") {
        sim.say_full(chat, member, Some("截图如下"), &[&png(1)], "已收到第 1 张")
            .await;
    } else {
        sim.say_full(chat, member, None, &[&png(1)], "已收到第 1 张")
            .await;
    }
    sim.say(chat, member, "完成", "请核对").await;
    number_in(&sim.say(chat, member, "提交", "工单已提交").await)
}

/// Log in to the console as `login` and return the session's cookie (`hd_session=…`).
pub async fn console_session(app: &TestApp, login: &str, password: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let set_cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(name))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    };
    let r = http
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .expect("login page");
    let cookie = set_cookie(&r, "hd_login=").expect("login cookie");
    let page = r.text().await.expect("page");
    let at = page.find("name=\"_csrf\" value=\"").expect("csrf") + 20;
    let token = page[at..at + page[at..].find('"').expect("end")].to_owned();
    let r = http
        .post(format!("{}/console/login", app.base))
        .header("cookie", cookie)
        .form(&[("login", login), ("password", password), ("_csrf", &token)])
        .send()
        .await
        .expect("login");
    assert_eq!(
        r.status(),
        reqwest::StatusCode::SEE_OTHER,
        "login as {login}"
    );
    set_cookie(&r, "hd_session=").expect("session cookie")
}

/// Call the JSON API with `Authorization: Bearer <token>`: the status and the JSON answer
/// (null when there is none).
pub async fn api_call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut r = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("api");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}
