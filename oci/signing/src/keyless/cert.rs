//! Fulcio certificates: the chain (rustls-webpki) to a trusted CA at the signing time,
//! key usage, the embedded SCT against the CT log keys, the identity extensions.

use super::*;

/// The DER certificates of a PEM text, in order (blocks that do not decode are skipped).
pub(crate) fn pem_certs(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find("-----BEGIN CERTIFICATE-----") {
        let after = &rest[b + 27..];
        let Some(e) = after.find("-----END CERTIFICATE-----") else {
            break;
        };
        let body: String = after[..e].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = B64.decode(body) {
            out.push(der);
        }
        rest = &after[e + 25..];
    }
    out
}

pub(crate) fn validity(c: &Certificate) -> (i64, i64) {
    let v = &c.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs() as i64,
        v.not_after.to_unix_duration().as_secs() as i64,
    )
}

/// Checks that `issuer` signed `cert`.
pub(crate) fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let Ok(tbs) = cert.tbs_certificate.to_der() else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    verify_with_cert(issuer, &cert.signature_algorithm.oid.to_string(), &tbs, sig)
}

/// Checks an ECDSA signature (`alg`: ecdsa-with-SHA256/384/512) over `data` with the key
/// of `cert` (P-256 or P-384).
pub(crate) fn verify_with_cert(cert: &Certificate, alg: &str, data: &[u8], sig: &[u8]) -> bool {
    let rsa = match alg {
        "1.2.840.113549.1.1.11" => Some(&ring::signature::RSA_PKCS1_2048_8192_SHA256),
        "1.2.840.113549.1.1.12" => Some(&ring::signature::RSA_PKCS1_2048_8192_SHA384),
        "1.2.840.113549.1.1.13" => Some(&ring::signature::RSA_PKCS1_2048_8192_SHA512),
        _ => None,
    };
    if let Some(params) = rsa {
        // ring takes the RSAPublicKey, the SubjectPublicKeyInfo's bit string.
        let key = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        return ring::signature::UnparsedPublicKey::new(params, key)
            .verify(data, sig)
            .is_ok();
    }
    let prehash: Vec<u8> = match alg {
        OID_ECDSA_SHA256 => Sha256::digest(data).to_vec(),
        OID_ECDSA_SHA384 => Sha384::digest(data).to_vec(),
        OID_ECDSA_SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return false,
    };
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let Ok(spki_der) = spki.to_der() else {
        return false;
    };
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    match curve.as_deref() {
        Some(OID_P256) => {
            let (Ok(k), Ok(s)) = (
                p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der),
                p256::ecdsa::Signature::from_der(sig),
            ) else {
                return false;
            };
            k.verify_prehash(&prehash, &s).is_ok()
        }
        Some(OID_P384) => {
            let (Ok(k), Ok(s)) = (
                p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der),
                p384::ecdsa::Signature::from_der(sig),
            ) else {
                return false;
            };
            k.verify_prehash(&prehash, &s).is_ok()
        }
        _ => false,
    }
}

/// Whether `cert` names `oid` in its extended key usage.
pub(crate) fn has_eku(cert: &Certificate, oid: &str) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_EKU)
        .and_then(|e| {
            x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok()
        })
        .is_some_and(|eku| eku.0.iter().any(|o| o.to_string() == oid))
}

/// Whether `der` is a self-signed CA certificate (a root).
pub(crate) fn is_self_signed_ca(der: &[u8]) -> bool {
    Certificate::from_der(der)
        .is_ok_and(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject && signed_by(&c, &c))
}

/// The public key of a leaf certificate (DER).
pub(crate) fn leaf_key(der: &[u8]) -> Result<crate::keys::PublicKey, VerifyError> {
    let c = Certificate::from_der(der)
        .map_err(|e| VerifyError::Malformed(format!("the certificate does not parse: {e}")))?;
    certificate_key(&c)
}

