//! Transactions against a real server: managed and manual, nested as
//! savepoints, early exits, options, and the failure paths of BEGIN and
//! COMMIT.
mod common;

use std::future::IntoFuture;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types as st;
use futures_util::FutureExt;
use gino::prelude::*;
use gino::{Bind, Engine, EngineOptions, Error, Gino, IsolationLevel, Transaction};

/// A fresh database with an `items` table, its engine (made with
/// `options`) and an observer engine that sees only committed rows.
async fn items_setup(options: EngineOptions) -> (common::Setup, Engine) {
    let s = common::setup_with(options).await;
    s.engine
        .status(diesel::sql_query(
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)",
        ))
        .await
        .expect("create items");
    let other = common::observer(&s).await;
    (s, other)
}

fn insert(name: &str) -> gino::Text {
    gino::text("INSERT INTO items (name) VALUES (:name)")
        .bind::<st::Text, _>("name", name.to_owned())
}

async fn add<'a>(on: impl Into<Bind<'a>>, name: &str) -> gino::Result<()> {
    insert(name).gino().bind(on).status().await.map(drop)
}

/// The item names `on` sees, in insertion order.
async fn names<'a>(on: impl Into<Bind<'a>>) -> Vec<String> {
    diesel::select(sql::<st::Text>("name FROM items ORDER BY id"))
        .gino()
        .bind(on)
        .all()
        .await
        .expect("item names")
}

/// `transaction_isolation`, `transaction_read_only` and
/// `transaction_deferrable` as the server reports them on `on`.
async fn tx_settings<'a>(on: impl Into<Bind<'a>>) -> (String, String, String) {
    diesel::select(sql::<(st::Text, st::Text, st::Text)>(
        "current_setting('transaction_isolation'), current_setting('transaction_read_only'), \
         current_setting('transaction_deferrable')",
    ))
    .gino()
    .bind(on)
    .one()
    .await
    .expect("transaction settings")
}

fn settings(isolation: &str, read_only: &str, deferrable: &str) -> (String, String, String) {
    (isolation.into(), read_only.into(), deferrable.into())
}

/// An application error type, to check that a block's own error comes back
/// unchanged from a managed transaction.
#[derive(Debug)]
enum AppError {
    Gino(#[allow(dead_code)] Error),
    Refused,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Gino(e)
    }
}

async fn add_then_refuse(on: Bind<'_>, name: &str) -> Result<(), AppError> {
    add(on, name).await?;
    Err(AppError::Refused)
}

async fn add_then_panic(on: Bind<'_>, name: &str) -> gino::Result<()> {
    add(on, name).await?;
    panic!("the block of {name} panics");
}

/// A secondary `Gino` bound to `engine`, so that the test never touches the
/// process-wide default database.
async fn db_on(engine: &Engine) -> Gino {
    let db = Gino::secondary();
    db.set_bind(engine.clone()).await.expect("bind");
    db
}

