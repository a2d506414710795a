//! Evidence bundles: one log record with everything needed to check it offline, as a ZIP
//! file in the ASiC-E layout (ETSI EN 319 162-1) where it fits.
//!
//! Entries, in this order:
//! - `mimetype`: stored, no extra field, exactly [`MIMETYPE`] (so tools can sniff it);
//! - `META-INF/manifest.xml`: the OpenDocument manifest listing the other entries;
//! - `record.json`: the [`LogRecord`] in its canonical encoding;
//! - `proof.json`: the [`InclusionProof`] of the record in the head's tree;
//! - `tree-head.json`: the [`SignedTreeHead`] in its canonical JSON;
//! - `timestamp.tsr`: the TSA's RFC 3161 token (DER) over the head's imprint;
//! - `bodies/request`, `bodies/response`: the message bodies, if the log kept them in clear,
//!   or `bodies/request.sealed`, `bodies/response.sealed` if it kept them encrypted to the
//!   member's key (see [`crate::open_bodies`]); checked against the record's digests;
//! - `certificates/NAME.der`: certificates an auditor may want (the log's, the TSA's, CA
//!   certificates). They are conveniences, not evidence: the verifier is given its keys.
//!
//! Unlike ASiC-E, the evidence is not signed by a `META-INF/*signatures*.xml`: the log
//! signature covers the tree head, the inclusion proof ties the record to it, and the
//! timestamp token covers the signed head.
//!
//! Reading is bounded: the archive, each entry and their sum have size limits, the number
//! of entries is capped, and any malformed input gives a [`BundleError`].

use crate::encoding::hex_hashes;
use crate::{LogRecord, MerkleLog, TimestampedHead};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Read as _, Write as _};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// The content of the `mimetype` entry.
pub const MIMETYPE: &str = "application/vnd.etsi.asic-e+zip";
/// The largest entry, uncompressed, that [`read_bundle`] accepts.
pub const MAX_ENTRY_SIZE: u64 = 64 << 20;
/// The largest archive, and the largest sum of uncompressed entries, it accepts.
pub const MAX_TOTAL_SIZE: u64 = 256 << 20;
/// The most entries it accepts.
pub const MAX_ENTRIES: usize = 1000;

const MANIFEST: &str = "META-INF/manifest.xml";
const RECORD: &str = "record.json";
const PROOF: &str = "proof.json";
const TREE_HEAD: &str = "tree-head.json";
const TIMESTAMP: &str = "timestamp.tsr";
const CERTIFICATES: &str = "certificates/";
const BODIES: &str = "bodies/";
/// The names a body may have in a bundle (after `bodies/`).
pub const BODY_NAMES: [&str; 4] = ["request", "response", "request.sealed", "response.sealed"];

/// One record's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The record.
    pub record: LogRecord,
    /// Its inclusion proof in the tree of the head.
    pub proof: InclusionProof,
    /// The signed, timestamped tree head.
    pub head: TimestampedHead,
    /// Certificates by name (the file name without `certificates/` and `.der`), DER.
    pub certificates: Vec<(String, Vec<u8>)>,
    /// The message bodies the log kept, by name (one of [`BODY_NAMES`]), in that order.
    pub bodies: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    /// The bundle of record `index` of `log`, proven against `head`, or `None` if the log
    /// has no such record under that head or `record` is not that leaf. Certificates are
    /// left for the caller to add.
    pub fn from_log(
        log: &MerkleLog,
        record: LogRecord,
        index: u64,
        head: TimestampedHead,
    ) -> Option<Self> {
        if log.leaf(index)? != record.leaf_hash() {
            return None;
        }
        let tree_size = head.signed.head.size;
        let path = log.inclusion_proof(index, tree_size)?;
        Some(Self {
            record,
            proof: InclusionProof {
                leaf_index: index,
                tree_size,
                path,
            },
            head,
            certificates: Vec::new(),
            bodies: Vec::new(),
        })
    }
}

/// The inclusion proof of a record in a tree (`proof.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The record's index in the log.
    pub leaf_index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf to root (hex in JSON).
    #[serde(with = "hex_hashes")]
    pub path: Vec<[u8; 32]>,
}

