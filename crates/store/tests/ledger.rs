//! The message-log storage contract, run against both backends like `suite.rs`: appends
//! and reads, lookups by message id, tree heads, retention, and two nodes appending to
//! one log at once.

use lienthong_store::{
    LedgerBodies, NewLedgerEntry, PrunedPrefix, Store, StoreError, StoredArchive, StoredHead,
};
use lienthong_testkit::PgServer;
use std::time::Instant;
use tokio::task::JoinSet;

const LOG: &str = "VN/GOV/000-00-00-H01/cong-du-lieu";

// --- Records ------------------------------------------------------------------------------

async fn appends_get_consecutive_indices(store: &Store) {
    let ledger = store.ledger();
    assert_eq!(ledger.size(LOG).await.expect("size"), 0);
    let first = entries(0..3);
    let second = entries(3..253); // more than one multi-row INSERT
    assert_eq!(ledger.append(LOG, &first).await.expect("append"), 0);
    assert_eq!(ledger.append(LOG, &second).await.expect("append"), 3);
    assert_eq!(ledger.append(LOG, &[]).await.expect("append nothing"), 253);
    assert_eq!(ledger.size(LOG).await.expect("size"), 253);

    let all: Vec<NewLedgerEntry> = first.into_iter().chain(second).collect();
    assert_eq!(
        ledger.leaf_hashes(LOG, 0, 253).await.expect("leaf hashes"),
        all.iter().map(|e| e.leaf_hash).collect::<Vec<_>>()
    );
    assert_eq!(
        ledger
            .leaf_hashes(LOG, 250, 253)
            .await
            .expect("leaf hashes"),
        [all[250].leaf_hash, all[251].leaf_hash, all[252].leaf_hash]
    );
    assert_eq!(
        ledger.leaf_hashes(LOG, 7, 7).await.expect("empty"),
        Vec::<[u8; 32]>::new()
    );
    let beyond = ledger
        .leaf_hashes(LOG, 250, 254)
        .await
        .expect_err("beyond the end");
    assert!(matches!(beyond, StoreError::NotFound { .. }), "{beyond:?}");

    for idx in [0, 2, 3, 100, 252] {
        let entry = &all[usize::try_from(idx).expect("small")];
        assert_eq!(
            ledger.record(LOG, idx).await.expect("record"),
            Some((
                entry.message_id.clone(),
                entry.leaf_hash,
                entry.record.clone()
            ))
        );
    }
    assert_eq!(ledger.record(LOG, 253).await.expect("record"), None);

    // Another gateway's log is separate.
    assert_eq!(ledger.size("other").await.expect("size"), 0);
    assert_eq!(
        ledger
            .append("other", &entries(0..2))
            .await
            .expect("append"),
        0
    );
    assert_eq!(ledger.size(LOG).await.expect("size"), 253);
}

/// Records handed in one at a time, many at once: each gets its own index, the indexes are
/// the log's next ones, each record reads back at its index, and the commits told to their
/// first record add up to every record. The embedded store shares commits between them
/// (and says so); PostgreSQL commits each alone.
async fn grouped_appends_share_commits(store: &Store) {
    let ledger = store.ledger();
    ledger.append(LOG, &entries(0..2)).await.expect("append");
    let mut appends = JoinSet::new();
    for entry in entries(2..66) {
        let store = store.clone();
        appends.spawn(async move {
            let appended = store
                .ledger()
                .append_grouped(LOG, entry.clone(), None)
                .await
                .expect("append");
            (entry, appended)
        });
    }
    let mut indexes = Vec::new();
    let mut told = 0;
    while let Some(done) = appends.join_next().await {
        let (entry, appended) = done.expect("task ran");
        told += appended.commit_records.unwrap_or(0);
        assert_eq!(
            ledger.record(LOG, appended.index).await.expect("record"),
            Some((entry.message_id, entry.leaf_hash, entry.record))
        );
        indexes.push(appended.index);
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (2..66).collect::<Vec<_>>());
    assert_eq!(told, 64, "every record in exactly one told commit");
    assert_eq!(ledger.size(LOG).await.expect("size"), 66);
    assert_eq!(ledger.groups_appends(), !store.is_shared());
}

