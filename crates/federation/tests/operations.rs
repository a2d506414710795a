//! Operating a gateway: the health probe and each of its failing checks (maintenance mode,
//! expired configuration, stale or bad certificate status, store down) and its recovery,
//! the liveness probe, and `/metrics` in the Prometheus text format counting real exchanges.

mod common;

use common::*;
use lienthong_federation::{CLIENT_SUBSYSTEM, PROVIDER_SUBSYSTEM, UNAUTHORIZED_SUBSYSTEM};
use serde_json::Value;

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("the admin listener answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// `/metrics`, checked line by line and parsed with a Prometheus text-format parser.
async fn scrape(admin: &str) -> Vec<prometheus_parse::Sample> {
    let response = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    for line in text.lines() {
        assert!(
            !matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Ignored | prometheus_parse::LineInfo::Empty
            ),
            "not a Prometheus text-format line: {line:?}"
        );
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses")
        .samples
}

/// The value of the sample `metric` whose labels include `labels` (0 if absent).
fn value(samples: &[prometheus_parse::Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn exchange(federation: &lienthong_federation::Federation, client: &str) -> (u16, String) {
    let (status, error, _) = exchange_as(federation, client, None).await;
    (status, error)
}

async fn set_maintenance(admin: &str, token: Option<&str>, enabled: bool) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{admin}/api/v1/maintenance"))
        .json(&serde_json::json!({ "enabled": enabled }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .expect("maintenance call")
        .status()
        .as_u16()
}

fn failing(report: &Value) -> Vec<String> {
    report["checks"]
        .as_object()
        .expect("checks")
        .iter()
        .filter(|(_, check)| check["ok"] != Value::Bool(true))
        .map(|(name, _)| name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_maintenance_and_metrics() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let client_admin = federation.endpoint("client_gateway_admin_url");
    let provider_admin = federation.endpoint("provider_gateway_admin_url");
    let token = federation.endpoint("admin_token");

    // Liveness and health, without a token.
    for admin in [&client_admin, &provider_admin] {
        let (status, live) = get_json(&format!("{admin}/live")).await;
        assert_eq!((status, live["status"].as_str()), (200, Some("alive")));
        let (status, report) = get_json(&format!("{admin}/health")).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["status"], "ok");
        let mut names: Vec<_> = report["checks"]
            .as_object()
            .expect("checks")
            .keys()
            .cloned()
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "certificates",
                "configuration",
                "keys",
                "maintenance",
                "store"
            ]
        );
        assert!(failing(&report).is_empty(), "{report}");
    }

    // A real exchange is counted at both gateways, by client, service and outcome.
    let service = format!("{PROVIDER_SUBSYSTEM}/persons");
    let ok = |side| {
        [
            ("side", side),
            ("client", CLIENT_SUBSYSTEM),
            ("service", service.as_str()),
            ("outcome", "ok"),
        ]
    };
    let exchanges = "lienthong_gateway_exchanges_total";
    let client_before = scrape(&client_admin).await;
    let provider_before = scrape(&provider_admin).await;
    assert_eq!(exchange(&federation, CLIENT_SUBSYSTEM).await.0, 200);
    let client_after = scrape(&client_admin).await;
    let provider_after = scrape(&provider_admin).await;
    assert_eq!(
        value(&client_after, exchanges, &ok("client"))
            - value(&client_before, exchanges, &ok("client")),
        1.0
    );
    assert_eq!(
        value(&provider_after, exchanges, &ok("provider"))
            - value(&provider_before, exchanges, &ok("provider")),
        1.0
    );
    // Each stage of that exchange was timed once more.
    let stages = "lienthong_gateway_stage_duration_seconds";
    for (samples_before, samples_after, side, stage) in [
        (&client_before, &client_after, "client", "body_read"),
        (&client_before, &client_after, "client", "signing"),
        (&client_before, &client_after, "client", "peer"),
        (&client_before, &client_after, "client", "log_commit"),
        (&provider_before, &provider_after, "provider", "body_read"),
        (&provider_before, &provider_after, "provider", "provider"),
        (&provider_before, &provider_after, "provider", "signing"),
        (&provider_before, &provider_after, "provider", "log_commit"),
    ] {
        let labels = [("side", side), ("stage", stage)];
        assert_eq!(
            value(samples_after, stages, &labels) - value(samples_before, stages, &labels),
            1.0,
            "{side} {stage}"
        );
    }
    assert!(
        value(
            &client_after,
            "lienthong_gateway_log_commit_batch_records",
            &[]
        ) >= 1.0
    );
    // Its request was signed by the client's member, its answer by the provider's, and
    // each gateway checked the other's signature, with the key or from its memory.
    let delta = |before: &[prometheus_parse::Sample],
                 after: &[prometheus_parse::Sample],
                 metric,
                 labels: &[(&str, &str)]| {
        value(after, metric, labels) - value(before, metric, labels)
    };
    for (before, after, member) in [
        (&client_before, &client_after, "VN/GOV/000101"),
        (&provider_before, &provider_after, "VN/GOV/000202"),
    ] {
        let labels = [("member", member)];
        for metric in [
            "lienthong_gateway_signed_messages_total",
            "lienthong_gateway_signature_batches_total",
        ] {
            assert_eq!(
                delta(before, after, metric, &labels),
                1.0,
                "{member} {metric}"
            );
        }
        assert_eq!(
            delta(
                before,
                after,
                "lienthong_gateway_signature_checks_total",
                &[]
            ) + delta(
                before,
                after,
                "lienthong_gateway_signature_check_cache_hits_total",
                &[]
            ),
            1.0,
            "{member}'s gateway checked the peer's signature once"
        );
    }
    for (kind, id) in [("auth", "VN/GOV/000101/gw1"), ("sign", "VN/GOV/000101")] {
        let labels = [("certificate", kind), ("id", id)];
        let days = value(
            &client_after,
            "lienthong_gateway_certificate_expiry_days",
            &labels,
        );
        assert!(days > 1.0, "{kind} {id}: {days} days left");
        let age = client_after
            .iter()
            .find(|s| {
                s.metric == "lienthong_gateway_ocsp_last_fetch_age_seconds"
                    && s.labels.get("certificate") == Some(kind)
            })
            .map(|s| s.value.clone());
        assert!(
            matches!(age, Some(prometheus_parse::Value::Gauge(v)) if v >= 0.0),
            "{age:?}"
        );
    }
    assert_eq!(
        value(&client_after, "lienthong_gateway_log_queue_depth", &[]),
        0.0
    );
    assert!(value(&client_after, "lienthong_gateway_store_database_bytes", &[]) > 0.0);
    // A refusal is counted with its X-Road error.
    let denied = [
        ("side", "provider"),
        ("client", UNAUTHORIZED_SUBSYSTEM),
        ("outcome", "Server.ServerProxy.AccessDenied"),
    ];
    assert_eq!(
        exchange(&federation, UNAUTHORIZED_SUBSYSTEM).await.1,
        "Server.ServerProxy.AccessDenied"
    );
    assert_eq!(
        value(&scrape(&provider_admin).await, exchanges, &denied),
        1.0
    );

    // Maintenance mode: only with a token; /health says draining; new exchanges get 503.
    assert_eq!(set_maintenance(&client_admin, None, true).await, 401);
    assert_eq!(
        set_maintenance(&client_admin, Some(&token), true).await,
        200
    );
    let (status, report) = get_json(&format!("{client_admin}/health")).await;
    assert_eq!((status, report["status"].as_str()), (503, Some("draining")));
    assert_eq!(failing(&report), ["maintenance"], "{report}");
    let served_before = served(&federation);
    assert_eq!(
        exchange(&federation, CLIENT_SUBSYSTEM).await,
        (503, "Server.ClientProxy.Maintenance".to_owned())
    );
    assert_eq!(
        served(&federation),
        served_before,
        "nothing reached the provider"
    );
    assert_eq!(
        set_maintenance(&client_admin, Some(&token), false).await,
        200
    );
    assert_eq!(get_json(&format!("{client_admin}/health")).await.0, 200);
    // A draining provider gateway refuses peers too, before anything reaches the service.
    assert_eq!(
        set_maintenance(&provider_admin, Some(&token), true).await,
        200
    );
    assert_eq!(
        exchange(&federation, CLIENT_SUBSYSTEM).await,
        (503, "Server.ServerProxy.Maintenance".to_owned())
    );
    assert_eq!(served(&federation), served_before);
    assert_eq!(
        set_maintenance(&provider_admin, Some(&token), false).await,
        200
    );
    assert_eq!(exchange(&federation, CLIENT_SUBSYSTEM).await.0, 200);
    assert_eq!(get_json(&format!("{provider_admin}/health")).await.0, 200);
    // The switch is audited.
    let audit: Vec<Value> = reqwest::Client::new()
        .get(format!("{client_admin}/api/v1/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("JSON");
    let switches: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "POST /api/v1/maintenance")
        .map(|e| e["result"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(switches, ["refused", "ok", "ok"]);
    federation.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_on_expired_configuration_and_stale_or_bad_certificate_status() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let gateway = federation.gateways[0].clone();
    let now = unix_now();
    assert!(gateway.health(now).await.is_ok());

    // Expired configuration: as seen just after its expiry (and nothing else expired yet).
    let expires_at = gateway.conf().current().expect("conf").conf.expires_at;
    let report = gateway.health(expires_at + 1).await;
    assert_eq!(report.status, "fail");
    let configuration = &report.checks["configuration"];
    assert!(!configuration.ok);
    assert!(
        configuration.detail.contains("expired"),
        "{}",
        configuration.detail
    );
    assert!(report.checks["certificates"].ok, "{report:?}");

    // Stale OCSP: the registry shortens the freshness to 60 s; two minutes later the
    // responses in hand are stale while the configuration is still valid.
    let (mut policy, revision) = federation.registry.policy().await.expect("policy");
    policy.ocsp_freshness_seconds = 60;
    federation
        .registry
        .set_policy(policy, revision)
        .await
        .expect("set policy");
    federation
        .registry
        .publish(unix_now())
        .await
        .expect("publish");
    gateway.conf().refresh(unix_now()).await.expect("refresh");
    for _ in 0..200 {
        let adopted = gateway
            .trust()
            .get()
            .is_some_and(|v| v.conf.conf.policy.ocsp_freshness_seconds == 60);
        if adopted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gateway.refresh_certificate_statuses().await;
    let now = unix_now();
    assert!(gateway.health(now).await.is_ok());
    let report = gateway.health(now + 120).await;
    assert_eq!(
        failing(&serde_json::to_value(&report).expect("json")),
        ["certificates"]
    );
    let detail = &report.checks["certificates"].detail;
    assert!(detail.contains("too old"), "{detail}");
    assert!(
        detail.contains("auth certificate") && detail.contains("sign certificate"),
        "{detail}"
    );

    // Bad status now: the member's sign certificate is revoked; the next OCSP refresh
    // makes /health fail, naming it.
    let sign_pem = std::fs::read(federation.dir.join("gw-client/sign.pem")).expect("pem");
    let sign = lienthong_pki::parse_certificate_pem(&sign_pem).expect("certificate");
    let sign = lienthong_pki::CertificateInfo::from_der(&sign).expect("certificate");
    federation
        .authority
        .revoke(
            &sign.serial_hex(),
            Some(lienthong_pki::RevocationReason::KeyCompromise),
            std::time::SystemTime::now(),
        )
        .await
        .expect("revoke");
    gateway.refresh_certificate_statuses().await;
    let (status, report) = get_json(&format!(
        "{}/health",
        federation.endpoint("client_gateway_admin_url")
    ))
    .await;
    assert_eq!((status, report["status"].as_str()), (503, Some("fail")));
    assert_eq!(failing(&report), ["certificates"], "{report}");
    let detail = report["checks"]["certificates"]["detail"]
        .as_str()
        .unwrap_or("");
    assert!(
        detail.contains("sign certificate of VN/GOV/000101: revoked"),
        "{detail}"
    );
    federation.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_while_the_store_does_not_answer_and_recovers() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    // A second node of the provider's gateway, on a PostgreSQL server of its own.
    let server = lienthong_testkit::PgServer::start().expect("PostgreSQL");
    let mut config =
        lienthong_gateway::config::Config::load(&federation.dir.join("gw-provider/gateway.toml"))
            .expect("config");
    config.database_url = server.create_database("gw_health").expect("database");
    config.state_dir = dir.path().join("node2");
    let keys = lienthong_federation::unlock(&config, &federation.passphrase).expect("keys");
    let node = lienthong_gateway::Gateway::start(config, keys)
        .await
        .expect("second node starts");
    let listen = || async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen")
    };
    let admin = listen().await;
    let admin_url = format!("http://{}", admin.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(lienthong_gateway::run(
        node.clone(),
        lienthong_gateway::Listeners {
            client: listen().await,
            client_tls: None,
            peer: listen().await,
            admin,
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let (status, report) = get_json(&format!("{admin_url}/health")).await;
    assert_eq!(status, 200, "{report}");

    let frozen = server.freeze();
    let (status, report) = get_json(&format!("{admin_url}/health")).await;
    assert_eq!((status, report["status"].as_str()), (503, Some("fail")));
    assert_eq!(failing(&report), ["store"], "{report}");
    let detail = report["checks"]["store"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("did not answer"), "{detail}");
    // Liveness does not depend on the store.
    assert_eq!(get_json(&format!("{admin_url}/live")).await.0, 200);

    drop(frozen);
    let mut recovered = None;
    for _ in 0..50 {
        let (status, report) = get_json(&format!("{admin_url}/health")).await;
        if status == 200 {
            recovered = Some(report);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered.is_some(),
        "the store check recovers once the database answers"
    );
    let _ = stop.send(());
    running
        .await
        .expect("join")
        .expect("the node stops cleanly");
    federation.stop().await;
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
