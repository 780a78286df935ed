//! The root of a connection: one raw connection of an engine (or the
//! promise of one, while lazy), shared by the [`Connection`] that borrowed
//! it and by every connection reusing it.
//!
//! A root serialises the statements of everyone sharing it, borrows from
//! the engine on first use when lazy, gives the raw connection back on
//! release, and keeps the stack of transaction levels open on it (the
//! outermost a transaction, the inner ones savepoints), so that a level
//! whose owner was dropped is rolled back before anything else runs.
//!
//! Uses: `engine` (borrowing), `statement` (running), `pool`, `wire`.
//!
//! [`Connection`]: crate::Connection

use std::num::NonZeroU64;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::IsolationLevel;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::pool::{Abandon, PgConn, RawConn};
use crate::statement::{Deadline, Statement, run_statement};
use crate::wire::TxStatus;

/// The state of one underlying connection, shared by the connection that
/// borrowed it (the root) and every connection reusing it.
pub(crate) struct Root {
    pub(crate) engine: Engine,
    /// futures' mutex, not tokio's: unlocking it is one atomic operation
    /// when nobody waits (tokio's takes its waiters' lock every time), and
    /// it is unlocked after every statement. Fairness between the
    /// connections sharing a root does not matter: each holds it for one
    /// statement.
    slot: futures_util::lock::Mutex<Slot>,
    released: AtomicBool,
    /// Transaction levels whose managed scope was dropped (cancelled) while
    /// open; they are rolled back before the connection runs anything else.
    pending_rollbacks: Mutex<Vec<u64>>,
    acquire_timeout: Option<Duration>,
    /// Borrows on first use (and again after `release_raw`); such a root
    /// promises no session, so a raw connection the server has left can be
    /// swapped for a fresh one between statements.
    lazy: bool,
    /// A write or a transaction ran on this lazy root: its scope's reads
    /// stay on it (read-your-writes with read replicas).
    pinned: AtomicBool,
    /// Woken when a transaction level ends, for statements waiting for
    /// another block's level to end ([`Access::Contextual`]).
    level_ended: tokio::sync::Notify,
    pub(crate) usage: Usage,
}

/// One open transaction level of a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) id: u64,
    /// Opened by a managed transaction: it belongs to the code of its
    /// block, and code outside the block waits for it to end instead of
    /// running inside it.
    pub(crate) managed: bool,
    /// The task that opened it (`None` for a runtime's `block_on` future,
    /// or an unmanaged level): a block begun on a
    /// named connection waits only for the blocks of its own task
    /// ([`Access::Beside`]).
    pub(crate) task: Option<tokio::task::Id>,
    /// The isolation level the outermost level asked for (its own, else
    /// the engine's; `None`: the server's default), which nested levels
    /// share.
    pub(crate) isolation: Option<IsolationLevel>,
}

/// How a statement came to a root, which says whether it may run inside
/// the transaction levels open there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The caller named this connection (or transaction): it runs inside
    /// whatever is open on it.
    Explicit,
    /// The caller found the connection in its context, inside the managed
    /// level given (`None`: inside none on this root; level ids start at
    /// 1, so that this fits in 8 bytes: every statement future holds it).
    /// A managed level
    /// opened on top by other code (a future joined beside the caller)
    /// is waited out, not joined: the caller's work must not commit or
    /// roll back with a block it is not part of.
    Contextual(Option<NonZeroU64>),
    /// A managed block begun on a named connection, inside the managed
    /// level given if one of the caller's own is open there: a block of
    /// the same task opened on top (a future joined beside it) is waited
    /// out, as for [`Contextual`](Self::Contextual); one of another task
    /// (which that task may be waiting on) is nested in, as an explicit
    /// statement is.
    Beside(Option<NonZeroU64>),
}

