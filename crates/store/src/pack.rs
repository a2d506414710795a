//! Message-log records as stored: without the certificates and OCSP responses that every
//! record of a peer repeats.
//!
//! A gateway's record carries the signers' certificates and OCSP responses (base64 in the
//! record's canonical JSON): about 3.8 KB of a 5.5 KB record, the same bytes for every
//! exchange with the same peer until its OCSP response is renewed. Stored as they are, a
//! record spilled onto overflow pages, and each commit wrote and synced twice the pages it
//! needed. So the store keeps each such value once per log, in `ledger_blobs` keyed by its
//! SHA-256, and the record with a reference in its place. Reading puts the exact bytes
//! back: the leaf hash, computed over the canonical record, is unaffected, and so is every
//! reader above the store.
//!
//! Stored forms, by their first byte:
//! - `0x01`: packed; every `":"@` followed by 64 hex digits and `"` is a reference to the
//!   value whose SHA-256 the digits spell. [`pack`] writes it only for a record that had no
//!   `":"@` of its own, so no reference is ever confused with data.
//! - `0x01 0x00`: packed, then compacted (`compact.rs`): the packed record is what the
//!   rest decodes to. A packed record starts with `{`, so the second byte tells the two
//!   apart. What the store writes now; the plain packed form is still read.
//! - `0x00`: a record kept as it was, whose own first byte was `0x00` or `0x01`.
//! - anything else: a record kept as it was.

use crate::StoreError;
use sha2::{Digest, Sha256};

/// The values taken out: base64 text at least this long in one of these fields.
const FIELDS: [&[u8]; 4] = [
    b"\"request_signer_certificate\":\"",
    b"\"response_signer_certificate\":\"",
    b"\"request_signer_ocsp\":\"",
    b"\"response_signer_ocsp\":\"",
];
const MIN_VALUE: usize = 128;
/// What precedes a reference: the end of a key and the start of a string, then `@`
/// (which base64 never holds).
const REFERENCE: &[u8] = b"\":\"@";
const RAW: u8 = 0x00;
const PACKED: u8 = 0x01;
/// After [`PACKED`]: the rest is in the compact form.
const COMPACT: u8 = 0x00;
const HEX_LEN: usize = 64;

/// A record in its stored form, and the values taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    pub(crate) stored: Vec<u8>,
    /// SHA-256 of each value taken out, and where the value is in the record given to
    /// [`pack`] (so that the record can be packed on another thread than the one writing it).
    pub(crate) blobs: Vec<([u8; 32], std::ops::Range<usize>)>,
}

impl Packed {
    /// The values taken out of `record` (the one given to [`pack`]): hash and content.
    pub(crate) fn values<'r>(
        &'r self,
        record: &'r [u8],
    ) -> impl Iterator<Item = (&'r [u8; 32], &'r [u8])> {
        self.blobs
            .iter()
            .map(move |(hash, range)| (hash, &record[range.clone()]))
    }
}

/// Searchers for [`FIELDS`] and [`REFERENCE`], built once: `memmem::find` builds one for
/// every call, and [`pack`] runs for every record a gateway logs.
struct Finders {
    fields: Vec<memchr::memmem::Finder<'static>>,
    reference: memchr::memmem::Finder<'static>,
}

static FINDERS: std::sync::LazyLock<Finders> = std::sync::LazyLock::new(|| Finders {
    fields: FIELDS
        .iter()
        .map(|field| memchr::memmem::Finder::new(*field))
        .collect(),
    reference: memchr::memmem::Finder::new(REFERENCE),
});

