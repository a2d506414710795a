//! Canonical encoding, signing, anchors and verification. Pure: no IO, time passed in.

use crate::ConfError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lienthong_crypto::{HashAlgorithm, PublicKey, Signature, Signer};
use lienthong_model::conf::{
    ANCHOR_FORMAT, Anchor, AnchorKey, CONF_FORMAT, ConfSignature, GlobalConf, SIGNED_CONF_FORMAT,
    SignedConf,
};

/// Largest signed document accepted.
pub(crate) const MAX_DOCUMENT: usize = 32 * 1024 * 1024;

/// A configuration whose signature, instance and expiry were checked.
#[derive(Debug, Clone)]
pub struct VerifiedConf {
    /// The content.
    pub conf: GlobalConf,
    /// The signed envelope exactly as received (what is kept on disk).
    pub envelope: Vec<u8>,
    /// SHA-256 (hex) of the content bytes: the configuration's identity.
    pub content_hash: String,
    /// The anchor key that verified it.
    pub signed_by: String,
}

impl VerifiedConf {
    /// Has it expired at `now` (Unix seconds)?
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.conf.expires_at
    }
}

/// The canonical bytes of `conf`: lists sorted by id, compact JSON in field order.
pub fn canonical_content(conf: &GlobalConf) -> Vec<u8> {
    let mut conf = conf.clone();
    conf.members.sort_by(|a, b| a.id.cmp(&b.id));
    for member in &mut conf.members {
        member.subsystems.sort();
        member.subsystems.dedup();
    }
    conf.gateways.sort_by(|a, b| a.id.cmp(&b.id));
    for gateway in &mut conf.gateways {
        gateway.clients.sort();
        gateway.clients.dedup();
        gateway.auth_certificate_hashes.sort();
        gateway.auth_certificate_hashes.dedup();
    }
    conf.global_groups.sort_by(|a, b| a.id.cmp(&b.id));
    for group in &mut conf.global_groups {
        group.members.sort();
        group.members.dedup();
    }
    conf.certificate_authorities
        .sort_by(|a, b| a.name.cmp(&b.name));
    conf.timestamp_authorities
        .sort_by(|a, b| a.name.cmp(&b.name));
    // Serialising plain structs and vectors cannot fail.
    serde_json::to_vec(&conf).unwrap_or_default()
}

