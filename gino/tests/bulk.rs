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

static TRIGGER_DB: Gino = Gino::secondary();

/// Rows a trigger refuses by their name: `always:<SQLSTATE>` every time,
/// `once:<SQLSTATE>` only the first time any row asks (a sequence, which
/// no rollback resets, counts).
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "jobs", db = TRIGGER_DB)]
pub struct Job {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
}

const REFUSING_TRIGGER: [&str; 3] = [
    "CREATE SEQUENCE calls",
    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.name LIKE 'always:%' THEN
         RAISE EXCEPTION 'refused' USING ERRCODE = substr(NEW.name, 8);
       ELSIF NEW.name LIKE 'once:%' THEN
         IF nextval('calls') = 1 THEN
           RAISE EXCEPTION 'try again' USING ERRCODE = substr(NEW.name, 6);
         END IF;
       END IF;
       RETURN NEW;
     END $$",
    "CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse()",
];

/// Ten jobs, the one at `at` named `name`.
fn jobs_with(at: usize, name: &str) -> Vec<Job> {
    (0..10)
        .map(|i| Job {
            id: 0,
            name: if i == at {
                name.to_owned()
            } else {
                format!("job{i}")
            },
        })
        .collect()
}

/// A batch that fails for a reason no row's values give (a serialization
/// failure, a deadlock), or that no row fails again when tried alone, is
/// not pinned on a row: its error comes as it was, retryable when it is;
/// a row that fails every time is named, its SQLSTATE seen through
/// `BatchRow`. Nothing of a failed batch is stored.
#[tokio::test]
async fn a_failure_no_row_causes_is_not_pinned_on_one() {
    let s = common::setup().await;
    TRIGGER_DB.set_bind(s.engine.clone()).await.unwrap();
    TRIGGER_DB.create_all().await.unwrap();
    for sql in REFUSING_TRIGGER {
        TRIGGER_DB.status(diesel::sql_query(sql)).await.unwrap();
    }
    let stored = || async {
        jobs::table
            .count()
            .gino()
            .bind(&TRIGGER_DB)
            .one::<i64>()
            .await
            .unwrap()
    };

    for (name, returning) in [
        ("once:40001", false),
        ("once:40001", true),
        ("always:40P01", false),
        ("once:23514", false),
        ("once:23514", true),
    ] {
        TRIGGER_DB
            .status(diesel::sql_query("SELECT setval('calls', 1, false)"))
            .await
            .unwrap();
        let batch = jobs_with(6, name);
        let err = if returning {
            Job::insert_many(batch)
                .returning()
                .await
                .map(|_| ())
                .unwrap_err()
        } else {
            Job::insert_many(batch).await.map(|_| ()).unwrap_err()
        };
        let code = &name[name.find(':').unwrap() + 1..];
        assert!(matches!(err, Error::Database(_)), "{name}: {err:?}");
        assert_eq!(err.sqlstate(), Some(code), "{name}");
        assert_eq!(err.is_retryable(), code.starts_with("40"), "{name}");
        assert_eq!(stored().await, 0, "{name}");
    }

    let err = Job::insert_many(jobs_with(4, "always:P0001"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BatchRow { index: 4, .. }), "{err:?}");
    assert_eq!(err.sqlstate(), Some("P0001"));
    assert_eq!(stored().await, 0);

    // Inside a transaction too, and the transaction goes on.
    TRIGGER_DB
        .transaction(async {
            let err = Job::insert_many(jobs_with(2, "always:40P01"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Database(_)), "{err:?}");
            Job::insert_many(jobs_with(99, "")).await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(stored().await, 10);
}

/// The model of [`any_batch_is_stored_whole_or_names_its_first_failing_row`],
/// on a database of its own so that the two tests do not share binds.
static PROPERTY_DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "codes", db = PROPERTY_DB)]
pub struct Code {
    #[gino(primary_key)]
    pub id: i64,
    #[gino(unique)]
    pub code: String,
    #[gino(check = "weight >= 0")]
    pub weight: i32,
    pub label: Option<String>,
}

/// How a batch is sent.
#[derive(Debug, Clone, Copy)]
enum Sending {
    Counting,
    Returning,
    InTransaction,
}

