//! The application-level flow of DESIGN.md: a `static DB: Gino`, plain
//! diesel queries run with `.gino()` on it, contextual transactions. This
//! binary holds a single test because the default database is process-wide.

use diesel::dsl::sql;
use diesel::sql_types::Integer;
use gino::prelude::*;

diesel::table! {
    users (id) {
        id -> Integer,
        nickname -> Text,
    }
}

static DB: Gino = Gino::new();
static OTHER_DEFAULT: Gino = Gino::new();
static REPORTING: Gino = Gino::secondary();

async fn count() -> gino::Result<i64> {
    users::table.count().gino().one().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_database_flow() -> gino::Result<()> {
    let database = gino_testkit::TestDatabase::create().await;
    let other = gino_testkit::TestDatabase::create().await;

    assert!(matches!(count().await, Err(gino::Error::Uninitialized)));
    DB.set_bind(database.url()).await?;
    // A secondary database never becomes what `.gino()` falls back to.
    REPORTING.set_bind(other.url()).await?;

    DB.status(diesel::sql_query(
        "CREATE TABLE users (id serial PRIMARY KEY, nickname text NOT NULL DEFAULT 'noname')",
    ))
    .await?;
    let id: i32 = diesel::insert_into(users::table)
        .values(users::nickname.eq("fantix"))
        .returning(users::id)
        .gino()
        .one()
        .await?;
    assert_eq!(id, 1);

    // Rolled back: the block's error comes back, nothing is saved, and the
    // implicit insert ran on the transaction without being handed it.
    let failed: Result<(), gino::Error> = DB
        .transaction(async {
            diesel::insert_into(users::table)
                .values(users::nickname.eq("daisy"))
                .gino()
                .status()
                .await?;
            assert_eq!(count().await?, 2);
            Err(gino::Error::NoSuchRow)
        })
        .await;
    assert!(matches!(failed, Err(gino::Error::NoSuchRow)));
    assert_eq!(count().await?, 1);

    // The newest bound default database wins; popping it restores the older.
    OTHER_DEFAULT.set_bind(other.url()).await?;
    let on_other: i32 = diesel::select(sql::<Integer>("1")).gino().one().await?;
    assert_eq!(on_other, 1);
    assert!(
        count().await.is_err(),
        "`users` exists only in the first database"
    );
    OTHER_DEFAULT.pop_bind().expect("bound").close().await;
    assert_eq!(count().await?, 1);

    REPORTING.pop_bind().expect("bound").close().await;
    DB.pop_bind().expect("bound").close().await;
    assert!(matches!(count().await, Err(gino::Error::Uninitialized)));
    Ok(())
}
