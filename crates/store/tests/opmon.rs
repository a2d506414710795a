//! The operational-monitoring storage contract, run against both backends like `suite.rs`:
//! records round-trip, filters by gateway, time range, client and service, paging, and the
//! retention purge.

use lienthong_store::{OpQuery, OpRecord, Store};
use lienthong_testkit::PgServer;

const GW: &str = "VN/GOV/000101/gw1";

async fn records_round_trip(store: &Store) {
    let opmon = store.opmon();
    let full = OpRecord {
        client_server: Some(GW.into()),
        service_server: Some("VN/GOV/000202/gw1".into()),
        request_out: Some(1_010),
        response_in: Some(1_020),
        request_size: Some(12),
        response_size: Some(3_400),
        status: Some(200),
        ..record("m1", "VN/GOV/000101/a", "VN/GOV/000202/reg/persons", 1_000)
    };
    let failed = OpRecord {
        succeeded: false,
        status: Some(500),
        fault_code: Some("Server.ClientProxy.NetworkError".into()),
        fault_string: Some("no provider gateway could be reached".into()),
        ..record("m2", "VN/GOV/000101/b", "VN/GOV/000202/reg/persons", 1_001)
    };
    opmon
        .insert_op_records(&[full.clone(), failed.clone()])
        .await
        .expect("insert");
    opmon.insert_op_records(&[]).await.expect("insert nothing");
    let stored = opmon.op_records(&query()).await.expect("read");
    assert_eq!(
        stored.iter().map(|s| &s.record).collect::<Vec<_>>(),
        [&full, &failed]
    );
    assert!(stored[0].id < stored[1].id, "ids increase");
}

async fn queries_filter(store: &Store) {
    let opmon = store.opmon();
    let a = "VN/GOV/000101/a";
    let b = "VN/GOV/000101/b";
    let persons = "VN/GOV/000202/reg/persons";
    let digest = "VN/GOV/000202/reg/digest";
    opmon
        .insert_op_records(&[
            record("1", a, persons, 1_000),
            record("2", b, persons, 2_000),
            record("3", a, digest, 3_000),
            record("4", b, digest, 4_000),
            OpRecord {
                server_id: "another/gateway".into(),
                ..record("5", a, persons, 2_500)
            },
        ])
        .await
        .expect("insert");
    let ids = |records: Vec<lienthong_store::StoredOpRecord>| {
        records
            .into_iter()
            .map(|r| r.record.message_id)
            .collect::<Vec<_>>()
    };
    let read = |q: OpQuery| async move { ids(opmon.op_records(&q).await.expect("read")) };
    assert_eq!(
        read(query()).await,
        ["1", "2", "3", "4"],
        "this gateway only"
    );
    assert_eq!(
        read(OpQuery {
            client: Some(a.into()),
            ..query()
        })
        .await,
        ["1", "3"]
    );
    assert_eq!(
        read(OpQuery {
            service: Some(digest.into()),
            ..query()
        })
        .await,
        ["3", "4"]
    );
    assert_eq!(
        read(OpQuery {
            from: Some(2_000),
            to: Some(4_000),
            ..query()
        })
        .await,
        ["2", "3"],
        "from inclusive, to exclusive"
    );
    assert_eq!(
        read(OpQuery {
            client: Some(b.into()),
            service: Some(persons.into()),
            ..query()
        })
        .await,
        ["2"]
    );
    assert_eq!(
        read(OpQuery {
            limit: 2,
            ..query()
        })
        .await,
        ["1", "2"]
    );
    let first_two = opmon
        .op_records(&OpQuery {
            limit: 2,
            ..query()
        })
        .await
        .expect("read");
    assert_eq!(
        read(OpQuery {
            after: Some(first_two[1].id),
            ..query()
        })
        .await,
        ["3", "4"],
        "paging"
    );
}

async fn purge_removes_old_records(store: &Store) {
    let opmon = store.opmon();
    let client = "VN/GOV/000101/a";
    let service = "VN/GOV/000202/reg/persons";
    opmon
        .insert_op_records(&[
            record("old", client, service, 1_000),
            OpRecord {
                server_id: "another/gateway".into(),
                ..record("old-elsewhere", client, service, 1_500)
            },
            record("new", client, service, 5_000),
        ])
        .await
        .expect("insert");
    assert_eq!(
        opmon.delete_op_records_before(2_000).await.expect("purge"),
        2
    );
    assert_eq!(
        opmon.delete_op_records_before(2_000).await.expect("purge"),
        0
    );
    let left = opmon.op_records(&query()).await.expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].record.message_id, "new");
}

fn query() -> OpQuery {
    OpQuery {
        server_id: GW.into(),
        limit: 100,
        ..OpQuery::default()
    }
}

fn record(message_id: &str, client: &str, service: &str, request_in: i64) -> OpRecord {
    OpRecord {
        server_id: GW.into(),
        side: "client".into(),
        message_id: message_id.into(),
        client: client.into(),
        service: service.into(),
        client_server: None,
        service_server: None,
        user_id: "EE1234".into(),
        issue: "case 7".into(),
        represented_party: String::new(),
        service_type: "REST".into(),
        method: "GET".into(),
        path: "/persons/1".into(),
        request_in,
        request_out: None,
        response_in: None,
        response_out: request_in + 50,
        request_size: None,
        response_size: None,
        status: None,
        succeeded: true,
        fault_code: None,
        fault_string: None,
    }
}

/// One module per backend, each with one `#[tokio::test]` per contract test above.
macro_rules! for_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = tempfile::tempdir().expect("create a temporary directory");
                    let url = format!("sqlite://{}", dir.path().join("store.db").display());
                    super::$test(&lienthong_store::Store::open(&url).await.expect("open")).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = super::PgServer::shared().expect("start PostgreSQL (see lienthong-testkit)");
                    let url = server
                        .create_database(concat!("opmon_", stringify!($test)))
                        .expect("create a test database");
                    super::$test(&lienthong_store::Store::open(&url).await.expect("open")).await;
                }
            )*
        }
    };
}

for_both_backends!(
    records_round_trip,
    queries_filter,
    purge_removes_old_records
);
