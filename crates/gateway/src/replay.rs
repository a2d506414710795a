//! Replay protection: a message (id + signature) is accepted once. Messages older than the
//! accepted clock skew are refused outright, so the memory of seen messages only needs to
//! span that window.

use std::collections::HashMap;
use std::sync::Mutex;

/// Seen messages within the window.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    window_ms: i64,
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

impl ReplayGuard {
    /// A guard accepting message times within `window_ms` of now.
    pub(crate) fn new(window_ms: i64) -> Self {
        Self {
            window_ms,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Accept a message once. `Err` says why not.
    pub(crate) fn check(
        &self,
        message_id: &str,
        signature: &str,
        message_time_ms: i64,
        now_ms: i64,
    ) -> Result<(), &'static str> {
        if (now_ms - message_time_ms).abs() > self.window_ms {
            return Err("message time is outside the accepted clock skew");
        }
        let mut key_material = Vec::with_capacity(message_id.len() + signature.len() + 1);
        key_material.extend_from_slice(message_id.as_bytes());
        key_material.push(0);
        key_material.extend_from_slice(signature.as_bytes());
        let key = crate::message::digest(&key_material);
        let mut seen = self.seen.lock().map_err(|_| "replay memory unavailable")?;
        if seen.len() > 100_000 {
            let horizon = now_ms - self.window_ms;
            seen.retain(|_, &mut time| time >= horizon);
        }
        if seen.contains_key(&key) {
            return Err("this message (id and signature) was already received");
        }
        seen.insert(key, message_time_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_once_and_refuses_stale() {
        let guard = ReplayGuard::new(300_000);
        assert!(guard.check("id", "sig", 1_000_000, 1_000_000).is_ok());
        assert!(guard.check("id", "sig", 1_000_000, 1_000_001).is_err());
        assert!(guard.check("id", "other-sig", 1_000_000, 1_000_001).is_ok());
        assert!(guard.check("old", "sig", 0, 1_000_000).is_err());
    }
}
