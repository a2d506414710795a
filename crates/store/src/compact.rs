//! A compact stored form for message-log records: the same bytes, written in fewer.
//!
//! A record's canonical JSON spends most of its length on text that stands for fewer bytes:
//! the signed descriptions and signatures in base64 (4 characters for 3 bytes), digests and
//! value references in hex (2 for 1), timestamps in decimal, and the same twenty-odd key
//! names in every record. Stored as it was (certificates and OCSP responses already taken
//! out, `pack.rs`), a demo record of 2.0 KB took a 4 KiB page of its own; compacted to
//! 1.2 KB, three fit on a page. Measured on the demo at 800 exchanges/s: the database
//! went from 4.6 to 1.8 KB per logged exchange, indexes and op-monitoring rows included.
//!
//! The compact form is a sequence of instructions, each emitting bytes of the original:
//!
//! | bytes | emits |
//! |---|---|
//! | `0x00..=0x7f` | that byte |
//! | `0x80 + i` (`i < WORDS.len()`) | the quoted string `WORDS[i]`, quotes included |
//! | `ESCAPE b` | byte `b` |
//! | `HEX n`, then `n` bytes | those bytes in lowercase hex (`2n` digits) |
//! | `BASE64` varint `n`, then `n` bytes | those bytes in standard padded base64 |
//! | `NUMBER` varint `v` | `v` in decimal |
//!
//! Whatever the encoder chooses, decoding gives back exactly what each instruction covered;
//! and the encoder's output is decoded and compared before it is stored (see `pack.rs`),
//! so a record that would not come back identical is stored uncompacted. The leaf hash is
//! computed over the canonical record, not over any stored form, so nothing above the store
//! sees the difference.

use crate::StoreError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Quoted strings written as one byte: the keys of a record (`lienthong_ledger::LogRecord`
/// and its body evidence) and their most frequent values. Append only: a stored record
/// refers to these by position.
const WORDS: [&[u8]; 34] = [
    b"\"message_id\"",
    b"\"side\"",
    b"\"client\"",
    b"\"service\"",
    b"\"request_in\"",
    b"\"request_out\"",
    b"\"response_in\"",
    b"\"response_out\"",
    b"\"request_description\"",
    b"\"response_description\"",
    b"\"request_signature\"",
    b"\"response_signature\"",
    b"\"request_signer_certificate\"",
    b"\"response_signer_certificate\"",
    b"\"request_signer_ocsp\"",
    b"\"response_signer_ocsp\"",
    b"\"request_body_sha256\"",
    b"\"response_body_sha256\"",
    b"\"status\"",
    b"\"body\"",
    b"\"kind\"",
    b"\"request\"",
    b"\"response\"",
    b"\"encrypted_to\"",
    b"\"key_id\"",
    b"\"nonce\"",
    b"\"ciphertext\"",
    b"\"provider\"",
    b"\"digest_only\"",
    b"\"full\"",
    b"\"beside\"",
    b"\"encrypted\"",
    b"\"producer\"",
    b"\"server\"",
];
const WORD: u8 = 0x80;
const ESCAPE: u8 = 0xf0;
const HEX: u8 = 0xf1;
const BASE64: u8 = 0xf2;
const NUMBER: u8 = 0xf3;

/// Shorter runs are not worth an instruction.
const MIN_HEX_DIGITS: usize = 8;
const MIN_BASE64: usize = 16;
const MIN_DIGITS: usize = 4;

/// Byte classes, by table: lowercase hex digits, and bytes a literal copies as they are
/// (neither a digit, which may start a number, nor in the instruction range).
const LOWER_HEX: u8 = 1;
const PLAIN: u8 = 2;
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() || (c >= b'a' && c <= b'f') {
            table[b] |= LOWER_HEX;
        }
        if c < WORD && !c.is_ascii_digit() {
            table[b] |= PLAIN;
        }
        b += 1;
    }
    table
};

/// The compact form of `record` (any bytes; a record's canonical JSON compacts best).
pub(crate) fn encode(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len());
    let mut at = 0;
    while at < record.len() {
        let Some(quote) = memchr::memchr(b'"', &record[at..]).map(|q| at + q) else {
            literal(&mut out, &record[at..]);
            break;
        };
        literal(&mut out, &record[at..quote]);
        let Some(end) = memchr::memchr(b'"', &record[quote + 1..]).map(|e| quote + 1 + e) else {
            literal(&mut out, &record[quote..]);
            break;
        };
        let quoted = &record[quote..=end];
        if let Some(i) = word_index(quoted) {
            out.push(WORD + i);
            at = end + 1;
        } else if quoted.contains(&b'\\') {
            // An escape inside: the string's end is not where it seems; go on after its
            // opening quote.
            out.push(b'"');
            at = quote + 1;
        } else {
            out.push(b'"');
            let content = &quoted[1..quoted.len() - 1];
            let mut from = 0;
            for semicolon in memchr::memchr_iter(b';', content) {
                string_segment(&mut out, &content[from..semicolon]);
                out.push(b';');
                from = semicolon + 1;
            }
            string_segment(&mut out, &content[from..]);
            out.push(b'"');
            at = end + 1;
        }
    }
    out
}

