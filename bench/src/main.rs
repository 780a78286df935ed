//! gino side by side with raw diesel-async, tokio-postgres, sqlx and
//! SeaORM on diesel's benchmark workloads, plus get-by-pk against the
//! pgbench floor and a web workload driven by wrk.
//!
//! `bench/run.sh` builds and runs it and keeps `bench/RESULTS.md`; or
//! `cargo run --release` in `bench/` (figures on stdout, RESULTS.md
//! written to the current directory). Uses the server in `DATABASE_URL`,
//! or a throwaway cluster. Contenders take turns operation by operation,
//! so compare the ratios of one run; absolute times drift on a shared
//! machine.

mod harness;
mod replicas;
mod schema;
mod tls;
mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool as DieselPool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use gino::prelude::{GinoQuery, Model as _};
use gino::{EngineOptions, create_engine};
use harness::{Kind, Table, contender, interleave};
use schema::{NewUser, Post, USERS, User, new_users, posts, users};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

const POOL: usize = 10;

/// Everything the contenders run on, made once.
struct Ctx {
    url: String,
    engine: gino::Engine,
    conn: gino::Connection,
    raw: tokio::sync::Mutex<AsyncPgConnection>,
    diesel_pool: DieselPool<AsyncPgConnection>,
    pg: Arc<tokio_postgres::Client>,
    sqlx: sqlx::PgPool,
    sea: sea_orm::DatabaseConnection,
}

/// diesel-async's deadpool with `Fast` recycling (no test query per
/// checkout), the fairest pooled reference.
pub(crate) fn fast_pool(url: &str, size: usize) -> DieselPool<AsyncPgConnection> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    DieselPool::builder(manager)
        .max_size(size)
        .build()
        .expect("diesel-async pool")
}

/// A fresh id in 1..=USERS for every call, spread over the table.
fn next_id(counter: &AtomicI32) -> i32 {
    schema::spread_id(counter.fetch_add(1, Ordering::Relaxed))
}

fn user_of(row: &tokio_postgres::Row) -> User {
    User {
        id: row.get(0),
        name: row.get(1),
        hair_color: row.get(2),
    }
}

fn post_of(row: &tokio_postgres::Row, at: usize) -> Option<Post> {
    let id: Option<i32> = row.get(at);
    Some(Post {
        id: id?,
        user_id: row.get(at + 1),
        title: row.get(at + 2),
        body: row.get(at + 3),
    })
}

