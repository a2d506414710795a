//! The provider side: another gateway sends a signed request over mutual TLS. Before
//! anything reaches the provider's system this side checks the peer's binding to the
//! client, the signature, the signer's certificate and its status, the clock, replays and
//! the access right. The body must match its signed digest: it is checked before it is
//! forwarded, or, if large, as it streams to the service with its last chunk held back
//! until it matches. A request whose signature follows its body, in the trailer, is checked
//! the same way, its signature and replay once the body has come, before the last chunk
//! goes on. Then this side signs the service's answer with the provider member's key and
//! returns it.

use crate::XRoadError;
use crate::body::{BodyError, GatewayBody, collect, collect_first};
use crate::client_proxy::check_certificate;
use crate::gateway::{Gateway, unix_now, unix_now_ms};
use crate::message::{RequestHeader, ResponseHeader, digest};
use crate::metrics::{Side, Stage};
use crate::proxy_common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, Uri};
use lienthong_model::{ClientId, ServerId};
use lienthong_pki::{CertificateInfo, FederationIdentity};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// The authenticated peer of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The gateway the peer's auth certificate belongs to.
    pub server: ServerId,
}

/// Serve one request from a peer gateway.
pub async fn handle(
    gateway: Arc<Gateway>,
    peer: Arc<Peer>,
    request: Request<Incoming>,
) -> Response<GatewayBody> {
    let described = last_header(request.headers(), H_REQUEST)
        .and_then(|h| STANDARD.decode(h).ok())
        .and_then(|bytes| RequestHeader::decode(&bytes).ok());
    let message_id = described.as_ref().map(|h| h.message_id.clone());
    let (client, service) = crate::metrics::described_labels(described.as_ref());
    let counted = gateway.metrics.begin(Side::Provider, client, service);
    let span = tracing::info_span!("exchange", side = "provider", message_id = message_id.as_deref().unwrap_or("-"), peer = %peer.server);
    let response = async {
        let serve = |request| serve(&gateway, &peer, request);
        let served =
            crate::opmon::producer(&gateway, &peer.server, described.as_ref(), request, serve);
        match served.await {
            Ok(response) => response,
            Err(error) => {
                tracing::info!(peer = %peer.server, message_id = ?message_id, error = %error, "refused a request from a peer gateway");
                error.into_response(message_id.as_deref())
            }
        }
    };
    counted.finish(response.instrument(span).await)
}

