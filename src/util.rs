//! Small helpers shared across modules: randomness, clocks, text trimming, errors located
//! in a file, hex and constant-time comparison, and [`Secret`] for values never printed.
//! Depends on nothing else in the crate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Fill `buf` from the operating system's CSPRNG.
///
/// # Panics
/// If the OS has no randomness to give, which leaves nothing safe to do.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system provides randomness");
}

/// `n` random bytes as lower-case hex (`2n` characters).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    random_bytes(&mut buf);
    hex_lower(&buf)
}

/// A random decimal string of `n` digits (nonces in WeCom's style).
pub fn random_digits(n: usize) -> String {
    let mut buf = vec![0u8; n];
    random_bytes(&mut buf);
    buf.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// fsync a folder, so that a file created, renamed or removed in it stays so after a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The first `max_chars` characters of `s`, with "…" when cut.
pub fn truncate_chars(s: &str, max_chars: usize) -> String {
    let mut out: String = s.chars().take(max_chars).collect();
    if s.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A problem in an admin-edited file (an intake script, an FAQ entry), shown as
/// `path:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct FileError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// A file as change detection sees it: path, modification time, size.
pub type FileStamp = (PathBuf, Option<SystemTime>, u64);

/// Every file under `dir`, recursively, sorted by path. Admin-edited folders (`kb/`,
/// `bot-scripts/`) are listed with this both to load them and to notice edits.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<FileStamp>> {
    fn walk(dir: &Path, out: &mut Vec<FileStamp>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                // Hidden folders (the editor's `.trash`) are not content.
                if !entry.file_name().to_string_lossy().starts_with('.') {
                    walk(&entry.path(), out)?;
                }
            } else {
                out.push((entry.path(), meta.modified().ok(), meta.len()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Constant-time equality for equal-length inputs; unequal lengths return false at once
/// (the length of a SHA1 hex string is public).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// A string that must never be printed: tokens, keys, secrets.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value. Call sites are few and greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An environment override such as `HELPDESK__WECOM__SECRET=123456` arrives as an
        // integer; a secret is always text.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Lenient {
            S(String),
            I(i64),
        }
        Ok(match Lenient::deserialize(d)? {
            Lenient::S(s) => Secret(s),
            Lenient::I(i) => Secret(i.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_helpers_have_the_right_shape() {
        assert_eq!(random_hex(16).len(), 32);
        let d = random_digits(10);
        assert_eq!(d.len(), 10);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(random_hex(16), random_hex(16));
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("股票交易不了", 4), "股票交易…");
        assert_eq!(truncate_chars("短", 4), "短");
    }
}
