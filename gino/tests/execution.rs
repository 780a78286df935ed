//! The query API: loading, status tags, compile, timeouts, raw SQL, echo,
//! database errors and where implicit queries run.

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use gino::prelude::*;
use gino::{EngineOptions, Error};

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
    }
}

async fn with_items(engine: &gino::Engine, n: i32) {
    engine
        .status(diesel::sql_query(
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE)",
        ))
        .await
        .unwrap();
    if n > 0 {
        let q =
            gino::text("INSERT INTO items (name) SELECT 'item' || g FROM generate_series(1, :n) g")
                .bind::<Integer, _>("n", n);
        engine.status(q).await.unwrap();
    }
}

use common::series;

#[tokio::test]
async fn all_first_one_one_or_none_and_scalar() {
    let s = common::setup().await;
    let e = &s.engine;
    assert_eq!(e.all::<i32, _>(series(3)).await.unwrap(), [1, 2, 3]);
    assert_eq!(e.first::<i32, _>(series(3)).await.unwrap(), Some(1));
    assert_eq!(e.first::<i32, _>(series(0)).await.unwrap(), None);
    assert_eq!(e.one::<i32, _>(series(1)).await.unwrap(), 1);
    assert!(matches!(
        e.one::<i32, _>(series(0)).await,
        Err(Error::NoResultFound)
    ));
    assert!(matches!(
        e.one::<i32, _>(series(2)).await,
        Err(Error::MultipleResultsFound)
    ));
    assert_eq!(e.one_or_none::<i32, _>(series(0)).await.unwrap(), None);
    assert_eq!(e.one_or_none::<i32, _>(series(1)).await.unwrap(), Some(1));
    assert!(matches!(
        e.one_or_none::<i32, _>(series(5)).await,
        Err(Error::MultipleResultsFound)
    ));
    // scalar: no row is None, a NULL value is Some(None)
    let none: Option<i64> = e
        .scalar(diesel::select(sql::<BigInt>("1 WHERE false")))
        .await
        .unwrap();
    assert_eq!(none, None);
    let null: Option<Option<i64>> = e
        .scalar(diesel::select(sql::<Nullable<BigInt>>("NULL")))
        .await
        .unwrap();
    assert_eq!(null, Some(None));
    // The connection is fine after `first` stopped reading a long result.
    assert_eq!(e.first::<i32, _>(series(100_000)).await.unwrap(), Some(1));
    assert_eq!(e.one::<i32, _>(series(1)).await.unwrap(), 1);
}

#[tokio::test]
async fn status_is_postgres_command_tag() {
    let s = common::setup().await;
    let e = &s.engine;
    with_items(e, 0).await;
    let insert = diesel::insert_into(items::table).values(vec![
        items::name.eq("a"),
        items::name.eq("b"),
        items::name.eq("c"),
    ]);
    let st = e.status(insert).await.unwrap();
    assert_eq!(st, "INSERT 0 3");
    assert_eq!(st.rows(), 3);
    let st = diesel::update(items::table)
        .set(items::name.eq(items::name.concat("!")))
        .filter(items::id.gt(1))
        .gino()
        .bind(e)
        .status()
        .await
        .unwrap();
    assert_eq!(st.tag(), "UPDATE 2");
    assert_eq!(st.to_string(), "UPDATE 2");
    let st = e.status(items::table.select(items::id)).await.unwrap();
    assert_eq!(st, "SELECT 3");
    // An empty statement (or only a comment) has no tag.
    for empty in ["", "-- nothing to run"] {
        let st = e.status(gino::text(empty)).await.unwrap();
        assert_eq!((st.tag(), st.rows()), ("", 0), "{empty:?}");
    }
    let st = e
        .status(diesel::delete(items::table.filter(items::id.eq(1))))
        .await
        .unwrap();
    assert_eq!(st, "DELETE 1");
    let st = e
        .status(diesel::sql_query("DROP TABLE items"))
        .await
        .unwrap();
    assert_eq!(st, "DROP TABLE");
}

