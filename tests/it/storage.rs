//! A full disk: callbacks are refused (503, so WeCom retries) and `/healthz` says so while
//! writes fail; once space is freed the desk recovers by itself (the database, which latches
//! a failed write, is reopened) and messages flow again. Runs on a small tmpfs, which needs
//! root; elsewhere it says so and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use wecom_helpdesk::shutdown;

use super::common::{SimClient, config_with};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn health(http: &reqwest::Client, base: &str) -> u16 {
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_health(http: &reqwest::Client, base: &str, want: u16) {
    for _ in 0..600 {
        if health(http, base).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/healthz never answered {want}");
}

/// Fill the disk under `dir`; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 256 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_callbacks_and_the_desk_recovers_by_itself() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(disk) = Tmpfs::mount(tmp.path(), "48m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = disk.0.join("data");
    let cfg = config_with(&data, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (trigger, sd) = shutdown::channel();
    let gateway = tokio::spawn(wecom_helpdesk::app::run(cfg, listener, sd));
    let http = reqwest::Client::new();
    wait_health(&http, &base, 200).await;
    let sim = SimClient {
        base: format!("{base}/sim"),
        http: http.clone(),
    };
    sim.send("app:zhangsan", "zhangsan", "帮助").await;
    sim.wait_text("app:zhangsan", "zhangsan", 0, "事件助手")
        .await;

    // The disk fills up. Writes into space the database already holds still succeed (and are
    // rightly acknowledged); once it needs more, callbacks get 503 (WeCom retries).
    let filler = fill(&disk.0);
    let long = "账户余额对不上".repeat(200);
    let mut refused = None;
    for i in 0..400 {
        let r = sim
            .post(
                "/api/send",
                json!({ "chat": "app:lisi", "from": "lisi", "text": format!("{i} {long}") }),
            )
            .await;
        let outcome: serde_json::Value = r.json().await.expect("json");
        if outcome["ok"] == false {
            refused = Some(outcome);
            break;
        }
    }
    let refused = refused.expect("the full disk refused a callback");
    assert_eq!(refused["status"], 503, "{refused}");
    wait_health(&http, &base, 503).await;

    // Space is freed: the desk recovers without a restart, and messages flow again.
    std::fs::remove_file(&filler).expect("free the disk");
    wait_health(&http, &base, 200).await;
    let seq = sim.last_seq().await;
    sim.send("app:wangwu", "wangwu", "帮助").await;
    sim.wait_text("app:wangwu", "wangwu", seq, "事件助手").await;

    trigger.trigger();
    gateway
        .await
        .expect("join")
        .expect("the gateway stops cleanly");
}