/// The stored form of `record`.
pub(crate) fn pack(record: &[u8]) -> Packed {
    let kept = |record: &[u8]| {
        let stored = match record.first() {
            Some(&RAW | &PACKED) => [&[RAW], record].concat(),
            _ => record.to_vec(),
        };
        Packed {
            stored,
            blobs: Vec::new(),
        }
    };
    let finders = &*FINDERS;
    if record.first() != Some(&b'{') || finders.reference.find(record).is_some() {
        return kept(record);
    }
    // The values to take out, in the order they appear.
    let mut values: Vec<(usize, usize)> = finders
        .fields
        .iter()
        .filter_map(|field| {
            let start = field.find(record)? + field.needle().len();
            let len = memchr::memchr(b'"', &record[start..])?;
            let value = &record[start..start + len];
            (len >= MIN_VALUE && value.iter().all(|&c| BASE64[usize::from(c)]))
                .then_some((start, len))
        })
        .collect();
    values.sort_unstable();
    let mut stored = Vec::with_capacity(record.len());
    stored.push(PACKED);
    let mut blobs: Vec<([u8; 32], std::ops::Range<usize>)> = Vec::with_capacity(values.len());
    let mut at = 0;
    let mut digits = [0u8; HEX_LEN];
    for (start, len) in values {
        let value = &record[start..start + len];
        let hash = value_hash(value);
        stored.extend_from_slice(&record[at..start]);
        stored.push(b'@');
        // Cannot fail: the buffer holds exactly two digits per byte of the hash.
        let _ = hex::encode_to_slice(hash, &mut digits);
        stored.extend_from_slice(&digits);
        at = start + len;
        if !blobs.iter().any(|(known, _)| *known == hash) {
            blobs.push((hash, start..start + len));
        }
    }
    stored.extend_from_slice(&record[at..]);
    let compact = crate::compact::encode(&stored[1..]);
    // Kept only if it reads back exactly (it always should: see `compact.rs`).
    if compact.len() + 1 < stored.len() - 1
        && crate::compact::decode(&compact).is_ok_and(|back| back == stored[1..])
    {
        stored.truncate(1);
        stored.push(COMPACT);
        stored.extend_from_slice(&compact);
    } else if blobs.is_empty() {
        return kept(record);
    }
    Packed { stored, blobs }
}

/// The packed record (references and all) that a stored `PACKED` form holds.
fn packed_body(stored: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
    match stored.get(1) {
        Some(&COMPACT) => crate::compact::decode(&stored[2..]).map(std::borrow::Cow::Owned),
        _ => Ok(std::borrow::Cow::Borrowed(&stored[1..])),
    }
}

thread_local! {
    /// The SHA-256 of the values this thread hashed lately: a gateway's records repeat the
    /// same few certificates and OCSP responses for hours.
    static HASHES: std::cell::RefCell<lienthong_ledger::Recent<[u8; 32]>> =
        const { std::cell::RefCell::new(lienthong_ledger::Recent::new(8)) };
}

/// SHA-256 of `value`, remembered when the same bytes were hashed lately.
fn value_hash(value: &[u8]) -> [u8; 32] {
    HASHES.with(|hashes| {
        hashes
            .borrow_mut()
            .get_or_insert_with(value, |value| Sha256::digest(value).into())
    })
}

/// A stored record in the plain stored form: a compacted record as `0x01` and its packed
/// JSON (references to the values kept once, as `@` and the value's SHA-256 in hex); any
/// other stored form as it is. The store reads both forms alike. For inspection and for
/// tests that alter stored records as an intruder would.
pub fn plain_stored_form(stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    plain(stored.to_vec())
}

/// [`plain_stored_form`], taking the stored bytes: a reader that calls [`references`] and
/// [`unpack`] on the result decodes a compacted record once, not in each.
pub(crate) fn plain(stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if stored.first() == Some(&PACKED) && stored.get(1) == Some(&COMPACT) {
        let body = crate::compact::decode(&stored[2..])?;
        return Ok([&[PACKED][..], &body].concat());
    }
    Ok(stored)
}

/// The values a stored record refers to, in order (with repeats).
pub(crate) fn references(stored: &[u8]) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut found = Vec::new();
    if stored.first() == Some(&PACKED) {
        for_each_reference(&packed_body(stored)?, |_, hash| {
            found.push(hash);
            Ok(())
        })?;
    }
    Ok(found)
}

