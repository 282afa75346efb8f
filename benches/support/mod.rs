//! What the benches share: percentiles, RSS, and pre-built signed and encrypted callbacks.
//! (A folder, so Cargo does not take it for a bench of its own.)

#![allow(dead_code)] // each bench uses part of it

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wecom_helpdesk::config::Config;
use wecom_helpdesk::wecom::{self, Channel, ChatType, Content, Inbound, MsgCrypt};

/// The `p` percentile of sorted durations (nearest rank, rounded).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Resident memory of process `pid` (`None`: this one), MiB.
pub(crate) fn rss_mib(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `n` distinct app callbacks ("帮助" from the four demo members, MsgIds `{prefix}{from}`,
/// `{prefix}{from + 1}`, …) for the gateway at `base`, signed and encrypted up front so the
/// crypto stays out of the timed loop: (URL, body).
pub(crate) fn callbacks(
    cfg: &Config,
    prefix: &str,
    from: u64,
    n: usize,
    base: &str,
) -> Arc<Vec<(String, String)>> {
    let w = &cfg.wecom;
    let crypt = MsgCrypt::new(
        w.app.token.expose(),
        w.app.encoding_aes_key.expose(),
        &w.corp_id,
    )
    .expect("key");
    let members = ["zhangsan", "lisi", "wangwu", "zhaoliu"];
    let ts = wecom_helpdesk::util::unix_now().to_string();
    Arc::new(
        (0..n)
            .map(|i| {
                let sender = members[i % members.len()];
                let m = Inbound {
                    channel: Channel::App,
                    chat_type: ChatType::Single,
                    chat_id: sender.into(),
                    sender: sender.into(),
                    msg_id: format!("{prefix}{}", from + i as u64),
                    create_time: ts.parse().unwrap_or(0),
                    content: Content::Text {
                        text: "帮助".into(),
                    },
                    quote: None,
                    response_url: None,
                };
                let enc = crypt.encrypt(&wecom::app::message_xml(&w.corp_id, w.agent_id, &m));
                let sig = crypt.sign(&ts, "12345", &enc);
                (
                    format!(
                        "{base}/wecom/app/callback?msg_signature={sig}&timestamp={ts}&nonce=12345"
                    ),
                    wecom::app::envelope(&w.corp_id, w.agent_id, &enc),
                )
            })
            .collect(),
    )
}

/// What a closed-loop run measured.
pub(crate) struct Run {
    pub(crate) per_sec: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

/// One task per client sends the next of `requests` (GET when the body is empty) until none
/// are left; every answer must be 200.
pub(crate) async fn drive(
    requests: Arc<Vec<(String, String)>>,
    clients: Vec<reqwest::Client>,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for http in clients {
        let (requests, next) = (requests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((url, body)) = requests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = if body.is_empty() {
                    http.get(url).send().await
                } else {
                    http.post(url).body(body.clone()).send().await
                }
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
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

/// The value of the first line of the server's `/metrics` at `base` that starts with `name`.
pub(crate) async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// CPU time, seconds: user and system time of process `pid` (all its threads), or with
/// `None` of this process's waited-for children (a finished `wrk`), from `/proc`.
pub(crate) fn cpu_secs(pid: Option<u32>) -> f64 {
    let stat = std::fs::read_to_string(pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    ))
    .unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 12th and 13th of them, cutime and cstime the 14th and 15th.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = if pid.is_some() { 11 } else { 13 };
    fields.get(at..at + 2).map_or(0.0, |t| t[0] + t[1]) / CLOCK_TICKS
}

/// `USER_HZ`, the unit of `/proc`'s times (100 on every Linux architecture we build for).
const CLOCK_TICKS: f64 = 100.0;

/// The machine's idle time so far (idle and iowait of every core), seconds.
pub(crate) fn idle_secs() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|cpu| {
            let f: Vec<f64> = cpu
                .split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            Some(f.get(3)? + f.get(4)?)
        })
        .map_or(0.0, |t| t / CLOCK_TICKS)
}
