//! An RFC 3161 timestamp authority for the loopback Sigstore instance: a P-384 root, a
//! P-256 leaf with the (critical) timeStamping EKU, and a responder that answers a DER
//! `TimeStampReq` with a granted `TimeStampResp` (CMS SignedData over a TSTInfo that
//! echoes the request's message imprint and nonce), DER written by hand here.

use p256::ecdsa::signature::Signer;
use rcgen::{CertificateParams, CustomExtension, KeyUsagePurpose};
use sha2::{Digest, Sha256};

/// The authority's certificates and signing key.
pub struct Tsa {
    /// The leaf (the CMS signer), DER.
    pub leaf_der: Vec<u8>,
    /// The self-signed root, DER.
    pub root_der: Vec<u8>,
    key: p256::ecdsa::SigningKey,
    /// Issuer name (DER) and serial (DER INTEGER content) of the leaf.
    issuer_and_serial: Vec<u8>,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn int(n: u64) -> Vec<u8> {
    let mut b: Vec<u8> = n
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|x| *x == 0)
        .collect();
    if b.first().is_none_or(|x| x & 0x80 != 0) {
        b.insert(0, 0);
    }
    tlv(0x02, &b)
}

/// An OID from its arcs.
fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut out = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut stack = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            stack.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        stack.reverse();
        out.extend(stack);
    }
    tlv(0x06, &out)
}

const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
const TST_INFO: &[u64] = &[1, 2, 840, 113549, 1, 9, 16, 1, 4];
const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113549, 1, 9, 3];
const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 4];
const ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const POLICY: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 2];

/// Splits DER into its top-level TLVs (whole encodings).
fn tlvs(mut b: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let len_byte = *b.get(1)?;
        let (hdr, len) = match len_byte {
            n if n < 0x80 => (2, n as usize),
            0x81 => (3, *b.get(2)? as usize),
            0x82 => (4, (*b.get(2)? as usize) << 8 | *b.get(3)? as usize),
            _ => return None,
        };
        let end = hdr + len;
        out.push(b.get(..end)?);
        b = &b[end..];
    }
    Some(out)
}

fn content(tlv: &[u8]) -> &[u8] {
    match tlv[1] {
        n if n < 0x80 => &tlv[2..],
        0x81 => &tlv[3..],
        _ => &tlv[4..],
    }
}

impl Tsa {
    /// A new authority under the root CA `root` (its certificate `root_der`).
    pub(crate) fn new(
        root: &rcgen::CertificateParams,
        root_key: &rcgen::KeyPair,
        root_der: &[u8],
    ) -> Tsa {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let spki = {
            use p256::pkcs8::EncodePublicKey;
            key.verifying_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec()
        };
        let public = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serial_number = Some(vec![0x01, 0x23, 0x45].into());
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wpkg-test tsa");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // extendedKeyUsage = timeStamping, critical (RFC 3161 §2.3).
        let mut eku = CustomExtension::from_oid_content(
            &[2, 5, 29, 37],
            seq(&[oid(&[1, 3, 6, 1, 5, 5, 7, 3, 8])]),
        );
        eku.set_criticality(true);
        params.custom_extensions = vec![eku];
        let t = time::OffsetDateTime::now_utc();
        params.not_before = (t - time::Duration::days(1)).replace_nanosecond(0).unwrap();
        params.not_after = (t + time::Duration::days(30))
            .replace_nanosecond(0)
            .unwrap();
        let issuer = rcgen::Issuer::from_params(root, root_key);
        let leaf_der = params.signed_by(&public, &issuer).unwrap().der().to_vec();
        let issuer_and_serial = {
            use x509_parser::prelude::FromDer;
            let (_, c) = x509_parser::certificate::X509Certificate::from_der(&leaf_der).unwrap();
            seq(&[
                c.tbs_certificate.issuer.as_raw().to_vec(),
                tlv(0x02, c.raw_serial()),
            ])
        };
        Tsa {
            leaf_der,
            root_der: root_der.to_vec(),
            key,
            issuer_and_serial,
        }
    }

    /// Answers a DER `TimeStampReq`; `Err` says what is wrong with it.
    pub fn respond(&self, req: &[u8]) -> Result<Vec<u8>, &'static str> {
        let outer = tlvs(req)
            .filter(|t| t.len() == 1)
            .ok_or("not one DER value")?;
        let fields = tlvs(content(outer[0])).ok_or("not a SEQUENCE")?;
        let imprint = fields.get(1).ok_or("no message imprint")?.to_vec();
        let nonce = fields
            .iter()
            .skip(2)
            .find(|f| f[0] == 0x02)
            .map(|f| f.to_vec());
        let cert_req = fields
            .iter()
            .skip(2)
            .any(|f| f[0] == 0x01 && content(f).first() == Some(&0xff));
        let now = time::OffsetDateTime::now_utc();
        let gen_time = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let mut tst = vec![
            int(1),
            oid(POLICY),
            imprint,
            int(rand_u32()),
            tlv(0x18, gen_time.as_bytes()),
        ];
        if let Some(n) = nonce {
            tst.push(n);
        }
        let tst = seq(&tst);
        let mut attrs = [
            seq(&[oid(CONTENT_TYPE), tlv(0x31, &oid(TST_INFO))]),
            seq(&[
                oid(MESSAGE_DIGEST),
                tlv(0x31, &tlv(0x04, &Sha256::digest(&tst))),
            ]),
        ];
        attrs.sort();
        let attrs = attrs.concat();
        let sig: p256::ecdsa::DerSignature = self.key.sign(&tlv(0x31, &attrs));
        let signer = seq(&[
            int(1),
            self.issuer_and_serial.clone(),
            seq(&[oid(SHA256)]),
            tlv(0xa0, &attrs),
            seq(&[oid(ECDSA_SHA256)]),
            tlv(0x04, sig.as_bytes()),
        ]);
        let mut sd = vec![
            int(3),
            tlv(0x31, &seq(&[oid(SHA256)])),
            seq(&[oid(TST_INFO), tlv(0xa0, &tlv(0x04, &tst))]),
        ];
        if cert_req {
            sd.push(tlv(0xa0, &self.leaf_der));
        }
        sd.push(tlv(0x31, &signer));
        let content_info = seq(&[oid(SIGNED_DATA), tlv(0xa0, &seq(&sd))]);
        Ok(seq(&[seq(&[int(0)]), content_info]))
    }
}

fn rand_u32() -> u64 {
    let mut b = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u32::from_be_bytes(b) as u64
}
