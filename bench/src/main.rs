//! Latency and throughput of a get-by-primary-key, through gino and through
//! the libraries a Rust developer would otherwise pick.
//!
//! `cargo run --release` (in `bench/`). Uses the server in `DATABASE_URL`, or
//! a throwaway cluster. Figures depend on the machine; compare rows of one run.

use std::future::Future;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool as DieselPool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use gino::prelude::GinoQuery;
use gino::{EngineOptions, create_engine};

diesel::table! {
    users (id) {
        id -> Integer,
        nickname -> Text,
    }
}

#[derive(Queryable, Selectable, Debug, sqlx::FromRow)]
#[diesel(table_name = users)]
#[allow(dead_code)]
struct User {
    id: i32,
    nickname: String,
}

const ROWS: i32 = 1000;

#[derive(gino::Model, Debug, Clone)]
#[gino(table = "bulk_rows")]
struct BulkRow {
    #[gino(primary_key)]
    id: i64,
    name: String,
    score: i32,
}
#[derive(gino::Model, Debug, Clone, PartialEq)]
#[gino(table = "l_users")]
struct LUser {
    #[gino(primary_key)]
    id: i32,
    name: String,
}

#[derive(gino::Model, Debug, Clone, PartialEq)]
#[gino(table = "l_posts")]
struct LPost {
    #[gino(primary_key)]
    id: i32,
    #[gino(references = "l_users(id)")]
    user_id: i32,
    title: String,
}

#[derive(gino::Model, Debug, Clone, PartialEq)]
#[gino(table = "l_comments")]
struct LComment {
    #[gino(primary_key)]
    id: i32,
    #[gino(references = "l_posts(id)")]
    post_id: i32,
    text: String,
}

diesel::joinable!(l_posts -> l_users (user_id));
diesel::joinable!(l_comments -> l_posts (post_id));
diesel::allow_tables_to_appear_in_same_query!(l_users, l_posts, l_comments);

type Tree = Vec<(LUser, Vec<(LPost, Vec<LComment>)>)>;

const SEQUENTIAL: u32 = 5000;
const TASKS: usize = 32;
const POOL: usize = 10;
const WINDOW: Duration = Duration::from_secs(3);

fn by_id(
    id: i32,
) -> impl diesel_async::methods::LoadQuery<'static, AsyncPgConnection, User>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg>
+ diesel::query_builder::QueryId
+ Send {
    users::table.find(id).select(User::as_select())
}

/// Times `$body` (which may `.await`) over the sequential run; a macro so
/// that the body can borrow a connection mutably.
macro_rules! sequential {
    ($name:expr, |$id:ident| $body:expr) => {{
        for i in 0..200 {
            let $id = i % ROWS + 1;
            $body;
        }
        let started = Instant::now();
        for i in 0..SEQUENTIAL {
            let $id = (i as i32 * 7919) % ROWS + 1;
            $body;
        }
        let per = started.elapsed() / SEQUENTIAL;
        println!("{:<48} {:>8.1} µs/query", $name, per.as_secs_f64() * 1e6);
    }};
}

async fn concurrent<F, Fut>(name: &str, op: F)
where
    F: Fn(i32) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < WINDOW {
                    op((n as i32 * 31 + t as i32) % ROWS + 1).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("bench task");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("{name:<48} {rate:>8.0} queries/s ({TASKS} tasks, pool {POOL})");
}

