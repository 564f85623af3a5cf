//! Digests: computing them, checking names, and a reader that checks content as it
//! streams.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::Error;

/// Returns `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a valid digest, or an error naming it.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, Error> {
    if wpkg_spec::reference::is_valid_digest(digest) {
        Ok(&digest[7..])
    } else {
        Err(Error::InvalidDigest(digest.to_owned()))
    }
}

/// A reader that hashes what passes through it and fails at end of input when the
/// content does not match the expected digest and size.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    size: u64,
    read: u64,
}

impl<R> VerifyingReader<R> {
    /// Wraps `inner`, which should yield `size` bytes hashing to `digest`.
    pub fn new(inner: R, digest: &str, size: u64) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected: digest.to_owned(),
            size,
            read: 0,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(std::io::Error::other(format!(
                "blob {} is longer than its {} bytes",
                self.expected, self.size
            )));
        }
        if n == 0 && !buf.is_empty() {
            let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
            if self.read != self.size || actual != self.expected {
                return Err(std::io::Error::other(format!(
                    "blob {} in the local store is corrupt ({} bytes hashing to {actual}); remove the image and build or pull it again",
                    self.expected, self.read
                )));
            }
        } else {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}
