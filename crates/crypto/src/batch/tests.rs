//! Tests of batch signing: the text form, signing and verifying batches, the verifier's
//! memory, and the batching task under concurrency.

use super::*;
use crate::SoftwareKey;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

/// The SHA-256 digest of a test message.
fn digest(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_be_bytes()).into()
}

fn key(suite: Suite) -> SoftwareKey {
    SoftwareKey::generate(suite).expect("generate key").0
}

/// A signer wrapping a software key that counts its signatures and behaves like a slow,
/// blocked or broken HSM.
#[derive(Debug)]
struct TestSigner {
    key: SoftwareKey,
    behaviour: Behaviour,
    calls: AtomicUsize,
}

#[derive(Debug)]
enum Behaviour {
    /// Sleep this long per signature.
    Slow(Duration),
    /// Announce each signature on `started`, then wait until `gate` yields or closes.
    Gated {
        started: mpsc::UnboundedSender<()>,
        gate: Mutex<std::sync::mpsc::Receiver<()>>,
    },
    /// Always fail.
    Failing,
}

impl TestSigner {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            key: key(Suite::Ed25519),
            behaviour,
            calls: AtomicUsize::new(0),
        })
    }

    /// A gated signer, the receiver of its announcements and the gate (drop it to open).
    fn gated() -> (
        Arc<Self>,
        mpsc::UnboundedReceiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started, announcements) = mpsc::unbounded_channel();
        let (gate_opener, gate) = std::sync::mpsc::channel();
        let signer = Self::new(Behaviour::Gated {
            started,
            gate: Mutex::new(gate),
        });
        (signer, announcements, gate_opener)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Signer for TestSigner {
    fn suite(&self) -> Suite {
        self.key.suite()
    }
    fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<crate::Signature, CryptoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.behaviour {
            Behaviour::Slow(delay) => std::thread::sleep(*delay),
            Behaviour::Gated { started, gate } => {
                let _ = started.send(());
                // An error means the gate was dropped: open for good.
                let _ = gate.lock().expect("gate lock").recv();
            }
            Behaviour::Failing => return Err(CryptoError::Backend("hsm offline")),
        }
        self.key.sign(message)
    }
}

/// Yield to other tasks until `done` holds, for at most 10,000 turns (no clock involved).
async fn yield_until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    assert!(done(), "condition not reached");
}

#[test]
fn every_message_of_a_batch_verifies_only_with_its_own_digest() {
    let key = key(Suite::EcdsaP256Sha256);
    let digests: Vec<[u8; 32]> = (0..7).map(digest).collect();
    let signatures = sign_batch(&key, &digests).expect("sign");
    assert_eq!(signatures.len(), 7);
    let verifier = BatchVerifier::new(0);
    for (i, signature) in signatures.iter().enumerate() {
        assert_eq!(signature.batch_size, 7);
        assert_eq!(signature.index as usize, i);
        assert_eq!(signature.suite, Suite::EcdsaP256Sha256);
        verifier
            .verify(key.public_key(), &digests[i], signature)
            .expect("own digest verifies");
        for (j, other) in digests.iter().enumerate() {
            if i != j {
                assert!(matches!(
                    verifier.verify(key.public_key(), other, signature),
                    Err(CryptoError::BadSignature)
                ));
            }
        }
    }
}

#[test]
fn a_batch_of_one_is_a_tree_of_one_leaf() {
    let key = key(Suite::Ed25519);
    let signatures = sign_batch(&key, &[digest(1)]).expect("sign");
    let [signature] = signatures.as_slice() else {
        panic!("one signature expected");
    };
    assert_eq!((signature.batch_size, signature.index), (1, 0));
    assert!(signature.path.is_empty());
    // The key signed the domain-separated size and root; the root is the leaf itself.
    let message = [
        SIGNED_PREFIX,
        &1u32.to_be_bytes(),
        &merkle::leaf_hash(&digest(1)),
    ]
    .concat();
    key.public_key()
        .verify_x509(signature.suite.x509(), &message, &signature.root_signature)
        .expect("signed message is as documented");
    assert!(sign_batch(&key, &[]).expect("nothing to sign").is_empty());
}

