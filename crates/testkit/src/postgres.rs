//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, start it on
//! a free loopback port, hand out one database per test, stop it and remove it afterwards.
//!
//! Starting a cluster takes about a second, so a test binary normally shares one server
//! ([`PgServer::shared`]) and gives every test its own database
//! ([`PgServer::create_database`]). Nothing here is optional: when no server can be
//! started the caller gets an error, and tests `expect()` it, so a missing PostgreSQL fails
//! the run instead of skipping tests.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The programs used, all taken from one PostgreSQL installation.
const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "createdb"];
/// Where Debian's `postgresql-NN` packages put them (not on `PATH`).
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The OS account the server runs as when the tests run as root.
const OS_USER: &str = "postgres";
/// Attempts at starting, each on a fresh port: another process may take the free port
/// between our probe and the server binding it.
const START_ATTEMPTS: u32 = 3;

/// Why a PostgreSQL server could not be started or used. The environment is to blame for
/// all but [`PgServerError::InvalidName`], which is the calling test's mistake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgServerError {
    /// No directory holds all of `initdb`, `pg_ctl` and `createdb`.
    #[error(
        "PostgreSQL server programs (initdb, pg_ctl, createdb) not found in {searched}; \
         install them (Debian: apt-get install postgresql)"
    )]
    ProgramsNotFound {
        /// The directories looked at.
        searched: String,
    },
    /// Running as root, but there is no `postgres` account to run the server as.
    #[error(
        "running as root, but PostgreSQL refuses to and there is no `postgres` OS user to run it as \
         (Debian: apt-get install postgresql creates it): {0}"
    )]
    NoPostgresUser(String),
    /// A file-system or process operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The cause.
        source: io::Error,
    },
    /// A PostgreSQL program ran and failed.
    #[error("{command} failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// Its output, and the server log where there is one.
        output: String,
    },
    /// A database name outside `[a-z0-9_]{1,63}`.
    #[error("invalid database name {0:?}: use 1 to 63 lower-case letters, digits and underscores")]
    InvalidName(String),
}

/// A running PostgreSQL server owned by this process, with `trust` authentication for
/// the `postgres` superuser over TCP on 127.0.0.1.
///
/// Dropping it stops the server (`pg_ctl stop -m immediate`) and removes its directory.
/// The same happens when the test process ends in any other way, including the
/// never-dropped [`PgServer::shared`] server and a test binary that is killed.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    /// Holds `data/` (the cluster), `postgres.log` and the Unix socket.
    dir: PathBuf,
    installation: Installation,
    /// Kept last: dropping it stops the server and removes the directory.
    _cleanup: Cleanup,
}

impl PgServer {
    /// The server shared by every test of this test binary, started on first use.
    ///
    /// A failure to start is remembered, so every test that asks fails with the same error.
    pub fn shared() -> Result<&'static PgServer, &'static PgServerError> {
        static SHARED: OnceLock<Result<PgServer, PgServerError>> = OnceLock::new();
        SHARED.get_or_init(Self::start).as_ref()
    }

