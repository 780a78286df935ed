//! JSON properties: model fields kept as keys of a JSONB column.

use chrono::{DateTime, Utc};
use gino::prelude::*;
use gino::{Error, Gino};
use serde::{Deserialize, Serialize};

static DB: Gino = Gino::secondary();

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub city: String,
    pub zip: Option<String>,
}

fn trimmed(name: Option<String>) -> Option<String> {
    name.map(|n| n.trim().to_owned())
}

fn shouted(name: Option<String>) -> Option<String> {
    name.map(|n| n.to_uppercase())
}

#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[gino(table = "people", db = DB)]
pub struct Person {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
    #[gino(property)]
    pub age: Option<i32>,
    #[gino(property, default = 0)]
    pub visits: i64,
    #[gino(property)]
    pub verified: Option<bool>,
    #[gino(property)]
    pub joined: Option<DateTime<Utc>>,
    #[gino(property)]
    pub tags: Option<Vec<String>>,
    #[gino(property)]
    pub address: Option<Address>,
    #[gino(property, before_set = trimmed, after_get = shouted)]
    pub nickname: Option<String>,
    #[gino(property, expr = "lower(\"people\".\"profile\" ->> 'nickname')")]
    pub lowered: Option<String>,
    #[gino(property = "settings")]
    pub theme: Option<String>,
    /// A keyword as a property name: stored under `loop`, as GINO names it.
    #[gino(property)]
    pub r#loop: Option<i32>,
}

fn joined() -> DateTime<Utc> {
    "2018-11-19T12:00:00Z".parse().unwrap()
}

/// Rows of `people` that `filter` keeps.
async fn count_where<P>(filter: P) -> i64
where
    P: diesel::Expression<SqlType = diesel::sql_types::Nullable<diesel::sql_types::Bool>>
        + diesel::AppearsOnTable<people::table>
        + diesel::expression::NonAggregate
        + diesel::query_builder::QueryFragment<diesel::pg::Pg>
        + diesel::query_builder::QueryId
        + Send
        + 'static,
{
    people::table
        .filter(filter)
        .count()
        .gino()
        .bind(&DB)
        .one()
        .await
        .unwrap()
}

async fn profile(id: i32) -> serde_json::Value {
    people::table
        .find(id)
        .select(people::profile)
        .gino()
        .bind(&DB)
        .one()
        .await
        .unwrap()
}

/// Stores the text `value` under `key` in the profile of person `id`, as
/// another program might.
async fn set_profile_key(id: i32, key: &str, value: &str) {
    DB.status(
        diesel::sql_query(
            "UPDATE people SET profile = jsonb_set(profile, ARRAY[$1], to_jsonb($2::text)) \
             WHERE id = $3",
        )
        .bind::<diesel::sql_types::Text, _>(key)
        .bind::<diesel::sql_types::Text, _>(value)
        .bind::<diesel::sql_types::Integer, _>(id),
    )
    .await
    .unwrap();
}

