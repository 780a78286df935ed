//! Throwaway PostgreSQL clusters built from the locally installed binaries:
//! the process-wide test server, and clusters a test starts for itself
//! (TLS-only servers, read-only servers, servers that come up late or go
//! away).

use std::env;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const START_ATTEMPTS: u32 = 3;

pub(crate) const HOW_TO_INSTALL: &str = "install PostgreSQL server binaries (Debian/Ubuntu: \
    `apt-get install postgresql`; they provide initdb and pg_ctl)";

/// A PostgreSQL cluster of its own: superuser `postgres`, on 127.0.0.1 and
/// a Unix socket in its directory, with `fsync` off. Stopped and deleted
/// when dropped (and, should the process die, by a watchdog when it
/// exits).
///
/// ```no_run
/// use gino_testkit::Cluster;
/// let cluster = Cluster::builder()
///     .setting("default_transaction_read_only", "on")
///     .start()
///     .unwrap();
/// println!("read-only server at {}", cluster.url_for("postgres"));
/// cluster.stop().unwrap();   // refuses connections from now on
/// cluster.start().unwrap();  // same port, same data
/// ```
pub struct Cluster {
    bindir: PathBuf,
    base: PathBuf,
    data: PathBuf,
    log: PathBuf,
    as_postgres: bool,
    port: Mutex<u16>,
    /// Whether this value stops and deletes the cluster when dropped (the
    /// process-wide server is left to its watchdog).
    owned: bool,
}

/// Settings of a [`Cluster`] to start: lines for `postgresql.conf` and
/// `pg_hba.conf`, and files for its data directory.
///
/// ```no_run
/// use gino_testkit::Cluster;
/// let cluster = Cluster::builder()
///     .setting("log_statement", "all")
///     .hba("host all all 127.0.0.1/32 scram-sha-256")
///     .start()
///     .unwrap();
/// # let _ = cluster;
/// ```
#[derive(Debug, Default, Clone)]
pub struct ClusterBuilder {
    settings: Vec<(String, String)>,
    hba: Option<String>,
    files: Vec<(String, Vec<u8>)>,
}

pub(crate) enum StartError {
    /// No directory with initdb, pg_ctl and postgres was found.
    NoBinaries,
    Failed(String),
}

impl ClusterBuilder {
    /// A `postgresql.conf` setting, e.g. `("ssl", "on")`; the value is
    /// quoted for the file.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The `pg_hba.conf` rules for TCP connections, replacing the default
    /// (`host all all 127.0.0.1/32 trust`). A `local all all trust` line
    /// always comes first, so that [`Cluster::execute`] works whatever the
    /// rules for TCP are.
    pub fn hba(mut self, rules: &str) -> Self {
        self.hba = Some(rules.to_owned());
        self
    }

