//! The FAQ query log: every question the bot tried to answer, its top hits, what it did and
//! what the agent said about it — the raw material of hot questions, unanswered questions
//! and the deflection rate.
//!
//! Trees (declared here only):
//! - `faq_log`: `u64 id` → [`QueryLog`]. Questions are stored with identifiers masked.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::store::trees;
use crate::store::{self, AnyTree, Record, Store, Tree, Tx, TxFail};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Decided {
    Answered {
        entry: String,
    },
    Suggested {
        entries: Vec<String>,
    },
    /// The agent picked an entry from the suggestions.
    Chosen {
        entry: String,
    },
    NoMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    Solved,
    Unsolved,
    /// The agent went on to file a ticket.
    Ticket,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryLog {
    /// Unix ms.
    pub at: i64,
    pub member: String,
    pub channel: String,
    /// The question, identifiers masked.
    pub question: String,
    /// Top hits: entry id and confidence.
    pub hits: Vec<(String, f32)>,
    pub decided: Decided,
    #[serde(default)]
    pub feedback: Option<Feedback>,
}

impl Record for QueryLog {}

#[derive(Debug, Clone)]
pub struct FaqLog {
    tree: Tree<u64, QueryLog>,
}

/// Aggregates over the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub questions: usize,
    pub answered: usize,
    pub suggested: usize,
    pub no_match: usize,
    pub solved: usize,
    pub unsolved: usize,
    pub tickets: usize,
    /// Answered (directly or by choice) and not followed by 未解决 or a ticket.
    pub deflected: usize,
    /// Most answered entries: (entry id, count).
    pub hot: Vec<(String, usize)>,
    /// Questions the FAQ could not answer (no match, or marked 未解决): (question, count).
    pub unanswered: Vec<(String, usize)>,
}

impl Report {
    pub fn deflection_rate(&self) -> f64 {
        if self.questions == 0 {
            0.0
        } else {
            self.deflected as f64 / self.questions as f64
        }
    }
}

impl FaqLog {
    pub fn open(store: &Store) -> store::Result<FaqLog> {
        Ok(FaqLog {
            tree: store.tree(&trees::FAQ_LOG)?,
        })
    }

    pub fn tree(&self) -> &dyn AnyTree {
        &self.tree
    }

    pub fn record_in(&self, tx: &Tx<'_>, log: &QueryLog) -> Result<u64, TxFail> {
        let id = tx.generate_id()?;
        tx.insert(&self.tree, &id, log)?;
        Ok(id)
    }

    /// Attach feedback (the first one counts; "ticket" overrides "unsolved").
    pub fn feedback_in(&self, tx: &Tx<'_>, id: u64, fb: Feedback) -> Result<(), TxFail> {
        if let Some(mut log) = tx.get(&self.tree, &id)? {
            if log.feedback.is_none() || fb == Feedback::Ticket {
                log.feedback = Some(fb);
            }
            tx.insert(&self.tree, &id, &log)?;
        }
        Ok(())
    }

    /// Record that the agent chose `entry` from suggestions.
    pub fn chosen_in(&self, tx: &Tx<'_>, id: u64, entry: &str) -> Result<(), TxFail> {
        if let Some(mut log) = tx.get(&self.tree, &id)? {
            log.decided = Decided::Chosen {
                entry: entry.to_owned(),
            };
            tx.insert(&self.tree, &id, &log)?;
        }
        Ok(())
    }

    /// The questions asked since `since` (unix ms), newest first.
    pub fn since(&self, since: i64) -> store::Result<Vec<(u64, QueryLog)>> {
        let mut out = Vec::new();
        for item in self.tree.iter().rev() {
            let (id, log) = item?;
            if log.at < since {
                break;
            }
            out.push((id, log));
        }
        Ok(out)
    }

    /// Aggregate the questions asked since `since` (unix ms).
    pub fn report(&self, since: i64, top: usize) -> store::Result<Report> {
        self.report_between(since, i64::MAX, top)
    }

    /// Aggregate the questions asked in `[from, to)` (unix ms).
    pub fn report_between(&self, from: i64, to: i64, top: usize) -> store::Result<Report> {
        let mut r = Report::default();
        let mut hot: HashMap<String, usize> = HashMap::new();
        let mut unanswered: HashMap<String, usize> = HashMap::new();
        for item in self.tree.iter() {
            let (_, log) = item?;
            if log.at < from || log.at >= to {
                continue;
            }
            r.questions += 1;
            let escalated = matches!(log.feedback, Some(Feedback::Unsolved | Feedback::Ticket));
            match log.feedback {
                Some(Feedback::Solved) => r.solved += 1,
                Some(Feedback::Unsolved) => r.unsolved += 1,
                Some(Feedback::Ticket) => r.tickets += 1,
                None => {}
            }
            match &log.decided {
                Decided::Answered { entry } | Decided::Chosen { entry } => {
                    if matches!(log.decided, Decided::Answered { .. }) {
                        r.answered += 1;
                    } else {
                        r.suggested += 1;
                    }
                    *hot.entry(entry.clone()).or_default() += 1;
                    if !escalated {
                        r.deflected += 1;
                    }
                }
                Decided::Suggested { .. } => r.suggested += 1,
                Decided::NoMatch => r.no_match += 1,
            }
            if matches!(log.decided, Decided::NoMatch) || escalated {
                *unanswered.entry(log.question.clone()).or_default() += 1;
            }
        }
        let rank = |m: HashMap<String, usize>| {
            let mut v: Vec<(String, usize)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(top);
            v
        };
        r.hot = rank(hot);
        r.unanswered = rank(unanswered);
        Ok(r)
    }
}
