//! Bodies with bounded memory: read while hashing; small bodies stay in memory, large ones
//! are spooled to an anonymous temporary file (deleted when dropped) and streamed out of it.
//!
//! A body whose digest and length are already signed and verified may instead be passed
//! through ([`pass_through`], [`pass_through_checked`]): it is hashed as it streams on, and its last chunk is held
//! back until the whole body has come and matches, so the receiver never gets a complete
//! body that was not the one signed.

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Body, Frame};
use sha2_shim::Sha256;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// A body passed through is not the one signed.
    #[error("the body does not match the signed digest")]
    Mismatch,
    /// The check of a body passed through refused it (a signature in its trailers that
    /// does not verify, a replay): the gateway's answer.
    #[error("{0}")]
    Refused(Box<crate::XRoadError>),
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

/// Frames of a passed-through body queued between its reader and its receiver. With the
/// held chunk and the one being written, at most four frames (4 MiB with the 1 MiB frames
/// between gateways) per exchange, besides the HTTP/2 window.
const PASS_FRAMES: usize = 2;

/// A body passed through: what to send on, and the task that reads it.
pub(crate) struct PassThrough<T = ()> {
    /// The body to send on. Its length is the signed one; it ends in an error, leaving the
    /// receiver with an incomplete body, if the body read does not match.
    pub body: GatewayBody,
    /// The reader's verdict.
    pub verdict: Verdict<T>,
}

/// The reader of a body passed through: `Ok` with the time it took, and what its check
/// gave, once the whole body has come and passed the check. It reads to the end even if
/// the receiver stops early (a service that answers before reading everything), so the
/// verdict always comes. The reader is aborted when this is dropped.
pub(crate) struct Verdict<T = ()> {
    reader: tokio::task::JoinHandle<Result<(std::time::Duration, T), BodyError>>,
    refused: Arc<AtomicBool>,
}

impl<T> Verdict<T> {
    /// Wait for the verdict.
    pub(crate) async fn join(
        mut self,
    ) -> Result<Result<(std::time::Duration, T), BodyError>, tokio::task::JoinError> {
        (&mut self.reader).await
    }

    /// Has the reader already refused the body? Set before the receiver gets its error,
    /// so a receiver that failed because of that error always sees it.
    pub(crate) fn refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }
}

impl<T> Drop for Verdict<T> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Stream `body` on as it comes, checking it against the signed `sha256` and `length`:
/// the last chunk is released only once the end has come and the digest and length match.
/// More bytes than `length` fail at once. The verdict gives `signed` back.
pub(crate) fn pass_through<B, T>(
    body: B,
    sha256: [u8; 32],
    length: u64,
    signed: T,
) -> PassThrough<T>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display + Send,
    T: Send + 'static,
{
    pass_through_checked(body, length, move |_, read, _| {
        std::future::ready(if read == sha256 {
            Ok(signed)
        } else {
            Err(BodyError::Mismatch)
        })
    })
}

/// Stream `body` of `length` bytes on as it comes, its last chunk held back until the end
/// has come and `check` accepted it: `check` gets the body's trailers, its SHA-256 and its
/// length (always `length`: more or fewer bytes fail before it). What `check` gives is the
/// verdict's. The receiver gets data only, never the trailers.
pub(crate) fn pass_through_checked<B, T, F, Fut>(body: B, length: u64, check: F) -> PassThrough<T>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display + Send,
    T: Send + 'static,
    F: FnOnce(Option<hyper::HeaderMap>, [u8; 32], u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, BodyError>> + Send,
{
    let (frames, receiver) = tokio::sync::mpsc::channel(PASS_FRAMES);
    let refused = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let refused = refused.clone();
        async move {
            let started = std::time::Instant::now();
            match read_through(body, length, check, &frames).await {
                Ok(checked) => Ok((started.elapsed(), checked)),
                Err(error) => {
                    refused.store(true, Ordering::Release);
                    let _ = frames
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
                    Err(error)
                }
            }
        }
    });
    let body = Passed { receiver, length };
    PassThrough {
        body: body.boxed_unsync(),
        verdict: Verdict { reader, refused },
    }
}

type PassFrame = Result<Frame<Bytes>, std::io::Error>;

/// Read `body` to its end, sending all but its last chunk to `frames` as they come (while
/// anyone listens), and the last one once the whole is `length` bytes and `check` accepts
/// it with the body's trailers.
async fn read_through<B, T, F, Fut>(
    body: B,
    length: u64,
    check: F,
    frames: &tokio::sync::mpsc::Sender<PassFrame>,
) -> Result<T, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
    F: FnOnce(Option<hyper::HeaderMap>, [u8; 32], u64) -> Fut,
    Fut: std::future::Future<Output = Result<T, BodyError>>,
{
    let mut body = std::pin::pin!(body);
    let mut hasher = Sha256::new();
    let mut read: u64 = 0;
    let mut held: Option<Bytes> = None;
    let mut listening = true;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let chunk = match frame.into_data() {
            Ok(chunk) => chunk,
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
                continue;
            }
        };
        if chunk.is_empty() {
            continue;
        }
        read += chunk.len() as u64;
        if read > length {
            return Err(BodyError::Mismatch);
        }
        hasher.update(&chunk);
        if let Some(previous) = held.replace(chunk)
            && listening
        {
            listening = frames.send(Ok(Frame::data(previous))).await.is_ok();
        }
    }
    if read != length {
        return Err(BodyError::Mismatch);
    }
    let checked = check(trailers, hasher.finish(), read).await?;
    if let Some(last) = held
        && listening
    {
        let _ = frames.send(Ok(Frame::data(last))).await;
    }
    Ok(checked)
}