    /// A file in the data directory (a server certificate, say), readable
    /// by the server only, as PostgreSQL demands of key files.
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_owned(), contents.into()));
        self
    }

    /// Creates the cluster without starting it; [`Cluster::start`] starts
    /// it (on the port chosen now).
    pub fn init(self) -> Result<Cluster, String> {
        self.init_cluster(true).map_err(|e| match e {
            StartError::NoBinaries => {
                format!("no PostgreSQL server binaries found: {HOW_TO_INSTALL}")
            }
            StartError::Failed(e) => e,
        })
    }

    /// Creates and starts the cluster.
    pub fn start(self) -> Result<Cluster, String> {
        let cluster = self.init()?;
        cluster.start()?;
        Ok(cluster)
    }

    pub(crate) fn init_cluster(self, owned: bool) -> Result<Cluster, StartError> {
        let bindir = find_bindir().ok_or(StartError::NoBinaries)?;
        let in_bindir = |e: String| {
            StartError::Failed(format!(
                "{e}\n(using the PostgreSQL binaries in {})",
                bindir.display()
            ))
        };
        // initdb and postgres refuse to run as root.
        let as_postgres = running_as_root();
        if as_postgres && !user_exists("postgres") {
            return Err(in_bindir(
                "running as root, where initdb and postgres refuse to run, and there is no \
                 `postgres` OS user to run them as instead"
                    .to_owned(),
            ));
        }
        let base = create_base_dir().map_err(in_bindir)?;
        let data = base.join("data");
        let cluster = Cluster {
            log: base.join("log"),
            data,
            base,
            bindir: bindir.clone(),
            as_postgres,
            port: Mutex::new(free_port().map_err(in_bindir)?),
            owned,
        };
        // Spawned before anything can fail, so that the directory is
        // removed at exit even when initdb or the server start fails.
        spawn_watchdog(
            &bindir.join("pg_ctl"),
            &cluster.data,
            &cluster.base,
            as_postgres,
        )
        .map_err(in_bindir)?;
        self.write(&cluster)
            .map_err(|e| in_bindir(cluster.explain(e)))?;
        Ok(cluster)
    }

    fn write(&self, cluster: &Cluster) -> Result<(), String> {
        if cluster.as_postgres {
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&cluster.base),
                "chown",
            )?;
        }
        run(
            cluster
                .command("initdb")
                .arg("-D")
                .arg(&cluster.data)
                .args(["-A", "trust", "-U", "postgres", "--no-sync"])
                // A fixed locale keeps initdb from failing on an uninstalled
                // LANG and makes text ordering the same on every machine.
                .args(["-E", "UTF8", "--locale=C"]),
            "initdb",
        )?;
        let socket_dir = cluster.base.to_str().ok_or_else(|| {
            format!(
                "temporary directory {} is not UTF-8",
                cluster.base.display()
            )
        })?;
        let mut conf = format!(
            "\n# gino-testkit\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = {}\nmax_connections = 300\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\n",
            conf_quote(socket_dir)
        );
        for (name, value) in &self.settings {
            conf.push_str(&format!("{name} = {}\n", conf_quote(value)));
        }
        append(&cluster.data.join("postgresql.conf"), &conf)?;
        // Replication over the Unix socket too, for standbys
        // (`Cluster::standby`).
        let hba = format!(
            "local all all trust\nlocal replication all trust\n{}\n",
            self.hba
                .as_deref()
                .unwrap_or("host all all 127.0.0.1/32 trust")
        );
        fs::write(cluster.data.join("pg_hba.conf"), hba)
            .map_err(|e| format!("could not write pg_hba.conf: {e}"))?;
        for (name, contents) in &self.files {
            let path = cluster.data.join(name);
            fs::write(&path, contents)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o600)))
                .map_err(|e| format!("could not write {}: {e}", path.display()))?;
        }
        if cluster.as_postgres {
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&cluster.data),
                "chown",
            )?;
        }
        Ok(())
    }
}

