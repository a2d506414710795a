//! Archives of the message log: a contiguous range of records with the signed and
//! timestamped tree heads over them, as one ZIP file that the offline verifier checks like
//! an evidence bundle. Each archive holds the SHA-256 of the archive before it, so the files
//! of a log form a hash chain: a file changed, removed or replaced breaks the next link.
//!
//! Entries, in this order:
//! - `mimetype`: stored, no extra field, exactly [`ARCHIVE_MIMETYPE`];
//! - `manifest.json`: the [`ArchiveManifest`] — log id, sequence number (1 for the first
//!   archive), the record range `first..end`, the previous archive's SHA-256 (zeros for the
//!   first) and the *frontier* at `first`: the roots of the complete subtrees over records
//!   `0..first` (see [`MerkleLog::frontier`]), which with the records give every root of
//!   the tree from `first` to `end`;
//! - `records.jsonl`: the records `first..end` in their canonical encoding, one a line;
//! - `heads.json`: the [`ArchivedHead`]s over sizes in `first + 1..=end`, smallest first,
//!   the last over exactly `end` records and timestamped;
//! - `certificates/NAME.der`: conveniences, as in a bundle.
//!
//! All JSON is in canonical form (compact, fields in declaration order) and checked to be
//! so when read, so that each archive has one encoding.

use crate::bundle::{
    MAX_TOTAL_SIZE, certificate_path, is_certificate_name, parse, push_certificate, read_container,
};
use crate::encoding::{base64_option, hex_hash, hex_hashes};
use crate::verify::{CHECK_HEAD_SIGNATURE, CHECK_TIMESTAMP, check, record_signatures};
use crate::{
    BundleError, Check, LogRecord, MerkleLog, Outcome, SignedTreeHead, TrustRoots, Verdict,
    pki_timestamp_verifier,
};
use lienthong_crypto::{BatchVerifier, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{Cursor, Write as _};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// The content of an archive's `mimetype` entry.
pub const ARCHIVE_MIMETYPE: &str = "application/vnd.lienthong.log-archive+zip";
/// The `format` of an archive manifest.
pub const ARCHIVE_FORMAT: &str = "lienthong-log-archive/1";

/// The archive's records lead to the roots of its signed heads.
pub const CHECK_ARCHIVE_RECORDS: &str = "archive-records";
/// The archive follows the previous one: hash link, sequence, range and frontier.
pub const CHECK_ARCHIVE_CHAIN: &str = "archive-chain";
/// Every record's request and response signatures.
pub const CHECK_RECORD_SIGNATURES: &str = "record-signatures";

const MANIFEST: &str = "manifest.json";
const RECORDS: &str = "records.jsonl";
const HEADS: &str = "heads.json";

/// What an archive is: which log, where in its chain, which records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveManifest {
    /// Always [`ARCHIVE_FORMAT`].
    pub format: String,
    /// The log the records belong to.
    pub log_id: String,
    /// 1 for the log's first archive, then one more for each.
    pub sequence: u64,
    /// The index of the first record.
    pub first: u64,
    /// One past the index of the last record.
    pub end: u64,
    /// SHA-256 of the previous archive's file; zeros for the first archive (hex in JSON).
    #[serde(with = "hex_hash")]
    pub previous_sha256: [u8; 32],
    /// The frontier of the tree of records `0..first` (hex in JSON).
    #[serde(with = "hex_hashes")]
    pub frontier: Vec<[u8; 32]>,
}

/// A signed tree head in an archive, with its timestamp token if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedHead {
    /// The signed head.
    pub signed: SignedTreeHead,
    /// The TSA's RFC 3161 token over its imprint, DER (base64 in JSON).
    #[serde(with = "base64_option")]
    pub tsa_token: Option<Vec<u8>>,
}

/// One archive of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// What it holds.
    pub manifest: ArchiveManifest,
    /// Records `manifest.first..manifest.end`.
    pub records: Vec<LogRecord>,
    /// The heads over them, smallest first.
    pub heads: Vec<ArchivedHead>,
    /// Certificates by name, DER.
    pub certificates: Vec<(String, Vec<u8>)>,
}

impl Archive {
    /// The log's tree from the frontier through the archive's records, or `None` if the
    /// frontier does not fit `first`.
    pub fn tree(&self) -> Option<MerkleLog> {
        let mut tree = MerkleLog::from_frontier(self.manifest.first, &self.manifest.frontier)?;
        for record in &self.records {
            tree.append(record.leaf_hash());
        }
        Some(tree)
    }
}

