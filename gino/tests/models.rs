//! The model layer: GINO's tutorial and CRUD reference, on real PostgreSQL.

mod common;

use std::time::Duration;

use gino::prelude::*;
use gino::{Engine, EngineOptions, Error, Gino};

static DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "users", db = DB)]
pub struct User {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(default = "noname")]
    pub nickname: String,
    #[gino(column = "real_name")]
    pub name: Option<String>,
    #[gino(server_default = "0")]
    pub balance: i64,
}

#[tokio::test]
async fn tutorial_crud() {
    let s = common::setup().await;
    DB.set_bind(s.engine.clone()).await.unwrap();
    User::create_table().await.unwrap();

    let u1 = User::create().nickname("fantix").balance(10).await.unwrap();
    assert_eq!(u1.id, 1);
    assert_eq!(u1.nickname, "fantix");
    let u2 = User::create().await.unwrap();
    assert_eq!(u2.nickname, "noname");
    assert_eq!(u2.balance, 0);

    let got = User::get(1).await.unwrap().unwrap();
    assert_eq!(got, u1);
    assert!(User::get(99).await.unwrap().is_none());

    let all: Vec<User> = User::query()
        .order_by(users::id)
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);

    let mut u = got;
    u.update()
        .nickname("daisy")
        .set(users::balance.eq(users::balance + 100))
        .apply()
        .await
        .unwrap();
    assert_eq!(u.nickname, "daisy");
    assert_eq!(u.balance, 110);
    let name: Option<String> = u.select(users::nickname).await.unwrap();
    assert_eq!(name.as_deref(), Some("daisy"));
    let reloaded = u.query().await.unwrap().unwrap();
    assert_eq!(reloaded, u);
    u.update().apply().await.unwrap(); // nothing to change

    let status = u.delete().await.unwrap();
    assert_eq!(status, "DELETE 1");
    assert!(User::get(1).await.unwrap().is_none());
    let err = u.update().nickname("gone").apply().await.unwrap_err();
    assert!(matches!(err, Error::NoSuchRow));
    // With nothing to change too: the row is gone all the same.
    let err = u.update().apply().await.unwrap_err();
    assert!(matches!(err, Error::NoSuchRow), "{err}");

    let mut memory = User {
        id: 0,
        nickname: "memory".into(),
        name: Some("M".into()),
        balance: 5,
    };
    memory.nickname.push_str(" (founder)");
    let stored = memory.create().await.unwrap();
    assert_eq!(stored.nickname, "memory (founder)");
    assert_eq!(stored.id, 3);
    DB.pop_bind();
}

// ---------------------------------------------------------------------------
// Shared set-up. `Gino` statics are process-wide and tests run in parallel,
// so every test below binds a static of its own (declared in its module,
// with models pointing at it) to a fresh database of its own.

/// A fresh database with `db` bound to an engine on it.
async fn bound(db: &'static Gino) -> common::Setup {
    bound_with(db, EngineOptions::new()).await
}

async fn bound_with(db: &'static Gino, options: EngineOptions) -> common::Setup {
    let s = common::setup_with(options).await;
    db.set_bind(s.engine.clone()).await.unwrap();
    s
}

/// The rows of a catalog query that selects one text column named `v`.
async fn catalog(engine: &Engine, sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let rows: Vec<Row> = engine.all(diesel::sql_query(sql)).await.unwrap();
    rows.into_iter().map(|r| r.v).collect()
}