/// Send `body`, of the `length` bytes its sender declared, on as it comes while hashing it,
/// and end it with the trailers `finish` makes from its SHA-256 and length: the signature
/// of a large request, made once its last byte is read. More or fewer bytes than `length`,
/// or a `finish` that fails, end the body sent in an error instead of its trailers, so
/// its receiver never takes it as whole.
pub(crate) fn stream_with_trailers<B, F, Fut>(body: B, length: u64, finish: F) -> GatewayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display + Send,
    F: FnOnce([u8; 32], u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<hyper::HeaderMap, BodyError>> + Send,
{
    let (frames, receiver) = tokio::sync::mpsc::channel(PASS_FRAMES);
    tokio::spawn(async move {
        let sent = async {
            let mut body = std::pin::pin!(body);
            let mut hasher = Sha256::new();
            let mut read: u64 = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
                let Ok(chunk) = frame.into_data() else {
                    continue; // the local client's trailers are not forwarded
                };
                read += chunk.len() as u64;
                if read > length {
                    return Err(BodyError::Read(format!(
                        "the body is longer than its declared {length} bytes"
                    )));
                }
                hasher.update(&chunk);
                if frames.send(Ok(Frame::data(chunk))).await.is_err() {
                    return Err(BodyError::Read("the receiver went away".into()));
                }
            }
            if read != length {
                return Err(BodyError::Read(format!(
                    "the body ended after {read} of its declared {length} bytes"
                )));
            }
            finish(hasher.finish(), read).await
        };
        let last = match sent.await {
            Ok(trailers) => Ok(Frame::trailers(trailers)),
            Err(error) => Err(std::io::Error::other(error.to_string())),
        };
        let _ = frames.send(last).await;
    });
    Passed { receiver, length }.boxed_unsync()
}

/// The receiving end of [`pass_through_checked`] and [`stream_with_trailers`], of a known
/// length.
struct Passed {
    receiver: tokio::sync::mpsc::Receiver<PassFrame>,
    length: u64,
}

impl Body for Passed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.receiver.poll_recv(cx)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.length)
    }
}