// One test: the cases share the `DB` static.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_round_trip_merge_filter_and_fail_clearly() {
    let database = gino_testkit::TestDatabase::create().await;
    DB.set_bind(database.url()).await.unwrap();
    DB.create_all().await.unwrap();

    // Every property type round-trips through create and get.
    let address = Address {
        city: "Beijing".into(),
        zip: None,
    };
    let ann = Person::create()
        .name("ann")
        .age(30)
        .verified(true)
        .joined(joined())
        .tags(vec!["a".to_owned(), "b".to_owned()])
        .address(address.clone())
        .nickname("  annie ".to_owned())
        .theme("dark".to_owned())
        .await
        .unwrap();
    assert_eq!(ann.age, Some(30));
    assert_eq!(ann.visits, 0, "the default of a missing key");
    assert_eq!(ann.joined, Some(joined()));
    assert_eq!(ann.address, Some(address));
    assert_eq!(
        ann.nickname.as_deref(),
        Some("ANNIE"),
        "before_set trims, after_get shouts"
    );
    assert_eq!(Person::get(ann.id).await.unwrap().unwrap(), ann);
    // Raw SQL loads models too, properties included (GINO's textual SQL
    // with `loader=User`).
    let raw: Vec<Person> = DB
        .all(
            gino::text("SELECT * FROM people WHERE name = :name")
                .bind::<diesel::sql_types::Text, _>("name", "ann"),
        )
        .await
        .unwrap();
    assert_eq!(raw, std::slice::from_ref(&ann));
    // Without the JSON column, the properties take their defaults (GINO's
    // passive partial load of a model).
    let named: Person = DB
        .one(gino::text("SELECT id, name FROM people WHERE name = 'ann'"))
        .await
        .unwrap();
    assert_eq!((named.id, named.name.as_str()), (ann.id, "ann"));
    assert_eq!((named.age, named.visits, named.joined), (None, 0, None));
    let stored = profile(ann.id).await;
    assert_eq!(
        stored["joined"], "2018-11-19T12:00:00.000000",
        "date-times as GINO stores them"
    );
    // What Python GINO (or another program) wrote reads back.
    for (written, expected) in [
        ("1970-01-01T00:00:00.000000", "1970-01-01T00:00:00Z"),
        ("1970-01-01T00:00:01", "1970-01-01T00:00:01Z"),
        ("1970-01-01T02:00:02.5+02:00", "1970-01-01T00:00:02.500Z"),
        // PostgreSQL's `to_json` of a timestamptz in local mean time.
        ("1879-12-31T19:03:58-04:56:02", "1880-01-01T00:00:00Z"),
    ] {
        set_profile_key(ann.id, "joined", written).await;
        let read = Person::get(ann.id).await.unwrap().unwrap().joined.unwrap();
        assert_eq!(
            read,
            expected.parse::<DateTime<Utc>>().unwrap(),
            "{written}"
        );
    }
    set_profile_key(ann.id, "joined", "2018-11-19T12:00:00.000000").await;
    // A raw identifier's property is stored under its plain name, and
    // what another program stores under that name reads back.
    Person::get(ann.id)
        .await
        .unwrap()
        .unwrap()
        .update()
        .r#loop(3)
        .apply()
        .await
        .unwrap();
    assert_eq!(profile(ann.id).await["loop"], 3);
    assert_eq!(count_where(people_props::r#loop().eq(3)).await, 1);
    DB.status(diesel::sql_query(
        "UPDATE people SET profile = profile || '{\"loop\": 5, \"visits\": null}'",
    ))
    .await
    .unwrap();
    let looped = Person::get(ann.id).await.unwrap().unwrap();
    // A null where the type holds none reads as the default, as a missing
    // key does (GINO reads a null property as its default).
    assert_eq!((looped.r#loop, looped.visits), (Some(5), 0));
    assert_eq!(stored["nickname"], "annie");
    assert_eq!(stored["visits"], 0);
    assert!(stored.get("theme").is_none(), "theme lives in `settings`");

    // to_dict shows the properties, not the raw column.
    let dict = serde_json::to_value(&ann).unwrap();
    assert_eq!(dict["age"], 30);
    assert!(dict.get("profile").is_none());

    // An update of one property merges that key only: concurrent updates of
    // different properties of the same row both survive.
    let mut a = Person::get(ann.id).await.unwrap().unwrap();
    let mut b = a.clone();
    let (ra, rb) = tokio::join!(async { a.update().age(31).apply().await }, async {
        b.update().visits(5_i64).verified(false).apply().await
    },);
    ra.unwrap();
    rb.unwrap();
    let both = Person::get(ann.id).await.unwrap().unwrap();
    assert_eq!(
        (both.age, both.visits, both.verified),
        (Some(31), 5, Some(false))
    );
    assert_eq!(both.tags, ann.tags, "untouched keys stay");

    // Properties in queries, with their SQL types.
    let mut bob = Person::create()
        .name("bob")
        .age(17)
        .visits(2_i64)
        .await
        .unwrap();
    let adults: Vec<String> = Person::select(people::name)
        .filter(people_props::age().ge(18))
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    assert_eq!(adults, ["ann"]);
    let busiest: Option<String> = Person::select(people::name)
        .order_by(people_props::visits().desc())
        .gino()
        .bind(&DB)
        .first()
        .await
        .unwrap();
    assert_eq!(busiest.as_deref(), Some("ann"));
    assert_eq!(count_where(people_props::joined().lt(Utc::now())).await, 1);
    // A date-time property is the instant it holds in SQL too, whatever the
    // session's time zone: stored as GINO does (UTC, no offset) or with an
    // offset by another program.
    for stored in [
        "2018-11-19T12:00:00.000000",
        "2018-11-19T20:00:00+08:00",
        "2018-11-19T07:03:58-04:56:02",
    ] {
        set_profile_key(ann.id, "joined", stored).await;
        DB.transaction(async {
            DB.status(diesel::sql_query("SET LOCAL TIME ZONE 'America/New_York'"))
                .await?;
            assert_eq!(count_where(people_props::joined().eq(joined())).await, 1);
            let read: Option<DateTime<Utc>> = people::table
                .find(ann.id)
                .select(people_props::joined())
                .gino()
                .bind(&DB)
                .one()
                .await?;
            assert_eq!(read, Some(joined()), "{stored}");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }
    assert_eq!(count_where(people_props::lowered().eq("annie")).await, 1);
    assert_eq!(
        count_where(people_props::address().is_not_null().nullable()).await,
        1
    );

    // Setting a property back to None stores null.
    bob.update().age(None::<i32>).apply().await.unwrap();
    assert_eq!(bob.age, None);
    assert_eq!(profile(bob.id).await["age"], serde_json::Value::Null);

    // Bulk inserts carry the properties.
    let many = (0..3).map(|i| Person {
        id: 0,
        name: format!("p{i}"),
        age: Some(i),
        visits: 1,
        verified: None,
        joined: None,
        tags: None,
        address: None,
        nickname: None,
        lowered: None,
        theme: None,
        r#loop: None,
    });
    let stored = Person::insert_many(many).returning().await.unwrap();
    assert_eq!(
        stored.iter().map(|p| p.age).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2)]
    );

    // A value built in memory takes the client defaults, of properties too
    // (GINO's `Person(name="cat")`), and `create()` inserts it.
    let cat = Person::create().name("cat").age(3).build().unwrap();
    assert_eq!((cat.id, cat.visits, cat.verified), (0, 0, None));
    let stored_cat = cat.create().await.unwrap();
    assert!(stored_cat.id > 0);
    assert_eq!(
        Person::get(stored_cat.id).await.unwrap().unwrap(),
        stored_cat
    );
    assert_eq!(profile(stored_cat.id).await["visits"], 0);
    assert_eq!(profile(stored_cat.id).await["age"], 3);

    // A value of the wrong JSON type is an error naming the property.
    DB.status(diesel::sql_query(
        "UPDATE people SET profile = profile || '{\"age\": \"thirty\"}' WHERE name = 'ann'",
    ))
    .await
    .unwrap();
    let err = Person::get(ann.id).await.unwrap_err();
    assert!(matches!(err, Error::Query(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("`age`") && message.contains("thirty"),
        "{message}"
    );
    a_required_property_is_not_set_to_null().await;
    DB.pop_bind();
}

static KEYS: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "keyed_notes", db = KEYS)]
pub struct KeyedNote {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(property)]
    pub text: Option<String>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "keyed_memos", db = KEYS, unknown_properties = "ignore")]
pub struct KeyedMemo {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(property)]
    pub text: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_keys_are_an_error_unless_the_model_ignores_them() {
    let database = gino_testkit::TestDatabase::create().await;
    KEYS.set_bind(database.url()).await.unwrap();
    KEYS.create_all().await.unwrap();
    let note = KeyedNote::create().text("hi".to_owned()).await.unwrap();
    let memo = KeyedMemo::create().text("hi".to_owned()).await.unwrap();
    // Another program writes a key no property declares.
    for table in ["keyed_notes", "keyed_memos"] {
        KEYS.status(diesel::sql_query(format!(
            "UPDATE {table} SET profile = profile || '{{\"written_elsewhere\": 1}}'"
        )))
        .await
        .unwrap();
    }
    let refused = KeyedNote::get(note.id).await.unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("written_elsewhere") && message.contains("unknown_properties"),
        "{message}"
    );
    let mut read = KeyedMemo::get(memo.id).await.unwrap().unwrap();
    assert_eq!(read.text.as_deref(), Some("hi"));
    read.update()
        .text("changed".to_owned())
        .apply()
        .await
        .unwrap();
    let kept: serde_json::Value = keyed_memos::table
        .find(memo.id)
        .select(keyed_memos::profile)
        .gino()
        .one()
        .await
        .unwrap();
    assert_eq!(
        kept["written_elsewhere"], 1,
        "the other program's key survives"
    );
    assert_eq!(kept["text"], "changed");
    KEYS.pop_bind().unwrap().close().await;
}

