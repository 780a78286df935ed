//! Embedded diesel migrations run through gino at start-up.

mod common;

use diesel::sql_types::{BigInt, Text};
use gino::migrate::EmbeddedMigrations;
use gino::{Error, Gino};

static MIGRATIONS: EmbeddedMigrations = gino::embed_migrations!("tests/migrations");
static FAILING: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_failing");

async fn count(db: &Gino, sql: &str) -> i64 {
    db.one(diesel::select(diesel::dsl::sql::<BigInt>(sql)))
        .await
        .unwrap()
}

#[test]
fn directories_are_embedded_in_version_order() {
    let names: Vec<_> = MIGRATIONS.migrations().iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "2024-01-01-000000_create_users",
            "2024-02-01-000000_add_email"
        ]
    );
    let first = &MIGRATIONS.migrations()[0];
    assert_eq!(first.version, "20240101000000");
    assert!(first.up.contains("CREATE TABLE users"));
    assert_eq!(first.down, Some("DROP TABLE users;\n"));
    assert!(first.run_in_transaction);
}

/// diesel runs migrations in version order; a name's dashes do not count.
#[test]
fn migrations_run_in_version_order_whatever_their_names() {
    static MIXED: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_mixed");
    let names: Vec<_> = MIXED.migrations().iter().map(|m| m.name).collect();
    assert_eq!(names, ["20240131000000_a", "2024-02-01-000000_b"]);
}

static FAILING_OUTSIDE: EmbeddedMigrations =
    gino::embed_migrations!("tests/migrations_failing_outside");

/// A migration run outside a transaction that fails is named too, and not
/// recorded.
#[tokio::test]
async fn a_failing_migration_outside_a_transaction_is_named_and_not_recorded() {
    assert!(!FAILING_OUTSIDE.migrations()[0].run_in_transaction);
    let s = common::setup().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let err = db.run_migrations(&FAILING_OUTSIDE).await.unwrap_err();
    assert!(
        matches!(&err, Error::Migration { name, .. } if name == "2024-01-01-000000_broken"),
        "{err:?}"
    );
    assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
    assert_eq!(
        count(&db, "count(*) FROM __diesel_schema_migrations").await,
        0
    );
}

/// The engine's query timeout bounds queries, not a migration or the wait
/// for another instance's: a start-up must not fail because one runs long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_timeout_bounds_neither_a_migration_nor_the_wait_for_another() {
    static SLOW: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_slow");
    let s = common::setup_with(
        gino::EngineOptions::new().timeout(std::time::Duration::from_millis(100)),
    )
    .await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    // Another instance migrating: it holds the lock for a while.
    // Its own timeout: the engine's 100 ms is for the migrator.
    let other = s
        .engine
        .acquire()
        .query_timeout(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let hold = gino::text("SELECT pg_advisory_lock(:key)")
        .bind::<BigInt, _>("key", 0x0067_696e_6f6d_6967_i64);
    other.status(hold).await.unwrap();
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        other
            .status(gino::text("SELECT pg_advisory_unlock_all()"))
            .await
            .unwrap();
    };
    let (applied, ()) = tokio::join!(db.run_migrations(&SLOW), release);
    assert_eq!(applied.unwrap(), ["20240101000000"]);
    other.release().await.unwrap();
}

/// A migration ending its transaction with a `COMMIT` of its own is not
/// recorded, and the error says what to change in the migration.
#[tokio::test]
async fn a_migration_that_commits_itself_is_told_what_to_change() {
    static OWN: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_own_transaction");
    let s = common::setup().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let err = db.run_migrations(&OWN).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("2024-01-01-000000_commits"), "{message}");
    assert!(message.contains("run_in_transaction = false"), "{message}");
    assert_eq!(
        count(&db, "count(*) FROM __diesel_schema_migrations").await,
        0
    );
}

