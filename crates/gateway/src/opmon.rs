//! Operational monitoring: one record per exchange at this gateway, client side and
//! producer side, with the fields X-Road's operational monitoring keeps (the four
//! timestamps, message and party ids, method and path, sizes, status, outcome, fault).
//!
//! Records never hold up an exchange: each proxy wraps its exchange in [`client`] or
//! [`producer`], which hands the finished record to a bounded queue without waiting
//! (a full queue drops the record and counts it, see [`OpMonitor::dropped`]); one writer
//! task commits them in batches and purges records older than the retention period.
//! Times the proxies learn deep inside an exchange (request out, response in, the exact
//! body sizes) are noted from the message-log record ([`note_logged`]) into a task-local
//! slot, so the proxies need no other hook.
//!
//! Queries go through the admin API (`GET /api/v1/opmon/records`): the gateway's owner
//! (an admin token) sees every record; a client subsystem, with a client token an owner
//! made for it (`POST /api/v1/client-tokens`), sees only the records whose client it is.

use crate::XRoadError;
use crate::admin::{AdminError, ApiJson, Caller};
use crate::body::GatewayBody;
use crate::gateway::{Gateway, unix_now_ms};
use crate::message::RequestHeader;
use crate::proxy_common::{last_header, parse_r1};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::{Json, Router};
use hyper::body::{Body as _, Incoming};
use hyper::{Request, Response};
use lienthong_model::{ServerId, SubsystemId};
use lienthong_store::{OpQuery, OpRecord, Store, StoreError, StoredOpRecord};
use serde::Deserialize;
use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records waiting for the writer at most; beyond, records are dropped (and counted).
const QUEUE: usize = 16_384;
/// Records committed at most per transaction.
const BATCH: usize = 4096;
/// How often old records are purged.
/// Pause after each write, so that records gather into few transactions. They are not on
/// the exchange's path, and on the embedded store every transaction competes with the
/// message log's commits (which answers wait for) for the database's one write lock.
const GATHER: Duration = Duration::from_millis(250);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Longest identifier or header value kept (they come from clients).
const MAX_FIELD: usize = 255;
/// Longest fault string kept.
const MAX_FAULT: usize = 1000;
/// Most records one query returns.
pub const MAX_LIMIT: i64 = 10_000;

/// A handle to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct OpMonitor {
    queue: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    retention: Duration,
}

#[derive(Debug)]
enum Message {
    Record(Box<OpRecord>),
    Flush(oneshot::Sender<()>),
}

impl OpMonitor {
    /// Start the writer over `store`, purging records older than `retention`.
    pub(crate) fn spawn(store: Store, retention: Duration) -> Self {
        let (queue, mut incoming) = mpsc::channel::<Message>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        tokio::spawn(async move {
            let mut purge = tokio::time::interval(PURGE_EVERY);
            purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                tokio::select! {
                    received = incoming.recv_many(&mut batch, BATCH) => {
                        if received == 0 {
                            return; // every sender is gone: the gateway stopped
                        }
                        let mut records = Vec::with_capacity(batch.len());
                        let mut flushes = Vec::new();
                        for message in batch.drain(..) {
                            match message {
                                Message::Record(record) => records.push(*record),
                                Message::Flush(done) => flushes.push(done),
                            }
                        }
                        if let Err(error) = store.opmon().insert_op_records(&records).await {
                            let count = records.len() as u64;
                            lost.fetch_add(count, Ordering::Relaxed);
                            tracing::error!(%error, records = count, "cannot store op-monitoring records");
                        }
                        let flushing = !flushes.is_empty();
                        for done in flushes {
                            let _ = done.send(());
                        }
                        if !flushing {
                            tokio::time::sleep(GATHER).await;
                        }
                    }
                    _ = purge.tick() => {
                        if let Err(error) = purge_before(&store, retention, unix_now_ms()).await {
                            tracing::warn!(%error, "cannot purge old op-monitoring records");
                        }
                    }
                }
            }
        });
        Self {
            queue,
            dropped,
            retention,
        }
    }

    /// Records lost: dropped because the queue was full, or not stored because the store
    /// failed.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records waiting for the writer.
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Queue `record` without waiting.
    fn submit(&self, record: OpRecord) {
        if self
            .queue
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "op-monitoring queue full or writer stopped: records dropped"
                );
            }
        }
    }
}

/// Wait until every record queued before this call is stored (or failed).
pub async fn flush(gateway: &Gateway) {
    let (done, stored) = oneshot::channel();
    if gateway.opmon.queue.send(Message::Flush(done)).await.is_ok() {
        let _ = stored.await;
    }
}

