//! Server-side cursors: `iterate()` in transactions.

mod common;

use std::time::Duration;

use diesel::sql_types::{Integer, Text};
use futures_util::TryStreamExt;
use gino::prelude::*;
use gino::{Error, Gino};

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "numbers", db = CURSOR_DB)]
struct Number {
    #[gino(primary_key, autoincrement = false)]
    id: i32,
    label: String,
}

static CURSOR_DB: Gino = Gino::secondary();

use common::series;

#[tokio::test]
async fn next_many_and_forward_walk_the_rows_in_order() {
    let s = common::setup().await;
    let tx = s.engine.begin().await.unwrap();
    let mut cursor = s
        .engine
        .iterate::<i32, _>(series(250))
        .await
        .unwrap()
        .prefetch(7);
    assert_eq!(cursor.next().await.unwrap(), Some(1));
    assert_eq!(cursor.many(3).await.unwrap(), [2, 3, 4]);
    cursor.forward(5).await.unwrap(); // 5..=9, partly from the prefetched batch
    assert_eq!(cursor.next().await.unwrap(), Some(10));
    cursor.forward(200).await.unwrap(); // past what was prefetched
    assert_eq!(
        cursor.many(100).await.unwrap(),
        (211..=250).collect::<Vec<_>>()
    );
    assert_eq!(cursor.next().await.unwrap(), None);
    assert!(cursor.many(3).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn moving_past_the_end_ends_the_cursor_without_another_round_trip() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let mut cursor = conn.iterate::<i32, _>(series(10)).await.unwrap();
    cursor.forward(25).await.unwrap(); // MOVE 25 moves 10
    let before = conn.stats().statements;
    assert_eq!(cursor.next().await.unwrap(), None);
    assert!(cursor.many(5).await.unwrap().is_empty());
    assert_eq!(conn.stats().statements, before, "no FETCH after the end");
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}

#[tokio::test]
async fn counts_beyond_what_one_fetch_can_name_are_read_in_steps() {
    // PostgreSQL's FETCH and MOVE take a 32-bit count; larger ones used to
    // be sent as written: a syntax error, and the transaction aborted.
    let s = common::setup().await;
    let tx = s.engine.begin().await.unwrap();
    let mut cursor = s
        .engine
        .iterate::<i32, _>(series(10))
        .await
        .unwrap()
        .prefetch(usize::MAX);
    assert_eq!(cursor.next().await.unwrap(), Some(1));
    assert_eq!(
        cursor.many(usize::MAX).await.unwrap(),
        (2..=10).collect::<Vec<_>>()
    );
    let mut cursor = s.engine.iterate::<i32, _>(series(10)).await.unwrap();
    cursor.forward(usize::MAX).await.unwrap();
    assert_eq!(cursor.next().await.unwrap(), None);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn iterate_outside_a_transaction_is_refused() {
    let s = common::setup().await;
    let err = s.engine.iterate::<i32, _>(series(3)).await.unwrap_err();
    assert!(matches!(err, Error::TransactionMisuse(_)));
    assert!(err.to_string().contains("transaction"), "{err}");
    let conn = s.engine.acquire().await.unwrap();
    let err = conn.iterate::<i32, _>(series(3)).await.unwrap_err();
    assert!(matches!(err, Error::TransactionMisuse(_)), "{err}");
    // Through a loader too, and the connection stays usable.
    let loaded = series(3)
        .gino()
        .bind(&conn)
        .load(gino::loader::map(|n: i32| n))
        .iterate()
        .await;
    assert!(matches!(loaded, Err(Error::TransactionMisuse(_))));
    assert_eq!(conn.all::<i32, _>(series(3)).await.unwrap(), [1, 2, 3]);
}

#[tokio::test]
async fn models_stream_through_a_cursor_in_a_managed_transaction() {
    let s = common::setup().await;
    CURSOR_DB.set_bind(s.engine.clone()).await.unwrap();
    Number::create_table().await.unwrap();
    CURSOR_DB
        .status(
            gino::text("INSERT INTO numbers SELECT g, 'n' || g FROM generate_series(1, :n) g")
                .bind::<Integer, _>("n", 1000),
        )
        .await
        .unwrap();
    let (count, last) = CURSOR_DB
        .transaction(async {
            let cursor = Number::query()
                .filter(numbers::id.gt(10))
                .order_by(numbers::id)
                .gino()
                .bind(&CURSOR_DB)
                .iterate::<Number>()
                .await?;
            cursor
                .into_stream()
                .try_fold(
                    (0, None),
                    |(n, _), row| async move { Ok((n + 1, Some(row))) },
                )
                .await
        })
        .await
        .unwrap();
    assert_eq!(count, 990);
    // `next` of `StreamExt` needs no pinning by hand: the stream is Unpin,
    // and its future is Send (a task can hold it).
    let labels = tokio::spawn(async {
        use futures_util::StreamExt;
        let tx = CURSOR_DB.begin().await?;
        let cursor = Number::query()
            .filter(numbers::id.le(3))
            .order_by(numbers::id)
            .gino()
            .iterate::<Number>()
            .await?;
        let mut rows = cursor.into_stream();
        let mut labels = Vec::new();
        while let Some(row) = rows.next().await {
            labels.push(row?.label);
        }
        drop(rows);
        tx.commit().await?;
        Ok::<_, gino::Error>(labels)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(labels, ["n1", "n2", "n3"]);
    // GINO's test_tuple_loader_279: tuple rows stream as they load.
    let pairs: Vec<(Number, String)> = CURSOR_DB
        .transaction(async {
            let query = Number::query()
                .filter(numbers::id.le(2))
                .order_by(numbers::id)
                .select((Number::as_select(), numbers::label.concat("!")));
            let mut cursor = CURSOR_DB.iterate::<(Number, String), _>(query).await?;
            cursor.many(10).await
        })
        .await
        .unwrap();
    let first = Number {
        id: 1,
        label: "n1".into(),
    };
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0], (first, "n1!".into()));
    // ... and through a loader of each row (GINO's
    // `.gino.load((User, Team)).iterate()`).
    let loaded: Vec<(Number, String)> = CURSOR_DB
        .transaction(async {
            let mut rows = Number::query()
                .filter(numbers::id.le(3))
                .order_by(numbers::id)
                .select((Number::as_select(), numbers::label))
                .gino()
                .bind(&CURSOR_DB)
                .load((
                    gino::loader::partial::<Number, _>((numbers::id,)),
                    gino::loader::map(|label: String| label.to_uppercase()),
                ))
                .iterate()
                .await?;
            let first = rows.next().await?.expect("a first row");
            let rest = rows.many(10).await?;
            assert_eq!(rows.next().await?, None);
            Ok::<_, gino::Error>(std::iter::once(first).chain(rest).collect())
        })
        .await
        .unwrap();
    let third = Number {
        id: 3,
        label: String::new(),
    };
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[2], (third, "N3".into()));
    assert_eq!(
        last,
        Some(Number {
            id: 1000,
            label: "n1000".into()
        })
    );
    CURSOR_DB.pop_bind();
}

#[tokio::test]
async fn raw_sql_with_named_parameters_can_be_iterated() {
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = Text)]
        word: String,
    }
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let q = gino::text("SELECT 'w' || g AS word FROM generate_series(1, :n) g")
        .bind::<Integer, _>("n", 5);
    let mut cursor = conn.iterate::<Row, _>(q).await.unwrap();
    let words = cursor.many(10).await.unwrap();
    assert_eq!(words.len(), 5);
    assert_eq!(words[4], Row { word: "w5".into() });
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_cursor_dies_with_its_transaction() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let mut cursor = conn
        .iterate::<i32, _>(series(10))
        .await
        .unwrap()
        .prefetch(2);
    assert_eq!(cursor.next().await.unwrap(), Some(1));
    tx.commit().await.unwrap();
    // The prefetched row is still there; the server's cursor is gone.
    assert_eq!(cursor.next().await.unwrap(), Some(2));
    let err = cursor.next().await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("34000"), "{err}"); // invalid_cursor_name
    assert_eq!(conn.one::<i32, _>(series(1)).await.unwrap(), 1);
}

