//! Bodies with bounded memory: read while hashing; small bodies stay in memory, large ones
//! are spooled to an anonymous temporary file (deleted when dropped) and streamed out of it.
//! Nothing is forwarded before the whole body has been read and its digest checked.

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Body, Frame};
use sha2_shim::Sha256;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

/// The body type the gateway sends everywhere.
pub type GatewayBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Where and how much.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Larger bodies are refused (413).
    pub max_bytes: u64,
    /// Larger bodies go to a temporary file.
    pub memory_bytes: usize,
    /// Directory for temporary files (the system's if `None`).
    pub spool_dir: Option<PathBuf>,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over [`BodyLimits::max_bytes`].
    #[error("body larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The peer closed or broke the stream.
    #[error("cannot read the body: {0}")]
    Read(String),
    /// The spool file failed.
    #[error("cannot spool the body to disk: {0}")]
    Spool(std::io::Error),
}

/// The buffer, in bytes, of writes to a spool file and of reads from it.
const SPOOL_CHUNK: usize = 1 << 20;

/// A fully read body, its SHA-256 and its length.
#[derive(Debug)]
pub struct Collected {
    pub body: Spooled,
    pub sha256: [u8; 32],
    pub length: u64,
}

/// A body in memory or in a temporary file.
#[derive(Debug)]
pub enum Spooled {
    Memory(Bytes),
    File(std::fs::File),
}

/// Read `body` to the end under `limits`, hashing as it goes.
pub async fn collect<B>(body: B, limits: &BodyLimits) -> Result<Collected, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    collect_first(body.as_mut(), limits, u64::MAX).await
}

/// Read the body's data under `limits`, hashing as it goes, until it ends or at least
/// `length` bytes have come, and leave the rest of it (trailers) unread. A body longer
/// than `length` gives the frames read so far, so a length check after it fails.
pub async fn collect_first<B>(
    mut body: std::pin::Pin<&mut B>,
    limits: &BodyLimits,
    length_wanted: u64,
) -> Result<Collected, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut hasher = Sha256::new();
    let mut memory = BytesMut::new();
    // Spooled through a 1 MiB buffer: an HTTP/2 peer delivers 16 KiB frames, and a write
    // call per frame was 640 of them for 10 MB.
    let mut file: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut length: u64 = 0;
    while length < length_wanted {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers carry nothing we forward
        };
        length += chunk.len() as u64;
        if length > limits.max_bytes {
            return Err(BodyError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        hasher.update(&chunk);
        match &mut file {
            Some(file) => file.write_all(&chunk).map_err(BodyError::Spool)?,
            None if memory.len() + chunk.len() > limits.memory_bytes => {
                let spool = match &limits.spool_dir {
                    Some(dir) => tempfile::tempfile_in(dir),
                    None => tempfile::tempfile(),
                }
                .map_err(BodyError::Spool)?;
                let mut spool = std::io::BufWriter::with_capacity(SPOOL_CHUNK, spool);
                spool.write_all(&memory).map_err(BodyError::Spool)?;
                spool.write_all(&chunk).map_err(BodyError::Spool)?;
                memory = BytesMut::new();
                file = Some(spool);
            }
            None => memory.extend_from_slice(&chunk),
        }
    }
    let body = match file {
        Some(spool) => {
            let mut file = spool
                .into_inner()
                .map_err(|e| BodyError::Spool(e.into_error()))?;
            file.seek(SeekFrom::Start(0)).map_err(BodyError::Spool)?;
            Spooled::File(file)
        }
        None => Spooled::Memory(memory.freeze()),
    };
    Ok(Collected {
        body,
        sha256: hasher.finish(),
        length,
    })
}

impl Spooled {
    /// A copy of the whole body (`length` bytes) that leaves it ready to stream.
    pub fn copy_bytes(&self, length: u64) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Memory(bytes) => Ok(bytes.to_vec()),
            Self::File(file) => {
                use std::os::unix::fs::FileExt as _;
                let length = usize::try_from(length).map_err(std::io::Error::other)?;
                let mut copy = vec![0; length];
                // Positioned reads leave the file's cursor where streaming expects it.
                file.read_exact_at(&mut copy, 0)?;
                Ok(copy)
            }
        }
    }

    /// A body to send: the bytes, or a stream from the file in chunks of [`SPOOL_CHUNK`]
    /// (each read is a hand-off to a blocking thread: 64 KiB chunks were 160 of them for
    /// 10 MB).
    pub fn into_body(self) -> GatewayBody {
        match self {
            Self::Memory(bytes) => Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
            Self::File(file) => {
                let reader = tokio::fs::File::from_std(file);
                let stream = tokio_util::io::ReaderStream::with_capacity(reader, SPOOL_CHUNK);
                StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
            }
        }
    }

    /// Another body with the same content, to send again (failover to another gateway).
    pub fn replay(&self) -> std::io::Result<GatewayBody> {
        Ok(match self {
            Self::Memory(bytes) => full(bytes.clone()),
            Self::File(file) => {
                let mut copy = file.try_clone()?;
                copy.seek(SeekFrom::Start(0))?;
                Self::File(copy).into_body()
            }
        })
    }

    /// The bytes, if in memory.
    pub fn in_memory(&self) -> Option<&Bytes> {
        match self {
            Self::Memory(bytes) => Some(bytes),
            Self::File(_) => None,
        }
    }
}

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> GatewayBody {
    full(Bytes::new())
}

/// Incremental SHA-256 over aws-lc-rs.
mod sha2_shim {
    pub(crate) struct Sha256(aws_lc_rs::digest::Context);

    impl Sha256 {
        pub(crate) fn new() -> Self {
            Self(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
        }
        pub(crate) fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
        pub(crate) fn finish(self) -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(self.0.finish().as_ref());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory: usize, max: u64) -> BodyLimits {
        BodyLimits {
            max_bytes: max,
            memory_bytes: memory,
            spool_dir: None,
        }
    }

    #[tokio::test]
    async fn small_stays_in_memory_large_is_spooled_and_streams_back() {
        let small = collect(full(vec![1u8; 100]), &limits(1024, 1 << 20))
            .await
            .expect("small");
        assert!(small.body.in_memory().is_some());
        assert_eq!(small.length, 100);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let large = collect(full(data.clone()), &limits(1024, 1 << 20))
            .await
            .expect("large");
        assert!(large.body.in_memory().is_none(), "spooled");
        assert_eq!(large.sha256, crate::message::digest(&data));
        let again = collect(large.body.into_body(), &limits(usize::MAX, 1 << 20))
            .await
            .expect("re-read");
        assert_eq!(again.sha256, crate::message::digest(&data));
        assert_eq!(again.length, data.len() as u64);
    }

    #[tokio::test]
    async fn over_the_limit_is_refused() {
        let result = collect(full(vec![0u8; 2048]), &limits(16, 1024)).await;
        assert!(matches!(result, Err(BodyError::TooLarge { limit: 1024 })));
    }
}