/// The record `stored` holds, with each reference replaced by `value(hash)`; a value whose
/// SHA-256 is not its hash is refused.
pub(crate) fn unpack(
    mut stored: Vec<u8>,
    mut value: impl FnMut(&[u8; 32]) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, StoreError> {
    match stored.first() {
        Some(&RAW) => {
            stored.remove(0);
            Ok(stored)
        }
        Some(&PACKED) => {
            let body = &*packed_body(&stored)?;
            let mut record = Vec::with_capacity(body.len() + 4 * 1_500);
            let mut at = 0;
            for_each_reference(body, |position, hash| {
                let content = value(&hash).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "a stored log record refers to value {} that the store does not hold",
                        hex::encode(hash)
                    ))
                })?;
                if <[u8; 32]>::from(Sha256::digest(&content)) != hash {
                    return Err(StoreError::Corrupt(format!(
                        "the stored value {} does not match its hash",
                        hex::encode(hash)
                    )));
                }
                record.extend_from_slice(&body[at..position]);
                record.extend_from_slice(&content);
                at = position + 1 + HEX_LEN;
                Ok(())
            })?;
            record.extend_from_slice(&body[at..]);
            Ok(record)
        }
        _ => Ok(stored),
    }
}

/// Call `found(position of the '@', hash)` for each reference in a packed body.
fn for_each_reference(
    body: &[u8],
    mut found: impl FnMut(usize, [u8; 32]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for start in memchr::memmem::find_iter(body, REFERENCE) {
        let at = start + REFERENCE.len() - 1;
        let digits = body
            .get(at + 1..at + 1 + HEX_LEN)
            .filter(|_| body.get(at + 1 + HEX_LEN) == Some(&b'"'));
        let mut hash = [0u8; 32];
        match digits.map(|digits| hex::decode_to_slice(digits, &mut hash)) {
            Some(Ok(())) => found(at, hash)?,
            _ => {
                return Err(StoreError::Corrupt(
                    "a stored log record holds a malformed reference".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A writer skips the upsert of a value it upserted itself less than this long ago (s).
const UPSERT_AGAIN_AFTER: i64 = 3_600;
/// Values a writer remembers at most.
const REMEMBERED: usize = 4_096;

/// The upsert SQL of a value (`$1` log, `$2` hash, `$3` content, `$4` Unix seconds). Its
/// `last_used` is rewritten at most once a day, so that most upserts write nothing.
pub(crate) const UPSERT: &str = "INSERT INTO ledger_blobs (log_id, hash, content, last_used) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (log_id, hash) DO UPDATE SET last_used = excluded.last_used \
    WHERE ledger_blobs.last_used < excluded.last_used - 86400";

/// The retention purge of values no record left refers to (`$1` log). A value a record
/// refers to was last used at most a day (the upsert's step) and an hour
/// ([`UPSERT_AGAIN_AFTER`]) before that record: two days before the oldest record left is
/// safely before both.
pub(crate) const PURGE: &str = "DELETE FROM ledger_blobs WHERE log_id = $1 AND last_used < \
    (SELECT MIN(recorded_at) FROM ledger_records WHERE log_id = $1) - 172800";

/// The values a writer upserted lately, so that most appends write none.
#[derive(Debug, Default)]
pub(crate) struct Upserted {
    /// Per log, when each value was upserted (Unix seconds), and whether that upsert is
    /// known to be committed ([`Upserted::confirm`]). By log first, so that a lookup
    /// borrows the log's id instead of copying it.
    when: std::collections::HashMap<String, std::collections::HashMap<[u8; 32], (i64, bool)>>,
    /// Values remembered, over every log.
    count: usize,
}

impl Upserted {
    /// Whether value `hash` of `log_id` must be upserted at `now` (Unix seconds); if so, it
    /// counts as upserted from now (the caller upserts it in the transaction at hand; if
    /// that fails, [`Upserted::forget`]). Called holding the log's lock, so an upsert not
    /// yet confirmed was made by a transaction that has ended since.
    pub(crate) fn needed(&mut self, log_id: &str, hash: &[u8; 32], now: i64) -> bool {
        if self.recent(log_id, hash, now).is_some() {
            return false;
        }
        if self.count >= REMEMBERED {
            self.forget();
        }
        let values = match self.when.get_mut(log_id) {
            Some(values) => values,
            None => self.when.entry(log_id.to_owned()).or_default(),
        };
        if values.insert(*hash, (now, false)).is_none() {
            self.count += 1;
        }
        true
    }

    /// Whether value `hash` of `log_id` is known to be stored, by an upsert recent at `now`
    /// and confirmed committed: an append may then refer to it without taking the log's
    /// lock first. Changes nothing.
    pub(crate) fn settled(&self, log_id: &str, hash: &[u8; 32], now: i64) -> bool {
        self.recent(log_id, hash, now) == Some(true)
    }

    /// Whether value `hash` of `log_id` was upserted recently at `now`: if so, whether
    /// that upsert is confirmed.
    fn recent(&self, log_id: &str, hash: &[u8; 32], now: i64) -> Option<bool> {
        self.when
            .get(log_id)?
            .get(hash)
            .filter(|&&(at, _)| at > now - UPSERT_AGAIN_AFTER && at <= now)
            .map(|&(_, confirmed)| confirmed)
    }

    /// The transaction that upserted `hashes` of `log_id` has committed.
    pub(crate) fn confirm<'a>(
        &mut self,
        log_id: &str,
        hashes: impl IntoIterator<Item = &'a [u8; 32]>,
    ) {
        let Some(values) = self.when.get_mut(log_id) else {
            return;
        };
        for hash in hashes {
            if let Some(entry) = values.get_mut(hash) {
                entry.1 = true;
            }
        }
    }

    /// Forget everything (after a failed transaction).
    pub(crate) fn forget(&mut self) {
        self.when.clear();
        self.count = 0;
    }
}

/// Which bytes base64 text is made of.
const BASE64: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        c += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn round_trip(record: &[u8]) -> (Packed, Vec<u8>) {
        let packed = pack(record);
        let blobs: HashMap<[u8; 32], Vec<u8>> = packed
            .values(record)
            .map(|(hash, value)| (*hash, value.to_vec()))
            .collect();
        let back = unpack(packed.stored.clone(), |hash| blobs.get(hash).cloned()).expect("unpack");
        (packed, back)
    }

    fn record(certificate: &str, ocsp: &str) -> Vec<u8> {
        format!(
            r#"{{"message_id":"m1","request_signer_certificate":"{certificate}","response_signer_certificate":"{certificate}","request_signer_ocsp":"{ocsp}","response_signer_ocsp":null,"status":200}}"#
        )
        .into_bytes()
    }

    #[test]
    fn certificates_and_ocsp_responses_are_stored_once_and_put_back() {
        let certificate = "MIIB".repeat(200);
        let ocsp = "MIIE+/==".repeat(100);
        let original = record(&certificate, &ocsp);
        let (packed, back) = round_trip(&original);
        assert_eq!(back, original);
        // Two values, the certificate once although it is there twice.
        assert_eq!(packed.blobs.len(), 2);
        assert!(packed.stored.len() < 400, "{} bytes", packed.stored.len());
        assert_eq!(references(&packed.stored).expect("references").len(), 3);
    }

    #[test]
    fn short_values_stay_in_the_record_and_other_records_are_kept_as_they_are() {
        // Short values are not taken out; the record is still compacted.
        let short = record("MIIB", "AAAA");
        let (packed, back) = round_trip(&short);
        assert_eq!(back, short);
        assert!(packed.blobs.is_empty());
        assert!(packed.stored.starts_with(&[PACKED, COMPACT]));
        assert!(packed.stored.len() < short.len());
        for odd in [&b""[..], b"\x00abc", b"\x01abc", b"not json", b"[1]"] {
            let (packed, back) = round_trip(odd);
            assert_eq!(back, odd);
            assert!(packed.blobs.is_empty());
        }
        assert_eq!(pack(b"\x01abc").stored, b"\x00\x01abc");
    }

    /// A record that already holds what looks like a reference is not packed, so that no
    /// reference is ever read out of data.
    #[test]
    fn a_record_that_looks_packed_is_kept_as_it_is() {
        let mut original = record(&"A".repeat(300), &"B".repeat(300));
        original.extend_from_slice(format!(r#""x":"@{}""#, "0".repeat(64)).as_bytes());
        let (packed, back) = round_trip(&original);
        assert!(packed.blobs.is_empty());
        assert_eq!(back, original);
    }

    /// Records stored before the compact form (`0x01` then the packed JSON) read as before.
    #[test]
    fn the_plain_packed_form_is_still_read() {
        let certificate = "MIIB".repeat(200);
        let original = record(&certificate, &certificate);
        let hash: [u8; 32] = Sha256::digest(certificate.as_bytes()).into();
        let plain = String::from_utf8(original.clone())
            .expect("text")
            .replace(&certificate, &format!("@{}", hex::encode(hash)));
        let stored = [&[PACKED][..], plain.as_bytes()].concat();
        assert_eq!(references(&stored).expect("references"), vec![hash; 3]);
        let back = unpack(stored, |wanted| {
            (*wanted == hash).then(|| certificate.as_bytes().to_vec())
        })
        .expect("unpack");
        assert_eq!(back, original);
        // What is written now is the compact form, and reads back the same.
        let (packed, back) = round_trip(&original);
        assert!(packed.stored.starts_with(&[PACKED, COMPACT]));
        assert_eq!(back, original);
    }

    #[test]
    fn a_missing_or_altered_value_is_an_error() {
        let original = record(&"A".repeat(300), &"B".repeat(300));
        let packed = pack(&original);
        assert!(matches!(
            unpack(packed.stored.clone(), |_| None),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            unpack(packed.stored.clone(), |_| Some(b"C".repeat(300))),
            Err(StoreError::Corrupt(_))
        ));
        let mut cut = packed.stored.clone();
        cut.truncate(cut.len() - 80);
        let blobs: HashMap<[u8; 32], Vec<u8>> = packed
            .values(&original)
            .map(|(hash, value)| (*hash, value.to_vec()))
            .collect();
        assert!(unpack(cut, |hash| blobs.get(hash).cloned()).is_err());
    }

    /// A value is upserted once an hour per log, counts as stored only once its upsert is
    /// confirmed, and at most [`REMEMBERED`] values are remembered.
    #[test]
    fn upserts_are_remembered_per_log() {
        let mut upserted = Upserted::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(upserted.needed("log", &a, 1_000));
        assert!(!upserted.needed("log", &a, 1_001));
        assert!(!upserted.settled("log", &a, 1_001), "not confirmed yet");
        upserted.confirm("log", [&a]);
        assert!(upserted.settled("log", &a, 1_001));
        assert!(upserted.needed("other", &a, 1_001), "another log's value");
        assert!(!upserted.settled("other", &a, 1_001));
        assert!(
            upserted.needed("log", &a, 1_000 + UPSERT_AGAIN_AFTER),
            "an hour on"
        );
        assert!(!upserted.settled("log", &a, 1_000 + UPSERT_AGAIN_AFTER));
        assert!(upserted.needed("log", &b, 999 + UPSERT_AGAIN_AFTER));
        upserted.forget();
        assert!(upserted.needed("log", &b, 999 + UPSERT_AGAIN_AFTER));

        upserted.forget();
        for n in 0..REMEMBERED as u32 {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&n.to_be_bytes());
            assert!(upserted.needed("log", &hash, 5_000));
        }
        assert_eq!(upserted.count, REMEMBERED);
        assert!(upserted.needed("log", &a, 5_000));
        assert_eq!(upserted.count, 1, "the full memory started again");
        assert!(!upserted.needed("log", &a, 5_001));
    }

    /// The hash of a value is its SHA-256, whether remembered or not.
    #[test]
    fn remembered_hashes_are_the_values_hashes() {
        let values: Vec<Vec<u8>> = (0..24u8).map(|i| vec![b'A' + i % 20; 300]).collect();
        for value in values.iter().chain(values.iter().rev()) {
            let expected: [u8; 32] = Sha256::digest(value).into();
            assert_eq!(value_hash(value), expected);
        }
    }

    proptest! {
        /// Whatever the bytes, storing and reading gives them back.
        #[test]
        fn any_bytes_round_trip(prefix in proptest::collection::vec(any::<u8>(), 0..64),
                                value in "[A-Za-z0-9+/=@\"]{0,300}",
                                tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut original = b"{".to_vec();
            original.extend_from_slice(&prefix);
            original.extend_from_slice(b"\"request_signer_ocsp\":\"");
            original.extend_from_slice(value.as_bytes());
            original.extend_from_slice(b"\"");
            original.extend_from_slice(&tail);
            let (_, back) = round_trip(&original);
            prop_assert_eq!(back, original.clone());
            let (_, back) = round_trip(&original[1..]);
            prop_assert_eq!(back, original[1..].to_vec());
        }
    }
}
