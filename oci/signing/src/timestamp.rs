//! RFC 3161 signed timestamps, as sigstore bundles carry them
//! (`timestampVerificationData.rfc3161Timestamps[].signedTimestamp`: a DER
//! `TimeStampResp`), checked offline against the timestamp authorities of a trust root:
//!
//! 1. the response is granted and holds a CMS SignedData whose content is a TSTInfo;
//! 2. one signer; its signed attributes say content type TSTInfo and carry the digest
//!    of the TSTInfo; the signature over those attributes verifies with the leaf of a
//!    timestamp authority of the trust root (certificates embedded in the response are
//!    never trusted), whose chain holds and is valid at the timestamp's time, and whose
//!    `validFor` window (ends inclusive) contains it;
//! 3. the TSTInfo's message imprint is the digest of the bundle's signature bytes.
//!
//! Returns the times (Unix seconds) the timestamps vouch for.

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;

use crate::error::VerifyError;
use crate::keyless::TrustedRoot;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TSTINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_KP_TIMESTAMPING: &str = "1.3.6.1.5.5.7.3.8";

fn bad(why: impl Into<String>) -> VerifyError {
    VerifyError::Timestamp(format!("its signed timestamp {}", why.into()))
}

fn hash(alg: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, VerifyError> {
    Ok(match *alg {
        ID_SHA256 => Sha256::digest(data).to_vec(),
        ID_SHA384 => Sha384::digest(data).to_vec(),
        ID_SHA512 => Sha512::digest(data).to_vec(),
        other => return Err(bad(format!("uses a hash wpkg does not accept ({other})"))),
    })
}

/// Verifies each timestamp over `signature`; returns their times.
pub(crate) fn verify_all(
    stamps: &[Vec<u8>],
    signature: &[u8],
    root: &TrustedRoot,
) -> Result<Vec<i64>, VerifyError> {
    stamps.iter().map(|s| verify(s, signature, root)).collect()
}

/// The fields of a TSTInfo wpkg reads: the message imprint and the time.
struct TstInfo {
    imprint_alg: ObjectIdentifier,
    imprint: Vec<u8>,
    time: i64,
}

fn tst_info(der_bytes: &[u8]) -> Result<TstInfo, VerifyError> {
    let fields: Vec<Any> =
        Vec::<Any>::from_der(der_bytes).map_err(|e| bad(format!("has no TSTInfo ({e})")))?;
    let [_version, _policy, imprint, _serial, time, ..] = fields.as_slice() else {
        return Err(bad("has a TSTInfo with too few fields"));
    };
    let imprint: Vec<Any> = imprint
        .decode_as()
        .map_err(|e| bad(format!("has a malformed message imprint ({e})")))?;
    let [alg, digest] = imprint.as_slice() else {
        return Err(bad("has a malformed message imprint"));
    };
    let alg: x509_cert::spki::AlgorithmIdentifierOwned = alg
        .decode_as()
        .map_err(|e| bad(format!("has a malformed imprint algorithm ({e})")))?;
    let digest: OctetString = digest
        .decode_as()
        .map_err(|e| bad(format!("has a malformed imprint ({e})")))?;
    if time.tag() != der::Tag::GeneralizedTime {
        return Err(bad("has a time that is not a GeneralizedTime"));
    }
    Ok(TstInfo {
        imprint_alg: alg.oid,
        imprint: digest.as_bytes().to_vec(),
        time: generalized_time(time.value()).ok_or_else(|| bad("has a malformed time"))?,
    })
}

/// `YYYYMMDDHHMMSS[.fff]Z` (timestamp authorities write fractions, which DER's strict
/// GeneralizedTime does not take) as Unix seconds; the fraction is dropped.
fn generalized_time(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    if whole.len() != 14
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<u16>().ok();
    let month = time::Month::try_from(n(4..6)? as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0..4)? as i32, month, n(6..8)? as u8).ok()?;
    let t = time::Time::from_hms(n(8..10)? as u8, n(10..12)? as u8, n(12..14)? as u8).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

fn verify(resp: &[u8], signature: &[u8], root: &TrustedRoot) -> Result<i64, VerifyError> {
    // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    let parts: Vec<Any> =
        Vec::<Any>::from_der(resp).map_err(|e| bad(format!("is not DER ({e})")))?;
    let [status, token] = parts.as_slice() else {
        return Err(bad("holds no timestamp token"));
    };
    let status: Vec<Any> = status
        .decode_as()
        .map_err(|e| bad(format!("has a malformed status ({e})")))?;
    let granted = status
        .first()
        .and_then(|s| s.decode_as::<u8>().ok())
        .is_some_and(|s| s <= 1);
    if !granted {
        return Err(bad("was not granted"));
    }
    let ci: ContentInfo = token
        .decode_as()
        .map_err(|e| bad(format!("holds no CMS content ({e})")))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(bad("is not CMS SignedData"));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| bad(format!("holds malformed SignedData ({e})")))?;
    if sd.encap_content_info.econtent_type != ID_CT_TSTINFO {
        return Err(bad("does not sign a TSTInfo"));
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .and_then(|a| a.decode_as::<OctetString>().ok())
        .ok_or_else(|| bad("has no TSTInfo content"))?;
    let tst_der = tst_der.as_bytes();
    let tst = tst_info(tst_der)?;
    // The imprint is of the bundle's signature.
    if hash(&tst.imprint_alg, signature)? != tst.imprint {
        return Err(bad("is for another signature (message imprint mismatch)"));
    }
    let [signer] = sd.signer_infos.0.as_slice() else {
        return Err(bad("does not have exactly one signer"));
    };
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("has no signed attributes"))?;
    let attr = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    let content_type = attr(ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| bad("has no content-type attribute"))?;
    if content_type != ID_CT_TSTINFO {
        return Err(bad("has a content-type attribute other than TSTInfo"));
    }
    let md = attr(ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| bad("has no message-digest attribute"))?;
    if hash(&signer.digest_alg.oid, tst_der)? != md.as_bytes() {
        return Err(bad("signs another TSTInfo (message digest mismatch)"));
    }
    let signed = attrs
        .to_der()
        .map_err(|e| bad(format!("attributes do not re-encode ({e})")))?;
    let sig = signer.signature.as_bytes();
    let sig_alg = signer.signature_algorithm.oid.to_string();
    let mut why = "is from a timestamp authority the trust root does not list";
    for tsa in &root.tsas {
        let Some(leaf_der) = tsa.chain.first() else {
            continue;
        };
        let Ok(leaf) = Certificate::from_der(leaf_der) else {
            continue;
        };
        if !crate::keyless::verify_with_cert(&leaf, &sig_alg, &signed, sig) {
            continue;
        }
        // This authority signed it: now its window, chain and usage must hold then.
        if tst.time < tsa.start || tsa.end.is_some_and(|e| tst.time > e) {
            why = "is outside its timestamp authority's validity in the trust root";
            continue;
        }
        let chain: Vec<Certificate> = tsa
            .chain
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .collect();
        let in_date = chain.iter().all(|c| {
            let (nb, na) = crate::keyless::validity(c);
            nb <= tst.time && tst.time <= na
        });
        if !in_date {
            why = "was made when its timestamp authority's certificate was not valid";
            continue;
        }
        let linked = chain
            .windows(2)
            .all(|w| crate::keyless::signed_by(&w[0], &w[1]));
        if !linked {
            why = "is from a timestamp authority whose chain does not hold";
            continue;
        }
        if !crate::keyless::has_eku(&leaf, ID_KP_TIMESTAMPING) {
            why = "is signed by a certificate not for timestamping";
            continue;
        }
        return Ok(tst.time);
    }
    Err(bad(why))
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend_from_slice(&bytes);
    }
    v.extend_from_slice(content);
    v
}

/// A DER `TimeStampReq` (RFC 3161 §2.4.1) for `signature`: version 1, the SHA-256
/// message imprint, `nonce`, and a request for the authority's certificate.
pub fn request(signature: &[u8], nonce: u64) -> Vec<u8> {
    let sha256 = ID_SHA256.to_der().expect("an OID encodes");
    let imprint = der_tlv(
        0x30,
        &[
            der_tlv(0x30, &sha256),
            der_tlv(0x04, &Sha256::digest(signature)),
        ]
        .concat(),
    );
    let mut nonce_bytes: Vec<u8> = nonce
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if nonce_bytes.first().is_none_or(|b| b & 0x80 != 0) {
        nonce_bytes.insert(0, 0);
    }
    der_tlv(
        0x30,
        &[
            der_tlv(0x02, &[1]),
            imprint,
            der_tlv(0x02, &nonce_bytes),
            der_tlv(0x01, &[0xff]),
        ]
        .concat(),
    )
}
