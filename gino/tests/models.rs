//! The model layer: GINO's tutorial and CRUD reference, on real PostgreSQL.

mod common;

use gino::prelude::*;
use gino::{Error, Gino};

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

    let status = u.delete().await.unwrap();
    assert_eq!(status, "DELETE 1");
    assert!(User::get(1).await.unwrap().is_none());
    let err = u.update().nickname("gone").apply().await.unwrap_err();
    assert!(matches!(err, Error::NoSuchRow));

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