/// Rows that may break the unique code (against the stored rows or an
/// earlier row of the batch), the check, the primary key (explicit ids),
/// or UTF-8 (a NUL, which PostgreSQL's text refuses).
fn code_rows(len: std::ops::Range<usize>) -> impl proptest::strategy::Strategy<Value = Vec<Code>> {
    use proptest::prelude::*;
    let id = prop_oneof![4 => Just(0i64), 1 => 1_000_000..1_000_004i64];
    let code = prop_oneof![
        20 => (0..24u8).prop_map(|n| format!("c{n}")),
        1 => Just("nul\0".to_owned()),
    ];
    let label = prop_oneof![
        3 => Just(None),
        3 => "[a-zé ]{0,6}".prop_map(Some),
        1 => Just(Some("a\0b".to_owned())),
    ];
    let row = (id, code, prop_oneof![9 => 0..5i32, 1 => Just(-1)], label).prop_map(
        |(id, code, weight, label)| Code {
            id,
            code,
            weight,
            label,
        },
    );
    prop::collection::vec(row, len)
}

/// The SQLSTATEs `row` fails with after `stored`, none if it is stored.
fn faults(row: &Code, stored: &[Code]) -> Vec<&'static str> {
    let mut codes = Vec::new();
    if row.code.contains('\0') || row.label.as_deref().is_some_and(|l| l.contains('\0')) {
        codes.push("22021");
    }
    if row.weight < 0 {
        codes.push("23514");
    }
    let taken = |other: &Code| other.code == row.code || (row.id != 0 && other.id == row.id);
    if stored.iter().any(taken) {
        codes.push("23505");
    }
    codes
}

async fn stored_codes() -> Vec<Code> {
    Code::query()
        .order_by(codes::id)
        .gino()
        .bind(&PROPERTY_DB)
        .all()
        .await
        .unwrap()
}

/// Whatever the rows, a batch is stored whole, or it fails naming its
/// first row that fails after the rows before it, with that row's error,
/// and nothing of it is stored; inside a transaction, the transaction goes
/// on. Against a model of the constraints, for counting, returning and
/// transactional inserts.
#[test]
fn any_batch_is_stored_whole_or_names_its_first_failing_row() {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(async {
        let s = common::setup().await;
        PROPERTY_DB.set_bind(s.engine.clone()).await.unwrap();
        PROPERTY_DB.create_all().await.unwrap();
        s
    });
    let send = prop_oneof![
        Just(Sending::Counting),
        Just(Sending::Returning),
        Just(Sending::InTransaction)
    ];
    let case = (code_rows(0..4), code_rows(1..40), send);
    common::check_cases(&rt, 48, &case, |(before, batch, send)| async move {
        PROPERTY_DB
            .status(diesel::sql_query("TRUNCATE codes"))
            .await
            .unwrap();
        // The rows stored first: those of `before` that store.
        let mut stored: Vec<Code> = Vec::new();
        for row in before {
            if faults(&row, &stored).is_empty() {
                stored.extend(Code::insert_many([row]).returning().await.unwrap());
            }
        }
        let mut expected = stored.clone();
        let first_failing = batch.iter().enumerate().find_map(|(at, row)| {
            let codes = faults(row, &expected);
            if codes.is_empty() {
                expected.push(row.clone());
                return None;
            }
            Some((at, codes))
        });

        let result: gino::Result<Option<Vec<Code>>> = match send {
            Sending::Counting => Code::insert_many(batch.clone()).await.map(|n| {
                assert_eq!(n, batch.len() as u64);
                None
            }),
            Sending::Returning => Code::insert_many(batch.clone()).returning().await.map(Some),
            Sending::InTransaction => {
                let tx = PROPERTY_DB.begin().await.unwrap();
                let result = Code::insert_many(batch.clone()).bind(&tx).await;
                // Usable after a failed batch: its savepoint rolled back.
                let probe = Code::query().count().gino().bind(&tx).one::<i64>().await;
                prop_assert!(probe.is_ok(), "{probe:?} after {result:?}");
                tx.commit().await.unwrap();
                result.map(|_| None)
            }
        };
        let now = stored_codes().await;
        // Codes are unique, so rows sorted by code compare as sets.
        let data = |rows: &[Code]| -> Vec<(String, i32, Option<String>)> {
            let mut data: Vec<_> = rows
                .iter()
                .map(|r| (r.code.clone(), r.weight, r.label.clone()))
                .collect();
            data.sort();
            data
        };
        match (first_failing, result) {
            (None, Ok(returned)) => {
                prop_assert_eq!(data(&now), data(&expected));
                for row in batch.iter().filter(|row| row.id != 0) {
                    let kept = now.iter().any(|r| r.id == row.id && r.code == row.code);
                    prop_assert!(kept, "{:?} keeps its id", row);
                }
                if let Some(returned) = returned {
                    prop_assert_eq!(data(&returned), data(&batch));
                    for (row, back) in batch.iter().zip(&returned) {
                        prop_assert_eq!(&row.code, &back.code, "in the batch's order");
                        prop_assert!(now.contains(back), "{:?} as stored", back);
                    }
                }
            }
            (Some((at, codes)), Err(Error::BatchRow { index, source })) => {
                prop_assert_eq!(index, at, "{:?}", source);
                let code = source.sqlstate().unwrap_or_default();
                prop_assert!(
                    codes.contains(&code),
                    "{code} for {:?}: {:?}",
                    batch[at],
                    codes
                );
                stored.sort_by_key(|r| r.id);
                prop_assert_eq!(&now, &stored, "nothing of a failed batch stays");
            }
            (expected, got) => {
                return Err(TestCaseError::fail(format!(
                    "expected {expected:?}, got {got:?}"
                )));
            }
        }
        Ok(())
    });
    rt.block_on(async {
        PROPERTY_DB.pop_bind();
        s.engine.close().await;
    });
}

