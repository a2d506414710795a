//! Fuzzed entry points of the exchange layer (global configuration, signed message
//! descriptions, batch signatures, timestamp tokens). Included by the cargo-fuzz targets
//! `globalconf`, `signed_message`, `batch_signature`, `timestamp_token` and by the stable
//! smoke test `crates/gateway/tests/fuzz_smoke.rs`.

use lienthong_crypto::{HashAlgorithm, SoftwareKey, Suite};
use std::sync::OnceLock;

/// `lienthong_conf::verify` of an arbitrary envelope against a fixed anchor.
pub fn globalconf(data: &[u8]) {
    static ANCHOR: OnceLock<lienthong_model::conf::Anchor> = OnceLock::new();
    let anchor = ANCHOR.get_or_init(|| {
        let key = SoftwareKey::generate(Suite::EcdsaP256Sha256)
            .expect("key")
            .0;
        lienthong_conf::make_anchor("VN", vec![], &[lienthong_crypto::Signer::public_key(&key)])
    });
    let _ = lienthong_conf::verify(data, anchor, 0);
}

/// The canonical request and response descriptions between gateways.
pub fn signed_message(data: &[u8]) {
    if let Ok(header) = lienthong_gateway::message::RequestHeader::decode(data) {
        let again = header.encode().expect("a decoded description encodes");
        assert_eq!(again, data, "the encoding is canonical");
    }
    if let Ok(header) = lienthong_gateway::message::ResponseHeader::decode(data) {
        assert_eq!(header.encode().expect("encodes"), data);
    }
}

/// The batch-signature header.
pub fn batch_signature(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(signature) = lienthong_crypto::BatchSignature::from_text(&text) {
        assert_eq!(signature.to_text(), text, "one text form per value");
    }
}

/// RFC 3161 token verification over arbitrary bytes (a relying party reading evidence).
pub fn timestamp_token(data: &[u8]) {
    static ROOT: OnceLock<lienthong_pki::CertificateInfo> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let key = SoftwareKey::generate(Suite::EcdsaP256Sha256)
            .expect("key")
            .0;
        let now = std::time::SystemTime::now();
        lienthong_pki::CertificateAuthority::create_root(
            std::sync::Arc::new(key),
            "fuzz",
            "fuzz root",
            &lienthong_pki::Serial::random().expect("serial"),
            now,
            now + std::time::Duration::from_secs(3600),
            lienthong_crypto::CryptoPolicy::vn(),
        )
        .expect("root")
        .certificate()
        .clone()
    });
    let _ =
        lienthong_pki::verify_timestamp_token(data, (HashAlgorithm::Sha256, &[0; 32]), None, root);
}