fn assert_misuse<T: std::fmt::Debug>(result: gino::Result<T>, needle: &str) {
    match result {
        Err(Error::TransactionMisuse(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected TransactionMisuse ({needle}), got {other:?}"),
    }
}

#[tokio::test]
async fn engine_transaction_commits_on_ok_and_implicit_queries_run_inside() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let value = e
        .transaction(async {
            e.status(insert("a")).await?;
            // Only a query inside the transaction can see the new row.
            assert_eq!(names(e).await, ["a"]);
            assert!(names(&other).await.is_empty());
            let xid: Option<i64> = e
                .scalar(diesel::select(sql::<st::Nullable<st::BigInt>>(
                    "txid_current_if_assigned()",
                )))
                .await?
                .flatten();
            assert!(
                xid.is_some(),
                "the implicit query ran outside the transaction"
            );
            Ok::<_, Error>(42)
        })
        .await
        .unwrap();
    assert_eq!(value, 42);
    assert_eq!(names(&other).await, ["a"]);
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn db_transaction_runs_db_and_gino_queries_inside() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let db = db_on(&s.engine).await;
    db.transaction(async {
        db.status(insert("a")).await?;
        add(&db, "b").await?;
        let seen: Vec<String> = diesel::select(sql::<st::Text>("name FROM items ORDER BY id"))
            .gino()
            .bind(&db)
            .all()
            .await?;
        assert_eq!(seen, ["a", "b"]);
        let seen: Vec<String> = db
            .all(diesel::select(sql::<st::Text>(
                "name FROM items ORDER BY id",
            )))
            .await?;
        assert_eq!(seen, ["a", "b"]);
        assert!(names(&other).await.is_empty());
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["a", "b"]);
    assert!(db.current_connection().is_none());

    let unbound = Gino::secondary();
    let ran = AtomicBool::new(false);
    let r = unbound
        .transaction(async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .await;
    assert!(matches!(r, Err(Error::Uninitialized)), "{r:?}");
    assert!(!ran.load(Ordering::SeqCst));
}

/// `.gino()` without `.bind` resolves through the process-wide default
/// database; this is the only test of this binary that binds one.
#[tokio::test]
async fn default_db_gino_queries_run_inside_its_transaction() {
    static DEFAULT: Gino = Gino::new();
    let (s, other) = items_setup(EngineOptions::new()).await;
    DEFAULT.set_bind(s.engine.clone()).await.unwrap();
    DEFAULT
        .transaction(async {
            insert("a").gino().status().await?;
            let seen: Vec<String> = diesel::select(sql::<st::Text>("name FROM items"))
                .gino()
                .all()
                .await?;
            assert_eq!(seen, ["a"]);
            assert!(names(&other).await.is_empty());
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    DEFAULT.pop_bind();
    assert_eq!(names(&other).await, ["a"]);
}

#[tokio::test]
async fn conn_transaction_commits_and_implicit_queries_use_its_connection() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    let pid = common::backend_pid(&conn).await;
    conn.transaction(async {
        assert_eq!(common::backend_pid(e).await, pid);
        e.status(insert("a")).await?;
        // engine.transaction inside nests on the contextual connection.
        e.transaction(async {
            assert_eq!(common::backend_pid(e).await, pid);
            add(e, "b").await
        })
        .await?;
        assert!(names(&other).await.is_empty());
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["a", "b"]);
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn managed_transactions_roll_back_on_err() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;
    let db = db_on(e).await;

    let r = e.transaction(add_then_refuse(e.into(), "engine")).await;
    assert!(matches!(r, Err(AppError::Refused)), "{r:?}");
    let r = db.transaction(add_then_refuse((&db).into(), "db")).await;
    assert!(matches!(r, Err(AppError::Refused)), "{r:?}");
    let conn = e.acquire().await.unwrap();
    let r = conn.transaction(add_then_refuse(e.into(), "conn")).await;
    assert!(matches!(r, Err(AppError::Refused)), "{r:?}");
    common::assert_outside_transaction(&conn).await;
    drop(conn);

    assert!(names(&other).await.is_empty());
    common::assert_pool_clean(e).await;
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn managed_transactions_roll_back_on_panic() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;

    let caught = AssertUnwindSafe(
        e.transaction(add_then_panic(e.into(), "engine"))
            .into_future(),
    )
    .catch_unwind()
    .await;
    assert!(caught.is_err(), "the panic must reach the caller");

    let nested = e.transaction(async {
        add(e, "outer").await?;
        e.transaction(add_then_panic(e.into(), "inner")).await
    });
    let caught = AssertUnwindSafe(nested.into_future()).catch_unwind().await;
    assert!(caught.is_err());

    // A panic caught inside the enclosing transaction rolls back only the
    // panicking level.
    e.transaction(async {
        add(e, "before").await?;
        let inner = e.transaction(add_then_panic(e.into(), "caught"));
        let caught = AssertUnwindSafe(inner.into_future()).catch_unwind().await;
        assert!(caught.is_err());
        add(e, "after").await
    })
    .await
    .unwrap();

    let conn = e.acquire().await.unwrap();
    let caught = AssertUnwindSafe(
        conn.transaction(add_then_panic(e.into(), "conn"))
            .into_future(),
    )
    .catch_unwind()
    .await;
    assert!(caught.is_err());
    common::assert_outside_transaction(&conn).await;
    drop(conn);

    let db = Arc::new(db_on(e).await);
    let task_db = db.clone();
    let joined = tokio::spawn(async move {
        task_db
            .transaction(add_then_panic((&*task_db).into(), "spawned"))
            .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());

    assert_eq!(names(&other).await, ["before", "after"]);
    common::assert_pool_clean(e).await;
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn manual_transactions_commit_and_roll_back() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();

    let tx = conn.begin().await.unwrap();
    assert!(!tx.is_managed());
    add(&conn, "committed").await.unwrap();
    assert!(names(&other).await.is_empty());
    let ended = tx.clone();
    tx.commit().await.unwrap();
    assert!(!ended.is_active().await);
    assert_misuse(ended.commit().await, "already ended");

    let tx = conn.begin().await.unwrap();
    add(&conn, "rolled back").await.unwrap();
    assert!(tx.is_active().await);
    tx.rollback().await.unwrap();
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();

    // engine.begin() makes its connection contextual: implicit queries use it.
    let tx = e.begin().await.unwrap();
    e.status(insert("engine")).await.unwrap();
    assert_eq!(common::backend_pid(e).await, common::backend_pid(&tx).await);
    assert!(names(&other).await.ends_with(&["committed".to_owned()]));
    tx.commit().await.unwrap();
    assert!(e.current_connection().is_none());

    let db = db_on(e).await;
    let tx = db.begin().await.unwrap();
    db.status(insert("db")).await.unwrap();
    assert_eq!(names(&db).await, ["committed", "engine", "db"]);
    tx.rollback().await.unwrap();

    assert_eq!(names(&other).await, ["committed", "engine"]);
    assert!(db.current_connection().is_none());
}

#[tokio::test]
async fn transaction_options_reach_the_server() {
    let (s, _other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();

    let tx = conn.begin().await.unwrap();
    assert_eq!(
        tx_settings(&conn).await,
        settings("read committed", "off", "off")
    );
    tx.rollback().await.unwrap();

    let tx = conn
        .begin()
        .isolation_level(IsolationLevel::Serializable)
        .read_only(true)
        .deferrable(true)
        .await
        .unwrap();
    assert_eq!(
        tx_settings(&conn).await,
        settings("serializable", "on", "on")
    );
    let denied = add(&conn, "x").await.unwrap_err();
    assert_eq!(denied.sqlstate(), Some("25006"), "{denied}");
    tx.rollback().await.unwrap();
    conn.release().await.unwrap();

    let seen = e
        .transaction(async { Ok::<_, Error>(tx_settings(e).await) })
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(false)
        .deferrable(false)
        .await
        .unwrap();
    assert_eq!(seen, settings("repeatable read", "off", "off"));

    let tx = e.begin().read_only(true).await.unwrap();
    assert_eq!(
        tx_settings(e).await,
        settings("read committed", "on", "off")
    );
    tx.rollback().await.unwrap();

    let db = db_on(e).await;
    let tx = db
        .begin()
        .isolation_level(IsolationLevel::RepeatableRead)
        .await
        .unwrap();
    assert_eq!(
        tx_settings(&db).await,
        settings("repeatable read", "off", "off")
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn nested_transactions_are_savepoints() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;

    // An inner rollback keeps the outer level's work.
    e.transaction(async {
        add(e, "a").await?;
        let inner = e.transaction(add_then_refuse(e.into(), "b")).await;
        assert!(matches!(inner, Err(AppError::Refused)));
        assert_eq!(names(e).await, ["a"]);
        add(e, "c").await?;
        Ok::<_, AppError>(())
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["a", "c"]);

    // An inner commit is undone by the outer rollback.
    let r = e
        .transaction(async {
            add(e, "d").await?;
            e.transaction(add(e, "e")).await?;
            assert_eq!(names(e).await, ["a", "c", "d", "e"]);
            Err::<(), _>(AppError::Refused)
        })
        .await;
    assert!(matches!(r, Err(AppError::Refused)));

    // The same with manual transactions on one connection.
    let conn = e.acquire().await.unwrap();
    let outer = conn.begin().await.unwrap();
    add(&conn, "f").await.unwrap();
    let inner = conn.begin().await.unwrap();
    add(&conn, "g").await.unwrap();
    inner.rollback().await.unwrap();
    assert!(outer.is_active().await);
    let inner = conn.begin().await.unwrap();
    add(&conn, "h").await.unwrap();
    inner.commit().await.unwrap();
    assert!(names(&other).await.ends_with(&["c".to_owned()]));
    outer.commit().await.unwrap();
    assert_eq!(names(&other).await, ["a", "c", "f", "h"]);

    let outer = conn.begin().await.unwrap();
    let inner = conn.begin().await.unwrap();
    add(&conn, "i").await.unwrap();
    inner.commit().await.unwrap();
    outer.rollback().await.unwrap();
    assert_eq!(names(&other).await, ["a", "c", "f", "h"]);
    common::assert_outside_transaction(&conn).await;
}

#[tokio::test]
async fn options_on_a_nested_level_are_misuse() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    e.transaction(async {
        let nested = e
            .transaction(async { Ok::<_, Error>(()) })
            .isolation_level(IsolationLevel::Serializable)
            .await;
        assert_misuse(nested, "outermost");
        let nested = e.begin().read_only(true).await;
        assert_misuse(nested, "outermost");
        let nested = e.begin().deferrable(false).await;
        assert_misuse(nested, "outermost");
        // The enclosing transaction is untouched and still works.
        add(e, "a").await
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["a"]);
    // The outermost's own isolation level may be repeated (asyncpg allows
    // it): code asking for a level runs inside a block of that level.
    e.transaction(async {
        e.transaction(add(e, "b"))
            .isolation_level(IsolationLevel::Serializable)
            .await?;
        let other_level = e
            .transaction(async { Ok::<_, Error>(()) })
            .isolation_level(IsolationLevel::RepeatableRead)
            .await;
        assert_misuse(other_level, "outermost");
        Ok::<_, Error>(())
    })
    .isolation_level(IsolationLevel::Serializable)
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["a", "b"]);
}

#[tokio::test]
async fn raise_rollback_ends_its_level_and_children_and_the_parent_continues() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let tx2_continued = AtomicBool::new(false);
    e.transaction(async {
        let tx1 = Transaction::current().expect("tx1");
        add(e, "1").await?;
        e.transaction(async {
            let tx2 = Transaction::current().expect("tx2");
            add(e, "2").await?;
            e.transaction(async {
                add(e, "3").await?;
                match tx2.raise_rollback()? {}
            })
            .await?;
            tx2_continued.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .await?;
        // Continues here with tx1, with both tx2 and tx3 rolled back.
        assert!(tx1.is_active().await);
        assert_eq!(names(e).await, ["1"]);
        add(e, "4").await
    })
    .await
    .unwrap();
    assert!(!tx2_continued.load(Ordering::SeqCst));
    assert_eq!(names(&other).await, ["1", "4"]);

    // Rolling back the outermost level from a child ends everything, and
    // the transaction's call still returns Ok.
    e.transaction(async {
        let tx1 = Transaction::current().expect("tx1");
        add(e, "5").await?;
        let inner: gino::Result<()> = e
            .transaction(async {
                add(e, "6").await?;
                match tx1.raise_rollback()? {}
            })
            .await;
        inner
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["1", "4"]);
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn raise_commit_ends_its_level_and_children_with_a_commit() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;

    // From tx3, commit tx2: tx2 and tx3 are released into tx1, which goes on.
    let tx2_continued = AtomicBool::new(false);
    e.transaction(async {
        add(e, "1").await?;
        e.transaction(async {
            let tx2 = Transaction::current().expect("tx2");
            add(e, "2").await?;
            e.transaction(async {
                add(e, "3").await?;
                match tx2.raise_commit()? {}
            })
            .await?;
            tx2_continued.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .await?;
        assert_eq!(names(e).await, ["1", "2", "3"]);
        assert!(names(&other).await.is_empty());
        add(e, "4").await
    })
    .await
    .unwrap();
    assert!(!tx2_continued.load(Ordering::SeqCst));
    assert_eq!(names(&other).await, ["1", "2", "3", "4"]);

    // From a child, commit the outermost transaction: everything is saved
    // and nothing after the exit runs.
    let continued = AtomicBool::new(false);
    e.transaction(async {
        let tx1 = Transaction::current().expect("tx1");
        add(e, "5").await?;
        e.transaction(async {
            add(e, "6").await?;
            match tx1.raise_commit()? {}
        })
        .await?;
        continued.store(true, Ordering::SeqCst);
        add(e, "never").await
    })
    .await
    .unwrap();
    assert!(!continued.load(Ordering::SeqCst));
    assert_eq!(names(&other).await, ["1", "2", "3", "4", "5", "6"]);
    assert!(e.current_connection().is_none());
}

/// GINO's test_base_exception: the exit cannot be caught by accident. In
/// Rust it is an error the block propagates, with its own error type too;
/// a block that drops it runs on inside the level, which still ends as
/// asked when the block returns.
#[tokio::test]
async fn an_early_exit_propagates_through_an_app_error_and_a_dropped_one_still_ends_the_level() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;

    let continued = AtomicBool::new(false);
    let run: Result<(), AppError> = e
        .transaction(async {
            add(e, "rolled back").await?;
            Transaction::current().unwrap().raise_rollback()?;
            continued.store(true, Ordering::SeqCst);
            Err(AppError::Refused)
        })
        .await;
    assert!(run.is_ok(), "{run:?}");
    assert!(!continued.load(Ordering::SeqCst));

    let run: Result<(), AppError> = e
        .transaction(async {
            add(e, "committed").await?;
            Transaction::current().unwrap().raise_commit()?;
            Err(AppError::Refused)
        })
        .await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!(names(&other).await, ["committed"]);

    let run = e
        .transaction(async {
            let tx = Transaction::current().unwrap();
            let _ = tx.raise_rollback();
            // Still inside the level: it sees its own row.
            add(e, "dropped exit").await?;
            assert_eq!(names(e).await, ["committed", "dropped exit"]);
            Ok::<_, Error>(())
        })
        .await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!(names(&other).await, ["committed"], "rolled back as asked");
    assert!(e.current_connection().is_none());
}

/// An exit the block dropped gives way to another error gino can look
/// into, as another exception does in GINO's context manager: the levels
/// roll back and the caller gets that error, not the exit's commit.
#[tokio::test]
async fn a_dropped_exit_gives_way_to_another_error_of_gino_and_nothing_is_committed() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;

    let run = e
        .transaction(async {
            add(e, "failed after a dropped exit").await?;
            let _ = Transaction::current().unwrap().raise_commit();
            e.status(diesel::sql_query("SELECT * FROM no_such_table"))
                .await?;
            Ok::<_, Error>(())
        })
        .await;
    assert!(matches!(run, Err(Error::Database(..))), "{run:?}");

    let run: Result<i32, Box<dyn std::error::Error + Send + Sync>> = e
        .transaction(async {
            add(e, "refused after a dropped exit").await?;
            let _ = Transaction::current().unwrap().raise_commit_with(1);
            Err("refused".into())
        })
        .await;
    assert_eq!(run.unwrap_err().to_string(), "refused");

    // The exit of the outer level is dropped in the inner block, which then
    // fails: both levels roll back, and the error reaches the caller.
    let run = e
        .transaction_with(|outer| async move {
            add(e, "outer").await?;
            e.transaction(async {
                add(e, "inner").await?;
                let _ = outer.raise_commit();
                Err::<(), _>(Error::Configuration("refused inside".to_owned()))
            })
            .await?;
            Ok(())
        })
        .await;
    assert!(
        matches!(&run, Err(Error::Configuration(m)) if m == "refused inside"),
        "{run:?}"
    );
    assert!(names(&other).await.is_empty(), "nothing committed");

    // The same, but the outer block takes the inner level's error and
    // returns Ok: the inner level rolled back (its error won over the
    // exit it dropped), and the outer one commits as its exit asked.
    let run = e
        .transaction_with(|outer| async move {
            add(e, "outer kept").await?;
            let inner = e
                .transaction(async {
                    add(e, "inner gone").await?;
                    let _ = outer.raise_commit();
                    Err::<(), _>(Error::Configuration("refused inside".to_owned()))
                })
                .await;
            assert!(matches!(inner, Err(Error::Configuration(_))), "{inner:?}");
            Ok::<_, Error>(())
        })
        .await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!(names(&other).await, ["outer kept"]);

    // A boxed exit is still the exit.
    let run: Result<(), Box<dyn std::error::Error + Send + Sync>> = e
        .transaction(async {
            add(e, "committed").await?;
            Transaction::current().unwrap().raise_commit()?;
            unreachable!("raise_commit returns Err")
        })
        .await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!(names(&other).await, ["outer kept", "committed"]);
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn raise_with_a_value_returns_it_and_a_mismatched_type_is_misuse() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;

    let v: gino::Result<i32> = e
        .transaction(async {
            add(e, "committed").await?;
            match Transaction::current().unwrap().raise_commit_with(7)? {}
        })
        .await;
    assert_eq!(v.unwrap(), 7);

    let v: gino::Result<i32> = e
        .transaction(async {
            add(e, "rolled back").await?;
            match Transaction::current().unwrap().raise_rollback_with(8)? {}
        })
        .await;
    assert_eq!(v.unwrap(), 8);

    // A nested level with its own value type.
    let v: String = e
        .transaction(async {
            let inner: gino::Result<i32> = e
                .transaction(async {
                    match Transaction::current().unwrap().raise_commit_with(5)? {}
                })
                .await;
            let inner = inner?;
            Ok::<_, Error>(inner.to_string())
        })
        .await
        .unwrap();
    assert_eq!(v, "5");

    // raise_commit() carries `()`, but this block returns an i32: the
    // mismatch is reported and nothing is saved.
    let r: gino::Result<i32> = e
        .transaction(async {
            add(e, "mismatch").await?;
            match Transaction::current().unwrap().raise_commit()? {}
        })
        .await;
    assert_misuse(r, "raise_commit_with");
    let r: gino::Result<i32> = e
        .transaction(async {
            add(e, "mismatch").await?;
            match Transaction::current().unwrap().raise_commit_with("text")? {}
        })
        .await;
    assert_misuse(r, "raise_commit_with");

    // Early exits belong to managed transactions.
    let tx = e.begin().await.unwrap();
    assert_misuse(tx.raise_commit(), "managed");
    assert_misuse(tx.raise_rollback(), "managed");
    tx.rollback().await.unwrap();

    assert_eq!(names(&other).await, ["committed"]);
}

#[tokio::test]
async fn engine_default_isolation_level_applies_and_can_be_overridden() {
    let (s, _other) =
        items_setup(EngineOptions::new().isolation_level(IsolationLevel::RepeatableRead)).await;
    let e = &s.engine;
    let seen = e
        .transaction(async { Ok::<_, Error>(tx_settings(e).await.0) })
        .await
        .unwrap();
    assert_eq!(seen, "repeatable read");
    let seen = e
        .transaction(async { Ok::<_, Error>(tx_settings(e).await.0) })
        .isolation_level(IsolationLevel::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(seen, "read committed");
    let tx = e.begin().await.unwrap();
    assert_eq!(tx_settings(e).await.0, "repeatable read");
    tx.rollback().await.unwrap();
    // Outside explicit transactions too, as GINO sets it per connection.
    assert_eq!(tx_settings(e).await.0, "repeatable read");
    let conn = e.acquire().await.unwrap();
    assert_eq!(tx_settings(&conn).await.0, "repeatable read");
    conn.release().await.unwrap();

    let from_url = gino::create_engine(
        &common::url_with(&s.db, "isolation_level=serializable"),
        EngineOptions::new(),
    )
    .await
    .unwrap();
    let tx = from_url.begin().await.unwrap();
    assert_eq!(tx_settings(&from_url).await.0, "serializable");
    tx.rollback().await.unwrap();
    assert_eq!(tx_settings(&from_url).await.0, "serializable");
    let seen = from_url
        .transaction(async { Ok::<_, Error>(tx_settings(&from_url).await.0) })
        .isolation_level(IsolationLevel::RepeatableRead)
        .await
        .unwrap();
    assert_eq!(seen, "repeatable read");

    let invalid = gino::create_engine(
        &common::url_with(&s.db, "isolation_level=sometimes"),
        EngineOptions::new(),
    )
    .await;
    match invalid {
        Err(Error::Configuration(msg)) => assert!(msg.contains("sometimes"), "{msg}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn commit_and_rollback_are_illegal_in_managed_mode() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    e.transaction(async {
        let tx = Transaction::current().expect("inside");
        assert!(tx.is_managed());
        assert_misuse(tx.clone().commit().await, "illegal in managed mode");
        assert_misuse(tx.clone().rollback().await, "illegal in managed mode");
        // Neither call ended the transaction.
        assert!(tx.is_active().await);
        add(e, "a").await
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["a"]);
    assert!(Transaction::current().is_none());
}

#[tokio::test]
async fn unfinished_manual_transaction_is_rolled_back_on_release() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;

    let conn = e.acquire().await.unwrap();
    let pid = common::backend_pid(&conn).await;
    let tx = conn.begin().await.unwrap();
    add(&conn, "a").await.unwrap();
    conn.release().await.unwrap();
    assert!(!tx.is_active().await);
    assert!(tx.commit().await.is_err());

    // The same raw connection comes back, rolled back rather than closed.
    let conn = e.acquire().await.unwrap();
    assert_eq!(common::backend_pid(&conn).await, pid);
    common::assert_outside_transaction(&conn).await;
    drop(conn);

    // engine.begin() owns its connection: releasing that ends it too.
    let tx = e.begin().await.unwrap();
    add(e, "b").await.unwrap();
    tx.connection().release().await.unwrap();
    drop(tx);
    assert_eq!(common::backend_pid(e).await, pid);

    assert!(names(&other).await.is_empty());
    common::assert_pool_clean(e).await;
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn unfinished_manual_transaction_is_rolled_back_when_its_connection_is_dropped() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;

    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    add(&conn, "a").await.unwrap();
    drop(conn);
    assert!(
        tx.commit().await.is_err(),
        "the transaction ended with its connection"
    );

    let tx = e.begin().await.unwrap();
    add(e, "b").await.unwrap();
    drop(tx);

    assert!(names(&other).await.is_empty());
    common::assert_pool_clean(e).await;
    assert!(e.current_connection().is_none());
}

fn assert_commit_without_rollback(log: &str) {
    let commit = log
        .rfind("COMMIT")
        .unwrap_or_else(|| panic!("no COMMIT in the echo log:\n{log}"));
    assert!(
        !log[commit..].contains("ROLLBACK"),
        "a ROLLBACK followed the failed COMMIT:\n{log}"
    );
}

#[tokio::test]
async fn failed_commit_reports_the_constraint_and_sends_no_rollback() {
    let s = common::setup_with(EngineOptions::new().max_size(1).echo(true)).await;
    let e = &s.engine;
    for ddl in [
        "CREATE TABLE uniq (x int CONSTRAINT uniq_x UNIQUE DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TABLE parent (id int PRIMARY KEY)",
        "CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)",
    ] {
        e.status(diesel::sql_query(ddl)).await.unwrap();
    }
    let pid = common::backend_pid(e).await;
    let count = |table: &str| {
        e.one::<i64, _>(diesel::select(sql::<st::BigInt>(&format!(
            "count(*) FROM {table}"
        ))))
    };

    // Managed: the duplicate passes both INSERTs and fails at COMMIT.
    let (result, log) = common::with_log(
        e.transaction(async {
            e.status(diesel::sql_query("INSERT INTO uniq VALUES (1), (1)"))
                .await?;
            Ok::<_, Error>(())
        })
        .into_future(),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.sqlstate(), Some("23505"), "{err}");
    match &err {
        Error::Database(db) => assert_eq!(db.constraint(), Some("uniq_x")),
        other => panic!("expected a database error, got {other:?}"),
    }
    assert_commit_without_rollback(&log);
    assert_eq!(count("uniq").await.unwrap(), 0);

    // Manual: an orphan row fails the deferred foreign key at COMMIT.
    let conn = e.acquire().await.unwrap();
    let (result, log) = common::with_log(async {
        let tx = conn.begin().await?;
        conn.status(diesel::sql_query("INSERT INTO child VALUES (99)"))
            .await?;
        tx.commit().await
    })
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.sqlstate(), Some("23503"), "{err}");
    assert_commit_without_rollback(&log);
    // The connection is clean and usable: it was kept, not discarded.
    common::assert_outside_transaction(&conn).await;
    conn.status(diesel::sql_query("INSERT INTO parent VALUES (99)"))
        .await
        .unwrap();
    let (released, log) = common::with_log(conn.release()).await;
    released.unwrap();
    assert!(!log.contains("ROLLBACK"), "{log}");

    assert_eq!(count("child").await.unwrap(), 0);
    assert_eq!(common::backend_pid(e).await, pid);
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn commit_after_a_swallowed_error_is_transaction_aborted() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;
    let fail = || diesel::sql_query("SELECT 1 / 0");

    let r = e
        .transaction(async {
            add(e, "managed").await?;
            let failed = e.status(fail()).await.unwrap_err();
            assert_eq!(failed.sqlstate(), Some("22012"));
            Ok::<_, Error>(())
        })
        .await;
    assert!(matches!(r, Err(Error::TransactionAborted)), "{r:?}");

    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    add(&conn, "manual").await.unwrap();
    conn.status(fail()).await.unwrap_err();
    let r = tx.commit().await;
    assert!(matches!(r, Err(Error::TransactionAborted)), "{r:?}");
    common::assert_outside_transaction(&conn).await;
    drop(conn);

    // On a savepoint, the failed level ends rolled back and the enclosing
    // transaction stays usable.
    e.transaction(async {
        add(e, "outer").await?;
        let r = e
            .transaction(async {
                add(e, "inner").await?;
                let _ = e.status(fail()).await;
                Ok::<_, Error>(())
            })
            .await;
        assert!(matches!(r, Err(Error::TransactionAborted)), "{r:?}");
        add(e, "after").await
    })
    .await
    .unwrap();

    assert_eq!(names(&other).await, ["outer", "after"]);
    common::assert_pool_clean(e).await;
}

/// Terminates the server process `pid` and waits until it is gone.
async fn terminate(other: &Engine, pid: i32) {
    let kill = gino::text("SELECT pg_terminate_backend(:pid)").bind::<st::Integer, _>("pid", pid);
    other.status(kill).await.expect("pg_terminate_backend");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = gino::text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid")
            .bind::<st::Integer, _>("pid", pid);
        if other.status(alive).await.expect("pg_stat_activity").rows() == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "backend {pid} did not exit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn begin_on_a_terminated_connection_fails_and_the_pool_recovers() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    let pid = common::backend_pid(&conn).await;
    terminate(&other, pid).await;

    let err = conn.begin().await.unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    let ran = AtomicBool::new(false);
    let err = conn
        .transaction(async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(
        !ran.load(Ordering::SeqCst),
        "the block ran without a transaction"
    );
    conn.release().await.unwrap();

    // The idle pooled connection dies too. The pool may hand it out once
    // more if its client side has not yet read the server's goodbye: then
    // the error reaches the caller, and the next try gets a working one.
    let pid = common::backend_pid(e).await;
    terminate(&other, pid).await;
    if let Err(err) = e.transaction(add(e, "a")).await {
        assert!(matches!(err, Error::Connection(_)), "{err:?}");
        e.transaction(add(e, "a")).await.unwrap();
    }
    let tx = e.begin().await.unwrap();
    add(e, "b").await.unwrap();
    tx.commit().await.unwrap();
    assert_ne!(common::backend_pid(e).await, pid);
    assert_eq!(names(&other).await, ["a", "b"]);
    common::assert_pool_clean(e).await;
    assert!(e.current_connection().is_none());
}

#[tokio::test]
async fn transaction_with_hands_the_block_its_transaction() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    // Ok(()) needs no annotation: the block's error is gino::Error.
    e.transaction_with(|tx| async move {
        assert!(tx.is_managed());
        add(e, "kept").await?;
        Ok(())
    })
    .await
    .unwrap();
    e.transaction_with(|tx| async move {
        add(e, "undone").await?;
        tx.raise_rollback()?;
        Ok(())
    })
    .await
    .unwrap();
    let db = &db_on(e).await;
    let seen: i32 = db
        .transaction_with(|outer| async move {
            let inner_result = db
                .transaction_with(|inner| async move {
                    add(db, "inner").await?;
                    inner.raise_rollback_with(1)?;
                    Ok(0)
                })
                .await?;
            outer.raise_commit_with(inner_result + 1)?;
            Ok(0)
        })
        .await
        .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(names(&other).await, ["kept"]);
}

/// A block's own connection goes back with the block (GINO's context
/// manager releases it): its transaction kept past the block holds no
/// pooled connection, and runs nothing outside the transaction.
#[tokio::test]
async fn a_transaction_kept_past_its_block_holds_no_connection() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = &s.engine;
    let kept = e
        .transaction_with(|tx| async move {
            add(e, "in").await?;
            Ok(tx)
        })
        .await
        .unwrap();
    let conn = e
        .acquire()
        .timeout(Duration::from_millis(500))
        .await
        .expect("the block's connection is back in the pool");
    conn.release().await.unwrap();
    let late = add(kept.connection(), "after").await;
    assert!(matches!(late, Err(Error::ConnectionReleased)), "{late:?}");
    assert_eq!(names(&other).await, ["in"]);
    common::assert_pool_clean(e).await;
}

/// The same when the block does not end (its future dropped, or a panic):
/// the connection it borrowed goes back (closed, its transaction with it)
/// rather than staying checked out, idle in its transaction with its row
/// locks, for as long as a `Transaction` kept from it lives.
#[tokio::test]
async fn a_transaction_kept_past_a_dropped_or_panicking_block_holds_no_connection() {
    let (s, other) = items_setup(EngineOptions::new().max_size(1)).await;
    let e = s.engine.clone();
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        e.transaction_with(|tx| {
            let (e, kept) = (e.clone(), kept.clone());
            async move {
                kept.lock().unwrap().push(tx.clone());
                add(&e, "dropped").await?;
                std::future::pending::<gino::Result<()>>().await
            }
        }),
    )
    .await;
    assert!(dropped.is_err(), "the block never ends");
    let conn = e
        .acquire()
        .timeout(Duration::from_millis(500))
        .await
        .expect("the dropped block's connection is back in the pool");
    conn.release().await.unwrap();

    let panicked = tokio::spawn({
        let (e, kept) = (e.clone(), kept.clone());
        async move {
            let e = &e;
            let _ = e
                .transaction_with(|tx| async move {
                    kept.lock().unwrap().push(tx.clone());
                    add(e, "panicked").await?;
                    panic!("a bug in the block");
                    #[allow(unreachable_code)]
                    Ok::<(), Error>(())
                })
                .await;
        }
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    let conn = e
        .acquire()
        .timeout(Duration::from_millis(500))
        .await
        .expect("the panicking block's connection is back in the pool");
    conn.release().await.unwrap();

    for tx in kept.lock().unwrap().iter() {
        assert!(tx.connection().is_released());
    }
    assert!(names(&other).await.is_empty());
    common::assert_pool_clean(&e).await;
}

/// The server-side state of backend `pid`, as `other` sees it.
async fn backend_state(other: &Engine, pid: i32) -> String {
    let state = format!("coalesce((SELECT state FROM pg_stat_activity WHERE pid = {pid}), '')");
    other
        .one::<String, _>(diesel::select(sql::<st::Text>(&state)))
        .await
        .expect("pg_stat_activity")
}

#[tokio::test]
async fn a_transaction_reaches_the_server_with_its_first_statement() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let conn = s.engine.acquire().await.unwrap();
    let pid = common::backend_pid(&conn).await;

    let tx = conn.begin().await.unwrap();
    assert_eq!(
        backend_state(&other, pid).await,
        "idle",
        "begin() sends nothing yet"
    );
    // The first statement carries the BEGIN: it runs inside, and so does
    // everything after it.
    add(&conn, "first").await.unwrap();
    assert_eq!(backend_state(&other, pid).await, "idle in transaction");
    assert!(names(&other).await.is_empty(), "not committed yet");
    add(&conn, "second").await.unwrap();
    tx.rollback().await.unwrap();
    assert!(names(&other).await.is_empty(), "both rolled back");

    // The same with options, and with a first statement that fails: the
    // transaction is open (and failed) after it, as with a BEGIN of its own.
    let tx = conn.begin().read_only(true).await.unwrap();
    let denied = add(&conn, "x").await.unwrap_err();
    assert_eq!(denied.sqlstate(), Some("25006"), "{denied}");
    assert_eq!(
        backend_state(&other, pid).await,
        "idle in transaction (aborted)"
    );
    tx.rollback().await.unwrap();
    assert_eq!(backend_state(&other, pid).await, "idle");

    // A raw closure may start with a simple query, which a BEGIN cannot
    // precede in its batch: the BEGIN goes on its own first.
    let tx = conn.begin().await.unwrap();
    conn.run(|c| {
        Box::pin(diesel_async::SimpleAsyncConnection::batch_execute(
            c,
            "INSERT INTO items (name) VALUES ('raw')",
        ))
    })
    .await
    .unwrap();
    assert_eq!(backend_state(&other, pid).await, "idle in transaction");
    tx.rollback().await.unwrap();
    assert!(names(&other).await.is_empty(), "the raw insert rolled back");

    // A transaction that runs nothing leaves nothing on the server.
    conn.transaction(async { Ok::<_, Error>(()) })
        .await
        .unwrap();
    let tx = conn.begin().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(backend_state(&other, pid).await, "idle");
    add(&conn, "after").await.unwrap();
    assert_eq!(names(&other).await, ["after"], "autocommit again");
    conn.release().await.unwrap();
    common::assert_pool_clean(&s.engine).await;
}

/// Sleeps long enough for a joined sibling to run up to its next await.
async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test]
async fn joined_nested_transactions_end_as_their_own_blocks_say() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    // Two nested blocks joined on the outer transaction's one connection:
    // the first commits while the second is still open, then the second
    // fails. Its rows must go, the first's stay.
    let (first, second) = e
        .transaction(async {
            let first = e.transaction(async {
                add(e, "first").await?;
                pause(20).await;
                Ok::<_, AppError>(())
            });
            let second = e.transaction(async {
                pause(5).await;
                add(e, "second").await?;
                pause(40).await;
                Err::<(), _>(AppError::Refused)
            });
            Ok::<_, AppError>(tokio::join!(first, second))
        })
        .await
        .unwrap();
    first.unwrap();
    assert!(matches!(second, Err(AppError::Refused)), "{second:?}");
    assert_eq!(names(&other).await, ["first"]);
    common::assert_pool_clean(e).await;
}

/// A block that adds `name` and then never ends.
async fn add_then_hang(e: &Engine, name: &str) -> gino::Result<()> {
    add(e, name).await?;
    std::future::pending().await
}

/// Polls `block` for 50 ms, then drops it unfinished.
async fn drop_after_50ms(block: futures_util::future::BoxFuture<'_, gino::Result<()>>) {
    let run = tokio::time::timeout(Duration::from_millis(50), block).await;
    assert!(run.is_err(), "the block was dropped at its timeout");
}

/// `fut`'s output, or a failure saying `stuck` when it has not finished in
/// 5 s (a statement waiting for a level that never ends).
async fn unless_stuck<F: IntoFuture>(fut: F, stuck: &str) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), fut.into_future())
        .await
        .expect(stuck)
}

/// A block that adds `name` and fails once a statement beside it had time
/// to run.
async fn add_then_refuse_later(e: &Engine, name: &str) -> Result<(), AppError> {
    add(e, name).await?;
    pause(30).await;
    Err(AppError::Refused)
}

/// Adds `name` once a block beside it has begun.
async fn add_soon(e: &Engine, name: &str) -> gino::Result<()> {
    pause(5).await;
    add(e, name).await
}

#[tokio::test]
async fn an_implicit_statement_beside_a_nested_block_is_not_part_of_it() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    // The statement runs while the nested block is open on the same
    // connection; the block's rollback must not take it along.
    e.transaction(async {
        let block = e.transaction(add_then_refuse_later(e, "in the block"));
        let (block, beside) = tokio::join!(block, add_soon(e, "beside"));
        assert!(matches!(block, Err(AppError::Refused)));
        beside?;
        Ok::<_, AppError>(())
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["beside"]);

    // The same for a connection held outside any transaction: the
    // statement beside a block on it waits for the block instead of joining
    // its transaction.
    let conn = e.acquire().await.unwrap();
    let block = conn.transaction(add_then_refuse_later(e, "held block"));
    let (block, beside) = tokio::join!(block, add_soon(e, "held beside"));
    assert!(matches!(block, Err(AppError::Refused)));
    beside.unwrap();
    assert_eq!(names(&other).await, ["beside", "held beside"]);
    conn.release().await.unwrap();

    // GINO's `engine.all(q)` is `acquire(reuse=True)` then `.all(q)`: a
    // connection so found, or `current_connection()`, is where the
    // implicit statement would run, and its statements run as that one
    // does, also when the handle was found before the block opened.
    e.transaction(async {
        let found_before = e.acquire().reuse(true).await?;
        let block = e.transaction(add_then_refuse_later(e, "in the block"));
        let beside = async {
            pause(5).await;
            let reused = e.acquire().reuse(true).await?;
            add(&reused, "reused beside").await?;
            let current = e.current_connection().expect("the block's connection");
            add(&current, "current beside").await?;
            add(&found_before, "found before").await
        };
        let (block, beside) = tokio::join!(block, beside);
        assert!(matches!(block, Err(AppError::Refused)));
        beside?;
        // And inside a block, the handle found before it runs in it.
        e.transaction(async {
            add(&found_before, "inside").await?;
            Err::<(), _>(AppError::Refused)
        })
        .await
        .unwrap_err();
        Ok::<_, AppError>(())
    })
    .await
    .unwrap();
    assert_eq!(
        names(&other).await,
        [
            "beside",
            "held beside",
            "reused beside",
            "current beside",
            "found before"
        ]
    );
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn releasing_the_connection_of_a_running_block_is_misuse() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    // Both releases are refused; the block goes on inside its transaction
    // and its failure rolls back everything it did.
    let r = conn
        .transaction(async {
            add(e, "before").await?;
            assert_misuse(conn.release_raw().await, "release_raw() inside a managed");
            assert_misuse(conn.release().await, "release() inside a managed");
            add(e, "after").await?;
            Err::<(), _>(AppError::Refused)
        })
        .await;
    assert!(matches!(r, Err(AppError::Refused)));
    assert!(names(&other).await.is_empty(), "{:?}", names(&other).await);

    // A block that was dropped is no block's any more: releasing rolls
    // it back.
    drop_after_50ms(conn.transaction(add_then_hang(e, "dropped")).into_future()).await;
    conn.release_raw().await.unwrap();

    // After the block, both work as before.
    conn.transaction(add(e, "kept")).await.unwrap();
    conn.release_raw().await.unwrap();
    conn.release().await.unwrap();
    assert_eq!(names(&other).await, ["kept"]);

    // A manual transaction is still rolled back by a release.
    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    add(&conn, "manual").await.unwrap();
    conn.release_raw().await.unwrap();
    assert!(!tx.is_active().await);
    conn.release().await.unwrap();
    assert_eq!(names(&other).await, ["kept"]);
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn a_commit_or_rollback_sent_as_sql_is_reported_and_nothing_autocommits() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    for end in ["ROLLBACK", "COMMIT"] {
        let r = e
            .transaction(async {
                add(e, "before").await?;
                let ended = e.status(gino::text(end)).await;
                assert_misuse(ended, "sent as a statement");
                // Nothing runs on the ended levels: it would autocommit.
                assert_misuse(add(e, "after").await, "sent as a statement");
                Ok::<_, Error>(())
            })
            .await;
        assert_misuse(r, "sent as a statement");
    }
    // The first ROLLBACK undid "before", the COMMIT kept it; "after" never ran.
    assert_eq!(names(&other).await, ["before"]);

    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    add(&conn, "manual").await.unwrap();
    assert_misuse(conn.status(gino::text("ROLLBACK")).await, "sent as");
    assert_misuse(tx.commit().await, "sent as a statement");
    // The connection is usable again once its levels ended.
    add(&conn, "autocommit").await.unwrap();
    assert_eq!(names(&other).await, ["before", "autocommit"]);
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn a_nested_level_ended_after_sql_ended_the_transaction_leaves_the_outer_one_guarded() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    for end in ["ROLLBACK", "COMMIT"] {
        let r = e
            .transaction(async {
                add(e, "before").await?;
                let inner = e
                    .transaction(async {
                        assert_misuse(e.status(gino::text(end)).await, "sent as a statement");
                        Ok::<_, Error>(())
                    })
                    .await;
                assert_misuse(inner, "sent as a statement");
                // The outer block still runs on a transaction the server
                // no longer has: its statements would autocommit.
                assert_misuse(add(e, "after").await, "sent as a statement");
                Err::<(), _>(AppError::Refused)
            })
            .await;
        assert!(r.is_err(), "{r:?}");
    }

    let conn = e.acquire().await.unwrap();
    let outer = conn.begin().await.unwrap();
    let inner = conn.begin().await.unwrap();
    add(&conn, "manual").await.unwrap();
    assert_misuse(conn.status(gino::text("ROLLBACK")).await, "sent as");
    assert_misuse(inner.rollback().await, "sent as a statement");
    assert_misuse(add(&conn, "after").await, "sent as a statement");
    assert_misuse(outer.rollback().await, "sent as a statement");
    add(&conn, "autocommit").await.unwrap();
    // The first ROLLBACK undid "before", the COMMIT kept it; no "after".
    assert_eq!(names(&other).await, ["before", "autocommit"]);
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn a_transaction_that_does_not_reuse_is_independent_of_the_one_around_it() {
    let (s, other) = items_setup(EngineOptions::new().max_size(2)).await;
    let e = &s.engine;
    let r = e
        .transaction(async {
            add(e, "outer").await?;
            let outer_pid = common::backend_pid(e).await;
            // A managed one, on a connection of its own: its implicit
            // statements run there and it commits on its own.
            e.transaction(async {
                assert_ne!(common::backend_pid(e).await, outer_pid);
                add(e, "own managed").await
            })
            .reuse(false)
            .await?;
            let manual = e.begin().reuse(false).await?;
            assert!(!manual.connection().is_reusing());
            add(manual.connection(), "own manual").await?;
            manual.commit().await?;
            // With both connections of the pool in use, a third waits at
            // most its acquire timeout.
            let held = e.acquire().reusable(false).await?;
            let waited = e
                .transaction(async { Ok::<_, Error>(()) })
                .reuse(false)
                .acquire_timeout(Duration::from_millis(50))
                .await;
            assert!(matches!(waited, Err(Error::PoolTimeout(_))), "{waited:?}");
            held.release().await?;
            Err::<(), _>(AppError::Refused)
        })
        .await;
    assert!(matches!(r, Err(AppError::Refused)));
    assert_eq!(names(&other).await, ["own managed", "own manual"]);
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn a_scope_of_the_blocks_own_connection_is_part_of_the_block() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let block = e.transaction(async {
        let own = e.current_connection().expect("the block's connection");
        own.scope(add(e, "in a scope")).await?;
        Err::<(), _>(AppError::Refused)
    });
    let r = unless_stuck(block, "the scope's statement waited for its own block").await;
    assert!(matches!(r, Err(AppError::Refused)));
    assert!(names(&other).await.is_empty(), "rolled back with the block");
    common::assert_pool_clean(e).await;
}

/// A block on a connection that another future owns and drops (its
/// `scope` ends) while the block runs: the block's statements after that
/// fail, where they went to a fresh connection of the pool, outside the
/// transaction, and autocommitted whatever the block decided.
#[tokio::test]
async fn a_block_whose_connection_its_owner_drops_runs_no_statement_outside_it() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    let block = e.transaction(async {
        add(e, "before").await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        add(e, "after").await?;
        Err::<(), _>(AppError::Refused)
    });
    let owner = conn.scope(tokio::time::sleep(Duration::from_millis(20)));
    let ((), r) = tokio::join!(owner, block);
    assert!(
        matches!(r, Err(AppError::Gino(Error::ConnectionReleased))),
        "{r:?}"
    );
    assert!(names(&other).await.is_empty(), "nothing of the block kept");
    common::assert_pool_clean(e).await;
}

/// The scope of a block's connection in a task the block awaits: its
/// statements nest in the block, as the connection's own statements and
/// blocks there do, where waiting for the block to end never ended.
#[tokio::test]
async fn a_scope_of_a_blocks_connection_in_a_task_it_awaits_nests_in_the_block() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    for refuse in [true, false] {
        let block = e.transaction(async {
            let conn = e.acquire().reuse(true).await?;
            let inner = e.clone();
            let spawned = tokio::spawn(conn.scope(async move { add(&inner, "spawned").await }));
            spawned.await.expect("the spawned scope")?;
            if refuse {
                return Err(AppError::Refused);
            }
            Ok(())
        });
        let r = unless_stuck(
            block,
            "the spawned scope waited for the block that awaits it",
        )
        .await;
        assert_eq!(r.is_err(), refuse, "{r:?}");
    }
    assert_eq!(
        names(&other).await,
        ["spawned"],
        "rolled back with the first block"
    );
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn a_statement_waiting_for_a_dropped_block_runs_once_the_block_is_rolled_back() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let outer = e.transaction(async {
        let abandoned = drop_after_50ms(e.transaction(add_then_hang(e, "abandoned")).into_future());
        let ((), beside) = tokio::join!(abandoned, add_soon(e, "beside"));
        beside?;
        Ok::<_, Error>(())
    });
    unless_stuck(outer, "the waiting statement was never woken")
        .await
        .unwrap();
    assert_eq!(names(&other).await, ["beside"]);
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn transactions_reuse_the_held_connection_unless_told_not_to() {
    // GINO's test_reuse: inside `db.acquire()`, a transaction (and one
    // nested in it) runs on the held connection; `reuse(false)` takes
    // another, and transactions nested in that one run on it.
    let s = common::setup_with(EngineOptions::new().max_size(3)).await;
    let e = &s.engine;
    let held = e.acquire().await.unwrap();
    let held_pid = common::backend_pid(&held).await;
    let pid = || common::backend_pid(e);
    let pid_in_a_transaction = |reuse: bool| {
        e.transaction(async { Ok::<_, Error>(pid().await) })
            .reuse(reuse)
    };
    e.transaction(async {
        assert_eq!(pid().await, held_pid);
        assert_eq!(pid_in_a_transaction(true).await?, held_pid);
        assert_ne!(pid_in_a_transaction(false).await?, held_pid);
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    e.transaction(async {
        let own = pid().await;
        assert_ne!(own, held_pid);
        assert_eq!(pid_in_a_transaction(true).await?, own);
        let third = pid_in_a_transaction(false).await?;
        assert!(third != held_pid && third != own, "a third connection");
        // Back in the outer level after the inner one ended.
        assert_eq!(pid().await, own);
        Ok::<_, Error>(())
    })
    .reuse(false)
    .await
    .unwrap();
    // The held connection is the task's again, outside any transaction.
    assert_eq!(pid().await, held_pid);
    common::assert_outside_transaction(&held).await;
    held.release().await.unwrap();
    assert!(matches!(
        held.release().await,
        Err(Error::ConnectionReleased)
    ));
    common::assert_pool_clean(e).await;
}

/// A step of a block in [`any_nesting_of_blocks_commits_what_a_model_says`].
#[derive(Debug, Clone)]
enum Act {
    Step(Step),
    /// A statement that fails, its error passed on with `?`.
    Fail,
    /// A statement that fails, its error dropped: the level's last step,
    /// after which its transaction is aborted.
    Swallow,
    /// Two steps joined, sharing the level's connection.
    Join(Step, Step),
}

/// A step that may run beside another.
#[derive(Debug, Clone)]
enum Step {
    /// Adds the item of this name.
    Add(String),
    Block(Block),
}

/// A managed transaction: its steps, how it ends when they all ran, and
/// whether its caller passes a failure on.
#[derive(Debug, Clone)]
struct Block {
    /// Told apart by its number, given by [`number`].
    id: usize,
    body: Vec<Act>,
    end: End,
    propagate: bool,
}

/// How each block's call ended, by block number.
type Outcomes = std::collections::BTreeMap<usize, Outcome>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Ok,
    Err,
    RaiseRollback,
    RaiseCommit,
    /// The block waits forever and its caller drops it.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    Err,
    /// `Error::TransactionAborted`: a commit after a failed statement.
    Aborted,
    Dropped,
}

fn block_strategy() -> impl proptest::strategy::Strategy<Value = Block> {
    use proptest::prelude::*;
    let end = prop::sample::select(
        &[
            End::Ok,
            End::Ok,
            End::Err,
            End::RaiseRollback,
            End::RaiseCommit,
            End::Drop,
        ][..],
    );
    let add = || Step::Add(String::new());
    let leaf = (end.clone(), any::<bool>()).prop_map(move |(end, propagate)| Block {
        id: 0,
        body: vec![Act::Step(add())],
        end,
        propagate,
    });
    leaf.prop_recursive(3, 24, 4, move |inner| {
        let step = prop_oneof![Just(add()), inner.prop_map(Step::Block)];
        let act = prop_oneof![
            7 => step.clone().prop_map(Act::Step),
            1 => Just(Act::Fail),
            1 => (step.clone(), step).prop_map(|(a, b)| Act::Join(a, b)),
        ];
        (
            prop::collection::vec(act, 0..5),
            any::<bool>(),
            end.clone(),
            any::<bool>(),
        )
            .prop_map(|(mut body, swallow, end, propagate)| {
                if swallow {
                    body.push(Act::Swallow);
                }
                Block {
                    id: 0,
                    body,
                    end,
                    propagate,
                }
            })
    })
}

/// Numbers `block` and every block in it, and names every `Add` of them
/// after its own number, all in order.
fn number(block: &mut Block, next: &mut usize) {
    *next += 1;
    block.id = *next;
    let mut name = |step: &mut Step| match step {
        Step::Add(name) => {
            *next += 1;
            *name = format!("i{next}");
        }
        Step::Block(inner) => number(inner, next),
    };
    for act in &mut block.body {
        match act {
            Act::Step(step) => name(step),
            Act::Join(a, b) => {
                name(a);
                name(b);
            }
            Act::Fail | Act::Swallow => {}
        }
    }
}

/// What `block` leaves to its parent's level (`kept`) and how its call ends,
/// also noted in `outcomes`, by GINO's rules: a level commits into its
/// parent when its block returns `Ok` (or raises a commit) unless a
/// statement in it failed, and rolls back otherwise.
fn model(block: &Block, kept: &mut Vec<String>, outcomes: &mut Outcomes) -> Outcome {
    let outcome = model_level(block, kept, outcomes);
    outcomes.insert(block.id, outcome);
    outcome
}

fn model_level(block: &Block, kept: &mut Vec<String>, outcomes: &mut Outcomes) -> Outcome {
    let mut pending = Vec::new();
    let mut aborted = false;
    for act in &block.body {
        let passed_on = match act {
            Act::Fail => true,
            Act::Swallow => {
                aborted = true;
                false
            }
            Act::Step(step) => model_step(step, &mut pending, outcomes),
            // Joined blocks take turns on the connection: as if in order.
            Act::Join(a, b) => [a, b]
                .map(|step| model_step(step, &mut pending, outcomes))
                .contains(&true),
        };
        if passed_on {
            return Outcome::Err;
        }
    }
    match block.end {
        End::Ok | End::RaiseCommit if aborted => Outcome::Aborted,
        End::Ok | End::RaiseCommit => {
            kept.extend(pending);
            Outcome::Ok
        }
        End::Err => Outcome::Err,
        End::RaiseRollback => Outcome::Ok,
        End::Drop => Outcome::Dropped,
    }
}

/// A step in the model: whether a failure is passed on.
fn model_step(step: &Step, pending: &mut Vec<String>, outcomes: &mut Outcomes) -> bool {
    match step {
        Step::Add(name) => {
            pending.push(name.clone());
            false
        }
        Step::Block(inner) => model(inner, pending, outcomes) != Outcome::Ok && inner.propagate,
    }
}

/// Runs a step: `Err` when a failure is passed on.
async fn run_step(e: &Engine, step: &Step, seen: &Mutex<Outcomes>) -> gino::Result<()> {
    match step {
        Step::Add(name) => add(e, name).await,
        Step::Block(inner) => {
            if run_block(e, inner, seen).await != Outcome::Ok && inner.propagate {
                return Err(Error::NotFound);
            }
            Ok(())
        }
    }
}

fn fail_statement() -> diesel::query_builder::SqlQuery {
    diesel::sql_query("SELECT 1/0")
}

/// Runs `block` as a managed transaction of `e`, nested in the one
/// around, noting how its call ended in `seen`.
fn run_block<'a>(
    e: &'a Engine,
    block: &'a Block,
    seen: &'a Mutex<Outcomes>,
) -> futures_util::future::BoxFuture<'a, Outcome> {
    async move {
        let (signal, dropped) = tokio::sync::oneshot::channel::<()>();
        let level = e.transaction(async move {
            for act in &block.body {
                match act {
                    Act::Step(step) => run_step(e, step, seen).await?,
                    Act::Fail => drop(e.status(fail_statement()).await?),
                    Act::Swallow => drop(e.status(fail_statement()).await),
                    Act::Join(a, b) => {
                        let (a, b) = tokio::join!(run_step(e, a, seen), run_step(e, b, seen));
                        a.and(b)?;
                    }
                }
            }
            let tx = || Transaction::current().expect("inside a managed transaction");
            match block.end {
                End::Ok => Ok(()),
                End::Err => Err(Error::NotFound),
                End::RaiseRollback => match tx().raise_rollback()? {},
                End::RaiseCommit => match tx().raise_commit()? {},
                End::Drop => {
                    let _ = signal.send(());
                    std::future::pending().await
                }
            }
        });
        let outcome = tokio::select! {
            biased;
            result = level => match result {
                Ok(()) => Outcome::Ok,
                Err(Error::TransactionAborted) => Outcome::Aborted,
                Err(_) => Outcome::Err,
            },
            // The signal is dropped unsent once the block has returned.
            Ok(()) = dropped => Outcome::Dropped,
        };
        seen.lock().unwrap().insert(block.id, outcome);
        outcome
    }
    .boxed()
}

/// Any nesting of managed transactions (steps that add, fail, or fail
/// with the error dropped; blocks that return `Ok` or `Err`, raise a
/// commit or a rollback, or are dropped unfinished; callers that pass a
/// nested failure on or go on) commits exactly what the model says, each
/// call ends as it says, and every connection goes back to the pool
/// outside a transaction.
#[test]
fn any_nesting_of_blocks_commits_what_a_model_says() {
    use proptest::test_runner::TestCaseError;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, other) = rt.block_on(items_setup(EngineOptions::new().max_size(3)));
    let (e, observer) = (&s.engine, &other);
    common::check_cases(&rt, 64, &block_strategy(), |mut block| {
        number(&mut block, &mut 0);
        let (mut committed, mut expected) = (Vec::new(), Outcomes::new());
        model(&block, &mut committed, &mut expected);
        async move {
            e.status(diesel::sql_query("TRUNCATE items")).await.unwrap();
            let seen = Mutex::new(Outcomes::new());
            unless_stuck(run_block(e, &block, &seen), "the blocks never ended").await;
            proptest::prop_assert_eq!(seen.into_inner().unwrap(), expected, "each call's end");
            let mut stored = names(observer).await;
            stored.sort();
            committed.sort();
            proptest::prop_assert_eq!(stored, committed);
            proptest::prop_assert!(e.current_connection().is_none());
            common::assert_pool_clean(e).await;
            Ok::<_, TestCaseError>(())
        }
    });
    rt.block_on(async {
        other.close().await;
        s.engine.close().await;
    });
}

/// `items` rows named `slow` make their transaction's COMMIT take 300 ms
/// (a deferred trigger sleeps), so that a commit can be dropped in flight.
async fn slow_commit_setup() -> (common::Setup, Engine) {
    let (s, other) = items_setup(EngineOptions::new()).await;
    for sql in [
        "CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.name = 'slow' THEN PERFORM pg_sleep(0.3); END IF; RETURN NEW; END $$",
        "CREATE CONSTRAINT TRIGGER nap AFTER INSERT ON items DEFERRABLE INITIALLY DEFERRED \
         FOR EACH ROW EXECUTE FUNCTION nap()",
    ] {
        s.engine.status(diesel::sql_query(sql)).await.unwrap();
    }
    (s, other)
}

/// A commit dropped while its COMMIT runs still ends the transaction: the
/// server finishes it, so the next statement runs on its own (not refused,
/// not autocommitted under a level left standing) and the transaction
/// counts as ended.
#[tokio::test]
async fn a_commit_dropped_in_flight_leaves_no_level_standing() {
    let (s, other) = slow_commit_setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    add(&conn, "slow").await.unwrap();
    let dropped = tokio::time::timeout(Duration::from_millis(100), tx.clone().commit()).await;
    assert!(dropped.is_err(), "the COMMIT takes 300 ms");
    add(&conn, "after").await.unwrap();
    assert!(matches!(
        tx.commit().await,
        Err(Error::TransactionMisuse(_))
    ));
    assert_eq!(names(&other).await, ["slow", "after"]);
    conn.release().await.unwrap();
}

/// `release_raw` dropped during the ROLLBACK of a transaction left open
/// ends that transaction with its connection: the next statement borrows
/// again and runs on its own, and nothing of the transaction is stored.
#[tokio::test]
async fn a_release_dropped_in_flight_leaves_no_level_standing() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let conn = s.engine.acquire().lazy(true).await.unwrap();
    let tx = conn.begin().await.unwrap();
    add(&conn, "rolled back").await.unwrap();
    {
        let mut release = std::pin::pin!(conn.release_raw());
        let polled = futures_util::future::poll_fn(|cx| {
            std::task::Poll::Ready(release.as_mut().poll(cx).is_pending())
        });
        assert!(polled.await, "the ROLLBACK is a round trip");
    }
    add(&conn, "after").await.unwrap();
    assert!(matches!(
        tx.commit().await,
        Err(Error::TransactionMisuse(_))
    ));
    assert_eq!(names(&other).await, ["after"]);
    conn.release().await.unwrap();
}

/// A statement waiting for the connection while its transaction is
/// dropped (the connection closed under it) fails: it does not borrow a
/// new connection and commit on its own what was meant for the
/// transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_queued_behind_a_dropped_transaction_fails() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let tx = e.begin().await.unwrap();
    let slow = gino::text("INSERT INTO items (name) SELECT 'slow' FROM pg_sleep(0.2)");
    let (first, queued, ()) = tokio::join!(
        e.status(slow),
        async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            add(e, "queued").await
        },
        async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            drop(tx);
        },
    );
    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(queued, Err(Error::ConnectionReleased)),
        "{queued:?}"
    );
    assert!(names(&other).await.is_empty());
}