    /// Start a new server of its own (about a second); prefer [`PgServer::shared`].
    pub fn start() -> Result<Self, PgServerError> {
        let installation = Installation::find()?;
        let temp = tempfile::Builder::new()
            .prefix("lienthong-pg-")
            .tempdir()
            .map_err(io_error("create a temporary directory"))?;
        if let Some(user) = &installation.run_as {
            std::os::unix::fs::chown(temp.path(), Some(user.uid), Some(user.gid)).map_err(
                io_error(format!(
                    "give {} to the postgres user",
                    temp.path().display()
                )),
            )?;
        }
        let cleanup = Cleanup::spawn(&installation, temp.path())?;
        // From here the cleanup process owns the directory, also when starting fails.
        let dir = temp.keep();
        let data = dir.join("data");
        let log = dir.join("postgres.log");

        let mut initdb = installation.server_command("initdb", &dir);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
            // The cluster is thrown away: no need to wait for its files to reach the disk.
            // The server itself still runs with fsync on, like production.
            .arg("--no-sync");
        run(initdb, None)?;

        let mut attempt = 1;
        let port = loop {
            let port = free_port()?;
            let mut pg_ctl = installation.server_command("pg_ctl", &dir);
            pg_ctl
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(format!(
                    "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
                    dir.display()
                ))
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"]);
            match run(pg_ctl, Some(&log)) {
                Ok(_) => break port,
                Err(error) if attempt >= START_ATTEMPTS => return Err(error),
                Err(_) => attempt += 1,
            }
        };
        // `pg_ctl -w` returns once the server reports ready; confirm it listens where `url` says.
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(10))
            .map_err(io_error(format!(
                "connect to PostgreSQL on 127.0.0.1:{port}"
            )))?;
        Ok(Self {
            port,
            dir,
            installation,
            _cleanup: cleanup,
        })
    }

    /// The URL of the `postgres` database, as the superuser.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log, to look at when a test fails in a way the client does not explain.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Freeze every process of the server (SIGSTOP) until the guard is dropped (SIGCONT):
    /// a database that accepts connections but never answers, the hard case for a probe.
    /// Use it on a server of the test's own ([`PgServer::start`]), never the shared one.
    ///
    /// # Panics
    /// When the server's processes cannot be found or signalled (a test helper).
    pub fn freeze(&self) -> Frozen {
        let pid_file = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .expect("the server's pid file");
        let postmaster = pid_file.lines().next().expect("pid").trim().to_owned();
        let children = std::process::Command::new("ps")
            .args(["-o", "pid=", "--ppid", &postmaster])
            .output()
            .expect("ps");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        signal("STOP", &pids);
        Frozen(pids)
    }

    /// Create an empty database `name` (`[a-z0-9_]`, unique per test) and return its URL.
    pub fn create_database(&self, name: &str) -> Result<String, PgServerError> {
        let valid = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(PgServerError::InvalidName(name.to_owned()));
        }
        let mut createdb = Command::new(self.installation.bin_dir.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "--no-password",
                "--maintenance-db=postgres",
                name,
            ]);
        run(createdb, None)?;
        Ok(self.database_url(name))
    }

    fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// Where the PostgreSQL programs are and whom to run the server as.
#[derive(Debug)]
struct Installation {
    bin_dir: PathBuf,
    /// Set when we are root: PostgreSQL refuses to run as root.
    run_as: Option<OsUser>,
}

/// The `postgres` account, and `runuser` to switch to it.
#[derive(Debug)]
struct OsUser {
    uid: u32,
    gid: u32,
    runuser: PathBuf,
}

impl Installation {
    fn find() -> Result<Self, PgServerError> {
        let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        let bin_dir = find_bin_dir(path_dirs.iter().cloned().chain(debian_bin_dirs()))?;
        let run_as = if rustix::process::geteuid().is_root() {
            Some(OsUser::postgres(&path_dirs)?)
        } else {
            None
        };
        Ok(Self { bin_dir, run_as })
    }