#[test]
fn tampering_with_any_field_fails() {
    let key = key(Suite::EcdsaP256Sha256);
    let digests: Vec<[u8; 32]> = (0..6).map(digest).collect();
    let signatures = sign_batch(&key, &digests).expect("sign");
    let (good, target) = (&signatures[4], &digests[4]);
    let verifier = BatchVerifier::new(16);
    verifier
        .verify(key.public_key(), target, good)
        .expect("untampered verifies");

    let mut tampered = Vec::new();
    for index in [0, 1, 2, 3, 5, 6, u32::MAX] {
        tampered.push(BatchSignature {
            index,
            ..good.clone()
        });
    }
    for batch_size in [0, 1, 4, 5, 7, 8, u32::MAX] {
        tampered.push(BatchSignature {
            batch_size,
            ..good.clone()
        });
    }
    for byte in 0..good.root_signature.len() {
        let mut signature = good.clone();
        signature.root_signature[byte] ^= 0x01;
        tampered.push(signature);
    }
    for hash in 0..good.path.len() {
        let mut signature = good.clone();
        signature.path[hash][31] ^= 0x80;
        tampered.push(signature);
        let mut signature = good.clone();
        signature.path.remove(hash);
        tampered.push(signature);
    }
    let mut longer = good.clone();
    longer.path.push([0; 32]);
    tampered.push(longer);
    let mut swapped = good.clone();
    swapped.path.swap(0, 1);
    tampered.push(swapped);

    for signature in &tampered {
        assert!(
            matches!(
                verifier.verify(key.public_key(), target, signature),
                Err(CryptoError::BadSignature)
            ),
            "{signature:?} must not verify"
        );
    }
    let other_suite = BatchSignature {
        suite: Suite::EcdsaP384Sha384,
        ..good.clone()
    };
    assert!(
        verifier
            .verify(key.public_key(), target, &other_suite)
            .is_err()
    );
    let other_key = self::key(Suite::EcdsaP256Sha256);
    assert!(matches!(
        verifier.verify(other_key.public_key(), target, good),
        Err(CryptoError::BadSignature)
    ));
}

#[test]
fn long_inputs_are_split_into_batches_of_at_most_max_batch() {
    let key = key(Suite::Ed25519);
    let digests: Vec<[u8; 32]> = (0..MAX_BATCH as u64 + 2).map(digest).collect();
    let signatures = sign_batch(&key, &digests).expect("sign");
    assert_eq!(signatures.len(), digests.len());
    let verifier = BatchVerifier::new(8);
    for i in [0, 1, MAX_BATCH - 1, MAX_BATCH, MAX_BATCH + 1] {
        let expected = if i < MAX_BATCH {
            (MAX_BATCH as u32, i as u32, 16)
        } else {
            (2, (i - MAX_BATCH) as u32, 1)
        };
        let signature = &signatures[i];
        assert_eq!(
            (signature.batch_size, signature.index, signature.path.len()),
            expected
        );
        verifier
            .verify(key.public_key(), &digests[i], signature)
            .expect("verifies");
    }
    assert_eq!(verifier.stats().signature_checks, 2);
}

#[test]
fn the_signed_size_binds_paths_that_fit_several_sizes() {
    // Leaf 0's path in a tree of 4 leads to the same root read as a tree of 3, and leaf 2's
    // path in a tree of 3 fits leaf 1 of a tree of 2: only the signed size tells them apart.
    let key = key(Suite::Ed25519);
    let verifier = BatchVerifier::new(8);
    for (size, index, other_size, other_index) in [(4, 0, 3, 0), (3, 2, 2, 1)] {
        let digests: Vec<[u8; 32]> = (0..size).map(digest).collect();
        let signature = &sign_batch(&key, &digests).expect("sign")[index];
        let leaf = merkle::leaf_hash(&digests[index]);
        let root_as_signed =
            merkle::root_from_inclusion_proof(&leaf, index as u64, size, &signature.path);
        let root_as_presented =
            merkle::root_from_inclusion_proof(&leaf, other_index, other_size, &signature.path);
        assert!(root_as_signed.is_some());
        assert_eq!(root_as_signed, root_as_presented);
        let presented = BatchSignature {
            batch_size: other_size as u32,
            index: other_index as u32,
            ..signature.clone()
        };
        verifier
            .verify(key.public_key(), &digests[index], signature)
            .expect("verifies as signed");
        assert!(matches!(
            verifier.verify(key.public_key(), &digests[index], &presented),
            Err(CryptoError::BadSignature)
        ));
    }
}