/// Why a bundle cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The archive is larger than [`MAX_TOTAL_SIZE`], or its entries together are.
    #[error("bundle larger than {MAX_TOTAL_SIZE} bytes")]
    TooLarge,
    /// The bytes are not a ZIP archive this reader supports.
    #[error("not a ZIP archive: {0}")]
    NotZip(String),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("bundle has {0} entries, more than {MAX_ENTRIES}")]
    TooManyEntries(usize),
    /// An entry is larger than [`MAX_ENTRY_SIZE`].
    #[error("entry {0:?} larger than {MAX_ENTRY_SIZE} bytes")]
    EntryTooLarge(String),
    /// An entry cannot be read (corrupt, encrypted, bad checksum).
    #[error("entry {index} unreadable: {reason}")]
    Unreadable {
        /// The entry's position in the archive.
        index: usize,
        /// What the ZIP reader said.
        reason: String,
    },
    /// The first entry is not a stored `mimetype` without extra field holding [`MIMETYPE`].
    #[error("the first entry is not the ASiC-E mimetype")]
    BadMimetype,
    /// An entry this format does not have, or a certificate with a bad name.
    #[error("unexpected entry {0:?}")]
    UnexpectedEntry(String),
    /// An entry appears twice.
    #[error("duplicate entry {0:?}")]
    DuplicateEntry(String),
    /// The central directory lists more entries than there are distinct names.
    #[error("the archive lists {declared} entries but has {distinct} distinct names")]
    HiddenEntries {
        /// Entries in the central directory.
        declared: usize,
        /// Distinct names among them.
        distinct: usize,
    },
    /// A required entry is missing.
    #[error("missing entry {0:?}")]
    MissingEntry(&'static str),
    /// An entry does not parse.
    #[error("entry {entry:?} malformed: {reason}")]
    Malformed {
        /// Which entry.
        entry: &'static str,
        /// Why.
        reason: String,
    },
    /// The manifest does not list exactly the entries of the bundle.
    #[error("the manifest does not match the entries")]
    BadManifest,
    /// Writing the archive failed.
    #[error("cannot write bundle: {0}")]
    Write(String),
}

/// Write `bundle` as a ZIP file. Deterministic: the same bundle gives the same bytes.
pub fn write_bundle(bundle: &Bundle) -> Result<Vec<u8>, BundleError> {
    for (name, _) in &bundle.certificates {
        if !is_certificate_name(name) {
            return Err(BundleError::UnexpectedEntry(certificate_path(name)));
        }
    }
    let write_error = |e: zip::result::ZipError| BundleError::Write(e.to_string());
    let io_error = |e: std::io::Error| BundleError::Write(e.to_string());
    // A fixed date keeps the output reproducible; the evidence carries its own times.
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default());
    let deflated = stored.compression_method(CompressionMethod::Deflated);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut entries: Vec<(String, SimpleFileOptions, Vec<u8>)> = vec![
        ("mimetype".into(), stored, MIMETYPE.as_bytes().to_vec()),
        (MANIFEST.into(), deflated, manifest(bundle).into_bytes()),
        (RECORD.into(), deflated, bundle.record.to_canonical_bytes()),
        (PROOF.into(), deflated, proof_json(&bundle.proof)),
        (
            TREE_HEAD.into(),
            deflated,
            bundle.head.signed.to_canonical_json(),
        ),
        (TIMESTAMP.into(), stored, bundle.head.tsa_token.clone()),
    ];
    for (name, body) in &bundle.bodies {
        if !BODY_NAMES.contains(&name.as_str()) {
            return Err(BundleError::UnexpectedEntry(format!("{BODIES}{name}")));
        }
        entries.push((format!("{BODIES}{name}"), deflated, body.clone()));
    }
    for (name, der) in &bundle.certificates {
        entries.push((certificate_path(name), stored, der.clone()));
    }
    for (name, options, content) in entries {
        zip.start_file(name, options).map_err(write_error)?;
        zip.write_all(&content).map_err(io_error)?;
    }
    Ok(zip.finish().map_err(write_error)?.into_inner())
}

