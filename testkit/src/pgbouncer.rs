//! PgBouncer in front of a test server, started by the test that needs it:
//! transaction pooling with a small pool, as production poolers run.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::cluster::{
    after_exit, create_base_dir, free_port, last_lines, quote_path, running_as_root,
};

const HOW_TO_INSTALL: &str = "install PgBouncer (Debian/Ubuntu: `apt-get install pgbouncer`)";

/// A PgBouncer on 127.0.0.1 in `pool_mode = transaction`, passing every
/// database name through to one server. Stopped and its directory deleted
/// when dropped (or by a watchdog, should the process die first).
///
/// ```no_run
/// # async fn demo() {
/// let db = gino_testkit::TestDatabase::create().await;
/// let Some(bouncer) = gino_testkit::PgBouncer::in_front_of(db.url(), 2).unwrap() else {
///     return; // PgBouncer is not installed
/// };
/// println!("through PgBouncer: {}", bouncer.url_for(db.name()));
/// # }
/// ```
pub struct PgBouncer {
    base: PathBuf,
    port: u16,
    user: String,
    pid_file: PathBuf,
}

impl PgBouncer {
    /// Whether a `pgbouncer` binary is installed.
    pub fn installed() -> bool {
        binary().is_some()
    }

    /// Starts PgBouncer in front of the server of `url` (any database of
    /// it), with `pool_size` server connections per database and user.
    /// `Ok(None)` when PgBouncer is not installed; an error, saying why,
    /// when it does not start.
    pub fn in_front_of(url: &str, pool_size: u32) -> Result<Option<PgBouncer>, String> {
        let Some(binary) = binary() else {
            return Ok(None);
        };
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| format!("cannot read the server URL: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(dir)) => dir.display().to_string(),
            None => "127.0.0.1".to_owned(),
        };
        let server_port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());

        let base = create_base_dir()?;
        // PgBouncer refuses to run as root; as `postgres` it must be able
        // to write its log and pid file here.
        fs::set_permissions(&base, fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("could not open up {}: {e}", base.display()))?;
        let port = free_port()?;
        let pid_file = base.join("pgbouncer.pid");
        let log = base.join("pgbouncer.log");
        let ini = base.join("pgbouncer.ini");
        let server_password = password
            .as_deref()
            .map(|p| format!(" password={p}"))
            .unwrap_or_default();
        let settings = format!(
            "[databases]\n\
             * = host={host} port={server_port}{server_password}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 1000\n\
             server_reset_query =\n\
             ignore_startup_parameters = extra_float_digits,options,application_name\n\
             logfile = {log}\n\
             pidfile = {pid}\n",
            users = base.join("users.txt").display(),
            log = log.display(),
            pid = pid_file.display(),
        );
        let write = |path: &Path, text: &str| {
            fs::write(path, text)
                .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o644)))
                .map_err(|e| format!("could not write {}: {e}", path.display()))
        };
        write(&ini, &settings)?;
        write(
            &base.join("users.txt"),
            &format!("\"{}\" \"\"\n", user.replace('"', "\"\"")),
        )?;

        let bouncer = PgBouncer {
            base: base.clone(),
            port,
            user,
            pid_file: pid_file.clone(),
        };
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let output = command
            .arg("-d")
            .arg(&ini)
            .current_dir(&base)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", binary.display()))?;
        if !output.status.success() {
            return Err(format!(
                "pgbouncer did not start ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                fs::read_to_string(&log)
                    .map(|l| last_lines(&l, 10))
                    .unwrap_or_default()
            ));
        }
        // Stopped and deleted after this process, should it die first.
        after_exit(
            &format!(
                "kill \"$(cat {} 2>/dev/null)\" 2>/dev/null",
                quote_path(&pid_file)?
            ),
            &base,
        )?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "pgbouncer did not listen on 127.0.0.1:{port} within 10 s: {}",
                    fs::read_to_string(&log)
                        .map(|l| last_lines(&l, 10))
                        .unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(bouncer))
    }

    /// Like [`in_front_of`](Self::in_front_of), but a missing PgBouncer is
    /// an error saying what to install.
    pub fn required_in_front_of(url: &str, pool_size: u32) -> Result<PgBouncer, String> {
        Self::in_front_of(url, pool_size)?.ok_or_else(|| HOW_TO_INSTALL.to_owned())
    }

    /// The URL of `database` through PgBouncer.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            crate::url::encode(self.user.as_bytes()),
            self.port
        )
    }

    /// The port PgBouncer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill")
                .arg(pid.trim())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// The `pgbouncer` binary: on PATH, or where Debian puts it.
fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbouncer"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        ["/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}
