//! Local clients over HTTPS with a registered client certificate (per subsystem): the
//! `secure-app` subsystem is accepted only over mutual TLS with its own certificate.

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use lienthong_federation::{CLIENT_SUBSYSTEM, MTLS_SUBSYSTEM};
use lienthong_pki::CertificateInfo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

/// Accepts the gateway's certificate if the federation root signed it (the local client
/// trusts the federation CA; gateways are not named by DNS).
#[derive(Debug)]
struct IssuedBy(CertificateInfo);

impl ServerCertVerifier for IssuedBy {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certificate = CertificateInfo::from_der(end_entity)
            .map_err(|_| rustls::Error::General("bad certificate".into()))?;
        certificate
            .verify_signed_by(&self.0.public_key)
            .map(|()| ServerCertVerified::assertion())
            .map_err(|_| rustls::Error::General("not issued by the federation root".into()))
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn https_get(
    url: &str,
    client: &str,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    root: &CertificateInfo,
) -> (u16, String) {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(IssuedBy(root.clone())));
    let config = match identity {
        Some((certificate, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(certificate)],
                PrivateKeyDer::Pkcs8(key.into()),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let uri: hyper::Uri = url.parse().expect("uri");
    let authority = uri.authority().expect("authority").as_str().to_owned();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("gateway.local").expect("name"), tcp)
        .await
        .expect("TLS");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http");
    tokio::spawn(connection);
    let request = hyper::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", authority)
        .header("x-road-client", client)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_subsystem_needs_its_registered_certificate() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().expect("dir");
    let federation = common::federation(&dir).await;
    let root = federation
        .authority
        .certificate(&federation.authority.files().root_pem())
        .expect("root");
    let path = format!("{}/001099012345", federation.endpoint("service_path"));
    let tls_url = format!("{}{path}", federation.endpoint("client_gateway_tls_url"));
    let read = |key: &str| std::fs::read(federation.endpoint(key)).expect("file");
    let certificate =
        lienthong_pki::parse_certificate_pem(&read("mtls_client_certificate")).expect("pem");
    let key_pem = String::from_utf8(read("mtls_client_key")).expect("utf8");
    let key_b64: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key_b64).expect("key");

    let (status, body) = https_get(
        &tls_url,
        MTLS_SUBSYSTEM,
        Some((certificate.clone(), key)),
        &root,
    )
    .await;
    assert_eq!(status, 200, "registered certificate over mTLS: {body}");
    assert!(body.contains("Nguyễn Văn An"));

    let (status, body) = https_get(&tls_url, MTLS_SUBSYSTEM, None, &root).await;
    assert_eq!(status, 400, "TLS without the certificate: {body}");
    assert!(body.contains("Client.SslAuthenticationFailed"), "{body}");

    let plain = reqwest::Client::new()
        .get(format!(
            "{}{path}",
            federation.endpoint("client_gateway_url")
        ))
        .header("X-Road-Client", MTLS_SUBSYSTEM)
        .send()
        .await
        .expect("plain");
    assert_eq!(
        plain.status(),
        400,
        "plain HTTP is refused for an mTLS subsystem"
    );

    // Another subsystem configured for plain HTTP may also use HTTPS.
    let (status, _) = https_get(&tls_url, CLIENT_SUBSYSTEM, None, &root).await;
    assert_eq!(status, 200);
    federation.stop().await;
}
