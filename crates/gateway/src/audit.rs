//! Auditing a gateway's whole message log from its store: every stored record against its
//! leaf, every signed tree head against the tree the records form, and consistency between
//! successive heads. Names the first record that does not match.

use lienthong_crypto::PublicKey;
use lienthong_ledger::{BodyPart, LogRecord, SignedTreeHead};
use lienthong_store::Store;

/// Bodies kept in clear beside record `index` (canonical `bytes`) must match its digests.
/// Encrypted ones cannot be read here; their AEAD tag is checked when the member opens them.
async fn check_bodies(store: &Store, log_id: &str, index: u64, bytes: &[u8]) -> Result<(), String> {
    let Some(kept) = store
        .ledger()
        .bodies(log_id, index)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if kept.encrypted_to.is_some() {
        return Ok(());
    }
    let record: LogRecord =
        serde_json::from_slice(bytes).map_err(|e| format!("record {index} is unreadable: {e}"))?;
    for (part, body) in [
        (BodyPart::Request, kept.request),
        (BodyPart::Response, kept.response),
    ] {
        if let Some(body) = body {
            lienthong_ledger::body_matches(&record, part, &body).map_err(|why| {
                format!(
                    "record {index} (message {:?}): {why}: the stored body was altered",
                    record.message_id
                )
            })?;
        }
    }
    Ok(())
}

/// Records read per query by an audit.
const AUDIT_PAGE: usize = 1_024;

/// What a clean audit covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummary {
    /// Records checked.
    pub records: u64,
    /// Signed tree heads checked.
    pub heads: usize,
    /// How many of them carry a TSA token.
    pub timestamped: usize,
}

/// Audit the log `log_id` in `store`, whose heads `key` signed. `Err` says what is wrong,
/// naming the first record (or head) that does not match.
pub async fn audit_stored_log(
    store: &Store,
    log_id: &str,
    key: &PublicKey,
) -> Result<AuditSummary, String> {
    let ledger = store.ledger();
    let size = ledger.size(log_id).await.map_err(|e| e.to_string())?;
    // Records before the purged start are in the archives (`lienthong verify DIR`); the
    // frontier kept for them is checked against the first head after it.
    let (pruned, stored_leaves) = match ledger.tree_leaves(log_id, size).await {
        Ok(leaves) => leaves,
        Err(lienthong_store::StoreError::NotFound { .. }) => {
            let pruned = ledger.pruned(log_id).await.map_err(|e| e.to_string())?;
            for index in pruned.size..size {
                if ledger
                    .record(log_id, index)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    return Err(format!(
                        "record {index} is missing: it was deleted from the log"
                    ));
                }
            }
            return Err("records are missing from the log".into());
        }
        Err(error) => return Err(error.to_string()),
    };
    // Read a page of records at a time: one query, and one per value the page's records
    // refer to (`store::pack`), where a record at a time cost a query per value as well.
    let mut from = pruned.size;
    for leaves in stored_leaves.chunks(AUDIT_PAGE) {
        let to = from + leaves.len() as u64;
        let records = ledger
            .records(log_id, from, to)
            .await
            .map_err(|e| e.to_string())?;
        if records.len() != leaves.len() {
            for index in from..to {
                if ledger
                    .record(log_id, index)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    return Err(format!("record {index} is missing"));
                }
            }
            return Err(format!("records {from}..{to} are not all there"));
        }
        for ((index, (bytes, _)), stored_leaf) in (from..).zip(&records).zip(leaves) {
            if lienthong_crypto::merkle::leaf_hash(bytes) != *stored_leaf {
                let message_id = ledger
                    .record(log_id, index)
                    .await
                    .ok()
                    .flatten()
                    .map(|(message_id, _, _)| message_id)
                    .unwrap_or_default();
                return Err(format!(
                    "record {index} (message {message_id:?}) does not match its leaf: the record was altered"
                ));
            }
            check_bodies(store, log_id, index, bytes).await?;
        }
        from = to;
    }
    let stored_heads = ledger.heads(log_id).await.map_err(|e| e.to_string())?;
    let mut heads = Vec::with_capacity(stored_heads.len());
    for head in &stored_heads {
        let signed: SignedTreeHead = serde_json::from_slice(&head.head)
            .map_err(|e| format!("tree head of size {}: unreadable: {e}", head.size))?;
        heads.push(signed);
    }
    let mut tree = lienthong_ledger::MerkleLog::from_frontier(pruned.size, &pruned.frontier)
        .ok_or("the stored frontier does not fit the purged size")?;
    for leaf in &stored_leaves {
        tree.append(*leaf);
    }
    lienthong_ledger::audit_log(&tree, &heads, key).map_err(|failure| failure.to_string())?;
    // The heads are sound: the frontier kept beside each (where a restarted gateway's
    // first seal goes on from) must give its root.
    for (stored, signed) in stored_heads.iter().zip(&heads) {
        if stored.frontier.is_none() {
            continue;
        }
        let root = stored
            .kept_frontier()
            .and_then(|f| lienthong_ledger::CompactTree::from_frontier(stored.size, &f))
            .map(|tree| tree.root());
        if root != Some(signed.head.root) {
            return Err(format!(
                "the frontier kept beside the tree head of size {} does not give its root: it was altered",
                stored.size
            ));
        }
    }
    Ok(AuditSummary {
        records: size,
        heads: heads.len(),
        timestamped: stored_heads
            .iter()
            .filter(|h| h.tsa_token.is_some())
            .count(),
    })
}
