//! The FAQ index: tantivy (in RAM) over three analyses of each entry, fused with an
//! alignment score.
//!
//! Fields (one tantivy document per entry):
//! - `chars`  — question + similar questions, unit uni/bigrams ([`text::char_grams`]);
//! - `pinyin` — the same text as units plus toneless pinyin uni/bigrams;
//! - `question`, `similar`, `answer`, `tags`, `system` — jieba words with the domain
//!   dictionary, queried together with per-field boosts;
//! - `ord` — position in [`KbIndex::entries`] (fast field).
//!
//! Every analysis is a tokenizer registered with the index, and queries are tokenized by the
//! same registered analyzers, so indexing and querying cannot diverge. Queries are built as
//! boolean SHOULD-queries of terms (never tantivy's query syntax, so `"`, `:` or `(` in a
//! question are just text).
//!
//! Ranking (measured on the evaluation dev set, see README): BM25 of each view is
//! normalised by its best candidate, and combined with how much of the question appears in
//! order in the entry's closest phrasing and vice versa (longest common subsequence):
//! `1.0·chars + 1.5·pinyin + 0.25·words + 0.75·cover(entry) + 0.75·cover(question)`.
//! The last two are absolute (0..1) and give the [`Hit::confidence`] used by the FAQ-first
//! policy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, Term, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{DocAddress, DocSet, Index, IndexReader, ReloadPolicy, TERMINATED, TantivyDocument};

use super::entry::Entry;
use super::text::{self, Analyzer};

/// Longest question (in characters) that is searched; the rest of a long paste is ignored.
pub const MAX_QUERY_CHARS: usize = 300;
/// Candidates taken from the chars view and the words view before fusion.
const CHAR_CANDIDATES: usize = 20;
const WORD_CANDIDATES: usize = 12;

/// Weights of the fusion (tuned on the dev set).
struct Weights {
    chars: f32,
    pinyin: f32,
    words: f32,
    cover_entry: f32,
    cover_query: f32,
}

const WEIGHTS: Weights = Weights {
    chars: 1.0,
    pinyin: 1.5,
    words: 0.25,
    cover_entry: 0.75,
    cover_query: 0.75,
};

/// Boosts of the jieba word fields within the `words` view.
const WORD_FIELDS: [(&str, f32); 5] = [
    ("question", 1.0),
    ("similar", 1.0),
    ("tags", 0.5),
    ("system", 0.3),
    ("answer", 0.2),
];

#[derive(Debug, Clone, Copy)]
enum View {
    Chars,
    Pinyin,
    Words,
}

impl View {
    /// The tokens of `prepared` text (see [`Analyzer::prepare`]) in this view; indexing and
    /// querying both go through here.
    fn tokens(self, analyzer: &Analyzer, prepared: &str) -> Vec<String> {
        match self {
            View::Chars => text::char_grams(&text::units(prepared)),
            View::Pinyin => text::pinyin_grams(&text::units(prepared)),
            View::Words => analyzer.words(prepared),
        }
    }
}

/// A tantivy tokenizer running one of our views over [`Analyzer`].
#[derive(Clone)]
struct ViewTokenizer {
    analyzer: Arc<Analyzer>,
    view: View,
}

struct VecTokenStream {
    tokens: Vec<String>,
    next: usize,
    token: Token,
}

impl Tokenizer for ViewTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let tokens = self
            .view
            .tokens(&self.analyzer, &self.analyzer.prepare(text));
        VecTokenStream {
            tokens,
            next: 0,
            token: Token::default(),
        }
    }
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        let Some(t) = self.tokens.get(self.next) else {
            return false;
        };
        self.token.text.clear();
        self.token.text.push_str(t);
        self.token.position = self.next;
        self.token.position_length = 1;
        self.next += 1;
        true
    }
    fn token(&self) -> &Token {
        &self.token
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// One ranked answer.
#[derive(Debug, Clone)]
pub struct Hit {
    pub entry: Arc<Entry>,
    /// The fused ranking score (relative to the other candidates of this question).
    pub score: f32,
    /// Absolute similarity of the question to the entry's closest phrasing, 0..1.
    pub confidence: f32,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    chars: Field,
    pinyin: Field,
    words: [Field; 5],
}

/// A built, immutable index. Rebuilt and swapped whole on every change of `kb/`.
pub struct KbIndex {
    reader: IndexReader,
    fields: Fields,
    entries: Vec<Arc<Entry>>,
    /// Per entry, per phrasing: its units (for the alignment score).
    phrasings: Vec<Vec<Vec<String>>>,
    analyzer: Arc<Analyzer>,
    by_id: HashMap<String, usize>,
    /// Where each entry's document lives, and back.
    addr: Vec<DocAddress>,
    ord_of: HashMap<DocAddress, usize>,
}

impl std::fmt::Debug for KbIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KbIndex")
            .field("entries", &self.entries.len())
            .finish()
    }
}

