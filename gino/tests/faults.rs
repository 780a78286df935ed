//! Faults a careful user meets: a cancel request that is lost, a backend
//! killed under a connection, values that must come back exactly.

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::Integer;
#[cfg(feature = "json")]
use diesel::sql_types::Text;
use gino::prelude::*;
use gino::{EngineOptions, Error, create_engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of `upstream` that swallows cancel requests (as
/// PgBouncer 1.18 does with tokio-postgres's) and passes everything else.
async fn cancel_dropping_proxy(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 8];
                if client.read_exact(&mut head).await.is_err() {
                    return;
                }
                // CancelRequest: length 16, code 80877102.
                if head == [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e] {
                    // Keep it open and say nothing, as the lost cancel did.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

/// A TCP proxy in front of `upstream`: what the client sends goes to the
/// server as it is, and `to_client` relays each connection's way back
/// (the server's side to read, the client's to write).
async fn proxy<F, Fut>(upstream: std::net::SocketAddr, to_client: F) -> std::net::SocketAddr
where
    F: Fn(tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut client_read, client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                let _ = server_write.shutdown().await;
            });
            tokio::spawn(to_client(server_read, client_write));
        }
    });
    addr
}

/// A TCP proxy in front of `upstream` that, once `silence` is set, passes
/// the server's next `ErrorResponse` and then nothing more: a server (or a
/// network) gone quiet between an error and its `ReadyForQuery`.
async fn silent_after_error_proxy(
    upstream: std::net::SocketAddr,
    silence: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::net::SocketAddr {
    use std::sync::atomic::Ordering;
    proxy(upstream, move |mut server_read, mut client_write| {
        let silence = silence.clone();
        async move {
            // The server's side after the startup is typed messages.
            loop {
                let mut header = [0u8; 5];
                if server_read.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                let mut body = vec![0u8; len as usize - 4];
                if server_read.read_exact(&mut body).await.is_err() {
                    return;
                }
                let error = header[0] == b'E';
                if client_write
                    .write_all(&[&header[..], &body].concat())
                    .await
                    .is_err()
                {
                    return;
                }
                if error && silence.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
            }
        }
    })
    .await
}

fn server_addr(url: &str) -> std::net::SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("the test server is reached over TCP, not {other:?}"),
    };
    use std::net::ToSocketAddrs;
    (host.as_str(), config.get_ports()[0])
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}

/// An engine on `db` whose cancel requests are lost on the way
/// ([`cancel_dropping_proxy`]).
async fn losing_cancels(db: &gino_testkit::TestDatabase, options: EngineOptions) -> gino::Engine {
    let proxy = cancel_dropping_proxy(server_addr(db.url())).await;
    let mut url: url_parts::Url = db.url().into();
    url.addr = proxy.to_string();
    create_engine(&format!("{url}?sslmode=disable"), options)
        .await
        .unwrap()
}

/// A statement's error with nothing after it (its `ReadyForQuery` never
/// comes) still ends by the statement's timeout and a grace, with the
/// error; the connection, its state unknown, is not used again.
#[tokio::test]
async fn an_error_the_server_goes_silent_after_ends_by_the_timeout() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = gino_testkit::TestDatabase::create().await;
    let silence = Arc::new(AtomicBool::new(false));
    let proxy = silent_after_error_proxy(server_addr(db.url()), silence.clone()).await;
    let mut url: url_parts::Url = db.url().into();
    url.addr = proxy.to_string();
    let engine = create_engine(
        &format!("{url}?sslmode=disable"),
        EngineOptions::new().max_size(1),
    )
    .await
    .unwrap();
    let pid = common::backend_pid(&engine).await;
    silence.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let failed = tokio::time::timeout(
        Duration::from_secs(20),
        diesel::select(sql::<Integer>("1 / 0"))
            .gino()
            .bind(&engine)
            .timeout(Duration::from_millis(300))
            .one::<i32>(),
    )
    .await
    .expect("waited past the timeout for a ReadyForQuery that never comes");
    let err = failed.unwrap_err();
    assert_eq!(err.sqlstate(), Some("22012"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    silence.store(false, Ordering::SeqCst);
    assert_ne!(
        common::backend_pid(&engine).await,
        pid,
        "the silent connection was used again"
    );
    engine.close().await;
}

#[tokio::test]
async fn a_lost_cancel_still_ends_the_wait_at_the_deadline_plus_a_grace() {
    let db = gino_testkit::TestDatabase::create().await;
    let engine = losing_cancels(
        &db,
        EngineOptions::new()
            .max_size(2)
            .min_size(1)
            .application_name("lost_cancel"),
    )
    .await;
    let started = Instant::now();
    let result = diesel::sql_query("SELECT pg_sleep(5)")
        .gino()
        .bind(&engine)
        .timeout(Duration::from_millis(200))
        .status()
        .await;
    let waited = started.elapsed();
    assert!(matches!(result, Err(Error::QueryTimeout(_))), "{result:?}");
    assert!(
        waited < Duration::from_secs(3),
        "waited {waited:?} for a statement whose cancel was lost"
    );
    // The interrupted connection was closed, not pooled: the next query
    // gets a clean one at once.
    let started = Instant::now();
    let n: i32 = engine
        .one(diesel::select(sql::<Integer>("1")))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    common::assert_pool_clean(&engine).await;
    engine.close().await;
}

/// Whether `SELECT pg_sleep(seconds)` on `on` was dropped while it ran.
async fn abandoned<'a>(on: impl Into<gino::Bind<'a>>, seconds: u32) -> bool {
    let sleep = diesel::sql_query(format!("SELECT pg_sleep({seconds})"));
    let run = sleep.gino().bind(on).status();
    tokio::time::timeout(Duration::from_millis(50), run)
        .await
        .is_err()
}

