//! The client side: a local information system calls `/r1/...` with X-Road's REST headers;
//! the gateway reads and hashes the body, signs a description of the request with the
//! client member's key (batched), sends it to a gateway of the provider over mutual TLS
//! (failing over between the provider's gateways), verifies the signed answer and that it
//! answers *this* request, and returns it with the X-Road response headers. A large body
//! of declared length is sent on as it is read instead, with the signature in the trailer
//! (`exchange_streamed`).

use crate::XRoadError;
use crate::body::{GatewayBody, collect};
use crate::config::{BodyLogging, Connection};
use crate::gateway::{Gateway, unix_now, unix_now_ms};
use crate::message::{RequestHeader, ResponseHeader, digest};
use crate::metrics::{Side, Stage};
use crate::proxy_common::*;
use crate::trust::{TrustView, tls_name};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};
use lienthong_model::ClientId;
use lienthong_pki::{CertificateInfo, FederationIdentity, VerifiedStatus};
use std::sync::Arc;
use tracing::Instrument as _;

/// How the local client reached us.
#[derive(Debug, Clone, Default)]
pub struct LocalConnection {
    /// Over TLS.
    pub tls: bool,
    /// SHA-256 (hex) of the client certificate it presented, if any.
    pub client_certificate: Option<String>,
}

/// Serve one request from a local client.
pub async fn handle(
    gateway: Arc<Gateway>,
    request: Request<Incoming>,
    connection: LocalConnection,
) -> Response<GatewayBody> {
    let message_id = last_header(request.headers(), "x-road-id")
        .map(str::to_owned)
        .unwrap_or_else(message_id);
    if request.uri().path() == "/listClients" {
        return list_clients(&gateway, &request).unwrap_or_else(|e| e.into_response(None));
    }
    let (client, service) = crate::metrics::request_labels(&request);
    let counted = gateway.metrics.begin(Side::Client, client, service);
    let span = tracing::info_span!("exchange", side = "client", message_id = %message_id);
    let response = async {
        let exchange = |request| exchange(&gateway, request, &connection, &message_id);
        match crate::opmon::client(&gateway, &message_id, request, exchange).await {
            Ok(response) => response,
            Err(error) => {
                tracing::info!(message_id, error = %error, "exchange refused");
                error.into_response(Some(&message_id))
            }
        }
    };
    counted.finish(response.instrument(span).await)
}