#[tokio::main]
async fn main() {
    let database = gino_testkit::TestDatabase::create().await;
    let url = database.url().to_owned();
    let engine = create_engine(&url, EngineOptions::new().max_size(POOL).min_size(POOL))
        .await
        .expect("engine");
    schema::seed(&engine).await;
    static DB: gino::Gino = gino::Gino::new();
    let db: &'static gino::Gino = &DB;
    db.set_bind(engine.clone()).await.expect("bind");
    let (pg, pg_connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("tokio-postgres");
    tokio::spawn(pg_connection);
    let mut sea_options = sea_orm::ConnectOptions::new(url.clone());
    sea_options.max_connections(POOL as u32).sqlx_logging(false);
    let ctx = Ctx {
        // Not reusable: the implicit contenders must not find it (GINO's
        // reuse would run them on this connection).
        conn: engine
            .acquire()
            .reusable(false)
            .await
            .expect("gino connection"),
        raw: tokio::sync::Mutex::new(
            AsyncPgConnection::establish(&url)
                .await
                .expect("diesel-async"),
        ),
        diesel_pool: fast_pool(&url, POOL),
        pg: Arc::new(pg),
        sqlx: sqlx::postgres::PgPoolOptions::new()
            .max_connections(POOL as u32)
            .connect(&url)
            .await
            .expect("sqlx"),
        sea: sea_orm::Database::connect(sea_options)
            .await
            .expect("SeaORM"),
        engine: engine.clone(),
        url,
    };

    // BENCH_ONLY=get,concurrent,... runs only those sections (and keeps
    // RESULTS.md as it is).
    let only = std::env::var("BENCH_ONLY").ok();
    let run = |section: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s == section))
    };
    let mut tables: Vec<Table> = Vec::new();
    if run("get") {
        tables.push(get_by_pk(&ctx).await);
    }
    // BENCH_ONLY=floor runs only the round-trip floor's turns.
    if run("floor")
        && only.is_some()
        && let Some(turns) = floor_turns(&ctx).await
    {
        println!(
            "floor {:?}, gino spawned {:?}, on the main thread {:?}",
            turns.floor, turns.spawned, turns.main_thread
        );
    }
    if run("load") {
        for n in [1, 100, 10_000] {
            tables.push(trivial_load(&ctx, n).await);
        }
    }
    if run("join") {
        tables.push(medium_complex(&ctx).await);
    }
    if run("insert") {
        for n in [1, 100, 1000] {
            tables.push(insert_rows(&ctx, n).await);
        }
    }
    if run("create") {
        tables.push(create_one(&ctx).await);
    }
    if run("update") {
        tables.push(update_one(&ctx).await);
    }
    if run("transaction") {
        tables.push(transaction_rw(&ctx).await);
    }
    if run("concurrent") {
        tables.push(concurrent_get_by_pk(&ctx, Fan::OneTask).await);
    }
    if run("spawned") {
        tables.push(concurrent_get_by_pk(&ctx, Fan::Spawned).await);
    }
    // BENCH_ONLY=count:gino:2000 runs N get-by-pk on a held connection
    // (`all`; `one` through `one()`) and nothing else, for instruction
    // counts under `valgrind --tool=callgrind` (N=0 gives the baseline);
    // `diesel` does the same through raw diesel-async, `implicit` through
    // `User::get` (a pooled connection per query), `scope` as a web request
    // does, `pool` through raw diesel-async's deadpool.
    if let Some(spec) = only.as_deref().and_then(|o| o.strip_prefix("count:")) {
        let (who, n) = spec.split_once(':').expect("count:<gino|diesel>:<n>");
        let n: i32 = n.parse().expect("a number of queries");
        let extension = gino::web::Extension::new(db, gino::web::Settings::default());
        for i in 0..n {
            let id = schema::spread_id(i);
            if who == "scope" {
                // What a web request does: a scope with a lazy connection.
                extension
                    .request()
                    .run(std::future::IntoFuture::into_future(User::get(id)))
                    .await
                    .expect("query")
                    .expect("row");
            } else if who == "implicit" {
                User::get(id).await.expect("query").expect("row");
            } else if who == "pool" {
                let mut c = ctx.diesel_pool.get().await.expect("checkout");
                schema::user_by_id(id)
                    .get_result::<User>(&mut c)
                    .await
                    .expect("row");
            } else if who == "one" {
                ctx.conn
                    .one::<User, _>(schema::user_by_id(id))
                    .await
                    .expect("row");
            } else if who == "gino" {
                ctx.conn
                    .all::<User, _>(schema::user_by_id(id))
                    .await
                    .expect("row");
            } else {
                let mut c = ctx.raw.lock().await;
                schema::user_by_id(id)
                    .load::<User>(&mut *c)
                    .await
                    .expect("row");
            }
        }
    }
    // BENCH_ONLY=fan:<gino|pool>:<batches> runs only the spawned fan-out of
    // get-by-pk (8 tasks × 25 lookups a batch) through `User::get` or raw
    // diesel-async's deadpool, for `perf stat` of one contender at a time.
    if let Some(spec) = only.as_deref().and_then(|o| o.strip_prefix("fan:")) {
        let (who, n) = spec.split_once(':').expect("fan:<gino|pool>:<batches>");
        let batches: usize = n.parse().expect("a number of batches");
        let gino = who == "gino";
        let started = Instant::now();
        for batch in 0..batches {
            let ids = (0..200)
                .map(|i| schema::spread_id((batch * 200 + i) as i32))
                .collect();
            fan_out(
                Fan::Spawned,
                ids,
                ctx.diesel_pool.clone(),
                move |pool, id| async move {
                    if gino {
                        User::get(id).await.expect("query").expect("row");
                    } else {
                        let mut c = pool.get().await.expect("checkout");
                        schema::user_by_id(id)
                            .get_result::<User>(&mut c)
                            .await
                            .expect("row");
                    }
                },
            )
            .await;
        }
        println!(
            "{who}: {:?} per batch",
            started.elapsed() / batches.max(1) as u32
        );
    }
    if run("associations") {
        tables.push(associations(&ctx).await);
    }
    if run("web") {
        tables.push(web::get_user(&ctx.url).await);
    }
    // BENCH_ONLY=serve:<gino|wrapped|layer|engine|raw>:<seconds> serves one of
    // webdiag's servers on 127.0.0.1:3999 for that long, for a profiler
    // around this process and a load generator outside it.
    if let Some(spec) = only.as_deref().and_then(|o| o.strip_prefix("serve:")) {
        let (which, secs) = spec.split_once(':').expect("serve:<server>:<seconds>");
        web::serve_one(&ctx.url, which, secs.parse().expect("seconds")).await;
    }
    if only.as_deref() == Some("webdiag") {
        web::diagnose(&ctx.url).await;
    }
    if run("tls") {
        tables.push(tls::get_by_pk().await);
    }
    if run("replicas") {
        tables.push(replicas::concurrent_reads().await);
    }

    // A partial run (some sections, some contenders) prints its figures
    // and leaves the committed RESULTS.md alone.
    if only.is_none() && std::env::var_os("BENCH_CONTENDERS").is_none() {
        write_results(&tables);
    }
    ctx.conn.release().await.expect("release");
    ctx.sqlx.close().await;
    drop(db.pop_bind());
    engine.close().await;
}