async fn records_are_found_by_message_id(store: &Store) {
    let ledger = store.ledger();
    // A request and its response are logged under one message id.
    let mut batch = entries(0..5);
    batch[1].message_id = "shared".to_owned();
    batch[4].message_id = "shared".to_owned();
    ledger.append(LOG, &entries(10..12)).await.expect("append");
    ledger.append(LOG, &batch).await.expect("append");
    ledger.append("other", &batch).await.expect("append");

    assert_eq!(
        ledger
            .find_by_message_id(LOG, "shared")
            .await
            .expect("find"),
        [3, 6]
    );
    assert_eq!(
        ledger
            .find_by_message_id(LOG, "message-2")
            .await
            .expect("find"),
        [4]
    );
    assert_eq!(
        ledger
            .find_by_message_id(LOG, "unknown")
            .await
            .expect("find"),
        Vec::<u64>::new()
    );
}

/// Appends a few thousand records in gateway-sized batches; prints the rate it reached.
async fn bulk_appends_read_back(store: &Store) {
    const BATCHES: u64 = 20;
    const BATCH: u64 = 100;
    let ledger = store.ledger();
    let started = Instant::now();
    for batch in 0..BATCHES {
        let first = ledger
            .append(LOG, &entries(batch * BATCH..(batch + 1) * BATCH))
            .await
            .expect("append");
        assert_eq!(first, batch * BATCH);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "appended {} ledger records in batches of {BATCH} at {:.0} records/s",
        BATCHES * BATCH,
        (BATCHES * BATCH) as f64 / elapsed.as_secs_f64()
    );
    let expected: Vec<[u8; 32]> = entries(0..BATCHES * BATCH)
        .iter()
        .map(|e| e.leaf_hash)
        .collect();
    assert_eq!(
        ledger
            .leaf_hashes(LOG, 0, BATCHES * BATCH)
            .await
            .expect("leaf hashes"),
        expected
    );
}

// --- Tree heads ---------------------------------------------------------------------------

async fn heads_are_stored_and_timestamped(store: &Store) {
    let ledger = store.ledger();
    assert_eq!(ledger.latest_head(LOG).await.expect("latest"), None);
    ledger
        .put_head(LOG, 5, b"{\"size\":5}", Some(b"token-5"))
        .await
        .expect("put");
    ledger
        .put_head(LOG, 1, b"{\"size\":1}", None)
        .await
        .expect("put");
    ledger
        .put_head("other", 9, b"{\"size\":9}", None)
        .await
        .expect("put");

    let heads = ledger.heads(LOG).await.expect("heads");
    assert_eq!(
        heads
            .iter()
            .map(|h| (h.size, h.tsa_token.as_deref()))
            .collect::<Vec<_>>(),
        [(1, None), (5, Some(&b"token-5"[..]))],
        "smallest size first"
    );

    // The token arrives later; storing the head again without one keeps it.
    ledger
        .put_head(LOG, 1, b"{\"size\":1}", Some(b"token-1"))
        .await
        .expect("add the token");
    ledger
        .put_head(LOG, 1, b"{\"size\":1}", None)
        .await
        .expect("store again");
    let first = ledger.heads(LOG).await.expect("heads").remove(0);
    assert_eq!(
        first,
        StoredHead {
            tsa_token: Some(b"token-1".to_vec()),
            ..heads[0].clone()
        }
    );

    // A second, different head for a size is refused.
    let error = ledger
        .put_head(LOG, 1, b"{\"size\":1,\"forged\":true}", Some(b"token-x"))
        .await
        .expect_err("different head");
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    assert_eq!(ledger.heads(LOG).await.expect("heads")[0], first);

    let latest = ledger
        .latest_head(LOG)
        .await
        .expect("latest")
        .expect("a head");
    assert_eq!((latest.size, latest.head), (5, b"{\"size\":5}".to_vec()));
}