/// What a root has done: borrows from the pool, the time spent waiting for
/// them, statements run. Relaxed counters; they are for reports, not for
/// synchronisation.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) borrows: AtomicU32,
    pub(crate) borrow_wait_nanos: AtomicU64,
    pub(crate) statements: AtomicU64,
}

impl Usage {
    pub(crate) fn record_borrow(&self, waited: Duration) {
        self.borrows.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.borrow_wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// What sits behind the root's lock.
pub(crate) struct Slot {
    raw: Option<RawConn>,
    /// The open transaction levels, outermost first.
    pub(crate) levels: Vec<Level>,
    /// Levels ended since the lock was taken: waiters are woken when it
    /// ends.
    levels_ended: bool,
    /// A statement of the caller's own (a `COMMIT` or `ROLLBACK` sent as
    /// SQL) ended the transaction under the open levels: nothing more runs
    /// on them until they are ended ([`ended_by_sql`]).
    ended_by_sql: bool,
    /// The outermost level's `COMMIT` is on its way: a transaction found
    /// ended after it was interrupted ended by gino's hand, not by SQL.
    pub(crate) committing: bool,
    /// The outermost level's `BEGIN` while it has not reached the server:
    /// it goes with the level's first statement ([`crate::opening`]).
    pub(crate) opening: Option<String>,
}

impl Slot {
    /// Forgets every transaction level (their connection is gone, or the
    /// server ended them).
    pub(crate) fn forget_levels(&mut self) {
        self.end_levels(0);
        self.opening = None;
    }

    /// Ends the level at `depth` and every level inside it.
    pub(crate) fn end_levels(&mut self, depth: usize) {
        if depth == 0 {
            self.ended_by_sql = false;
            self.committing = false;
        }
        if depth < self.levels.len() {
            self.levels.truncate(depth);
            self.levels_ended = true;
        }
    }

    /// Whether SQL of the caller's own ended the transaction under the open
    /// levels.
    pub(crate) fn ended_by_sql(&self) -> bool {
        self.ended_by_sql
    }

    /// The depth of the level `id`, if it is open.
    pub(crate) fn depth_of(&self, id: u64) -> Option<usize> {
        self.levels.iter().position(|l| l.id == id)
    }

    /// Whether a statement that came as `access` must wait for levels to
    /// end first: a managed level of a block the statement's code is not
    /// in is open above the level it is in (also under a manual level
    /// begun on top of it).
    fn must_wait(&self, access: Access) -> bool {
        let above = |inside: Option<NonZeroU64>| {
            inside
                .and_then(|id| self.depth_of(id.get()))
                .map_or(0, |depth| depth + 1)
        };
        match access {
            Access::Explicit => false,
            Access::Contextual(inside) => self.managed_from(above(inside)),
            Access::Beside(inside) => {
                // `None` outside tasks: a runtime's `block_on` future.
                let task = tokio::task::try_id();
                self.levels[above(inside)..]
                    .iter()
                    .any(|level| level.managed && level.task == task)
            }
        }
    }

    /// The depth to roll back to now for the abandoned levels `pending`:
    /// the outermost of them open, unless a managed level above it is a
    /// block still running (another task's, nested in the abandoned one).
    /// Rolled back under it, the rest of that block would run outside any
    /// transaction and autocommit; the rollback waits for it to end.
    fn rollback_due(&self, pending: &[u64]) -> Option<usize> {
        let depth = pending.iter().filter_map(|id| self.depth_of(*id)).min()?;
        let running_above = self.levels[depth + 1..]
            .iter()
            .any(|level| level.managed && !pending.contains(&level.id));
        (!running_above).then_some(depth)
    }

    /// Whether a managed level is open at `depth` or above: a block whose
    /// rest must run inside it.
    pub(crate) fn managed_from(&self, depth: usize) -> bool {
        self.levels
            .get(depth..)
            .is_some_and(|levels| levels.iter().any(|level| level.managed))
    }

    /// Whether the server has no transaction left under the open levels
    /// (after the statement that ended it, or after one interrupted on
    /// the way): statements on them would autocommit.
    fn ended_under_levels(&mut self) -> bool {
        !self.levels.is_empty()
            && self.opening.is_none()
            && self
                .raw_if_any()
                .is_some_and(|pg| pg.wire.tx_status() == TxStatus::Idle)
    }

    /// Runs transaction-control SQL, after the outermost level's `BEGIN`
    /// if that still waits: both in one simple query, so that `sql` does
    /// not run if the `BEGIN` fails.
    pub(crate) async fn control(&mut self, sql: &str) -> Result<()> {
        let Slot { raw, opening, .. } = self;
        let pg = raw.as_mut().ok_or(Error::ConnectionReleased)?.get();
        let Some(begin) = opening.as_deref() else {
            return pg.control(sql).await;
        };
        let result = pg.control(&format!("{begin}; {sql}")).await;
        pg.settle_opening(opening);
        result
    }

    pub(crate) fn has_raw(&self) -> bool {
        self.raw.is_some()
    }

    pub(crate) fn raw_if_any(&mut self) -> Option<&mut PgConn> {
        self.raw.as_mut().map(RawConn::get)
    }

    /// Whether a statement's future was dropped half-way on the raw
    /// connection: [`resync`](Self::resync) is due.
    fn interrupted(&mut self) -> bool {
        self.raw.as_mut().is_some_and(|raw| raw.get().in_flight)
    }

    /// After a statement's future was dropped half-way (the slot is
    /// [`interrupted`](Self::interrupted)), waits for the server to end
    /// it, and rolls back a transaction the interrupted statement may have
    /// begun that no level accounts for. Outside gino's transactions nobody
    /// can want the statement's work any more, so it is cancelled if it
    /// runs on past a moment ([`Abandon::Cancel`]): the next statement does not wait
    /// for an abandoned one's minutes. Inside one it is awaited, since the
    /// transaction may still be its owners' to go on with (a cancel would
    /// make it fail), unless its level is `doomed`: queued for rollback.
    async fn resync(&mut self, doomed: bool) {
        let untracked = self.levels.is_empty();
        let Slot { raw, opening, .. } = self;
        if let Some(pg) = raw.as_mut().map(RawConn::get) {
            let abandon = if (untracked || doomed) && !pg.cancel_lost {
                Abandon::Cancel
            } else {
                Abandon::Await
            };
            pg.resync(opening, untracked, abandon).await;
        }
    }

    /// The raw connection, borrowing one from the engine if this is lazy.
    pub(crate) async fn raw(&mut self, root: &Root, deadline: &Deadline) -> Result<&mut PgConn> {
        self.raw_waiting(root, root.acquire_timeout, deadline).await
    }

    /// [`raw`](Self::raw), waiting for the pool at most `acquire_timeout`.
    async fn raw_waiting(
        &mut self,
        root: &Root,
        acquire_timeout: Option<Duration>,
        deadline: &Deadline,
    ) -> Result<&mut PgConn> {
        if root.lazy && self.levels.is_empty() {
            // The next statement provably never reaches a connection the
            // server has left: it goes to a fresh one instead of failing.
            // Only outside a transaction (also one begun in SQL) and with
            // the session as it was set up, where the switch changes
            // nothing the caller can see.
            // The same check as the pool's checkout: no round trip, and no
            // system call unless something has arrived.
            if let Some(raw) = self.raw.take_if(|raw| {
                let pg = raw.get();
                !pg.holds_session_state
                    && !pg.wire.session_changed()
                    && pg.wire.tx_status() == TxStatus::Idle
                    && pg.server_gone()
            }) {
                tracing::debug!(target: "gino", "the server left a lazy connection: borrowing another");
                drop(raw);
            }
        }
        if self.raw.is_none() {
            if !self.levels.is_empty() {
                // The transaction went with its connection: a new one
                // would run the transaction's statements outside it.
                self.forget_levels();
                return Err(Error::TransactionMisuse(
                    "this transaction's connection is gone (given back, or closed, while the \
                     transaction was open): begin the transaction again"
                        .to_owned(),
                ));
            }
            let started = Instant::now();
            self.raw = Some(root.engine.borrow(acquire_timeout, deadline).await?);
            root.usage.record_borrow(started.elapsed());
        }
        Ok(self.raw.as_mut().expect("just filled").get())
    }

    /// Returns the raw connection (rolling back what is still open).
    /// The levels end first: should this future be dropped during the
    /// rollback, none is left standing without its connection.
    async fn give_back(&mut self) {
        self.forget_levels();
        if let Some(mut raw) = self.raw.take() {
            raw.clean_up().await;
        }
    }

    /// The raw connection and the opening to send with its next statement.
    fn for_statement(&mut self) -> Option<(&mut PgConn, &mut Option<String>)> {
        let pg = self.raw.as_mut()?.get();
        Some((pg, &mut self.opening))
    }
}

impl Root {
    pub(crate) fn new(
        engine: Engine,
        raw: Option<RawConn>,
        acquire_timeout: Option<Duration>,
    ) -> Self {
        Root {
            engine,
            lazy: raw.is_none(),
            slot: futures_util::lock::Mutex::new(Slot {
                raw,
                levels: Vec::new(),
                levels_ended: false,
                ended_by_sql: false,
                committing: false,
                opening: None,
            }),
            released: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
            pending_rollbacks: Mutex::new(Vec::new()),
            level_ended: tokio::sync::Notify::new(),
            acquire_timeout,
            usage: Usage::default(),
        }
    }

    /// Keeps the reads of this root's scope on it from now on (it wrote,
    /// or a transaction began on it).
    pub(crate) fn pin_reads(&self) {
        self.pinned.store(true, Ordering::Relaxed);
    }

    /// Once a root that wrote ends, or commits, its task's reads still
    /// see the writes (the engine keeps them off replicas that have not
    /// replayed them).
    pub(crate) fn pin_task_if_written(&self) {
        if self.pinned.load(Ordering::Relaxed) {
            self.engine.pin_task();
        }
    }

    /// Whether the scope's reads must run on this root (on the primary):
    /// an acquired connection always, a lazy one after a write or a
    /// transaction.
    pub(crate) fn pins_reads(&self) -> bool {
        !self.lazy || self.pinned.load(Ordering::Relaxed)
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Queues the rollback of a transaction level; runs before the next use.
    pub(crate) fn defer_rollback(&self, level: u64) {
        self.pending_rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(level);
        // Statements waiting for the level to end run the rollback
        // themselves when they lock; nothing else may come to do it.
        self.level_ended.notify_waiters();
    }

    /// Locks the slot, after running deferred rollbacks.
    pub(crate) async fn lock(&self, deadline: &Deadline) -> Result<SlotGuard<'_>> {
        if self.is_released() {
            return Err(Error::ConnectionReleased);
        }
        let mut slot = SlotGuard {
            root: self,
            slot: deadline.wait(self.slot()).await?,
        };
        // Released while this waited for the lock: the connection (and
        // any transaction) is gone, and a new borrow would run outside it.
        if self.is_released() {
            return Err(Error::ConnectionReleased);
        }
        if slot.interrupted() {
            // A level queued for rollback is dropped with the statement
            // that ran inside it (in the innermost level, which a rollback
            // of any open level takes too): nobody wants its work.
            let doomed = {
                let pending = self
                    .pending_rollbacks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                slot.rollback_due(&pending).is_some()
            };
            // Boxed: rare, and its round trips' futures would otherwise
            // make every statement's future a kilobyte larger. Within this
            // statement's deadline: the wait for the interrupted one (a
            // transaction's, awaited) counts against it. Cut short, the
            // connection stays interrupted, for the next lock to resume.
            deadline.wait(Box::pin(slot.resync(doomed))).await?;
            if slot.ended_under_levels() {
                if slot.committing {
                    // A commit dropped with its COMMIT in flight: the
                    // server has ended the transaction, and so do its
                    // levels.
                    slot.forget_levels();
                } else {
                    // A COMMIT or ROLLBACK sent as SQL, whose future was
                    // dropped.
                    slot.ended_by_sql = true;
                }
            }
        }
        // A deferred rollback names an open level; with none open (most
        // statements) there is nothing to look up.
        if slot.levels.is_empty() {
            return Ok(slot);
        }
        let due = {
            let mut pending = self
                .pending_rollbacks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = slot.rollback_due(&pending);
            if due.is_some() {
                pending.clear();
            }
            due
        };
        if let Some(depth) = due
            && let Err(e) = Box::pin(roll_back_to(&mut slot, depth)).await
        {
            tracing::debug!(target: "gino", "rollback of an abandoned transaction failed: {e}");
        }
        Ok(slot)
    }

    /// [`lock`](Self::lock) for a statement that came as `access`: once no
    /// level it must not run inside is open on top ([`Access`]).
    pub(crate) async fn lock_for(
        &self,
        access: Access,
        deadline: &Deadline,
    ) -> Result<SlotGuard<'_>> {
        loop {
            let slot = self.lock(deadline).await?;
            if slot.ended_by_sql {
                return Err(ended_by_sql());
            }
            if !slot.must_wait(access) {
                return Ok(slot);
            }
            // Interest is registered before the lock ends, so that a level
            // ending in between is not missed.
            let mut ended = std::pin::pin!(self.level_ended.notified());
            ended.as_mut().enable();
            drop(slot);
            deadline.wait(ended).await?;
        }
    }

    /// The slot's lock; uncontended (the common case) without the wait's
    /// future.
    async fn slot(&self) -> futures_util::lock::MutexGuard<'_, Slot> {
        match self.slot.try_lock() {
            Some(slot) => slot,
            None => self.slot.lock().await,
        }
    }