diesel::table! {
    made (id) {
        id -> Integer,
    }
}

#[tokio::test]
async fn statements_that_are_not_queries_run_whole_and_are_read_from_memory() {
    // PostgreSQL declares cursors for queries only: `DECLARE ... FOR
    // INSERT` used to fail with 42601 and abort the transaction.
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    conn.status(gino::text("CREATE TABLE made (id int)"))
        .await
        .unwrap();
    let tx = conn.begin().await.unwrap();
    let insert = diesel::insert_into(made::table)
        .values((1..=7).map(|id| made::id.eq(id)).collect::<Vec<_>>())
        .returning(made::id);
    let before = conn.stats().statements;
    let mut cursor = conn.iterate::<i32, _>(insert).await.unwrap().prefetch(2);
    assert_eq!(cursor.next().await.unwrap(), Some(1));
    cursor.forward(2).await.unwrap();
    assert_eq!(cursor.many(3).await.unwrap(), [4, 5, 6]);
    assert_eq!(cursor.next().await.unwrap(), Some(7));
    assert_eq!(cursor.next().await.unwrap(), None);
    assert_eq!(
        conn.stats().statements,
        before + 1,
        "the INSERT ran once, whole, and the rows came from memory"
    );

    // The transaction is intact: a data-changing WITH runs whole too, and
    // a table alone is a query with a cursor of its own.
    let gone = diesel::sql_query(
        "WITH gone AS (DELETE FROM made WHERE id > 5 RETURNING id) SELECT id FROM gone ORDER BY id",
    );
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Id {
        #[diesel(sql_type = Integer)]
        id: i32,
    }
    let mut cursor = conn.iterate::<Id, _>(gone).await.unwrap();
    assert_eq!(cursor.many(5).await.unwrap(), [Id { id: 6 }, Id { id: 7 }]);
    let mut cursor = conn.iterate::<(i32,), _>(made::table).await.unwrap();
    assert_eq!(
        cursor.many(10).await.unwrap(),
        [(1,), (2,), (3,), (4,), (5,)]
    );
    tx.commit().await.unwrap();
    assert_eq!(
        conn.scalar::<i64, _>(made::table.count()).await.unwrap(),
        Some(5)
    );
}

