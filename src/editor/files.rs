//! Writing the files the editors change: atomically (a temp file beside the target,
//! fsynced, renamed over it, the folder fsynced), and their versions (a hash of the bytes).

use std::io::Write;
use std::path::Path;

/// The version of a file's bytes: the first 16 hex digits of their SHA-256.
pub fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::util::hex_lower(&sha2::Sha256::digest(bytes)[..8])
}

pub(super) use crate::util::sync_dir;

/// Replace `path` with `bytes` atomically: readers see the old file or the new one.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::util::random_hex(4)));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.md");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(version_of(b"two").len(), 16);
        assert_ne!(version_of(b"one"), version_of(b"two"));
    }
}
