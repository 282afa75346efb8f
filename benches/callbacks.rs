//! Callback acknowledgement benchmark: `cargo bench --bench callbacks`.
//!
//! Starts the real gateway in this process (built-in simulator as WeCom, workers running,
//! every ack after a durable group flush) and, on another port of the same runtime, a no-op
//! axum handler as the baseline. For 1, 16 and 64 concurrent keep-alive clients it sends
//! pre-built, signed and encrypted app callbacks (unique MsgIds) and prints acks/s and
//! p50/p99 latency for both, and the ratio. Finally the RSS of the process after all
//! callbacks (100k by default; `BENCH_TOTAL` overrides).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wecom_helpdesk::config::Config;
use wecom_helpdesk::wecom::{self, Channel, ChatType, Content, Inbound, MsgCrypt};

struct Run {
    acks_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn drive(
    http: &reqwest::Client,
    requests: Arc<Vec<(String, String)>>,
    clients: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, requests, next) = (http.clone(), requests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((url, body)) = requests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = http
                    .post(url)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 200, "not acknowledged");
                let _ = r.bytes().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    all.sort();
    Run {
        acks_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
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
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("config.toml")).expect("config.toml");
        let env = vec![
            ("HELPDESK__STORAGE__DATA_DIR".to_owned(), dir.path().display().to_string()),
            ("HELPDESK__SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ];
        let cfg = Config::from_sources(&root.join("config.toml"), &text, &env).expect("config");

        // The gateway.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, sd) = wecom_helpdesk::shutdown::channel();
        let services = Arc::new(
            wecom_helpdesk::app::Services::build(Arc::new(cfg.clone()), cfg.api_base(addr)).expect("services"),
        );
        let gateway = tokio::spawn(wecom_helpdesk::app::serve(services.clone(), listener, sd));
        let http = reqwest::Client::builder().pool_max_idle_per_host(128).build().expect("client");
        for _ in 0..200 {
            if http.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The baseline: a no-op handler on the same runtime.
        let noop = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let noop_addr = noop.local_addr().expect("addr");
        let app = axum::Router::new().route("/wecom/app/callback", axum::routing::post(|| async { "" }));
        tokio::spawn(async move { axum::serve(noop, app).await });

        // Pre-built callbacks (crypto cost stays out of the timed loop).
        let w = &cfg.wecom;
        let crypt = MsgCrypt::new(w.app.token.expose(), w.app.encoding_aes_key.expose(), &w.corp_id).expect("key");
        let members = ["zhangsan", "lisi", "wangwu", "zhaoliu"];
        let mut msg_no = 5_000_000_000u64;
        let mut build = |n: usize, base: &str| -> Arc<Vec<(String, String)>> {
            let ts = wecom_helpdesk::util::unix_now().to_string();
            Arc::new(
                (0..n)
                    .map(|i| {
                        msg_no += 1;
                        let sender = members[i % members.len()];
                        let m = Inbound {
                            channel: Channel::App,
                            chat_type: ChatType::Single,
                            chat_id: sender.into(),
                            sender: sender.into(),
                            msg_id: format!("msg/{}/{msg_no}", w.agent_id),
                            create_time: ts.parse().unwrap_or(0),
                            content: Content::Text { text: "帮助".into() },
                            quote: None,
                            response_url: None,
                        };
                        let enc = crypt.encrypt(&wecom::app::message_xml(&w.corp_id, w.agent_id, &m));
                        let sig = crypt.sign(&ts, "12345", &enc);
                        (
                            format!("{base}/wecom/app/callback?msg_signature={sig}&timestamp={ts}&nonce=12345"),
                            wecom::app::envelope(&w.corp_id, w.agent_id, &enc),
                        )
                    })
                    .collect(),
            )
        };

        let levels = [1usize, 16, 64];
        let share = total / levels.len();
        println!("callback acknowledgement benchmark: {total} callbacks to the gateway (durable), the same count to a no-op baseline");
        println!("{:>8} | {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>7}", "clients", "gateway/s", "p50 ms", "p99 ms", "no-op/s", "p50 ms", "p99 ms", "ratio");
        for &clients in &levels {
            let n = share.max(clients * 10);
            let noop_reqs = build(n, &format!("http://{noop_addr}"));
            let base = drive(&http, noop_reqs, clients).await;
            let reqs = build(n, &format!("http://{addr}"));
            let before = services.inbox.writer_stats();
            let gw = drive(&http, reqs, clients).await;
            let after = services.inbox.writer_stats();
            let batches = (after.batches - before.batches).max(1);
            println!(
                "{clients:>8} | {:>12.0} {:>9.2} {:>9.2} | {:>12.0} {:>9.2} {:>9.2} | {:>6.0}%",
                gw.acks_per_sec,
                gw.p50.as_secs_f64() * 1e3,
                gw.p99.as_secs_f64() * 1e3,
                base.acks_per_sec,
                base.p50.as_secs_f64() * 1e3,
                base.p99.as_secs_f64() * 1e3,
                100.0 * gw.acks_per_sec / base.acks_per_sec
            );
            println!(
                "         group commit: {} batches, {:.1} callbacks per fsync, commit {:.2} ms + flush {:.2} ms per batch",
                batches,
                (after.messages - before.messages) as f64 / batches as f64,
                (after.commit_nanos - before.commit_nanos) as f64 / batches as f64 / 1e6,
                (after.flush_nanos - before.flush_nanos) as f64 / batches as f64 / 1e6
            );
        }
        println!("RSS after {total} callbacks: {:.0} MiB", rss_mib());
        trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(30), gateway).await;
    });
}
