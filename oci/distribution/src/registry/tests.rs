use super::auth::{parse_challenge, parse_params};
use super::*;

#[test]
fn challenges_parse() {
    let mut h = HeaderMap::new();
    h.insert(
        WWW_AUTHENTICATE,
        r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#
            .parse()
            .unwrap(),
    );
    assert_eq!(
        parse_challenge(&h),
        Some(Scheme::Bearer {
            realm: "https://ghcr.io/token".into(),
            service: Some("ghcr.io".into())
        })
    );
    let mut h = HeaderMap::new();
    h.insert(
        WWW_AUTHENTICATE,
        r#"Basic realm="Registry Realm""#.parse().unwrap(),
    );
    assert_eq!(parse_challenge(&h), Some(Scheme::Basic));
    let p = parse_params(r#"realm="a\"b", service=x ,scope="c,d""#);
    assert_eq!(p["realm"], "a\"b");
    assert_eq!(p["service"], "x");
    assert_eq!(p["scope"], "c,d");
}

#[test]
fn plain_http_only_for_loopback_and_named_registries() {
    let creds = Credentials::new(std::env::temp_dir().join("wpkg-no-docker-config"), None);
    let reg = Registry::new(
        ClientOptions {
            insecure: vec!["registry.lan:5000".into()],
            ..Default::default()
        },
        creds,
    )
    .unwrap();
    assert!(reg.plain_http_allowed("127.0.0.1:5000"));
    assert!(reg.plain_http_allowed("registry.lan:5000"));
    assert!(!reg.plain_http_allowed("registry.lan:5001"));
    assert!(!reg.plain_http_allowed("ghcr.io"));
    assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE));
    assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
    assert!(!retryable_status(StatusCode::NOT_IMPLEMENTED));
    assert!(!retryable_status(StatusCode::NOT_FOUND));
}

#[test]
fn loopback_names() {
    for r in [
        "localhost:5000",
        "127.0.0.1:5000",
        "[::1]:5000",
        "localhost",
    ] {
        assert!(is_loopback_registry(r), "{r}");
    }
    for r in [
        "ghcr.io",
        "10.0.0.1:5000",
        "docker.io",
        "localhost.example.com",
    ] {
        assert!(!is_loopback_registry(r), "{r}");
    }
}

#[test]
fn a_registry_error_body_becomes_one_line_without_control_characters() {
    let resp = |body: &str| {
        Response::from(
            ::http::Response::builder()
                .status(400)
                .body(body.to_owned())
                .unwrap(),
        )
    };
    let text = error_text(resp(
        r#"{"errors":[{"code":"DENIED","message":"no\nway \u001b[31mred\u001b[0m"}]}"#,
    ));
    assert_eq!(text, "HTTP 400 Bad Request: no way  [31mred [0m (DENIED)");
    assert!(!text.chars().any(char::is_control));
    // Control: a plain message passes as it is.
    assert_eq!(
        error_text(resp(
            r#"{"errors":[{"code":"DENIED","message":"go away"}]}"#
        )),
        "HTTP 400 Bad Request: go away (DENIED)"
    );
}
