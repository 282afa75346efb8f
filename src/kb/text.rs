//! Text analysis for the FAQ: one place that turns text into tokens, used for indexing and
//! for queries alike (and registered with tantivy, so the index cannot drift from it).
//!
//! 1. [`Analyzer::prepare`] — full-width → half-width, lower-case, then query-time synonyms
//!    from `kb/synonyms.txt` (variant spellings to one canonical form: 帐户 → 账户,
//!    证劵 → 证券, 登陆 → 登录). The eval placeholders `[机构]`, `[numbers]` are ordinary text.
//! 2. [`units`] — the text as a sequence of units: each CJK character alone, each ASCII
//!    letter/digit run as one unit (`vip`, `level2`), punctuation and spaces dropped.
//! 3. Three token views of the units:
//!    - [`char_grams`]: unigrams + bigrams of units — robust to colloquial word order and
//!      to words jieba splits differently;
//!    - [`pinyin_grams`]: units + toneless pinyin unigrams and bigrams — matches the
//!      homophone errors of speech-transcribed and hastily typed questions (证劵/证券,
//!      短信宝/短线宝, 登陆/登录);
//!    - [`Analyzer::words`]: jieba search-mode words with the domain dictionary `kb/dict.txt`.
//!
//! [`lcs_len`] measures how much of one unit sequence appears, in order, in another.

use std::collections::HashMap;
use std::sync::Arc;

use jieba_rs::Jieba;
use pinyin::ToPinyin;

/// Full-width ASCII to half-width, ideographic space to space, ASCII lower-case.
pub fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The units of (prepared) text: CJK characters one by one, ASCII alphanumeric runs whole.
pub fn units(s: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut run_start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphanumeric() {
            run_start.get_or_insert(i);
            continue;
        }
        if let Some(start) = run_start.take() {
            out.push(&s[start..i]);
        }
        if is_cjk(c) || (c.is_alphanumeric() && !c.is_ascii()) {
            out.push(&s[i..i + c.len_utf8()]);
        }
    }
    if let Some(start) = run_start {
        out.push(&s[start..]);
    }
    out
}

/// Unigrams and bigrams of units.
pub fn char_grams(units: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = units.iter().map(|u| (*u).to_owned()).collect();
    out.extend(units.windows(2).map(|w| format!("{}{}", w[0], w[1])));
    out
}

/// The toneless pinyin of a unit (ASCII runs stay as they are).
fn syllable(unit: &str) -> &str {
    let mut chars = unit.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.to_pinyin().map_or(unit, |p| p.plain()),
        _ => unit,
    }
}

/// Units, plus pinyin unigrams (`#quan`) and bigrams (`#zheng_quan`).
pub fn pinyin_grams(units: &[&str]) -> Vec<String> {
    let syllables: Vec<&str> = units.iter().map(|u| syllable(u)).collect();
    let mut out: Vec<String> = units.iter().map(|u| (*u).to_owned()).collect();
    out.extend(syllables.iter().map(|s| format!("#{s}")));
    out.extend(syllables.windows(2).map(|w| format!("#{}_{}", w[0], w[1])));
    out
}

