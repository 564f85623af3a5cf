//! Every keyless crypto check, at the library level: a good bundle or certificate from
//! the loopback Sigstore instance verifies (the control), and each tampering or bad
//! leaf is refused by exactly the check that should catch it.

use serde_json::{json, Value};
use wpkg_signing::keyless::Vouched;
use wpkg_signing::transparency::ProofError;
use wpkg_signing::VerifyError as E;
use wpkg_tests::sigstore_services::TestSigstore;

use crate::keyless::B64;

/// A good keyless bundle for `digest`, made by wpkg's signer against `ts`.
fn good_bundle(ts: &TestSigstore, digest: &str) -> Value {
    let token =
        wpkg_signing::keyless_sign::IdentityToken::parse(&ts.mint_token(json!({}))).unwrap();
    let instance = wpkg_signing::keyless_sign::Instance {
        fulcio: ts.fulcio_url.clone(),
        rekor: ts.rekor_url.clone(),
        rekor_version: 1,
        tsa: None,
        root: root_of(ts, |_| {}),
    };
    let signed = wpkg_signing::keyless_sign::sign(&instance, &token, "r/x", digest, &[]).unwrap();
    serde_json::from_slice(&signed.bundle).unwrap()
}

/// The test instance's trust root, edited by `edit`.
fn root_of(ts: &TestSigstore, edit: impl FnOnce(&mut Value)) -> wpkg_signing::keyless::TrustedRoot {
    let mut v: Value = serde_json::from_slice(&std::fs::read(&ts.trusted_root).unwrap()).unwrap();
    edit(&mut v);
    wpkg_signing::keyless::TrustedRoot::from_json(v.to_string().as_bytes()).unwrap()
}

fn identity(ts: &TestSigstore) -> Vec<wpkg_signing::keyless::Identity> {
    vec![wpkg_signing::keyless::Identity {
        issuer: ts.issuer.clone(),
        subject: Some(ts.identity.clone()),
        ..Default::default()
    }]
}

fn check(
    ts: &TestSigstore,
    bundle: &Value,
    digest: &str,
    root: &wpkg_signing::keyless::TrustedRoot,
) -> Result<Vouched, E> {
    wpkg_signing::bundle::verify_keyless_bundle(
        bundle.to_string().as_bytes(),
        digest,
        &identity(ts),
        root,
    )
}

fn flip_b64(v: &mut Value, byte: usize) {
    let mut b = base64::Engine::decode(&B64, v.as_str().unwrap()).unwrap();
    let i = byte.min(b.len() - 1);
    b[i] ^= 1;
    *v = Value::from(base64::Engine::encode(&B64, b));
}

/// Refused by exactly the check `check` names (see `VerifyError::check`).
fn expect_refused(r: Result<Vouched, E>, check: &str) {
    match r {
        Ok(who) => panic!("accepted (as {who}), expected a refusal by the {check} check"),
        Err(e) => assert_eq!(e.check(), check, "refused by another check: `{e}` ({e:?})"),
    }
}

#[test]
fn every_bundle_check_refuses_its_own_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestSigstore::start(dir.path());
    let digest = format!("sha256:{}", "ab".repeat(32));
    let good = good_bundle(&ts, &digest);
    let root = root_of(&ts, |_| {});
    // Control: untouched, it verifies.
    check(&ts, &good, &digest, &root).unwrap();

    let tampered = |edit: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        edit(&mut b);
        check(&ts, &b, &digest, &root)
    };
    let entry = "/verificationMaterial/tlogEntries/0";
    assert_eq!(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/inclusionPromise/signedEntryTimestamp"))
                    .unwrap(),
                20,
            )
        })
        .unwrap_err(),
        E::Set(ProofError::BadSet)
    );
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/inclusionProof/hashes/0"))
                    .unwrap(),
                3,
            )
        }),
        "inclusion_proof",
    );
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/inclusionProof/rootHash"))
                    .unwrap(),
                3,
            )
        }),
        "inclusion_proof",
    );
    expect_refused(
        tampered(&|b| {
            let cp = b
                .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
                .unwrap();
            let text = cp.as_str().unwrap();
            // Flip one bit of the signature (after the key hint) in the signature line.
            let (head, sig_line) = text.split_once("\n\n").unwrap();
            let (name, sig) = sig_line.trim_end().rsplit_once(' ').unwrap();
            let mut bytes = base64::Engine::decode(&B64, sig).unwrap();
            let last = bytes.len() - 3;
            bytes[last] ^= 1;
            *cp = Value::from(format!(
                "{head}\n\n{name} {}\n",
                base64::Engine::encode(&B64, bytes)
            ));
        }),
        "checkpoint",
    );
    expect_refused(
        tampered(&|b| {
            let cp = b
                .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
                .unwrap();
            let mut lines: Vec<String> = cp
                .as_str()
                .unwrap()
                .split('\n')
                .map(str::to_owned)
                .collect();
            let size: u64 = lines[1].parse().unwrap();
            lines[1] = (size + 1).to_string();
            *cp = Value::from(lines.join("\n"));
        }),
        "checkpoint",
    );
    expect_refused(
        tampered(&|b| flip_b64(b.pointer_mut("/dsseEnvelope/signatures/0/sig").unwrap(), 12)),
        "body_binding",
    );
    expect_refused(
        tampered(&|b| flip_b64(b.pointer_mut("/dsseEnvelope/payload").unwrap(), 40)),
        "body_binding",
    );
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/canonicalizedBody"))
                    .unwrap(),
                30,
            )
        }),
        "set",
    );
    // A statement for another digest.
    let other = format!("sha256:{}", "cd".repeat(32));
    expect_refused(check(&ts, &good, &other, &root), "subject");
    // The log key's validity ends before the entry: SET outside its log key's validity.
    let old_log = root_of(&ts, |v| {
        v["tlogs"][0]["publicKey"]["validFor"] =
            json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    });
    expect_refused(check(&ts, &good, &digest, &old_log), "tlog");
    // The CA's validFor ends before the entry.
    let old_ca = root_of(&ts, |v| {
        v["certificateAuthorities"][0]["validFor"] =
            json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    });
    expect_refused(check(&ts, &good, &digest, &old_ca), "chain");
    // The CT log unknown to the root: the SCT cannot be checked.
    let no_ct = root_of(&ts, |v| v["ctlogs"] = json!([]));
    expect_refused(check(&ts, &good, &digest, &no_ct), "sct");
}