#[tokio::test]
async fn write_words_inside_literals_and_comments_still_get_a_server_cursor() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let q = gino::text(
        r"WITH w AS (SELECT $$insert$$ || E'\'delete' /* update */ AS w)
          SELECT w || g FROM w, generate_series(1, :n) g -- into",
    )
    .bind::<Integer, _>("n", 3)
    .columns::<Text>();
    let mut cursor = conn.iterate::<String, _>(q).await.unwrap();
    let open = gino::text("SELECT count(*) FROM pg_cursors WHERE statement ILIKE 'DECLARE%'")
        .columns::<diesel::sql_types::BigInt>();
    assert_eq!(
        conn.scalar::<i64, _>(open).await.unwrap(),
        Some(1),
        "a query is read through a declared cursor, not whole"
    );
    assert_eq!(
        cursor.many(5).await.unwrap(),
        ["insert'delete1", "insert'delete2", "insert'delete3"]
    );
    tx.rollback().await.unwrap();
    common::assert_outside_transaction(&conn).await;
}

#[tokio::test]
async fn a_statement_without_rows_gives_a_cursor_at_its_end() {
    // GINO's test_asyncpg_0120_iterate: a statement that returns no rows
    // gives a cursor whose `next()` is None.
    #[derive(diesel::QueryableByName, Debug)]
    struct Nothing {
        #[diesel(sql_type = Integer)]
        #[allow(dead_code)]
        never: i32,
    }
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let mut cursor = conn
        .iterate::<Nothing, _>(gino::text("SET LOCAL work_mem = '8MB'"))
        .await
        .unwrap();
    assert!(cursor.next().await.unwrap().is_none());
    assert!(cursor.many(3).await.unwrap().is_empty());
    // A query that makes a table returns no rows either.
    let copy = gino::text("SELECT 5 AS never INTO TEMP copied");
    let mut cursor = conn.iterate::<Nothing, _>(copy).await.unwrap();
    assert!(cursor.next().await.unwrap().is_none());
    let copied = gino::text("SELECT never FROM copied").columns::<Integer>();
    assert_eq!(conn.scalar::<i32, _>(copied).await.unwrap(), Some(5));
    tx.commit().await.unwrap();

    // A ROLLBACK sent as SQL under gino's transaction is reported as misuse,
    // as for every other way of running it; once the level is ended the
    // connection is usable and outside any transaction.
    let tx = conn.begin().await.unwrap();
    let err = conn
        .iterate::<Nothing, _>(gino::text("rollback"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransactionMisuse(_)), "{err}");
    assert!(matches!(
        tx.commit().await,
        Err(Error::TransactionMisuse(_))
    ));
    assert_eq!(conn.one::<i32, _>(series(1)).await.unwrap(), 1);
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();
}

