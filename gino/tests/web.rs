//! The framework-neutral request layer (`gino::web`) on its own: the scope
//! of a request, its tracing span, and shutdown. The frameworks' crates
//! test it again over real HTTP.
#![cfg(feature = "web")]

mod common;

use std::time::Duration;

use diesel::dsl::sql;
use diesel::sql_types::Integer;
use gino::web::{Extension, Settings};
use gino_testkit::TestDatabase;

async fn extension(database: &TestDatabase) -> Extension {
    extension_with(database, |_| {}).await
}

/// [`extension`] with settings of the test's own on top.
async fn extension_with(
    database: &TestDatabase,
    configure: impl FnOnce(&mut Settings),
) -> Extension {
    let mut settings = Settings::default();
    settings.dsn = Some(database.url().to_owned());
    settings.pool_min_size = 1;
    settings.pool_max_size = 2;
    configure(&mut settings);
    let db: &'static gino::Gino = Box::leak(Box::new(gino::Gino::secondary()));
    let extension = Extension::new(db, settings);
    extension.connect().await.expect("connect");
    extension
}

/// GINO's extension tests check that the pool settings given to the
/// extension (`kwargs`, `DB_KWARGS`) reach every connection; so here, on
/// the server's side where it can tell.
#[tokio::test]
async fn settings_reach_the_engine_and_every_connection() {
    use diesel::sql_types::{BigInt, Text};
    let database = TestDatabase::create().await;
    let extension = extension_with(&database, |s| {
        s.pool_max_size = 3;
        s.statement_timeout = Some(Duration::from_millis(1500));
        s.statement_cache = false;
        s.max_inactive_connection_lifetime = Some(Duration::from_secs(59));
        s.kwargs = vec![("application_name".into(), "gino_kwargs".into())];
    })
    .await;
    let db = extension.db();
    let engine = db.engine().unwrap();
    assert_eq!(engine.pool_status().max_size, 3);
    let options = format!("{:?}", engine.options());
    assert!(
        options.contains("max_inactive_connection_lifetime: Some(59s)"),
        "{options}"
    );
    let (timeout, prepared) = extension
        .request()
        .run(async {
            let timeout: String = db
                .one(diesel::select(sql::<Text>(
                    "current_setting('statement_timeout') || ' ' || \
                     current_setting('application_name')",
                )))
                .await?;
            for _ in 0..3 {
                db.one::<i32, _>(diesel::select(sql::<Integer>("7")))
                    .await?;
            }
            let prepared: i64 = db
                .one(diesel::select(sql::<BigInt>(
                    "count(*) FROM pg_prepared_statements",
                )))
                .await?;
            Ok::<_, gino::Error>((timeout, prepared))
        })
        .await
        .unwrap();
    assert_eq!(timeout, "1500ms gino_kwargs");
    assert_eq!(prepared, 0, "the statement cache is off");
    // Every connection of the pool, held at once so that each is another.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(engine.acquire().reusable(false).await.unwrap());
    }
    let mut pids = Vec::new();
    for conn in &held {
        let (pid, settings): (i32, String) = conn
            .one(diesel::select((
                sql::<Integer>("pg_backend_pid()"),
                sql::<Text>(
                    "current_setting('statement_timeout') || ' ' || \
                     current_setting('application_name')",
                ),
            )))
            .await
            .unwrap();
        assert_eq!(settings, "1500ms gino_kwargs", "backend {pid}");
        pids.push(pid);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three connections");
    drop(held);
    extension.close().await;
}

#[tokio::test]
async fn a_request_span_reports_borrows_waits_and_statements() {
    use tracing::instrument::WithSubscriber;
    use tracing_subscriber::fmt::format::FmtSpan;

    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    let db = extension.db();
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_span_events(FmtSpan::CLOSE)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || Capture(writer.clone()))
        .finish();
    let n = extension
        .request()
        .run(async {
            let a: i32 = db.one(diesel::select(sql::<Integer>("1"))).await?;
            let b: i32 = db.one(diesel::select(sql::<Integer>("2"))).await?;
            let c: i32 = db
                .transaction(async { db.one(diesel::select(sql::<Integer>("3"))).await })
                .await?;
            Ok::<_, gino::Error>(a + b + c)
        })
        .with_subscriber(subscriber)
        .await
        .unwrap();
    assert_eq!(n, 6);
    let log = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let closed = log
        .lines()
        .find(|l| l.contains("gino_request") && l.contains("close"))
        .unwrap_or_else(|| panic!("no closed request span in:\n{log}"));
    assert!(closed.contains("borrows=1"), "{closed}");
    // BEGIN and COMMIT are not counted: three statements of the request.
    assert!(closed.contains("statements=3"), "{closed}");
    assert!(closed.contains("borrow_wait_us="), "{closed}");
    assert!(
        log.contains("request used the database: 3 statement(s), 1 borrow(s)"),
        "{log}"
    );
    extension.close().await;
}

