//! PII masking (a rule that never bends): 身份证, 手机号 and bank-card numbers are masked wherever
//! they leave the ticket — group chats, robot notices, logs, exports. Only the ticket page of
//! the console shows them whole.
//!
//! [`mask_text`] finds such numbers inside free text (a description an agent typed) too,
//! written with full-width digits or with spaces, dashes or dots between groups;
//! [`mask_truncate`] masks first and then shortens, never cutting inside a masked number.
//!
//! One format everywhere: the leading and trailing digits that identify a number to a person
//! stay, every other digit becomes [`MASK`].

use std::ops::Range;
use std::sync::LazyLock;

use super::IdKind;

/// What a hidden digit shows as. Not `*`: two of those make WeCom markdown bold.
pub const MASK: char = '＊';

fn stars(n: usize) -> String {
    std::iter::repeat_n(MASK, n).collect()
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

/// A run of digits (half- or full-width), allowing one space, dash or dot between groups
/// (card numbers are often written `6222 0212 …`, phones `138.1234.5678`), with an optional
/// trailing X (身份证).
static DIGIT_RUN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"[0-9０-９](?:[ \-.\u{3000}－．]?[0-9０-９])*[XxＸｘ]?")
        .expect("digit-run pattern compiles")
});

/// A digit run's characters in half-width, separators dropped.
fn plain_digits(run: &str) -> String {
    run.chars()
        .filter_map(|c| match c {
            '０'..='９' | 'Ｘ' | 'ｘ' => char::from_u32(c as u32 - 0xFEE0),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The masked form of a digit run, or `None` when it is not a number we hide.
fn mask_run(run: &str) -> Option<String> {
    let digits = plain_digits(run);
    let n = digits.len();
    let has_x = digits.ends_with(['X', 'x']);
    if n == 18 || (n == 15 && !has_x) {
        Some(keep(&digits, 6, 4))
    } else if has_x {
        // An X only ends an ID; anything else X-terminated is not a number we know.
        None
    } else if n == 11 && digits.starts_with('1') {
        Some(keep(&digits, 3, 4))
    } else if (16..=19).contains(&n) {
        Some(keep(&digits, 4, 4))
    } else if n >= 12 {
        Some(keep(&digits, 2, 4))
    } else {
        None
    }
}

/// `text` masked, with the character ranges of the masked numbers in the result.
fn mask_spans(text: &str) -> (String, Vec<Range<usize>>) {
    let mut out = String::with_capacity(text.len());
    let mut spans = Vec::new();
    let mut chars = 0;
    let mut last = 0;
    for m in DIGIT_RUN.find_iter(text) {
        let before = &text[last..m.start()];
        out.push_str(before);
        chars += before.chars().count();
        let (piece, masked) = match mask_run(m.as_str()) {
            Some(masked) => (masked, true),
            None => (m.as_str().to_owned(), false),
        };
        let len = piece.chars().count();
        if masked {
            spans.push(chars..chars + len);
        }
        out.push_str(&piece);
        chars += len;
        last = m.end();
    }
    out.push_str(&text[last..]);
    (out, spans)
}

/// Mask every ID-, mobile- or card-shaped number in free text: whole digit runs are
/// classified by length, so an ID is never mistaken for a card or cut in two. Short numbers
/// (amounts, times) stay as they are.
pub fn mask_text(text: &str) -> String {
    mask_spans(text).0
}

/// Mask, then keep at most `max_chars` characters (and `…`), never cutting inside a masked
/// number: the cut moves to its start. (Cutting first would leave a number too short to be
/// recognised, and so unmasked.)
pub fn mask_truncate(text: &str, max_chars: usize) -> String {
    let (masked, spans) = mask_spans(text);
    if masked.chars().count() <= max_chars {
        return masked;
    }
    let cut = spans
        .iter()
        .find(|r| r.start < max_chars && max_chars < r.end)
        .map_or(max_chars, |r| r.start);
    let mut out: String = masked.chars().take(cut).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(
            mask_identifier(IdKind::IdCard, "11010519491231002X"),
            "110105＊＊＊＊＊＊＊＊002X"
        );
        assert_eq!(
            mask_identifier(IdKind::IdCard, "110105491231002"),
            "110105＊＊＊＊＊1002"
        );
        assert_eq!(
            mask_identifier(IdKind::Mobile, "13812345678"),
            "138＊＊＊＊5678"
        );
        assert_eq!(
            mask_identifier(IdKind::CustomerNo, "12345678"),
            "12＊＊5678"
        );
        assert_eq!(mask_identifier(IdKind::CustomerNo, "123"), "＊＊＊");
    }

    #[test]
    fn free_text() {
        let t = "客户身份证11010519491231002X，手机13812345678，卡号6222 0212 3456 7890 123，金额12000元";
        let m = mask_text(t);
        assert!(!m.contains("11010519491231002X"));
        assert!(m.contains("110105＊＊＊＊＊＊＊＊002X"), "{m}");
        assert!(m.contains("138＊＊＊＊5678"), "{m}");
        assert!(m.contains("6222＊＊＊＊＊＊＊＊＊＊＊0123"), "{m}");
        assert!(!m.contains("3456 7890"), "{m}");
        assert!(m.contains("12000元"), "short numbers stay: {m}");
        assert_eq!(mask_text("旧号110105491231002"), "旧号110105＊＊＊＊＊1002");
        assert_eq!(
            mask_text("电话 138-1234-5678 下午3点"),
            "电话 138＊＊＊＊5678 下午3点"
        );
        assert_eq!(mask_text("客户号880012345678"), "客户号88＊＊＊＊＊＊5678");
        assert!(!m.contains('*'), "no markdown asterisks: {m}");
    }

    #[test]
    fn full_width_and_dotted_numbers_are_masked() {
        assert_eq!(
            mask_text("手机１３８１２３４５６７８"),
            "手机138＊＊＊＊5678"
        );
        assert_eq!(mask_text("手机138.1234.5678"), "手机138＊＊＊＊5678");
        assert_eq!(
            mask_text("证件１１０１０５１９４９１２３１００２Ｘ"),
            "证件110105＊＊＊＊＊＊＊＊002X"
        );
        assert_eq!(
            mask_text("金额12.50元，2026.11.30"),
            "金额12.50元，2026.11.30"
        );
    }

    #[test]
    fn truncation_never_leaves_part_of_a_number_readable() {
        // Cut first, the phone number would be 10 digits long and stay unmasked.
        let t = "请联系客户13812345678确认";
        let cut = mask_truncate(t, 10);
        assert_eq!(cut, "请联系客户…", "the cut moves before the masked number");
        assert!(!cut.contains("1381234"), "{cut}");
        assert_eq!(mask_truncate(t, 40), "请联系客户138＊＊＊＊5678确认");
        let card = "卡号6222021234567890123后面还有很多说明文字";
        assert!(!mask_truncate(card, 12).contains("6222021234"));
    }
}
