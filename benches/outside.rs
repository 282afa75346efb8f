//! The callback path measured from outside: `cargo bench --bench outside`.
//!
//! Starts the binary as shipped (`wecom-helpdesk`, built with the bench profile = release)
//! as its own process on a fresh data folder, with its workers and the built-in simulator
//! running, and drives it from this process over loopback (a wrk-like keep-alive load
//! generator): at 1, 16, 64 and 256 connections, first `/healthz` (the no-op baseline,
//! same server, same run), then distinct encrypted callbacks (no dedupe hits). Prints
//! acks/s, p50/p99 and the ratio to `/healthz`; the cold start time to `/healthz`; and the
//! server's RSS after all callbacks. `BENCH_TOTAL` (default 20,000 per level) sets the
//! callbacks per level. `BENCH_BIN` starts another build of the binary instead (to compare
//! two builds on the same machine state, run them in turns).
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
use support::{Run, cpu_secs, idle_secs, metric, rss_mib};

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

/// The connection counts to measure: `BENCH_LEVELS` (comma-separated), else 1, 16, 64, 256.
fn levels() -> Vec<usize> {
    std::env::var("BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|l: &Vec<usize>| !l.is_empty())
        .unwrap_or_else(|| vec![1, 16, 64, 256])
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
    let levels = levels();
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
    let bin = std::env::var("BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_wecom-helpdesk").to_owned());
    let mut server = Command::new(bin)
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
    for &connections in &levels {
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
        with_wrk(server.id(), &cfg, &base, from, &levels).await;
    } else {
        println!();
        println!("(wrk is not installed: apt-get install wrk for the wrk measurement)");
    }
    println!();
    let accepted = metric(&base, "helpdesk_callbacks_total{result=\"accepted\"}")
        .await
        .unwrap_or(0.0);
    println!(
        "server RSS after {accepted:.0} callbacks (workers and the simulator running): {:.0} MiB",
        rss_mib(Some(server.id()))
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// wrk's Lua: each thread reads its own file of pre-built requests (no repeats while the
/// file lasts) and sends them in turn.
///
/// wrk starts thread 0's load while it still runs the later threads' `init`, yet starts its
/// clock only after the last one: requests sent in between would count without their time,
/// and the Lua would take CPU from the server. So every thread's first `request` waits
/// until the last thread's `init` has written the flag file (`args[3]`).
const WRK_LUA: &str = r#"
local ffi = require("ffi")
ffi.cdef("int usleep(unsigned int usec);")
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  reqs = {}
  for line in io.lines(args[1] .. id) do
    local path, body = line:match("^(.-)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
  end
  n, idx, flag, started, verified = #reqs, 0, args[3], false, false
  if id == tonumber(args[2]) - 1 then
    io.open(flag, "w"):close()
  end
end
function request()
  if id == 0 and not verified then
    -- wrk calls thread 0's request once from its main thread, before the other threads'
    -- init, to count pipelined requests: that call must not wait.
    verified = true
    return reqs[1]
  end
  while not started do
    local f = io.open(flag)
    if f then
      f:close()
      started = true
    else
      ffi.C.usleep(1000)
    end
  end
  idx = idx + 1
  if idx > n then idx = 1 end
  return reqs[idx]
end
"#;

/// Seconds of load per wrk run.
const WRK_SECS: u64 = 5;

struct WrkRun {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
    /// CPU time per request, µs: the server's (all its threads) and wrk's.
    server_us: f64,
    wrk_us: f64,
    /// Share of the machine's cores idle during the run.
    idle: f64,
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
/// for its slots without using the CPU.) Returns how long that took.
async fn idle(base: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(300) {
        if metric(base, "helpdesk_inbox_pending").await == Some(0.0) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the server did not process its backlog within 5 minutes");
    started.elapsed()
}

/// The machine's cores.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// wrk's threads: two, as the machine has two cores (fewer with fewer connections).
fn wrk_threads(connections: usize) -> usize {
    connections.min(2)
}

/// One wrk run; `script` is the Lua file and the prefix of the request files (one per
/// thread, the prefix followed by the thread's number).
fn wrk(
    server: u32,
    connections: usize,
    url: &str,
    script: Option<(&std::path::Path, &std::path::Path)>,
) -> WrkRun {
    let threads = wrk_threads(connections);
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{threads}"),
        &format!("-c{connections}"),
        &format!("-d{WRK_SECS}s"),
        "--latency",
    ]);
    let mut flag = None;
    if let Some((lua, requests)) = script {
        let started = requests.with_extension("started");
        let _ = std::fs::remove_file(&started);
        cmd.arg("-s").arg(lua);
        cmd.arg(url)
            .arg("--")
            .arg(requests)
            .arg(threads.to_string())
            .arg(&started);
        flag = Some(started);
    } else {
        cmd.arg(url);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("run wrk");
    // The load starts once the script's threads are ready (at once without a script): count
    // the CPU from there.
    while flag.as_ref().is_some_and(|f| !f.exists()) && child.try_wait().expect("wrk").is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let wrk_setup = cpu_secs(Some(child.id()));
    let cpu = || (cpu_secs(Some(server)), cpu_secs(None), idle_secs());
    let before = cpu();
    let started = Instant::now();
    let out = child.wait_with_output().expect("run wrk");
    let wall = started.elapsed().as_secs_f64();
    let after = cpu();
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
        server_us: (after.0 - before.0) * 1e6 / requests.max(1) as f64,
        wrk_us: (after.1 - before.1 - wrk_setup) * 1e6 / requests.max(1) as f64,
        idle: (after.2 - before.2) / (wall * cores()),
    }
}

/// The same levels with wrk, `BENCH_RUNS` (default 3) runs each, alternating `/healthz` and
/// callbacks; prints the run with the median ratio and every run's ratio, and how long the
/// workers then took to process the backlog.
async fn with_wrk(server: u32, cfg: &Config, base: &str, mut from: u64, levels: &[usize]) {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let lua = dir.path().join("callbacks.lua");
    std::fs::write(&lua, WRK_LUA).expect("write the script");
    println!();
    println!("wrk (2 threads, {WRK_SECS} s a run, median of {runs} runs):");
    println!();
    println!(
        "| connections | /healthz req/s (p99) | callbacks acks/s (p50 / p99) | ratio (every run) | messages per fdatasync | backlog processed after | CPU µs a request: server, wrk (/healthz → callbacks) | idle (/healthz → callbacks) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // More than a run can send at 100,000/s: no request repeats, so no dedupe hits.
    const PER_RUN: usize = WRK_SECS as usize * 100_000;
    for &connections in levels {
        let mut results = Vec::with_capacity(runs);
        for _ in 0..runs {
            idle(base).await;
            let h = wrk(server, connections, &format!("{base}/healthz"), None);
            let reqs = support::callbacks(cfg, "outside/", from, PER_RUN, base);
            from += PER_RUN as u64;
            let file = dir.path().join("requests");
            let threads = wrk_threads(connections);
            for thread in 0..threads {
                let mut lines = String::with_capacity(PER_RUN / threads * 700);
                for (url, body) in reqs.iter().skip(thread).step_by(threads) {
                    let path = url.trim_start_matches(base);
                    assert!(!body.contains(['\n', '\t']), "one request a line");
                    lines.push_str(path);
                    lines.push('\t');
                    lines.push_str(body);
                    lines.push('\n');
                }
                let mut name = file.clone().into_os_string();
                name.push(thread.to_string());
                std::fs::write(name, lines).expect("write the requests");
            }
            drop(reqs);
            let syncs = || async {
                let n = |name| metric(base, name);
                (
                    n("helpdesk_inbox_log_syncs_total").await.unwrap_or(0.0),
                    n("helpdesk_inbox_log_messages_total").await.unwrap_or(0.0),
                )
            };
            let (syncs_before, messages_before) = syncs().await;
            let c = wrk(server, connections, base, Some((&lua, &file)));
            let (syncs_after, messages_after) = syncs().await;
            let per_sync =
                (messages_after - messages_before) / (syncs_after - syncs_before).max(1.0);
            // Every acknowledged request was a new message (a repeat would be a dedupe hit,
            // acknowledged without an append).
            assert!(
                messages_after - messages_before >= c.requests as f64,
                "a run repeated requests: raise PER_RUN"
            );
            let drained = idle(base).await;
            eprintln!(
                "run: healthz {:.0}/s server {:.1} wrk {:.1} idle {:.0}% | callbacks {:.0}/s p99 {:.2} ms server {:.1} wrk {:.1} idle {:.0}% per sync {:.1}",
                h.per_sec,
                h.server_us,
                h.wrk_us,
                h.idle * 100.0,
                c.per_sec,
                c.p99_ms,
                c.server_us,
                c.wrk_us,
                c.idle * 100.0,
                per_sync
            );
            results.push((c.per_sec / h.per_sec, h, c, drained, per_sync));
        }
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let every: Vec<String> = results
            .iter()
            .map(|r| format!("{:.0}%", r.0 * 100.0))
            .collect();
        let (ratio, h, c, drained, per_sync) = &results[results.len() / 2];
        println!(
            "| {connections} | {:.0} ({:.2} ms) | {:.0} ({:.2} / {:.2} ms){} | **{:.0}%** ({}) | {per_sync:.1} | {:.1} s | {:.1}, {:.1} → {:.1}, {:.1} | {:.0}% → {:.0}% |",
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
            ratio * 100.0,
            every.join(" / "),
            drained.as_secs_f64(),
            h.server_us,
            h.wrk_us,
            c.server_us,
            c.wrk_us,
            h.idle * 100.0,
            c.idle * 100.0,
        );
    }
}
