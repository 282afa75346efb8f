//! The admins' editors: FAQ entries (`kb/*.md`) and intake scripts (`bot-scripts/*.toml`)
//! edited from the console, with the files staying the source of truth.
//!
//! Every save is checked exactly as the loader checks (an entry parses and round-trips; a
//! script set validates with the edited file in it), refused when the file changed on disk
//! since the editor read it (its `version`, a hash of its bytes), written atomically (temp
//! file, fsync, rename, fsync of the folder), then served at once (the index or the script
//! set is rebuilt and swapped). The previous text is kept (the last [`KEEP`] versions of
//! each file, in `edit_versions`) and the change recorded with a diff (`edit_audit`);
//! deleted entries move to `kb/.trash/` (hidden from the loader) and can be restored.

mod files;
pub mod hits;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kb::Kb;
use crate::kb::entry::{self, Entry};
use crate::script::Scripts;
use crate::store::{self, Record, Store, Tree, trees};

pub use files::version_of;

/// Versions kept per file.
pub const KEEP: usize = 20;

/// Why an edit was refused. The texts are shown to admins.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EditError {
    #[error("条目 id 只能包含小写字母、数字、- 和 _（1–64 个字符），不能包含路径字符")]
    BadId,
    #[error("文件名只能是 bot-scripts 下的 *.toml（字母、数字、- 和 _）")]
    BadFile,
    #[error("{0}不能为空")]
    Empty(&'static str),
    #[error("id `{0}` 已被另一个条目使用")]
    Duplicate(String),
    #[error("文件在你打开之后被修改过（可能有人直接编辑了服务器上的文件），请重新加载后再保存")]
    Stale,
    #[error("找不到该条目或文件")]
    NotFound,
    #[error("内容无效")]
    Invalid(Vec<LineError>),
    #[error("文件读写失败：{0}")]
    Io(String),
    #[error("存储错误，请稍后重试")]
    Storage(#[source] Arc<store::Error>),
}

impl From<store::Error> for EditError {
    fn from(e: store::Error) -> Self {
        EditError::Storage(Arc::new(e))
    }
}

impl From<std::io::Error> for EditError {
    fn from(e: std::io::Error) -> Self {
        EditError::Io(e.to_string())
    }
}

/// An error at a line of the edited text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// One kept version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub seq: u64,
    pub at: i64,
    pub login: String,
    /// The file's text (empty: it did not exist, or was deleted).
    pub text: String,
    pub version: String,
}

impl Record for Version {}

/// One change in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub at: i64,
    pub login: String,
    /// `kb/trade-hours.md`, `bot-scripts/report.toml`.
    pub file: String,
    /// `create`, `update`, `delete`, `restore`, `rollback`.
    pub action: String,
    /// Unified diff of the change.
    pub diff: String,
}

impl Record for Change {}

/// An entry as the editor shows and takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntryInput {
    pub question: String,
    pub similar: Vec<String>,
    pub system: String,
    pub tags: Vec<String>,
    pub answer: String,
    pub draft: bool,
    /// The version the editor loaded (empty for a new entry).
    pub version: String,
}

/// A saved entry: its new version, and the warnings that did not stop it.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub id: String,
    pub version: String,
    pub created: bool,
    pub warnings: Vec<String>,
}

#[derive(Clone)]
pub struct Editor {
    pub kb: Arc<Kb>,
    pub scripts: Arc<Scripts>,
    kb_dir: PathBuf,
    scripts_dir: PathBuf,
    store: Store,
    versions: Tree<(String, u64), Version>,
    audit: Tree<u64, Change>,
}

/// A valid entry id: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn valid_script_file(name: &str) -> bool {
    name.strip_suffix(".toml").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

fn unified_diff(old: &str, new: &str, name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(name, name)
        .to_string()
}

