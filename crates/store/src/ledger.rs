//! The gateways' tamper-evident message logs: one append-only sequence of records per
//! gateway (`log_id`), possibly shared by several gateway nodes, and the signed tree heads
//! published over it. The Merkle structure itself lives in `lienthong-ledger`; this is
//! only its storage.

use crate::StoreError;

/// A record to append to a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLedgerEntry {
    /// The logged message's identifier, for lookups.
    pub message_id: String,
    /// The record's Merkle leaf hash.
    pub leaf_hash: [u8; 32],
    /// The canonical record bytes the leaf hash was computed over.
    pub record: Vec<u8>,
    /// Unix seconds.
    pub recorded_at: i64,
}

/// Where an append of one record handed in alone landed ([`LedgerStore::append_grouped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The record's index in its log.
    pub index: u64,
    /// How many records the commit that held it wrote, told only to the first of them, so
    /// that each commit is counted once; `None` for the others.
    pub commit_records: Option<u64>,
}

/// Message bodies kept beside a record. They are not covered by the record's leaf hash: the
/// record holds the body digests, against which they are checked.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerBodies {
    /// `None` for bodies in clear; else the id of the key they are encrypted to.
    pub encrypted_to: Option<String>,
    /// The request body (or its ciphertext), if kept.
    pub request: Option<Vec<u8>>,
    /// The response body (or its ciphertext), if kept.
    pub response: Option<Vec<u8>>,
}

impl std::fmt::Debug for LedgerBodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies may hold personal data: their sizes only.
        f.debug_struct("LedgerBodies")
            .field("encrypted_to", &self.encrypted_to)
            .field("request_bytes", &self.request.as_ref().map(Vec::len))
            .field("response_bytes", &self.response.as_ref().map(Vec::len))
            .finish()
    }
}

/// The purged start of a log: records before `size` are gone, and `frontier` holds the
/// roots of the complete subtrees over them (largest first), enough to go on computing the
/// tree's roots and proofs from `size` on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunedPrefix {
    /// How many leading records were purged.
    pub size: u64,
    /// One hash per one bit of `size`.
    pub frontier: Vec<[u8; 32]>,
}

/// An archive file written of a log, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArchive {
    /// 1 for the log's first archive, then one more for each.
    pub sequence: u64,
    /// The first record it holds.
    pub first: u64,
    /// One past its last record.
    pub end: u64,
    /// Its file name in the archive directory.
    pub file_name: String,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// When its last record was recorded (Unix seconds): retention counts from there.
    pub last_recorded_at: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// A signed tree head as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    /// The number of records the head covers.
    pub size: u64,
    /// The signed tree head (JSON).
    pub head: Vec<u8>,
    /// The RFC 3161 timestamp token over the head, once obtained.
    pub tsa_token: Option<Vec<u8>>,
    /// Unix seconds when the head was first stored.
    pub created_at: i64,
    /// The tree's frontier at this head, if kept ([`LedgerStore::put_head_frontier`]), as
    /// stored: concatenated 32-byte hashes, to be checked against the head's root.
    pub frontier: Option<Vec<u8>>,
}

impl StoredHead {
    /// The frontier kept beside this head, if there is one of the right shape (one hash
    /// per one bit of its size). Not yet checked against the head's root.
    pub fn kept_frontier(&self) -> Option<Vec<[u8; 32]>> {
        frontier_hashes(self.size, self.frontier.as_deref()?)
    }
}