/// Records lost so far (queue full, or the store failed), for metrics.
pub fn dropped(gateway: &Gateway) -> u64 {
    gateway.opmon.dropped()
}

/// Retention now: delete the records older than the configured period before `now_ms`;
/// returns how many were deleted. (The writer does this every hour.)
pub async fn purge_expired(gateway: &Gateway, now_ms: i64) -> Result<u64, StoreError> {
    purge_before(&gateway.store, gateway.opmon.retention, now_ms).await
}

async fn purge_before(store: &Store, retention: Duration, now_ms: i64) -> Result<u64, StoreError> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let deleted = store
        .opmon()
        .delete_op_records_before(now_ms.saturating_sub(retention_ms))
        .await?;
    if deleted > 0 {
        tracing::info!(deleted, "purged old op-monitoring records");
    }
    Ok(deleted)
}

// --- Recording exchanges -------------------------------------------------------------------

/// What the proxies learn inside an exchange, noted while it runs.
#[derive(Debug, Default)]
struct Notes {
    request_out: Option<i64>,
    response_in: Option<i64>,
    request_size: Option<i64>,
    response_size: Option<i64>,
    /// The provider gateway the client side sent the request to.
    service_server: Option<String>,
    /// The client as verified (producer side, once the signature checked out).
    client: Option<String>,
}

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// The exchange reached its message-log record: note its times and exact body sizes.
pub(crate) fn note_logged(record: &lienthong_ledger::LogRecord) {
    let _ = NOTES.try_with(|notes| {
        let mut notes = notes.borrow_mut();
        notes.request_out = record.request_out;
        notes.response_in = record.response_in;
        fn size(description: &[u8]) -> Option<i64> {
            crate::message::body_length_of(description).and_then(|n| i64::try_from(n).ok())
        }
        notes.request_size = size(&record.request_description);
        notes.response_size = record.response_description.as_deref().and_then(size);
        notes.client = Some(record.client.clone());
    });
}

/// The client side is sending the request to `server`.
pub(crate) fn note_peer(server: &ServerId) {
    let _ = NOTES.try_with(|notes| notes.borrow_mut().service_server = Some(server.to_string()));
}

/// Run the client side's `exchange` of `request` and record it.
pub(crate) async fn client<F, Fut>(
    gateway: &Gateway,
    message_id: &str,
    request: Request<Incoming>,
    exchange: F,
) -> Result<Response<GatewayBody>, XRoadError>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Result<Response<GatewayBody>, XRoadError>>,
{
    let headers = request.headers();
    let header = |name: &str| clip(last_header(headers, name).unwrap_or(""), MAX_FIELD);
    let (service, path) = r1_parts(request.uri().path());
    let record = OpRecord {
        server_id: gateway.server_id().to_string(),
        side: "client".into(),
        message_id: clip(message_id, MAX_FIELD),
        client: header("x-road-client"),
        service_type: service_type(&service),
        service,
        client_server: Some(gateway.server_id().to_string()),
        service_server: None,
        user_id: header("x-road-userid"),
        issue: header("x-road-issue"),
        represented_party: header("x-road-represented-party"),
        method: request.method().to_string(),
        path,
        request_in: unix_now_ms(),
        request_out: None,
        response_in: None,
        response_out: 0,
        request_size: exact_size(request.body().size_hint()),
        response_size: None,
        status: None,
        succeeded: false,
        fault_code: None,
        fault_string: None,
    };
    observe(gateway, record, exchange(request)).await
}

/// Run the producer side's `serve` of `request` from the gateway `peer` and record it;
/// `claimed` is the request's signed description as received (not yet verified: the client
/// id is replaced by the verified one if the exchange gets as far as the message log).
pub(crate) async fn producer<F, Fut>(
    gateway: &Gateway,
    peer: &ServerId,
    claimed: Option<&RequestHeader>,
    request: Request<Incoming>,
    serve: F,
) -> Result<Response<GatewayBody>, XRoadError>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Result<Response<GatewayBody>, XRoadError>>,
{
    let (service, path) = r1_parts(request.uri().path());
    let text = |value: Option<&String>| clip(value.map_or("", String::as_str), MAX_FIELD);
    let record = OpRecord {
        server_id: gateway.server_id().to_string(),
        side: "producer".into(),
        message_id: text(claimed.map(|h| &h.message_id)),
        client: claimed
            .as_ref()
            .map(|h| clip(&h.client.to_string(), MAX_FIELD))
            .unwrap_or_default(),
        service_type: service_type(&service),
        service,
        client_server: Some(peer.to_string()),
        service_server: Some(gateway.server_id().to_string()),
        user_id: text(claimed.map(|h| &h.user_id)),
        issue: text(claimed.map(|h| &h.issue)),
        represented_party: text(claimed.map(|h| &h.represented_party)),
        method: request.method().to_string(),
        path,
        request_in: unix_now_ms(),
        request_out: None,
        response_in: None,
        response_out: 0,
        request_size: claimed
            .as_ref()
            .and_then(|h| i64::try_from(h.body_length).ok()),
        response_size: None,
        status: None,
        succeeded: false,
        fault_code: None,
        fault_string: None,
    };
    observe(gateway, record, serve(request)).await
}

