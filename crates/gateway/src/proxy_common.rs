//! Pieces both proxies use: the `/r1/` path, header hygiene, the inter-gateway headers.

use crate::XRoadError;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use lienthong_model::{MemberId, ServiceId, SubsystemId};
use lienthong_pki::CertificateInfo;
use percent_encoding::percent_decode_str;

/// The signed request description (base64).
pub(crate) const H_REQUEST: &str = "x-lienthong-request";
/// The signed response description (base64).
pub(crate) const H_RESPONSE: &str = "x-lienthong-response";
/// The batch signature over the description.
pub(crate) const H_SIGNATURE: &str = "x-lienthong-signature";
/// The signer's `sign` certificate (base64 DER).
pub(crate) const H_CERTIFICATE: &str = "x-lienthong-certificate";
/// A fresh OCSP response for that certificate (base64 DER).
pub(crate) const H_OCSP: &str = "x-lienthong-ocsp";
/// On a request: the client's gateway takes the provider's log commit as a trailer
/// ([`LOG_IN_TRAILER`]). On the answer's head: [`LOG_PENDING`], the commit follows in the
/// trailer; in the trailer: [`LOG_COMMITTED`], or `failed: <why>`.
pub(crate) const H_LOG: &str = "x-lienthong-log";
/// [`H_LOG`] on a request.
pub(crate) const LOG_IN_TRAILER: &str = "trailer";
/// [`H_LOG`] on an answer's head.
pub(crate) const LOG_PENDING: &str = "pending";
/// [`H_LOG`] in an answer's trailer when the provider's record is durable.
pub(crate) const LOG_COMMITTED: &str = "committed";
/// On a request's head, [`SIGNED_IN_TRAILER`]: a large body streamed as the client's gateway
/// reads it. The head's [`H_REQUEST`] then describes the request with the body's digest
/// zeroed (its length is the one the client declared) and carries no [`H_SIGNATURE`]; the
/// trailer carries the whole description and its signature, and the two descriptions must
/// differ in the digest only.
pub(crate) const H_SIGNED: &str = "x-lienthong-signed";
/// [`H_SIGNED`] on a request whose signature is in its trailer.
///
/// On an answer's head, the same for a large answer streamed by the provider's gateway as
/// the service sends it: the head's [`H_RESPONSE`] has the body's digest zeroed and no
/// [`H_SIGNATURE`] comes with it; the trailer carries the whole description, its
/// signature, and [`H_LOG`] once the provider's record is durable.
pub(crate) const SIGNED_IN_TRAILER: &str = "trailer";
/// On a request, [`SIGNED_IN_TRAILER`]: the client's gateway takes a large answer streamed
/// with its signature in the trailer (see [`SIGNED_IN_TRAILER`]). Sent only for a client
/// whose log keeps digests, since a streamed answer is never whole at the gateway.
pub(crate) const H_ACCEPT_SIGNED: &str = "x-lienthong-accept-signed";

/// The length a body's sender declared for it, if it did (`Content-Length`).
pub(crate) fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    last_header(headers, "content-length").and_then(|v| v.parse().ok())
}

/// Signer certificates as they arrive in [`H_CERTIFICATE`], parsed once. Every message
/// carries its signer's certificate; decoding the base64 and parsing the DER (with its public
/// key) was 3 % of a gateway's CPU under load. The key is the header's exact text, so a
/// hit gives exactly what parsing that text would. Nothing here is trusted: the callers
/// still check the issuer, validity, status and identity for every message.
#[derive(Debug, Default)]
pub(crate) struct SignerCertificates {
    parsed: std::sync::Mutex<std::collections::HashMap<Box<str>, std::sync::Arc<CertificateInfo>>>,
}

/// Distinct signer certificates remembered before the memory starts again.
const SIGNER_CERTIFICATES_CAPACITY: usize = 1024;

impl SignerCertificates {
    /// The certificate in a header's base64 text, or `None` if it is not one.
    pub(crate) fn parse(&self, text: &str) -> Option<std::sync::Arc<CertificateInfo>> {
        use base64::Engine as _;
        if let Some(hit) = self.parsed.lock().ok()?.get(text) {
            return Some(hit.clone());
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let certificate = std::sync::Arc::new(CertificateInfo::from_der(&der).ok()?);
        if let Ok(mut parsed) = self.parsed.lock() {
            if parsed.len() >= SIGNER_CERTIFICATES_CAPACITY {
                parsed.clear();
            }
            parsed.insert(text.into(), certificate.clone());
        }
        Some(certificate)
    }
}

/// A parsed `/r1/{instance}/{class}/{member}/{subsystem}/{service}[/rest]` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct R1Path {
    pub(crate) service: ServiceId,
    /// Everything after the service code, exactly as received (may be empty).
    pub(crate) rest: String,
}