async fn serve(
    gateway: &Arc<Gateway>,
    peer: &Peer,
    request: Request<Incoming>,
) -> Result<Response<GatewayBody>, XRoadError> {
    gateway.ops.accepting(Side::Provider)?;
    let conf = gateway
        .conf
        .usable(unix_now())
        .map_err(|e| XRoadError::server_proxy("OutdatedGlobalConf", e.to_string()))?;
    let view = gateway
        .trust
        .get()
        .ok_or_else(|| XRoadError::server_proxy("OutdatedGlobalConf", "no global configuration"))?;
    gateway.check_timestamping(XRoadError::server_proxy)?;
    let request_in = unix_now_ms();
    let (parts, body) = request.into_parts();
    let invalid = |why: String| XRoadError::server_proxy("InvalidRequest", why);
    let signature_error = |why: String| XRoadError::server_proxy("InvalidSignatureValue", why);

    // 1. The signed description, and that it describes this HTTP request.
    let encoded = last_header(&parts.headers, H_REQUEST)
        .and_then(|h| STANDARD.decode(h).ok())
        .ok_or_else(|| invalid("no signed request description".into()))?;
    let header = RequestHeader::decode(&encoded).map_err(|e| invalid(e.to_string()))?;
    // A large body streamed by the client's gateway: its signature follows it, in the
    // trailer, and the head's description has the body's digest zeroed.
    let signed_late = last_header(&parts.headers, H_SIGNED) == Some(SIGNED_IN_TRAILER);
    if signed_late && parts.version != hyper::Version::HTTP_2 {
        return Err(invalid("a signature in the trailer needs HTTP/2".into()));
    }
    let path = parse_r1(parts.uri.path()).map_err(|e| invalid(e.message))?;
    if header.method != parts.method.as_str()
        || header.service != path.service
        || header.path != path.rest
        || header.query != parts.uri.query().unwrap_or("")
    {
        return Err(signature_error(
            "the request differs from what was signed".into(),
        ));
    }

    // 2. The peer gateway must be one that serves the client.
    if !view.serves(&peer.server, &header.client) {
        return Err(XRoadError::server_proxy(
            "SslAuthenticationFailed",
            format!("gateway {} does not act for {}", peer.server, header.client),
        ));
    }

    // 3. The signer's certificate: the client's member, approved CA, fresh good status.
    let certificate = last_header(&parts.headers, H_CERTIFICATE)
        .and_then(|c| gateway.signer_certificates.parse(c))
        .ok_or_else(|| signature_error("no signer certificate".into()))?;
    if certificate.identity != Some(FederationIdentity::Member(header.client.member().clone())) {
        return Err(signature_error(format!(
            "the signing certificate is not {}'s",
            header.client.member()
        )));
    }
    check_certificate(
        gateway,
        &view,
        &conf.conf.policy,
        &certificate,
        last_header(&parts.headers, H_OCSP),
    )
    .map_err(|why| XRoadError::server_proxy("CertValidation", format!("the client's {why}")))?;

    // 4-5. The signature, the clock and replays; for a signature in the trailer, once the
    // body has come (step 7), before its last chunk reaches the service.
    let signed_now = if signed_late {
        None
    } else {
        let signature_text = last_header(&parts.headers, H_SIGNATURE)
            .ok_or_else(|| signature_error("no signature".into()))?;
        let signed = verify_signed(
            gateway,
            &certificate,
            encoded,
            header.clone(),
            signature_text.to_owned(),
        );
        Some(signed.await?)
    };

    // 6. The service and the access right (deny by default).
    let provider = header.service.provider();
    if !view.serves(gateway.server_id(), &ClientId::Subsystem(provider.clone())) {
        return Err(XRoadError::server_proxy(
            "UnknownService",
            format!("{provider} is not served by this gateway"),
        ));
    }
    let provider_key = gateway
        .members
        .get(provider.member())
        .ok_or_else(|| {
            XRoadError::server_proxy(
                "UnknownService",
                format!("this gateway holds no key of {}", provider.member()),
            )
        })?
        .clone();
    let is_meta = crate::meta::METASERVICES.contains(&header.service.code());
    let service = if is_meta {
        None
    } else {
        let service = gateway
            .catalog
            .service(provider, header.service.code())
            .ok_or_else(|| {
                XRoadError::server_proxy(
                    "UnknownService",
                    format!("unknown service {}", header.service),
                )
            })?;
        if !gateway.catalog.is_allowed(
            &header.client,
            &service,
            parts.method.as_str(),
            &path.rest_or_root(),
            &conf.conf,
        ) {
            return Err(XRoadError::server_proxy(
                "AccessDenied",
                format!(
                    "{} may not use {} {} of {}",
                    header.client,
                    parts.method,
                    path.rest_or_root(),
                    header.service
                ),
            ));
        }
        Some(service)
    };

    // 7. The body must be the one that was signed. A large one for a service whose log
    // keeps digests only is passed through to the service as it comes, its last chunk held
    // back until it matches (the service never gets a whole body that was not signed);
    // any other is read and checked before anything is forwarded.
    let logging = gateway.body_logging(header.service.provider());
    let pass = service.is_some()
        && *logging == crate::config::BodyLogging::Digest
        && header.body_length > gateway.limits.memory_bytes as u64;
    if pass && header.body_length > gateway.limits.max_bytes {
        return Err(invalid(
            crate::body::BodyError::TooLarge {
                limit: gateway.limits.max_bytes,
            }
            .to_string(),
        ));
    }
    let (collected, verdict, signed_now) = if pass {
        let passed = match signed_now {
            Some(signed) => {
                let sha256 = signed.header.body_sha256;
                crate::body::pass_through(body, sha256, header.body_length, signed)
            }
            None => {
                let (gateway, certificate, draft) =
                    (gateway.clone(), certificate.clone(), header.clone());
                let check = async move |trailers, read, length| {
                    verify_trailer(&gateway, &certificate, draft, trailers, read, length)
                        .await
                        .map_err(|e| BodyError::Refused(Box::new(e)))
                };
                crate::body::pass_through_checked(body, header.body_length, check)
            }
        };
        (None, Some((passed.body, passed.verdict)), None)
    } else {
        let mut body = std::pin::pin!(body);
        let wanted = if signed_late {
            header.body_length
        } else {
            u64::MAX
        };
        let read = async {
            let collected = collect_first(body.as_mut(), &gateway.limits, wanted).await?;
            let trailers = if signed_late {
                crate::body::trailers(body.as_mut()).await?
            } else {
                None
            };
            Ok::<_, BodyError>((collected, trailers))
        };
        let (collected, trailers) = gateway
            .metrics
            .time(Stage::ProviderBodyRead, read)
            .await
            .map_err(|e| match e {
                BodyError::Mismatch => {
                    signature_error("the body does not match the signed digest".into())
                }
                other => invalid(other.to_string()),
            })?;
        let signed = match signed_now {
            Some(signed) => {
                if collected.sha256 != signed.header.body_sha256
                    || collected.length != signed.header.body_length
                {
                    return Err(signature_error(
                        "the body does not match the signed digest".into(),
                    ));
                }
                signed
            }
            None => {
                let (sha256, length) = (collected.sha256, collected.length);
                verify_trailer(
                    gateway,
                    &certificate,
                    header.clone(),
                    trailers,
                    sha256,
                    length,
                )
                .await?
            }
        };
        (Some(collected), None, Some(signed))
    };
    let request_for_log = collected.as_ref().and_then(|collected| {
        gateway.body_for_log(logging, collected, lienthong_ledger::BodyPart::Request)
    });

    // 8. The service (or a metaservice) answers.
    let mut backend_times = (None, None);
    let mut signed_passed = None;
    let (status, mut response_headers, response_body) = match service {
        None => {
            let (status, content_type, body) =
                metaservice(gateway, &header, &parts.uri, &conf.conf);
            let mut headers = hyper::HeaderMap::new();
            headers.insert(CONTENT_TYPE, header_value(content_type));
            if status.is_client_error() {
                headers.insert(
                    "x-road-error",
                    header_value(
                        &serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["type"].as_str().map(str::to_owned))
                            .unwrap_or_default(),
                    ),
                );
            }
            (
                status,
                headers,
                Answer::Whole(crate::body::Collected {
                    sha256: digest(&body),
                    length: body.len() as u64,
                    body: crate::body::Spooled::Memory(body.into()),
                }),
            )
        }
        Some(service) => {
            let target: Uri = format!(
                "{}{}{}",
                service.base_url.trim_end_matches('/'),
                path.rest,
                parts
                    .uri
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default()
            )
            .parse()
            .map_err(|_| {
                XRoadError::server_proxy("ServiceFailed", "the service URL is invalid".to_owned())
            })?;
            let (forward_body, verdict) = match (collected, verdict) {
                (Some(collected), _) => (collected.body.into_body(), None),
                (None, Some((body, verdict))) => (body, Some(verdict)),
                (None, None) => {
                    return Err(XRoadError::server_proxy(
                        "InternalError",
                        "the request body was neither read nor passed through".to_owned(),
                    ));
                }
            };
            let mut forward = Request::builder()
                .method(parts.method.clone())
                .uri(target)
                .body(forward_body)
                .map_err(|e| XRoadError::server_proxy("InternalError", e.to_string()))?;
            let mut headers = parts.headers.clone();
            strip_headers(&mut headers);
            // What the provider sees is what was signed, not what the headers claim.
            for (name, value) in [
                ("x-road-userid", &header.user_id),
                ("x-road-issue", &header.issue),
                ("x-road-represented-party", &header.represented_party),
                ("content-type", &header.content_type),
            ] {
                headers.remove(name);
                if !value.is_empty() {
                    headers.insert(name, header_value(value));
                }
            }
            headers.insert("x-road-client", header_value(&header.client.to_string()));
            headers.insert("x-road-service", header_value(&header.service.to_string()));
            headers.insert("x-road-id", header_value(&header.message_id));
            *forward.headers_mut() = headers;
            let timeout = Duration::from_millis(service.timeout_ms.max(1));
            let backend = gateway.backends.for_settings(&service.backend_tls)?;
            backend_times.0 = Some(unix_now_ms());
            let call = gateway
                .metrics
                .time(Stage::ProviderCall, backend.request(forward));
            // A body passed through must have come whole and matched before the answer
            // counts: the service's answer to any other is dropped. If the call failed,
            // the verdict counts only if the reader had refused the body (the failure may
            // be that refusal); otherwise the service failed, and the rest of the body is
            // not waited for.
            let called = async {
                let answer = call.await;
                let verdict = match verdict {
                    Some(verdict) if answer.is_ok() || verdict.refused() => {
                        Some(verdict.join().await)
                    }
                    _ => None,
                };
                (answer, verdict)
            };
            let (answer, verdict) = tokio::time::timeout(timeout, called).await.map_err(|_| {
                XRoadError::server_proxy(
                    "ServiceFailed",
                    format!("{} did not answer within {timeout:?}", header.service),
                )
            })?;
            match verdict {
                None => {}
                Some(Ok(Ok((read, signed)))) => {
                    gateway.metrics.observe(Stage::ProviderBodyRead, read);
                    signed_passed = Some(signed);
                }
                Some(Ok(Err(BodyError::Mismatch))) => {
                    return Err(signature_error(
                        "the body does not match the signed digest".into(),
                    ));
                }
                Some(Ok(Err(BodyError::Refused(error)))) => return Err(*error),
                Some(Ok(Err(error))) => return Err(invalid(error.to_string())),
                Some(Err(error)) => {
                    return Err(XRoadError::server_proxy(
                        "InternalError",
                        format!("the body's reader ended: {error}"),
                    ));
                }
            }
            let answer = answer.map_err(|e| {
                XRoadError::server_proxy(
                    "ServiceFailed",
                    format!("{} could not be reached: {e}", header.service),
                )
            })?;
            backend_times.1 = Some(unix_now_ms());
            let (answer_parts, answer_body) = answer.into_parts();
            // A large answer of declared length, for a client's gateway that takes it so
            // and a client whose log here keeps digests, goes on as the service sends it,
            // signed in the trailer.
            let streamed = declared_length(&answer_parts.headers)
                .filter(|length| *length > gateway.limits.memory_bytes as u64)
                .filter(|_| {
                    *logging == crate::config::BodyLogging::Digest
                        && parts.version == hyper::Version::HTTP_2
                        && last_header(&parts.headers, H_ACCEPT_SIGNED) == Some(SIGNED_IN_TRAILER)
                        && last_header(&parts.headers, H_LOG) == Some(LOG_IN_TRAILER)
                });
            let answer_body = match streamed {
                Some(length) if length > gateway.limits.max_bytes => {
                    return Err(XRoadError::server_proxy(
                        "ServiceFailed",
                        format!(
                            "the service's answer is larger than this gateway's limit of {} bytes",
                            gateway.limits.max_bytes
                        ),
                    ));
                }
                Some(length) => Answer::Streamed {
                    body: answer_body,
                    length,
                },
                None => Answer::Whole(
                    collect(answer_body, &gateway.limits)
                        .await
                        .map_err(|e| XRoadError::server_proxy("ServiceFailed", e.to_string()))?,
                ),
            };
            let mut headers = answer_parts.headers;
            strip_headers(&mut headers);
            headers.remove("x-road-error"); // only the platform may say it refused
            (answer_parts.status, headers, answer_body)
        }
    };

    // The request as signed (for a signature in the trailer, the description there).
    let Some(SignedRequest {
        encoded,
        header,
        hash: request_hash,
        signature: signature_text,
    }) = signed_now.or(signed_passed)
    else {
        return Err(XRoadError::server_proxy(
            "InternalError",
            "the request's signature was not checked".to_owned(),
        ));
    };

    // 9. Sign the answer, bound to this request (a streamed one once it has been sent,
    // in the trailer).
    let (response_sha256, response_length) = match &response_body {
        Answer::Whole(collected) => (collected.sha256, collected.length),
        Answer::Streamed { length, .. } => ([0; 32], *length),
    };
    let response_header = ResponseHeader {
        message_id: header.message_id.clone(),
        request_hash,
        status: status.as_u16(),
        time_ms: unix_now_ms(),
        content_type: response_headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body_sha256: response_sha256,
        body_length: response_length,
    };
    let encoded_response = response_header
        .encode()
        .map_err(|e| XRoadError::server_proxy("InternalError", e.to_string()))?;
    let ocsp = provider_key
        .ocsp_header
        .read()
        .ok()
        .and_then(|v| v.clone())
        .ok_or_else(|| {
            XRoadError::server_proxy(
                "CertValidation",
                "no fresh OCSP response for the provider's sign certificate",
            )
        })?;
    // 10. Nothing is acknowledged before its record is durable in the message log.
    let mut record = lienthong_ledger::LogRecord {
        message_id: header.message_id.clone(),
        side: lienthong_ledger::Side::Provider,
        client: header.client.to_string(),
        service: header.service.to_string(),
        request_in,
        request_out: backend_times.0,
        response_in: backend_times.1,
        response_out: Some(unix_now_ms()),
        request_description: encoded.clone(),
        response_description: Some(encoded_response.clone()),
        request_signature: signature_text,
        response_signature: None,
        request_signer_certificate: certificate.der.clone(),
        response_signer_certificate: Some(provider_key.certificate.der.clone()),
        request_signer_ocsp: last_header(&parts.headers, H_OCSP)
            .and_then(|s| STANDARD.decode(s).ok()),
        response_signer_ocsp: ocsp.to_str().ok().and_then(|s| STANDARD.decode(s).ok()),
        request_body_sha256: header.body_sha256,
        response_body_sha256: Some(response_sha256),
        status: status.as_u16(),
        body: lienthong_ledger::BodyEvidence::DigestOnly,
    };
    // The description (of a streamed answer, with the digest zeroed) and the signer.
    response_headers.insert(
        H_RESPONSE,
        per_message_value(&STANDARD.encode(&encoded_response)),
    );
    response_headers.insert(H_CERTIFICATE, provider_key.certificate_header.clone());
    response_headers.insert(H_OCSP, ocsp);
    let response_body = match response_body {
        Answer::Whole(collected) => collected,
        Answer::Streamed { body, length } => {
            response_headers.insert(H_SIGNED, header_value(SIGNED_IN_TRAILER));
            response_headers.insert(H_LOG, header_value(LOG_PENDING));
            let gateway = gateway.clone();
            let finish = async move |sha256, _| {
                sign_and_record_late(&gateway, &provider_key, response_header, record, sha256)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "a streamed answer could not be signed and recorded; its receiver gets an incomplete body");
                        BodyError::Refused(Box::new(e))
                    })
            };
            let mut response =
                Response::new(crate::body::stream_with_trailers(body, length, finish));
            *response.status_mut() = status;
            *response.headers_mut() = response_headers;
            return Ok(response);
        }
    };
    let response_signature = sign_response(gateway, &provider_key, &encoded_response).await?;
    record.response_signature = Some(response_signature.clone());
    let response_for_log = gateway.body_for_log(
        logging,
        &response_body,
        lienthong_ledger::BodyPart::Response,
    );
    let bodies = crate::log_bodies::keep(logging, &mut record, request_for_log, response_for_log)?;
    // A client gateway that takes the commit as a trailer gets the answer's bytes while the
    // record is being committed, and releases nothing before the trailer says it is
    // durable: its own commit runs meanwhile instead of after this one. Anyone else gets
    // the answer only once the record is durable.
    let log_in_trailer = parts.version == hyper::Version::HTTP_2
        && last_header(&parts.headers, H_LOG) == Some(LOG_IN_TRAILER);
    let logged = if log_in_trailer {
        response_headers.insert(H_LOG, header_value(LOG_PENDING));
        Some(gateway.journal.record_in_background(
            &record,
            bodies,
            unix_now(),
            gateway.metrics.clone(),
            Stage::ProviderLogCommit,
        ))
    } else {
        let committed = gateway.journal.record(&record, bodies, unix_now());
        gateway
            .metrics
            .time(Stage::ProviderLogCommit, committed)
            .await?;
        None
    };
    response_headers.insert(H_SIGNATURE, per_message_value(&response_signature));
    let body = response_body.body.into_body();
    let body = match logged {
        Some(logged) => body.with_trailers(log_trailer(logged)).boxed_unsync(),
        None => body,
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Ok(response)
}