#[test]
fn verified_root_signatures_are_remembered_and_not_checked_again() {
    let key = key(Suite::Ed25519);
    let digests: Vec<[u8; 32]> = (0..3).map(digest).collect();
    let signatures = sign_batch(&key, &digests).expect("sign");
    let verifier = BatchVerifier::new(8);
    for (digest, signature) in digests.iter().zip(&signatures) {
        verifier
            .verify(key.public_key(), digest, signature)
            .expect("verifies");
    }
    assert_eq!(
        verifier.stats(),
        BatchVerifierStats {
            signature_checks: 1,
            cache_hits: 2
        }
    );
    // A remembered root does not let a wrong digest, path or key through.
    assert!(
        verifier
            .verify(key.public_key(), &digest(99), &signatures[0])
            .is_err()
    );
    let mut bad_path = signatures[1].clone();
    bad_path.path[0][0] ^= 1;
    assert!(
        verifier
            .verify(key.public_key(), &digests[1], &bad_path)
            .is_err()
    );
    let other_key = self::key(Suite::Ed25519);
    assert!(
        verifier
            .verify(other_key.public_key(), &digests[0], &signatures[0])
            .is_err()
    );
    assert_eq!(verifier.stats().cache_hits, 2);
}

#[test]
fn failed_verifications_are_never_remembered() {
    let key = key(Suite::Ed25519);
    let digests = [digest(1), digest(2)];
    let signatures = sign_batch(&key, &digests).expect("sign");
    let mut forged = signatures[0].clone();
    forged.root_signature[0] ^= 1;
    let verifier = BatchVerifier::new(8);
    for _ in 0..2 {
        assert!(
            verifier
                .verify(key.public_key(), &digests[0], &forged)
                .is_err()
        );
    }
    assert_eq!(
        verifier.stats(),
        BatchVerifierStats {
            signature_checks: 2,
            cache_hits: 0
        }
    );
}

#[test]
fn the_memory_is_bounded_and_forgets_the_oldest() {
    let key = key(Suite::Ed25519);
    let batches: Vec<Vec<BatchSignature>> = (0..3)
        .map(|i| sign_batch(&key, &[digest(i)]).expect("sign"))
        .collect();
    let verify = |verifier: &BatchVerifier, i: usize| {
        verifier
            .verify(key.public_key(), &digest(i as u64), &batches[i][0])
            .expect("verifies");
    };
    let verifier = BatchVerifier::new(2);
    for i in [0, 1, 2, 2, 1] {
        verify(&verifier, i);
    }
    assert_eq!(verifier.stats().signature_checks, 3);
    verify(&verifier, 0);
    assert_eq!(verifier.stats().signature_checks, 4, "0 was forgotten");

    let forgetful = BatchVerifier::new(0);
    verify(&forgetful, 0);
    verify(&forgetful, 0);
    assert_eq!(forgetful.stats().signature_checks, 2);
}

#[test]
fn text_form_round_trips() {
    let key = key(Suite::EcdsaP256Sha256);
    let digests: Vec<[u8; 32]> = (0..5).map(digest).collect();
    for signature in sign_batch(&key, &digests).expect("sign") {
        let text = signature.to_text();
        assert!(text.starts_with("v1;ecdsa-p256-sha256;5;"), "{text}");
        assert_eq!(BatchSignature::from_text(&text), Ok(signature));
    }
    let single = &sign_batch(&key, &digests[..1]).expect("sign")[0];
    assert!(
        single.to_text().ends_with(';'),
        "a batch of one has an empty path"
    );
    assert_eq!(
        BatchSignature::from_text(&single.to_text()).as_ref(),
        Ok(single)
    );
}

