//! Prepared statements, GINO's test_prepared_stmt: a query built from
//! values runs again and again on one server-side statement, loading
//! models, rows, scalars or a status, on a connection or across a pool.

mod common;

use std::time::SystemTime;

use diesel::sql_types::Timestamp;
use gino::prelude::*;
use gino::{Connection, EngineOptions, Error, Gino};

static DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "users", db = DB)]
pub struct User {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(default = "noname")]
    pub nickname: String,
}

/// How many statements `conn` keeps prepared whose text starts with
/// `start`.
async fn kept(conn: &Connection, start: &str) -> i64 {
    let q = gino::text(
        "SELECT count(*) FROM pg_prepared_statements WHERE starts_with(statement, :start)",
    )
    .bind::<diesel::sql_types::Text, _>("start", start.to_owned())
    .columns::<diesel::sql_types::BigInt>();
    conn.one(q).await.unwrap()
}

// One test: it binds the `DB` static.
#[tokio::test]
async fn compiled_statements_take_new_values_on_every_run() {
    let s = common::setup().await;
    DB.set_bind(s.engine.clone()).await.unwrap();
    DB.create_all().await.unwrap();
    let conn = s.engine.acquire().await.unwrap();

    // An INSERT ... RETURNING loading the model, once per name.
    let insert = conn.prepare(|name: String| {
        diesel::insert_into(users::table)
            .values(users::nickname.eq(name))
            .returning(User::as_returning())
    });
    let mut made = Vec::new();
    for name in ["1", "2", "3", "4", "5"] {
        let user: User = insert.run(name.to_owned()).one().await.unwrap();
        assert_eq!(user.nickname, name);
        made.push(user);
    }

    // A lookup by a bound key: first, all and scalar, and no row at all.
    let get = conn.prepare(|uid: i32| User::query().filter(users::id.eq(uid)));
    let nickname = conn.prepare(|uid: i32| {
        users::table
            .filter(users::id.eq(uid))
            .select(users::nickname)
    });
    for user in &made {
        assert_eq!(
            get.run(user.id).first::<User>().await.unwrap().as_ref(),
            Some(user)
        );
        assert_eq!(
            get.run(user.id).all::<User>().await.unwrap(),
            std::slice::from_ref(user)
        );
        let name = nickname.run(user.id).scalar::<String>().await.unwrap();
        assert_eq!(name.as_deref(), Some(user.nickname.as_str()));
    }
    assert_eq!(get.run(-1).first::<User>().await.unwrap(), None);
    assert_eq!(nickname.run(-1).scalar::<String>().await.unwrap(), None);

    // A DELETE by a bound name gives its status each time.
    let delete =
        conn.prepare(|name: String| diesel::delete(users::table.filter(users::nickname.eq(name))));
    for name in ["1", "2", "3", "4", "5"] {
        assert_eq!(
            delete.run(name.to_owned()).status().await.unwrap(),
            "DELETE 1"
        );
    }
    assert_eq!(
        delete.run("1".to_owned()).status().await.unwrap(),
        "DELETE 0"
    );

    // Every statement was parsed once, however often it ran.
    assert_eq!(kept(&conn, "INSERT INTO \"users\"").await, 1);
    assert_eq!(kept(&conn, "DELETE FROM \"users\"").await, 1);
    assert_eq!(
        kept(&conn, "SELECT \"users\".\"id\", \"users\".\"nickname\"").await,
        1
    );

    DB.pop_bind().unwrap();
}

#[tokio::test]
async fn raw_sql_without_values_runs_anew_each_time() {
    // GINO's test_statement: `conn.prepare("SELECT now()")`, scalar five
    // times, each a new time.
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let now =
        conn.prepare(|()| gino::text("SELECT now() AT TIME ZONE 'UTC'").columns::<Timestamp>());
    let mut last = None;
    for _ in 0..5 {
        let time = now.run(()).scalar::<SystemTime>().await.unwrap();
        assert!(time.is_some());
        assert_ne!(time, last, "each run is a new statement of its own");
        last = time;
    }
    assert_eq!(kept(&conn, "SELECT now()").await, 1);

    // Raw SQL with named parameters, prepared the same way.
    let plus = conn.prepare(|n: i32| {
        gino::text("SELECT :n + 1")
            .bind::<diesel::sql_types::Integer, _>("n", n)
            .columns::<diesel::sql_types::Integer>()
    });
    for n in [1, 41] {
        assert_eq!(plus.run(n).one::<i32>().await.unwrap(), n + 1);
    }
    assert_eq!(kept(&conn, "SELECT $1 + 1").await, 1);
}