#[tokio::main]
async fn main() {
    let database = gino_testkit::TestDatabase::create().await;
    let url = database.url().to_owned();
    let engine = create_engine(&url, EngineOptions::new().max_size(POOL).min_size(POOL))
        .await
        .expect("engine");
    engine
        .status(diesel::sql_query(
            "CREATE TABLE users (id serial PRIMARY KEY, nickname text NOT NULL)",
        ))
        .await
        .expect("table");
    engine
        .status(
            gino::text(
                "INSERT INTO users (nickname) SELECT 'user' || g FROM generate_series(1, :n) g",
            )
            .bind::<diesel::sql_types::Integer, _>("n", ROWS),
        )
        .await
        .expect("rows");

    println!("get-by-primary-key, sequential ({SEQUENTIAL} queries):");
    let mut raw = AsyncPgConnection::establish(&url)
        .await
        .expect("diesel-async connection");
    sequential!("diesel-async, one held connection", |id| {
        by_id(id).get_result::<User>(&mut raw).await.expect("row")
    });
    let conn = engine.acquire().await.expect("gino connection");
    sequential!("gino, one held connection (conn.one)", |id| {
        conn.one::<User, _>(by_id(id)).await.expect("row")
    });
    sequential!("gino, one held connection (conn.first)", |id| {
        gino::Connection::first::<User, _>(&conn, by_id(id))
            .await
            .expect("row")
    });
    conn.release().await.expect("release");
    sequential!("diesel-async, one held connection (again)", |id| {
        by_id(id).get_result::<User>(&mut raw).await.expect("row")
    });
    sequential!("gino, implicit (engine.one, pool checkout each)", |id| {
        engine.one::<User, _>(by_id(id)).await.expect("row")
    });
    let db = gino::Gino::new();
    db.set_bind(engine.clone()).await.expect("bind");
    sequential!("gino, .gino().one() on the default db", |id| {
        by_id(id).gino().one::<User>().await.expect("row")
    });
    let diesel_pool =
        DieselPool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(&url))
            .max_size(POOL)
            .build()
            .expect("diesel-async pool");
    sequential!("diesel-async + deadpool (Verified), checkout each", |id| {
        let mut c = diesel_pool.get().await.expect("checkout");
        by_id(id).get_result::<User>(&mut c).await.expect("row")
    });
    let sqlx_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL as u32)
        .connect(&url)
        .await
        .expect("sqlx pool");
    sequential!("sqlx pool, query_as", |id| {
        sqlx::query_as::<_, User>("SELECT id, nickname FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&sqlx_pool)
            .await
            .expect("row")
    });

    println!();
    println!(
        "get-by-primary-key, concurrent ({}s window):",
        WINDOW.as_secs()
    );
    let e = engine.clone();
    concurrent("gino, implicit (engine.one)", move |id| {
        let e = e.clone();
        async move {
            e.one::<User, _>(by_id(id)).await.expect("row");
        }
    })
    .await;
    let pool = diesel_pool.clone();
    concurrent("diesel-async + deadpool (Verified)", move |id| {
        let pool = pool.clone();
        async move {
            let mut c = pool.get().await.expect("checkout");
            by_id(id).get_result::<User>(&mut c).await.expect("row");
        }
    })
    .await;
    let pool = sqlx_pool.clone();
    concurrent("sqlx pool, query_as", move |id| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, User>("SELECT id, nickname FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("row");
        }
    })
    .await;

    println!();
    println!("bulk insert (insert_many, one transaction):");
    db.create_all().await.expect("bulk table");
    for n in [10_000usize, 100_000] {
        let rows: Vec<BulkRow> = (0..n)
            .map(|i| BulkRow {
                id: 0,
                name: format!("row {i}"),
                score: i as i32,
            })
            .collect();
        let started = Instant::now();
        let inserted = BulkRow::insert_many(rows)
            .bind(&engine)
            .await
            .expect("bulk insert");
        let rate = inserted as f64 / started.elapsed().as_secs_f64();
        println!("{:<48} {rate:>8.0} rows/s", format!("insert_many({n})"));
    }

    println!();
    create_vs_raw_insert(&engine, &url).await;

    println!();
    loaders(&engine, &url).await;

    sqlx_pool.close().await;
    db.pop_bind();
    engine.close().await;

    println!();
    tls_vs_plaintext().await;
}

/// `Model::create()` against diesel-async's `insert_into(..).returning`,
/// both on a held connection, taking turns insert by insert.
async fn create_vs_raw_insert(engine: &gino::Engine, url: &str) {
    const INSERTS: usize = 3000;
    let mut raw = AsyncPgConnection::establish(url)
        .await
        .expect("raw connection");
    let conn = engine.acquire().await.expect("gino connection");
    let mut times: [Vec<Duration>; 2] = Default::default();
    for i in 0..INSERTS + 100 {
        let name = format!("row {i}");
        let create = BulkRow::create()
            .name(name.clone())
            .score(i as i32)
            .bind(&conn);
        let gino_insert = time(std::future::IntoFuture::into_future(create)).await;
        let raw_insert = time(
            diesel::insert_into(bulk_rows::table)
                .values((bulk_rows::name.eq(name), bulk_rows::score.eq(i as i32)))
                .returning(BulkRow::as_returning())
                .get_result::<BulkRow>(&mut raw),
        )
        .await;
        if i >= 100 {
            times[0].push(gino_insert);
            times[1].push(raw_insert);
        }
    }
    println!("insert one row returning it (held connection, {INSERTS} turns, median / p90):");
    let mut medians = [0.0; 2];
    for ((name, kept), median) in [
        "gino, Model::create()",
        "diesel-async, insert_into().returning()",
    ]
    .iter()
    .zip(&mut times)
    .zip(&mut medians)
    {
        kept.sort();
        *median = kept[kept.len() / 2].as_secs_f64() * 1e6;
        let p90 = kept[kept.len() * 9 / 10].as_secs_f64() * 1e6;
        println!("{name:<48} {median:>8.1} / {p90:>6.1} µs");
    }
    println!("create() / raw insert: {:.2}", medians[0] / medians[1]);
    conn.release().await.expect("release");
}