/// A head's frontier is kept beside it, read back with the largest head that has one, and
/// refused for a head not stored or with the wrong number of hashes.
async fn head_frontiers_are_kept(store: &Store) {
    let ledger = store.ledger();
    assert_eq!(
        ledger.latest_head_with_frontier(LOG).await.expect("none"),
        None
    );
    let frontier_of_6 = [[6u8; 32], [2u8; 32]]; // 6 = 4 + 2: two complete subtrees
    let error = ledger
        .put_head_frontier(LOG, 6, &frontier_of_6)
        .await
        .expect_err("no head of size 6 yet");
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
    for size in [6, 7] {
        ledger
            .put_head(LOG, size, format!("{{\"size\":{size}}}").as_bytes(), None)
            .await
            .expect("put");
    }
    let error = ledger
        .put_head_frontier(LOG, 6, &[[6u8; 32]])
        .await
        .expect_err("6 needs two hashes");
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    // The head of size 7 has none yet: the largest with one is 6; then 7 has one too.
    let frontier_of_7 = [[4u8; 32], [2u8; 32], [1u8; 32]];
    for (size, kept) in [(6, &frontier_of_6[..]), (7, &frontier_of_7[..])] {
        ledger
            .put_head_frontier(LOG, size, kept)
            .await
            .expect("keep");
        let head = ledger
            .latest_head_with_frontier(LOG)
            .await
            .expect("read")
            .expect("a head with its frontier");
        assert_eq!(
            (head.size, head.kept_frontier().as_deref()),
            (size, Some(kept))
        );
        assert_eq!(head.head, format!("{{\"size\":{size}}}").as_bytes());
    }
    let kept: Vec<_> = ledger
        .heads(LOG)
        .await
        .expect("heads")
        .into_iter()
        .map(|head| head.frontier)
        .collect();
    assert_eq!(
        kept,
        [Some(frontier_of_6.concat()), Some(frontier_of_7.concat())]
    );
    assert_eq!(
        ledger
            .latest_head_with_frontier("other")
            .await
            .expect("read"),
        None
    );
}

// --- Retention ----------------------------------------------------------------------------

async fn purge_keeps_the_size(store: &Store) {
    let ledger = store.ledger();
    ledger.append(LOG, &entries(0..10)).await.expect("append");
    ledger
        .append("other", &entries(0..10))
        .await
        .expect("append");

    assert_eq!(
        ledger.delete_records_before(LOG, 4).await.expect("purge"),
        4
    );
    assert_eq!(
        ledger.delete_records_before(LOG, 4).await.expect("purge"),
        0
    );
    assert_eq!(ledger.record(LOG, 3).await.expect("record"), None);
    assert!(ledger.record(LOG, 4).await.expect("record").is_some());
    assert_eq!(ledger.size(LOG).await.expect("size"), 10);
    assert_eq!(ledger.leaf_hashes(LOG, 4, 10).await.expect("kept").len(), 6);
    let purged = ledger.leaf_hashes(LOG, 0, 10).await.expect_err("purged");
    assert!(matches!(purged, StoreError::NotFound { .. }), "{purged:?}");
    assert_eq!(
        ledger
            .find_by_message_id(LOG, "message-1")
            .await
            .expect("find"),
        Vec::<u64>::new()
    );

    // Purging everything does not restart the log.
    assert_eq!(
        ledger.delete_records_before(LOG, 10).await.expect("purge"),
        6
    );
    assert_eq!(
        ledger.append(LOG, &entries(10..11)).await.expect("append"),
        10
    );
    assert_eq!(ledger.size("other").await.expect("size"), 10);
    assert!(ledger.record("other", 0).await.expect("record").is_some());
}