/// The SHA-256 of an archive file, as the next archive links to it.
pub fn archive_sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Write `archive` as a ZIP file. Deterministic: the same archive gives the same bytes.
pub fn write_archive(archive: &Archive) -> Result<Vec<u8>, BundleError> {
    for (name, _) in &archive.certificates {
        if !is_certificate_name(name) {
            return Err(BundleError::UnexpectedEntry(certificate_path(name)));
        }
    }
    let write_error = |e: zip::result::ZipError| BundleError::Write(e.to_string());
    let io_error = |e: std::io::Error| BundleError::Write(e.to_string());
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default());
    let deflated = stored.compression_method(CompressionMethod::Deflated);
    let mut records = Vec::new();
    for record in &archive.records {
        records.extend_from_slice(&record.to_canonical_bytes());
        records.push(b'\n');
    }
    let mut entries: Vec<(String, SimpleFileOptions, Vec<u8>)> = vec![
        (
            "mimetype".into(),
            stored,
            ARCHIVE_MIMETYPE.as_bytes().to_vec(),
        ),
        (MANIFEST.into(), deflated, canonical(&archive.manifest)),
        (RECORDS.into(), deflated, records),
        (HEADS.into(), deflated, canonical(&archive.heads)),
    ];
    for (name, der) in &archive.certificates {
        entries.push((certificate_path(name), stored, der.clone()));
    }
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, options, content) in entries {
        // Records of a busy day may pass 4 GiB uncompressed only in theory: the reader
        // refuses anything over its limits, and so the writer need not go ZIP64.
        zip.start_file(name, options).map_err(write_error)?;
        zip.write_all(&content).map_err(io_error)?;
    }
    Ok(zip.finish().map_err(write_error)?.into_inner())
}

/// Read an archive written by [`write_archive`]. Checks the container and that its parts
/// agree in shape (as many records as the range says, heads inside the range); whether the
/// evidence holds is for [`verify_archive`].
pub fn read_archive(bytes: &[u8]) -> Result<Archive, BundleError> {
    let (mut manifest, mut records, mut heads) = (None, None, None);
    let mut certificates = Vec::new();
    for (name, content) in read_container(bytes, ARCHIVE_MIMETYPE, MAX_TOTAL_SIZE)? {
        let slot = match name.as_str() {
            MANIFEST => &mut manifest,
            RECORDS => &mut records,
            HEADS => &mut heads,
            _ => {
                push_certificate(&mut certificates, name, content)?;
                continue;
            }
        };
        if slot.replace(content).is_some() {
            return Err(BundleError::DuplicateEntry(name));
        }
    }
    let manifest: ArchiveManifest = parse(MANIFEST, manifest)?;
    let malformed = |entry: &'static str, reason: String| BundleError::Malformed { entry, reason };
    if manifest.format != ARCHIVE_FORMAT {
        return Err(malformed(
            MANIFEST,
            format!("unknown format {:?}", manifest.format),
        ));
    }
    if manifest.first >= manifest.end || manifest.sequence == 0 {
        return Err(malformed(
            MANIFEST,
            "an archive holds at least one record and its sequence starts at 1".into(),
        ));
    }
    if manifest.frontier.len() != manifest.first.count_ones() as usize {
        return Err(malformed(
            MANIFEST,
            format!(
                "a frontier at {} has {} hashes",
                manifest.first,
                manifest.first.count_ones()
            ),
        ));
    }
    let records = parse_records(&records.ok_or(BundleError::MissingEntry(RECORDS))?)?;
    if records.len() as u64 != manifest.end - manifest.first {
        return Err(malformed(
            RECORDS,
            format!(
                "{} records for the range {}..{}",
                records.len(),
                manifest.first,
                manifest.end
            ),
        ));
    }
    let heads: Vec<ArchivedHead> = parse(HEADS, heads)?;
    let sizes_fit = heads
        .iter()
        .all(|h| h.signed.head.size > manifest.first && h.signed.head.size <= manifest.end);
    let ordered = heads
        .windows(2)
        .all(|pair| pair[0].signed.head.size < pair[1].signed.head.size);
    if !sizes_fit || !ordered || heads.last().map(|h| h.signed.head.size) != Some(manifest.end) {
        return Err(malformed(
            HEADS,
            "the heads must grow strictly within the range and the last cover all of it".into(),
        ));
    }
    Ok(Archive {
        manifest,
        records,
        heads,
        certificates,
    })
}

