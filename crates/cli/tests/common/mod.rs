//! A federation whose two gateways run as separate `lienthong gateway serve` processes, so
//! that tests can kill them, restart them and reach into their stores.

#![allow(dead_code, unreachable_pub)]

use lienthong_federation::{CLIENT_SUBSYSTEM, Federation, Options};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const PASSPHRASE: &str = "message log test passphrase";
pub const CLIENT: &str = "gw-client";
pub const PROVIDER: &str = "gw-provider";

/// Trust services, registry and sample provider in process; the gateways set up but not
/// started.
pub async fn federation(dir: &tempfile::TempDir) -> Federation {
    lienthong_federation::start_without_gateways(Options {
        dir: dir.path().join("fed"),
        port_base: None,
        passphrase: Some(PASSPHRASE.as_bytes().to_vec()),
        dangerous_fast_kdf: true,
    })
    .await
    .expect("the federation starts")
}

/// The configuration file of gateway `name` (`gw-client` or `gw-provider`).
pub fn config(federation: &Federation, name: &str) -> PathBuf {
    federation.dir.join(name).join("gateway.toml")
}

/// Append `text` (TOML) to gateway `name`'s configuration.
pub fn configure(federation: &Federation, name: &str, text: &str) {
    let path = config(federation, name);
    let mut toml = std::fs::read_to_string(&path).expect("read gateway.toml");
    toml.push_str(text);
    std::fs::write(&path, toml).expect("write gateway.toml");
}

/// The admin URL of gateway `name`.
pub fn admin_url(federation: &Federation, name: &str) -> String {
    let key = if name == CLIENT {
        "client_gateway_admin_url"
    } else {
        "provider_gateway_admin_url"
    };
    federation.endpoint(key)
}

/// A gateway process.
pub struct GatewayProcess {
    child: Child,
}

impl GatewayProcess {
    /// Start gateway `name` and wait until its admin API answers (it has then loaded its
    /// configuration and certificate statuses).
    pub async fn start(federation: &Federation, name: &str) -> Self {
        Self::start_node(
            federation,
            &config(federation, name),
            name,
            &admin_url(federation, name),
        )
        .await
    }

    /// Start a gateway from the configuration file `config`, logging to `LOG_NAME.log` in
    /// the federation's directory, and wait until its admin API at `admin` answers.
    pub async fn start_node(
        federation: &Federation,
        config: &Path,
        log_name: &str,
        admin: &str,
    ) -> Self {
        let log_path = federation.dir.join(format!("{log_name}.log"));
        let log = std::fs::File::create(&log_path).expect("gateway log file");
        let child = Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(["gateway", "serve", "--config"])
            .arg(config)
            .env("LIENTHONG_PASSPHRASE", PASSPHRASE)
            .env("LIENTHONG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lienthong gateway serve");
        let mut process = Self { child };
        let url = format!("{admin}/api/v1/services");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        for _ in 0..300 {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("gateway {log_name} exited with {status}:\n{log}");
            }
            let answer = http
                .get(&url)
                .bearer_auth(federation.endpoint("admin_token"))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        process.kill();
        panic!("gateway {log_name} did not become ready");
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and wait until the process has drained and exited.
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM");
        let _ = self.child.wait();
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start both gateways and register the sample services at the provider's.
pub async fn start_gateways(federation: &Federation) -> (GatewayProcess, GatewayProcess) {
    let provider = GatewayProcess::start(federation, PROVIDER).await;
    let client = GatewayProcess::start(federation, CLIENT).await;
    let sample = federation.endpoint("provider_backend_url");
    let sample = sample.trim_end_matches("/persons");
    lienthong_federation::register_services(
        &admin_url(federation, PROVIDER),
        &federation.endpoint("admin_token"),
        sample,
    )
    .await
    .expect("register the services");
    (client, provider)
}

/// One exchange with message id `id`; the HTTP status, or `None` if no answer came.
pub async fn exchange(http: &reqwest::Client, federation: &Federation, id: &str) -> Option<u16> {
    let url = format!(
        "{}{}/001099012345",
        federation.endpoint("client_gateway_url"),
        federation.endpoint("service_path")
    );
    let response = http
        .get(url)
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .header("X-Road-Id", id)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    // The answer counts as received only once its whole body arrived.
    response.bytes().await.ok()?;
    Some(status)
}

/// Run the `lienthong` binary.
pub fn lienthong(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .env("LIENTHONG_LOG", "error")
        .output()
        .expect("run lienthong")
}

/// `lienthong log audit` of gateway `name`: success, and what it printed.
pub fn audit(federation: &Federation, name: &str) -> (bool, String) {
    let config = config(federation, name);
    let output = lienthong(&["log", "audit", "--config", path(&config)]);
    (output.status.success(), text(&output))
}

/// Export the bundle of `message_id` from gateway `name` to `out`.
pub fn export(federation: &Federation, name: &str, message_id: &str, out: &Path) {
    let output = lienthong(&[
        "log",
        "export",
        "--admin-url",
        &admin_url(federation, name),
        "--token",
        &federation.endpoint("admin_token"),
        "--message-id",
        message_id,
        "--out",
        path(out),
    ]);
    assert!(output.status.success(), "export: {}", text(&output));
}

/// `lienthong verify BUNDLE` against the federation's anchor and configuration, with the
/// log key of gateway `name` (and `extra` arguments): success, and what it printed.
pub fn verify(
    federation: &Federation,
    name: &str,
    bundle: &Path,
    extra: &[&str],
) -> (bool, String) {
    let log_key = federation.dir.join(format!("{name}-log-key.pem"));
    if !log_key.exists() {
        let output = Command::new("openssl")
            .args(["x509", "-pubkey", "-noout", "-in"])
            .arg(federation.dir.join(name).join("auth.pem"))
            .output()
            .expect("run openssl");
        assert!(output.status.success(), "openssl x509 -pubkey");
        std::fs::write(&log_key, output.stdout).expect("write the log key");
    }
    let anchor = federation.dir.join("anchor.json");
    let conf = federation.dir.join(CLIENT).join("state/globalconf.json");
    let mut args = vec![
        "verify",
        path(bundle),
        "--anchor",
        path(&anchor),
        "--conf",
        path(&conf),
        "--log-key",
        path(&log_key),
    ];
    args.extend_from_slice(extra);
    let output = lienthong(&args);
    (output.status.success(), text(&output))
}

/// The SQLite file of gateway `name`.
pub fn database(federation: &Federation, name: &str) -> PathBuf {
    federation.dir.join(name).join("state/gateway.db")
}

/// Run SQL on gateway `name`'s database with the `sqlite3` shell (statements on stdin).
pub fn sql(federation: &Federation, name: &str, statements: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sqlite3")
        .arg(database(federation, name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sqlite3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(statements.as_bytes())
        .expect("write SQL");
    let output = child.wait_with_output().expect("sqlite3 ends");
    assert!(output.status.success(), "sqlite3: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
