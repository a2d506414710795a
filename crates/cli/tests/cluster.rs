//! A gateway cluster on PostgreSQL: the provider's gateway runs as two `lienthong gateway
//! serve` processes (nodes) sharing its identity and one PostgreSQL database (catalog,
//! replay memory, message log, operational monitoring); the global configuration lists
//! both nodes' addresses. A steady stream of requests goes through the client gateway
//! while the node serving it is SIGKILLed and restarted.

mod common;

use common::{CLIENT, GatewayProcess, PROVIDER, config, lienthong, path, text};
use lienthong_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// One request of the stream.
#[derive(Debug, Clone)]
struct Sent {
    id: String,
    started: Instant,
    ended: Instant,
    status: Option<u16>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_node_killed_mid_stream_loses_no_acknowledged_exchange() {
    let postgres = lienthong_testkit::PgServer::shared().expect("PostgreSQL");
    let database = postgres.create_database("cluster_log").expect("database");
    let dir = tempfile::tempdir().expect("dir");
    let federation = common::federation(&dir).await;

    // Two nodes of the provider's gateway: the demo's configuration on PostgreSQL, and a
    // copy with its own listeners and state directory.
    let node_a = config(&federation, PROVIDER);
    let toml = std::fs::read_to_string(&node_a).expect("read the provider's config");
    let toml = set(&toml, "database_url", &database);
    std::fs::write(&node_a, &toml).expect("write node A's config");
    let peer_a = value(&toml, "peer_listen");
    let (peer_b, admin_b) = (free_address(), free_address());
    let node_b = node_a.with_file_name("node-b.toml");
    let toml_b = set(
        &set(
            &set(
                &set(&toml, "peer_listen", &peer_b),
                "admin_listen",
                &admin_b,
            ),
            "client_listen",
            &free_address(),
        ),
        "state_dir",
        "state-b",
    );
    std::fs::write(&node_b, toml_b).expect("write node B's config");
    let server: lienthong_model::ServerId = value(&toml, "server_id").parse().expect("server id");
    federation
        .registry
        .set_gateway_address(&server, &format!("{peer_a},{peer_b}"))
        .await
        .expect("register both nodes");
    federation
        .registry
        .publish(common_now())
        .await
        .expect("publish the configuration");

    let admin_a = common::admin_url(&federation, PROVIDER);
    let admin_b = format!("http://{admin_b}");
    let mut nodes = [
        Some(GatewayProcess::start_node(&federation, &node_a, "node-a", &admin_a).await),
        Some(GatewayProcess::start_node(&federation, &node_b, "node-b", &admin_b).await),
    ];
    let _client = GatewayProcess::start(&federation, CLIENT).await;
    let sample = federation.endpoint("provider_backend_url");
    lienthong_federation::register_services(
        &admin_a,
        &federation.endpoint("admin_token"),
        sample.trim_end_matches("/persons"),
    )
    .await
    .expect("register the services (at node A; node B reloads them from the store)");
    tokio::time::sleep(Duration::from_secs(6)).await;

    // The stream: four workers, each sending GETs one after the other.
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (sent, stop, http) = (sent.clone(), stop.clone(), http.clone());
        let federation_endpoints = (
            federation.endpoint("client_gateway_url"),
            federation.endpoint("service_path"),
        );
        workers.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("cluster-{worker}-{n}");
                n += 1;
                let started = Instant::now();
                let status = get(&http, &federation_endpoints, &id).await;
                sent.lock().await.push(Sent {
                    id,
                    started,
                    ended: Instant::now(),
                    status,
                });
            }
        });
    }
    let answered = || async {
        sent.lock()
            .await
            .iter()
            .filter(|s| s.status == Some(200))
            .count()
    };
    wait_until(|| async { answered().await >= 60 }).await;

    // Kill the node that has been serving (the client gateway keeps one HTTP/2 connection).
    let served = [
        provider_exchanges(&admin_a).await,
        provider_exchanges(&admin_b).await,
    ];
    let victim = usize::from(served[1] > served[0]);
    let survivor = 1 - victim;
    let admins = [admin_a.clone(), admin_b.clone()];
    println!(
        "before the kill: node A served {}, node B {}",
        served[0], served[1]
    );
    let killed_at = Instant::now();
    if let Some(mut node) = nodes[victim].take() {
        node.kill();
    }
    let at_kill = answered().await;
    let survivor_before = provider_exchanges(&admins[survivor]).await;
    wait_until(|| async { answered().await >= at_kill + 60 }).await;
    let survivor_after = provider_exchanges(&admins[survivor]).await;

    // Restart the killed node; the stream goes on.
    let restarted = if victim == 0 {
        GatewayProcess::start_node(&federation, &node_a, "node-a-again", &admin_a).await
    } else {
        GatewayProcess::start_node(&federation, &node_b, "node-b-again", &admin_b).await
    };
    nodes[victim] = Some(restarted);
    let at_restart = answered().await;
    wait_until(|| async { answered().await >= at_restart + 30 }).await;

    // A rolling restart under load: each node in turn gets SIGTERM (drains: finishes what
    // it has, stops accepting), exits, and starts again; no exchange may fail meanwhile.
    let rolling_from = sent.lock().await.len();
    for (index, (config, admin)) in [(&node_a, &admin_a), (&node_b, &admin_b)]
        .into_iter()
        .enumerate()
    {
        if let Some(mut node) = nodes[index].take() {
            node.terminate();
        }
        let before = answered().await;
        wait_until(|| async { answered().await >= before + 20 }).await;
        let name = format!("rolling-{}", ["a", "b"][index]);
        nodes[index] = Some(GatewayProcess::start_node(&federation, config, &name, admin).await);
        let before = answered().await;
        wait_until(|| async { answered().await >= before + 20 }).await;
    }
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}

    let sent = sent.lock().await.clone();
    let in_flight: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.started <= killed_at && s.ended >= killed_at)
        .collect();
    println!(
        "{} requests sent; {} answered 200; node {} killed with {} in flight:",
        sent.len(),
        sent.iter().filter(|s| s.status == Some(200)).count(),
        ["A", "B"][victim],
        in_flight.len()
    );
    for s in &in_flight {
        println!(
            "  {}: {}",
            s.id,
            match s.status {
                Some(200) => "answered 200 (finished before the kill, or resent by the client gateway to the surviving node)".to_owned(),
                Some(other) => format!("answered {other} (reported to the client)"),
                None => "no answer".to_owned(),
            }
        );
    }
    let failed: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status != Some(200) && !in_flight.iter().any(|f| f.id == s.id))
        .collect();
    assert!(
        failed.is_empty(),
        "requests not in flight at the kill failed: {failed:?}"
    );
    let rolling_failed: Vec<&Sent> = sent[rolling_from..]
        .iter()
        .filter(|s| s.status != Some(200))
        .collect();
    println!(
        "rolling restart of both nodes: {} requests, {} failed",
        sent.len() - rolling_from,
        rolling_failed.len()
    );
    assert!(
        rolling_failed.is_empty(),
        "exchanges failed during the rolling restart: {rolling_failed:?}"
    );
    assert!(
        survivor_after > survivor_before,
        "the stream continued on the other node ({survivor_before} -> {survivor_after})"
    );

    // Every acknowledged exchange is in the shared log, and the log verifies end to end.
    let store = Store::open(&database).await.expect("open the shared store");
    let log = server.to_string();
    for s in sent.iter().filter(|s| s.status == Some(200)) {
        let found = store
            .ledger()
            .find_by_message_id(&log, &s.id)
            .await
            .expect("query the log");
        assert!(
            !found.is_empty(),
            "{} was answered but is not in the shared log",
            s.id
        );
    }
    let audit = lienthong(&["log", "audit", "--config", path(&node_b)]);
    assert!(
        audit.status.success(),
        "audit of the shared log: {}",
        text(&audit)
    );
    let client_audit = common::audit(&federation, CLIENT);
    assert!(
        client_audit.0,
        "audit of the client's log: {}",
        client_audit.1
    );
}

async fn get(
    http: &reqwest::Client,
    (gateway, service): &(String, String),
    id: &str,
) -> Option<u16> {
    let response = http
        .get(format!("{gateway}{service}/001099012345"))
        .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
        .header("X-Road-Id", id)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    response.bytes().await.ok()?;
    Some(status)
}

/// Exchanges served so far by the node whose admin API is at `admin` (its metrics).
async fn provider_exchanges(admin: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{admin}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("lienthong_gateway_exchanges_total{") && l.contains("side=\"provider\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |total, n| total + n)
}

async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stream made no progress for a minute");
}

/// `key = "value"` in a TOML text.
fn value(toml: &str, key: &str) -> String {
    toml.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} in the gateway's config"))
        .to_owned()
}

/// `toml` with `key`'s value replaced.
fn set(toml: &str, key: &str, new: &str) -> String {
    let old = format!("{key} = \"{}\"", value(toml, key));
    toml.replacen(&old, &format!("{key} = \"{new}\""), 1)
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

fn common_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
