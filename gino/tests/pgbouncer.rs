//! Through PgBouncer in transaction mode (Debian's 1.18, a pool of 2
//! server connections), with the statement cache off: every statement goes
//! unnamed in the round trip that runs it, so none lands on a server that
//! never prepared it.
//!
//! Skipped, saying so, where PgBouncer is not installed; `.ci/run`
//! installs it and sets `GINO_REQUIRE_PGBOUNCER=1`, which turns the skip
//! into a failure.

use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::Integer;
use gino::prelude::*;
use gino::{Engine, EngineOptions, Error, Gino, create_engine};
use gino_testkit::{PgBouncer, TestDatabase};

static DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "items", db = DB)]
pub struct Item {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(unique)]
    pub name: String,
    pub n: i32,
}

/// PgBouncer in front of `database`'s server, or `None` (with a note) when
/// it is not installed and not required.
fn bouncer(database: &TestDatabase) -> Option<PgBouncer> {
    if std::env::var_os("GINO_REQUIRE_PGBOUNCER").is_some() {
        return Some(PgBouncer::required_in_front_of(database.url(), 2).unwrap());
    }
    let bouncer = PgBouncer::in_front_of(database.url(), 2).unwrap();
    if bouncer.is_none() {
        eprintln!("skipped: PgBouncer is not installed (apt-get install pgbouncer)");
    }
    bouncer
}

async fn engine_through(bouncer: &PgBouncer, database: &TestDatabase) -> Engine {
    create_engine(
        &bouncer.url_for(database.name()),
        EngineOptions::new().statement_cache(false).max_size(8),
    )
    .await
    .unwrap()
}

/// `SELECT $1 + 1`, a statement with a parameter.
async fn plus_one(engine: &Engine, n: i32) -> gino::Result<i32> {
    engine
        .one(diesel::select(
            sql::<Integer>("").bind::<Integer, _>(n).sql(" + 1"),
        ))
        .await
}

// One test: the cases share the `DB` static.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_works_with_the_statement_cache_off() {
    let database = TestDatabase::create().await;
    let Some(bouncer) = bouncer(&database) else {
        return;
    };
    let engine = engine_through(&bouncer, &database).await;
    DB.set_bind(engine.clone()).await.unwrap();
    DB.create_all().await.unwrap();

    // The reproduction: 8 tasks × 50 parameterised selects over
    // 2 server connections.
    let tasks = (0..8).map(|t| {
        let engine = engine.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                assert_eq!(
                    plus_one(&engine, t * 100 + i).await.unwrap(),
                    t * 100 + i + 1
                );
            }
        })
    });
    for task in futures_util::future::join_all(tasks).await {
        task.unwrap();
    }

    // Models, concurrently: create, get, update, delete.
    let tasks = (0..8).map(|t| {
        tokio::spawn(async move {
            for i in 0..10 {
                let mut item = Item::create().name(format!("t{t}-{i}")).n(i).await.unwrap();
                item.update().n(i * 10).apply().await.unwrap();
                let got = Item::get(item.id).await.unwrap().unwrap();
                assert_eq!(got, item);
                if i % 2 == 0 {
                    item.delete().await.unwrap();
                }
            }
        })
    });
    for task in futures_util::future::join_all(tasks).await {
        task.unwrap();
    }
    let count: i64 = items::table.count().gino().one().await.unwrap();
    assert_eq!(count, 40);

    // Transactions and savepoints: what is rolled back is gone, the rest
    // commits.
    DB.transaction_with(|_tx| async {
        Item::create().name("kept").n(1).await?;
        let inner = DB
            .transaction_with(|_tx| async {
                Item::create().name("dropped").n(2).await?;
                Err::<(), _>(Error::NoSuchRow)
            })
            .await;
        assert!(matches!(inner, Err(Error::NoSuchRow)));
        // A cursor in the same transaction, fetched in batches.
        let mut cursor = Item::query()
            .order_by(items::id)
            .gino()
            .iterate::<Item>()
            .await?
            .prefetch(7);
        let mut seen = 0;
        while cursor.next().await?.is_some() {
            seen += 1;
        }
        assert_eq!(seen, 41);
        Ok(())
    })
    .await
    .unwrap();
    let names: Vec<String> = Item::select(items::name)
        .filter(items::name.eq_any(["kept", "dropped"]))
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(names, ["kept"]);

    // insert_many, and a failing batch that names its row and saves none.
    let rows = (0..1000).map(|i| Item {
        id: 0,
        name: format!("bulk{i}"),
        n: i,
    });
    assert_eq!(Item::insert_many(rows).await.unwrap(), 1000);
    let bad = (0..3).map(|i| Item {
        id: 0,
        name: if i == 2 {
            "kept".into()
        } else {
            format!("bad{i}")
        },
        n: i,
    });
    let err = Item::insert_many(bad).await.unwrap_err();
    assert!(matches!(err, Error::BatchRow { index: 2, .. }), "{err:?}");
    let bad_rows: i64 = items::table
        .filter(items::name.like("bad%"))
        .count()
        .gino()
        .one()
        .await
        .unwrap();
    assert_eq!(bad_rows, 0);

    // A timeout is a bound even where PgBouncer drops the cancel, and the
    // engine goes on working.
    let started = Instant::now();
    let timed_out = diesel::sql_query("SELECT pg_sleep(5)")
        .gino()
        .bind(&engine)
        .timeout(Duration::from_millis(200))
        .status()
        .await;
    assert!(
        matches!(timed_out, Err(Error::QueryTimeout(_))),
        "{timed_out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(plus_one(&engine, 41).await.unwrap(), 42);

    DB.pop_bind().unwrap().close().await;
}
