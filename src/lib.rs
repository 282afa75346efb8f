//! wecom-helpdesk: an incident desk that lives inside WeCom (企业微信).
//!
//! Agents report their customers' problems to a bot in WeCom; the bot answers from the FAQ
//! or runs a guided intake that files a complete ticket; handlers work the tickets in a web
//! console and their replies reach the agent in WeCom.
//!
//! # Layout
//!
//! Each module uses only those in its own row or above it (the `layout` test below checks
//! every `crate::` path against this table); heavy crates stay in one module each: sled in
//! `store`, reqwest in `wecom::client` (and the simulator's own callback poster: it stands in
//! for WeCom's servers), tantivy and jieba in `kb`, argon2 in `accounts`, axum in `http`,
//! `sim` and `app`.
//!
//! | module | owns |
//! |---|---|
//! | [`util`], [`ident`], [`shutdown`], [`telemetry`] | leaves: helpers (random, clock, hex, constant-time compare, [`util::Secret`]); customer identifiers and PII masking; shutdown signal, worker shape and supervisor; logging |
//! | [`store`] | the only sled user: typed trees, transactions, group-commit durability, media files |
//! | [`wecom`] | protocol types, XML/JSON parsing, `crypto` (WXBizMsgCrypt), `client` (the gateway's only reqwest user) |
//! | [`config`] | `config.toml` + `HELPDESK__…` overrides → validated [`config::Config`] |
//! | [`inbox`] | durable, deduplicated queue of verified inbound messages |
//! | [`outbox`] | durable queue of outbound messages and its delivery worker |
//! | [`kb`] | FAQ entries from `kb/`, jieba + tantivy index, FAQ-first decision, query log |
//! | [`script`] | intake flows from `bot-scripts/`: validation, hot reload, pure step evaluation |
//! | [`tickets`] | ticket model, state machine, numbering, thread, notices |
//! | [`incidents`] | incidents from monitor alerts and handlers: grouping, timeline, linked tickets, broadcast |
//! | [`conversation`] | sessions, screenshots, the worker that routes each message |
//! | [`accounts`] | console users (argon2) and sessions |
//! | [`dashboard`] | read-only aggregates: the board, reports, exports, the weekly push |
//! | [`editor`] | the admins' FAQ and script editors: checked, atomic, versioned saves |
//! | [`error`] | the crate error, aggregating the modules' own |
//! | [`http`] | router, verified-callback and session extractors, error mapping, console and API, health |
//! | [`sim`] | the WeCom simulator: fake server API and browser chat page |
//! | [`app`] | composition root: open store, build services, spawn supervised workers, serve |

pub mod accounts;
pub mod app;
pub mod config;
pub mod conversation;
pub mod dashboard;
pub mod editor;
pub mod error;
pub mod http;
pub mod ident;
pub mod inbox;
pub mod incidents;
pub mod kb;
pub mod outbox;
pub mod script;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod tickets;
pub mod util;
pub mod wecom;

pub use error::{Error, Result};

#[cfg(test)]
mod layout {
    //! Checks the `# Layout` table above against the source: no module may name (`crate::x`)
    //! a module listed in a row below its own.

    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    /// Module name → row in the layout table, read from this file's docs.
    fn rows() -> HashMap<String, usize> {
        let lib = include_str!("lib.rs");
        let mut rows = HashMap::new();
        let table = lib
            .lines()
            .skip_while(|l| !l.starts_with("//! # Layout"))
            .filter(|l| l.starts_with("//! | [`"));
        for (row, line) in table.enumerate() {
            let first_cell = line.split('|').nth(1).unwrap_or_default();
            for name in first_cell.split("[`").skip(1) {
                let name = name.split('`').next().unwrap_or_default().to_owned();
                assert!(
                    rows.insert(name.clone(), row).is_none(),
                    "{name} is listed twice"
                );
            }
        }
        rows
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The modules a source file names as `crate::x`, outside comments.
    fn named_modules(source: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
            assert!(
                !line.contains("crate::{"),
                "grouped `use crate::{{…}}` hides which modules are used; split it: {line}"
            );
            for part in line.split("crate::").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && part[name.len()..].starts_with("::") {
                    out.push(name);
                } else if part.starts_with("Error") || part.starts_with("Result") {
                    out.push("error".to_owned()); // the re-exports at the crate root
                }
            }
        }
        out
    }

    #[test]
    fn every_module_is_in_the_table() {
        let rows = rows();
        let lib = include_str!("lib.rs");
        for line in lib.lines().filter(|l| l.starts_with("pub mod ")) {
            let name = line.trim_start_matches("pub mod ").trim_end_matches(';');
            assert!(
                rows.contains_key(name),
                "module {name} is missing from # Layout"
            );
        }
    }

    #[test]
    fn imports_point_up_the_table() {
        let rows = rows();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut wrong = Vec::new();
        for path in all {
            let rel = path.strip_prefix(&src).expect("under src");
            let module = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs");
            let Some(&own) = rows.get(module) else {
                continue; // lib.rs and main.rs
            };
            let source = std::fs::read_to_string(&path).expect("read source");
            for dep in named_modules(&source) {
                match rows.get(&dep) {
                    Some(&row) if row <= own => {}
                    _ => wrong.push(format!("{} uses crate::{dep}", rel.display())),
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(
            wrong.is_empty(),
            "imports that run up the layout:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_check_sees_paths_and_skips_comments() {
        let found = named_modules(
            "use crate::store::Tx;\n// crate::app::x\nlet x = crate::util::hex_lower(b)?; -> crate::Result<()>",
        );
        assert_eq!(found, ["store", "util", "error"]);
    }
}
