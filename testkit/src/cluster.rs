//! A throwaway PostgreSQL cluster built from the locally installed binaries.

use std::env;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const START_ATTEMPTS: u32 = 3;

/// A running cluster: superuser `postgres`, trust auth, on 127.0.0.1.
pub(crate) struct Cluster {
    pub(crate) port: u16,
}

pub(crate) enum StartError {
    /// No directory with initdb, pg_ctl and postgres was found.
    NoBinaries,
    Failed(String),
}

pub(crate) fn start() -> Result<Cluster, StartError> {
    let bindir = find_bindir().ok_or(StartError::NoBinaries)?;
    start_with(&bindir).map_err(|e| {
        StartError::Failed(format!(
            "{e}\n(using the PostgreSQL binaries in {})",
            bindir.display()
        ))
    })
}

fn start_with(bindir: &Path) -> Result<Cluster, String> {
    let started = Instant::now();
    // initdb and postgres refuse to run as root.
    let as_postgres = running_as_root();
    if as_postgres && !user_exists("postgres") {
        return Err(
            "running as root, where initdb and postgres refuse to run, and there is no \
                    `postgres` OS user to run them as instead"
                .to_owned(),
        );
    }

    let base = create_base_dir()?;
    let data = base.join("data");
    let log = base.join("log");
    // Spawned before anything can fail, so that the directory is removed at
    // exit even when initdb or the server start fails halfway.
    spawn_watchdog(&bindir.join("pg_ctl"), &data, &base, as_postgres)?;
    if as_postgres {
        run(
            Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&base),
            "chown",
        )?;
    }
    // A root-only TMPDIR (e.g. under /root) is the usual culprit then.
    let explain = |e: String| {
        if as_postgres {
            format!(
                "{e}\n(running as root, so initdb and postgres run as the `postgres` OS user, \
                 which needs access to {})",
                base.display()
            )
        } else {
            e
        }
    };

    run(
        pg_command(&bindir.join("initdb"), as_postgres, &base)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            // A fixed locale keeps initdb from failing on an uninstalled
            // LANG and makes text ordering the same on every machine.
            .args(["-E", "UTF8", "--locale=C"]),
        "initdb",
    )
    .map_err(explain)?;

    let socket_dir = base
        .to_str()
        .ok_or_else(|| format!("temporary directory {} is not UTF-8", base.display()))?;
    let mut attempt = 1;
    loop {
        // Another process may grab the port between dropping the listener
        // and the server binding it; a few retries cover that race.
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
             -c max_connections=300 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            // pg_ctl passes the options through /bin/sh.
            sh_quote(socket_dir)
        );
        let log_offset = fs::metadata(&log).map_or(0, |m| m.len());
        let result = run(
            pg_command(&bindir.join("pg_ctl"), as_postgres, &base)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .arg("-w")
                .arg("-o")
                .arg(&options)
                .arg("start"),
            "pg_ctl start",
        );
        match result {
            Ok(()) => {
                // eprintln! is captured by the test harness, so this shows
                // up only next to a failing test, where it helps.
                eprintln!(
                    "gino-testkit: started a throwaway PostgreSQL cluster on 127.0.0.1:{port} \
                     in {} ({} ms)",
                    base.display(),
                    started.elapsed().as_millis()
                );
                return Ok(Cluster { port });
            }
            Err(e) => {
                let new_log = fs::read(&log)
                    .map(|bytes| {
                        let start = usize::try_from(log_offset).unwrap_or(0).min(bytes.len());
                        String::from_utf8_lossy(&bytes[start..]).into_owned()
                    })
                    .unwrap_or_default();
                if attempt < START_ATTEMPTS && new_log.contains("Address already in use") {
                    attempt += 1;
                    continue;
                }
                return Err(explain(format!(
                    "{e}\nserver log:\n{}",
                    last_lines(&new_log, 20)
                )));
            }
        }
    }
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
    {
        if output.status.success() {
            let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !dir.is_empty() {
                candidates.push(PathBuf::from(dir));
            }
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

fn running_as_root() -> bool {
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

fn create_base_dir() -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let base = env::temp_dir().join(format!(
        "gino-testkit-{}-{}",
        std::process::id(),
        crate::base36(nanos)
    ));
    fs::create_dir(&base).map_err(|e| format!("could not create {}: {e}", base.display()))?;
    Ok(base)
}

fn free_port() -> Result<u16, String> {
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
    let quote = |path: &Path| {
        path.to_str()
            .map(sh_quote)
            .ok_or_else(|| format!("path {} is not UTF-8", path.display()))
    };
    // The shell itself must keep our user: as `postgres` it could not
    // `kill -0` a root process and would clean up at once.
    let stop = if as_postgres {
        format!("runuser -u postgres -- {}", quote(pg_ctl)?)
    } else {
        quote(pg_ctl)?
    };
    let script = format!(
        "trap '' HUP INT; \
         while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {stop} -D {data} -m immediate stop; \
         rm -rf {base}",
        pid = std::process::id(),
        data = quote(data)?,
        base = quote(base)?,
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
            let _ = fs::remove_dir_all(base);
            format!("could not start the cleanup watchdog: {e}")
        })
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