/// A statement of a managed block waits out a managed block joined beside
/// it, also when that block begins a manual transaction on top: it must
/// not run inside the other block's level and be rolled back with it.
#[tokio::test]
async fn a_manual_level_on_a_joined_block_does_not_take_in_its_neighbours() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    e.transaction(async {
        let (failed, beside) = tokio::join!(
            e.transaction(async {
                let _manual = e.begin().await?;
                add(e, "failing").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<(), _>(Error::NotFound)
            }),
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                add(e, "beside").await
            },
        );
        assert!(matches!(failed, Err(Error::NotFound)), "{failed:?}");
        beside
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["beside"]);
}

/// A manual transaction cannot be committed or rolled back from inside a
/// managed block running on top of it: the rest of the block would run
/// outside its level. The block fails and rolls back; the manual
/// transaction goes on.
#[tokio::test]
async fn a_manual_transaction_does_not_end_under_a_running_block() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let conn = s.engine.acquire().await.unwrap();
    let manual = conn.begin().await.unwrap();
    add(&conn, "before").await.unwrap();
    for commit in [true, false] {
        let inner = manual.clone();
        let block = conn
            .transaction(async {
                add(&conn, "in the block").await?;
                if commit {
                    inner.commit().await
                } else {
                    inner.rollback().await
                }
            })
            .await;
        assert!(
            matches!(block, Err(Error::TransactionMisuse(_))),
            "{block:?}"
        );
    }
    add(&conn, "after").await.unwrap();
    manual.commit().await.unwrap();
    assert_eq!(names(&other).await, ["before", "after"]);
    conn.release().await.unwrap();
}