/// A migration outside a transaction that opens one and leaves it open
/// would be rolled back with its record when its connection goes back:
/// it fails, saying so, and nothing of it stays (as diesel's harness
/// would leave the transaction to the next migration, gino refuses it).
#[tokio::test]
async fn a_migration_outside_a_transaction_that_leaves_one_open_fails() {
    static LEFT_OPEN: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_left_open");
    let s = common::setup().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let err = db.run_migrations(&LEFT_OPEN).await.unwrap_err();
    assert!(matches!(err, Error::TransactionMisuse(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("2024-01-01-000000_begins"), "{message}");
    assert!(message.contains("COMMIT"), "{message}");
    assert_eq!(
        count(&db, "count(*) FROM __diesel_schema_migrations").await,
        0
    );
    assert_eq!(
        count(&db, "count(*) FROM pg_tables WHERE tablename = 'left_open'").await,
        0
    );
}

// A plain #[tokio::test] is a current-thread runtime, where diesel's own
// async harness (block_in_place) cannot run.
#[tokio::test]
async fn pending_migrations_apply_once_in_order() {
    let s = common::setup().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let applied = db.run_migrations(&MIGRATIONS).await.unwrap();
    assert_eq!(applied, ["20240101000000", "20240201000000"]);
    let email: Option<String> = db
        .scalar(diesel::select(diesel::dsl::sql::<Text>(
            "column_name::text FROM information_schema.columns \
             WHERE table_name = 'users' AND column_name = 'email'",
        )))
        .await
        .unwrap();
    assert_eq!(email.as_deref(), Some("email"));
    assert_eq!(
        count(&db, "count(*) FROM __diesel_schema_migrations").await,
        2
    );
    assert!(db.run_migrations(&MIGRATIONS).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrators_apply_each_migration_once() {
    let s = common::setup().await;
    static DB: Gino = Gino::secondary();
    DB.set_bind(s.engine.clone()).await.unwrap();
    let runs = (0..4).map(|_| tokio::spawn(async { DB.run_migrations(&MIGRATIONS).await }));
    let mut total = 0;
    for run in runs {
        total += run.await.unwrap().unwrap().len();
    }
    assert_eq!(total, 2);
    DB.pop_bind();
}

#[tokio::test]
async fn a_failing_migration_stops_the_run_and_leaves_nothing_of_itself() {
    let s = common::setup().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let err = db.run_migrations(&FAILING).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
    // The error names the migration that failed.
    assert!(
        matches!(&err, Error::Migration { name, .. } if name == "2024-01-02-000000_broken"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("2024-01-02-000000_broken"),
        "{err}"
    );
    assert_eq!(
        count(&db, "count(*) FROM __diesel_schema_migrations").await,
        1
    );
    assert_eq!(
        count(&db, "count(*) FROM pg_tables WHERE tablename = 'ok'").await,
        1
    );
    assert_eq!(
        count(&db, "count(*) FROM pg_tables WHERE tablename = 'half'").await,
        0
    );
    // The lock was released: another run proceeds (and fails the same way).
    assert!(db.run_migrations(&FAILING).await.is_err());
}

static SLOW: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_slow");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_leaves_no_migration_lock_behind() {
    let s = common::setup_with(gino::EngineOptions::new().max_size(1)).await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    // Dropped at several points: taking the lock, inside the (slow,
    // non-transactional) migration, after it.
    for millis in [0, 5, 50, 150] {
        let run = db.run_migrations(&SLOW);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(millis), run).await;
    }
    // A migrator of another engine (another session) gets the lock, which
    // it could not if a pooled connection kept holding it.
    let other = Gino::secondary();
    other
        .set_bind(
            gino::create_engine(s.db.url(), gino::EngineOptions::new())
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        other.run_migrations(&SLOW),
    );
    run.await
        .expect("the migration lock was left held")
        .unwrap();
    // The pooled connection of the first engine is usable and holds nothing.
    let held: i64 = db
        .one(diesel::select(diesel::dsl::sql::<BigInt>(
            "count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        )))
        .await
        .unwrap();
    assert_eq!(held, 0);
}

/// The backends of two connections of `engine`, borrowed at once and
/// given back idle.
async fn idle_pids(engine: &gino::Engine) -> [i32; 2] {
    let (a, b) = tokio::join!(
        engine.acquire().reusable(false),
        engine.acquire().reusable(false)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let pids = [common::backend_pid(&a).await, common::backend_pid(&b).await];
    a.release().await.unwrap();
    b.release().await.unwrap();
    pids
}

/// Migrations that ran may have dropped or created enum types, whose OIDs
/// every open connection remembers: the pool lends none of those again.
/// A run that applies nothing keeps them. (The migrations' own connection
/// holds a session lock and is closed anyway: two are kept idle here.)
#[tokio::test]
async fn migrations_that_ran_renew_the_pools_connections() {
    let s = common::setup_with(gino::EngineOptions::new().max_size(3)).await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let idle_pids = || idle_pids(&s.engine);
    let before = idle_pids().await;
    assert!(!db.run_migrations(&MIGRATIONS).await.unwrap().is_empty());
    let after = idle_pids().await;
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "lent again after the migrations: {before:?} then {after:?}"
    );
    assert!(db.run_migrations(&MIGRATIONS).await.unwrap().is_empty());
    let kept = idle_pids().await;
    assert!(
        kept.iter().any(|pid| after.contains(pid)),
        "none kept after a run that applied nothing: {after:?} then {kept:?}"
    );
}

/// A run dropped after a migration committed (here while the next one
/// runs) renews the pool's connections too: that migration may have
/// changed enum types.
#[tokio::test]
async fn a_run_dropped_after_a_migration_committed_renews_the_connections() {
    static THEN_SLOW: EmbeddedMigrations = gino::embed_migrations!("tests/migrations_then_slow");
    let s = common::setup_with(gino::EngineOptions::new().max_size(3)).await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    let before = idle_pids(&s.engine).await;
    let run = db.run_migrations(&THEN_SLOW);
    let cut = tokio::time::timeout(std::time::Duration::from_millis(1500), run).await;
    assert!(cut.is_err(), "the second migration sleeps for 3 s");
    assert_eq!(count(&db, "count(*) FROM quick").await, 0);
    let after = idle_pids(&s.engine).await;
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "lent again after a migration committed: {before:?} then {after:?}"
    );
}