async fn get_by_pk(ctx: &Ctx) -> Table {
    let ids: [AtomicI32; 7] = Default::default();
    let mut table = interleave(
        "get-by-pk, sequential (one row by primary key)",
        200,
        3000,
        vec![
            contender("gino, held connection", Kind::Gino, || {
                let id = next_id(&ids[0]);
                async move {
                    ctx.conn
                        .one::<User, _>(schema::user_by_id(id))
                        .await
                        .expect("row");
                }
            }),
            contender("gino, implicit `User::get` (pool each)", Kind::Gino, || {
                let id = next_id(&ids[1]);
                async move {
                    User::get(id).await.expect("query").expect("row");
                }
            }),
            contender("diesel-async, held connection", Kind::Diesel, || {
                let id = next_id(&ids[2]);
                async move {
                    let mut c = ctx.raw.lock().await;
                    schema::user_by_id(id)
                        .get_result::<User>(&mut *c)
                        .await
                        .expect("row");
                }
            }),
            contender(
                "diesel-async + deadpool (Fast), pool each",
                Kind::Diesel,
                || {
                    let id = next_id(&ids[3]);
                    async move {
                        let mut c = ctx.diesel_pool.get().await.expect("checkout");
                        schema::user_by_id(id)
                            .get_result::<User>(&mut c)
                            .await
                            .expect("row");
                    }
                },
            ),
            contender("tokio-postgres, prepared, one client", Kind::Peer, || {
                let id = next_id(&ids[4]);
                async move {
                    let statement = ctx.pg.prepare(schema::USER_BY_ID).await.expect("prepare");
                    let row = ctx.pg.query_one(&statement, &[&id]).await.expect("row");
                    user_of(&row);
                }
            }),
            contender("sqlx, pool", Kind::Peer, || {
                let id = next_id(&ids[5]);
                async move {
                    sqlx::query_as::<_, User>(schema::USER_BY_ID)
                        .bind(id)
                        .fetch_one(&ctx.sqlx)
                        .await
                        .expect("row");
                }
            }),
            contender("SeaORM, `find_by_id`", Kind::Peer, || {
                let id = next_id(&ids[6]);
                async move {
                    schema::sea::user::Entity::find_by_id(id)
                        .one(&ctx.sea)
                        .await
                        .expect("query")
                        .expect("row");
                }
            }),
        ],
    )
    .await;
    if let Some(turns) = floor_turns(ctx).await {
        let ratio = turns.spawned.as_secs_f64() / turns.floor.as_secs_f64();
        table.floor = Some(ratio);
        table.note = Some(format!(
            "pgbench -M prepared (one client, C, the round-trip floor): {} per query; \
             gino's held connection the same way (one query after another on one \
             connection, nothing between them, in turns with pgbench) in a spawned \
             task, as a handler runs: {}; gino / floor **{ratio:.2}** (the same loop \
             on the runtime's main thread, woken by a worker's I/O driver: {})",
            harness::fmt_duration(turns.floor),
            harness::fmt_duration(turns.spawned),
            harness::fmt_duration(turns.main_thread),
        ));
        println!("  {}", table.note.as_deref().unwrap_or_default());
        for (name, time) in [
            ("pgbench -M prepared (floor)", turns.floor),
            (
                "gino, held connection, back to back in a spawned task",
                turns.spawned,
            ),
            (
                "gino, held connection, back to back on the main thread",
                turns.main_thread,
            ),
        ] {
            table.rows.push(harness::Row {
                name,
                kind: Kind::Floor,
                median: time,
                p10: time,
                p90: time,
            });
        }
    }
    table
}

/// Medians of the round-trip floor's turns and of gino's.
struct FloorTurns {
    floor: Duration,
    spawned: Duration,
    main_thread: Duration,
}

/// The round-trip floor and gino measured the same way: pgbench's average
/// over a few seconds of back-to-back queries on one connection, and
/// gino's held connection looping as long, in turns (three each, the
/// medians). The interleaved table above puts six other contenders (and
/// their server processes) between two queries of gino's, which a hot
/// loop like pgbench's never has; comparing those figures with pgbench's
/// would measure the interleaving. gino's loop runs twice per turn: in a
/// spawned task, where a server's handlers run and where the worker that
/// polls the task also polls the socket's readiness (pgbench's single
/// thread does the same); and on the main thread, which `block_on` parks
/// until a worker's I/O driver wakes it, a thread switch per query that no
/// handler pays. `None` without pgbench.
async fn floor_turns(ctx: &Ctx) -> Option<FloorTurns> {
    const TURN: Duration = Duration::from_secs(2);
    async fn back_to_back(conn: &gino::Connection) -> Duration {
        let ids = AtomicI32::new(0);
        let (started, mut queries) = (Instant::now(), 0u32);
        while started.elapsed() < TURN {
            conn.one::<User, _>(schema::user_by_id(next_id(&ids)))
                .await
                .expect("row");
            queries += 1;
        }
        started.elapsed() / queries
    }
    let (mut floors, mut spawned, mut main_thread) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        floors.push(web::pgbench_floor(&ctx.url, TURN).await?);
        let engine = ctx.engine.clone();
        spawned.push(
            tokio::spawn(async move {
                let conn = engine.acquire().reusable(false).await.expect("connection");
                back_to_back(&conn).await
            })
            .await
            .expect("the spawned loop"),
        );
        main_thread.push(back_to_back(&ctx.conn).await);
    }
    let median = |mut turns: Vec<Duration>| {
        turns.sort();
        turns[turns.len() / 2]
    };
    Some(FloorTurns {
        floor: median(floors),
        spawned: median(spawned),
        main_thread: median(main_thread),
    })
}

