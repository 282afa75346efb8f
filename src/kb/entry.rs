//! FAQ entries: one Markdown file each under `kb/`, TOML front matter between `+++` lines,
//! the answer in the body.
//!
//! ```text
//! +++
//! id = "trade-hours"
//! question = "A股交易时间是几点到几点？"
//! similar = ["几点可以买股票", "中午能交易吗", "集合竞价是什么时候"]
//! system = "交易"
//! tags = ["交易时间", "集合竞价"]
//! draft = true          # optional: not served until removed
//! +++
//! 答案正文……
//! ```
//!
//! A file that fails to parse is reported as `path:line: message`; the others still load.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// One FAQ entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub question: String,
    pub similar: Vec<String>,
    pub system: String,
    pub tags: Vec<String>,
    /// Drafts are loaded (to be checked and reviewed) but never indexed or served.
    pub draft: bool,
    pub answer: String,
    /// Where it came from (`kb/trade-hours.md`, or `kb.jsonl:12`).
    pub path: String,
}

impl Entry {
    /// The question and its similar phrasings.
    pub fn phrasings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.similar.iter().map(String::as_str))
    }
}

/// A problem with one file.
pub use crate::util::FileError as EntryError;
use crate::util::line_of;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: Spanned<String>,
    question: Spanned<String>,
    #[serde(default)]
    similar: Vec<String>,
    #[serde(default)]
    system: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    draft: bool,
}

/// Parse one entry file's text.
pub fn parse(path: &str, text: &str) -> Result<Entry, EntryError> {
    let err = |line: usize, message: String| EntryError {
        path: path.to_owned(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("+++\n")
        .or_else(|| text.strip_prefix("+++\r\n"))
    else {
        return Err(err(
            1,
            "an entry starts with a `+++` line, then TOML front matter".into(),
        ));
    };
    let Some(end) = rest.find("\n+++") else {
        return Err(err(1, "front matter is not closed by a `+++` line".into()));
    };
    let front = &rest[..=end];
    let body = rest[end + 4..]
        .trim_start_matches(['\r'])
        .trim_start_matches('\n');
    let fm: FrontMatter = toml::from_str(front).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(front, s.start)) + 1;
        err(line, e.message().to_owned())
    })?;
    let at = |s: &Spanned<String>| line_of(front, s.span().start) + 1;
    let id = fm.id.get_ref().trim();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(
            at(&fm.id),
            "id must be non-empty letters, digits, `-`, `_` or `.`".into(),
        ));
    }
    if fm.question.get_ref().trim().is_empty() {
        return Err(err(at(&fm.question), "question must not be empty".into()));
    }
    let answer = body.trim().to_owned();
    if answer.is_empty() && !fm.draft {
        return Err(err(
            line_of(text, text.len()),
            "the answer (the text after the front matter) is empty".into(),
        ));
    }
    Ok(Entry {
        id: id.to_owned(),
        question: fm.question.get_ref().trim().to_owned(),
        similar: fm
            .similar
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        system: fm.system.trim().to_owned(),
        tags: fm.tags,
        draft: fm.draft,
        answer,
        path: path.to_owned(),
    })
}

/// Render an entry back to its file form (the console's "publish as FAQ" writes drafts).
pub fn render(e: &Entry) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| toml::Value::String(s.clone()).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("+++\n");
    out.push_str(&format!("id = {}\n", toml::Value::String(e.id.clone())));
    out.push_str(&format!(
        "question = {}\n",
        toml::Value::String(e.question.clone())
    ));
    out.push_str(&format!("similar = [{}]\n", list(&e.similar)));
    out.push_str(&format!(
        "system = {}\n",
        toml::Value::String(e.system.clone())
    ));
    out.push_str(&format!("tags = [{}]\n", list(&e.tags)));
    if e.draft {
        out.push_str("draft = true\n");
    }
    out.push_str("+++\n");
    out.push_str(e.answer.trim());
    out.push('\n');
    out
}

/// Everything loaded from a folder: the entries that parsed, and the files that did not.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub entries: Vec<Entry>,
    pub errors: Vec<EntryError>,
    /// `dict.txt` (jieba user dictionary), empty if absent.
    pub dict: String,
    /// `synonyms.txt`, empty if absent.
    pub synonyms: String,
}

