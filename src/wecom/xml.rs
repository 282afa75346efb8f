//! A small, strict reader for WeCom's XML: a single `<xml>` root holding (mostly flat) fields.
//!
//! WeCom XML is data, not documents, so this reader is deliberately narrow:
//! - a `<!DOCTYPE …>` (and with it any entity declaration) is refused outright, and only the
//!   five predefined entities and numeric character references are resolved — nothing is
//!   ever expanded from a DTD;
//! - nesting deeper than `MAX_DEPTH` and more than `MAX_FIELDS` fields are refused;
//! - every leaf becomes a `(path, text)` pair, the path joined with `/` below the root
//!   (`SelectedItems/SelectedItem/QuestionKey`), in document order, repeated paths kept.
//!
//! Nearly every callback is a flat `<xml>` of CDATA or plain fields, read twice on the path
//! that acknowledges it (the envelope, then the decrypted message): such a document is read
//! by a scanner of that shape alone (`flat`), which gives what the full reader would give;
//! anything else (nesting, entities, comments, attributes, a declaration, `\r`, an error)
//! goes to the full reader.
//!
//! It also writes the flat XML we need for the simulator and passive replies ([`XmlWriter`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

const MAX_DEPTH: usize = 8;
const MAX_FIELDS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("XML is malformed: {0}")]
    Malformed(String),
    #[error("XML declares a DTD; refused")]
    Dtd,
    #[error("XML uses the unknown entity &{0};")]
    UnknownEntity(String),
    #[error("XML root element must be <xml>")]
    BadRoot,
    #[error("XML nests deeper than {MAX_DEPTH} levels or has more than {MAX_FIELDS} fields")]
    TooComplex,
    #[error("XML field <{0}> is missing")]
    Missing(&'static str),
    #[error("XML field <{0}> has an invalid value")]
    BadValue(&'static str),
}

/// A field's path and value: borrowed from the document where they appear in it as they are.
type Field<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The leaves of one `<xml>` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlFields<'a> {
    fields: Vec<Field<'a>>,
}

impl<'a> XmlFields<'a> {
    pub fn parse(input: &'a str) -> Result<XmlFields<'a>, XmlError> {
        match flat(input) {
            Some(fields) => Ok(XmlFields { fields }),
            None => Self::read(input),
        }
    }

    /// The full reader.
    fn read(input: &str) -> Result<XmlFields<'a>, XmlError> {
        let mut reader = Reader::from_str(input);
        reader.config_mut().trim_text(false);
        // The open elements below the root, joined with `/`, and for each open element
        // (the root included) where its name starts in `path` and how many fields there
        // were when it opened (more at its end: it had children).
        let mut path = String::new();
        let mut open: Vec<(usize, usize)> = Vec::new();
        let mut text = String::new();
        let mut fields = Vec::new();
        let mut saw_root = false;
        let mut root_closed = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| XmlError::Malformed(e.to_string()))?;
            match event {
                Event::DocType(_) => return Err(XmlError::Dtd),
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Start(start) => {
                    if root_closed {
                        return Err(XmlError::Malformed("content after the root".into()));
                    }
                    let name = start.name();
                    let name = name.as_ref();
                    if open.is_empty() {
                        if name != "xml" {
                            return Err(XmlError::BadRoot);
                        }
                        saw_root = true;
                        open.push((0, fields.len()));
                    } else {
                        if !path.is_empty() {
                            path.push('/');
                        }
                        open.push((path.len(), fields.len()));
                        path.push_str(name);
                    }
                    if open.len() > MAX_DEPTH {
                        return Err(XmlError::TooComplex);
                    }
                    text.clear();
                }
                Event::Empty(start) => {
                    if open.is_empty() {
                        return Err(XmlError::BadRoot);
                    }
                    let name = start.name();
                    push_field(&mut fields, &path, name.as_ref(), String::new())?;
                }
                Event::Text(t) => {
                    let content = t.xml10_content();
                    if open.is_empty() && !content.trim().is_empty() {
                        return Err(XmlError::Malformed("text outside the root".into()));
                    }
                    text.push_str(&content);
                }
                Event::CData(c) => text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => {
                    if let Some(ch) = r
                        .resolve_char_ref()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?
                    {
                        text.push(ch);
                    } else {
                        let name = r.xml10_content();
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => text.push_str(s),
                            None => return Err(XmlError::UnknownEntity(name.into_owned())),
                        }
                    }
                }
                Event::End(end) => {
                    let name = end.name();
                    let name = name.as_ref();
                    let Some(&(name_at, fields_at)) = open.last() else {
                        return Err(XmlError::Malformed(format!("unexpected </{name}>")));
                    };
                    let current = if open.len() == 1 {
                        "xml"
                    } else {
                        &path[name_at..]
                    };
                    if current != name {
                        return Err(XmlError::Malformed(format!("unexpected </{name}>")));
                    }
                    open.pop();
                    if open.is_empty() {
                        root_closed = true;
                    } else if !text.trim().is_empty() || fields.len() == fields_at {
                        if fields.len() >= MAX_FIELDS {
                            return Err(XmlError::TooComplex);
                        }
                        fields.push((path.clone().into(), std::mem::take(&mut text).into()));
                    }
                    path.truncate(name_at.saturating_sub(1));
                    text.clear();
                }
                Event::Eof => break,
            }
        }
        if !saw_root || !root_closed {
            return Err(XmlError::Malformed("no complete <xml> root".into()));
        }
        Ok(XmlFields { fields })
    }

    /// The first value at `path` (e.g. `"Content"` or `"Image/MediaId"`).
    pub fn get(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_ref())
    }

    /// Every value at `path`, in document order.
    pub fn all<'s>(&'s self, path: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.fields
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, v)| v.as_ref())
    }

    pub fn require(&self, path: &'static str) -> Result<&str, XmlError> {
        self.get(path).ok_or(XmlError::Missing(path))
    }

    /// A value that may be absent or empty.
    pub fn text(&self, path: &str) -> String {
        self.get(path).unwrap_or_default().to_owned()
    }

    pub fn fields(&self) -> &[Field<'a>] {
        &self.fields
    }
}

