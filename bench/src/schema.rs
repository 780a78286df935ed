//! diesel's benchmark schema (users with a hair colour, their posts, the
//! posts' comments), declared once for gino and diesel (the model derive)
//! and once for SeaORM, and the rows every workload reads.

use diesel::prelude::*;

/// Users in the table every read workload uses.
pub const USERS: i32 = 10_000;

/// The `n`th id of a sequence spread over the table: 1..=USERS, with
/// neighbours far apart so that no contender reads what another just did.
pub fn spread_id(n: i32) -> i32 {
    n.wrapping_mul(7919).rem_euclid(USERS) + 1
}

#[derive(gino::Model, Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[gino(table = "users")]
pub struct User {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
    pub hair_color: Option<String>,
}

#[derive(gino::Model, Debug, Clone, PartialEq, sqlx::FromRow)]
#[gino(table = "posts")]
pub struct Post {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(references = User)]
    pub user_id: i32,
    pub title: String,
    pub body: Option<String>,
}

#[derive(gino::Model, Debug, Clone, PartialEq)]
#[gino(table = "comments")]
pub struct Comment {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(references = Post)]
    pub post_id: i32,
    pub text: String,
}

/// Where the insert workloads write, so that the read tables stay put.
#[derive(gino::Model, Debug, Clone, PartialEq, sqlx::FromRow)]
#[gino(table = "new_users")]
pub struct NewUser {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
    pub hair_color: Option<String>,
}

diesel::allow_tables_to_appear_in_same_query!(users, comments);

/// The SQL every contender's get-by-pk sends, for the libraries that take
/// SQL text.
pub const USER_BY_ID: &str = "SELECT id, name, hair_color FROM users WHERE id = $1";

/// Creates the tables and their rows: 10,000 users (every other one with
/// black hair), a post for each of the first 1,000 (100 users with ten
/// each, for the associations), ten comments per post.
pub async fn seed(engine: &gino::Engine) {
    let db = gino::Gino::secondary();
    db.set_bind(engine.clone()).await.expect("bind");
    for statement in [
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, hair_color text)",
        "CREATE TABLE posts (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users, \
         title text NOT NULL, body text)",
        "CREATE TABLE comments (id serial PRIMARY KEY, post_id int NOT NULL REFERENCES posts, \
         text text NOT NULL)",
        "CREATE TABLE new_users (id serial PRIMARY KEY, name text NOT NULL, hair_color text)",
        "INSERT INTO users (name, hair_color) SELECT 'user ' || g, \
         CASE WHEN g % 2 = 0 THEN 'black' ELSE 'brown' END FROM generate_series(1, 10000) g",
        "INSERT INTO posts (user_id, title, body) SELECT 1 + (g - 1) / 10, 'post ' || g, \
         'body of post ' || g FROM generate_series(1, 1000) g",
        "INSERT INTO comments (post_id, text) SELECT 1 + (g - 1) / 10, 'comment ' || g \
         FROM generate_series(1, 10000) g",
        "ANALYZE",
    ] {
        engine
            .status(diesel::sql_query(statement))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    drop(db.pop_bind());
}

/// The same tables for SeaORM.
pub mod sea {
    pub mod user {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "users")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
            pub hair_color: Option<String>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(has_many = "super::post::Entity")]
            Post,
        }

        impl Related<super::post::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::Post.def()
            }
        }

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod post {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "posts")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub user_id: i32,
            pub title: String,
            pub body: Option<String>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(
                belongs_to = "super::user::Entity",
                from = "Column::UserId",
                to = "super::user::Column::Id"
            )]
            User,
        }

        impl Related<super::user::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::User.def()
            }
        }

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod new_user {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "new_users")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
            pub hair_color: Option<String>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

/// `n` new users' names and hair colours, the same for every contender.
pub fn new_rows(n: usize, round: usize) -> Vec<(String, Option<String>)> {
    (0..n)
        .map(|i| (format!("new {round}/{i}"), Some("black".to_owned())))
        .collect()
}

/// The rows as gino models (the id is the database's).
pub fn new_models(rows: &[(String, Option<String>)]) -> Vec<NewUser> {
    rows.iter()
        .map(|(name, hair)| NewUser {
            id: 0,
            name: name.clone(),
            hair_color: hair.clone(),
        })
        .collect()
}

/// A diesel query every diesel-based contender runs as it is.
pub trait Query:
    gino::Loadable<'static, User>
    + diesel::query_builder::QueryFragment<diesel::pg::Pg>
    + diesel::query_builder::QueryId
    + Send
    + 'static
{
}

impl<T> Query for T where
    T: gino::Loadable<'static, User>
        + diesel::query_builder::QueryFragment<diesel::pg::Pg>
        + diesel::query_builder::QueryId
        + Send
        + 'static
{
}

/// The user with key `id`.
pub fn user_by_id(id: i32) -> impl Query {
    users::table.find(id).select(User::as_select())
}

/// The users whose id is at most `n`, for the trivial loads.
pub fn first_users(n: i32) -> impl Query {
    users::table
        .filter(users::id.le(n))
        .order_by(users::id)
        .select(User::as_select())
}