#[tokio::test]
async fn a_statement_run_whole_that_fails_or_is_dropped_leaves_nothing_open() {
    let s = common::setup().await;
    let e = &s.engine;
    e.status(gino::text("CREATE TABLE made (id int PRIMARY KEY)"))
        .await
        .unwrap();
    let insert = |id: i32| {
        diesel::insert_into(made::table)
            .values(made::id.eq(id))
            .returning(made::id)
    };

    // A failure is the database's typed error; the transaction rolls back.
    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    assert_eq!(
        conn.iterate::<i32, _>(insert(1))
            .await
            .unwrap()
            .many(5)
            .await
            .unwrap(),
        [1]
    );
    let err = conn.iterate::<i32, _>(insert(1)).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("23505"), "{err}");
    tx.rollback().await.unwrap();
    common::assert_outside_transaction(&conn).await;
    conn.release().await.unwrap();

    // Dropped while the server runs it: the connection does not go back
    // to the pool inside the transaction, and nothing of it is kept.
    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let slow = diesel::sql_query("INSERT INTO made SELECT 2 FROM pg_sleep(5) RETURNING id");
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = Integer)]
        #[allow(dead_code)]
        id: i32,
    }
    let dropped =
        tokio::time::timeout(Duration::from_millis(200), conn.iterate::<Id, _>(slow)).await;
    assert!(dropped.is_err(), "the INSERT finished within 200 ms");
    drop(tx);
    drop(conn);
    common::assert_pool_clean(e).await;
    let count = made::table.count();
    assert_eq!(e.scalar::<i64, _>(count).await.unwrap(), Some(0));
}

/// A move of [`any_walk_reads_the_rows_a_position_says`].
#[derive(Debug, Clone, Copy)]
enum Walk {
    Next,
    Many(usize),
    Forward(usize),
}