async fn trivial_load(ctx: &Ctx, n: i32) -> Table {
    // 10,000 rows take milliseconds a round: fewer rounds, but enough that
    // a median of one contender is not a few outliers.
    let (warmup, rounds) = if n >= 10_000 { (5, 150) } else { (50, 1000) };
    let sql = "SELECT id, name, hair_color FROM users WHERE id <= $1 ORDER BY id";
    let count = n as usize;
    interleave(
        format!("trivial load: {n} user(s)"),
        warmup,
        rounds,
        vec![
            contender("gino, held connection", Kind::Gino, || async move {
                let rows = ctx
                    .conn
                    .all::<User, _>(schema::first_users(n))
                    .await
                    .expect("rows");
                assert_eq!(rows.len(), count);
            }),
            contender(
                "gino, implicit `.gino().all()`",
                Kind::Gino,
                || async move {
                    let rows: Vec<User> = schema::first_users(n).gino().all().await.expect("rows");
                    assert_eq!(rows.len(), count);
                },
            ),
            contender(
                "diesel-async, held connection",
                Kind::Diesel,
                || async move {
                    let mut c = ctx.raw.lock().await;
                    let rows = schema::first_users(n)
                        .load::<User>(&mut *c)
                        .await
                        .expect("rows");
                    assert_eq!(rows.len(), count);
                },
            ),
            contender(
                "diesel-async + deadpool (Fast)",
                Kind::Diesel,
                || async move {
                    let mut c = ctx.diesel_pool.get().await.expect("checkout");
                    let rows = schema::first_users(n)
                        .load::<User>(&mut c)
                        .await
                        .expect("rows");
                    assert_eq!(rows.len(), count);
                },
            ),
            contender("tokio-postgres, prepared", Kind::Peer, || async move {
                let statement = ctx.pg.prepare(sql).await.expect("prepare");
                let rows: Vec<User> = ctx
                    .pg
                    .query(&statement, &[&n])
                    .await
                    .expect("rows")
                    .iter()
                    .map(user_of)
                    .collect();
                assert_eq!(rows.len(), count);
            }),
            contender("sqlx, pool", Kind::Peer, || async move {
                let rows = sqlx::query_as::<_, User>(sql)
                    .bind(n)
                    .fetch_all(&ctx.sqlx)
                    .await
                    .expect("rows");
                assert_eq!(rows.len(), count);
            }),
            contender("SeaORM", Kind::Peer, || async move {
                use schema::sea::user;
                let rows = user::Entity::find()
                    .filter(user::Column::Id.lte(n))
                    .order_by_asc(user::Column::Id)
                    .all(&ctx.sea)
                    .await
                    .expect("rows");
                assert_eq!(rows.len(), count);
            }),
        ],
    )
    .await
}

async fn medium_complex(ctx: &Ctx) -> Table {
    let sql = "SELECT u.id, u.name, u.hair_color, p.id, p.user_id, p.title, p.body \
               FROM users u LEFT JOIN posts p ON p.user_id = u.id WHERE u.hair_color = $1";
    let expected = 5000 - 50 + 500;
    let query = || {
        users::table
            .left_join(posts::table)
            .filter(users::hair_color.eq("black"))
            .select((User::as_select(), Option::<Post>::as_select()))
    };
    interleave(
        "medium complex: users LEFT JOIN posts WHERE hair_color = 'black' (5,450 rows)",
        3,
        60,
        vec![
            contender("gino, held connection", Kind::Gino, || async move {
                let rows = ctx
                    .conn
                    .all::<(User, Option<Post>), _>(query())
                    .await
                    .expect("rows");
                assert_eq!(rows.len(), expected);
            }),
            contender(
                "diesel-async, held connection",
                Kind::Diesel,
                || async move {
                    let mut c = ctx.raw.lock().await;
                    let rows = query()
                        .load::<(User, Option<Post>)>(&mut *c)
                        .await
                        .expect("rows");
                    assert_eq!(rows.len(), expected);
                },
            ),
            contender("tokio-postgres, prepared", Kind::Peer, || async move {
                let statement = ctx.pg.prepare(sql).await.expect("prepare");
                let rows: Vec<(User, Option<Post>)> = ctx
                    .pg
                    .query(&statement, &[&"black"])
                    .await
                    .expect("rows")
                    .iter()
                    .map(|r| (user_of(r), post_of(r, 3)))
                    .collect();
                assert_eq!(rows.len(), expected);
            }),
            contender("sqlx, pool", Kind::Peer, || async move {
                use sqlx::Row as _;
                let rows: Vec<(User, Option<Post>)> = sqlx::query(sql)
                    .bind("black")
                    .fetch_all(&ctx.sqlx)
                    .await
                    .expect("rows")
                    .iter()
                    .map(|r| {
                        let user = User {
                            id: r.get(0),
                            name: r.get(1),
                            hair_color: r.get(2),
                        };
                        let post_id: Option<i32> = r.get(3);
                        let post = post_id.map(|id| Post {
                            id,
                            user_id: r.get(4),
                            title: r.get(5),
                            body: r.get(6),
                        });
                        (user, post)
                    })
                    .collect();
                assert_eq!(rows.len(), expected);
            }),
            contender("SeaORM, `find_also_related`", Kind::Peer, || async move {
                use schema::sea::{post, user};
                let rows = user::Entity::find()
                    .find_also_related(post::Entity)
                    .filter(user::Column::HairColor.eq("black"))
                    .all(&ctx.sea)
                    .await
                    .expect("rows");
                assert_eq!(rows.len(), expected);
            }),
        ],
    )
    .await
}

