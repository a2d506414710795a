//! A large answer the provider's gateway streams with its signature in the HTTP/2
//! trailer (`SIGNED_IN_TRAILER` on the answer's head), as the client's gateway passes it
//! on to its client: its last chunk held until the trailer checks out and both gateways'
//! records are durable.

use crate::XRoadError;
use crate::body::GatewayBody;
use crate::config::BodyLogging;
use crate::gateway::{Gateway, unix_now, unix_now_ms};
use crate::message::{ResponseHeader, digest};
use crate::metrics::Stage;
use crate::proxy_common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Incoming;
use std::sync::Arc;

/// The trailer of a streamed answer whose head described it as `draft` (the digest
/// zeroed), checked against the `sha256` of the body read and the provider's
/// `public_key`: its description must be the head's with that digest, its signature must
/// verify, and it must say that the provider's record is durable. The signed description
/// and the signature's text, or why not.
fn check_answer_trailer(
    verifier: &lienthong_crypto::BatchVerifier,
    public_key: &lienthong_crypto::PublicKey,
    draft: &ResponseHeader,
    trailers: Option<&hyper::HeaderMap>,
    sha256: [u8; 32],
) -> Result<(Vec<u8>, String), String> {
    let trailers = trailers.ok_or("it has no trailer")?;
    let encoded = last_header(trailers, H_RESPONSE)
        .and_then(|v| STANDARD.decode(v).ok())
        .ok_or("no description in its trailer")?;
    let expected = ResponseHeader {
        body_sha256: sha256,
        ..draft.clone()
    };
    if expected.encode().ok().as_deref() != Some(encoded.as_slice()) {
        return Err("the trailer's description is not the head's with the body's digest".into());
    }
    let signature_text = last_header(trailers, H_SIGNATURE).ok_or("no signature in its trailer")?;
    let signature = lienthong_crypto::BatchSignature::from_text(signature_text)
        .map_err(|_| "a malformed signature")?;
    verifier
        .verify(public_key, &digest(&encoded), &signature)
        .map_err(|_| "the signature does not verify")?;
    match last_header(trailers, H_LOG) {
        Some(LOG_COMMITTED) => Ok((encoded, signature_text.to_owned())),
        other => Err(format!(
            "its gateway did not confirm its log record ({})",
            other.unwrap_or("no word")
        )),
    }
}

