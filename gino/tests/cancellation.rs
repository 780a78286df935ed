//! Cancellation safety: a transaction's future dropped at any await point
//! never lets a connection back into the pool inside a transaction, never
//! half-commits, and never leaves a living connection inside the abandoned
//! transaction.
mod common;

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types as st;
use gino::prelude::*;
use gino::{Engine, EngineOptions};

/// Rows each transaction of [`body`] inserts, all with its batch id.
const ROWS: i64 = 4;

async fn batches_setup(app: &str, max_size: usize) -> common::Setup {
    let options = EngineOptions::new()
        .max_size(max_size)
        .application_name(app);
    let s = common::setup_with(options).await;
    for ddl in [
        "CREATE TABLE batches (batch int NOT NULL, step int NOT NULL)",
        "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)",
        "INSERT INTO counter VALUES (1, 0)",
    ] {
        s.engine.status(diesel::sql_query(ddl)).await.expect(ddl);
    }
    s
}

fn insert(batch: i32, step: i32) -> gino::Text {
    gino::text("INSERT INTO batches VALUES (:batch, :step)")
        .bind::<st::Integer, _>("batch", batch)
        .bind::<st::Integer, _>("step", step)
}

/// A short server-side sleep, so that time-based cancellation also lands
/// while a statement runs, not only between statements.
async fn nap(engine: &Engine) -> gino::Result<()> {
    engine
        .status(diesel::sql_query("SELECT pg_sleep(0.002)"))
        .await
        .map(drop)
}

/// The statements of one transaction, run implicitly on `engine`: [`ROWS`]
/// INSERTs of `batch`, two of them in a nested level (a savepoint).
async fn body(engine: &Engine, batch: i32) -> gino::Result<()> {
    engine.status(insert(batch, 1)).await?;
    nap(engine).await?;
    engine
        .transaction(async {
            engine.status(insert(batch, 2)).await?;
            nap(engine).await?;
            engine.status(insert(batch, 3)).await.map(drop)
        })
        .await?;
    engine.status(insert(batch, 4)).await?;
    nap(engine).await
}

/// Where the transaction of [`body`] runs.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `engine.transaction(..)` on a connection of its own.
    Engine,
    /// `conn.transaction(..)` on a lazy connection.
    Lazy,
    /// `conn.transaction(..)` on a connection reusing an outer one.
    Reused,
    /// `engine.begin()` .. `tx.commit()`.
    Manual,
}

async fn run(mode: Mode, engine: &Engine, batch: i32) -> gino::Result<()> {
    match mode {
        Mode::Engine => engine.transaction(body(engine, batch)).await,
        Mode::Lazy => {
            let conn = engine.acquire().lazy(true).await?;
            conn.transaction(body(engine, batch)).await
        }
        Mode::Reused => {
            let _outer = engine.acquire().await?;
            let inner = engine.acquire().reuse(true).await?;
            inner.transaction(body(engine, batch)).await
        }
        Mode::Manual => {
            let tx = engine.begin().await?;
            body(engine, batch).await?;
            tx.commit().await
        }
    }
}

/// Polls `fut` until it has waited `n + 1` times, then drops it: the
/// cancellation lands on its `n`-th await point that actually waits.
/// Resolves to `None` when it was cancelled.
fn cancel_after<F: IntoFuture>(n: usize, fut: F) -> CancelAfter<F::IntoFuture> {
    CancelAfter {
        fut: Some(Box::pin(fut.into_future())),
        waits_left: n,
    }
}

struct CancelAfter<F> {
    fut: Option<Pin<Box<F>>>,
    waits_left: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.fut.as_mut().expect("polled after completion");
        match fut.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if self.waits_left == 0 => {
                self.fut = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                self.waits_left -= 1;
                Poll::Pending
            }
        }
    }
}

/// Batches run, and whether each one's future completed (`true`) or was
/// cancelled (`false`).
type Outcomes = Vec<(i32, bool)>;

fn outcome(batch: i32, result: Option<gino::Result<()>>) -> (i32, bool) {
    match result {
        Some(Ok(())) => (batch, true),
        Some(Err(e)) => panic!("batch {batch} failed instead of being cancelled: {e}"),
        None => (batch, false),
    }
}

