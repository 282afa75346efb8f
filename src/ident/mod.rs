//! Customer identifiers and PII: the one home of 身份证 (GB 11643 check digit, and the
//! 15-digit legacy form), 手机号, 客户号 (by configured pattern) and bank-card numbers —
//! normalising, validating and masking them.
//!
//! Input is normalised first — full-width digits and letters to half-width, spaces, dashes
//! and a `+86` prefix removed, `x` upper-cased — because agents type on phones with Chinese
//! input methods. Errors are Chinese sentences that say what is wrong and show an example.
//! Pure functions; nothing here logs (the values are personal data).
//!
//! A leaf: depends on nothing else in the crate, so every layer that handles personal data
//! (`script`, `tickets`, `conversation`, `http`) can use it.

pub mod mask;

pub use mask::{MASK, mask_identifier, mask_text, mask_truncate};

use serde::{Deserialize, Serialize};

/// The kind of a customer identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    IdCard,
    Mobile,
    CustomerNo,
}

impl IdKind {
    pub fn label(self) -> &'static str {
        match self {
            IdKind::IdCard => "身份证号",
            IdKind::Mobile => "手机号",
            IdKind::CustomerNo => "客户号",
        }
    }
}

/// A validated customer identifier, stored whole on the ticket only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerId {
    pub kind: IdKind,
    pub value: String,
}

impl CustomerId {
    /// The masked form shown everywhere except the ticket page: `110105＊＊＊＊＊＊＊＊1234`.
    pub fn masked(&self) -> String {
        mask::mask_identifier(self.kind, &self.value)
    }

    /// "身份证号 110105＊＊＊＊＊＊＊＊1234"
    pub fn masked_label(&self) -> String {
        format!("{} {}", self.kind.label(), self.masked())
    }
}

/// The shape of an ID number in examples: never a number that passes the check (an agent
/// copying the example must not file a ticket for a stranger).
pub const ID_CARD_EXAMPLE: &str = "110105＊＊＊＊＊＊＊＊002X（18位，最后一位可能是 X）";
/// The shape of a mobile number in examples.
pub const MOBILE_EXAMPLE: &str = "138＊＊＊＊5678（11位）";

/// Full-width → half-width, drop separators and a +86 prefix, upper-case x.
pub fn normalize(input: &str) -> String {
    let mut s: String = input
        .chars()
        .filter_map(|c| {
            let c = match c {
                '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                    char::from_u32(c as u32 - 0xFEE0)?
                }
                other => other,
            };
            if c.is_whitespace() || matches!(c, '-' | '－' | '—' | '_' | '.' | '\u{3000}') {
                None
            } else {
                Some(if c == 'x' { 'X' } else { c })
            }
        })
        .collect();
    for prefix in ["+86", "0086"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_owned();
        }
    }
    s
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The GB 11643-1999 check character for the first 17 digits.
pub fn id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(CHECK[(sum % 11) as usize])
}

fn valid_date(y: i32, m: u32, d: u32) -> bool {
    let Some(date) = chrono::NaiveDate::from_ymd_opt(y, m, d) else {
        return false;
    };
    y >= 1900 && date <= chrono::Utc::now().date_naive()
}

fn valid_region(s: &str) -> bool {
    // Province codes run 11–82 (and 83 for Taiwan in the standard); 0x and 9x are not used.
    s.get(..2)
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| (11..=83).contains(&p))
}

/// Validate an 18-digit (or 15-digit legacy) 身份证号. `s` must be normalised.
pub fn cn_id_card(s: &str) -> Result<String, String> {
    let digits_ok = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    match s.len() {
        18 => {
            let (body, last) = s.split_at(17);
            if !digits_ok(body) || !(digits_ok(last) || last == "X") {
                return Err(format!(
                    "身份证号只能是数字，最后一位可以是 X。例如：{ID_CARD_EXAMPLE}"
                ));
            }
            if !valid_region(s) {
                return Err("身份证号前两位（省份代码）不正确，请核对后重新输入。".into());
            }
            let (y, m, d) = (
                s[6..10].parse().unwrap_or(0),
                s[10..12].parse().unwrap_or(0),
                s[12..14].parse().unwrap_or(0),
            );
            if !valid_date(y, m, d) {
                return Err(
                    "身份证号中的出生日期（第7–14位）不是有效日期，请核对后重新输入。".into(),
                );
            }
            if id_check_char(body) != last.chars().next() {
                return Err(format!(
                    "身份证号校验不通过，可能有数字输错了，请逐位核对后重新输入（18位，最后一位可能是 X）。例如：{ID_CARD_EXAMPLE}"
                ));
            }
            Ok(s.to_owned())
        }
        15 => {
            if !digits_ok(s) {
                return Err("15位老身份证号只能是数字，请核对后重新输入。".into());
            }
            if !valid_region(s) {
                return Err("身份证号前两位（省份代码）不正确，请核对后重新输入。".into());
            }
            let (y, m, d) = (
                1900 + s[6..8].parse::<i32>().unwrap_or(0),
                s[8..10].parse().unwrap_or(0),
                s[10..12].parse().unwrap_or(0),
            );
            if !valid_date(y, m, d) {
                return Err(
                    "15位身份证号中的出生日期（第7–12位）不是有效日期，请核对后重新输入。".into(),
                );
            }
            Ok(s.to_owned())
        }
        n => Err(format!(
            "身份证号应为18位（或15位老号码），您输入了{n}位。例如：{ID_CARD_EXAMPLE}"
        )),
    }
}