/// `name type nullable default` of each column of `table`, in order, as
/// information_schema shows them (`-` for no default).
async fn columns(engine: &Engine, table: &str) -> Vec<String> {
    catalog(
        engine,
        &format!(
            "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || \
             coalesce(column_default, '-') AS v FROM information_schema.columns \
             WHERE table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
    .await
}

/// `name: definition` of each index of `table`, by name, from pg_indexes.
async fn indexes(engine: &Engine, table: &str) -> Vec<String> {
    catalog(
        engine,
        &format!(
            "SELECT indexname || ': ' || indexdef AS v FROM pg_indexes \
             WHERE tablename = '{table}' ORDER BY indexname"
        ),
    )
    .await
}

/// Asserts that `result` failed with a database error of SQLSTATE `code`
/// naming `constraint`; returns the error for further checks.
fn violation<T: std::fmt::Debug>(
    result: gino::Result<T>,
    code: &str,
    constraint: Option<&str>,
) -> gino::DatabaseError {
    match result {
        Err(Error::Database(e)) => {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.constraint(), constraint, "{e}");
            *e
        }
        other => panic!("expected SQLSTATE {code}, got {other:?}"),
    }
}

/// Holds an exclusive lock on `table` in a transaction of a connection of
/// its own, so that every statement on the table waits until the returned
/// transaction ends: the way to make a model call slow enough to time out.
/// The connection is returned too, because dropping it would end the
/// transaction.
async fn lock_table(engine: &Engine, table: &str) -> (gino::Connection, gino::Transaction) {
    // Not reusable: the implicit queries of the test must not run on it.
    let conn = engine.acquire().reusable(false).await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.connection()
        .status(diesel::sql_query(format!(
            "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        )))
        .await
        .unwrap();
    (conn, tx)
}

/// The tutorial's `User` (serial id, client default, renamed nullable
/// column, server default), declared on a `Gino` static of the calling
/// module's own, plus `setup()`: that static bound to a fresh database
/// holding the users table.
macro_rules! users_on {
    ($db:ident) => {
        static $db: Gino = Gino::secondary();

        #[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
        #[gino(table = "users", db = $db)]
        pub struct User {
            #[gino(primary_key)]
            pub id: i32,
            #[gino(default = "noname")]
            pub nickname: String,
            #[gino(column = "real_name")]
            pub name: Option<String>,
            #[gino(server_default = "0")]
            pub balance: i64,
        }

        #[allow(dead_code)]
        async fn setup() -> common::Setup {
            setup_with(EngineOptions::new()).await
        }

        #[allow(dead_code)]
        async fn setup_with(options: EngineOptions) -> common::Setup {
            let s = super::bound_with(&$db, options).await;
            User::create_table().await.unwrap();
            s
        }

        /// Users named `names`, created in order (ids 1, 2, ...).
        #[allow(dead_code)]
        async fn users(names: &[&str]) -> Vec<User> {
            let mut created = Vec::new();
            for name in names {
                created.push(User::create().nickname(*name).await.unwrap());
            }
            created
        }

        /// The stored row, read by a plain diesel query (not the model API).
        #[allow(dead_code)]
        async fn stored(id: i32) -> Option<(String, Option<String>, i64)> {
            users::table
                .find(id)
                .select((users::nickname, users::name, users::balance))
                .gino()
                .bind(&$db)
                .first()
                .await
                .unwrap()
        }
    };
}

// ---------------------------------------------------------------------------
// The tutorial and the CRUD reference, one behaviour per test.

mod create {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn returns_the_stored_row_with_database_assigned_values() {
        let _s = setup().await;
        let u1 = User::create().nickname("fantix").await.unwrap();
        // id from the sequence, balance from the server default: both come
        // back through RETURNING.
        assert_eq!(
            u1,
            User {
                id: 1,
                nickname: "fantix".into(),
                name: None,
                balance: 0,
            }
        );
        let u2 = User::create()
            .nickname("daisy")
            .name("Daisy".to_owned())
            .balance(7)
            .await
            .unwrap();
        assert_eq!((u2.id, u2.balance), (2, 7));
        assert_eq!(
            stored(2).await,
            Some(("daisy".into(), Some("Daisy".into()), 7))
        );
    }
}

mod instance_create {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn inserts_a_value_built_in_memory() {
        let _s = setup().await;
        let mut user = User {
            id: 0,
            nickname: "fantix".into(),
            name: Some("Fantix".into()),
            balance: 5,
        };
        user.nickname += " (founder)";
        let stored_user = user.create().await.unwrap();
        // The serial id is the database's, not the value's 0; the rest is
        // the value's (a client default does not override it).
        assert_eq!(
            stored_user,
            User {
                id: 1,
                ..user.clone()
            }
        );
        assert_eq!(user.id, 0, "the value in memory is not touched");
        // Creating the same value again inserts another row.
        assert_eq!(user.create().await.unwrap().id, 2);
        assert_eq!(
            stored(1).await,
            Some(("fantix (founder)".into(), Some("Fantix".into()), 5))
        );
    }
}

mod built_value {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn takes_client_defaults_without_touching_the_database() {
        let _s = setup().await;
        // GINO's `User()`: client defaults filled in memory, nothing sent.
        let built = User::create().name("Fantix".to_owned()).build().unwrap();
        assert_eq!(
            built,
            User {
                id: 0,
                nickname: "noname".into(),
                name: Some("Fantix".into()),
                balance: 0,
            }
        );
        assert!(stored(1).await.is_none());
        let created = built.create().await.unwrap();
        assert_eq!(created.id, 1);
        assert_eq!(
            stored(1).await,
            Some(("noname".into(), Some("Fantix".into()), 0))
        );
    }
}

mod bulk_keys {
    use super::*;
    users_on!(DB);

    fn user(id: i32, nickname: &str) -> User {
        User {
            id,
            nickname: nickname.into(),
            name: None,
            balance: 0,
        }
    }

    #[tokio::test]
    async fn insert_many_keeps_the_serial_keys_rows_hold() {
        let _s = setup().await;
        // GINO's executemany inserts the keys it is given; a key of 0 is
        // the sequence's, in the same batch.
        let stored = User::insert_many([user(10, "ten"), user(0, "seq"), user(20, "twenty")])
            .returning()
            .await
            .unwrap();
        let ids: Vec<i32> = stored.iter().map(|u| u.id).collect();
        assert_eq!(ids, [10, 1, 20]);
        assert_eq!(
            User::insert_many([user(30, "thirty"), user(0, "seq2")])
                .await
                .unwrap(),
            2
        );
        assert_eq!(stored_nickname(30).await.as_deref(), Some("thirty"));
        assert_eq!(stored_nickname(2).await.as_deref(), Some("seq2"));
        // Without keys the batch is the sequence's alone, as before.
        let plain = User::insert_many([user(0, "a"), user(0, "b")])
            .returning()
            .await
            .unwrap();
        assert_eq!(plain.iter().map(|u| u.id).collect::<Vec<_>>(), [3, 4]);
    }

    async fn stored_nickname(id: i32) -> Option<String> {
        User::get(id).await.unwrap().map(|u| u.nickname)
    }
}

mod built_key {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn keeps_a_serial_key_it_holds() {
        let _s = setup().await;
        // GINO's `User(id=7, ...).create()` inserts the key it was given,
        // from the builder and from a value made by hand alike.
        let built = User::create()
            .id(7)
            .name("seven".to_owned())
            .build()
            .unwrap();
        assert_eq!(built.create().await.unwrap().id, 7);
        let by_hand = User {
            id: 9,
            nickname: "nine".into(),
            name: None,
            balance: 0,
        };
        assert_eq!(by_hand.create().await.unwrap(), by_hand);
        assert_eq!(stored(9).await, Some(("nine".into(), None, 0)));
        // Without one (0), the sequence assigns it.
        let fresh = User::create().name("fresh".to_owned()).build().unwrap();
        assert_eq!(fresh.create().await.unwrap().id, 1);
    }
}

mod get {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn loads_by_primary_key_or_returns_none() {
        let _s = setup().await;
        let created = users(&["fantix", "daisy"]).await;
        assert_eq!(User::get(2).await.unwrap().as_ref(), Some(&created[1]));
        assert_eq!(User::get(3).await.unwrap(), None);
        // Stateless: getting the same row twice gives two equal values.
        let (a, mut b) = (User::get(1).await.unwrap(), User::get(1).await.unwrap());
        assert_eq!(a, b);
        b.as_mut().unwrap().nickname.clear();
        assert_eq!(a.unwrap().nickname, "fantix");
    }
}

mod query {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn loads_models_through_diesel_filters_orders_and_limits() {
        let _s = setup().await;
        let created = users(&["fantix", "daisy", "dodo", "zed"]).await;
        let all: Vec<User> = User::query().gino().bind(&DB).all().await.unwrap();
        assert_eq!(all.len(), 4);
        let founding: Vec<User> = User::query()
            .filter(users::id.lt(3))
            .order_by(users::id.desc())
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(founding, [created[1].clone(), created[0].clone()]);
        let with_d: Vec<String> = User::query()
            .filter(users::nickname.like("%d%"))
            .order_by(users::nickname)
            .limit(1)
            .offset(1)
            .gino()
            .bind(&DB)
            .all::<User>()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.nickname)
            .collect();
        assert_eq!(with_d, ["dodo"]);
        let fantix: Option<User> = User::query()
            .filter(users::nickname.eq("fantix"))
            .gino()
            .bind(&DB)
            .first()
            .await
            .unwrap();
        assert_eq!(fantix.as_ref(), Some(&created[0]));
        let nobody: Option<User> = User::query()
            .filter(users::nickname.eq("nobody"))
            .gino()
            .bind(&DB)
            .first()
            .await
            .unwrap();
        assert_eq!(nobody, None);
    }
}

mod select {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn returns_plain_rows_of_the_chosen_columns() {
        let _s = setup().await;
        users(&["fantix", "daisy", "dodo"]).await;
        let name: Option<String> = User::select(users::nickname)
            .filter(users::id.eq(1))
            .gino()
            .bind(&DB)
            .scalar()
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("fantix"));
        let rows: Vec<(i32, String)> = User::select((users::id, users::nickname))
            .filter(users::id.gt(1))
            .order_by(users::id)
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(rows, [(2, "daisy".to_owned()), (3, "dodo".to_owned())]);
        let population: i64 = User::select(diesel::dsl::count(users::id))
            .gino()
            .bind(&DB)
            .one()
            .await
            .unwrap();
        assert_eq!(population, 3);
    }
}

mod instance_query {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn reloads_the_row_located_by_its_primary_key() {
        let _s = setup().await;
        let created = users(&["fantix", "daisy"]).await;
        let daisy = &created[1];
        // Changed behind the value's back: the value keeps what it had,
        // query() and select() see the database.
        diesel::update(users::table.find(daisy.id))
            .set(users::nickname.eq("daisy2"))
            .gino()
            .bind(&DB)
            .status()
            .await
            .unwrap();
        assert_eq!(daisy.nickname, "daisy");
        let reloaded = daisy.query().await.unwrap().unwrap();
        assert_eq!((reloaded.id, reloaded.nickname.as_str()), (2, "daisy2"));
        let name: Option<String> = daisy.select(users::nickname).await.unwrap();
        assert_eq!(name.as_deref(), Some("daisy2"));
        let pair: Option<(i32, i64)> = daisy.select((users::id, users::balance)).await.unwrap();
        assert_eq!(pair, Some((2, 0)));
        daisy.delete().await.unwrap();
        assert_eq!(daisy.query().await.unwrap(), None);
        let gone: Option<String> = daisy.select(users::nickname).await.unwrap();
        assert_eq!(gone, None);
    }
}

mod update_in_memory {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn setters_change_the_value_at_once_and_the_database_on_apply() {
        let _s = setup().await;
        let mut u = User::create().nickname("fantix").await.unwrap();
        // An update request that is never applied has still changed the
        // value in memory, and nothing in the database.
        drop(u.update().nickname("daisy").name("Daisy".to_owned()));
        assert_eq!(
            (u.nickname.as_str(), u.name.as_deref()),
            ("daisy", Some("Daisy"))
        );
        assert_eq!(stored(1).await, Some(("fantix".into(), None, 0)));

        u.update().nickname("daisy").apply().await.unwrap();
        assert_eq!(stored(1).await, Some(("daisy".into(), None, 0)));
        // A nullable column is set back to NULL with None.
        u.update().name(None::<String>).apply().await.unwrap();
        assert_eq!(u.name, None);
        assert_eq!(User::get(1).await.unwrap().as_ref(), Some(&u));
    }
}

mod update_one_statement {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn chained_changes_run_as_one_update_returning() {
        // Echo logs every statement, so the log counts the UPDATEs.
        let _s = setup_with(EngineOptions::new().echo(true)).await;
        let mut u = User::create().nickname("fantix").await.unwrap();
        let (result, log) = common::with_log(async {
            u.update()
                .nickname("daisy")
                .name("Daisy".to_owned())
                .set(users::balance.eq(users::balance + 5))
                .apply()
                .await
        })
        .await;
        result.unwrap();
        assert_eq!(log.matches("UPDATE").count(), 1, "{log}");
        assert!(log.contains("RETURNING"), "{log}");
        assert_eq!(
            stored(1).await,
            Some(("daisy".into(), Some("Daisy".into()), 5))
        );
        // Nothing to change: nothing runs.
        let (result, log) = common::with_log(u.update().apply()).await;
        result.unwrap();
        assert!(!log.contains("UPDATE"), "{log}");
    }
}

mod update_last_wins {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn a_column_changed_twice_takes_the_last_change() {
        let _s = setup().await;
        let mut u = User::create().nickname("fantix").balance(10).await.unwrap();
        u.update()
            .nickname("a")
            .nickname("b")
            .apply()
            .await
            .unwrap();
        assert_eq!(u.nickname, "b");
        assert_eq!(stored(1).await.unwrap().0, "b");

        // A value, then an expression: the expression (10 + 100).
        u.update()
            .balance(5)
            .set(users::balance.eq(users::balance + 100))
            .apply()
            .await
            .unwrap();
        assert_eq!(u.balance, 110);
        // An expression, then a value: the value.
        u.update()
            .set(users::balance.eq(users::balance + 100))
            .balance(7)
            .apply()
            .await
            .unwrap();
        assert_eq!(u.balance, 7);
        // Two expressions: the second (7 + 10).
        u.update()
            .set(users::balance.eq(users::balance + 1))
            .set(users::balance.eq(users::balance + 10))
            .apply()
            .await
            .unwrap();
        assert_eq!(u.balance, 17);
        assert_eq!(stored(1).await.unwrap().2, 17);
    }
}

mod update_expression {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn is_computed_in_sql_and_the_value_refreshed_from_returning() {
        let _s = setup().await;
        let mut u = User::create().nickname("fantix").balance(10).await.unwrap();
        // Not known before apply(): the value in memory keeps its balance.
        drop(u.update().set(users::balance.eq(users::balance + 100)));
        assert_eq!(u.balance, 10);
        // Someone else changes the balance; the increment applies to the
        // database's value, not to the stale one in memory.
        diesel::update(users::table.find(1))
            .set(users::balance.eq(1000))
            .gino()
            .bind(&DB)
            .status()
            .await
            .unwrap();
        u.update()
            .set(users::balance.eq(users::balance + 100))
            .apply()
            .await
            .unwrap();
        assert_eq!(u.balance, 1100);
        assert_eq!(stored(1).await.unwrap().2, 1100);
        // An expression over a renamed column, refreshed the same way.
        u.update()
            .set(users::name.eq(users::nickname.concat(" the first").nullable()))
            .apply()
            .await
            .unwrap();
        assert_eq!(u.name.as_deref(), Some("fantix the first"));
    }
}

mod update_primary_key {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn locates_the_row_by_its_key_from_before_the_update() {
        let _s = setup().await;
        users(&["fantix", "daisy"]).await;
        let mut u = User::get(1).await.unwrap().unwrap();
        // UPDATE ... SET id = 100 WHERE id = 1
        u.update().id(100).nickname("moved").apply().await.unwrap();
        assert_eq!(u.id, 100);
        assert_eq!(User::get(1).await.unwrap(), None);
        assert_eq!(User::get(100).await.unwrap().as_ref(), Some(&u));
        assert_eq!(stored(2).await.unwrap().0, "daisy", "other rows untouched");
        // The next request locates the row by its new key.
        u.update().nickname("again").apply().await.unwrap();
        assert_eq!(stored(100).await.unwrap().0, "again");
    }
}

mod no_such_row {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn apply_on_a_row_that_is_gone_fails() {
        let _s = setup().await;
        let mut u = User::create().nickname("fantix").await.unwrap();
        diesel::delete(users::table.find(1))
            .gino()
            .bind(&DB)
            .status()
            .await
            .unwrap();
        let err = u.update().nickname("daisy").apply().await.unwrap_err();
        assert!(matches!(err, Error::NoSuchRow), "{err}");
        // Nothing was inserted in its place.
        let count: i64 = users::table.count().gino().bind(&DB).one().await.unwrap();
        assert_eq!(count, 0);
    }
}

mod delete {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn removes_the_row_returns_the_status_and_keeps_the_value() {
        let _s = setup().await;
        let created = users(&["fantix", "daisy"]).await;
        let u = created[0].clone();
        assert_eq!(u.delete().await.unwrap(), "DELETE 1");
        assert_eq!(u, created[0], "the value in memory is untouched");
        assert_eq!(User::get(u.id).await.unwrap(), None);
        assert!(User::get(2).await.unwrap().is_some(), "only its own row");
        let again = u.delete().await.unwrap();
        assert_eq!((again.tag(), again.rows()), ("DELETE 0", 0));
        // Deleted values can be created again.
        assert_eq!(u.create().await.unwrap().nickname, "fantix");
    }
}

mod class_level_update {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn updates_many_rows_and_returns_models_through_returning() {
        let _s = setup().await;
        users(&["fantix", "daisy", "dodo"]).await;
        let status = diesel::update(users::table)
            .set(
                users::nickname.eq(diesel::dsl::sql::<diesel::sql_types::Text>(
                    "'Founding Member ' || nickname",
                )),
            )
            .filter(users::id.lt(3))
            .gino()
            .bind(&DB)
            .status()
            .await
            .unwrap();
        assert_eq!(status, "UPDATE 2");
        assert_eq!(stored(1).await.unwrap().0, "Founding Member fantix");
        assert_eq!(stored(3).await.unwrap().0, "dodo");

        let mut raised: Vec<User> = diesel::update(users::table)
            .filter(users::id.ge(2))
            .set(users::balance.eq(users::balance + 50))
            .returning(User::as_returning())
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        raised.sort_by_key(|u| u.id);
        assert_eq!(
            raised
                .iter()
                .map(|u| (u.id, u.nickname.as_str(), u.balance))
                .collect::<Vec<_>>(),
            [(2, "Founding Member daisy", 50), (3, "dodo", 50)]
        );
    }
}

mod class_level_delete {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn deletes_many_rows_and_returns_models_through_returning() {
        let _s = setup().await;
        let created = users(&["fantix", "daisy", "dodo", "zed"]).await;
        let status = diesel::delete(users::table.filter(users::id.gt(3)))
            .gino()
            .bind(&DB)
            .status()
            .await
            .unwrap();
        assert_eq!(status, "DELETE 1");
        let deleted: Vec<User> = diesel::delete(users::table.filter(users::nickname.like("d%")))
            .returning(User::as_returning())
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(deleted.len(), 2);
        assert!(deleted.contains(&created[1]) && deleted.contains(&created[2]));
        let left: Vec<User> = User::query().gino().bind(&DB).all().await.unwrap();
        assert_eq!(left, [created[0].clone()]);
    }
}

mod serialize {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn serde_gives_gino_to_dict() {
        let _s = setup().await;
        let u = User::create().nickname("fantix").await.unwrap();
        // Keys are the field names (GINO: attribute names), not the column
        // names: `name`, not `real_name`.
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({"id": 1, "nickname": "fantix", "name": null, "balance": 0})
        );
    }
}

// ---------------------------------------------------------------------------
// Execution: bind, transactions and timeouts.

mod bind_transaction {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn create_get_update_delete_run_in_the_bound_transaction() {
        let s = setup().await;
        let kept = User::create().nickname("kept").await.unwrap();
        // Not reusable, so only what is bound to it runs in it: implicit
        // queries of this task keep using the engine.
        let conn = s.engine.acquire().reusable(false).await.unwrap();
        let tx = conn.begin().await.unwrap();

        let mut created = User::create().nickname("tx").bind(&tx).await.unwrap();
        let in_memory = User {
            id: 0,
            nickname: "tx2".into(),
            name: None,
            balance: 3,
        };
        let created2 = in_memory.create().bind(&conn).await.unwrap();
        assert_eq!(
            User::get(created.id).bind(&tx).await.unwrap().as_ref(),
            Some(&created)
        );
        assert_eq!(User::get(created.id).await.unwrap(), None, "uncommitted");
        created
            .update()
            .nickname("tx renamed")
            .bind(&tx)
            .apply()
            .await
            .unwrap();
        assert_eq!(
            created.query().bind(&tx).await.unwrap().as_ref(),
            Some(&created)
        );
        assert_eq!(kept.delete().bind(&tx).await.unwrap(), "DELETE 1");
        assert_eq!(kept.query().bind(&conn).await.unwrap(), None);
        assert!(kept.query().await.unwrap().is_some(), "uncommitted");

        tx.rollback().await.unwrap();
        assert_eq!(User::get(created.id).await.unwrap(), None);
        assert_eq!(User::get(created2.id).await.unwrap(), None);
        assert_eq!(User::get(kept.id).await.unwrap().as_ref(), Some(&kept));
    }
}

mod bind_unbound_db {
    use super::*;
    users_on!(DB);

    #[tokio::test]
    async fn explicit_bind_runs_and_implicit_execution_is_uninitialized() {
        // The models' database stays unbound: everything goes to the engine.
        let s = common::setup().await;
        User::create_table().bind(&s.engine).await.unwrap();
        let mut u = User::create()
            .nickname("fantix")
            .bind(&s.engine)
            .await
            .unwrap();
        assert_eq!(
            User::get(1).bind(&s.engine).await.unwrap().as_ref(),
            Some(&u)
        );
        u.update()
            .nickname("daisy")
            .bind(&s.engine)
            .apply()
            .await
            .unwrap();
        assert_eq!(u.query().bind(&s.engine).await.unwrap().as_ref(), Some(&u));
        assert!(matches!(User::get(1).await, Err(Error::Uninitialized)));
        assert!(matches!(User::create().await, Err(Error::Uninitialized)));
        assert!(matches!(u.query().await, Err(Error::Uninitialized)));
        assert!(matches!(u.delete().await, Err(Error::Uninitialized)));
        assert!(matches!(
            u.update().nickname("x").apply().await,
            Err(Error::Uninitialized)
        ));
        assert_eq!(u.delete().bind(&s.engine).await.unwrap(), "DELETE 1");
    }
}

mod timeout {
    use super::*;
    users_on!(DB);

    fn assert_timeout<T: std::fmt::Debug>(result: gino::Result<T>) {
        assert!(
            matches!(result, Err(Error::QueryTimeout(d)) if d == SHORT),
            "{result:?}"
        );
    }

    const SHORT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn every_model_call_times_out_and_is_cancelled() {
        let s = setup().await;
        let mut u = User::create().nickname("fantix").await.unwrap();
        let (_conn, lock) = lock_table(&s.engine, "users").await;
        assert_timeout(User::create().nickname("late").timeout(SHORT).await);
        assert_timeout(u.create().timeout(SHORT).await);
        assert_timeout(User::get(1).timeout(SHORT).await);
        assert_timeout(u.query().timeout(SHORT).await);
        assert_timeout(u.select::<_, String>(users::nickname).timeout(SHORT).await);
        assert_timeout(u.update().nickname("late").timeout(SHORT).apply().await);
        assert_timeout(u.delete().timeout(SHORT).await);
        lock.rollback().await.unwrap();
        // The cancelled statements did nothing, and a generous timeout
        // lets the same calls through.
        let rows: Vec<User> = User::query().gino().bind(&DB).all().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].nickname, "fantix");
        let ok = Duration::from_secs(5);
        u.update()
            .nickname("daisy")
            .timeout(ok)
            .apply()
            .await
            .unwrap();
        assert_eq!(User::get(1).timeout(ok).await.unwrap().as_ref(), Some(&u));
    }
}