/// Length of the longest common subsequence of two unit sequences.
pub fn lcs_len<A: PartialEq<B>, B>(a: &[A], b: &[B]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Synonym groups: every variant maps to the group's first (canonical) form.
#[derive(Debug, Clone, Default)]
pub struct Synonyms {
    /// (variant, canonical), longest variant first so longer matches win.
    pairs: Vec<(String, String)>,
}

impl Synonyms {
    /// Parse `synonyms.txt`: one group per line, whitespace-separated, canonical form first;
    /// `#` starts a comment.
    pub fn parse(text: &str) -> Synonyms {
        let mut map: HashMap<String, String> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace().map(normalize);
            let Some(canonical) = words.next() else {
                continue;
            };
            for variant in words {
                if variant != canonical {
                    map.insert(variant, canonical.clone());
                }
            }
        }
        let mut pairs: Vec<(String, String)> = map.into_iter().collect();
        pairs.sort_by(|a, b| {
            b.0.chars()
                .count()
                .cmp(&a.0.chars().count())
                .then(a.0.cmp(&b.0))
        });
        Synonyms { pairs }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Replace variants with their canonical form, scanning left to right, longest first.
    pub fn apply(&self, s: &str) -> String {
        if self.pairs.is_empty() {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        'outer: while !rest.is_empty() {
            for (variant, canonical) in &self.pairs {
                if rest.starts_with(variant.as_str()) {
                    out.push_str(canonical);
                    rest = &rest[variant.len()..];
                    continue 'outer;
                }
            }
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

/// The shared analysis: synonyms and the jieba dictionary (with `kb/dict.txt` loaded).
/// Cheap to share: hold it in an `Arc`.
pub struct Analyzer {
    synonyms: Synonyms,
    jieba: Jieba,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("synonyms", &self.synonyms.len())
            .finish_non_exhaustive()
    }
}

impl Analyzer {
    /// `dict`: a jieba user dictionary (`word [freq] [tag]` per line), may be empty.
    pub fn new(synonyms: Synonyms, dict: &str) -> Result<Arc<Analyzer>, String> {
        let mut jieba = Jieba::new();
        if !dict.trim().is_empty() {
            jieba
                .load_dict(&mut std::io::BufReader::new(dict.as_bytes()))
                .map_err(|e| format!("jieba user dictionary: {e}"))?;
        }
        Ok(Arc::new(Analyzer { synonyms, jieba }))
    }

    /// Normalised text with synonyms applied: the input of every token view.
    pub fn prepare(&self, s: &str) -> String {
        self.synonyms.apply(&normalize(s))
    }

    /// jieba search-mode words of prepared text (punctuation and spaces dropped).
    pub fn words(&self, prepared: &str) -> Vec<String> {
        self.jieba
            .cut_for_search(prepared, true)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric))
            .map(|t| t.word.to_owned())
            .collect()
    }

    /// jieba's plain cut (for tests of the user dictionary).
    pub fn cut(&self, prepared: &str) -> Vec<String> {
        self.jieba
            .cut(prepared, true)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric))
            .map(|t| t.word.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_units() {
        assert_eq!(normalize("ＶＩＰ　会员１２３"), "vip 会员123");
        assert_eq!(
            units(&normalize("[机构]卡的VIP,level2行情？")),
            ["机", "构", "卡", "的", "vip", "level2", "行", "情"]
        );
        assert_eq!(units("[numbers]元"), ["numbers", "元"]);
        assert!(units("？！…  ").is_empty());
    }

    #[test]
    fn grams() {
        let u = units("证券账户");
        assert_eq!(
            char_grams(&u),
            ["证", "券", "账", "户", "证券", "券账", "账户"]
        );
        let typo = pinyin_grams(&units("短信宝登陆"));
        let right = pinyin_grams(&units("短线宝登录"));
        assert!(
            typo.contains(&"#deng_lu".to_owned()) && right.contains(&"#deng_lu".to_owned()),
            "homophones share pinyin: {typo:?}"
        );
        assert!(typo.contains(&"#duan".to_owned()) && !typo.contains(&"线".to_owned()));
    }

    #[test]
    fn lcs() {
        let a = units("如何开通创业板权限");
        let b = units("创业板权限怎么开通");
        assert_eq!(lcs_len(&a, &b), 5);
        assert_eq!(lcs_len::<&str, &str>(&a, &[]), 0);
    }

    #[test]
    fn synonyms_prefer_the_longest_variant() {
        let s = Synonyms::parse("# comment\n账户 帐户 帐号户\n证券 证劵 证卷\n登录 登陆\n");
        assert_eq!(s.apply("证劵帐户登陆"), "证券账户登录");
        assert_eq!(s.apply("无关文字"), "无关文字");
    }

    #[test]
    fn the_user_dictionary_keeps_domain_words_whole() {
        let a = Analyzer::new(Synonyms::default(), "三方存管 100 n\n维持担保比例 100 n\n")
            .expect("dict");
        let cut = a.cut(&a.prepare("三方存管的维持担保比例"));
        assert!(cut.contains(&"三方存管".to_owned()), "{cut:?}");
        assert!(cut.contains(&"维持担保比例".to_owned()), "{cut:?}");
    }
}