/// The position in [`WORDS`] of `quoted`, if it is one.
fn word_index(quoted: &[u8]) -> Option<u8> {
    /// The words by length, so that a string is compared with a few words at most.
    static BY_LENGTH: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(|| {
        let mut by_length = vec![Vec::new(); WORDS.iter().map(|w| w.len()).max().unwrap_or(0) + 1];
        for (i, word) in WORDS.iter().enumerate() {
            // At most 34 words: each position fits a byte.
            by_length[word.len()].push(i as u8);
        }
        by_length
    });
    BY_LENGTH
        .get(quoted.len())?
        .iter()
        .copied()
        .find(|&i| WORDS[usize::from(i)] == quoted)
}

/// A `;`-separated part of a string: base64, hex (after an optional `@`), or as it is.
fn string_segment(out: &mut Vec<u8>, segment: &[u8]) {
    let (at_sign, digits) = match segment.split_first() {
        Some((b'@', rest)) => (true, rest),
        _ => (false, segment),
    };
    if digits.len() >= MIN_HEX_DIGITS
        && digits.len().is_multiple_of(2)
        && digits
            .iter()
            .all(|&b| CLASS[usize::from(b)] & LOWER_HEX != 0)
    {
        if at_sign {
            out.push(b'@');
        }
        for pair in digits.chunks(2 * usize::from(u8::MAX)) {
            let mut bytes = [0u8; u8::MAX as usize];
            let bytes = &mut bytes[..pair.len() / 2];
            // Cannot fail: every digit is lowercase hex and there are two per byte.
            let _ = hex::decode_to_slice(pair, bytes);
            out.push(HEX);
            // At most 255 bytes per chunk.
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
        return;
    }
    if segment.len() >= MIN_BASE64 && segment.len().is_multiple_of(4) {
        let padding = segment.iter().rev().take(2).filter(|&&b| b == b'=').count();
        let length = segment.len() / 4 * 3 - padding;
        let mark = out.len();
        out.push(BASE64);
        varint(out, length as u64);
        let start = out.len();
        out.resize(start + segment.len() / 4 * 3, 0);
        // The standard engine accepts only canonical base64 (padding, zero trailing bits),
        // which encodes back to the same text.
        if STANDARD.decode_slice(segment, &mut out[start..]) == Ok(length) {
            out.truncate(start + length);
            return;
        }
        out.truncate(mark);
    }
    literal(out, segment);
}

/// `bytes` as they are, with decimal numbers as varints and bytes of the instruction range
/// escaped.
fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        // Plain bytes up to the next digit or byte of the instruction range, at once.
        let plain = bytes[at..]
            .iter()
            .take_while(|&&b| CLASS[usize::from(b)] & PLAIN != 0)
            .count();
        out.extend_from_slice(&bytes[at..at + plain]);
        at += plain;
        let Some(&b) = bytes.get(at) else {
            break;
        };
        if b.is_ascii_digit() && b != b'0' {
            let run = bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let digits = &bytes[at..at + run];
            // At most 19 digits always fit a u64.
            if (MIN_DIGITS..=19).contains(&run)
                && let Some(value) = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
            {
                out.push(NUMBER);
                varint(out, value);
            } else {
                out.extend_from_slice(digits);
            }
            at += run;
            continue;
        }
        if b >= WORD {
            out.push(ESCAPE);
        }
        out.push(b);
        at += 1;
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The bytes `compact` stands for.
pub(crate) fn decode(compact: &[u8]) -> Result<Vec<u8>, StoreError> {
    let malformed =
        || StoreError::Corrupt("a stored log record is malformed (compact form)".into());
    let mut out = Vec::with_capacity(compact.len() * 2);
    let mut input = compact;
    while let Some((&b, rest)) = input.split_first() {
        input = rest;
        match b {
            0x00..=0x7f => out.push(b),
            ESCAPE => {
                let (&escaped, rest) = input.split_first().ok_or_else(malformed)?;
                out.push(escaped);
                input = rest;
            }
            HEX => {
                let (&n, rest) = input.split_first().ok_or_else(malformed)?;
                let bytes = rest.get(..usize::from(n)).ok_or_else(malformed)?;
                let mut digits = [0u8; 2 * u8::MAX as usize];
                let digits = &mut digits[..bytes.len() * 2];
                hex::encode_to_slice(bytes, digits).map_err(|_| malformed())?;
                out.extend_from_slice(digits);
                input = &rest[usize::from(n)..];
            }
            BASE64 => {
                let (n, rest) = read_varint(input).ok_or_else(malformed)?;
                let n = usize::try_from(n).map_err(|_| malformed())?;
                let bytes = rest.get(..n).ok_or_else(malformed)?;
                let start = out.len();
                out.resize(start + n.div_ceil(3) * 4, 0);
                STANDARD
                    .encode_slice(bytes, &mut out[start..])
                    .map_err(|_| malformed())?;
                input = &rest[n..];
            }
            NUMBER => {
                let (value, rest) = read_varint(input).ok_or_else(malformed)?;
                decimal(&mut out, value);
                input = rest;
            }
            word => {
                let word = WORDS.get(usize::from(word - WORD)).ok_or_else(malformed)?;
                out.extend_from_slice(word);
            }
        }
    }
    Ok(out)
}

/// `value` in decimal.
fn decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // A digit: below 10.
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A LEB128 value of at most 64 bits, and what follows it.
fn read_varint(input: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in input.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        if i == 9 && bits > 1 {
            return None;
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &input[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(record: &[u8]) -> Vec<u8> {
        let compact = encode(record);
        assert_eq!(decode(&compact).expect("decode"), record);
        compact
    }

    #[test]
    fn words_fit_the_instruction_range() {
        assert!(WORDS.len() <= usize::from(ESCAPE - WORD));
        for word in WORDS {
            assert!(word.starts_with(b"\"") && word.ends_with(b"\"") && word.len() > 2);
        }
    }

    #[test]
    fn a_record_comes_back_and_is_smaller() {
        let record = br#"{"message_id":"01a221fb8aefb8989e76e892dcd62d5d","side":"client","client":"VN/GOV/000101/case-management","service":"VN/GOV/000202/citizen-registry/persons","request_in":1795866462959,"request_out":1795866462959,"response_in":1795866462961,"response_out":1795866462961,"request_description":"bGllbnRob25nLXJlcXVlc3QvMQppZDogMDFhMjIxZmI4YWVmYjg5ODllNzZlODkyZGNkNjJkNWQK","response_description":null,"request_signature":"v1;ecdsa-p256-sha256;1;0;MEUCIF3IT3h5/6DHl8HLbVJR36/ttC3T20q26c0tatpcZYTDAiEAkqNF7OEnCd01XCWDfm+P5tAsnqp1/l09dgjT6soXd7c=;","request_signer_certificate":"@f65c7b5592195bc303a0d5e046c0c78530bcb9dd190b416d123fadbb4884e921","request_body_sha256":"d903c182b5d6e6317874c306a94fc2feca2761187a5cf0a03819a8954fe0d8c1","status":201,"body":{"kind":"digest_only"}}"#;
        let compact = round_trip(record);
        assert!(
            compact.len() * 10 < record.len() * 6,
            "{} -> {} bytes",
            record.len(),
            compact.len()
        );
    }

    #[test]
    fn odd_text_comes_back() {
        for record in [
            &b""[..],
            b"\"",
            b"\"\"",
            b"\"a\\\"b\"",
            b"\"@\"",
            b"\"@0123456789abcdef\"",
            b"\"0123456789ABCDEF\"",
            b"\"0123456789abcde\"",
            b"\"AAAAAAAAAAAAAAAA\"",
            b"\"AAAAAAAAAAAAAAA=\"",
            b"\"AAAAAAAAAAAAAAB=\"",
            b"0 01 0123 1234 18446744073709551615 18446744073709551616 99999999999999999999",
            b"\x80\xf0\xff\"\xc3\xa9\"",
            "\"tên đơn vị\"".as_bytes(),
            b"\"message_id\"\"side\"\"kind\":\"full\"",
        ] {
            round_trip(record);
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &[ESCAPE][..],
            &[HEX],
            &[HEX, 3, 1, 2],
            &[BASE64],
            &[BASE64, 5, 1],
            &[
                BASE64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            &[NUMBER, 0x80],
            &[
                NUMBER, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
            &[WORD + WORDS.len() as u8],
            &[0xf4],
            &[0xff],
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever the bytes, encoding and decoding gives them back.
        #[test]
        fn any_bytes_round_trip(record in proptest::collection::vec(any::<u8>(), 0..400)) {
            let compact = encode(&record);
            prop_assert_eq!(decode(&compact).expect("decode"), record);
        }

        /// Text made of the pieces records are made of comes back too.
        #[test]
        fn record_like_text_round_trips(pieces in proptest::collection::vec(
            prop_oneof![
                Just("\"".to_owned()),
                Just(";".to_owned()),
                Just("@".to_owned()),
                Just("\\".to_owned()),
                Just("\"side\"".to_owned()),
                "[0-9]{1,25}",
                "[0-9a-f]{1,80}",
                "[A-Za-z0-9+/]{1,60}={0,2}",
                "([A-Za-z0-9+/]{4}){3,20}[A-Za-z0-9+/]{2}==",
                "[A-Za-z0-9+/=]{16,24}",
                "[a-z_:,{} ]{1,10}",
            ],
            0..40,
        )) {
            let record = pieces.concat().into_bytes();
            let compact = encode(&record);
            prop_assert_eq!(decode(&compact).expect("decode"), record);
        }

        /// Any bytes given to the decoder give a result or an error, never a panic.
        #[test]
        fn decoding_any_bytes_does_not_panic(compact in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&compact);
        }
    }
}
