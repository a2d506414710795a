//! The storage contract, written once and run against both backends.
//!
//! Each test is an async function below, over a [`Store`] or, when it must open the same
//! database again, over a [`Database`]. `for_both_backends!` at the end runs every one on
//! a fresh SQLite file and on a fresh database of the throwaway PostgreSQL server that
//! `lienthong-testkit` starts for this test binary (tests that only hold for PostgreSQL
//! are listed apart). No PostgreSQL means failed tests, never skipped ones.

use lienthong_store::{CertificateRecord, Revocation, RevokeOutcome, Store, StoreError};
use lienthong_testkit::PgServer;
use tokio::task::JoinSet;

// --- Certificates -------------------------------------------------------------------------

async fn certificates_round_trip(store: &Store) {
    let pki = store.pki();
    let newer = certificate("0a1b", 2_000);
    let older = CertificateRecord {
        identity: None,
        der: (0..=255).collect(),
        ..certificate("ff00", 1_000)
    };
    pki.insert_certificate(&newer).await.expect("insert");
    pki.insert_certificate(&older).await.expect("insert");

    assert_eq!(
        pki.certificate("0a1b").await.expect("read"),
        Some(newer.clone())
    );
    assert_eq!(
        pki.certificate("ff00").await.expect("read"),
        Some(older.clone())
    );
    assert_eq!(pki.certificate("0bad").await.expect("read"), None);
    assert_eq!(
        pki.certificates().await.expect("list"),
        [older, newer],
        "oldest first"
    );
}

async fn duplicate_serial_is_rejected(store: &Store) {
    let pki = store.pki();
    let first = certificate("01", 1_000);
    pki.insert_certificate(&first).await.expect("insert");

    let second = CertificateRecord {
        subject: "CN=impostor".to_owned(),
        ..certificate("01", 2_000)
    };
    let error = pki
        .insert_certificate(&second)
        .await
        .expect_err("duplicate serial");
    assert!(matches!(error, StoreError::Duplicate { .. }), "{error:?}");
    assert_eq!(pki.certificate("01").await.expect("read"), Some(first));
}

async fn first_revocation_stands(store: &Store) {
    let pki = store.pki();
    pki.insert_certificate(&certificate("02", 1_000))
        .await
        .expect("insert");
    let first = Revocation {
        time: 5_000,
        reason: Some("keyCompromise".to_owned()),
    };
    let second = Revocation {
        time: 6_000,
        reason: None,
    };

    assert_eq!(
        pki.revoke("02", &first).await.expect("revoke"),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        pki.revoke("02", &second).await.expect("revoke again"),
        RevokeOutcome::AlreadyRevoked(first.clone())
    );
    let stored = pki.certificate("02").await.expect("read").expect("present");
    assert_eq!(stored.revocation, Some(first));
    assert_eq!(
        pki.revoke("03", &second).await.expect("revoke unknown"),
        RevokeOutcome::NotFound
    );
    assert_eq!(
        pki.certificate("03").await.expect("read"),
        None,
        "revoking must not create"
    );

    // A record may arrive already revoked (an import); it reads back as such.
    let imported = CertificateRecord {
        revocation: Some(Revocation {
            time: 7_000,
            reason: Some("superseded".to_owned()),
        }),
        ..certificate("04", 1_000)
    };
    pki.insert_certificate(&imported)
        .await
        .expect("insert revoked");
    assert_eq!(pki.certificate("04").await.expect("read"), Some(imported));
}

// --- Counters -----------------------------------------------------------------------------

async fn counters_hand_out_consecutive_ranges(store: &Store) {
    let pki = store.pki();
    assert_eq!(pki.counter("serial").await.expect("counter"), 0);
    assert_eq!(pki.reserve("serial", 1).await.expect("reserve"), 1);
    assert_eq!(pki.reserve("serial", 10).await.expect("reserve"), 2);
    assert_eq!(pki.reserve("serial", 1).await.expect("reserve"), 12);
    assert_eq!(pki.counter("serial").await.expect("counter"), 12);

    assert_eq!(
        pki.reserve("ocsp", 3).await.expect("reserve"),
        1,
        "counters are independent"
    );
    assert_eq!(pki.counter("serial").await.expect("counter"), 12);

    for count in [0, -1] {
        pki.reserve("serial", count)
            .await
            .expect_err("an empty range is refused");
    }
    assert_eq!(pki.counter("serial").await.expect("counter"), 12);
}