static STAMP_DB: Gino = Gino::secondary();

/// Only database-assigned columns: each row its own `DEFAULT VALUES`.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "stamps", db = STAMP_DB)]
pub struct Stamp {
    #[gino(primary_key)]
    pub id: i32,
}

/// Rows of database-assigned columns alone, which go one statement each,
/// are inserted all or none like any batch.
#[tokio::test]
async fn a_batch_of_default_rows_is_all_or_nothing() {
    let s = common::setup().await;
    STAMP_DB.set_bind(s.engine.clone()).await.unwrap();
    STAMP_DB.create_all().await.unwrap();
    for sql in [
        "CREATE FUNCTION at_most_two() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (SELECT count(*) FROM stamps) >= 2 THEN
             RAISE EXCEPTION 'full' USING ERRCODE = '23514';
           END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER at_most_two BEFORE INSERT ON stamps FOR EACH ROW \
         EXECUTE FUNCTION at_most_two()",
    ] {
        STAMP_DB.status(diesel::sql_query(sql)).await.unwrap();
    }
    let stored = || async {
        stamps::table
            .count()
            .gino()
            .bind(&STAMP_DB)
            .one::<i64>()
            .await
            .unwrap()
    };
    let err = Stamp::insert_many((0..3).map(|_| Stamp { id: 0 }))
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("23514"), "{err:?}");
    assert_eq!(stored().await, 0, "part of the batch was stored");
    let err = Stamp::insert_many((0..3).map(|_| Stamp { id: 0 }))
        .returning()
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("23514"), "{err:?}");
    assert_eq!(stored().await, 0, "part of the batch was stored");
    Stamp::insert_many((0..2).map(|_| Stamp { id: 0 }))
        .await
        .unwrap();
    assert_eq!(stored().await, 2);
    STAMP_DB.pop_bind();
}

static NAP_DB: Gino = Gino::secondary();

/// Rows a trigger holds up: one named `slow` sleeps for 300 ms.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "naps", db = NAP_DB)]
pub struct Nap {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
}

/// A batch bound to a connection runs under that connection's query
/// timeout wherever its statements go: as one statement, and inside a
/// transaction (a savepoint and a statement in it), returning rows or not.
#[tokio::test]
async fn a_batch_on_a_connection_keeps_its_query_timeout() {
    let s = common::setup().await;
    NAP_DB.set_bind(s.engine.clone()).await.unwrap();
    NAP_DB.create_all().await.unwrap();
    for sql in [
        "CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.name = 'slow' THEN PERFORM pg_sleep(0.3); END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER nap BEFORE INSERT ON naps FOR EACH ROW EXECUTE FUNCTION nap()",
    ] {
        NAP_DB.status(diesel::sql_query(sql)).await.unwrap();
    }
    let naps = || {
        ["quick", "slow"].map(|name| Nap {
            id: 0,
            name: name.to_owned(),
        })
    };
    let conn = s
        .engine
        .acquire()
        .query_timeout(std::time::Duration::from_millis(100))
        .await
        .unwrap();
    let timed_out = |what: &str, result: gino::Result<()>| {
        assert!(
            matches!(result, Err(Error::QueryTimeout(_))),
            "{what}: {result:?}"
        );
    };
    let alone = Nap::insert_many(naps()).bind(&conn).await.map(drop);
    timed_out("one statement", alone);
    let tx = conn.begin().await.unwrap();
    let counted = Nap::insert_many(naps()).bind(&conn).await.map(drop);
    timed_out("in a transaction", counted);
    let returned = Nap::insert_many(naps())
        .returning()
        .bind(&conn)
        .await
        .map(drop);
    timed_out("in a transaction, returning", returned);
    tx.rollback().await.unwrap();
    conn.release().await.unwrap();
    let stored: i64 = naps::table
        .count()
        .gino()
        .bind(&NAP_DB)
        .one()
        .await
        .unwrap();
    assert_eq!(stored, 0);
}
