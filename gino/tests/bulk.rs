//! Bulk inserts: many rows in few statements, atomically.

mod common;

use gino::prelude::*;
use gino::{Error, Gino};

static DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "events", db = DB)]
pub struct Event {
    #[gino(primary_key)]
    pub id: i64,
    #[gino(unique)]
    pub code: String,
    #[gino(check = "weight >= 0")]
    pub weight: i32,
}

/// Only database-assigned columns.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "tickets", db = DB)]
pub struct Ticket {
    #[gino(primary_key)]
    pub id: i32,
}

fn events(range: std::ops::Range<i32>) -> impl Iterator<Item = Event> {
    range.map(|i| Event {
        id: 0,
        code: format!("e{i}"),
        weight: i % 7,
    })
}

async fn count() -> i64 {
    events::table.count().gino().bind(&DB).one().await.unwrap()
}

// One test: the cases share the `DB` static.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_many_splits_batches_and_is_atomic() {
    let s = common::setup().await;
    DB.set_bind(s.engine.clone()).await.unwrap();
    DB.create_all().await.unwrap();

    // 70,000 rows x 2 parameters cross the 65,535 bind-parameter limit.
    let inserted = Event::insert_many(events(0..70_000)).await.unwrap();
    assert_eq!(inserted, 70_000);
    assert_eq!(count().await, 70_000);

    // Returning the stored rows, with database-assigned ids, in order.
    let stored = Event::insert_many(events(70_000..70_003))
        .returning()
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>(),
        [70_001, 70_002, 70_003]
    );
    assert_eq!(stored[2].code, "e70002");

    // A failing row aborts the whole batch and is named with its constraint.
    let mut batch: Vec<Event> = events(80_000..120_000).collect();
    batch[33_333].code = "e5".into(); // duplicates a stored row
    let err = Event::insert_many(batch).await.unwrap_err();
    let Error::BatchRow { index, source } = &err else {
        panic!("expected BatchRow, got {err:?}");
    };
    assert_eq!(*index, 33_333);
    let Error::Database(db) = source.as_ref() else {
        panic!("expected a database error, got {source:?}");
    };
    assert_eq!(db.constraint(), Some("events_code_key"));
    assert!(err.to_string().contains("row 33333"), "{err}");
    assert_eq!(
        count().await,
        70_003,
        "nothing of the failed batch is stored"
    );

    // A row conflicting with an earlier row of the same batch, past the
    // first statement, and a check violation.
    let mut batch: Vec<Event> = events(200_000..240_000).collect();
    batch[39_000].code = batch[10].code.clone();
    let err = Event::insert_many(batch).await.unwrap_err();
    assert!(
        matches!(err, Error::BatchRow { index: 39_000, .. }),
        "{err}"
    );
    let mut batch: Vec<Event> = events(300_000..300_010).collect();
    batch[0].weight = -1;
    let err = Event::insert_many(batch).returning().await.unwrap_err();
    assert!(
        matches!(&err, Error::BatchRow { index: 0, source } if source.sqlstate() == Some("23514")),
        "{err}"
    );
    assert_eq!(count().await, 70_003);

    // Inside a transaction the batch is part of it.
    let tx = DB.begin().await.unwrap();
    Event::insert_many(events(400_000..400_010))
        .bind(&tx)
        .await
        .unwrap();
    assert_eq!(count().await, 70_013);
    // A failing batch inside it names its row and leaves the transaction
    // usable: the batch ran in a savepoint.
    let mut bad: Vec<Event> = events(500_000..500_005).collect();
    bad[3].weight = -1;
    let err = Event::insert_many(bad).bind(&tx).await.unwrap_err();
    assert!(matches!(err, Error::BatchRow { index: 3, .. }), "{err}");
    assert_eq!(count().await, 70_013);
    tx.rollback().await.unwrap();
    assert_eq!(count().await, 70_003);

    // Models with only database-assigned columns, and empty batches.
    assert_eq!(
        Ticket::insert_many((0..3).map(|_| Ticket { id: 0 }))
            .await
            .unwrap(),
        3
    );
    assert_eq!(Event::insert_many(Vec::new()).await.unwrap(), 0);
    DB.pop_bind();
}

/// What `compile()` shows is what the insert runs: the same statements,
/// split at the same rows.
#[test]
fn compile_shows_the_statements_insert_many_would_run() {
    let batch = Event::insert_many(events(0..70_000));
    let statements = batch.compile().unwrap();
    let per_statement = 65_535 / 2;
    assert_eq!(statements.len(), 3, "70,000 rows x 2 parameters");
    // Counting inserts send a column per parameter, as an array.
    for statement in &statements {
        assert_eq!(
            statement.sql(),
            "INSERT INTO \"events\" (\"code\", \"weight\") SELECT * FROM UNNEST($1, $2)"
        );
        assert_eq!(statement.binds().len(), 2);
    }
    // An array bind renders one element per line; compacted here.
    let compact = |bind: &str| bind.split_whitespace().collect::<String>();
    let first = &statements[0];
    assert!(
        compact(&first.binds()[0]).starts_with("[\"e0\",\"e1\","),
        "{}",
        &first.binds()[0][..20]
    );
    let last = compact(&statements[2].binds()[0]);
    assert!(
        last.ends_with("\"e69999\",]"),
        "{}",
        &last[last.len() - 20..]
    );
    assert_eq!(
        last.matches("\"e").count(),
        70_000 - 2 * per_statement,
        "the chunks split at the same rows as before"
    );

    let returning = Event::insert_many(events(0..2))
        .returning()
        .compile()
        .unwrap();
    assert_eq!(
        returning[0].sql(),
        "INSERT INTO \"events\" (\"code\", \"weight\") VALUES ($1, $2), ($3, $4) RETURNING \
         \"events\".\"id\", \"events\".\"code\", \"events\".\"weight\""
    );

    // Rows with only database-assigned columns: a DEFAULT VALUES each.
    let tickets = Ticket::insert_many([Ticket { id: 0 }, Ticket { id: 0 }])
        .compile()
        .unwrap();
    assert_eq!(
        tickets.iter().map(|c| c.sql()).collect::<Vec<_>>(),
        ["INSERT INTO \"tickets\" DEFAULT VALUES"; 2]
    );
    assert!(Ticket::insert_many([]).compile().unwrap().is_empty());

    // A batch holding keys sends the key column too, DEFAULT where a row
    // has none, and splits at the rows its three parameters allow.
    let keyed = Event::insert_many(events(0..40_000).map(|mut e| {
        e.id = if e.code == "e1" { 0 } else { 7 };
        e
    }))
    .compile()
    .unwrap();
    assert_eq!(keyed.len(), 2, "40,000 rows x 3 parameters");
    assert!(
        keyed[0]
            .sql()
            .starts_with("INSERT INTO \"events\" (\"id\", \"code\", \"weight\") VALUES ($1, $2, $3), (DEFAULT, $4, $5), ($6, $7, $8)"),
        "{}",
        &keyed[0].sql()[..120]
    );
    assert_eq!(keyed[0].binds().len(), 3 * (65_535 / 3) - 1);
    let tickets = Ticket::insert_many([Ticket { id: 5 }, Ticket { id: 0 }])
        .compile()
        .unwrap();
    assert_eq!(
        tickets.iter().map(|c| c.sql()).collect::<Vec<_>>(),
        ["INSERT INTO \"tickets\" (\"id\") VALUES ($1), (DEFAULT)"]
    );
}
