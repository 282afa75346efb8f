//! Small helpers shared across modules: randomness, clocks and text trimming.
//! Depends on nothing else in the crate.

use std::time::{SystemTime, UNIX_EPOCH};

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
    crate::wecom::crypto::hex_lower(&buf)
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

/// The first `max_chars` characters of `s`, with "…" when cut.
pub fn truncate_chars(s: &str, max_chars: usize) -> String {
    let mut out: String = s.chars().take(max_chars).collect();
    if s.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
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