/// Records that repeat long certificates and OCSP responses (kept once by the store, see
/// `pack.rs`) read back byte for byte, one by one and in ranges, in two logs, after a
/// purge of the old records that alone used some of those values, and beside records
/// that merely look like stored forms.
async fn repeated_values_read_back_exactly(store: &Store) {
    let ledger = store.ledger();
    let day = 86_400;
    let record = |n: u64| {
        let certificate = format!("MII{}", ["A", "B"][(n % 2) as usize].repeat(700));
        // The OCSP response changes with time: records 0..20 share an old one.
        let ocsp = format!("MIIE{}==", if n < 20 { "old" } else { "new" }.repeat(400));
        let text = format!(
            r#"{{"message_id":"m-{n}","request_signer_certificate":"{certificate}","response_signer_certificate":"{certificate}","request_signer_ocsp":"{ocsp}","response_signer_ocsp":null,"status":200}}"#
        );
        let mut leaf_hash = [0x5a; 32];
        leaf_hash[..8].copy_from_slice(&n.to_be_bytes());
        NewLedgerEntry {
            message_id: format!("m-{n}"),
            leaf_hash,
            record: if n == 7 {
                // Not JSON, and with a stored form's first byte.
                b"\x01\x00 not a record".to_vec()
            } else {
                text.into_bytes()
            },
            // Records 0..20 are three days older than the rest.
            recorded_at: 1_700_000_000 + if n < 20 { 0 } else { 3 * day } + n as i64,
        }
    };
    let all: Vec<NewLedgerEntry> = (0..40).map(record).collect();
    for log in [LOG, "other"] {
        ledger.append(log, &all[..1]).await.expect("append one");
        ledger
            .append(log, &all[1..])
            .await
            .expect("append the rest");
        // Only values stored already: PostgreSQL appends these in one statement.
        assert_eq!(
            ledger
                .append(log, &all[30..32])
                .await
                .expect("append again"),
            40
        );
    }
    for log in [LOG, "other"] {
        let again = ledger.records(log, 40, 42).await.expect("records");
        assert_eq!(again.len(), 2);
        for (entry, (record, _)) in all[30..32].iter().zip(&again) {
            assert_eq!(record, &entry.record, "{} again", entry.message_id);
        }
        let back = ledger.records(log, 0, 40).await.expect("records");
        for (entry, (record, recorded_at)) in all.iter().zip(&back) {
            assert_eq!(record, &entry.record, "{}", entry.message_id);
            assert_eq!(*recorded_at, entry.recorded_at);
        }
        let (_, _, one) = ledger
            .record(log, 33)
            .await
            .expect("record")
            .expect("there");
        assert_eq!(one, all[33].record);
    }
    // The purge of the old records may drop the old OCSP response; the rest still read back.
    assert_eq!(
        ledger.delete_records_before(LOG, 20).await.expect("purge"),
        20
    );
    let back = ledger.records(LOG, 20, 40).await.expect("records");
    assert!(
        all[20..]
            .iter()
            .zip(&back)
            .all(|(entry, (record, _))| *record == entry.record)
    );
    let back = ledger.records("other", 0, 40).await.expect("other log");
    assert!(
        all.iter()
            .zip(&back)
            .all(|(entry, (record, _))| *record == entry.record)
    );
}

async fn the_database_size_grows_with_the_log(store: &Store) {
    let before = store.database_bytes().await.expect("size");
    assert!(before > 0, "a migrated database has pages");
    let entries: Vec<NewLedgerEntry> = (0..300u64)
        .map(|n| {
            let record = format!(
                r#"{{"message_id":"{n:032x}","side":"client","request_in":{},"request_description":"{}","request_body_sha256":"{:064x}","status":200}}"#,
                1_795_866_462_959 + n,
                "bGllbnRob25nLXJlcXVlc3QvMQ==".repeat(20),
                n
            );
            let mut leaf_hash = [0x11; 32];
            leaf_hash[..8].copy_from_slice(&n.to_be_bytes());
            NewLedgerEntry {
                message_id: format!("{n:032x}"),
                leaf_hash,
                record: record.into_bytes(),
                recorded_at: 1_790_000_000,
            }
        })
        .collect();
    store.ledger().append(LOG, &entries).await.expect("append");
    let after = store.database_bytes().await.expect("size");
    assert!(after > before, "{before} -> {after} bytes");
    let back = store.ledger().records(LOG, 0, 300).await.expect("records");
    assert!(
        entries
            .iter()
            .zip(&back)
            .all(|(entry, (record, _))| *record == entry.record)
    );
}