/// Storage of the message logs.
#[async_trait::async_trait]
pub trait LedgerStore: Send + Sync {
    /// Append `entries` in one transaction at consecutive indices after the log's last;
    /// returns the index of the first (the log's size when `entries` is empty). Safe
    /// against concurrent appenders to the same log, in this process or another.
    async fn append(&self, log_id: &str, entries: &[NewLedgerEntry]) -> Result<u64, StoreError>;
    /// The number of records ever appended to the log (purged ones included).
    async fn size(&self, log_id: &str) -> Result<u64, StoreError>;
    /// The leaf hashes of records `from..to`, in order. A record in the range that does
    /// not exist (never appended, or purged) is [`StoreError::NotFound`].
    async fn leaf_hashes(
        &self,
        log_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError>;
    /// One record: its message id, leaf hash and canonical bytes.
    async fn record(
        &self,
        log_id: &str,
        idx: u64,
    ) -> Result<Option<(String, [u8; 32], Vec<u8>)>, StoreError>;
    /// The indices of the records of a message, in order.
    async fn find_by_message_id(
        &self,
        log_id: &str,
        message_id: &str,
    ) -> Result<Vec<u64>, StoreError>;
    /// Store the head for `size`, or add a timestamp token to the stored one (a missing
    /// token never erases a stored one). A different head for a size already stored is
    /// [`StoreError::Conflict`].
    async fn put_head(
        &self,
        log_id: &str,
        size: u64,
        head: &[u8],
        tsa_token: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// All stored heads, smallest size first.
    async fn heads(&self, log_id: &str) -> Result<Vec<StoredHead>, StoreError>;
    /// The head of the largest size.
    async fn latest_head(&self, log_id: &str) -> Result<Option<StoredHead>, StoreError>;
    /// Keep the tree's frontier beside the stored head of `size` (the roots of its
    /// complete subtrees, largest first: one per one bit of `size`), so that a restarted
    /// gateway's first seal can go on from it. [`StoreError::NotFound`] if no head of that
    /// size is stored; a frontier of the wrong length is refused.
    async fn put_head_frontier(
        &self,
        log_id: &str,
        size: u64,
        frontier: &[[u8; 32]],
    ) -> Result<(), StoreError>;
    /// The stored head of the largest size that has its frontier kept
    /// ([`StoredHead::kept_frontier`]; check it against the head's signed root before use).
    async fn latest_head_with_frontier(
        &self,
        log_id: &str,
    ) -> Result<Option<StoredHead>, StoreError>;
    /// Retention: delete the records with index < `idx`; returns how many were deleted.
    /// The log's size and its heads are kept.
    async fn delete_records_before(&self, log_id: &str, idx: u64) -> Result<u64, StoreError>;
    /// [`LedgerStore::append`], storing `bodies[i]` (if any) beside `entries[i]` in the same
    /// transaction; `bodies` may be shorter than `entries`.
    async fn append_with_bodies(
        &self,
        log_id: &str,
        entries: &[NewLedgerEntry],
        bodies: &[Option<LedgerBodies>],
    ) -> Result<u64, StoreError>;
    /// [`LedgerStore::append_with_bodies`] taking the records by value, which spares the
    /// embedded store a copy of each (its appender runs on a thread of its own).
    async fn append_owned(
        &self,
        log_id: &str,
        entries: Vec<NewLedgerEntry>,
        bodies: Vec<Option<LedgerBodies>>,
    ) -> Result<u64, StoreError>;
    /// Whether appends handed in one at a time share commits by themselves: the embedded
    /// store's writer thread commits whatever is queued whenever it is free. A caller then
    /// needs no batching of its own and hands each record to [`Self::append_grouped`];
    /// otherwise it batches them and calls [`Self::append_owned`].
    fn groups_appends(&self) -> bool;
    /// Append one record (and the bodies kept beside it), in a commit shared with the
    /// appends queued meanwhile where the store groups them ([`Self::groups_appends`]), in
    /// one of its own otherwise.
    async fn append_grouped(
        &self,
        log_id: &str,
        entry: NewLedgerEntry,
        bodies: Option<LedgerBodies>,
    ) -> Result<Appended, StoreError>;
    /// The bodies stored beside record `idx`, if any.
    async fn bodies(&self, log_id: &str, idx: u64) -> Result<Option<LedgerBodies>, StoreError>;
    /// The canonical bytes and record times of records `from..to`, in order; a missing one
    /// is [`StoreError::NotFound`].
    async fn records(
        &self,
        log_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(Vec<u8>, i64)>, StoreError>;
    /// The purged start of the log (empty if nothing was purged).
    async fn pruned(&self, log_id: &str) -> Result<PrunedPrefix, StoreError>;
    /// The purged start and the leaf hashes of records `pruned.size..to`, read together so
    /// that a purge by another node in between cannot leave a gap.
    async fn tree_leaves(
        &self,
        log_id: &str,
        to: u64,
    ) -> Result<(PrunedPrefix, Vec<[u8; 32]>), StoreError>;
    /// Record a new archive file. It must be the next: sequence one more than the last
    /// (1 for the first), starting where the last ended (0 for the first); else
    /// [`StoreError::Conflict`] (another node archived first).
    async fn add_archive(&self, log_id: &str, archive: &StoredArchive) -> Result<(), StoreError>;
    /// The archives recorded, by sequence.
    async fn archives(&self, log_id: &str) -> Result<Vec<StoredArchive>, StoreError>;
    /// Retention: delete the records (and bodies) before `prefix.size` and keep its
    /// frontier. Only archived records go: `prefix.size` must be the end of a recorded
    /// archive and not below the current purge point, else [`StoreError::Conflict`].
    /// Returns how many records were deleted.
    async fn purge_archived(&self, log_id: &str, prefix: &PrunedPrefix) -> Result<u64, StoreError>;
}

/// Rows per multi-row `INSERT`: 6 parameters each, far below either backend's limit.
pub(crate) const INSERT_CHUNK: usize = 100;

/// `INSERT INTO ledger_records ... VALUES (...), (...)` for `rows` rows.
pub(crate) fn insert_statement(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO ledger_records (log_id, idx, message_id, leaf_hash, record, recorded_at) VALUES ",
    );
    for row in 0..rows {
        let p = row * 6;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    sql
}

/// An index or size as stored (databases have signed 64-bit integers).
pub(crate) fn to_sql(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("ledger index {value} is out of range")))
}

/// An index or size as read back.
pub(crate) fn from_sql(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative ledger index {value}")))
}

/// A stored leaf hash, which must be 32 bytes.
pub(crate) fn leaf_hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|bytes| StoreError::Corrupt(format!("ledger leaf hash of {} bytes", bytes.len())))
}