/// Read a bundle written by [`write_bundle`] (or by anyone following the same layout).
///
/// Checks the container only: that the entries are those of the format, within the limits,
/// and parse. Whether the evidence holds is for [`crate::verify_bundle`].
pub fn read_bundle(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let mut manifest_xml = None;
    let (mut record, mut proof, mut tree_head, mut timestamp) = (None, None, None, None);
    let mut certificates: Vec<(String, Vec<u8>)> = Vec::new();
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, content) in read_container(bytes, MIMETYPE, MAX_ENTRY_SIZE)? {
        if let Some(body) = name.strip_prefix(BODIES) {
            if !BODY_NAMES.contains(&body) {
                return Err(BundleError::UnexpectedEntry(name));
            }
            if bodies.iter().any(|(seen, _)| seen == body) {
                return Err(BundleError::DuplicateEntry(name));
            }
            bodies.push((body.to_owned(), content));
            continue;
        }
        let slot = match name.as_str() {
            MANIFEST => &mut manifest_xml,
            RECORD => &mut record,
            PROOF => &mut proof,
            TREE_HEAD => &mut tree_head,
            TIMESTAMP => &mut timestamp,
            _ => {
                push_certificate(&mut certificates, name, content)?;
                continue;
            }
        };
        if slot.replace(content).is_some() {
            return Err(BundleError::DuplicateEntry(name));
        }
    }
    let manifest_xml = manifest_xml.ok_or(BundleError::MissingEntry(MANIFEST))?;
    let bundle = Bundle {
        record: parse(RECORD, record)?,
        proof: parse(PROOF, proof)?,
        head: TimestampedHead {
            signed: parse(TREE_HEAD, tree_head)?,
            tsa_token: timestamp.ok_or(BundleError::MissingEntry(TIMESTAMP))?,
        },
        certificates,
        bodies,
    };
    if manifest_xml != manifest(&bundle).as_bytes() {
        return Err(BundleError::BadManifest);
    }
    Ok(bundle)
}

/// The entries after the first of a ZIP container in this crate's layout, in archive order.
///
/// Checks what every container of the crate shares: the size limits ([`MAX_TOTAL_SIZE`]
/// for the file and the sum of entries, `max_entry` for one entry, [`MAX_ENTRIES`]), no
/// entry hidden behind another of the same name, and a first entry `mimetype`, stored,
/// without extra field, holding exactly `mimetype`.
pub(crate) fn read_container(
    bytes: &[u8],
    mimetype: &str,
    max_entry: u64,
) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
    if bytes.len() as u64 > MAX_TOTAL_SIZE {
        return Err(BundleError::TooLarge);
    }
    let mut archive =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| BundleError::NotZip(e.to_string()))?;
    if archive.len() > MAX_ENTRIES {
        return Err(BundleError::TooManyEntries(archive.len()));
    }
    // The ZIP reader keeps only the last of several entries with one name; other tools
    // may take the first. Refuse the ambiguity.
    let declared = declared_entries(bytes)?;
    if declared != archive.len() {
        return Err(BundleError::HiddenEntries {
            declared,
            distinct: archive.len(),
        });
    }
    if archive.is_empty() {
        return Err(BundleError::BadMimetype);
    }
    let mut total = 0u64;
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let unreadable = |e: &dyn std::fmt::Display| BundleError::Unreadable {
            index,
            reason: e.to_string(),
        };
        let mut file = archive.by_index(index).map_err(|e| unreadable(&e))?;
        let name = file.name().to_owned();
        if file.size() > max_entry {
            return Err(BundleError::EntryTooLarge(name));
        }
        if index == 0
            && (name != "mimetype"
                || file.compression() != CompressionMethod::Stored
                || file.extra_data().is_some_and(|extra| !extra.is_empty()))
        {
            return Err(BundleError::BadMimetype);
        }
        // The declared size may lie: never read more than the limit allows.
        let mut content = Vec::new();
        (&mut file)
            .take(max_entry + 1)
            .read_to_end(&mut content)
            .map_err(|e| unreadable(&e))?;
        if content.len() as u64 > max_entry {
            return Err(BundleError::EntryTooLarge(name));
        }
        total += content.len() as u64;
        if total > MAX_TOTAL_SIZE {
            return Err(BundleError::TooLarge);
        }
        if index == 0 {
            if content != mimetype.as_bytes() {
                return Err(BundleError::BadMimetype);
            }
            continue;
        }
        entries.push((name, content));
    }
    Ok(entries)
}

/// Add `certificates/NAME.der` to `certificates`, refusing other names and duplicates.
pub(crate) fn push_certificate(
    certificates: &mut Vec<(String, Vec<u8>)>,
    name: String,
    content: Vec<u8>,
) -> Result<(), BundleError> {
    let certificate = name
        .strip_prefix(CERTIFICATES)
        .and_then(|rest| rest.strip_suffix(".der"))
        .filter(|stem| is_certificate_name(stem))
        .ok_or_else(|| BundleError::UnexpectedEntry(name.clone()))?;
    if certificates.iter().any(|(seen, _)| seen == certificate) {
        return Err(BundleError::DuplicateEntry(name));
    }
    certificates.push((certificate.to_owned(), content));
    Ok(())
}

