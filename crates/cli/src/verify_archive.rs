//! `lienthong verify` of message-log archives: one archive file, or a directory holding a
//! log's archives, each checked with the one before it (the hash chain).

use crate::verify_cmd::{human, read};
use anyhow::Context as _;
use lienthong_crypto::PublicKey;
use lienthong_ledger::{
    ARCHIVE_MIMETYPE, Archive, Outcome, PreviousArchive, TrustRoots, read_archive, verify_archive,
};
use std::path::{Path, PathBuf};

/// Whether `bytes` start like an archive rather than an evidence bundle: the stored
/// `mimetype` entry's content sits at offset 38 in both.
pub(crate) fn is_archive(bytes: &[u8]) -> bool {
    bytes.get(38..38 + ARCHIVE_MIMETYPE.len()) == Some(ARCHIVE_MIMETYPE.as_bytes())
}

/// Verify the archive at `path`, or every `*.zip` archive in the directory `path` in name
/// order, each linked to the one before. Prints one verdict per archive; fails unless
/// every check of every archive passed.
pub(crate) fn run(
    path: &Path,
    log_key: Option<&PublicKey>,
    roots: &TrustRoots,
    json: bool,
) -> anyhow::Result<()> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("list {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "zip"))
            .collect();
        files.sort();
        anyhow::ensure!(!files.is_empty(), "no archive in {}", path.display());
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut previous: Option<(Vec<u8>, Archive)> = None;
    let mut reports = Vec::new();
    let mut failing = Vec::new();
    for file in &files {
        let bytes = read(file)?;
        let archive =
            read_archive(&bytes).with_context(|| format!("read archive {}", file.display()))?;
        let verdict = verify_archive(
            &archive,
            previous
                .as_ref()
                .map(|(bytes, archive)| PreviousArchive { bytes, archive }),
            log_key,
            roots,
        );
        if verdict.checks.iter().any(|c| c.outcome != Outcome::Passed) {
            failing.push(file.display().to_string());
        }
        if json {
            reports.push(serde_json::json!({
                "file": file.display().to_string(),
                "valid": verdict.is_valid() && verdict.is_complete(),
                "checks": verdict.checks,
            }));
        } else {
            println!(
                "{} (archive {}, records {}..{}):",
                file.display(),
                archive.manifest.sequence,
                archive.manifest.first,
                archive.manifest.end
            );
            print!("{}", human(&verdict));
        }
        previous = Some((bytes, archive));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    anyhow::ensure!(
        failing.is_empty(),
        "{} of {} archives do not verify: {}",
        failing.len(),
        files.len(),
        failing.join(", ")
    );
    Ok(())
}