    /// Marks the raw connection as holding session state (or not): while
    /// marked, it is closed instead of pooled when given back, also when
    /// the future using it is dropped.
    pub(crate) async fn hold_session_state(&self, held: bool) -> Result<()> {
        let deadline = Deadline::none();
        let mut slot = self.lock(&deadline).await?;
        slot.raw(self, &deadline).await?.holds_session_state = held;
        Ok(())
    }

    /// Whether the server has a transaction open on this connection, of
    /// gino's or begun by SQL of the caller's (a `BEGIN` in a script).
    pub(crate) async fn server_in_transaction(&self) -> Result<bool> {
        let deadline = Deadline::none();
        let mut slot = self.lock(&deadline).await?;
        Ok(slot.raw(self, &deadline).await?.wire.tx_status() != TxStatus::Idle)
    }

    /// Whether a transaction (of gino's) is open on this connection,
    /// waiting for its lock until `deadline`.
    pub(crate) async fn in_transaction(&self, deadline: &Deadline) -> Result<bool> {
        Ok(!self.lock(deadline).await?.levels.is_empty())
    }

    /// Runs one statement on this connection, which came as `access`.
    pub(crate) async fn run_as<R, S: Statement<R>>(
        &self,
        access: Access,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        let deadline = self.engine.deadline(timeout);
        let mut slot = self.lock_for(access, &deadline).await?;
        slot.raw(self, &deadline).await?;
        let in_transaction = !slot.levels.is_empty();
        let (pg, opening) = slot.for_statement().expect("borrowed above");
        if let Some(begin) = opening.as_deref()
            && S::CARRIES_OPENING
            && self.engine.echo()
        {
            // diesel's instrumentation, which echoes every other statement,
            // never sees it.
            tracing::info!(target: "gino::echo", "{begin} (sent with the next statement)");
        }
        self.usage.statements.fetch_add(1, Ordering::Relaxed);
        let writes = statement.writes();
        let result = run_statement(pg, &deadline, statement, opening).await;
        if self.engine.has_replicas() && writes.wrote(&pg.wire) {
            self.pin_reads();
            if pg.wire.tx_status() == TxStatus::Idle {
                // Committed: the task's reads elsewhere (implicit ones,
                // while a connection that is not reusable is still held)
                // must see it from now on, not once this root ends.
                self.engine.pin_task();
            }
        }
        if in_transaction && slot.ended_under_levels() {
            // The statement ended the transaction itself (a failed COMMIT
            // ends it too). Later statements would autocommit, out of reach
            // of the levels' commit or rollback, so they fail until the
            // levels end.
            slot.ended_by_sql = true;
            // A failure is the caller's to see; a success is no answer.
            result?;
            return Err(ended_by_sql());
        }
        result
    }