fn tidy(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

impl Editor {
    pub fn open(
        store: &Store,
        kb: Arc<Kb>,
        scripts: Arc<Scripts>,
        kb_dir: &Path,
        scripts_dir: &Path,
    ) -> store::Result<Editor> {
        Ok(Editor {
            kb,
            scripts,
            kb_dir: kb_dir.to_owned(),
            scripts_dir: scripts_dir.to_owned(),
            store: store.clone(),
            versions: store.tree(&trees::EDIT_VERSIONS)?,
            audit: store.tree(&trees::EDIT_AUDIT)?,
        })
    }

    // --- history ------------------------------------------------------------------------------

    /// Keep `old` as a version of `file` and record the change.
    fn record(
        &self,
        file: &str,
        action: &str,
        login: &str,
        old: &str,
        new: &str,
    ) -> Result<(), EditError> {
        let at = crate::util::unix_millis();
        let seq = self.store.generate_id()?;
        let key = file.to_owned();
        self.versions.insert(
            &(key.clone(), seq),
            &Version {
                seq,
                at,
                login: login.to_owned(),
                text: old.to_owned(),
                version: version_of(old.as_bytes()),
            },
        )?;
        // The last KEEP versions only.
        let kept: Vec<u64> = self
            .versions
            .scan_part(&key)
            .filter_map(|r| r.ok().map(|((_, s), _)| s))
            .collect();
        if kept.len() > KEEP {
            for s in &kept[..kept.len() - KEEP] {
                self.versions.remove(&(key.clone(), *s))?;
            }
        }
        self.audit.insert(
            &self.store.generate_id()?,
            &Change {
                at,
                login: login.to_owned(),
                file: file.to_owned(),
                action: action.to_owned(),
                diff: unified_diff(old, new, file),
            },
        )?;
        tracing::info!(file, action, login, "edited");
        Ok(())
    }

    /// The kept versions of `file` (`kb/x.md`, `bot-scripts/x.toml`), newest first.
    pub fn versions(&self, file: &str) -> store::Result<Vec<Version>> {
        let mut v: Vec<Version> = self
            .versions
            .scan_part(&file.to_owned())
            .map(|r| r.map(|(_, v)| v))
            .collect::<store::Result<_>>()?;
        v.reverse();
        Ok(v)
    }

    /// The audit trail, newest first.
    pub fn audit(&self, limit: usize) -> store::Result<Vec<Change>> {
        self.audit
            .iter()
            .rev()
            .take(limit)
            .map(|r| r.map(|(_, c)| c))
            .collect()
    }

    // --- FAQ entries --------------------------------------------------------------------------

    fn entry_path(&self, id: &str) -> PathBuf {
        self.kb_dir.join(format!("{id}.md"))
    }

    fn entry_file(id: &str) -> String {
        format!("kb/{id}.md")
    }

    /// Every entry on disk (drafts included), with the files that do not parse.
    pub fn entries(&self) -> Result<entry::Loaded, EditError> {
        Ok(entry::load_dir(&self.kb_dir)?)
    }

    /// Entry `id` as on disk, with its version. Entries live in `kb/{id}.md`, or in any
    /// file under `kb/` that declares the id.
    pub fn entry(&self, id: &str) -> Result<(Entry, String), EditError> {
        if !valid_id(id) {
            return Err(EditError::BadId);
        }
        let loaded = self.entries()?;
        let e = loaded
            .entries
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(EditError::NotFound)?;
        let bytes = std::fs::read(&e.path)?;
        Ok((e, version_of(&bytes)))
    }

    /// Create (a new id) or update entry `id`; see the module docs.
    pub fn put_entry(&self, id: &str, input: &EntryInput, login: &str) -> Result<Saved, EditError> {
        if !valid_id(id) {
            return Err(EditError::BadId);
        }
        let question = input.question.trim();
        let answer = input.answer.trim();
        if question.is_empty() {
            return Err(EditError::Empty("问题"));
        }
        if answer.is_empty() {
            return Err(EditError::Empty("回答"));
        }
        let loaded = self.entries()?;
        let existing = loaded.entries.iter().find(|e| e.id == id);
        let path = match existing {
            Some(e) => PathBuf::from(&e.path),
            None => self.entry_path(id),
        };
        let old = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        let created = existing.is_none();
        if created && path.exists() {
            // A file of that name declares another id (or does not parse).
            return Err(EditError::Duplicate(id.to_owned()));
        }
        if !created && input.version != version_of(old.as_bytes()) {
            return Err(EditError::Stale);
        }
        if created && !input.version.is_empty() {
            // The editor had loaded an entry that is gone now.
            return Err(EditError::Stale);
        }
        let entry = Entry {
            id: id.to_owned(),
            question: question.to_owned(),
            similar: tidy(&input.similar),
            system: input.system.trim().to_owned(),
            tags: tidy(&input.tags),
            draft: input.draft,
            answer: answer.to_owned(),
            path: path.display().to_string(),
        };
        let text = entry::render(&entry);
        // Exactly as the loader reads it.
        let parsed = entry::parse(&entry.path, &text).map_err(|e| {
            EditError::Invalid(vec![LineError {
                line: e.line,
                message: e.message,
            }])
        })?;
        if parsed.question != entry.question || parsed.answer != entry.answer {
            return Err(EditError::Invalid(vec![LineError {
                line: 1,
                message: "保存后的文件无法按原样读回".into(),
            }]));
        }
        let mut warnings = Vec::new();
        for s in std::iter::once(&entry.question).chain(&entry.similar) {
            if let Some(other) = loaded
                .entries
                .iter()
                .find(|o| o.id != id && o.phrasings().any(|p| p == s))
            {
                warnings.push(format!("“{s}”也是条目 {} 的问法", other.id));
            }
        }
        files::write_atomic(&path, text.as_bytes())?;
        self.record(
            &Self::entry_file(id),
            if created { "create" } else { "update" },
            login,
            &old,
            &text,
        )?;
        self.reload_kb();
        Ok(Saved {
            id: id.to_owned(),
            version: version_of(text.as_bytes()),
            created,
            warnings,
        })
    }

    /// Move entry `id` to `kb/.trash/` (restorable).
    pub fn delete_entry(&self, id: &str, version: &str, login: &str) -> Result<(), EditError> {
        let (e, current) = self.entry(id)?;
        if version != current {
            return Err(EditError::Stale);
        }
        let old = std::fs::read_to_string(&e.path)?;
        let trash = self.kb_dir.join(".trash");
        std::fs::create_dir_all(&trash)?;
        let name = format!("{id}.{}.md", crate::util::unix_millis());
        files::write_atomic(&trash.join(&name), old.as_bytes())?;
        std::fs::remove_file(&e.path)?;
        files::sync_dir(Path::new(&e.path).parent().unwrap_or(&self.kb_dir))?;
        self.record(&Self::entry_file(id), "delete", login, &old, "")?;
        self.reload_kb();
        Ok(())
    }

    /// Deleted entries: (trash file name, id, question), newest first.
    pub fn trash(&self) -> Result<Vec<(String, String, String)>, EditError> {
        let dir = self.kb_dir.join(".trash");
        let mut out = Vec::new();
        let Ok(read) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for f in read.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            if let Ok(e) = entry::parse(&name, &text) {
                out.push((name, e.id, e.question));
            }
        }
        out.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(out)
    }

    /// Restore a deleted entry (refused while an entry has its id).
    pub fn restore_trash(&self, name: &str, login: &str) -> Result<String, EditError> {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(EditError::NotFound);
        }
        let from = self.kb_dir.join(".trash").join(name);
        let text = std::fs::read_to_string(&from).map_err(|_| EditError::NotFound)?;
        let e = entry::parse(name, &text).map_err(|_| EditError::NotFound)?;
        if self.entries()?.entries.iter().any(|o| o.id == e.id) {
            return Err(EditError::Duplicate(e.id));
        }
        files::write_atomic(&self.entry_path(&e.id), text.as_bytes())?;
        std::fs::remove_file(&from)?;
        self.record(&Self::entry_file(&e.id), "restore", login, "", &text)?;
        self.reload_kb();
        Ok(e.id)
    }

    fn reload_kb(&self) {
        if let Err(e) = self.kb.reload_now() {
            tracing::error!(error = %e, "knowledge base rebuild after an edit failed");
        }
    }

    // --- scripts ------------------------------------------------------------------------------

    fn script_path(&self, file: &str) -> Result<PathBuf, EditError> {
        if !valid_script_file(file) {
            return Err(EditError::BadFile);
        }
        Ok(self.scripts_dir.join(file))
    }

    /// The script files: (name, version).
    pub fn script_files(&self) -> Result<Vec<(String, String)>, EditError> {
        let mut out = Vec::new();
        for f in std::fs::read_dir(&self.scripts_dir)?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if valid_script_file(&name) {
                let bytes = std::fs::read(f.path())?;
                out.push((name, version_of(&bytes)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// A script file's text and version.
    pub fn script(&self, file: &str) -> Result<(String, String), EditError> {
        let path = self.script_path(file)?;
        let bytes = std::fs::read(&path).map_err(|_| EditError::NotFound)?;
        Ok((
            String::from_utf8_lossy(&bytes).into_owned(),
            version_of(&bytes),
        ))
    }

    /// Validate the script set with `file` replaced by `text`, as the loader does; the
    /// errors of the edited file, with their lines (errors elsewhere at line 0).
    pub fn check_script(
        &self,
        file: &str,
        text: &str,
    ) -> Result<crate::script::ScriptSet, EditError> {
        let path = self.script_path(file)?;
        let mut files = Vec::new();
        let mut found = false;
        for f in std::fs::read_dir(&self.scripts_dir)?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if !valid_script_file(&name) {
                continue;
            }
            let p = f.path();
            if name == file {
                found = true;
                files.push((p.display().to_string(), text.to_owned()));
            } else {
                files.push((p.display().to_string(), std::fs::read_to_string(&p)?));
            }
        }
        if !found {
            files.push((path.display().to_string(), text.to_owned()));
        }
        let shown = path.display().to_string();
        crate::script::load_texts(&files).map_err(|errors| {
            EditError::Invalid(
                errors
                    .0
                    .into_iter()
                    .map(|e| LineError {
                        line: if e.path == shown { e.line } else { 0 },
                        message: if e.path == shown {
                            e.message
                        } else {
                            format!("{}：{}", e.path, e.message)
                        },
                    })
                    .collect(),
            )
        })
    }

    /// Save a script file (validated with the whole set; refused when stale).
    pub fn put_script(
        &self,
        file: &str,
        text: &str,
        version: &str,
        login: &str,
    ) -> Result<String, EditError> {
        let path = self.script_path(file)?;
        let old = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        if version != version_of(old.as_bytes()) && !(old.is_empty() && version.is_empty()) {
            return Err(EditError::Stale);
        }
        self.check_script(file, text)?;
        files::write_atomic(&path, text.as_bytes())?;
        self.record(
            &format!("bot-scripts/{file}"),
            if old.is_empty() { "create" } else { "update" },
            login,
            &old,
            text,
        )?;
        if let Err(e) = self.scripts.reload_now() {
            // Validated a moment ago: only a concurrent edit on disk can get here.
            tracing::error!("intake scripts rejected after an edit; the running set stays:\n{e}");
        }
        Ok(version_of(text.as_bytes()))
    }

    /// Restore version `seq` of `file` (`kb/x.md` or `bot-scripts/x.toml`).
    pub fn rollback(&self, file: &str, seq: u64, login: &str) -> Result<String, EditError> {
        let v = self
            .versions
            .get(&(file.to_owned(), seq))?
            .ok_or(EditError::NotFound)?;
        if let Some(name) = file.strip_prefix("bot-scripts/") {
            let (_, current) = self.script(name).unwrap_or_default();
            let saved = self.put_script(name, &v.text, &current, login)?;
            return Ok(saved);
        }
        let id = file
            .strip_prefix("kb/")
            .and_then(|f| f.strip_suffix(".md"))
            .filter(|id| valid_id(id))
            .ok_or(EditError::NotFound)?;
        if v.text.is_empty() {
            return Err(EditError::NotFound);
        }
        let e = entry::parse(file, &v.text).map_err(|e| {
            EditError::Invalid(vec![LineError {
                line: e.line,
                message: e.message,
            }])
        })?;
        let current = self.entry(id).map(|(_, v)| v).unwrap_or_default();
        let input = EntryInput {
            question: e.question,
            similar: e.similar,
            system: e.system,
            tags: e.tags,
            answer: e.answer,
            draft: e.draft,
            version: current,
        };
        Ok(self.put_entry(id, &input, login)?.version)
    }
}
