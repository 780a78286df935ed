//! The pool's connections and the one rule for giving them back.
//!
//! deadpool checks nothing when a connection comes back, and diesel-async
//! leaves a transaction open when a future is dropped inside it. So every
//! raw connection gino holds is a [`RawConn`], and a `RawConn` decides on its
//! own way out: a connection whose server side is idle (as the wire says) and
//! that was not interrupted in the middle of a statement goes back to the
//! pool. Callers that can await try a `ROLLBACK` first
//! ([`RawConn::clean_up`]), so that an orderly release keeps the connection.
//! One dropped in the middle of a statement outside any transaction (the
//! future running it was dropped: a client that went away, a `select!`)
//! is seen to the statement's end by a task of its own while it still
//! counts as borrowed (the statement is cancelled on the server if it runs
//! on past [`RECOVERY_PATIENCE`], since nobody awaits it any more), then
//! goes back to the pool: that keeps a pool serving clients who give up
//! mid-request from opening a connection for every one of them. Any other
//! connection given back dirty is closed, which makes the server roll back
//! whatever it had open at once (a `ROLLBACK` would keep a transaction open
//! a round trip longer); a statement still running on it, which reads
//! nothing until it ends and would run on holding the transaction's locks,
//! is cancelled. The same goes for one that cannot be seen to its end (the
//! server is gone, a cancel was lost, the session holds a lock, no runtime
//! to run the task on, [`RECOVERY_LIMIT`] passed).
//!
//! Uses: `wire` (opening, observing), `budget` (a unit per open connection).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::budget::ConnectionBudget;
use crate::config::OnConnect;
use crate::drive::{Driver, drive};
use crate::error::{Error, Result};
use crate::wire::{Connector, ServerAddr, TxStatus, WireState};

/// A diesel-async connection with what gino knows about it.
pub(crate) struct PgConn {
    pub(crate) conn: AsyncPgConnection,
    /// Drives `conn`'s socket: every future awaiting `conn` goes through
    /// [`drive`].
    pub(crate) driver: Arc<Driver>,
    pub(crate) wire: Arc<WireState>,
    pub(crate) addr: ServerAddr,
    /// Set while a statement runs; still set afterwards means the future
    /// running it was dropped half-way, and the connection's state is unknown.
    pub(crate) in_flight: bool,
    /// Whether the server had a transaction open when the statement in
    /// flight began: one the caller began in SQL, which recovering from
    /// that statement must not roll back behind the caller's back.
    pub(crate) began_in_transaction: bool,
    /// Set while the session holds state a pooled connection must not
    /// carry to its next user (a session-level advisory lock).
    pub(crate) holds_session_state: bool,
    /// Set when a statement's cancel request went unanswered: another one
    /// would be lost too, so the connection is closed once given back.
    pub(crate) cancel_lost: bool,
    /// When the connection last came back to the pool: how long it has
    /// been idle (deadpool's own metrics count from its last checkout, so a
    /// connection held for a minute would look idle the moment it is back).
    pub(crate) given_back: Option<std::time::Instant>,
    /// The pool's [`Manager::generation`] when the connection opened.
    generation: u64,
}

impl PgConn {
    /// How long this pooled connection has sat unused.
    pub(crate) fn idle_for(&self, metrics: &Metrics) -> Duration {
        self.given_back
            .map_or_else(|| metrics.last_used(), |at| at.elapsed())
    }
}

/// How long a cancelled statement may take to end once its cancel request
/// went out. A cancel can be lost (PgBouncer 1.18 drops tokio-postgres's
/// cancel connection); past this gino stops waiting for it.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// How long a statement nobody awaits any more may run on before it is
/// cancelled ([`Abandon::Cancel`]): its work is for nobody, but most end
/// within this, and a cancel request costs the server a process.
const RECOVERY_PATIENCE: Duration = Duration::from_millis(100);

/// How long a recovery may take in all before it gives up and closes the
/// connection: a server that stops answering must not keep a pool's slot.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);

/// What a [resync](PgConn::resync) does about the statement it found
/// interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abandon {
    /// Waits for it to end: a transaction may still want its work.
    Await,
    /// Cancels it on the server once it has run past
    /// [`RECOVERY_PATIENCE`], since nobody awaits it any more; if the
    /// cancel is lost, waits for it to end after all.
    Cancel,
    /// Cancels it as `Cancel` does, and gives up if the cancel is lost.
    CancelOrGiveUp,
}

/// How long a cancelled statement may run on before its cancel request
/// goes again: the server ignores one that comes while it waits for the
/// client (between two round trips of a statement: a prepare and its
/// run, a closure's queries), and the statement's next round trip would
/// run its full time.
const CANCEL_AGAIN: Duration = Duration::from_millis(200);