    /// Whether a raw connection is borrowed right now.
    pub(crate) async fn has_raw(&self) -> bool {
        // Through the guard: a root released meanwhile (dropped on another
        // thread while this held the lock) gives its connection back when
        // the lock ends.
        SlotGuard {
            root: self,
            slot: self.slot().await,
        }
        .has_raw()
    }

    /// Borrows for a lazy root now, waiting for the pool at most
    /// `acquire_timeout` (default: the root's own acquire timeout).
    pub(crate) async fn ensure_raw(&self, acquire_timeout: Option<Duration>) -> Result<()> {
        let deadline = Deadline::none();
        let mut slot = self.lock(&deadline).await?;
        let timeout = acquire_timeout.or(self.acquire_timeout);
        slot.raw_waiting(self, timeout, &deadline).await?;
        Ok(())
    }

    /// Ends this root without awaiting (its owner was dropped): the raw
    /// connection goes back now if nobody is using it; if the lock is
    /// held, the [`SlotGuard`] does it when the lock ends.
    pub(crate) fn release_now(&self) {
        self.pin_task_if_written();
        self.released.store(true, Ordering::Release);
        // A slot locked now is given back when its guard ends, which
        // wakes waiters then.
        if let Some(mut slot) = self.slot.try_lock() {
            slot.raw.take();
            slot.forget_levels();
            self.wake_if_levels_ended(&mut slot);
        }
    }