// ---------------------------------------------------------------------------
// Keys: composite, renamed, text, serial or not, custom lookups.

mod composite_key {
    use super::*;

    static DB: Gino = Gino::secondary();

    /// GINO's Booking, with the day as ISO text (gino's date mapping needs
    /// the chrono feature, which the tests do not enable).
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(
        table = "bookings",
        db = DB,
        index(name = "bookings_idx_day_room", columns(day, room), unique),
        index(name = "bookings_idx_booker_room", columns(booker, room))
    )]
    pub struct Booking {
        #[gino(primary_key)]
        pub day: String,
        #[gino(primary_key)]
        pub booker: String,
        pub room: String,
    }

    fn booking(day: &str, booker: &str, room: &str) -> Booking {
        Booking {
            day: day.into(),
            booker: booker.into(),
            room: room.into(),
        }
    }

    #[tokio::test]
    async fn keys_indexes_lookups_and_key_changing_updates() {
        let s = bound(&DB).await;
        DB.create_all().await.unwrap();
        assert_eq!(
            indexes(&s.engine, "bookings").await,
            [
                "bookings_idx_booker_room: CREATE INDEX bookings_idx_booker_room ON \
                 public.bookings USING btree (booker, room)",
                "bookings_idx_day_room: CREATE UNIQUE INDEX bookings_idx_day_room ON \
                 public.bookings USING btree (day, room)",
                "bookings_pkey: CREATE UNIQUE INDEX bookings_pkey ON public.bookings USING \
                 btree (day, booker)",
            ]
        );

        let a = booking("2024-01-01", "fantix", "101")
            .create()
            .await
            .unwrap();
        let b = Booking::create()
            .day("2024-01-01")
            .booker("daisy")
            .room("102")
            .await
            .unwrap();
        // Key order is declaration order: (day, booker).
        let got = Booking::get(("2024-01-01".to_owned(), "daisy".to_owned())).await;
        assert_eq!(got.unwrap().as_ref(), Some(&b));
        assert_eq!(
            Booking::get(("daisy".to_owned(), "2024-01-01".to_owned()))
                .await
                .unwrap(),
            None
        );
        // Same day and room: the unique index refuses it, by name.
        violation(
            booking("2024-01-01", "zed", "101").create().await,
            "23505",
            Some("bookings_idx_day_room"),
        );

        // Both key columns change; the row is located by the old pair.
        let mut moved = a.clone();
        moved
            .update()
            .day("2024-01-02")
            .booker("fantix2")
            .apply()
            .await
            .unwrap();
        assert_eq!(
            Booking::get((a.day.clone(), a.booker.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(moved.query().await.unwrap().as_ref(), Some(&moved));
        assert_eq!(b.query().await.unwrap().as_ref(), Some(&b), "untouched");
        assert_eq!(moved.delete().await.unwrap(), "DELETE 1");
        let left: Vec<Booking> = Booking::query().gino().bind(&DB).all().await.unwrap();
        assert_eq!(left, [b]);
    }
}

mod renamed_columns {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "members", db = DB)]
    pub struct Member {
        #[gino(primary_key, column = "member_id")]
        pub id: i32,
        #[gino(column = "real_name")]
        pub name: String,
        // A Rust keyword as a column name.
        pub r#type: String,
    }

    #[tokio::test]
    async fn the_database_sees_column_names_and_rust_sees_field_names() {
        let s = bound(&DB).await;
        Member::create_table().await.unwrap();
        assert_eq!(
            columns(&s.engine, "members").await,
            [
                "member_id integer NO nextval('members_member_id_seq'::regclass)",
                "real_name text NO -",
                "type text NO -",
            ]
        );
        let mut m = Member::create()
            .name("Fantix")
            .r#type("founder")
            .await
            .unwrap();
        assert_eq!(m.id, 1);
        assert_eq!(Member::get(1).await.unwrap().as_ref(), Some(&m));
        m.update().id(5).name("Daisy").apply().await.unwrap();
        let found: Vec<Member> = Member::query()
            .filter(members::name.eq("Daisy"))
            .filter(members::r#type.eq("founder"))
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(found, [m.clone()]);
        // Raw SQL uses the database's names.
        let raw = catalog(
            &s.engine,
            "SELECT member_id || ' ' || real_name AS v FROM members",
        )
        .await;
        assert_eq!(raw, ["5 Daisy"]);
        assert_eq!(m.delete().await.unwrap(), "DELETE 1");
    }
}

mod text_key {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "tags", db = DB)]
    pub struct Tag {
        #[gino(primary_key)]
        pub slug: String,
        pub label: String,
    }

    #[tokio::test]
    async fn get_update_and_delete_by_a_text_key() {
        let s = bound(&DB).await;
        Tag::create_table().await.unwrap();
        assert_eq!(
            columns(&s.engine, "tags").await,
            ["slug text NO -", "label text NO -"],
            "a text key is not serial"
        );
        let mut rust = Tag::create().slug("rust").label("Rust").await.unwrap();
        Tag::create().slug("go").label("Go").await.unwrap();
        assert_eq!(Tag::get("rust").await.unwrap().as_ref(), Some(&rust));
        assert_eq!(Tag::get(String::from("python")).await.unwrap(), None);
        rust.update().slug("rust-lang").apply().await.unwrap();
        assert_eq!(Tag::get("rust").await.unwrap(), None);
        assert_eq!(Tag::get("rust-lang").await.unwrap().as_ref(), Some(&rust));
        assert_eq!(rust.delete().await.unwrap(), "DELETE 1");
        assert!(Tag::get("go").await.unwrap().is_some());
    }
}

mod serial_keys {
    use super::*;

    static DB: Gino = Gino::secondary();

    /// A single integer key the application assigns.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "invoices", db = DB)]
    pub struct Invoice {
        #[gino(primary_key, autoincrement = false)]
        pub number: i32,
        pub total: i64,
    }

    /// A single bigint key: bigserial.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "events", db = DB)]
    pub struct Event {
        #[gino(primary_key)]
        pub id: i64,
        pub kind: String,
    }

    /// A composite integer key: neither column is serial.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "memberships", db = DB)]
    pub struct Membership {
        #[gino(primary_key)]
        pub group_id: i32,
        #[gino(primary_key)]
        pub user_id: i32,
    }

