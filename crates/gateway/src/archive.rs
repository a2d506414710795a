//! Archiving and retention of the message log.
//!
//! Every `log_archive_interval_seconds` the records that a timestamped tree head covers
//! and no archive holds yet are written to `log_archive_dir` as archive files
//! (`lienthong_ledger::write_archive`), each holding the SHA-256 of the one before, at most
//! [`MAX_ARCHIVE_RECORDS`] records each, always ending at a timestamped head. A file is
//! written under a temporary name and synced, recorded in the store (which refuses it if
//! another node archived that range first), then renamed into place.
//!
//! Then records older than `log_retention_days` are purged from the database, whole
//! archives at a time and only after the archive file was read back from the directory and
//! found to be the one recorded (same SHA-256, readable). The store keeps the frontier of
//! the purged records (the roots of the complete subtrees over them), so new heads,
//! inclusion proofs of later records and the audit still work.

use crate::gateway::{Gateway, unix_now};
use lienthong_ledger::{
    Archive, ArchiveManifest, ArchivedHead, CompactTree, LogRecord, MerkleLog, SignedTreeHead,
    archive_sha256, read_archive, write_archive,
};
use lienthong_store::{LedgerStore, PrunedPrefix, Store, StoredArchive};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most records one archive file holds (it may hold more only if a single head
/// interval had more).
pub const MAX_ARCHIVE_RECORDS: u64 = 50_000;

/// The log's tree over its first `size` records, from the purged start's frontier and the
/// leaf hashes kept after it.
pub(crate) async fn stored_tree(
    ledger: &dyn LedgerStore,
    log_id: &str,
    size: u64,
) -> Result<MerkleLog, String> {
    let (pruned, _) = ledger
        .tree_leaves(log_id, 0)
        .await
        .map_err(|e| e.to_string())?;
    let mut tree = MerkleLog::from_frontier(pruned.size, &pruned.frontier)
        .ok_or("the stored frontier does not fit the purged size")?;
    extend_tree(ledger, log_id, &mut tree, size).await?;
    Ok(tree)
}

/// Leaf hashes read per query. The store's driver holds every row of a result in memory
/// until the last is read (about 3 KiB per row with sqlx's SQLite rows), so reading the
/// leaves of a whole log at once made the gateway's memory jump by hundreds of MiB at
/// every seal once the log held some tens of thousands of records.
const LEAVES_PER_READ: u64 = 1024;

/// Append the stored leaves `tree.size()..size` of `log_id` to `tree`, a bounded number at
/// a time.
pub(crate) async fn extend_tree(
    ledger: &dyn LedgerStore,
    log_id: &str,
    tree: &mut MerkleLog,
    size: u64,
) -> Result<(), String> {
    let from = tree.size();
    for_each_leaf(ledger, log_id, from, size, |leaf| {
        tree.append(leaf);
    })
    .await
}

/// The log's first `size` records as a [`CompactTree`] (constant memory), continued from
/// `tree` if given and not past `size`, else from the purged start's frontier.
pub async fn compact_tree(
    ledger: &dyn LedgerStore,
    log_id: &str,
    tree: Option<CompactTree>,
    size: u64,
) -> Result<CompactTree, String> {
    let mut tree = match tree.filter(|tree| tree.size() <= size) {
        Some(tree) => tree,
        None => {
            let (pruned, _) = ledger
                .tree_leaves(log_id, 0)
                .await
                .map_err(|e| e.to_string())?;
            CompactTree::from_frontier(pruned.size, &pruned.frontier)
                .ok_or("the stored frontier does not fit the purged size")?
        }
    };
    let from = tree.size();
    for_each_leaf(ledger, log_id, from, size, |leaf| tree.append(leaf)).await?;
    Ok(tree)
}

/// Call `each` with the stored leaf hashes `from..to` of `log_id` in order, read a bounded
/// number at a time; an error if the store lacks any of them.
async fn for_each_leaf(
    ledger: &dyn LedgerStore,
    log_id: &str,
    from: u64,
    to: u64,
    mut each: impl FnMut([u8; 32]),
) -> Result<(), String> {
    let mut next = from;
    while next < to {
        let end = to.min(next.saturating_add(LEAVES_PER_READ));
        let leaves = ledger
            .leaf_hashes(log_id, next, end)
            .await
            .map_err(|e| e.to_string())?;
        if leaves.len() as u64 != end - next {
            return Err(format!(
                "the store returned {} leaves of records {next}..{end}",
                leaves.len()
            ));
        }
        leaves.into_iter().for_each(&mut each);
        next = end;
    }
    Ok(())
}

/// The file name of archive `sequence`.
pub fn archive_file_name(sequence: u64) -> String {
    format!("log-{sequence:08}.zip")
}

/// Archive every timestamped record of `log_id` not yet archived into `dir`; returns the
/// archives written (none if there was nothing new, or another node was first).
/// `certificates` are added to each archive for the auditor's convenience.
pub async fn write_archives(
    store: &Store,
    log_id: &str,
    dir: &Path,
    certificates: &[(String, Vec<u8>)],
) -> Result<Vec<StoredArchive>, String> {
    let ledger = store.ledger();
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    loop {
        let archives = ledger.archives(log_id).await.map_err(|e| e.to_string())?;
        let (sequence, first, previous_sha256) = archives
            .last()
            .map_or((1, 0, [0; 32]), |a| (a.sequence + 1, a.end, a.sha256));
        let heads = ledger.heads(log_id).await.map_err(|e| e.to_string())?;
        let timestamped: Vec<u64> = heads
            .iter()
            .filter(|h| h.tsa_token.is_some() && h.size > first)
            .map(|h| h.size)
            .collect();
        // The furthest timestamped head within the limit, or the nearest if none is.
        let Some(end) = timestamped
            .iter()
            .copied()
            .filter(|&size| size - first <= MAX_ARCHIVE_RECORDS)
            .max()
            .or_else(|| timestamped.iter().copied().min())
        else {
            return Ok(written);
        };
        let tree = stored_tree(ledger, log_id, end).await?;
        let frontier = tree
            .frontier(first)
            .ok_or("the records to archive were purged before being archived")?;
        let stored = ledger
            .records(log_id, first, end)
            .await
            .map_err(|e| e.to_string())?;
        let mut records = Vec::with_capacity(stored.len());
        let mut last_recorded_at = 0;
        for (offset, (bytes, recorded_at)) in (first..).zip(stored) {
            if Some(lienthong_crypto::merkle::leaf_hash(&bytes)) != tree.leaf(offset) {
                return Err(format!(
                    "record {offset} does not match its leaf: not archived (run lienthong log audit)"
                ));
            }
            let record: LogRecord = serde_json::from_slice(&bytes)
                .map_err(|e| format!("record {offset} is unreadable: {e}"))?;
            records.push(record);
            last_recorded_at = last_recorded_at.max(recorded_at);
        }
        let mut archived_heads = Vec::new();
        for head in heads.iter().filter(|h| h.size > first && h.size <= end) {
            let signed: SignedTreeHead = serde_json::from_slice(&head.head)
                .map_err(|e| format!("tree head of size {}: unreadable: {e}", head.size))?;
            archived_heads.push(ArchivedHead {
                signed,
                tsa_token: head.tsa_token.clone(),
            });
        }
        let archive = Archive {
            manifest: ArchiveManifest {
                format: lienthong_ledger::ARCHIVE_FORMAT.into(),
                log_id: log_id.to_owned(),
                sequence,
                first,
                end,
                previous_sha256,
                frontier,
            },
            records,
            heads: archived_heads,
            certificates: certificates.to_vec(),
        };
        let bytes = write_archive(&archive).map_err(|e| e.to_string())?;
        let entry = StoredArchive {
            sequence,
            first,
            end,
            file_name: archive_file_name(sequence),
            sha256: archive_sha256(&bytes),
            last_recorded_at,
            created_at: unix_now(),
        };
        let temporary = dir.join(format!(".{}.{}.tmp", entry.file_name, std::process::id()));
        write_synced(&temporary, &bytes)?;
        match ledger.add_archive(log_id, &entry).await {
            Ok(()) => {}
            Err(lienthong_store::StoreError::Conflict { .. }) => {
                // Another node archived this range first.
                let _ = std::fs::remove_file(&temporary);
                return Ok(written);
            }
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(error.to_string());
            }
        }
        let path = dir.join(&entry.file_name);
        std::fs::rename(&temporary, &path)
            .map_err(|e| format!("move the archive to {}: {e}", path.display()))?;
        tracing::info!(
            file = %path.display(),
            first,
            end,
            "message log records archived"
        );
        written.push(entry);
    }
}

