//! `lienthong bench log`: the message log's append throughput on the embedded store and on
//! PostgreSQL (batched as the gateway's journal commits, and one record per commit), and
//! its verification speed (the audit of a stored log, the offline check of bundles).

use anyhow::Context as _;
use lienthong_crypto::{CryptoPolicy, HashAlgorithm, Signer as _, SoftwareKey, Suite, sign_batch};
use lienthong_ledger::{
    BodyEvidence, Bundle, LogRecord, MerkleLog, Side, TimestampedHead, TreeHead, TrustRoots,
    read_bundle, sign_head, verify_bundle, write_bundle,
};
use lienthong_pki::{
    CertificateAuthority, CertificateState, FederationIdentity, IssueRequest, OcspResponder,
    Profile, Serial, TimeStampAuthority, TimestampRequest,
};
use lienthong_store::{NewLedgerEntry, Store};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Records per commit in the batched runs: the journal's largest group commit.
const BATCH: usize = 512;
const LOG: &str = "VN/GOV/000123/bench";

/// Run every measurement over `records` records; a Markdown table.
pub(crate) async fn log(records: usize) -> anyhow::Result<String> {
    let fixture = tokio::task::spawn_blocking(Fixture::new)
        .await
        .context("build the PKI")??;
    let entries: Vec<NewLedgerEntry> = (0..records)
        .map(|n| {
            let record = fixture.record(n as u64);
            NewLedgerEntry {
                message_id: record.message_id.clone(),
                leaf_hash: record.leaf_hash(),
                record: record.to_canonical_bytes(),
                recorded_at: 1_790_000_000,
            }
        })
        .collect();
    let record_bytes = entries.first().map_or(0, |e| e.record.len());
    let mut table = String::new();
    writeln!(
        table,
        "Records of {record_bytes} bytes (both signed descriptions, two certificates, two OCSP responses, digests; bodies by digest).\n"
    )?;
    writeln!(table, "| measurement | store | records/s |")?;
    writeln!(table, "|---|---|---:|")?;

    let dir = tempfile::tempdir().context("create a temporary directory")?;
    let sqlite = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await?;
    let postgres_server =
        lienthong_testkit::PgServer::start().context("start a throwaway PostgreSQL")?;
    let postgres = Store::open(&postgres_server.create_database("bench_log")?).await?;
    let singles = (records / 10).clamp(1, 2_000);
    let mut sizes = Vec::new();
    for (name, store) in [("SQLite (embedded)", &sqlite), ("PostgreSQL", &postgres)] {
        let empty = store.database_bytes().await?;
        let started = Instant::now();
        for batch in entries.chunks(BATCH) {
            store.ledger().append(LOG, batch).await?;
        }
        let batched = records as f64 / started.elapsed().as_secs_f64();
        let full = store.database_bytes().await?;
        sizes.push((name, full.saturating_sub(empty) as f64 / records as f64));
        writeln!(
            table,
            "| append, {BATCH} records per commit | {name} | {batched:.0} |"
        )?;
        let started = Instant::now();
        for entry in &entries[..singles] {
            store
                .ledger()
                .append("single", std::slice::from_ref(entry))
                .await?;
        }
        let single = singles as f64 / started.elapsed().as_secs_f64();
        writeln!(
            table,
            "| append, 1 record per commit ({singles} commits) | {name} | {single:.0} |"
        )?;
    }

    // Heads every BATCH records, signed by the log key, as sealing leaves them.
    let leaves: Vec<[u8; 32]> = entries.iter().map(|e| e.leaf_hash).collect();
    let tree = MerkleLog::from_leaves(leaves.iter().copied());
    for size in (BATCH..=records).step_by(BATCH).chain([records]) {
        let signed = fixture.head(&tree, size as u64)?;
        for store in [&sqlite, &postgres] {
            store
                .ledger()
                .put_head(LOG, size as u64, &signed.to_canonical_json(), None)
                .await
                .or_else(|e| match e {
                    lienthong_store::StoreError::Conflict { .. } => Ok(()),
                    other => Err(other),
                })?;
        }
    }
    for (name, store) in [("SQLite (embedded)", &sqlite), ("PostgreSQL", &postgres)] {
        let started = Instant::now();
        let summary = lienthong_gateway::audit_stored_log(store, LOG, fixture.log_key.public_key())
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            summary.records == records as u64,
            "the audit saw every record"
        );
        let rate = records as f64 / started.elapsed().as_secs_f64();
        writeln!(
            table,
            "| audit of the stored log (`lienthong log audit`: records, leaves, {} heads) | {name} | {rate:.0} |",
            summary.heads
        )?;
        // What a restarted gateway's first seal did before heads kept the tree's frontier:
        // read every leaf hash of the log. It now reads those appended since its last head.
        let started = Instant::now();
        let rebuilt =
            lienthong_gateway::archive::compact_tree(store.ledger(), LOG, None, records as u64)
                .await
                .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(rebuilt.root() == tree.root(), "the rebuilt tree's root");
        let rate = records as f64 / started.elapsed().as_secs_f64();
        writeln!(
            table,
            "| the log's tree rebuilt from its stored leaf hashes (a restarted gateway's first seal, before heads kept the frontier) | {name} | {rate:.0} |"
        )?;
    }

    let bundles: Vec<Vec<u8>> = (0..records.min(500))
        .map(|n| fixture.bundle(&entries, &tree, n))
        .collect::<anyhow::Result<_>>()?;
    let roots = fixture.roots.clone();
    let key = fixture.log_key.public_key().clone();
    let (count, elapsed) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for bytes in &bundles {
            let bundle = read_bundle(bytes).map_err(anyhow::Error::msg)?;
            let verdict = verify_bundle(&bundle, Some(&key), &roots);
            anyhow::ensure!(
                verdict.is_valid() && verdict.is_complete(),
                "a bundle does not verify: {verdict}"
            );
        }
        Ok((bundles.len(), started.elapsed()))
    })
    .await
    .context("verify bundles")??;
    writeln!(
        table,
        "| evidence bundle, read + offline verify (inclusion, head signature, RFC 3161 token, request and response signatures with certificate and OCSP checks), one core | — | {:.0} |",
        count as f64 / elapsed.as_secs_f64()
    )?;
    writeln!(
        table,
        "\nDatabase growth per record appended (the batched appends above; records as stored: certificates and OCSP responses kept once, the rest compacted; the log's indexes included):\n"
    )?;
    writeln!(table, "| store | bytes per record |")?;
    writeln!(table, "|---|---:|")?;
    for (name, bytes) in sizes {
        writeln!(table, "| {name} | {bytes:.0} |")?;
    }
    Ok(table)
}

