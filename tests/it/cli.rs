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