/// Get-by-primary-key over TLS against plaintext, on one server that takes
/// both, the contenders taking turns query by query.
async fn tls_vs_plaintext() {
    const QUERIES: usize = 5000;
    let ca = gino_testkit::TestCa::new("bench CA");
    let cluster = gino_testkit::Cluster::builder()
        .tls(&ca.server(&["localhost"]), &ca)
        .start()
        .expect("a cluster with TLS");
    let url = |mode: &str| format!("{}?sslmode={mode}", cluster.url_for("postgres"));
    let plain = create_engine(&url("disable"), EngineOptions::new().max_size(2))
        .await
        .expect("plaintext engine");
    let tls = create_engine(&url("require"), EngineOptions::new().max_size(2))
        .await
        .expect("TLS engine");
    for statement in [
        "CREATE TABLE users (id serial PRIMARY KEY, nickname text NOT NULL)",
        "INSERT INTO users (nickname) SELECT 'user' || g FROM generate_series(1, 1000) g",
    ] {
        plain
            .status(diesel::sql_query(statement))
            .await
            .expect("table");
    }
    let plain_conn = plain.acquire().await.expect("plaintext connection");
    let tls_conn = tls.acquire().await.expect("TLS connection");
    let mut times: [Vec<Duration>; 4] = Default::default();
    for i in 0..QUERIES + 200 {
        let id = (i as i32 * 7919) % ROWS + 1;
        let runs = [
            time(plain_conn.one::<User, _>(by_id(id))).await,
            time(tls_conn.one::<User, _>(by_id(id))).await,
            time(plain.one::<User, _>(by_id(id))).await,
            time(tls.one::<User, _>(by_id(id))).await,
        ];
        if i >= 200 {
            for (kept, run) in times.iter_mut().zip(runs) {
                kept.push(run);
            }
        }
    }
    println!(
        "get-by-primary-key over TLS vs plaintext (one server, {QUERIES} turns, median / p90):"
    );
    let names = [
        "gino, held connection, plaintext",
        "gino, held connection, TLS (sslmode=require)",
        "gino, implicit, plaintext",
        "gino, implicit, TLS (sslmode=require)",
    ];
    let mut medians = [0.0; 4];
    for ((name, kept), median) in names.iter().zip(&mut times).zip(&mut medians) {
        kept.sort();
        *median = kept[kept.len() / 2].as_secs_f64() * 1e6;
        let p90 = kept[kept.len() * 9 / 10].as_secs_f64() * 1e6;
        println!("{name:<48} {median:>8.1} / {p90:>6.1} µs");
    }
    println!(
        "TLS / plaintext: held {:.2}, implicit {:.2}",
        medians[1] / medians[0],
        medians[3] / medians[2]
    );
    plain_conn.release().await.expect("release");
    tls_conn.release().await.expect("release");
    plain.close().await;
    tls.close().await;
}

/// How long `fut` takes; its output must be `Ok`.
async fn time<T, E: std::fmt::Debug>(fut: impl Future<Output = Result<T, E>>) -> Duration {
    let started = Instant::now();
    fut.await.expect("query");
    started.elapsed()
}

