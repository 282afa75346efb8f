//! The admins' editors over the API, on copies of kb/ and bot-scripts/: a new entry answers
//! an agent's paraphrase, an unanswered question added as a similar question is answered,
//! a script edit changes the next intake's prompt, an invalid script is refused at its line
//! while the old flow keeps working, a concurrent change on disk is detected, rollback
//! restores the previous answer, and what is written passes `kb check` and `script check`.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::{TestApp, api_call, console_session, copy_dir, repo_root};

const API_TOKEN: &str = "editor-test-api-token-0123456789";

/// A desk on its own copies of kb/ and bot-scripts/.
async fn app() -> (TestApp, tempfile::TempDir) {
    let files = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("kb"), &files.path().join("kb"));
    copy_dir(
        &repo_root().join("bot-scripts"),
        &files.path().join("bot-scripts"),
    );
    let kb = files.path().join("kb").display().to_string();
    let scripts = files.path().join("bot-scripts").display().to_string();
    let app = TestApp::start_with(&[
        ("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN),
        ("HELPDESK__PATHS__KB_DIR", &kb),
        ("HELPDESK__PATHS__SCRIPTS_DIR", &scripts),
    ])
    .await;
    (app, files)
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api_call(app, API_TOKEN, method, path, body).await
}

fn check(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-helpdesk"))
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faq_entries_are_edited_tested_and_rolled_back() {
    let (app, files) = app().await;
    let sim = app.sim();
    let put = reqwest::Method::PUT;
    let entry = json!({
        "question": "港股通的交易时间是几点？",
        "similar": ["港股通几点开盘", "港股通什么时候可以交易"],
        "system": "交易",
        "tags": ["港股通"],
        "answer": "港股通交易日 9:30–12:00、13:00–16:00（以港交所公告为准）。",
    });
    let (s, v) = call(
        &app,
        put.clone(),
        "/api/v1/admin/kb/hk-connect-hours",
        Some(entry.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let version = v["version"].as_str().expect("version").to_owned();
    // An agent asks a paraphrase and gets the answer at once.
    sim.say(
        "app:zhangsan",
        "zhangsan",
        "港股通几点可以交易啊",
        "9:30–12:00",
    )
    .await;

    // The hit test: live and with a draft, and the recent questions it would change.
    let (s, v) = call(&app, reqwest::Method::POST, "/api/v1/admin/kb/test", Some(json!({
        "q": "港股通几点可以交易啊",
        "entry": {"id": "hk-connect-hours", "question": "港股通的交易时间是几点？", "answer": "改过的回答", "similar": []},
    }))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["live"]["entry"], "hk-connect-hours");
    assert!(v["draft"]["hits"].as_array().is_some_and(|h| !h.is_empty()));
    assert!(v["changed"].is_array());

    // Bad input: nothing written.
    for (id, body, status) in [
        ("../x", entry.clone(), StatusCode::NOT_FOUND),
        ("Bad_Id", entry.clone(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "empty-answer",
            json!({"question": "q", "answer": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "hk-connect-hours",
            json!({"question": "q", "answer": "a", "version": "stale0000000000"}),
            StatusCode::CONFLICT,
        ),
    ] {
        let (s, v) = call(
            &app,
            put.clone(),
            &format!("/api/v1/admin/kb/{}", id.replace('/', "%2F")),
            Some(body),
        )
        .await;
        assert!(
            s == status || (id == "../x" && s.is_client_error()),
            "{id}: {s} {v}"
        );
    }
    assert!(!files.path().join("kb/empty-answer.md").exists());

    // A question the FAQ cannot answer, added as a similar question, is then answered.
    let odd = "北交所做市商报价异常的申诉渠道";
    sim.say("app:lisi", "lisi", odd, "没有找到相关的答案").await;
    let (_, v) = call(&app, reqwest::Method::GET, "/api/v1/admin/unanswered", None).await;
    assert!(
        v["unanswered"]
            .as_array()
            .is_some_and(|u| u.iter().any(|q| q["question"] == odd)),
        "{v}"
    );
    let mut with_similar = entry.clone();
    with_similar["similar"] = json!(["港股通几点开盘", "港股通什么时候可以交易", odd]);
    with_similar["version"] = json!(version);
    let (s, v) = call(
        &app,
        put.clone(),
        "/api/v1/admin/kb/hk-connect-hours",
        Some(with_similar),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let seq_before = app.sim().last_seq().await;
    sim.send("app:lisi", "lisi", odd).await;
    sim.wait_text("app:lisi", "lisi", seq_before, "9:30–12:00")
        .await;

    // Someone edits the file on the server: the editor's save is refused, nothing lost.
    let path = files.path().join("kb/hk-connect-hours.md");
    let (_, current) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/kb/hk-connect-hours",
        None,
    )
    .await;
    let on_disk = std::fs::read_to_string(&path)
        .expect("read")
        .replace("16:00", "16:10");
    std::fs::write(&path, &on_disk).expect("edit on disk");
    let mut edit = entry.clone();
    edit["answer"] = json!("被覆盖的回答");
    edit["version"] = current["version"].clone();
    let (s, v) = call(
        &app,
        put.clone(),
        "/api/v1/admin/kb/hk-connect-hours",
        Some(edit),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("被修改")));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), on_disk);

    // A new answer, then rollback to the one before.
    let (_, current) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/kb/hk-connect-hours",
        None,
    )
    .await;
    let mut edit = entry.clone();
    edit["answer"] = json!("新的回答：港股通暂停交易一天。");
    edit["version"] = current["version"].clone();
    let (s, _) = call(
        &app,
        put.clone(),
        "/api/v1/admin/kb/hk-connect-hours",
        Some(edit),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, versions) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/versions?file=kb/hk-connect-hours.md",
        None,
    )
    .await;
    let newest = &versions["versions"][0];
    assert!(
        newest["text"].as_str().is_some_and(|t| t.contains("16:10")),
        "{versions}"
    );
    let (s, v) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/admin/versions/rollback",
        Some(json!({"file": "kb/hk-connect-hours.md", "seq": newest["seq"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, restored) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/kb/hk-connect-hours",
        None,
    )
    .await;
    assert!(
        restored["answer"]
            .as_str()
            .is_some_and(|a| a.contains("16:10")),
        "{restored}"
    );

    // The edit page lists the saved versions, each with a rollback of this entry's file.
    let admin = console_session(&app, "admin", "admin-demo").await;
    let page = app
        .console_page(&admin, "/console/admin/kb/edit?id=hk-connect-hours")
        .await;
    assert!(page.contains("历史版本"), "versions listed");
    assert!(
        page.contains(r#"action="/console/admin/rollback""#)
            && page.contains(r#"name="file" value="kb/hk-connect-hours.md""#),
        "a rollback form for the entry's file"
    );

    // The audit trail has who, what and a diff.
    let (_, audit) = call(&app, reqwest::Method::GET, "/api/v1/admin/audit", None).await;
    let changes = audit["changes"].as_array().expect("changes");
    assert!(changes.len() >= 4);
    assert_eq!(changes[0]["login"], "api");
    assert!(
        changes[0]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+") && d.contains("-"))
    );

    // Delete to the trash and restore.
    let (_, current) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/kb/hk-connect-hours",
        None,
    )
    .await;
    let v = current["version"].as_str().expect("version");
    let (s, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/kb/hk-connect-hours?version={v}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!path.exists());
    let (_, trash) = call(&app, reqwest::Method::GET, "/api/v1/admin/kb-trash", None).await;
    let name = trash["trash"][0]["file"]
        .as_str()
        .expect("trashed")
        .to_owned();
    let (s, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/admin/kb-trash/{name}/restore"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(path.exists());

    // What the editor wrote passes the loader's own check.
    let kb = files.path().join("kb").display().to_string();
    let (ok, out) = check(&["kb", "check", &kb]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_validated_dry_run_and_applied_to_the_next_intake() {
    let (app, files) = app().await;
    let sim = app.sim();
    let (s, v) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/scripts/report.toml",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (text, version) = (
        v["text"].as_str().expect("text").to_owned(),
        v["version"].clone(),
    );

    // Invalid: refused with the line, nothing written, the old flow keeps working.
    let broken = text.replace("kind = \"choice\"", "kind = \"dropdown\"");
    let line = broken
        .lines()
        .position(|l| l.contains("dropdown"))
        .expect("the line")
        + 1;
    let (s, v) = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/admin/scripts/report.toml",
        Some(json!({"text": broken, "version": version})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let errors = v["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["line"].as_u64() == Some(line as u64)),
        "line {line}: {v}"
    );
    assert_eq!(
        std::fs::read_to_string(files.path().join("bot-scripts/report.toml")).expect("read"),
        text
    );
    sim.say("app:wangwu", "wangwu", "提单", "第1步：请提供客户标识")
        .await;
    sim.say("app:wangwu", "wangwu", "取消", "").await;

    // The dry run plays the draft without filing.
    let draft = text.replace("第1步：请提供客户标识", "第1步：请先提供客户标识");
    let (s, v) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/admin/scripts/report.toml/dry-run",
        Some(json!({
            "text": draft, "inputs": ["11010519491231002X", "9", "2"],
        })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let turns = v["turns"].as_array().expect("turns");
    assert!(turns[0]["replies"].to_string().contains("请先提供客户标识"));
    assert!(
        turns[2]["replies"].to_string().contains("1–7"),
        "the choice step's error: {v}"
    );
    let tickets_before = app.tickets().list().expect("list").len();

    // Saved: the next intake uses the new prompt.
    let (s, v) = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/admin/scripts/report.toml",
        Some(json!({"text": draft, "version": version})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    sim.say("app:zhaoliu", "zhaoliu", "提单", "请先提供客户标识")
        .await;
    assert_eq!(
        app.tickets().list().expect("list").len(),
        tickets_before,
        "the dry run filed nothing"
    );
    // The script's page offers the version before the save back.
    let admin = console_session(&app, "admin", "admin-demo").await;
    let page = app
        .console_page(&admin, "/console/admin/scripts/report.toml")
        .await;
    assert!(
        page.contains(r#"action="/console/admin/rollback""#)
            && page.contains(r#"name="file" value="bot-scripts/report.toml""#),
        "a rollback form for the script's file"
    );

    // A stale version is refused.
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/admin/scripts/report.toml",
        Some(json!({"text": text, "version": version})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Path characters in a file name are refused.
    let (s, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/scripts/..%2Fconfig.toml",
        None,
    )
    .await;
    assert!(s.is_client_error());

    let scripts = files.path().join("bot-scripts").display().to_string();
    let (ok, out) = check(&["script", "check", &scripts]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_cannot_edit() {
    let (app, _files) = app().await;
    // A handler's session (the demo handler account) is refused; the token is allowed.
    let http = reqwest::Client::new();
    let session = console_session(&app, "handler", "handler-demo").await;
    let r = http
        .get(format!("{}/api/v1/admin/kb", app.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .get(format!("{}/console/admin/kb", app.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
