//! Every field type a model supports, round-tripped through PostgreSQL, and
//! PostgreSQL enum types made from Rust enums.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use gino::prelude::*;

static DB: Gino = Gino::secondary();

#[derive(DbEnum, Debug, Clone, Copy, PartialEq)]
pub enum Mood {
    Happy,
    Sad,
    #[gino(rename = "so-so")]
    SoSo,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "everything", db = DB)]
pub struct Everything {
    #[gino(primary_key)]
    pub id: i64,
    pub small: i16,
    pub int: i32,
    pub real: f32,
    pub double: f64,
    pub flag: bool,
    pub text: String,
    pub bytes: Vec<u8>,
    pub ints: Vec<i32>,
    pub texts: Vec<String>,
    pub maybe: Option<String>,
    pub json: serde_json::Value,
    pub stamp: NaiveDateTime,
    pub stamp_tz: DateTime<Utc>,
    pub day: NaiveDate,
    pub time: NaiveTime,
    pub uuid: uuid::Uuid,
    #[gino(db_enum)]
    pub mood: Mood,
    #[gino(db_enum)]
    pub maybe_mood: Option<Mood>,
}

/// The scalar types of `Everything`, for bulk inserts that send each
/// column as one array.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "scalars", db = DB)]
pub struct Scalars {
    #[gino(primary_key)]
    pub id: i32,
    pub real: f32,
    pub flag: bool,
    pub text: String,
    pub bytes: Vec<u8>,
    pub maybe: Option<String>,
    pub json: serde_json::Value,
    pub stamp_tz: DateTime<Utc>,
    pub day: NaiveDate,
    pub uuid: uuid::Uuid,
    #[gino(db_enum)]
    pub mood: Mood,
    #[gino(db_enum)]
    pub maybe_mood: Option<Mood>,
}