#[tokio::test]
async fn a_dropped_request_gives_its_connection_back() {
    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    let db = extension.db();
    let engine = db.engine().unwrap();
    let scope = extension.request();
    let handle = scope.connection().expect("a request connection");
    let run = scope.run(async {
        db.transaction(async {
            db.status(diesel::sql_query("CREATE TABLE t (x int)"))
                .await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, gino::Error>(())
        })
        .await
    });
    // Dropped while inside its transaction, with a handle still held.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err()
    );
    assert!(handle.is_released());
    assert_eq!(extension.in_flight(), 0);
    assert_back_outside_transactions(&engine).await;
    let table: Option<String> = engine
        .one(diesel::select(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Text>,
        >("to_regclass('t')::text")))
        .await
        .unwrap();
    assert_eq!(table, None, "the abandoned transaction was rolled back");
    extension.close().await;
    assert!(!db.is_bound());
}

/// A handler that returns with a transaction still open on the request's
/// connection: the request ends with a `ROLLBACK`, and the connection goes
/// back to the pool outside any transaction.
#[tokio::test]
async fn a_request_that_ends_inside_a_transaction_is_rolled_back() {
    use diesel_async::RunQueryDsl;

    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    let engine = extension.db().engine().unwrap();
    let scope = extension.request();
    let handle = scope.connection().expect("a request connection");
    let conn = handle.clone();
    scope
        .run(async move {
            conn.run(|c| Box::pin(diesel::sql_query("BEGIN").execute(c)))
                .await
        })
        .await
        .unwrap();
    assert!(handle.is_released());
    assert_eq!(engine.pool_status().size, 1, "rolled back, not closed");
    assert_back_outside_transactions(&engine).await;
    extension.close().await;
}

/// Handlers find the request's connection however deep they are in the
/// request's scopes: inside a transaction, and inside a scope of their own
/// connection; a request without one (`use_connection_for_request` off)
/// hands out a connection of its own instead.
#[tokio::test]
async fn handlers_find_the_request_connection_inside_nested_scopes() {
    use gino::web::RequestConnection;

    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    let db = extension.db();
    let pid = || diesel::select(sql::<Integer>("pg_backend_pid()"));
    let (request_pid, in_transaction, in_scope) = extension
        .request()
        .run(async {
            let request_pid: i32 = db.one(pid()).await?;
            let in_transaction = db
                .transaction(async {
                    let conn = RequestConnection::current().expect("in a request")?;
                    conn.one::<i32, _>(pid()).await
                })
                .await?;
            let own = db.engine()?.acquire().reuse(false).await?;
            let in_scope = own
                .scope(async {
                    let conn = RequestConnection::current().expect("in a request")?;
                    conn.one::<i32, _>(pid()).await
                })
                .await?;
            Ok::<_, gino::Error>((request_pid, in_transaction, in_scope))
        })
        .await
        .unwrap();
    assert_eq!(in_transaction, request_pid);
    assert_eq!(in_scope, request_pid);

    let mut settings = Settings::default();
    settings.dsn = Some(database.url().to_owned());
    settings.use_connection_for_request = false;
    let db: &'static gino::Gino = Box::leak(Box::new(gino::Gino::secondary()));
    let without = Extension::new(db, settings);
    without.connect().await.unwrap();
    let scope = without.request();
    assert!(scope.connection().is_none());
    let own = scope
        .run(async { RequestConnection::current().expect("in a request") })
        .await
        .unwrap();
    assert_eq!(own.stats().borrows, 0, "lazy: nothing borrowed yet");
    assert!(RequestConnection::current().is_none(), "outside a request");
    drop(own);
    without.close().await;
    extension.close().await;
}