/// Statements nobody awaits any more whose cancel requests are lost: given
/// back, the connection is closed once the cancel's grace has passed, not
/// pooled with the statement still running; kept, the next statement
/// waits for the abandoned one after all, since nothing else can end it.
#[tokio::test]
async fn a_lost_cancel_of_an_abandoned_statement() {
    let db = gino_testkit::TestDatabase::create().await;
    let engine = losing_cancels(&db, EngineOptions::new().max_size(1)).await;
    let given_back = common::backend_pid(&engine).await;
    assert!(abandoned(&engine, 3).await);
    let next = common::backend_pid(&engine).await;
    assert_ne!(next, given_back, "pooled with its statement still running");
    common::assert_pool_clean(&engine).await;

    let conn = engine.acquire().await.unwrap();
    let kept = common::backend_pid(&conn).await;
    let started = Instant::now();
    assert!(abandoned(&conn, 2).await);
    assert_eq!(common::backend_pid(&conn).await, kept);
    // The server times its sleep by the wall clock, this by the monotonic
    // one: they may differ by a few milliseconds (a clean-clone run saw
    // 1.9986 s). Not waiting would take the 50 ms of the abandoning.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "the abandoned statement did not end: {:?}",
        started.elapsed()
    );
    conn.release().await.unwrap();
    engine.close().await;
}

/// A `postgres://user@addr/db?query` URL split at its address.
mod url_parts {
    pub struct Url {
        pub head: String,
        pub addr: String,
        pub tail: String,
    }

    impl From<&str> for Url {
        fn from(url: &str) -> Self {
            let at = url.find('@').map_or("postgres://".len(), |i| i + 1);
            let end = url[at..].find('/').map_or(url.len(), |i| at + i);
            Url {
                head: url[..at].to_owned(),
                addr: url[at..end].to_owned(),
                tail: url[end..].split('?').next().unwrap().to_owned(),
            }
        }
    }

    impl std::fmt::Display for Url {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}{}{}", self.head, self.addr, self.tail)
        }
    }
}

#[tokio::test]
async fn a_killed_backend_is_a_connection_lost_error_and_the_engine_recovers() {
    let setup = common::setup_with(EngineOptions::new().max_size(2)).await;
    let engine = &setup.engine;
    let conn = engine.acquire().await.unwrap();
    let pid = common::backend_pid(&conn).await;
    let observer = common::observer(&setup).await;
    terminate(&observer, pid).await;
    let lost = common::try_backend_pid(&conn).await.unwrap_err();
    assert!(lost.is_connection_lost(), "{lost:?}");
    assert!(lost.is_retryable(), "{lost:?}");
    drop(conn);
    // The engine goes on with other connections.
    let again = common::backend_pid(engine).await;
    assert_ne!(again, pid);
    for not_lost in [
        Error::NoResultFound,
        Error::Configuration("x".into()),
        Error::QueryTimeout(Duration::from_secs(1)),
    ] {
        assert!(!not_lost.is_connection_lost() && !not_lost.is_retryable());
    }
    assert!(Error::PoolTimeout(Duration::from_secs(1)).is_retryable());
    observer.close().await;
}