/// The records of `records.jsonl`: canonical records, each ended by a newline.
fn parse_records(bytes: &[u8]) -> Result<Vec<LogRecord>, BundleError> {
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return Err(BundleError::Malformed {
            entry: RECORDS,
            reason: "no record, or the last is not ended by a newline".into(),
        });
    };
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(line, bytes)| {
            parse::<LogRecord>(RECORDS, Some(bytes.to_vec())).map_err(|e| match e {
                BundleError::Malformed { entry, reason } => BundleError::Malformed {
                    entry,
                    reason: format!("line {}: {reason}", line + 1),
                },
                other => other,
            })
        })
        .collect()
}

/// The archive before the one being verified, to check the link between them.
#[derive(Debug, Clone, Copy)]
pub struct PreviousArchive<'a> {
    /// Its file, as read.
    pub bytes: &'a [u8],
    /// Its content.
    pub archive: &'a Archive,
}

/// Verify `archive` offline: the link to `previous` (or, for the first archive, that it
/// starts the log), every record against the roots of the signed heads, the heads'
/// signatures under `log_key`, their timestamps under `roots`, and every record's request
/// and response signatures. As for bundles, every check is made and the verdict names the
/// first record, head or link that fails.
pub fn verify_archive(
    archive: &Archive,
    previous: Option<PreviousArchive<'_>>,
    log_key: Option<&PublicKey>,
    roots: &TrustRoots,
) -> Verdict {
    let manifest = &archive.manifest;
    let tree = archive.tree();
    let link = if previous.is_none() && manifest.sequence != 1 {
        Check {
            name: CHECK_ARCHIVE_CHAIN.into(),
            outcome: Outcome::NotChecked,
            detail: format!(
                "archive {} of log {:?} cannot be linked: archive {} was not given",
                manifest.sequence,
                manifest.log_id,
                manifest.sequence - 1
            ),
        }
    } else {
        check(CHECK_ARCHIVE_CHAIN, chain(manifest, previous))
    };
    let mut checks = vec![
        link,
        check(
            CHECK_ARCHIVE_RECORDS,
            records_against_heads(archive, tree.as_ref()),
        ),
    ];

    checks.push(match log_key {
        Some(key) => check(
            CHECK_HEAD_SIGNATURE,
            archive
                .heads
                .iter()
                .find(|h| h.signed.verify(key).is_err())
                .map_or_else(
                    || {
                        Ok(format!(
                            "{} tree heads signed by the log key",
                            archive.heads.len()
                        ))
                    },
                    |bad| {
                        Err(format!(
                            "the head over {} records has a bad signature",
                            bad.signed.head.size
                        ))
                    },
                ),
        ),
        None => Check {
            name: CHECK_HEAD_SIGNATURE.into(),
            outcome: Outcome::NotChecked,
            detail: "no log public key was given".into(),
        },
    });

    let verifier = pki_timestamp_verifier(roots);
    let timestamps = archive.heads.iter().try_fold(None, |last, head| {
        let Some(token) = &head.tsa_token else {
            return Ok(last);
        };
        verifier(token, &head.signed.timestamp_imprint())
            .map(|generated| Some((head.signed.head.size, generated)))
            .map_err(|e| {
                format!(
                    "the token of the head over {} records: {e}",
                    head.signed.head.size
                )
            })
    });
    checks.push(check(
        CHECK_TIMESTAMP,
        match timestamps {
            Ok(Some((size, generated))) if size == manifest.end => Ok(format!(
                "the head over all {size} records was stamped at {generated} ms: they existed then"
            )),
            Ok(_) => Err(format!(
                "the head over all {} records carries no timestamp",
                manifest.end
            )),
            Err(e) => Err(e),
        },
    ));

    // Records of one batch share a signature root: remember verified roots.
    let signatures = BatchVerifier::new(1024);
    let mut signed = 0usize;
    let mut failure = None;
    for (offset, record) in archive.records.iter().enumerate() {
        let (request, response) = record_signatures(record, roots, &signatures);
        let problem = request.err().map(|e| format!("request: {e}")).or_else(|| {
            response
                .and_then(Result::err)
                .map(|e| format!("response: {e}"))
        });
        match problem {
            None => signed += 1,
            Some(problem) if failure.is_none() => {
                failure = Some(format!(
                    "record {} (message {:?}) {problem}",
                    manifest.first + offset as u64,
                    record.message_id
                ));
            }
            Some(_) => {}
        }
    }
    checks.push(check(
        CHECK_RECORD_SIGNATURES,
        match failure {
            None => Ok(format!("the signatures of all {signed} records hold")),
            Some(first) => Err(format!(
                "{} of {} records fail; the first: {first}",
                archive.records.len() - signed,
                archive.records.len()
            )),
        },
    ));
    Verdict { checks }
}