/// The number of entries the end-of-central-directory record declares. ZIP64 archives are
/// refused: a bundle never needs one.
fn declared_entries(bytes: &[u8]) -> Result<usize, BundleError> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    const ZIP64_LOCATOR: &[u8] = b"PK\x06\x07";
    let not_zip = |reason: &str| BundleError::NotZip(reason.into());
    // The record is the last one whose comment ends exactly at the end of the archive.
    let position = (0..=bytes.len().saturating_sub(EOCD_LEN))
        .rev()
        .take(EOCD_LEN + usize::from(u16::MAX))
        .find(|&at| {
            let record = &bytes[at..];
            record.len() >= EOCD_LEN
                && record.starts_with(EOCD)
                && usize::from(u16::from_le_bytes([record[20], record[21]]))
                    == record.len() - EOCD_LEN
        })
        .ok_or_else(|| not_zip("no end of central directory"))?;
    let record = &bytes[position..];
    let entries = u16::from_le_bytes([record[10], record[11]]);
    let zip64 = position
        .checked_sub(20)
        .is_some_and(|locator| bytes[locator..].starts_with(ZIP64_LOCATOR));
    if entries == u16::MAX || zip64 {
        return Err(not_zip("ZIP64 archives are not supported"));
    }
    Ok(usize::from(entries))
}

/// Parse a JSON entry that must be present and in its canonical form (compact, fields in
/// declaration order), so that each bundle has one encoding and no byte of it is slack.
pub(crate) fn parse<T: Serialize + serde::de::DeserializeOwned>(
    entry: &'static str,
    content: Option<Vec<u8>>,
) -> Result<T, BundleError> {
    let content = content.ok_or(BundleError::MissingEntry(entry))?;
    let malformed = |reason: String| BundleError::Malformed { entry, reason };
    let value: T = serde_json::from_slice(&content).map_err(|e| malformed(e.to_string()))?;
    if serde_json::to_vec(&value).ok().as_deref() != Some(content.as_slice()) {
        return Err(malformed("not in canonical form".into()));
    }
    Ok(value)
}

/// The manifest of `bundle`: the entries in archive order. The reader compares it byte for
/// byte with the one in the archive, so that it lists exactly what is there.
fn manifest(bundle: &Bundle) -> String {
    let mut xml = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n",
        "<manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\"",
        " manifest:version=\"1.2\">\n",
    ));
    let entry = |xml: &mut String, path: &str, media_type: &str| {
        xml.push_str(&format!(
            " <manifest:file-entry manifest:full-path=\"{path}\" manifest:media-type=\"{media_type}\"/>\n"
        ));
    };
    entry(&mut xml, "/", MIMETYPE);
    entry(&mut xml, RECORD, "application/json");
    entry(&mut xml, PROOF, "application/json");
    entry(&mut xml, TREE_HEAD, "application/json");
    entry(&mut xml, TIMESTAMP, "application/timestamp-reply");
    for (name, _) in &bundle.bodies {
        // Body names are from BODY_NAMES: no XML escaping needed.
        entry(
            &mut xml,
            &format!("{BODIES}{name}"),
            "application/octet-stream",
        );
    }
    for (name, _) in &bundle.certificates {
        // Certificate names are restricted to characters that need no XML escaping.
        entry(&mut xml, &certificate_path(name), "application/pkix-cert");
    }
    xml.push_str("</manifest:manifest>\n");
    xml
}

fn proof_json(proof: &InclusionProof) -> Vec<u8> {
    serde_json::to_vec(proof).expect("a proof serializes: it has no maps and no floats")
}

pub(crate) fn certificate_path(name: &str) -> String {
    format!("{CERTIFICATES}{name}.der")
}