/// Cancels `mode`'s transaction after 0, 1, .. 40 ms, from batch `first` on.
async fn sweep_by_time(mode: Mode, engine: &Engine, first: i32) -> Outcomes {
    let mut outcomes = Vec::new();
    for ms in 0..=40 {
        let batch = first + ms;
        let limit = Duration::from_millis(ms as u64);
        let result = tokio::time::timeout(limit, run(mode, engine, batch)).await;
        outcomes.push(outcome(batch, result.ok()));
        assert!(
            engine.current_connection().is_none(),
            "{mode:?} after {ms} ms"
        );
    }
    outcomes
}

/// Cancels `mode`'s transaction at each of its await points in turn, until
/// it runs to completion, from batch `first` on.
async fn sweep_by_polls(mode: Mode, engine: &Engine, first: i32) -> Outcomes {
    let mut outcomes = Vec::new();
    for n in 0..1000 {
        let batch = first + n as i32;
        let result = cancel_after(n, run(mode, engine, batch)).await;
        let completed = result.is_some();
        outcomes.push(outcome(batch, result));
        assert!(
            engine.current_connection().is_none(),
            "{mode:?} at wait {n}"
        );
        if completed {
            return outcomes;
        }
    }
    panic!("{mode:?} never completed");
}

/// Rows per batch in the table.
async fn batch_counts(engine: &Engine) -> HashMap<i32, i64> {
    let rows: Vec<(i32, i64)> = engine
        .all(diesel::select(sql::<(st::Integer, st::BigInt)>(
            "batch, count(*) FROM batches GROUP BY batch",
        )))
        .await
        .expect("batch counts");
    rows.into_iter().collect()
}

/// Asserts that every batch is all or nothing (`rows` or none), and all if
/// it completed; and that the outcomes include both kinds.
fn assert_all_or_nothing(counts: &HashMap<i32, i64>, outcomes: &Outcomes, rows: i64) {
    assert!(outcomes.iter().any(|o| o.1), "no transaction completed");
    assert!(
        outcomes.iter().any(|o| !o.1),
        "no transaction was cancelled"
    );
    for &(batch, completed) in outcomes {
        let n = counts.get(&batch).copied().unwrap_or(0);
        if completed {
            assert_eq!(n, rows, "batch {batch} completed but has {n} rows");
        } else {
            assert!(
                n == 0 || n == rows,
                "cancelled batch {batch} is half there: {n} rows"
            );
        }
    }
}

