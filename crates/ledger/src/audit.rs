//! The audit of a whole log: recompute the tree from the records and check every signed
//! tree head against it, naming the first record that cannot be what was signed.

use crate::{LogRecord, MerkleLog, SignedTreeHead};
use lienthong_crypto::{PublicKey, merkle};

/// Why a log failed its audit. Head numbers index the `heads` slice given to [`audit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFailure {
    /// A head's signature does not verify under the log key.
    #[error("tree head {head} has a bad signature")]
    BadSignature {
        /// Which head.
        head: usize,
    },
    /// A head names another log than the first head.
    #[error("tree head {head} belongs to log {found:?}, not {expected:?}")]
    WrongLog {
        /// Which head.
        head: usize,
        /// The first head's log id.
        expected: String,
        /// This head's log id.
        found: String,
    },
    /// The heads are not ordered by size.
    #[error("tree head {head} (size {size}) is smaller than the head before it")]
    OutOfOrder {
        /// Which head.
        head: usize,
        /// Its size.
        size: u64,
    },
    /// A head covers more records than there are: records were removed from the end.
    #[error("tree head {head} covers {size} records but only {records} are left")]
    MissingRecords {
        /// Which head.
        head: usize,
        /// Its size.
        size: u64,
        /// How many records the audit was given.
        records: u64,
    },
    /// A head's root is not the root of the records it covers: some record in
    /// `first_record..=last_record` was altered, removed or inserted. Every earlier head
    /// matched, so no earlier record was; the heads do not let one narrow it down further,
    /// so the range is one record wide when a head was made after every record.
    #[error(
        "tree head {head} does not match the records: record {first_record} is the first \
         that may differ (the head covers up to record {last_record})"
    )]
    RecordMismatch {
        /// The first head that does not match.
        head: usize,
        /// The first record that may differ: the size of the last matching head before it.
        first_record: u64,
        /// The last record this head covers.
        last_record: u64,
    },
    /// Two successive heads are not consistent: the log rewrote its history between them.
    #[error("tree heads {earlier} and {later} are not consistent")]
    Inconsistent {
        /// The earlier head.
        earlier: usize,
        /// The later head.
        later: usize,
    },
}

impl AuditFailure {
    /// The record the failure names exactly, when the heads allow it.
    pub fn record(&self) -> Option<u64> {
        match self {
            Self::RecordMismatch {
                first_record,
                last_record,
                ..
            } if first_record == last_record => Some(*first_record),
            _ => None,
        }
    }
}

/// Audit `records` (in log order) against `heads` (ordered by size): see [`audit`].
pub fn audit_records(
    records: &[LogRecord],
    heads: &[SignedTreeHead],
    key: &PublicKey,
) -> Result<(), AuditFailure> {
    let leaves: Vec<[u8; 32]> = records.iter().map(LogRecord::leaf_hash).collect();
    audit(&leaves, heads, key)
}

/// Audit a log given as its records' leaf hashes (in log order) against the heads it signed
/// (ordered by size; the oldest first), with the log's public key.
///
/// For each head in turn: its signature, its log id, its order, that the records cover it,
/// that its root is the root of the records it covers, and that it is consistent with the
/// head before it (by a consistency proof built from the records and checked with
/// [`merkle::verify_consistency`], as a remote auditor would). The first failure is
/// returned. A record altered, deleted or inserted makes the first head covering it fail,
/// and [`AuditFailure::RecordMismatch`] then names the records between the last good head
/// and that one. Cost: O(n) to rebuild the tree, O(log n) per head.
pub fn audit(
    leaves: &[[u8; 32]],
    heads: &[SignedTreeHead],
    key: &PublicKey,
) -> Result<(), AuditFailure> {
    audit_log(&MerkleLog::from_leaves(leaves.iter().copied()), heads, key)
}

