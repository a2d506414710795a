//! Serde helpers for the byte fields of the JSON forms: base64 (standard, padded) for
//! opaque bytes, lowercase hex for SHA-256 hashes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::Error as _;
use serde::{Deserialize as _, Deserializer, Serializer};

/// `Vec<u8>` as a base64 string.
pub(crate) mod base64_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(D::Error::custom)
    }
}

/// `Option<Vec<u8>>` as a base64 string or `null`.
pub(crate) mod base64_option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_str(&STANDARD.encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| STANDARD.decode(text).map_err(D::Error::custom))
            .transpose()
    }
}

/// `[u8; 32]` as 64 lowercase hex digits.
pub(crate) mod hex_hash {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        hash: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        parse(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }

    pub(super) fn parse(text: &str) -> Result<[u8; 32], String> {
        let mut hash = [0; 32];
        // Only lowercase, so that each hash has exactly one text form.
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("hash hex must be lowercase".into());
        }
        hex::decode_to_slice(text, &mut hash).map_err(|e| format!("hash hex: {e}"))?;
        Ok(hash)
    }
}

/// `Option<[u8; 32]>` as hex or `null`.
pub(crate) mod hex_hash_option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        hash: &Option<[u8; 32]>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match hash {
            Some(hash) => serializer.serialize_str(&hex::encode(hash)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| hex_hash::parse(&text).map_err(D::Error::custom))
            .transpose()
    }
}

/// `Vec<[u8; 32]>` as an array of hex strings.
pub(crate) mod hex_hashes {
    use super::*;
    use serde::ser::SerializeSeq as _;

    pub(crate) fn serialize<S: Serializer>(
        hashes: &[[u8; 32]],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&hex::encode(hash))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| hex_hash::parse(text).map_err(D::Error::custom))
            .collect()
    }
}
