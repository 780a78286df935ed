mod common;

use diesel::dsl::sql;
use diesel::sql_types::Integer;
use gino::prelude::*;

#[tokio::test]
async fn smoke() {
    let s = common::setup().await;
    let e = &s.engine;
    let v: i32 = e.one(diesel::select(sql::<Integer>("41 + 1"))).await.unwrap();
    assert_eq!(v, 42);
    let st = e.status(diesel::sql_query("CREATE TABLE t (x int)")).await.unwrap();
    assert_eq!(st, "CREATE TABLE");
    let st = e.status(diesel::sql_query("INSERT INTO t SELECT generate_series(1, 5)")).await.unwrap();
    assert_eq!(st, "INSERT 0 5");
    let err = e.status(diesel::sql_query("SELEC 1")).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42601"), "{err}");
    let conn = e.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    conn.status(diesel::sql_query("INSERT INTO t VALUES (6)")).await.unwrap();
    tx.commit().await.unwrap();
    let n: i64 = e.one(diesel::select(sql::<diesel::sql_types::BigInt>("count(*) FROM t"))).await.unwrap();
    assert_eq!(n, 6);
    let _ = diesel::select(sql::<Integer>("1")).gino();
}