async fn insert_rows(ctx: &Ctx, n: usize) -> Table {
    let rounds = if n >= 1000 { 200 } else { 400 };
    let turn: [AtomicI32; 5] = Default::default();
    let rows_for = |k: usize| schema::new_rows(n, turn[k].fetch_add(1, Ordering::Relaxed) as usize);
    interleave(
        format!("insert {n} user(s) in one statement"),
        5,
        rounds,
        vec![
            contender(
                "gino, `insert_many` on a held connection",
                Kind::Gino,
                || {
                    let models = schema::new_models(&rows_for(0));
                    async move {
                        let inserted = NewUser::insert_many(models)
                            .bind(&ctx.conn)
                            .await
                            .expect("insert");
                        assert_eq!(inserted as usize, n);
                    }
                },
            ),
            contender(
                "diesel-async, `insert_into(..).values(vec)`, held",
                Kind::Diesel,
                || {
                    let rows = rows_for(1);
                    async move {
                        let values: Vec<_> = rows
                            .into_iter()
                            .map(|(name, hair)| {
                                (new_users::name.eq(name), new_users::hair_color.eq(hair))
                            })
                            .collect();
                        let mut c = ctx.raw.lock().await;
                        let inserted = diesel::insert_into(new_users::table)
                            .values(values)
                            .execute(&mut *c)
                            .await
                            .expect("insert");
                        assert_eq!(inserted, n);
                    }
                },
            ),
            contender(
                "tokio-postgres, prepared `UNNEST` of arrays",
                Kind::Peer,
                || {
                    let rows = rows_for(2);
                    async move {
                        let (names, hairs): (Vec<String>, Vec<Option<String>>) =
                            rows.into_iter().unzip();
                        let statement = ctx
                            .pg
                            .prepare(
                                "INSERT INTO new_users (name, hair_color) \
                             SELECT * FROM UNNEST($1::text[], $2::text[])",
                            )
                            .await
                            .expect("prepare");
                        let inserted =
                            tokio_postgres::Client::execute(&ctx.pg, &statement, &[&names, &hairs])
                                .await
                                .expect("insert");
                        assert_eq!(inserted as usize, n);
                    }
                },
            ),
            contender("sqlx, `QueryBuilder::push_values`", Kind::Peer, || {
                let rows = rows_for(3);
                async move {
                    let mut builder = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                        "INSERT INTO new_users (name, hair_color) ",
                    );
                    builder.push_values(rows, |mut b, (name, hair)| {
                        b.push_bind(name).push_bind(hair);
                    });
                    let done = builder.build().execute(&ctx.sqlx).await.expect("insert");
                    assert_eq!(done.rows_affected() as usize, n);
                }
            }),
            contender("SeaORM, `insert_many`", Kind::Peer, || {
                let rows = rows_for(4);
                async move {
                    use schema::sea::new_user;
                    use sea_orm::Set;
                    let models = rows.into_iter().map(|(name, hair)| new_user::ActiveModel {
                        name: Set(name),
                        hair_color: Set(hair),
                        ..Default::default()
                    });
                    new_user::Entity::insert_many(models)
                        .exec_without_returning(&ctx.sea)
                        .await
                        .expect("insert");
                }
            }),
        ],
    )
    .await
    .with_target(1.05)
}

async fn create_one(ctx: &Ctx) -> Table {
    let turn = AtomicI32::new(0);
    let name = || format!("created {}", turn.fetch_add(1, Ordering::Relaxed));
    let sql =
        "INSERT INTO new_users (name, hair_color) VALUES ($1, $2) RETURNING id, name, hair_color";
    interleave(
        "insert one row and return it (`create()`)",
        100,
        2000,
        vec![
            contender(
                "gino, `NewUser::create()` on a held connection",
                Kind::Gino,
                || {
                    let name = name();
                    async move {
                        NewUser::create()
                            .name(name)
                            .hair_color(Some("black".to_owned()))
                            .bind(&ctx.conn)
                            .await
                            .expect("create");
                    }
                },
            ),
            contender(
                "diesel-async, `insert_into(..).returning`, held",
                Kind::Diesel,
                || {
                    let name = name();
                    async move {
                        let mut c = ctx.raw.lock().await;
                        diesel::insert_into(new_users::table)
                            .values((new_users::name.eq(name), new_users::hair_color.eq("black")))
                            .returning(NewUser::as_returning())
                            .get_result::<NewUser>(&mut *c)
                            .await
                            .expect("insert");
                    }
                },
            ),
            contender("tokio-postgres, prepared", Kind::Peer, || {
                let name = name();
                async move {
                    let statement = ctx.pg.prepare(sql).await.expect("prepare");
                    ctx.pg
                        .query_one(&statement, &[&name, &"black"])
                        .await
                        .expect("insert");
                }
            }),
            contender("sqlx, pool, `query_as`", Kind::Peer, || {
                let name = name();
                async move {
                    sqlx::query_as::<_, NewUser>(sql)
                        .bind(name)
                        .bind("black")
                        .fetch_one(&ctx.sqlx)
                        .await
                        .expect("insert");
                }
            }),
            contender("SeaORM, `ActiveModel::insert`", Kind::Peer, || {
                let name = name();
                async move {
                    use schema::sea::new_user;
                    use sea_orm::Set;
                    new_user::ActiveModel {
                        name: Set(name),
                        hair_color: Set(Some("black".to_owned())),
                        ..Default::default()
                    }
                    .insert(&ctx.sea)
                    .await
                    .expect("insert");
                }
            }),
        ],
    )
    .await
    .with_target(1.05)
}