/// A file that may be absent (empty then); any other error is an error, not an empty file.
fn read_optional(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        other => other,
    }
}

/// Load every `*.md` under `dir` (recursively), plus `dict.txt` and `synonyms.txt`.
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    let files = crate::util::files_under(dir)?
        .into_iter()
        .map(|(path, _, _)| path)
        .filter(|p| p.extension().is_some_and(|e| e == "md"));
    let mut loaded = Loaded {
        dict: read_optional(&dir.join("dict.txt"))?,
        synonyms: read_optional(&dir.join("synonyms.txt"))?,
        ..Loaded::default()
    };
    let mut seen = std::collections::HashMap::new();
    for f in files {
        let path = f.display().to_string();
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                loaded.errors.push(EntryError {
                    path,
                    line: 1,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match parse(&path, &text) {
            Ok(e) => {
                if let Some(first) = seen.insert(e.id.clone(), path.clone()) {
                    loaded.errors.push(EntryError {
                        path,
                        line: 2,
                        message: format!("id `{}` is already used by {first}", e.id),
                    });
                } else {
                    loaded.entries.push(e);
                }
            }
            Err(e) => loaded.errors.push(e),
        }
    }
    Ok(loaded)
}

#[derive(Debug, Deserialize)]
struct JsonEntry {
    id: String,
    question: String,
    #[serde(default)]
    similar: Vec<String>,
}

/// Read a `kb.jsonl` of the evaluation format (`{"id","question","similar"}` per line).
pub fn load_jsonl(path: &Path) -> Result<Vec<Entry>, EntryError> {
    let text = std::fs::read_to_string(path).map_err(|e| EntryError {
        path: path.display().to_string(),
        line: 0,
        message: e.to_string(),
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let j: JsonEntry = serde_json::from_str(l).map_err(|e| EntryError {
                path: path.display().to_string(),
                line: i + 1,
                message: e.to_string(),
            })?;
            Ok(Entry {
                id: j.id,
                question: j.question,
                similar: j.similar,
                system: String::new(),
                tags: Vec::new(),
                draft: false,
                answer: String::new(),
                path: format!("{}:{}", path.display(), i + 1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "+++\nid = \"trade-hours\"\nquestion = \"A股交易时间？\"\nsimilar = [\"几点开盘\", \"\"]\nsystem = \"交易\"\ntags = [\"交易时间\"]\n+++\n\n9:30–11:30，13:00–15:00。\n";

    #[test]
    fn parses_and_renders_back() {
        let e = parse("kb/a.md", GOOD).expect("parses");
        assert_eq!(e.id, "trade-hours");
        assert_eq!(e.similar, ["几点开盘"]);
        assert_eq!(e.answer, "9:30–11:30，13:00–15:00。");
        assert!(!e.draft);
        let again = parse("kb/a.md", &render(&e)).expect("round trip");
        assert_eq!(again, e);
    }

    #[test]
    fn errors_carry_the_line() {
        let bad = GOOD.replace("system = \"交易\"", "system = 交易");
        let e = parse("kb/a.md", &bad).expect_err("bad toml");
        assert_eq!(e.line, 5, "{e}");
        let e = parse(
            "kb/a.md",
            &GOOD.replace("question = \"A股交易时间？\"", "question = \" \""),
        )
        .expect_err("empty");
        assert_eq!(e.line, 3, "{e}");
        let e = parse("kb/a.md", &GOOD.replace("tags", "labels")).expect_err("unknown key");
        assert!(e.message.contains("labels"), "{e}");
        assert!(parse("kb/a.md", "no front matter").is_err());
        assert!(parse("kb/a.md", "+++\nid = \"x\"\n").is_err());
        let e = parse("kb/a.md", &GOOD.replace("9:30–11:30，13:00–15:00。", ""))
            .expect_err("no answer");
        assert!(e.message.contains("answer"), "{e}");
    }

    #[test]
    fn drafts_may_have_no_answer_yet() {
        let d = GOOD
            .replace("tags = [\"交易时间\"]", "tags = []\ndraft = true")
            .replace("9:30–11:30，13:00–15:00。", "");
        assert!(parse("kb/a.md", &d).expect("draft").draft);
    }
}