/// Validate an 11-digit mainland mobile number. `s` must be normalised.
pub fn cn_mobile(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("手机号应为11位数字。例如：{MOBILE_EXAMPLE}"));
    }
    if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
        return Err(format!(
            "手机号格式不正确：应以 1 开头，第二位为 3–9。例如：{MOBILE_EXAMPLE}"
        ));
    }
    Ok(s.to_owned())
}

/// Validate a 客户号 against the configured pattern. `s` must be normalised.
pub fn customer_no(s: &str, pattern: &regex::Regex) -> Result<String, String> {
    if pattern.is_match(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "客户号格式不正确（应符合：{}）。",
            describe_pattern(pattern)
        ))
    }
}

fn describe_pattern(p: &regex::Regex) -> String {
    // The default pattern reads well as words; others are shown as they are.
    match p.as_str() {
        r"^[0-9]{8,12}$" => "8–12位数字，例如 12345678".to_owned(),
        other => other.to_owned(),
    }
}

/// Validate a normalised `s` as an identifier of one `kind`.
pub fn id_of_kind(kind: IdKind, s: &str, pattern: &regex::Regex) -> Result<CustomerId, String> {
    let value = match kind {
        IdKind::IdCard => cn_id_card(s)?,
        IdKind::Mobile => cn_mobile(s)?,
        IdKind::CustomerNo => customer_no(s, pattern)?,
    };
    Ok(CustomerId { kind, value })
}

/// Accept any of the three identifier kinds, choosing by shape, with the most specific
/// error when none fits.
pub fn customer_id(input: &str, pattern: &regex::Regex) -> Result<CustomerId, String> {
    let s = normalize(input);
    if s.is_empty() {
        return Err(format!(
            "请提供客户号、身份证号或手机号中的一项。例如：身份证号 {ID_CARD_EXAMPLE}，手机号 {MOBILE_EXAMPLE}"
        ));
    }
    let all_digits = s.bytes().all(|b| b.is_ascii_digit());
    let id_shaped =
        s.len() == 18 && s[..17].bytes().all(|b| b.is_ascii_digit()) || s.len() == 15 && all_digits;
    if id_shaped {
        // A 15- or 18-character number is an ID unless it is a valid 客户号.
        return match cn_id_card(&s) {
            Ok(v) => Ok(CustomerId {
                kind: IdKind::IdCard,
                value: v,
            }),
            Err(_) if pattern.is_match(&s) => Ok(CustomerId {
                kind: IdKind::CustomerNo,
                value: s,
            }),
            Err(e) => Err(e),
        };
    }
    if s.len() == 11 && all_digits && s.starts_with('1') {
        return match cn_mobile(&s) {
            Ok(v) => Ok(CustomerId {
                kind: IdKind::Mobile,
                value: v,
            }),
            Err(_) if pattern.is_match(&s) => Ok(CustomerId {
                kind: IdKind::CustomerNo,
                value: s,
            }),
            Err(e) => Err(e),
        };
    }
    if pattern.is_match(&s) {
        return Ok(CustomerId {
            kind: IdKind::CustomerNo,
            value: s,
        });
    }
    if all_digits {
        return Err(format!(
            "号码位数不对（{}位）：身份证号为18位（或15位老号码），手机号为11位，客户号为{}。",
            s.chars().count(),
            describe_pattern(pattern)
        ));
    }
    Err(format!(
        "没有识别出客户标识。请只回复号码本身：客户号、身份证号（例如 {ID_CARD_EXAMPLE}）或手机号（例如 {MOBILE_EXAMPLE}）。"
    ))
}