#[test]
fn text_form_is_parsed_strictly() {
    let path = STANDARD.encode([7u8; 64]);
    let good = format!("v1;ed25519;3;1;AAAA;{path}");
    assert!(BatchSignature::from_text(&good).is_ok());
    let cases = [
        (String::new(), "expected 6 fields separated by ';'"),
        (format!("{good};"), "expected 6 fields separated by ';'"),
        (
            "v1;ed25519;3;1;AAAA".into(),
            "expected 6 fields separated by ';'",
        ),
        (
            good.replacen("v1", "v2", 1),
            "unknown version (expected v1)",
        ),
        (
            good.replacen("ed25519", "md5", 1),
            "unknown signature suite",
        ),
        (good.replacen(";3;", ";03;", 1), "batch size is not a u32"),
        (good.replacen(";3;", ";+3;", 1), "batch size is not a u32"),
        (good.replacen(";3;", "; 3;", 1), "batch size is not a u32"),
        (
            good.replacen(";3;", ";4294967296;", 1),
            "batch size is not a u32",
        ),
        (good.replacen(";1;", ";-1;", 1), "index is not a u32"),
        (
            good.replacen(";3;1;", ";3;3;", 1),
            "index is not below the batch size",
        ),
        (
            good.replacen(";3;1;", ";0;0;", 1),
            "index is not below the batch size",
        ),
        (
            good.replacen("AAAA", "AAA", 1),
            "signature is not canonical base64",
        ),
        (
            good.replacen("AAAA", "AAB=", 1),
            "signature is not canonical base64",
        ),
        (good.replacen("AAAA", "", 1), "signature is empty"),
        (format!("{good}A"), "path is not canonical base64"),
        (
            good.replacen(";3;1;", ";5;1;", 1),
            "path length does not match the index and batch size",
        ),
        (
            good.replacen(";3;1;", ";3;2;", 1),
            "path length does not match the index and batch size",
        ),
        ("v1;ed25519;3;1;AAAA;".repeat(500), "longer than 8192 bytes"),
    ];
    for (text, reason) in cases {
        assert_eq!(
            BatchSignature::from_text(&text).map_err(|e| e.reason()),
            Err(reason),
            "{text:?}"
        );
    }
}

proptest! {
    #[test]
    fn from_text_never_panics(text in ".{0,300}") {
        let _ = BatchSignature::from_text(&text);
    }

    #[test]
    fn parsed_text_is_the_canonical_text(
        batch_size in 1u32..=u32::MAX,
        index_seed in any::<u32>(),
        signature in proptest::collection::vec(any::<u8>(), 1..100),
        hash_seed in any::<u8>(),
        edit_at in any::<usize>(),
        edit in any::<char>(),
    ) {
        let index = index_seed % batch_size;
        let path_len = merkle::inclusion_proof_len(index.into(), batch_size.into())
            .expect("index below size");
        let original = BatchSignature {
            suite: Suite::Ed25519,
            root_signature: signature,
            batch_size,
            index,
            path: (0..path_len).map(|i| [hash_seed.wrapping_add(i as u8); 32]).collect(),
        };
        let text = original.to_text();
        prop_assert_eq!(BatchSignature::from_text(&text), Ok(original));
        // Change one character: the result is refused, or it is a different signature
        // whose own text form is exactly the edited text.
        let mut chars: Vec<char> = text.chars().collect();
        let at = edit_at % chars.len();
        chars[at] = edit;
        let edited: String = chars.into_iter().collect();
        if let Ok(parsed) = BatchSignature::from_text(&edited) {
            prop_assert_eq!(parsed.to_text(), edited);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_to_a_slow_signer_share_signatures() {
    let signer = TestSigner::new(Behaviour::Slow(Duration::from_millis(20)));
    let batch_signer = BatchSigner::spawn(signer.clone(), 64);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let batch_signer = batch_signer.clone();
        tasks.spawn(async move { (i, batch_signer.sign(digest(i)).await) });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, signature) = joined.expect("task ran");
        results.push((i, signature.expect("signed")));
    }

    let stats = batch_signer.stats();
    assert_eq!(stats.messages_signed, 100);
    assert_eq!(stats.batches_signed, signer.calls() as u64);
    // The first request may be signed alone; the rest queue behind its 20 ms signature.
    assert!(
        stats.batches_signed < stats.messages_signed,
        "{stats:?}: requests were not batched"
    );
    let verifier = BatchVerifier::new(64);
    let public_key = batch_signer.public_key();
    for (i, signature) in &results {
        assert!(signature.batch_size <= 64);
        verifier
            .verify(public_key, &digest(*i), signature)
            .expect("verifies");
    }
    assert_eq!(
        verifier.stats(),
        BatchVerifierStats {
            signature_checks: stats.batches_signed,
            cache_hits: 100 - stats.batches_signed,
        }
    );
    for (i, signature) in &results {
        assert!(matches!(
            verifier.verify(public_key, &digest(i + 1000), signature),
            Err(CryptoError::BadSignature)
        ));
    }
}

#[tokio::test]
async fn requests_queued_during_a_signature_form_the_next_batch() {
    let (signer, mut started, gate) = TestSigner::gated();
    let batch_signer = BatchSigner::spawn(signer.clone(), 64);
    let first = tokio::spawn({
        let batch_signer = batch_signer.clone();
        async move { batch_signer.sign(digest(0)).await }
    });
    started.recv().await.expect("first signature started");
    let mut rest = Vec::new();
    for i in 1..=10 {
        let batch_signer = batch_signer.clone();
        rest.push(tokio::spawn(
            async move { batch_signer.sign(digest(i)).await },
        ));
    }
    yield_until(|| batch_signer.stats().queued == 10).await;
    drop(gate);

    let first = first.await.expect("task ran").expect("signed");
    assert_eq!((first.batch_size, first.index), (1, 0));
    let mut indexes = Vec::new();
    for (i, task) in (1..).zip(rest) {
        let signature = task.await.expect("task ran").expect("signed");
        assert_eq!(signature.batch_size, 10);
        BatchVerifier::new(0)
            .verify(batch_signer.public_key(), &digest(i), &signature)
            .expect("verifies");
        indexes.push(signature.index);
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..10).collect::<Vec<u32>>());
    assert_eq!(
        (
            batch_signer.stats().batches_signed,
            batch_signer.stats().messages_signed
        ),
        (2, 11)
    );
    assert_eq!(signer.calls(), 2);
}