/// Parse the path of an X-Road REST request; each identifier part is percent-decoded on
/// its own (pr-rest), the rest of the path is kept as received.
pub(crate) fn parse_r1(path: &str) -> Result<R1Path, XRoadError> {
    let invalid = |why: String| XRoadError::client("InvalidRequest", why);
    let tail = path
        .strip_prefix("/r1/")
        .ok_or_else(|| invalid("the path must start with /r1/".into()))?;
    let mut parts = tail.splitn(6, '/');
    let mut next = |what: &str| -> Result<String, XRoadError> {
        let raw = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| {
            invalid(format!("the path must be /r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE[/...]; {what} is missing"))
        })?;
        percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| invalid(format!("{what} is not valid UTF-8")))
    };
    let instance = next("instance")?;
    let class = next("member class")?;
    let member = next("member code")?;
    let subsystem = next("subsystem code")?;
    let code = next("service code")?;
    let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
    let member = MemberId::new(&instance, &class, &member).map_err(|e| invalid(e.to_string()))?;
    let provider = SubsystemId::new(member, &subsystem).map_err(|e| invalid(e.to_string()))?;
    let service = ServiceId::new(provider, &code, None).map_err(|e| invalid(e.to_string()))?;
    Ok(R1Path { service, rest })
}

/// Headers never forwarded: hop-by-hop (RFC 9110 7.6.1), those named in `Connection`,
/// `Host`, `User-Agent`, `Server`, `Content-Length` (recomputed), our own inter-gateway
/// headers and the X-Road headers the gateways set themselves. (`X-Road-Error` is removed
/// where it could be forged: from local requests and from provider systems' answers.)
pub(crate) fn strip_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    // One pass over the (few) headers present, where removing each of these names in turn
    // parsed and looked up twenty names for every message.
    let stripped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| never_forwarded(name.as_str()))
        .cloned()
        .collect();
    for name in stripped {
        headers.remove(name);
    }
}

/// The names [`strip_headers`] removes whatever `Connection` says (lower case, as
/// `HeaderName`s are).
fn never_forwarded(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "user-agent"
            | "server"
            | "content-length"
            | H_REQUEST
            | H_RESPONSE
            | H_SIGNATURE
            | H_CERTIFICATE
            | H_OCSP
            | H_LOG
            | H_SIGNED
            | "x-road-request-hash"
            | "x-road-request-id"
    )
}

/// The last value of a header (X-Road: the last one wins), as text.
pub(crate) fn last_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
}

/// A header value from text that is known to be header-safe (base64, identifiers).
pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A header value that is new with every message (a signed description, a batch signature):
/// sent to the peer gateway as "never indexed" in HTTP/2's header compression. The peer's
/// compression table then keeps what repeats from message to message (the signer's
/// certificate and its OCSP response, over 1.5 KB) instead of churning through values that
/// never come again, and those go as a table index of a byte or two.
pub(crate) fn per_message_value(text: &str) -> HeaderValue {
    let mut value = header_value(text);
    value.set_sensitive(true);
    value
}

/// A fresh message identifier: 128 bits as 32 hex digits, the first 48 the time in Unix
/// milliseconds and the other 80 random, in the order of a UUIDv7. Identifiers made one
/// after another sort in time, so the message log's index on them grows at its end: a
/// commit of k records changes about one page of that index instead of k pages at random
/// places (each a 4 KiB write to the write-ahead log, its fsync and its checkpoint). The
/// 80 random bits keep them unguessable and unique.
pub(crate) fn message_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = lienthong_crypto::fill_random(&mut bytes[6..]);
    let ms = u64::try_from(crate::gateway::unix_now_ms()).unwrap_or_default();
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    crate::trust::hex(&bytes)
}