/// An items setup with `deferred`: a table whose rows fail only at COMMIT
/// (a deferred unique constraint), for commits that fail.
async fn deferred_setup() -> (common::Setup, Engine) {
    let (s, other) = items_setup(EngineOptions::new()).await;
    s.engine
        .status(diesel::sql_query(
            "CREATE TABLE deferred (x int CONSTRAINT deferred_x UNIQUE DEFERRABLE INITIALLY \
             DEFERRED)",
        ))
        .await
        .unwrap();
    (s, other)
}

fn add_duplicates() -> diesel::query_builder::SqlQuery {
    diesel::sql_query("INSERT INTO deferred VALUES (1), (1)")
}

/// GINO re-raises the commit error of a level that an enclosing
/// `raise_commit()` ended: the enclosing transaction then rolls back and
/// its caller sees the error, rather than a success with a level lost.
#[tokio::test]
async fn a_level_that_cannot_commit_for_raise_commit_fails_the_enclosing_one() {
    let (s, other) = deferred_setup().await;
    let e = &s.engine;
    // On its own connection the inner level is a transaction of its own,
    // whose COMMIT fails.
    let r = e
        .transaction_with(|outer| async move {
            add(e, "outer").await?;
            e.transaction(async {
                e.status(add_duplicates()).await?;
                match outer.raise_commit()? {}
            })
            .reuse(false)
            .await?;
            Ok::<_, Error>(())
        })
        .await;
    match r {
        Err(Error::Database(error)) => assert_eq!(error.constraint(), Some("deferred_x")),
        other => panic!("the inner commit's error, got {other:?}"),
    }
    assert!(
        names(&other).await.is_empty(),
        "the outer level rolled back"
    );

    // The same with an app's error type, which gino cannot look into.
    let r = e
        .transaction(async {
            let outer = Transaction::current().unwrap();
            add(e, "outer").await?;
            e.transaction(async {
                e.status(add_duplicates()).await?;
                match outer.raise_commit()? {}
                #[allow(unreachable_code)]
                Ok::<(), AppError>(())
            })
            .reuse(false)
            .await?;
            Ok::<_, AppError>(())
        })
        .await;
    assert!(
        matches!(&r, Err(AppError::Gino(Error::Database(_)))),
        "{r:?}"
    );
    assert!(
        names(&other).await.is_empty(),
        "the outer level rolled back"
    );

    // On one connection: a statement failed inside the inner level, which
    // therefore cannot commit for the outer one's raise_commit().
    let r = e
        .transaction_with(|outer| async move {
            add(e, "outer").await?;
            e.transaction(async {
                let _ = e.status(gino::text("SELECT 1/0")).await;
                match outer.raise_commit()? {}
            })
            .await?;
            Ok::<_, Error>(())
        })
        .await;
    assert!(matches!(r, Err(Error::TransactionAborted)), "{r:?}");
    assert!(
        names(&other).await.is_empty(),
        "the outer level rolled back"
    );
    common::assert_pool_clean(e).await;
}