async fn bodies_are_kept_beside_records(store: &Store) {
    let ledger = store.ledger();
    let clear = LedgerBodies {
        encrypted_to: None,
        request: Some(b"request body".to_vec()),
        response: Some(Vec::new()),
    };
    let sealed = LedgerBodies {
        encrypted_to: Some("0123456789abcdef".into()),
        request: None,
        response: Some(vec![1, 2, 3]),
    };
    let first = ledger
        .append_with_bodies(
            LOG,
            &entries(0..3),
            &[Some(clear.clone()), None, Some(sealed.clone())],
        )
        .await
        .expect("append");
    assert_eq!(first, 0);
    assert_eq!(ledger.bodies(LOG, 0).await.expect("bodies"), Some(clear));
    assert_eq!(ledger.bodies(LOG, 1).await.expect("bodies"), None);
    assert_eq!(ledger.bodies(LOG, 2).await.expect("bodies"), Some(sealed));
    // Fewer bodies than records: the rest have none; indices follow the log.
    let body = LedgerBodies {
        encrypted_to: None,
        request: Some(b"x".to_vec()),
        response: None,
    };
    assert_eq!(
        ledger
            .append_with_bodies(LOG, &entries(3..5), &[Some(body.clone())])
            .await
            .expect("append"),
        3
    );
    assert_eq!(ledger.bodies(LOG, 3).await.expect("bodies"), Some(body));
    assert_eq!(ledger.bodies(LOG, 4).await.expect("bodies"), None);
    assert_eq!(ledger.size(LOG).await.expect("size"), 5);
    // Retention removes a record's bodies with it.
    ledger.delete_records_before(LOG, 3).await.expect("purge");
    assert_eq!(ledger.bodies(LOG, 0).await.expect("bodies"), None);
    assert!(ledger.bodies(LOG, 3).await.expect("bodies").is_some());
}