    #[tokio::test]
    async fn only_a_single_integer_key_is_serial_unless_turned_off() {
        let s = bound(&DB).await;
        DB.create_all().await.unwrap();
        assert_eq!(
            columns(&s.engine, "invoices").await,
            ["number integer NO -", "total bigint NO -"]
        );
        assert_eq!(
            columns(&s.engine, "events").await,
            [
                "id bigint NO nextval('events_id_seq'::regclass)",
                "kind text NO -"
            ]
        );
        assert_eq!(
            columns(&s.engine, "memberships").await,
            ["group_id integer NO -", "user_id integer NO -"]
        );

        let invoice = Invoice::create().number(1001).total(5).await.unwrap();
        assert_eq!(invoice.number, 1001);
        let built = Invoice {
            number: 1002,
            total: 6,
        };
        assert_eq!(
            built.create().await.unwrap(),
            built,
            "the value's key is kept"
        );
        // Without its key the insert has no value for a NOT NULL column.
        let err = violation(Invoice::create().total(1).await, "23502", None);
        assert_eq!(err.column(), Some("number"));

        assert_eq!(Event::create().kind("a").await.unwrap().id, 1);
        let e = Event {
            id: 77,
            kind: "b".into(),
        };
        assert_eq!(
            e.create().await.unwrap().id,
            77,
            "a serial key the value holds is kept, as GINO inserts what an instance holds"
        );
        let unset = Event {
            id: 0,
            kind: "c".into(),
        };
        assert_eq!(unset.create().await.unwrap().id, 2, "0: the sequence's");

        let m = Membership::create().group_id(1).user_id(2).await.unwrap();
        assert_eq!(Membership::get((1, 2)).await.unwrap().as_ref(), Some(&m));
    }
}

/// A single integer key that is also a foreign key: the referenced row's,
/// never a sequence's. A database of its own: `serial_keys` counts its
/// sequences from 1.
mod foreign_key_keys {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "owners", db = DB)]
    pub struct Owner {
        #[gino(primary_key)]
        pub id: i64,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "owner_notes", db = DB)]
    pub struct OwnerNote {
        #[gino(primary_key, references = Owner)]
        pub owner_id: i64,
        pub note: String,
    }

    /// The same with the foreign key declared on the model.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "owner_cards", db = DB)]
    #[gino(foreign_key(columns(owner), references = "owners(id)"))]
    pub struct OwnerCard {
        #[gino(primary_key)]
        pub owner: i64,
        pub note: String,
    }

    #[tokio::test]
    async fn a_key_that_is_also_a_foreign_key_is_not_serial() {
        let s = bound(&DB).await;
        DB.create_all().await.unwrap();
        assert_eq!(
            columns(&s.engine, "owner_notes").await,
            ["owner_id bigint NO -", "note text NO -"]
        );
        assert_eq!(
            columns(&s.engine, "owner_cards").await,
            ["owner bigint NO -", "note text NO -"]
        );
        let owner = Owner::create().name("a").await.unwrap();
        // Left out, the key is missing, not some other owner's.
        let err = violation(OwnerNote::create().note("x").await, "23502", None);
        assert_eq!(err.column(), Some("owner_id"));
        let note = OwnerNote::create()
            .owner_id(owner.id)
            .note("y")
            .await
            .unwrap();
        assert_eq!(note.owner_id, owner.id);
        let err = violation(OwnerCard::create().note("x").await, "23502", None);
        assert_eq!(err.column(), Some("owner"));
    }
}

/// A model that references itself: a tree of categories.
mod self_reference {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "categories", db = DB)]
    pub struct Category {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = Self, on_delete = "cascade")]
        pub parent_id: Option<i32>,
        pub name: String,
    }

    #[tokio::test]
    async fn a_model_references_its_own_key() {
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let root = Category::create().name("root").await.unwrap();
        let leaf = Category::create()
            .parent_id(Some(root.id))
            .name("leaf")
            .await
            .unwrap();
        assert_eq!(leaf.parent_id, Some(root.id));
        violation(
            Category::create().parent_id(Some(999)).name("orphan").await,
            "23503",
            Some("categories_parent_id_fkey"),
        );
        root.delete().await.unwrap();
        assert_eq!(Category::get(leaf.id).await.unwrap(), None, "cascaded");
    }
}

/// A key whose default is a sequence of its own (GINO's `Sequence` as a
/// column's default): not serial, which would give the column two
/// defaults.
mod sequence_default_key {
    use super::*;
    use gino::schema::Sequence;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "tickets", db = DB)]
    pub struct Ticket {
        #[gino(primary_key, server_default = "nextval('ticket_numbers')")]
        pub id: i64,
        pub title: String,
    }

    #[tokio::test]
    async fn takes_its_default_and_is_not_serial() {
        let s = bound(&DB).await;
        Sequence::new("ticket_numbers").declare_in(&DB);
        DB.create_all().await.unwrap();
        assert_eq!(
            columns(&s.engine, "tickets").await,
            [
                "id bigint NO nextval('ticket_numbers'::regclass)",
                "title text NO -"
            ]
        );
        assert_eq!(Ticket::create().title("a").await.unwrap().id, 1);
        assert_eq!(Ticket::create().title("b").await.unwrap().id, 2);
        DB.drop_all().await.unwrap();
    }
}

/// `references` naming another model of the same name by its path.
mod same_name_reference {
    use super::*;

    static DB: Gino = Gino::secondary();

    pub mod legacy {
        use super::*;

        #[derive(Model, Debug, Clone, PartialEq)]
        #[gino(table = "legacy_accounts", db = DB)]
        pub struct Account {
            #[gino(primary_key)]
            pub id: i32,
        }
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "accounts", db = DB)]
    pub struct Account {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = legacy::Account)]
        pub legacy_id: Option<i32>,
    }

    #[tokio::test]
    async fn is_a_key_to_that_model_not_to_itself() {
        let sql = DB.schema_sql();
        assert!(
            sql.contains(r#"FOREIGN KEY ("legacy_id") REFERENCES "legacy_accounts" ("id")"#),
            "{sql}"
        );
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let old = legacy::Account::create().id(7).await.unwrap();
        let account = Account::create().legacy_id(old.id).await.unwrap();
        let missing = Account::create().legacy_id(8).await.unwrap_err();
        assert_eq!(missing.sqlstate(), Some("23503"), "{missing}");
        let (loaded, legacy) = DB
            .one(
                accounts::table
                    .left_join(legacy::legacy_accounts::table)
                    .filter(accounts::id.eq(account.id))
                    .select((Account::as_select(), Option::<legacy::Account>::as_select())),
            )
            .await
            .unwrap();
        assert_eq!((loaded, legacy), (account, Some(old)));
        DB.drop_all().await.unwrap();
    }
}

mod lookup_optimistic {
    use super::*;
    use gino::model::Lookup;

    static DB: Gino = Gino::secondary();

    /// A document located by its id *and* the version it was read at.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "documents", db = DB, lookup = same_version)]
    pub struct Document {
        #[gino(primary_key)]
        pub id: i32,
        pub body: String,
        #[gino(default = 1)]
        pub version: i32,
    }

    fn same_version(d: &Document) -> gino::Result<Lookup<documents::table>> {
        Ok(Lookup::new(
            documents::id.eq(d.id).and(documents::version.eq(d.version)),
        ))
    }

    #[tokio::test]
    async fn instance_calls_use_the_overridden_lookup() {
        let _s = bound(&DB).await;
        Document::create_table().await.unwrap();
        let mut mine = Document::create().body("draft").await.unwrap();
        let mut theirs = mine.clone();
        mine.update()
            .body("mine")
            .set(documents::version.eq(documents::version + 1))
            .apply()
            .await
            .unwrap();
        assert_eq!(mine.version, 2);
        // `theirs` was read at version 1: its lookup matches no row now.
        let err = theirs.update().body("theirs").apply().await.unwrap_err();
        assert!(matches!(err, Error::NoSuchRow), "{err}");
        assert_eq!(theirs.query().await.unwrap(), None);
        let stale = Document {
            body: "draft".into(),
            version: 1,
            ..mine.clone()
        };
        assert_eq!(stale.delete().await.unwrap(), "DELETE 0");
        // get() is by primary key, whatever the lookup.
        assert_eq!(Document::get(mine.id).await.unwrap().as_ref(), Some(&mine));
        assert_eq!(mine.delete().await.unwrap(), "DELETE 1");
    }
}

mod no_primary_key {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "audit_log", db = DB)]
    pub struct AuditEntry {
        pub message: String,
        pub level: i32,
    }

    fn refused<T: std::fmt::Debug>(result: gino::Result<T>) {
        assert!(
            matches!(result, Err(Error::NoPrimaryKey("AuditEntry"))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn instance_calls_that_locate_the_row_are_refused() {
        let s = bound(&DB).await;
        AuditEntry::create_table().await.unwrap();
        assert_eq!(
            indexes(&s.engine, "audit_log").await,
            Vec::<String>::new(),
            "no primary key constraint"
        );
        // Creating and class-level queries need no key.
        let mut e = AuditEntry::create().message("boot").level(1).await.unwrap();
        let copy = e.clone();
        assert_eq!(copy.create().await.unwrap(), copy);
        refused(e.query().await);
        refused(e.select::<_, i32>(audit_log::level).await);
        refused(e.delete().await);
        refused(e.update().level(9).apply().await);
        refused(e.update().apply().await);
        let rows: Vec<AuditEntry> = AuditEntry::query().gino().bind(&DB).all().await.unwrap();
        assert_eq!(rows, [copy.clone(), copy], "nothing changed or deleted");
    }
}

mod lookup_without_primary_key {
    use super::*;
    use gino::model::Lookup;

    static DB: Gino = Gino::secondary();

    /// No primary key, but a unique key to find rows by.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "settings", db = DB, lookup = by_key)]
    pub struct Setting {
        #[gino(unique)]
        pub key: String,
        pub value: String,
    }

    fn by_key(s: &Setting) -> gino::Result<Lookup<settings::table>> {
        Ok(Lookup::new(settings::key.eq(s.key.clone())))
    }

    #[tokio::test]
    async fn instance_calls_work_through_the_lookup() {
        let _s = bound(&DB).await;
        Setting::create_table().await.unwrap();
        let mut theme = Setting::create().key("theme").value("dark").await.unwrap();
        let lang = Setting::create().key("lang").value("en").await.unwrap();
        // The key changes too: the lookup was taken before the change.
        theme
            .update()
            .key("ui.theme")
            .value("light")
            .apply()
            .await
            .unwrap();
        assert_eq!(theme.query().await.unwrap().as_ref(), Some(&theme));
        let value: Option<String> = lang.select(settings::value).await.unwrap();
        assert_eq!(value.as_deref(), Some("en"));
        assert_eq!(lang.delete().await.unwrap(), "DELETE 1");
        let rows: Vec<Setting> = Setting::query().gino().bind(&DB).all().await.unwrap();
        assert_eq!(rows, [theme]);
    }
}

// ---------------------------------------------------------------------------
// Defaults.

mod server_defaults {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "profiles", db = DB)]
    pub struct Profile {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(server_default = "'guest'")]
        pub role: String,
        #[gino(server_default = "42")]
        pub score: i32,
        #[gino(server_default = "'hello'")]
        pub greeting: Option<String>,
        #[gino(server_default = "md5('x')")]
        pub token: String,
    }

    #[tokio::test]
    async fn fill_columns_the_insert_leaves_out() {
        let s = bound(&DB).await;
        Profile::create_table().await.unwrap();
        assert_eq!(
            columns(&s.engine, "profiles").await,
            [
                "id integer NO nextval('profiles_id_seq'::regclass)",
                "role text NO 'guest'::text",
                "score integer NO 42",
                "greeting text YES 'hello'::text",
                "token text NO md5('x'::text)",
            ]
        );
        let p = Profile::create().await.unwrap();
        assert_eq!(
            p,
            Profile {
                id: 1,
                role: "guest".into(),
                score: 42,
                greeting: Some("hello".into()),
                token: "9dd4e461268c8034f5c8564e155c67a6".into(),
            }
        );
        // Set explicitly, even to NULL, a value beats the server default.
        let q = Profile::create()
            .role("admin")
            .score(0)
            .greeting(None::<String>)
            .await
            .unwrap();
        assert_eq!((q.role.as_str(), q.score, q.greeting), ("admin", 0, None));
    }
}