/// The `archive-chain` check.
fn chain(
    manifest: &ArchiveManifest,
    previous: Option<PreviousArchive<'_>>,
) -> Result<String, String> {
    let sequence = manifest.sequence;
    let Some(previous) = previous else {
        if manifest.first != 0 || manifest.previous_sha256 != [0; 32] {
            return Err("archive 1 does not start the log at record 0 with no predecessor".into());
        }
        return Ok(format!("archive 1 starts log {:?}", manifest.log_id));
    };
    let before = &previous.archive.manifest;
    if before.log_id != manifest.log_id {
        return Err(format!(
            "archive {sequence} belongs to log {:?}, the archive before it to {:?}",
            manifest.log_id, before.log_id
        ));
    }
    if before.sequence.checked_add(1) != Some(sequence) {
        return Err(format!(
            "archive {sequence} follows archive {}: the archives between are missing",
            before.sequence
        ));
    }
    let found = archive_sha256(previous.bytes);
    if found != manifest.previous_sha256 {
        return Err(format!(
            "archive {sequence} links to an archive {} with SHA-256 {}, but the one given has {}: \
             archive {} was changed or replaced after archive {sequence} was written",
            before.sequence,
            hex::encode(manifest.previous_sha256),
            hex::encode(found),
            before.sequence
        ));
    }
    if before.end != manifest.first {
        return Err(format!(
            "archive {} ends at record {}, archive {sequence} starts at {}",
            before.sequence, before.end, manifest.first
        ));
    }
    let frontier = previous
        .archive
        .tree()
        .and_then(|tree| tree.frontier(before.end));
    if frontier.as_ref() != Some(&manifest.frontier) {
        return Err(format!(
            "the tree of archive {} does not continue in archive {sequence}",
            before.sequence
        ));
    }
    Ok(format!(
        "archive {sequence} follows archive {} (SHA-256 {}) at record {}",
        before.sequence,
        hex::encode(found),
        manifest.first
    ))
}

/// The `archive-records` check: the tree of the frontier and the records has each head's
/// root at its size.
fn records_against_heads(archive: &Archive, tree: Option<&MerkleLog>) -> Result<String, String> {
    let manifest = &archive.manifest;
    let tree = tree.ok_or("the frontier does not fit the first record's index")?;
    let mut checked_from = manifest.first;
    for head in &archive.heads {
        let head = &head.signed.head;
        if head.log_id != manifest.log_id {
            return Err(format!(
                "the head over {} records belongs to log {:?}, not {:?}",
                head.size, head.log_id, manifest.log_id
            ));
        }
        if tree.root_at(head.size) != Some(head.root) {
            let (first, last) = (checked_from, head.size - 1);
            let named = if first == last {
                format!("record {first}")
            } else {
                format!("one of records {first}..={last}")
            };
            let message = archive
                .records
                .get(usize::try_from(first - manifest.first).unwrap_or(usize::MAX))
                .map(|r| format!(" (from message {:?})", r.message_id))
                .unwrap_or_default();
            return Err(format!(
                "the head over {} records does not match: {named}{message} was altered, removed \
                 or inserted, or the frontier is not the log's",
                head.size
            ));
        }
        checked_from = head.size;
    }
    Ok(format!(
        "records {}..{} of log {:?} lead to the roots of {} signed heads",
        manifest.first,
        manifest.end,
        manifest.log_id,
        archive.heads.len()
    ))
}