#[tokio::test]
async fn batches_never_exceed_max_batch() {
    let (signer, mut started, gate) = TestSigner::gated();
    let batch_signer = BatchSigner::spawn(signer.clone(), 4);
    let mut tasks = Vec::new();
    for i in 0..11 {
        let batch_signer = batch_signer.clone();
        tasks.push(tokio::spawn(
            async move { batch_signer.sign(digest(i)).await },
        ));
    }
    started.recv().await.expect("first signature started");
    yield_until(|| batch_signer.stats().queued == 4).await;
    drop(gate);
    for task in tasks {
        let signature = task.await.expect("task ran").expect("signed");
        assert!(signature.batch_size <= 4, "{signature:?}");
    }
    let stats = batch_signer.stats();
    assert_eq!(stats.messages_signed, 11);
    assert!(stats.batches_signed >= 3, "{stats:?}");
}

#[tokio::test]
async fn a_signing_failure_reaches_every_caller_of_the_batch() {
    let signer = TestSigner::new(Behaviour::Failing);
    let batch_signer = BatchSigner::spawn(signer, 8);
    let mut tasks = Vec::new();
    for i in 0..5 {
        let batch_signer = batch_signer.clone();
        tasks.push(tokio::spawn(
            async move { batch_signer.sign(digest(i)).await },
        ));
    }
    for task in tasks {
        assert!(matches!(
            task.await.expect("task ran"),
            Err(CryptoError::Backend("hsm offline"))
        ));
    }
    assert_eq!(batch_signer.stats().batches_signed, 0);
}

#[tokio::test]
async fn the_task_ends_when_the_last_handle_is_dropped() {
    let signer: Arc<dyn Signer> = Arc::new(key(Suite::Ed25519));
    let weak = Arc::downgrade(&signer);
    let batch_signer = BatchSigner::spawn(signer, 8);
    let other_handle = batch_signer.clone();
    let signature = batch_signer.sign(digest(1)).await.expect("signed");
    BatchVerifier::new(0)
        .verify(batch_signer.public_key(), &digest(1), &signature)
        .expect("verifies");
    drop(batch_signer);
    other_handle
        .sign(digest(2))
        .await
        .expect("the task serves the remaining handle");
    drop(other_handle);
    yield_until(|| weak.strong_count() == 0).await;
}

