//! Read replicas on real streaming replication: a throwaway primary and a
//! standby made with `pg_basebackup -R`. Reads land on the standby (its
//! backends answer `pg_is_in_recovery()` with true), writes and
//! transactions on the primary; a request that writes then reads sees its
//! write; a standby that stops or lags leaves the rotation and comes back.

mod common;

use std::time::Duration;

use common::eventually;
use diesel::dsl::sql;
use diesel::sql_types::Bool;
use gino::prelude::*;
use gino::web::{Extension, Settings};
use gino::{Engine, EngineOptions};
use gino_testkit::Cluster;

static DB: Gino = Gino::new();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "notes")]
pub struct Note {
    #[gino(primary_key)]
    pub id: i32,
    pub body: String,
}

/// The one value of `SELECT expression` on `bind`, through `.gino()` (so
/// a replica may answer it).
async fn value_of<'b, ST, T>(bind: impl Into<gino::Bind<'b>>, expression: &str) -> T
where
    ST: diesel::sql_types::SqlType + diesel::sql_types::SingleValue + 'static,
    diesel::dsl::select<diesel::expression::SqlLiteral<ST>>: gino::Loadable<'static, T>
        + diesel::query_builder::QueryFragment<diesel::pg::Pg>
        + diesel::query_builder::QueryId,
    T: Send + 'static,
{
    diesel::select(sql::<ST>(expression))
        .gino()
        .bind(bind)
        .one()
        .await
        .unwrap()
}

/// Whether the answering backend is a standby's, through `.gino()`.
async fn on_standby(bind: impl Into<gino::Bind<'_>>) -> bool {
    value_of::<Bool, _>(bind, "pg_is_in_recovery()").await
}

/// The same, implicitly on `DB`.
async fn implicitly_on_standby() -> bool {
    diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .gino()
        .one()
        .await
        .unwrap()
}

struct Replicated {
    primary: Cluster,
    standby: Cluster,
}

impl Replicated {
    fn start() -> Replicated {
        let primary = Cluster::builder().start().expect("primary");
        let standby = primary.standby().expect("standby");
        Replicated { primary, standby }
    }

    fn options(&self) -> EngineOptions {
        EngineOptions::new()
            .replica(self.standby.url_for("postgres"))
            .replica_check_interval(Duration::from_millis(100))
            .acquire_timeout(Duration::from_secs(2))
    }

    /// A web extension of its own database handle, with the standby as
    /// its replica (`DB_REPLICA_DSNS`), connected: the handle, the
    /// extension, and its engine.
    async fn web(&self) -> (&'static Gino, Extension, Engine) {
        let db: &'static Gino = Box::leak(Box::new(Gino::secondary()));
        let mut settings = Settings::default();
        settings.dsn = Some(self.primary.url_for("postgres"));
        settings.replica_dsns = vec![self.standby.url_for("postgres")];
        settings.pool_min_size = 0;
        let extension = Extension::new(db, settings);
        let engine = extension.connect().await.unwrap();
        (db, extension, engine)
    }

    /// An engine whose checks are too rare to notice anything: only reads
    /// find out that the standby is gone.
    async fn engine_without_checks(&self) -> Engine {
        self.engine(
            self.options()
                .replica_check_interval(Duration::from_secs(3600)),
        )
        .await
    }

    async fn engine(&self, options: EngineOptions) -> Engine {
        gino::create_engine(&self.primary.url_for("postgres"), options)
            .await
            .expect("engine")
    }
}

/// Runs `work` in a task of its own: a task that writes reads on the
/// primary until the standby has replayed its writes, so set-up writes go
/// here to leave the test's own task a reader.
async fn elsewhere<F: std::future::Future + Send + 'static>(work: F) -> F::Output
where
    F::Output: Send + 'static,
{
    tokio::spawn(work).await.expect("the task ran to its end")
}

/// Starts, in a task of its own, a read of two seconds (`pg_sleep(2)` in
/// `from`) that answers whether it ran on the standby.
fn slow_read(engine: &Engine, from: &'static str) -> tokio::task::JoinHandle<gino::Result<bool>> {
    let read = diesel::select(sql::<Bool>(&format!("pg_is_in_recovery() FROM {from}")));
    let engine = engine.clone();
    tokio::spawn(async move { read.gino().bind(&engine).one::<bool>().await })
}