fn sample() -> Everything {
    let day = NaiveDate::from_ymd_opt(2018, 11, 19).unwrap();
    let time = NaiveTime::from_hms_micro_opt(12, 34, 56, 789_000).unwrap();
    Everything {
        id: 0,
        small: -3,
        int: 1 << 20,
        real: 1.5,
        double: std::f64::consts::PI,
        flag: true,
        text: "GINO Is Not ORM: ünïcode, 'quotes' and \"doubles\"".into(),
        bytes: vec![0, 1, 2, 255],
        ints: vec![3, 1, 2],
        texts: vec!["a".into(), "".into(), "c,d".into()],
        maybe: None,
        json: serde_json::json!({"age": 42, "tags": ["x", "y"], "nested": {"ok": true}}),
        stamp: day.and_time(time),
        stamp_tz: day.and_time(time).and_utc(),
        day,
        time,
        uuid: uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
        mood: Mood::SoSo,
        maybe_mood: Some(Mood::Sad),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_type_round_trips_and_enums_become_types() -> gino::Result<()> {
    let database = gino_testkit::TestDatabase::create().await;
    DB.set_bind(database.url()).await?;
    DB.create_all().await?;

    // The enum type exists with the labels in order.
    let labels: Vec<String> = DB
        .all(diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "unnest(enum_range(NULL::mood))::text",
        )))
        .await?;
    assert_eq!(labels, ["happy", "sad", "so-so"]);

    // Bulk inserts of every type: arrays of columns (UNNEST) where no
    // column is an array itself, VALUES rows otherwise.
    let e = sample();
    let scalars: Vec<Scalars> = (0..3)
        .map(|i| Scalars {
            id: 0,
            real: e.real + i as f32,
            flag: i % 2 == 0,
            text: format!("{} {i}", e.text),
            bytes: e.bytes.clone(),
            maybe: (i == 1).then(|| "one".to_owned()),
            json: serde_json::json!({"i": i, "nested": [1.5, null]}),
            stamp_tz: e.stamp_tz,
            day: e.day,
            uuid: uuid::Uuid::from_u128(i as u128),
            mood: [Mood::Happy, Mood::Sad, Mood::SoSo][i],
            maybe_mood: (i != 1).then_some(Mood::SoSo),
        })
        .collect();
    assert!(
        Scalars::insert_many(scalars.clone()).compile()?[0]
            .sql()
            .contains("UNNEST")
    );
    assert_eq!(Scalars::insert_many(scalars.clone()).await?, 3);
    let back: Vec<Scalars> = Scalars::query()
        .order_by(scalars::id)
        .gino()
        .bind(&DB)
        .all()
        .await?;
    let without_ids: Vec<Scalars> = back.into_iter().map(|s| Scalars { id: 0, ..s }).collect();
    assert_eq!(without_ids, scalars);
    assert!(
        Everything::insert_many([sample()]).compile()?[0]
            .sql()
            .contains("VALUES")
    );

    let stored = sample().create().await?;
    assert_eq!(stored.id, 1, "a bigint primary key is a bigserial");
    assert_eq!(
        Everything {
            id: 0,
            ..stored.clone()
        },
        sample()
    );
    let loaded = Everything::get(stored.id).or_not_found().await?;
    assert_eq!(loaded, stored);
    let missing = Everything::get(stored.id + 1).or_not_found().await;
    assert!(matches!(missing, Err(gino::Error::NotFound)), "{missing:?}");

    // A value built in memory needs a value for each field whose type has
    // no default; the rest take their type's.
    let refused = Everything::create().text("built").build().unwrap_err();
    assert!(
        matches!(
            refused,
            gino::Error::MissingValue {
                model: "Everything",
                field: "mood"
            }
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("`mood`"), "{refused}");
    let built = Everything::create().text("built").mood(Mood::Sad).build()?;
    assert_eq!((built.id, built.maybe_mood, built.int), (0, None, 0));
    let built = built.create().await?;
    assert_eq!(
        Everything::get(built.id).or_not_found().await?.text,
        "built"
    );
    built.delete().await?;

    // Raw SQL that leaves columns out loads the model with their types'
    // defaults (GINO's passive partial load), and fails naming a left-out
    // column whose type has none.
    let partial: Everything = DB
        .one(
            gino::text("SELECT id, text, mood FROM everything WHERE id = :id")
                .bind::<diesel::sql_types::BigInt, _>("id", stored.id),
        )
        .await?;
    assert_eq!(
        (
            partial.id,
            partial.text.as_str(),
            partial.mood,
            partial.int,
            partial.maybe_mood
        ),
        (stored.id, stored.text.as_str(), stored.mood, 0, None)
    );
    let refused = DB
        .one::<Everything, _>(gino::text("SELECT id, text FROM everything"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("column `mood`"), "{refused}");

    // Enums and arrays work in filters, and NULL comes back as None.
    let happy: Vec<Everything> = Everything::query()
        .filter(everything::mood.eq(Mood::Happy))
        .gino()
        .bind(&DB)
        .all()
        .await?;
    assert!(happy.is_empty());
    let mut row = loaded;
    row.update()
        .mood(Mood::Happy)
        .maybe_mood(None::<Mood>)
        .apply()
        .await?;
    assert_eq!(row.mood, Mood::Happy);
    assert_eq!(row.maybe_mood, None);
    let count: i64 = everything::table
        .filter(everything::mood.eq(Mood::Happy))
        .filter(everything::ints.contains(vec![1, 2]))
        .count()
        .gino()
        .bind(&DB)
        .one()
        .await?;
    assert_eq!(count, 1);

    // A label the Rust enum does not know is an error, not a panic.
    DB.status(diesel::sql_query("ALTER TYPE mood ADD VALUE 'angry'"))
        .await?;
    DB.status(diesel::sql_query("UPDATE everything SET mood = 'angry'"))
        .await?;
    let err = Everything::get(row.id).await.unwrap_err();
    assert!(err.to_string().contains("angry"), "{err}");

    DB.drop_all().await?;
    let types: i64 = DB
        .one(diesel::select(
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "count(*) FROM pg_type WHERE typname = 'mood'",
            ),
        ))
        .await?;
    assert_eq!(types, 0, "drop_all drops the enum type after its table");
    DB.pop_bind().expect("bound").close().await;
    Ok(())
}

#[test]
fn partial_loads_keep_fields_without_a_default() {
    // `Mood` has no `Default`: a partial load leaves it as loaded.
    let mut row = sample();
    row.keep_only(&["id", "text"]);
    assert_eq!(row.text, sample().text);
    assert_eq!(row.int, 0);
    assert!(row.ints.is_empty());
    assert_eq!(row.mood, Mood::SoSo);
}