/// Software ECDSA and Ed25519 keys sign on the batching task itself; RSA and anything that
/// does not say otherwise (an HSM) go to a blocking thread. Both paths give signatures that
/// verify.
#[tokio::test]
async fn quick_keys_sign_inline_and_slow_ones_off_the_async_threads() {
    for (suite, quick) in [
        (Suite::EcdsaP256Sha256, true),
        (Suite::Ed25519, true),
        (Suite::RsaPssSha256, false),
    ] {
        let signer: Arc<dyn Signer> = Arc::new(key(suite));
        assert_eq!(signer.signs_in_microseconds(), quick, "{suite:?}");
        let batch_signer = BatchSigner::spawn(signer, 8);
        let signature = batch_signer.sign(digest(7)).await.expect("signed");
        BatchVerifier::new(0)
            .verify(batch_signer.public_key(), &digest(7), &signature)
            .expect("verifies");
    }
    assert!(!TestSigner::new(Behaviour::Failing).signs_in_microseconds());
}

/// A gathering signer whose owner is `busy`, waiting `wait`, over a quick key.
fn gathering(busy: bool, wait: Duration, max_batch: usize) -> BatchSigner {
    BatchSigner::spawn_gathering(
        Arc::new(key(Suite::Ed25519)),
        max_batch,
        Some(Gather {
            busy: Arc::new(move || busy),
            wait,
        }),
    )
}