/// Whatever the prefetch and the walk (`next`, `many` and `forward` in any
/// order and size, past the end too), a cursor reads the rows a position
/// moving over the result says, and its statements end with the
/// transaction.
#[test]
fn any_walk_reads_the_rows_a_position_says() {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(common::setup());
    let engine = &s.engine;
    let walk = prop_oneof![
        2 => Just(Walk::Next),
        1 => (0..40usize).prop_map(Walk::Many),
        1 => (0..40usize).prop_map(Walk::Forward),
    ];
    let case = (0..120i32, 1..30usize, prop::collection::vec(walk, 1..16));
    common::check_cases(&rt, 64, &case, |(rows, prefetch, walks)| async move {
        let conn = engine.acquire().await.unwrap();
        let tx = conn.begin().await.unwrap();
        let mut cursor = conn
            .iterate::<i32, _>(series(rows))
            .await
            .unwrap()
            .prefetch(prefetch);
        // The next row's number; past `rows` at the end.
        let mut at = 1;
        let upto = |at: i32, n: usize| (at..=rows).take(n).collect::<Vec<_>>();
        for walk in walks {
            match walk {
                Walk::Next => {
                    let row = cursor.next().await.unwrap();
                    prop_assert_eq!(row, upto(at, 1).first().copied(), "{:?}", walk);
                    at += 1;
                }
                Walk::Many(n) => {
                    prop_assert_eq!(cursor.many(n).await.unwrap(), upto(at, n));
                    at += n as i32;
                }
                Walk::Forward(n) => {
                    cursor.forward(n).await.unwrap();
                    at += n as i32;
                }
            }
        }
        prop_assert_eq!(cursor.many(200).await.unwrap(), upto(at, 200), "the rest");
        tx.commit().await.unwrap();
        conn.release().await.unwrap();
        Ok::<_, TestCaseError>(())
    });
    rt.block_on(s.engine.close());
}

/// A call dropped while its `FETCH` or `MOVE` runs (a `timeout` around
/// `next()`): the server moves the cursor on regardless, so the cursor
/// refuses to go on rather than skip the rows that call read; rows
/// `many()` had gathered before are not lost with it.
#[tokio::test]
async fn a_read_dropped_half_way_stops_the_cursor_instead_of_skipping_rows() {
    let s = common::setup().await;
    // 20 ms a row: a batch of 10 takes 200 ms.
    let slow = || {
        diesel::select(diesel::dsl::sql::<Integer>(
            "n FROM generate_series(1, 100) n, LATERAL (SELECT pg_sleep(0.02 * sign(n))) s",
        ))
    };
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let short = Duration::from_millis(60);
    let mut cursor = conn.iterate::<i32, _>(slow()).await.unwrap().prefetch(10);
    assert!(tokio::time::timeout(short, cursor.next()).await.is_err());
    assert!(matches!(cursor.next().await, Err(Error::CursorInterrupted)));
    assert!(matches!(
        cursor.many(3).await,
        Err(Error::CursorInterrupted)
    ));
    assert!(matches!(
        cursor.forward(3).await,
        Err(Error::CursorInterrupted)
    ));

    let mut cursor = conn.iterate::<i32, _>(slow()).await.unwrap().prefetch(10);
    assert_eq!(cursor.next().await.unwrap(), Some(1)); // 2..=10 buffered
    assert!(tokio::time::timeout(short, cursor.many(15)).await.is_err());
    let kept = cursor.many(9).await.unwrap();
    assert_eq!(kept, (2..=10).collect::<Vec<_>>());
    assert!(matches!(cursor.next().await, Err(Error::CursorInterrupted)));

    let mut cursor = conn.iterate::<i32, _>(slow()).await.unwrap();
    assert!(
        tokio::time::timeout(short, cursor.forward(50))
            .await
            .is_err()
    );
    assert!(matches!(cursor.next().await, Err(Error::CursorInterrupted)));

    // The transaction goes on; a new cursor reads from the start.
    let mut cursor = conn.iterate::<i32, _>(series(3)).await.unwrap();
    assert_eq!(cursor.many(5).await.unwrap(), [1, 2, 3]);
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}

