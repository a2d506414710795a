//! The CA's state on PostgreSQL: init, issue, revoke and the OCSP answer all go through the
//! shared database, and a second `Authority` (another node) sees the same state.

use lienthong_crypto::{KdfParams, SoftwareKey, Suite};
use lienthong_pki::{CertificateInfo, Profile, RevocationReason, VerifiedStatus};
use lienthong_trust::server::TrustServices;
use lienthong_trust::{Authority, InitOptions, IssueOptions};

#[tokio::test]
async fn pki_state_lives_in_postgresql() {
    let server =
        lienthong_testkit::PgServer::shared().expect("PostgreSQL must start for this test");
    let url = server.create_database("pki_state").expect("database");
    let dir = tempfile::tempdir().expect("dir");
    let pki = dir.path().join("pki");
    let passphrase = b"pki on postgres";
    let authority = Authority::init(
        &pki,
        &InitOptions {
            kdf: KdfParams::DANGEROUS_FAST_FOR_TESTS,
            database_url: Some(url.clone()),
            ..InitOptions::default()
        },
        passphrase,
    )
    .await
    .expect("init on PostgreSQL");
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