#[tokio::test]
async fn status_and_all_returns_the_tag_with_the_rows() {
    // GINO's `status, result = await engine.status("select now()")`.
    let s = common::setup().await;
    let e = &s.engine;
    with_items(e, 3).await;
    let now =
        gino::text("select now() at time zone 'UTC'").columns::<diesel::sql_types::Timestamp>();
    let (st, rows) = e
        .status_and_all::<std::time::SystemTime, _>(now)
        .await
        .unwrap();
    assert_eq!(st, "SELECT 1");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].elapsed().unwrap_or_default() < Duration::from_secs(3600));

    let (st, renamed) = diesel::update(items::table)
        .set(items::name.eq(items::name.concat("!")))
        .filter(items::id.ge(2))
        .returning(items::name)
        .gino()
        .bind(e)
        .status_and_all::<String>()
        .await
        .unwrap();
    assert_eq!((st.tag(), st.rows()), ("UPDATE 2", 2));
    let mut renamed = renamed;
    renamed.sort();
    assert_eq!(renamed, ["item2!", "item3!"]);

    // GINO's `status, _ = await db.status(db.text("UPDATE .."))`: the rows
    // a write without RETURNING affected are the tag's, as `status()`
    // counts them, not the none it returned.
    let touch = gino::text("UPDATE items SET name = name").columns::<Integer>();
    let (st, returned) = e.status_and_all::<i32, _>(touch).await.unwrap();
    assert_eq!((st.tag(), st.rows(), returned.len()), ("UPDATE 3", 3, 0));
    let (st, _) = e
        .status_and_all::<i32, _>(gino::text("CREATE TEMP TABLE t (x int)").columns::<Integer>())
        .await
        .unwrap();
    assert_eq!((st.tag(), st.rows()), ("CREATE TABLE", 0));

    let none = items::table.select(items::id).filter(items::id.gt(10));
    let (st, ids) = e.status_and_all::<i32, _>(none).await.unwrap();
    assert_eq!(st, "SELECT 0");
    assert!(ids.is_empty());

    // In a transaction: what it changed is there, and a failure is a
    // database error like any other.
    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let (st, gone) = conn
        .status_and_all::<i32, _>(diesel::delete(items::table).returning(items::id))
        .await
        .unwrap();
    assert_eq!((st.tag(), gone.len()), ("DELETE 3", 3));
    tx.rollback().await.unwrap();
    let bad = gino::text("SELECT 1 / (id - id) FROM items").columns::<Integer>();
    let err = conn.status_and_all::<i32, _>(bad).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("22012"), "{err}");
    assert_eq!(
        conn.status(items::table.select(items::id)).await.unwrap(),
        "SELECT 3"
    );
    conn.release().await.unwrap();
}