    /// Ends this root and gives its raw connection back if that needs no
    /// round trip (see [`RawConn::is_clean`]); `false` changes nothing.
    #[cfg(feature = "web")]
    pub(crate) fn release_if_clean(&self) -> bool {
        let Some(mut slot) = self.slot.try_lock() else {
            return false;
        };
        if slot.raw.as_mut().is_some_and(|raw| !raw.is_clean()) {
            return false;
        }
        self.released.store(true, Ordering::Release);
        slot.raw.take();
        slot.forget_levels();
        self.after_giving_back(&mut slot);
        drop(slot);
        true
    }

    /// What every release does once the raw connection is back, still
    /// under the lock: waiters of ended levels wake, the task keeps reading
    /// its writes, and no rollback is owed any more (a rollback deferred
    /// once the lock ends is a new level's, which this must not clear).
    fn after_giving_back(&self, slot: &mut Slot) {
        self.wake_if_levels_ended(slot);
        self.pin_task_if_written();
        self.pending_rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Gives the raw connection back; `permanent` also ends this root.
    /// Refused (`what` names the caller's method) while a managed
    /// transaction's block runs on it: the rest of the block would run
    /// outside its transaction. A managed level whose block was dropped is
    /// no block's any more: it is rolled back with the rest.
    pub(crate) async fn release(&self, permanent: bool, what: &str) -> Result<()> {
        let mut slot = self.slot().await;
        let abandoned = self
            .pending_rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if slot
            .levels
            .iter()
            .any(|l| l.managed && !abandoned.contains(&l.id))
        {
            return Err(block_still_running(what));
        }
        if permanent {
            self.released.store(true, Ordering::Release);
        }
        slot.give_back().await;
        self.after_giving_back(&mut slot);
        drop(slot);
        Ok(())
    }

    /// Wakes the statements waiting for a level to end, if one ended
    /// under this lock.
    fn wake_if_levels_ended(&self, slot: &mut Slot) {
        if std::mem::take(&mut slot.levels_ended) {
            self.level_ended.notify_waiters();
        }
    }
}

/// The locked slot of a root.
///
/// A root released or dropped while its slot is locked (say, by a query of
/// a connection reusing it) cannot give the raw connection back then; the
/// guard does it when the lock ends, so the raw connection does not wait for
/// every reusing connection to be dropped.
pub(crate) struct SlotGuard<'a> {
    root: &'a Root,
    slot: futures_util::lock::MutexGuard<'a, Slot>,
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        &self.slot
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Slot {
        &mut self.slot
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if self.root.is_released() {
            self.slot.raw.take();
            self.slot.forget_levels();
        }
        self.root.wake_if_levels_ended(&mut self.slot);
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // The raw connection's own drop decides whether it can go back to
        // the pool; levels left open make the server side non-idle, so such
        // a connection is closed rather than returned (and a statement
        // interrupted on it cancelled).
        self.slot.get_mut().raw.take();
        self.pin_task_if_written();
    }
}

