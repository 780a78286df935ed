//! The workloads that need other programs: pgbench as the round-trip
//! floor of get-by-pk, and wrk driving `GET /users/{id}` through
//! gino-axum's per-request connection and through the same handler on raw
//! axum with a deadpool of diesel-async connections.

use std::process::Command;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Pool as DieselPool;

use crate::harness::{Kind, Row, Table};
use crate::schema::{USER_BY_ID, User, user_by_id};

fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// pgbench's average latency of a prepared get-by-pk on one connection
/// over `run` (whole seconds), or `None` when pgbench is missing.
pub async fn pgbench_floor(url: &str, run: Duration) -> Option<Duration> {
    if !installed("pgbench") {
        println!("pgbench not installed: no floor (apt-get install postgresql-contrib)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("gino-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let script = dir.join("get_by_pk.sql");
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, 10000)\n{};\n",
            USER_BY_ID.replace("$1", ":id")
        ),
    )
    .ok()?;
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("pgbench")
            .args(["-n", "-M", "prepared", "-c", "1", "-j", "1", "-T"])
            .arg(run.as_secs().max(1).to_string())
            .arg("-f")
            .arg(&script)
            .arg(&url)
            .output()
    })
    .await
    .ok()?
    .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let ms: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("latency average = "))?
        .trim_end_matches(" ms")
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}

static WEB_DB: gino::Gino = gino::Gino::new();

async fn gino_show(Path(id): Path<i32>) -> Result<Json<User>, gino_axum::Error> {
    Ok(Json(User::get_or_404(id).await?))
}

