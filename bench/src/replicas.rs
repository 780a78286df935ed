//! Reads with a streaming replica against the primary alone: 8 tasks of
//! get-by-pk through one engine with no replica and one with a standby,
//! on two throwaway servers that share this machine's cores (so the
//! figure shows the routing's cost and that nothing is lost, not extra
//! capacity, which needs a second machine).

use gino::{EngineOptions, create_engine};

use crate::harness::{Kind, Table, contender, interleave};
use crate::schema::{USERS, User, user_by_id};

pub async fn concurrent_reads() -> Table {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let primary = gino_testkit::Cluster::builder().start().expect("a primary");
    let standby = primary.standby().expect("a standby");
    let url = primary.url_for("postgres");
    let options = EngineOptions::new().max_size(10);
    let alone = create_engine(&url, options.clone())
        .await
        .expect("primary-only engine");
    let routed = create_engine(&url, options.replica(standby.url_for("postgres")))
        .await
        .expect("engine with a replica");
    for statement in [
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, hair_color text)",
        "INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 10000) g",
    ] {
        alone
            .status(diesel::sql_query(statement))
            .await
            .expect("table");
    }
    // The standby has the rows once a read there finds the last one.
    for _ in 0..200 {
        if routed.one::<User, _>(user_by_id(USERS)).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let next = |n: &mut i32| {
        *n += 1;
        crate::schema::spread_id(*n)
    };
    async fn fan_out(engine: &gino::Engine, ids: Vec<i32>) {
        let tasks = ids.chunks(EACH).map(|chunk| async move {
            for &id in chunk {
                engine.one::<User, _>(user_by_id(id)).await.expect("row");
            }
        });
        futures_util::future::join_all(tasks).await;
    }
    let (mut a, mut b) = (0, 0);
    let mut table = interleave(
        format!("reads, {TASKS} concurrent tasks × {EACH} get-by-pk: primary alone and with a streaming replica (time per batch of 200)"),
        5,
        200,
        vec![
            contender("gino, primary only", Kind::Gino, || {
                let ids = (0..TASKS * EACH).map(|_| next(&mut a)).collect();
                fan_out(&alone, ids)
            }),
            contender("gino, primary + 1 replica (reads routed)", Kind::Gino, || {
                let ids = (0..TASKS * EACH).map(|_| next(&mut b)).collect();
                fan_out(&routed, ids)
            }),
        ],
    )
    .await;
    let stats = routed.routing().expect("routing");
    assert!(stats.replicas[0].reads > 0, "reads reached the replica");
    table.note = Some(format!(
        "with a replica / primary alone: **{:.2}** (both servers on the same 2 cores); \
         routed reads: {} on the replica, {} on the primary, {} fallbacks",
        table.rows[1].median.as_secs_f64() / table.rows[0].median.as_secs_f64(),
        stats.replicas[0].reads,
        stats.primary_reads,
        stats.fallbacks
    ));
    alone.close().await;
    routed.close().await;
    table
}