async fn counters_survive_reopening(database: &Database) {
    let store = database.open().await;
    assert_eq!(store.pki().reserve("serial", 5).await.expect("reserve"), 1);
    store
        .pki()
        .insert_certificate(&certificate("05", 1_000))
        .await
        .expect("insert");
    drop(store);

    let store = database.open().await;
    assert_eq!(store.pki().counter("serial").await.expect("counter"), 5);
    assert_eq!(store.pki().reserve("serial", 1).await.expect("reserve"), 6);
    assert!(store.pki().certificate("05").await.expect("read").is_some());
}

async fn concurrent_reservations_never_overlap(store: &Store) {
    let total = reserve_concurrently(std::slice::from_ref(store)).await;
    assert_eq!(store.pki().counter("serial").await.expect("counter"), total);
}

/// Two `Store` handles on one database: two nodes sharing a CA.
async fn two_nodes_never_share_a_value(database: &Database) {
    let nodes = [database.open().await, database.open().await];
    let total = reserve_concurrently(&nodes).await;
    for node in &nodes {
        assert_eq!(node.pki().counter("serial").await.expect("counter"), total);
    }
}

/// Tasks spread over `stores` reserve ranges of one counter at the same time; the ranges
/// must tile 1..=total exactly, without gap or overlap. Returns the total.
async fn reserve_concurrently(stores: &[Store]) -> i64 {
    const TASKS: usize = 8;
    const RESERVATIONS: usize = 50;
    let mut tasks = JoinSet::new();
    for (task, store) in stores.iter().cycle().take(TASKS).enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let mut ranges = Vec::with_capacity(RESERVATIONS);
            for reservation in 0..RESERVATIONS {
                let count = i64::try_from(1 + (task + reservation) % 3).expect("small");
                let first = store.pki().reserve("serial", count).await.expect("reserve");
                ranges.push((first, count));
            }
            ranges
        });
    }
    let mut ranges = Vec::with_capacity(TASKS * RESERVATIONS);
    while let Some(task) = tasks.join_next().await {
        ranges.extend(task.expect("reservation task"));
    }
    ranges.sort_unstable();
    let mut next = 1;
    for (first, count) in ranges {
        assert_eq!(first, next, "a value was skipped or handed out twice");
        next = first + count;
    }
    next - 1
}

// --- Settings -----------------------------------------------------------------------------

async fn settings_are_upserted(store: &Store) {
    let pki = store.pki();
    assert_eq!(pki.setting("ca.name").await.expect("read"), None);
    pki.put_setting("ca.name", "Lien thong CA")
        .await
        .expect("insert");
    assert_eq!(
        pki.setting("ca.name").await.expect("read").as_deref(),
        Some("Lien thong CA")
    );
    pki.put_setting("ca.name", "Liên thông CA 2")
        .await
        .expect("replace");
    assert_eq!(
        pki.setting("ca.name").await.expect("read").as_deref(),
        Some("Liên thông CA 2")
    );
    assert_eq!(pki.setting("ca.other").await.expect("read"), None);
}

// --- Migrations ---------------------------------------------------------------------------

async fn migrations_are_idempotent(database: &Database) {
    let first = database.open().await;
    first.pki().put_setting("kept", "yes").await.expect("write");
    // Again while the first handle is open, then again after it is gone.
    let second = database.open().await;
    assert_eq!(
        second.pki().setting("kept").await.expect("read").as_deref(),
        Some("yes")
    );
    drop((first, second));
    let third = database.open().await;
    assert_eq!(
        third.pki().setting("kept").await.expect("read").as_deref(),
        Some("yes")
    );
}