static MORE: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(
    table = "players",
    db = MORE,
    index(name = "players_level_name", columns(level, name))
)]
pub struct Player {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
    #[gino(property, index)]
    pub age: Option<i32>,
    #[gino(property, default = 0)]
    pub level: i64,
    #[gino(property)]
    pub score: Option<f64>,
    #[gino(property = "extra", json)]
    pub nickname: Option<String>,
    #[gino(property = "extra")]
    pub rank: Option<i32>,
}

/// One text column `v` of each row of `sql`.
async fn texts(sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let rows: Vec<Row> = MORE.all(diesel::sql_query(sql)).await.unwrap();
    rows.into_iter().map(|r| r.v).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_take_sql_updates_indexes_and_plain_json_columns() {
    let database = gino_testkit::TestDatabase::create().await;
    MORE.set_bind(database.url()).await.unwrap();
    MORE.create_all().await.unwrap();

    // `json` makes the column plain json; the other stays jsonb.
    assert_eq!(
        texts(
            "SELECT column_name || ' ' || data_type AS v FROM information_schema.columns \
             WHERE table_name = 'players' AND data_type LIKE 'json%' ORDER BY column_name"
        )
        .await,
        ["extra json", "profile jsonb"]
    );
    // Properties are indexed as the expressions that read them, alone or
    // beside columns.
    let indexes = texts(
        "SELECT indexname || ': ' || indexdef AS v FROM pg_indexes \
         WHERE tablename = 'players' AND indexname <> 'players_pkey' ORDER BY indexname",
    )
    .await;
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(
        indexes[0].starts_with("ix_players_age: ") && indexes[0].contains("'age'"),
        "{indexes:?}"
    );
    assert!(
        indexes[1].starts_with("players_level_name: ")
            && indexes[1].contains("'level'")
            && indexes[1].ends_with(", name)"),
        "{indexes:?}"
    );

    let mut ann = Player::create()
        .name("ann")
        .age(30)
        .level(1_i64)
        .nickname("ann".to_owned())
        .rank(3)
        .await
        .unwrap();
    assert_eq!(ann.nickname.as_deref(), Some("ann"));
    assert_eq!(Player::get(ann.id).await.unwrap().unwrap(), ann);

    // GINO's `update(age=Player.age - 2)`: computed in SQL, merged by key,
    // refreshed in memory; plain changes go in the same statement.
    ann.update()
        .set_property(players_props::age(), players_props::age() - 2)
        .level(5_i64)
        .apply()
        .await
        .unwrap();
    assert_eq!((ann.age, ann.level), (Some(28), 5));
    // In the plain json column too, beside a value set there.
    ann.update()
        .set_property(players_props::rank(), players_props::rank() * 10)
        .nickname("annie".to_owned())
        .apply()
        .await
        .unwrap();
    assert_eq!(
        (ann.rank, ann.nickname.as_deref()),
        (Some(30), Some("annie"))
    );
    // A plain value is an expression too; the last change of a key wins.
    ann.update()
        .set_property(players_props::score(), 1.5)
        .age(1)
        .set_property(players_props::age(), players_props::age() + 1)
        .set_property(players_props::level(), 100_i64)
        .level(7_i64)
        .apply()
        .await
        .unwrap();
    assert_eq!((ann.score, ann.age, ann.level), (Some(1.5), Some(29), 7));
    assert_eq!(Player::get(ann.id).await.unwrap().unwrap(), ann);
    // A concurrent update of another key survives an SQL update.
    let mut other = ann.clone();
    other.update().score(2.5).apply().await.unwrap();
    ann.update()
        .set_property(players_props::age(), players_props::age() + 1)
        .apply()
        .await
        .unwrap();
    let stored = Player::get(ann.id).await.unwrap().unwrap();
    assert_eq!((stored.age, stored.score), (Some(30), Some(2.5)));

    // Properties of the plain json column filter like any other.
    let found: Vec<String> = Player::select(players::name)
        .filter(players_props::nickname().eq("annie"))
        .filter(players_props::rank().ge(30))
        .gino()
        .bind(&MORE)
        .all()
        .await
        .unwrap();
    assert_eq!(found, ["ann"]);

    // The filter on an indexed property can use its index.
    let filter = Player::query()
        .filter(players_props::age().gt(3))
        .gino()
        .compile();
    let plan = {
        let conn = MORE.acquire().await.unwrap();
        conn.status(diesel::sql_query("SET enable_seqscan = off"))
            .await
            .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
            line: String,
        }
        let explain = format!("EXPLAIN {}", filter.sql().replace("$1", "3"));
        let lines: Vec<Plan> = conn.all(diesel::sql_query(explain)).await.unwrap();
        conn.status(diesel::sql_query("RESET enable_seqscan"))
            .await
            .unwrap();
        lines
            .into_iter()
            .map(|p| p.line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(plan.contains("ix_players_age"), "{plan}");

    // A plain json column holding SQL NULL reads as no properties too, and
    // an update merges into it (cast to jsonb and back).
    for sql in [
        "ALTER TABLE players ALTER COLUMN extra DROP NOT NULL",
        "UPDATE players SET extra = NULL",
    ] {
        MORE.status(diesel::sql_query(sql)).await.unwrap();
    }
    let nulled = Player::get(ann.id).await.unwrap().unwrap();
    assert_eq!(
        (nulled.nickname, nulled.rank, nulled.age),
        (None, None, Some(30))
    );
    ann.update().rank(4).apply().await.unwrap();
    assert_eq!(
        texts("SELECT extra::text AS v FROM players").await,
        [r#"{"rank": 4}"#]
    );

    // A NUL in a text is refused, in the plain json column too (which
    // would take it, and then fail every merge and property filter that
    // reads it as jsonb); nothing is stored or changed.
    let err = Player::create()
        .name("nul".to_owned())
        .nickname("a\0b".to_owned())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
    let err = ann
        .update()
        .nickname("a\0b".to_owned())
        .apply()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`nickname`"), "{err}");
    assert_eq!(
        texts("SELECT extra::text AS v FROM players").await,
        [r#"{"rank": 4}"#]
    );

    MORE.pop_bind().unwrap().close().await;
}

static FLOATS: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "readings", db = FLOATS)]
pub struct Reading {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(property)]
    pub value: Option<f64>,
    #[gino(property)]
    pub series: Option<Vec<f32>>,
    #[gino(property)]
    pub ratio: Option<f32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_floats_are_refused_rather_than_stored_as_null() {
    let database = gino_testkit::TestDatabase::create().await;
    FLOATS.set_bind(database.url()).await.unwrap();
    FLOATS.create_all().await.unwrap();
    // JSON has no NaN or infinity; serde_json would write `null`, which
    // reads back as `None`: refused at once instead, naming the property.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = Reading::create().value(bad).await.unwrap_err();
        assert!(err.to_string().contains("`value`"), "{err}");
        assert!(err.to_string().contains("not a JSON number"), "{err}");
    }
    let err = Reading::create()
        .series(vec![1.0, f32::NAN])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`series`"), "{err}");
    assert_eq!(
        Reading::query().gino().all().await.unwrap(),
        [],
        "nothing stored"
    );
    // On update too, and the row keeps what it had.
    let mut r = Reading::create().value(1.5).await.unwrap();
    let err = r.update().value(f64::NAN).apply().await.unwrap_err();
    assert!(err.to_string().contains("not a JSON number"), "{err}");
    let stored = Reading::get(r.id).await.unwrap().unwrap();
    assert_eq!(stored.value, Some(1.5));
    // Set in SQL, as a value or computed: refused by the server, where
    // PostgreSQL would store a string that reads as no number.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = r
            .update()
            .set_property(readings_props::value(), bad)
            .apply()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("property `value`"), "{err}");
    }
    let err = r
        .update()
        .set_property(
            readings_props::value(),
            readings_props::value() * f64::INFINITY,
        )
        .apply()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot hold Infinity"), "{err}");
    let err = r
        .update()
        .set_property(readings_props::ratio(), f32::NAN)
        .apply()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("property `ratio`"), "{err}");
    // (`r` holds the NaN its refused setter put in memory, as in GINO.)
    let mut r = Reading::get(r.id).await.unwrap().unwrap();
    assert_eq!((r.value, r.ratio), (Some(1.5), None), "kept");
    // Finite values go as they are, a real's precision kept.
    r.update()
        .set_property(readings_props::value(), readings_props::value() * 2.0)
        .set_property(readings_props::ratio(), 0.1_f32)
        .apply()
        .await
        .unwrap();
    assert_eq!((r.value, r.ratio), (Some(3.0), Some(0.1)));
    assert_eq!(Reading::get(r.id).await.unwrap().unwrap(), r);
    // Finite extremes go and come back exactly.
    let extreme = Reading::create()
        .value(f64::MAX)
        .series(vec![f32::MIN_POSITIVE])
        .await
        .unwrap();
    let back = Reading::get(extreme.id).await.unwrap().unwrap();
    assert_eq!(
        (back.value, back.series),
        (Some(f64::MAX), Some(vec![f32::MIN_POSITIVE]))
    );
    FLOATS.pop_bind().unwrap().close().await;
}

