//! Stable-toolchain smoke run of the evidence fuzz entry point (`fuzz/src/evidence.rs`): a
//! genuine bundle and archive, their truncations, and mutated copies must never panic.

#[allow(unreachable_pub)] // the shared fuzz entry points are `pub` for cargo-fuzz
#[path = "../../../fuzz/src/evidence.rs"]
mod evidence;

use lienthong_crypto::{SoftwareKey, Suite, merkle};
use lienthong_ledger::{
    ARCHIVE_FORMAT, Archive, ArchiveManifest, ArchivedHead, BodyEvidence, Bundle, LogRecord,
    MerkleLog, Side, TimestampedHead, TreeHead, sign_head, write_archive, write_bundle,
};
use proptest::prelude::*;
use std::sync::LazyLock;

fn record(n: u64) -> LogRecord {
    LogRecord {
        message_id: format!("msg-{n}"),
        side: Side::Client,
        client: "VN/GOV/000101/case-management".into(),
        service: "VN/GOV/000202/citizen-registry/persons".into(),
        request_in: 1_790_000_000_000,
        request_out: Some(1_790_000_000_001),
        response_in: None,
        response_out: None,
        request_description: b"GET /persons/1".to_vec(),
        response_description: None,
        request_signature: "ed25519:AAAA".into(),
        response_signature: None,
        request_signer_certificate: vec![0x30, 0x00],
        response_signer_certificate: None,
        request_signer_ocsp: None,
        response_signer_ocsp: None,
        request_body_sha256: merkle::leaf_hash(&n.to_be_bytes()),
        response_body_sha256: None,
        status: 200,
        body: BodyEvidence::DigestOnly,
    }
}

/// A genuine bundle and a genuine archive (second of a chain) over six records.
static INPUTS: LazyLock<[Vec<u8>; 2]> = LazyLock::new(|| {
    let key = SoftwareKey::generate(Suite::Ed25519).expect("key").0;
    let records: Vec<LogRecord> = (0..6).map(record).collect();
    let log = MerkleLog::from_leaves(records.iter().map(LogRecord::leaf_hash));
    let head = |size: u64| {
        let head = TreeHead {
            log_id: "gw-1".into(),
            size,
            root: log.root_at(size).expect("root"),
            time_ms: 1_790_000_001_000,
        };
        sign_head(head, &key).expect("signs")
    };
    let bundle = Bundle::from_log(
        &log,
        records[2].clone(),
        2,
        TimestampedHead {
            signed: head(6),
            tsa_token: vec![0x30, 0x03, 2, 1, 0],
        },
    )
    .expect("in the log");
    let archive = Archive {
        manifest: ArchiveManifest {
            format: ARCHIVE_FORMAT.into(),
            log_id: "gw-1".into(),
            sequence: 2,
            first: 3,
            end: 6,
            previous_sha256: [7; 32],
            frontier: log.frontier(3).expect("frontier"),
        },
        records: records[3..].to_vec(),
        heads: vec![
            ArchivedHead {
                signed: head(4),
                tsa_token: None,
            },
            ArchivedHead {
                signed: head(6),
                tsa_token: Some(vec![0x30, 0x00]),
            },
        ],
        certificates: vec![("log-key".into(), vec![0x30, 0x00])],
    };
    [
        write_bundle(&bundle).expect("writes"),
        write_archive(&archive).expect("writes"),
    ]
});

#[test]
fn genuine_files_and_their_truncations_never_panic() {
    for input in INPUTS.iter() {
        // Every prefix of the ZIP's tail (where the central directory is) and a sample of
        // the others.
        for end in (0..=input.len()).filter(|end| end % 7 == 0 || input.len() - end < 200) {
            evidence::evidence(&input[..end]);
        }
        evidence::evidence(input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn mutated_files_never_panic(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut input = INPUTS[which].clone();
        let position = at.index(input.len());
        input[position] = value;
        evidence::evidence(&input);
        evidence::evidence(&garbage);
    }
}