/// Frontier hashes as stored: concatenated.
pub(crate) fn frontier_bytes(frontier: &[[u8; 32]]) -> Vec<u8> {
    frontier.concat()
}

/// A stored frontier, which must fit the purged size.
pub(crate) fn pruned_from_row((size, bytes): (i64, Vec<u8>)) -> Result<PrunedPrefix, StoreError> {
    let size = from_sql(size)?;
    let frontier = frontier_hashes(size, &bytes).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "a ledger frontier of {} bytes for {size} purged records",
            bytes.len()
        ))
    })?;
    Ok(PrunedPrefix { size, frontier })
}

/// Stored frontier bytes of a tree of `size` leaves as its hashes, if they are one hash per
/// one bit of `size`.
fn frontier_hashes(size: u64, bytes: &[u8]) -> Option<Vec<[u8; 32]>> {
    let (hashes, rest) = bytes.as_chunks::<32>();
    (rest.is_empty() && hashes.len() == size.count_ones() as usize).then(|| hashes.to_vec())
}

/// A stored archive row.
pub(crate) fn archive_from_row(
    (sequence, first, end, file_name, sha256, last_recorded_at, created_at): (
        i64,
        i64,
        i64,
        String,
        Vec<u8>,
        i64,
        i64,
    ),
) -> Result<StoredArchive, StoreError> {
    Ok(StoredArchive {
        sequence: from_sql(sequence)?,
        first: from_sql(first)?,
        end: from_sql(end)?,
        file_name,
        sha256: leaf_hash(sha256)?,
        last_recorded_at,
        created_at,
    })
}

/// A `ledger_heads` row: size, head, token, creation time, frontier.
pub(crate) type HeadRow = (i64, Vec<u8>, Option<Vec<u8>>, i64, Option<Vec<u8>>);

/// A stored head row.
pub(crate) fn head_from_row(
    (size, head, tsa_token, created_at, frontier): HeadRow,
) -> Result<StoredHead, StoreError> {
    Ok(StoredHead {
        size: from_sql(size)?,
        head,
        tsa_token,
        created_at,
        frontier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statement_numbers_every_parameter() {
        assert_eq!(
            insert_statement(2),
            "INSERT INTO ledger_records (log_id, idx, message_id, leaf_hash, record, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)"
        );
    }

    #[test]
    fn leaf_hashes_must_be_32_bytes() {
        assert_eq!(leaf_hash(vec![7; 32]).expect("32 bytes"), [7; 32]);
        assert!(matches!(
            leaf_hash(vec![7; 31]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
