//! The 10 MB body, one transfer at a time each way: its time through each path, and the
//! peak memory of the processes it goes through.

use super::*;

/// Which way a 10 MB body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// POSTed to the provider's streaming digest endpoint.
    Upload,
    /// The provider's answer to a GET of its payload endpoint.
    Download,
}

impl Direction {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
        }
    }
}

impl Bench {
    /// Time 10 MB `direction` at `base` (the provider's URL, or the URL its services are
    /// under through the relays or the gateways).
    pub(super) fn large_body(
        &self,
        runtime: &tokio::runtime::Handle,
        (path, direction): (&str, Direction),
        base: &str,
        client: Option<&str>,
        watched: &[&Process],
    ) -> anyhow::Result<LargeBody> {
        let mut watched: Vec<(String, u32)> =
            watched.iter().map(|p| (p.name.clone(), p.pid())).collect();
        watched.push((self.sample.name.clone(), self.sample.pid()));
        for (_, pid) in &watched {
            tools::reset_peak_rss(*pid);
        }
        let repeats = if self.quick { 1 } else { 5 };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let mut seconds = Vec::new();
        // One untimed transfer first, as every other row has its warm-up: the first of a
        // run was the slowest by 20-60 % (connections, buffers and windows growing).
        for round in 0..=repeats {
            let started = Instant::now();
            let length = runtime.block_on(async {
                let request = match direction {
                    Direction::Upload => http
                        .post(format!("{base}/digest"))
                        .body(self.large_body.clone()),
                    Direction::Download => http.get(format!("{base}/payload?bytes={LARGE_BODY}")),
                };
                let request = match client {
                    Some(client) => request.header("X-Road-Client", client),
                    None => request,
                };
                let response = request.send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                ensure!(
                    status.is_success(),
                    "10 MB {} answered {status}: {}",
                    direction.name(),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
                );
                Ok(match direction {
                    Direction::Upload => {
                        serde_json::from_slice::<Value>(&bytes)?["length"].as_u64()
                    }
                    Direction::Download => Some(bytes.len() as u64),
                })
            })?;
            if round > 0 {
                seconds.push(started.elapsed().as_secs_f64());
            }
            ensure!(
                length == Some(LARGE_BODY as u64),
                "{length:?} bytes went through, not {LARGE_BODY}"
            );
        }
        let peak_rss = watched
            .iter()
            .map(|(name, pid)| (name.clone(), tools::peak_rss_kib(*pid).unwrap_or(0)))
            .collect();
        Ok(LargeBody {
            path: path.to_owned(),
            direction,
            seconds,
            peak_rss,
        })
    }
}
