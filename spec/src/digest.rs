//! Content digests: `sha256:` and 64 lowercase hex digits, the only algorithm wpkg
//! writes or accepts. Parsing validates once; the hex part, the tag form
//! (`sha256-<hex>`, cosign's and the referrers fallback's) and the display form come
//! from the type instead of string surgery at each use.

use std::fmt;
use std::str::FromStr;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{0}`: expected `sha256:` and 64 lowercase hex digits")]
pub struct DigestError(pub String);

fn is_hex64(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Digest {
    /// The algorithm prefix, with its colon.
    pub const PREFIX: &'static str = "sha256:";

    /// Parses and validates `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        match s.strip_prefix(Self::PREFIX) {
            Some(h) if is_hex64(h) => Ok(Digest(s.to_owned())),
            _ => Err(DigestError(s.to_owned())),
        }
    }

    /// From the 64 hex digits alone (a blob file name, a statement subject).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::parse(&format!("{}{hex}", Self::PREFIX))
    }

    /// From the 32 bytes of a SHA-256 output.
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        let mut s = String::with_capacity(71);
        s.push_str(Self::PREFIX);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }

    /// The first 12 hex digits, as people abbreviate digests.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// The tag form: `sha256-<hex>` (cosign's signature tags, the referrers fallback).
    pub fn tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }

    /// The string, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms_and_refusals() {
        let hex = "ab".repeat(32);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d.hex(), hex);
        assert_eq!(d.tag(), format!("sha256-{hex}"));
        assert_eq!(d.short(), &hex[..12]);
        assert_eq!(Digest::from_hex(&hex).unwrap(), d);
        assert_eq!(Digest::from_sha256([0xab; 32]), d);
        for bad in [
            "",
            "sha256:",
            &format!("sha512:{hex}"),
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", &hex[1..]),
            &format!("sha256:{hex}0"),
            &format!("sha256:../{}", &hex[3..]),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