fn list_clients(
    gateway: &Gateway,
    request: &Request<Incoming>,
) -> Result<Response<GatewayBody>, XRoadError> {
    let conf = gateway
        .conf
        .usable(unix_now())
        .map_err(|e| XRoadError::client_proxy("OutdatedGlobalConf", e.to_string()))?;
    let instance = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "xRoadInstance")
            .map(|(_, v)| v.to_owned())
    });
    let json = crate::meta::wants_json(
        request
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let answer = crate::meta::list_clients(&conf.conf, instance.as_deref(), json);
    let mut response = Response::new(crate::body::full(answer.body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, header_value(answer.content_type));
    Ok(response)
}

async fn exchange(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    connection: &LocalConnection,
    message_id: &str,
) -> Result<Response<GatewayBody>, XRoadError> {
    gateway.ops.accepting(Side::Client)?;
    let time_in = unix_now_ms();
    let (parts, body) = request.into_parts();
    let path = parse_r1(parts.uri.path())?;
    let client: ClientId = last_header(&parts.headers, "x-road-client")
        .ok_or_else(|| {
            XRoadError::client(
                "InvalidClientIdentifier",
                "the X-Road-Client header is required",
            )
        })?
        .parse()
        .map_err(|e| {
            XRoadError::client("InvalidClientIdentifier", format!("X-Road-Client: {e}"))
        })?;
    if message_id.len() > 255 || message_id.chars().any(|c| c.is_control()) {
        return Err(XRoadError::client(
            "InvalidRequest",
            "X-Road-Id must be at most 255 printable characters",
        ));
    }
    let conf = gateway
        .conf
        .usable(unix_now())
        .map_err(|e| XRoadError::client_proxy("OutdatedGlobalConf", e.to_string()))?;
    let view = gateway
        .trust
        .get()
        .ok_or_else(|| XRoadError::client_proxy("OutdatedGlobalConf", "no global configuration"))?;
    check_local_client(gateway, &view, &client, connection)?;
    gateway.check_timestamping(XRoadError::client_proxy)?;
    let member = gateway.members.get(client.member()).ok_or_else(|| {
        XRoadError::client(
            "InvalidClientIdentifier",
            format!("this gateway does not act for {}", client.member()),
        )
    })?;

    let ocsp = member
        .ocsp_header
        .read()
        .ok()
        .and_then(|v| v.clone())
        .ok_or_else(|| {
            XRoadError::client_proxy(
                "CertValidation",
                "no fresh OCSP response for the member's sign certificate yet",
            )
        })?;

    // Provider gateways, pinned by X-Road-Security-Server if given, healthy first.
    let mut candidates = view.gateways_serving(path.service.provider());
    if let Some(pinned) = last_header(&parts.headers, "x-road-security-server") {
        candidates.retain(|g| g.id.to_string() == pinned);
    }
    if candidates.is_empty() {
        return Err(XRoadError::client_proxy(
            "UnknownMember",
            format!(
                "no gateway in the global configuration serves {}",
                path.service.provider()
            ),
        ));
    }
    let candidates = gateway.order_by_health(candidates);
    let mut forward_headers = parts.headers.clone();
    strip_headers(&mut forward_headers);
    forward_headers.remove("x-road-error");

    // A large body whose length the client declared, for a client whose log keeps digests
    // only, is streamed on as it is read, its signature in the trailer.
    let digests_only = *gateway.client_body_logging(&client) == BodyLogging::Digest;
    let streamed = declared_length(&parts.headers)
        .filter(|length| *length > gateway.limits.memory_bytes as u64)
        .filter(|_| digests_only);
    let header_text = |name| last_header(&parts.headers, name).unwrap_or("").to_owned();
    let mut header = RequestHeader {
        message_id: message_id.to_owned(),
        client: client.clone(),
        service: path.service.clone(),
        method: parts.method.to_string(),
        path: path.rest.clone(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        time_ms: time_in,
        user_id: header_text("x-road-userid"),
        issue: header_text("x-road-issue"),
        represented_party: header_text("x-road-represented-party"),
        content_type: header_text("content-type"),
        body_sha256: [0; 32],
        body_length: streamed.unwrap_or(0),
    };
    if let Some(length) = streamed {
        if length > gateway.limits.max_bytes {
            return Err(XRoadError::client(
                "InvalidRequest",
                crate::body::BodyError::TooLarge {
                    limit: gateway.limits.max_bytes,
                }
                .to_string(),
            ));
        }
        let to = Outgoing {
            peer: candidates[0],
            parts: &parts,
            headers: &forward_headers,
            member,
            ocsp: &ocsp,
            late_answer: digests_only,
        };
        return exchange_streamed(gateway, &view, &conf.conf.policy, to, body, header).await;
    }

    let collected = gateway
        .metrics
        .time(Stage::ClientBodyRead, collect(body, &gateway.limits));
    let collected = collected.await.map_err(|e| match e {
        crate::body::BodyError::TooLarge { .. } => {
            XRoadError::client("InvalidRequest", e.to_string())
        }
        other => XRoadError::client_proxy("InternalError", other.to_string()),
    })?;
    let request_for_log = gateway.body_for_log(
        gateway.client_body_logging(&client),
        &collected,
        lienthong_ledger::BodyPart::Request,
    );
    header.body_sha256 = collected.sha256;
    header.body_length = collected.length;
    let encoded = header
        .encode()
        .map_err(|e| XRoadError::client("InvalidRequest", e.to_string()))?;
    let request_hash = digest(&encoded);
    let mut signature = gateway
        .metrics
        .time(Stage::ClientSigning, member.signer.sign(request_hash))
        .await
        .map_err(|e| XRoadError::client_proxy("CannotCreateSignature", e.to_string()))?
        .to_text();
    let encoded_b64 = STANDARD.encode(&encoded);
    let mut last_error = None;
    // An idempotent request whose exchange broke after it was sent (a provider node died
    // with it in flight) is sent once more: to the same gateway first, whose connector
    // then reaches another of its nodes, then to the next gateway. It is signed again,
    // since the first signature may already be in the replay memory the nodes share.
    let idempotent = matches!(
        parts.method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::PUT | hyper::Method::DELETE
    );
    let mut retried = false;
    let mut drained = 0;
    let mut next = 0;
    while let Some(&peer) = candidates.get(next) {
        next += 1;
        let body = collected
            .body
            .replay()
            .map_err(|e| XRoadError::client_proxy("InternalError", e.to_string()))?;
        let to = Outgoing {
            peer,
            parts: &parts,
            headers: &forward_headers,
            member,
            ocsp: &ocsp,
            late_answer: digests_only,
        };
        let mut outgoing = to.request(body, &encoded_b64)?;
        outgoing
            .headers_mut()
            .insert(H_SIGNATURE, per_message_value(&signature));
        let sent = Sent {
            header: &header,
            encoded: &encoded,
            hash: request_hash,
            signature: &signature,
            member,
            ocsp: &ocsp,
            at: unix_now_ms(),
            request_for_log: &request_for_log,
        };
        crate::opmon::note_peer(&peer.id);
        let answer = gateway.peer_client.request(outgoing);
        match gateway.metrics.time(Stage::Peer, answer).await {
            // A provider node that is draining refused the request before anything reached
            // the service: any method may go again. Its connections close once its
            // in-flight exchanges are done, so after a short pause the next attempt is
            // carried by a new connection, to another node of that gateway or the next one.
            Ok(response) if is_draining(&response) && drained < MAX_DRAINED_RETRIES => {
                drained += 1;
                tracing::info!(peer = %peer.id, "provider gateway node is draining; sending the request again");
                last_error = Some(format!("{}: draining", peer.id));
                next -= 1;
                tokio::time::sleep(DRAINED_PAUSE * drained).await;
            }
            Ok(response) => {
                return finish(
                    gateway,
                    &view,
                    &conf.conf.policy,
                    response,
                    &sent,
                    message_id,
                )
                .await;
            }
            Err(error) if error.is_connect() => {
                tracing::warn!(peer = %peer.id, error = %error, "provider gateway unreachable; trying the next one");
                gateway.mark_unhealthy(&peer.id);
                last_error = Some(format!("{}: {error:?}", peer.id));
            }
            Err(error) if idempotent && !retried => {
                tracing::warn!(peer = %peer.id, error = %error, method = %parts.method, "exchange broke after the request was sent; sending the idempotent request once more");
                retried = true;
                next -= 1;
                last_error = Some(format!("{}: {error}", peer.id));
                signature = member
                    .signer
                    .sign(request_hash)
                    .await
                    .map_err(|e| XRoadError::client_proxy("CannotCreateSignature", e.to_string()))?
                    .to_text();
            }
            Err(error) => {
                // The request may have reached the provider: a non-idempotent request is
                // never resent; the client is told, and decides.
                return Err(XRoadError::client_proxy(
                    "NetworkError",
                    format!("exchange with {} failed: {error}", peer.id),
                ));
            }
        }
    }
    Err(XRoadError::client_proxy(
        "NetworkError",
        format!(
            "no provider gateway could be reached ({})",
            last_error.unwrap_or_default()
        ),
    ))
}

/// What a request to a provider's gateway is made of, besides its body and description.
struct Outgoing<'a> {
    peer: &'a lienthong_model::conf::Gateway,
    /// The local client's request.
    parts: &'a hyper::http::request::Parts,
    /// Its end-to-end headers.
    headers: &'a hyper::HeaderMap,
    member: &'a Arc<crate::MemberKey>,
    ocsp: &'a hyper::header::HeaderValue,
    /// The client's log keeps digests only: a large answer may come streamed, signed in
    /// its trailer.
    late_answer: bool,
}

impl Outgoing<'_> {
    /// The request to `peer`, with the description (base64) and the signer's certificate
    /// and status; the signature is the caller's to add (in the head or the trailer).
    fn request(
        &self,
        body: GatewayBody,
        description: &str,
    ) -> Result<Request<GatewayBody>, XRoadError> {
        let uri = format!(
            "https://{}{}",
            tls_name(&self.peer.id),
            self.parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        let mut outgoing = Request::builder()
            .method(self.parts.method.clone())
            .uri(uri)
            .body(body)
            .map_err(|e| XRoadError::client_proxy("InternalError", e.to_string()))?;
        *outgoing.headers_mut() = self.headers.clone();
        let headers = outgoing.headers_mut();
        headers.insert(H_REQUEST, per_message_value(description));
        headers.insert(H_CERTIFICATE, self.member.certificate_header.clone());
        headers.insert(H_OCSP, self.ocsp.clone());
        headers.insert(
            H_LOG,
            hyper::header::HeaderValue::from_static(LOG_IN_TRAILER),
        );
        if self.late_answer {
            headers.insert(
                H_ACCEPT_SIGNED,
                hyper::header::HeaderValue::from_static(SIGNED_IN_TRAILER),
            );
        }
        Ok(outgoing)
    }
}

/// Send a large body to the first of the provider's gateways as it is read from the local
/// client, hashing it on the way; once its last byte is read its description is signed
/// and the description and signature go in the trailer (`H_SIGNED`). Only one gateway is
/// tried: the body is not kept to send again. Then the answer is checked as any other.
async fn exchange_streamed(
    gateway: &Arc<Gateway>,
    view: &TrustView,
    policy: &lienthong_model::conf::FederationPolicy,
    to: Outgoing<'_>,
    body: Incoming,
    draft: RequestHeader,
) -> Result<Response<GatewayBody>, XRoadError> {
    let draft_encoded = draft
        .encode()
        .map_err(|e| XRoadError::client("InvalidRequest", e.to_string()))?;
    let (signed_tx, signed_rx) = tokio::sync::oneshot::channel();
    let member = to.member.clone();
    let described = draft.clone();
    let finish_body = async move |sha256, length| {
        let header = RequestHeader {
            body_sha256: sha256,
            body_length: length,
            ..described
        };
        let encoded = header
            .encode()
            .map_err(|e| crate::body::BodyError::Read(e.to_string()))?;
        let hash = digest(&encoded);
        let signature = member
            .signer
            .sign(hash)
            .await
            .map_err(|e| crate::body::BodyError::Read(format!("cannot sign the request: {e}")))?
            .to_text();
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert(H_REQUEST, per_message_value(&STANDARD.encode(&encoded)));
        trailers.insert(H_SIGNATURE, per_message_value(&signature));
        let _ = signed_tx.send((header, encoded, hash, signature));
        Ok(trailers)
    };
    let body = crate::body::stream_with_trailers(body, draft.body_length, finish_body);
    let mut outgoing = to.request(body, &STANDARD.encode(&draft_encoded))?;
    outgoing.headers_mut().insert(
        H_SIGNED,
        hyper::header::HeaderValue::from_static(SIGNED_IN_TRAILER),
    );
    let peer = &to.peer.id;
    crate::opmon::note_peer(peer);
    let at = unix_now_ms();
    let answer = gateway.peer_client.request(outgoing);
    let response = gateway
        .metrics
        .time(Stage::Peer, answer)
        .await
        .map_err(|error| {
            if error.is_connect() {
                gateway.mark_unhealthy(peer);
            }
            XRoadError::client_proxy(
                "NetworkError",
                format!("exchange with {peer} failed: {error}"),
            )
        })?;
    // A signed answer comes only once the provider's gateway has read the whole body and
    // its trailer, which is sent after the signed description is handed over here. An
    // unsigned one (a refusal) is checked against the head's description only.
    let (header, encoded, hash, signature) = if response.headers().contains_key(H_RESPONSE) {
        signed_rx.await.map_err(|_| {
            XRoadError::client_proxy(
                "InternalError",
                "the streamed request was answered but never signed",
            )
        })?
    } else {
        let hash = digest(&draft_encoded);
        (draft, draft_encoded, hash, String::new())
    };
    let sent = Sent {
        header: &header,
        encoded: &encoded,
        hash,
        signature: &signature,
        member: to.member,
        ocsp: to.ocsp,
        at,
        request_for_log: &None,
    };
    finish(gateway, view, policy, response, &sent, &header.message_id).await
}

/// Attempts after a provider node answered that it is draining.
const MAX_DRAINED_RETRIES: u32 = 5;
/// The pause before the first of them (growing linearly).
const DRAINED_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Is this a provider gateway's refusal because it is draining (nothing was served)?
fn is_draining<B>(response: &hyper::Response<B>) -> bool {
    response.status() == hyper::StatusCode::SERVICE_UNAVAILABLE
        && last_header(response.headers(), "x-road-error") == Some("Server.ServerProxy.Maintenance")
}

fn check_local_client(
    gateway: &Gateway,
    view: &TrustView,
    client: &ClientId,
    connection: &LocalConnection,
) -> Result<(), XRoadError> {
    if !view.is_registered(client) {
        return Err(XRoadError::client(
            "InvalidClientIdentifier",
            format!("{client} is not registered in the federation"),
        ));
    }
    if !view.serves(gateway.server_id(), client) {
        return Err(XRoadError::client(
            "InvalidClientIdentifier",
            format!("{client} is not a client of this gateway"),
        ));
    }
    if let ClientId::Subsystem(subsystem) = client
        && let Some(settings) = gateway.subsystems.get(subsystem)
    {
        let ok = match settings.connection {
            Connection::Http => true,
            Connection::Https => connection.tls,
            Connection::Mtls => connection
                .client_certificate
                .as_ref()
                .is_some_and(|hash| settings.client_certificates.contains(hash)),
        };
        if !ok {
            return Err(XRoadError::client(
                "SslAuthenticationFailed",
                format!("{client} must connect with {:?}", settings.connection),
            ));
        }
    }
    Ok(())
}

/// Verify the provider's signed answer and build the response for the local client.
/// What was sent to the provider's gateway, for checking and logging its answer.
struct Sent<'a> {
    header: &'a RequestHeader,
    encoded: &'a [u8],
    hash: [u8; 32],
    signature: &'a str,
    member: &'a crate::MemberKey,
    ocsp: &'a hyper::header::HeaderValue,
    at: i64,
    /// The request body, if the log keeps it.
    request_for_log: &'a Option<Vec<u8>>,
}