/// Purge from the database the records of `log_id` in archives whose last record is older
/// than `cutoff` (Unix seconds), after checking that each such archive is in `dir` as
/// recorded. Returns how many records were purged.
pub async fn purge_archived(
    store: &Store,
    log_id: &str,
    dir: &Path,
    cutoff: i64,
) -> Result<u64, String> {
    let ledger = store.ledger();
    let pruned = ledger.pruned(log_id).await.map_err(|e| e.to_string())?;
    let mut end = None;
    for archive in ledger.archives(log_id).await.map_err(|e| e.to_string())? {
        if archive.last_recorded_at >= cutoff {
            break;
        }
        if archive.end <= pruned.size {
            continue;
        }
        check_archive_file(dir, &archive)?;
        end = Some(archive.end);
    }
    let Some(end) = end else {
        return Ok(0);
    };
    let tree = stored_tree(ledger, log_id, end).await?;
    let frontier = tree
        .frontier(end)
        .ok_or("cannot compute the frontier of the records to purge")?;
    let purged = ledger
        .purge_archived(
            log_id,
            &PrunedPrefix {
                size: end,
                frontier,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        records = purged,
        before = end,
        "archived message log records purged from the database"
    );
    Ok(purged)
}

/// The archive file is in `dir`, readable, and the one the store recorded.
fn check_archive_file(dir: &Path, archive: &StoredArchive) -> Result<(), String> {
    let path: PathBuf = dir.join(&archive.file_name);
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "archive {} is not readable at {}: {e}; its records are kept",
            archive.sequence,
            path.display()
        )
    })?;
    if archive_sha256(&bytes) != archive.sha256 {
        return Err(format!(
            "archive {} at {} is not the file that was written (SHA-256 differs); its records are kept",
            archive.sequence,
            path.display()
        ));
    }
    read_archive(&bytes).map_err(|e| {
        format!(
            "archive {} at {} does not read: {e}; its records are kept",
            archive.sequence,
            path.display()
        )
    })?;
    Ok(())
}

