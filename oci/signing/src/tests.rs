use wpkg_store::associated::*;

use crate::bundle::*;
use crate::classic::*;
use crate::keys::*;
use wpkg_spec::media::ImageManifest;

#[test]
fn key_round_trip_and_wrong_password() {
    let k = PrivateKey::generate();
    let pem = k.to_encrypted_pem(b"pw").unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    let back = PrivateKey::from_encrypted_pem(&pem, b"pw").unwrap();
    assert_eq!(back.public(), k.public());
    assert!(matches!(
        PrivateKey::from_encrypted_pem(&pem, b"nope"),
        Err(SignatureError::BadPassword)
    ));
    let pubpem = k.public().to_pem();
    assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(PublicKey::from_pem(&pubpem).unwrap(), k.public());
    assert!(PublicKey::from_pem(&pem).is_err());
    assert!(PrivateKey::from_encrypted_pem(&pubpem, b"pw").is_err());
    assert!(format!("{k:?}").contains("***"));
    assert!(PublicKey::from_pem("-----BEGIN X-----END X-----").is_err());
}

#[test]
fn a_key_made_by_cosign_opens_and_signs() {
    let pem = include_str!("../testdata/cosign_generated_encrypted_empty_private.key");
    let k = PrivateKey::from_encrypted_pem(pem, b"").unwrap();
    assert!(matches!(
        PrivateKey::from_encrypted_pem(pem, b"x"),
        Err(SignatureError::BadPassword)
    ));
    let sig = k.sign(b"payload");
    assert!(k.public().verify(b"payload", &sig));
    assert!(!k.public().verify(b"payload2", &sig));
}

#[test]
fn payload_is_cosigns_bytes() {
    let p = simple_signing_payload("ghcr.io/acme/hello", &format!("sha256:{}", "a".repeat(64)));
    assert_eq!(
        String::from_utf8(p).unwrap(),
        format!("{{\"critical\":{{\"identity\":{{\"docker-reference\":\"ghcr.io/acme/hello\"}},\"image\":{{\"docker-manifest-digest\":\"sha256:{}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}", "a".repeat(64))
    );
    assert_eq!(
        signature_tag(&format!("sha256:{}", "b".repeat(64))),
        format!("sha256-{}.sig", "b".repeat(64))
    );
    assert!(is_signature_tag(&format!("sha256-{}.sig", "b".repeat(64))));
    assert!(is_signature_tag(&format!("sha256-{}", "b".repeat(64))));
    assert!(!is_signature_tag("1.0"));
}

#[test]
fn classic_and_bundle_verify_only_for_their_digest_and_key() {
    let k = PrivateKey::generate();
    let other = PrivateKey::generate();
    let d1 = format!("sha256:{}", "1".repeat(64));
    let d2 = format!("sha256:{}", "2".repeat(64));
    let payload = simple_signing_payload("r/x", &d1);
    let sig = ClassicSignature {
        signature: k.sign(&payload),
        payload,
        certificate: None,
        rekor_bundle: None,
    };
    assert!(verify_classic(&sig, &d1, &[k.public()]).is_ok());
    use crate::VerifyError as E;
    assert_eq!(verify_classic(&sig, &d1, &[other.public()]), Err(E::Key));
    assert_eq!(verify_classic(&sig, &d1, &[]), Err(E::NoKeys));
    let e = verify_classic(&sig, &d2, &[k.public()]).unwrap_err();
    assert!(matches!(e, crate::VerifyError::Subject { .. }), "{e}");
    let mut tampered = sig.clone();
    tampered.signature[10] ^= 1;
    assert_eq!(verify_classic(&tampered, &d1, &[k.public()]), Err(E::Key));

    let b = make_bundle(&k, &d1.parse().unwrap());
    assert!(verify_bundle(&b, &d1, &[k.public()]).is_ok());
    assert!(matches!(
        verify_bundle(&b, &d2, &[k.public()]),
        Err(E::Subject { .. })
    ));
    assert_eq!(verify_bundle(&b, &d1, &[other.public()]), Err(E::Key));
}

#[test]
fn sig_manifest_appends_and_dedupes() {
    let k = PrivateKey::generate();
    let p = simple_signing_payload("r/x", &format!("sha256:{}", "1".repeat(64)));
    let s = k.sign(&p);
    let (m1, blobs) = add_classic_signature(None, &p, &s);
    assert_eq!(blobs.len(), 2);
    let m1: ImageManifest = serde_json::from_slice(&m1).unwrap();
    assert_eq!(m1.layers.len(), 1);
    assert_eq!(m1.layers[0].media_type, SIMPLE_SIGNING);
    let (m2, _) = add_classic_signature(Some((&m1, vec![])), &p, &s);
    let m2: ImageManifest = serde_json::from_slice(&m2).unwrap();
    assert_eq!(m2.layers.len(), 1);
    let s2 = PrivateKey::generate().sign(&p);
    let (m3, _) = add_classic_signature(Some((&m2, vec![])), &p, &s2);
    let m3: ImageManifest = serde_json::from_slice(&m3).unwrap();
    assert_eq!(m3.layers.len(), 2);
}
