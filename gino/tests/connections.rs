//! Connections of an engine against a real server: GINO's
//! `GinoEngine.acquire(reuse, lazy, reusable, timeout)`,
//! `GinoConnection.release(permanent)` and `current_connection`.

mod common;

use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use common::{Setup, backend_pid, pid_query, try_backend_pid};
use diesel_async::RunQueryDsl;
use gino::prelude::*;
use gino::{Engine, EngineOptions, Error};

/// A pool of one connection: a test that passes with it proves that no
/// second raw connection was ever needed (a second borrow would hang).
async fn single_connection_pool() -> Setup {
    common::setup_with(EngineOptions::new().max_size(1)).await
}

/// Fails the test instead of hanging it when `fut` deadlocks.
async fn within_deadline<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("did not finish within 5 s: deadlock?")
}

/// Backend pid of the engine's current connection, if it has one.
async fn current_pid(engine: &Engine) -> Option<i32> {
    match engine.current_connection() {
        Some(conn) => Some(backend_pid(&conn).await),
        None => None,
    }
}

fn available(engine: &Engine) -> usize {
    engine.pool_status().available
}

#[track_caller]
fn assert_released<T: std::fmt::Debug>(result: gino::Result<T>) {
    assert!(
        matches!(result, Err(Error::ConnectionReleased)),
        "expected ConnectionReleased, got {result:?}"
    );
}

/// The pool is back to idle and the task has no contextual connection.
#[track_caller]
fn assert_all_returned(engine: &Engine) {
    assert!(engine.current_connection().is_none(), "context not empty");
    let status = engine.pool_status();
    assert_eq!(
        status.available, status.size,
        "a connection was not returned: {status:?}"
    );
}

#[tokio::test]
async fn reuse_shares_the_latest_reusable_connection() {
    let s = common::setup().await;
    let first = s.engine.acquire().await.unwrap();
    let first_pid = backend_pid(&first).await;
    let reusing = s.engine.acquire().reuse(true).await.unwrap();
    assert!(reusing.is_reusing());
    assert_eq!(backend_pid(&reusing).await, first_pid);

    // A newer reusable connection is the one reused from now on.
    let second = s.engine.acquire().await.unwrap();
    let second_pid = backend_pid(&second).await;
    assert_ne!(second_pid, first_pid);
    let reusing_second = s.engine.acquire().reuse(true).await.unwrap();
    assert_eq!(backend_pid(&reusing_second).await, second_pid);
    // The earlier reusing connection stays on the connection it reused.
    assert_eq!(backend_pid(&reusing).await, first_pid);
}

#[tokio::test]
async fn reuse_without_a_reusable_connection_borrows_a_new_one() {
    let s = common::setup().await;
    let conn = s.engine.acquire().reuse(true).await.unwrap();
    assert!(!conn.is_reusing());
    assert!(conn.has_raw_connection().await);
    // Being a root, it is reusable itself.
    let pid = backend_pid(&conn).await;
    assert_eq!(current_pid(&s.engine).await, Some(pid));
}

#[tokio::test]
async fn unreusable_connections_are_never_reused() {
    let s = common::setup().await;
    let reusable = s.engine.acquire().await.unwrap();
    let reusable_pid = backend_pid(&reusable).await;
    // Acquired later, so it would be the one reused if it were reusable.
    let isolated = s.engine.acquire().reusable(false).await.unwrap();
    let isolated_pid = backend_pid(&isolated).await;

    assert_eq!(current_pid(&s.engine).await, Some(reusable_pid));
    let reusing = s.engine.acquire().reuse(true).await.unwrap();
    assert_eq!(backend_pid(&reusing).await, reusable_pid);
    assert_eq!(backend_pid(&s.engine).await, reusable_pid);

    // Alone, it is not reused either: a reusing acquire borrows anew.
    drop(reusing);
    reusable.release().await.unwrap();
    assert!(s.engine.current_connection().is_none());
    let fresh = s.engine.acquire().reuse(true).await.unwrap();
    assert!(!fresh.is_reusing());
    assert_ne!(backend_pid(&fresh).await, isolated_pid);
}

