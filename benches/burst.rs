//! The outage burst users feel: `cargo bench --bench burst`.
//!
//! 1,000 distinct agents (`BENCH_AGENTS` overrides) each report a fault within 60 s
//! (`BENCH_SPREAD_SECS`): a text, a second later a screenshot, a second later "完成", to
//! the full system in this process (gateway, workers, and the built-in simulator standing in
//! for WeCom, reached over loopback HTTP with real crypto). Prints the acknowledgement
//! latency of every callback (max, p50/p99: the simulator's send round trip, so an upper
//! bound), whether anything was lost or dropped, whether every agent was answered, the most
//! messages one member was sent in a minute (WeCom's limit is 30), the time from the first
//! report until the last reply, and the RSS after the burst (simulator included).
//!
//! `tests/it/burst.rs` runs the same scenario with 100 agents in `cargo test`, asserting
//! correctness only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{metric, percentile, rss_mib};

/// A 1×1 PNG; a counter appended keeps each agent's screenshot distinct.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One callback through the simulator: (acknowledged, round trip).
async fn send(http: &reqwest::Client, sim: &str, member: &str, body: Value) -> (bool, Duration) {
    let mut body = body;
    body["chat"] = json!(format!("app:{member}"));
    body["from"] = json!(member);
    let began = Instant::now();
    let ok = match http
        .post(format!("{sim}/api/send"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["ok"] == true),
        Err(_) => false,
    };
    (ok, began.elapsed())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let agents = env_or("BENCH_AGENTS", 1000) as usize;
    let spread = Duration::from_secs(env_or("BENCH_SPREAD_SECS", 60));
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config.toml")).expect("config.toml");
    let members: Vec<String> = (0..agents)
        .map(|i| format!("\"agent{i:04}:客户经理{i:04}\""))
        .collect();
    let env = vec![
        (
            "HELPDESK__STORAGE__DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        (
            "HELPDESK__STORAGE__BACKUP_DIR".to_owned(),
            dir.path().join("backups").display().to_string(),
        ),
        (
            "HELPDESK__SIM__MEMBERS".to_owned(),
            format!("[{}]", members.join(",")),
        ),
    ];
    let cfg = wecom_helpdesk::config::Config::from_sources(&root.join("config.toml"), &text, &env)
        .expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let sim = format!("{base}/sim");
    let (trigger, sd) = wecom_helpdesk::shutdown::channel();
    let gateway = tokio::spawn(wecom_helpdesk::app::run(cfg, listener, sd));
    let http = reqwest::Client::new();
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!(
        "burst: {agents} agents within {} s, each a text, a screenshot and 完成 a second apart",
        spread.as_secs()
    );
    let started = Instant::now();
    let start_ms = wecom_helpdesk::util::unix_millis();
    let mut tasks = Vec::with_capacity(agents);
    for i in 0..agents {
        let (http, sim) = (http.clone(), sim.clone());
        let at = spread.mul_f64(i as f64 / agents as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(started + at)).await;
            let member = format!("agent{i:04}");
            let mut png = PNG.to_vec();
            png.extend_from_slice(&(i as u32).to_be_bytes());
            use base64::Engine;
            let image = base64::engine::general_purpose::STANDARD.encode(&png);
            let mut results = Vec::with_capacity(3);
            results.push(
                send(
                    &http,
                    &sim,
                    &member,
                    json!({ "text": "股票交易不了，委托一直失败，客户很着急" }),
                )
                .await,
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            results.push(send(&http, &sim, &member, json!({ "images": [image] })).await);
            tokio::time::sleep(Duration::from_secs(1)).await;
            results.push(send(&http, &sim, &member, json!({ "text": "完成" })).await);
            results
        }));
    }
    let mut acks = Vec::with_capacity(agents * 3);
    let mut refused = 0;
    for t in tasks {
        for (ok, took) in t.await.expect("agent") {
            if ok {
                acks.push(took);
            } else {
                refused += 1;
            }
        }
    }
    let sent_in = started.elapsed();

    // Settled: every message processed and every reply delivered.
    let settle_by = Instant::now() + Duration::from_secs(600);
    while Instant::now() < settle_by {
        let inbox = metric(&base, "helpdesk_inbox_pending").await;
        let outbox = metric(&base, "helpdesk_outbox_pending").await;
        if inbox == Some(0.0) && outbox == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unprocessed = metric(&base, "helpdesk_inbox_pending").await;
    let inbox_dead = metric(&base, "helpdesk_inbox_dead").await;
    let outbox_dead = metric(&base, "helpdesk_outbox_dead").await;
    let messages: Vec<Value> = http
        .get(format!("{sim}/api/messages"))
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("json");

    let mut replies_to: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut dropped = 0;
    for m in &messages {
        let Some(member) = m["chat"].as_str().and_then(|c| c.strip_prefix("app:")) else {
            continue;
        };
        if m["from"] != member {
            replies_to
                .entry(member)
                .or_default()
                .push(m["at_ms"].as_i64().unwrap_or(0));
        }
        if m["dropped"] == true {
            dropped += 1;
        }
    }
    let answered = (0..agents)
        .filter(|i| replies_to.contains_key(format!("agent{i:04}").as_str()))
        .count();
    let last_reply = replies_to.values().flatten().max().copied().unwrap_or(0);
    // The most replies one member got within any 60 s.
    let most_per_minute = replies_to
        .values_mut()
        .map(|times| {
            times.sort_unstable();
            (0..times.len())
                .map(|i| times[i..].partition_point(|&t| t < times[i] + 60_000))
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    acks.sort_unstable();
    if acks.is_empty() {
        acks.push(Duration::ZERO);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "| callbacks | acknowledged | ack max | ack p50 / p99 | lost | agents answered | most replies to one member in 60 s | last reply after | RSS after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} ms | {:.1} / {:.1} ms | {:.0} | {answered} / {agents} | {most_per_minute}{} | {:.1} s | {:.0} MiB |",
        acks.len() + refused,
        acks.len(),
        acks.last().map_or(0.0, |d| ms(*d)),
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99)),
        // Lost: acknowledged but never processed (still pending after settling, or
        // dead-lettered), or a reply that could not be delivered.
        (unprocessed.unwrap_or(f64::NAN)
            + inbox_dead.unwrap_or(f64::NAN)
            + outbox_dead.unwrap_or(f64::NAN)),
        if dropped > 0 {
            format!(" ({dropped} over WeCom's limit)")
        } else {
            String::new()
        },
        (last_reply - start_ms) as f64 / 1000.0,
        rss_mib(None),
    );
    println!(
        "(all sent within {:.1} s; the RSS is this process: gateway, workers and simulator)",
        sent_in.as_secs_f64()
    );
    trigger.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(30), gateway).await;
}