/// The service's answer: read whole, or to be streamed on (its declared length).
enum Answer {
    Whole(crate::body::Collected),
    Streamed { body: Incoming, length: u64 },
}

/// The end of a streamed answer, once its last byte has gone: the description with the
/// digest filled in, signed, and the provider's record (`record`, made for the head with
/// the digest zeroed and no signature) durable; the trailer that says so.
async fn sign_and_record_late(
    gateway: &Gateway,
    provider_key: &crate::MemberKey,
    mut header: ResponseHeader,
    mut record: lienthong_ledger::LogRecord,
    sha256: [u8; 32],
) -> Result<hyper::HeaderMap, XRoadError> {
    header.body_sha256 = sha256;
    let encoded = header
        .encode()
        .map_err(|e| XRoadError::server_proxy("InternalError", e.to_string()))?;
    let signature = sign_response(gateway, provider_key, &encoded).await?;
    record.response_description = Some(encoded.clone());
    record.response_signature = Some(signature.clone());
    record.response_body_sha256 = Some(sha256);
    record.response_out = Some(unix_now_ms());
    let committed = gateway.journal.record(&record, None, unix_now());
    gateway
        .metrics
        .time(Stage::ProviderLogCommit, committed)
        .await?;
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert(H_RESPONSE, per_message_value(&STANDARD.encode(&encoded)));
    trailers.insert(H_SIGNATURE, per_message_value(&signature));
    trailers.insert(H_LOG, header_value(LOG_COMMITTED));
    Ok(trailers)
}

