//! The message log as an operator and an auditor meet it, with the gateways as separate
//! processes: bodies kept in clear and encrypted, exported evidence verified offline,
//! tampering in a gateway's database found and named by `lienthong verify` and
//! `lienthong log audit`, and no acknowledged exchange lost when a gateway is SIGKILLed.

mod common;

use common::*;
use lienthong_federation::{CLIENT_SUBSYSTEM, Federation, PROVIDER_SUBSYSTEM};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The client gateway keeps bodies in clear, the provider's encrypted to the provider's
/// key (whose private half the gateway never sees).
fn keep_bodies(federation: &Federation) -> std::path::PathBuf {
    let secret = lienthong_crypto::BoxSecretKey::generate().expect("body key");
    let key_file = federation.dir.join("provider-bodies.key");
    std::fs::write(&key_file, secret.to_pem().as_bytes()).expect("write the private key");
    std::fs::write(
        federation.dir.join(PROVIDER).join("bodies.pub"),
        secret.public_key().expect("public key").to_pem(),
    )
    .expect("write the public key");
    configure(
        federation,
        CLIENT,
        &format!("\n[[subsystem]]\nid = \"{CLIENT_SUBSYSTEM}\"\nmessage_body_logging = \"full\"\n"),
    );
    configure(
        federation,
        PROVIDER,
        &format!(
            "\n[[subsystem]]\nid = \"{PROVIDER_SUBSYSTEM}\"\nmessage_body_logging = \"encrypted\"\nbody_encryption_key = \"bodies.pub\"\n"
        ),
    );
    key_file
}

/// One way of altering the database, by name.
type Tamper<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// Whether `lienthong verify` printed a line `MARK CHECK: ...` holding `detail` (an empty
/// `check` matches any check).
fn has(out: &str, mark: &str, check: &str, detail: &str) -> bool {
    out.lines().any(|line| {
        line.strip_prefix(mark).is_some_and(|rest| {
            rest.trim_start().starts_with(check) && rest.contains(':') && line.contains(detail)
        })
    })
}