/// Records are purged only up to the end of a recorded archive, and the purged start
/// (size and frontier) is kept for the tree.
async fn purge_only_archived_records(store: &Store) {
    let ledger = store.ledger();
    ledger.append(LOG, &entries(0..10)).await.expect("append");
    let prefix = |size: u64| PrunedPrefix {
        size,
        frontier: vec![[size as u8; 32]; size.count_ones() as usize],
    };
    let refused = ledger
        .purge_archived(LOG, &prefix(5))
        .await
        .expect_err("nothing archived");
    assert!(
        matches!(refused, StoreError::Conflict { .. }),
        "{refused:?}"
    );
    assert_eq!(ledger.records(LOG, 0, 10).await.expect("records").len(), 10);

    let archive = |sequence: u64, first: u64, end: u64| StoredArchive {
        sequence,
        first,
        end,
        file_name: format!("log-{sequence:08}.zip"),
        sha256: [sequence as u8; 32],
        last_recorded_at: 1_700_000_000 + end as i64,
        created_at: 1_800_000_000,
    };
    ledger
        .add_archive(LOG, &archive(1, 0, 5))
        .await
        .expect("first archive");
    for wrong in [
        archive(1, 0, 5),
        archive(3, 5, 8),
        archive(2, 4, 8),
        archive(2, 6, 8),
    ] {
        let refused = ledger
            .add_archive(LOG, &wrong)
            .await
            .expect_err("not the next");
        assert!(
            matches!(refused, StoreError::Conflict { .. }),
            "{wrong:?}: {refused:?}"
        );
    }
    ledger
        .add_archive(LOG, &archive(2, 5, 8))
        .await
        .expect("second archive");
    assert_eq!(
        ledger.archives(LOG).await.expect("archives"),
        [archive(1, 0, 5), archive(2, 5, 8)]
    );
    assert_eq!(ledger.archives("other").await.expect("archives"), []);

    // Not at an archive's end, or a frontier that does not fit: refused, nothing deleted.
    for wrong in [
        prefix(4),
        prefix(9),
        PrunedPrefix {
            size: 5,
            frontier: vec![],
        },
    ] {
        let refused = ledger
            .purge_archived(LOG, &wrong)
            .await
            .expect_err("refused");
        assert!(
            matches!(refused, StoreError::Conflict { .. }),
            "{refused:?}"
        );
    }
    assert_eq!(
        ledger.pruned(LOG).await.expect("pruned"),
        PrunedPrefix::default()
    );
    assert_eq!(
        ledger.purge_archived(LOG, &prefix(5)).await.expect("purge"),
        5
    );
    assert_eq!(ledger.pruned(LOG).await.expect("pruned"), prefix(5));
    let gone = ledger.records(LOG, 0, 10).await.expect_err("purged");
    assert!(matches!(gone, StoreError::NotFound { .. }), "{gone:?}");
    let kept = ledger.records(LOG, 5, 10).await.expect("kept");
    assert_eq!(kept[0].0, entries(5..6)[0].record);
    let (pruned, leaves) = ledger.tree_leaves(LOG, 10).await.expect("tree leaves");
    assert_eq!(pruned, prefix(5));
    assert_eq!(
        leaves,
        entries(5..10)
            .iter()
            .map(|e| e.leaf_hash)
            .collect::<Vec<_>>()
    );
    // Never backwards; the log goes on at its size.
    let refused = ledger
        .purge_archived(LOG, &prefix(4))
        .await
        .expect_err("backwards");
    assert!(
        matches!(refused, StoreError::Conflict { .. }),
        "{refused:?}"
    );
    assert_eq!(
        ledger.purge_archived(LOG, &prefix(8)).await.expect("purge"),
        3
    );
    assert_eq!(
        ledger.append(LOG, &entries(10..11)).await.expect("append"),
        10
    );
    assert_eq!(
        ledger.pruned("other").await.expect("pruned"),
        PrunedPrefix::default()
    );
}

// --- Concurrency --------------------------------------------------------------------------

/// Two gateway nodes (two `Store` handles) append batches to one log at once: every
/// record lands exactly once, each batch contiguous, the indices tiling 0..400.
async fn two_nodes_append_to_one_log(database: &Database) {
    const BATCHES: u8 = 20;
    const BATCH: u8 = 10;
    let nodes = [database.open().await, database.open().await];
    let mut appends = JoinSet::new();
    for (node, store) in (0u8..).zip(&nodes) {
        for batch in 0..BATCHES {
            let store = store.clone();
            appends.spawn(async move {
                let entries: Vec<NewLedgerEntry> = (0..BATCH)
                    .map(|k| NewLedgerEntry {
                        message_id: format!("node-{node}/batch-{batch}/{k}"),
                        leaf_hash: tagged_hash(node, batch, k),
                        record: vec![node, batch, k],
                        recorded_at: 1_700_000_000,
                    })
                    .collect();
                let first = store.ledger().append(LOG, &entries).await.expect("append");
                (first, node, batch)
            });
        }
    }
    let mut batches = Vec::new();
    while let Some(append) = appends.join_next().await {
        batches.push(append.expect("append task"));
    }
    batches.sort_unstable();

    let total = 2 * u64::from(BATCHES) * u64::from(BATCH);
    let firsts: Vec<u64> = batches.iter().map(|&(first, ..)| first).collect();
    let expected_firsts: Vec<u64> = (0..total).step_by(usize::from(BATCH)).collect();
    assert_eq!(
        firsts, expected_firsts,
        "an index was skipped or handed out twice"
    );
    for node in &nodes {
        assert_eq!(node.ledger().size(LOG).await.expect("size"), total);
    }
    let hashes = nodes[1]
        .ledger()
        .leaf_hashes(LOG, 0, total)
        .await
        .expect("leaf hashes");
    let expected: Vec<[u8; 32]> = batches
        .iter()
        .flat_map(|&(_, node, batch)| (0..BATCH).map(move |k| tagged_hash(node, batch, k)))
        .collect();
    assert_eq!(hashes, expected, "batches interleaved or records lost");
    let (first, node, batch) = batches[7];
    assert_eq!(
        nodes[0]
            .ledger()
            .find_by_message_id(LOG, &format!("node-{node}/batch-{batch}/3"))
            .await
            .expect("find"),
        [first + 3]
    );
}