/// What ending a connection or transaction under a managed block that
/// still runs gets (`what` names the caller's method).
pub(crate) fn block_still_running(what: &str) -> Error {
    Error::TransactionMisuse(format!(
        "{what}() inside a managed transaction: the rest of the transaction's block would run \
         outside it. Let the block end first, or end it early with raise_commit() / \
         raise_rollback()"
    ))
}

/// What a statement on levels ended by SQL of the caller's own gets.
pub(crate) fn ended_by_sql() -> Error {
    Error::TransactionMisuse(ENDED_BY_SQL.to_owned())
}

/// Whether `error` is [`ended_by_sql`]'s.
pub(crate) fn is_ended_by_sql(error: &Error) -> bool {
    matches!(error, Error::TransactionMisuse(why) if why == ENDED_BY_SQL)
}

const ENDED_BY_SQL: &str = "a COMMIT or ROLLBACK sent as a statement ended the transaction \
     under gino's transaction: end gino's transactions with commit() / rollback() (manual) or \
     by returning from the block (managed, or raise_commit() / raise_rollback()), never with SQL";

/// The name of the savepoint of transaction level `id`.
pub(crate) fn savepoint(id: u64) -> String {
    format!("gino_sp_{id}")
}

/// SQL that rolls back to the savepoint of level `id` and ends it.
pub(crate) fn undo_savepoint(id: u64) -> String {
    let sp = savepoint(id);
    format!("ROLLBACK TO SAVEPOINT {sp}; RELEASE SAVEPOINT {sp}")
}

/// Rolls the connection back to the start of level `depth`, ending that
/// level and every level inside it.
pub(crate) async fn roll_back_to(slot: &mut Slot, depth: usize) -> Result<()> {
    let Some(id) = slot.levels.get(depth).map(|l| l.id) else {
        return Ok(());
    };
    slot.end_levels(depth);
    let opened = depth > 0 || slot.opening.take().is_none();
    let Some(pg) = slot.raw_if_any() else {
        return Ok(());
    };
    if depth == 0 {
        // A transaction whose `BEGIN` never reached the server has nothing
        // there to roll back.
        if !opened {
            pg.wire.withdraw_opening();
            if pg.wire.tx_status() == TxStatus::Idle {
                return Ok(());
            }
        }
        pg.control("ROLLBACK").await
    } else {
        pg.control(&undo_savepoint(id)).await
    }
}