/// Compact JSON, fields in declaration order.
fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("archive parts serialize: no maps, no floats")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::FIXTURE;
    use crate::{TreeHead, sign_head};
    use lienthong_crypto::Signer as _;
    use proptest::prelude::*;

    /// Archives of the fixture's ten records: `0..4` (heads at 2 and 4), `4..7` (head at
    /// 7) and `7..10` (heads at 9 and 10), each linked to the one before; the last head of
    /// each is timestamped.
    fn chain_of(records: &[LogRecord]) -> Vec<Vec<u8>> {
        let full = MerkleLog::from_leaves(records.iter().map(LogRecord::leaf_hash));
        let ranges: [(u64, u64, &[u64]); 3] = [(0, 4, &[2, 4]), (4, 7, &[7]), (7, 10, &[9, 10])];
        let mut files: Vec<Vec<u8>> = Vec::new();
        for (sequence, (first, end, sizes)) in (1..).zip(ranges) {
            let heads = sizes
                .iter()
                .map(|&size| {
                    let head = TreeHead {
                        log_id: "gw-1".into(),
                        size,
                        root: full.root_at(size).expect("root"),
                        time_ms: 1_790_000_000_000 + size as i64,
                    };
                    let signed = sign_head(head, &FIXTURE.log_key).expect("signs");
                    let tsa_token =
                        (size == end).then(|| FIXTURE.stamp(&signed.timestamp_imprint()));
                    ArchivedHead { signed, tsa_token }
                })
                .collect();
            let archive = Archive {
                manifest: ArchiveManifest {
                    format: ARCHIVE_FORMAT.into(),
                    log_id: "gw-1".into(),
                    sequence,
                    first,
                    end,
                    previous_sha256: files.last().map_or([0; 32], |f| archive_sha256(f)),
                    frontier: full.frontier(first).expect("frontier"),
                },
                records: records[first as usize..end as usize].to_vec(),
                heads,
                certificates: vec![("log-key".into(), vec![0x30, 0x00])],
            };
            files.push(write_archive(&archive).expect("writes"));
        }
        files
    }

    /// The verdicts of a chain of files, each verified with the one before.
    fn verify_chain(files: &[Vec<u8>]) -> Vec<Verdict> {
        let archives: Vec<Archive> = files
            .iter()
            .map(|f| read_archive(f).expect("reads"))
            .collect();
        (0..archives.len())
            .map(|i| {
                let previous = i.checked_sub(1).map(|p| PreviousArchive {
                    bytes: &files[p],
                    archive: &archives[p],
                });
                verify_archive(
                    &archives[i],
                    previous,
                    Some(FIXTURE.log_key.public_key()),
                    &FIXTURE.roots,
                )
            })
            .collect()
    }

    fn failed(verdict: &Verdict) -> Vec<(&str, &str)> {
        verdict
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .map(|c| (c.name.as_str(), c.detail.as_str()))
            .collect()
    }

    #[test]
    fn a_chain_of_archives_verifies() {
        let files = chain_of(&FIXTURE.records);
        assert_eq!(
            write_archive(&read_archive(&files[1]).expect("reads")).expect("writes"),
            files[1]
        );
        for (i, verdict) in verify_chain(&files).iter().enumerate() {
            assert!(
                verdict.is_valid() && verdict.is_complete(),
                "archive {}: {verdict}",
                i + 1
            );
        }
        // Alone, a later archive verifies but for its link.
        let third = read_archive(&files[2]).expect("reads");
        let alone = verify_archive(
            &third,
            None,
            Some(FIXTURE.log_key.public_key()),
            &FIXTURE.roots,
        );
        assert!(alone.is_valid());
        assert_eq!(
            alone.check(CHECK_ARCHIVE_CHAIN).map(|c| c.outcome),
            Some(Outcome::NotChecked)
        );
        // An archive is not a bundle, and a bundle not an archive.
        assert_eq!(crate::read_bundle(&files[0]), Err(BundleError::BadMimetype));
        let bundle = crate::write_bundle(&FIXTURE.bundle).expect("writes");
        assert_eq!(read_archive(&bundle), Err(BundleError::BadMimetype));
    }

    #[test]
    fn an_altered_record_fails_its_archive_and_the_next_link() {
        let mut records = FIXTURE.records.clone();
        let genuine = chain_of(&records);
        records[5].status = 500;
        // The operator rewrites archive 2 with the altered record but keeps the old heads.
        let mut tampered = read_archive(&genuine[1]).expect("reads");
        tampered.records[1] = records[5].clone();
        let files = vec![
            genuine[0].clone(),
            write_archive(&tampered).expect("writes"),
            genuine[2].clone(),
        ];
        let verdicts = verify_chain(&files);
        assert!(verdicts[0].is_valid());
        let second = failed(&verdicts[1]);
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!(second[0].0, CHECK_ARCHIVE_RECORDS);
        assert!(
            second[0].1.contains("one of records 4..=6"),
            "{}",
            second[0].1
        );
        let third = failed(&verdicts[2]);
        assert_eq!(third.len(), 1, "{third:?}");
        assert_eq!(third[0].0, CHECK_ARCHIVE_CHAIN);
        assert!(
            third[0].1.contains("archive 2 was changed or replaced"),
            "{}",
            third[0].1
        );
    }

    #[test]
    fn a_removed_or_reordered_archive_breaks_the_chain() {
        let files = chain_of(&FIXTURE.records);
        let verdicts = verify_chain(&[files[0].clone(), files[2].clone()]);
        let link = failed(&verdicts[1]);
        assert_eq!(link[0].0, CHECK_ARCHIVE_CHAIN);
        assert!(
            link[0].1.contains("archives between are missing"),
            "{}",
            link[0].1
        );
        // A forged first archive of another start does not pass as the first.
        let mut second = read_archive(&files[1]).expect("reads");
        second.manifest.sequence = 1;
        let verdict = verify_archive(&second, None, None, &FIXTURE.roots);
        assert!(
            failed(&verdict)
                .iter()
                .any(|(name, _)| *name == CHECK_ARCHIVE_CHAIN)
        );
    }

    #[test]
    fn bad_heads_timestamps_and_signatures_are_named() {
        let files = chain_of(&FIXTURE.records);
        let mut archive = read_archive(&files[0]).expect("reads");
        archive.heads[1].tsa_token = None;
        let verdict = verify_archive(
            &archive,
            None,
            Some(FIXTURE.log_key.public_key()),
            &FIXTURE.roots,
        );
        assert_eq!(failed(&verdict).first().map(|f| f.0), Some(CHECK_TIMESTAMP));
        let other = crate::log::tests::key();
        let archive = read_archive(&files[0]).expect("reads");
        let verdict = verify_archive(&archive, None, Some(other.public_key()), &FIXTURE.roots);
        assert_eq!(
            failed(&verdict).first().map(|f| f.0),
            Some(CHECK_HEAD_SIGNATURE)
        );
        let mut archive = read_archive(&files[0]).expect("reads");
        archive.records[2].request_description.push(b'!');
        let verdict = verify_archive(
            &archive,
            None,
            Some(FIXTURE.log_key.public_key()),
            &FIXTURE.roots,
        );
        let names: Vec<&str> = failed(&verdict).iter().map(|f| f.0).collect();
        assert_eq!(names, [CHECK_ARCHIVE_RECORDS, CHECK_RECORD_SIGNATURES]);
        assert!(
            failed(&verdict)[1].1.contains("record 2 "),
            "{}",
            failed(&verdict)[1].1
        );
    }

    #[test]
    fn inconsistent_shapes_are_refused_when_read() {
        let files = chain_of(&FIXTURE.records);
        let archive = read_archive(&files[2]).expect("reads");
        type Shape = Box<dyn Fn(&mut Archive)>;
        let shapes: Vec<Shape> = vec![
            Box::new(|a| a.manifest.end += 1),
            Box::new(|a| a.manifest.first = a.manifest.end),
            Box::new(|a| a.manifest.frontier.pop().map(drop).unwrap_or(())),
            Box::new(|a| a.manifest.format = "other/1".into()),
            Box::new(|a| a.manifest.sequence = 0),
            Box::new(|a| a.heads.reverse()),
            Box::new(|a| {
                a.heads.pop();
            }),
        ];
        for (i, shape) in shapes.iter().enumerate() {
            let mut changed = archive.clone();
            shape(&mut changed);
            let bytes = write_archive(&changed).expect("writes");
            assert!(
                matches!(read_archive(&bytes), Err(BundleError::Malformed { .. })),
                "shape {i}: {:?}",
                read_archive(&bytes)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn corrupted_archives_never_panic(
            position in any::<prop::sample::Index>(),
            value in any::<u8>(),
            truncate in any::<prop::sample::Index>(),
        ) {
            static FILES: std::sync::LazyLock<Vec<Vec<u8>>> =
                std::sync::LazyLock::new(|| chain_of(&FIXTURE.records));
            let bytes = &FILES[1];
            let mut corrupted = bytes.clone();
            let at = position.index(corrupted.len());
            corrupted[at] = value;
            if let Ok(archive) = read_archive(&corrupted) {
                let _ = verify_archive(&archive, None, None, &FIXTURE.roots);
            }
            let _ = read_archive(&bytes[..truncate.index(bytes.len())]);
        }
    }
}