/// The provider's signature of an answer's description, as text.
async fn sign_response(
    gateway: &Gateway,
    provider_key: &crate::MemberKey,
    encoded: &[u8],
) -> Result<String, XRoadError> {
    let signed = provider_key.signer.sign(digest(encoded));
    Ok(gateway
        .metrics
        .time(Stage::ProviderSigning, signed)
        .await
        .map_err(|e| XRoadError::server_proxy("CannotCreateSignature", e.to_string()))?
        .to_text())
}

/// A request's description whose signature verified, not a replay.
struct SignedRequest {
    encoded: Vec<u8>,
    header: RequestHeader,
    /// SHA-256 of `encoded`: what the answer is bound to.
    hash: [u8; 32],
    signature: String,
}

/// Steps 4 and 5: the signature over `encoded` by `certificate`'s key, then the clock and
/// replays.
async fn verify_signed(
    gateway: &Gateway,
    certificate: &CertificateInfo,
    encoded: Vec<u8>,
    header: RequestHeader,
    signature_text: String,
) -> Result<SignedRequest, XRoadError> {
    let signature_error = |why: String| XRoadError::server_proxy("InvalidSignatureValue", why);
    let signature = lienthong_crypto::BatchSignature::from_text(&signature_text)
        .map_err(|e| signature_error(format!("malformed signature: {e}")))?;
    let hash = digest(&encoded);
    gateway
        .verifier
        .verify(&certificate.public_key, &hash, &signature)
        .map_err(|_| signature_error("the signature does not verify".into()))?;
    gateway
        .replay
        .check(
            &header.message_id,
            &signature_text,
            header.time_ms,
            unix_now_ms(),
        )
        .await
        .map_err(|why| XRoadError::server_proxy("ReplayedMessage", why))?;
    Ok(SignedRequest {
        encoded,
        header,
        hash,
        signature: signature_text,
    })
}

