//! GINO's README story, ported: a model, `create_all`, creating users,
//! queries with `like` and by nickname, a class-level UPDATE with an SQL
//! expression printing its status, and a transaction iterating rows
//! through a server-side cursor.
//!
//! Run with `cargo run --example quickstart`. It connects to
//! `DATABASE_URL` when that is set and reachable, and otherwise to a
//! throwaway PostgreSQL cluster started from the local binaries.

use gino::diesel::{self, dsl::sql, sql_types::Text};
use gino::prelude::*;

#[derive(Model, Debug, Clone)]
#[gino(table = "users")]
pub struct User {
    #[gino(primary_key)]
    pub id: i32, // serial: assigned by the database
    #[gino(default = "noname")]
    pub nickname: String,
}

/// The application's database; the model belongs to it.
pub static DB: Gino = Gino::new();

#[tokio::main]
async fn main() -> gino::Result<()> {
    let (url, _database) = gino_examples::database_url().await;
    DB.set_bind(url).await?;

    // Create tables
    DB.create_all().await?;

    // Create an object; `id` is assigned by the database
    let u1 = User::create().nickname("fantix").await?;
    println!("{} {}", u1.id, u1.nickname); // 1 fantix
    for name in ["daisy", "bob", "dan"]
        .into_iter()
        .chain((5..=18).map(|_| "user"))
    {
        User::create().nickname(name).await?;
    }

    // All users with "d" in their nicknames
    let users: Vec<User> = User::query()
        .filter(User::nickname.like("%d%")) // or users::nickname
        .gino()
        .all()
        .await?;
    println!("{users:?}"); // [User { id: 2, nickname: "daisy" }, User { id: 4, ... }]

    // One user object, None if not found
    let user: Option<User> = User::query()
        .filter(users::nickname.eq("daisy"))
        .gino()
        .first()
        .await?;
    println!("{user:?}"); // Some(User { id: 2, nickname: "daisy" })

    // A complex statement, returning PostgreSQL's command status
    let status = diesel::update(users::table)
        .set(users::nickname.eq(sql::<Text>("'No.' || CAST(id AS text)")))
        .filter(users::id.gt(10))
        .gino()
        .status()
        .await?;
    println!("{status}"); // UPDATE 8

    // Iterate over the results of a large query in a transaction, as a
    // server-side cursor requires; the query runs on the transaction's
    // connection without being handed it.
    DB.transaction_with(|_tx| async {
        let mut cursor = User::query()
            .order_by(users::id)
            .gino()
            .iterate::<User>()
            .await?;
        while let Some(u) = cursor.next().await? {
            println!("{} {}", u.id, u.nickname);
        }
        Ok(())
    })
    .await?;

    DB.pop_bind().expect("bound above").close().await;
    Ok(())
}
