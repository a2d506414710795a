//! Archives and retention of a message log in its store: archive files chained by hash
//! that the offline verifier checks, a purge that removes only archived records, and a
//! tree that still proves newer records after the purge.

use lienthong_crypto::{Signer as _, SoftwareKey, Suite, merkle};
use lienthong_gateway::archive::{archive_file_name, purge_archived, write_archives};
use lienthong_ledger::{
    Archive, BodyEvidence, CHECK_ARCHIVE_CHAIN, CHECK_ARCHIVE_RECORDS, LogRecord, MerkleLog,
    Outcome, PreviousArchive, Side, TreeHead, TrustRoots, Verdict, read_archive, sign_head,
    verify_archive,
};
use lienthong_store::{NewLedgerEntry, Store};

const LOG: &str = "VN/GOV/000123/gw1";

struct Fixture {
    store: Store,
    dir: tempfile::TempDir,
    key: SoftwareKey,
    /// Every leaf appended, to check the store's tree against.
    leaves: Vec<[u8; 32]>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        Self {
            store: Store::open(&url).await.expect("open the store"),
            key: SoftwareKey::generate(Suite::Ed25519).expect("key").0,
            dir,
            leaves: Vec::new(),
        }
    }

    fn archive_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("archive")
    }

    /// Append `count` records recorded at `recorded_at`.
    async fn append(&mut self, count: u64, recorded_at: i64) {
        let first = self.leaves.len() as u64;
        let entries: Vec<NewLedgerEntry> = (first..first + count)
            .map(|n| {
                let record = record(n);
                self.leaves.push(record.leaf_hash());
                NewLedgerEntry {
                    message_id: record.message_id.clone(),
                    leaf_hash: record.leaf_hash(),
                    record: record.to_canonical_bytes(),
                    recorded_at,
                }
            })
            .collect();
        self.store
            .ledger()
            .append(LOG, &entries)
            .await
            .expect("append");
    }

    /// Store a signed head over every record, with a token if `timestamped` (the archive
    /// writer only needs to know that a head is timestamped; the tokens here are fake).
    async fn seal(&self, timestamped: bool) {
        let size = self.leaves.len() as u64;
        let head = TreeHead {
            log_id: LOG.into(),
            size,
            root: merkle::root(&self.leaves),
            time_ms: 1_790_000_000_000 + size as i64,
        };
        let signed = sign_head(head, &self.key).expect("signs");
        self.store
            .ledger()
            .put_head(
                LOG,
                size,
                &signed.to_canonical_json(),
                timestamped.then_some(b"token".as_slice()),
            )
            .await
            .expect("store the head");
    }

    async fn archive(&self) -> Vec<u64> {
        write_archives(&self.store, LOG, &self.archive_dir(), &[])
            .await
            .expect("archive")
            .iter()
            .map(|a| a.end)
            .collect()
    }

    fn files(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<_> = std::fs::read_dir(self.archive_dir())
            .expect("archive directory")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        names.sort();
        names
            .iter()
            .map(|name| std::fs::read(self.archive_dir().join(name)).expect("read"))
            .collect()
    }
}

fn record(n: u64) -> LogRecord {
    LogRecord {
        message_id: format!("msg-{n}"),
        side: Side::Provider,
        client: "VN/GOV/000101/case-management".into(),
        service: "VN/GOV/000123/citizen-registry/persons".into(),
        request_in: 1_790_000_000_000 + n as i64,
        request_out: None,
        response_in: None,
        response_out: None,
        request_description: format!("request {n}").into_bytes(),
        response_description: None,
        request_signature: "ed25519:AAAA".into(),
        response_signature: None,
        request_signer_certificate: vec![0x30, 0x00],
        response_signer_certificate: None,
        request_signer_ocsp: None,
        response_signer_ocsp: None,
        request_body_sha256: [n as u8; 32],
        response_body_sha256: None,
        status: 200,
        body: BodyEvidence::DigestOnly,
    }
}

/// Each archive's verdict with the one before it; the fake tokens and signatures are not
/// what these tests are about, so only the chain and the records are looked at.
fn verify_files(files: &[Vec<u8>], key: &SoftwareKey) -> Vec<Verdict> {
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
                Some(key.public_key()),
                &TrustRoots::default(),
            )
        })
        .collect()
}

fn outcome(verdict: &Verdict, name: &str) -> (Outcome, String) {
    let check = verdict.check(name).expect("the check was made");
    (check.outcome, check.detail.clone())
}

