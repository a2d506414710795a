//! Fuzzed entry points of the message log's evidence files: evidence bundles and log
//! archives, read as an auditor reads them. Included by the cargo-fuzz target `evidence`
//! and by the stable smoke test `crates/ledger/tests/fuzz_smoke.rs`.

use lienthong_ledger::{
    TrustRoots, read_archive, read_bundle, verify_archive, verify_bundle, write_archive,
    write_bundle,
};

/// `read_bundle` and `read_archive` over arbitrary bytes; what reads is verified (with no
/// trust roots, so every cryptographic check runs on attacker-chosen input and fails
/// cleanly) and written back, and the rewrite reads back the same.
pub fn evidence(data: &[u8]) {
    let roots = TrustRoots::default();
    if let Ok(bundle) = read_bundle(data) {
        let _ = verify_bundle(&bundle, None, &roots).to_string();
        let again = write_bundle(&bundle).expect("a bundle that was read writes");
        assert_eq!(
            read_bundle(&again).as_ref(),
            Ok(&bundle),
            "bundles round-trip"
        );
    }
    if let Ok(archive) = read_archive(data) {
        let _ = verify_archive(&archive, None, None, &roots).to_string();
        let again = write_archive(&archive).expect("an archive that was read writes");
        assert_eq!(
            read_archive(&again).as_ref(),
            Ok(&archive),
            "archives round-trip"
        );
    }
}