fn text_field(builder: &mut tantivy::schema::SchemaBuilder, name: &str, tokenizer: &str) -> Field {
    builder.add_text_field(
        name,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        ),
    )
}

impl KbIndex {
    /// Index `entries` (drafts are skipped: they are never served).
    pub fn build(entries: &[Entry], analyzer: Arc<Analyzer>) -> tantivy::Result<KbIndex> {
        let mut b = Schema::builder();
        let ord = b.add_u64_field("ord", INDEXED | FAST);
        let chars = text_field(&mut b, "chars", "kb_chars");
        let pinyin = text_field(&mut b, "pinyin", "kb_pinyin");
        let words = WORD_FIELDS.map(|(name, _)| text_field(&mut b, name, "kb_words"));
        let index = Index::create_in_ram(b.build());
        for (name, view) in [
            ("kb_chars", View::Chars),
            ("kb_pinyin", View::Pinyin),
            ("kb_words", View::Words),
        ] {
            index.tokenizers().register(
                name,
                TextAnalyzer::builder(ViewTokenizer {
                    analyzer: analyzer.clone(),
                    view,
                })
                .build(),
            );
        }
        let served: Vec<Arc<Entry>> = entries
            .iter()
            .filter(|e| !e.draft)
            .cloned()
            .map(Arc::new)
            .collect();
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 50_000_000)?;
        let mut phrasings = Vec::with_capacity(served.len());
        for (i, e) in served.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_u64(ord, i as u64);
            let all: Vec<&str> = e.phrasings().collect();
            let joined = all.join("\n");
            doc.add_text(chars, &joined);
            doc.add_text(pinyin, &joined);
            doc.add_text(words[0], &e.question);
            for s in &e.similar {
                doc.add_text(words[1], s);
            }
            for t in &e.tags {
                doc.add_text(words[2], t);
            }
            doc.add_text(words[3], &e.system);
            doc.add_text(words[4], &e.answer);
            writer.add_document(doc)?;
            phrasings.push(
                all.iter()
                    .map(|p| {
                        let prepared = analyzer.prepare(p);
                        text::units(&prepared)
                            .into_iter()
                            .map(str::to_owned)
                            .collect()
                    })
                    .collect(),
            );
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let by_id = served
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
        let mut addr = vec![DocAddress::new(0, 0); served.len()];
        let mut ord_of = HashMap::with_capacity(served.len());
        let searcher = reader.searcher();
        for (seg, segment) in searcher.segment_readers().iter().enumerate() {
            let col = segment.fast_fields().u64("ord")?;
            for doc in 0..segment.max_doc() {
                if let Some(o) = col.first(doc) {
                    let a = DocAddress::new(seg as u32, doc);
                    addr[o as usize] = a;
                    ord_of.insert(a, o as usize);
                }
            }
        }
        Ok(KbIndex {
            reader,
            fields: Fields {
                chars,
                pinyin,
                words,
            },
            entries: served,
            phrasings,
            analyzer,
            by_id,
            addr,
            ord_of,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    /// The distinct tokens of a prepared question in `view`, in order.
    fn query_tokens(&self, view: View, prepared: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        view.tokens(&self.analyzer, prepared)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect()
    }

    fn terms_query(&self, field: Field, tokens: &[String]) -> Box<dyn Query> {
        Box::new(BooleanQuery::new(
            tokens
                .iter()
                .map(|t| {
                    let q: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(field, t),
                        IndexRecordOption::WithFreqs,
                    ));
                    (Occur::Should, q)
                })
                .collect(),
        ))
    }

