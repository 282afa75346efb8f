//! The binary's operator commands and start-up checks, run as a child process.

use std::process::Command;

use super::common::repo_root;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wecom-helpdesk"));
    c.current_dir(repo_root()).env("RUST_LOG", "error");
    c
}

#[test]
fn script_check_accepts_the_shipped_scripts_and_locates_errors() {
    let out = bin()
        .args(["script", "check", "bot-scripts"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("flow `report`"));

    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["global.toml", "report.toml"] {
        let text = std::fs::read_to_string(repo_root().join("bot-scripts").join(f)).expect("read");
        std::fs::write(
            dir.path().join(f),
            text.replace("\"customer_id\"]", "\"cn_idcard\"]"),
        )
        .expect("write");
    }
    let out = bin()
        .arg("script")
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("report.toml:21: unknown validator `cn_idcard`"),
        "{err}"
    );
}

#[test]
fn a_bad_config_stops_start_up_with_one_message_naming_the_key() {
    let out = bin()
        .env("HELPDESK__WECOM__APP__ENCODING_AES_KEY", "tooshort")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wecom.app.encoding_aes_key"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
    assert!(!err.contains("DemoAppToken2026"), "no secrets printed");
}

#[test]
fn user_add_creates_an_account_that_can_log_in() {
    use std::io::Write;
    use std::process::Stdio;
    use wecom_helpdesk::accounts::{Accounts, AuthError, Role};

    let data = tempfile::tempdir().expect("tempdir");
    let add = |login: &str, password: &str, extra: &[&str]| {
        let mut child = bin()
            .env("HELPDESK__STORAGE__DATA_DIR", data.path())
            .args(["user", "add", login, "--role", "admin"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write");
        child.wait_with_output().expect("wait")
    };

    let out = add("li.admin", "s3cret-passphrase", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add("li.admin", "another-passphrase", &[]);
    assert!(
        !out.status.success(),
        "a second add without --reset is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("用户已存在"));
    let out = add("wang", "short", &[]);
    assert!(!out.status.success(), "weak passwords are refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("密码至少 8 个字符"));

    let out = bin()
        .env("HELPDESK__STORAGE__DATA_DIR", data.path())
        .args(["user", "list"])
        .output()
        .expect("run");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("li.admin\tAdmin"), "{listed}");
    assert!(!listed.contains("wang"), "{listed}");

    let store = wecom_helpdesk::store::Store::open(data.path(), 8 << 20).expect("open");
    let accounts = Accounts::open(&store, std::time::Duration::from_secs(60), 10).expect("open");
    let (_, session) = accounts
        .login("li.admin", "s3cret-passphrase", "test")
        .expect("login");
    assert_eq!(session.role, Role::Admin);
    assert!(matches!(
        accounts.login("li.admin", "another-passphrase", "test"),
        Err(AuthError::BadCredentials)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_refuse_clearly_while_the_gateway_runs() {
    let app = super::common::TestApp::start().await;
    for args in [
        &["outbox", "dead"][..],
        &["inbox", "dead"][..],
        &["user", "list"][..],
    ] {
        let out = bin()
            .args(args)
            .env("HELPDESK__STORAGE__DATA_DIR", app.dir.path())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran on a database in use");
        assert!(
            stderr.contains("in use by a running gateway: stop it first"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_running_gateway_restores_into_a_working_desk() {
    let backups = tempfile::tempdir().expect("tempdir");
    let backup_dir = backups.path().display().to_string();
    let app = super::common::TestApp::start_with(&[
        ("HELPDESK__CONSOLE__API_TOKEN", "ops-token-1"),
        ("HELPDESK__STORAGE__BACKUP_DIR", &backup_dir),
    ])
    .await;
    let sim = app.sim();
    let number = super::common::file_ticket(
        &sim,
        "app:zhangsan",
        "zhangsan",
        "委托一直显示未报，撤单也不行",
    )
    .await;
    let port = app.base.rsplit(':').next().expect("port").to_owned();
    // Agents keep writing while the snapshot is taken.
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                sim.send("app:lisi", "lisi", &format!("帮助 {i}")).await;
            }
        })
    };
    let out = tokio::task::spawn_blocking({
        let (data, backups) = (app.dir.path().to_owned(), backups.path().to_owned());
        move || {
            bin()
                .arg("backup")
                .arg(backups.join("nightly"))
                .env("HELPDESK__STORAGE__DATA_DIR", &data)
                .env("HELPDESK__STORAGE__BACKUP_DIR", &backups)
                .env("HELPDESK__SERVER__LISTEN", format!("127.0.0.1:{port}"))
                .env("HELPDESK__CONSOLE__API_TOKEN", "ops-token-1")
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    writer.await.expect("writer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("by the running gateway"), "{stdout}");
    // `backup PATH`: the snapshot is at PATH, and nothing else is left in backup_dir.
    let snapshot = backups.path().join("nightly");
    assert!(snapshot.join("db.snapshot").is_file(), "{stdout}");
    assert_eq!(
        std::fs::read_dir(backups.path()).expect("backups").count(),
        1
    );
    drop(app);

    // Restore into a fresh data directory and start a desk on it.
    let restored = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .arg("restore")
        .arg(&snapshot)
        .env("HELPDESK__STORAGE__DATA_DIR", restored.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = bin()
        .arg("restore")
        .arg(&snapshot)
        .env("HELPDESK__STORAGE__DATA_DIR", restored.path())
        .output()
        .expect("run");
    assert!(!again.status.success(), "never restored over a database");

    let app = super::common::TestApp::start_in(restored, &[]).await;
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("the ticket is back");
    assert!(!t.screenshots.is_empty());
    assert!(
        app.services()
            .store
            .media()
            .get(&t.screenshots[0])
            .expect("media")
            .is_some(),
        "its screenshot too"
    );
    // Every ticket is whole: reachable by number and listed under its status.
    for t in app.tickets().list().expect("list") {
        assert!(app.tickets().by_number(&t.number).expect("read").is_some());
        let listed = app.tickets().with_status(t.status).expect("index");
        assert!(listed.iter().any(|x| x.id == t.id), "{} indexed", t.number);
    }
}
