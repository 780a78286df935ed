//! GINO's tutorial ("GINO Basics"), ported: declare a model, create the
//! table, and create, retrieve, update and delete rows.
//!
//! Run with `cargo run --example crud`. It uses the server in
//! `DATABASE_URL` when that is set and reachable, and otherwise starts a
//! throwaway PostgreSQL cluster from the locally installed binaries.

use gino::diesel;
use gino::prelude::*;

/// The application's database.
static DB: Gino = Gino::new();

/// A table is a model; a row is a plain value of it. Nothing is tracked:
/// every database access below is an explicit, awaited call.
#[derive(Model, Debug, Clone)]
#[gino(table = "users")]
struct User {
    #[gino(primary_key)]
    id: i32, // serial: assigned by the database
    #[gino(default = "noname")]
    nickname: String,
    #[gino(server_default = "0")]
    balance: i64,
}

#[tokio::main]
async fn main() -> gino::Result<()> {
    let database = gino_testkit::TestDatabase::create().await;
    DB.set_bind(database.url()).await?;
    DB.create_all().await?; // CREATE TABLE IF NOT EXISTS users (...)

    // Create: INSERT ... RETURNING, so `id` comes back from the database.
    let user = User::create().nickname("fantix").await?;
    println!("ID:       {}", user.id); // 1
    println!("Nickname: {}", user.nickname); // fantix

    // ... or build the value in memory first, then create it.
    let mut founder = User {
        id: 0,
        nickname: "fantix".into(),
        balance: 0,
    };
    founder.nickname.push_str(" (founder)");
    let founder = founder.create().await?;
    println!("{founder:?}");

    // Retrieve by primary key, and with queries.
    let same = User::get(1).await?;
    println!("{same:?}");
    let all: Vec<User> = User::query().gino().all().await?;
    println!("{} users", all.len());
    let founding: Vec<User> = User::query().filter(users::id.lt(10)).gino().all().await?;
    println!("{} founding users", founding.len());
    let name: Option<String> = User::select(users::nickname)
        .filter(users::id.eq(1))
        .gino()
        .scalar()
        .await?;
    println!("{name:?}"); // Some("fantix")
    let population: i64 = users::table.count().gino().one().await?;
    println!("population: {population}");

    // Update: setters change the value now, apply() runs one UPDATE and
    // refreshes the value from RETURNING; SQL expressions work too.
    let mut user = user;
    user.update()
        .nickname("daisy")
        .set(users::balance.eq(users::balance + 100))
        .apply()
        .await?;
    println!("{} has {}", user.nickname, user.balance); // daisy has 100

    // A statement over many rows.
    let status = diesel::update(users::table)
        .set(users::nickname.eq(users::nickname.concat(" (member)")))
        .filter(users::id.lt(10))
        .gino()
        .status()
        .await?;
    println!("{status}"); // UPDATE 2

    // Delete: the row goes, the value in memory stays.
    println!("{}", user.delete().await?); // DELETE 1
    println!("{:?}", User::get(user.id).await?); // None

    DB.drop_all().await?;
    DB.pop_bind().expect("bound above").close().await;
    Ok(())
}