/// A streamed body's end: the description and signature in its `trailers` must describe
/// the head's `draft` with the body's digest filled in, match the body read (`sha256`,
/// `length`), and verify ([`verify_signed`]).
async fn verify_trailer(
    gateway: &Gateway,
    certificate: &CertificateInfo,
    draft: RequestHeader,
    trailers: Option<hyper::HeaderMap>,
    sha256: [u8; 32],
    length: u64,
) -> Result<SignedRequest, XRoadError> {
    let signature_error =
        |why: &str| XRoadError::server_proxy("InvalidSignatureValue", why.to_owned());
    let trailers = trailers
        .ok_or_else(|| signature_error("the request's body ended without its signature"))?;
    let encoded = last_header(&trailers, H_REQUEST)
        .and_then(|h| STANDARD.decode(h).ok())
        .ok_or_else(|| signature_error("no signed request description in the trailer"))?;
    let header = RequestHeader::decode(&encoded)
        .map_err(|e| XRoadError::server_proxy("InvalidRequest", e.to_string()))?;
    let announced = RequestHeader {
        body_sha256: header.body_sha256,
        ..draft
    };
    if header != announced {
        return Err(signature_error(
            "the signed request differs from the one its head described",
        ));
    }
    if header.body_sha256 != sha256 || header.body_length != length {
        return Err(signature_error("the body does not match the signed digest"));
    }
    let signature = last_header(&trailers, H_SIGNATURE)
        .ok_or_else(|| signature_error("no signature in the trailer"))?;
    verify_signed(gateway, certificate, encoded, header, signature.to_owned()).await
}

