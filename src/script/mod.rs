//! Intake scripts: the TOML flows admins edit under `bot-scripts/`.
//!
//! - [`load_dir`] reads every `*.toml` of a folder into a [`ScriptSet`] and validates it as a
//!   whole. Any error — TOML syntax, an unknown key, an unknown validator or kind, a choice
//!   without options, a flow that cannot file a ticket — is reported as `path:line: message`
//!   and the set is refused.
//! - [`Scripts`] holds the running set; [`Scripts::reload_if_changed`] swaps in a new set only
//!   when it validates, so a broken edit never takes the bot down.
//! - [`eval`] evaluates one step of a dialog, purely (no I/O, no clock).
//!
//! Depends on `ident` for the validator functions.

pub mod eval;
mod parse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

/// A script error, located in its file.
pub use crate::util::FileError as Error;
use crate::util::FileStamp;
use parse::parse_file;

/// Every problem found in a folder (a set is refused if this is non-empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct Errors(pub Vec<Error>);

#[derive(Debug, Clone, PartialEq)]
pub enum Validator {
    /// 客户号, 身份证号 or 手机号.
    CustomerId,
    CnIdCard,
    CnMobile,
    CustomerNo,
    MinChars(usize),
    MaxChars(usize),
}

impl Validator {
    fn parse(s: &str) -> Option<Validator> {
        Some(match s {
            "customer_id" => Validator::CustomerId,
            "cn_id_card" => Validator::CnIdCard,
            "cn_mobile" => Validator::CnMobile,
            "customer_no" => Validator::CustomerNo,
            _ => {
                let (name, arg) = s.split_once(':')?;
                let n: usize = arg.trim().parse().ok()?;
                match name {
                    "min_chars" => Validator::MinChars(n),
                    "max_chars" => Validator::MaxChars(n),
                    _ => return None,
                }
            }
        })
    }

    /// The one identifier kind this validator accepts (`customer_id` accepts any).
    pub fn id_kind(&self) -> Option<crate::ident::IdKind> {
        use crate::ident::IdKind;
        match self {
            Validator::CnIdCard => Some(IdKind::IdCard),
            Validator::CnMobile => Some(IdKind::Mobile),
            Validator::CustomerNo => Some(IdKind::CustomerNo),
            _ => None,
        }
    }
}

const KNOWN_VALIDATORS: &str =
    "customer_id, cn_id_card, cn_mobile, customer_no, min_chars:N, max_chars:N";

/// The ticket field a step fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    CustomerId,
    System,
    Description,
    Screenshots,
}

impl Field {
    /// Every field, each of which a ticket flow must fill.
    const ALL: [Field; 4] = [
        Field::CustomerId,
        Field::System,
        Field::Description,
        Field::Screenshots,
    ];

    /// The name in scripts.
    fn key(self) -> &'static str {
        match self {
            Field::CustomerId => "customer_id",
            Field::System => "system",
            Field::Description => "description",
            Field::Screenshots => "screenshots",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == s)
    }

    /// The label in summaries and the edit menu.
    pub fn label(self) -> &'static str {
        match self {
            Field::CustomerId => "客户标识",
            Field::System => "所属系统",
            Field::Description => "问题描述",
            Field::Screenshots => "截图",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Text {
        validators: Vec<Validator>,
    },
    Choice {
        options: Vec<String>,
    },
    Images {
        min: usize,
        max: usize,
        done_words: Vec<String>,
    },
    Confirm {
        submit_words: Vec<String>,
        edit_words: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    pub field: Option<Field>,
    pub prompt: String,
    /// Prompt used in group chats, when it must differ (images in groups).
    pub prompt_group: Option<String>,
    /// Failed answers allowed before the dialog is cancelled.
    pub retries: u32,
    /// Error text overriding the validators' own.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: String,
    pub name: String,
    pub triggers: Vec<String>,
    pub intro: String,
    pub steps: Vec<Step>,
    pub path: String,
    /// The shape of its steps (ids, kinds, fields): a dialog started on another shape is
    /// not continued (prompt texts may change under a running dialog).
    pub shape: String,
}

/// The shape of `steps` (see [`Flow::shape`]).
pub fn shape_of(steps: &[Step]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for s in steps {
        h.update(s.id.as_bytes());
        h.update(format!("|{:?}|{:?};", s.kind, s.field).as_bytes());
    }
    crate::util::hex_lower(&h.finalize()[..8])
}

/// Words and texts that apply everywhere.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    pub cancel: Vec<String>,
    pub restart: Vec<String>,
    pub help: Vec<String>,
    pub human: Vec<String>,
    pub progress: Vec<String>,
    pub cancelled: String,
    pub nothing_to_cancel: String,
    pub restarted: String,
    pub human_notice: String,
    pub expired: String,
    pub exhausted: String,
}