/// A certificate's identity: SAN URIs and e-mails, its OIDC issuer, and the Fulcio
/// claims it carries.
pub fn leaf_identity(der: &[u8]) -> Result<CertIdentity, VerifyError> {
    let c = Certificate::from_der(der)
        .map_err(|e| VerifyError::Malformed(format!("the certificate does not parse: {e}")))?;
    identity_of(&c)
}

/// The leaf's identity: SAN URIs and e-mails, OIDC issuer, claims; and that it is for
/// code signing.
pub(crate) fn identity_of(leaf: &Certificate) -> Result<CertIdentity, VerifyError> {
    let mut subjects = Vec::new();
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    let mut code_signing = false;
    let mut claims = std::collections::BTreeMap::new();
    for ext in leaf.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        let oid = ext.extn_id.to_string();
        match oid.as_str() {
            OID_SAN => {
                let san = x509_cert::ext::pkix::SubjectAltName::from_der(value).map_err(|e| {
                    VerifyError::Malformed(format!("the certificate's SAN does not parse: {e}"))
                })?;
                for n in san.0 {
                    match n {
                        x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
                            subjects.push(u.to_string())
                        }
                        x509_cert::ext::pkix::name::GeneralName::Rfc822Name(m) => {
                            subjects.push(m.to_string())
                        }
                        _ => {}
                    }
                }
            }
            OID_EKU => {
                let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(value).map_err(|e| {
                    VerifyError::Malformed(format!(
                        "the certificate's extended key usage does not parse: {e}"
                    ))
                })?;
                code_signing = eku.0.iter().any(|o| o.to_string() == OID_CODE_SIGNING);
            }
            OID_ISSUER_V2 => issuer_v2 = utf8_claim(value),
            OID_ISSUER_V1 => issuer_v1 = std::str::from_utf8(value).ok().map(str::to_owned),
            _ => {
                if let Some(c) = crate::keyless::claims::by_oid(&oid) {
                    if let Some(v) = utf8_claim(value) {
                        claims.insert(c.name.to_owned(), v);
                    }
                }
            }
        }
    }
    if !code_signing {
        return Err(VerifyError::Usage(
            "the certificate is not for code signing",
        ));
    }
    let issuer = issuer_v2.or(issuer_v1).ok_or_else(|| {
        VerifyError::Malformed(
            "the certificate names no OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8)".into(),
        )
    })?;
    Ok(CertIdentity {
        subjects,
        issuer,
        claims,
    })
}

/// A Fulcio v2 extension value: a DER UTF8String.
fn utf8_claim(value: &[u8]) -> Option<String> {
    der::asn1::Utf8StringRef::from_der(value)
        .ok()
        .map(|s| s.as_str().to_owned())
}

pub(crate) const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";

pub(crate) const OID_KEY_USAGE: &str = "2.5.29.15";

/// id-kp-codeSigning, DER content octets.
pub(crate) const CODE_SIGNING_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// What Fulcio signs with.
pub(crate) static CHAIN_ALGS: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
];

