//! `glimpse serve` exposed on a network: image URLs that point into the server's own
//! network are refused with a neutral message, unless the operator allows them; redirects
//! are vetted like the first URL. Every socket here is on loopback: the refused addresses
//! are loopback ones, which is what the default refuses.
use crate::common;
use crate::server_support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use server_support::*;

fn url_request(url: &str) -> Value {
    let case = case("one_image_noresize");
    greedy_request(
        &case,
        &|_| json!({"type": "image_url", "image_url": {"url": url}}),
    )
}

fn fixture_image_host() -> String {
    let image = common::fixtures().join("images/noresize_256x320.png");
    host_files(vec![(
        "/picture.png",
        std::fs::read(&image).expect("fixture image"),
    )])
}

#[test]
fn image_urls_into_the_servers_network_are_refused_with_a_neutral_message() {
    let host = fixture_image_host();
    let port = host.rsplit(':').next().expect("a port").to_owned();
    let guarded = TestServer::start(&[]);
    let refused = guarded
        .chat(&url_request(&format!("{host}/picture.png")))
        .assert_error(400, "image_fetch_failed");
    assert!(
        guarded.wait_for_log("a loopback address").is_some(),
        "the log keeps the reason"
    );
    // Other spellings of the loopback address, and the name, are refused the same way.
    for url in [
        format!("http://localhost:{port}/picture.png"),
        format!("http://2130706433:{port}/picture.png"),
        format!("http://0177.0.0.1:{port}/picture.png"),
        format!("http://127.1:{port}/picture.png"),
        format!("http://[::ffff:127.0.0.1]:{port}/picture.png"),
    ] {
        let message = guarded
            .chat(&url_request(&url))
            .assert_error(400, "image_fetch_failed");
        assert_eq!(message, refused, "{url}");
    }
    assert_eq!(guarded.metric("glimpse_images_encoded_total"), 0.0);

    // What a client learns does not depend on what is behind the URL: a refused address,
    // a 404 and bytes that are no image all read alike.
    let trusting = TestServer::start(&["--image-url-allow-private"]);
    let not_found = trusting
        .chat(&url_request(&format!("{host}/missing.png")))
        .assert_error(400, "image_fetch_failed");
    let not_an_image_host = host_files(vec![("/page.html", b"<html>admin</html>".to_vec())]);
    let not_an_image = trusting
        .chat(&url_request(&format!("{not_an_image_host}/page.html")))
        .assert_error(400, "image_fetch_failed");
    assert_eq!(not_found, refused);
    assert_eq!(not_an_image, refused);
    for leak in ["loopback", "404", "refused", "format", "127.0.0.1", "html"] {
        assert!(!refused.contains(leak), "{leak:?} in {refused:?}");
    }

    // With --image-url-allow-private the same URL gives the fixture's answer.
    let answer = trusting.complete(&url_request(&format!("{host}/picture.png")));
    let case = case("one_image_noresize");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        expected_text(&case)
    );
}

#[test]
fn redirects_are_vetted_like_the_first_url() {
    let host = fixture_image_host();
    let port = host.rsplit(':').next().expect("a port").to_owned();
    // The redirect leaves the listed host (127.0.0.1) for one that is not listed.
    let redirect = host_redirect(format!("http://localhost:{port}/picture.png"));
    let listed_only = TestServer::start(&[
        "--image-url-allow-private",
        "--image-url-domains",
        "127.0.0.1",
    ]);
    listed_only
        .chat(&url_request(&format!("{redirect}/start.png")))
        .assert_error(400, "image_fetch_failed");
    assert!(listed_only
        .wait_for_log("host 'localhost' is not in --image-url-domains")
        .is_some());
    // Listing the redirect's host too, the same redirect is followed to the answer.
    let both = TestServer::start(&[
        "--image-url-allow-private",
        "--image-url-domains",
        "127.0.0.1,localhost",
    ]);
    let answer = both.complete(&url_request(&format!("{redirect}/start.png")));
    let case = case("one_image_noresize");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        expected_text(&case)
    );
}

