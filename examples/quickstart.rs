//! GINO's README example, ported: create the table, create users, query
//! with filters, a class-level UPDATE printing its status, and a
//! transaction iterating rows.
//!
//! Run with `cargo run --example quickstart`. It uses the server in
//! `DATABASE_URL` when that is set and reachable, and otherwise starts a
//! throwaway PostgreSQL cluster from the locally installed binaries.

use gino::prelude::*;

diesel::table! {
    users (id) {
        id -> Integer,
        nickname -> Text,
    }
}

#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = users)]
struct User {
    id: i32,
    nickname: String,
}

/// The application's database; `.gino()` queries run on it.
static DB: Gino = Gino::new();

#[tokio::main]
async fn main() -> gino::Result<()> {
    // A fresh database for this run, dropped at the end.
    let database = gino_testkit::TestDatabase::create().await;

    DB.set_bind(database.url()).await?;

    // Create tables
    DB.status(diesel::sql_query(
        "CREATE TABLE IF NOT EXISTS users (
             id serial PRIMARY KEY,
             nickname text NOT NULL DEFAULT 'noname'
         )",
    ))
    .await?;

    // Create a user; `id` is assigned by the database (INSERT ... RETURNING)
    let u1: User = diesel::insert_into(users::table)
        .values(users::nickname.eq("fantix"))
        .returning(User::as_returning())
        .gino()
        .one()
        .await?;
    println!("{} {}", u1.id, u1.nickname); // 1 fantix

    let names = (2..=18)
        .map(|i| users::nickname.eq(format!("user{i}")))
        .collect::<Vec<_>>();
    let created = diesel::insert_into(users::table)
        .values(names)
        .gino()
        .status()
        .await?;
    println!("{created}"); // INSERT 0 17
    diesel::update(users::table.filter(users::id.eq(2)))
        .set(users::nickname.eq("daisy"))
        .gino()
        .status()
        .await?;

    // All users with "d" in their nicknames
    let with_d: Vec<User> = users::table
        .filter(users::nickname.like("%d%"))
        .select(User::as_select())
        .gino()
        .all()
        .await?;
    println!("{with_d:?}");

    // One user, or None
    let daisy: Option<User> = users::table
        .filter(users::nickname.eq("daisy"))
        .select(User::as_select())
        .gino()
        .first()
        .await?;
    println!("{daisy:?}");

    // A statement over many rows, returning PostgreSQL's status
    let status = diesel::update(users::table)
        .set(users::nickname.eq(users::nickname.concat(" (member)")))
        .filter(users::id.gt(10))
        .gino()
        .status()
        .await?;
    println!("{status}"); // UPDATE 8

    // Iterate over the results of a large query with a server-side cursor,
    // which needs a transaction; the query in the block runs on the
    // transaction's connection without being handed it.
    DB.transaction(async {
        let mut cursor = users::table
            .order_by(users::id)
            .select(User::as_select())
            .gino()
            .iterate::<User>()
            .await?;
        while let Some(u) = cursor.next().await? {
            println!("{} {}", u.id, u.nickname);
        }
        Ok::<_, gino::Error>(())
    })
    .await?;

    DB.pop_bind().expect("bound above").close().await;
    Ok(())
}
