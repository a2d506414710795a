//! Key passphrases: from `LIENTHONG_PASSPHRASE` (automation) or a terminal prompt — never
//! from a command-line argument, where other users could read it in the process list.

use anyhow::{Context as _, bail};
use std::io::IsTerminal as _;
use zeroize::Zeroizing;

/// The environment variable that carries the passphrase for automation.
pub(crate) const ENV: &str = "LIENTHONG_PASSPHRASE";

/// Read the passphrase; `confirm` asks twice on a terminal (when creating keys).
pub(crate) fn read(purpose: &str, confirm: bool) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(value) = std::env::var_os(ENV) {
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("{ENV} is not valid UTF-8"))?;
        if value.is_empty() {
            bail!("{ENV} is set but empty");
        }
        return Ok(Zeroizing::new(value.into_bytes()));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {ENV} or run on a terminal to be prompted");
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("Passphrase for {purpose}: "))
            .context("read the passphrase")?,
    );
    if first.is_empty() {
        bail!("an empty passphrase is not allowed");
    }
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ").context("read the passphrase")?,
        );
        if *first != *second {
            bail!("the passphrases do not match");
        }
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}
