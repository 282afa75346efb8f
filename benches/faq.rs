//! FAQ speed benchmark: `FAQ_EVAL_DIR=<path to faq-eval> cargo bench --bench faq`.
//!
//! Reports, with medians over several runs:
//! - index build time for the mixed track's KB (4,369 entries) and for a 10k-entry KB (the
//!   mixed KB plus perturbed copies of its questions);
//! - query latency p50/p99 on one thread over the dev queries;
//! - queries per second on two threads;
//! - RSS after loading (jieba's dictionary included).
//!
//! Without `FAQ_EVAL_DIR` the shipped `kb/` is scaled up synthetically and queried with its
//! own similar questions, so the bench still runs (the figures are then not comparable with
//! the evaluation).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wecom_helpdesk::kb::{self, Entry};

mod support;
use support::rss_mib;

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Deterministic perturbation: drop one character, so copies are near-duplicates.
fn perturb(s: &str, seed: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 4 {
        return format!("{s}{seed}");
    }
    let cut = seed % chars.len();
    chars
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != cut)
        .map(|(_, c)| *c)
        .collect()
}

fn scale_to(base: &[Entry], n: usize) -> Vec<Entry> {
    let mut out = base.to_vec();
    let mut i = 0;
    while out.len() < n {
        let src = &base[i % base.len()];
        out.push(Entry {
            id: format!("synthetic-{i}"),
            question: perturb(&src.question, i),
            similar: src
                .similar
                .iter()
                .enumerate()
                .map(|(j, s)| perturb(s, i + j))
                .collect(),
            ..src.clone()
        });
        i += 1;
    }
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shipped = kb::entry::load_dir(&root.join("kb")).expect("kb/");
    let (dict, synonyms) = (shipped.dict.clone(), shipped.synonyms.clone());
    let eval = std::env::var_os("FAQ_EVAL_DIR").map(PathBuf::from);
    let (mixed, queries): (Vec<Entry>, Vec<String>) = match &eval {
        Some(dir) => {
            let kb =
                kb::entry::load_jsonl(&dir.join("dev/mixed/kb.jsonl")).expect("mixed kb.jsonl");
            let q = std::fs::read_to_string(dir.join("dev/mixed/queries.jsonl")).expect("queries");
            let qs = q
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["query"].as_str().map(str::to_owned))
                .collect();
            (kb, qs)
        }
        None => {
            eprintln!(
                "FAQ_EVAL_DIR is not set: using the shipped kb/ scaled up, queried with its own phrasings"
            );
            let kb = scale_to(&shipped.entries, 4369);
            let qs = shipped
                .entries
                .iter()
                .flat_map(|e| e.similar.clone())
                .collect();
            (kb, qs)
        }
    };
    let ten_k = scale_to(&mixed, 10_000);

    println!("FAQ benchmark (2-core machine, release build, medians of {RUNS} runs)");
    let rss_before = rss_mib(None);
    let mut index = None;
    let mut builds = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        index = Some(kb::build(&mixed, &dict, &synonyms).expect("build"));
        builds.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let index = Arc::new(index.expect("built"));
    println!(
        "build, {} entries (mixed track): {:.0} ms",
        mixed.len(),
        median(builds)
    );
    println!(
        "RSS after loading (jieba dictionary and index): {:.0} MiB (process start {:.0} MiB)",
        rss_mib(None),
        rss_before
    );

    let mut builds = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let big = kb::build(&ten_k, &dict, &synonyms).expect("build 10k");
        builds.push(t.elapsed().as_secs_f64() * 1e3);
        drop(big);
    }
    println!("build, {} entries: {:.0} ms", ten_k.len(), median(builds));

    // Warm up, then time every dev query on one thread.
    for q in queries.iter().take(200) {
        let _ = index.search(q, 10);
    }
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for _ in 0..RUNS {
        let mut lat: Vec<Duration> = queries
            .iter()
            .map(|q| {
                let t = Instant::now();
                let hits = index.search(q, 10);
                std::hint::black_box(hits);
                t.elapsed()
            })
            .collect();
        lat.sort();
        p50s.push(lat[lat.len() / 2].as_secs_f64() * 1e3);
        p99s.push(lat[lat.len() * 99 / 100].as_secs_f64() * 1e3);
    }
    println!(
        "query latency, one thread, {} queries: p50 {:.2} ms, p99 {:.2} ms",
        queries.len(),
        median(p50s),
        median(p99s)
    );

    let queries = Arc::new(queries);
    let mut qps = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let handles: Vec<_> = (0..2)
            .map(|k| {
                let (index, queries) = (index.clone(), queries.clone());
                std::thread::spawn(move || {
                    for q in queries.iter().skip(k).step_by(2) {
                        std::hint::black_box(index.search(q, 10));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        qps.push(queries.len() as f64 / t.elapsed().as_secs_f64());
    }
    println!("throughput, two threads: {:.0} queries/s", median(qps));
}