/// Change one character of the JSON string field `field` of record `index` of gateway
/// `name`'s log, in its database: the value stays well-formed, only different. The record
/// is written back in the plain stored form (its JSON, values kept once by reference),
/// which the store reads as it reads the compact form it writes.
fn alter_record_field(federation: &Federation, name: &str, index: u64, field: &str) {
    let hex = sql(
        federation,
        name,
        &format!("SELECT hex(record) FROM ledger_records WHERE idx = {index};"),
    );
    let mut record = lienthong_store::plain_stored_form(&hex::decode(&hex).expect("hex"))
        .expect("a readable stored record");
    let marker = format!("\"{field}\":\"");
    let start = record
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the field")
        + marker.len();
    let end = start
        + record[start..]
            .iter()
            .position(|&b| b == b'"')
            .expect("the end of the value");
    // A character in the middle of the value, to another of the same class.
    let at = (start + end) / 2;
    record[at] = match record[at] {
        b @ b'a'..=b'y' | b @ b'A'..=b'Y' | b @ b'0'..=b'8' => b + 1,
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        // Base64's other two characters (a signature's middle may be either).
        b'+' => b'/',
        b'/' => b'+',
        other => panic!("unexpected character {other} in {field}"),
    };
    sql(
        federation,
        name,
        &format!(
            "UPDATE ledger_records SET record = X'{}' WHERE idx = {index};",
            hex::encode(&record)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_evidence_and_tampering_through_the_gateways() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let body_key = keep_bodies(&federation);
    let (mut client, mut provider) = start_gateways(&federation).await;
    let http = reqwest::Client::new();
    let ids = ["tamper-0", "tamper-1", "tamper-2", "tamper-3"];
    for id in ids {
        assert_eq!(exchange(&http, &federation, id).await, Some(200), "{id}");
    }

    // Exported evidence verifies offline; the client gateway's carries the bodies in
    // clear, the provider's encrypted: not checked without the member's key, checked with.
    let work = dir.path();
    let client_bundle = work.join("client.asice");
    export(&federation, CLIENT, ids[2], &client_bundle);
    let (ok, out) = verify(&federation, CLIENT, &client_bundle, &[]);
    assert!(ok, "{out}");
    assert!(has(&out, "PASS", "body", "the response body"), "{out}");
    let provider_bundle = work.join("provider.asice");
    export(&federation, PROVIDER, ids[2], &provider_bundle);
    let (ok, out) = verify(&federation, PROVIDER, &provider_bundle, &[]);
    assert!(
        !ok,
        "an encrypted body is not checked without the key: {out}"
    );
    assert!(has(&out, "NOT CHECKED", "body", "encrypted"), "{out}");
    let (ok, out) = verify(
        &federation,
        PROVIDER,
        &provider_bundle,
        &["--body-key", path(&body_key)],
    );
    assert!(ok, "{out}");
    assert!(has(&out, "PASS", "body", "the response body"), "{out}");
    let other_key = lienthong_crypto::BoxSecretKey::generate().expect("key");
    let other_key_file = work.join("other.key");
    std::fs::write(&other_key_file, other_key.to_pem().as_bytes()).expect("write");
    let (ok, _) = verify(
        &federation,
        PROVIDER,
        &provider_bundle,
        &["--body-key", path(&other_key_file)],
    );
    assert!(!ok, "another key opens nothing");
    // The gateway itself cannot read what it logged: the stored body is ciphertext.
    let stored = sql(
        &federation,
        PROVIDER,
        "SELECT hex(response) FROM ledger_bodies WHERE idx = 2;",
    );
    let stored = String::from_utf8_lossy(&hex::decode(stored).expect("hex")).into_owned();
    assert!(
        !stored.contains("Nguy"),
        "the provider's log holds no clear body"
    );
    for name in [CLIENT, PROVIDER] {
        let (ok, out) = audit(&federation, name);
        assert!(ok, "{name}: {out}");
    }

    // Tampering in the client gateway's database, one record at a time: a byte of a
    // record, of a signature, of a body. The audit fails and names the record.
    client.kill();
    provider.kill();
    let backup = work.join("client-backup.db");
    sql(&federation, CLIENT, &format!(".backup '{}'", path(&backup)));
    let restore = || {
        sql(
            &federation,
            CLIENT,
            &format!(".restore '{}'", path(&backup)),
        )
    };
    let tampers: [Tamper<'_>; 3] = [
        (
            "record",
            Box::new(|| alter_record_field(&federation, CLIENT, 1, "service")),
        ),
        (
            "signature",
            Box::new(|| alter_record_field(&federation, CLIENT, 1, "request_signature")),
        ),
        (
            "body",
            Box::new(|| {
                sql(
                    &federation,
                    CLIENT,
                    "UPDATE ledger_bodies SET response = CAST(replace(CAST(response AS TEXT), 'Nguy', 'Mguy') AS BLOB) WHERE idx = 1;",
                );
            }),
        ),
    ];
    for (what, tamper) in &tampers {
        tamper();
        let (ok, out) = audit(&federation, CLIENT);
        assert!(!ok, "altered {what} not found: {out}");
        assert!(
            out.contains("record 1 (message \"tamper-1\")"),
            "altered {what}: the audit names the record: {out}"
        );
        restore();
    }
    drop(tampers);
    let (ok, out) = audit(&federation, CLIENT);
    assert!(ok, "restored: {out}");

    // The tree's frontier kept beside a head (where a restarted gateway's first seal goes
    // on from): the audit checks it against the head's root.
    sql(
        &federation,
        CLIENT,
        "UPDATE ledger_heads SET frontier = zeroblob(length(frontier)) WHERE frontier IS NOT NULL;",
    );
    let (ok, out) = audit(&federation, CLIENT);
    assert!(!ok, "altered frontier not found: {out}");
    assert!(
        out.contains("the frontier kept beside the tree head of size"),
        "{out}"
    );
    restore();

    // A certificate or OCSP response as stored, once for all the records that carry it
    // (the store's `pack.rs`): reading those records fails, and the audit says why.
    sql(
        &federation,
        CLIENT,
        "UPDATE ledger_blobs SET content = CAST(replace(CAST(content AS TEXT), 'A', 'B') AS BLOB);",
    );
    let (ok, out) = audit(&federation, CLIENT);
    assert!(!ok, "altered stored value not found: {out}");
    assert!(out.contains("does not match its hash"), "{out}");
    restore();

    // The same alterations, on three records at once, seen in exported evidence.
    alter_record_field(&federation, CLIENT, 0, "service");
    alter_record_field(&federation, CLIENT, 1, "request_signature");
    sql(
        &federation,
        CLIENT,
        "UPDATE ledger_bodies SET response = CAST(replace(CAST(response AS TEXT), 'Nguy', 'Mguy') AS BLOB) WHERE idx = 2;",
    );
    let mut client = GatewayProcess::start(&federation, CLIENT).await;
    for (index, failing) in [(0, "inclusion"), (1, "request-signature"), (2, "body")] {
        let bundle = work.join(format!("tampered-{index}.asice"));
        export(&federation, CLIENT, ids[index], &bundle);
        let (ok, out) = verify(&federation, CLIENT, &bundle, &[]);
        assert!(!ok, "{out}");
        assert!(
            has(&out, "FAIL", failing, ""),
            "record {index}: {failing} fails: {out}"
        );
        assert!(
            has(&out, "FAIL", "", &format!("{:?}", ids[index])),
            "record {index}: the verdict names the message: {out}"
        );
    }
    client.kill();
    restore();

    // Deleting a record is found; deleting it and renumbering the rest (rewriting
    // history) breaks consistency with the signed heads.
    sql(
        &federation,
        CLIENT,
        "DELETE FROM ledger_records WHERE idx = 1;",
    );
    let (ok, out) = audit(&federation, CLIENT);
    assert!(!ok && out.contains("record 1 is missing"), "{out}");
    sql(
        &federation,
        CLIENT,
        "UPDATE ledger_records SET idx = -idx WHERE idx > 1; \
         UPDATE ledger_records SET idx = -idx - 1 WHERE idx < 0; \
         DELETE FROM ledger_bodies WHERE idx = 1; \
         UPDATE ledger_bodies SET idx = -idx WHERE idx > 1; \
         UPDATE ledger_bodies SET idx = -idx - 1 WHERE idx < 0; \
         UPDATE ledger_logs SET size = size - 1;",
    );
    let (ok, out) = audit(&federation, CLIENT);
    assert!(!ok, "history rewritten: {out}");
    assert!(
        out.contains("tree head"),
        "the signed head no longer matches the records: {out}"
    );
    federation.stop().await;
}

/// Requests from `workers` loops until `stop`; the ids whose answer (200) reached us.
fn stream(
    federation: &Arc<Federation>,
    workers: usize,
    prefix: &'static str,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<Vec<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let federation = federation.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut answered = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("{prefix}-{worker}-{n}");
                n += 1;
                match exchange(&http, &federation, &id).await {
                    Some(200) => answered.push(id),
                    // The gateway is down or refused: nothing acknowledged.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            answered
        });
    }
    tasks
}