impl Cluster {
    /// Settings for a new cluster.
    ///
    /// ```no_run
    /// let cluster = gino_testkit::Cluster::builder().start().unwrap();
    /// # let _ = cluster;
    /// ```
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        *self.port.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory of the cluster's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.base
    }

    /// The operating-system user the server runs as: `postgres` when the
    /// tests run as root, else the user running them.
    pub fn os_user(&self) -> String {
        if self.as_postgres {
            return "postgres".to_owned();
        }
        let output = Command::new("id")
            .arg("-un")
            .stdin(Stdio::null())
            .output()
            .expect("run `id -un`");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port())
    }

    /// Starts the cluster (again), on its port.
    pub fn start(&self) -> Result<(), String> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let port = self.port();
            let log_offset = fs::metadata(&self.log).map_or(0, |m| m.len());
            let result = run(
                self.command("pg_ctl")
                    .arg("-D")
                    .arg(&self.data)
                    .arg("-l")
                    .arg(&self.log)
                    .arg("-w")
                    .arg("-o")
                    .arg(format!("-p {port}"))
                    .arg("start"),
                "pg_ctl start",
            );
            match result {
                Ok(()) => {
                    // eprintln! is captured by the test harness, so this
                    // shows up only next to a failing test, where it helps.
                    eprintln!(
                        "gino-testkit: started a throwaway PostgreSQL cluster on \
                         127.0.0.1:{port} in {} ({} ms)",
                        self.base.display(),
                        started.elapsed().as_millis()
                    );
                    return Ok(());
                }
                Err(e) => {
                    let new_log = self.log_since(log_offset);
                    // Another process may grab the port between choosing it
                    // and the server binding it; a new port covers that.
                    if attempt < START_ATTEMPTS && new_log.contains("Address already in use") {
                        attempt += 1;
                        *self.port.lock().unwrap_or_else(|p| p.into_inner()) = free_port()?;
                        continue;
                    }
                    return Err(
                        self.explain(format!("{e}\nserver log:\n{}", last_lines(&new_log, 20)))
                    );
                }
            }
        }
    }

    /// A streaming standby of this (running) cluster: a second throwaway
    /// cluster on its own port, copied with `pg_basebackup -R` over the
    /// Unix socket and started; it replays every write of this one and
    /// answers read-only queries (`pg_is_in_recovery()` is true there).
    ///
    /// ```no_run
    /// let primary = gino_testkit::Cluster::builder().start().unwrap();
    /// let standby = primary.standby().unwrap();
    /// println!("reads at {}", standby.url_for("postgres"));
    /// ```
    pub fn standby(&self) -> Result<Cluster, String> {
        let base = create_base_dir()?;
        let standby = Cluster {
            bindir: self.bindir.clone(),
            data: base.join("data"),
            log: base.join("log"),
            base,
            as_postgres: self.as_postgres,
            port: Mutex::new(free_port()?),
            owned: true,
        };
        spawn_watchdog(
            &standby.bindir.join("pg_ctl"),
            &standby.data,
            &standby.base,
            standby.as_postgres,
        )?;
        if standby.as_postgres {
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&standby.base),
                "chown",
            )?;
        }
        let socket_dir = self
            .base
            .to_str()
            .ok_or("the primary's directory is not UTF-8")?;
        let basebackup = companion(&self.bindir, "pg_basebackup")?;
        run(
            pg_command(&basebackup, standby.as_postgres, &standby.base)
                .arg("-D")
                .arg(&standby.data)
                .args(["-R", "-X", "stream", "--no-sync", "-U", "postgres"])
                .args(["-h", socket_dir, "-p", &self.port().to_string()]),
            "pg_basebackup",
        )
        .map_err(|e| standby.explain(e))?;
        let own_socket = standby
            .base
            .to_str()
            .ok_or("the standby's directory is not UTF-8")?;
        // The copy carries the primary's settings; the standby's own socket
        // directory comes last, so it wins.
        append(
            &standby.data.join("postgresql.conf"),
            &format!(
                "\n# gino-testkit standby\nunix_socket_directories = {}\n",
                conf_quote(own_socket)
            ),
        )?;
        standby.start()?;
        Ok(standby)
    }

    /// Stops the cluster (fast shutdown: sessions are ended); it can be
    /// started again.
    pub fn stop(&self) -> Result<(), String> {
        run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    /// Runs SQL as the superuser over the Unix socket (which `pg_hba.conf`
    /// always trusts), e.g. to create a database on a TLS-only server.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.base)
            .port(self.port())
            .user("postgres")
            .dbname("postgres");
        let sql = sql.to_owned();
        crate::block_on_own_thread(async move {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| crate::describe(&e))?;
            tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| crate::describe(&e))
        })
    }

    fn log_since(&self, offset: u64) -> String {
        fs::read(&self.log)
            .map(|bytes| {
                let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            })
            .unwrap_or_default()
    }

    /// A command for one of the PostgreSQL binaries, run as `postgres`
    /// when we are root.
    fn command(&self, binary: &str) -> Command {
        pg_command(&self.bindir.join(binary), self.as_postgres, &self.base)
    }

    /// A root-only TMPDIR (e.g. under /root) is the usual culprit when the
    /// `postgres` user cannot do its part.
    fn explain(&self, e: String) -> String {
        if self.as_postgres {
            format!(
                "{e}\n(running as root, so initdb and postgres run as the `postgres` OS user, \
                 which needs access to {})",
                self.base.display()
            )
        } else {
            e
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = run(
            self.command("pg_ctl").arg("-D").arg(&self.data).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]),
            "pg_ctl stop",
        );
        let _ = fs::remove_dir_all(&self.base);
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("port", &self.port())
            .field("dir", &self.base)
            .finish()
    }
}