/// A fresh random identifier (128 bits, hex).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = lienthong_crypto::fill_random(&mut bytes);
    crate::trust::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hop-by-hop headers, those `Connection` names, and the gateways' own are removed
    /// (every value of each); the rest stay as they were.
    #[test]
    fn strip_headers_keeps_only_end_to_end_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "X-Custom-Hop, keep-alive"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("host", "gateway.example"),
            ("content-length", "12"),
            ("user-agent", "curl"),
            (H_SIGNATURE, "v1;forged"),
            (H_LOG, "forged"),
            ("x-road-request-id", "forged"),
            ("accept", "application/json"),
            ("x-road-client", "VN/GOV/000101/app"),
            ("x-road-client", "VN/GOV/000101/other"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_headers(&mut headers);
        let mut left: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("text").to_owned()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ("accept".to_owned(), "application/json".to_owned()),
                ("x-road-client".to_owned(), "VN/GOV/000101/app".to_owned()),
                ("x-road-client".to_owned(), "VN/GOV/000101/other".to_owned()),
            ]
        );
    }

    /// Message identifiers are 32 hex digits that sort in the order they were made (one
    /// millisecond apart at least), and differ when made in the same millisecond.
    #[test]
    fn message_ids_sort_in_time_and_differ() {
        let first = message_id();
        let same_ms: Vec<String> = (0..1000).map(|_| message_id()).collect();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = message_id();
        for id in [&first, &later] {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        assert!(first < later, "{first} !< {later}");
        let ms = |id: &str| u64::from_str_radix(&id[..12], 16).expect("hex");
        let now = u64::try_from(crate::gateway::unix_now_ms()).expect("after 1970");
        assert!(
            now - ms(&later) < 60_000,
            "time prefix {} far from {now}",
            ms(&later)
        );
        let distinct: std::collections::HashSet<&String> = same_ms.iter().collect();
        assert_eq!(distinct.len(), same_ms.len());
    }

    /// A root certificate's DER, parsed by the cache: the same text gives the same parsed
    /// certificate (from memory the second time), anything else is not a certificate.
    #[test]
    fn signer_certificates_parse_once_and_refuse_garbage() {
        use base64::Engine as _;
        use lienthong_crypto::{CryptoPolicy, SoftwareKey, Suite};
        use lienthong_pki::{CertificateAuthority, Serial};
        use std::time::{Duration, SystemTime};
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let now = SystemTime::now();
        let ca = CertificateAuthority::create_root(
            std::sync::Arc::new(key),
            "Test Federation",
            "Test Root CA",
            &Serial::random().expect("serial"),
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
            CryptoPolicy::vn(),
        )
        .expect("root");
        let text = base64::engine::general_purpose::STANDARD.encode(&ca.certificate().der);
        let cache = SignerCertificates::default();
        let first = cache.parse(&text).expect("a certificate");
        assert_eq!(first.der, ca.certificate().der);
        assert_eq!(first.public_key, ca.certificate().public_key);
        let again = cache.parse(&text).expect("a certificate");
        assert!(std::sync::Arc::ptr_eq(&first, &again), "parsed once");
        assert!(cache.parse("not base64!").is_none());
        assert!(
            cache.parse("AAAA").is_none(),
            "base64, but not a certificate"
        );
        let mut tampered = ca.certificate().der.clone();
        tampered.truncate(tampered.len() - 1);
        let tampered = base64::engine::general_purpose::STANDARD.encode(&tampered);
        assert!(cache.parse(&tampered).is_none());
    }

    #[test]
    fn r1_paths() {
        let p = parse_r1("/r1/VN/GOV/000123/citizen-registry/persons/123/address").expect("parse");
        assert_eq!(
            p.service.to_string(),
            "VN/GOV/000123/citizen-registry/persons"
        );
        assert_eq!(p.rest, "/123/address");
        let p = parse_r1("/r1/VN/GOV/1/sub/svc").expect("parse");
        assert_eq!(p.rest, "");
        let p = parse_r1("/r1/VN/GOV/1%2B2/sub/svc/").expect("parse");
        assert_eq!(p.service.provider().member().code(), "1+2");
        assert_eq!(p.rest, "/");
        for bad in [
            "/r2/VN/GOV/1/sub/svc",
            "/r1/VN/GOV/1/sub",
            "/r1/VN//1/sub/svc",
            "/r1/VN/GOV/1/s b/svc",
            "/r1/VN/GOV/1/sub/s%FFvc",
        ] {
            assert!(parse_r1(bad).is_err(), "{bad}");
        }
    }
}