mod client_defaults {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};

    static DB: Gino = Gino::secondary();
    static NEXT_TICKET: AtomicI32 = AtomicI32::new(100);

    fn next_ticket() -> i32 {
        NEXT_TICKET.fetch_add(1, Ordering::Relaxed)
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "tickets", db = DB)]
    pub struct Ticket {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(default = "open")]
        pub state: String,
        #[gino(default = next_ticket())]
        pub number: i32,
        #[gino(default = Some(3))]
        pub priority: Option<i32>,
    }

    #[tokio::test]
    async fn fill_unset_fields_on_each_create_and_stay_out_of_the_ddl() {
        let s = bound(&DB).await;
        Ticket::create_table().await.unwrap();
        assert_eq!(
            columns(&s.engine, "tickets").await,
            [
                "id integer NO nextval('tickets_id_seq'::regclass)",
                "state text NO -",
                "number integer NO -",
                "priority integer YES -",
            ]
        );
        let a = Ticket::create().await.unwrap();
        let b = Ticket::create().await.unwrap();
        // The expression runs for every insert.
        assert_eq!(
            (a.state.as_str(), a.number, a.priority),
            ("open", 100, Some(3))
        );
        assert_eq!(b.number, 101);
        let c = Ticket::create()
            .state("closed")
            .number(7)
            .priority(None::<i32>)
            .await
            .unwrap();
        assert_eq!(
            (c.state.as_str(), c.number, c.priority),
            ("closed", 7, None)
        );
        assert_eq!(NEXT_TICKET.load(Ordering::Relaxed), 102, "not run when set");
        // A value built in memory is inserted as it is.
        let d = Ticket {
            id: 0,
            state: "held".into(),
            number: 9,
            priority: None,
        }
        .create()
        .await
        .unwrap();
        assert_eq!((d.state.as_str(), d.number, d.priority), ("held", 9, None));
    }
}

// ---------------------------------------------------------------------------
// Constraints: schema and errors. Pools of one connection show that a
// failed statement leaves its connection usable.

mod constraints {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(
        table = "accounts",
        db = DB,
        unique(name = "accounts_org_handle", columns(org, handle)),
        check(name = "accounts_email_lower", expr = "email = lower(email)")
    )]
    pub struct Account {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(unique)]
        pub email: String,
        #[gino(check = "age >= 0")]
        pub age: i32,
        #[gino(index)]
        pub org: String,
        pub handle: String,
    }

    /// The tests of this module share `DB`, which each binds to a database
    /// of its own: they take turns, or one would rebind it under another.
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    async fn setup() -> (tokio::sync::MutexGuard<'static, ()>, common::Setup) {
        let turn = TURN.lock().await;
        let s = bound_with(&DB, EngineOptions::new().max_size(1)).await;
        Account::create_table().await.unwrap();
        Account::create()
            .email("fantix@example.com")
            .age(30)
            .org("gino")
            .handle("fantix")
            .await
            .unwrap();
        (turn, s)
    }

    /// The one pooled connection still works after the failure.
    async fn still_usable() {
        let n: i64 = accounts::table
            .count()
            .gino()
            .bind(&DB)
            .one()
            .await
            .unwrap();
        assert_eq!(n, 1, "the failed insert left nothing behind");
    }

    fn account(email: &str, age: i32, org: &str, handle: &str) -> Account {
        Account {
            id: 0,
            email: email.into(),
            age,
            org: org.into(),
            handle: handle.into(),
        }
    }

    #[tokio::test]
    async fn schema_has_the_declared_indexes_and_constraints() {
        let (_turn, s) = setup().await;
        assert_eq!(
            indexes(&s.engine, "accounts").await,
            [
                "accounts_email_key: CREATE UNIQUE INDEX accounts_email_key ON \
                 public.accounts USING btree (email)",
                "accounts_org_handle: CREATE UNIQUE INDEX accounts_org_handle ON \
                 public.accounts USING btree (org, handle)",
                "accounts_pkey: CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING \
                 btree (id)",
                "ix_accounts_org: CREATE INDEX ix_accounts_org ON public.accounts USING btree \
                 (org)",
            ]
        );
        let checks = catalog(
            &s.engine,
            "SELECT conname || ': ' || pg_get_constraintdef(oid) AS v FROM pg_constraint \
             WHERE conrelid = 'accounts'::regclass AND contype = 'c' ORDER BY conname",
        )
        .await;
        assert_eq!(
            checks,
            [
                "accounts_age_check: CHECK ((age >= 0))",
                "accounts_email_lower: CHECK ((email = lower(email)))",
            ]
        );
    }

    #[tokio::test]
    async fn unique_violation() {
        let _s = setup().await;
        let dup = account("fantix@example.com", 1, "other", "x")
            .create()
            .await;
        let e = violation(dup, "23505", Some("accounts_email_key"));
        assert_eq!(e.table(), Some("accounts"));
        still_usable().await;
        let pair = account("b@example.com", 1, "gino", "fantix").create().await;
        violation(pair, "23505", Some("accounts_org_handle"));
        still_usable().await;
        // A key that is taken (GINO's test_inline_constraints_and_indexes).
        let mut twin = account("c@example.com", 1, "other", "y");
        twin.id = 1;
        violation(twin.create().await, "23505", Some("accounts_pkey"));
        still_usable().await;
    }

    #[tokio::test]
    async fn not_null_violation() {
        let _s = setup().await;
        // `handle` has no default: left unset, the insert gives it NULL.
        let result = Account::create()
            .email("b@example.com")
            .age(1)
            .org("gino")
            .await;
        let e = violation(result, "23502", None);
        assert_eq!(e.column(), Some("handle"));
        still_usable().await;
    }

    #[tokio::test]
    async fn check_violation() {
        let _s = setup().await;
        let negative = account("b@example.com", -1, "gino", "b").create().await;
        violation(negative, "23514", Some("accounts_age_check"));
        still_usable().await;
        let mut upper = Account::get(1).await.unwrap().unwrap();
        let result = upper.update().email("FANTIX@example.com").apply().await;
        violation(result, "23514", Some("accounts_email_lower"));
        still_usable().await;
        let stored_email: Option<String> = upper.select(accounts::email).await.unwrap();
        assert_eq!(stored_email.as_deref(), Some("fantix@example.com"));
    }
}

mod foreign_keys {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i32,
        pub nickname: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "posts", db = DB)]
    pub struct Post {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = "users(id)", on_delete = "cascade", on_update = "cascade")]
        pub author_id: i32,
        #[gino(references = "users(id)", on_delete = "set null")]
        pub editor_id: Option<i32>,
        pub title: String,
    }

    diesel::joinable!(posts -> users (author_id));
    diesel::allow_tables_to_appear_in_same_query!(users, posts);

    #[tokio::test]
    async fn violations_actions_and_joins() {
        let s = bound_with(&DB, EngineOptions::new().max_size(1)).await;
        DB.create_all().await.unwrap();
        let fks = catalog(
            &s.engine,
            "SELECT conname || ': ' || pg_get_constraintdef(oid) AS v FROM pg_constraint \
             WHERE conrelid = 'posts'::regclass AND contype = 'f' ORDER BY conname",
        )
        .await;
        assert_eq!(
            fks,
            [
                "posts_author_id_fkey: FOREIGN KEY (author_id) REFERENCES users(id) ON UPDATE \
                 CASCADE ON DELETE CASCADE",
                "posts_editor_id_fkey: FOREIGN KEY (editor_id) REFERENCES users(id) ON DELETE \
                 SET NULL",
            ]
        );

        let mut fantix = User::create().nickname("fantix").await.unwrap();
        let daisy = User::create().nickname("daisy").await.unwrap();
        let orphan = Post::create().author_id(99).title("orphan").await;
        violation(orphan, "23503", Some("posts_author_id_fkey"));
        let post = Post::create()
            .author_id(fantix.id)
            .editor_id(daisy.id)
            .title("hello")
            .await
            .unwrap();

        // A model query joined with another table still loads the model.
        let authors: Vec<User> = User::query()
            .inner_join(posts::table)
            .filter(posts::title.eq("hello"))
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(authors, [fantix.clone()]);
        let pairs: Vec<(Post, User)> = posts::table
            .inner_join(users::table)
            .select((Post::as_select(), User::as_select()))
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(pairs, [(post.clone(), fantix.clone())]);

        // ON UPDATE CASCADE follows the key change, ON DELETE SET NULL and
        // ON DELETE CASCADE the deletes.
        fantix.update().id(10).apply().await.unwrap();
        assert_eq!(post.query().await.unwrap().unwrap().author_id, 10);
        daisy.delete().await.unwrap();
        assert_eq!(post.query().await.unwrap().unwrap().editor_id, None);
        fantix.delete().await.unwrap();
        assert_eq!(post.query().await.unwrap(), None);
    }
}

// ---------------------------------------------------------------------------
// Where models come from and which database they belong to.

mod existing_diesel_table {
    use super::*;

    static DB: Gino = Gino::secondary();