/// Checks a Fulcio leaf at `time` (the log's integrated time): the chain to a CA of
/// the trust root (rustls-webpki: signatures, validity, basic constraints, critical
/// extensions, code-signing EKU), the CA's `validFor` window, the key usage, an
/// embedded SCT from a trusted CT log, and an identity the policy trusts. Returns the
/// identity, for messages.
pub fn check_certificate(
    leaf_der: &[u8],
    time: i64,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<Vouched, VerifyError> {
    let leaf = Certificate::from_der(leaf_der)
        .map_err(|e| VerifyError::Malformed(format!("the certificate does not parse: {e}")))?;
    let (nb, na) = validity(&leaf);
    if time < nb || time > na {
        return Err(VerifyError::Validity {
            time_source: SIGNED_AT,
        });
    }
    let ee = rustls::pki_types::CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&ee).map_err(chain_error)?;
    let when = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(time)
            .map_err(|_| VerifyError::Malformed("the signing time is before 1970".into()))?,
    ));
    let mut last_error = None;
    let mut issuer_spki = None;
    for ca in &root.cas {
        if time < ca.start || ca.end.is_some_and(|e| time > e) {
            last_error.get_or_insert_with(|| {
                VerifyError::Chain("no Fulcio CA of the trust root was valid at that time".into())
            });
            continue;
        }
        let Some((anchor_der, intermediates)) = ca.chain.split_last() else {
            continue;
        };
        let anchor_der = rustls::pki_types::CertificateDer::from(anchor_der.as_slice());
        let Ok(anchor) = webpki::anchor_from_trusted_cert(&anchor_der) else {
            continue;
        };
        let intermediates: Vec<rustls::pki_types::CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| rustls::pki_types::CertificateDer::from(d.as_slice()))
            .collect();
        // The CA certificates themselves must be valid then too (webpki does not look
        // at the anchor's dates).
        let in_date = ca.chain.iter().all(|d| {
            Certificate::from_der(d).is_ok_and(|c| {
                let (nb, na) = validity(&c);
                nb <= time && time <= na
            })
        });
        if !in_date {
            last_error = Some(VerifyError::Chain(
                "a certificate of the Fulcio CA was not valid at that time".into(),
            ));
            continue;
        }
        match ee.verify_for_usage(
            CHAIN_ALGS,
            &[anchor],
            &intermediates,
            when,
            // Required of the leaf below; CAs without an EKU are fine (private instances).
            webpki::KeyUsage::required_if_present(CODE_SIGNING_DER),
            None,
            None,
        ) {
            Ok(_) => {
                // The leaf's issuer: the first CA certificate that signed it.
                issuer_spki = ca
                    .chain
                    .iter()
                    .filter_map(|d| Certificate::from_der(d).ok())
                    .find(|c| signed_by(&leaf, c))
                    .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok());
                break;
            }
            Err(e) => last_error = Some(chain_error(e)),
        }
    }
    let Some(issuer_spki) = issuer_spki else {
        return Err(last_error.unwrap_or_else(|| VerifyError::Chain(NO_CHAIN.into())));
    };
    if !digital_signature_usage(&leaf) {
        return Err(VerifyError::Usage(
            "the certificate's key usage does not allow digital signatures",
        ));
    }
    verify_sct(&leaf, &issuer_spki, root)?;
    let who = identity_of(&leaf)?;
    let rule = crate::keyless::claims::judge(identities, &who)?.clone();
    Ok(Vouched {
        certificate: who,
        rule,
        signed_at: time,
    })
}

/// When a certificate must have been valid: at the log's integrated time or a signed
/// timestamp.
pub(crate) const SIGNED_AT: &str = "as its log entry or signed timestamp gives it";

const NO_CHAIN: &str = "the certificate does not chain to a Fulcio CA of the trust root";

pub(crate) fn chain_error(e: webpki::Error) -> VerifyError {
    match e {
        webpki::Error::CaUsedAsEndEntity => {
            VerifyError::Usage("the signing certificate is a CA certificate, not a leaf")
        }
        webpki::Error::UnsupportedCriticalExtension => {
            VerifyError::Usage("the certificate has a critical extension wpkg does not understand")
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            VerifyError::Usage("the certificate is not for code signing")
        }
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
            VerifyError::Validity {
                time_source: SIGNED_AT,
            }
        }
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            VerifyError::Chain(NO_CHAIN.into())
        }
        other => VerifyError::Chain(format!("{NO_CHAIN} ({other})")),
    }
}

pub(crate) fn digital_signature_usage(leaf: &Certificate) -> bool {
    leaf.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_KEY_USAGE)
        .and_then(|e| x509_cert::ext::pkix::KeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|ku| ku.digital_signature())
}