/// A large answer streamed by the provider's gateway (`draft`, its head's description, has
/// the digest zeroed), passed on to the local client as it comes. Its last chunk is held
/// back until the trailer has come with the same description and the body's digest, a
/// signature of it that verifies, and the provider's word that its record is durable, and
/// until this gateway's `record` of the exchange is durable too. Otherwise the client's
/// body ends in an error, short of its length.
pub(crate) fn pass_on(
    gateway: &Arc<Gateway>,
    body: Incoming,
    draft: ResponseHeader,
    certificate: Arc<lienthong_pki::CertificateInfo>,
    mut record: lienthong_ledger::LogRecord,
    request_for_log: Option<Vec<u8>>,
) -> GatewayBody {
    use crate::body::BodyError;
    let length = draft.body_length;
    let message_id = record.message_id.clone();
    let metrics = gateway.metrics.clone();
    let gateway = gateway.clone();
    let check = async move |trailers: Option<hyper::HeaderMap>, sha256, _| {
        let refuse = |why: String| {
            BodyError::Refused(Box::new(XRoadError::client_proxy(
                "InvalidSignatureValue",
                format!("the provider's streamed answer was refused: {why}"),
            )))
        };
        let (encoded, signature_text) = check_answer_trailer(
            &gateway.verifier,
            &certificate.public_key,
            &draft,
            trailers.as_ref(),
            sha256,
        )
        .map_err(refuse)?;
        record.response_description = Some(encoded);
        record.response_signature = Some(signature_text);
        record.response_body_sha256 = Some(sha256);
        record.response_out = Some(unix_now_ms());
        let bodies =
            crate::log_bodies::keep(&BodyLogging::Digest, &mut record, request_for_log, None)
                .map_err(|e| BodyError::Refused(Box::new(e)))?;
        let committed = gateway.journal.record(&record, bodies, unix_now());
        gateway
            .metrics
            .time(Stage::ClientLogCommit, committed)
            .await
            .map_err(|e| BodyError::Refused(Box::new(e)))?;
        // Counted before the last chunk goes, so that a client that has it sees the count.
        gateway.metrics.streamed_answer(true);
        Ok(())
    };
    let passed = crate::body::pass_through_checked(body, length, check);
    let verdict = passed.verdict;
    tokio::spawn(async move {
        let outcome = verdict.join().await;
        if !matches!(outcome, Ok(Ok(_))) {
            metrics.streamed_answer(false);
        }
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(message_id, %error, "a streamed answer was refused; the client's body ends short");
            }
            Err(error) => {
                tracing::warn!(message_id, %error, "the reader of a streamed answer ended");
            }
        }
    });
    passed.body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed answer's trailer is taken only with the head's description and the
    /// body's digest, a signature of that description by the provider's key, and the
    /// provider's word that its record is durable.
    #[tokio::test]
    async fn a_streamed_answers_trailer_is_checked_against_its_head_and_body() {
        use lienthong_crypto::{BatchSigner, BatchVerifier, SoftwareKey, Suite};
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let signer = BatchSigner::spawn(Arc::new(key), 1);
        let public_key = signer.public_key().clone();
        let verifier = BatchVerifier::new(0);
        let draft = ResponseHeader {
            message_id: "m-1".into(),
            request_hash: [1; 32],
            status: 200,
            time_ms: 1_700_000_000_000,
            content_type: "application/json".into(),
            body_sha256: [0; 32],
            body_length: 3,
        };
        let body_sha256 = digest(b"abc");
        let signed = |header: &ResponseHeader| header.encode().expect("encode");
        let whole = ResponseHeader {
            body_sha256,
            ..draft.clone()
        };
        let sign = async |encoded: &[u8]| {
            let signature = signer.sign(digest(encoded)).await.expect("sign");
            signature.to_text()
        };
        let trailer = |encoded: &[u8], signature: &str, log: Option<&str>| {
            let mut trailers = hyper::HeaderMap::new();
            trailers.insert(H_RESPONSE, header_value(&STANDARD.encode(encoded)));
            trailers.insert(H_SIGNATURE, header_value(signature));
            if let Some(log) = log {
                trailers.insert(H_LOG, header_value(log));
            }
            trailers
        };
        let check = |trailers: Option<&hyper::HeaderMap>, sha256| {
            check_answer_trailer(&verifier, &public_key, &draft, trailers, sha256)
        };
        let good_signature = sign(&signed(&whole)).await;
        let good = trailer(&signed(&whole), &good_signature, Some(LOG_COMMITTED));
        assert_eq!(
            check(Some(&good), body_sha256),
            Ok((signed(&whole), good_signature.clone()))
        );

        assert_eq!(check(None, body_sha256), Err("it has no trailer".into()));
        // A body other than the one signed.
        let other_body = check(Some(&good), digest(b"abd")).expect_err("refused");
        assert!(other_body.contains("not the head's"), "{other_body}");
        // A description unlike the head's (another status), signed.
        let unlike = ResponseHeader {
            status: 201,
            ..whole.clone()
        };
        let unlike_signature = sign(&signed(&unlike)).await;
        let unlike = trailer(&signed(&unlike), &unlike_signature, Some(LOG_COMMITTED));
        let refused = check(Some(&unlike), body_sha256).expect_err("refused");
        assert!(refused.contains("not the head's"), "{refused}");
        // The right description with the signature of another.
        let swapped = trailer(&signed(&whole), &unlike_signature, Some(LOG_COMMITTED));
        assert_eq!(
            check(Some(&swapped), body_sha256),
            Err("the signature does not verify".into())
        );
        let malformed = trailer(&signed(&whole), "not a signature", Some(LOG_COMMITTED));
        assert_eq!(
            check(Some(&malformed), body_sha256),
            Err("a malformed signature".into())
        );
        // No word of the provider's record, or a failure.
        for log in [None, Some("failed: disk full")] {
            let unconfirmed = trailer(&signed(&whole), &good_signature, log);
            let refused = check(Some(&unconfirmed), body_sha256).expect_err("refused");
            assert!(
                refused.contains("did not confirm its log record"),
                "{refused}"
            );
        }
    }
}