static PROPS: Gino = Gino::secondary();

/// GINO's `PropsTest`: a model of JSON properties alone, no other column
/// and no key.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "props_only", db = PROPS)]
pub struct PropsOnly {
    #[gino(property)]
    pub raw: Option<serde_json::Value>,
    #[gino(property, default = false)]
    pub flag: bool,
    #[gino(property = "parameter")]
    pub text: Option<String>,
}

#[tokio::test]
async fn a_model_of_properties_alone_is_created_loaded_and_filtered() {
    let database = gino_testkit::TestDatabase::create().await;
    PROPS.set_bind(database.url()).await.unwrap();
    PROPS.create_all().await.unwrap();
    let made = PropsOnly::create()
        .raw(serde_json::json!({"a": [1, 2]}))
        .text("hello".to_owned())
        .await
        .unwrap();
    assert_eq!(
        made,
        PropsOnly {
            raw: Some(serde_json::json!({"a": [1, 2]})),
            flag: false,
            text: Some("hello".into()),
        }
    );
    PropsOnly::create().flag(true).await.unwrap();
    let all: Vec<PropsOnly> = PropsOnly::query().gino().bind(&PROPS).all().await.unwrap();
    assert_eq!(all.len(), 2);
    let flagged: i64 = props_only::table
        .filter(props_only_props::flag().eq(true))
        .count()
        .gino()
        .bind(&PROPS)
        .one()
        .await
        .unwrap();
    assert_eq!(flagged, 1);
    // Without a key there is no row to update or delete by.
    assert!(matches!(made.delete().await, Err(Error::NoPrimaryKey(_))));
    PROPS.pop_bind();
}

