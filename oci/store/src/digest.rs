//! Digests: computing them, checking names, and a reader that checks content as it
//! streams.

use std::io::Read;

use sha2::{Digest as _, Sha256};
use wpkg_spec::Digest;

use crate::Error;

/// Returns `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    Digest::from_sha256(Sha256::digest(bytes).into()).into_string()
}

/// The hex part of a valid digest, or an error naming it.
pub(crate) fn digest_hex(digest: &str) -> Result<String, Error> {
    Digest::parse(digest)
        .map(|d| d.hex().to_owned())
        .map_err(|_| Error::InvalidDigest(digest.to_owned()))
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
            let actual = Digest::from_sha256(self.hasher.clone().finalize().into());
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
