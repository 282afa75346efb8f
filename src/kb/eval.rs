//! The evaluation adapter (`wecom-helpdesk kb eval`) and the threshold calibration
//! (`wecom-helpdesk kb calibrate`).
//!
//! The adapter speaks the line protocol of the FAQ evaluation scorer: load a `kb.jsonl`,
//! build the index, print `{"ready": true, "build_ms": …}`, then answer each
//! `{"qid","query","k"}` line with `{"qid","ids":[…],"search_us":…}`, one line each,
//! flushed, until stdin closes.

use std::io::{BufRead, Write};
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::KbIndex;

#[derive(Debug, Deserialize)]
struct Query {
    qid: serde_json::Value,
    query: String,
    #[serde(default = "ten")]
    k: usize,
}

fn ten() -> usize {
    10
}

/// Answer protocol lines from `input` until it ends.
pub fn serve(
    index: &KbIndex,
    build_ms: u128,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    writeln!(output, "{}", json!({ "ready": true, "build_ms": build_ms }))?;
    output.flush()?;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Query>(&line) {
            Ok(q) => {
                let started = Instant::now();
                let ids: Vec<String> = index
                    .search(&q.query, q.k.clamp(1, 100))
                    .into_iter()
                    .map(|h| h.entry.id.clone())
                    .collect();
                json!({ "qid": q.qid, "ids": ids, "search_us": started.elapsed().as_micros() as u64 })
            }
            Err(e) => json!({ "qid": null, "ids": [], "error": e.to_string() }),
        };
        writeln!(output, "{answer}")?;
        output.flush()?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Labelled {
    query: String,
    gold_id: String,
}

/// One row of the calibration table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub threshold: f32,
    /// Share of questions whose top hit is at or above the threshold.
    pub coverage: f64,
    /// Among those, the share whose top hit is right.
    pub precision: f64,
    /// Among those, the share with the right entry in the top 3.
    pub top3: f64,
}

/// For each threshold, how often an answer would be given and how often it would be right.
pub fn calibrate(index: &KbIndex, queries: &str, thresholds: &[f32]) -> Result<Vec<Row>, String> {
    let labelled: Vec<Labelled> = queries
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let results: Vec<(f32, bool, bool)> = labelled
        .iter()
        .map(|q| {
            let hits = index.search(&q.query, 3);
            let conf = hits.first().map_or(0.0, |h| h.confidence);
            let right = hits.first().is_some_and(|h| h.entry.id == q.gold_id);
            let in3 = hits.iter().any(|h| h.entry.id == q.gold_id);
            (conf, right, in3)
        })
        .collect();
    let n = results.len().max(1) as f64;
    Ok(thresholds
        .iter()
        .map(|&t| {
            let above: Vec<&(f32, bool, bool)> = results.iter().filter(|r| r.0 >= t).collect();
            let m = above.len().max(1) as f64;
            Row {
                threshold: t,
                coverage: above.len() as f64 / n,
                precision: above.iter().filter(|r| r.1).count() as f64 / m,
                top3: above.iter().filter(|r| r.2).count() as f64 / m,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::Entry;

    fn entry(id: &str, q: &str, similar: &[&str]) -> Entry {
        Entry {
            id: id.into(),
            question: q.into(),
            similar: similar.iter().map(|s| (*s).to_owned()).collect(),
            system: String::new(),
            tags: Vec::new(),
            draft: false,
            answer: String::new(),
            path: "t".into(),
        }
    }

    #[test]
    fn the_protocol_answers_one_line_per_query() {
        let index = crate::kb::build(
            &[
                entry("a", "如何开通创业板", &["创业板权限"]),
                entry("b", "银证转账失败", &["转账不成功"]),
            ],
            "",
            "",
        )
        .expect("index");
        let input = "{\"qid\": \"q1\", \"query\": \"创业板怎么开\", \"k\": 10}\n\n{\"qid\": 7, \"query\": \"\\\"(:*\", \"k\": 5}\nnot json\n";
        let mut out = Vec::new();
        serve(&index, 3, input.as_bytes(), &mut out).expect("serve");
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["ready"], true);
        assert_eq!(lines[1]["qid"], "q1");
        assert_eq!(lines[1]["ids"][0], "a");
        assert_eq!(lines[2]["qid"], 7);
        assert_eq!(
            lines[2]["ids"],
            json!([]),
            "syntax characters only: no hits, no error"
        );
        assert!(lines[3]["error"].is_string());
    }
}