/// Blocks joined on one named connection take turns, as they do on a
/// contextual one: none nests inside a block it would outlive.
#[tokio::test]
async fn joined_blocks_on_a_named_connection_take_turns() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    let (first, second) = tokio::join!(
        conn.transaction(async {
            add(&conn, "first").await?;
            pause(5).await;
            Ok::<_, Error>(())
        }),
        conn.transaction(async {
            pause(20).await;
            add(&conn, "second").await?;
            Err::<(), _>(AppError::Refused)
        }),
    );
    first.unwrap();
    assert!(matches!(second, Err(AppError::Refused)), "{second:?}");
    assert_eq!(names(&other).await, ["first"]);
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

/// Releasing a transaction's reusing handle ends that handle only: the
/// transaction still ends as its block says, and its connection is free
/// afterwards.
#[tokio::test]
async fn releasing_a_transactions_reusing_handle_leaves_the_transaction_to_its_block() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    conn.transaction_with(|tx| async move {
        add(tx.connection(), "kept").await?;
        tx.connection().release().await?;
        assert!(tx.is_active().await);
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["kept"]);

    let tx = conn.begin().await.unwrap();
    add(&conn, "manual").await.unwrap();
    tx.connection().release().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&other).await, ["kept", "manual"]);
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

/// A COMMIT sent as SQL that fails (a deferred constraint) ends the
/// server's transaction as well: the statements after it must not
/// autocommit under the levels.
#[tokio::test]
async fn a_failed_commit_sent_as_sql_still_ends_the_levels() {
    let (s, other) = deferred_setup().await;
    let e = &s.engine;
    let r = e
        .transaction(async {
            e.status(add_duplicates()).await?;
            let commit = e.status(gino::text("COMMIT")).await;
            assert!(
                matches!(commit, Err(Error::Database(_))),
                "the COMMIT's own error: {commit:?}"
            );
            assert_misuse(add(e, "after").await, "sent as a statement");
            Err::<(), _>(AppError::Refused)
        })
        .await;
    assert!(matches!(r, Err(AppError::Refused)), "{r:?}");
    assert!(names(&other).await.is_empty());
    common::assert_pool_clean(e).await;
}