/// Run `exchange` with a notes slot, complete `record` from its outcome and queue it.
async fn observe(
    gateway: &Gateway,
    mut record: OpRecord,
    exchange: impl Future<Output = Result<Response<GatewayBody>, XRoadError>>,
) -> Result<Response<GatewayBody>, XRoadError> {
    let (result, notes) = NOTES
        .scope(RefCell::new(Notes::default()), async {
            let result = exchange.await;
            (result, NOTES.with(|notes| notes.take()))
        })
        .await;
    record.response_out = unix_now_ms();
    record.request_out = notes.request_out;
    record.response_in = notes.response_in;
    record.request_size = notes.request_size.or(record.request_size);
    if let Some(server) = notes.service_server {
        record.service_server = Some(server);
    }
    if let Some(client) = notes.client {
        record.client = clip(&client, MAX_FIELD);
    }
    match &result {
        Ok(response) => {
            record.status = Some(i64::from(response.status().as_u16()));
            record.response_size = notes
                .response_size
                .or_else(|| exact_size(response.body().size_hint()));
            // A refusal by the provider's gateway, passed through: a platform fault.
            match last_header(response.headers(), "x-road-error") {
                Some(kind) => record.fault_code = Some(clip(kind, MAX_FIELD)),
                None => record.succeeded = true,
            }
        }
        Err(error) => {
            record.status = Some(i64::from(error.status.as_u16()));
            record.fault_code = Some(clip(&error.kind, MAX_FIELD));
            record.fault_string = Some(clip(&error.message, MAX_FAULT));
        }
    }
    gateway.opmon.submit(record);
    result
}

/// The service id and the rest of the path of an `/r1/` path (the whole path, and no
/// service, when it is not one).
fn r1_parts(path: &str) -> (String, String) {
    match parse_r1(path) {
        Ok(parsed) => (
            clip(&parsed.service.to_string(), MAX_FIELD),
            clip(&parsed.rest, MAX_FIELD),
        ),
        Err(_) => (String::new(), clip(path, MAX_FIELD)),
    }
}

fn service_type(service: &str) -> String {
    let code = service.rsplit('/').next().unwrap_or("");
    if !service.is_empty() && crate::meta::METASERVICES.contains(&code) {
        code.to_owned()
    } else {
        "REST".to_owned()
    }
}

