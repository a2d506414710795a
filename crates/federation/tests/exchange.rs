//! The exchange through a whole federation on loopback: what a granted client gets, and
//! every refusal — each with X-Road's error type and nothing reaching the provider.

mod common;

use base64::Engine as _;
use common::*;
use lienthong_federation::{CLIENT_SUBSYSTEM, PROVIDER_SUBSYSTEM, UNAUTHORIZED_SUBSYSTEM};

async fn get(url: &str, client: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::Client::builder()
        .timeout(HELPER_TIMEOUT)
        .build()
        .expect("HTTP client")
        .get(url)
        .header("X-Road-Client", client)
        .send()
        .await
        .expect("the client gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_exchange_and_every_refusal() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let gateway = federation.endpoint("client_gateway_url");
    let service = format!("{gateway}{}", federation.endpoint("service_path"));

    // The granted client gets the provider's answer with all the X-Road headers.
    let before = served(&federation);
    let (status, headers, body) = get(&format!("{service}/001099012345"), CLIENT_SUBSYSTEM).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Nguyễn Văn An"), "{body}");
    assert!(
        body.contains(CLIENT_SUBSYSTEM),
        "the provider saw X-Road-Client: {body}"
    );
    for name in [
        "x-road-id",
        "x-road-request-id",
        "x-road-request-hash",
        "x-road-client",
        "x-road-service",
    ] {
        assert!(headers.contains_key(name), "missing {name}");
    }
    assert_eq!(headers["x-road-client"], CLIENT_SUBSYSTEM);
    assert_eq!(
        headers["x-road-service"],
        format!("{PROVIDER_SUBSYSTEM}/persons").as_str()
    );
    let hash = base64::engine::general_purpose::STANDARD
        .decode(headers["x-road-request-hash"].as_bytes())
        .expect("request hash is base64");
    assert_eq!(hash.len(), 32, "SHA-256 of the signed request description");
    assert!(
        !headers.contains_key("x-lienthong-signature"),
        "inter-gateway headers do not leak"
    );
    assert_eq!(served(&federation), before + 1);
    // The message id the client chose is kept.
    let response = reqwest::Client::new()
        .get(format!("{service}/079088054321?expand=1"))
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .header("X-Road-Id", "case-2026-11-27-0001")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-road-id"], "case-2026-11-27-0001");
    // Both gateways committed a record of the exchange to their message logs before the
    // client saw the answer.
    for (gateway, side) in federation.gateways.iter().zip([
        lienthong_ledger::Side::Client,
        lienthong_ledger::Side::Provider,
    ]) {
        let log = gateway.server_id().to_string();
        let indices = gateway
            .store()
            .ledger()
            .find_by_message_id(&log, "case-2026-11-27-0001")
            .await
            .expect("lookup");
        assert_eq!(indices.len(), 1, "one record at {log}");
        let (_, leaf, bytes) = gateway
            .store()
            .ledger()
            .record(&log, indices[0])
            .await
            .expect("read")
            .expect("record");
        let record: lienthong_ledger::LogRecord =
            serde_json::from_slice(&bytes).expect("a log record");
        assert_eq!(record.side, side);
        assert_eq!(record.leaf_hash(), leaf);
        assert_eq!(record.status, 200);
        assert!(record.response_description.is_some() && record.response_signature.is_some());

        // Sealing: a tree head over the log, signed with the gateway's auth key and
        // timestamped by the federation's TSA; sealing again with nothing new does nothing.
        // Two seals asked for at once (the periodic sealer and an evidence export) take
        // turns: one seals, the other then finds nothing new.
        let (first, second) = tokio::join!(gateway.seal_log(), gateway.seal_log());
        let size = match (first.expect("seal"), second.expect("a concurrent seal")) {
            (
                lienthong_gateway::SealOutcome::Timestamped { size },
                lienthong_gateway::SealOutcome::Unchanged { size: again },
            ) if again == size => size,
            other => panic!("expected a timestamped head, then no change: {other:?}"),
        };
        assert!(size >= 2, "both exchanges so far are in the head");
        assert_eq!(
            gateway.seal_log().await.expect("seal"),
            lienthong_gateway::SealOutcome::Unchanged { size }
        );
        let (stored, signed) = latest_signed_head(gateway.store().ledger(), &log).await;
        let auth_pem = std::fs::read(federation.dir.join(
            if side == lienthong_ledger::Side::Client {
                "gw-client/auth.pem"
            } else {
                "gw-provider/auth.pem"
            },
        ))
        .expect("auth.pem");
        let auth = lienthong_pki::CertificateInfo::from_der(
            &lienthong_pki::parse_certificate_pem(&auth_pem).expect("pem"),
        )
        .expect("cert");
        signed
            .verify(&auth.public_key)
            .expect("head signed by the gateway's auth key");
        let root = federation
            .authority
            .certificate(&federation.authority.files().root_pem())
            .expect("root");
        let token = stored.tsa_token.expect("timestamped");
        lienthong_pki::verify_timestamp_token(
            &token,
            (
                lienthong_crypto::HashAlgorithm::Sha256,
                &signed.timestamp_imprint(),
            ),
            None,
            &root,
        )
        .expect("the TSA token covers this head");
        // OpenSSL, as an independent checker, agrees.
        let token_file = federation.dir.join(format!("head-{size}.tsr"));
        std::fs::write(&token_file, &token).expect("write token");
        let imprint: String = signed
            .timestamp_imprint()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let openssl = std::process::Command::new("openssl")
            .args(["ts", "-verify", "-digest", &imprint, "-in"])
            .arg(&token_file)
            .arg("-CAfile")
            .arg(federation.authority.files().root_pem())
            .arg("-untrusted")
            .arg(federation.authority.files().tsa_pem())
            .output()
            .expect("run openssl");
        let stdout = String::from_utf8_lossy(&openssl.stdout);
        assert!(
            openssl.status.success() && stdout.contains("Verification: OK"),
            "openssl ts -verify: {stdout} {}",
            String::from_utf8_lossy(&openssl.stderr)
        );
        // The whole log audits clean.
        let summary = lienthong_gateway::audit_stored_log(gateway.store(), &log, &auth.public_key)
            .await
            .expect("the log audits clean");
        assert_eq!(
            (summary.records, summary.heads, summary.timestamped),
            (size, 1, 1)
        );
    }

    // Sealing again after more exchanges extends the tree kept from the last seal (only
    // the new leaves are read); the audit checks both heads against the stored leaves.
    for n in 0..3 {
        let response = reqwest::Client::new()
            .get(format!("{service}/079088054321?n={n}"))
            .header("X-Road-Client", CLIENT_SUBSYSTEM)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }
    for (gateway, pem) in federation
        .gateways
        .iter()
        .zip(["gw-client/auth.pem", "gw-provider/auth.pem"])
    {
        let log = gateway.server_id().to_string();
        let size = timestamped(gateway).await;
        let auth = lienthong_pki::CertificateInfo::from_der(
            &lienthong_pki::parse_certificate_pem(
                &std::fs::read(federation.dir.join(pem)).expect("auth.pem"),
            )
            .expect("pem"),
        )
        .expect("cert");
        let summary = lienthong_gateway::audit_stored_log(gateway.store(), &log, &auth.public_key)
            .await
            .expect("the log audits clean after the second seal");
        assert_eq!(
            (summary.records, summary.heads, summary.timestamped),
            (size, 2, 2)
        );
    }

    // Evidence: each gateway's admin API exports the message's bundle, which verifies
    // offline against the federation's trust roots and the gateway's log key.
    let root = federation
        .authority
        .certificate(&federation.authority.files().root_pem())
        .expect("root");
    let tsa = federation
        .authority
        .certificate(&federation.authority.files().tsa_pem())
        .expect("tsa");
    for (admin, gateway_dir) in [
        ("client_gateway_admin_url", "gw-client"),
        ("provider_gateway_admin_url", "gw-provider"),
    ] {
        let zip = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/log/bundles/case-2026-11-27-0001",
                federation.endpoint(admin)
            ))
            .bearer_auth(federation.endpoint("admin_token"))
            .send()
            .await
            .expect("export");
        assert_eq!(zip.status(), 200, "bundle from {admin}");
        let zip = zip.bytes().await.expect("bytes");
        let bundle = lienthong_ledger::read_bundle(&zip).expect("a readable bundle");
        let auth_pem =
            std::fs::read(federation.dir.join(gateway_dir).join("auth.pem")).expect("auth.pem");
        let auth = lienthong_pki::CertificateInfo::from_der(
            &lienthong_pki::parse_certificate_pem(&auth_pem).expect("pem"),
        )
        .expect("cert");
        let roots = lienthong_ledger::TrustRoots {
            cas: vec![root.clone()],
            tsas: vec![tsa.clone()],
        };
        let verdict = lienthong_ledger::verify_bundle(&bundle, Some(&auth.public_key), &roots);
        assert!(verdict.is_valid() && verdict.is_complete(), "{verdict}");
    }
    let missing = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/log/bundles/no-such-message",
            federation.endpoint("provider_gateway_admin_url")
        ))
        .bearer_auth(federation.endpoint("admin_token"))
        .send()
        .await
        .expect("export");
    assert_eq!(missing.status(), 404);
    let unauthenticated = reqwest::get(format!(
        "{}/api/v1/log/bundles/case-2026-11-27-0001",
        federation.endpoint("provider_gateway_admin_url")
    ))
    .await
    .expect("export");
    assert_eq!(unauthenticated.status(), 401);

    // Refusals that must not reach the provider.
    let before = served(&federation);
    let (status, headers, body) =
        get(&format!("{service}/001099012345"), UNAUTHORIZED_SUBSYSTEM).await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (500, "Server.ServerProxy.AccessDenied"),
        "{body}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(body["type"], "Server.ServerProxy.AccessDenied");
    assert!(body["message"].is_string() && body["detail"].is_string());
    let unknown = format!("{gateway}/r1/{PROVIDER_SUBSYSTEM}/no-such-service/1");
    let (status, headers, _) = get(&unknown, CLIENT_SUBSYSTEM).await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (500, "Server.ServerProxy.UnknownService")
    );
    let (status, headers, _) = get(&format!("{service}/1"), "VN/GOV/000101/not-registered").await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (400, "Client.InvalidClientIdentifier")
    );
    let (status, headers, _) = get(&format!("{gateway}/r1/VN/GOV"), CLIENT_SUBSYSTEM).await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (400, "Client.InvalidRequest")
    );
    assert_eq!(
        served(&federation),
        before,
        "no refused request reached the provider"
    );

    // A copy of the client gateway that alters what it signed, or replays it.
    let (keys, raw) = copy_of_client_gateway(&federation);
    let path = format!("/r1/{PROVIDER_SUBSYSTEM}/persons/001099012345");
    let (header, description, signature) =
        signed_get(&keys, CLIENT_SUBSYSTEM, "/001099012345", "raw-1").await;
    let mut altered = signature.clone();
    let last = altered.pop().expect("char");
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let mut forged_header = header.clone();
    forged_header.path = "/048095011111".into();
    let forged_description =
        base64::engine::general_purpose::STANDARD.encode(forged_header.encode().expect("encode"));
    let before = served(&federation);
    for (label, p, d, s) in [
        (
            "altered signature",
            path.clone(),
            description.clone(),
            altered,
        ),
        (
            "description altered after signing",
            format!("/r1/{PROVIDER_SUBSYSTEM}/persons/048095011111"),
            forged_description,
            signature.clone(),
        ),
    ] {
        let (status, headers, body) = send_raw(&federation, &raw, &keys, &p, &d, &s)
            .await
            .expect("answered");
        assert_eq!(
            (status, error_type(&headers).as_str()),
            (500, "Server.ServerProxy.InvalidSignatureValue"),
            "{label}: {body:?}"
        );
    }
    assert_eq!(
        served(&federation),
        before,
        "altered messages never reached the provider"
    );
    let (status, response_headers, body) =
        send_raw(&federation, &raw, &keys, &path, &description, &signature)
            .await
            .expect("answered");
    // The provider's signed answer names the hash of exactly this request: that is what
    // the client gateway checks and returns as X-Road-Request-Hash.
    let signed_answer = base64::engine::general_purpose::STANDARD
        .decode(response_headers["x-lienthong-response"].as_bytes())
        .expect("signed response description");
    let answer =
        lienthong_gateway::message::ResponseHeader::decode(&signed_answer).expect("parses");
    let request_bytes = base64::engine::general_purpose::STANDARD
        .decode(&description)
        .expect("b64");
    assert_eq!(
        answer.request_hash,
        lienthong_gateway::message::digest(&request_bytes)
    );
    assert_eq!(
        status, 200,
        "the untouched message is accepted once: {body:?}"
    );
    let (status, headers, _) = send_raw(&federation, &raw, &keys, &path, &description, &signature)
        .await
        .expect("answered");
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (500, "Server.ServerProxy.ReplayedMessage"),
        "a replay is refused"
    );
    assert_eq!(served(&federation), before + 1);

    // A gateway whose auth certificate the configuration does not list: refused at TLS.
    let ca = federation
        .authority
        .unlock_ca(&federation.passphrase)
        .expect("CA");
    let rogue_key =
        lienthong_crypto::SoftwareKey::generate(lienthong_crypto::Suite::EcdsaP256Sha256)
            .expect("key")
            .0;
    let csr = lienthong_pki::create_csr(&rogue_key, "rogue").expect("csr");
    let extensions = Default::default();
    let issued = federation.authority.issue(
        &ca,
        csr.as_bytes(),
        lienthong_pki::Profile::Auth,
        "VN/GOV/000101/rogue",
        &extensions,
    );
    let rogue_certificate = tokio::time::timeout(HELPER_TIMEOUT, issued)
        .await
        .expect("the rogue certificate is issued within the helpers' time limit")
        .expect("a certificate from the right CA, but never registered");
    let rogue = raw_peer(
        &federation,
        std::sync::Arc::new(rogue_key),
        rogue_certificate.der.clone(),
    );
    let (_, description, signature) =
        signed_get(&keys, CLIENT_SUBSYSTEM, "/001099012345", "raw-rogue").await;
    let refused = send_raw(&federation, &rogue, &keys, &path, &description, &signature).await;
    assert!(refused.is_err(), "the TLS handshake must fail: {refused:?}");
    assert_eq!(served(&federation), before + 1);

    // A sign certificate the OCSP responder reports revoked.
    let sign =
        lienthong_pki::CertificateInfo::from_der(&keys.sign_certificate).expect("certificate");
    let serial = sign.serial_hex();
    let revoked = federation.authority.revoke(
        &serial,
        Some(lienthong_pki::RevocationReason::KeyCompromise),
        std::time::SystemTime::now(),
    );
    tokio::time::timeout(HELPER_TIMEOUT, revoked)
        .await
        .expect("the revocation is stored within the helpers' time limit")
        .expect("revoke");
    tokio::time::timeout(
        HELPER_TIMEOUT,
        federation.gateways[0].refresh_certificate_statuses(),
    )
    .await
    .expect("the client gateway refreshes its OCSP responses within the helpers' time limit");
    let before = served(&federation);
    let (status, headers, body) = get(&format!("{service}/001099012345"), CLIENT_SUBSYSTEM).await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (500, "Server.ServerProxy.CertValidation"),
        "{body}"
    );
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(served(&federation), before);

    // An expired global configuration: the last one published expires two seconds later.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    federation
        .registry
        .publish(now - 598)
        .await
        .expect("publish");
    for gateway in &federation.gateways {
        gateway.conf().refresh(now).await.expect("refresh");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, headers, body) = get(&format!("{service}/001099012345"), CLIENT_SUBSYSTEM).await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (500, "Server.ClientProxy.OutdatedGlobalConf"),
        "{body}"
    );
    assert!(body.contains("expired"), "{body}");
    assert_eq!(served(&federation), before);
    federation.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metaservices_answer_as_specified() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let gateway = federation.endpoint("client_gateway_url");
    let provider = format!(
        "{gateway}{}",
        federation.endpoint("provider_subsystem_path")
    );
    let http = reqwest::Client::new();

    let json: serde_json::Value = http
        .get(format!("{gateway}/listClients"))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON listClients");
    let listed = json.to_string();
    for id in ["000101", "000202", "citizen-registry", "case-management"] {
        assert!(listed.contains(id), "{id} listed: {listed}");
    }
    let xml = http
        .get(format!("{gateway}/listClients"))
        .send()
        .await
        .expect("send");
    assert!(
        xml.headers()["content-type"]
            .to_str()
            .expect("type")
            .contains("xml")
    );
    assert!(xml.text().await.expect("body").contains("clientList"));

    let (status, _, body) = get(&format!("{provider}/listMethods"), CLIENT_SUBSYSTEM).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"persons\"") && body.contains("\"digest\""),
        "{body}"
    );
    let (status, _, allowed) = get(&format!("{provider}/allowedMethods"), CLIENT_SUBSYSTEM).await;
    assert_eq!(status, 200);
    assert!(allowed.contains("\"persons\""), "{allowed}");
    let (status, _, none) = get(
        &format!("{provider}/allowedMethods"),
        UNAUTHORIZED_SUBSYSTEM,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !none.contains("\"persons\""),
        "nothing is allowed to the unauthorized client: {none}"
    );
    let (status, headers, body) = get(&format!("{provider}/getOpenAPI"), CLIENT_SUBSYSTEM).await;
    assert_eq!(status, 400, "missing serviceCode: {body}");
    assert!(!error_type(&headers).is_empty(), "X-Road-Error on the 400");
    assert!(serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["type"].is_string());
    let (status, _, body) = get(
        &format!("{provider}/getOpenAPI?serviceCode=no-such"),
        CLIENT_SUBSYSTEM,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, headers, _) = get(
        &format!("{gateway}/r1/VN/GOV/000202/citi%20zen/listMethods"),
        CLIENT_SUBSYSTEM,
    )
    .await;
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (400, "Client.InvalidRequest"),
        "invalid identifier"
    );
    federation.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_fails_over_to_a_healthy_provider_gateway() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let service = format!(
        "{}{}/001099012345",
        federation.endpoint("client_gateway_url"),
        federation.endpoint("service_path")
    );
    // A second gateway of the provider member, registered and approved, listed first in
    // the configuration (ids sort "gw0" < "gw1") — but its address accepts no connection.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let ca = federation
        .authority
        .unlock_ca(&federation.passphrase)
        .expect("CA");
    let key = lienthong_crypto::SoftwareKey::generate(lienthong_crypto::Suite::EcdsaP256Sha256)
        .expect("key")
        .0;
    let csr = lienthong_pki::create_csr(&key, "gw0").expect("csr");
    let server = format!("{}/gw0", lienthong_federation::PROVIDER_MEMBER);
    let certificate = federation
        .authority
        .issue(
            &ca,
            csr.as_bytes(),
            lienthong_pki::Profile::Auth,
            &server,
            &Default::default(),
        )
        .await
        .expect("certificate");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let request = lienthong_model::registry::RegistrationRequest {
        server: server.parse().expect("id"),
        address: dead.to_string(),
        auth_certificate: base64::engine::general_purpose::STANDARD.encode(&certificate.der),
        clients: vec![PROVIDER_SUBSYSTEM.parse().expect("client")],
        signed_at: now,
    };
    let signature = lienthong_crypto::Signer::sign(&key, &request.signing_bytes())
        .expect("sign")
        .to_text();
    let registration = federation
        .registry
        .submit_registration(
            lienthong_model::registry::SignedRegistration { request, signature },
            now,
        )
        .await
        .expect("registration");
    federation
        .registry
        .decide_registration(&registration.id, true, "test")
        .await
        .expect("approve");
    federation.registry.publish(now).await.expect("publish");
    let client_gateway = &federation.gateways[0];
    client_gateway.conf().refresh(now).await.expect("refresh");
    for _ in 0..100 {
        if client_gateway.trust().get().is_some_and(|v| {
            v.gateways_serving(&PROVIDER_SUBSYSTEM.parse().expect("id"))
                .len()
                == 2
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    for attempt in 0..3 {
        let (status, _, body) = get(&service, CLIENT_SUBSYSTEM).await;
        assert_eq!(
            status, 200,
            "attempt {attempt} failed over to the healthy gateway: {body}"
        );
    }
    // Pinned to the dead gateway with X-Road-Security-Server: no silent detour.
    let pinned = reqwest::Client::new()
        .get(&service)
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .header("X-Road-Security-Server", server)
        .send()
        .await
        .expect("send");
    assert_eq!(pinned.status(), 500);
    assert_eq!(
        pinned.headers()["x-road-error"],
        "Server.ClientProxy.NetworkError"
    );
    federation.stop().await;
}

/// The log's latest head, as stored and as read.
async fn latest_signed_head(
    ledger: &dyn lienthong_store::LedgerStore,
    log: &str,
) -> (
    lienthong_store::StoredHead,
    lienthong_ledger::SignedTreeHead,
) {
    let stored = ledger
        .latest_head(log)
        .await
        .expect("read")
        .expect("a head");
    let signed = serde_json::from_slice(&stored.head).expect("signed head");
    (stored, signed)
}

/// Seal `gateway`'s log, expecting a timestamped head: its size.
async fn timestamped(gateway: &lienthong_gateway::Gateway) -> u64 {
    match gateway.seal_log().await.expect("seal") {
        lienthong_gateway::SealOutcome::Timestamped { size } => size,
        other => panic!("expected a timestamped head, got {other:?}"),
    }
}

/// The provider gateway as restarted: a new instance on the same configuration, keys and
/// store.
async fn restarted_provider_gateway(
    federation: &lienthong_federation::Federation,
) -> std::sync::Arc<lienthong_gateway::Gateway> {
    let config =
        lienthong_gateway::config::Config::load(&federation.dir.join("gw-provider/gateway.toml"))
            .expect("configuration");
    let keys = lienthong_federation::unlock(&config, &federation.passphrase).expect("keys");
    lienthong_gateway::Gateway::start(config, keys)
        .await
        .expect("the gateway starts again")
}

/// A restarted gateway's first seal goes on from the tree's frontier kept beside its last
/// head, reading only the records appended since, where it read every leaf of the log.
/// Shown by deleting the records that head covers: the tree can then no longer be rebuilt
/// from the records, and the seal still gives the root over every leaf. A frontier altered
/// in the database is not built on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_seals_on_from_its_last_head() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let exchange = |n: usize| {
        let federation = &federation;
        async move {
            let (status, _, body) = exchange_with_id(federation, &format!("frontier-{n}")).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    for n in 0..3 {
        exchange(n).await;
    }
    let gateway = &federation.gateways[1];
    let log = gateway.server_id().to_string();
    let ledger = gateway.store().ledger();
    let sealed = timestamped(gateway).await;
    for n in 3..5 {
        exchange(n).await;
    }
    let size = ledger.size(&log).await.expect("size");
    assert!(size > sealed);
    let leaves = ledger.leaf_hashes(&log, 0, size).await.expect("leaves");
    let expected = lienthong_ledger::MerkleLog::from_leaves(leaves).root();
    // The records under the head go; the log's size and heads stay.
    assert_eq!(
        ledger
            .delete_records_before(&log, sealed)
            .await
            .expect("delete"),
        sealed
    );

    let restarted = restarted_provider_gateway(&federation).await;
    assert_eq!(timestamped(&restarted).await, size);
    let (_, signed) = latest_signed_head(ledger, &log).await;
    assert_eq!((signed.head.size, signed.head.root), (size, expected));

    // The frontier kept with that head altered (as someone with the database could): a
    // gateway restarted again does not build on it, and with the records gone it cannot
    // seal what came after.
    let database = rusqlite::Connection::open(federation.dir.join("gw-provider/state/gateway.db"))
        .expect("open the provider gateway's database");
    database
        .busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    let altered = database
        .execute(
            "UPDATE ledger_heads SET frontier = zeroblob(length(frontier)) WHERE log_id = ?1 AND size = ?2",
            rusqlite::params![log, i64::try_from(size).expect("size")],
        )
        .expect("alter the frontier");
    assert_eq!(altered, 1);
    exchange(5).await;
    let error = restarted_provider_gateway(&federation)
        .await
        .seal_log()
        .await
        .expect_err("an altered frontier is not built on");
    assert!(
        error.contains(&format!(
            "records 0..{} of ledger {log} does not exist",
            size + 1
        )),
        "the tree was rebuilt from the first record: {error}"
    );
}