/// Wait until the stream has had `count` answers more than `before` (as the provider's
/// sample system counts them), at most 60 s.
async fn wait_for_answers(federation: &Federation, before: u64, count: u64) {
    for _ in 0..600 {
        if federation.served.load(Ordering::SeqCst) >= before + count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stream made no progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_exchange_survives_a_sigkill() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = Arc::new(federation(&dir).await);
    let (mut client, mut provider) = start_gateways(&federation).await;
    let mut answered = BTreeSet::new();

    for (victim, prefix) in [(PROVIDER, "kill-provider"), (CLIENT, "kill-client")] {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = stream(&federation, 4, prefix, &stop);
        wait_for_answers(&federation, federation.served.load(Ordering::SeqCst), 30).await;
        // SIGKILL mid-stream: requests are in flight at both gateways.
        if victim == PROVIDER {
            provider.kill();
        } else {
            client.kill();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if victim == PROVIDER {
            provider = GatewayProcess::start(&federation, PROVIDER).await;
        } else {
            client = GatewayProcess::start(&federation, CLIENT).await;
        }
        wait_for_answers(&federation, federation.served.load(Ordering::SeqCst), 10).await;
        stop.store(true, Ordering::SeqCst);
        while let Some(ids) = tasks.join_next().await {
            answered.extend(ids.expect("a stream worker"));
        }
    }
    client.kill();
    provider.kill();

    // Every answer that reached the client has its record at both gateways.
    assert!(answered.len() >= 80, "{} answers", answered.len());
    for name in [CLIENT, PROVIDER] {
        let store = lienthong_store::Store::open(&format!(
            "sqlite://{}",
            database(&federation, name).display()
        ))
        .await
        .expect("open the gateway's store");
        let config =
            lienthong_gateway::config::Config::load(&config(&federation, name)).expect("config");
        let log = config.server_id.to_string();
        let mut missing = Vec::new();
        for id in &answered {
            if store
                .ledger()
                .find_by_message_id(&log, id)
                .await
                .expect("find")
                .is_empty()
            {
                missing.push(id.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "{name} lost acknowledged records: {missing:?}"
        );
        let (ok, out) = audit(&federation, name);
        assert!(ok, "{name}: {out}");
    }
}