static MIXED: Gino = Gino::secondary();

/// GINO's `test_mixin`: properties declared in a set of columns shared by
/// models, stored in the model's JSON column.
#[derive(gino::Columns, Debug, Clone, PartialEq)]
pub struct Aged {
    #[gino(property)]
    pub age: Option<i32>,
    #[gino(property, default = 1)]
    pub rank: i32,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "mixed", db = MIXED)]
pub struct Mixed {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
    #[gino(flatten)]
    pub aged: Aged,
}

#[tokio::test]
async fn properties_of_a_flattened_set_are_stored_updated_and_filtered() {
    let database = gino_testkit::TestDatabase::create().await;
    MIXED.set_bind(database.url()).await.unwrap();
    MIXED.create_all().await.unwrap();
    let mut made = Mixed::create().name("m").age(22).await.unwrap();
    assert_eq!(
        made.aged,
        Aged {
            age: Some(22),
            rank: 1
        }
    );
    made.update().age(24).apply().await.unwrap();
    assert_eq!(made.aged.age, Some(24));
    made.update()
        .set_property(mixed_props::age(), mixed_props::age() - 5)
        .apply()
        .await
        .unwrap();
    assert_eq!(
        Mixed::get(made.id).await.unwrap().unwrap().aged.age,
        Some(19)
    );
    let stored: serde_json::Value = mixed::table
        .find(made.id)
        .select(mixed::profile)
        .gino()
        .bind(&MIXED)
        .one()
        .await
        .unwrap();
    assert_eq!(stored, serde_json::json!({"age": 19, "rank": 1}));
    let found: i64 = mixed::table
        .filter(mixed_props::age().eq(19))
        .count()
        .gino()
        .bind(&MIXED)
        .one()
        .await
        .unwrap();
    assert_eq!(found, 1);

    // Partial loads (GINO's `Mixed.load("id", "profile")`): the JSON column
    // listed keeps its properties; left out, they read as a row without
    // their keys does: the declared default, else none.
    made.update().rank(5).apply().await.unwrap();
    let with_profile: Vec<Mixed> = Mixed::query()
        .gino()
        .load(gino::loader::partial::<Mixed, _>((
            mixed::id,
            mixed::profile,
        )))
        .await
        .unwrap();
    assert_eq!(
        (with_profile[0].name.as_str(), &with_profile[0].aged),
        (
            "",
            &Aged {
                age: Some(19),
                rank: 5
            }
        )
    );
    let without: Vec<Mixed> = Mixed::query()
        .gino()
        .load(gino::loader::partial::<Mixed, _>((mixed::id, mixed::name)))
        .await
        .unwrap();
    assert_eq!(
        (without[0].name.as_str(), &without[0].aged),
        ("m", &Aged { age: None, rank: 1 })
    );
    MIXED.pop_bind();
}

static CRUD: Gino = Gino::secondary();

/// Whole units, as GINO's `IntegerProperty` stores a number.
fn whole(balance: f64) -> f64 {
    balance.trunc()
}

fn minus_one(years: i32) -> i32 {
    years - 1
}

fn plus_one(years: i32) -> i32 {
    years + 1
}

/// GINO's `User` of its own test models: properties in two JSON columns
/// beside a renamed column.
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[gino(table = "gino_users", db = CRUD)]
pub struct Member {
    #[gino(primary_key)]
    pub id: i64,
    #[gino(column = "name")]
    pub nickname: String,
    #[gino(property = "props")]
    pub realname: Option<String>,
    #[gino(property = "props", default = 18)]
    pub age: i32,
    #[gino(property = "props", default = 0.0, before_set = whole)]
    pub balance: f64,
    #[gino(property = "props")]
    pub birthday: Option<chrono::NaiveDateTime>,
    /// GINO's documented hooks: stored one less, read one more.
    #[gino(property = "props", default = 0, before_set = minus_one, after_get = plus_one)]
    pub seniority: i32,
    #[gino(property = "params")]
    pub weight: Option<i32>,
    #[gino(property = "params", default = 170)]
    pub height: i32,
    #[gino(property = "params")]
    pub bio: Option<String>,
    /// Neither an `Option` nor defaulted: created without it, it stores
    /// its type's default, so that the row reads back.
    #[gino(property = "params")]
    pub visits: i64,
}

/// The row of member `id` as stored: its name and both JSON columns.
async fn member_row(id: i64) -> (String, serde_json::Value, serde_json::Value) {
    gino_users::table
        .find(id)
        .select((gino_users::nickname, gino_users::props, gino_users::params))
        .gino()
        .bind(&CRUD)
        .one()
        .await
        .unwrap()
}