/// Waits until the server has closed the sessions gino discarded, then
/// asserts that nothing is left inside a transaction: not on the server,
/// not in the pool, not in the task's reuse context.
///
/// The server is asked through another engine: a query of `engine` itself
/// would first clean up the pooled connection it borrows.
async fn assert_nothing_left(engine: &Engine, other: &Engine, app: &str) {
    let max = engine.pool_status().max_size;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let states = common::session_states(other, app).await;
        if states.iter().all(|s| s == "idle") && states.len() <= max {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions left inside a transaction or not closed: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    common::assert_pool_clean(engine).await;
    assert!(engine.current_connection().is_none());
}

/// Two tasks (so both connections of the pool are in use) sweep `mode`'s
/// transaction by time and by await point.
async fn cancel_everywhere(mode: Mode, app: &str) {
    let s = batches_setup(app, 2).await;
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let engine = s.engine.clone();
            tokio::spawn(async move {
                let first = worker * 100_000;
                let mut outcomes = sweep_by_time(mode, &engine, first).await;
                outcomes.extend(sweep_by_polls(mode, &engine, first + 50_000).await);
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.expect("worker"));
    }
    assert_nothing_left(&s.engine, &common::observer(&s).await, app).await;
    assert_all_or_nothing(&batch_counts(&s.engine).await, &outcomes, ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_engine_transactions_leave_nothing_open() {
    cancel_everywhere(Mode::Engine, "gino-cancel-engine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_transactions_on_lazy_connections_leave_nothing_open() {
    cancel_everywhere(Mode::Lazy, "gino-cancel-lazy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_transactions_on_reused_connections_leave_nothing_open() {
    cancel_everywhere(Mode::Reused, "gino-cancel-reused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_manual_transactions_leave_nothing_open() {
    cancel_everywhere(Mode::Manual, "gino-cancel-manual").await;
}

/// [`body`] after locking the counter row, so that a transaction left open
/// would block the next update of that row.
async fn locking_body(engine: &Engine, batch: i32) -> gino::Result<()> {
    engine
        .status(diesel::sql_query(
            "UPDATE counter SET n = n + 1 WHERE id = 1",
        ))
        .await?;
    body(engine, batch).await
}

/// After a cancelled transaction on `outer`, the next query there runs
/// outside any transaction, and no lock of the transaction is left.
async fn assert_abandoned_transaction_ended(outer: &gino::Connection, other: &Engine) {
    common::assert_outside_transaction(outer).await;
    diesel::sql_query("UPDATE counter SET n = n + 1 WHERE id = 1")
        .gino()
        .bind(other)
        .timeout(Duration::from_secs(2))
        .status()
        .await
        .expect("the counter row is still locked");
}

#[tokio::test]
async fn cancelled_transaction_on_a_living_connection_is_rolled_back_before_its_next_query() {
    let app = "gino-cancel-living";
    let s = batches_setup(app, 2).await;
    let e = &s.engine;
    let other = common::observer(&s).await;
    let mut outcomes = Vec::new();
    for on_reusing in [false, true] {
        for n in 0..1000 {
            let batch = outcomes.len() as i32;
            let outer = e.acquire().await.unwrap();
            let result = if on_reusing {
                let inner = e.acquire().reuse(true).await.unwrap();
                cancel_after(n, inner.transaction(locking_body(e, batch))).await
            } else {
                cancel_after(n, outer.transaction(locking_body(e, batch))).await
            };
            let completed = result.is_some();
            outcomes.push(outcome(batch, result));
            assert_abandoned_transaction_ended(&outer, &other).await;
            outer.release().await.unwrap();
            if completed {
                break;
            }
        }
    }

    // Cancelled by a timeout in the middle of a slow statement: the server
    // is still busy with it when the next query comes.
    let outer = e.acquire().await.unwrap();
    let slow = outer.transaction(async {
        e.status(diesel::sql_query(
            "UPDATE counter SET n = n + 1 WHERE id = 1",
        ))
        .await?;
        e.status(diesel::sql_query("SELECT pg_sleep(0.3)")).await?;
        e.status(insert(-1, 1)).await.map(drop)
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(50), slow).await;
    assert!(timed_out.is_err());
    assert_abandoned_transaction_ended(&outer, &other).await;
    drop(outer);

    assert_nothing_left(e, &other, app).await;
    let counts = batch_counts(e).await;
    assert_all_or_nothing(&counts, &outcomes, ROWS);
    assert_eq!(counts.get(&-1), None);
}

#[tokio::test]
async fn cancelled_savepoint_is_rolled_back_and_the_enclosing_transaction_goes_on() {
    let app = "gino-cancel-savepoint";
    let s = batches_setup(app, 2).await;
    let e = &s.engine;
    let mut outcomes = Vec::new();
    for n in 0..1000 {
        let batch = n as i32;
        let completed = e
            .transaction(async {
                e.status(insert(batch, 0)).await?;
                let inner = cancel_after(n, e.transaction(body(e, batch))).await;
                e.status(insert(batch, 9)).await?;
                Ok::<_, gino::Error>(outcome(batch, inner).1)
            })
            .await
            .unwrap_or_else(|e| panic!("savepoint cancelled at wait {n} broke its parent: {e}"));
        outcomes.push((batch, completed));
        if completed {
            break;
        }
    }
    // Each batch has the enclosing level's two rows, plus all or none of
    // the savepoint's.
    let counts = batch_counts(e).await;
    let inner_counts = counts.iter().map(|(b, n)| (*b, n - 2)).collect();
    assert_all_or_nothing(&inner_counts, &outcomes, ROWS);
    let outer_rows = gino::text("SELECT 1 FROM batches WHERE step IN (0, 9)");
    assert_eq!(
        e.status(outer_rows).await.unwrap().rows(),
        2 * outcomes.len() as u64
    );
    assert_nothing_left(e, &common::observer(&s).await, app).await;
}

#[tokio::test]
async fn echo_names_the_right_statements_after_a_cancelled_one() {
    let s = common::setup_with(EngineOptions::new().max_size(1).echo(true)).await;
    let conn = s.engine.acquire().await.unwrap();
    let (answer, log) = common::with_log(async {
        let slow = conn.status(diesel::sql_query("SELECT pg_sleep(0.2)"));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        conn.one::<i32, _>(diesel::select(sql::<st::Integer>("4242")))
            .await
    })
    .await;
    assert_eq!(answer.unwrap(), 4242);
    // The cancelled statement never finishes, so it must not lend its text
    // to the statements that do.
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("4242"), "{log}");
    assert!(!log.contains("pg_sleep"), "{log}");
}

/// A transaction begun behind gino's back (raw `BEGIN` through the extended
/// protocol) is seen on the wire when the connection goes back, and the
/// connection is rolled back (or closed) rather than pooled inside it.
#[tokio::test]
async fn raw_begin_never_reaches_the_pool() {
    let s = common::setup_with(gino::EngineOptions::new().max_size(2)).await;
    for _ in 0..200 {
        s.engine.status(diesel::sql_query("BEGIN")).await.unwrap();
    }
    common::assert_pool_clean(&s.engine).await;
}

/// A statement whose future is dropped while it runs (a client that went
/// away, a `select!`) is cancelled on the server, since nobody awaits it
/// any more. Outside a transaction its connection then goes back to the
/// pool instead of being closed: the next query gets the same backend.
/// Inside one, the connection is closed, ending the transaction with
/// nothing of it committed, and without the statement running on.
#[tokio::test]
async fn a_statement_dropped_while_it_runs_is_cancelled_and_its_connection_kept() {
    let s = batches_setup("gino-cancel-recover", 1).await;
    let e = &s.engine;
    let other = common::observer(&s).await;
    let pid = common::backend_pid(e).await;
    let sleep = || e.status(diesel::sql_query("SELECT pg_sleep(30)"));

    // Implicit, outside a transaction.
    let started = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), sleep())
            .await
            .is_err()
    );
    // The pool's only connection: this waits for the recovery.
    assert_eq!(common::backend_pid(e).await, pid, "closed, not kept");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        common::sessions_running(&other, "pg_sleep(30)").await,
        0,
        "the abandoned statement still runs"
    );

    // Inside a transaction that has written.
    let abandoned = e.transaction(async {
        e.status(insert(1, 0)).await?;
        sleep().await?;
        Ok::<_, gino::Error>(())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), abandoned)
            .await
            .is_err()
    );
    let conn = e.acquire().await.unwrap();
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();
    common::eventually("the abandoned statement still runs", || async {
        common::sessions_running(&other, "pg_sleep(30)").await == 0
    })
    .await;
    assert_eq!(batch_counts(&other).await.get(&1), None, "half-committed");
}

/// A `conn.run` dropped inside diesel-async's own `transaction()` (after
/// its `BEGIN`) leaves diesel's count of open transactions at one while
/// the server, once gino has rolled back, has none: pooled as it is, the
/// connection's next `transaction()` would begin with a `SAVEPOINT`
/// outside any transaction (25P01), for the rest of its life.
#[tokio::test]
async fn a_diesel_transaction_dropped_half_way_leaves_no_stale_count_in_the_pool() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    use futures_util::FutureExt;
    let s = common::setup_with(gino::EngineOptions::new().max_size(1)).await;
    let conn = s.engine.acquire().await.unwrap();
    let sleeping = conn.run(|c| {
        c.transaction::<(), diesel::result::Error, _>(async |c| {
            RunQueryDsl::execute(diesel::sql_query("SELECT pg_sleep(10)"), c).await?;
            Ok(())
        })
        .boxed()
    });
    let dropped = tokio::time::timeout(std::time::Duration::from_millis(300), sleeping).await;
    assert!(dropped.is_err(), "the sleep was cut short");
    conn.release().await.unwrap();

    // The same with a panic inside diesel's transaction, inside a block of
    // gino's, in a task of its own.
    let engine = s.engine.clone();
    let panicked = tokio::spawn(async move {
        let conn = engine.acquire().await.unwrap();
        let _ = conn
            .transaction(async {
                conn.run(|c| {
                    c.transaction::<(), diesel::result::Error, _>(async |c| {
                        RunQueryDsl::execute(diesel::sql_query("SELECT 1"), c).await?;
                        panic!("a bug in the closure");
                    })
                    .boxed()
                })
                .await
            })
            .await;
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());

    // The one connection of the pool, or a new one: diesel's transaction
    // works on it.
    let conn = s.engine.acquire().await.unwrap();
    let rows = conn
        .run(|c| {
            c.transaction::<usize, diesel::result::Error, _>(async |c| {
                RunQueryDsl::execute(diesel::sql_query("SELECT 1"), c).await
            })
            .boxed()
        })
        .await;
    assert_eq!(rows.ok(), Some(1));
    conn.release().await.unwrap();
}

/// A transaction the caller began in SQL on a held connection survives
/// the recovery from a statement of it that was dropped half-way: it is
/// failed (the statement was cancelled), so the next statements fail until
/// the caller ends it, where a rollback behind its back would have let
/// them autocommit, and its `COMMIT` report success.
#[tokio::test]
async fn a_transaction_begun_in_sql_is_not_rolled_back_behind_the_callers_back() {
    let s = common::setup().await;
    s.engine
        .status(gino::text("CREATE TABLE marks (n int)"))
        .await
        .unwrap();
    let conn = s.engine.acquire().await.unwrap();
    conn.status(gino::text("BEGIN")).await.unwrap();
    conn.status(gino::text("INSERT INTO marks VALUES (1)"))
        .await
        .unwrap();
    let slow = conn.status(gino::text("SELECT pg_sleep(5)"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), slow)
            .await
            .is_err()
    );
    let next = conn
        .status(gino::text("INSERT INTO marks VALUES (2)"))
        .await;
    assert_eq!(
        next.as_ref().err().and_then(gino::Error::sqlstate),
        Some("25P02"),
        "{next:?}"
    );
    conn.status(gino::text("ROLLBACK")).await.unwrap();
    let stored: i64 = conn
        .one(diesel::select(sql::<st::BigInt>("count(*) FROM marks")))
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing autocommitted");
    conn.release().await.unwrap();
}