/// [`audit`] of a log that may have purged a prefix ([`MerkleLog::from_frontier`]): heads
/// over fewer records than [`MerkleLog::pruned`] have their signature, log id and order
/// checked, but not their root — the archive of those records proves them. The first head
/// at or after the purge point is checked against the root the frontier and the later
/// leaves give, which ties the frontier to a signed head.
pub fn audit_log(
    log: &MerkleLog,
    heads: &[SignedTreeHead],
    key: &PublicKey,
) -> Result<(), AuditFailure> {
    let mut previous: Option<(usize, &SignedTreeHead)> = None;
    let mut last_size = 0;
    for (index, signed) in heads.iter().enumerate() {
        let head = &signed.head;
        signed
            .verify(key)
            .map_err(|_| AuditFailure::BadSignature { head: index })?;
        if let Some(first) = heads
            .first()
            .filter(|first| first.head.log_id != head.log_id)
        {
            return Err(AuditFailure::WrongLog {
                head: index,
                expected: first.head.log_id.clone(),
                found: head.log_id.clone(),
            });
        }
        if last_size > head.size {
            return Err(AuditFailure::OutOfOrder {
                head: index,
                size: head.size,
            });
        }
        last_size = head.size;
        if head.size < log.pruned() {
            continue;
        }
        let recomputed = log.root_at(head.size).ok_or(AuditFailure::MissingRecords {
            head: index,
            size: head.size,
            records: log.size(),
        })?;
        if recomputed != head.root {
            let first_record = previous.map_or(log.pruned(), |(_, before)| before.head.size);
            return Err(AuditFailure::RecordMismatch {
                head: index,
                first_record,
                last_record: head.size.saturating_sub(1),
            });
        }
        if let Some((earlier, before)) = previous {
            let consistent = log
                .consistency_proof(before.head.size, head.size)
                .is_some_and(|proof| {
                    merkle::verify_consistency(
                        before.head.size,
                        head.size,
                        &before.head.root,
                        &head.root,
                        &proof,
                    )
                });
            if !consistent {
                return Err(AuditFailure::Inconsistent {
                    earlier,
                    later: index,
                });
            }
        }
        previous = Some((index, signed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TreeHead;
    use crate::log::tests::key;
    use crate::record::tests::sample;
    use lienthong_crypto::{Signer, SoftwareKey};
    use proptest::prelude::*;

    /// Heads over `records` at each of `sizes`, signed by `key`.
    fn heads_at(records: &[LogRecord], sizes: &[u64], key: &SoftwareKey) -> Vec<SignedTreeHead> {
        let log = MerkleLog::from_leaves(records.iter().map(LogRecord::leaf_hash));
        sizes
            .iter()
            .map(|&size| {
                let head = TreeHead {
                    log_id: "gw-1".into(),
                    size,
                    root: log.root_at(size).expect("size within log"),
                    time_ms: 1_790_000_000_000 + size as i64,
                };
                crate::sign_head(head, key).expect("signs")
            })
            .collect()
    }

    fn records(count: u64) -> Vec<LogRecord> {
        (0..count).map(sample).collect()
    }

    #[test]
    fn an_untouched_log_passes() {
        let key = key();
        let records = records(40);
        let heads = heads_at(&records, &[0, 1, 7, 7, 16, 33, 40], &key);
        assert_eq!(audit_records(&records, &heads, key.public_key()), Ok(()));
        // Records appended after the last head are not covered, and not a failure.
        assert_eq!(
            audit_records(&records, &heads[..3], key.public_key()),
            Ok(())
        );
    }

    #[test]
    fn an_altered_record_is_named_when_a_head_follows_every_record() {
        let key = key();
        let records = records(12);
        let sizes: Vec<u64> = (1..=12).collect();
        let heads = heads_at(&records, &sizes, &key);
        let mut altered = records.clone();
        altered[5].status = 500;
        let failure = audit_records(&altered, &heads, key.public_key()).expect_err("fails");
        assert_eq!(
            failure,
            AuditFailure::RecordMismatch {
                head: 5,
                first_record: 5,
                last_record: 5
            }
        );
        assert_eq!(failure.record(), Some(5));
        assert!(failure.to_string().contains("record 5"));
    }

    #[test]
    fn with_sparse_heads_the_failure_names_the_range() {
        let key = key();
        let records = records(30);
        let heads = heads_at(&records, &[4, 10, 20, 30], &key);
        let mut altered = records.clone();
        altered[12].message_id.push('x');
        let failure = audit_records(&altered, &heads, key.public_key()).expect_err("fails");
        assert_eq!(
            failure,
            AuditFailure::RecordMismatch {
                head: 2,
                first_record: 10,
                last_record: 19
            }
        );
        assert_eq!(failure.record(), None);
    }

    #[test]
    fn deletions_are_detected() {
        let key = key();
        let records = records(20);
        let heads = heads_at(&records, &[5, 10, 15, 20], &key);
        let mut middle = records.clone();
        middle.remove(12);
        assert!(matches!(
            audit_records(&middle, &heads, key.public_key()),
            Err(AuditFailure::RecordMismatch {
                head: 2,
                first_record: 10,
                ..
            })
        ));
        assert_eq!(
            audit_records(&records[..19], &heads, key.public_key()),
            Err(AuditFailure::MissingRecords {
                head: 3,
                size: 20,
                records: 19
            })
        );
    }

    #[test]
    fn rewritten_history_is_detected_even_when_resigned() {
        let key = key();
        let records = records(20);
        let old_heads = heads_at(&records, &[5, 10], &key);
        // The operator rewrites record 7 and signs fresh heads over the new history.
        let mut rewritten = records.clone();
        rewritten[7].client = "someone-else".into();
        let new_heads = heads_at(&rewritten, &[15, 20], &key);
        assert_eq!(
            audit_records(&rewritten, &new_heads, key.public_key()),
            Ok(())
        );
        let all: Vec<_> = old_heads.iter().chain(&new_heads).cloned().collect();
        // Against the new records, the old head covering record 7 fails...
        assert!(matches!(
            audit_records(&rewritten, &all, key.public_key()),
            Err(AuditFailure::RecordMismatch {
                head: 1,
                first_record: 5,
                last_record: 9
            })
        ));
        // ...and against the old records, the first new head does.
        assert!(matches!(
            audit_records(&records, &all, key.public_key()),
            Err(AuditFailure::RecordMismatch { head: 2, .. })
        ));
    }

    #[test]
    fn bad_signatures_wrong_logs_and_disorder_are_detected() {
        let key = key();
        let records = records(10);
        let heads = heads_at(&records, &[3, 6, 9], &key);
        let other = crate::log::tests::key();
        assert_eq!(
            audit_records(&records, &heads, other.public_key()),
            Err(AuditFailure::BadSignature { head: 0 })
        );
        let mut forged = heads.clone();
        forged[1].head.time_ms += 1;
        assert_eq!(
            audit_records(&records, &forged, key.public_key()),
            Err(AuditFailure::BadSignature { head: 1 })
        );
        let reversed: Vec<_> = heads.iter().rev().cloned().collect();
        assert_eq!(
            audit_records(&records, &reversed, key.public_key()),
            Err(AuditFailure::OutOfOrder { head: 1, size: 6 })
        );
        let mut foreign = heads.clone();
        foreign[2].head.log_id = "gw-2".into();
        foreign[2] = crate::sign_head(foreign[2].head.clone(), &key).expect("signs");
        assert!(matches!(
            audit_records(&records, &foreign, key.public_key()),
            Err(AuditFailure::WrongLog { head: 2, .. })
        ));
    }

    #[test]
    fn a_purged_log_is_audited_from_its_frontier() {
        let key = key();
        let records = records(30);
        let heads = heads_at(&records, &[4, 10, 20, 30], &key);
        let full = MerkleLog::from_leaves(records.iter().map(LogRecord::leaf_hash));
        let purged = |records: &[LogRecord]| {
            let mut log =
                MerkleLog::from_frontier(10, &full.frontier(10).expect("frontier")).expect("log");
            for record in &records[10..] {
                log.append(record.leaf_hash());
            }
            log
        };
        assert_eq!(
            audit_log(&purged(&records), &heads, key.public_key()),
            Ok(())
        );
        let mut altered = records.clone();
        altered[25].status = 1;
        assert_eq!(
            audit_log(&purged(&altered), &heads, key.public_key()),
            Err(AuditFailure::RecordMismatch {
                head: 3,
                first_record: 20,
                last_record: 29
            })
        );
        // A head before the purge point is still signature-checked.
        let mut forged = heads.clone();
        forged[0].head.time_ms += 1;
        assert_eq!(
            audit_log(&purged(&records), &forged, key.public_key()),
            Err(AuditFailure::BadSignature { head: 0 })
        );
        // A wrong frontier does not match the first head after the purge point.
        let mut wrong = MerkleLog::from_frontier(10, &[[1; 32], [2; 32]]).expect("log");
        for record in &records[10..] {
            wrong.append(record.leaf_hash());
        }
        assert!(matches!(
            audit_log(&wrong, &heads, key.public_key()),
            Err(AuditFailure::RecordMismatch {
                head: 1,
                first_record: 10,
                ..
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_single_alteration_is_named(count in 1u64..60, altered in 0usize..60) {
            let key = key();
            let altered = altered % count as usize;
            let records = records(count);
            let sizes: Vec<u64> = (1..=count).collect();
            let heads = heads_at(&records, &sizes, &key);
            let mut changed = records.clone();
            changed[altered].request_in -= 1;
            let failure = audit_records(&changed, &heads, key.public_key());
            prop_assert_eq!(failure.map_err(|f| f.record()), Err(Some(altered as u64)));
        }
    }
}