/// 1 to 64 of `A-Z a-z 0-9 - _ .`, not starting with a dot: safe in paths and XML.
pub(crate) fn is_certificate_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::log::tests::key;
    use crate::record::tests::sample;
    use crate::{TreeHead, sign_head};
    use lienthong_crypto::SoftwareKey;
    use proptest::prelude::*;

    /// A bundle for record 3 of a log of 10, signed by `key`, with a token from
    /// [`crate::verify::tests::fake_token`].
    pub(crate) fn sample_bundle(key: &SoftwareKey) -> Bundle {
        let records: Vec<LogRecord> = (0..10).map(sample).collect();
        let log = MerkleLog::from_leaves(records.iter().map(LogRecord::leaf_hash));
        let head = TreeHead {
            log_id: "gw-1".into(),
            size: 9,
            root: log.root_at(9).expect("root"),
            time_ms: 1_790_000_001_000,
        };
        let signed = sign_head(head, key).expect("signs");
        let tsa_token =
            crate::verify::tests::fake_token(&signed.timestamp_imprint(), 1_790_000_002_000);
        let mut bundle = Bundle::from_log(
            &log,
            records[3].clone(),
            3,
            TimestampedHead { signed, tsa_token },
        )
        .expect("record 3 is in the log");
        bundle
            .certificates
            .push(("log-signer".into(), vec![0x30, 0x00]));
        bundle
            .certificates
            .push(("tsa".into(), vec![0x30, 0x01, 0x05]));
        bundle
    }

    /// A ZIP of these entries, written without any of [`write_bundle`]'s checks.
    pub(crate) fn raw_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            zip.start_file(*name, options).expect("start");
            zip.write_all(content).expect("write");
        }
        zip.finish().expect("finish").into_inner()
    }

    /// The entries of a ZIP, in order.
    pub(crate) fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = ZipArchive::new(Cursor::new(bytes)).expect("zip");
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).expect("entry");
                let mut content = Vec::new();
                file.read_to_end(&mut content).expect("read");
                (file.name().to_owned(), content)
            })
            .collect()
    }

    #[test]
    fn a_bundle_round_trips_in_the_asic_e_layout() {
        let bundle = sample_bundle(&key());
        let bytes = write_bundle(&bundle).expect("writes");
        assert_eq!(
            write_bundle(&bundle).expect("writes"),
            bytes,
            "deterministic"
        );
        // The mimetype is the first local header, stored, without extra field, so that
        // `file` and ASiC tools recognise the type at offset 38.
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        assert_eq!(&bytes[8..10], &[0, 0], "stored");
        assert_eq!(
            &bytes[26..30],
            &[8, 0, 0, 0],
            "name length 8, no extra field"
        );
        assert_eq!(&bytes[30..38], b"mimetype");
        assert_eq!(&bytes[38..38 + MIMETYPE.len()], MIMETYPE.as_bytes());
        let names: Vec<String> = entries(&bytes).into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "mimetype",
                MANIFEST,
                RECORD,
                PROOF,
                TREE_HEAD,
                TIMESTAMP,
                "certificates/log-signer.der",
                "certificates/tsa.der"
            ]
        );
        let manifest = String::from_utf8(entries(&bytes)[1].1.clone()).expect("UTF-8");
        assert!(manifest.contains("manifest:full-path=\"certificates/tsa.der\""));
        assert_eq!(read_bundle(&bytes), Ok(bundle));
    }

    #[test]
    fn bad_certificate_names_are_refused_when_writing() {
        let mut bundle = sample_bundle(&key());
        for name in ["", "../x", "a/b", ".hidden", "a\"b", &"x".repeat(65)] {
            bundle.certificates = vec![(name.to_owned(), vec![])];
            assert!(matches!(
                write_bundle(&bundle),
                Err(BundleError::UnexpectedEntry(_))
            ));
        }
    }

    /// The sample bundle's entries, with `edit` applied, zipped again.
    fn edited(edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
        let bytes = write_bundle(&sample_bundle(&key())).expect("writes");
        let mut entries = entries(&bytes);
        edit(&mut entries);
        let borrowed: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        raw_zip(&borrowed)
    }

    /// The sample bundle with a second entry named `name` (which the ZIP writer refuses to
    /// write, so it is renamed in the bytes: names are not under the checksums).
    fn duplicated(name: &str) -> Vec<u8> {
        let stand_in = format!("{}#", &name[..name.len() - 1]);
        let bytes = edited(|e| e.push((stand_in.clone(), b"{}".to_vec())));
        let (from, to) = (stand_in.as_bytes(), name.as_bytes());
        let mut out = bytes.clone();
        for start in 0..bytes.len() - from.len() {
            if &bytes[start..start + from.len()] == from {
                out[start..start + to.len()].copy_from_slice(to);
            }
        }
        out
    }

    #[test]
    fn malformed_containers_are_refused() {
        use BundleError::*;
        type Expectation = fn(&BundleError) -> bool;
        let cases: Vec<(Vec<u8>, Expectation)> = vec![
            (edited(|e| e.swap(0, 1)), |e| *e == BadMimetype),
            (edited(|e| e[0].1.push(b'x')), |e| *e == BadMimetype),
            (
                edited(|e| {
                    e.remove(0);
                }),
                |e| *e == BadMimetype,
            ),
            (
                edited(|e| {
                    e.remove(2);
                }),
                |e| *e == MissingEntry(RECORD),
            ),
            (
                edited(|e| {
                    e.remove(1);
                }),
                |e| *e == MissingEntry(MANIFEST),
            ),
            (
                edited(|e| {
                    e.remove(5);
                }),
                |e| *e == MissingEntry(TIMESTAMP),
            ),
            (
                edited(|e| e.push(("extra.txt".into(), vec![]))),
                |e| matches!(e, UnexpectedEntry(n) if n == "extra.txt"),
            ),
            (
                edited(|e| e.push(("certificates/../x.der".into(), vec![]))),
                |e| matches!(e, UnexpectedEntry(_)),
            ),
            (duplicated(PROOF), |e| {
                matches!(
                    e,
                    HiddenEntries {
                        declared: 9,
                        distinct: 8
                    }
                )
            }),
            (duplicated("certificates/tsa.der"), |e| {
                matches!(e, HiddenEntries { .. })
            }),
            (edited(|e| e[3].1 = b"{\"leaf_index\":1}".to_vec()), |e| {
                matches!(e, Malformed { entry: PROOF, .. })
            }),
            (edited(|e| e[2].1.push(b' ')), |e| {
                matches!(e, Malformed { entry: RECORD, .. })
            }),
            (edited(|e| e[4].1.insert(0, b' ')), |e| {
                matches!(
                    e,
                    Malformed {
                        entry: TREE_HEAD,
                        ..
                    }
                )
            }),
            (edited(|e| e[1].1.insert(0, b' ')), |e| *e == BadManifest),
            (
                edited(|e| {
                    e.remove(7);
                }),
                |e| *e == BadManifest,
            ),
            (vec![], |e| matches!(e, NotZip(_))),
            (b"PK\x03\x04garbage".to_vec(), |e| matches!(e, NotZip(_))),
        ];
        for (i, (bytes, expected)) in cases.into_iter().enumerate() {
            let error = read_bundle(&bytes).expect_err("refused");
            assert!(expected(&error), "case {i}: {error:?}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let many: Vec<(String, Vec<u8>)> = (0..=MAX_ENTRIES)
            .map(|i| (format!("certificates/c{i}.der"), vec![]))
            .collect();
        let bytes = edited(|e| e.extend(many));
        assert!(matches!(
            read_bundle(&bytes),
            Err(BundleError::TooManyEntries(_))
        ));
        // A compression bomb: 65 MiB of zeros deflates to about 64 KiB.
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        zip.start_file("mimetype", stored).expect("start");
        zip.write_all(MIMETYPE.as_bytes()).expect("write");
        let deflated = stored.compression_method(CompressionMethod::Deflated);
        zip.start_file(RECORD, deflated).expect("start");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..65 {
            zip.write_all(&zeros).expect("write");
        }
        let bomb = zip.finish().expect("finish").into_inner();
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            read_bundle(&bomb),
            Err(BundleError::EntryTooLarge(RECORD.into()))
        );
        assert_eq!(
            read_bundle(&vec![0; MAX_TOTAL_SIZE as usize + 1]),
            Err(BundleError::TooLarge)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_bundle(&bytes);
        }

        #[test]
        fn corrupted_bundles_never_panic(
            position in any::<prop::sample::Index>(),
            value in any::<u8>(),
            truncate in any::<prop::sample::Index>(),
        ) {
            let bytes = write_bundle(&sample_bundle(&key())).expect("writes");
            let mut corrupted = bytes.clone();
            let at = position.index(corrupted.len());
            corrupted[at] = value;
            let _ = read_bundle(&corrupted);
            let _ = read_bundle(&bytes[..truncate.index(bytes.len())]);
        }
    }
}
