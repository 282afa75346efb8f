//! The FAQ knowledge base: entries from `kb/`, the search index, the FAQ-first decision and
//! the query log. The only user of tantivy and jieba.
//!
//! - [`Kb`] owns the running index. [`Kb::reload_if_changed`] (called by the reloader worker,
//!   and by the console after it writes a file) re-reads `kb/`, builds a complete new index
//!   off to the side under one lock, so rebuilds never interleave, and swaps it in with one
//!   pointer store: queries in flight finish on the old index, the next query sees the new
//!   one, none is dropped. jieba's dictionary is loaded again only when `dict.txt` or
//!   `synonyms.txt` changed.
//! - A file that fails to parse is reported (`path:line: message`) and its last good version
//!   keeps serving; the other entries are unaffected. Drafts are never served.
//! - [`decide`] turns ranked hits into the FAQ-first decision with the configured thresholds.
//! - [`log`] stores every question with its hits, the decision and the feedback.

pub mod entry;
pub mod eval;
pub mod index;
pub mod log;
pub mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub use entry::{Entry, EntryError};
pub use index::{Hit, KbIndex};

use crate::config::FaqConfig;
use crate::util::FileStamp;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the knowledge base at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Dictionary(String),
    #[error("building the index failed: {0}")]
    Index(#[from] tantivy::TantivyError),
}

/// Build an index straight from entries (tests, evaluation), with dictionary and synonyms.
pub fn build(entries: &[Entry], dict: &str, synonyms: &str) -> Result<KbIndex, Error> {
    let analyzer =
        text::Analyzer::new(text::Synonyms::parse(synonyms), dict).map_err(Error::Dictionary)?;
    Ok(KbIndex::build(entries, analyzer)?)
}

/// What changed at a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    pub served: usize,
    pub drafts: usize,
    pub errors: Vec<EntryError>,
}

#[derive(Debug, Default)]
struct LoadState {
    fingerprint: Vec<FileStamp>,
    /// Last good version of each file, by path: a file that turns invalid keeps serving it.
    last_good: HashMap<String, Entry>,
    errors: Vec<EntryError>,
    /// The analyzer and the (dictionary, synonyms) it was built from: jieba loads its
    /// dictionary once per change of `dict.txt`/`synonyms.txt`, not once per rebuild.
    analyzer: Option<(String, String, Arc<text::Analyzer>)>,
}

impl LoadState {
    fn analyzer(&mut self, dict: &str, synonyms: &str) -> Result<Arc<text::Analyzer>, Error> {
        if let Some((d, s, a)) = &self.analyzer
            && d == dict
            && s == synonyms
        {
            return Ok(a.clone());
        }
        let a = text::Analyzer::new(text::Synonyms::parse(synonyms), dict)
            .map_err(Error::Dictionary)?;
        self.analyzer = Some((dict.to_owned(), synonyms.to_owned(), a.clone()));
        Ok(a)
    }

    /// Read `dir` and build its index. A broken file keeps serving its last good version.
    fn build(&mut self, dir: &Path) -> Result<(KbIndex, Reload), Error> {
        let loaded = entry::load_dir(dir).map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        self.fingerprint = fingerprint(dir);
        let mut entries = loaded.entries;
        let mut ids: std::collections::HashSet<String> =
            entries.iter().map(|e| e.id.clone()).collect();
        for err in &loaded.errors {
            if let Some(old) = self.last_good.get(&err.path)
                && Path::new(&err.path).exists()
                && ids.insert(old.id.clone())
            {
                entries.push(old.clone());
            }
        }
        let analyzer = self.analyzer(&loaded.dict, &loaded.synonyms)?;
        let index = KbIndex::build(&entries, analyzer)?;
        let report = Reload {
            served: index.len(),
            drafts: entries.iter().filter(|e| e.draft).count(),
            errors: loaded.errors.clone(),
        };
        self.last_good = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
        self.errors = loaded.errors;
        Ok((index, report))
    }
}

/// The knowledge base service.
pub struct Kb {
    dir: PathBuf,
    current: RwLock<Arc<KbIndex>>,
    state: Mutex<LoadState>,
}

impl std::fmt::Debug for Kb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kb")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn fingerprint(dir: &Path) -> Vec<FileStamp> {
    crate::util::files_under(dir).unwrap_or_default()
}

impl Kb {
    /// Load `dir` and build the first index. Broken files are reported, not fatal.
    pub fn load(dir: &Path) -> Result<Kb, Error> {
        let mut state = LoadState::default();
        let (index, report) = state.build(dir)?;
        let kb = Kb {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(index)),
            state: Mutex::new(state),
        };
        for e in &report.errors {
            tracing::error!("knowledge base entry rejected: {e}");
        }
        tracing::info!(
            served = report.served,
            drafts = report.drafts,
            "knowledge base loaded"
        );
        Ok(kb)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index serving now.
    pub fn current(&self) -> Arc<KbIndex> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn search(&self, question: &str, k: usize) -> Vec<Hit> {
        self.current().search(question, k)
    }

    /// Files rejected at the last load.
    pub fn errors(&self) -> Vec<EntryError> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .errors
            .clone()
    }

    fn rebuild(&self) -> Result<Reload, Error> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (index, report) = state.build(&self.dir)?;
        drop(state);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        Ok(report)
    }

    /// Rebuild and swap now (the console's editor, after it wrote a file).
    pub fn reload_now(&self) -> Result<Reload, Error> {
        let report = self.rebuild()?;
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fingerprint = fingerprint(&self.dir);
        Ok(report)
    }

    /// Rebuild and swap when a file under `kb/` changed. `Ok(None)`: nothing changed.
    pub fn reload_if_changed(&self) -> Result<Option<Reload>, Error> {
        let now = fingerprint(&self.dir);
        if self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fingerprint
            == now
        {
            return Ok(None);
        }
        self.rebuild().map(Some)
    }
}

/// The FAQ-first decision for one question.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Confident: answer with this entry and ask whether it solved the problem.
    Answer(Hit),
    /// Plausible: offer these (up to three) as a numbered choice.
    Suggest(Vec<Hit>),
    /// Nothing close enough: say so and offer the intake.
    NoMatch,
}

/// Apply the thresholds (calibrated on the dev set, see README) to ranked hits.
pub fn decide(hits: &[Hit], cfg: &FaqConfig) -> Decision {
    let Some(top) = hits.first() else {
        return Decision::NoMatch;
    };
    if top.confidence >= cfg.answer_threshold {
        Decision::Answer(top.clone())
    } else if top.confidence >= cfg.suggest_threshold {
        Decision::Suggest(hits.iter().take(3).cloned().collect())
    } else {
        Decision::NoMatch
    }
}