/// A statement left running by a transaction that was dropped (a timeout
/// around it) is cancelled, not awaited, by the connection's next user:
/// its transaction is rolled back, so its work is for nobody.
#[tokio::test]
async fn a_statement_of_a_dropped_transaction_is_cancelled_not_awaited() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        conn.transaction(async {
            add(&conn, "dropped").await?;
            conn.status(gino::text("SELECT pg_sleep(60)")).await
        }),
    )
    .await;
    assert!(dropped.is_err(), "the transaction was dropped");
    unless_stuck(add(&conn, "next"), "waited for the abandoned pg_sleep")
        .await
        .unwrap();
    assert_eq!(names(&other).await, ["next"]);
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

/// A block on a named connection nests in its own enclosing block there,
/// found past a block of another connection, and in a block of another
/// task (which may be waiting for it): it waits only for the blocks of
/// its own task beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_a_named_connection_nests_where_waiting_could_never_end() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = e.acquire().await.unwrap();
    unless_stuck(
        conn.transaction(async {
            e.transaction(async {
                conn.transaction(add(&conn, "across")).await?;
                Ok::<_, Error>(())
            })
            .reuse(false)
            .await
        }),
        "waited for its own enclosing block",
    )
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["across"]);

    let conn = Arc::new(conn);
    unless_stuck(
        conn.transaction(async {
            let spawned = Arc::clone(&conn);
            tokio::spawn(async move { spawned.transaction(add(spawned.as_ref(), "spawned")).await })
                .await
                .unwrap()
        }),
        "waited for the block that waits for it",
    )
    .await
    .unwrap();
    assert_eq!(names(&other).await, ["across", "spawned"]);
    Arc::into_inner(conn).unwrap().release().await.unwrap();
    common::assert_pool_clean(e).await;
}