fn exact_size(hint: hyper::body::SizeHint) -> Option<i64> {
    hint.exact().and_then(|n| i64::try_from(n).ok())
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

// --- The admin API -------------------------------------------------------------------------

/// `GET /api/v1/opmon/records` (owners and client subsystems), and the client tokens
/// (`POST /api/v1/client-tokens`, `DELETE /api/v1/client-tokens/{sha256}`, owners only).
pub(crate) fn routes(gateway: Arc<Gateway>, state: &crate::admin::AdminState) -> Router {
    let records = Router::new().route("/api/v1/opmon/records", axum::routing::get(list_records));
    let tokens = Router::new()
        .route(
            "/api/v1/client-tokens",
            axum::routing::post(create_client_token),
        )
        .route(
            "/api/v1/client-tokens/{sha256}",
            axum::routing::delete(revoke_client_token),
        );
    crate::admin::protect_for_clients(records, state)
        .merge(crate::admin::protect(tokens, state))
        .with_state(gateway)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    /// Unix milliseconds, inclusive.
    from: Option<i64>,
    /// Unix milliseconds, exclusive.
    to: Option<i64>,
    client: Option<String>,
    service: Option<String>,
    /// Paging: the `next_after` of the previous page.
    after: Option<i64>,
    limit: Option<i64>,
}

async fn list_records(
    State(gateway): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<AxumResponse, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let client = match (&caller, query.client) {
        (Caller::Owner, client) => client,
        (Caller::Client(own), None) => Some(own.to_string()),
        (Caller::Client(own), Some(asked)) if asked == own.to_string() => Some(asked),
        (Caller::Client(_), Some(_)) => {
            return Err(AdminError::Forbidden(
                "a client token reads only its own subsystem's records".into(),
            ));
        }
    };
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AdminError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let records = gateway
        .store
        .opmon()
        .op_records(&OpQuery {
            server_id: gateway.server_id().to_string(),
            from: query.from,
            to: query.to,
            client,
            service: query.service,
            after: query.after,
            limit,
        })
        .await?;
    let next_after = (i64::try_from(records.len()).ok() == Some(limit))
        .then(|| records.last().map(|r| r.id))
        .flatten();
    let body = serde_json::json!({
        "records": records.iter().map(record_json).collect::<Vec<_>>(),
        "next_after": next_after,
    });
    Ok(Json(body).into_response())
}

/// A record as the API shows it (X-Road's field names, in snake case).
fn record_json(stored: &StoredOpRecord) -> serde_json::Value {
    let r = &stored.record;
    serde_json::json!({
        "id": stored.id,
        "security_server_type": r.side,
        "message_id": r.message_id,
        "client": r.client,
        "service": r.service,
        "client_security_server": r.client_server,
        "service_security_server": r.service_server,
        "message_user_id": r.user_id,
        "message_issue": r.issue,
        "represented_party": r.represented_party,
        "service_type": r.service_type,
        "rest_method": r.method,
        "rest_path": r.path,
        "request_in_ts": r.request_in,
        "request_out_ts": r.request_out,
        "response_in_ts": r.response_in,
        "response_out_ts": r.response_out,
        "request_size": r.request_size,
        "response_size": r.response_size,
        "status_code": r.status,
        "succeeded": r.succeeded,
        "fault_code": r.fault_code,
        "fault_string": r.fault_string,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClientToken {
    subsystem: SubsystemId,
    name: String,
}

async fn create_client_token(
    State(gateway): State<Arc<Gateway>>,
    ApiJson(request): ApiJson<NewClientToken>,
) -> Result<AxumResponse, AdminError> {
    if !gateway.members.contains_key(request.subsystem.member()) {
        return Err(AdminError::BadRequest(format!(
            "this gateway does not act for {}",
            request.subsystem.member()
        )));
    }
    let token = crate::admin::create_client_token(
        &gateway.store,
        &request.subsystem,
        &request.name,
        unix_now_ms() / 1000,
    )
    .await?;
    let sha256 = crate::admin::hash_token(&token);
    Ok(crate::admin::answer(
        StatusCode::CREATED,
        request.subsystem.to_string(),
        serde_json::json!({"token": token, "sha256": sha256, "subsystem": request.subsystem.to_string()}),
    ))
}

async fn revoke_client_token(
    State(gateway): State<Arc<Gateway>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<AxumResponse, AdminError> {
    let Path(sha256) = path.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let subsystem =
        crate::admin::revoke_client_token(&gateway.store, &sha256, unix_now_ms() / 1000).await?;
    Ok(crate::admin::answer(
        StatusCode::OK,
        subsystem.to_string(),
        serde_json::json!({"revoked": sha256}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        // 'ệ' is three bytes: cutting inside it keeps the characters before it.
        assert_eq!(clip("aệb", 2), "a");
        assert_eq!(clip("aệb", 4), "aệ");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (queue, _writer_busy) = mpsc::channel(2);
        let monitor = OpMonitor {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
            retention: Duration::from_secs(1),
        };
        let record = OpRecord {
            server_id: "VN/GOV/000101/gw1".into(),
            side: "client".into(),
            message_id: "m".into(),
            client: String::new(),
            service: String::new(),
            client_server: None,
            service_server: None,
            user_id: String::new(),
            issue: String::new(),
            represented_party: String::new(),
            service_type: "REST".into(),
            method: "GET".into(),
            path: "/".into(),
            request_in: 0,
            request_out: None,
            response_in: None,
            response_out: 0,
            request_size: None,
            response_size: None,
            status: None,
            succeeded: true,
            fault_code: None,
            fault_string: None,
        };
        for _ in 0..5 {
            monitor.submit(record.clone());
        }
        assert_eq!(monitor.dropped(), 3, "two queued, three dropped");
        assert_eq!(monitor.queued(), 2);
    }

    #[test]
    fn paths_and_service_types() {
        assert_eq!(
            r1_parts("/r1/VN/GOV/000202/reg/persons/1"),
            ("VN/GOV/000202/reg/persons".to_owned(), "/1".to_owned())
        );
        assert_eq!(
            r1_parts("/elsewhere"),
            (String::new(), "/elsewhere".to_owned())
        );
        assert_eq!(service_type("VN/GOV/000202/reg/listMethods"), "listMethods");
        assert_eq!(service_type("VN/GOV/000202/reg/persons"), "REST");
        assert_eq!(service_type(""), "REST");
    }
}
