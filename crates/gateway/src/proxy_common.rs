//! Pieces both proxies use: the `/r1/` path, header hygiene, the inter-gateway headers.

use crate::XRoadError;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use lienthong_model::{MemberId, ServiceId, SubsystemId};
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
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "user-agent",
        "server",
        "content-length",
        H_REQUEST,
        H_RESPONSE,
        H_SIGNATURE,
        H_CERTIFICATE,
        H_OCSP,
        "x-road-request-hash",
        "x-road-request-id",
    ] {
        headers.remove(name);
    }
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

/// A fresh random identifier (128 bits, hex).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = lienthong_crypto::fill_random(&mut bytes);
    crate::trust::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
