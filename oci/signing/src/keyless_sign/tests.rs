use super::*;

fn jwt(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.{}",
        B64URL.encode(br#"{"alg":"ES256"}"#),
        B64URL.encode(claims.to_string()),
        B64URL.encode(b"sig")
    )
}

#[test]
fn tokens_need_issuer_subject_audience_and_time_and_never_show() {
    let exp = now() + 300;
    let raw = jwt(serde_json::json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": "repo:acme/app:ref:refs/tags/v1", "aud": "sigstore", "exp": exp
    }));
    let ok = IdentityToken::parse(&raw).unwrap();
    assert_eq!(ok.challenge(), "repo:acme/app:ref:refs/tags/v1");
    let shown = format!("{ok:?}");
    assert!(raw.split('.').all(|part| !shown.contains(part)), "{shown}");
    let with_mail = IdentityToken::parse(&jwt(serde_json::json!({
        "iss": "i", "sub": "s", "email": "a@b.c", "aud": ["x", "sigstore"], "exp": exp
    })))
    .unwrap();
    assert_eq!(with_mail.challenge(), "a@b.c");
    let expired = IdentityToken::parse(&jwt(serde_json::json!({
        "iss": "i", "sub": "s", "aud": "sigstore", "exp": now() - 100
    })));
    assert!(matches!(expired, Err(KeylessError::TokenExpired { .. })));
    for bad in [
        jwt(serde_json::json!({"iss": "i", "sub": "s", "aud": "other", "exp": exp})),
        jwt(serde_json::json!({"sub": "s", "aud": "sigstore", "exp": exp})),
        jwt(serde_json::json!({"iss": "i", "aud": "sigstore", "exp": exp})),
        "not-a-jwt".to_owned(),
        "a.%%%.c".to_owned(),
    ] {
        let e = IdentityToken::parse(&bad).unwrap_err();
        assert!(matches!(e, KeylessError::BadToken { .. }), "{e}");
        assert!(!e.to_string().contains(&bad), "{e}");
    }
}

#[test]
fn service_urls_are_https_or_loopback() {
    assert!(check_url("Fulcio", "https://fulcio.sigstore.dev").is_ok());
    assert_eq!(
        check_url("Rekor", "http://127.0.0.1:8080/").unwrap(),
        "http://127.0.0.1:8080"
    );
    assert!(check_url("Rekor", "http://rekor.example.com").is_err());
    assert!(check_url("Rekor", "ftp://x").is_err());
    assert!(check_url("Rekor", "https://x/?a=b").is_err());
}
