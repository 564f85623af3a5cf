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

fn cert(subject: &str, issuer: &str, claims: &[(&str, &str)]) -> CertIdentity {
    CertIdentity {
        subjects: vec![subject.to_owned()],
        issuer: issuer.to_owned(),
        claims: claims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[test]
fn identities_match_exactly_or_by_whole_regexp() {
    let gh = claims::GITHUB_ISSUER;
    let subj = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let who = cert(subj, gh, &[]);
    let exact = Identity {
        issuer: gh.into(),
        subject: Some(subj.into()),
        ..Default::default()
    };
    assert!(exact.matches(&who));
    assert!(!exact.matches(&cert(subj, "https://accounts.google.com", &[])));
    let re = Identity {
        issuer: gh.into(),
        subject_regexp: Some("https://github.com/acme/.*".into()),
        ..Default::default()
    };
    assert!(re.matches(&who));
    let partial = Identity {
        issuer: gh.into(),
        subject_regexp: Some("acme".into()),
        ..Default::default()
    };
    assert!(
        !partial.matches(&who),
        "a regexp must match the whole subject"
    );
    let issuer_re = Identity {
        issuer_regexp: Some("https://token\\.actions\\..*".into()),
        subject: Some(subj.into()),
        ..Default::default()
    };
    assert!(issuer_re.matches(&who));
    assert!(!issuer_re.matches(&cert(subj, "https://evil.example/token.actions.x", &[])));
    use claims::IdentityError as E;
    let bad = |i: Identity| i.validate().unwrap_err();
    assert_eq!(
        bad(Identity {
            issuer: gh.into(),
            ..Default::default()
        }),
        E::OneOf("subject")
    );
    assert_eq!(
        bad(Identity {
            subject: Some(subj.into()),
            ..Default::default()
        }),
        E::OneOf("issuer")
    );
    assert!(matches!(
        bad(Identity {
            issuer: gh.into(),
            subject_regexp: Some("(".into()),
            ..Default::default()
        }),
        E::Regexp { .. }
    ));
    let with_claim = |k: &str, v: &str| Identity {
        issuer: gh.into(),
        subject: Some(subj.into()),
        claims: [(k.to_owned(), v.to_owned())].into(),
        ..Default::default()
    };
    assert_eq!(
        bad(with_claim("colour", "x")),
        E::UnknownClaim("colour".into())
    );
    assert!(matches!(
        bad(with_claim("build_trigger_regexp", "(")),
        E::Regexp { .. }
    ));
    let mut twice = with_claim("build_trigger", "push");
    twice
        .claims
        .insert("build_trigger_regexp".into(), "p.*".into());
    assert_eq!(bad(twice), E::ClaimTwice("build_trigger".into()));
    with_claim("build_trigger", "push").validate().unwrap();
}

#[test]
fn claims_decide_and_the_refusal_names_the_closest_rule() {
    let gh = claims::GITHUB_ISSUER;
    let subj = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1";
    let rule = Identity {
        issuer: gh.into(),
        subject: Some(subj.into()),
        claims: [
            (
                "source_repository_ref_regexp".to_owned(),
                "refs/tags/v.*".to_owned(),
            ),
            ("runner_environment".to_owned(), "github-hosted".to_owned()),
        ]
        .into(),
        ..Default::default()
    };
    let rules = std::slice::from_ref(&rule);
    // Control: every claim as wanted.
    let good = [
        ("source_repository_ref", "refs/tags/v1"),
        ("runner_environment", "github-hosted"),
    ];
    assert_eq!(claims::judge(rules, &cert(subj, gh, &good)).unwrap(), &rule);
    // A self-hosted runner: the claim check refuses, naming the claim.
    let self_hosted = [
        ("source_repository_ref", "refs/tags/v1"),
        ("runner_environment", "self-hosted"),
    ];
    match claims::judge(rules, &cert(subj, gh, &self_hosted)).unwrap_err() {
        VerifyError::Claim { claim, found, .. } => {
            assert_eq!(
                (claim, found.as_str()),
                ("runner environment", "self-hosted")
            )
        }
        other => panic!("refused for another check: {other:?}"),
    }
    // A claim that is absent does not match even a regexp that accepts "".
    let absent = [("source_repository_ref", "refs/tags/v1")];
    assert!(matches!(
        claims::judge(rules, &cert(subj, gh, &absent)).unwrap_err(),
        VerifyError::Claim { .. }
    ));
    // Same subject through another issuer: Issuer, not Identity.
    assert!(matches!(
        claims::judge(rules, &cert(subj, "https://accounts.google.com", &good)).unwrap_err(),
        VerifyError::Issuer { .. }
    ));
    // Someone else entirely: Identity.
    assert!(matches!(
        claims::judge(
            rules,
            &cert(
                "https://github.com/evil/x/.github/workflows/a.yml@refs/heads/main",
                gh,
                &good
            )
        )
        .unwrap_err(),
        VerifyError::Identity { .. }
    ));
}

#[test]
fn the_github_rule_refuses_a_reusable_workflow_called_from_another_repository() {
    let gh = claims::GITHUB_ISSUER;
    let rule = Identity::github("acme/app", Some("release.yml")).unwrap();
    rule.validate().unwrap();
    let san = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let from = |repo: &str| cert(san, gh, &[("source_repository_uri", repo)]);
    // Control: the workflow running for acme/app itself.
    assert!(rule.matches(&from("https://github.com/acme/app")));
    // The same reusable workflow, called by evil/x: same SAN, another source repository.
    assert!(!rule.matches(&from("https://github.com/evil/x")));
    // Another workflow file of acme/app.
    let other = cert(
        "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main",
        gh,
        &[("source_repository_uri", "https://github.com/acme/app")],
    );
    assert!(!rule.matches(&other));
    // Any workflow of the repository when none is named; dots in names are literal.
    let any = Identity::github("acme/app", None).unwrap();
    assert!(any.matches(&other));
    assert!(!Identity::github("acme/a.p", None).unwrap().matches(&cert(
        "https://github.com/acme/axp/.github/workflows/ci.yml@refs/heads/main",
        gh,
        &[("source_repository_uri", "https://github.com/acme/a.p")],
    )));
    for bad in ["acme", "acme/app/x", "../x", "acme/"] {
        assert!(Identity::github(bad, None).is_err(), "{bad}");
    }
    assert!(Identity::github("acme/app", Some("../../x.yml")).is_err());
    assert!(Identity::github("acme/app", Some(".github/workflows/r.yaml")).is_ok());
}
