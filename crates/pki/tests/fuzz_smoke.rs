//! The fuzz targets' entry points on the stable toolchain, so CI exercises them without
//! cargo-fuzz: every seed under `fuzz/seeds/<target>/`, every truncation of every seed, and
//! a few thousand mutated seeds (bit flips, byte changes, insertions, deletions, cuts) and
//! random inputs per target. Any panic fails the test, and proptest shrinks the input.

#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod entry_points;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::{Path, PathBuf};

type EntryPoint = fn(&[u8]);

const TARGETS: [(&str, EntryPoint); 6] = [
    ("ocsp_request", entry_points::ocsp_request),
    ("tsa_request", entry_points::tsa_request),
    ("csr", entry_points::csr),
    ("certificate", entry_points::certificate),
    ("spki", entry_points::spki),
    ("identifiers", entry_points::identifiers),
];

/// Mutated inputs per target: 12,000 in all, about a second in the debug profile.
const CASES_PER_TARGET: u32 = 2_000;

#[test]
fn every_seed_and_every_truncation_of_it_is_handled() {
    for (target, entry_point) in TARGETS {
        let seeds = seeds(target);
        for seed in &seeds {
            entry_point(seed);
            for length in 0..seed.len() {
                entry_point(&seed[..length]);
            }
        }
    }
}

#[test]
fn mutated_seeds_are_handled() {
    for (target, entry_point) in TARGETS {
        let mut runner = TestRunner::new(Config {
            cases: CASES_PER_TARGET,
            failure_persistence: None,
            ..Config::default()
        });
        let runs = std::cell::Cell::new(0u32);
        let result = runner.run(&input(seeds(target)), |data| {
            entry_point(&data);
            runs.set(runs.get() + 1);
            Ok(())
        });
        if let Err(failure) = result {
            panic!("fuzz target {target}: {failure}");
        }
        assert_eq!(runs.get(), CASES_PER_TARGET, "{target}");
    }
}

#[test]
fn the_seeds_are_what_the_parsers_accept() {
    // Guard against seeds rotting into garbage, which would leave the mutations above
    // exploring nothing but the parsers' first error paths.
    let fixture = entry_points::fixture();
    let ocsp = seeds("ocsp_request");
    assert!(
        ocsp.iter()
            .all(|seed| lienthong_pki::OcspResponder::requested_serials(seed).is_some())
    );
    let accepted = seeds("tsa_request")
        .iter()
        .filter(|seed| fixture.tsa.parse_request(seed).is_ok())
        .count();
    assert!(
        accepted >= 3,
        "at least three TSA seeds are acceptable requests"
    );
    for seed in seeds("certificate") {
        let der = lienthong_pki::parse_certificate_pem(&seed).expect("PEM or DER certificate");
        lienthong_pki::CertificateInfo::from_der(&der).expect("certificate seed parses");
    }
    let csrs = seeds("csr");
    let international = lienthong_crypto::CryptoPolicy::international();
    let verified = csrs
        .iter()
        .filter(|seed| lienthong_pki::verify_csr(seed, &international).is_ok())
        .count();
    assert!(
        verified >= 4,
        "CSR seeds verify: {verified} of {}",
        csrs.len()
    );
    let keys = seeds("spki")
        .iter()
        .filter(|seed| lienthong_crypto::PublicKey::from_spki_der(seed).is_ok())
        .count();
    assert!(keys >= 4, "SPKI seeds parse: {keys}");
}

/// A seed with a few mutations applied, or (one time in ten) random bytes.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    prop_oneof![
        9 => (0..count, prop::collection::vec(mutation(), 1..8))
            .prop_map(move |(index, mutations)| apply(&seeds[index], &mutations)),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        // Bytes that matter to DER: lengths, tags and their boundaries.
        2 => (any::<usize>(), prop::sample::select(vec![0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff, 0x30, 0x31]))
            .prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for mutation in mutations {
        let len = data.len();
        match *mutation {
            Mutation::FlipBit(at, bit) if len > 0 => data[at % len] ^= 1 << bit,
            Mutation::SetByte(at, byte) if len > 0 => data[at % len] = byte,
            Mutation::Insert(at, byte) => data.insert(at % (len + 1), byte),
            Mutation::Delete(at) if len > 0 => {
                data.remove(at % len);
            }
            Mutation::Truncate(at) => data.truncate(at % (len + 1)),
            _ => {}
        }
    }
    data
}

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = seeds_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|path| std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
        .collect();
    assert!(
        seeds.len() >= 4,
        "{} holds at least four seeds",
        dir.display()
    );
    seeds
}