async fn update_one(ctx: &Ctx) -> Table {
    let turn = AtomicI32::new(0);
    let next = || {
        let n = turn.fetch_add(1, Ordering::Relaxed);
        (n.rem_euclid(USERS) + 1, format!("renamed {n}"))
    };
    let sql = "UPDATE users SET name = $1 WHERE id = $2";
    let users_cell: tokio::sync::Mutex<Vec<User>> = tokio::sync::Mutex::new(
        ctx.conn
            .all::<User, _>(users::table.select(User::as_select()).order_by(users::id))
            .await
            .expect("users"),
    );
    let users_cell = &users_cell;
    interleave(
        "update one row's column (gino's `apply` returns the row, as GINO's does)",
        100,
        2000,
        vec![
            contender(
                "gino, `user.update().name(..).apply()`, held",
                Kind::Gino,
                || {
                    let (id, name) = next();
                    async move {
                        let mut all = users_cell.lock().await;
                        let user = &mut all[(id - 1) as usize];
                        user.update()
                            .name(name)
                            .bind(&ctx.conn)
                            .apply()
                            .await
                            .expect("update");
                    }
                },
            ),
            contender(
                "diesel-async, `update(..).set(..).returning`, held",
                Kind::Diesel,
                || {
                    let (id, name) = next();
                    async move {
                        let mut c = ctx.raw.lock().await;
                        diesel::update(users::table.find(id))
                            .set(users::name.eq(name))
                            .returning(User::as_returning())
                            .get_result::<User>(&mut *c)
                            .await
                            .expect("update");
                    }
                },
            ),
            contender(
                "diesel-async, `update(..).set(..)`, held",
                Kind::Diesel,
                || {
                    let (id, name) = next();
                    async move {
                        let mut c = ctx.raw.lock().await;
                        diesel::update(users::table.find(id))
                            .set(users::name.eq(name))
                            .execute(&mut *c)
                            .await
                            .expect("update");
                    }
                },
            ),
            contender("tokio-postgres, prepared", Kind::Peer, || {
                let (id, name) = next();
                async move {
                    let statement = ctx.pg.prepare(sql).await.expect("prepare");
                    tokio_postgres::Client::execute(&ctx.pg, &statement, &[&name, &id])
                        .await
                        .expect("update");
                }
            }),
            contender("sqlx, pool", Kind::Peer, || {
                let (id, name) = next();
                async move {
                    sqlx::query(sql)
                        .bind(name)
                        .bind(id)
                        .execute(&ctx.sqlx)
                        .await
                        .expect("update");
                }
            }),
            contender("SeaORM, `ActiveModel::update`", Kind::Peer, || {
                let (id, name) = next();
                async move {
                    use schema::sea::user;
                    use sea_orm::{Set, Unchanged};
                    user::ActiveModel {
                        id: Unchanged(id),
                        name: Set(name),
                        ..Default::default()
                    }
                    .update(&ctx.sea)
                    .await
                    .expect("update");
                }
            }),
        ],
    )
    .await
}

/// gino's way inside a transaction: implicit queries run on the
/// transaction's connection, and `apply` keeps its UPDATE prepared (diesel
/// prepares an `UPDATE` anew on every run: one round trip more).
async fn get_and_rename(id: i32, name: String) -> gino::Result<()> {
    let mut user = User::get(id).await?.expect("row");
    user.update().name(name).apply().await?;
    Ok(())
}

/// The same with raw diesel-async: the row read, then diesel's `UPDATE`.
async fn diesel_get_and_rename(
    conn: &mut AsyncPgConnection,
    id: i32,
    name: String,
) -> diesel::QueryResult<usize> {
    conn.transaction(async move |c| {
        schema::user_by_id(id).get_result::<User>(c).await?;
        diesel::update(users::table.find(id))
            .set(users::name.eq(name))
            .execute(c)
            .await
    })
    .await
}

/// A transaction as handlers write them: read a row by primary key,
/// change its name, commit.
async fn transaction_rw(ctx: &Ctx) -> Table {
    let turn = AtomicI32::new(0);
    let next = || {
        let n = turn.fetch_add(1, Ordering::Relaxed);
        (n.rem_euclid(USERS) + 1, format!("moved {n}"))
    };
    let sql = "UPDATE users SET name = $1 WHERE id = $2";
    interleave(
        "transaction: read a row by primary key, update it, commit",
        100,
        2000,
        vec![
            contender(
                "gino, `conn.transaction`: `User::get`, `update().apply()`, held",
                Kind::Gino,
                || {
                    let (id, name) = next();
                    async move {
                        ctx.conn
                            .transaction(get_and_rename(id, name))
                            .await
                            .expect("transaction");
                    }
                },
            ),
            contender(
                "gino, `engine.transaction`: the same, pool each",
                Kind::Gino,
                || {
                    let (id, name) = next();
                    async move {
                        ctx.engine
                            .transaction(get_and_rename(id, name))
                            .await
                            .expect("transaction");
                    }
                },
            ),
            contender("diesel-async, `transaction`, held", Kind::Diesel, || {
                let (id, name) = next();
                async move {
                    let mut c = ctx.raw.lock().await;
                    diesel_get_and_rename(&mut c, id, name)
                        .await
                        .expect("transaction");
                }
            }),
            contender(
                "diesel-async + deadpool (Fast), `transaction`, pool each",
                Kind::Diesel,
                || {
                    let (id, name) = next();
                    async move {
                        let mut c = ctx.diesel_pool.get().await.expect("checkout");
                        diesel_get_and_rename(&mut c, id, name)
                            .await
                            .expect("transaction");
                    }
                },
            ),
            contender("tokio-postgres, prepared, one client", Kind::Peer, || {
                let (id, name) = next();
                async move {
                    let pg: &tokio_postgres::Client = &ctx.pg;
                    let read = pg.prepare(schema::USER_BY_ID).await.expect("prepare");
                    let write = pg.prepare(sql).await.expect("prepare");
                    pg.batch_execute("BEGIN").await.expect("begin");
                    user_of(&pg.query_one(&read, &[&id]).await.expect("row"));
                    pg.execute(&write, &[&name, &id]).await.expect("update");
                    pg.batch_execute("COMMIT").await.expect("commit");
                }
            }),
            contender("sqlx, pool, `begin`", Kind::Peer, || {
                let (id, name) = next();
                async move {
                    let mut tx = ctx.sqlx.begin().await.expect("begin");
                    sqlx::query_as::<_, User>(schema::USER_BY_ID)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .expect("row");
                    sqlx::query(sql)
                        .bind(name)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .expect("update");
                    tx.commit().await.expect("commit");
                }
            }),
            contender("SeaORM, `begin`", Kind::Peer, || {
                let (id, name) = next();
                async move {
                    use schema::sea::user;
                    use sea_orm::{Set, TransactionTrait};
                    let tx = ctx.sea.begin().await.expect("begin");
                    let found = user::Entity::find_by_id(id)
                        .one(&tx)
                        .await
                        .expect("query")
                        .expect("row");
                    let mut changed: user::ActiveModel = found.into();
                    changed.name = Set(name);
                    changed.update(&tx).await.expect("update");
                    tx.commit().await.expect("commit");
                }
            }),
        ],
    )
    .await
}

