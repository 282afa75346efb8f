//! PII masking (a rule that never bends): 身份证, 手机号 and bank-card numbers are masked wherever
//! they leave the ticket — group chats, robot notices, logs, exports. Only the ticket page of
//! the console shows them whole.
//!
//! [`mask_text`] finds such numbers inside free text (a description an agent typed) too.

use std::sync::LazyLock;

use super::IdKind;

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

/// A run of digits, allowing single spaces or dashes between groups (card numbers are often
/// written `6222 0212 …`), with an optional trailing X (身份证).
static DIGIT_RUN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\d(?:[ -]?\d)*[Xx]?").expect("digit-run pattern compiles")
});

/// Mask every ID-, mobile- or card-shaped number in free text: whole digit runs are
/// classified by length, so an ID is never mistaken for a card or cut in two. Short numbers
/// (amounts, times) stay as they are.
pub fn mask_text(text: &str) -> String {
    DIGIT_RUN
        .replace_all(text, |c: &regex::Captures<'_>| {
            let whole = &c[0];
            let digits: String = whole
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric())
                .collect();
            let n = digits.len();
            let has_x = digits.ends_with(['X', 'x']);
            if n == 18 || (n == 15 && !has_x) {
                keep(&digits, 6, 4)
            } else if has_x {
                // An X only ends an ID; anything else X-terminated is not a number we know.
                whole.to_owned()
            } else if n == 11 && digits.starts_with('1') {
                keep(&digits, 3, 4)
            } else if (16..=19).contains(&n) {
                keep(&digits, 4, 4)
            } else if n >= 12 {
                keep(&digits, 2, 4)
            } else {
                whole.to_owned()
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(
            mask_identifier(IdKind::IdCard, "11010519491231002X"),
            "110105********002X"
        );
        assert_eq!(
            mask_identifier(IdKind::IdCard, "110105491231002"),
            "110105*****1002"
        );
        assert_eq!(
            mask_identifier(IdKind::Mobile, "13812345678"),
            "138****5678"
        );
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
        assert!(m.contains("6222***********0123"), "{m}");
        assert!(!m.contains("3456 7890"), "{m}");
        assert!(m.contains("12000元"), "short numbers stay: {m}");
        assert_eq!(mask_text("旧号110105491231002"), "旧号110105*****1002");
        assert_eq!(
            mask_text("电话 138-1234-5678 下午3点"),
            "电话 138****5678 下午3点"
        );
        assert_eq!(mask_text("客户号880012345678"), "客户号88******5678");
    }
}