/// Checks the leaf's embedded SCTs: at least one, from a CT log of the trust root valid
/// at its timestamp, must sign the precertificate (the leaf without its SCT list,
/// RFC 6962 §3.2) issued by the key `issuer_spki`.
pub(crate) fn verify_sct(
    leaf: &Certificate,
    issuer_spki: &[u8],
    root: &TrustedRoot,
) -> Result<(), VerifyError> {
    let ext = leaf
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_SCT_LIST)
        .ok_or(VerifyError::Sct(
            "the certificate has no signed certificate timestamp (SCT)",
        ))?;
    let list = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|_| VerifyError::Sct("the certificate's SCT list is not an OCTET STRING"))?;
    let mut precert = leaf.tbs_certificate.clone();
    if let Some(exts) = precert.extensions.as_mut() {
        exts.retain(|e| e.extn_id.to_string() != OID_SCT_LIST);
    }
    let tbs = precert
        .to_der()
        .map_err(|e| VerifyError::Malformed(format!("the certificate does not re-encode: {e}")))?;
    let issuer_key_hash = Sha256::digest(issuer_spki);
    let scts = parse_sct_list(list.as_bytes())
        .ok_or(VerifyError::Sct("the certificate's SCT list is malformed"))?;
    let mut why = "no SCT is from a CT log of the trust root";
    for sct in scts {
        let log_hex = hex::encode(sct.log_id);
        let Some(log) = root.ctlogs.iter().find(|l| l.key_id_hex == log_hex) else {
            continue;
        };
        let secs = (sct.timestamp_ms / 1000) as i64;
        if secs < log.start || log.end.is_some_and(|e| secs > e) {
            why = "its SCT is outside the CT log key's validity";
            continue;
        }
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        let len = tbs.len() as u32;
        signed.extend_from_slice(&len.to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(sct.extensions);
        use p256::ecdsa::signature::Verifier;
        let ok = sct.hash_alg == 4
            && sct.sig_alg == 3
            && log.p256().is_some_and(|k| {
                p256::ecdsa::DerSignature::from_bytes(sct.signature)
                    .is_ok_and(|s| k.verify(&signed, &s).is_ok())
            });
        if ok {
            return Ok(());
        }
        why = "its SCT does not verify with the CT log's key";
    }
    Err(VerifyError::Sct(why))
}

pub(crate) struct Sct<'a> {
    pub(crate) log_id: &'a [u8],
    pub(crate) timestamp_ms: u64,
    pub(crate) extensions: &'a [u8],
    pub(crate) hash_alg: u8,
    pub(crate) sig_alg: u8,
    pub(crate) signature: &'a [u8],
}

/// Splits a TLS `SignedCertificateTimestampList` (RFC 6962 §3.3) into v1 SCTs.
pub(crate) fn parse_sct_list(b: &[u8]) -> Option<Vec<Sct<'_>>> {
    pub(crate) fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    pub(crate) fn u16_of(b: &mut &[u8]) -> Option<usize> {
        take(b, 2).map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
    }
    let mut b = b;
    let total = u16_of(&mut b)?;
    let mut list = take(&mut b, total)?;
    if !b.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    while !list.is_empty() {
        let n = u16_of(&mut list)?;
        let mut s = take(&mut list, n)?;
        if take(&mut s, 1)? != [0] {
            continue; // not a v1 SCT
        }
        let log_id = take(&mut s, 32)?;
        let timestamp_ms = u64::from_be_bytes(take(&mut s, 8)?.try_into().ok()?);
        let n = u16_of(&mut s)?;
        let extensions = take(&mut s, n)?;
        let algs = take(&mut s, 2)?;
        let n = u16_of(&mut s)?;
        let signature = take(&mut s, n)?;
        if !s.is_empty() {
            return None;
        }
        out.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash_alg: algs[0],
            sig_alg: algs[1],
            signature,
        });
    }
    Some(out)
}