/// Lookups in a row per sequence of the concurrent workloads.
const EACH: usize = 25;

/// Runs `op(with, id)` for every id, [`EACH`] in a row per sequence, the
/// sequences at once; each call gets its own clone of `with` (a pool,
/// an engine, a client), so that a sequence can run as a task.
async fn fan_out<T, F, Fut>(fan: Fan, ids: Vec<i32>, with: T, op: F)
where
    T: Clone + Send + 'static,
    F: Fn(T, i32) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let sequences = ids.chunks(EACH).map(|chunk| {
        let (chunk, with, op) = (chunk.to_vec(), with.clone(), op.clone());
        async move {
            for id in chunk {
                op(with.clone(), id).await;
            }
        }
    });
    match fan {
        Fan::OneTask => drop(futures_util::future::join_all(sequences).await),
        Fan::Spawned => {
            let tasks: Vec<_> = sequences.map(tokio::spawn).collect();
            for task in tasks {
                task.await.expect("lookup task");
            }
        }
    }
}

/// How eight concurrent sequences of lookups run.
#[derive(Clone, Copy)]
enum Fan {
    /// Eight futures of one task (`join_all`): one thread polls all of
    /// them, so a library whose connections do their I/O in tasks of their
    /// own spreads it over both worker threads.
    OneTask,
    /// Eight tokio tasks, as a server runs its requests.
    Spawned,
}

/// Eight concurrent lookups of 25 rows each: the time of a batch of 200.
async fn concurrent_get_by_pk(ctx: &Ctx, fan: Fan) -> Table {
    const TASKS: usize = 8;
    let ids: [AtomicI32; 5] = Default::default();
    let batch = |k: usize| -> Vec<i32> { (0..TASKS * EACH).map(|_| next_id(&ids[k])).collect() };
    let shape = match fan {
        Fan::OneTask => "futures of one task (`join_all`)",
        Fan::Spawned => "spawned tasks",
    };
    interleave(
        format!("get-by-pk, {TASKS} concurrent {shape} × {EACH} lookups (time per batch of 200)"),
        5,
        200,
        vec![
            contender(
                "gino, implicit `User::get` (pool of 10)",
                Kind::Gino,
                move || {
                    fan_out(fan, batch(0), (), |(), id| async move {
                        User::get(id).await.expect("query").expect("row");
                    })
                },
            ),
            contender("gino, `engine.one` (pool of 10)", Kind::Gino, || {
                fan_out(fan, batch(0), ctx.engine.clone(), |engine, id| async move {
                    engine
                        .one::<User, _>(schema::user_by_id(id))
                        .await
                        .expect("row");
                })
            }),
            contender(
                "diesel-async + deadpool (Fast, pool of 10)",
                Kind::Diesel,
                || {
                    fan_out(
                        fan,
                        batch(1),
                        ctx.diesel_pool.clone(),
                        |pool, id| async move {
                            let mut c = pool.get().await.expect("checkout");
                            schema::user_by_id(id)
                                .get_result::<User>(&mut c)
                                .await
                                .expect("row");
                        },
                    )
                },
            ),
            contender("tokio-postgres, one pipelining client", Kind::Peer, || {
                fan_out(fan, batch(2), ctx.pg.clone(), |pg, id| async move {
                    let statement = pg.prepare(schema::USER_BY_ID).await.expect("prepare");
                    pg.query_one(&statement, &[&id]).await.expect("row");
                })
            }),
            contender("sqlx (pool of 10)", Kind::Peer, || {
                fan_out(fan, batch(3), ctx.sqlx.clone(), |pool, id| async move {
                    sqlx::query_as::<_, User>(schema::USER_BY_ID)
                        .bind(id)
                        .fetch_one(&pool)
                        .await
                        .expect("row");
                })
            }),
            contender("SeaORM (pool of 10)", Kind::Peer, || {
                fan_out(fan, batch(4), ctx.sea.clone(), |sea, id| async move {
                    schema::sea::user::Entity::find_by_id(id)
                        .one(&sea)
                        .await
                        .expect("query")
                        .expect("row");
                })
            }),
        ],
    )
    .await
}