/// Two gateway nodes append single records and batches to one log at once while each also
/// seals it (a signed head over the size it sees): the records tile the log with no gap or
/// duplicate, and the whole log — every record against its leaf, every head from either
/// node against the tree, consistency between them — passes the ledger's audit.
async fn two_nodes_build_one_auditable_tree(database: &Database) {
    use lienthong_crypto::{Signer as _, SoftwareKey, Suite, merkle};
    use lienthong_ledger::{MerkleLog, SignedTreeHead, TreeHead, sign_head};
    use std::sync::Arc;

    const APPENDS: u8 = 24;
    let key = Arc::new(SoftwareKey::generate(Suite::Ed25519).expect("key").0);
    let nodes = [database.open().await, database.open().await];
    let mut tasks = JoinSet::new();
    for (node, store) in (0u8..).zip(&nodes) {
        let store = store.clone();
        let key = key.clone();
        tasks.spawn(async move {
            let mut stored = Vec::new();
            for append in 0..APPENDS {
                // Alternately one record and a batch of five, as the journal commits them.
                let count = if append % 2 == 0 { 1 } else { 5 };
                let batch: Vec<NewLedgerEntry> = (0..count)
                    .map(|k| {
                        let record = format!("{{\"node\":{node},\"append\":{append},\"k\":{k}}}")
                            .into_bytes();
                        NewLedgerEntry {
                            message_id: format!("node-{node}/{append}/{k}"),
                            leaf_hash: merkle::leaf_hash(&record),
                            record,
                            recorded_at: 1_700_000_000,
                        }
                    })
                    .collect();
                store.ledger().append(LOG, &batch).await.expect("append");
                let size = store.ledger().size(LOG).await.expect("size");
                let leaves = store
                    .ledger()
                    .leaf_hashes(LOG, 0, size)
                    .await
                    .expect("leaves");
                let head = TreeHead {
                    log_id: LOG.into(),
                    size,
                    root: MerkleLog::from_leaves(leaves).root(),
                    time_ms: 1_700_000_000_000 + i64::from(append),
                };
                let signed = sign_head(head, key.as_ref()).expect("signs");
                // The other node may have sealed the same size first: its head stands.
                match store
                    .ledger()
                    .put_head(LOG, size, &signed.to_canonical_json(), None)
                    .await
                {
                    Ok(()) => stored.push(signed),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(error) => panic!("store a head: {error}"),
                }
            }
            stored
        });
    }
    let mut heads: Vec<SignedTreeHead> = Vec::new();
    while let Some(task) = tasks.join_next().await {
        heads.extend(task.expect("node task"));
    }
    heads.sort_by_key(|signed| signed.head.size);
    // Both nodes may seal the same size at the same step: the head is then the same bytes
    // (same root, same time, deterministic Ed25519), the store keeps it once and both
    // nodes were told it stands. Any two heads of one size must be identical.
    for pair in heads.windows(2) {
        if pair[0].head.size == pair[1].head.size {
            assert_eq!(pair[0].to_canonical_json(), pair[1].to_canonical_json());
        }
    }
    heads.dedup_by_key(|signed| signed.head.size);
    // Each node: half the appends one record, half five.
    let total = 2 * u64::from(APPENDS / 2) * (1 + 5);
    let ledger = nodes[0].ledger();
    assert_eq!(ledger.size(LOG).await.expect("size"), total);
    let records = ledger.records(LOG, 0, total).await.expect("every record");
    let leaves = ledger.leaf_hashes(LOG, 0, total).await.expect("leaves");
    let mut seen = std::collections::HashSet::new();
    for (index, ((record, _), leaf)) in records.iter().zip(&leaves).enumerate() {
        assert_eq!(merkle::leaf_hash(record), *leaf, "record {index}");
        assert!(seen.insert(record.clone()), "record {index} appended twice");
    }
    let stored = ledger.heads(LOG).await.expect("heads");
    assert_eq!(
        stored.iter().map(|h| h.size).collect::<Vec<_>>(),
        heads.iter().map(|h| h.head.size).collect::<Vec<_>>()
    );
    for (stored, signed) in stored.iter().zip(&heads) {
        assert_eq!(stored.head, signed.to_canonical_json());
    }
    lienthong_ledger::audit(&leaves, &heads, key.public_key()).expect("the audit passes");
}