/// users → posts → comments (100 → 1,000 → 10,000): the join loader, the
/// select-in loader, and raw diesel-async's three narrow queries grouped in
/// memory, taking turns.
async fn loaders(engine: &gino::Engine, url: &str) {
    use gino::loader::{child, distinct, group, select_in};
    for statement in [
        "INSERT INTO l_users SELECT g, 'user ' || g FROM generate_series(1, 100) g",
        "INSERT INTO l_posts SELECT g, 1 + g % 100, 'post ' || g FROM generate_series(1, 1000) g",
        "INSERT INTO l_comments SELECT g, 1 + g % 1000, 'comment ' || g FROM generate_series(1, 10000) g",
    ] {
        engine
            .status(diesel::sql_query(statement))
            .await
            .expect("loader rows");
    }
    let conn = engine.acquire().await.expect("connection");
    let mut raw = AsyncPgConnection::establish(url)
        .await
        .expect("raw connection");
    let join = || async {
        l_users::table
            .left_join(l_posts::table.left_join(l_comments::table))
            .order_by((l_users::id, l_posts::id, l_comments::id))
            .select((
                LUser::as_select(),
                (
                    l_posts::all_columns.nullable(),
                    l_comments::all_columns.nullable(),
                ),
            ))
            .gino()
            .bind(&conn)
            .load(distinct::<LUser, _>(distinct::<LPost, _>(
                child::<LComment>(),
            )))
            .await
            .expect("join loader")
    };
    let selected_in = || async {
        let users: Vec<LUser> = LUser::query()
            .order_by(l_users::id)
            .gino()
            .bind(&conn)
            .all()
            .await
            .expect("users");
        let users = select_in(
            users,
            |u: &LUser| u.id,
            |p: &LPost| p.user_id,
            |ids| {
                LPost::query()
                    .filter(l_posts::user_id.eq_any(ids))
                    .order_by(l_posts::id)
                    .gino()
                    .bind(&conn)
            },
        )
        .await
        .expect("posts");
        let posts: Vec<LPost> = users.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
        let posts = select_in(
            posts,
            |p: &LPost| p.id,
            |c: &LComment| c.post_id,
            |ids| {
                LComment::query()
                    .filter(l_comments::post_id.eq_any(ids))
                    .order_by(l_comments::id)
                    .gino()
                    .bind(&conn)
            },
        )
        .await
        .expect("comments");
        let users: Vec<LUser> = users.into_iter().map(|(u, _)| u).collect();
        group(users, |u| u.id, posts, |(p, _)| p.user_id)
    };
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut shapes: Vec<usize> = Vec::new();
    for round in 0..23 {
        let started = Instant::now();
        let a: Tree = join().await;
        let t_join = started.elapsed();
        let started = Instant::now();
        let b: Tree = selected_in().await;
        let t_in = started.elapsed();
        let started = Instant::now();
        let users: Vec<LUser> = l_users::table
            .order_by(l_users::id)
            .select(LUser::as_select())
            .load(&mut raw)
            .await
            .expect("raw users");
        let user_ids: Vec<i32> = users.iter().map(|u| u.id).collect();
        let posts: Vec<LPost> = l_posts::table
            .filter(l_posts::user_id.eq_any(user_ids))
            .order_by(l_posts::id)
            .select(LPost::as_select())
            .load(&mut raw)
            .await
            .expect("raw posts");
        let post_ids: Vec<i32> = posts.iter().map(|p| p.id).collect();
        let comments: Vec<LComment> = l_comments::table
            .filter(l_comments::post_id.eq_any(post_ids))
            .order_by(l_comments::id)
            .select(LComment::as_select())
            .load(&mut raw)
            .await
            .expect("raw comments");
        let mut by_post: std::collections::HashMap<i32, Vec<LComment>> =
            std::collections::HashMap::new();
        for c in comments {
            by_post.entry(c.post_id).or_default().push(c);
        }
        let mut by_user: std::collections::HashMap<i32, Vec<(LPost, Vec<LComment>)>> =
            std::collections::HashMap::new();
        for p in posts {
            let cs = by_post.remove(&p.id).unwrap_or_default();
            by_user.entry(p.user_id).or_default().push((p, cs));
        }
        let c: Tree = users
            .into_iter()
            .map(|u| {
                let ps = by_user.remove(&u.id).unwrap_or_default();
                (u, ps)
            })
            .collect();
        let t_raw = started.elapsed();
        assert_eq!(a, b, "the join and select-in give one tree");
        assert_eq!(b, c, "and the same as raw diesel-async");
        shapes.push(a.len());
        if round >= 3 {
            times[0].push(t_join);
            times[1].push(t_in);
            times[2].push(t_raw);
        }
    }
    println!("loading users → posts → comments (100 → 1,000 → 10,000; 20 turns, median):");
    let mut medians = [0.0; 3];
    for ((name, kept), median) in [
        "gino, join loader (one wide query)",
        "gino, select_in (a query per level)",
        "diesel-async, three queries grouped by hand",
    ]
    .iter()
    .zip(&mut times)
    .zip(&mut medians)
    {
        kept.sort();
        *median = kept[kept.len() / 2].as_secs_f64() * 1e3;
        println!("{name:<48} {median:>8.2} ms");
    }
    println!(
        "join / raw: {:.2}, select_in / raw: {:.2}",
        medians[0] / medians[2],
        medians[1] / medians[2]
    );
    conn.release().await.expect("release");
}