async fn raw_show(
    State(pool): State<DieselPool<AsyncPgConnection>>,
    Path(id): Path<i32>,
) -> Result<Json<User>, StatusCode> {
    let mut conn = pool
        .get()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    match user_by_id(id).get_result::<User>(&mut conn).await {
        Ok(user) => Ok(Json(user)),
        Err(diesel::result::Error::NotFound) => Err(StatusCode::NOT_FOUND),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The engine of a handler that runs gino without the request layer.
static PLAIN_DB: gino::Gino = gino::Gino::secondary();

async fn engine_show(Path(id): Path<i32>) -> Result<Json<User>, StatusCode> {
    match gino::Gino::first::<User, _>(&PLAIN_DB, user_by_id(id)).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Which part of gino-axum's cost is the request layer and which the
/// query path: four servers, wrk runs taking turns, req/s medians.
pub async fn diagnose(url: &str) {
    let gino_web = gino_web(url).await;
    PLAIN_DB
        .set_bind(
            gino::create_engine(url, gino::EngineOptions::new().max_size(10))
                .await
                .expect("engine"),
        )
        .await
        .expect("bind");
    let pool = crate::fast_pool(url, 10);
    let servers = [
        (
            "gino-axum layer + User::get_or_404",
            serve(
                axum::Router::new()
                    .route("/users/{id}", get(gino_show))
                    .layer(gino_web.layer()),
            )
            .await,
        ),
        (
            "gino-axum layer + raw deadpool handler",
            serve(
                axum::Router::new()
                    .route("/users/{id}", get(raw_show))
                    .with_state(pool.clone())
                    .layer(gino_web.layer()),
            )
            .await,
        ),
        (
            "no layer + gino db.first (pool per query)",
            serve(axum::Router::new().route("/users/{id}", get(engine_show))).await,
        ),
        (
            "raw axum + deadpool",
            serve(
                axum::Router::new()
                    .route("/users/{id}", get(raw_show))
                    .with_state(pool),
            )
            .await,
        ),
    ];
    let addrs: Vec<_> = servers.iter().map(|(_, addr)| *addr).collect();
    let rates = wrk_turns(&addrs, 0, 6).await;
    for ((name, _), runs) in servers.iter().zip(rates) {
        let rps = median(&runs, |r| r.rps).rps;
        let cpu = median(&runs, |r| r.cpu_per_request.as_secs_f64()).cpu_per_request;
        println!(
            "{name:<48} {rps:>8.0} req/s, server CPU {:>5.1} µs per request (medians of {})",
            cpu.as_secs_f64() * 1e6,
            runs.len()
        );
    }
}

/// One of [`diagnose`]'s servers on 127.0.0.1:3999 for `secs` seconds.
pub async fn serve_one(url: &str, which: &str, secs: u64) {
    let app = match which {
        "wrapped" => axum::Router::new(),
        "gino" => axum::Router::new()
            .route("/users/{id}", get(gino_show))
            .layer(gino_web(url).await.layer()),
        "layer" => axum::Router::new()
            .route("/users/{id}", get(raw_show))
            .with_state(crate::fast_pool(url, 10))
            .layer(gino_web(url).await.layer()),
        "engine" => {
            let engine = gino::create_engine(url, gino::EngineOptions::new().max_size(10))
                .await
                .expect("engine");
            PLAIN_DB.set_bind(engine).await.expect("bind");
            axum::Router::new().route("/users/{id}", get(engine_show))
        }
        _ => axum::Router::new()
            .route("/users/{id}", get(raw_show))
            .with_state(crate::fast_pool(url, 10)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3999")
        .await
        .expect("bind 127.0.0.1:3999");
    println!("serving {which} on 127.0.0.1:3999 for {secs} s");
    let serving = if which == "wrapped" {
        // gino's handler with the layer around the whole router.
        let app = axum::Router::new().route("/users/{id}", get(gino_show));
        let app = gino_web(url).await.wrap(app);
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
        tokio::spawn(axum::serve(listener, app).into_future())
    } else {
        tokio::spawn(axum::serve(listener, app).into_future())
    };
    let _ = tokio::time::timeout(Duration::from_secs(secs), serving).await;
}

/// gino-axum on `WEB_DB`, connected to `url`, with a pool of 10.
async fn gino_web(url: &str) -> gino_axum::Gino {
    let mut settings = gino::web::Settings::default();
    settings.dsn = Some(url.to_owned());
    settings.pool_max_size = 10;
    let gino_web = gino_axum::Gino::new(&WEB_DB, settings);
    gino_web.connect().await.expect("gino-axum connect");
    gino_web
}

/// wrk's script of random `GET /users/{id}`, removed when dropped.
struct WrkScript(std::path::PathBuf);

impl WrkScript {
    fn new() -> WrkScript {
        let path = std::env::temp_dir().join(format!("gino-bench-wrk-{}.lua", std::process::id()));
        std::fs::write(
            &path,
            "math.randomseed(42)\nrequest = function()\n  \
             return wrk.format(\"GET\", \"/users/\" .. math.random(1, 10000))\nend\n",
        )
        .expect("wrk script");
        WrkScript(path)
    }
}

impl Drop for WrkScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// wrk runs against each server in turn, `rounds` times (the first
/// `warmup` not kept); per server its runs.
async fn wrk_turns(
    addrs: &[std::net::SocketAddr],
    warmup: usize,
    rounds: usize,
) -> Vec<Vec<WrkRun>> {
    let script = WrkScript::new();
    let mut runs = vec![Vec::new(); addrs.len()];
    for round in 0..warmup + rounds {
        for k in 0..addrs.len() {
            let i = (round + k) % addrs.len();
            let run = wrk(addrs[i], &script.0).await;
            if round >= warmup {
                runs[i].push(run);
            }
        }
    }
    runs
}

async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// One wrk run: requests per second, the 99th percentile latency, and the
/// CPU time this process (the server under test: the others sit idle)
/// spent per request. On a machine that wrk and PostgreSQL share with the
/// server, req/s moves with whatever else runs; CPU per request much less.
async fn wrk(addr: std::net::SocketAddr, script: &std::path::Path) -> WrkRun {
    let script = script.to_owned();
    let cpu_before = process_cpu();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("wrk")
            .args(["-t", "1", "-c", "16", "-d", "2s", "--latency", "-s"])
            .arg(&script)
            .arg(format!("http://{addr}/"))
            .output()
            .expect("wrk")
    })
    .await
    .expect("wrk thread");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains("Non-2xx"),
        "every request must succeed:\n{text}"
    );
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_wrk_duration(v.trim()))
        .unwrap_or_default();
    let requests: u32 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk's output:\n{text}"));
    let cpu = process_cpu().saturating_sub(cpu_before);
    WrkRun {
        rps,
        p99,
        cpu_per_request: cpu / requests.max(1),
    }
}

#[derive(Clone, Copy)]
struct WrkRun {
    rps: f64,
    p99: Duration,
    cpu_per_request: Duration,
}

/// User and system CPU time of this process so far (all its threads).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line, in USER_HZ ticks (100 a second
    // on Linux's ABI).
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(2))
        .into_iter()
        .flatten()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The median of `values`.