/// Sends a cancel request for the statement running under `token` and
/// waits for `running` (whatever awaits that statement's end) to end,
/// sending it again every [`CANCEL_AGAIN`] meanwhile: `None` if it has not
/// [`CANCEL_GRACE`] after the first request went out. Each request is
/// seen through (the server has signalled its backend) before `running`
/// is awaited again, so none reaches a statement that comes after, unless
/// the grace cuts one short: the cancel then counts as lost, as when the
/// statement outlives it.
pub(crate) async fn cancel_and_wait<F: Future>(
    addr: &ServerAddr,
    token: &tokio_postgres::CancelToken,
    running: F,
) -> Option<F::Output> {
    let mut running = std::pin::pin!(running);
    let cancelled = tokio::time::timeout(CANCEL_GRACE, async {
        let mut said = false;
        loop {
            // Boxed: connecting (TLS included) is a large state machine
            // that every statement's future would otherwise carry inline,
            // and move, for a rare path.
            if let Err(e) = Box::pin(addr.cancel(token)).await
                && !std::mem::replace(&mut said, true)
            {
                tracing::warn!(target: "gino", "could not cancel a statement: {e}");
            }
            if let Ok(output) = tokio::time::timeout(CANCEL_AGAIN, &mut running).await {
                return output;
            }
        }
    });
    cancelled.await.ok()
}

impl PgConn {
    pub(crate) async fn open(
        connector: &Connector,
        echo: &Arc<AtomicBool>,
        statement_cache: bool,
    ) -> Result<Self> {
        // Boxed: opening (TLS handshake, startup) is a large state machine,
        // and every borrow's future would otherwise carry it inline.
        let opened = Box::pin(connector.open()).await?;
        if !statement_cache {
            // Before diesel-async's first statement, so that every one of
            // them goes unnamed.
            opened.state.use_unnamed_statements();
        }
        let mut conn = AsyncPgConnection::try_from(opened.client)
            .await
            .map_err(|e| Error::Connection(e.to_string()))?;
        // diesel-async's own `SET`s (time zone, encoding) are every user's.
        opened.state.keep_session();
        conn.set_instrumentation(Echo::new(echo.clone()));
        Ok(PgConn {
            conn,
            driver: opened.driver,
            wire: opened.state,
            addr: opened.addr,
            in_flight: false,
            began_in_transaction: false,
            holds_session_state: false,
            cancel_lost: false,
            given_back: None,
            generation: 0,
        })
    }

    /// Whether the server has gone from this connection: it closed the
    /// socket, or said goodbye (a `FATAL` error) while the connection sat
    /// idle. No round trip and, unless something has arrived, no system
    /// call: what the runtime has seen arrive on the socket is read first.
    /// The runtime has seen whatever arrived before anything it has read
    /// since, so a server that left before, say, the reply that told the
    /// caller it was gone is always seen; TLS connections alike.
    pub(crate) fn server_gone(&self) -> bool {
        self.driver.catch_up();
        self.wire.is_ending()
    }

    /// Whether diesel-async still counts a transaction of its own
    /// (`transaction()` in a closure of `Connection::run`) open or broken:
    /// one that panicked or was dropped half-way. The server has none once
    /// gino has rolled back, but diesel's count stays, and would make the
    /// next user's `transaction()` begin with a `SAVEPOINT` outside any.
    fn diesel_transaction_left(&mut self) -> bool {
        use diesel_async::{AnsiTransactionManager, TransactionManager};
        AnsiTransactionManager::is_broken_transaction_manager(&mut self.conn)
            || !matches!(
                AnsiTransactionManager::transaction_manager_status_mut(&mut self.conn)
                    .transaction_depth(),
                Ok(None)
            )
    }

    /// Whether the connection can be handed to someone else as it is.
    pub(crate) fn is_clean(&self) -> bool {
        !self.in_flight
            && !self.cancel_lost
            && !self.holds_session_state
            && !self.wire.session_changed()
            && !self.wire.is_closed()
            && self.wire.tx_status() == TxStatus::Idle
            && !self.wire.opening_armed()
    }

    /// After SQL that may have carried a transaction's `opening`
    /// ([`crate::opening`]): forgets it once the server has run it (a
    /// transaction is open, or failed), and no longer offers it to the
    /// socket. Current only after the SQL's `ReadyForQuery`.
    pub(crate) fn settle_opening(&self, opening: &mut Option<String>) {
        self.wire.withdraw_opening();
        if self.wire.tx_status() != TxStatus::Idle {
            *opening = None;
        }
    }

