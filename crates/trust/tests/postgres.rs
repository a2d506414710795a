//! The CA's state on PostgreSQL: init, issue, revoke and the OCSP answer all go through the
//! shared database, and a second `Authority` (another node) sees the same state.

use lienthong_crypto::{KdfParams, SoftwareKey, Suite};
use lienthong_pki::{CertificateInfo, Profile, RevocationReason, VerifiedStatus};
use lienthong_trust::server::TrustServices;
use lienthong_trust::{Authority, InitOptions, IssueOptions};

/// A new authority in `pki` whose state lives in the database at `url`.
async fn init_on(pki: &std::path::Path, url: String, passphrase: &[u8]) -> Authority {
    Authority::init(
        pki,
        &InitOptions {
            kdf: KdfParams::DANGEROUS_FAST_FOR_TESTS,
            database_url: Some(url),
            ..InitOptions::default()
        },
        passphrase,
    )
    .await
    .expect("init on PostgreSQL")
}

#[tokio::test]
async fn pki_state_lives_in_postgresql() {
    let server =
        lienthong_testkit::PgServer::shared().expect("PostgreSQL must start for this test");
    let url = server.create_database("pki_state").expect("database");
    let dir = tempfile::tempdir().expect("dir");
    let pki = dir.path().join("pki");
    let passphrase = b"pki on postgres";
    let authority = init_on(&pki, url.clone(), passphrase).await;
    assert!(
        !pki.join("pki.db").exists(),
        "no embedded store was created"
    );
    assert_eq!(authority.files().store_url(), url);

    let ca = authority.unlock_ca(passphrase).expect("CA");
    let key = SoftwareKey::generate(Suite::EcdsaP256Sha256)
        .expect("key")
        .0;
    let csr = lienthong_pki::create_csr(&key, "member").expect("csr");
    let issued = authority
        .issue(
            &ca,
            csr.as_bytes(),
            Profile::Sign,
            "VN/GOV/000303",
            &IssueOptions::default(),
        )
        .await
        .expect("issue");

    // Another node: the same directory (certificates, keys) and the same database.
    let other = Authority::open(&pki).await.expect("open");
    let record = other
        .store()
        .pki()
        .certificate(&issued.serial_hex())
        .await
        .expect("read")
        .expect("issued certificate is shared");
    assert_eq!(record.identity.as_deref(), Some("VN/GOV/000303"));
    other
        .revoke(
            &issued.serial_hex(),
            Some(RevocationReason::Superseded),
            std::time::SystemTime::now(),
        )
        .await
        .expect("revoke on the other node");

    // The OCSP responder of the first node answers from the shared state.
    let services = TrustServices::load(&authority, passphrase)
        .await
        .expect("services");
    let root: CertificateInfo = authority
        .certificate(&authority.files().root_pem())
        .expect("root");
    let request = lienthong_pki::ocsp_request(
        &root,
        &issued.serial,
        lienthong_crypto::HashAlgorithm::Sha256,
        None,
    )
    .expect("request");
    let response = services.ocsp(&request).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let status = lienthong_pki::verify_ocsp_response(&response, &issued, &root, now, 3600)
        .expect("valid response");
    assert!(
        matches!(
            status,
            VerifiedStatus::Revoked {
                reason: Some(RevocationReason::Superseded),
                ..
            }
        ),
        "{status:?}"
    );
}

/// A store that accepts connections but never answers (its PostgreSQL server frozen): the
/// health probe says so within its time limit, liveness does not care, and the probe
/// recovers once the server runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_while_the_store_does_not_answer_and_recovers() {
    let server = lienthong_testkit::PgServer::start().expect("PostgreSQL must start for this test");
    let url = server.create_database("trust_health").expect("database");
    let dir = tempfile::tempdir().expect("dir");
    let pki = dir.path().join("pki");
    let passphrase = b"trust health";
    let authority = init_on(&pki, url, passphrase).await;
    let services = TrustServices::load(&authority, passphrase)
        .await
        .expect("services");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(lienthong_trust::server::run(
        listener,
        std::sync::Arc::new(services),
        async move {
            let _ = stopped.await;
        },
    ));
    // reqwest builds its TLS settings even for plain HTTP, from the process's provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    let get = |path: &'static str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            (status, text)
        }
    };
    let (status, report) = get("/health").await;
    assert_eq!(status, 200, "{report}");

    let frozen = server.freeze();
    let (status, report) = get("/health").await;
    assert_eq!(status, 503, "{report}");
    assert!(
        report.contains(r#""status":"fail""#) && report.contains("did not answer"),
        "{report}"
    );
    assert_eq!(get("/live").await.0, 200);

    drop(frozen);
    let mut recovered = false;
    for _ in 0..50 {
        if get("/health").await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the probe did not recover");
    let _ = stop.send(());
    task.await.expect("joined").expect("served");
}
