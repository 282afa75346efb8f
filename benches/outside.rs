//! The callback path measured from outside: `cargo bench --bench outside`.
//!
//! Starts the binary as shipped (`wecom-helpdesk`, built with the bench profile = release)
//! as its own process on a fresh data folder, with its workers and the built-in simulator
//! running, and drives it from this process over loopback (a wrk-like keep-alive load
//! generator): at 1, 16, 64 and 256 connections, first `/healthz` (the no-op baseline,
//! same server, same run), then distinct encrypted callbacks (no dedupe hits). Prints
//! acks/s, p50/p99 and the ratio to `/healthz`; the cold start time to `/healthz`; and the
//! server's RSS after all callbacks. `BENCH_TOTAL` (default 20,000 per level) sets the
//! callbacks per level.
//!
//! When `wrk` is installed (Debian's `wrk`), the same levels are measured with it as well:
//! 2 threads, 5 s per level, a Lua script feeding pre-built distinct callbacks. wrk is a far
//! lighter client than this process's reqwest loop, so its `/healthz` baseline (and the
//! ratio) is the one to compare with the issue's figures.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wecom_helpdesk::config::Config;

mod support;
use support::{Run, rss_mib};

/// `connections` keep-alive clients, one connection each (as wrk's connections).
async fn drive(requests: Arc<Vec<(String, String)>>, connections: usize) -> Run {
    let clients = (0..connections)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client")
        })
        .collect();
    support::drive(requests, clients).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let total: usize = std::env::var("BENCH_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let env = [
        (
            "HELPDESK__STORAGE__DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        (
            "HELPDESK__STORAGE__BACKUP_DIR",
            dir.path().join("backups").display().to_string(),
        ),
        ("HELPDESK__SERVER__LISTEN", listen.clone()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let text = std::fs::read_to_string(root.join("config.toml")).expect("config.toml");
    let env_owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let cfg = Config::from_sources(&root.join("config.toml"), &text, &env_owned).expect("config");

    let started = Instant::now();
    let mut server = Command::new(env!("CARGO_BIN_EXE_wecom-helpdesk"))
        .current_dir(&root)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gateway");
    let probe = reqwest::Client::new();
    loop {
        if probe
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cold_start = started.elapsed();
    println!(
        "cold start to /healthz: {:.0} ms",
        cold_start.as_secs_f64() * 1000.0
    );
    println!();
    println!("| connections | /healthz req/s (p99) | callbacks acks/s (p50 / p99) | ratio |");
    println!("|---|---|---|---|");
    let healthz: Arc<Vec<(String, String)>> = Arc::new(
        (0..total)
            .map(|_| (format!("{base}/healthz"), String::new()))
            .collect(),
    );
    let mut from = 0;
    for connections in [1, 16, 64, 256] {
        idle(&base).await;
        let h = drive(healthz.clone(), connections).await;
        let reqs = support::callbacks(&cfg, "outside/", from, total, &base);
        from += total as u64;
        let c = drive(reqs, connections).await;
        println!(
            "| {connections} | {:.0} ({:.2} ms) | {:.0} ({:.2} / {:.2} ms) | {:.0}% |",
            h.per_sec,
            h.p99.as_secs_f64() * 1000.0,
            c.per_sec,
            c.p50.as_secs_f64() * 1000.0,
            c.p99.as_secs_f64() * 1000.0,
            c.per_sec / h.per_sec * 100.0
        );
    }
    if Command::new("wrk").arg("--version").output().is_ok() {
        from = with_wrk(&cfg, &base, from).await;
    } else {
        println!();
        println!("(wrk is not installed: apt-get install wrk for the wrk measurement)");
    }
    println!();
    println!(
        "server RSS after {} callbacks (workers and the simulator running): {:.0} MiB",
        from,
        rss_mib(Some(server.id()))
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// wrk's Lua: each thread takes every n-th pre-built request of the file (no repeats while
/// the file lasts; `done` reports whether any thread wrapped around).
const WRK_LUA: &str = r#"
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  reqs = {}
  local n, i = tonumber(args[2]), 0
  for line in io.lines(args[1]) do
    if i % n == id then
      local path, body = line:match("^(.-)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
    end
    i = i + 1
  end
  idx = 0
end
function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end
"#;

struct WrkRun {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
}

fn ms(v: &str) -> f64 {
    let v = v.trim();
    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    if let Some(x) = v.strip_suffix("us") {
        num(x) / 1000.0
    } else if let Some(x) = v.strip_suffix("ms") {
        num(x)
    } else if let Some(x) = v.strip_suffix('s') {
        num(x) * 1000.0
    } else {
        f64::NAN
    }
}

/// Wait until the server has processed every callback (its `/metrics`), so that a level
/// does not pay for the backlog of the one before. (Replies to the four load members wait
/// on WeCom's 30 a minute per member: the outbox never empties during a bench, and waits
/// for its slots without using the CPU.)
async fn idle(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..240 {
        let text = match http.get(format!("{base}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if value("helpdesk_inbox_pending") == Some(0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("the server did not process its backlog within 2 minutes");
}

fn wrk(
    connections: usize,
    url: &str,
    script: Option<(&std::path::Path, &std::path::Path)>,
) -> WrkRun {
    let threads = connections.min(2);
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{threads}"),
        &format!("-c{connections}"),
        "-d5s",
        "--latency",
    ]);
    if let Some((lua, requests)) = script {
        cmd.arg("-s").arg(lua);
        cmd.arg(url)
            .arg("--")
            .arg(requests)
            .arg(threads.to_string());
    } else {
        cmd.arg(url);
    }
    let out = cmd.output().expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    WrkRun {
        per_sec: field("Requests/sec:").parse().unwrap_or(0.0),
        p50_ms: ms(&field("50%")),
        p99_ms: ms(&field("99%")),
        requests,
        errors: field("Non-2xx or 3xx responses:").parse().unwrap_or(0),
    }
}

/// The same levels with wrk; returns the callbacks sent so far.
async fn with_wrk(cfg: &Config, base: &str, mut from: u64) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let lua = dir.path().join("callbacks.lua");
    std::fs::write(&lua, WRK_LUA).expect("write the script");
    println!();
    println!("wrk (2 threads, 5 s a level):");
    println!();
    println!("| connections | /healthz req/s (p99) | callbacks acks/s (p50 / p99) | ratio |");
    println!("|---|---|---|---|");
    const PER_LEVEL: usize = 150_000;
    for connections in [1, 16, 64, 256] {
        idle(base).await;
        let h = wrk(connections, &format!("{base}/healthz"), None);
        let reqs = support::callbacks(cfg, "outside/", from, PER_LEVEL, base);
        let file = dir.path().join("requests.tsv");
        let mut lines = String::with_capacity(PER_LEVEL * 700);
        for (url, body) in reqs.iter() {
            let path = url.trim_start_matches(base);
            assert!(!body.contains(['\n', '\t']), "one request a line");
            lines.push_str(path);
            lines.push('\t');
            lines.push_str(body);
            lines.push('\n');
        }
        std::fs::write(&file, lines).expect("write the requests");
        let c = wrk(connections, base, Some((&lua, &file)));
        from += PER_LEVEL as u64;
        let wrapped = if c.requests > PER_LEVEL as u64 {
            " (some repeated: dedupe hits)"
        } else {
            ""
        };
        println!(
            "| {connections} | {:.0} ({:.2} ms) | {:.0} ({:.2} / {:.2} ms){wrapped}{} | {:.0}% |",
            h.per_sec,
            h.p99_ms,
            c.per_sec,
            c.p50_ms,
            c.p99_ms,
            if c.errors > 0 {
                format!(" — {} not acknowledged", c.errors)
            } else {
                String::new()
            },
            c.per_sec / h.per_sec * 100.0
        );
    }
    from
}
