//! Stable-toolchain smoke run of the exchange-layer fuzz entry points (`fuzz/src/exchange.rs`):
//! the seeds, their truncations, and mutated inputs must never panic.

#[allow(unreachable_pub)] // the shared fuzz entry points are `pub` for cargo-fuzz
#[path = "../../../fuzz/src/exchange.rs"]
mod exchange;

use proptest::prelude::*;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn seeds_and_their_truncations_never_panic() {
    for (target, run) in [
        ("globalconf", exchange::globalconf as fn(&[u8])),
        ("signed_message", exchange::signed_message),
        ("batch_signature", exchange::batch_signature),
        ("tsa_request", exchange::timestamp_token),
    ] {
        let inputs = seeds(target);
        assert!(
            !inputs.is_empty() || target == "batch_signature",
            "seeds for {target}"
        );
        for input in inputs {
            for end in 0..=input.len() {
                run(&input[..end]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn mutated_inputs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), flip in any::<usize>()) {
        let mut message = seeds("signed_message").into_iter().next().unwrap_or_default();
        if !message.is_empty() {
            let at = flip % message.len();
            message[at] ^= bytes.first().copied().unwrap_or(1) | 1;
        }
        exchange::signed_message(&message);
        exchange::signed_message(&bytes);
        exchange::globalconf(&bytes);
        exchange::batch_signature(&bytes);
        exchange::timestamp_token(&bytes);
    }
}