    /// The `n` best entries for `query` (tantivy prunes with block-max WAND).
    fn top(&self, query: &dyn Query, n: usize) -> Vec<usize> {
        let searcher = self.reader.searcher();
        searcher
            .search(query, &TopDocs::with_limit(n).order_by_score())
            .map(|hits| {
                hits.into_iter()
                    .filter_map(|(_, a)| self.ord_of.get(&a).copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// BM25 of `query` for exactly the entries `ords` (0 where it does not match): each
    /// segment's scorer seeks straight to them instead of scoring every match.
    fn scores_for(&self, query: &dyn Query, ords: &[usize]) -> HashMap<usize, f32> {
        let mut out = HashMap::with_capacity(ords.len());
        let searcher = self.reader.searcher();
        let Ok(weight) = query.weight(EnableScoring::enabled_from_searcher(&searcher)) else {
            return out;
        };
        let mut by_segment: HashMap<u32, Vec<(u32, usize)>> = HashMap::new();
        for &o in ords {
            let a = self.addr[o];
            by_segment
                .entry(a.segment_ord)
                .or_default()
                .push((a.doc_id, o));
        }
        for (seg, mut docs) in by_segment {
            docs.sort_unstable();
            let Ok(mut scorer) = weight.scorer(searcher.segment_reader(seg), 1.0) else {
                continue;
            };
            for (doc, o) in docs {
                if scorer.doc() == TERMINATED {
                    break;
                }
                if scorer.doc() < doc && scorer.seek(doc) == TERMINATED {
                    break;
                }
                if scorer.doc() == doc {
                    out.insert(o, scorer.score());
                }
            }
        }
        out
    }

    /// The best `k` entries for `question`, best first. Empty for a question without any
    /// letters, digits or Chinese characters.
    pub fn search(&self, question: &str, k: usize) -> Vec<Hit> {
        let capped: String = question.chars().take(MAX_QUERY_CHARS).collect();
        let prepared = self.analyzer.prepare(&capped);
        let q_units = text::units(&prepared);
        if q_units.is_empty() || self.entries.is_empty() {
            return Vec::new();
        }
        let f = self.fields;
        // The question is prepared once; each view tokenizes it as the index did its entries.
        let chars_query = self.terms_query(f.chars, &self.query_tokens(View::Chars, &prepared));
        let pinyin_query = self.terms_query(f.pinyin, &self.query_tokens(View::Pinyin, &prepared));
        let word_tokens = self.query_tokens(View::Words, &prepared);
        let words_query = BooleanQuery::new(
            f.words
                .iter()
                .zip(WORD_FIELDS)
                .map(|(field, (_, boost))| {
                    let q: Box<dyn Query> = Box::new(BoostQuery::new(
                        self.terms_query(*field, &word_tokens),
                        boost,
                    ));
                    (Occur::Should, q)
                })
                .collect(),
        );
        let mut candidates: HashSet<usize> = HashSet::new();
        // Candidates come from the chars and words views (block-max WAND prunes well over
        // their terms); the pinyin view, three terms per character, only scores them.
        candidates.extend(self.top(&*chars_query, CHAR_CANDIDATES));
        candidates.extend(self.top(&words_query, WORD_CANDIDATES));
        if candidates.is_empty() {
            return Vec::new();
        }
        let ords: Vec<usize> = candidates.iter().copied().collect();
        let chars = self.scores_for(&*chars_query, &ords);
        let pinyin = self.scores_for(&*pinyin_query, &ords);
        let words = self.scores_for(&words_query, &ords);
        let max_of = |m: &HashMap<usize, f32>| {
            candidates
                .iter()
                .filter_map(|c| m.get(c))
                .fold(0f32, |a, &b| a.max(b))
                .max(f32::MIN_POSITIVE)
        };
        let (mc, mp, mw) = (max_of(&chars), max_of(&pinyin), max_of(&words));
        let w = &WEIGHTS;
        let mut hits: Vec<(usize, f32, f32)> = candidates
            .into_iter()
            .map(|ord| {
                let (mut cover_entry, mut cover_query) = (0f32, 0f32);
                for p in &self.phrasings[ord] {
                    let l = text::lcs_len(&q_units, p) as f32;
                    cover_entry = cover_entry.max(l / p.len().max(1) as f32);
                    cover_query = cover_query.max(l / q_units.len() as f32);
                }
                let score = w.chars * chars.get(&ord).copied().unwrap_or(0.0) / mc
                    + w.pinyin * pinyin.get(&ord).copied().unwrap_or(0.0) / mp
                    + w.words * words.get(&ord).copied().unwrap_or(0.0) / mw
                    + w.cover_entry * cover_entry
                    + w.cover_query * cover_query;
                (ord, score, (cover_entry + cover_query) / 2.0)
            })
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.into_iter()
            .take(k)
            .map(|(ord, score, confidence)| Hit {
                entry: self.entries[ord].clone(),
                score,
                confidence,
            })
            .collect()
    }
}