/// A text answer with at least `min` characters (after trimming).
pub fn min_chars(input: &str, min: usize) -> Result<String, String> {
    let t = input.trim();
    if t.chars().count() < min {
        return Err(format!("内容太短（至少{min}个字），请写得具体一些。"));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat() -> regex::Regex {
        regex::Regex::new(r"^[0-9]{8,12}$").expect("regex")
    }

    #[test]
    fn check_digit_per_gb11643() {
        assert_eq!(id_check_char("11010519491231002"), Some('X'));
        assert_eq!(id_check_char("44052419800101001"), Some('3'));
        assert_eq!(id_check_char("11010119900307803"), Some('X'));
        assert_eq!(id_check_char("1101051949123100"), None);
        assert_eq!(id_check_char("1101051949123100a"), None);
    }

    #[test]
    fn every_check_value_is_reachable() {
        // Vary the sequence digits until every remainder (and so every check char) occurs.
        let mut seen = std::collections::HashSet::new();
        for seq in 0..1000 {
            let body = format!("11010519900101{seq:03}");
            let c = id_check_char(&body).expect("17 digits");
            assert!(cn_id_card(&format!("{body}{c}")).is_ok(), "{body}{c}");
            seen.insert(c);
        }
        assert_eq!(seen.len(), 11, "0–9 and X all occur");
    }

    #[test]
    fn id_card_accepts_valid_and_explains_invalid() {
        assert!(cn_id_card("11010519491231002X").is_ok());
        assert!(cn_id_card("440524198001010013").is_ok());
        let e = cn_id_card("110105194912310021").expect_err("bad check digit");
        assert!(e.contains("校验"), "{e}");
        let e = cn_id_card("110105194913310024").expect_err("month 13");
        assert!(e.contains("出生日期"), "{e}");
        let e = cn_id_card("000105194912310020").expect_err("region 00");
        assert!(e.contains("省份"), "{e}");
        let e = cn_id_card("11010519491231").expect_err("14 digits");
        assert!(e.contains("18位"), "{e}");
        let e = cn_id_card("1101051949123100AX").expect_err("letters");
        assert!(e.contains("X"), "{e}");
        // Born in the future.
        let body = "11010521000101001";
        let c = id_check_char(body).expect("17");
        assert!(cn_id_card(&format!("{body}{c}")).is_err());
        // February 29th only in leap years.
        let leap = "11010520000229001";
        assert!(cn_id_card(&format!("{leap}{}", id_check_char(leap).expect("17"))).is_ok());
        let non_leap = "11010519990229001";
        assert!(
            cn_id_card(&format!(
                "{non_leap}{}",
                id_check_char(non_leap).expect("17")
            ))
            .is_err()
        );
    }

    #[test]
    fn legacy_fifteen_digit_ids() {
        assert!(cn_id_card("110105491231002").is_ok());
        assert!(cn_id_card("110105491331002").is_err(), "month 13");
        assert!(cn_id_card("11010549123100X").is_err(), "digits only");
    }

    #[test]
    fn mobile_numbers() {
        assert!(cn_mobile("13812345678").is_ok());
        assert!(cn_mobile("19912345678").is_ok());
        assert!(
            cn_mobile("12812345678")
                .expect_err("second digit")
                .contains("第二位")
        );
        assert!(
            cn_mobile("1381234567")
                .expect_err("10 digits")
                .contains("11位")
        );
    }

    #[test]
    fn normalisation_handles_phone_input() {
        assert_eq!(normalize("１３８ １２３４ ５６７８"), "13812345678");
        assert_eq!(normalize("+86 138-1234-5678"), "13812345678");
        assert_eq!(normalize("11010519491231002x"), "11010519491231002X");
        assert_eq!(
            normalize("１１０１０５１９４９１２３１００２ｘ"),
            "11010519491231002X"
        );
    }

    #[test]
    fn customer_id_picks_the_kind_by_shape() {
        let p = pat();
        assert_eq!(
            customer_id("11010519491231002x", &p).expect("id").kind,
            IdKind::IdCard
        );
        assert_eq!(
            customer_id("138 1234 5678", &p).expect("mobile").kind,
            IdKind::Mobile
        );
        assert_eq!(
            customer_id("880012345", &p).expect("cno").kind,
            IdKind::CustomerNo
        );
        // 11 digits starting with 12: not a mobile, but a valid 客户号.
        assert_eq!(
            customer_id("12812345678", &p).expect("cno").kind,
            IdKind::CustomerNo
        );
        let e = customer_id("110105194912310021", &p).expect_err("bad id");
        assert!(e.contains("校验"), "{e}");
        let e = customer_id("1234", &p).expect_err("short");
        assert!(e.contains("位数"), "{e}");
        let e = customer_id("不知道", &p).expect_err("words");
        assert!(e.contains("例如"), "{e}");
        assert!(customer_id("  ", &p).is_err());
        // A custom pattern is honoured.
        let custom = regex::Regex::new(r"^KH[0-9]{6}$").expect("regex");
        assert_eq!(
            customer_id("kh123456".to_uppercase().as_str(), &custom)
                .expect("custom")
                .kind,
            IdKind::CustomerNo
        );
    }

    #[test]
    fn masking_never_shows_the_whole_number() {
        let id = customer_id("11010519491231002X", &pat()).expect("id");
        assert_eq!(id.masked(), "110105＊＊＊＊＊＊＊＊002X");
        let m = customer_id("13812345678", &pat()).expect("mobile");
        assert_eq!(m.masked(), "138＊＊＊＊5678");
        let c = customer_id("880012345678", &pat()).expect("cno");
        assert_eq!(c.masked(), "88＊＊＊＊＊＊5678");
    }

    #[test]
    fn min_chars_counts_characters() {
        assert!(min_chars("交易失败了请看", 8).is_err());
        assert_eq!(
            min_chars("  今天上午买入股票时报错  ", 8).expect("ok"),
            "今天上午买入股票时报错"
        );
    }
}
