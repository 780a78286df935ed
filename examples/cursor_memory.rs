//! Memory of reading 1,000,000 rows through a server-side cursor
//! (`iterate()`) against loading them all at once (`all()`).
//!
//! `cargo run --release --example cursor_memory` prints the process's peak
//! resident memory (VmHWM, Linux) after each. The cursor runs first, since
//! the peak only grows.

use gino::diesel::{
    self,
    dsl::sql,
    sql_types::{Integer, Text},
};
use gino::prelude::*;

const ROWS: i32 = 1_000_000;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn rows() -> impl diesel::query_builder::Query<SqlType = (Integer, Text)>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg>
+ diesel::query_builder::QueryId
+ Send {
    diesel::select((
        sql::<Integer>("g"),
        sql::<Text>("repeat('x', 100) FROM generate_series(1, ")
            .bind::<Integer, _>(ROWS)
            .sql(") g"),
    ))
}

#[tokio::main]
async fn main() -> gino::Result<()> {
    let database = gino_testkit::TestDatabase::create().await;
    let db = Gino::secondary();
    db.set_bind(database.url()).await?;
    let start = peak_rss_mib();

    let (count, bytes) = db
        .transaction(async {
            let mut cursor = db.iterate::<(i32, String), _>(rows()).await?.prefetch(1000);
            let (mut count, mut bytes) = (0usize, 0usize);
            while let Some((_, text)) = cursor.next().await? {
                count += 1;
                bytes += text.len();
            }
            Ok::<_, gino::Error>((count, bytes))
        })
        .await?;
    let after_iterate = peak_rss_mib();
    println!(
        "iterate(): {count} rows, {} MiB of text, peak RSS {after_iterate:.1} MiB (start {start:.1} MiB)",
        bytes >> 20
    );

    let all: Vec<(i32, String)> = db.all(rows()).await?;
    let after_all = peak_rss_mib();
    println!("all():     {} rows, peak RSS {after_all:.1} MiB", all.len());
    drop(all);
    db.pop_bind().expect("bound").close().await;
    Ok(())
}
