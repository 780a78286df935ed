//! Get-by-pk over TLS against plaintext, on one throwaway server that
//! takes both.

use gino::{EngineOptions, create_engine};

use crate::harness::{Kind, Table, contender, interleave};
use crate::schema::{User, user_by_id};

pub async fn get_by_pk() -> Table {
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
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, hair_color text)",
        "INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 10000) g",
    ] {
        plain
            .status(diesel::sql_query(statement))
            .await
            .expect("table");
    }
    let plain_conn = plain.acquire().await.expect("plaintext connection");
    let tls_conn = tls.acquire().await.expect("TLS connection");
    let id = |n: &mut i32| {
        *n += 1;
        crate::schema::spread_id(*n)
    };
    let (mut a, mut b) = (0, 0);
    let mut table = interleave(
        "get-by-pk over TLS (sslmode=require) and plaintext, held connections",
        200,
        3000,
        vec![
            contender("gino, plaintext", Kind::Gino, || {
                let id = id(&mut a);
                let conn = &plain_conn;
                async move {
                    conn.one::<User, _>(user_by_id(id)).await.expect("row");
                }
            }),
            contender("gino, TLS", Kind::Gino, || {
                let id = id(&mut b);
                let conn = &tls_conn;
                async move {
                    conn.one::<User, _>(user_by_id(id)).await.expect("row");
                }
            }),
        ],
    )
    .await;
    table.note = Some(format!(
        "TLS / plaintext: **{:.2}**",
        table.rows[1].median.as_secs_f64() / table.rows[0].median.as_secs_f64()
    ));
    plain_conn.release().await.expect("release");
    tls_conn.release().await.expect("release");
    plain.close().await;
    tls.close().await;
    table
}
