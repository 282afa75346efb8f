//! Crash safety: the real binary as a child process, a burst of callbacks, SIGKILL after
//! they were acknowledged, a restart on the same data directory, and every acknowledged
//! message answered exactly once.
//!
//! WeCom is played by a simulator running in this test process, so its record of what was
//! delivered survives the gateway's death.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use wecom_helpdesk::sim::{ChatId, Sim, SimSettings};

use super::common::{config_with, repo_root};

const MEMBERS: usize = 40;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The gateway binary as a child process, killed when dropped (a failing assertion must not
/// leave it running and holding the data directory).
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Gateway {
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }

    /// SIGTERM, and wait for the graceful stop (workers joined, store flushed).
    fn stop(&mut self) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM");
        let status = self.0.wait().expect("reaped");
        assert!(
            status.success(),
            "the gateway stops cleanly on SIGTERM: {status}"
        );
    }
}

fn spawn_gateway(data_dir: &std::path::Path, port: u16, api_base: &str) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_wecom-helpdesk"))
        .current_dir(repo_root())
        .env("HELPDESK__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("HELPDESK__STORAGE__DATA_DIR", data_dir)
        .env("HELPDESK__SIM__ENABLED", "false")
        .env("HELPDESK__CONSOLE__DEMO_ACCOUNTS", "false")
        .env("HELPDESK__WECOM__API_BASE", api_base)
        .env("HELPDESK__OUTBOX__BACKOFF_BASE_MS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the gateway binary");
    Gateway(child)
}

async fn wait_healthy(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gateway on port {port} did not become healthy");
}

/// Members' chats that show a reply from the app (as the member sees it).
fn replies_per_member(sim: &Sim) -> Vec<usize> {
    (0..MEMBERS)
        .map(|i| {
            let chat = ChatId::App(format!("crash{i:02}")).to_string();
            sim.messages(Some(&chat), 0)
                .iter()
                .filter(|m| m.from == "app" && !m.dropped)
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_ack_loses_nothing_and_duplicates_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();

    // WeCom, played by a simulator in this process.
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
    let sim_base = format!("http://{}/sim", sim_listener.local_addr().expect("addr"));
    let cfg = config_with(data.path(), &[]);
    let mut settings =
        SimSettings::from_config(&cfg, format!("http://127.0.0.1:{port}"), sim_base.clone())
            .expect("settings");
    settings.members = (0..MEMBERS)
        .map(|i| (format!("crash{i:02}"), format!("测试{i}")))
        .collect();
    let sim: Arc<Sim> = Sim::new(settings).expect("sim");
    let router = axum::Router::new().nest("/sim", wecom_helpdesk::sim::router(sim.clone()));
    tokio::spawn(async move { axum::serve(sim_listener, router).await });

    let mut child = spawn_gateway(data.path(), port, &sim_base);
    wait_healthy(port).await;

    // A burst: every member sends at once. Keep only what the gateway acknowledged.
    let mut sends = Vec::new();
    for i in 0..MEMBERS {
        let sim = sim.clone();
        sends.push(tokio::spawn(async move {
            let member = format!("crash{i:02}");
            let chat = ChatId::App(member.clone());
            sim.member_send(&chat, &member, Some("帮助"), &[]).await
        }));
    }
    let mut acked = 0;
    for s in sends {
        let outcome = s.await.expect("join").expect("sent");
        assert!(outcome.ok, "callback not acknowledged: {outcome:?}");
        acked += 1;
    }
    assert_eq!(acked, MEMBERS);
    // Kill at once: processing and delivery are typically still under way.
    child.kill();
    let before = replies_per_member(&sim);

    let mut child = spawn_gateway(data.path(), port, &sim_base);
    wait_healthy(port).await;
    let mut counts = replies_per_member(&sim);
    for _ in 0..600 {
        if counts.iter().all(|&c| c >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts = replies_per_member(&sim);
    }
    // Judge only a quiescent desk: stop gracefully, then nothing may be left to process or
    // to send (a duplicate waiting in the outbox would otherwise go unseen).
    child.stop();
    counts = replies_per_member(&sim);
    let store = wecom_helpdesk::store::Store::open(data.path(), 8 << 20).expect("reopen");
    let inbox = wecom_helpdesk::inbox::Inbox::open(&store).expect("inbox");
    let outbox = wecom_helpdesk::outbox::Outbox::open(&store).expect("outbox");
    assert_eq!(
        inbox.pending_count(),
        0,
        "every acknowledged message processed"
    );
    assert!(
        outbox.pending().expect("outbox").is_empty(),
        "nothing left to send"
    );
    assert!(
        counts.iter().all(|&c| c == 1),
        "every acknowledged message answered exactly once; before the kill {before:?}, after restart {counts:?}"
    );
}