#[cfg(feature = "json")]
#[tokio::test]
async fn floats_and_awkward_text_come_back_exactly() {
    let setup = common::setup().await;
    let engine = &setup.engine;
    // xorshift: reproducible, and it reaches all of f64's bit patterns.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut floats: Vec<f64> = (0..2000)
        .map(|_| f64::from_bits(next()))
        .filter(|f| f.is_finite())
        .collect();
    floats.extend([0.1, 1.0 / 3.0, f64::MAX, f64::MIN_POSITIVE, -0.0, 5e-324]);
    let document = serde_json::json!({ "values": floats, "nested": { "x": floats[0] } });
    let back: serde_json::Value = engine
        .one(diesel::select(
            sql::<diesel::sql_types::Jsonb>("")
                .bind::<diesel::sql_types::Jsonb, _>(document.clone())
                .sql("::jsonb"),
        ))
        .await
        .unwrap();
    let returned: Vec<f64> = back["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let changed = floats
        .iter()
        .zip(&returned)
        .filter(|(a, b)| a.to_bits() != b.to_bits() && !(**a == 0.0 && **b == 0.0))
        .count();
    assert_eq!(changed, 0, "{changed} of {} floats changed", floats.len());

    for text in [
        "it's",
        "back\\slash",
        ":name $1 ?",
        "\u{0}".trim_start_matches('\u{0}'),
        "emoji 🦀 and ünïcödé",
        "'; DROP TABLE users; --",
    ] {
        let back: String = engine
            .one(diesel::select(
                sql::<Text>("").bind::<Text, _>(text.to_owned()),
            ))
            .await
            .unwrap();
        assert_eq!(back, text);
        let raw: String = engine
            .one(gino::text("SELECT :v::text AS v").bind::<Text, _>("v", text.to_owned()))
            .await
            .map(|row: TextRow| row.v)
            .unwrap();
        assert_eq!(raw, text);
    }
}

#[cfg(feature = "json")]
#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

#[tokio::test]
async fn idle_connections_of_killed_backends_are_never_handed_out() {
    let setup = common::setup_with(EngineOptions::new().max_size(4).min_size(4)).await;
    let engine = &setup.engine;
    let observer = common::observer(&setup).await;
    for round in 0..3 {
        // Every pooled connection idle, then every backend terminated.
        let held =
            futures_util::future::join_all((0..4).map(|_| engine.acquire().into_future())).await;
        drop(held);
        let killed: i64 = observer
            .one(diesel::select(sql::<diesel::sql_types::BigInt>(
                "count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )))
            .await
            .unwrap();
        assert!(killed >= 4, "round {round}: killed {killed}");
        // Once the backends are gone (the kill landed while they were
        // idle), as many queries as the pool holds, at once.
        loop {
            let left: i64 = observer
                .one(diesel::select(sql::<diesel::sql_types::BigInt>(
                    "count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )))
                .await
                .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let results = futures_util::future::join_all(
            (0..4).map(|_| engine.one::<i32, _>(diesel::select(sql::<Integer>("1")))),
        )
        .await;
        for result in results {
            assert_eq!(result.unwrap(), 1, "round {round}");
        }
    }
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_under_load_is_survived_without_a_new_engine() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let cluster = Arc::new(
        gino_testkit::Cluster::builder()
            .start()
            .expect("a cluster of the test's own"),
    );
    let engine = create_engine(
        &cluster.url_for("postgres"),
        EngineOptions::new()
            .max_size(4)
            .min_size(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    engine
        .status(diesel::sql_query("CREATE TABLE ledger (n int PRIMARY KEY)"))
        .await
        .unwrap();

    // Writers insert increasing numbers; every insert reported committed
    // must be there afterwards.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (engine, stop, failures, next) =
                (engine.clone(), stop.clone(), failures.clone(), next.clone());
            tokio::spawn(async move {
                let mut committed = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed) as i32;
                    let insert = engine
                        .status(
                            diesel::sql_query("INSERT INTO ledger VALUES ($1)")
                                .bind::<Integer, _>(n),
                        )
                        .await;
                    match insert {
                        Ok(_) => committed.push(n),
                        Err(e) => {
                            assert!(e.is_connection_lost(), "unexpected error: {e:?}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                committed
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarting = cluster.clone();
    tokio::task::spawn_blocking(move || {
        restarting.stop().expect("stop");
        restarting.start().expect("start again");
    })
    .await
    .unwrap();
    let failed_during = failures.load(Ordering::Relaxed);
    // After the restart, work goes through again on the same engine.
    let started = Instant::now();
    loop {
        match engine
            .one::<i32, _>(diesel::select(sql::<Integer>("1")))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_connection_lost(), "{e:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "never recovered"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let before_more = failures.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut committed = Vec::new();
    for writer in writers {
        committed.extend(writer.await.unwrap());
    }
    let failed_after = failures.load(Ordering::Relaxed) - before_more;
    assert_eq!(failed_after, 0, "failures once the server was back");
    let stored: Vec<i32> = engine
        .all(diesel::select(sql::<Integer>("n FROM ledger ORDER BY n")))
        .await
        .unwrap();
    let missing: Vec<&i32> = committed.iter().filter(|n| !stored.contains(n)).collect();
    assert!(missing.is_empty(), "committed but lost: {missing:?}");
    eprintln!(
        "restart under load: {} inserts committed, {failed_during} failed during the restart, \
         {failed_after} after",
        committed.len()
    );
    common::assert_pool_clean(&engine).await;
    engine.close().await;
}

#[derive(Model, Debug, Clone)]
#[gino(table = "chaos")]
pub struct Chaos {
    #[gino(primary_key, autoincrement = false)]
    pub id: i32,
}

/// One of the ways work reaches the database, inserting `id`, on `engine`.
async fn chaos_step(engine: &gino::Engine, kind: u64, id: i32) -> gino::Result<()> {
    let insert = move || diesel::sql_query("INSERT INTO chaos VALUES ($1)").bind::<Integer, _>(id);
    match kind {
        0 => {
            engine
                .transaction(async {
                    engine.status(insert()).await?;
                    tokio::task::yield_now().await;
                    Ok::<_, Error>(())
                })
                .await
        }
        1 => {
            let tx = engine.begin().await?;
            engine.status(insert()).await?;
            tx.commit().await
        }
        2 => {
            engine
                .transaction(async {
                    engine
                        .transaction(async { engine.status(insert()).await })
                        .await?;
                    Ok::<_, Error>(())
                })
                .await
        }
        3 => {
            engine
                .transaction(async {
                    let mut rows = engine
                        .iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 50)")))
                        .await?;
                    while rows.next().await?.is_some() {}
                    engine.status(insert()).await?;
                    Ok::<_, Error>(())
                })
                .await
        }
        4 => {
            let conn = engine.acquire().lazy(true).await?;
            conn.status(insert()).await?;
            conn.release().await
        }
        5 => {
            let outer = engine.acquire().await?;
            let inner = engine.acquire().reuse(true).await?;
            inner.status(insert()).await?;
            outer.release().await
        }
        6 => Chaos::insert_many(vec![Chaos { id }])
            .bind(engine)
            .await
            .map(drop),
        _ => engine.status(insert()).await.map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_cancellations_leave_nothing_open_and_lose_nothing() {
    let setup =
        common::setup_with(EngineOptions::new().max_size(4).application_name("chaos")).await;
    let engine = &setup.engine;
    engine
        .status(diesel::sql_query("CREATE TABLE chaos (id int PRIMARY KEY)"))
        .await
        .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    // Patience is drawn from a range that adapts to this machine: a step
    // that must open a connection (after a cancelled one was closed) takes
    // several milliseconds on a slow machine and far less on a fast one,
    // and both outcomes must stay common (a fixed 6 ms range let almost
    // nothing finish on a slow machine).
    let mut range = 6000u64;
    let (mut committed, mut dropped, mut failed) = (Vec::new(), 0, 0);
    let (mut batch_done, mut batch_dropped) = (0, 0);
    for id in 0..1000 {
        if id % 100 == 99 {
            if batch_done < 25 {
                range *= 2;
            } else if batch_dropped < 25 {
                range = (range / 2).max(100);
            }
            (batch_done, batch_dropped) = (0, 0);
        }
        let kind = random(8);
        let patience = Duration::from_micros(random(range));
        match tokio::time::timeout(patience, chaos_step(engine, kind, id)).await {
            Ok(Ok(())) => {
                committed.push(id);
                batch_done += 1;
            }
            Ok(Err(e)) => {
                failed += 1;
                assert!(
                    matches!(e, Error::PoolTimeout(_) | Error::QueryTimeout(_)),
                    "kind {kind}: {e:?}"
                );
            }
            Err(_) => {
                dropped += 1;
                batch_dropped += 1;
            }
        }
    }
    eprintln!(
        "random cancellation: {} committed, {dropped} dropped, {failed} failed \
         (patience up to {range} µs)",
        committed.len()
    );
    // Both outcomes must be common for the test to mean anything.
    assert!(
        dropped > 50,
        "the patience range drops a good share ({dropped})"
    );
    assert!(
        committed.len() > 50,
        "and lets a good share finish ({})",
        committed.len()
    );
    let states = common::session_states(engine, "chaos").await;
    assert!(
        !states.iter().any(|s| s.contains("transaction")),
        "{states:?}"
    );
    common::assert_pool_clean(engine).await;
    let stored: Vec<i32> = engine
        .all(diesel::select(sql::<Integer>("id FROM chaos")))
        .await
        .unwrap();
    let lost: Vec<&i32> = committed.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "reported committed but missing: {lost:?}");
}

/// Terminates backend `pid` from `observer`.
async fn terminate(observer: &gino::Engine, pid: i32) {
    let killed: bool = observer
        .one(diesel::select(
            sql::<diesel::sql_types::Bool>("pg_terminate_backend(")
                .bind::<Integer, _>(pid)
                .sql(")"),
        ))
        .await
        .unwrap();
    assert!(killed);
}

/// [`terminate`]s backend `pid` and waits until it is gone and its goodbye
/// has reached the client.
async fn kill_backend(observer: &gino::Engine, pid: i32) {
    terminate(observer, pid).await;
    loop {
        let left: i64 = observer
            .one(diesel::select(
                sql::<diesel::sql_types::BigInt>("count(*) FROM pg_stat_activity WHERE pid = ")
                    .bind::<Integer, _>(pid),
            ))
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_statement_that_never_reached_the_server_goes_to_a_fresh_connection_or_says_so() {
    let setup = common::setup().await;
    let engine = &setup.engine;
    let observer = common::observer(&setup).await;

    // A lazy connection (what a web request holds) outside a transaction:
    // the next statement goes to another backend instead of failing.
    let conn = engine.acquire().lazy(true).await.unwrap();
    let first = common::backend_pid(&conn).await;
    kill_backend(&observer, first).await;
    let second = common::backend_pid(&conn).await;
    assert_ne!(first, second);
    conn.release().await.unwrap();

    // Inside a transaction the backend cannot change: the statement fails,
    // and the error says it never ran.
    let conn = engine.acquire().lazy(true).await.unwrap();
    let tx = conn.begin().await.unwrap();
    let pid = common::backend_pid(&conn).await;
    kill_backend(&observer, pid).await;
    let err = common::try_backend_pid(&conn).await.unwrap_err();
    assert!(matches!(err, Error::NotSent(_)), "{err:?}");
    assert!(err.is_connection_lost() && err.is_retryable(), "{err:?}");
    // The connection error it stands for is kept, as its source.
    let Error::NotSent(lost) = &err else {
        unreachable!()
    };
    assert!(lost.is_connection_lost(), "{lost:?}");
    assert!(std::error::Error::source(&err).is_some());
    drop(tx);
    drop(conn);

    // Nor is a lazy connection whose session the caller changed (the
    // setting would be gone on the new backend) or where the caller began
    // a transaction in SQL (its statements would autocommit there).
    for change in [
        "SET application_name = 'changed'",
        "SELECT set_config('app.tenant', '42', false)",
        "BEGIN",
    ] {
        let conn = engine.acquire().lazy(true).await.unwrap();
        conn.status(gino::text(change)).await.unwrap();
        let pid = common::backend_pid(&conn).await;
        kill_backend(&observer, pid).await;
        let err = common::try_backend_pid(&conn).await.unwrap_err();
        assert!(matches!(err, Error::NotSent(_)), "{change}: {err:?}");
        drop(conn);
    }

    // An explicitly acquired connection promises its session: it is not
    // switched either.
    let conn = engine.acquire().await.unwrap();
    let pid = common::backend_pid(&conn).await;
    kill_backend(&observer, pid).await;
    let err = common::try_backend_pid(&conn).await.unwrap_err();
    assert!(matches!(err, Error::NotSent(_)), "{err:?}");
    drop(conn);
    observer.close().await;
}

#[tokio::test]
async fn a_statement_that_may_have_run_is_neither_retried_nor_called_unsent() {
    let setup = common::setup().await;
    let engine = &setup.engine;
    let observer = common::observer(&setup).await;
    engine
        .status(gino::text("CREATE TABLE marks (n int)"))
        .await
        .unwrap();
    let conn = engine.acquire().lazy(true).await.unwrap();
    let pid = common::backend_pid(&conn).await;
    let slow_insert = conn.status(gino::text("INSERT INTO marks SELECT 1 FROM pg_sleep(3)"));
    let kill = async {
        // Killed while the INSERT runs: it was sent, and may have run.
        loop {
            let active: i64 = observer
                .one(diesel::select(
                    sql::<diesel::sql_types::BigInt>(
                        "count(*) FROM pg_stat_activity WHERE state = 'active' AND pid = ",
                    )
                    .bind::<Integer, _>(pid),
                ))
                .await
                .unwrap();
            if active == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        kill_backend(&observer, pid).await;
    };
    let (result, ()) = tokio::join!(slow_insert, kill);
    let err = result.unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(!matches!(err, Error::NotSent(_)), "it was sent: {err:?}");
    // Not run again behind the caller's back: the row is not there.
    let marks: i64 = observer
        .one(diesel::select(sql::<diesel::sql_types::BigInt>(
            "count(*) FROM marks",
        )))
        .await
        .unwrap();
    assert_eq!(marks, 0);
    // The lazy connection goes on, on another backend.
    assert_ne!(common::backend_pid(&conn).await, pid);
    drop(conn);
    observer.close().await;
}

diesel::table! {
    numbers (n) {
        n -> Integer,
    }
}

/// A statement the driver refuses to encode (more parameters than the
/// protocol can count) never left the client: it is a query error that
/// says what to do, not a lost connection to retry, and the connection
/// goes on.
#[tokio::test]
async fn a_statement_too_large_to_send_is_no_lost_connection() {
    let setup = common::setup_with(EngineOptions::new().max_size(1)).await;
    let engine = &setup.engine;
    engine
        .status(diesel::sql_query(
            "CREATE TABLE numbers (n integer PRIMARY KEY)",
        ))
        .await
        .unwrap();
    let pid = common::backend_pid(engine).await;
    let rows: Vec<_> = (0..70_000).map(|n| numbers::n.eq(n)).collect();
    let refused = engine
        .status(diesel::insert_into(numbers::table).values(&rows))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Query(_)), "{refused:?}");
    assert!(!refused.is_connection_lost(), "{refused:?}");
    assert!(!refused.is_retryable(), "{refused:?}");
    assert!(refused.to_string().contains("65535"), "{refused}");
    assert_eq!(
        common::backend_pid(engine).await,
        pid,
        "the connection was closed"
    );
    let count: i64 = engine.one(numbers::table.count()).await.unwrap();
    assert_eq!(count, 0);
    common::assert_pool_clean(engine).await;
}

fn search_path() -> diesel::dsl::select<diesel::expression::SqlLiteral<diesel::sql_types::Text>> {
    diesel::select(sql::<diesel::sql_types::Text>(
        "current_setting('search_path')",
    ))
}

/// Runs `sql` in a transaction that commits.
async fn run_in_a_transaction(engine: &gino::Engine, sql: &str) {
    engine
        .transaction(engine.status(diesel::sql_query(sql)))
        .await
        .unwrap();
}

/// Runs `change` and checks that its connection was closed when given
/// back: the next statement runs on another backend.
async fn assert_not_handed_on_after(engine: &gino::Engine, change: &str) {
    let before = common::backend_pid(engine).await;
    engine.status(diesel::sql_query(change)).await.unwrap();
    assert_ne!(
        common::backend_pid(engine).await,
        before,
        "handed on after {change}"
    );
}

/// A connection whose session a statement changed for good (a `SET`
/// outside a transaction, a `LISTEN`) is closed when given back, not
/// handed to the next user with the change: asyncpg resets such a session
/// on release; closing keeps `on_connect`'s settings, which a reset would
/// undo. A `SET LOCAL` ends with its transaction and keeps the connection.
#[tokio::test]
async fn a_session_changed_for_good_is_not_handed_on() {
    let setup = common::setup_with(EngineOptions::new().max_size(1).on_connect(|conn| {
        use diesel_async::SimpleAsyncConnection;
        Box::pin(async move { conn.batch_execute("SET search_path TO app, public").await })
    }))
    .await;
    let engine = &setup.engine;
    let baseline: String = engine.one(search_path()).await.unwrap();
    assert_eq!(
        baseline, "app, public",
        "on_connect's setting is every user's"
    );
    let pid = common::backend_pid(engine).await;
    assert_eq!(
        common::backend_pid(engine).await,
        pid,
        "kept with on_connect's SET"
    );

    engine
        .status(diesel::sql_query("SET search_path TO pg_catalog"))
        .await
        .unwrap();
    assert_eq!(
        engine.one::<String, _>(search_path()).await.unwrap(),
        baseline
    );
    let next = common::backend_pid(engine).await;
    assert_ne!(next, pid, "handed on with its search_path");

    engine
        .status(diesel::sql_query("LISTEN gino_channel"))
        .await
        .unwrap();
    assert_ne!(
        common::backend_pid(engine).await,
        next,
        "handed on listening"
    );

    for change in [
        "PREPARE gino_prepared AS SELECT 1",
        "DEALLOCATE ALL",
        "DISCARD PLANS",
    ] {
        assert_not_handed_on_after(engine, change).await;
    }

    // A prepared statement the session does not have (26000): whatever
    // lost it, the connection's own statement cache may have lost it too.
    let before = common::backend_pid(engine).await;
    let missing = engine
        .status(diesel::sql_query("EXECUTE gino_never_prepared"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, Error::Database(e) if e.code() == "26000"),
        "{missing:?}"
    );
    assert_ne!(
        common::backend_pid(engine).await,
        before,
        "handed on after a lost prepared statement"
    );

    let kept = common::backend_pid(engine).await;
    run_in_a_transaction(engine, "SET LOCAL search_path TO pg_catalog").await;
    assert_eq!(
        common::backend_pid(engine).await,
        kept,
        "SET LOCAL ended with its transaction"
    );
    assert_eq!(
        engine.one::<String, _>(search_path()).await.unwrap(),
        baseline
    );
    common::assert_pool_clean(engine).await;
}

/// Session state no reply shows is not handed on either: a `SET` (not
/// `LOCAL`) inside a transaction that commits (it answers `SET` as `SET
/// LOCAL` does, and outlives the transaction), and a setting, a lock or a
/// temporary table made by a statement answering `SELECT` or `CREATE
/// TABLE`. Their local kinds keep the connection. Statements prepared
/// and kept, or sent unnamed through the protocol rewrite (the statement
/// cache off, as for PgBouncer), alike.
#[tokio::test]
async fn session_state_no_reply_shows_is_not_handed_on() {
    for cache in [true, false] {
        let setup =
            common::setup_with(EngineOptions::new().max_size(1).statement_cache(cache)).await;
        session_state_is_not_handed_on(&setup.engine).await;
    }
}

async fn session_state_is_not_handed_on(engine: &gino::Engine) {
    let baseline: String = engine.one(search_path()).await.unwrap();
    let tenant = || {
        diesel::select(sql::<diesel::sql_types::Text>(
            "coalesce(current_setting('app.tenant', true), '')",
        ))
    };

    let pid = common::backend_pid(engine).await;
    run_in_a_transaction(engine, "SET search_path TO pg_catalog").await;
    assert_eq!(
        engine.one::<String, _>(search_path()).await.unwrap(),
        baseline
    );
    assert_ne!(
        common::backend_pid(engine).await,
        pid,
        "handed on with the search_path a committed transaction set"
    );

    for change in [
        "SELECT set_config('app.tenant', 'acme', false)",
        "SELECT pg_advisory_lock(42)",
        "CREATE TEMP TABLE scratch (id int)",
        "SELECT 1 AS id INTO TEMP copied",
    ] {
        assert_not_handed_on_after(engine, change).await;
        assert_eq!(engine.one::<String, _>(tenant()).await.unwrap(), "");
    }
    // Bound, its value decides: `false` keeps the setting for the session.
    let before = common::backend_pid(engine).await;
    engine
        .status(
            diesel::sql_query("SELECT set_config('app.tenant', $1, $2)")
                .bind::<diesel::sql_types::Text, _>("acme")
                .bind::<diesel::sql_types::Bool, _>(false),
        )
        .await
        .unwrap();
    assert_ne!(
        common::backend_pid(engine).await,
        before,
        "handed on after set_config(.., .., $2) bound false"
    );
    assert_eq!(engine.one::<String, _>(tenant()).await.unwrap(), "");

    let kept = common::backend_pid(engine).await;
    engine
        .transaction(async {
            engine
                .status(diesel::sql_query(
                    "SELECT set_config('app.tenant', 'acme', true)",
                ))
                .await?;
            // As diesel's `set_config` function sends it: bound.
            engine
                .status(
                    diesel::sql_query("SELECT set_config('app.tenant', $1, $2)")
                        .bind::<diesel::sql_types::Text, _>("acme")
                        .bind::<diesel::sql_types::Bool, _>(true),
                )
                .await?;
            engine
                .status(diesel::sql_query(
                    "CREATE TEMP TABLE staging (id int) ON COMMIT DROP",
                ))
                .await?;
            engine
                .status(diesel::sql_query("SELECT pg_advisory_xact_lock(42)"))
                .await
        })
        .await
        .unwrap();
    assert_eq!(
        common::backend_pid(engine).await,
        kept,
        "local settings and locks ended with their transaction"
    );
    common::assert_pool_clean(engine).await;
}

/// A setting the server reports (its time zone, date style, application
/// name, ...) changed where the client's SQL does not show it, in a `DO`
/// block or a function, is not handed on: the server's own report of it
/// (`ParameterStatus`) is what counts. Changed back, or changed for a
/// transaction only, it keeps the connection.
#[tokio::test]
async fn a_reported_setting_changed_out_of_sight_is_not_handed_on() {
    let setup = common::setup_with(EngineOptions::new().max_size(1)).await;
    let engine = &setup.engine;
    let zone = || {
        diesel::select(sql::<diesel::sql_types::Text>(
            "current_setting('TimeZone')",
        ))
    };
    let baseline: String = engine.one(zone()).await.unwrap();
    engine
        .status(diesel::sql_query(
            "CREATE FUNCTION to_tokyo() RETURNS void LANGUAGE sql \
             AS $$ SELECT set_config('Time' || 'Zone', 'Asia/Tokyo', false) $$",
        ))
        .await
        .unwrap();
    for change in [
        "DO $$ BEGIN EXECUTE 'SET TimeZone = ''Asia/Tokyo'''; END $$",
        "SELECT to_tokyo()",
        "DO $$ BEGIN PERFORM set_config('application_name', 'elsewhere', false); END $$",
    ] {
        assert_not_handed_on_after(engine, change).await;
        assert_eq!(engine.one::<String, _>(zone()).await.unwrap(), baseline);
    }
    let kept = common::backend_pid(engine).await;
    run_in_a_transaction(
        engine,
        "DO $$ BEGIN PERFORM set_config('TimeZone', 'Asia/Tokyo', true); END $$",
    )
    .await;
    engine
        .status(diesel::sql_query(format!(
            "DO $$ BEGIN PERFORM set_config('TimeZone', 'Asia/Tokyo', false); \
             PERFORM set_config('TimeZone', '{baseline}', false); END $$"
        )))
        .await
        .unwrap();
    assert_eq!(
        common::backend_pid(engine).await,
        kept,
        "a setting for a transaction, or set back, keeps the connection"
    );
    common::assert_pool_clean(engine).await;
}

diesel::table! {
    retyped (id) {
        id -> Integer,
        v -> Text,
    }
}

/// A statement prepared and kept before DDL changed its result type fails
/// once (0A000), and its connection is not pooled with the outdated plan:
/// the next run prepares it afresh.
#[tokio::test]
async fn a_plan_outdated_by_ddl_fails_once_not_forever() {
    let setup = common::setup_with(EngineOptions::new().max_size(1)).await;
    let engine = &setup.engine;
    engine
        .status(diesel::sql_query(
            "CREATE TABLE retyped (id int PRIMARY KEY, v varchar(10))",
        ))
        .await
        .unwrap();
    engine
        .status(diesel::sql_query("INSERT INTO retyped VALUES (1, 'a')"))
        .await
        .unwrap();
    let read = || retyped::table.select((retyped::id, retyped::v));
    assert_eq!(
        engine.all::<(i32, String), _>(read()).await.unwrap().len(),
        1
    );
    engine
        .status(diesel::sql_query(
            "ALTER TABLE retyped ALTER COLUMN v TYPE text",
        ))
        .await
        .unwrap();
    let outdated = engine.all::<(i32, String), _>(read()).await;
    if let Err(e) = &outdated {
        assert_eq!(e.sqlstate(), Some("0A000"), "{e:?}");
    }
    assert_eq!(
        engine.all::<(i32, String), _>(read()).await.unwrap().len(),
        1
    );
    assert_eq!(
        engine.all::<(i32, String), _>(read()).await.unwrap().len(),
        1
    );
}

/// `what`, failing the test past ten seconds.
async fn bounded<F: std::future::Future>(
    what: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(10), what).await
}

/// `COPY .. FROM STDIN` makes the server wait for data the driver never
/// sends: the statement fails at once, saying why, and its connection is
/// closed, not handed on waiting. The pool's next statement runs.
#[tokio::test]
async fn a_copy_from_the_client_fails_and_leaves_no_waiting_connection() {
    let s = common::setup_with(EngineOptions::new().max_size(1)).await;
    s.engine
        .status(gino::text("CREATE TABLE copied (n int)"))
        .await
        .unwrap();
    let copy = bounded(s.engine.status(gino::text("COPY copied FROM STDIN")))
        .await
        .expect("no wait for COPY data");
    let err = copy.unwrap_err();
    assert!(err.to_string().contains("COPY"), "{err}");
    // A misuse, not an outage: trying again would fail the same way.
    assert_eq!(err.sqlstate(), Some("0A000"), "{err:?}");
    assert!(!err.is_retryable() && !err.is_connection_lost(), "{err:?}");
    let one: i32 = bounded(s.engine.one(diesel::select(sql::<Integer>("1"))))
        .await
        .expect("the pool's connection is not stuck")
        .unwrap();
    assert_eq!(one, 1);
    // On a connection of one's own, in a transaction: its next statement
    // fails at once too, the connection being gone.
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    assert!(
        conn.status(gino::text("COPY copied FROM STDIN"))
            .await
            .is_err()
    );
    let next = bounded(conn.one::<i32, _>(diesel::select(sql::<Integer>("1"))))
        .await
        .expect("no wait behind the COPY");
    assert!(next.is_err());
    drop(tx);
    drop(conn);
    let copied: i64 = s
        .engine
        .one(diesel::select(sql::<diesel::sql_types::BigInt>(
            "count(*) FROM copied",
        )))
        .await
        .unwrap();
    assert_eq!(copied, 0);
}

/// Other statements refused as a feature PostgreSQL lacks (0A000, here a
/// row lock with `DISTINCT`) leave nothing behind: their connection goes
/// back to the pool, not closed as one with an outdated plan is.
#[tokio::test]
async fn an_unsupported_feature_error_keeps_the_connection() {
    let setup = common::setup_with(EngineOptions::new().max_size(1)).await;
    let pid = || diesel::select(sql::<Integer>("pg_backend_pid()"));
    let before: i32 = setup.engine.one(pid()).await.unwrap();
    let refused = setup
        .engine
        .status(gino::text(
            "SELECT DISTINCT relname FROM pg_class FOR UPDATE",
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.sqlstate(), Some("0A000"), "{refused:?}");
    let after: i32 = setup.engine.one(pid()).await.unwrap();
    assert_eq!(before, after, "the same connection, pooled again");
}

/// A TCP proxy in front of `upstream` that passes everything, but tells
/// the client the server closed only `linger` after it did: connections
/// that take long to close, as over a slow network.
async fn slow_closing_proxy(
    upstream: std::net::SocketAddr,
    linger: Duration,
) -> std::net::SocketAddr {
    proxy(
        upstream,
        move |mut server_read, mut client_write| async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            tokio::time::sleep(linger).await;
            let _ = client_write.shutdown().await;
        },
    )
    .await
}

/// A budget that has run out closes one idle connection of another engine
/// for an opening, and waits for it to close, however long that takes: it
/// does not close one more every few milliseconds meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_budget_closes_one_idle_connection_not_one_per_look() {
    let db = gino_testkit::TestDatabase::create().await;
    let budget = gino::ConnectionBudget::new(3);
    let options = EngineOptions::new()
        .min_size(0)
        .max_size(3)
        .connection_budget(budget.clone());
    let proxy = slow_closing_proxy(server_addr(db.url()), Duration::from_millis(300)).await;
    let mut url: url_parts::Url = db.url().into();
    url.addr = proxy.to_string();
    let idle = create_engine(&format!("{url}?sslmode=disable"), options.clone())
        .await
        .unwrap();
    let held = futures_util::future::try_join_all((0..3).map(|_| idle.acquire().into_future()))
        .await
        .unwrap();
    for conn in held {
        conn.status(diesel::sql_query("SELECT 1")).await.unwrap();
        conn.release().await.unwrap();
    }
    assert_eq!((idle.pool_status().available, budget.open()), (3, 3));

    let busy = create_engine(db.url(), options).await.unwrap();
    busy.status(diesel::sql_query("SELECT 1")).await.unwrap();
    assert_eq!(
        idle.pool_status().available,
        2,
        "one idle connection closed to make room, not more"
    );
    assert_eq!(budget.open(), 3);
    busy.close().await;
    idle.close().await;
}

/// A borrow's own acquire timeout bounds its wait for the budget too, as
/// it bounds its wait for the pool: longer than the engine's, it waits
/// longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_borrows_own_timeout_bounds_its_wait_for_the_budget() {
    let db = gino_testkit::TestDatabase::create().await;
    let budget = gino::ConnectionBudget::new(1);
    let options = EngineOptions::new()
        .min_size(0)
        .acquire_timeout(Duration::from_millis(100))
        .connection_budget(budget.clone());
    let holder = create_engine(db.url(), options.clone()).await.unwrap();
    let held = holder.acquire().await.unwrap();
    held.status(diesel::sql_query("SELECT 1")).await.unwrap();
    let waiter = create_engine(db.url(), options).await.unwrap();
    let short = waiter.acquire().await.map(|_| ()).unwrap_err();
    assert!(
        matches!(short, Error::PoolTimeout(t) if t == Duration::from_millis(100)),
        "{short:?}"
    );
    let release = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        held.release().await.unwrap();
        // Closed, so that its unit goes back to the budget.
        holder.close().await;
    };
    let (long, ()) = tokio::join!(
        waiter
            .acquire()
            .timeout(Duration::from_secs(10))
            .into_future(),
        release
    );
    long.expect("the borrow's own 10 s timeout, not the engine's 100 ms")
        .release()
        .await
        .unwrap();
    waiter.close().await;
}