/// GINO's test_in_memory and test_crud: defaults and hooks in memory,
/// updates mixing a column, two JSON columns and SQL, and what each leaves
/// in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_in_memory_and_through_crud_read_as_gino_reads_them() {
    use serde_json::json;
    let database = gino_testkit::TestDatabase::create().await;
    CRUD.set_bind(database.url()).await.unwrap();
    CRUD.create_all().await.unwrap();

    // In memory: defaults, and hooks as a reload would apply them.
    let mut built = Member::create()
        .nickname("x")
        .balance(2.75)
        .seniority(5)
        .build()
        .unwrap();
    assert_eq!(
        (built.age, built.balance, built.height, built.seniority),
        (18, 2.0, 170, 5)
    );
    let older = built.age + 10;
    let _ = built.update().age(older).balance(7.5);
    assert_eq!((built.age, built.balance), (28, 7.0), "set, not applied");
    let defaulted = Member::create().nickname("y").build().unwrap();
    assert_eq!(defaulted.seniority, 1, "the default is a stored value");

    // A date-time keeps microseconds, as a timestamp column does.
    let now = chrono::NaiveDate::from_ymd_opt(2020, 2, 29)
        .unwrap()
        .and_hms_nano_opt(12, 34, 56, 123_456_789)
        .unwrap();
    let micros = chrono::Timelike::with_nanosecond(&now, 123_456_000).unwrap();
    let mut u = Member::create()
        .nickname("fantix")
        .birthday(now)
        .seniority(3)
        .bio("I code in Python and more.".to_owned())
        .await
        .unwrap();
    assert_eq!((u.birthday, u.seniority), (Some(micros), 3));
    let now_str = "2020-02-29T12:34:56.123456";
    assert_eq!(
        member_row(u.id).await,
        (
            "fantix".to_owned(),
            json!({"age": 18, "balance": 0.0, "birthday": now_str, "seniority": 2}),
            json!({"bio": "I code in Python and more.", "height": 170, "visits": 0}),
        )
    );
    let selected: Option<chrono::NaiveDateTime> = gino_users::table
        .find(u.id)
        .select(gino_users_props::birthday())
        .gino()
        .bind(&CRUD)
        .one()
        .await
        .unwrap();
    assert_eq!(selected, Some(micros));

    // A change set in memory and never applied stays in memory only; one
    // update then sets two JSON columns, one key by SQL.
    let earlier = now - chrono::Duration::days(3650);
    let _ = u.update().birthday(earlier);
    u.update()
        .set_property(gino_users_props::age(), gino_users_props::age() - 2)
        .balance(100.85)
        .height(180)
        .seniority(10)
        .apply()
        .await
        .unwrap();
    assert_eq!(u.birthday, Some(earlier));
    assert_eq!(
        (u.age, u.balance, u.height, u.seniority),
        (16, 100.0, 180, 10)
    );
    assert_eq!(
        member_row(u.id).await,
        (
            "fantix".to_owned(),
            json!({"age": 16, "balance": 100.0, "birthday": now_str, "seniority": 9}),
            json!({"bio": "I code in Python and more.", "height": 180, "visits": 0}),
        )
    );
    let realname: Option<String> = gino_users::table
        .find(u.id)
        .select(gino_users_props::realname())
        .gino()
        .bind(&CRUD)
        .one()
        .await
        .unwrap();
    assert_eq!(realname, None);

    // Reloaded, one update of a column and properties of both JSON columns.
    let mut u = Member::get(u.id).await.unwrap().unwrap();
    u.update()
        .set_property(gino_users_props::age(), gino_users_props::age() - 2)
        .balance(200.15)
        .realname("daisy".to_owned())
        .nickname("daisy.nick")
        .height(185)
        .weight(75)
        .apply()
        .await
        .unwrap();
    assert_eq!(
        member_row(u.id).await,
        (
            "daisy.nick".to_owned(),
            json!({"age": 14, "balance": 200.0, "realname": "daisy", "birthday": now_str, "seniority": 9}),
            json!({"bio": "I code in Python and more.", "height": 185, "weight": 75, "visits": 0}),
        )
    );
    assert_eq!(
        serde_json::to_value(&u).unwrap(),
        json!({
            "id": u.id, "nickname": "daisy.nick", "realname": "daisy", "age": 14,
            "balance": 200.0, "birthday": micros, "seniority": 10, "weight": 75,
            "height": 185, "bio": "I code in Python and more.", "visits": 0,
        })
    );
    assert_eq!(Member::get(u.id).await.unwrap().unwrap(), u);

    // Text, date-time and boolean values set in SQL read back as typed.
    let later = micros + chrono::Duration::days(1);
    u.update()
        .set_property(gino_users_props::realname(), "set in sql")
        .set_property(gino_users_props::birthday(), later)
        .set_property(gino_users_props::height(), gino_users_props::height() + 1)
        .apply()
        .await
        .unwrap();
    assert_eq!(
        (u.realname.as_deref(), u.birthday, u.height),
        (Some("set in sql"), Some(later), 186)
    );
    assert_eq!(Member::get(u.id).await.unwrap().unwrap(), u);
    u.update()
        .realname("daisy".to_owned())
        .birthday(now)
        .height(185)
        .apply()
        .await
        .unwrap();

    // A property changed in memory only is not written by an update of
    // another one.
    u.balance = 300.0;
    u.update().age(22).apply().await.unwrap();
    assert_eq!(u.balance, 300.0);
    assert_eq!(member_row(u.id).await.1["balance"], 200.0);

    // A JSON column replaced whole refreshes all its properties; replaced
    // by JSON null, it reads as no properties, and a later update merges
    // into an empty object rather than making an array of it.
    u.update()
        .set(gino_users::props.eq(json!({"age": 40, "realname": "dee"})))
        .apply()
        .await
        .unwrap();
    assert_eq!(
        (u.age, u.realname.as_deref(), u.balance, u.birthday),
        (40, Some("dee"), 0.0, None)
    );
    u.update()
        .set(gino_users::props.eq(serde_json::Value::Null))
        .apply()
        .await
        .unwrap();
    assert_eq!((u.age, u.realname.as_deref(), u.seniority), (18, None, 1));
    let created = Member::create().nickname("z").await.unwrap();
    assert_eq!(created.seniority, 1);
    assert_eq!(member_row(created.id).await.1["seniority"], 0);
    u.update().age(50).apply().await.unwrap();
    assert_eq!(member_row(u.id).await.1, json!({"age": 50}));
    assert_eq!(Member::get(u.id).await.unwrap().unwrap().age, 50);

    // The whole column and one of its properties in one update: neither is
    // dropped in silence; the update is refused and nothing changes.
    let err = u
        .update()
        .set(gino_users::props.eq(json!({"age": 60})))
        .realname("both".to_owned())
        .apply()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, gino::Error::Query(_)) && err.to_string().contains("`props`"),
        "{err}"
    );
    assert_eq!(member_row(u.id).await.1, json!({"age": 50}));

    // A column that is not an object is an error naming it, not a row of
    // defaults.
    CRUD.status(diesel::sql_query(
        "UPDATE gino_users SET params = '[1, 2]'::jsonb",
    ))
    .await
    .unwrap();
    let err = Member::get(u.id).await.unwrap_err().to_string();
    assert!(
        err.contains("`params`") && err.contains("an array"),
        "{err}"
    );
    CRUD.pop_bind().unwrap().close().await;
}