/// Read what is left of a body after all its data: its trailers, if any. Any more data is
/// a body longer than the one described.
pub(crate) async fn trailers<B>(
    mut body: std::pin::Pin<&mut B>,
) -> Result<Option<hyper::HeaderMap>, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        match frame.into_data() {
            Ok(chunk) if chunk.is_empty() => {}
            Ok(_) => return Err(BodyError::Mismatch),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Ok(trailers)
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

    /// 40 chunks of 1 KiB with distinct contents.
    fn chunks() -> Vec<Bytes> {
        (0..40u8).map(|i| Bytes::from(vec![i; 1024])).collect()
    }

    fn streamed(chunks: Vec<Bytes>) -> GatewayBody {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Frame::data(c))),
        );
        StreamBody::new(frames).boxed_unsync()
    }

    /// What a receiver of a passed-through body gets: the bytes, and whether it ended in
    /// an error rather than cleanly.
    async fn receive(mut body: GatewayBody) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => got.extend_from_slice(&frame.into_data().expect("data")),
                Err(_) => return (got, true),
            }
        }
        (got, false)
    }

    fn signed(chunks: &[Bytes]) -> ([u8; 32], u64) {
        let whole = chunks.concat();
        (crate::message::digest(&whole), whole.len() as u64)
    }

    #[tokio::test]
    async fn a_matching_body_passes_through_whole() {
        let (sha256, length) = signed(&chunks());
        let passed = pass_through(streamed(chunks()), sha256, length, ());
        assert_eq!(passed.body.size_hint().exact(), Some(length));
        let (got, failed) = receive(passed.body).await;
        assert!(!failed);
        assert_eq!(got, chunks().concat());
        assert!(!passed.verdict.refused());
        assert!(passed.verdict.join().await.expect("joined").is_ok());
    }

    #[tokio::test]
    async fn a_body_that_differs_from_the_signed_one_never_arrives_whole() {
        let (sha256, length) = signed(&chunks());
        let altered_at = |index: usize| {
            let mut altered = chunks();
            altered[index] = Bytes::from(vec![0xff; 1024]);
            altered
        };
        let mut longer = chunks();
        longer.push(Bytes::from_static(b"x"));
        let mut shorter = chunks();
        shorter.pop();
        for (label, sent) in [
            ("first chunk altered", altered_at(0)),
            ("last chunk altered", altered_at(39)),
            ("longer", longer),
            ("shorter", shorter),
        ] {
            let passed = pass_through(streamed(sent), sha256, length, ());
            let (got, failed) = receive(passed.body).await;
            assert!(failed, "{label}: the receiver's body ends in an error");
            assert!(
                passed.verdict.refused(),
                "{label}: refused before the receiver got its error"
            );
            assert!(
                (got.len() as u64) < length,
                "{label}: the receiver got {} of {length} bytes",
                got.len()
            );
            let verdict = passed.verdict.join().await.expect("joined");
            assert!(
                matches!(verdict, Err(BodyError::Mismatch)),
                "{label}: {verdict:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_chunk_waits_for_the_end_of_the_body() {
        let (sha256, length) = signed(&chunks());
        let (sender, mut frames) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
        let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            frames.poll_recv(cx)
        }));
        let mut passed = pass_through(body, sha256, length, ());
        for chunk in chunks() {
            sender.send(Ok(Frame::data(chunk))).await.expect("sent");
        }
        // Every byte has been sent, but the body has not ended: all but the last chunk
        // come through, and the last one does not (on the paused clock, waiting an hour
        // for it takes no real time).
        let mut got = Vec::new();
        for _ in 0..39 {
            let frame = passed.body.frame().await.expect("frame").expect("data");
            got.extend_from_slice(&frame.into_data().expect("data"));
        }
        assert_eq!(got, chunks()[..39].concat());
        let wait =
            tokio::time::timeout(std::time::Duration::from_secs(3600), passed.body.frame()).await;
        assert!(wait.is_err(), "the last chunk was released before the end");
        drop(sender);
        let (last, failed) = receive(passed.body).await;
        assert!(!failed);
        assert_eq!(last, chunks()[39].to_vec());
        assert!(passed.verdict.join().await.expect("joined").is_ok());
    }

    #[tokio::test]
    async fn the_verdict_comes_even_if_the_receiver_stops_early() {
        let (sha256, length) = signed(&chunks());
        let mut passed = pass_through(streamed(chunks()), sha256, length, ());
        let first = passed.body.frame().await.expect("frame").expect("data");
        assert_eq!(first.into_data().expect("data"), chunks()[0]);
        drop(passed.body);
        assert!(passed.verdict.join().await.expect("joined").is_ok());
        let mut altered = chunks();
        altered[39] = Bytes::from(vec![0xff; 1024]);
        let passed = pass_through(streamed(altered), sha256, length, ());
        drop(passed.body);
        let verdict = passed.verdict.join().await.expect("joined");
        assert!(matches!(verdict, Err(BodyError::Mismatch)), "{verdict:?}");
    }

    /// What a receiver of a streamed body gets: the bytes, its trailers, and whether it
    /// ended in an error.
    async fn receive_all(mut body: GatewayBody) -> (Vec<u8>, Option<hyper::HeaderMap>, bool) {
        let (mut got, mut trailers) = (Vec::new(), None);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => got.extend_from_slice(&data),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Err(_) => return (got, trailers, true),
            }
        }
        (got, trailers, false)
    }

    /// Trailers saying the digest and length `finish` was given.
    async fn described(sha256: [u8; 32], length: u64) -> Result<hyper::HeaderMap, BodyError> {
        let mut trailers = hyper::HeaderMap::new();
        let text = format!("{}:{length}", crate::trust::hex(&sha256));
        trailers.insert("x-described", text.parse().expect("value"));
        Ok(trailers)
    }

    #[tokio::test]
    async fn a_streamed_body_ends_with_the_trailers_made_from_its_digest() {
        let (sha256, length) = signed(&chunks());
        let body = stream_with_trailers(streamed(chunks()), length, described);
        assert_eq!(body.size_hint().exact(), Some(length));
        let (got, trailers, failed) = receive_all(body).await;
        assert!(!failed);
        assert_eq!(got, chunks().concat());
        let trailers = trailers.expect("trailers");
        assert_eq!(
            trailers["x-described"],
            format!("{}:{length}", crate::trust::hex(&sha256)).as_str()
        );
    }

    #[tokio::test]
    async fn a_streamed_body_unlike_its_declared_length_or_unsigned_ends_in_an_error() {
        let (_, length) = signed(&chunks());
        let mut longer = chunks();
        longer.push(Bytes::from_static(b"x"));
        let mut shorter = chunks();
        shorter.pop();
        for (label, sent) in [("longer", longer), ("shorter", shorter)] {
            let body = stream_with_trailers(streamed(sent), length, described);
            let (_, trailers, failed) = receive_all(body).await;
            assert!(failed && trailers.is_none(), "{label}");
        }
        let refuse = async |_, _| Err(BodyError::Read("cannot sign".into()));
        let body = stream_with_trailers(streamed(chunks()), length, refuse);
        let (got, trailers, failed) = receive_all(body).await;
        assert!(failed && trailers.is_none());
        assert_eq!(
            got.len() as u64,
            length,
            "the data came, the signature did not"
        );
    }

    #[tokio::test]
    async fn over_the_limit_is_refused() {
        let result = collect(full(vec![0u8; 2048]), &limits(16, 1024)).await;
        assert!(matches!(result, Err(BodyError::TooLarge { limit: 1024 })));
    }
}
