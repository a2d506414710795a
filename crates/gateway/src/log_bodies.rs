//! Which message bodies the log keeps, per subsystem (`message_body_logging`): none (the
//! digests only, the default), in clear, or encrypted to the member's X25519 key so that
//! the gateway cannot read them back. Kept bodies are stored beside their record, in the
//! same transaction; the record says so and holds the digests they are checked against.

use crate::XRoadError;
use crate::body::Collected;
use crate::config::BodyLogging;
use crate::gateway::Gateway;
use lienthong_ledger::{BodyEvidence, BodyPart, LogRecord, body_aad};
use lienthong_model::{ClientId, SubsystemId};
use lienthong_store::LedgerBodies;

static DIGEST_ONLY: BodyLogging = BodyLogging::Digest;

impl Gateway {
    /// How the log keeps the bodies of exchanges of `subsystem` (as client or provider).
    pub(crate) fn body_logging(&self, subsystem: &SubsystemId) -> &BodyLogging {
        self.subsystems
            .get(subsystem)
            .map_or(&DIGEST_ONLY, |settings| &settings.body_logging)
    }

    /// The same for a client, which may be a member without a subsystem.
    pub(crate) fn client_body_logging(&self, client: &ClientId) -> &BodyLogging {
        match client {
            ClientId::Subsystem(subsystem) => self.body_logging(subsystem),
            _ => &DIGEST_ONLY,
        }
    }

    /// A copy of `body` for the log if `logging` keeps bodies and it is not larger than
    /// `max_logged_body_bytes` (a larger one is logged by its digest only, with a warning).
    pub(crate) fn body_for_log(
        &self,
        logging: &BodyLogging,
        body: &Collected,
        part: BodyPart,
    ) -> Option<Vec<u8>> {
        if *logging == BodyLogging::Digest {
            return None;
        }
        if body.length > self.config.max_logged_body_bytes {
            tracing::warn!(
                part = part.name(),
                length = body.length,
                limit = self.config.max_logged_body_bytes,
                "body larger than max_logged_body_bytes: logged by its digest only"
            );
            return None;
        }
        match body.body.copy_bytes(body.length) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::error!(%error, part = part.name(), "cannot copy the body for the message log: logged by its digest only");
                None
            }
        }
    }
}

/// The bodies to store beside `record`, encrypted if `logging` says so; marks the record
/// as having them. `None` (and the record left as digest only) if none was kept.
pub(crate) fn keep(
    logging: &BodyLogging,
    record: &mut LogRecord,
    request: Option<Vec<u8>>,
    response: Option<Vec<u8>>,
) -> Result<Option<LedgerBodies>, XRoadError> {
    if request.is_none() && response.is_none() {
        return Ok(None);
    }
    let encrypted_to = match logging {
        BodyLogging::Encrypted(key) => Some(key.key_id()),
        _ => None,
    };
    record.body = BodyEvidence::Beside {
        encrypted_to: encrypted_to.clone(),
    };
    let seal = |part: BodyPart, body: Option<Vec<u8>>| match (logging, body) {
        (BodyLogging::Encrypted(key), Some(body)) => {
            lienthong_crypto::seal_body(key, &body_aad(record, part), &body)
                .map(Some)
                .map_err(|e| {
                    XRoadError::server_proxy(
                        "InternalError",
                        format!("cannot encrypt the body for the message log: {e}"),
                    )
                })
        }
        (_, body) => Ok(body),
    };
    Ok(Some(LedgerBodies {
        request: seal(BodyPart::Request, request)?,
        response: seal(BodyPart::Response, response)?,
        encrypted_to,
    }))
}