/// Not busy: a lone request is signed at once (the paused clock does not move).
#[tokio::test(start_paused = true)]
async fn an_idle_gatherer_signs_at_once() {
    let signer = gathering(false, Duration::from_secs(3600), 8);
    let started = tokio::time::Instant::now();
    signer.sign(digest(1)).await.expect("signed");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// Signs `digest(n)` after yielding to the runtime `n - 1` times: a task that is ready to
/// run but asks later than the first.
fn sign_after_yields(signer: &BatchSigner, n: u64) -> tokio::task::JoinHandle<BatchSignature> {
    let signer = signer.clone();
    tokio::spawn(async move {
        for _ in 1..n {
            tokio::task::yield_now().await;
        }
        signer.sign(digest(n)).await.expect("signed")
    })
}

/// Busy: the requests of tasks that are ready to run, made while the batch gathers, share
/// its one signature; no timer is waited on (the paused clock does not move).
#[tokio::test(start_paused = true)]
async fn a_busy_gatherer_takes_the_requests_of_ready_tasks_into_its_batch() {
    let signer = gathering(true, Duration::from_secs(3600), 8);
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (1..=3).map(|n| sign_after_yields(&signer, n)).collect();
    let mut signatures = Vec::new();
    for task in tasks {
        signatures.push(task.await.expect("task ran"));
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(
        signatures.iter().all(|s| s.batch_size == 3),
        "{signatures:?}"
    );
    let stats = signer.stats();
    assert_eq!((stats.batches_signed, stats.messages_signed), (1, 3));
    let verifier = BatchVerifier::new(8);
    for (n, signature) in (1..=3).zip(&signatures) {
        verifier
            .verify(signer.public_key(), &digest(n), signature)
            .expect("verifies");
    }
    assert_eq!(
        verifier.stats(),
        BatchVerifierStats {
            signature_checks: 1,
            cache_hits: 2
        }
    );
}

/// Busy, but nothing else is on its way: the lone request is signed after a few task
/// switches, not after `wait`; a request made later starts a batch of its own.
#[tokio::test(start_paused = true)]
async fn a_busy_gatherer_does_not_wait_for_requests_not_on_their_way() {
    let signer = gathering(true, Duration::from_secs(3600), 8);
    let started = tokio::time::Instant::now();
    let first = signer.sign(digest(1)).await.expect("signed");
    assert_eq!(started.elapsed(), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let second = signer.sign(digest(2)).await.expect("signed");
    assert_eq!((first.batch_size, second.batch_size), (1, 1));
    assert_eq!(signer.stats().batches_signed, 2);
}

/// Gathering ends when `wait` has passed: with none, a batch holds what was queued when
/// it was taken, and a request that was still on its way is signed in the next.
#[tokio::test(start_paused = true)]
async fn a_gatherer_gathers_no_longer_than_its_wait() {
    let signer = gathering(true, Duration::ZERO, 8);
    let tasks: Vec<_> = (1..=2).map(|n| sign_after_yields(&signer, n)).collect();
    let mut sizes = Vec::new();
    for task in tasks {
        sizes.push(task.await.expect("task ran").batch_size);
    }
    assert_eq!(sizes, [1, 1]);
    assert_eq!(signer.stats().batches_signed, 2);
}

/// Busy, but the batch fills: it is signed then, without waiting out `wait`.
#[tokio::test(start_paused = true)]
async fn a_full_batch_is_signed_without_waiting() {
    let signer = gathering(true, Duration::from_secs(3600), 2);
    let started = tokio::time::Instant::now();
    let (a, b) = tokio::join!(signer.sign(digest(1)), signer.sign(digest(2)));
    assert_eq!(
        (a.expect("signed").batch_size, b.expect("signed").batch_size),
        (2, 2)
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// Poll `future` once, with a waker that does nothing: its output if it was ready at once.
fn ready_at_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// A quick key with nothing else to sign signs on the caller's own poll, in a batch of one
/// that verifies and is counted; a busy owner's request goes to the task (it is not ready
/// on its first poll) and batches there.
#[tokio::test]
async fn an_idle_quick_signer_signs_alone_on_the_callers_poll() {
    let busy = Arc::new(AtomicBool::new(false));
    let owner_busy = busy.clone();
    let signer = BatchSigner::spawn_gathering(
        Arc::new(key(Suite::EcdsaP256Sha256)),
        8,
        Some(Gather {
            busy: Arc::new(move || owner_busy.load(Ordering::SeqCst)),
            wait: Duration::ZERO,
        }),
    );
    let alone = ready_at_once(signer.sign(digest(1)))
        .expect("signed on the first poll")
        .expect("signed");
    assert_eq!((alone.batch_size, alone.index), (1, 0));
    BatchVerifier::new(0)
        .verify(signer.public_key(), &digest(1), &alone)
        .expect("verifies");
    assert_eq!(
        (
            signer.stats().batches_signed,
            signer.stats().messages_signed
        ),
        (1, 1)
    );

    busy.store(true, Ordering::SeqCst);
    assert!(
        ready_at_once(signer.sign(digest(2))).is_none(),
        "a busy owner's request is the task's"
    );
    let queued = signer.sign(digest(2)).await.expect("signed by the task");
    BatchVerifier::new(0)
        .verify(signer.public_key(), &digest(2), &queued)
        .expect("verifies");
}

/// While another caller is active (waiting for the task, or being signed), a new request
/// does not sign alone: it joins the queue, so that requests that meet still share a
/// signature. Every caller counts as active only while it is inside `sign`.
#[tokio::test(flavor = "current_thread")]
async fn a_request_that_finds_another_caller_active_queues() {
    let signer = BatchSigner::spawn(Arc::new(key(Suite::Ed25519)), 8);
    let active = || signer.counters.active.load(Ordering::Acquire);
    signer.counters.active.fetch_add(1, Ordering::AcqRel); // another caller, by hand
    assert!(ready_at_once(signer.sign(digest(1))).is_none());
    assert_eq!(active(), 1, "the withdrawn request is no longer active");
    let queued = signer.sign(digest(2)).await.expect("signed by the task");
    assert_eq!(queued.batch_size, 1);
    signer.counters.active.fetch_sub(1, Ordering::AcqRel);
    assert_eq!(active(), 0);
    assert!(
        ready_at_once(signer.sign(digest(3))).is_some(),
        "idle again"
    );
    assert_eq!(active(), 0);
}

/// A slow key (an HSM, RSA) never signs on the caller's thread, however idle.
#[tokio::test]
async fn a_slow_key_never_signs_alone() {
    let slow = TestSigner::new(Behaviour::Slow(Duration::from_millis(1)));
    let signer = BatchSigner::spawn(slow.clone(), 8);
    assert!(ready_at_once(signer.sign(digest(1))).is_none());
    signer.sign(digest(1)).await.expect("signed by the task");
    assert_eq!(slow.calls(), 1);
}