/// The trailer that says whether the provider's record of the exchange is durable.
async fn log_trailer(
    logged: crate::journal::Committing,
) -> Option<Result<hyper::HeaderMap, std::io::Error>> {
    let outcome = match logged.await {
        Ok(_) => LOG_COMMITTED.to_owned(),
        Err(error) => format!("failed: {}", error.message),
    };
    // A header value is visible ASCII: anything else in an error's text is replaced.
    let outcome: String = outcome
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert(H_LOG, header_value(&outcome));
    Some(Ok(trailers))
}

fn metaservice(
    gateway: &Gateway,
    header: &RequestHeader,
    uri: &Uri,
    conf: &lienthong_model::conf::GlobalConf,
) -> (hyper::StatusCode, &'static str, Vec<u8>) {
    let provider = header.service.provider();
    let result = match header.service.code() {
        "listMethods" => Ok(crate::meta::list_methods(&gateway.catalog, provider)),
        "allowedMethods" => Ok(crate::meta::allowed_methods(
            &gateway.catalog,
            provider,
            &header.client,
            conf,
        )),
        _ => {
            let service_code = uri.query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "serviceCode")
                    .map(|(_, v)| {
                        percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
            });
            crate::meta::get_openapi(&gateway.catalog, provider, service_code.as_deref())
        }
    };
    match result {
        Ok(answer) => (hyper::StatusCode::OK, answer.content_type, answer.body),
        Err(error) => {
            let mut body = error.body();
            body.detail = header.message_id.clone();
            (
                error.status(),
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
    }
}

impl R1Path {
    /// The rest of the path as access rights see it: `/` when empty.
    pub(crate) fn rest_or_root(&self) -> String {
        if self.rest.is_empty() {
            "/".into()
        } else {
            self.rest.clone()
        }
    }
}
