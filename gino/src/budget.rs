//! A connection budget: a cap on the open connections of several engines
//! together, for many small pools in front of one server (a pool per
//! tenant, say), where each pool's own `max_size` cannot stop them from
//! adding up to more connections than the server takes.
//!
//! An engine opening a connection takes a unit of its budget and gives it
//! back when that connection closes. With none left, opening waits, like a
//! borrow from a full pool, up to the borrow's acquire timeout (its own,
//! else the engine's: [`Error::PoolTimeout`]); first the budget asks its
//! engines to close connections nobody is using, so that idle pools make
//! room for busy ones.
//!
//! Uses: nothing of gino's but `error` and `sync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::sync::lock;

/// The longest a connection closed to make room keeps its unit: the wire
/// waits as long for the server to close its side.
const CLOSING_TAKES: Duration = Duration::from_secs(1);

/// A cap on the open connections of every engine created with it
/// ([`EngineOptions::connection_budget`](crate::EngineOptions::connection_budget)).
/// Cloning shares the budget.
///
/// ```
/// # async fn demo(url: &str) -> gino::Result<()> {
/// use gino::{ConnectionBudget, EngineOptions, create_engine};
///
/// let budget = ConnectionBudget::new(4);
/// let options = EngineOptions::new().max_size(3).connection_budget(budget.clone());
/// let first = create_engine(url, options.clone()).await?;
/// let second = create_engine(url, options).await?;
/// // Two pools of 3, but never more than 4 connections between them.
/// let (a, b) = (first.acquire().await?, second.acquire().await?);
/// assert_eq!(budget.open(), 2);
/// # drop((a, b));
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Clone)]
pub struct ConnectionBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    units: Arc<Semaphore>,
    /// Engines drawing on the budget, asked for idle connections when it
    /// runs out; dead ones are dropped as they are found.
    engines: Mutex<Vec<Weak<dyn Reclaim>>>,
    waits: AtomicU64,
}

/// An engine's side of a budget: closing a connection nobody uses.
pub(crate) trait Reclaim: Send + Sync {
    /// Closes one idle connection, if there is one; whether it did.
    fn close_one_idle(&self) -> bool;
    /// A monotonic stamp of the engine's last borrow (older goes first).
    fn last_used(&self) -> u64;
}

/// A unit of the budget, held by an open connection and returned when it
/// closes.
pub(crate) struct Unit(#[allow(dead_code)] OwnedSemaphorePermit);

impl std::fmt::Debug for ConnectionBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionBudget")
            .field("limit", &self.limit())
            .field("open", &self.open())
            .finish()
    }
}

impl ConnectionBudget {
    /// A budget of `limit` open connections.
    ///
    /// ```
    /// let budget = gino::ConnectionBudget::new(20);
    /// assert_eq!((budget.limit(), budget.open()), (20, 0));
    /// ```
    pub fn new(limit: usize) -> Self {
        // Past the most a semaphore counts, a limit is no limit anyway.
        let limit = limit.min(Semaphore::MAX_PERMITS);
        ConnectionBudget {
            inner: Arc::new(Inner {
                limit,
                units: Arc::new(Semaphore::new(limit)),
                engines: Mutex::new(Vec::new()),
                waits: AtomicU64::new(0),
            }),
        }
    }

    /// The most connections open at once.
    ///
    /// ```
    /// assert_eq!(gino::ConnectionBudget::new(8).limit(), 8);
    /// ```
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// How many connections of the budget's engines are open now.
    ///
    /// ```
    /// assert_eq!(gino::ConnectionBudget::new(8).open(), 0);
    /// ```
    pub fn open(&self) -> usize {
        self.inner.limit - self.inner.units.available_permits()
    }

    /// How many connection openings have had to wait for the budget.
    ///
    /// ```
    /// assert_eq!(gino::ConnectionBudget::new(8).waits(), 0);
    /// ```
    pub fn waits(&self) -> u64 {
        self.inner.waits.load(Ordering::Relaxed)
    }

    /// Lets the budget ask `engine` for idle connections.
    pub(crate) fn attach(&self, engine: Weak<dyn Reclaim>) {
        let mut engines = lock(&self.inner.engines);
        // Engines come and go (evicted tenants): forget the gone ones here,
        // or a budget that never runs out would keep every one's memory.
        engines.retain(|e| e.strong_count() > 0);
        engines.push(engine);
    }

    /// A unit for a connection about to open, waiting as long as it takes:
    /// the borrow that opens the connection bounds the opening, this wait
    /// included, by its acquire timeout.
    pub(crate) async fn take(&self) -> Result<Unit> {
        let units = &self.inner.units;
        if let Ok(unit) = units.clone().try_acquire_owned() {
            return Ok(Unit(unit));
        }
        self.inner.waits.fetch_add(1, Ordering::Relaxed);
        // One wait all along: it keeps this opening's place in line.
        let unit = units.clone().acquire_owned();
        tokio::pin!(unit);
        let mut closing_since = None;
        loop {
            // Room is made by closing an idle connection elsewhere, or
            // by a connection closing on its own; connections go idle
            // all the time under load, so look again every few
            // milliseconds rather than only once. A connection closed
            // for room gives its unit back once the server has let it
            // go: until then, closing more would only empty others'
            // pools.
            let settled = closing_since
                .is_none_or(|since: tokio::time::Instant| since.elapsed() >= CLOSING_TAKES);
            if settled && self.reclaim_one() {
                closing_since = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                unit = &mut unit => {
                    return unit.map(Unit).map_err(|_| Error::PoolClosed);
                }
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }

    /// Closes the idle connection of the least recently used engine that
    /// has one.
    fn reclaim_one(&self) -> bool {
        let mut engines: Vec<Arc<dyn Reclaim>> = lock(&self.inner.engines)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        engines.sort_by_key(|e| e.last_used());
        engines.iter().any(|e| e.close_one_idle())
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionBudget;

    #[test]
    fn a_limit_past_what_a_semaphore_counts_is_no_limit_not_a_panic() {
        let budget = ConnectionBudget::new(usize::MAX);
        assert_eq!(budget.open(), 0);
    }
}