#[cfg(unix)]
#[test]
fn keys_from_a_file_work_and_a_removed_key_stops_working_after_sighup() {
    let dir = common::scratch_dir("api-key-file");
    let key_file = dir.join("keys.txt");
    std::fs::write(&key_file, "# one key per line\nkey-alpha\nkey-beta\n").expect("key file");
    let server = TestServer::start(&[
        "--api-key",
        "key-flag",
        "--api-key-file",
        key_file.to_str().expect("a UTF-8 path"),
    ]);
    let status = |key: &str| server.get_with_key("/v1/models", key).status;
    for key in ["key-alpha", "key-beta", "key-flag"] {
        assert_eq!(status(key), 200, "{key}");
    }
    assert_eq!(status("key-gamma"), 401);
    assert_eq!(server.get("/v1/models").status, 401);
    // Anthropic clients send the key in x-api-key.
    assert_eq!(
        server
            .get_with_header("/v1/models", "x-api-key", "key-beta")
            .status,
        200
    );
    assert_eq!(
        server
            .get_with_header("/v1/models", "x-api-key", "nope")
            .status,
        401
    );

    std::fs::write(&key_file, "key-beta\nkey-gamma\n").expect("rewriting the key file");
    assert_eq!(
        status("key-alpha"),
        200,
        "keys change on SIGHUP, not before"
    );
    server.signal(libc::SIGHUP);
    assert!(server.wait_for_log("reloaded the API keys").is_some());
    assert_eq!(status("key-alpha"), 401, "the removed key stops working");
    for key in ["key-beta", "key-gamma", "key-flag"] {
        assert_eq!(status(key), 200, "{key}");
    }
    // A file that cannot be read keeps the keys in use (and the server alive).
    std::fs::remove_file(&key_file).expect("removing the key file");
    server.signal(libc::SIGHUP);
    assert!(server.wait_for_log("keys in use stay").is_some());
    assert_eq!(status("key-gamma"), 200);
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn cors_grants_any_origin_on_loopback_and_only_listed_origins_when_given() {
    let preflight = |server: &TestServer, origin: &str| {
        server.send(
            "OPTIONS",
            "/v1/chat/completions",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
        )
    };
    let open = TestServer::start(&[]);
    let answer = open.send("GET", "/v1/models", &[("Origin", "https://a.example")]);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    let answer = preflight(&open, "https://a.example");
    assert_eq!(answer.status, 204);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );

    let listed = TestServer::start(&["--cors-origin", "https://app.example", "--api-key", "k"]);
    let answer = preflight(&listed, "https://app.example");
    assert_eq!(answer.status, 204, "pre-flights carry no key");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(answer.header("access-control-allow-methods").is_some());
    let answer = listed.send(
        "GET",
        "/v1/models",
        &[
            ("Origin", "https://app.example"),
            ("Authorization", "Bearer k"),
        ],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(answer.header("vary"), Some("Origin"));
    for other in ["https://evil.example", "null"] {
        let answer = preflight(&listed, other);
        assert_eq!(
            answer.header("access-control-allow-origin"),
            None,
            "{other}"
        );
        assert_eq!(
            answer.header("access-control-allow-headers"),
            None,
            "{other}"
        );
    }
}

/// A CA and a certificate it signed for localhost and 127.0.0.1, as PEM files in `dir`:
/// (CA certificate, server certificate chain, server key).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "glimpse test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key"))
        .expect("the CA certificate");
    let server_key = KeyPair::generate().expect("a key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters");
    server_params
        .distinguished_name
        .push(DnType::CommonName, "glimpse test server");
    let server = server_params
        .signed_by(&server_key, &ca)
        .expect("the server certificate");
    let files = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&files.0, ca.pem()).expect("writing ca.pem");
    std::fs::write(&files.1, server.pem() + &ca.pem()).expect("writing server.pem");
    std::fs::write(&files.2, server_key.serialize_pem()).expect("writing server.key");
    files
}

#[test]
fn https_with_a_self_made_certificate_serves_the_official_openai_client() {
    let dir = common::scratch_dir("tls");
    let (ca, certificate, key) = make_certificates(&dir);
    let path = |p: &PathBuf| p.to_str().expect("a UTF-8 path").to_owned();
    let mut server = TestServer::start(&[
        "--tls-cert",
        &path(&certificate),
        "--tls-key",
        &path(&key),
        "--api-key",
        "tls-key",
    ]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    server.trust(&std::fs::read(&ca).expect("ca.pem"));
    assert_eq!(server.get("/health").status, 200);
    // The greedy answer, plain and streamed, over https (and a client without the CA
    // cannot connect).
    crate::server_openai_client::run_openai_client(
        &server,
        "tls-key",
        json!({"ca_file": path(&ca)}),
    );
    // Plain http on the https port gets no answer.
    let plain = server.base.replacen("https://", "http://", 1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    assert!(agent.get(format!("{plain}/health")).call().is_err());
    assert_eq!(server.get("/health").status, 200, "still serving");
}

#[test]
fn unusable_tls_files_stop_the_server_with_a_clear_message() {
    let dir = common::scratch_dir("tls-bad");
    let (_, certificate, key) = make_certificates(&dir);
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").expect("writing");
    let model = common::converted("tiny-untied", "f32");
    for (cert, key_file, needle) in [
        (&not_pem, &key, "no PEM certificate"),
        (&certificate, &not_pem, "no PEM private key"),
        (&certificate, &dir.join("missing.key"), "--tls-key: reading"),
        (&key, &certificate, "no PEM certificate"),
    ] {
        let output = common::glimpse_command()
            .arg("serve")
            .arg("-m")
            .arg(&model)
            .args(["--port", "0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key_file)
            .output()
            .expect("running glimpse serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}
