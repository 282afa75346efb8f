//! Outbreak detection, the pure part: how alike two short Chinese reports are, and when a
//! system's report count is above its baseline.
//!
//! - **Similarity**: the Jaccard index of the reports' character unigrams and bigrams, after
//!   dropping punctuation, digit runs (identifiers, amounts) and a short list of characters
//!   that every report shares (particles, "客户", "您好"…). Paraphrases of one fault share
//!   its key words (交易/委托/下单, 转账/银证), unrelated reports share little. A report needs
//!   [`MIN_FEATURES`] features to take part: an identifier or a screenshot alone never
//!   seeds a cluster.
//! - **Baseline**: reports per system in 5-minute bins. The expected count for a window is
//!   the mean of the same window (same time of day) over the previous days that have
//!   history (up to 7); the window is unusual when its count exceeds the Poisson upper limit
//!   of that mean at 99.9%, and never below a floor of `min_reporters - 1`. So a quiet night
//!   (mean ≈ 0) needs only `min_reporters`, a busy market open needs more, with the same
//!   settings. With no history at all (a new install) the floor alone decides.

use std::collections::BTreeSet;

/// Features a report needs to be clustered.
pub const MIN_FEATURES: usize = 4;

/// Length of a baseline bin.
pub const BIN_MS: i64 = 5 * 60 * 1000;

/// Days of history the baseline looks back.
pub const BASELINE_DAYS: i64 = 7;

/// Characters too common in reports to tell faults apart.
const STOP: &str = "的了吗呢啊吧呀哦嘛么我你他她它们是在有就都也还和与及或请帮看下一个这那什怎为何客户您好谢问题情况现在今天刚才一直总是无法不能不了没有显示出现提示";

fn is_stop(c: char) -> bool {
    STOP.contains(c)
}

/// The features of a report: unigrams and bigrams of its meaningful characters.
pub fn features(text: &str) -> BTreeSet<String> {
    let mut chars: Vec<char> = Vec::new();
    let mut digits = 0;
    let flush_digits = |chars: &mut Vec<char>, digits: &mut usize| {
        // Short numbers (9点, 3次) stay; identifiers and amounts go.
        if *digits >= 4 {
            let keep = chars.len() - *digits;
            chars.truncate(keep);
        }
        *digits = 0;
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            chars.push(c);
            digits += 1;
            continue;
        }
        flush_digits(&mut chars, &mut digits);
        if c.is_ascii_alphabetic() {
            chars.push(c.to_ascii_lowercase());
        } else if is_cjk(c) && !is_stop(c) {
            chars.push(c);
        } else {
            // Punctuation and spaces break bigrams.
            chars.push(' ');
        }
    }
    flush_digits(&mut chars, &mut digits);
    let mut out = BTreeSet::new();
    for w in chars.split(|c| *c == ' ') {
        for c in w {
            out.insert(c.to_string());
        }
        for pair in w.windows(2) {
            out.insert(pair.iter().collect());
        }
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

/// Jaccard index of two feature sets (0 when either is empty).
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.intersection(b).count();
    let union = a.len() + b.len() - shared;
    shared as f32 / union as f32
}

/// How alike two reports are, 0..1.
pub fn similarity(a: &str, b: &str) -> f32 {
    jaccard(&features(a), &features(b))
}

/// The smallest `k` with P(X ≤ k) ≥ 1 − `alpha` for X ~ Poisson(`mean`).
pub fn poisson_upper(mean: f64, alpha: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    let mut k = 0u64;
    let mut pmf = (-mean).exp();
    let mut cdf = pmf;
    while cdf < 1.0 - alpha && k < 100_000 {
        k += 1;
        pmf *= mean / k as f64;
        cdf += pmf;
    }
    k
}

/// The largest count a window may reach and still be ordinary: the Poisson upper limit
/// (99.9%) of the `history` mean, never below `floor`. Without history, the floor.
pub fn threshold(history: &[u64], floor: u64) -> u64 {
    if history.is_empty() {
        return floor;
    }
    let mean = history.iter().sum::<u64>() as f64 / history.len() as f64;
    poisson_upper(mean, 0.001).max(floor)
}

/// The bin of an instant.
pub fn bin_of(at_ms: i64) -> u64 {
    (at_ms.max(0) / BIN_MS) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paraphrases_are_alike_and_unrelated_reports_are_not() {
        let a = "股票交易不了，委托一直失败";
        let b = "客户说委托下单失败，股票交易不了";
        let c = "银证转账提示余额不足，但账户里有钱";
        let d = "交易委托下单失败 提示系统繁忙";
        assert!(similarity(a, b) > 0.3, "{}", similarity(a, b));
        assert!(similarity(b, d) > similarity(b, c));
        assert!(similarity(a, c) < 0.1, "{}", similarity(a, c));
    }

    #[test]
    fn identifiers_and_particles_carry_no_weight() {
        assert!(features("110105194912310021").is_empty());
        assert!(features("13812345678 的了吗").is_empty());
        assert!(features("客户您好").len() < MIN_FEATURES);
        // Short numbers stay: "9点" is part of the report.
        assert!(features("9点开盘交易不了").contains("9"));
        // An identifier does not make two reports alike.
        assert!(
            similarity(
                "客户 110105194912310021 开户",
                "客户 110105194912310021 转账"
            ) < 0.5
        );
    }

    #[test]
    fn poisson_limits() {
        assert_eq!(poisson_upper(0.0, 0.001), 0);
        // Poisson(1): P(X ≤ 5) = 0.99941.
        assert_eq!(poisson_upper(1.0, 0.001), 5);
        // Poisson(10): P(X ≤ 20) = 0.99841, P(X ≤ 21) = 0.99919.
        assert_eq!(poisson_upper(10.0, 0.001), 21);
    }

    #[test]
    fn a_quiet_night_needs_the_floor_and_a_busy_open_needs_more() {
        // No history (first day): the floor alone.
        assert_eq!(threshold(&[], 2), 2);
        // A quiet night: a report now and then.
        assert_eq!(threshold(&[0, 0, 1, 0, 0, 0, 0], 2), 2);
        // A busy market open: 12 reports in this window on an ordinary day.
        let busy = threshold(&[11, 13, 12, 10, 14, 12, 12], 2);
        assert!((22..=26).contains(&busy), "{busy}");
    }
}