/// A block that ends while another task's block nested in it still runs
/// cannot end its level (the rest of the nested block would run outside
/// it): the call fails, and the level is rolled back once the nested
/// block has ended, rather than left open for good or rolled back under
/// the nested block (whose statements would then autocommit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_ending_under_another_tasks_block_leaves_no_level_open() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    let e = &s.engine;
    let conn = Arc::new(e.acquire().await.unwrap());
    let started = Arc::new(tokio::sync::Notify::new());
    let mut nested = None;
    let outer = conn
        .transaction(async {
            add(conn.as_ref(), "outer").await?;
            let (spawned, begun) = (Arc::clone(&conn), Arc::clone(&started));
            nested = Some(tokio::spawn(async move {
                spawned
                    .transaction(async {
                        begun.notify_one();
                        pause(200).await;
                        add(spawned.as_ref(), "nested").await
                    })
                    .await
            }));
            started.notified().await;
            Ok::<_, Error>(())
        })
        .await;
    assert_misuse(outer, "inside a managed transaction");
    // The nested block ends inside the outer level, which is rolled back
    // once it has: nothing of it ran outside a transaction.
    let nested = unless_stuck(nested.unwrap(), "the nested block")
        .await
        .unwrap();
    assert!(nested.is_ok(), "{nested:?}");
    unless_stuck(conn.release_raw(), "released").await.unwrap();
    assert!(
        names(&other).await.is_empty(),
        "{:?} {nested:?}",
        names(&other).await
    );
    Arc::into_inner(conn).unwrap().release().await.unwrap();
    common::assert_pool_clean(e).await;
}