    /// Whether a statement was interrupted on this connection that a cancel
    /// request can end: the server is still there, and no cancel of it was
    /// lost already.
    fn cancellable(&self) -> bool {
        self.in_flight && !self.cancel_lost && !self.wire.is_closed()
    }

    /// Whether the connection is fit for the pool once its interrupted
    /// statement has ended: no transaction is open, nor will be (the
    /// server said so last, and no `BEGIN` waits to go out in front of
    /// that statement), and the session holds nothing for its next user.
    fn fit_once_synced(&self) -> bool {
        self.wire.tx_status() == TxStatus::Idle
            && !self.wire.opening_armed()
            && !self.holds_session_state
    }

    /// After a statement's future was dropped half-way (`in_flight` still
    /// set), finds out with a round trip where the server stands, and, if
    /// `untracked`, rolls back a transaction that nobody accounts for (one
    /// the interrupted statement may have begun). `opening` is forgotten
    /// once the server has run it, as after any statement. What becomes of
    /// the interrupted statement meanwhile is `abandon`'s to say; `false`
    /// comes back when the connection is still interrupted (it gave up) or
    /// gone.
    pub(crate) async fn resync(
        &mut self,
        opening: &mut Option<String>,
        untracked: bool,
        abandon: Abandon,
    ) -> bool {
        // Before the probe, a statement of its own, records its own.
        let began_in_transaction = self.began_in_transaction;
        let cancel =
            (abandon != Abandon::Await).then(|| (self.conn.cancel_token(), self.addr.clone()));
        let mut lost = false;
        let probed = {
            // Whatever the interrupted statement had queued goes out before
            // this, with the opening in front if it was still armed, and
            // its replies come first.
            let mut probe = std::pin::pin!(self.control("SELECT 1"));
            let mut ended = None;
            if let Some((token, addr)) = cancel {
                ended = match tokio::time::timeout(RECOVERY_PATIENCE, &mut probe).await {
                    Ok(probed) => Some(probed),
                    Err(_) => cancel_and_wait(&addr, &token, &mut probe).await,
                };
                lost = ended.is_none();
            }
            match ended {
                Some(probed) => Some(probed),
                None if lost && abandon == Abandon::CancelOrGiveUp => None,
                None => Some(probe.await),
            }
        };
        self.cancel_lost |= lost;
        let Some(probed) = probed else {
            return false;
        };
        if probed.is_err() && self.wire.is_closed() {
            return false;
        }
        // A failed probe (a transaction the interrupted statement left
        // failed, or the cancel) still leaves the status current.
        self.settle_opening(opening);
        // A transaction the caller began in SQL before the interrupted
        // statement stays: failed, its next statements fail until the
        // caller ends it, where a rollback would let them autocommit.
        if untracked && !began_in_transaction && self.wire.tx_status() != TxStatus::Idle {
            let _ = self.control("ROLLBACK").await;
        }
        true
    }

    /// A statement goes out: its replies are followed afresh, and the
    /// connection is in flight until it ends (noting whether it began
    /// inside a transaction).
    pub(crate) fn start_statement(&mut self) {
        self.wire.begin_statement();
        self.in_flight = true;
        self.began_in_transaction = self.wire.tx_status() != TxStatus::Idle;
    }

    /// Runs transaction-control SQL, keeping `in_flight` honest.
    pub(crate) async fn control(&mut self, sql: &str) -> Result<()> {
        self.start_statement();
        let result = drive(&self.driver, self.conn.batch_execute(sql)).await;
        if result.is_err() {
            drive(&self.driver, self.wire.settle()).await;
        }
        self.in_flight = false;
        result.map_err(|e| Error::from_diesel(e, self.wire.error_code()))
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Its connection's own task closes it, now that the client goes.
        self.driver.hand_back();
    }
}

/// The deadpool manager of gino's connections.
pub(crate) struct Manager {
    pub(crate) connector: Connector,
    pub(crate) echo: Arc<AtomicBool>,
    pub(crate) statement_cache: bool,
    pub(crate) on_connect: Option<OnConnect>,
    /// The budget every new connection takes a unit of; the borrow that
    /// opens it bounds the wait for one with its acquire timeout.
    pub(crate) budget: Option<ConnectionBudget>,
    /// Counts the changes of enum types made through the engine
    /// ([`Manager::renew_connections`]).
    pub(crate) generation: AtomicU64,
}