async fn finish(
    gateway: &Arc<Gateway>,
    view: &TrustView,
    policy: &lienthong_model::conf::FederationPolicy,
    response: Response<Incoming>,
    sent: &Sent<'_>,
    message_id: &str,
) -> Result<Response<GatewayBody>, XRoadError> {
    let response_in = unix_now_ms();
    let request = sent.header;
    let request_hash = sent.hash;
    let (mut parts, body) = response.into_parts();
    let Some(signed) = last_header(&parts.headers, H_RESPONSE).map(str::to_owned) else {
        // The provider's gateway refused: pass its X-Road error through unchanged.
        if parts.headers.contains_key("x-road-error") {
            let collected = collect(body, &gateway.limits)
                .await
                .map_err(|e| XRoadError::client_proxy("NetworkError", e.to_string()))?;
            let mut out = Response::from_parts(parts, collected.body.into_body());
            out.headers_mut()
                .insert("x-road-id", header_value(message_id));
            return Ok(out);
        }
        return Err(XRoadError::client_proxy(
            "InvalidSignatureValue",
            "the provider's answer is not signed",
        ));
    };
    let bad = |why: String| {
        XRoadError::client_proxy(
            "InvalidSignatureValue",
            format!("the provider's answer was refused: {why}"),
        )
    };
    let encoded = STANDARD
        .decode(signed)
        .map_err(|_| bad("response description is not base64".into()))?;
    let header = ResponseHeader::decode(&encoded).map_err(|e| bad(e.to_string()))?;
    if header.request_hash != request_hash || header.message_id != request.message_id {
        return Err(bad("it does not answer this request".into()));
    }
    if header.status != parts.status.as_u16() {
        return Err(bad("the HTTP status differs from the signed one".into()));
    }
    let certificate = last_header(&parts.headers, H_CERTIFICATE)
        .and_then(|c| gateway.signer_certificates.parse(c))
        .ok_or_else(|| bad("no signer certificate".into()))?;
    let provider_member = request.service.provider().member();
    if certificate.identity != Some(FederationIdentity::Member(provider_member.clone())) {
        return Err(bad(format!(
            "signed by a certificate not of {provider_member}"
        )));
    }
    check_certificate(
        gateway,
        view,
        policy,
        &certificate,
        last_header(&parts.headers, H_OCSP),
    )
    .map_err(bad)?;
    let provider_log_pending = last_header(&parts.headers, H_LOG) == Some(LOG_PENDING);
    let logging = gateway.client_body_logging(&request.client);
    // A large answer streamed by the provider's gateway: its signature follows it, in the
    // trailer, with the provider's log commit.
    let signed_late = last_header(&parts.headers, H_SIGNED) == Some(SIGNED_IN_TRAILER);
    if signed_late {
        if !provider_log_pending || *logging != BodyLogging::Digest {
            return Err(bad(
                "it is signed in its trailer, which was not asked for".into()
            ));
        }
        if header.body_sha256 != [0; 32] || header.body_length > gateway.limits.max_bytes {
            return Err(bad(
                "the head of an answer signed in its trailer must have the digest zeroed and a length within this gateway's limit"
                    .into(),
            ));
        }
    } else {
        let signature = last_header(&parts.headers, H_SIGNATURE)
            .and_then(|s| lienthong_crypto::BatchSignature::from_text(s).ok())
            .ok_or_else(|| bad("no or malformed signature".into()))?;
        gateway
            .verifier
            .verify(&certificate.public_key, &digest(&encoded), &signature)
            .map_err(|_| bad("the signature does not verify".into()))?;
    }
    // Nothing is released to the client before its record, and the provider's, are durable
    // in the message logs (of a streamed answer, nothing but its last chunk).
    let mut record = lienthong_ledger::LogRecord {
        message_id: request.message_id.clone(),
        side: lienthong_ledger::Side::Client,
        client: request.client.to_string(),
        service: request.service.to_string(),
        request_in: request.time_ms,
        request_out: Some(sent.at),
        response_in: Some(response_in),
        response_out: Some(unix_now_ms()),
        request_description: sent.encoded.to_vec(),
        response_description: Some(encoded.clone()),
        request_signature: sent.signature.to_owned(),
        response_signature: last_header(&parts.headers, H_SIGNATURE).map(str::to_owned),
        request_signer_certificate: sent.member.certificate.der.clone(),
        response_signer_certificate: Some(certificate.der.clone()),
        request_signer_ocsp: sent
            .ocsp
            .to_str()
            .ok()
            .and_then(|s| STANDARD.decode(s).ok()),
        response_signer_ocsp: last_header(&parts.headers, H_OCSP)
            .and_then(|s| STANDARD.decode(s).ok()),
        request_body_sha256: request.body_sha256,
        response_body_sha256: Some(header.body_sha256),
        status: header.status,
        body: lienthong_ledger::BodyEvidence::DigestOnly,
    };
    if signed_late {
        let request_for_log = sent.request_for_log.clone();
        let streamed = crate::late_answer::pass_on(
            gateway,
            body,
            header,
            certificate,
            record,
            request_for_log,
        );
        to_client(&mut parts.headers, message_id, request_hash, request);
        return Ok(Response::from_parts(parts, streamed));
    }
    // With the provider's commit to come in the trailer, the signed length of data is read
    // and the trailer is awaited beside this side's own commit.
    let mut body = std::pin::pin!(body);
    let wanted = if provider_log_pending {
        header.body_length
    } else {
        u64::MAX
    };
    let collected = crate::body::collect_first(body.as_mut(), &gateway.limits, wanted)
        .await
        .map_err(|e| XRoadError::client_proxy("NetworkError", e.to_string()))?;
    if collected.sha256 != header.body_sha256 || collected.length != header.body_length {
        return Err(bad("the body does not match the signed digest".into()));
    }
    let response_for_log =
        gateway.body_for_log(logging, &collected, lienthong_ledger::BodyPart::Response);
    let bodies = crate::log_bodies::keep(
        logging,
        &mut record,
        sent.request_for_log.clone(),
        response_for_log,
    )
    .map_err(|e| XRoadError::client_proxy("InternalError", e.message))?;
    let committed = gateway.journal.record(&record, bodies, unix_now());
    let committed = gateway.metrics.time(Stage::ClientLogCommit, committed);
    let provider_logged = async {
        if provider_log_pending {
            provider_log_trailer(body.as_mut()).await
        } else {
            Ok(())
        }
    };
    let (committed, provider_logged) = tokio::join!(committed, provider_logged);
    committed.map_err(|e| XRoadError::client_proxy("InternalError", e.message))?;
    provider_logged.map_err(|why| {
        tracing::warn!(
            message_id,
            why,
            "the provider's gateway did not confirm its log record; nothing released"
        );
        XRoadError::server_proxy(
            "InternalError",
            format!(
                "the provider's gateway could not record the exchange in its message log: {why}"
            ),
        )
    })?;
    to_client(&mut parts.headers, message_id, request_hash, request);
    Ok(Response::from_parts(parts, collected.body.into_body()))
}