/// A validated set of flows plus the global words.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSet {
    pub global: Global,
    pub flows: Vec<Arc<Flow>>,
}

/// A global word or command recognised in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalWord {
    Cancel,
    Restart,
    Help,
    Human,
    Progress,
}

/// Compare on the message's words only: trim, drop punctuation and spaces.
pub fn word_key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation() && !is_cjk_punct(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_cjk_punct(c: char) -> bool {
    matches!(
        c,
        '。' | '，'
            | '！'
            | '、'
            | '；'
            | '：'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '（'
            | '）'
            | '…'
            | '～'
            | '·'
    )
}

/// Whether `input` is exactly one of `words` (by [`word_key`]).
pub fn matches_word(input: &str, words: &[String]) -> bool {
    let k = word_key(input);
    !k.is_empty() && words.iter().any(|w| word_key(w) == k)
}

impl ScriptSet {
    pub fn flow(&self, id: &str) -> Option<&Arc<Flow>> {
        self.flows.iter().find(|f| f.id == id)
    }

    /// The flow that files tickets: `report`, or the first flow when there is none by
    /// that id.
    pub fn report_flow(&self) -> Option<&Arc<Flow>> {
        self.flow("report").or_else(|| self.flows.first())
    }

    /// The systems the report flow offers (its choice step that fills `system`).
    pub fn systems(&self) -> Vec<String> {
        self.report_flow()
            .and_then(|f| {
                f.steps.iter().find_map(|s| match (&s.kind, s.field) {
                    (StepKind::Choice { options }, Some(Field::System)) => Some(options.clone()),
                    _ => None,
                })
            })
            .unwrap_or_default()
    }

    /// The flow whose trigger word `input` is, if any.
    pub fn triggered(&self, input: &str) -> Option<&Arc<Flow>> {
        self.flows.iter().find(|f| matches_word(input, &f.triggers))
    }

    pub fn global_word(&self, input: &str) -> Option<GlobalWord> {
        let g = &self.global;
        // "?" alone is help, but word_key drops ASCII punctuation: check it first.
        if matches!(input.trim(), "?" | "？") && g.help.iter().any(|w| w == "?" || w == "？") {
            return Some(GlobalWord::Help);
        }
        [
            (&g.cancel, GlobalWord::Cancel),
            (&g.restart, GlobalWord::Restart),
            (&g.help, GlobalWord::Help),
            (&g.human, GlobalWord::Human),
            (&g.progress, GlobalWord::Progress),
        ]
        .into_iter()
        .find(|(words, _)| matches_word(input, words))
        .map(|(_, w)| w)
    }
}

/// Validate a set of `(path, text)` files as one script set.
pub fn load_texts(files: &[(String, String)]) -> Result<ScriptSet, Errors> {
    let mut errors = Vec::new();
    let mut global: Option<(Global, String)> = None;
    let mut flows: Vec<Flow> = Vec::new();
    for (path, text) in files {
        match parse_file(path, text) {
            Err(mut e) => errors.append(&mut e),
            Ok((g, f)) => {
                if let Some(g) = g {
                    if let Some((_, first)) = &global {
                        errors.push(Error {
                            path: path.clone(),
                            line: 1,
                            message: format!("[global] is already defined in {first}"),
                        });
                    } else {
                        global = Some((g, path.clone()));
                    }
                }
                flows.extend(f);
            }
        }
    }
    // Flow ids and trigger words must be unique across files.
    let mut by_id: HashMap<&str, &str> = HashMap::new();
    let mut by_word: HashMap<String, &str> = HashMap::new();
    for f in &flows {
        if let Some(other) = by_id.insert(&f.id, &f.path) {
            errors.push(Error {
                path: f.path.clone(),
                line: 1,
                message: format!("flow id `{}` is also defined in {other}", f.id),
            });
        }
        for w in &f.triggers {
            if let Some(other) = by_word.insert(word_key(w), &f.id) {
                errors.push(Error {
                    path: f.path.clone(),
                    line: 1,
                    message: format!("trigger `{w}` is also a trigger of flow `{other}`"),
                });
            }
        }
    }
    let global = match global {
        Some((g, _)) => Some(g),
        None => {
            errors.push(Error {
                path: files
                    .first()
                    .map_or_else(|| "bot-scripts".to_owned(), |(p, _)| p.clone()),
                line: 1,
                message: "no file defines [global] (cancel, restart, help, human, progress words)"
                    .into(),
            });
            None
        }
    };
    if flows.is_empty() && errors.is_empty() {
        errors.push(Error {
            path: "bot-scripts".into(),
            line: 1,
            message: "no flow is defined".into(),
        });
    }
    if let (true, Some(global)) = (errors.is_empty(), global) {
        Ok(ScriptSet {
            global,
            flows: flows.into_iter().map(Arc::new).collect(),
        })
    } else {
        Err(Errors(errors))
    }
}

/// The `*.toml` files directly in `dir`, sorted, with their stamps.
fn toml_files(dir: &Path) -> std::io::Result<Vec<FileStamp>> {
    let mut files = crate::util::files_under(dir)?;
    files.retain(|(p, _, _)| p.parent() == Some(dir) && p.extension().is_some_and(|e| e == "toml"));
    Ok(files)
}

/// Load and validate every `*.toml` in `dir`.
pub fn load_dir(dir: &Path) -> Result<ScriptSet, Errors> {
    let io_err = |e: std::io::Error| {
        Errors(vec![Error {
            path: dir.display().to_string(),
            line: 0,
            message: e.to_string(),
        }])
    };
    let mut files = Vec::new();
    for (path, _, _) in toml_files(dir).map_err(io_err)? {
        let text = std::fs::read_to_string(&path).map_err(io_err)?;
        files.push((path.display().to_string(), text));
    }
    load_texts(&files)
}

/// The running script set, swapped atomically on a valid reload.
#[derive(Debug)]
pub struct Scripts {
    dir: PathBuf,
    current: RwLock<Arc<ScriptSet>>,
    fingerprint: RwLock<Vec<FileStamp>>,
}

impl Scripts {
    /// Load `dir`; start-up fails on an invalid set.
    pub fn load(dir: &Path) -> Result<Scripts, Errors> {
        let fingerprint = toml_files(dir).unwrap_or_default();
        let set = load_dir(dir)?;
        Ok(Scripts {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(set)),
            fingerprint: RwLock::new(fingerprint),
        })
    }

    pub fn current(&self) -> Arc<ScriptSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reload now (the console's editor, after it wrote a validated file).
    pub fn reload_now(&self) -> Result<(), Errors> {
        let now = toml_files(&self.dir).unwrap_or_default();
        let set = load_dir(&self.dir)?;
        *self.fingerprint.write().unwrap_or_else(|p| p.into_inner()) = now;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(())
    }

    /// Reload when a file changed. `Ok(true)`: swapped; `Ok(false)`: unchanged;
    /// `Err`: the new files are invalid and the running set stays.
    pub fn reload_if_changed(&self) -> Result<bool, Errors> {
        let now = toml_files(&self.dir).unwrap_or_default();
        {
            let mut fp = self.fingerprint.write().unwrap_or_else(|p| p.into_inner());
            if *fp == now {
                return Ok(false);
            }
            *fp = now;
        }
        let set = load_dir(&self.dir)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bot-scripts");
        let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("bot-scripts")
            .map(|e| {
                let p = e.expect("entry").path();
                (
                    p.file_name().expect("name").to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).expect("read"),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn with_report(f: impl Fn(&str) -> String) -> Result<ScriptSet, Errors> {
        let files: Vec<(String, String)> = shipped()
            .into_iter()
            .map(|(p, t)| {
                if p == "report.toml" {
                    (p, f(&t))
                } else {
                    (p, t)
                }
            })
            .collect();
        load_texts(&files)
    }

    #[test]
    fn shipped_scripts_are_valid() {
        let set = load_texts(&shipped()).expect("valid");
        let report = set.flow("report").expect("report flow");
        let ids: Vec<&str> = report.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "customer",
                "system",
                "description",
                "screenshots",
                "confirm"
            ]
        );
        for w in ["提单", "报障", "上报"] {
            assert_eq!(
                set.triggered(w).map(|f| f.id.as_str()),
                Some("report"),
                "{w}"
            );
        }
        assert_eq!(
            set.triggered("提单。").map(|f| f.id.as_str()),
            Some("report")
        );
        assert_eq!(
            set.triggered("我想提单问一下"),
            None,
            "whole-message match only"
        );
        assert_eq!(set.global_word("取消"), Some(GlobalWord::Cancel));
        assert_eq!(set.global_word(" 重新开始 "), Some(GlobalWord::Restart));
        assert_eq!(set.global_word("？"), Some(GlobalWord::Help));
        assert_eq!(set.global_word("人工"), Some(GlobalWord::Human));
        assert_eq!(set.global_word("进度"), Some(GlobalWord::Progress));
        assert_eq!(set.global_word("客户说要取消委托"), None);
        assert_eq!(
            set.systems(),
            [
                "开户/账户",
                "交易",
                "三方存管",
                "理财",
                "App/登录",
                "融资融券",
                "其他"
            ]
        );
    }

    #[test]
    fn unknown_validator_is_reported_with_its_line() {
        let e =
            with_report(|t| t.replace("\"customer_id\"]", "\"cn_idcard\"]")).expect_err("invalid");
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].message.contains("unknown validator `cn_idcard`"),
            "{e}"
        );
        let text = shipped()
            .into_iter()
            .find(|(p, _)| p == "report.toml")
            .expect("report")
            .1;
        let expected = text
            .lines()
            .position(|l| l.contains("validators = [\"customer_id\"]"))
            .expect("line")
            + 1;
        assert_eq!(e.0[0].line, expected);
        assert!(e.to_string().starts_with("report.toml:"), "{e}");
    }

    #[test]
    fn structural_errors_are_reported() {
        let cases: &[(&str, &str, &str)] = &[
            ("kind = \"choice\"", "kind = \"dropdown\"", "unknown kind"),
            ("field = \"system\"", "field = \"sistem\"", "unknown field"),
            (
                "options = [\"开户/账户\", \"交易\", \"三方存管\", \"理财\", \"App/登录\", \"融资融券\", \"其他\"]",
                "options = [\"交易\"]",
                "at least two options",
            ),
            ("min = 1\nmax = 9", "min = 5\nmax = 2", "min <= max"),
            ("id = \"system\"", "id = \"customer\"", "duplicate step id"),
            (
                "submit = \"ticket\"",
                "submit = \"email\"",
                "unknown submit",
            ),
            (
                "retries = 3\n\n[[steps]]\nid = \"system\"",
                "retries = 3\nmystery = 1\n\n[[steps]]\nid = \"system\"",
                "unknown field `mystery`",
            ),
            ("prompt = \"第3步", "prompt = \"第3步\n", "TOML"),
        ];
        for (from, to, needle) in cases {
            let e = with_report(|t| {
                assert!(t.contains(from), "fixture lost `{from}`");
                t.replacen(from, to, 1)
            })
            .expect_err(needle);
            let msg = e.to_string();
            assert!(
                msg.contains(needle) || (*needle == "TOML" && msg.contains("report.toml:")),
                "{needle}: {msg}"
            );
            assert!(e.0.iter().all(|x| x.line >= 1), "{msg}");
        }
    }

    #[test]
    fn a_flow_that_cannot_file_a_ticket_is_refused() {
        let e = with_report(|t| {
            let cut = t
                .find("[[steps]]\nid = \"description\"")
                .expect("description step");
            let end = t
                .find("[[steps]]\nid = \"screenshots\"")
                .expect("screenshots step");
            format!("{}{}", &t[..cut], &t[end..])
        })
        .expect_err("no description");
        assert!(e.to_string().contains("must fill `description`"), "{e}");
    }

    #[test]
    fn duplicate_triggers_across_flows_are_refused() {
        let mut files = shipped();
        let report = files
            .iter()
            .find(|(p, _)| p == "report.toml")
            .expect("report")
            .1
            .clone();
        files.push((
            "copy.toml".into(),
            report.replace("id = \"report\"", "id = \"report2\""),
        ));
        let e = load_texts(&files).expect_err("duplicate triggers");
        assert!(e.to_string().contains("also a trigger"), "{e}");
    }

    #[test]
    fn reload_keeps_the_running_set_on_error_and_swaps_on_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (p, t) in shipped() {
            std::fs::write(dir.path().join(p), t).expect("write");
        }
        let scripts = Scripts::load(dir.path()).expect("load");
        assert_eq!(scripts.reload_if_changed(), Ok(false));
        let report = dir.path().join("report.toml");
        let good = std::fs::read_to_string(&report).expect("read");
        std::fs::write(&report, good.replace("\"customer_id\"]", "\"bogus\"]")).expect("write");
        let e = scripts.reload_if_changed().expect_err("invalid");
        assert!(e.to_string().contains("bogus"));
        assert!(
            scripts.current().flow("report").is_some(),
            "old set still serves"
        );
        std::fs::write(&report, good.replace("\"提单\",", "\"提单\", \"开单\",")).expect("write");
        assert_eq!(scripts.reload_if_changed(), Ok(true));
        assert!(scripts.current().triggered("开单").is_some());
    }
}
