//! The hit test: how the FAQ ranks a question and what it decides (answer, suggest,
//! intake), on the live index and on the index as it would be with a draft entry — and
//! which recent questions would get a different answer with it.

use serde::Serialize;

use crate::config::FaqConfig;
use crate::kb::entry::{self, Entry};
use crate::kb::{self, Decision, Hit, KbIndex};

/// One ranked entry.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub id: String,
    pub question: String,
    pub confidence: f32,
}

/// A ranking and its decision.
#[derive(Debug, Clone, Serialize)]
pub struct Ranking {
    pub hits: Vec<Ranked>,
    /// `answer`, `suggest` or `intake`.
    pub decision: &'static str,
    /// The entry answered (or the first suggested).
    pub entry: Option<String>,
}

pub fn rank(index: &KbIndex, cfg: &FaqConfig, q: &str) -> Ranking {
    let hits: Vec<Hit> = index.search(q, 5);
    let (decision, entry) = match kb::decide(&hits, cfg) {
        Decision::Answer(h) => ("answer", Some(h.entry.id.clone())),
        Decision::Suggest(hs) => ("suggest", hs.first().map(|h| h.entry.id.clone())),
        Decision::NoMatch => ("intake", None),
    };
    Ranking {
        hits: hits
            .iter()
            .map(|h| Ranked {
                id: h.entry.id.clone(),
                question: h.entry.question.clone(),
                confidence: h.confidence,
            })
            .collect(),
        decision,
        entry,
    }
}

/// The index of `kb_dir` with `draft` in place of the entry of its id (or added).
pub fn index_with(kb_dir: &std::path::Path, draft: &Entry) -> Result<KbIndex, String> {
    let loaded = entry::load_dir(kb_dir).map_err(|e| e.to_string())?;
    let mut entries: Vec<Entry> = loaded
        .entries
        .into_iter()
        .filter(|e| e.id != draft.id)
        .collect();
    entries.push(Entry {
        draft: false,
        ..draft.clone()
    });
    kb::build(&entries, &loaded.dict, &loaded.synonyms).map_err(|e| e.to_string())
}

/// A question whose answer would change with the edit.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub question: String,
    pub before: Ranking,
    pub after: Ranking,
}

/// Which of `questions` decide differently (or answer another entry) on `after`.
pub fn changed(
    before: &KbIndex,
    after: &KbIndex,
    cfg: &FaqConfig,
    questions: &[String],
) -> Vec<Changed> {
    questions
        .iter()
        .filter_map(|q| {
            let (b, a) = (rank(before, cfg, q), rank(after, cfg, q));
            (b.decision != a.decision || b.entry != a.entry).then(|| Changed {
                question: q.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}