/// The identifier of a configuration-signing key: hex of the first 16 bytes of the
/// SHA-256 of its SubjectPublicKeyInfo.
pub fn key_id(public_key: &PublicKey) -> String {
    public_key.fingerprint()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sign `conf` with every key in `signers` (the current key, plus the next one during a
/// rotation). Returns the envelope bytes to serve.
pub fn sign(conf: &GlobalConf, signers: &[&dyn Signer]) -> Result<Vec<u8>, ConfError> {
    let content = canonical_content(conf);
    let mut signatures = Vec::with_capacity(signers.len());
    for signer in signers {
        signatures.push(ConfSignature {
            key_id: key_id(signer.public_key()),
            signature: signer.sign(&content)?.to_text(),
        });
    }
    let envelope = SignedConf {
        format: SIGNED_CONF_FORMAT.into(),
        content: STANDARD.encode(&content),
        signatures,
    };
    Ok(serde_json::to_vec_pretty(&envelope).unwrap_or_default())
}

/// An anchor for `instance` listing `keys`.
pub fn make_anchor(instance: &str, download_urls: Vec<String>, keys: &[&PublicKey]) -> Anchor {
    Anchor {
        format: ANCHOR_FORMAT.into(),
        instance: instance.into(),
        download_urls,
        keys: keys
            .iter()
            .map(|k| AnchorKey {
                key_id: key_id(k),
                public_key: STANDARD.encode(k.spki_der()),
            })
            .collect(),
    }
}

/// Verify a signed configuration against `anchor` at `now` (Unix seconds).
///
/// Checks, in order: the envelope parses; some signature is by an anchor key and verifies
/// (a failing signature by an anchor key is [`ConfError::BadSignature`], no anchor key at
/// all is [`ConfError::UnknownKey`]); the content parses; the instance matches; it has
/// not expired.
pub fn verify(envelope: &[u8], anchor: &Anchor, now: i64) -> Result<VerifiedConf, ConfError> {
    if envelope.len() > MAX_DOCUMENT {
        return Err(ConfError::Malformed(format!(
            "larger than {MAX_DOCUMENT} bytes"
        )));
    }
    let signed: SignedConf = serde_json::from_slice(envelope)
        .map_err(|e| ConfError::Malformed(format!("envelope: {e}")))?;
    if signed.format != SIGNED_CONF_FORMAT {
        return Err(ConfError::Malformed(format!(
            "unknown envelope format {:?}",
            signed.format
        )));
    }
    let content = STANDARD
        .decode(&signed.content)
        .map_err(|_| ConfError::Malformed("content is not base64".into()))?;
    let mut failed_key = None;
    let mut verified_by = None;
    for entry in &signed.signatures {
        let Some(anchor_key) = anchor.keys.iter().find(|k| k.key_id == entry.key_id) else {
            continue;
        };
        let public_key = STANDARD
            .decode(&anchor_key.public_key)
            .ok()
            .and_then(|der| PublicKey::from_spki_der(&der).ok())
            .ok_or_else(|| {
                ConfError::Malformed(format!(
                    "anchor key {} is not a public key",
                    anchor_key.key_id
                ))
            })?;
        let valid = Signature::from_text(&entry.signature)
            .and_then(|signature| public_key.verify(&content, &signature))
            .is_ok();
        if valid {
            verified_by = Some(entry.key_id.clone());
            break;
        }
        failed_key.get_or_insert_with(|| entry.key_id.clone());
    }
    let signed_by = match (verified_by, failed_key) {
        (Some(key), _) => key,
        (None, Some(key_id)) => return Err(ConfError::BadSignature { key_id }),
        (None, None) => {
            let ids: Vec<&str> = signed
                .signatures
                .iter()
                .map(|s| s.key_id.as_str())
                .collect();
            return Err(ConfError::UnknownKey {
                signed_by: if ids.is_empty() {
                    "nobody".into()
                } else {
                    ids.join(", ")
                },
            });
        }
    };
    let conf: GlobalConf = serde_json::from_slice(&content)
        .map_err(|e| ConfError::Malformed(format!("content: {e}")))?;
    if conf.format != CONF_FORMAT {
        return Err(ConfError::Malformed(format!(
            "unknown content format {:?}",
            conf.format
        )));
    }
    if conf.instance != anchor.instance {
        return Err(ConfError::WrongInstance {
            expected: anchor.instance.clone(),
            found: conf.instance,
        });
    }
    if now >= conf.expires_at {
        return Err(ConfError::Expired {
            version: conf.version,
            expires_at: conf.expires_at,
            now,
        });
    }
    Ok(VerifiedConf {
        content_hash: HashAlgorithm::Sha256
            .digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        conf,
        envelope: envelope.to_vec(),
        signed_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_crypto::{SoftwareKey, Suite};
    use lienthong_model::conf::{FederationPolicy, Member};

    fn sample(expires_at: i64) -> GlobalConf {
        GlobalConf {
            format: CONF_FORMAT.into(),
            instance: "VN".into(),
            version: 7,
            generated_at: 1_000,
            expires_at,
            policy: FederationPolicy::default(),
            members: vec![Member {
                id: "VN/GOV/2".parse().expect("id"),
                name: "Bộ Công an".into(),
                subsystems: vec!["b".into(), "a".into()],
            }],
            gateways: vec![],
            global_groups: vec![],
            certificate_authorities: vec![],
            timestamp_authorities: vec![],
        }
    }

    fn key() -> SoftwareKey {
        SoftwareKey::generate(Suite::EcdsaP256Sha256)
            .expect("key")
            .0
    }

    #[test]
    fn fresh_configuration_verifies_and_content_is_canonical() {
        let signing = key();
        let anchor = make_anchor("VN", vec![], &[signing.public_key()]);
        let envelope = sign(&sample(2_000), &[&signing]).expect("sign");
        let verified = verify(&envelope, &anchor, 1_500).expect("verifies");
        assert_eq!(
            verified.conf.members[0].subsystems,
            vec!["a", "b"],
            "sorted"
        );
        assert_eq!(
            canonical_content(&verified.conf),
            canonical_content(&sample(2_000))
        );
    }

    #[test]
    fn each_refusal_is_distinct() {
        let signing = key();
        let anchor = make_anchor("VN", vec![], &[signing.public_key()]);
        let envelope = sign(&sample(2_000), &[&signing]).expect("sign");

        // One flipped byte of the signed content.
        let mut document: SignedConf = serde_json::from_slice(&envelope).expect("json");
        let mut content = STANDARD.decode(&document.content).expect("b64");
        let position = content
            .iter()
            .position(|&b| b == b'7')
            .expect("version digit");
        content[position] = b'8';
        document.content = STANDARD.encode(&content);
        let flipped = serde_json::to_vec(&document).expect("json");
        assert!(matches!(
            verify(&flipped, &anchor, 1_500),
            Err(ConfError::BadSignature { .. })
        ));

        let stranger = key();
        let foreign = sign(&sample(2_000), &[&stranger]).expect("sign");
        assert!(matches!(
            verify(&foreign, &anchor, 1_500),
            Err(ConfError::UnknownKey { .. })
        ));

        assert!(matches!(
            verify(&envelope, &anchor, 2_000),
            Err(ConfError::Expired { .. })
        ));

        let other_instance = make_anchor("LA", vec![], &[signing.public_key()]);
        assert!(matches!(
            verify(&envelope, &other_instance, 1_500),
            Err(ConfError::WrongInstance { .. })
        ));
        assert!(matches!(
            verify(b"{}", &anchor, 1_500),
            Err(ConfError::Malformed(_))
        ));
    }

    #[test]
    fn rotation_old_and_new_keys_both_accepted_during_overlap() {
        let old = key();
        let new = key();
        let anchor_both = make_anchor("VN", vec![], &[old.public_key(), new.public_key()]);
        let anchor_new_only = make_anchor("VN", vec![], &[new.public_key()]);
        let during = sign(&sample(2_000), &[&old, &new]).expect("sign");
        verify(&during, &anchor_both, 1_500).expect("old anchor holder");
        verify(&during, &anchor_new_only, 1_500).expect("new anchor holder");
        let after = sign(&sample(2_000), &[&new]).expect("sign");
        verify(&after, &anchor_both, 1_500).expect("after rotation");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let signing = key();
            let anchor = make_anchor("VN", vec![], &[signing.public_key()]);
            let _ = verify(&bytes, &anchor, 0);
        }
    }
}