/// Write `bytes` to `path` and sync them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

impl Gateway {
    /// Archive the log now, then purge what the retention period allows.
    pub async fn archive_log(&self) -> Result<(Vec<StoredArchive>, u64), String> {
        let log_id = self.server_id().to_string();
        let config = self.config();
        let certificates = [("log-key".to_owned(), self.auth_certificate.der.clone())];
        let written =
            write_archives(&self.store, &log_id, &config.log_archive_dir, &certificates).await?;
        let purged = match config.log_retention {
            Some(retention) => {
                let cutoff = unix_now() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                purge_archived(&self.store, &log_id, &config.log_archive_dir, cutoff).await?
            }
            None => 0,
        };
        Ok((written, purged))
    }

    /// Archive every `log_archive_interval`.
    pub(crate) async fn archive_periodically(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval = self
            .config()
            .log_archive_interval
            .max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = crate::gateway::stopped(&mut stop) => return,
                _ = tokio::time::sleep(interval) => {
                    if let Err(error) = self.archive_log().await {
                        tracing::error!(%error, "cannot archive the message log");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_store::NewLedgerEntry;

    /// The tree rebuilt from the store a chunk of leaves at a time, and a tree extended from
    /// an earlier one, have the roots of a tree built from every leaf at once.
    #[tokio::test]
    async fn trees_read_in_chunks_match_the_whole_log() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url).await.expect("open the store");
        let ledger = store.ledger();
        let count = 2 * LEAVES_PER_READ + 5;
        let leaves: Vec<[u8; 32]> = (0..count)
            .map(|n| lienthong_crypto::merkle::leaf_hash(&n.to_be_bytes()))
            .collect();
        let entries: Vec<NewLedgerEntry> = leaves
            .iter()
            .enumerate()
            .map(|(n, leaf)| NewLedgerEntry {
                message_id: format!("m-{n}"),
                leaf_hash: *leaf,
                record: b"{}".to_vec(),
                recorded_at: 1_700_000_000,
            })
            .collect();
        ledger.append("log", &entries).await.expect("append");
        let whole = MerkleLog::from_leaves(leaves.iter().copied());
        let rebuilt = stored_tree(ledger, "log", count).await.expect("rebuilt");
        assert_eq!(rebuilt.root(), whole.root());
        // From the frontier at an earlier size, as the seal keeps it.
        let early = LEAVES_PER_READ - 3;
        let frontier = whole.frontier(early).expect("frontier");
        let mut tree = MerkleLog::from_frontier(early, &frontier).expect("tree");
        extend_tree(ledger, "log", &mut tree, count)
            .await
            .expect("extended");
        assert_eq!(tree.root(), whole.root());
        // The seal's constant-memory tree, from the store's start and from an earlier one.
        let compact = compact_tree(ledger, "log", None, count)
            .await
            .expect("compact");
        assert_eq!(compact.root(), whole.root());
        let earlier = CompactTree::from_frontier(early, &frontier).expect("compact");
        let compact = compact_tree(ledger, "log", Some(earlier), count)
            .await
            .expect("continued");
        assert_eq!(compact.root(), whole.root());
        assert!(
            compact_tree(ledger, "log", Some(compact), count + 1)
                .await
                .is_err()
        );
        // Leaves the store does not have are an error, not a wrong root.
        let mut short = MerkleLog::from_frontier(early, &frontier).expect("tree");
        assert!(
            extend_tree(ledger, "log", &mut short, count + 1)
                .await
                .is_err()
        );
    }
}