    diesel::table! {
        legacy_accounts (account_id) {
            account_id -> Integer,
            #[sql_name = "label_text"]
            label -> Text,
        }
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "legacy_accounts", diesel_table = legacy_accounts, db = DB)]
    pub struct LegacyAccount {
        #[gino(primary_key)]
        pub account_id: i32,
        #[gino(column = "label_text")]
        pub label: String,
    }

    #[tokio::test]
    async fn a_model_on_a_diesel_table_does_crud() {
        let s = bound(&DB).await;
        // The table exists already, made by someone else's DDL.
        s.engine
            .status(diesel::sql_query(
                "CREATE TABLE legacy_accounts (account_id serial PRIMARY KEY, label_text text \
                 NOT NULL)",
            ))
            .await
            .unwrap();
        let mut a = LegacyAccount::create().label("first").await.unwrap();
        assert_eq!(a.account_id, 1);
        assert_eq!(LegacyAccount::get(1).await.unwrap().as_ref(), Some(&a));
        a.update().label("renamed").apply().await.unwrap();
        let labels: Vec<String> = LegacyAccount::select(legacy_accounts::label)
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(labels, ["renamed"]);
        assert_eq!(a.delete().await.unwrap(), "DELETE 1");
        // Its metadata describes the same table.
        assert_eq!(
            <LegacyAccount as Model>::TABLE
                .columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["account_id", "label_text"]
        );
    }

    static BOOKS_DB: Gino = Gino::secondary();

    // As `diesel print-schema --schema books` writes it; the model does not
    // name the schema, and names the renamed column as SQL does (the derive
    // refuses another name).
    diesel::table! {
        books.entries (entry_id) {
            entry_id -> Integer,
            #[sql_name = "memo_text"]
            memo -> Text,
        }
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "entries", diesel_table = entries, db = BOOKS_DB)]
    pub struct Entry {
        #[gino(primary_key)]
        pub entry_id: i32,
        #[gino(column = "memo_text")]
        pub memo: String,
    }

    /// A counting `insert_many` writes where `create()` and queries do: the
    /// diesel table's schema and column names, not the model's attributes.
    #[tokio::test]
    async fn insert_many_writes_to_the_diesel_tables_schema_and_columns() {
        let s = bound(&BOOKS_DB).await;
        for ddl in [
            "CREATE SCHEMA books",
            "CREATE TABLE books.entries (entry_id serial PRIMARY KEY, memo_text text NOT NULL)",
            "CREATE TABLE public.entries (entry_id serial PRIMARY KEY, memo text NOT NULL)",
        ] {
            s.engine.status(diesel::sql_query(ddl)).await.unwrap();
        }
        let rows = ["a", "b", "c"].map(|memo| Entry {
            entry_id: 0,
            memo: memo.to_owned(),
        });
        assert_eq!(Entry::insert_many(rows.clone()).await.unwrap(), 3);
        Entry::create().memo("d").await.unwrap();
        let memos: Vec<String> = entries::table
            .order_by(entries::entry_id)
            .select(entries::memo)
            .gino()
            .bind(&BOOKS_DB)
            .all()
            .await
            .unwrap();
        assert_eq!(memos, ["a", "b", "c", "d"]);
        let elsewhere: Vec<String> =
            catalog(&s.engine, "SELECT memo AS v FROM public.entries").await;
        assert!(
            elsewhere.is_empty(),
            "written to public.entries: {elsewhere:?}"
        );

        // The renamed column read by its SQL name: a raw load, a partial
        // load, and `apply()`'s refresh of a value computed in SQL.
        let raw: Vec<Entry> = BOOKS_DB
            .all(gino::text("SELECT * FROM books.entries ORDER BY entry_id"))
            .await
            .unwrap();
        assert_eq!(raw[0].memo, "a");
        let partial: Vec<Entry> = Entry::query()
            .order_by(entries::entry_id)
            .gino()
            .bind(&BOOKS_DB)
            .load(gino::loader::partial::<Entry, _>((
                entries::entry_id,
                entries::memo,
            )))
            .all()
            .await
            .unwrap();
        assert_eq!(partial[1].memo, "b");
        let mut first = raw[0].clone();
        first
            .update()
            .set(entries::memo.eq(entries::memo.concat("!")))
            .apply()
            .await
            .unwrap();
        assert_eq!(first.memo, "a!");
    }

    static SHIFTS_DB: Gino = Gino::secondary();

    // As `diesel print-schema` writes it: the key in the constraint's
    // order, the columns in the table's.
    diesel::table! {
        shifts (staff, day) {
            day -> Integer,
            staff -> Integer,
            note -> Text,
        }
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "shifts", diesel_table = shifts, db = SHIFTS_DB)]
    pub struct Shift {
        #[gino(primary_key, autoincrement = false)]
        pub day: i32,
        #[gino(primary_key, autoincrement = false)]
        pub staff: i32,
        pub note: String,
    }

    /// `get` takes a composite key in the fields' order, as its doc says,
    /// whatever order the `table!` lists the key in.
    #[tokio::test]
    async fn a_composite_key_is_got_in_the_fields_order() {
        let s = bound(&SHIFTS_DB).await;
        s.engine
            .status(diesel::sql_query(
                "CREATE TABLE shifts (day int, staff int, note text NOT NULL, \
                 PRIMARY KEY (staff, day))",
            ))
            .await
            .unwrap();
        let monday_ann = Shift::create().day(1).staff(2).note("a").await.unwrap();
        let tuesday_bob = Shift::create().day(2).staff(1).note("b").await.unwrap();
        assert_eq!(Shift::get((1, 2)).await.unwrap(), Some(monday_ann));
        assert_eq!(Shift::get((2, 1)).await.unwrap(), Some(tuesday_bob));
        assert_eq!(Shift::get((1, 1)).await.unwrap(), None);
    }

    static BADGES_DB: Gino = Gino::secondary();

    // A printed schema whose key is another column than the model's (a
    // legacy table keyed by its code, the model by its id).
    diesel::table! {
        badges (code) {
            id -> Integer,
            code -> Integer,
            label -> Text,
        }
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "badges", diesel_table = badges, db = BADGES_DB)]
    pub struct Badge {
        #[gino(primary_key, autoincrement = false)]
        pub id: i32,
        pub code: i32,
        pub label: String,
    }

    /// `get` looks up the model's key, as `update` and `delete` do, not the
    /// `table!`'s.
    #[tokio::test]
    async fn get_looks_up_the_models_key_not_the_tables() {
        let s = bound(&BADGES_DB).await;
        s.engine
            .status(diesel::sql_query(
                "CREATE TABLE badges (id int PRIMARY KEY, code int NOT NULL, label text NOT NULL)",
            ))
            .await
            .unwrap();
        let gold = Badge::create().id(1).code(2).label("gold").await.unwrap();
        let silver = Badge::create().id(2).code(1).label("silver").await.unwrap();
        assert_eq!(Badge::get(1).await.unwrap(), Some(gold));
        assert_eq!(Badge::get(2).await.unwrap(), Some(silver));
        assert_eq!(Badge::get(3).await.unwrap(), None);
    }
}

mod schema_qualified {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "teams", schema = "app", db = DB)]
    pub struct Team {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "members", schema = "app", db = DB)]
    pub struct Member {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = "app.teams(id)", on_delete = "cascade")]
        pub team_id: i32,
        pub nickname: String,
    }

    #[tokio::test]
    async fn models_live_in_their_schema() {
        let s = bound(&DB).await;
        // Without the schema the tables cannot be created, and nothing is.
        let err = DB.create_all().await.unwrap_err();
        assert!(err.to_string().contains("app"), "{err}");
        assert!(!DB.has_schema("app").await.unwrap());

        DB.create_all().create_schemas(true).await.unwrap();
        assert!(DB.has_schema("app").await.unwrap());
        assert!(DB.has_table("app.teams").await.unwrap());
        assert!(DB.has_table("app.members").await.unwrap());
        // Not on the search path: the unqualified names are someone else's.
        assert!(!DB.has_table("teams").await.unwrap());
        assert_eq!(<Team as Model>::TABLE.qualified_name(), "app.teams");

        let team = Team::create().name("core").await.unwrap();
        let mut ann = Member::create()
            .team_id(team.id)
            .nickname("ann")
            .await
            .unwrap();
        ann.update().nickname("anne").apply().await.unwrap();
        assert_eq!(Member::get(ann.id).await.unwrap(), Some(ann.clone()));
        let names: Vec<String> = catalog(
            &s.engine,
            "SELECT nickname AS v FROM app.members ORDER BY id",
        )
        .await;
        assert_eq!(names, ["anne"]);
        // The foreign key points at the qualified table.
        let fks = catalog(
            &s.engine,
            "SELECT pg_get_constraintdef(oid) AS v FROM pg_constraint \
             WHERE conrelid = 'app.members'::regclass AND contype = 'f'",
        )
        .await;
        assert_eq!(
            fks,
            ["FOREIGN KEY (team_id) REFERENCES app.teams(id) ON DELETE CASCADE"]
        );
        assert_eq!(team.delete().await.unwrap(), "DELETE 1");
        assert_eq!(Member::get(ann.id).await.unwrap(), None);

        DB.drop_all().await.unwrap();
        assert!(!DB.has_table("app.teams").await.unwrap());
        assert!(DB.has_schema("app").await.unwrap());
    }
}

mod model_references {
    use super::*;
    use gino::loader::{child, distinct};

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "authors", schema = "writers", db = DB)]
    pub struct Author {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "articles", db = DB)]
    pub struct Article {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = Author, on_delete = "cascade")]
        pub author_id: i32,
        // A reference to the model itself makes a key but no join.
        #[gino(references = Article)]
        pub reply_to: Option<i32>,
        pub title: String,
    }

    #[tokio::test]
    async fn a_key_to_a_model_makes_the_constraint_and_the_joins() {
        let s = bound(&DB).await;
        DB.create_all().create_schemas(true).await.unwrap();
        let fks = catalog(
            &s.engine,
            "SELECT pg_get_constraintdef(oid) AS v FROM pg_constraint \
             WHERE conrelid = 'articles'::regclass AND contype = 'f' ORDER BY conname",
        )
        .await;
        assert_eq!(
            fks,
            [
                "FOREIGN KEY (author_id) REFERENCES writers.authors(id) ON DELETE CASCADE",
                "FOREIGN KEY (reply_to) REFERENCES articles(id)",
            ]
        );

        let ann = Author::create().name("ann").await.unwrap();
        let bob = Author::create().name("bob").await.unwrap();
        let first = Article::create()
            .author_id(ann.id)
            .title("first")
            .await
            .unwrap();
        let reply = Article::create()
            .author_id(ann.id)
            .reply_to(first.id)
            .title("reply")
            .await
            .unwrap();

        // No joinable! or allow_tables_to_appear_in_same_query! written.
        let with_authors: Vec<(Article, Author)> = articles::table
            .inner_join(authors::table)
            .order_by(articles::id)
            .select((Article::as_select(), Author::as_select()))
            .gino()
            .all()
            .await
            .unwrap();
        assert_eq!(
            with_authors,
            [(first.clone(), ann.clone()), (reply.clone(), ann.clone())]
        );
        // GINO's `Article.load(author=Author)`: the join made from the key.
        let loaded: Vec<(Article, Option<Author>)> = Article::with_author()
            .filter(articles::title.eq("reply"))
            .gino()
            .all()
            .await
            .unwrap();
        assert_eq!(loaded, [(reply.clone(), Some(ann.clone()))]);
        let by_author: Vec<(Author, Vec<Article>)> = authors::table
            .left_join(articles::table)
            .order_by((authors::id, articles::id))
            .select((Author::as_select(), articles::all_columns.nullable()))
            .gino()
            .load(distinct::<Author, _>(child::<Article>()))
            .await
            .unwrap();
        assert_eq!(by_author, [(ann, vec![first, reply]), (bob, vec![])]);
    }
}

mod shared_columns {
    use super::*;

    static DB: Gino = Gino::secondary();

    mod common {
        use gino::prelude::*;

