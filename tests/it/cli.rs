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