#[tokio::test]
async fn archives_chain_and_verify_and_tampering_is_named() {
    let mut fixture = Fixture::new().await;
    assert_eq!(fixture.archive().await, Vec::<u64>::new(), "nothing sealed");
    fixture.append(5, 1_700_000_000).await;
    fixture.seal(true).await;
    fixture.append(3, 1_700_000_100).await;
    fixture.seal(false).await; // not timestamped: not archived yet
    assert_eq!(fixture.archive().await, [5]);
    fixture.seal(true).await; // the token arrives
    fixture.append(4, 1_700_000_200).await;
    fixture.seal(true).await;
    assert_eq!(
        fixture.archive().await,
        [12],
        "up to the last timestamped head"
    );
    assert_eq!(fixture.archive().await, Vec::<u64>::new(), "nothing new");

    let files = fixture.files();
    assert_eq!(files.len(), 2);
    for verdict in verify_files(&files, &fixture.key) {
        assert_eq!(outcome(&verdict, CHECK_ARCHIVE_CHAIN).0, Outcome::Passed);
        assert_eq!(outcome(&verdict, CHECK_ARCHIVE_RECORDS).0, Outcome::Passed);
        assert_eq!(
            verdict.check("tree-head-signature").map(|c| c.outcome),
            Some(Outcome::Passed)
        );
    }
    let second = read_archive(&files[1]).expect("reads");
    assert_eq!(
        (
            second.manifest.sequence,
            second.manifest.first,
            second.manifest.end
        ),
        (2, 5, 12)
    );
    assert_eq!(second.heads.len(), 2, "the heads over 8 and 12");

    // One record changed in the first file: it fails, and the second's link names it.
    let mut tampered = read_archive(&files[0]).expect("reads");
    tampered.records[2].status = 500;
    let tampered = lienthong_ledger::write_archive(&tampered).expect("writes");
    let verdicts = verify_files(&[tampered, files[1].clone()], &fixture.key);
    let (records, detail) = outcome(&verdicts[0], CHECK_ARCHIVE_RECORDS);
    assert_eq!(records, Outcome::Failed);
    assert!(detail.contains("records 0..=4"), "{detail}");
    let (link, detail) = outcome(&verdicts[1], CHECK_ARCHIVE_CHAIN);
    assert_eq!(link, Outcome::Failed);
    assert!(detail.contains("archive 1 was changed"), "{detail}");
}

#[tokio::test]
async fn only_archived_records_are_purged_and_newer_ones_stay_provable() {
    let mut fixture = Fixture::new().await;
    let dir = fixture.archive_dir();
    fixture.append(7, 1_000).await;
    fixture.seal(true).await;
    fixture.append(6, 2_000).await;
    fixture.seal(true).await;
    assert_eq!(fixture.archive().await, [13]);
    // Old, but not archived: records 13.. stay whatever the cutoff.
    fixture.append(5, 1_500).await;
    fixture.seal(false).await;
    let store = fixture.store.clone();
    let ledger = store.ledger();

    // Archive 1 holds records 0..13, recorded up to 2000: a cutoff before that keeps them.
    assert_eq!(
        purge_archived(&fixture.store, LOG, &dir, 2_000)
            .await
            .expect("purge"),
        0
    );
    // A changed archive file is not trusted to hold the records.
    let path = dir.join(archive_file_name(1));
    let genuine = std::fs::read(&path).expect("read");
    let mut changed = genuine.clone();
    let last = changed.len() - 30;
    changed[last] ^= 1;
    std::fs::write(&path, &changed).expect("write");
    let refused = purge_archived(&fixture.store, LOG, &dir, 10_000)
        .await
        .expect_err("refused");
    assert!(
        refused.contains("not the file that was written"),
        "{refused}"
    );
    assert!(ledger.record(LOG, 0).await.expect("record").is_some());
    std::fs::write(&path, &genuine).expect("restore");

    assert_eq!(
        purge_archived(&fixture.store, LOG, &dir, 10_000)
            .await
            .expect("purge"),
        13
    );
    assert_eq!(ledger.record(LOG, 12).await.expect("record"), None);
    for index in 13..18 {
        assert!(
            ledger.record(LOG, index).await.expect("record").is_some(),
            "unarchived record {index} was purged"
        );
    }
    assert_eq!(ledger.size(LOG).await.expect("size"), 18);

    // The tree goes on from the frontier: a new head and an inclusion proof of a newer
    // record agree with the whole log's.
    fixture.append(2, 3_000).await;
    fixture.seal(true).await;
    let (pruned, leaves) = ledger.tree_leaves(LOG, 20).await.expect("tree leaves");
    assert_eq!(pruned.size, 13);
    let mut tree = MerkleLog::from_frontier(pruned.size, &pruned.frontier).expect("frontier");
    leaves.into_iter().for_each(|leaf| {
        tree.append(leaf);
    });
    let root = merkle::root(&fixture.leaves);
    assert_eq!(tree.root(), root);
    let proof = tree
        .inclusion_proof(15, 20)
        .expect("proof of a newer record");
    assert!(merkle::verify_inclusion(
        &fixture.leaves[15],
        15,
        20,
        &proof,
        &root
    ));
    assert_eq!(tree.inclusion_proof(3, 20), None, "purged");

    // The audit of what is left passes; the next archive continues the chain.
    let summary =
        lienthong_gateway::audit_stored_log(&fixture.store, LOG, fixture.key.public_key())
            .await
            .expect("the audit passes after the purge");
    assert_eq!(summary.records, 20);
    assert_eq!(fixture.archive().await, [20]);
    for verdict in verify_files(&fixture.files(), &fixture.key) {
        assert_eq!(
            outcome(&verdict, CHECK_ARCHIVE_CHAIN).0,
            Outcome::Passed,
            "{verdict}"
        );
        assert_eq!(outcome(&verdict, CHECK_ARCHIVE_RECORDS).0, Outcome::Passed);
    }
}
