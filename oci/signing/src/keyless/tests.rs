use super::*;

#[test]
fn the_shipped_root_parses() {
    let r = TrustedRoot::public_good();
    assert_eq!(
        r.tlogs[0].key_id_hex,
        "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
    );
    assert!(r.cas.len() >= 2);
}

#[test]
fn identities_match_exactly_or_by_whole_regexp() {
    let gh = "https://token.actions.githubusercontent.com";
    let subj = vec![
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main".to_owned(),
    ];
    let exact = Identity {
        issuer: gh.into(),
        subject: Some(subj[0].clone()),
        subject_regexp: None,
    };
    assert!(exact.matches(gh, &subj));
    assert!(!exact.matches("https://accounts.google.com", &subj));
    let re = Identity {
        issuer: gh.into(),
        subject: None,
        subject_regexp: Some("https://github.com/acme/.*".into()),
    };
    assert!(re.matches(gh, &subj));
    let partial = Identity {
        issuer: gh.into(),
        subject: None,
        subject_regexp: Some("acme".into()),
    };
    assert!(
        !partial.matches(gh, &subj),
        "a regexp must match the whole subject"
    );
    assert!(Identity {
        issuer: gh.into(),
        subject: None,
        subject_regexp: None
    }
    .validate()
    .is_err());
    assert!(Identity {
        issuer: gh.into(),
        subject: None,
        subject_regexp: Some("(".into())
    }
    .validate()
    .is_err());
}