/// The fields of a flat document: `<xml>`, then elements whose names are ASCII letters,
/// digits and `_`, each holding CDATA sections and plain text without `&` and `<`, then
/// `</xml>`, with whitespace around the elements. `None` for anything else (the full reader
/// then decides, and gives the error if there is one).
fn flat(input: &str) -> Option<Vec<Field<'_>>> {
    fn skip_space(s: &str) -> &str {
        s.trim_start_matches([' ', '\t', '\n'])
    }
    if input.contains('\r') {
        return None; // line ends are normalised by the full reader
    }
    let mut rest = skip_space(input).strip_prefix("<xml>")?;
    let mut fields = Vec::with_capacity(16);
    loop {
        rest = skip_space(rest);
        if let Some(after) = rest.strip_prefix("</xml>") {
            return skip_space(after).is_empty().then_some(fields);
        }
        if fields.len() == MAX_FIELDS {
            return None; // the full reader refuses it
        }
        let open = rest.strip_prefix('<')?;
        let name_len = open.find('>')?;
        let name = &open[..name_len];
        let mut chars = name.bytes();
        if !chars.next()?.is_ascii_alphabetic()
            || !chars.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        rest = &open[name_len + 1..];
        // Borrowed while the value is one CDATA section or one run of text, as nearly always.
        let mut value = Cow::Borrowed("");
        while !rest.starts_with("</") {
            let part;
            if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
                let end = memchr::memmem::find(cdata.as_bytes(), b"]]>")?;
                part = &cdata[..end];
                rest = &cdata[end + 3..];
            } else {
                // One scan for the run's end and for an entity in it.
                let end = memchr::memchr2(b'<', b'&', rest.as_bytes())?;
                if end == 0 || rest.as_bytes()[end] == b'&' {
                    return None; // an element, a comment, … or an entity
                }
                part = &rest[..end];
                rest = &rest[end..];
            }
            if value.is_empty() {
                value = Cow::Borrowed(part);
            } else {
                value.to_mut().push_str(part);
            }
        }
        rest = rest[2..].strip_prefix(name)?.strip_prefix('>')?;
        fields.push((Cow::Borrowed(name), value));
    }
}

/// Add the field `name` below the open elements `parents` (`/`-joined).
fn push_field(
    fields: &mut Vec<Field<'_>>,
    parents: &str,
    name: &str,
    value: String,
) -> Result<(), XmlError> {
    if fields.len() >= MAX_FIELDS {
        return Err(XmlError::TooComplex);
    }
    let mut p = String::with_capacity(parents.len() + 1 + name.len());
    p.push_str(parents);
    if !p.is_empty() {
        p.push('/');
    }
    p.push_str(name);
    fields.push((p.into(), value.into()));
    Ok(())
}

