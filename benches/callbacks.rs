//! Callback acknowledgement benchmark: `cargo bench --bench callbacks`.
//!
//! Runs, in this one process, a no-op axum handler (the baseline) and the real gateway: every
//! request is a pre-built, signed and encrypted app callback with a unique MsgId, verified,
//! decrypted, parsed and stored durably (fsync shared by a group commit) before its 200.
//! The gateway is measured twice:
//! - **full system**: the conversation and outbox workers run as in production, processing
//!   every message and replying through the built-in simulator while the load runs;
//! - **ingest only**: a second instance with the workers off, to show the callback path's own
//!   ceiling.
//!
//! For 1, 16 and 64 concurrent keep-alive clients it prints acks/s, p50/p99 latency, the
//! ratio to the baseline and the group-commit batch sizes; then the RSS after all callbacks
//! (100k to the full system by default; `BENCH_TOTAL` overrides).

use std::sync::Arc;
use std::time::Duration;

use wecom_helpdesk::app::{ServeOptions, Services};
use wecom_helpdesk::config::Config;

mod support;
use support::{Run, rss_mib};

/// The next `n` distinct callbacks (MsgIds continue from `msg_no`).
fn next_callbacks(
    cfg: &Config,
    msg_no: &mut u64,
    n: usize,
    base: &str,
) -> Arc<Vec<(String, String)>> {
    let prefix = format!("msg/{}/", cfg.wecom.agent_id);
    let reqs = support::callbacks(cfg, &prefix, *msg_no + 1, n, base);
    *msg_no += n as u64;
    reqs
}

/// `clients` tasks sharing one keep-alive pool.
async fn drive(
    http: &reqwest::Client,
    requests: Arc<Vec<(String, String)>>,
    clients: usize,
) -> Run {
    support::drive(requests, vec![http.clone(); clients]).await
}

struct Gateway {
    addr: std::net::SocketAddr,
    services: Arc<Services>,
    trigger: wecom_helpdesk::shutdown::Trigger,
    handle: tokio::task::JoinHandle<wecom_helpdesk::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(workers: bool, http: &reqwest::Client) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config.toml")).expect("config.toml");
    let env = vec![
        (
            "HELPDESK__STORAGE__DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        (
            "HELPDESK__SERVER__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ];
    let cfg = Config::from_sources(&root.join("config.toml"), &text, &env).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (trigger, sd) = wecom_helpdesk::shutdown::channel();
    let services = Arc::new(
        Services::build(
            Arc::new(cfg.clone()),
            cfg.api_base(addr),
            cfg.public_url(addr),
        )
        .expect("services"),
    );
    let handle = tokio::spawn(wecom_helpdesk::app::serve_with(
        services.clone(),
        listener,
        sd,
        ServeOptions { workers },
    ));
    for _ in 0..200 {
        if http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Gateway {
        addr,
        services,
        trigger,
        handle,
        _dir: dir,
    }
}

fn row(
    label: &str,
    clients: usize,
    r: &Run,
    base: &Run,
    g: &Gateway,
    before: wecom_helpdesk::inbox::LogStats,
) {
    let after = g.services.inbox.log_stats();
    let batches = (after.syncs - before.syncs).max(1);
    println!(
        "{label:<13} {clients:>4} | {:>9.0} {:>8.2} {:>8.2} | {:>9.0} {:>8.2} {:>8.2} | {:>5.0}% | {:>6.1}",
        r.per_sec,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        base.per_sec,
        base.p50.as_secs_f64() * 1e3,
        base.p99.as_secs_f64() * 1e3,
        100.0 * r.per_sec / base.per_sec,
        (after.messages - before.messages) as f64 / batches as f64,
    );
}

fn main() {
    let total: usize = std::env::var("BENCH_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .expect("client");
        let noop = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let noop_addr = noop.local_addr().expect("addr");
        let app =
            axum::Router::new().route("/wecom/app/callback", axum::routing::post(|| async { "" }));
        tokio::spawn(async move { axum::serve(noop, app).await });

        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("config.toml")).expect("config.toml");
        let cfg = Config::from_sources(&root.join("config.toml"), &text, &[]).expect("config");
        let mut msg_no = 5_000_000_000u64;
        let levels = [1usize, 16, 64];
        let share = total / levels.len();

        println!(
            "callback acknowledgement benchmark (2-core machine; same process, loopback HTTP)"
        );
        println!(
            "{:<13} {:>4} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>6} | {:>6}",
            "gateway",
            "cli",
            "acks/s",
            "p50 ms",
            "p99 ms",
            "no-op/s",
            "p50 ms",
            "p99 ms",
            "ratio",
            "per fsync"
        );
        for (label, workers) in [("ingest only", false), ("full system", true)] {
            let g = start(workers, &http).await;
            for &clients in &levels {
                let n = share.max(clients * 10);
                let base = drive(
                    &http,
                    next_callbacks(&cfg, &mut msg_no, n, &format!("http://{noop_addr}")),
                    clients,
                )
                .await;
                let reqs = next_callbacks(&cfg, &mut msg_no, n, &format!("http://{}", g.addr));
                let before = g.services.inbox.log_stats();
                let r = drive(&http, reqs, clients).await;
                row(label, clients, &r, &base, &g, before);
            }
            if workers {
                println!(
                    "RSS after {total} callbacks through the full system: {:.0} MiB",
                    rss_mib(None)
                );
            }
            g.trigger.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(30), g.handle).await;
        }
    });
}