impl Manager {
    /// Has every connection open now closed rather than lent again, once
    /// it is back: each keeps the type OIDs it looked up (diesel-async's
    /// cache of a connection's lifetime, which nothing can clear), and an
    /// enum type dropped and created again has a new one, so that every
    /// statement binding it would fail with "cache lookup failed for type".
    pub(crate) fn renew_connections(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) async fn open(&self) -> Result<PgConn> {
        let unit = match &self.budget {
            Some(budget) => Some(budget.take().await?),
            None => None,
        };
        let generation = self.generation.load(Ordering::Acquire);
        let mut conn = PgConn::open(&self.connector, &self.echo, self.statement_cache).await?;
        conn.generation = generation;
        if let Some(unit) = unit {
            // Back to the budget when the socket closes, not when the pool
            // lets go of the connection: the server counts it until then.
            conn.wire.keep_until_closed(Box::new(unit));
        }
        if !self.statement_cache {
            conn.conn
                .set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
        }
        if let Some(hook) = &self.on_connect {
            conn.wire.begin_statement();
            let ran = drive(&conn.driver, hook(&mut conn.conn)).await;
            drive(&conn.driver, conn.wire.settle()).await;
            // What the hook set is every user's of the connection.
            conn.wire.keep_session();
            if let Err(e) = ran {
                let e = Error::from_diesel(e, conn.wire.error_code());
                return Err(Error::Connection(format!(
                    "the engine's on_connect hook failed, so the new connection was discarded: \
                     {e}"
                )));
            }
            if !conn.is_clean() {
                return Err(Error::Connection(
                    "the engine's on_connect hook left a transaction open, so the new \
                     connection was discarded: end every transaction it begins"
                        .to_owned(),
                ));
            }
        }
        Ok(conn)
    }
}

impl managed::Manager for Manager {
    // Boxed: deadpool moves a pooled object half a dozen times on every
    // checkout and return; a pointer is cheaper to move than a connection.
    type Type = Box<PgConn>;
    type Error = Error;

    async fn create(&self) -> Result<Box<PgConn>> {
        // Boxed: opening is a large state machine (startup, TLS, the
        // connection's set-up statements) that every borrow's future would
        // otherwise carry inline and move, although most borrows find an
        // idle connection.
        Box::pin(self.open()).await.map(Box::new)
    }

    async fn recycle(&self, conn: &mut Box<PgConn>, _: &Metrics) -> RecycleResult<Error> {
        // Cheap checks only (no round trip): `RawConn` never returns a
        // connection that is not clean, so only a connection the server
        // closed while it sat idle can be bad here.
        if conn.server_gone() {
            return Err(RecycleError::message("the server closed the connection"));
        }
        if !conn.is_clean() {
            return Err(RecycleError::message("connection is inside a transaction"));
        }
        if conn.diesel_transaction_left() {
            return Err(RecycleError::message(
                "diesel's own transaction was left half-way on the connection",
            ));
        }
        if conn.generation != self.generation.load(Ordering::Acquire) {
            return Err(RecycleError::message(
                "an enum type changed since the connection opened",
            ));
        }
        Ok(())
    }
}