        /// Columns declared once for many models (GINO's mixins), with
        /// table constraints and an index each model's table gets too
        /// (GINO's `declared_attr` returning a `UniqueConstraint`).
        #[derive(Columns, Debug, Clone, PartialEq)]
        #[gino(
            unique(columns(created_by, version)),
            index(columns(created_by)),
            check(name = "{table}_version_small", expr = "version < 1000")
        )]
        pub struct Audit {
            #[gino(primary_key)]
            pub id: i32,
            #[gino(server_default = "0", index, check = "version >= 0")]
            pub version: i32,
            #[gino(default = "system")]
            pub created_by: String,
        }
    }

    use common::Audit;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "notes", db = DB)]
    pub struct Note {
        #[gino(flatten)]
        pub audit: Audit,
        pub body: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(
        table = "tasks",
        db = DB,
        index(name = "tasks_done_version", columns(done, version))
    )]
    pub struct Task {
        pub title: String,
        #[gino(flatten)]
        pub audit: common::Audit,
        pub done: bool,
    }

    #[tokio::test]
    async fn models_share_a_set_of_columns_with_its_constraints() {
        let s = bound(&DB).await;
        DB.create_all().await.unwrap();
        assert_eq!(
            columns(&s.engine, "tasks").await,
            [
                "title text NO -",
                "id integer NO nextval('tasks_id_seq'::regclass)",
                "version integer NO 0",
                "created_by text NO -",
                "done boolean NO -",
            ]
        );
        let indexes = catalog(
            &s.engine,
            "SELECT indexname AS v FROM pg_indexes WHERE tablename IN ('notes', 'tasks') \
             AND indexname NOT LIKE '%pkey' ORDER BY indexname",
        )
        .await;
        assert_eq!(
            indexes,
            [
                "ix_notes_created_by",
                "ix_notes_version",
                "ix_tasks_created_by",
                "ix_tasks_version",
                "notes_created_by_version_key",
                "tasks_created_by_version_key",
                "tasks_done_version",
            ]
        );
        let constraints = catalog(
            &s.engine,
            "SELECT conrelid::regclass::text || ' ' || contype::text || ' ' || \
             CASE WHEN conname LIKE '%version_check' THEN 'field' ELSE conname END AS v \
             FROM pg_constraint WHERE contype IN ('c', 'u') \
             AND conrelid::regclass::text IN ('notes', 'tasks') ORDER BY 1",
        )
        .await;
        assert_eq!(
            constraints,
            [
                "notes c field",
                "notes c notes_version_small",
                "notes u notes_created_by_version_key",
                "tasks c field",
                "tasks c tasks_version_small",
                "tasks u tasks_created_by_version_key",
            ]
        );

        // The set's columns behave as the model's own.
        let mut note = Note::create().body("hello").await.unwrap();
        assert_eq!(
            note.audit,
            Audit {
                id: 1,
                version: 0,
                created_by: "system".into(),
            }
        );
        note.update().version(3).body("hi").apply().await.unwrap();
        assert_eq!((note.audit.version, note.body.as_str()), (3, "hi"));
        assert_eq!(Note::get(1).await.unwrap(), Some(note.clone()));
        let found: Vec<Note> = Note::query()
            .filter(Note::version.gt(2))
            .gino()
            .all()
            .await
            .unwrap();
        assert_eq!(found, [note.clone()]);

        let built = Task::create().title("write").done(false).build().unwrap();
        assert_eq!(built.audit.created_by, "system");
        let task = built.create().await.unwrap();
        assert_eq!(task.audit.id, 1);
        let more = (0..3).map(|i| Task {
            title: format!("t{i}"),
            audit: Audit {
                id: 0,
                version: i,
                created_by: "bulk".into(),
            },
            done: true,
        });
        assert_eq!(Task::insert_many(more).await.unwrap(), 3);
        let versions: Vec<i32> = Task::select(tasks::version)
            .filter(tasks::created_by.eq("bulk"))
            .order_by(tasks::id)
            .gino()
            .all()
            .await
            .unwrap();
        assert_eq!(versions, [0, 1, 2]);
        // The set's table constraints hold in each table.
        let twin = Task::create()
            .title("twin")
            .created_by("bulk")
            .version(1)
            .done(true)
            .await;
        violation(twin, "23505", Some("tasks_created_by_version_key"));
        let huge = Note::create().body("big").version(1000).await;
        violation(huge, "23514", Some("notes_version_small"));
        assert_eq!(task.delete().await.unwrap(), "DELETE 1");
    }
}

mod tables_without_models {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "clubs", db = DB)]
    pub struct Club {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
    }

    // GINO core's `db.Table`: declared once, for queries and for DDL.
    gino::table! {
        #[gino(
            db = DB,
            index(name = "club_roles_role", columns(role)),
            unique(name = "club_roles_nick", columns(club_id, nickname))
        )]
        club_roles (club_id, role) {
            #[gino(references = "clubs(id)", on_delete = "cascade")]
            club_id -> Integer,
            role -> Text,
            #[sql_name = "nick"]
            nickname -> Nullable<Text>,
            #[gino(server_default = "now()")]
            granted_at -> Timestamptz,
            #[gino(ddl = "varchar(8)", server_default = "'x'")]
            code -> Text,
            tags -> Array<Text>,
        }
    }

    #[tokio::test]
    async fn a_table_declared_once_serves_queries_and_ddl() {
        let s = bound(&DB).await;
        assert!(DB.models().iter().any(|t| t.name == "club_roles"));
        DB.create_all().await.unwrap();
        assert_eq!(
            columns(&s.engine, "club_roles").await,
            [
                "club_id integer NO -",
                "role text NO -",
                "nick text YES -",
                "granted_at timestamp with time zone NO now()",
                "code character varying NO 'x'::character varying",
                "tags ARRAY NO -",
            ]
        );
        let constraints = catalog(
            &s.engine,
            "SELECT conname || ': ' || pg_get_constraintdef(oid) AS v FROM pg_constraint \
             WHERE conrelid = 'club_roles'::regclass ORDER BY conname",
        )
        .await;
        assert_eq!(
            constraints,
            [
                "club_roles_club_id_fkey: FOREIGN KEY (club_id) REFERENCES clubs(id) ON DELETE \
                 CASCADE",
                "club_roles_nick: UNIQUE (club_id, nick)",
                "club_roles_pkey: PRIMARY KEY (club_id, role)",
            ]
        );
        assert!(DB.has_table("club_roles").await.unwrap());

        // diesel queries on it run on its database without `.bind`.
        let club = Club::create().name("chess").await.unwrap();
        let inserted = diesel::insert_into(club_roles::table)
            .values((
                club_roles::club_id.eq(club.id),
                club_roles::role.eq("admin"),
                club_roles::nickname.eq("boss"),
                club_roles::tags.eq(vec!["a".to_owned()]),
            ))
            .gino()
            .status()
            .await
            .unwrap();
        assert_eq!(inserted, "INSERT 0 1");
        let roles: Vec<(String, Option<String>, String)> = club_roles::table
            .select((club_roles::role, club_roles::nickname, club_roles::code))
            .gino()
            .all()
            .await
            .unwrap();
        assert_eq!(roles, [("admin".into(), Some("boss".into()), "x".into())]);
        club.delete().await.unwrap();
        let left: i64 = club_roles::table.count().gino().one().await.unwrap();
        assert_eq!(left, 0, "the key cascades");

        DB.drop_all().await.unwrap();
        assert!(!DB.has_table("club_roles").await.unwrap());
    }
}

mod registry {
    use super::*;

    static LIBRARY: Gino = Gino::secondary();
    static REPORTING: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "authors", db = LIBRARY)]
    pub struct Author {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "books", db = LIBRARY)]
    pub struct Book {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = "authors(id)")]
        pub author_id: i32,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "reports", db = REPORTING)]
    pub struct Report {
        #[gino(primary_key)]
        pub id: i32,
    }

    fn names(db: &Gino) -> Vec<&'static str> {
        let mut names: Vec<_> = db.models().iter().map(|t| t.name).collect();
        names.sort_unstable();
        names
    }

    async fn tables(engine: &Engine) -> Vec<String> {
        catalog(
            engine,
            "SELECT tablename::text AS v FROM pg_tables WHERE schemaname = 'public' \
             ORDER BY tablename",
        )
        .await
    }

    #[tokio::test]
    async fn each_database_lists_and_creates_exactly_its_models() {
        assert_eq!(names(&LIBRARY), ["authors", "books"]);
        assert_eq!(names(&REPORTING), ["reports"]);
        let s = bound(&LIBRARY).await;
        REPORTING.set_bind(s.engine.clone()).await.unwrap();
        LIBRARY.create_all().await.unwrap();
        assert_eq!(tables(&s.engine).await, ["authors", "books"]);
        REPORTING.create_all().await.unwrap();
        assert_eq!(tables(&s.engine).await, ["authors", "books", "reports"]);
        let author = Author::create().name("fantix").await.unwrap();
        Book::create().author_id(author.id).await.unwrap();
        assert_eq!(Report::create().await.unwrap().id, 1);
        // Nothing to insert but the serial key: DEFAULT VALUES.
        assert_eq!(Report { id: 0 }.create().await.unwrap().id, 2);
    }
}

// ---------------------------------------------------------------------------
// Column types.

mod column_types {
    use super::*;
    use diesel::deserialize::{self, FromSql};
    use diesel::pg::{Pg, PgValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Text;

    static DB: Gino = Gino::secondary();

    /// An application type stored as text: gino cannot know its SQL type,
    /// so the field names it.
    #[derive(
        Debug, Clone, PartialEq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
    )]
    #[diesel(sql_type = Text)]
    pub struct Email(String);

    impl ToSql<Text, Pg> for Email {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            <String as ToSql<Text, Pg>>::to_sql(&self.0, out)
        }
    }

    impl FromSql<Text, Pg> for Email {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <String as FromSql<Text, Pg>>::from_sql(bytes).map(Email)
        }
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "samples", db = DB)]
    pub struct Sample {
        #[gino(primary_key)]
        pub id: i64,
        pub small: i16,
        pub ratio: f32,
        pub score: f64,
        pub active: bool,
        pub data: Vec<u8>,
        pub tags: Vec<String>,
        pub counts: Option<Vec<i32>>,
        #[gino(sql_type = diesel::sql_types::Text, ddl = "varchar(100)")]
        pub email: Email,
        #[gino(sql_type = diesel::sql_types::Text, ddl = "text")]
        pub backup: Option<Email>,
    }

    #[tokio::test]
    async fn rust_types_map_to_their_postgres_types_and_round_trip() {
        let s = bound(&DB).await;
        Sample::create_table().await.unwrap();
        let types = catalog(
            &s.engine,
            "SELECT column_name || ' ' || format_type(atttypid, atttypmod) || ' ' || \
             is_nullable AS v FROM information_schema.columns JOIN pg_attribute \
             ON attrelid = 'samples'::regclass AND attname = column_name \
             WHERE table_name = 'samples' ORDER BY ordinal_position",
        )
        .await;
        assert_eq!(
            types,
            [
                "id bigint NO",
                "small smallint NO",
                "ratio real NO",
                "score double precision NO",
                "active boolean NO",
                "data bytea NO",
                "tags text[] NO",
                "counts integer[] YES",
                "email character varying(100) NO",
                "backup text YES",
            ]
        );
        let full = Sample {
            id: 0,
            small: -3,
            ratio: 0.5,
            score: 1e100,
            active: true,
            data: vec![0, 255, 7],
            tags: vec!["a".into(), "b,c".into()],
            counts: Some(vec![1, 2]),
            email: Email("a@example.com".into()),
            backup: Some(Email("b@example.com".into())),
        };
        let stored_full = full.create().await.unwrap();
        assert_eq!(
            stored_full,
            Sample {
                id: 1,
                ..full.clone()
            }
        );
        let mut sparse = Sample::create()
            .small(1i16)
            .ratio(1.0f32)
            .score(2.0)
            .active(false)
            .data(Vec::new())
            .tags(Vec::<String>::new())
            .email(Email("c@example.com".into()))
            .await
            .unwrap();
        assert_eq!((sparse.counts.clone(), sparse.backup.clone()), (None, None));
        sparse
            .update()
            .backup(Email("d@example.com".to_owned()))
            .counts(vec![3])
            .apply()
            .await
            .unwrap();
        assert_eq!(Sample::get(2).await.unwrap().as_ref(), Some(&sparse));
        let found: Vec<i64> = Sample::select(samples::id)
            .filter(samples::email.eq(Email("a@example.com".into())))
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(found, [1]);
    }
}