/// Inside a transaction a statement dropped half-way is awaited by the
/// next statement before it runs (its transaction may still want it); the
/// next statement's own timeout bounds that wait too.
#[tokio::test]
async fn the_wait_for_a_dropped_statement_counts_against_the_next_ones_timeout() {
    let s = common::setup().await;
    let limit = Duration::from_millis(500);
    let conn = s.engine.acquire().query_timeout(limit).await.unwrap();
    let mut next = None;
    let _ = conn
        .transaction(async {
            let slow = conn.status(gino::text("SELECT pg_sleep(3)"));
            let dropped = tokio::time::timeout(Duration::from_millis(100), slow).await;
            assert!(dropped.is_err());
            next = Some(conn.status(gino::text("SELECT 1")).await);
            Ok::<_, gino::Error>(())
        })
        .await;
    let next = next.expect("the block ran");
    assert!(
        matches!(next, Err(gino::Error::QueryTimeout(t)) if t == limit),
        "{next:?}"
    );
    let _ = conn.release().await;
}

/// A closure of `conn.run` whose pipelined statements end early, one of
/// them failing before it was sent (`try_join!`), leaves the other's
/// request queued: it goes out at once, as diesel-async's own connection
/// task would send it, not whenever the connection is next used (by
/// whoever borrows it next, in front of their statement).
#[tokio::test]
async fn a_request_a_closure_queued_and_left_goes_out_at_once() {
    use diesel::ExpressionMethods;
    use futures_util::FutureExt;
    diesel::table! { marks (n) { n -> Integer } }

    let s = common::setup_with(EngineOptions::new().max_size(1)).await;
    s.engine
        .status(gino::text("CREATE TABLE marks (n int PRIMARY KEY)"))
        .await
        .unwrap();
    let observer = common::observer(&s).await;
    let conn = s.engine.acquire().await.unwrap();
    let insert = |n: i32| diesel::insert_into(marks::table).values(marks::n.eq(n));
    // Prepared and cached: the next one goes out in a single request.
    let first = conn
        .run(move |c| async move { diesel_async::RunQueryDsl::execute(insert(1), c).await }.boxed())
        .await;
    assert_eq!(first.ok(), Some(1));

    let pipelined = conn
        .run(move |c| {
            async move {
                let sent = diesel_async::RunQueryDsl::execute(insert(2), c);
                let refused = async { Err::<usize, _>(diesel::result::Error::NotFound) };
                futures_util::future::try_join(sent, refused).await
            }
            .boxed()
        })
        .await;
    assert!(
        matches!(
            pipelined,
            Err(gino::Error::Query(diesel::result::Error::NotFound))
        ),
        "{pipelined:?}"
    );
    common::eventually("the queued INSERT ran", || async {
        let rows: i64 = observer
            .one(diesel::select(sql::<st::BigInt>("count(*) FROM marks")))
            .await
            .unwrap();
        rows == 2
    })
    .await;

    // The connection goes on as before.
    let ran = conn
        .run(move |c| async move { diesel_async::RunQueryDsl::execute(insert(3), c).await }.boxed())
        .await;
    assert_eq!(ran.ok(), Some(1));
    conn.release().await.unwrap();
    common::assert_pool_clean(&s.engine).await;
}