/// Writes `<xml>` documents with CDATA text, splitting any `]]>` inside values.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            out: String::from("<xml>"),
        }
    }

    /// A text field, always wrapped in CDATA.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.out, "<{name}><![CDATA[");
        self.out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
        let _ = write!(self.out, "]]></{name}>");
        self
    }

    /// A numeric field, written bare.
    pub fn number(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.out, "<{name}>{value}</{name}>");
        self
    }

    /// Open a nested element; close with [`XmlWriter::close`].
    pub fn open(mut self, name: &str) -> Self {
        let _ = write!(self.out, "<{name}>");
        self
    }

    pub fn close(mut self, name: &str) -> Self {
        let _ = write!(self.out, "</{name}>");
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</xml>");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_and_nested_fields() {
        let x = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>1409659813</CreateTime>\
                 <SelectedItems><SelectedItem><QuestionKey><![CDATA[q1]]></QuestionKey>\
                 <OptionIds><OptionId><![CDATA[a]]></OptionId><OptionId><![CDATA[b]]></OptionId></OptionIds>\
                 </SelectedItem></SelectedItems><Empty/></xml>";
        let f = XmlFields::parse(x).expect("parses");
        assert_eq!(f.get("ToUserName"), Some("ww1"));
        assert_eq!(f.get("CreateTime"), Some("1409659813"));
        assert_eq!(f.get("SelectedItems/SelectedItem/QuestionKey"), Some("q1"));
        let opts: Vec<_> = f
            .all("SelectedItems/SelectedItem/OptionIds/OptionId")
            .collect();
        assert_eq!(opts, ["a", "b"]);
        assert_eq!(f.get("Empty"), Some(""));
        assert_eq!(f.get("SelectedItems"), None);
    }

    #[test]
    fn predefined_entities_and_char_refs_resolve() {
        let f = XmlFields::parse("<xml><C>a &lt;b&gt; &amp; &#x4e2d;&#25991;</C></xml>")
            .expect("parses");
        assert_eq!(f.get("C"), Some("a <b> & 中文"));
    }

    #[test]
    fn dtds_and_custom_entities_are_refused() {
        let bomb =
            r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><xml><C>&lol;</C></xml>"#;
        assert_eq!(XmlFields::parse(bomb), Err(XmlError::Dtd));
        assert_eq!(
            XmlFields::parse("<xml><C>&lol;</C></xml>"),
            Err(XmlError::UnknownEntity("lol".into()))
        );
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        for bad in [
            "",
            "<xml>",
            "<xml><a></b></xml>",
            "<root><a>1</a></root>",
            "not xml",
            "<xml></xml><xml></xml>",
            "<xml><a>1</a></xml>trailing<b/>",
        ] {
            assert!(XmlFields::parse(bad).is_err(), "{bad:?}");
        }
        let deep = format!("<xml>{}x{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(XmlFields::parse(&deep), Err(XmlError::TooComplex));
    }

    /// The flat scanner reads what the full reader reads, and leaves the rest to it.
    #[test]
    fn flat_documents_read_as_the_full_reader_reads_them() {
        let writer = XmlWriter::new()
            .text("ToUserName", "ww1")
            .number("AgentID", 1000002)
            .text("Content", "a ]]> b <c> & 中文")
            .text("Empty", "")
            .finish();
        let flat_ones = [
            writer.as_str(),
            "<xml><A>1</A><B><![CDATA[x]]>y<![CDATA[z]]></B></xml>",
            " \n<xml>\n  <A> spaced </A>\n\t<A>again</A>\n</xml>\n",
            "<xml><A></A><B>></B></xml>",
            "<xml><A><![CDATA[a]b]]c]]]></A><B><![CDATA[]]>x</B></xml>",
            "<xml></xml>",
        ];
        for x in flat_ones {
            let fields = flat(x).unwrap_or_else(|| panic!("flat: {x:?}"));
            assert_eq!(Ok(XmlFields { fields }), XmlFields::read(x), "{x:?}");
        }
        let not_flat = [
            "<xml><C>a &lt;b&gt;</C></xml>",
            "<xml><A><B>1</B></A></xml>",
            "<xml><A/></xml>",
            "<xml><A x=\"1\">1</A></xml>",
            "<xml><A>1<!-- c --></A></xml>",
            "<?xml version=\"1.0\"?><xml><A>1</A></xml>",
            "<xml><A>1\r\n2</A></xml>",
            "<xml><A>1</B></xml>",
            "<xml><A>1</A></xml>trailing",
            "<xml><A>1</A>",
            "<xml><A><![CDATA[open</A></xml>",
            "<root><A>1</A></root>",
            "",
        ];
        for x in not_flat {
            assert_eq!(flat(x), None, "{x:?}");
        }
        let many = format!("<xml>{}</xml>", "<A>1</A>".repeat(MAX_FIELDS + 1));
        assert_eq!(flat(&many), None);
        assert_eq!(XmlFields::parse(&many), Err(XmlError::TooComplex));
    }

    #[test]
    fn writer_round_trips_through_reader() {
        let x = XmlWriter::new()
            .text("Content", "a ]]> b <c>")
            .number("CreateTime", 42)
            .finish();
        let f = XmlFields::parse(&x).expect("parses");
        assert_eq!(f.get("Content"), Some("a ]]> b <c>"));
        assert_eq!(f.get("CreateTime"), Some("42"));
    }
}
