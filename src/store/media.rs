//! Content-addressed media files (screenshots) under `<data_dir>/media/ab/abcdef…`.
//!
//! A file is written to a temporary name, fsynced, renamed into place and its directory
//! fsynced, so a ticket that references a hash (committed after [`MediaStore::put`] returns)
//! never points at a missing or partial file. Writing the same bytes twice is a no-op.

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct MediaStore {
    root: std::sync::Arc<std::path::Path>,
}

/// A sha256 hex digest naming a stored file.
pub fn is_valid_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl MediaStore {
    pub fn new(root: PathBuf) -> MediaStore {
        MediaStore { root: root.into() }
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }

    /// Store `bytes` durably; returns their sha256 hex. Blocking: call from a blocking task.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let hash = crate::util::hex_lower(&Sha256::digest(bytes));
        let path = self.path_of(&hash);
        if path.exists() {
            return Ok(hash);
        }
        let dir = path.parent().expect("media path has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{hash}.{}.tmp", crate::util::random_hex(4)));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        crate::util::sync_dir(dir)?;
        Ok(hash)
    }

    /// The bytes stored under `hash`, if any.
    pub fn get(&self, hash: &str) -> std::io::Result<Option<Vec<u8>>> {
        if !is_valid_hash(hash) {
            return Ok(None);
        }
        match std::fs::read(self.path_of(hash)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn contains(&self, hash: &str) -> bool {
        is_valid_hash(hash) && self.path_of(hash).exists()
    }
}

/// The image type of `bytes`, by magic number.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = MediaStore::new(dir.path().join("media"));
        let h1 = m.put(b"screenshot").expect("put");
        let h2 = m.put(b"screenshot").expect("put again");
        assert_eq!(h1, h2);
        assert!(is_valid_hash(&h1));
        assert_eq!(
            m.get(&h1).expect("get").as_deref(),
            Some(&b"screenshot"[..])
        );
        assert!(m.contains(&h1));
        assert_eq!(m.get("../../etc/passwd").expect("refused"), None);
        assert_eq!(m.get(&"0".repeat(64)).expect("absent"), None);
    }
}