/// 100 users → 1,000 posts → 10,000 comments as a tree: gino's join
/// loader, its select-in loader, and diesel-async's three narrow queries
/// grouped by hand (what `belonging_to` + `grouped_by` do).
async fn associations(ctx: &Ctx) -> Table {
    use gino::loader::{child, distinct, group, select_in};
    use schema::{Comment, comments};
    type Tree = Vec<(User, Vec<(Post, Vec<Comment>)>)>;
    let conn = &ctx.conn;
    let join = || async move {
        let tree: Tree = users::table
            .filter(users::id.le(100))
            .left_join(posts::table.left_join(comments::table))
            .order_by((users::id, posts::id, comments::id))
            .select((
                User::as_select(),
                (
                    posts::all_columns.nullable(),
                    comments::all_columns.nullable(),
                ),
            ))
            .gino()
            .bind(conn)
            .load(distinct::<User, _>(distinct::<Post, _>(child::<Comment>())))
            .await
            .expect("join loader");
        assert_eq!(tree.len(), 100);
    };
    let selected_in = || async move {
        let users: Vec<User> = User::query()
            .filter(users::id.le(100))
            .order_by(users::id)
            .gino()
            .bind(conn)
            .all()
            .await
            .expect("users");
        let users = select_in(
            users,
            |u: &User| u.id,
            |p: &Post| p.user_id,
            |ids| {
                Post::query()
                    .filter(posts::user_id.eq_any(ids))
                    .order_by(posts::id)
                    .gino()
                    .bind(conn)
            },
        )
        .await
        .expect("posts");
        let posts: Vec<Post> = users.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
        let posts = select_in(
            posts,
            |p: &Post| p.id,
            |c: &Comment| c.post_id,
            |ids| {
                Comment::query()
                    .filter(comments::post_id.eq_any(ids))
                    .order_by(comments::id)
                    .gino()
                    .bind(conn)
            },
        )
        .await
        .expect("comments");
        let users: Vec<User> = users.into_iter().map(|(u, _)| u).collect();
        let tree: Tree = group(users, |u| u.id, posts, |(p, _)| p.user_id);
        assert_eq!(tree.len(), 100);
    };
    let raw = || async move {
        let mut c = ctx.raw.lock().await;
        let users: Vec<User> = users::table
            .filter(users::id.le(100))
            .order_by(users::id)
            .select(User::as_select())
            .load(&mut *c)
            .await
            .expect("users");
        let posts: Vec<Post> = posts::table
            .filter(posts::user_id.eq_any(users.iter().map(|u| u.id).collect::<Vec<_>>()))
            .order_by(posts::id)
            .select(Post::as_select())
            .load(&mut *c)
            .await
            .expect("posts");
        let comments: Vec<Comment> = comments::table
            .filter(comments::post_id.eq_any(posts.iter().map(|p| p.id).collect::<Vec<_>>()))
            .order_by(comments::id)
            .select(Comment::as_select())
            .load(&mut *c)
            .await
            .expect("comments");
        let mut by_post: std::collections::HashMap<i32, Vec<Comment>> = Default::default();
        for comment in comments {
            by_post.entry(comment.post_id).or_default().push(comment);
        }
        let mut by_user: std::collections::HashMap<i32, Vec<(Post, Vec<Comment>)>> =
            Default::default();
        for post in posts {
            let cs = by_post.remove(&post.id).unwrap_or_default();
            by_user.entry(post.user_id).or_default().push((post, cs));
        }
        let tree: Tree = users
            .into_iter()
            .map(|u| {
                let ps = by_user.remove(&u.id).unwrap_or_default();
                (u, ps)
            })
            .collect();
        assert_eq!(tree.len(), 100);
    };
    interleave(
        "associations: 100 users → 1,000 posts → 10,000 comments as a tree",
        3,
        40,
        vec![
            contender("gino, join loader (one wide query)", Kind::Gino, join),
            contender(
                "gino, `select_in` (a query per level)",
                Kind::Gino,
                selected_in,
            ),
            contender(
                "diesel-async, three queries grouped by hand",
                Kind::Diesel,
                raw,
            ),
        ],
    )
    .await
    .with_target(1.05)
}

/// RESULTS.md: the machine, every table, the targets met and missed, and
/// ANALYSIS.md.
fn write_results(tables: &[Table]) {
    let machine = std::env::var("BENCH_MACHINE").unwrap_or_else(|_| "(not described)".to_owned());
    let mut out = format!(
        "# gino benchmark results\n\n\
         Written by `bench/run.sh` ({}). Machine: {machine}.\n\n\
         Contenders take turns operation by operation; medians and the 10th–90th \
         percentile spread per contender. Ratios compare gino's best contender with raw \
         diesel-async's best and with the best other library's (lower is better; below \
         1.00 gino is faster). Held = one connection kept for the run; pool = a pooled \
         connection taken per operation.\n\n",
        unix_date()
    );
    for table in tables {
        out.push_str(&table.markdown());
        out.push('\n');
    }
    out.push_str("## Targets\n\n");
    out.push_str(&harness::targets_markdown(tables));
    // ANALYSIS.md one heading level down: where a target is missed, what
    // it costs and why, next to the figures. Read when the run ends, so
    // that it is the text committed with them.
    let analysis = concat!(env!("CARGO_MANIFEST_DIR"), "/ANALYSIS.md");
    let analysis =
        std::fs::read_to_string(analysis).unwrap_or_else(|e| panic!("reading {analysis}: {e}"));
    out.push('\n');
    for line in analysis.lines() {
        if line.starts_with('#') {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    let path = std::env::var("BENCH_RESULTS").unwrap_or_else(|_| "RESULTS.md".to_owned());
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    println!("\nwrote {path}");
}

fn unix_date() -> String {
    let out = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Err(_) => format!("{:?}", Instant::now()),
    }
}