/// A federation in miniature: a CA, the client's and provider's signing keys with their
/// OCSP responses, a TSA, and the log's key.
struct Fixture {
    log_key: SoftwareKey,
    roots: TrustRoots,
    tsa: TimeStampAuthority,
    signers: [(SoftwareKey, Vec<u8>, Vec<u8>); 2],
    request_in: i64,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let now = SystemTime::now();
        let key = || -> anyhow::Result<SoftwareKey> {
            Ok(SoftwareKey::generate(Suite::EcdsaP256Sha256)?.0)
        };
        let ca = CertificateAuthority::create_root(
            Arc::new(key()?),
            "bench",
            "bench root",
            &Serial::random()?,
            now - Duration::from_secs(600),
            now + Duration::from_secs(86_400),
            CryptoPolicy::vn(),
        )?;
        let issue = |profile, identity, key: &SoftwareKey| {
            ca.issue(&IssueRequest {
                profile,
                identity,
                common_name: "bench",
                public_key: key.public_key(),
                serial: &Serial::random()?,
                not_before: now - Duration::from_secs(600),
                not_after: now + Duration::from_secs(3600),
                ocsp_url: None,
            })
        };
        let ocsp_key = key()?;
        let responder = OcspResponder::new(
            ca.certificate(),
            &issue(Profile::OcspSigning, None, &ocsp_key)?,
            Arc::new(ocsp_key),
            Duration::from_secs(3600),
        )?;
        let signer = |member: &str| -> anyhow::Result<(SoftwareKey, Vec<u8>, Vec<u8>)> {
            let key = key()?;
            let identity = FederationIdentity::Member(member.parse()?);
            let certificate = issue(Profile::Sign, Some(identity), &key)?;
            let request = lienthong_pki::ocsp_request(
                ca.certificate(),
                &certificate.serial,
                HashAlgorithm::Sha1,
                None,
            )?;
            let ocsp = responder
                .respond(&request, now, |_| CertificateState::Good)
                .der;
            Ok((key, certificate.der.clone(), ocsp))
        };
        let tsa_key = key()?;
        let tsa_certificate = issue(Profile::TimeStamping, None, &tsa_key)?;
        let tsa =
            TimeStampAuthority::new(&tsa_certificate, Arc::new(tsa_key), "1.3.6.1.4.1.57264.1.1")?;
        Ok(Self {
            log_key: key()?,
            roots: TrustRoots {
                cas: vec![ca.certificate().clone()],
                tsas: vec![tsa_certificate],
            },
            tsa,
            signers: [signer("VN/GOV/000101")?, signer("VN/GOV/000202")?],
            request_in: i64::try_from(now.duration_since(SystemTime::UNIX_EPOCH)?.as_millis())?,
        })
    }

    /// Record `n`: a request and its response, each signed on its own (a batch of one).
    fn record(&self, n: u64) -> LogRecord {
        let request = format!(
            "lienthong-request/1\nGET /r1/VN/GOV/000202/citizen-registry/persons/{n:012}\nclient VN/GOV/000101/case-management\n"
        )
        .into_bytes();
        let response = format!("lienthong-response/1\n200\nrequest-hash {n:064}\n").into_bytes();
        let sign = |signer: &SoftwareKey, description: &[u8]| {
            let digest: [u8; 32] = HashAlgorithm::Sha256
                .digest(description)
                .try_into()
                .unwrap_or_default();
            sign_batch(signer, &[digest])
                .ok()
                .and_then(|s| s.into_iter().next())
                .map(|s| s.to_text())
                .unwrap_or_default()
        };
        let [
            (client_key, client_certificate, client_ocsp),
            (provider_key, provider_certificate, provider_ocsp),
        ] = &self.signers;
        LogRecord {
            message_id: format!("bench-{n}"),
            side: Side::Client,
            client: "VN/GOV/000101/case-management".into(),
            service: "VN/GOV/000202/citizen-registry/persons".into(),
            request_in: self.request_in,
            request_out: Some(self.request_in + 1),
            response_in: Some(self.request_in + 5),
            response_out: Some(self.request_in + 6),
            request_signature: sign(client_key, &request),
            response_signature: Some(sign(provider_key, &response)),
            request_description: request,
            response_description: Some(response),
            request_signer_certificate: client_certificate.clone(),
            response_signer_certificate: Some(provider_certificate.clone()),
            request_signer_ocsp: Some(client_ocsp.clone()),
            response_signer_ocsp: Some(provider_ocsp.clone()),
            request_body_sha256: [1; 32],
            response_body_sha256: Some([2; 32]),
            status: 200,
            body: BodyEvidence::DigestOnly,
        }
    }

    fn head(
        &self,
        tree: &MerkleLog,
        size: u64,
    ) -> anyhow::Result<lienthong_ledger::SignedTreeHead> {
        let head = TreeHead {
            log_id: LOG.into(),
            size,
            root: tree.root_at(size).context("a size within the log")?,
            time_ms: self.request_in + 1000,
        };
        Ok(sign_head(head, &self.log_key)?)
    }

    /// The bundle of record `n` under a timestamped head over the whole log.
    fn bundle(
        &self,
        entries: &[NewLedgerEntry],
        tree: &MerkleLog,
        n: usize,
    ) -> anyhow::Result<Vec<u8>> {
        let signed = self.head(tree, tree.size())?;
        let request =
            TimestampRequest::for_digest(HashAlgorithm::Sha256, &signed.timestamp_imprint(), true)?;
        let tsa_token = self
            .tsa
            .token_der(&request, n as u64 + 1, SystemTime::now())?;
        let record: LogRecord = serde_json::from_slice(&entries[n].record)?;
        let bundle = Bundle::from_log(
            tree,
            record,
            n as u64,
            TimestampedHead { signed, tsa_token },
        )
        .context("the record is in the log")?;
        Ok(write_bundle(&bundle)?)
    }
}
