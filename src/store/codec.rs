//! Key and value codecs.
//!
//! Keys are order-preserving byte strings: unsigned integers big-endian, signed integers
//! big-endian with the sign bit flipped, strings as UTF-8 (which never contains 0xFF), and
//! tuple parts separated by a 0xFF byte. So `(userid, ticket_id)` keys of one user are
//! contiguous and sorted by ticket id, and a prefix scan over `userid ‖ 0xFF` finds them.
//!
//! Values are `[version byte] ‖ JSON`. A record newer than this binary refuses to decode
//! instead of being misread.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub const SEP: u8 = 0xFF;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("key is truncated or malformed")]
    BadKey,
    #[error("record has version {found}, this binary reads up to {known}")]
    NewerRecord { found: u8, known: u8 },
    #[error("record has no version byte")]
    Empty,
    #[error("record does not decode: {0}")]
    Json(String),
}

/// One part of a key.
pub trait KeyPart: Sized {
    fn write(&self, out: &mut Vec<u8>);
    /// Decode from the start of `bytes`; return the value and the bytes after it.
    fn read(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError>;
}

/// A whole key (every `KeyPart`, including tuples, is one).
pub trait Key: KeyPart {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.write(&mut out);
        out
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let (v, rest) = Self::read(bytes)?;
        if rest.is_empty() {
            Ok(v)
        } else {
            Err(CodecError::BadKey)
        }
    }
}

impl<T: KeyPart> Key for T {}

impl KeyPart for u64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn read(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        if bytes.len() < 8 {
            return Err(CodecError::BadKey);
        }
        let (head, rest) = bytes.split_at(8);
        Ok((u64::from_be_bytes(head.try_into().expect("8 bytes")), rest))
    }
}

impl KeyPart for i64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*self as u64) ^ (1 << 63)).to_be_bytes());
    }
    fn read(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let (u, rest) = u64::read(bytes)?;
        Ok(((u ^ (1 << 63)) as i64, rest))
    }
}

impl KeyPart for String {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn read(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let end = bytes.iter().position(|&b| b == SEP).unwrap_or(bytes.len());
        let s = std::str::from_utf8(&bytes[..end]).map_err(|_| CodecError::BadKey)?;
        Ok((s.to_owned(), &bytes[end..]))
    }
}

fn expect_sep(bytes: &[u8]) -> Result<&[u8], CodecError> {
    match bytes.split_first() {
        Some((&SEP, rest)) => Ok(rest),
        _ => Err(CodecError::BadKey),
    }
}

impl<A: KeyPart, B: KeyPart> KeyPart for (A, B) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        out.push(SEP);
        self.1.write(out);
    }
    fn read(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let (a, rest) = A::read(bytes)?;
        let (b, rest) = B::read(expect_sep(rest)?)?;
        Ok(((a, b), rest))
    }
}

impl<A: KeyPart, B: KeyPart, C: KeyPart> KeyPart for (A, B, C) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        out.push(SEP);
        self.1.write(out);
        out.push(SEP);
        self.2.write(out);
    }
    fn read(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let (a, rest) = A::read(bytes)?;
        let (b, rest) = B::read(expect_sep(rest)?)?;
        let (c, rest) = C::read(expect_sep(rest)?)?;
        Ok(((a, b, c), rest))
    }
}

/// The bytes that every key starting with `part` begins with (`part ‖ 0xFF`).
pub fn prefix_of<P: KeyPart>(part: &P) -> Vec<u8> {
    let mut out = Vec::new();
    part.write(&mut out);
    out.push(SEP);
    out
}

/// A value stored in a tree.
pub trait Record: Serialize + DeserializeOwned {
    /// Bump when the serialized shape changes incompatibly, and teach [`Record::upgrade`]
    /// (or a migration) to read the older versions.
    const VERSION: u8 = 1;

    /// Read a record written with an older `version`.
    fn upgrade(version: u8, json: &[u8]) -> Result<Self, CodecError> {
        let _ = version;
        serde_json::from_slice(json).map_err(|e| CodecError::Json(e.to_string()))
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// Append what [`Record::to_bytes`] returns to `out`.
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(Self::VERSION);
        serde_json::to_writer(out, self).expect("records serialize to JSON");
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let (&version, json) = bytes.split_first().ok_or(CodecError::Empty)?;
        if version > Self::VERSION {
            return Err(CodecError::NewerRecord {
                found: version,
                known: Self::VERSION,
            });
        }
        if version < Self::VERSION {
            return Self::upgrade(version, json);
        }
        serde_json::from_slice(json).map_err(|e| CodecError::Json(e.to_string()))
    }
}

impl Record for i64 {}
impl Record for u64 {}
impl Record for String {}
impl Record for () {}
impl Record for serde_json::Value {}
impl Record for Vec<String> {}
impl Record for Vec<u64> {}
impl Record for f32 {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_sort() {
        let xs = [0u64, 1, 255, 256, u64::MAX - 1, u64::MAX];
        for w in xs.windows(2) {
            assert!(w[0].encode() < w[1].encode());
            assert_eq!(u64::decode(&w[0].encode()), Ok(w[0]));
        }
        let ys = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ys.windows(2) {
            assert!(w[0].encode() < w[1].encode(), "{} < {}", w[0], w[1]);
            assert_eq!(i64::decode(&w[1].encode()), Ok(w[1]));
        }
    }

    #[test]
    fn tuples_round_trip_and_group_by_prefix() {
        let a = ("zhangsan".to_owned(), 2u64);
        let b = ("zhangsan".to_owned(), 10u64);
        let c = ("zhangsan2".to_owned(), 1u64);
        assert!(a.encode() < b.encode());
        // Keys of one user are contiguous: another user's key never falls between them.
        assert!(!(a.encode() < c.encode() && c.encode() < b.encode()));
        assert_eq!(<(String, u64)>::decode(&b.encode()), Ok(b.clone()));
        let p = prefix_of(&"zhangsan".to_owned());
        assert!(a.encode().starts_with(&p) && b.encode().starts_with(&p));
        assert!(!c.encode().starts_with(&p));
        let t = (3u64, "客服".to_owned(), -4i64);
        assert_eq!(<(u64, String, i64)>::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert_eq!(u64::decode(&[1, 2, 3]), Err(CodecError::BadKey));
        assert_eq!(u64::decode(&[0; 9]), Err(CodecError::BadKey));
        assert_eq!(<(u64, u64)>::decode(&[0; 16]), Err(CodecError::BadKey));
        assert_eq!(String::decode(&[0xC3]), Err(CodecError::BadKey));
    }

    #[test]
    fn records_carry_a_version() {
        let bytes = "值".to_owned().to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(String::from_bytes(&bytes), Ok("值".to_owned()));
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert_eq!(
            String::from_bytes(&newer),
            Err(CodecError::NewerRecord { found: 9, known: 1 })
        );
        assert_eq!(String::from_bytes(&[]), Err(CodecError::Empty));
        assert!(matches!(
            u64::from_bytes(&[1, b'x']),
            Err(CodecError::Json(_))
        ));
    }
}