// --- Fixtures -----------------------------------------------------------------------------

/// Entries numbered `range`: message id `message-N`, a leaf hash and record derived from N.
fn entries(range: std::ops::Range<u64>) -> Vec<NewLedgerEntry> {
    range
        .map(|n| {
            let mut leaf_hash = [0xa5; 32];
            leaf_hash[..8].copy_from_slice(&n.to_be_bytes());
            NewLedgerEntry {
                message_id: format!("message-{n}"),
                leaf_hash,
                record: format!("{{\"n\":{n},\"chủ đề\":\"liên thông\"}}").into_bytes(),
                recorded_at: 1_700_000_000 + i64::try_from(n).expect("small"),
            }
        })
        .collect()
}

fn tagged_hash(node: u8, batch: u8, k: u8) -> [u8; 32] {
    let mut hash = [0; 32];
    hash[..3].copy_from_slice(&[node, batch, k]);
    hash
}

/// A fresh, empty database of one backend, which a test may open several times.
struct Database {
    url: String,
    /// The SQLite file's directory, removed at the end of the test.
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    fn sqlite(_test: &str) -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    /// A database named after the test on the server shared by this binary.
    fn postgres(test: &str) -> Self {
        let server = PgServer::shared().expect("start PostgreSQL (see lienthong-testkit)");
        let url = server
            .create_database(test)
            .expect("create a test database");
        Self { url, _dir: None }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open the store")
    }
}

/// One module per backend, each with one `#[tokio::test]` per contract test above.
macro_rules! for_both_backends {
    (stores: [$($store_test:ident),* $(,)?], databases: [$($database_test:ident),* $(,)?] $(,)?) => {
        for_both_backends!(@backend sqlite, [$($store_test),*], [$($database_test),*]);
        for_both_backends!(@backend postgres, [$($store_test),*], [$($database_test),*]);
    };
    (@backend $backend:ident, [$($store_test:ident),*], [$($database_test:ident),*]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $store_test() {
                    let database = super::Database::$backend(stringify!($store_test));
                    super::$store_test(&database.open().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $database_test() {
                    let database = super::Database::$backend(stringify!($database_test));
                    super::$database_test(&database).await;
                }
            )*
        }
    };
}

for_both_backends! {
    stores: [
        appends_get_consecutive_indices,
        grouped_appends_share_commits,
        records_are_found_by_message_id,
        bulk_appends_read_back,
        heads_are_stored_and_timestamped,
        head_frontiers_are_kept,
        purge_keeps_the_size,
        bodies_are_kept_beside_records,
        purge_only_archived_records,
        repeated_values_read_back_exactly,
        the_database_size_grows_with_the_log,
    ],
    databases: [two_nodes_append_to_one_log, two_nodes_build_one_auditable_tree],
}