/// Every connection of `engine` comes back to its pool (one dropped in the
/// middle of a statement once the statement has ended), and the one a new
/// acquire gets is outside any transaction.
async fn assert_back_outside_transactions(engine: &gino::Engine) {
    let borrowed = || {
        let status = engine.pool_status();
        status.size - status.available
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while borrowed() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(borrowed(), 0, "the connection is back");
    let conn = engine.acquire().await.unwrap();
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();
}

#[derive(Clone)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_shutdown_timeout_of_duration_max_means_no_limit() {
    // It used to panic adding itself to the clock.
    let database = TestDatabase::create().await;
    let extension = extension_with(&database, |s| s.shutdown_timeout = Duration::MAX).await;
    let n: i32 = extension
        .request()
        .run(async {
            extension
                .db()
                .one(diesel::select(sql::<Integer>("1")))
                .await
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    tokio::time::timeout(Duration::from_secs(10), extension.close())
        .await
        .expect("closes once nothing is in flight");
    assert!(!extension.db().is_bound());
}

fn one() -> diesel::dsl::select<diesel::expression::SqlLiteral<Integer>> {
    diesel::select(sql::<Integer>("1"))
}

#[tokio::test]
async fn a_held_response_keeps_the_pool_open_through_shutdown() {
    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    // A streamed body, held by its web crate after its handling ended.
    let body = extension.hold();
    extension.shutdown();
    assert!(
        extension.db().is_bound(),
        "closed under a response going out"
    );
    let n: i32 = extension.db().one(one()).await.unwrap();
    assert_eq!(n, 1);
    drop(body);
    assert!(
        !extension.db().is_bound(),
        "closed once the response is out"
    );
}

#[tokio::test]
async fn queries_of_requests_after_shutdown_find_the_pool_closed() {
    for per_request in [true, false] {
        let database = TestDatabase::create().await;
        let extension =
            extension_with(&database, |s| s.use_connection_for_request = per_request).await;
        extension.close().await;
        let late = extension
            .request()
            .run(extension.db().one::<i32, _>(one()))
            .await;
        assert!(matches!(late, Err(gino::Error::PoolClosed)), "{late:?}");
        let answer = gino::web::ErrorResponse::new(&late.unwrap_err());
        assert_eq!(answer.status(), 503);
    }
}

#[tokio::test]
async fn an_extension_serves_again_after_a_close() {
    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    extension.close().await;
    let engine = extension.connect().await.unwrap();
    let n: i32 = extension
        .request()
        .run(extension.db().one(one()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    extension.close().await;
    assert!(!extension.db().is_bound());
    assert!(
        engine.is_closed(),
        "the second close closed the second pool"
    );
}

/// A request future made in one task and run in another (spawned) sees
/// none of the first task's reusable connections: a request starts with a
/// context of its own, as a spawned task does, whoever made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_in_one_task_and_run_in_another_sees_none_of_the_first() {
    let database = TestDatabase::create().await;
    let extension = extension(&database).await;
    let other = gino::create_engine(database.url(), gino::EngineOptions::new())
        .await
        .unwrap();
    let held = other.acquire().await.unwrap();
    assert!(other.current_connection().is_some(), "this task's");
    let in_request = other.clone();
    let request = extension.request().run(async move {
        let conn = in_request.acquire().reuse(true).await.unwrap();
        let reusing = conn.is_reusing();
        conn.release().await.unwrap();
        reusing
    });
    let reused = tokio::spawn(request).await.unwrap();
    assert!(
        !reused,
        "the request reused a connection of the task that made it"
    );
    held.release().await.unwrap();
    other.close().await;
    extension.close().await;
}

/// A request run inline by code that holds reusable connections (a
/// middleware's transaction around the request, say) sees none of them,
/// with a connection of its own or without one: turning
/// `use_connection_for_request` off must not make the handler's queries
/// join the caller's transaction.
#[tokio::test]
async fn a_request_sees_none_of_its_callers_connections_with_or_without_its_own() {
    for per_request in [true, false] {
        let database = TestDatabase::create().await;
        let extension =
            extension_with(&database, |s| s.use_connection_for_request = per_request).await;
        let other = gino::create_engine(database.url(), gino::EngineOptions::new())
            .await
            .unwrap();
        let held = other.acquire().await.unwrap();
        let in_request = other.clone();
        let reused_inline = extension
            .request()
            .run(async move {
                let conn = in_request.acquire().reuse(true).await.unwrap();
                let reusing = conn.is_reusing();
                conn.release().await.unwrap();
                reusing
            })
            .await;
        assert!(
            !reused_inline,
            "per_request {per_request}: the request reused its caller's connection"
        );
        let in_request = other.clone();
        let request = extension.request();
        let reused_in_block = other
            .transaction(async move {
                let reused = request
                    .run(async move {
                        (
                            in_request.current_connection().is_some(),
                            gino::Transaction::current().is_some(),
                        )
                    })
                    .await;
                Ok::<_, gino::Error>(reused)
            })
            .await
            .unwrap();
        assert_eq!(
            reused_in_block,
            (false, false),
            "per_request {per_request}: the request saw its caller's connection or transaction"
        );
        held.release().await.unwrap();
        other.close().await;
        extension.close().await;
    }
}

/// An app restarted in the same process (`close`, then `connect` again)
/// serves its tenants again, as it serves its own database again.
#[tokio::test]
async fn an_extension_serves_its_tenants_again_after_a_close() {
    let database = TestDatabase::create().await;
    let url = database.url().to_owned();
    let mut settings = Settings::default();
    settings.dsn = Some(url.clone());
    let db: &'static gino::Gino = Box::leak(Box::new(gino::Gino::secondary()));
    let tenants = gino::Tenants::builder(db, move |_tenant: String| {
        let url = url.clone();
        async move { Ok(url) }
    })
    .build();
    let extension = Extension::new(db, settings).with_tenants(tenants);
    for round in 0..2 {
        extension.connect().await.expect("connect");
        let scope = extension.tenant_request("acme").await;
        let n = match scope {
            Ok(scope) => scope.run(db.one::<i32, _>(one())).await,
            Err(e) => Err(e),
        };
        assert_eq!(n.ok(), Some(1), "round {round}");
        extension.close().await;
        assert!(
            matches!(
                extension.tenant_request("acme").await,
                Err(gino::Error::PoolClosed)
            ),
            "round {round}: a closed extension leases no tenant"
        );
    }
}
