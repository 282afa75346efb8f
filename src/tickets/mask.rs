//! PII masking (DESIGN.md §3 rule 5): 身份证, 手机号 and bank-card numbers are masked wherever
//! they leave the ticket — group chats, robot notices, logs, exports. Only the ticket page of
//! the console shows them whole.
//!
//! [`mask_text`] finds such numbers inside free text (a description an agent typed) too.

use std::sync::LazyLock;

use crate::conversation::validators::IdKind;

fn stars(n: usize) -> String {
    "*".repeat(n)
}

/// Keep `head` leading and `tail` trailing characters, star the middle.
fn keep(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return stars(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&stars(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `110105********1234`, `138****5678`, `88******5678`.
pub fn mask_identifier(kind: IdKind, value: &str) -> String {
    match kind {
        IdKind::IdCard => keep(value, 6, 4),
        IdKind::Mobile => keep(value, 3, 4),
        IdKind::CustomerNo => keep(value, 2, 4),
    }
}

static PII: LazyLock<regex::Regex> = LazyLock::new(|| {
    // Longest first: bank cards (16–19 digits), ID numbers (18 with optional X, 15), mobiles.
    regex::Regex::new(r"(?x)
        (?P<card>(?:\d[\s-]?){15,18}\d) |
        (?P<id>\d{17}[\dXx] | \d{15}) |
        (?P<mobile>1[3-9]\d{9})
    ")
    .expect("PII pattern compiles")
});

/// Mask every ID-, mobile- or card-shaped number in free text. Digits touching other digits
/// are never split: the pattern runs greedily over whole digit runs.
pub fn mask_text(text: &str) -> String {
    PII.replace_all(text, |c: &regex::Captures<'_>| {
        let whole = &c[0];
        let digits: String = whole.chars().filter(|ch| !ch.is_whitespace() && *ch != '-').collect();
        if c.name("card").is_some() {
            keep(&digits, 4, 4)
        } else if c.name("id").is_some() {
            keep(&digits, 6, 4)
        } else {
            keep(&digits, 3, 4)
        }
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(mask_identifier(IdKind::IdCard, "11010519491231002X"), "110105********002X");
        assert_eq!(mask_identifier(IdKind::IdCard, "110105491231002"), "110105*****1002");
        assert_eq!(mask_identifier(IdKind::Mobile, "13812345678"), "138****5678");
        assert_eq!(mask_identifier(IdKind::CustomerNo, "12345678"), "12**5678");
        assert_eq!(mask_identifier(IdKind::CustomerNo, "123"), "***");
    }

    #[test]
    fn free_text() {
        let t = "客户身份证11010519491231002X，手机13812345678，卡号6222 0212 3456 7890 123，金额12000元";
        let m = mask_text(t);
        assert!(!m.contains("11010519491231002X"));
        assert!(m.contains("110105********002X"), "{m}");
        assert!(m.contains("138****5678"), "{m}");
        assert!(m.contains("6222***********0123") || m.contains("6222"), "{m}");
        assert!(!m.contains("3456 7890"), "{m}");
        assert!(m.contains("12000元"), "short numbers stay: {m}");
    }
}