enum Held {
    Pooled(Object<Manager>),
    /// A connection of an unpooled engine, counted while open (the count
    /// is only dropped, never read, here).
    Direct(Box<PgConn>, #[allow(dead_code)] OpenCount),
}

/// One of an unpooled engine's open connections; the count goes down when
/// it is dropped (and the connection closed).
pub(crate) struct OpenCount(Arc<std::sync::atomic::AtomicUsize>);

impl OpenCount {
    pub(crate) fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        OpenCount(count.clone())
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A raw connection out of the pool (or opened for one acquire when pooling
/// is off). Dropping it gives it back or closes it, by the rule above.
pub(crate) struct RawConn {
    held: Option<Held>,
    /// This is the recovery's: dropped dirty, it is closed.
    recovering: bool,
}

impl RawConn {
    pub(crate) fn pooled(object: Object<Manager>) -> Self {
        RawConn {
            held: Some(Held::Pooled(object)),
            recovering: false,
        }
    }

    pub(crate) fn direct(conn: PgConn, count: OpenCount) -> Self {
        RawConn {
            held: Some(Held::Direct(Box::new(conn), count)),
            recovering: false,
        }
    }

    pub(crate) fn get(&mut self) -> &mut PgConn {
        match self.held.as_mut().expect("RawConn is only emptied by drop") {
            Held::Pooled(object) => object,
            Held::Direct(conn, _) => conn,
        }
    }

    /// Whether dropping this connection gives it back to the pool as it
    /// is (no transaction or statement left open on it).
    #[cfg(feature = "web")]
    pub(crate) fn is_clean(&mut self) -> bool {
        self.get().is_clean()
    }

    /// Rolls back whatever the server still has open, so that dropping the
    /// connection afterwards returns it to the pool instead of closing it.
    pub(crate) async fn clean_up(&mut self) {
        let conn = self.get();
        if !conn.in_flight && conn.wire.tx_status() != TxStatus::Idle {
            // Boxed: rare, and every release's future would carry the
            // statement's state otherwise.
            if let Err(e) = Box::pin(conn.control("ROLLBACK")).await {
                tracing::debug!(target: "gino", "rollback on release failed, closing: {e}");
            }
        }
    }

    /// Sees the statement of a pooled connection given back in the middle
    /// of it outside any transaction to its end (see the module's rule),
    /// then gives the connection back (rolling back a transaction the
    /// statement itself began, a raw `BEGIN`); closes it when that fails,
    /// or when this future is dropped half-way.
    async fn recover(mut self) {
        if !self
            .get()
            .resync(&mut None, true, Abandon::CancelOrGiveUp)
            .await
        {
            tracing::debug!(
                target: "gino",
                "could not recover a connection given back mid-statement: closing it"
            );
        }
    }
}

impl Drop for RawConn {
    fn drop(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        let pg: &PgConn = match &held {
            Held::Pooled(object) => object,
            Held::Direct(conn, _) => conn,
        };
        pg.driver.put_away();
        if pg.is_clean() {
            if let Held::Pooled(object) = &mut held {
                object.given_back = Some(std::time::Instant::now());
            }
            return drop(held);
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        if pg.cancellable()
            && !self.recovering
            && let Some(runtime) = runtime
        {
            if matches!(held, Held::Pooled(_)) && pg.fit_once_synced() {
                // Still counted as borrowed meanwhile. A runtime that is
                // shutting down drops the task, which closes the
                // connection, as does a recovery past its limit. The
                // limit's timer is made in the task: nothing here may
                // panic, whatever the runtime has.
                let recovery = RawConn {
                    held: Some(held),
                    recovering: true,
                }
                .recover();
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(RECOVERY_LIMIT, recovery).await;
                });
                return;
            }
            // Closing ends the transaction as soon as the server reads on,
            // but a statement running reads nothing until it ends: it is
            // cancelled, not left to run on holding the transaction's locks.
            let (addr, token) = (pg.addr.clone(), pg.conn.cancel_token());
            runtime.spawn(async move {
                cancel_and_wait(&addr, &token, std::future::ready(())).await;
            });
        }
        tracing::debug!(
            target: "gino",
            "closing a connection left inside a transaction or statement"
        );
        match held {
            Held::Pooled(object) => drop(Object::take(object)),
            direct => drop(direct),
        }
    }
}

/// Logs statements through `tracing` when the engine's echo is on.
///
/// diesel reports the query with its binds when it starts and only the SQL
/// when it finishes, so the start's rendering waits in a queue (statements
/// may be pipelined) until its finish arrives with the duration. A statement
/// whose future was dropped never finishes; its entry is skipped when a
/// later statement finishes, so that it does not lend that one its text.
struct Echo {
    enabled: Arc<AtomicBool>,
    started: VecDeque<(String, Instant)>,
}

impl Echo {
    fn new(enabled: Arc<AtomicBool>) -> Self {
        Echo {
            enabled,
            started: VecDeque::new(),
        }
    }
}

/// A statement's SQL and binds for the log. A statement diesel cannot
/// render (a `:name` left unbound, an empty changeset) fails its
/// `Display`, which `to_string` would turn into a panic; the statement
/// itself fails with the error a moment later.
fn rendered<Q: std::fmt::Display + ?Sized>(query: &Q) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    if write!(text, "{query}").is_err() {
        text = "<a statement that cannot be rendered as SQL>".to_owned();
    }
    text
}

impl Instrumentation for Echo {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if !self.enabled.load(Ordering::Relaxed) {
            if !self.started.is_empty() {
                self.started.clear();
            }
            return;
        }
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                self.started.push_back((rendered(query), Instant::now()));
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let sql = rendered(query);
                let (text, elapsed) = loop {
                    match self.started.pop_front() {
                        Some((text, at)) if text.starts_with(&sql) => break (text, at.elapsed()),
                        Some(_) => continue,
                        None => break (sql, Default::default()),
                    }
                };
                match error {
                    None => tracing::info!(target: "gino::echo", elapsed = ?elapsed, "{text}"),
                    Some(e) => {
                        tracing::info!(target: "gino::echo", elapsed = ?elapsed, error = %e, "{text}")
                    }
                }
            }
            _ => {}
        }
    }
}