/// The headers of the provider's answer as the local client gets them: the end-to-end
/// ones, and X-Road's.
fn to_client(
    headers: &mut hyper::HeaderMap,
    message_id: &str,
    request_hash: [u8; 32],
    request: &RequestHeader,
) {
    strip_headers(headers);
    headers.insert("x-road-id", header_value(message_id));
    headers.insert("x-road-request-id", header_value(&random_id()));
    headers.insert(
        "x-road-request-hash",
        header_value(&STANDARD.encode(request_hash)),
    );
    headers.insert("x-road-client", header_value(&request.client.to_string()));
    headers.insert("x-road-service", header_value(&request.service.to_string()));
}

/// Read the rest of a provider's answer, after its signed body: the trailer that says
/// whether its gateway's record of the exchange is durable. Data beyond the signed body,
/// a broken stream, no trailer or any other outcome is an error.
pub(crate) async fn provider_log_trailer<B>(mut body: std::pin::Pin<&mut B>) -> Result<(), String>
where
    B: hyper::body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt as _;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer broke off: {e}"))?;
        match frame.into_trailers() {
            Ok(trailers) => {
                return match last_header(&trailers, H_LOG) {
                    Some(LOG_COMMITTED) => Ok(()),
                    Some(other) => Err(other.to_owned()),
                    None => Err("its trailer does not say".into()),
                };
            }
            Err(data) if data.data_ref().is_some_and(|d| !d.is_empty()) => {
                return Err("the answer is longer than its signed body".into());
            }
            Err(_) => {}
        }
    }
    Err("the answer ended before its gateway confirmed the record".into())
}