static KINDS: Gino = Gino::secondary();

/// A property neither optional, defaulted nor of a type with a `Default`.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "homes", db = KINDS)]
pub struct Home {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(property)]
    pub address: Address,
    /// Reads JSON `null` (as `Value::Null`).
    #[gino(property, default = serde_json::Value::Null)]
    pub extra: serde_json::Value,
}

/// GINO's `PropsTest` of test_properties: JSON, boolean, object and array
/// properties in two columns; and test_json_path's plain JSONB column.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "props_test", db = KINDS)]
pub struct PropsTest {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(property)]
    pub raw: Option<serde_json::Value>,
    #[gino(property)]
    pub flag: Option<bool>,
    #[gino(property)]
    pub obj: Option<std::collections::BTreeMap<String, i32>>,
    #[gino(property)]
    pub arr: Option<Vec<i32>>,
    #[gino(property = "parameter")]
    pub raw_param: Option<serde_json::Value>,
    #[gino(property = "parameter")]
    pub flag_param: Option<bool>,
    #[gino(property = "parameter")]
    pub obj_param: Option<std::collections::BTreeMap<String, i32>>,
    #[gino(property = "parameter")]
    pub arr_param: Option<Vec<i32>>,
    pub data: Option<serde_json::Value>,
}

#[tokio::test]
async fn json_objects_arrays_and_booleans_are_selected_with_their_columns() {
    use serde_json::json;
    let database = gino_testkit::TestDatabase::create().await;
    KINDS.set_bind(database.url()).await.unwrap();
    KINDS.create_all().await.unwrap();
    let xy = |x, y| std::collections::BTreeMap::from([("x".to_owned(), x), ("y".to_owned(), y)]);
    let mut t = PropsTest::create()
        .raw(json!({"a": [1, 2]}))
        .flag(true)
        .obj(xy(1, 2))
        .arr(vec![3, 4, 5, 6])
        .raw_param(json!({"a": [3, 4]}))
        .flag_param(false)
        .obj_param(xy(3, 4))
        .arr_param(vec![7, 8, 9, 10])
        .data(json!({"a": {"b": "c"}}))
        .await
        .unwrap();
    assert_eq!(
        (
            t.obj.as_ref().unwrap()["x"],
            t.obj_param.as_ref().unwrap()["x"]
        ),
        (1, 3)
    );
    assert_eq!(
        (
            t.arr.as_ref().unwrap().last(),
            t.arr_param.as_ref().unwrap().last()
        ),
        (Some(&6), Some(&10))
    );

    type Selected = (
        serde_json::Value,
        serde_json::Value,
        Option<serde_json::Value>,
        Option<bool>,
        Option<serde_json::Value>,
    );
    let selected: Selected = props_test::table
        .select((
            props_test::profile,
            props_test::parameter,
            props_test_props::raw(),
            props_test_props::flag(),
            props_test_props::obj_param(),
        ))
        .gino()
        .bind(&KINDS)
        .one()
        .await
        .unwrap();
    assert_eq!(
        selected,
        (
            json!({"arr": [3, 4, 5, 6], "obj": {"x": 1, "y": 2}, "raw": {"a": [1, 2]}, "flag": true}),
            json!({"arr_param": [7, 8, 9, 10], "obj_param": {"x": 3, "y": 4}, "raw_param": {"a": [3, 4]}, "flag_param": false}),
            Some(json!({"a": [1, 2]})),
            Some(true),
            Some(json!({"x": 3, "y": 4})),
        )
    );
    // A boolean property filters as SQL's boolean, an object's key by
    // diesel's JSONB operators.
    t.update()
        .set_property(props_test_props::flag_param(), true)
        .apply()
        .await
        .unwrap();
    assert_eq!(t.flag_param, Some(true));
    t.update()
        .set_property(props_test_props::flag_param(), false)
        .apply()
        .await
        .unwrap();
    let flagged: i64 = props_test::table
        .filter(props_test_props::flag().eq(true))
        .filter(props_test_props::flag_param().eq(false))
        .count()
        .gino()
        .bind(&KINDS)
        .one()
        .await
        .unwrap();
    assert_eq!(flagged, 1);

    // Objects and arrays are replaced whole, in memory and stored.
    t.update()
        .obj(xy(10, 20))
        .obj_param(xy(30, 45))
        .arr(vec![4, 5, 6, 7])
        .arr_param(vec![11, 12, 13, 14, 15])
        .apply()
        .await
        .unwrap();
    assert_eq!(
        (
            t.obj.as_ref().unwrap()["x"],
            t.obj_param.as_ref().unwrap()["y"]
        ),
        (10, 45)
    );
    assert_eq!(PropsTest::get(t.id).await.unwrap().unwrap(), t);

    // A table made by another program (Python GINO's `db.Column(JSONB())`)
    // may hold SQL NULL in a column of properties: read as none, and an
    // update merges into it.
    for sql in [
        "ALTER TABLE props_test ALTER COLUMN parameter DROP NOT NULL",
        "UPDATE props_test SET parameter = NULL",
    ] {
        KINDS.status(diesel::sql_query(sql)).await.unwrap();
    }
    let nulled = PropsTest::get(t.id).await.unwrap().unwrap();
    assert_eq!(
        (
            nulled.raw_param,
            nulled.flag_param,
            nulled.arr_param,
            nulled.flag
        ),
        (None, None, None, Some(true))
    );
    t.update().flag_param(true).apply().await.unwrap();
    let stored: serde_json::Value = props_test::table
        .find(t.id)
        .select(props_test::parameter)
        .gino()
        .bind(&KINDS)
        .one()
        .await
        .unwrap();
    assert_eq!(stored, json!({"flag_param": true}));

    // A property with no value to store is refused before anything is
    // sent, as `build()` refuses it.
    let unset = Home::create().await;
    assert!(
        matches!(
            unset,
            Err(Error::MissingValue {
                field: "address",
                ..
            })
        ),
        "{unset:?}"
    );
    assert!(matches!(
        Home::create().build(),
        Err(Error::MissingValue { .. })
    ));
    assert_eq!(Home::query().gino().all().await.unwrap(), []);
    let home = Address {
        city: "Oslo".into(),
        zip: None,
    };
    let mut made = Home::create().address(home.clone()).await.unwrap();
    assert_eq!(Home::get(made.id).await.unwrap().unwrap().address, home);
    // Set in SQL, a JSON null is refused as NULL is, where the field's
    // type does not read it: stored, the row would no longer load.
    let refused = made
        .update()
        .set_property(homes_props::address(), json!(null))
        .apply()
        .await
        .map(|_| "stored");
    let refused = refused.unwrap_err().to_string();
    assert!(
        refused.contains("`address` cannot be set to NULL or JSON null"),
        "{refused}"
    );
    let fetched = Home::get(made.id).await.unwrap().unwrap();
    assert_eq!(fetched.address, home, "the row still loads");
    made.update()
        .set_property(homes_props::extra(), json!(null))
        .apply()
        .await
        .unwrap();
    made.update()
        .set_property(homes_props::extra(), json!({"pets": 2}))
        .apply()
        .await
        .unwrap();
    assert_eq!(made.extra, json!({"pets": 2}));

    // GINO's test_json_path: a plain JSONB column filtered by a path.
    let found: Option<PropsTest> = PropsTest::query()
        .filter(
            props_test::data
                .retrieve_by_path_as_text(vec!["a".to_owned(), "b".to_owned()])
                .eq("c"),
        )
        .gino()
        .bind(&KINDS)
        .first()
        .await
        .unwrap();
    assert_eq!(found.map(|f| f.data), Some(t.data.clone()));
    KINDS.pop_bind().unwrap().close().await;
}