#[tokio::test]
async fn a_reusing_connection_is_not_reusable() {
    let s = common::setup().await;
    let root = s.engine.acquire().await.unwrap();
    let reusing = s.engine.acquire().reuse(true).reusable(true).await.unwrap();
    assert!(reusing.is_reusing());
    root.release().await.unwrap();
    // Had the reusing connection gone on the stack, it would still be found.
    assert!(s.engine.current_connection().is_none());
    let next = s.engine.acquire().reuse(true).await.unwrap();
    assert!(!next.is_reusing());
    assert_released(try_backend_pid(&reusing).await);
}

#[tokio::test]
async fn nested_reuse_and_implicit_queries_share_one_connection() {
    let s = single_connection_pool().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    within_deadline(async {
        let root = s.engine.acquire().await.unwrap();
        let pid = backend_pid(&root).await;
        let inner = s.engine.acquire().reuse(true).await.unwrap();
        let innermost = s.engine.acquire().reuse(true).await.unwrap();
        assert_eq!(backend_pid(&innermost).await, pid);
        assert_eq!(backend_pid(&inner).await, pid);
        assert_eq!(backend_pid(&root).await, pid);
        // Implicit execution reuses the held connection: with one
        // connection in the pool, borrowing another would hang.
        assert_eq!(backend_pid(&s.engine).await, pid);
        assert_eq!(backend_pid(&db).await, pid);
        let status = s
            .engine
            .status(diesel::sql_query("SELECT 1"))
            .await
            .unwrap();
        assert_eq!(status, "SELECT 1");
        drop(innermost);
        drop(inner);
        root.release().await.unwrap();
    })
    .await;
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn reuse_is_per_engine() {
    let s = common::setup().await;
    let other = gino::create_engine(s.db.url(), EngineOptions::new())
        .await
        .unwrap();
    let held = s.engine.acquire().await.unwrap();
    let held_pid = backend_pid(&held).await;
    let conn = other.acquire().reuse(true).await.unwrap();
    assert!(!conn.is_reusing());
    assert_ne!(backend_pid(&conn).await, held_pid);
    assert_eq!(current_pid(&other).await, Some(backend_pid(&conn).await));
    assert_eq!(current_pid(&s.engine).await, Some(held_pid));
}

#[tokio::test]
async fn lazy_connection_borrows_on_first_query() {
    let s = common::setup().await;
    let before = s.engine.pool_status();
    assert_eq!(before.available, 1, "min_size connection: {before:?}");
    let conn = s.engine.acquire().lazy(true).await.unwrap();
    assert!(!conn.has_raw_connection().await);
    assert_eq!(s.engine.pool_status(), before);

    backend_pid(&conn).await;
    assert!(conn.has_raw_connection().await);
    assert_eq!(available(&s.engine), 0);

    conn.release().await.unwrap();
    assert_eq!(available(&s.engine), 1);
}

#[tokio::test]
async fn unused_lazy_connection_never_borrows() {
    let s = single_connection_pool().await;
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    // The pool's only connection is still free for someone else.
    let (other, _) = common::borrow_free(
        &s.engine,
        "the lazy connection must not hold the pool's only connection",
    )
    .await;
    other.release().await.unwrap();
    assert!(!lazy.has_raw_connection().await);
    lazy.release().await.unwrap();
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn reusing_a_lazy_connection_eagerly_borrows_at_once() {
    let s = common::setup().await;
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    let eager = s.engine.acquire().reuse(true).lazy(false).await.unwrap();
    assert!(eager.is_reusing());
    // The raw connection is shared, so the lazy root has it now too.
    assert!(lazy.has_raw_connection().await);
    assert_eq!(available(&s.engine), 0);
    assert_eq!(backend_pid(&lazy).await, backend_pid(&eager).await);
}

#[tokio::test]
async fn reusing_a_lazy_connection_lazily_stays_lazy() {
    let s = common::setup().await;
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    let reusing = s.engine.acquire().reuse(true).lazy(true).await.unwrap();
    assert!(reusing.is_reusing());
    assert!(!reusing.has_raw_connection().await);
    assert!(!lazy.has_raw_connection().await);
    assert_eq!(available(&s.engine), 1);
    // The first query through either borrows for both.
    let pid = backend_pid(&reusing).await;
    assert!(lazy.has_raw_connection().await);
    assert_eq!(backend_pid(&lazy).await, pid);
}

#[tokio::test]
async fn release_raw_returns_the_connection_and_the_next_query_reborrows() {
    let s = single_connection_pool().await;
    let conn = s.engine.acquire().await.unwrap();
    backend_pid(&conn).await;
    assert_eq!(available(&s.engine), 0);

    conn.release_raw().await.unwrap();
    assert!(!conn.has_raw_connection().await);
    assert!(!conn.is_released());
    assert_eq!(available(&s.engine), 1);
    // Meanwhile the pool's only connection can serve someone else.
    let other = s.engine.acquire().reusable(false).await.unwrap();
    backend_pid(&other).await;
    drop(other);

    backend_pid(&conn).await;
    assert!(conn.has_raw_connection().await);
    assert_eq!(available(&s.engine), 0);
    // It stays the task's reusable connection throughout.
    assert!(s.engine.current_connection().is_some());
    conn.release().await.unwrap();
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn release_raw_on_a_reusing_connection_does_nothing() {
    let s = common::setup().await;
    let root = s.engine.acquire().await.unwrap();
    let pid = backend_pid(&root).await;
    let reusing = s.engine.acquire().reuse(true).await.unwrap();
    reusing.release_raw().await.unwrap();
    assert!(root.has_raw_connection().await);
    assert!(reusing.has_raw_connection().await);
    assert_eq!(available(&s.engine), 0);
    assert_eq!(backend_pid(&reusing).await, pid);
}

#[tokio::test]
async fn releasing_the_root_invalidates_its_reusers() {
    let s = common::setup().await;
    let root = s.engine.acquire().await.unwrap();
    let first = s.engine.acquire().reuse(true).await.unwrap();
    let second = s.engine.acquire().reuse(true).await.unwrap();
    backend_pid(&second).await;

    root.release().await.unwrap();
    assert_eq!(available(&s.engine), 1);
    for conn in [&first, &second] {
        assert!(conn.is_released());
        assert!(!conn.has_raw_connection().await);
        assert_released(try_backend_pid(conn).await);
        assert_released(conn.release().await);
    }
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn releasing_a_reuser_invalidates_only_itself() {
    let s = common::setup().await;
    let root = s.engine.acquire().await.unwrap();
    let pid = backend_pid(&root).await;
    let first = s.engine.acquire().reuse(true).await.unwrap();
    let second = s.engine.acquire().reuse(true).await.unwrap();

    first.release().await.unwrap();
    assert!(first.is_released());
    assert_released(try_backend_pid(&first).await);
    assert_released(first.release().await);
    assert_eq!(backend_pid(&root).await, pid);
    assert_eq!(backend_pid(&second).await, pid);
    assert_eq!(current_pid(&s.engine).await, Some(pid));
    assert_eq!(available(&s.engine), 0);
}

/// GINO's test_release with two roots and a reuser of each: a reuser
/// queries on after its root returned the raw connection (borrowing it
/// again for both), and only the root's final release ends the reuser.
#[tokio::test]
async fn reusers_follow_their_root_through_raw_releases() {
    let s = common::setup_with(EngineOptions::new().max_size(2)).await;
    let conn1 = s.engine.acquire().await.unwrap();
    let conn2 = s.engine.acquire().reuse(true).await.unwrap();
    let conn3 = s.engine.acquire().await.unwrap();
    let conn4 = s.engine.acquire().reuse(true).await.unwrap();
    let pid1 = backend_pid(&conn1).await;
    assert_eq!(backend_pid(&conn2).await, pid1);
    let pid3 = backend_pid(&conn3).await;
    assert_ne!(pid1, pid3);
    assert_eq!(backend_pid(&conn4).await, pid3);
    assert_eq!(available(&s.engine), 0);

    conn1.release_raw().await.unwrap();
    assert!(
        !conn2.has_raw_connection().await,
        "the raw connection is shared"
    );
    assert_eq!(available(&s.engine), 1);
    backend_pid(&conn2).await;
    assert!(conn1.has_raw_connection().await, "borrowed again for both");
    assert_eq!(available(&s.engine), 0);

    conn2.release_raw().await.unwrap();
    backend_pid(&conn2).await;

    conn1.release().await.unwrap();
    assert_released(try_backend_pid(&conn2).await);
    assert_eq!(backend_pid(&conn4).await, pid3);
    conn4.release().await.unwrap();
    assert_released(try_backend_pid(&conn4).await);

    assert_eq!(backend_pid(&conn3).await, pid3);
    conn3.release_raw().await.unwrap();
    backend_pid(&conn3).await;
    assert_eq!(available(&s.engine), 1);
    conn3.release_raw().await.unwrap();
    assert_eq!(available(&s.engine), 2);
    conn3.release().await.unwrap();
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn a_released_connection_cannot_be_used_or_released_again() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    conn.release().await.unwrap();
    assert!(conn.is_released());
    assert_released(try_backend_pid(&conn).await);
    assert_released(conn.release().await);
    assert_released(conn.release_raw().await);
    assert_released(
        conn.run(|c| Box::pin(diesel::sql_query("SELECT 1").execute(c)))
            .await,
    );
    assert_released(conn.begin().await.map(drop));
    assert_released(conn.transaction(async { Ok::<_, Error>(()) }).await);
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn current_connection_follows_out_of_order_releases() {
    let s = common::setup().await;
    assert!(s.engine.current_connection().is_none());
    let a = s.engine.acquire().await.unwrap();
    let b = s.engine.acquire().await.unwrap();
    let c = s.engine.acquire().await.unwrap();
    let (pid_a, pid_c) = (backend_pid(&a).await, backend_pid(&c).await);
    assert_eq!(current_pid(&s.engine).await, Some(pid_c));

    b.release().await.unwrap();
    assert_eq!(current_pid(&s.engine).await, Some(pid_c));
    c.release().await.unwrap();
    assert_eq!(current_pid(&s.engine).await, Some(pid_a));
    a.release().await.unwrap();
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn dropping_a_connection_releases_it() {
    let s = single_connection_pool().await;
    let conn = s.engine.acquire().await.unwrap();
    let reusing = s.engine.acquire().reuse(true).await.unwrap();
    backend_pid(&conn).await;
    drop(conn);
    assert_released(try_backend_pid(&reusing).await);
    assert_all_returned(&s.engine);
    // The pool's only connection is free again.
    common::borrow_free(&s.engine, "the pool's only connection was kept").await;
}

/// A spawned task starts with an empty context: it neither sees nor uses
/// the parent's reusable connection, and the parent never sees the child's.
async fn spawned_task_has_its_own_context() {
    let s = common::setup().await;
    let parent = s.engine.acquire().await.unwrap();
    let parent_pid = backend_pid(&parent).await;

    let (acquired_tx, acquired_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let engine = s.engine.clone();
    let child = tokio::spawn(async move {
        let saw_parent = engine.current_connection().is_some();
        let implicit_pid = backend_pid(&engine).await;
        let own = engine.acquire().await.unwrap();
        let own_pid = backend_pid(&own).await;
        let reused_pid = backend_pid(&engine).await;
        acquired_tx.send(()).unwrap();
        done_rx.await.unwrap();
        own.release().await.unwrap();
        (saw_parent, implicit_pid, own_pid, reused_pid)
    });
    acquired_rx.await.unwrap();
    // The child holds a reusable connection now; the parent keeps its own.
    assert_eq!(current_pid(&s.engine).await, Some(parent_pid));
    assert_eq!(backend_pid(&s.engine).await, parent_pid);
    done_tx.send(()).unwrap();

    let (saw_parent, implicit_pid, own_pid, reused_pid) = child.await.unwrap();
    assert!(!saw_parent, "a spawned task saw its parent's connection");
    assert_ne!(implicit_pid, parent_pid);
    assert_ne!(own_pid, parent_pid);
    assert_eq!(reused_pid, own_pid, "the child reuses its own connection");
    parent.release().await.unwrap();
    assert_all_returned(&s.engine);
}

#[tokio::test]
async fn spawned_task_has_its_own_context_current_thread() {
    spawned_task_has_its_own_context().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_task_has_its_own_context_multi_thread() {
    spawned_task_has_its_own_context().await;
}

#[tokio::test]
async fn scope_makes_the_connection_contextual_and_releases_it() {
    let s = common::setup().await;
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    // Not reusable: only the scope makes it the contextual connection.
    let conn = s.engine.acquire().reusable(false).await.unwrap();
    let pid = backend_pid(&conn).await;
    let seen = conn
        .scope(async {
            let via_engine = backend_pid(&s.engine).await;
            let via_db = backend_pid(&db).await;
            let via_db_api: i32 = db.one(pid_query()).await.unwrap();
            let current = current_pid(&s.engine).await;
            let reusing = s.engine.acquire().reuse(true).await.unwrap();
            (
                via_engine,
                via_db,
                via_db_api,
                current,
                backend_pid(&reusing).await,
            )
        })
        .await;
    assert_eq!(seen, (pid, pid, pid, Some(pid), pid));
    assert_all_returned(&s.engine);
    assert_eq!(available(&s.engine), 1);
}

#[tokio::test]
async fn context_is_empty_after_a_failed_scope() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let result = conn
        .scope(async {
            let _nested = s.engine.acquire().await?;
            s.engine.status(diesel::sql_query("SELEC 1")).await
        })
        .await;
    assert_eq!(result.unwrap_err().sqlstate(), Some("42601"));
    assert_all_returned(&s.engine);
}

/// Drops `fut` unfinished after a moment, as a cancelled task would.
async fn cancel_soon<F: Future>(fut: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_millis(100), fut).await
}

#[tokio::test]
async fn context_is_empty_after_a_cancelled_acquire() {
    let s = single_connection_pool().await;

    // A task that holds an acquired connection and is cancelled.
    let held = cancel_soon(async {
        let conn = s.engine.acquire().await.unwrap();
        backend_pid(&conn).await;
        std::future::pending::<()>().await;
    })
    .await;
    assert!(held.is_err());
    assert_all_returned(&s.engine);

    // A scope cancelled while its future waits.
    let conn = s.engine.acquire().await.unwrap();
    let scoped = cancel_soon(conn.scope(std::future::pending::<()>())).await;
    assert!(scoped.is_err());
    assert_all_returned(&s.engine);

    // Cancelled in the middle of a statement: the raw connection is
    // recovered, not closed. Its statement, which nobody awaits any more,
    // is cancelled on the server, and the pool's only slot comes back with
    // the same backend.
    let before = backend_pid(&s.engine).await;
    let mid_query = cancel_soon(async {
        let conn = s.engine.acquire().await.unwrap();
        conn.status(diesel::sql_query("SELECT pg_sleep(30)"))
            .await
            .unwrap();
    })
    .await;
    assert!(mid_query.is_err());
    assert!(s.engine.current_connection().is_none(), "context not empty");
    let (again, pid) = common::borrow_free(&s.engine, "the connection was kept").await;
    assert_eq!(pid, before, "recovered, not reopened");
    assert_eq!(
        common::sessions_running(&again, "pg_sleep(30)").await,
        0,
        "the abandoned statement still runs"
    );
    again.release().await.unwrap();
    assert_all_returned(&s.engine);
}

/// A statement dropped on a connection that is kept: outside a transaction
/// nobody can want its work any more, so it is cancelled and the next
/// statement does not wait for it; inside one it is awaited, and the
/// transaction goes on with its work.
#[tokio::test]
async fn a_statement_dropped_on_a_kept_connection() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;
    let started = Instant::now();
    let dropped = cancel_soon(conn.status(diesel::sql_query("SELECT pg_sleep(30)"))).await;
    assert!(dropped.is_err());
    assert_eq!(backend_pid(&conn).await, pid);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?} for an abandoned statement",
        started.elapsed()
    );

    let tx = conn.begin().await.unwrap();
    conn.status(diesel::sql_query("CREATE TABLE kept (x int)"))
        .await
        .unwrap();
    let started = Instant::now();
    let dropped = cancel_soon(conn.status(diesel::sql_query(
        "INSERT INTO kept SELECT 1 FROM pg_sleep(0.5)",
    )))
    .await;
    assert!(dropped.is_err());
    let rows: i64 = conn
        .one(diesel::select(
            diesel::dsl::sql::<diesel::sql_types::BigInt>("count(*) FROM kept"),
        ))
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "the abandoned statement was awaited, not cancelled"
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}

#[tokio::test]
async fn run_gives_raw_diesel_access() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;
    let rows = conn
        .run(|c| Box::pin(diesel::sql_query("CREATE TEMP TABLE t AS SELECT 1 AS x").execute(c)))
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let raw_pid: i32 = conn
        .run(|c| Box::pin(pid_query().get_result(c)))
        .await
        .unwrap();
    assert_eq!(raw_pid, pid);
    // The temporary table proves gino and the closure share a session.
    let status = conn
        .status(diesel::sql_query("SELECT x FROM t"))
        .await
        .unwrap();
    assert_eq!(status, "SELECT 1");
    // diesel's errors come back as gino errors with their SQLSTATE.
    let err = conn
        .run(|c| Box::pin(diesel::sql_query("SELECT * FROM missing").execute(c)))
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
}

#[tokio::test]
async fn eager_reuse_of_a_lazy_connection_waits_at_most_its_timeout() {
    let s = single_connection_pool().await;
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    // Reusing eagerly must borrow for the lazy connection, and the pool is
    // empty: the reusing acquire's own timeout bounds that wait.
    let started = tokio::time::Instant::now();
    let result = within_deadline(
        s.engine
            .acquire()
            .reuse(true)
            .timeout(Duration::from_millis(100))
            .into_future(),
    )
    .await;
    assert!(
        matches!(result, Err(Error::PoolTimeout(t)) if t == Duration::from_millis(100)),
        "expected PoolTimeout, got {result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(!lazy.has_raw_connection().await);
    drop(holder);
    let reusing = s.engine.acquire().reuse(true).await.unwrap();
    assert!(lazy.has_raw_connection().await);
    assert_eq!(backend_pid(&reusing).await, backend_pid(&lazy).await);
}

#[tokio::test]
async fn a_lazy_connection_s_timeout_bounds_its_first_borrow() {
    let s = single_connection_pool().await;
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    // Lazy: nothing to wait for yet, so acquiring succeeds at once.
    let lazy = within_deadline(
        s.engine
            .acquire()
            .lazy(true)
            .reusable(false)
            .timeout(Duration::from_millis(100))
            .into_future(),
    )
    .await
    .unwrap();
    let result = within_deadline(common::try_backend_pid(&lazy)).await;
    assert!(
        matches!(result, Err(Error::PoolTimeout(t)) if t == Duration::from_millis(100)),
        "expected PoolTimeout, got {result:?}"
    );
    drop(holder);
    assert!(
        within_deadline(common::try_backend_pid(&lazy))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn dropping_the_root_while_a_reuser_runs_a_query_returns_the_connection() {
    let s = single_connection_pool().await;
    let root = s.engine.acquire().await.unwrap();
    let reusing = s.engine.acquire().reuse(true).await.unwrap();
    let (slow, ()) = within_deadline(async {
        tokio::join!(
            reusing.status(diesel::sql_query("SELECT pg_sleep(0.3)")),
            async {
                // Dropped while the reusing connection's query holds it.
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(root);
            }
        )
    })
    .await;
    // The query that was running finishes; nothing runs after it.
    assert_eq!(slow.unwrap(), "SELECT 1");
    assert_released(try_backend_pid(&reusing).await);
    // The raw connection is back although `reusing` still exists.
    assert_all_returned(&s.engine);
    common::borrow_free(&s.engine, "the raw connection was kept").await;
}

/// A database's queries find the task's connection by the bound engine's
/// id: rebinding the database moves them to the new engine even while a
/// connection of the old one is the task's, and unbinding it fails them.
#[tokio::test]
async fn rebinding_moves_implicit_queries_off_the_old_engines_connection() {
    static DB: gino::Gino = gino::Gino::secondary();
    let setup = common::setup().await;
    let other = gino::create_engine(setup.db.url(), EngineOptions::new())
        .await
        .expect("a second engine");
    DB.set_bind(setup.engine.clone()).await.unwrap();
    let held = setup.engine.acquire().await.unwrap();
    let held_pid = backend_pid(&held).await;
    assert_eq!(backend_pid(&DB).await, held_pid, "the task's connection");
    DB.set_bind(other.clone()).await.unwrap();
    assert_ne!(backend_pid(&DB).await, held_pid, "the new engine's own");
    drop(DB.pop_bind());
    assert!(
        matches!(try_backend_pid(&DB).await, Err(Error::Uninitialized)),
        "an unbound database runs nowhere, a connection of its old engine in context or not"
    );
    held.release().await.unwrap();
    other.close().await;
}

/// GINO's `test_issue_313`: futures run side by side each acquire, use and
/// release a reusable connection. Joined in one task they share its
/// context (as coroutines of one asyncio task would), so each is wrapped
/// in `own_context`, as `asyncio.gather` wraps each in a task of its own.
#[tokio::test]
async fn joined_futures_in_contexts_of_their_own_keep_their_connections_apart() {
    let s = common::setup().await;
    let e = &s.engine;
    let uses = |_| async {
        let conn = e.acquire().reuse(true).await?;
        let pid = try_backend_pid(e).await?;
        tokio::task::yield_now().await;
        assert_eq!(
            try_backend_pid(e).await?,
            pid,
            "another future's connection"
        );
        conn.release().await.map(|()| pid)
    };
    let pids = futures_util::future::join_all((0..5).map(|i| gino::own_context(uses(i)))).await;
    let mut pids: Vec<i32> = pids.into_iter().map(Result::unwrap).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 5, "each future had its own connection");
    assert_all_returned(e);

    // Joined without it, they are one task: the first reusable connection
    // is the one the others reuse, and its release ends their use of it.
    let shared = futures_util::future::join_all((0..5).map(uses)).await;
    assert!(shared[0].is_ok(), "{:?}", shared[0]);
    assert!(
        shared[1..]
            .iter()
            .any(|r| matches!(r, Err(Error::ConnectionReleased))),
        "{shared:?}"
    );
    assert_all_returned(e);

    // Managed transactions are scopes of their own already.
    let in_transactions = futures_util::future::join_all((0..5).map(|_| {
        e.transaction(async {
            backend_pid(e).await;
            Ok::<_, Error>(())
        })
        .into_future()
    }))
    .await;
    assert!(in_transactions.iter().all(Result::is_ok));
    assert_all_returned(e);
}

#[tokio::test]
async fn a_manual_transaction_in_its_own_context_takes_no_joined_statement() {
    let s = common::setup().await;
    let e = &s.engine;
    e.status(diesel::sql_query("CREATE TABLE t (x int)"))
        .await
        .unwrap();
    let insert = |x: i32| diesel::sql_query(format!("INSERT INTO t VALUES ({x})"));
    let rolled_back = gino::own_context(async {
        let tx = e.begin().await?;
        e.status(insert(1)).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        tx.rollback().await
    });
    let beside = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        e.status(insert(2)).await
    };
    let (rolled_back, beside) = tokio::join!(rolled_back, beside);
    rolled_back.unwrap();
    beside.unwrap();
    let rows: Vec<i32> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
        "x FROM t ORDER BY x",
    ))
    .gino()
    .bind(e)
    .all()
    .await
    .unwrap();
    assert_eq!(rows, [2]);

    // Inside a managed transaction, a future in its own context runs
    // outside it, as a spawned task would.
    e.transaction(async {
        e.status(insert(3)).await?;
        let outside = gino::own_context(async {
            assert!(gino::Transaction::current().is_none());
            backend_pid(e).await
        });
        assert_ne!(outside.await, backend_pid(e).await);
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_all_returned(e);
}