/// A peer's `sign` certificate: issued by an approved CA, valid now, allowed by the crypto
/// policy, and good according to a fresh stapled OCSP response.
pub(crate) fn check_certificate(
    gateway: &Gateway,
    view: &TrustView,
    policy: &lienthong_model::conf::FederationPolicy,
    certificate: &CertificateInfo,
    staple: Option<&str>,
) -> Result<(), String> {
    let now = unix_now();
    let issuer = view
        .issuer_of(certificate)
        .ok_or("its certificate was not issued by an approved CA")?;
    if now < certificate.not_before || now > certificate.not_after {
        return Err("its certificate is not valid now".into());
    }
    if let Some(crypto) = lienthong_crypto::CryptoPolicy::by_name(&policy.crypto_policy) {
        crypto
            .check_key(&certificate.public_key)
            .map_err(|e| e.to_string())?;
    }
    let staple = staple
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or("no OCSP response for its certificate")?;
    let freshness = i64::try_from(policy.ocsp_freshness_seconds).unwrap_or(3600);
    match gateway
        .ocsp
        .check_staple(&staple, certificate, &issuer.certificate, freshness, now)?
    {
        VerifiedStatus::Good { .. } => Ok(()),
        VerifiedStatus::Revoked { time, .. } => {
            Err(format!("its certificate was revoked at {time}"))
        }
        VerifiedStatus::Unknown => Err("the OCSP responder does not know its certificate".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use http_body_util::StreamBody;
    use hyper::body::Frame;

    type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

    fn trailer(value: &str) -> Result<Frame<Bytes>, std::io::Error> {
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert(H_LOG, header_value(value));
        Ok(Frame::trailers(trailers))
    }

    fn data(bytes: &'static [u8]) -> Result<Frame<Bytes>, std::io::Error> {
        Ok(Frame::data(Bytes::from_static(bytes)))
    }

    /// The signed body (`length` bytes) read first, then the trailer's verdict.
    async fn read(frames: Frames, length: u64) -> (Vec<u8>, Result<(), String>) {
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut body = std::pin::pin!(body);
        let limits = crate::body::BodyLimits {
            max_bytes: 1 << 20,
            memory_bytes: 1 << 20,
            spool_dir: None,
        };
        let collected = crate::body::collect_first(body.as_mut(), &limits, length)
            .await
            .expect("body");
        let bytes = collected.body.copy_bytes(collected.length).expect("bytes");
        (bytes, provider_log_trailer(body.as_mut()).await)
    }

    #[tokio::test]
    async fn only_a_committed_trailer_after_the_signed_body_confirms_the_provider_log() {
        let (body, verdict) = read(vec![data(b"ab"), data(b"c"), trailer("committed")], 3).await;
        assert_eq!((body.as_slice(), verdict), (&b"abc"[..], Ok(())));
        // An empty body: nothing to read before the trailer.
        assert_eq!(read(vec![trailer("committed")], 0).await.1, Ok(()));

        let failed = read(vec![data(b"abc"), trailer("failed: disk full")], 3).await;
        assert_eq!(failed.1, Err("failed: disk full".into()));
        let silent = read(vec![data(b"abc")], 3).await.1.expect_err("no trailer");
        assert!(silent.contains("ended before"), "{silent}");
        let longer = read(vec![data(b"abc"), data(b"d"), trailer("committed")], 3).await;
        assert!(longer.1.expect_err("extra data").contains("longer"));
        let broken = vec![data(b"abc"), Err(std::io::Error::other("reset"))];
        assert!(
            read(broken, 3)
                .await
                .1
                .expect_err("broken")
                .contains("broke off")
        );
        let unsaid = vec![data(b"abc"), Ok(Frame::trailers(hyper::HeaderMap::new()))];
        assert!(
            read(unsaid, 3)
                .await
                .1
                .expect_err("unsaid")
                .contains("does not say")
        );
    }
}
