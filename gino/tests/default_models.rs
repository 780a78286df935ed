//! Models of the default database: declared without `db = ...`, they run
//! on the default `Gino` bound most recently, as do the plain diesel
//! queries built from them with `.gino()`. The default is process-wide, so
//! this binary holds a single test.

mod common;

use gino::prelude::*;
use gino::{Error, Gino};

static DB: Gino = Gino::new();
/// Another default database: default models belong to it too.
static OTHER_DEFAULT: Gino = Gino::new();
/// A secondary database: default models do not belong to it.
static REPORTING: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "users")]
pub struct User {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(default = "noname")]
    pub nickname: String,
}

fn names(db: &Gino) -> Vec<&'static str> {
    db.models().iter().map(|t| t.name).collect()
}

#[tokio::test]
async fn default_models_run_on_the_default_database() {
    assert_eq!(names(&DB), ["users"]);
    assert_eq!(names(&OTHER_DEFAULT), ["users"]);
    assert!(names(&REPORTING).is_empty());
    assert!(matches!(User::get(1).await, Err(Error::Uninitialized)));

    let s = common::setup().await;
    DB.set_bind(s.engine.clone()).await.unwrap();
    DB.create_all().await.unwrap();
    let mut fantix = User::create().nickname("fantix").await.unwrap();
    let daisy = User::create().await.unwrap();
    assert_eq!(daisy.nickname, "noname");
    // No `.bind(...)` needed: `.gino()` falls back to the default database.
    let found: Vec<User> = User::query()
        .filter(users::nickname.like("%a%"))
        .order_by(users::id)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(found, [fantix.clone(), daisy.clone()]);
    fantix.update().nickname("fantix2").apply().await.unwrap();
    assert_eq!(User::get(1).await.unwrap().as_ref(), Some(&fantix));
    assert_eq!(daisy.delete().await.unwrap(), "DELETE 1");
    let count: i64 = users::table.count().gino().one().await.unwrap();
    assert_eq!(count, 1);

    // Implicit queries inside a transaction of the newest default database
    // run in it (they find its connection by the default engine's id),
    // also after a newer default came and went.
    let other = gino::create_engine(s.db.url(), Default::default())
        .await
        .unwrap();
    for bound in [true, false] {
        if bound {
            OTHER_DEFAULT.set_bind(other.clone()).await.unwrap();
        } else {
            OTHER_DEFAULT.pop_bind().unwrap();
        }
        let newest = if bound { &OTHER_DEFAULT } else { &DB };
        let seen: Option<User> = newest
            .transaction_with(|tx| async move {
                let ghost = User::create().nickname("ghost").await?;
                tx.raise_rollback_with(User::get(ghost.id).await?)?;
                unreachable!("raise_rollback_with returns Err")
            })
            .await
            .unwrap();
        assert_eq!(seen.map(|u| u.nickname).as_deref(), Some("ghost"));
        assert_eq!(users::table.count().gino().one::<i64>().await.unwrap(), 1);
    }
    // A default `Gino` dropped while bound (one held by a value rather
    // than a static) stops being the default: its engine closed, queries
    // go on to the newest default still there.
    let local = Gino::default();
    local.set_bind(other.clone()).await.unwrap();
    drop(local);
    other.close().await;
    assert_eq!(User::get(1).await.unwrap().as_ref(), Some(&fantix));

    DB.pop_bind().unwrap().close().await;
    assert!(matches!(User::get(1).await, Err(Error::Uninitialized)));
}