/// A statement that fails on the client while its reply still streams in
/// (a NULL row for an `i32`, rows behind it), and carries the
/// transaction's `BEGIN` to the server: the transaction is open there,
/// though no error came from it. Its rollback must roll it back, and a
/// later statement must not run inside what is left of it.
#[tokio::test]
async fn a_client_side_failure_mid_reply_leaves_the_transaction_known() {
    let (s, other) = items_setup(EngineOptions::new()).await;
    diesel::table! { vals (id) { id -> Integer, x -> Integer } }
    s.engine
        .status(diesel::sql_query(
            "CREATE TABLE vals AS SELECT g AS id, CASE WHEN g = 1 THEN NULL ELSE g END AS x \
             FROM generate_series(1, 500000) AS g",
        ))
        .await
        .unwrap();
    let conn = s.engine.acquire().await.unwrap();
    let undecodable = || vals::table.select(vals::x).order_by(vals::id);
    // Prepared once before, so that the statement's own round trip, not
    // its prepare, is the one that carries the `BEGIN`.
    assert!(undecodable().gino().bind(&conn).all::<i32>().await.is_err());
    let tx = conn.begin().await.unwrap();
    let failed = undecodable().gino().bind(&conn).all::<i32>().await;
    assert!(failed.is_err(), "a NULL for an i32");
    tx.rollback().await.unwrap();
    add(&conn, "after the rollback").await.unwrap();
    conn.release().await.unwrap();
    let names: Vec<String> = other
        .all(diesel::select(sql::<st::Text>("name FROM items")))
        .await
        .unwrap();
    assert_eq!(
        names,
        ["after the rollback"],
        "it ran on its own, and stayed"
    );
}