fn median<T: Copy>(values: &[T], key: impl Fn(&T) -> f64) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted[sorted.len() / 2]
}

fn parse_wrk_duration(v: &str) -> Duration {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1.0)
    };
    Duration::from_secs_f64(number.parse::<f64>().unwrap_or(0.0) * scale)
}

/// The web target is ≥ 0.95× the raw handler's req/s: as a time per
/// request, at most 1 / 0.95 of the raw one's.
const WEB_TARGET: f64 = 1.0 / 0.95;

/// `GET /users/{id}` (random ids) through both servers, wrk runs taking
/// turns; per contender the median of the runs' time per request
/// (1 / req/s) and their p99 latency.
pub async fn get_user(url: &str) -> Table {
    let title = "web: GET /users/{id}, wrk, 16 connections (time per request = 1 / req/s)";
    if !installed("wrk") {
        println!("wrk not installed: no web workload (apt-get install wrk)");
        return Table::new(
            title,
            Vec::new(),
            Some("not run: wrk is not installed".to_owned()),
        )
        .with_target(WEB_TARGET);
    }
    let gino_web = gino_web(url).await;
    let gino_addr = serve(
        axum::Router::new()
            .route("/users/{id}", get(gino_show))
            .layer(gino_web.layer()),
    )
    .await;
    let pool = crate::fast_pool(url, 10);
    let raw_addr = serve(
        axum::Router::new()
            .route("/users/{id}", get(raw_show))
            .with_state(pool),
    )
    .await;
    let names = [
        "gino-axum (lazy connection per request)",
        "axum + deadpool diesel-async (Fast)",
    ];
    // Two contenders: alternating which goes first is already every order.
    // Many short runs rather than a few long ones: the machine's load
    // drifts over seconds, and more turns spread the drift over both.
    let mut runs = wrk_turns(&[gino_addr, raw_addr], 1, 11).await;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut cpu = Vec::new();
    for (i, kept) in runs.iter_mut().enumerate() {
        kept.sort_by(|a, b| b.rps.total_cmp(&a.rps));
        let per = |rps: f64| Duration::from_secs_f64(1.0 / rps);
        let middle = kept[kept.len() / 2];
        let server_cpu = median(kept, |r| r.cpu_per_request.as_secs_f64()).cpu_per_request;
        cpu.push(server_cpu.as_secs_f64());
        rows.push(Row {
            name: names[i],
            kind: if i == 0 { Kind::Gino } else { Kind::Diesel },
            median: per(middle.rps),
            p10: per(kept[0].rps),
            p90: per(kept[kept.len() - 1].rps),
        });
        notes.push(format!(
            "{}: {:.0} req/s, p99 {:.2} ms, server CPU {:.1} µs per request",
            names[i],
            middle.rps,
            middle.p99.as_secs_f64() * 1e3,
            server_cpu.as_secs_f64() * 1e6
        ));
    }
    notes.push(format!(
        "server CPU per request, gino / diesel-async: {:.2}",
        cpu[0] / cpu[1]
    ));
    gino_web.close().await;
    let table = Table::new(title, rows, Some(notes.join("; "))).with_target(WEB_TARGET);
    table.print_public();
    table
}
