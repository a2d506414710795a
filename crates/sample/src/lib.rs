//! A sample provider system: a tiny citizen registry, as an agency's information system
//! behind a provider gateway would be.
//!
//! - `GET /persons/{id}` -> the person as JSON (404 JSON if unknown)
//! - `GET /persons?name=...` -> matching persons
//! - `POST /persons` -> echoes the JSON it was sent with `"stored": true`
//! - `POST /digest` -> `{"length", "sha256"}` of the body, read as a stream (large uploads)
//! - `GET /payload?bytes=N` -> N bytes of JSON-ish filler (benchmarks)
//! - `GET /health`
//!
//! Every answer also reports the `X-Road-Client` and `X-Road-Id` the gateway passed on.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use tokio::net::TcpListener;

/// Counts the requests a sample system answered (tests check that refused exchanges
/// never reached the provider).
pub type Counter = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// The routes, counting requests into `served`.
pub fn router(served: Counter) -> Router {
    Router::new()
        .route("/persons/{id}", get(person))
        .route("/persons", get(search).post(store))
        .route("/digest", post(digest))
        .route("/payload", get(payload))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "no such resource"})),
            )
        })
        .layer(axum::middleware::from_fn(move |request, next| {
            count(served.clone(), request, next)
        }))
}

/// Serve until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    served: Counter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(served))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn count(
    served: Counter,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    next.run(request).await
}

const PEOPLE: [(&str, &str, &str, &str); 3] = [
    ("001099012345", "Nguyễn Văn An", "1990-04-12", "Hà Nội"),
    (
        "079088054321",
        "Trần Thị Bình",
        "1988-11-02",
        "Thành phố Hồ Chí Minh",
    ),
    ("048095011111", "Lê Minh Châu", "1995-01-30", "Đà Nẵng"),
];

fn as_json((id, name, born, city): (&str, &str, &str, &str)) -> Value {
    json!({"id": id, "name": name, "birth_date": born, "residence": city})
}

fn seen(headers: &HeaderMap) -> Value {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    json!({"x_road_client": get("x-road-client"), "x_road_id": get("x-road-id")})
}

async fn person(Path(id): Path<String>, headers: HeaderMap) -> Response {
    match PEOPLE.iter().find(|p| p.0 == id) {
        Some(p) => {
            axum::Json(json!({"person": as_json(*p), "request": seen(&headers)})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such person", "id": id})),
        )
            .into_response(),
    }
}

async fn search(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let needle = query
        .get("name")
        .map(|n| n.to_lowercase())
        .unwrap_or_default();
    let found: Vec<Value> = PEOPLE
        .iter()
        .filter(|p| p.1.to_lowercase().contains(&needle))
        .map(|p| as_json(*p))
        .collect();
    axum::Json(json!({"persons": found, "request": seen(&headers)})).into_response()
}

async fn store(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => (
            StatusCode::CREATED,
            axum::Json(json!({"stored": true, "person": value, "request": seen(&headers)})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn digest(body: Body) -> Response {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut length = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                length += bytes.len() as u64;
                context.update(&bytes);
            }
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    let hex: String = context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    axum::Json(json!({"length": length, "sha256": hex})).into_response()
}

async fn payload(Query(query): Query<HashMap<String, String>>) -> Response {
    let bytes: usize = query
        .get("bytes")
        .and_then(|b| b.parse().ok())
        .unwrap_or(100)
        .min(64 * 1024 * 1024);
    // Made at memory speed (one fill, not a push per byte), so that a large answer's
    // transfer time is the transfer's, not its making's.
    const HEAD: &[u8] = b"{\"data\":\"";
    const TAIL: &[u8] = b"\"}";
    let mut body = vec![b'x'; bytes.max(HEAD.len() + TAIL.len())];
    body[..HEAD.len()].copy_from_slice(HEAD);
    let end = body.len() - TAIL.len();
    body[end..].copy_from_slice(TAIL);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
