//! Evidence for one message: its log record, its inclusion proof under a signed and
//! timestamped tree head, and the log key's certificate, as one ASiC-E style ZIP that
//! `lienthong verify` checks offline. Served by the admin API at
//! `GET /api/v1/log/bundles/{message id}`.

use crate::gateway::Gateway;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lienthong_ledger::{
    Bundle, InclusionProof, LogRecord, SignedTreeHead, TimestampedHead, write_bundle,
};
use std::sync::Arc;

impl Gateway {
    /// The evidence bundle of the last record of `message_id`, or `None` if this gateway
    /// logged no such message. Seals the log first if no timestamped head covers it yet.
    pub async fn evidence_bundle(&self, message_id: &str) -> Result<Option<Vec<u8>>, String> {
        let log = self.server_id().to_string();
        let ledger = self.store.ledger();
        let Some(&index) = ledger
            .find_by_message_id(&log, message_id)
            .await
            .map_err(|e| e.to_string())?
            .last()
        else {
            return Ok(None);
        };
        let covering = |heads: &[lienthong_store::StoredHead]| {
            heads
                .iter()
                .rev()
                .find(|h| h.size > index && h.tsa_token.is_some())
                .cloned()
        };
        let head = match covering(&ledger.heads(&log).await.map_err(|e| e.to_string())?) {
            Some(head) => head,
            None => {
                self.seal_log().await?;
                covering(&ledger.heads(&log).await.map_err(|e| e.to_string())?).ok_or(
                    "no timestamped tree head covers the message yet (is the TSA reachable?)",
                )?
            }
        };
        let (_, _, bytes) = ledger
            .record(&log, index)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the record was purged by the retention policy")?;
        let record: LogRecord =
            serde_json::from_slice(&bytes).map_err(|e| format!("stored record: {e}"))?;
        let signed: SignedTreeHead =
            serde_json::from_slice(&head.head).map_err(|e| format!("stored head: {e}"))?;
        let tree = crate::archive::stored_tree(ledger, &log, head.size).await?;
        let timestamped = TimestampedHead {
            signed,
            tsa_token: head.tsa_token.unwrap_or_default(),
        };
        let mut bundle = match Bundle::from_log(&tree, record.clone(), index, timestamped.clone()) {
            Some(bundle) => bundle,
            None => {
                // Exported all the same: the evidence is what is stored, and the verifier
                // names what does not hold.
                tracing::error!(
                    message_id,
                    index,
                    "the stored record does not match its leaf: exporting it for the verifier to judge"
                );
                Bundle {
                    proof: InclusionProof {
                        leaf_index: index,
                        tree_size: head.size,
                        path: tree
                            .inclusion_proof(index, head.size)
                            .ok_or("no inclusion proof for the record")?,
                    },
                    record,
                    head: timestamped,
                    certificates: Vec::new(),
                    bodies: Vec::new(),
                }
            }
        };
        if let Some(kept) = ledger
            .bodies(&log, index)
            .await
            .map_err(|e| e.to_string())?
        {
            let suffix = if kept.encrypted_to.is_some() {
                ".sealed"
            } else {
                ""
            };
            for (part, body) in [("request", kept.request), ("response", kept.response)] {
                if let Some(body) = body {
                    bundle.bodies.push((format!("{part}{suffix}"), body));
                }
            }
        }
        bundle
            .certificates
            .push(("log-key".to_owned(), self.auth_certificate.der.clone()));
        write_bundle(&bundle).map(Some).map_err(|e| e.to_string())
    }
}

/// `GET /api/v1/log/bundles/{message id}` (behind the admin API's token check and audit).
pub(crate) async fn bundle_route(
    State(gateway): State<Arc<Gateway>>,
    Path(message_id): Path<String>,
) -> Response {
    match gateway.evidence_bundle(&message_id).await {
        Ok(Some(zip)) => (
            [
                (header::CONTENT_TYPE, lienthong_ledger::MIMETYPE),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"evidence.asice\""),
            ],
            zip,
        )
            .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"type": "NotFound", "message": format!("no message {message_id} in this gateway's log"), "detail": ""})),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, message_id, "cannot build an evidence bundle");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({"type": "InternalError", "message": error, "detail": ""})),
            )
                .into_response()
        }
    }
}