/// Runs `sql` on `engine` from a task of its own (so that the calling
/// task's reads are not pinned to the primary by it).
async fn execute_elsewhere(engine: &Engine, sql: &'static str) {
    let engine = engine.clone();
    elsewhere(async move { engine.status(diesel::sql_query(sql)).await.unwrap() }).await;
}

/// Creates the table `seen` (from a task of its own) and waits until the
/// standby has it.
async fn create_seen(engine: &Engine) {
    execute_elsewhere(engine, "CREATE TABLE seen (n int)").await;
    eventually("the table reaches the standby", || {
        value_of::<Bool, _>(engine, "to_regclass('seen') IS NOT NULL")
    })
    .await;
}

/// How many rows `seen` has, read as the task's reads go on `engine`.
async fn seen_rows(engine: &Engine) -> i64 {
    value_of::<diesel::sql_types::BigInt, _>(engine, "(SELECT count(*) FROM seen)").await
}

fn in_rotation(engine: &Engine) -> bool {
    engine.routing().unwrap().replicas[0].in_rotation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_standby_and_everything_else_to_the_primary() {
    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    DB.set_bind(engine.clone()).await.unwrap();
    let note = elsewhere(async {
        DB.create_all().await.unwrap();
        Note::create().id(1).body("hello").await.unwrap()
    })
    .await;
    eventually("the note reaches the standby", || async {
        // Until the standby has replayed the table, reading it fails.
        matches!(Note::get(1).await, Ok(Some(_)))
    })
    .await;

    // Plain reads: the standby, explicitly on the engine or implicitly.
    assert!(on_standby(&engine).await);
    assert!(implicitly_on_standby().await);
    let before = engine.routing().unwrap().replicas[0].reads;
    assert_eq!(Note::get(1).await.unwrap(), Some(note.clone()));
    let names: Vec<String> = notes::table.select(notes::body).gino().all().await.unwrap();
    assert_eq!(names, ["hello"]);
    assert!(engine.routing().unwrap().replicas[0].reads >= before + 2);

    // A function a standby refuses (55000, recovery in progress) runs on
    // the primary, and the standby stays in rotation; from a task that
    // wrote nothing, whose reads go to the standby.
    let lsn: String = elsewhere({
        let engine = engine.clone();
        async move {
            value_of::<diesel::sql_types::Text, String>(&engine, "pg_current_wal_lsn()::text").await
        }
    })
    .await;
    assert!(lsn.contains('/'), "{lsn}");
    assert!(in_rotation(&engine));

    // Writes (the standby would refuse them), locking reads, and every
    // statement of a transaction: the primary.
    Note::create().id(2).body("second").await.unwrap();
    diesel::update(notes::table.find(2))
        .set(notes::body.eq("changed"))
        .gino()
        .status()
        .await
        .unwrap();
    // The standby would refuse a row lock.
    let locked: Vec<String> = notes::table
        .select(notes::body)
        .for_update()
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(locked.len(), 2);
    let in_tx = DB
        .transaction(async {
            let seen = implicitly_on_standby().await;
            Note::create().id(3).body("in tx").await?;
            Ok::<_, gino::Error>(seen)
        })
        .await
        .unwrap();
    assert!(!in_tx, "a transaction's reads run on the primary");
    // An explicitly acquired connection is the primary's.
    let conn = engine.acquire().await.unwrap();
    assert!(!on_standby(&conn).await);
    conn.release().await.unwrap();

    let stats = engine.routing().unwrap();
    assert!(stats.writes >= 2, "{stats:?}");
    assert!(stats.replicas[0].in_rotation);
    DB.pop_bind().unwrap().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reads_its_own_writes() {
    let servers = Replicated::start();
    let (db, extension, engine) = servers.web().await;
    assert!(
        engine.routing().is_some(),
        "DB_REPLICA_DSNS reach the engine"
    );
    create_seen(&engine).await;

    let (before, after) = extension
        .request()
        .run(async {
            // No write yet: the standby answers.
            let before = on_standby(db).await;
            db.status(diesel::sql_query("INSERT INTO seen VALUES (1)"))
                .await
                .unwrap();
            // After the write, this request reads on the primary, where
            // the row already is.
            let after = on_standby(db).await;
            let count: i64 = diesel::select(sql::<diesel::sql_types::BigInt>(
                "(SELECT count(*) FROM seen)",
            ))
            .gino()
            .bind(db)
            .one()
            .await
            .unwrap();
            assert_eq!(count, 1);
            (before, after)
        })
        .await;
    assert!(before, "a request's reads start on the standby");
    assert!(!after, "after its write, a request reads on the primary");
    // A request of another task starts over on the standby.
    let elsewhere = tokio::spawn(extension.request().run(on_standby(db)));
    assert!(elsewhere.await.unwrap());
    // In this task, once a check has seen the standby replay the write.
    eventually("this task reads on the standby again", || {
        extension.request().run(on_standby(db))
    })
    .await;
    extension.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_standby_leaves_the_rotation_and_comes_back() {
    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    assert!(on_standby(&engine).await);

    servers.standby.stop().unwrap();
    // Every read after the stop is answered, by the primary.
    for _ in 0..20 {
        assert!(!on_standby(&engine).await);
    }
    // Taken out by a failed read (a fallback) or by the next check,
    // whichever came first.
    let stats = engine.routing().unwrap();
    assert!(!stats.replicas[0].in_rotation, "{stats:?}");

    servers.standby.start().unwrap();
    eventually("the standby is back in rotation", || async {
        in_rotation(&engine)
    })
    .await;
    eventually("reads land on the standby again", || async {
        on_standby(&engine).await
    })
    .await;
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_standby_leaves_the_rotation() {
    let servers = Replicated::start();
    // One connection per pool, so that holding it fails the checks'
    // question to the primary.
    let engine = servers
        .engine(servers.options().replica_max_lag(64 * 1024).max_size(1))
        .await;
    eventually("the standby is in rotation", || async {
        in_rotation(&engine)
    })
    .await;
    servers
        .standby
        .execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    // About a megabyte of WAL the paused standby does not replay.
    engine
        .status(diesel::sql_query(
            "CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 10000) g",
        ))
        .await
        .unwrap();
    eventually("the lagging standby leaves the rotation", || async {
        !in_rotation(&engine)
    })
    .await;
    assert!(!on_standby(&engine).await, "reads go to the primary");
    assert!(engine.routing().unwrap().replicas[0].lag_bytes > 64 * 1024);
    // A primary the checks cannot ask (its only connection is held) says
    // nothing of the lag: the standby stays out, its lag as last seen.
    let held = engine.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stats = engine.routing().unwrap();
    assert!(!stats.replicas[0].in_rotation, "{stats:?}");
    assert!(stats.replicas[0].lag_bytes > 64 * 1024, "{stats:?}");
    held.release().await.unwrap();

    servers
        .standby
        .execute("SELECT pg_wal_replay_resume()")
        .unwrap();
    eventually("the standby catches up and returns", || async {
        in_rotation(&engine)
    })
    .await;
    // This task wrote the filler: its reads return to the standby once a
    // check has seen the standby replay it.
    eventually("reads land on the standby again", || async {
        on_standby(&engine).await
    })
    .await;
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_standby_is_gone_falls_back_to_the_primary() {
    let servers = Replicated::start();
    let engine = servers.engine_without_checks().await;
    assert!(on_standby(&engine).await);
    servers.standby.stop().unwrap();
    assert!(!on_standby(&engine).await, "answered by the primary");
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    assert!(!stats.replicas[0].in_rotation, "{stats:?}");
    // Out of rotation, later reads go straight to the primary.
    assert!(!on_standby(&engine).await);
    assert_eq!(engine.routing().unwrap().fallbacks, 1);
    engine.close().await;
}

/// From the start of a close, graceful or not, no read borrows from a
/// replica either (its pool closes last): `PoolClosed`, as from the
/// primary, and the replica stays in rotation, no fallback counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_engine_reads_from_no_replica() {
    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    assert!(on_standby(&engine).await);
    let held = engine.acquire().reusable(false).await.unwrap();
    common::backend_pid(&held).await;
    let closing = tokio::spawn({
        let engine = engine.clone();
        async move { engine.close_gracefully(Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read = diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .gino()
        .bind(&engine)
        .one::<bool>()
        .await;
    assert!(matches!(read, Err(gino::Error::PoolClosed)), "{read:?}");
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, 0, "{stats:?}");
    assert!(stats.replicas[0].in_rotation, "{stats:?}");
    held.release().await.unwrap();
    assert!(closing.await.unwrap());
}

/// The engine's default timeout changed at run time holds on its read
/// replicas too: a read on the standby is cancelled after it, and runs to
/// its end once the limit is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_set_at_run_time_holds_on_the_replicas() {
    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    let slow = || diesel::select(sql::<Bool>("pg_is_in_recovery() FROM pg_sleep(1)"));
    let short = Duration::from_millis(100);
    engine.set_timeout(Some(short));
    let read = slow().gino().bind(&engine).replica().one::<bool>().await;
    assert!(
        matches!(read, Err(gino::Error::QueryTimeout(t)) if t == short),
        "{read:?}"
    );
    engine.set_timeout(None);
    let read = slow().gino().bind(&engine).replica().one::<bool>().await;
    assert!(read.unwrap(), "the read ran on the standby");
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_and_replica_override_the_routing() {
    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    let plain = || diesel::select(sql::<Bool>("pg_is_in_recovery()"));
    // A read that is no plain SELECT makes gino play safe.
    let not_plain = || {
        gino::text("WITH r AS (SELECT pg_is_in_recovery() AS v) SELECT v FROM r").columns::<Bool>()
    };
    assert!(plain().gino().bind(&engine).one::<bool>().await.unwrap());
    assert!(
        !plain()
            .gino()
            .bind(&engine)
            .primary()
            .one::<bool>()
            .await
            .unwrap()
    );
    assert!(
        !not_plain()
            .gino()
            .bind(&engine)
            .one::<bool>()
            .await
            .unwrap()
    );
    assert!(
        not_plain()
            .gino()
            .bind(&engine)
            .replica()
            .one::<bool>()
            .await
            .unwrap()
    );
    // Reads on the primary are no writes, though one cut short by its row
    // limit (`first()`) ends with no command tag: the task's plain reads
    // stay on the standby.
    let writes = engine.routing().unwrap().writes;
    assert_eq!(
        not_plain()
            .gino()
            .bind(&engine)
            .first::<bool>()
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        plain()
            .gino()
            .bind(&engine)
            .primary()
            .first::<bool>()
            .await
            .unwrap(),
        Some(false)
    );
    let conn = engine.acquire().reusable(false).await.unwrap();
    assert_eq!(
        plain().gino().bind(&conn).first::<bool>().await.unwrap(),
        Some(false)
    );
    assert!(plain().gino().bind(&engine).one::<bool>().await.unwrap());
    conn.release().await.unwrap();
    assert_eq!(
        engine.routing().unwrap().writes,
        writes,
        "no read counts as a write"
    );
    assert!(plain().gino().bind(&engine).one::<bool>().await.unwrap());
    // The query API of an engine and a db classifies the same way; a
    // connection's is the primary's.
    assert!(engine.one::<bool, _>(plain()).await.unwrap());
    assert!(!engine.one::<bool, _>(not_plain()).await.unwrap());
    let db: &'static Gino = Box::leak(Box::new(Gino::secondary()));
    db.set_bind(engine.clone()).await.unwrap();
    assert_eq!(db.scalar::<bool, _>(plain()).await.unwrap(), Some(true));
    let conn = engine.acquire().await.unwrap();
    assert!(!conn.one::<bool, _>(plain()).await.unwrap());
    conn.release().await.unwrap();
    db.pop_bind();
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_running_when_its_standby_stops_runs_again_on_the_primary() {
    let servers = Replicated::start();
    let engine = servers.engine_without_checks().await;
    assert!(on_standby(&engine).await);
    let read = slow_read(&engine, "(SELECT pg_sleep(2)) AS slow");
    // The read is two seconds long: well under way half a second in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    servers.standby.stop().unwrap();
    let answered_by_standby = read.await.unwrap().expect("the read is not lost");
    assert!(!answered_by_standby, "run again on the primary");
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    assert!(!stats.replicas[0].in_rotation, "{stats:?}");
    engine.close().await;
}

/// A read's timeout bounds the whole read: run again on the primary after
/// its standby stopped, it has only what is left of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_run_again_on_the_primary_keeps_its_timeout() {
    let servers = Replicated::start();
    let engine = servers.engine_without_checks().await;
    assert!(on_standby(&engine).await);
    let limit = Duration::from_secs(4);
    let read = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let read = diesel::select(sql::<Bool>("pg_is_in_recovery() FROM pg_sleep(3)"))
                .gino()
                .bind(&engine)
                .timeout(limit)
                .one::<bool>()
                .await;
            (read, started.elapsed())
        })
    };
    // Three seconds on the standby, stopped after one; three more on the
    // primary would end past the four the read may take.
    tokio::time::sleep(Duration::from_secs(1)).await;
    servers.standby.stop().unwrap();
    let (read, took) = read.await.unwrap();
    assert!(
        matches!(read, Err(gino::Error::QueryTimeout(t)) if t == limit),
        "{read:?} after {took:?}"
    );
    assert_eq!(engine.routing().unwrap().fallbacks, 1);
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_standby_under_load_loses_no_read() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let on_standby_reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (engine, stop) = (engine.clone(), stop.clone());
            let on_standby_reads = on_standby_reads.clone();
            tokio::spawn(async move {
                let mut reads = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let answer = diesel::select(sql::<Bool>("pg_is_in_recovery()"))
                        .gino()
                        .bind(&engine)
                        .one::<bool>()
                        .await;
                    if answer? {
                        on_standby_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    reads += 1;
                }
                Ok::<_, gino::Error>(reads)
            })
        })
        .collect();
    eventually("reads land on the standby", || async {
        on_standby_reads.load(Ordering::Relaxed) > 100
    })
    .await;
    servers.standby.stop().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    servers.standby.start().unwrap();
    let before = on_standby_reads.load(Ordering::Relaxed);
    eventually("reads land on the standby again", || async {
        on_standby_reads.load(Ordering::Relaxed) > before + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap().expect("no read fails");
    }
    let stats = engine.routing().unwrap();
    assert!(reads > 200, "{reads} reads");
    assert!(stats.primary_reads > 0, "{stats:?}");
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reads_its_own_writes_without_a_scope() {
    let servers = Replicated::start();
    let engine = servers.engine(servers.options()).await;
    create_seen(&engine).await;
    // The standby stops replaying but stays within the lag bound, in
    // rotation: exactly where a read could miss a write just made.
    servers
        .standby
        .execute("SELECT pg_wal_replay_pause()")
        .unwrap();

    let writer = engine.clone();
    let (statement, transaction) = tokio::spawn(async move {
        writer
            .status(diesel::sql_query("INSERT INTO seen VALUES (1)"))
            .await
            .unwrap();
        let after_statement = (on_standby(&writer).await, seen_rows(&writer).await);
        writer
            .transaction(async {
                writer
                    .status(diesel::sql_query("INSERT INTO seen VALUES (2)"))
                    .await
                    .map(drop)
            })
            .await
            .unwrap();
        let after_transaction = (on_standby(&writer).await, seen_rows(&writer).await);
        (after_statement, after_transaction)
    })
    .await
    .unwrap();
    assert_eq!(
        statement,
        (false, 1),
        "after its write the task reads on the primary"
    );
    assert_eq!(transaction, (false, 2), "and after its transaction");
    // A task that wrote nothing still reads on the standby, which has
    // not replayed the rows.
    let other = engine.clone();
    let elsewhere =
        tokio::spawn(async move { (on_standby(&other).await, seen_rows(&other).await) });
    assert_eq!(elsewhere.await.unwrap(), (true, 0));
    assert!(in_rotation(&engine));

    servers
        .standby
        .execute("SELECT pg_wal_replay_resume()")
        .unwrap();
    // The writing task is gone; a new task that writes reads on the
    // standby again once a check has seen it replay the write.
    let writer = engine.clone();
    tokio::spawn(async move {
        writer
            .status(diesel::sql_query("INSERT INTO seen VALUES (3)"))
            .await
            .unwrap();
        assert_eq!(seen_rows(&writer).await, 3);
        eventually("the standby has replayed the write", || async {
            on_standby(&writer).await
        })
        .await;
        assert_eq!(
            seen_rows(&writer).await,
            3,
            "the standby has all three rows"
        );
    })
    .await
    .unwrap();
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_replica_stays_in_rotation_while_a_read_goes_to_the_primary() {
    let servers = Replicated::start();
    // One connection per pool, the replica's included, and a short wait.
    let engine = servers
        .engine(
            servers
                .options()
                .max_size(1)
                .acquire_timeout(Duration::from_millis(300))
                .replica_check_interval(Duration::from_secs(3600)),
        )
        .await;
    assert!(on_standby(&engine).await);
    let holding = slow_read(&engine, "(SELECT pg_sleep(2)) AS slow");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The replica's only connection is taken: this read waits for it in
    // vain, then runs on the primary.
    assert!(!on_standby(&engine).await, "answered by the primary");
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    assert!(stats.replicas[0].in_rotation, "busy is not down: {stats:?}");
    // A read whose own time runs out first while it waits for the
    // replica's connection fails as timed out: its time is spent, so it
    // does not start over on the primary, and the replica stays.
    let timed = diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .gino()
        .bind(&engine)
        .timeout(Duration::from_millis(200))
        .one::<bool>()
        .await;
    assert!(
        matches!(timed, Err(gino::Error::QueryTimeout(_))),
        "{timed:?}"
    );
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    assert!(stats.replicas[0].in_rotation, "busy is not down: {stats:?}");
    assert!(
        holding.await.unwrap().unwrap(),
        "the slow read ran on the standby"
    );
    assert!(
        on_standby(&engine).await,
        "and the standby takes reads again"
    );
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cancelled_by_the_standby_s_recovery_runs_on_the_primary() {
    let servers = Replicated::start();
    // The standby cancels a query in the way of replay at once.
    servers
        .standby
        .execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
        .unwrap();
    servers.standby.execute("SELECT pg_reload_conf()").unwrap();
    let engine = servers.engine_without_checks().await;
    create_seen(&engine).await;
    let read = slow_read(
        &engine,
        "seen RIGHT JOIN (SELECT pg_sleep(2)) AS slow ON true",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Replaying this lock conflicts with the read's lock on `seen`.
    execute_elsewhere(&engine, "ALTER TABLE seen ADD COLUMN m int").await;
    let answered_by_standby = read.await.unwrap().expect("the read is not lost");
    assert!(!answered_by_standby, "run again on the primary");
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    assert!(
        stats.replicas[0].in_rotation,
        "a recovery conflict is no outage: {stats:?}"
    );
    engine.close().await;
}

/// A standby refuses `BEGIN READ WRITE`: a `BEGIN` that fails on a live
/// connection. The statement sent with it (`crate::opening`) must not run
/// outside the transaction it was written in: the server skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_that_fails_keeps_its_statement_from_running() {
    use diesel::sql_types::{Nullable, Text};

    let servers = Replicated::start();
    // The standby itself as an engine's server.
    let engine = gino::create_engine(&servers.standby.url_for("postgres"), EngineOptions::new())
        .await
        .expect("engine on the standby");
    let conn = engine.acquire().await.unwrap();
    // Run outside a transaction, this would set the session's variable for
    // good; inside one that rolls back, not at all.
    let set = || {
        diesel::select(sql::<Text>("set_config('gino.probe', 'ran', false)"))
            .gino()
            .bind(&conn)
            .one::<String>()
    };
    let probe = || {
        diesel::select(sql::<Nullable<Text>>(
            "nullif(current_setting('gino.probe', true), '')",
        ))
        .gino()
        .bind(&conn)
        .one::<Option<String>>()
    };

    let err = conn
        .transaction(async { set().await })
        .read_only(false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-write"), "{err}");
    assert_eq!(
        probe().await.unwrap(),
        None,
        "the statement ran without its BEGIN"
    );

    // The transaction is still to begin after the failed try: a later
    // statement of it carries the BEGIN again (and fails again).
    let tx = conn.begin().read_only(false).await.unwrap();
    assert!(set().await.is_err());
    assert!(set().await.is_err());
    tx.rollback().await.unwrap();
    assert_eq!(probe().await.unwrap(), None);

    // A BEGIN that succeeds takes its statement in.
    conn.transaction(async { set().await }).await.unwrap();
    assert_eq!(probe().await.unwrap().as_deref(), Some("ran"));
    conn.release().await.unwrap();
    engine.close().await;
}

/// A statement that reads like a read but writes (here a function that
/// inserts): the standby refuses it as a write, it runs once on the
/// primary instead, the task's later reads see its write, and the standby
/// stays in rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_writes_runs_on_the_primary() {
    use diesel::sql_types::Integer;
    let servers = Replicated::start();
    let engine = servers.engine_without_checks().await;
    create_seen(&engine).await;
    execute_elsewhere(
        &engine,
        "CREATE FUNCTION see(n int) RETURNS int LANGUAGE sql \
         AS 'INSERT INTO seen VALUES (n) RETURNING n'",
    )
    .await;
    eventually("the function reaches the standby", || {
        value_of::<Bool, _>(&engine, "to_regprocedure('see(int)') IS NOT NULL")
    })
    .await;
    let before = engine.routing().unwrap();
    assert!(
        on_standby(&engine).await,
        "this task still reads the standby"
    );

    let seen: i32 = diesel::select(sql::<Integer>("see(7)"))
        .gino()
        .bind(&engine)
        .one()
        .await
        .expect("run on the primary");
    assert_eq!(seen, 7);
    let stats = engine.routing().unwrap();
    assert_eq!(stats.fallbacks, before.fallbacks + 1, "{stats:?}");
    assert!(stats.writes > before.writes, "{stats:?}");
    assert!(stats.replicas[0].in_rotation, "no outage: {stats:?}");
    assert!(
        !on_standby(&engine).await,
        "the task that wrote reads on the primary until the standby has its write"
    );
    assert_eq!(seen_rows(&engine).await, 1, "it ran once");
    engine.close().await;
}

/// Writes whose command tag is `SELECT` (a `WITH` that inserts, `CREATE
/// TABLE .. AS`, a request's `set_config`), and writes committed on a
/// connection that is not reusable while it is still held: the task's
/// later reads see each of them. The standby is paused, so a read there
/// would miss them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_tagged_select_or_on_a_held_connection_are_read_back() {
    use diesel::sql_types::{Integer, Nullable, Text};
    let servers = Replicated::start();
    let (db, extension, engine) = servers.web().await;
    create_seen(&engine).await;
    servers
        .standby
        .execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    // Each case in a task of its own, which has written nothing before:
    // its first read is the standby's.
    let fresh_task = |engine: &Engine| {
        let engine = engine.clone();
        async move {
            assert!(on_standby(&engine).await, "a fresh task reads the standby");
            engine
        }
    };

    let writer = fresh_task(&engine);
    let (read_back, on_primary) = elsewhere(async move {
        let engine = writer.await;
        let inserted: Vec<i32> = engine
            .all(
                gino::text(
                    "WITH ins AS (INSERT INTO seen VALUES (1) RETURNING n) SELECT n FROM ins",
                )
                .columns::<Integer>(),
            )
            .await
            .unwrap();
        assert_eq!(inserted, [1]);
        (seen_rows(&engine).await, !on_standby(&engine).await)
    })
    .await;
    assert_eq!((read_back, on_primary), (1, true), "a WITH that inserts");

    let writer = fresh_task(&engine);
    let made = elsewhere(async move {
        let engine = writer.await;
        let status = engine
            .status(gino::text("CREATE TABLE made AS SELECT 1 AS n"))
            .await
            .unwrap();
        assert_eq!(status, "SELECT 1");
        value_of::<Bool, bool>(&engine, "to_regclass('made') IS NOT NULL").await
    })
    .await;
    assert!(made, "CREATE TABLE .. AS, whose tag is SELECT");

    // A connection that is not reusable: the task's implicit reads do not
    // run on it, and must still see what was committed on it.
    let writer = fresh_task(&engine);
    let seen = elsewhere(async move {
        let engine = writer.await;
        let conn = engine.acquire().reusable(false).await.unwrap();
        conn.status(gino::text("INSERT INTO seen VALUES (2)"))
            .await
            .unwrap();
        let after_statement = seen_rows(&engine).await;
        conn.transaction(async {
            conn.status(gino::text("INSERT INTO seen VALUES (3)"))
                .await
                .map(drop)
        })
        .await
        .unwrap();
        let after_transaction = seen_rows(&engine).await;
        conn.release().await.unwrap();
        (after_statement, after_transaction)
    })
    .await;
    assert_eq!(seen, (2, 3), "writes of a held connection");

    // A closure on the raw connection may write whatever its last tag.
    let writer = fresh_task(&engine);
    let seen = elsewhere(async move {
        let engine = writer.await;
        let conn = engine.acquire().reusable(false).await.unwrap();
        conn.run(|c| {
            Box::pin(async move {
                use diesel_async::SimpleAsyncConnection;
                c.batch_execute("INSERT INTO seen VALUES (4); SELECT 1")
                    .await
            })
        })
        .await
        .unwrap();
        let seen = seen_rows(&engine).await;
        conn.release().await.unwrap();
        seen
    })
    .await;
    assert_eq!(seen, 4, "a closure's write");

    // A request's `set_config(.., false)`: its later reads are the
    // primary's, on the connection that has the setting.
    let (before, setting, after) = elsewhere(extension.request().run(async move {
        let before = on_standby(db).await;
        let set: String = diesel::select(sql::<Text>("set_config('app.who', 'ann', false)"))
            .gino()
            .bind(db)
            .one()
            .await
            .unwrap();
        assert_eq!(set, "ann");
        let setting: Option<String> =
            diesel::select(sql::<Nullable<Text>>("current_setting('app.who', true)"))
                .gino()
                .bind(db)
                .one()
                .await
                .unwrap();
        (before, setting, on_standby(db).await)
    }))
    .await;
    assert!(before, "the request read the standby first");
    assert_eq!(
        setting.as_deref(),
        Some("ann"),
        "the request reads its setting"
    );
    assert!(!after, "and reads on the primary after it");
    extension.close().await;
}

mod enum_types_created_again {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
    #[gino(type_name = "replica_mood")]
    pub enum Mood {
        Sad,
        Happy,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "replica_people", db = DB)]
    pub struct Person {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(db_enum)]
        pub mood: Mood,
    }

    /// An enum type dropped and created again (a new OID) on the primary
    /// reaches the standby by replication; the replica's pooled connection
    /// that bound the old type must not be lent again with its lookup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_replicas_connections_are_renewed_too() {
        let servers = Replicated::start();
        // One connection per pool: the replica's that bound the first type
        // would bind the second.
        let engine = servers.engine(servers.options().max_size(1)).await;
        DB.set_bind(engine.clone()).await.unwrap();
        for round in 0..2 {
            elsewhere(async {
                DB.create_all().await.unwrap();
                Person::create().id(1).mood(Mood::Happy).await.unwrap();
            })
            .await;
            let engine = &engine;
            eventually(
                &format!("round {round}: the standby reads the row"),
                || async move {
                    let happy = Person::query()
                        .filter(replica_people::mood.eq(Mood::Happy))
                        .gino()
                        .bind(engine)
                        .replica()
                        .all()
                        .await;
                    match happy {
                        Ok(rows) => rows.len() == 1,
                        Err(e) => {
                            // Until the standby has the table and the type.
                            assert!(
                                !e.to_string().contains("cache lookup"),
                                "round {round}: {e}"
                            );
                            false
                        }
                    }
                },
            )
            .await;
            elsewhere(async { DB.drop_all().await.unwrap() }).await;
        }
        DB.pop_bind().unwrap().close().await;
    }
}