/// A cursor of a managed block reads as that block's statements do: a
/// block nested beside it (a future joined with the reading one) is waited
/// out, not read inside (its failed savepoint would fail the read and
/// leave the cursor unusable).
#[tokio::test]
async fn a_cursor_read_waits_out_a_block_joined_beside_it() {
    let s = common::setup().await;
    let e = &s.engine;
    e.transaction(async {
        let mut cursor = e.iterate::<i32, _>(series(10)).await?;
        let (nested, first) = tokio::join!(
            e.transaction(async {
                let failed = e.status(diesel::sql_query("SELECT 1/0")).await;
                assert!(failed.is_err(), "{failed:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, Error>(())
            }),
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                cursor.next().await
            }
        );
        assert!(
            matches!(nested, Err(Error::TransactionAborted)),
            "{nested:?}"
        );
        assert_eq!(first?, Some(1));
        assert_eq!(cursor.many(2).await?, [2, 3]);
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    common::assert_pool_clean(e).await;
}

/// A cursor read inside a block nested in its own (or in a block around
/// the manual transaction it was opened in) reads there: the block waits
/// for the read, so the read must not wait for the block.
#[tokio::test]
async fn a_cursor_read_inside_a_nested_block_reads_there() {
    let s = common::setup().await;
    let e = &s.engine;
    async fn within<F: std::future::IntoFuture>(what: F) -> F::Output {
        let limit = Duration::from_secs(5);
        tokio::time::timeout(limit, what.into_future())
            .await
            .expect("the read waited for the block waiting for it")
    }
    // Opened in a block, read in a block nested in it.
    let read = within(e.transaction(async {
        let mut cursor = e.iterate::<i32, _>(series(10)).await?;
        e.transaction(async { cursor.next().await }).await
    }));
    assert_eq!(read.await.unwrap(), Some(1));
    // Opened in a nested block, read in the block around it once the
    // nested one has ended.
    let read = within(e.transaction(async {
        let mut cursor = e.transaction(e.iterate::<i32, _>(series(10))).await?;
        cursor.next().await
    }));
    assert_eq!(read.await.unwrap(), Some(1));
    // Opened in a manual transaction, read in a block inside it.
    let conn = e.acquire().reuse(true).await.unwrap();
    let tx = conn.begin().await.unwrap();
    let mut cursor = e.iterate::<i32, _>(series(10)).await.unwrap();
    let read = within(e.transaction(async { cursor.next().await }));
    assert_eq!(read.await.unwrap(), Some(1));
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
    common::assert_pool_clean(e).await;
}

/// A step that never reached the server (it timed out waiting for its
/// busy connection, or was dropped while it waited) has not moved the
/// cursor: the cursor reads on from where it was, not interrupted.
#[tokio::test]
async fn a_step_that_never_left_for_the_server_keeps_the_cursor_usable() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let mut cursor = series(5)
        .gino()
        .bind(&conn)
        .timeout(Duration::from_millis(100))
        .iterate::<i32>()
        .await
        .unwrap()
        .prefetch(1);
    assert_eq!(cursor.next().await.unwrap(), Some(1));
    let busy = || conn.status(diesel::sql_query("SELECT pg_sleep(0.5)"));
    let (slept, timed_out) = tokio::join!(busy(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cursor.next().await
    });
    slept.unwrap();
    assert!(
        matches!(timed_out, Err(Error::QueryTimeout(_))),
        "{timed_out:?}"
    );
    assert_eq!(cursor.next().await.unwrap(), Some(2));
    let (slept, dropped) = tokio::join!(busy(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::timeout(Duration::from_millis(20), cursor.many(2)).await
    });
    slept.unwrap();
    assert!(dropped.is_err(), "the read waited for the connection");
    assert_eq!(cursor.many(5).await.unwrap(), [3, 4, 5]);
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}

/// `iterate()`'s timeout covers the wait for its connection, as every
/// statement's does.
#[tokio::test]
async fn iterate_times_out_waiting_for_a_busy_connection() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    let (slept, cursor) = tokio::join!(
        conn.status(diesel::sql_query("SELECT pg_sleep(1)")),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            series(3)
                .gino()
                .bind(&conn)
                .timeout(Duration::from_millis(100))
                .iterate::<i32>()
                .await
        }
    );
    slept.unwrap();
    assert!(
        matches!(cursor, Err(Error::QueryTimeout(_))),
        "{:?}",
        cursor.map(|_| ())
    );
    tx.commit().await.unwrap();
    conn.release().await.unwrap();
}