/// The process-wide server's cluster: kept for the whole process, removed
/// by its watchdog when the process exits.
pub(crate) fn start() -> Result<Cluster, StartError> {
    let cluster = ClusterBuilder::default().init_cluster(false)?;
    cluster.start().map_err(StartError::Failed)?;
    Ok(cluster)
}

/// Another binary of the installation `bindir` belongs to: in `bindir`,
/// or next to where its `pg_ctl` really lives (a PATH directory may hold
/// links to just initdb, pg_ctl and postgres).
fn companion(bindir: &Path, binary: &str) -> Result<PathBuf, String> {
    let here = bindir.join(binary);
    if here.is_file() {
        return Ok(here);
    }
    fs::canonicalize(bindir.join("pg_ctl"))
        .ok()
        .and_then(|pg_ctl| pg_ctl.parent().map(|dir| dir.join(binary)))
        .filter(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no {binary} next to the PostgreSQL binaries in {}: install the PostgreSQL \
                 client tools (Debian: `apt-get install postgresql-client`)",
                bindir.display()
            )
        })
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| format!("could not write {}: {e}", path.display()))
}

/// A value quoted for postgresql.conf.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The first directory holding all three binaries: PATH, then
/// `pg_config --bindir`, then Debian's /usr/lib/postgresql/<version>/bin,
/// newest version first. All three must come from one directory so that
/// versions are never mixed.
fn find_bindir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    if let Ok(output) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        && output.status.success()
    {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    candidates.extend(debian_bindirs());
    candidates.into_iter().find(|dir| {
        BINARIES
            .iter()
            .all(|binary| is_executable(&dir.join(binary)))
    })
}

fn debian_bindirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A new directory of this process under the temporary directory, for a
/// cluster's or PgBouncer's files. Named by the process, the time and a
/// count of the process's directories: two threads of one process that
/// read the same time (a coarse clock, as some virtual machines have)
/// still get two directories, and a name taken already (a leftover of a
/// process with the same pid) is passed over for the next.
pub(crate) fn create_base_dir() -> Result<PathBuf, String> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    loop {
        let base = env::temp_dir().join(format!(
            "gino-testkit-{}-{}-{}",
            std::process::id(),
            crate::base36(nanos),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&base) {
            Ok(()) => return Ok(base),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("could not create {}: {e}", base.display())),
        }
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("could not find a free TCP port on 127.0.0.1: {e}"))
}

/// A command for a PostgreSQL binary, run as `postgres` when we are root.
fn pg_command(binary: &Path, as_postgres: bool, cwd: &Path) -> Command {
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(binary);
        command
    } else {
        Command::new(binary)
    };
    // The test's working directory may not be readable by `postgres`.
    command.current_dir(cwd);
    command
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    ))
}

/// Starts a detached shell that waits for this process to exit, then stops
/// the cluster and deletes its directory. Statics never run destructors, so
/// this is the only way to clean up after the last test.
fn spawn_watchdog(
    pg_ctl: &Path,
    data: &Path,
    base: &Path,
    as_postgres: bool,
) -> Result<(), String> {
    // The shell itself must keep our user: as `postgres` it could not
    // `kill -0` a root process and would clean up at once.
    let stop = if as_postgres {
        format!("runuser -u postgres -- {}", quote_path(pg_ctl)?)
    } else {
        quote_path(pg_ctl)?
    };
    after_exit(
        &format!("{stop} -D {} -m immediate stop", quote_path(data)?),
        base,
    )
}

/// Starts a detached shell that, once this process has exited, runs the
/// shell command `then` and deletes `dir`: the cleanup of what statics
/// hold, whose destructors never run.
pub(crate) fn after_exit(then: &str, dir: &Path) -> Result<(), String> {
    let script = format!(
        "trap '' HUP INT; \
         while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {then}; \
         rm -rf {dir}",
        pid = std::process::id(),
        dir = quote_path(dir)?,
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so Ctrl-C on the test run does not kill
        // the watchdog before it has cleaned up.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| {
            let _ = fs::remove_dir_all(dir);
            format!("could not start the cleanup watchdog: {e}")
        })
}

/// `path` quoted for the shell.
pub(crate) fn quote_path(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(sh_quote)
        .ok_or_else(|| format!("path {} is not UTF-8", path.display()))
}

pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
