//! Property-based round trips: arbitrary values go in and come back
//! unchanged through create, get, filter, update and raw `text()`
//! parameters, on a table and columns whose names are SQL keywords or
//! mixed case. No input alters the SQL.

use diesel::sql_types::{BigInt, Bytea, Double, Integer, Text};
use gino::prelude::*;
use gino::{Error, Gino};
use proptest::prelude::*;

static DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "order", db = DB)]
pub struct Order {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(column = "from")]
    pub from_text: String,
    #[gino(column = "Mixed Case")]
    pub bytes: Vec<u8>,
    #[gino(column = "select")]
    pub big: i64,
    pub real: f64,
    pub doc: serde_json::Value,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Echo {
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Bytea)]
    b: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Double)]
    f: f64,
}

/// JSON documents, nested, with floats, unicode and awkward keys.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        // jsonb cannot hold NUL in a string (SQLSTATE 22P05, a clean
        // error); everything else goes.
        "[^\\x00]*".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[^\\x00]*", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text a query would choke on if it were ever spliced into the SQL.
fn awkward_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        Just("it's".to_owned()),
        Just("back\\slash".to_owned()),
        Just(":name $1 ? %s".to_owned()),
        Just("'); DROP TABLE \"order\"; --".to_owned()),
        Just("\u{1F980} ünïcödé \u{200B}".to_owned()),
    ]
    // PostgreSQL text cannot hold NUL.
    .prop_map(|s| s.replace('\0', ""))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn values_come_back_exactly_through_every_path() {
    let rt = runtime();
    let database = rt.block_on(async {
        let database = gino_testkit::TestDatabase::create().await;
        DB.set_bind(database.url()).await.unwrap();
        DB.create_all().await.unwrap();
        database
    });
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        text in awkward_text(),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        big in any::<i64>(),
        real in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        doc in json(),
        other_text in awkward_text(),
    )| {
        rt.block_on(async {
            let created = Order::create()
                .from_text(text.clone())
                .bytes(bytes.clone())
                .big(big)
                .real(real)
                .doc(doc.clone())
                .await
                .unwrap();
            assert_eq!(
                (&created.from_text, &created.bytes, created.big),
                (&text, &bytes, big)
            );
            assert!(same_json(&created.doc, &doc), "{} != {doc}", created.doc);
            assert_eq!(created.real.to_bits(), real.to_bits());
            let fetched = Order::get(created.id).await.unwrap().unwrap();
            assert_eq!(fetched, created);

            let found: Vec<Order> = Order::query()
                .filter(Order::from_text.eq(&text))
                .filter(Order::bytes.eq(&bytes))
                .filter(Order::big.eq(big))
                .gino()
                .all()
                .await
                .unwrap();
            assert!(found.iter().any(|o| o.id == created.id), "filter by every value");

            let mut updated = fetched.clone();
            updated.update().from_text(other_text.clone()).apply().await.unwrap();
            assert_eq!(updated.from_text, other_text);
            assert_eq!(Order::get(created.id).await.unwrap().unwrap().from_text, other_text);

            let echoed: Echo = DB
                .one(
                    gino::text("SELECT :t::text AS t, :b::bytea AS b, :n::bigint AS n, :f::float8 AS f")
                        .bind::<Text, _>("t", text.clone())
                        .bind::<Bytea, _>("b", bytes.clone())
                        .bind::<BigInt, _>("n", big)
                        .bind::<Double, _>("f", real),
                )
                .await
                .unwrap();
            assert_eq!((&echoed.t, &echoed.b, echoed.n), (&text, &bytes, big));
            assert_eq!(echoed.f.to_bits(), real.to_bits());
        });
    });
    // Nothing any input did changed the table's shape or contents elsewhere.
    rt.block_on(async {
        let columns: i64 = DB
            .one(diesel::select(diesel::dsl::sql::<BigInt>(
                "count(*) FROM information_schema.columns WHERE table_name = 'order'",
            )))
            .await
            .unwrap();
        assert_eq!(columns, 6);
        let unknown: Result<i32, Error> = DB
            .one(gino::text("SELECT :x::int AS x").bind::<Integer, _>("x", 1))
            .await
            .map(|row: IntRow| row.x);
        assert_eq!(unknown.unwrap(), 1);
        // What PostgreSQL cannot store is a clean, typed error.
        let nul = Order::create()
            .from_text("a\0b")
            .bytes(Vec::<u8>::new())
            .big(0_i64)
            .real(0.0)
            .doc(serde_json::Value::Null)
            .await
            .unwrap_err();
        assert_eq!(nul.sqlstate(), Some("22021"), "{nul:?}");
        DB.pop_bind().unwrap().close().await;
    });
    drop(database);
}

/// JSON equality as jsonb keeps it: jsonb stores numbers as `numeric`,
/// so a float with no fraction (`-1.2e17`) comes back written as an
/// integer; the value is the same, serde_json's variant is not.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[derive(diesel::QueryableByName)]
struct IntRow {
    #[diesel(sql_type = Integer)]
    x: i32,
}