#[tokio::test]
async fn raw_sql_parameters_are_read_from_code_as_postgres_reads_it() {
    // Inside an escape string, a dollar quote or a nested comment, `:name`
    // is text the server keeps, not a parameter to bind.
    let s = common::setup().await;
    let q = gino::text(
        r"SELECT E'it\'s :not' || :bang || $q$ :nor $q$ /* /* :neither */ */ || '\' AS s",
    )
    .bind::<Text, _>("bang", "!")
    .columns::<Text>();
    assert_eq!(q.param_names(), ["bang"]);
    let got = s.engine.scalar::<String, _>(q).await.unwrap();
    assert_eq!(got.as_deref(), Some(r"it's :not! :nor \"));
}

#[tokio::test]
async fn a_statement_without_rows_outside_a_transaction_has_no_first_row() {
    // GINO's test_asyncpg_0120: `await bind.first("rollback") is None`.
    let s = common::setup().await;
    let e = &s.engine;
    let first = e.first::<Named, _>(gino::text("rollback")).await.unwrap();
    assert_eq!(first, None);
    let conn = e.acquire().await.unwrap();
    assert_eq!(
        conn.first::<Named, _>(gino::text("rollback"))
            .await
            .unwrap(),
        None
    );
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

#[test]
fn compile_renders_sql_and_binds_without_a_database() {
    let q = items::table
        .filter(items::name.eq("x, \"y\"").and(items::id.gt(5)))
        .select(items::id);
    let compiled = q.gino().compile();
    assert_eq!(
        compiled.sql(),
        "SELECT \"items\".\"id\" FROM \"items\" WHERE ((\"items\".\"name\" = $1) AND (\"items\".\"id\" > $2))"
    );
    assert_eq!(compiled.binds(), ["\"x, \\\"y\\\"\"", "5"]);
    assert!(
        compiled
            .to_string()
            .ends_with("-- binds: [\"x, \\\"y\\\"\", 5]")
    );
}

#[tokio::test]
async fn per_call_timeout_cancels_the_query_on_the_server() {
    let app = "gino_timeout_test";
    let s = common::setup_with(EngineOptions::new().application_name(app)).await;
    let started = Instant::now();
    let err = diesel::sql_query("SELECT pg_sleep(30)")
        .gino()
        .bind(&s.engine)
        .timeout(Duration::from_millis(200))
        .status()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::QueryTimeout(d) if d == Duration::from_millis(200)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not cancelled: {:?}",
        started.elapsed()
    );
    // Nothing of it keeps running on the server: every session of the
    // engine is idle, not active in pg_sleep.
    let states = common::session_states(&s.engine, app).await;
    assert!(states.iter().all(|st| st == "idle"), "{states:?}");
    // The connection that ran it is fine.
    assert_eq!(s.engine.one::<i32, _>(series(1)).await.unwrap(), 1);
}

/// A timeout that lands between two round trips of a statement (here a
/// closure's work before its query) finds the server idle, which ignores
/// a cancel then: the request goes again while the statement runs on, so
/// the query that follows is cancelled too, not left to run out its time
/// on a connection given up on.
#[tokio::test]
async fn a_cancel_the_server_ignored_between_round_trips_goes_again() {
    use futures_util::FutureExt;
    let app = "gino_cancel_again";
    let s = common::setup_with(EngineOptions::new().max_size(1).application_name(app)).await;
    let limit = Duration::from_millis(100);
    let conn = s.engine.acquire().query_timeout(limit).await.unwrap();
    let pid = common::backend_pid(&conn).await;
    let statement = conn.run(|c| {
        async move {
            // Past the deadline before the query goes out.
            tokio::time::sleep(Duration::from_millis(300)).await;
            diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT pg_sleep(30)"), c).await
        }
        .boxed()
    });
    let err = tokio::time::timeout(Duration::from_secs(20), statement)
        .await
        .expect("the statement ended")
        .unwrap_err();
    assert!(matches!(err, Error::QueryTimeout(d) if d == limit), "{err}");
    let observer = common::observer(&s).await;
    let states = common::session_states(&observer, app).await;
    assert_eq!(states, ["idle"], "the query still runs");
    assert_eq!(
        common::backend_pid(&conn).await,
        pid,
        "the connection was kept"
    );
    observer.close().await;
    conn.release().await.unwrap();
    common::assert_pool_clean(&s.engine).await;
}

#[tokio::test]
async fn engine_default_timeout_applies_and_a_call_can_override_it() {
    let s = common::setup_with(EngineOptions::new().timeout(Duration::from_millis(150))).await;
    let slow = || diesel::sql_query("SELECT pg_sleep(0.5)");
    let err = s.engine.status(slow()).await.unwrap_err();
    assert!(matches!(err, Error::QueryTimeout(_)), "{err}");
    let st = slow()
        .gino()
        .bind(&s.engine)
        .timeout(Duration::from_secs(5))
        .status()
        .await
        .unwrap();
    assert_eq!(st, "SELECT 1");
}

#[tokio::test]
async fn a_connection_has_a_default_timeout_of_its_own() {
    // GINO's `conn.execution_options(timeout=...)`: the connection's
    // default sits between the engine's and the call's own.
    let s = common::setup_with(EngineOptions::new().timeout(Duration::from_secs(30))).await;
    let e = &s.engine;
    let slow = |secs: f64| diesel::sql_query(format!("SELECT pg_sleep({secs})"));
    let short = Duration::from_millis(150);
    let mut conn = e.acquire().query_timeout(short).await.unwrap();
    assert_eq!(conn.query_timeout(), Some(short));
    let err = conn.status(slow(5.0)).await.unwrap_err();
    assert!(matches!(err, Error::QueryTimeout(d) if d == short), "{err}");
    let err = slow(5.0).gino().bind(&conn).all::<Named>().await;
    assert!(matches!(err, Err(Error::QueryTimeout(_))), "{err:?}");
    // The call's own wins; the connection is usable after a timeout.
    let st = slow(0.4)
        .gino()
        .bind(&conn)
        .timeout(Duration::from_secs(5))
        .status()
        .await
        .unwrap();
    assert_eq!(st, "SELECT 1");

    // A cursor's FETCHes keep to it too.
    let tx = conn.begin().await.unwrap();
    let rows = diesel::select(sql::<Integer>(
        "n FROM generate_series(1, 3) n, pg_sleep(0.2 * (n - 1))",
    ));
    let mut cursor = conn.iterate::<i32, _>(rows).await.unwrap().prefetch(1);
    assert_eq!(cursor.next().await.unwrap(), Some(1));
    let err = cursor.many(2).await.unwrap_err();
    assert!(matches!(err, Error::QueryTimeout(_)), "{err}");
    drop(cursor);
    tx.rollback().await.unwrap();

    // It belongs to the handle: the engine's queries, and another handle
    // reusing the same raw connection, keep their own.
    {
        let shared = e.acquire().reuse(true).await.unwrap();
        assert!(shared.is_reusing());
        assert_eq!(shared.query_timeout(), None);
        assert_eq!(shared.status(slow(0.3)).await.unwrap(), "SELECT 1");
        assert_eq!(e.status(slow(0.3)).await.unwrap(), "SELECT 1");
    }
    conn.set_query_timeout(None);
    assert_eq!(conn.status(slow(0.3)).await.unwrap(), "SELECT 1");
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

#[tokio::test]
async fn statement_timeout_is_enforced_by_the_server() {
    let db = gino_testkit::TestDatabase::create().await;
    let engine = gino::create_engine(
        &common::url_with(&db, "statement_timeout=100ms"),
        EngineOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(common::setting(&engine, "statement_timeout").await, "100ms");
    let err = engine
        .status(diesel::sql_query("SELECT pg_sleep(2)"))
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("57014"), "{err}");
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Named {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

#[tokio::test]
async fn raw_sql_with_named_parameters_loads_typed_rows() {
    let s = common::setup().await;
    with_items(&s.engine, 5).await;
    let q = gino::text(
        "SELECT id, name FROM items WHERE id >= :low AND (id <= :high OR name = :name) \
         AND name <> ':low' AND id::int >= :low ORDER BY id",
    )
    .bind::<Integer, _>("low", 2)
    .bind::<Integer, _>("high", 3)
    .bind::<Text, _>("name", "item5");
    let rows: Vec<Named> = q.gino().bind(&s.engine).all().await.unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, [2, 3, 5]);
    assert_eq!(
        rows[0],
        Named {
            id: 2,
            name: "item2".into()
        }
    );

    // A parameter left without a value is an error before anything runs.
    let unbound = gino::text("SELECT id, name FROM items WHERE id = :id");
    let err = s.engine.all::<Named, _>(unbound).await.unwrap_err();
    assert!(err.to_string().contains(":id"), "{err}");

    // So is a value bound to a name the statement does not have, on a
    // connection that then runs the next statement as if nothing happened.
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let typo = gino::text("SELECT id, name FROM items WHERE id = :id")
        .bind::<Integer, _>("id", 1)
        .bind::<Integer, _>("idd", 2);
    let err = conn.all::<Named, _>(typo).await.unwrap_err();
    assert!(matches!(err, Error::Query(_)), "{err:?}");
    assert!(err.to_string().contains("no parameter `:idd`"), "{err}");
    assert!(err.to_string().contains(r#"["id"]"#), "{err}");
    let rows: Vec<Named> = conn
        .all(gino::text("SELECT id, name FROM items WHERE id = :id").bind::<Integer, _>("id", 1))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}

#[tokio::test]
async fn raw_sql_with_declared_columns_loads_by_position() {
    // GINO's `db.scalar("select 8")`: raw SQL whose column types are
    // declared loads into plain values and tuples.
    let s = common::setup().await;
    with_items(&s.engine, 3).await;
    let e = &s.engine;
    let eight = gino::text("select 8").columns::<Integer>();
    assert_eq!(e.scalar::<i32, _>(eight).await.unwrap(), Some(8));
    let nothing = gino::text("SELECT id FROM items WHERE id > :id")
        .columns::<Integer>()
        .bind::<Integer, _>("id", 3);
    assert_eq!(e.scalar::<i32, _>(nothing).await.unwrap(), None);

    let rows: Vec<(i32, String, Option<i64>)> =
        gino::text("SELECT id, name, NULLIF(id, :skip)::bigint FROM items ORDER BY id")
            .bind::<Integer, _>("skip", 2)
            .columns::<(Integer, Text, Nullable<BigInt>)>()
            .gino()
            .bind(e)
            .all()
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            (1, "item1".into(), Some(1)),
            (2, "item2".into(), None),
            (3, "item3".into(), Some(3))
        ]
    );

    // Fewer columns than declared is a typed error, and the connection
    // runs the next statement.
    let conn = e.acquire().await.unwrap();
    let short = gino::text("SELECT id FROM items").columns::<(Integer, Text)>();
    let err = conn.all::<(i32, String), _>(short).await.unwrap_err();
    assert!(matches!(err, Error::Query(_)), "{err:?}");
    let tx = conn.begin().await.unwrap();
    let mut names = conn
        .iterate::<String, _>(gino::text("SELECT name FROM items ORDER BY id").columns::<Text>())
        .await
        .unwrap();
    assert_eq!(names.many(2).await.unwrap(), ["item1", "item2"]);
    drop(names);
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}

#[tokio::test]
async fn database_errors_carry_sqlstate_and_constraint_and_leave_the_connection_usable() {
    let s = common::setup_with(EngineOptions::new().max_size(1)).await;
    with_items(&s.engine, 1).await;
    let conn = s.engine.acquire().await.unwrap();
    let dup = diesel::insert_into(items::table).values(items::name.eq("item1"));
    let Err(Error::Database(e)) = conn.status(dup).await else {
        panic!("expected a unique violation");
    };
    assert_eq!(e.code(), "23505");
    assert!(e.is_unique_violation());
    assert_eq!(e.constraint(), Some("items_name_key"));
    assert_eq!(e.table(), Some("items"));
    assert!(e.detail().unwrap().contains("item1"));
    let err = conn
        .status(diesel::sql_query("SELECT * FROM missing_table"))
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert!(err.to_string().contains("missing_table"), "{err}");
    assert_eq!(conn.one::<i32, _>(series(1)).await.unwrap(), 1);
    // Loading a row into the wrong type is a query error, not a panic.
    let err = conn
        .one::<i32, _>(diesel::select(sql::<Integer>("'x'::text")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Query(_) | Error::Database(_)), "{err}");
}

#[tokio::test]
async fn echo_logs_sql_binds_and_duration() {
    let s = common::setup_with(EngineOptions::new().echo(true)).await;
    let engine = s.engine.clone();
    let ((), text) = common::with_log(async move {
        let q = diesel::select(sql::<Integer>("").bind::<Integer, _>(12345).sql(" + 1"));
        engine.one::<i32, _>(q).await.unwrap();
        // A transaction's BEGIN goes with its first statement, past
        // diesel's instrumentation: logged all the same.
        engine
            .transaction(engine.one::<i32, _>(diesel::select(sql::<Integer>("5"))))
            .isolation_level(gino::IsolationLevel::Serializable)
            .await
            .unwrap();
        // A statement diesel cannot render fails as it does unlogged: an
        // error, not a panic of the logger.
        let unbound = gino::text("SELECT :id AS id").columns::<Integer>();
        let err = engine.one::<i32, _>(unbound).await.unwrap_err();
        assert!(matches!(err, Error::Query(_)), "{err:?}");
        engine.set_echo(false);
        engine
            .one::<i32, _>(diesel::select(sql::<Integer>("777")))
            .await
            .unwrap();
    })
    .await;
    assert!(text.contains("gino::echo"), "{text}");
    assert!(text.contains("SELECT $1 + 1"), "{text}");
    assert!(text.contains("12345"), "binds are logged: {text}");
    assert!(text.contains("elapsed"), "duration is logged: {text}");
    for statement in ["BEGIN ISOLATION LEVEL SERIALIZABLE", "SELECT 5", "COMMIT"] {
        assert!(text.contains(statement), "{statement} is logged: {text}");
    }
    assert!(
        // Matched as SQL: the bare digits can turn up in a log line's timestamp.
        !text.contains("SELECT 777"),
        "nothing is logged with echo off: {text}"
    );
}

#[tokio::test]
async fn query_api_runs_on_what_it_is_bound_to() {
    let s = common::setup().await;
    let pid = || diesel::select(sql::<Integer>("pg_backend_pid()"));
    let conn = s.engine.acquire().reusable(false).await.unwrap();
    let conn_pid: i32 = conn.one(pid()).await.unwrap();
    assert_eq!(
        pid().gino().bind(&conn).one::<i32>().await.unwrap(),
        conn_pid
    );
    let db = gino::Gino::secondary();
    assert!(matches!(
        db.one::<i32, _>(pid()).await,
        Err(Error::Uninitialized)
    ));
    db.set_bind(s.engine.clone()).await.unwrap();
    // Not reusable, so neither the db nor the engine picks it up.
    assert_ne!(db.one::<i32, _>(pid()).await.unwrap(), conn_pid);
    let tx = db.begin().await.unwrap();
    let tx_pid: i32 = pid().gino().bind(&tx).one().await.unwrap();
    // The manual transaction's connection is reusable: implicit queries find it.
    assert_eq!(db.one::<i32, _>(pid()).await.unwrap(), tx_pid);
    assert_eq!(s.engine.one::<i32, _>(pid()).await.unwrap(), tx_pid);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn implicit_gino_without_a_default_db_is_uninitialized() {
    // No test in this file binds a default `Gino`.
    let err = diesel::select(sql::<Integer>("1"))
        .gino()
        .one::<i32>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Uninitialized));
    assert!(
        err.to_string()
            .starts_with("Gino engine is not initialized"),
        "{err}"
    );
}

#[tokio::test]
async fn contextual_connections_of_other_engines_are_not_picked_up() {
    let s = common::setup().await;
    let other = gino::create_engine(s.db.url(), EngineOptions::new())
        .await
        .unwrap();
    let pid = || diesel::select(sql::<Integer>("pg_backend_pid()"));
    let held = other.acquire().await.unwrap();
    let held_pid: i32 = held.one(pid()).await.unwrap();
    let db = gino::Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    assert!(db.current_connection().is_none());
    assert_ne!(db.one::<i32, _>(pid()).await.unwrap(), held_pid);
    assert_ne!(s.engine.one::<i32, _>(pid()).await.unwrap(), held_pid);
    assert_eq!(other.one::<i32, _>(pid()).await.unwrap(), held_pid);
    // A transaction of the db does not run on the other engine's connection.
    db.transaction(async {
        assert_ne!(db.one::<i32, _>(pid()).await?, held_pid);
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
}

/// Web frameworks run handlers on multi-threaded runtimes, so every future
/// gino hands out must be `Send`; this fails to compile otherwise.
#[allow(dead_code, clippy::manual_async_fn)]
fn futures_are_send(db: &'static gino::Gino, engine: gino::Engine, conn: gino::Connection) {
    fn send<T: Send>(_: T) {}
    let q = || diesel::select(sql::<Integer>("1"));
    send(engine.all::<i32, _>(q()));
    send(engine.acquire().into_future());
    send(db.one::<i32, _>(q()));
    send(q().gino().one::<i32>());
    send(q().gino().bind(&conn).status());
    send(db.transaction(async { Ok::<_, Error>(()) }).into_future());
    send(db.begin().into_future());
    send(conn.transaction(async { Ok::<_, Error>(1) }).into_future());
    send(conn.release());
    send(conn.scope(async {}));
    send(db.with_bind("postgres://localhost/x", |_| async { Ok::<_, Error>(()) }));
}

/// The same, for queries whose binds borrow (`.eq(&name)`, `.eq("x")`),
/// awaited in futures that must be `Send + 'static` as a spawned task or a
/// web handler's is. gino's futures hold such queries without naming a
/// lifetime-generic trait's projection, which rustc could not prove `Send`
/// ("implementation of `Send` is not general enough"); this fails to
/// compile if one does again.
#[allow(dead_code)]
fn futures_with_borrowing_binds_are_send(db: &'static gino::Gino) {
    use diesel::{ExpressionMethods, QueryDsl};
    fn spawned<F: std::future::Future + Send + 'static>(_: F) {}
    spawned(async move {
        let name = String::from("x");
        let filtered = || items::table.filter(items::name.eq(&name));
        let _ = db.all::<(i32, String), _>(filtered()).await;
        let _ = db.first::<(i32, String), _>(filtered()).await;
        let _ = db.one::<(i32, String), _>(filtered()).await;
        let _ = db.one_or_none::<(i32, String), _>(filtered()).await;
        let _ = db.first_or_404::<(i32, String), _>(filtered()).await;
        let _ = db.scalar::<i32, _>(filtered().select(items::id)).await;
        let _ = db.iterate::<(i32, String), _>(filtered()).await;
        let _ = db
            .status(diesel::update(filtered()).set(items::name.eq(&name)))
            .await;
        let _ = filtered().gino().all::<(i32, String)>().await;
        let _ = filtered().gino().first::<(i32, String)>().await;
        let _ = filtered()
            .gino()
            .load(gino::loader::map(|row: (i32, String)| row.0))
            .await;
        let _ = filtered()
            .gino()
            .load(gino::loader::map(|row: (i32, String)| row.0))
            .first()
            .await;
        let _ = filtered()
            .gino()
            .load(gino::loader::map(|row: (i32, String)| row.0))
            .one()
            .await;
        let engine = db.engine().unwrap();
        let _ = engine.all::<(i32, String), _>(filtered()).await;
        let conn = engine.acquire().await.unwrap();
        let _ = conn.one::<(i32, String), _>(filtered()).await;
        let _ = filtered().gino().bind(&conn).first::<(i32, String)>().await;
        let _ = db
            .transaction(async {
                db.all::<(i32, String), _>(items::table.filter(items::name.eq("y")))
                    .await
            })
            .await;
        let _ = db
            .status(
                gino::text("DELETE FROM items WHERE name = :name").bind::<Text, _>("name", &name),
            )
            .await;
        let _ = gino::loader::select_in(
            vec![1],
            |id: &i32| *id,
            |row: &(i32, String)| row.0,
            |ids| {
                items::table
                    .filter(items::id.eq_any(ids))
                    .filter(items::name.ne(&name))
                    .gino()
            },
        )
        .await;
    });
}

/// A spawned task runs a query that borrows its bind from the task.
#[tokio::test]
async fn queries_borrowing_their_binds_run_in_spawned_tasks() {
    use diesel::{ExpressionMethods, QueryDsl};
    let s = common::setup().await;
    with_items(&s.engine, 3).await;
    let engine = s.engine.clone();
    let found = tokio::spawn(async move {
        let name = String::from("item2");
        let by_name = items::table.filter(items::name.eq(&name));
        let all = engine.all::<(i32, String), _>(by_name).await?;
        let first = items::table
            .filter(items::name.ne("item1"))
            .order_by(items::id)
            .gino()
            .bind(&engine)
            .first::<(i32, String)>()
            .await?;
        let deleted = engine
            .status(
                gino::text("DELETE FROM items WHERE name = :name")
                    .bind::<Text, _>("name", name.as_str()),
            )
            .await?;
        Ok::<_, Error>((all, first, deleted.rows()))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(found.0, [(2, "item2".to_owned())]);
    assert_eq!(found.1, Some((2, "item2".to_owned())));
    assert_eq!(found.2, 1);
}

/// Statements of `diesel::select(now)` kept prepared on the connection, as
/// the server counts them (the counting statement itself is prepared while
/// it runs, so it is left out by its text).
async fn prepared_now_on(conn: &gino::Connection) -> i64 {
    conn.one(diesel::select(sql::<BigInt>(
        "count(*) FROM pg_prepared_statements WHERE statement ILIKE 'SELECT CURRENT_TIMESTAMP%'",
    )))
    .await
    .unwrap()
}

#[tokio::test]
async fn repeated_queries_reuse_prepared_statements_unless_the_cache_is_off() {
    for (cache, url_param) in [
        (true, "statement_cache=true"),
        (false, "statement_cache=false"),
    ] {
        let db = gino_testkit::TestDatabase::create().await;
        let engine = gino::create_engine(
            &common::url_with(&db, url_param),
            EngineOptions::new().max_size(1),
        )
        .await
        .unwrap();
        let conn = engine.acquire().await.unwrap();
        // A query of static shape, which diesel caches when allowed to.
        let q = || diesel::select(diesel::dsl::now);
        for _ in 0..3 {
            conn.one::<std::time::SystemTime, _>(q()).await.unwrap();
        }
        let kept = prepared_now_on(&conn).await;
        if cache {
            assert_eq!(kept, 1, "the repeated query is prepared once and kept");
        } else {
            assert_eq!(kept, 0, "nothing is kept prepared with the cache off");
        }
    }
}

#[tokio::test]
async fn a_prepared_query_runs_with_new_values_on_one_server_statement() {
    let s = common::setup_with(EngineOptions::new().max_size(1)).await;
    let conn = s.engine.acquire().await.unwrap();
    let by_name = conn
        .prepare(|name: String| diesel::select(sql::<Text>("'hello, ' || ").bind::<Text, _>(name)));
    for name in ["ann", "bob", "cid"] {
        let greeting: String = by_name.run(name.to_owned()).one().await.unwrap();
        assert_eq!(greeting, format!("hello, {name}"));
    }
    let statements: i64 = conn
        .one(diesel::select(sql::<BigInt>(
            "count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT ''hello, ''%'",
        )))
        .await
        .unwrap();
    assert_eq!(statements, 1, "three runs, one prepared statement");
}

#[tokio::test]
async fn first_asks_the_server_for_the_rows_it_reads_only() {
    for statement_cache in [true, false] {
        let s = common::setup_with(EngineOptions::new().statement_cache(statement_cache)).await;
        let e = &s.engine;
        // Row 3 divides by zero. `first` and `scalar` ask for one row and
        // `one_or_none` for two (the protocol's row limit, as asyncpg's
        // `fetchrow` under GINO's `first`), so the server never computes it.
        let failing = || diesel::select(sql::<Integer>("1/(3-g) FROM generate_series(1, 5) g"));
        assert_eq!(e.first::<i32, _>(failing()).await.unwrap(), Some(0));
        assert_eq!(e.scalar::<i32, _>(failing()).await.unwrap(), Some(0));
        let two = e.one_or_none::<i32, _>(failing()).await;
        assert!(matches!(two, Err(Error::MultipleResultsFound)), "{two:?}");
        let all = e.all::<i32, _>(failing()).await;
        assert_eq!(all.as_ref().err().and_then(Error::sqlstate), Some("22012"));

        // A sequence counts the rows computed: one per `first`, all for `all`.
        e.status(diesel::sql_query("CREATE SEQUENCE computed"))
            .await
            .unwrap();
        let counted = || {
            diesel::select(sql::<BigInt>(
                "nextval('computed') FROM generate_series(1, 1000)",
            ))
        };
        let last = || diesel::select(sql::<BigInt>("last_value FROM computed"));
        assert_eq!(e.first::<i64, _>(counted()).await.unwrap(), Some(1));
        assert_eq!(e.scalar::<i64, _>(last()).await.unwrap(), Some(1));
        assert_eq!(e.all::<i64, _>(counted()).await.unwrap().len(), 1000);
        assert_eq!(e.scalar::<i64, _>(last()).await.unwrap(), Some(1001));

        // In a transaction, again and again on one connection (a prepared
        // statement bound anew): the suspended statement leaves the
        // transaction as it was, and what follows reads everything.
        e.transaction(async {
            for run in 0..3 {
                assert_eq!(e.first::<i64, _>(counted()).await?, Some(1002 + run));
            }
            assert_eq!(
                e.all::<i32, _>(diesel::select(sql::<Integer>(
                    "g FROM generate_series(1, 5) g"
                )))
                .await?,
                [1, 2, 3, 4, 5]
            );
            assert_eq!(e.scalar::<i64, _>(last()).await?, Some(1004));
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        // A failing statement that armed a limit leaves none to the next.
        let broken = e
            .first::<i32, _>(diesel::select(sql::<Integer>("no_such_column")))
            .await;
        assert_eq!(
            broken.as_ref().err().and_then(Error::sqlstate),
            Some("42703")
        );
        assert_eq!(e.all::<i64, _>(counted()).await.unwrap().len(), 1000);

        // A statement that changes data runs whole, as PostgreSQL runs
        // those, whatever of its rows are read.
        with_items(e, 3).await;
        let renamed = diesel::update(items::table)
            .set(items::name.eq(items::name.concat("!")))
            .returning(items::id);
        assert!(e.first::<i32, _>(renamed).await.unwrap().is_some());
        let all_renamed = items::table.filter(items::name.like("%!")).count();
        assert_eq!(e.scalar::<i64, _>(all_renamed).await.unwrap(), Some(3));
        common::assert_pool_clean(e).await;
    }
}