/// Certificates Fulcio must never issue, each logged properly in Rekor (so the
/// certificate check is what refuses), in a bundle and in the classic form.
#[test]
fn every_certificate_check_refuses_its_own_bad_leaf() {
    use wpkg_tests::sigstore_services::LeafOptions;
    let dir = tempfile::tempdir().unwrap();
    let ts = TestSigstore::start(dir.path());
    let digest = format!("sha256:{}", "ef".repeat(32));
    let root = root_of(&ts, |_| {});
    let cases: Vec<(LeafOptions, &str)> = vec![
        (LeafOptions::default(), ""),
        (
            LeafOptions {
                other_ca: true,
                ..Default::default()
            },
            "chain",
        ),
        (
            LeafOptions {
                expired: true,
                ..Default::default()
            },
            "validity",
        ),
        (
            LeafOptions {
                no_code_signing: true,
                ..Default::default()
            },
            "usage",
        ),
        (
            LeafOptions {
                is_ca: true,
                ..Default::default()
            },
            "usage",
        ),
        (
            LeafOptions {
                unknown_critical: true,
                ..Default::default()
            },
            "usage",
        ),
        (
            LeafOptions {
                no_sct: true,
                ..Default::default()
            },
            "sct",
        ),
    ];
    for (opts, why) in cases {
        let leaf = ts.issue_leaf(&opts);
        // The bundle form: a DSSE statement signed with the leaf, logged as a dsse entry.
        let payload = wpkg_signing::keyless_sign::statement("r/x", &digest.parse().unwrap());
        let sig = leaf.sign(&wpkg_signing::bundle::dsse_pae(
            wpkg_signing::keyless_sign::IN_TOTO,
            &payload,
        ));
        let answer = ts.log_dsse(&payload, &sig, &leaf.der);
        let (bundle, _) =
            wpkg_signing::keyless_sign::assemble_bundle(&leaf.der, &payload, &sig, &answer)
                .unwrap();
        let r =
            wpkg_signing::bundle::verify_keyless_bundle(&bundle, &digest, &identity(&ts), &root);
        if why.is_empty() {
            r.unwrap();
            // With a good leaf, the DSSE check itself: a log that recorded a flipped
            // signature, or the hash of another payload, still does not make them verify.
            let mut bad_sig = sig.clone();
            let n = bad_sig.len() - 2;
            bad_sig[n] ^= 1;
            let answer = ts.log_dsse(&payload, &bad_sig, &leaf.der);
            let (b, _) =
                wpkg_signing::keyless_sign::assemble_bundle(&leaf.der, &payload, &bad_sig, &answer)
                    .unwrap();
            expect_refused(
                wpkg_signing::bundle::verify_keyless_bundle(&b, &digest, &identity(&ts), &root),
                "dsse_signature",
            );
            let mut bad_payload = payload.clone();
            bad_payload[5] ^= 1;
            let answer = ts.log_dsse(&bad_payload, &sig, &leaf.der);
            let (b, _) =
                wpkg_signing::keyless_sign::assemble_bundle(&leaf.der, &bad_payload, &sig, &answer)
                    .unwrap();
            expect_refused(
                wpkg_signing::bundle::verify_keyless_bundle(&b, &digest, &identity(&ts), &root),
                "dsse_signature",
            );
        } else {
            expect_refused(r, why);
        }
        // The classic form: a simple-signing payload, a hashedrekord entry.
        let payload = wpkg_signing::classic::simple_signing_payload("r/x", &digest);
        let sig = leaf.sign(&payload);
        let rekor_bundle = ts.log_hashedrekord(&payload, &sig, &leaf.der);
        let r = wpkg_signing::keyless::verify_classic_keyless(
            &payload,
            &sig,
            &leaf.pem(),
            Some(&rekor_bundle),
            &root,
            &identity(&ts),
        );
        if why.is_empty() {
            r.unwrap();
        } else {
            expect_refused(r, why);
        }
    }
}