/// The replay memory: each key is new once, whoever asks; old keys are forgotten.
async fn replay_memory_accepts_each_key_once(store: &Store) {
    let replay = store.replay();
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert_eq!(
        replay
            .remember_messages(&[(a, 1_000), (b, 2_000), (a, 1_000)])
            .await
            .expect("remember"),
        [true, true, false]
    );
    assert_eq!(
        replay
            .remember_messages(&[(b, 2_000), (c, 3_000)])
            .await
            .expect("remember"),
        [false, true]
    );
    assert_eq!(
        replay.forget_messages_before(2_500).await.expect("forget"),
        2
    );
    assert_eq!(
        replay
            .remember_messages(&[(a, 9_000)])
            .await
            .expect("remember"),
        [true]
    );
    assert!(
        replay
            .remember_messages(&[])
            .await
            .expect("empty")
            .is_empty()
    );
}

/// Two nodes racing to accept the same messages: each message is accepted exactly once.
async fn two_nodes_share_replay_memory(database: &Database) {
    let nodes = [database.open().await, database.open().await];
    let keys: Vec<[u8; 32]> = (0u8..40).map(|i| [i; 32]).collect();
    let mut tasks = JoinSet::new();
    for node in nodes.iter().cycle().take(4) {
        let node = node.clone();
        let keys = keys.clone();
        tasks.spawn(async move {
            let mut accepted = 0;
            for chunk in keys.chunks(5) {
                let batch: Vec<_> = chunk.iter().map(|k| (*k, 1_000)).collect();
                let fresh = node
                    .replay()
                    .remember_messages(&batch)
                    .await
                    .expect("remember");
                accepted += fresh.iter().filter(|f| **f).count();
            }
            accepted
        });
    }
    let mut total = 0;
    while let Some(accepted) = tasks.join_next().await {
        total += accepted.expect("task");
    }
    assert_eq!(total, keys.len(), "every message accepted exactly once");
}

/// Nodes of a cluster start together against a database nobody has migrated yet.
async fn racing_first_opens_both_succeed(database: &Database) {
    let mut opens = JoinSet::new();
    for _ in 0..2 {
        let url = database.url.clone();
        opens.spawn(async move { Store::open(&url).await });
    }
    let mut firsts = Vec::new();
    while let Some(opened) = opens.join_next().await {
        let store = opened.expect("open task").expect("racing open");
        firsts.push(store.pki().reserve("serial", 1).await.expect("reserve"));
    }
    firsts.sort_unstable();
    assert_eq!(firsts, [1, 2]);
}

// --- Fixtures -----------------------------------------------------------------------------

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

/// A certificate record with plausible values; `serial` also sets its subject.
fn certificate(serial: &str, issued_at: i64) -> CertificateRecord {
    CertificateRecord {
        serial: serial.to_owned(),
        profile: "auth".to_owned(),
        subject: format!("CN=Cổng dữ liệu {serial},O=Bộ Tài chính,C=VN"),
        identity: Some("VN/GOV/000-00-00-H01/cong-du-lieu".to_owned()),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x2a],
        not_before: issued_at,
        not_after: issued_at + 365 * 86_400,
        issued_at,
        revocation: None,
    }
}

/// One module per backend, each with one `#[tokio::test]` per contract test above.
macro_rules! for_both_backends {
    (
        stores: [$($store_test:ident),* $(,)?],
        databases: [$($database_test:ident),* $(,)?],
        postgres_only: [$($postgres_test:ident),* $(,)?] $(,)?
    ) => {
        for_both_backends!(@backend sqlite, [$($store_test),*], [$($database_test),*]);
        for_both_backends!(@backend postgres, [$($store_test),*], [$($database_test),* $(, $postgres_test)*]);
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
        certificates_round_trip,
        duplicate_serial_is_rejected,
        first_revocation_stands,
        counters_hand_out_consecutive_ranges,
        concurrent_reservations_never_overlap,
        settings_are_upserted,
        replay_memory_accepts_each_key_once,
    ],
    databases: [
        counters_survive_reopening,
        two_nodes_never_share_a_value,
        migrations_are_idempotent,
        racing_first_opens_both_succeed,
        two_nodes_share_replay_memory,
    ],
    postgres_only: [],
}
