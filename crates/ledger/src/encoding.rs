//! Serde helpers for the byte fields of the JSON forms: base64 (standard, padded) for
//! opaque bytes, lowercase hex for SHA-256 hashes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::Error as _;
use serde::{Deserialize as _, Deserializer, Serializer};
use serde_json::value::RawValue;

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

/// Bytes that records repeat from one to the next (signers' certificates and OCSP
/// responses, the same for hours), as base64 like [`base64_bytes`]: the same text, from a
/// per-thread memory of the last few values when the bytes are one of them. Encoding these
/// values again for every record was about 1 % of a gateway's CPU under load, and having
/// JSON check the text for characters to escape (base64 has none) about 1.5 %: the memory
/// keeps the JSON string itself, which the serializer writes as it is.
pub(crate) mod repeated_base64_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&*repeated_base64(bytes), serializer)
    }

    pub(crate) use super::base64_bytes::deserialize;
}

/// [`repeated_base64_bytes`] for an optional value, like [`base64_option`].
pub(crate) mod repeated_base64_option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serde::Serialize::serialize(&*repeated_base64(bytes), serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) use super::base64_option::deserialize;
}

thread_local! {
    /// The JSON strings of the base64 of the values this thread encoded lately.
    static ENCODED: std::cell::RefCell<crate::Recent<std::rc::Rc<RawValue>>> =
        const { std::cell::RefCell::new(crate::Recent::new(8)) };
}

/// `bytes` in base64 as a JSON string (quoted; base64 needs no escapes), remembered when
/// the same bytes were encoded lately. Serialized by serde_json, it is written as it is,
/// the same bytes as the string serialized; any other serializer gets the string.
fn repeated_base64(bytes: &[u8]) -> std::rc::Rc<RawValue> {
    ENCODED.with(|encoded| {
        encoded.borrow_mut().get_or_insert_with(bytes, |bytes| {
            let quoted = format!("\"{}\"", STANDARD.encode(bytes));
            RawValue::from_string(quoted)
                .expect("a quoted base64 text is a JSON string")
                .into()
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of a repeated value is its base64, whether remembered or not.
    #[test]
    fn repeated_values_are_their_base64() {
        let values: Vec<Vec<u8>> = (0..24u8).map(|i| vec![i % 20; 700]).collect();
        for value in values.iter().chain(values.iter().rev()) {
            assert_eq!(
                repeated_base64(value).get(),
                serde_json::to_string(&STANDARD.encode(value)).expect("a string")
            );
        }
    }
}
