//! Contenders taking turns: every round runs each contender's operation
//! once, in a rotating order, so that drift of a shared machine hits all of
//! them alike; then medians, spreads and ratios, printed and kept for
//! RESULTS.md.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;

/// One contender of a workload: a name and an operation to time.
pub struct Contender<'a> {
    pub name: &'static str,
    pub kind: Kind,
    pub op: Box<dyn FnMut() -> LocalBoxFuture<'a, ()> + 'a>,
}

/// What a contender is, for the ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// gino itself.
    Gino,
    /// Raw diesel-async, the reference gino must match.
    Diesel,
    /// Another library (sqlx, SeaORM, tokio-postgres).
    Peer,
    /// A bound no library can beat (pgbench), and gino measured its way:
    /// outside the ratios.
    Floor,
}

pub fn contender<'a, F>(
    name: &'static str,
    kind: Kind,
    mut op: impl FnMut() -> F + 'a,
) -> Contender<'a>
where
    F: std::future::Future<Output = ()> + 'a,
{
    Contender {
        name,
        kind,
        op: Box::new(move || Box::pin(op())),
    }
}

/// The outcome of one contender.
pub struct Row {
    pub name: &'static str,
    pub kind: Kind,
    /// Median, 10th and 90th percentile.
    pub median: Duration,
    pub p10: Duration,
    pub p90: Duration,
}

/// A workload's rows, with its title and unit.
pub struct Table {
    pub title: String,
    pub rows: Vec<Row>,
    pub note: Option<String>,
    /// The most gino's best may take over raw diesel-async's best: the
    /// issue's target for this workload (1.03 unless it says otherwise).
    pub target: f64,
    /// gino's best over the round-trip floor, for the workload that has one.
    pub floor: Option<f64>,
}

/// The get-by-pk target against pgbench's round trip.
pub const FLOOR_TARGET: f64 = 1.3;

/// Runs `warmup` untimed rounds, then `rounds` timed ones; in each round
/// every contender runs once, in a fresh random order: a fixed rotation
/// would always put the same contender after the same other one, and some
/// leave work behind (sqlx gives its connections back in a spawned task)
/// that the next one pays for.
pub async fn interleave(
    title: impl Into<String>,
    warmup: usize,
    rounds: usize,
    mut contenders: Vec<Contender<'_>>,
) -> Table {
    // BENCH_CONTENDERS="gino|diesel-async" keeps the contenders whose names
    // start with one of these: fewer contenders between two turns of one
    // leave its caches warmer, which shows how much of a gap is footprint.
    if let Ok(keep) = std::env::var("BENCH_CONTENDERS") {
        contenders.retain(|c| keep.split('|').any(|k| c.name.starts_with(k.trim())));
    }
    let n = contenders.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..warmup + rounds {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            let started = Instant::now();
            (contenders[i].op)().await;
            if round >= warmup {
                times[i].push(started.elapsed());
            }
        }
    }
    let rows = contenders
        .iter()
        .zip(times)
        .map(|(c, mut t)| {
            t.sort();
            Row {
                name: c.name,
                kind: c.kind,
                median: t[t.len() / 2],
                p10: t[t.len() / 10],
                p90: t[t.len() * 9 / 10],
            }
        })
        .collect();
    let table = Table::new(title, rows, None);
    table.print();
    table
}

/// Fisher–Yates with xorshift: reproducible, and no dependency for it.
fn shuffle(order: &mut [usize], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `1234.5 µs` or `12.3 ms`, whichever reads better.
pub fn fmt_duration(d: Duration) -> String {
    let us = micros(d);
    if us >= 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

impl Table {
    /// A table held to the default target, 1.03× raw diesel-async.
    pub fn new(title: impl Into<String>, rows: Vec<Row>, note: Option<String>) -> Table {
        Table {
            title: title.into(),
            rows,
            note,
            target: 1.03,
            floor: None,
        }
    }

    fn best(&self, kind: Kind) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.kind == kind)
            .min_by_key(|r| r.median)
    }

    /// gino's best / raw diesel-async's best, and gino's best / the best
    /// other library's.
    pub fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let gino = self.best(Kind::Gino);
        let ratio =
            |other: Option<&Row>| Some(gino?.median.as_secs_f64() / other?.median.as_secs_f64());
        (ratio(self.best(Kind::Diesel)), ratio(self.best(Kind::Peer)))
    }

    /// The table with the target for its workload.
    pub fn with_target(mut self, target: f64) -> Table {
        self.target = target;
        self
    }

    /// Prints the table to stdout.
    pub fn print_public(&self) {
        self.print();
    }

    fn print(&self) {
        println!("\n{}", self.title);
        for r in &self.rows {
            println!(
                "  {:<52} {:>10}  (p10 {}, p90 {})",
                r.name,
                fmt_duration(r.median),
                fmt_duration(r.p10),
                fmt_duration(r.p90)
            );
        }
        let (diesel, peer) = self.ratios();
        if let Some(d) = diesel {
            print!("  gino / diesel-async: {d:.2}");
        }
        if let Some(p) = peer {
            print!("   gino / best other library: {p:.2}");
        }
        println!();
        if let Some(note) = &self.note {
            println!("  {note}");
        }
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\n| contender | median | p10 – p90 |\n|---|---:|---:|\n",
            self.title
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} – {} |",
                r.name,
                fmt_duration(r.median),
                fmt_duration(r.p10),
                fmt_duration(r.p90)
            );
        }
        let (diesel, peer) = self.ratios();
        let mut ratios = Vec::new();
        if let Some(d) = diesel {
            ratios.push(format!("gino / raw diesel-async **{d:.2}**"));
        }
        if let Some(p) = peer {
            ratios.push(format!("gino / best other library **{p:.2}**"));
        }
        if !ratios.is_empty() {
            let _ = writeln!(out, "\n{}", ratios.join(" · "));
        }
        if let Some(note) = &self.note {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

/// Every workload's ratios against its targets, and whether it met them:
/// at most `target` times raw diesel-async, ahead of the best other
/// library, and the floor's bound where there is one.
pub fn targets_markdown(tables: &[Table]) -> String {
    let mut out = String::from(
        "| workload | gino / raw diesel-async | target | gino / best other library | met |\n\
         |---|---:|---:|---:|---|\n",
    );
    let mark = |ok: bool| if ok { "yes" } else { "**no**" };
    for table in tables {
        let (Some(diesel), peer) = table.ratios() else {
            continue;
        };
        let ahead = peer.is_none_or(|p| p < 1.0);
        let _ = writeln!(
            out,
            "| {} | {diesel:.2} | ≤ {:.2} | {} | {} |",
            table.title,
            table.target,
            peer.map_or("—".to_owned(), |p| format!("{p:.2}")),
            mark(diesel <= table.target && ahead)
        );
        if let Some(floor) = table.floor {
            let _ = writeln!(
                out,
                "| {}: gino / pgbench floor | {floor:.2} | ≤ {FLOOR_TARGET:.2} | — | {} |",
                table.title,
                mark(floor <= FLOOR_TARGET)
            );
        }
    }
    out
}