static DASHED: Gino = Gino::secondary();

diesel::table! {
    #[sql_name = "user-profiles"]
    user_profiles (id) {
        id -> Integer,
        profile -> Jsonb,
    }
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "user-profiles", diesel_table = user_profiles, db = DASHED)]
pub struct UserProfile {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(property)]
    pub age: Option<i32>,
}

/// A table whose name is no Rust identifier, declared with diesel's
/// `table!`, has its properties' expressions under its module's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_named_unlike_rust_has_its_properties_under_its_modules_name() {
    let database = gino_testkit::TestDatabase::create().await;
    DASHED.set_bind(database.url()).await.unwrap();
    DASHED
        .status(diesel::sql_query(
            r#"CREATE TABLE "user-profiles" (id serial PRIMARY KEY, profile jsonb NOT NULL DEFAULT '{}')"#,
        ))
        .await
        .unwrap();
    UserProfile::create().age(30).await.unwrap();
    UserProfile::create().age(40).await.unwrap();
    let older: Vec<UserProfile> = UserProfile::query()
        .filter(user_profiles_props::age().gt(35))
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(older.iter().map(|p| p.age).collect::<Vec<_>>(), [Some(40)]);
    DASHED.pop_bind().unwrap().close().await;
}

/// A property whose field is no `Option` is never set to NULL in SQL: a
/// value computed from a missing key (`visits + 1`), or a NULL given, is
/// refused by the server, and the row keeps what it had and still loads.
async fn a_required_property_is_not_set_to_null() {
    let mut p = Person::create().name("nil").await.unwrap();
    DB.status(
        diesel::sql_query("UPDATE people SET profile = profile - 'visits' WHERE id = $1")
            .bind::<diesel::sql_types::Integer, _>(p.id),
    )
    .await
    .unwrap();
    let err = p
        .update()
        .set_property(people_props::visits(), people_props::visits() + 1_i64)
        .apply()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("property `visits` cannot be set to NULL"),
        "{err}"
    );
    let err = p
        .update()
        .set_property(people_props::visits(), None::<i64>)
        .apply()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be set to NULL"), "{err}");
    let kept = Person::get(p.id).await.unwrap().unwrap();
    assert_eq!(kept.visits, 0, "the default, the key still missing");
    // Given one, it goes as it is; an Option's property takes NULL.
    p.update()
        .set_property(
            people_props::visits(),
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "COALESCE(CAST(profile ->> 'visits' AS BIGINT), 0) + 1",
            ),
        )
        .set_property(people_props::age(), None::<i32>)
        .apply()
        .await
        .unwrap();
    assert_eq!((p.visits, p.age), (1, None));
    // A date-time set in SQL is stored as gino (and GINO) writes one.
    p.update()
        .set_property(people_props::joined(), joined())
        .apply()
        .await
        .unwrap();
    assert_eq!(p.joined, Some(joined()));
    assert_eq!(profile(p.id).await["joined"], "2018-11-19T12:00:00.000000");
    // One GINO's format cannot write (no infinity, no era) is refused, not
    // stored as null or as a year of the other era.
    for odd in [
        "'infinity'::timestamptz",
        "'-infinity'::timestamptz",
        "'0044-03-15 12:00:00+00 BC'::timestamptz",
    ] {
        let refused = p
            .update()
            .set_property(
                people_props::joined(),
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
                    odd,
                ),
            )
            .apply()
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("`joined` holds date-times as GINO"),
            "{odd}: {refused}"
        );
    }
    assert_eq!(profile(p.id).await["joined"], "2018-11-19T12:00:00.000000");
}
