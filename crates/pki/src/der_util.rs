//! Small DER helpers shared by the PKI modules.

use der::asn1::{AnyRef, Int};
use der::{Decode, Encode, Header, SliceReader};

/// The raw bytes (header included) of the first element inside the outer SEQUENCE of `der`:
/// the to-be-signed part of a certificate, CSR or OCSP response, exactly as signed.
pub(crate) fn first_inner_element(der: &[u8]) -> der::Result<&[u8]> {
    let outer = AnyRef::from_der(der)?;
    let contents = outer.value();
    let mut reader = SliceReader::new(contents)?;
    let header = Header::decode(&mut reader)?;
    let total = (header.encoded_len()? + header.length)?;
    let len = usize::try_from(total)?;
    contents.get(..len).ok_or_else(|| {
        der::ErrorKind::Incomplete {
            expected_len: total,
            actual_len: der::Length::try_from(contents.len()).unwrap_or(der::Length::ZERO),
        }
        .into()
    })
}

/// A positive DER INTEGER from unsigned big-endian bytes.
pub(crate) fn positive_int(bytes: &[u8]) -> der::Result<Int> {
    let trimmed: &[u8] = match bytes.iter().position(|&b| b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    let mut value = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        value.push(0);
    }
    value.extend_from_slice(trimmed);
    Int::new(&value)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch of `time`, saturating at zero.
pub(crate) fn unix_seconds(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn positive_int_adds_a_sign_byte_only_when_needed() {
        assert_eq!(
            positive_int(&[0x80]).and_then(|i| i.to_der()).ok(),
            Some(vec![2, 2, 0, 0x80])
        );
        assert_eq!(
            positive_int(&[0, 0, 5]).and_then(|i| i.to_der()).ok(),
            Some(vec![2, 1, 5])
        );
        assert_eq!(
            positive_int(&[]).and_then(|i| i.to_der()).ok(),
            Some(vec![2, 1, 0])
        );
    }

    #[test]
    fn first_inner_element_rejects_garbage_without_panicking() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x02\x30\x05",
            b"\x04\x00",
            &[0x30, 0x80],
        ] {
            assert!(first_inner_element(input).is_err());
        }
        assert!(
            first_inner_element(&[0x30, 0x03, 0x02, 0x05, 0x07]).is_err(),
            "truncated inner"
        );
        assert_eq!(
            first_inner_element(&[0x30, 0x05, 0x02, 0x01, 0x07, 0x05, 0x00]).ok(),
            Some(&[0x02, 0x01, 0x07][..])
        );
    }
}