    /// A server-side program (`initdb`, `pg_ctl`), run as `postgres` if we are root, from
    /// `dir` (the server's own directory, so that it can always read its working directory).
    fn server_command(&self, program: &str, dir: &Path) -> Command {
        let program = self.bin_dir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new(&user.runuser);
                command.args(["-u", OS_USER, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(dir);
        command
    }
}

impl OsUser {
    fn postgres(path_dirs: &[PathBuf]) -> Result<Self, PgServerError> {
        let id = |flag: &str| -> Result<u32, PgServerError> {
            let output = Command::new("id")
                .args([flag, OS_USER])
                .output()
                .map_err(io_error("run id"))?;
            if !output.status.success() {
                let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                return Err(PgServerError::NoPostgresUser(message));
            }
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .map_err(|_| {
                    PgServerError::NoPostgresUser(format!(
                        "`id {flag} {OS_USER}` printed no number"
                    ))
                })
        };
        let uid = id("-u")?;
        let gid = id("-g")?;
        let sbin = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
        let runuser = path_dirs
            .iter()
            .chain(&sbin)
            .map(|dir| dir.join("runuser"))
            .find(|runuser| runuser.is_file())
            .ok_or_else(|| PgServerError::Io {
                action: "find runuser to switch to the postgres user".to_owned(),
                source: io::ErrorKind::NotFound.into(),
            })?;
        Ok(Self { uid, gid, runuser })
    }
}

/// The first of `candidates` with `initdb`, resolved through symbolic links (PATH often
/// holds links to the versioned directory), whose real directory has all [`PROGRAMS`].
fn find_bin_dir(candidates: impl Iterator<Item = PathBuf>) -> Result<PathBuf, PgServerError> {
    let mut searched = String::new();
    for dir in candidates {
        let _ = write!(
            searched,
            "{}{}",
            if searched.is_empty() { "" } else { ", " },
            dir.display()
        );
        let Ok(initdb) = dir.join("initdb").canonicalize() else {
            continue;
        };
        if let Some(real_dir) = initdb.parent()
            && PROGRAMS
                .iter()
                .all(|program| real_dir.join(program).is_file())
        {
            return Ok(real_dir.to_owned());
        }
    }
    Err(PgServerError::ProgramsNotFound { searched })
}

/// `/usr/lib/postgresql/NN/bin`, newest version first.
fn debian_bin_dirs() -> impl Iterator<Item = PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_unstable_by_key(|&(version, _)| std::cmp::Reverse(version));
    versions.into_iter().map(|(_, dir)| dir)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, PgServerError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_error("find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("find a free port"))?
        .port();
    Ok(port)
}

/// Run `command` to completion; on failure, report its output and the tail of `log`.
fn run(mut command: Command, log: Option<&Path>) -> Result<String, PgServerError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("run {command:?}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let mut report = format!("{}{stdout}", String::from_utf8_lossy(&output.stderr));
    if let Some(log) = log {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let _ = write!(report, "\nserver log {}:", log.display());
        for line in tail.into_iter().rev() {
            let _ = write!(report, "\n  {line}");
        }
    }
    Err(PgServerError::Command {
        command: format!("{command:?}"),
        status: output.status,
        output: report.trim().to_owned(),
    })
}

fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> PgServerError {
    let action = action.into();
    move |source| PgServerError::Io { action, source }
}

/// A small `sh` process that waits for its stdin to close, then stops the server and
/// removes its directory.
///
/// Only this process holds the reading end of the pipe and only we hold the writing end,
/// so it closes when the [`Cleanup`] is dropped *or* when the test process ends for any
/// reason: a `static` is never dropped, and a test binary may panic with `abort`, time
/// out or be killed. The kernel closing our descriptors is the one exit hook that always
/// runs, and it needs no `unsafe` `atexit`.
#[derive(Debug)]
struct Cleanup {
    process: Child,
}

impl Cleanup {
    /// Clean `dir`, whose server's data directory will be `dir/data`.
    fn spawn(installation: &Installation, dir: &Path) -> Result<Self, PgServerError> {
        let stop = installation.server_command("pg_ctl", dir);
        // Ctrl-C reaches the whole process group: stay alive until the test process is gone.
        // Stopping a server that never started fails; that is fine.
        const SCRIPT: &str = r#"trap '' INT HUP; cat >/dev/null; cd /; "$@" >/dev/null 2>&1; rm -rf -- "$CLEANUP_DIR""#;
        let process = Command::new("sh")
            .args(["-c", SCRIPT, "lienthong-pg-cleanup"])
            .arg(stop.get_program())
            .args(stop.get_args())
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .env("CLEANUP_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error("start the cleanup process (sh)"))?;
        Ok(Self { process })
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Closing the pipe is the signal; waiting makes the drop synchronous.
        drop(self.process.stdin.take());
        let _ = self.process.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_serves_and_cleans_up() {
        let server = PgServer::start().expect("start PostgreSQL");
        let url = server
            .create_database("testkit_one")
            .expect("create a database");
        assert_eq!(
            url,
            format!(
                "postgres://postgres@127.0.0.1:{}/testkit_one",
                server.port()
            )
        );
        assert!(matches!(
            server.create_database("testkit_one"),
            Err(PgServerError::Command { .. })
        ));
        let port = server.port();
        let dir = server.dir.clone();
        assert!(server.log_file().is_file());
        drop(server);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "server still listening on {port}"
        );
    }

    #[test]
    fn rejects_unsafe_database_names() {
        let server = PgServer::shared().expect("start PostgreSQL");
        for name in ["", "Upper", "a-b", "x;DROP", &"a".repeat(64)] {
            assert!(
                matches!(
                    server.create_database(name),
                    Err(PgServerError::InvalidName(_))
                ),
                "{name:?} accepted"
            );
        }
    }

    #[test]
    fn finds_programs_behind_symbolic_links() {
        let real = tempfile::tempdir().expect("tempdir");
        for program in PROGRAMS {
            std::fs::write(real.path().join(program), "").expect("write program");
        }
        let linked = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(real.path().join("initdb"), linked.path().join("initdb"))
            .expect("symlink");
        let empty = tempfile::tempdir().expect("tempdir");
        let found = find_bin_dir([empty.path().to_owned(), linked.path().to_owned()].into_iter())
            .expect("found");
        assert_eq!(found, real.path().canonicalize().expect("canonical"));
        assert!(matches!(
            find_bin_dir([empty.path().to_owned()].into_iter()),
            Err(PgServerError::ProgramsNotFound { .. })
        ));
    }
}

/// A frozen server's processes ([`PgServer::freeze`]); dropping it lets them run again.
#[derive(Debug)]
pub struct Frozen(Vec<String>);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.0);
    }
}

fn signal(name: &str, pids: &[String]) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids)
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pids:?}");
}