#[tokio::test]
async fn an_engines_prepared_query_runs_on_whichever_connection_is_free() {
    let s = common::setup_with(EngineOptions::new().max_size(2)).await;
    // The statement sleeps, so two runs at once overlap and take both
    // connections of the pool.
    let square = s.engine.prepare(|n: i32| {
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::Integer>("")
                .bind::<diesel::sql_types::Integer, _>(n)
                .sql(" * ")
                .bind::<diesel::sql_types::Integer, _>(n)
                .sql(" FROM pg_sleep(0.2)"),
        )
    });
    let (a, b) = tokio::join!(
        gino::own_context(square.run(3).one::<i32>()),
        gino::own_context(square.run(4).one::<i32>()),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (9, 16));
    // Each connection prepared it once, on its own.
    let both = [
        s.engine.acquire().await.unwrap(),
        s.engine.acquire().await.unwrap(),
    ];
    assert_ne!(
        common::backend_pid(&both[0]).await,
        common::backend_pid(&both[1]).await
    );
    for conn in &both {
        assert_eq!(kept(conn, "SELECT $1 * $2 FROM pg_sleep").await, 1);
    }
    for conn in both {
        conn.release().await.unwrap();
    }
    common::assert_pool_clean(&s.engine).await;
}

#[tokio::test]
async fn a_released_connections_prepared_query_fails_and_says_so() {
    let s = common::setup().await;
    let conn = s.engine.acquire().await.unwrap();
    let one = conn.prepare(|n: i32| {
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::Integer>("")
                .bind::<diesel::sql_types::Integer, _>(n),
        )
    });
    assert_eq!(one.run(1).one::<i32>().await.unwrap(), 1);
    conn.release().await.unwrap();
    let after = one.run(2).one::<i32>().await;
    assert!(matches!(after, Err(Error::ConnectionReleased)), "{after:?}");
    common::assert_pool_clean(&s.engine).await;
}

static BAKERY: Gino = Gino::secondary();

/// GINO's test_bakery: a query declared before its database is bound fails
/// as uninitialized, runs once it is bound (loading models or rows, with a
/// time limit, `one_or_none`), and fails again once unbound.
#[tokio::test]
async fn a_query_declared_before_binding_runs_once_bound() {
    let by_id = BAKERY.prepare(|uid: i32| User::query().filter(users::id.eq(uid)));
    let nickname = BAKERY.prepare(|uid: i32| {
        users::table
            .filter(users::id.eq(uid))
            .select(users::nickname)
    });
    let before = by_id.run(1).first::<User>().await;
    assert!(matches!(before, Err(Error::Uninitialized)), "{before:?}");

    let s = common::setup().await;
    BAKERY.set_bind(s.engine.clone()).await.unwrap();
    User::create_table().bind(&BAKERY).await.unwrap();
    let made: User = BAKERY
        .one(
            diesel::insert_into(users::table)
                .values(users::nickname.eq("baked"))
                .returning(User::as_returning()),
        )
        .await
        .unwrap();

    let second = std::time::Duration::from_secs(1);
    let found = by_id.run(made.id).timeout(second).one::<User>().await;
    assert_eq!(found.unwrap(), made);
    assert_eq!(
        by_id.run(made.id + 1).one_or_none::<User>().await.unwrap(),
        None
    );
    assert_eq!(
        by_id.run(made.id).one_or_none::<User>().await.unwrap(),
        Some(made.clone())
    );
    assert_eq!(
        nickname.run(made.id).all::<String>().await.unwrap(),
        ["baked"]
    );
    let missing = by_id.run(made.id + 1).one::<User>().await;
    assert!(matches!(missing, Err(Error::NoResultFound)), "{missing:?}");
    // A time limit is the run's own: one too short for the statement
    // fails it, and the next run is not held to it.
    let slow = BAKERY.prepare(|seconds: f64| {
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::Integer>("1 FROM pg_sleep(")
                .bind::<diesel::sql_types::Double, _>(seconds)
                .sql(")"),
        )
    });
    let cut = slow
        .run(5.0)
        .timeout(std::time::Duration::from_millis(100))
        .one::<i32>()
        .await;
    assert!(matches!(cut, Err(Error::QueryTimeout(_))), "{cut:?}");
    assert_eq!(slow.run(0.0).one::<i32>().await.unwrap(), 1);

    BAKERY.pop_bind().unwrap();
    let after = by_id.run(made.id).first::<User>().await;
    assert!(matches!(after, Err(Error::Uninitialized)), "{after:?}");
    common::assert_pool_clean(&s.engine).await;
}