mod mutual_references {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "clans", db = DB)]
    pub struct Clan {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
        // Closes a cycle with `Warrior::clan_id`: its join is declared there.
        #[gino(references = Warrior, on_delete = "set null", join = false)]
        pub leader_id: Option<i32>,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "warriors", db = DB)]
    pub struct Warrior {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = Clan)]
        pub clan_id: Option<i32>,
        pub name: String,
    }

    #[tokio::test]
    async fn two_models_referencing_each_other_make_both_keys_and_one_join() {
        let s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let fks = catalog(
            &s.engine,
            "SELECT conrelid::regclass || ': ' || pg_get_constraintdef(oid) AS v \
             FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
        )
        .await;
        assert_eq!(
            fks,
            [
                "clans: FOREIGN KEY (leader_id) REFERENCES warriors(id) ON DELETE SET NULL",
                "warriors: FOREIGN KEY (clan_id) REFERENCES clans(id)",
            ]
        );

        let clan = Clan::create().name("crows").await.unwrap();
        let ann = Warrior::create()
            .clan_id(clan.id)
            .name("ann")
            .await
            .unwrap();
        let mut clan = clan;
        clan.update().leader_id(ann.id).apply().await.unwrap();

        let loaded: Vec<(Warrior, Option<Clan>)> = Warrior::with_clan().gino().all().await.unwrap();
        assert_eq!(loaded, [(ann.clone(), Some(clan.clone()))]);
        let leaders: Vec<(Clan, Warrior)> = clans::table
            .inner_join(warriors::table.on(warriors::id.nullable().eq(clans::leader_id)))
            .select((Clan::as_select(), Warrior::as_select()))
            .gino()
            .all()
            .await
            .unwrap();
        assert_eq!(leaders, [(clan, ann)]);
        DB.drop_all().await.unwrap();
        assert!(
            catalog(
                &s.engine,
                "SELECT relname::text AS v FROM pg_class WHERE relname IN ('clans', 'warriors')"
            )
            .await
            .is_empty()
        );
    }
}

mod composite_foreign_keys {
    use super::*;

    static DB: Gino = Gino::secondary();

    // GINO's `db.ForeignKeyConstraint(["day", "room"], ["rooms.day", ...],
    // name=...)`: a key of several columns, named, to a composite key.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "rooms", db = DB)]
    pub struct Room {
        #[gino(primary_key)]
        pub building: String,
        #[gino(primary_key)]
        pub number: i32,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(
        table = "bookings",
        db = DB,
        foreign_key(
            name = "bookings_room_fk",
            columns(building, room),
            references = Room,
            on_delete = "cascade"
        ),
        foreign_key(columns(building, backup_room), references = "rooms(building, number)")
    )]
    pub struct Booking {
        #[gino(primary_key)]
        pub id: i32,
        pub building: String,
        #[gino(column = "room_number")]
        pub room: i32,
        pub backup_room: Option<i32>,
    }

    #[tokio::test]
    async fn keys_of_several_columns_are_made_named_and_enforced() {
        let s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let fks = catalog(
            &s.engine,
            "SELECT conname || ': ' || pg_get_constraintdef(oid) AS v FROM pg_constraint \
             WHERE conrelid = 'bookings'::regclass AND contype = 'f' ORDER BY conname",
        )
        .await;
        assert_eq!(
            fks,
            [
                "bookings_building_backup_room_fkey: FOREIGN KEY (building, backup_room) \
                 REFERENCES rooms(building, number)",
                "bookings_room_fk: FOREIGN KEY (building, room_number) REFERENCES \
                 rooms(building, number) ON DELETE CASCADE",
            ]
        );

        let room = Room::create().building("a").number(1).await.unwrap();
        let missing = Booking::create().building("a").room(2).await;
        violation(missing, "23503", Some("bookings_room_fk"));
        let bad_backup = Booking::create().building("a").room(1).backup_room(3).await;
        violation(
            bad_backup,
            "23503",
            Some("bookings_building_backup_room_fkey"),
        );
        let booking = Booking::create().building("a").room(1).await.unwrap();
        room.delete().await.unwrap();
        assert_eq!(booking.query().await.unwrap(), None);
    }
}

mod ambiguous_raw_rows {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "writers", db = DB)]
    pub struct Writer {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "books", db = DB)]
    pub struct Book {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(references = Writer)]
        pub writer_id: i32,
        pub name: String,
    }

    #[tokio::test]
    async fn a_raw_row_with_a_models_column_twice_is_refused() {
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let ann = Writer::create().id(7).name("ann").await.unwrap();
        Book::create()
            .id(1)
            .writer_id(7)
            .name("dune")
            .await
            .unwrap();

        // Two `id`s and two `name`s: the first would be taken, whichever
        // table it is of (GINO refuses the ambiguous column too).
        let both =
            "SELECT books.*, writers.* FROM writers JOIN books ON books.writer_id = writers.id";
        let e = DB.all::<Writer, _>(gino::text(both)).await.unwrap_err();
        assert!(
            e.to_string().contains("column `id` comes more than once"),
            "{e}"
        );
        // Columns of the model named once load; others may repeat.
        let aliased = "SELECT writers.*, books.id AS book_id, books.name AS title, \
                       1 AS n, 2 AS n FROM writers JOIN books ON books.writer_id = writers.id";
        assert_eq!(
            DB.all::<Writer, _>(gino::text(aliased)).await.unwrap(),
            [ann]
        );
    }
}

/// GINO's `test_schema`: comments, a named key, a sequence in a schema, and
/// the existence checks.
mod comments_and_sequences {
    use super::*;
    use gino::schema::Sequence;

    static DB: Gino = Gino::secondary();

    #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
    #[gino(type_name = "my_enum")]
    pub enum MyEnum {
        One,
        Two,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "s_blog", schema = "schema_test", db = DB, comment = "Blog Comment")]
    pub struct Blog {
        #[gino(primary_key)]
        pub id: i64,
        #[gino(index, comment = "Title Comment")]
        pub title: Option<String>,
        #[gino(db_enum, default = MyEnum::Two)]
        pub number: MyEnum,
        #[gino(references = "schema_test.s_comment(id)")]
        pub comment_id: Option<i64>,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(
        table = "s_comment",
        schema = "schema_test",
        db = DB,
        foreign_key(name = "blog_id_fk", columns(blog_id), references = Blog)
    )]
    pub struct Comment {
        #[gino(primary_key)]
        pub id: i64,
        pub blog_id: Option<i64>,
    }

    /// A third table, pointing into the cycle of the other two.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "s_comment_2", schema = "schema_test", db = DB)]
    pub struct Comment2 {
        #[gino(primary_key)]
        pub id: i64,
        #[gino(references = "schema_test.s_blog(id)")]
        pub blog_id: Option<i64>,
    }

    #[tokio::test]
    async fn comments_named_keys_and_sequences_are_created_and_dropped() {
        // GINO's `db.Sequence("blog_seq", metadata=db, schema=...)`.
        let blog_seq = Sequence::new("blog_seq")
            .in_schema("schema_test")
            .declare_in(&DB);
        let s = bound(&DB).await;
        assert!(!DB.has_schema("schema_test").await.unwrap());
        assert!(!DB.has_table("non_exist").await.unwrap());
        assert!(!DB.has_sequence("non_exist").await.unwrap());
        assert!(!DB.has_type("non_exist").await.unwrap());
        assert!(!DB.has_type("schema_test.non_exist").await.unwrap());

        DB.create_all().create_schemas(true).await.unwrap();
        assert!(DB.has_sequence("schema_test.blog_seq").await.unwrap());
        let described = || {
            catalog(
                &s.engine,
                "SELECT coalesce(obj_description('schema_test.s_blog'::regclass, 'pg_class'), '-') \
                 || ' / ' || coalesce(col_description('schema_test.s_blog'::regclass, 2), '-') AS v",
            )
        };
        assert_eq!(described().await, ["Blog Comment / Title Comment"]);
        let keys = catalog(
            &s.engine,
            "SELECT conname::text AS v FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
        )
        .await;
        assert_eq!(
            keys,
            [
                "blog_id_fk",
                "s_blog_comment_id_fkey",
                "s_comment_2_blog_id_fkey"
            ]
        );
        // One table of the cycle on its own, existing: skipped, its keys
        // and index too (GINO's create_all(tables=[Blog]) and
        // Blog.__table__.gino.create(checkfirst=True)).
        gino::schema::create_tables(vec![Blog::TABLE], gino::Bind::Db(&DB))
            .await
            .unwrap();
        Blog::create_table().await.unwrap();
        let index = catalog(
            &s.engine,
            "SELECT indexdef AS v FROM pg_indexes WHERE schemaname = 'schema_test' \
             AND indexdef NOT LIKE '%UNIQUE%'",
        )
        .await;
        assert_eq!(index.len(), 1, "{index:?}");
        assert!(index[0].contains("s_blog USING btree (title)"), "{index:?}");
        // Created again, an existing table is skipped, its comments too.
        DB.status(diesel::sql_query(
            "COMMENT ON TABLE schema_test.s_blog IS 'mine'",
        ))
        .await
        .unwrap();
        DB.create_all().await.unwrap();
        assert_eq!(described().await, ["mine / Title Comment"]);
        // The enum type on its own, as GINO's `type.create_async(checkfirst=True)`.
        gino::schema::create_enum::<MyEnum>()
            .bind(&DB)
            .await
            .unwrap();
        let again = gino::schema::create_enum::<MyEnum>()
            .checkfirst(false)
            .bind(&DB)
            .await;
        assert_eq!(again.unwrap_err().sqlstate(), Some("42710"));

        // Created with the tables, so creating it alone is skipped, and
        // its values are kept.
        let next = || DB.one::<i64, _>(diesel::select(blog_seq.next_value()));
        assert_eq!(next().await.unwrap(), 1);
        blog_seq.create().bind(&DB).await.unwrap();
        assert_eq!(next().await.unwrap(), 2);
        let again = blog_seq.create().checkfirst(false).bind(&DB).await;
        assert_eq!(again.unwrap_err().sqlstate(), Some("42P07"));

        DB.drop_all().await.unwrap();
        assert!(!DB.has_sequence("schema_test.blog_seq").await.unwrap());
        DB.drop_all().await.unwrap();
        gino::schema::drop_tables(vec![Blog::TABLE], gino::Bind::Db(&DB))
            .await
            .unwrap();
        Blog::drop_table().await.unwrap();
        blog_seq.drop().bind(&DB).await.unwrap();
        blog_seq.drop().bind(&DB).await.unwrap();
        assert!(!DB.has_sequence("schema_test.blog_seq").await.unwrap());
        assert!(!DB.has_table("schema_test.s_blog").await.unwrap());
        assert!(!DB.has_type("my_enum").await.unwrap());
        gino::schema::drop_enum::<MyEnum>().bind(&DB).await.unwrap();
        DB.status(diesel::sql_query("DROP SCHEMA schema_test CASCADE"))
            .await
            .unwrap();
    }
}

/// An enum type dropped and created again gets a new OID; connections that
/// bound the old one must not keep sending it.
mod enum_types_created_again {
    use super::*;

    static DB: Gino = Gino::secondary();

    #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
    #[gino(type_name = "again_mood")]
    pub enum Mood {
        Sad,
        Happy,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "again_people", db = DB)]
    pub struct Person {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(db_enum)]
        pub mood: Mood,
    }

    #[tokio::test]
    async fn drop_all_and_create_all_again_leave_the_pool_usable() {
        // One connection: the one that bound the first type binds the second.
        let _s = bound_with(&DB, EngineOptions::new().max_size(1)).await;
        for round in 0..2 {
            DB.create_all().await.unwrap();
            let created = Person::create().mood(Mood::Happy).await;
            assert_eq!(created.unwrap().mood, Mood::Happy, "round {round}");
            let many = Person::insert_many(vec![Person {
                id: 0,
                mood: Mood::Sad,
            }])
            .await;
            assert_eq!(many.unwrap(), 1, "round {round}");
            let sad = Person::query().filter(again_people::mood.eq(Mood::Sad));
            let sad: gino::Result<Vec<Person>> = sad.gino().all().await;
            assert_eq!(sad.unwrap().len(), 1, "round {round}");
            DB.drop_all().await.unwrap();
        }
    }
}
