//! One request's scope: its lazy connection, the task-locals through
//! which the request's code finds it (and the database), and the future
//! that runs the request's handling in the scope and gives the connection
//! back when it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::future::Either;

use crate::api::{BindScope, Gino};
use crate::connection::Connection;
use crate::context::{Opener, ReuseScope, Stack};
use crate::engine::Engine;
use crate::error::Result;
use crate::scoped::{Scoped, scoped_local};
use crate::tenant::TenantLease;
use crate::transaction::{Transaction, outside_transactions};
use crate::web::extension::InFlight;

/// One request's scope: its lazy connection, if it has one, made the
/// contextual connection of the code [`run`](Self::run) runs. Made by
/// [`Extension::request`](crate::web::Extension::request).
#[must_use = "a request scope does nothing until run"]
pub struct RequestScope {
    conn: Option<Arc<Connection>>,
    /// What the database is bound to for the request (its tenant's
    /// engine), and the database.
    bound: Option<(Bound, &'static Gino)>,
    in_flight: InFlight,
}

scoped_local! {
    /// The request without a connection of its own (when
    /// `use_connection_for_request` is off) whose scope the running code
    /// is in. A request with one is found through the reuse scope it opens
    /// for its connection, the task-local that its implicit queries look
    /// in anyway: one task-local per request, not two.
    static CURRENT: Current;
}

/// What code running in the scope of a request without a connection can
/// ask for: the database, to make one.
struct Current {
    db: &'static Gino,
}

impl std::fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestScope")
            .field("connection", &self.conn)
            .finish()
    }
}

/// The engine a request binds its database to for its own code.
pub(super) enum Bound {
    /// The engine of the request's tenant, leased for the request.
    Tenant(TenantLease),
    /// The engine a shutdown closed: a request that came later finds its
    /// pool closed (503), not its database unbound (500).
    Closed(Engine),
}

impl Bound {
    pub(super) fn engine(&self) -> &Engine {
        match self {
            Bound::Tenant(lease) => lease.engine(),
            Bound::Closed(engine) => engine,
        }
    }

    fn tenant(&self) -> Option<&TenantLease> {
        match self {
            Bound::Tenant(lease) => Some(lease),
            Bound::Closed(_) => None,
        }
    }
}

/// The tenant a request runs for: the tenant middleware of each web crate
/// puts it in the request's extensions, for handlers to read.
///
/// ```
/// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
/// use gino::web::{Extension, Settings, TenantKey};
/// let extension = Extension::new(tenants.db(), Settings::default()).with_tenants(tenants);
/// let scope = extension.tenant_request("acme").await?;
/// assert_eq!(scope.tenant(), Some(TenantKey("acme".to_owned())));
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantKey(pub String);

impl RequestScope {
    /// The scope of a request on `engine` (none when nothing is bound, or
    /// `with_connection` is off), with the database bound as `bound` says
    /// for the request (a tenant's engine).
    pub(super) fn new(
        db: &'static Gino,
        engine: Option<Engine>,
        with_connection: bool,
        bound: Option<Bound>,
        in_flight: InFlight,
    ) -> Self {
        let conn = engine
            .filter(|_| with_connection)
            .map(|engine| Arc::new(Connection::lazy(engine)));
        RequestScope {
            conn,
            bound: bound.map(|bound| (bound, db)),
            in_flight,
        }
    }

    /// The tenant of a [`tenant_request`](crate::web::Extension::tenant_request).
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// use gino::web::{Extension, Settings, TenantKey};
    /// let extension = Extension::new(tenants.db(), Settings::default()).with_tenants(tenants);
    /// assert_eq!(extension.request().tenant(), None); // not a tenant's request
    /// let scope = extension.tenant_request("acme").await?;
    /// assert_eq!(scope.tenant(), Some(TenantKey("acme".to_owned())));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn tenant(&self) -> Option<TenantKey> {
        self.bound
            .as_ref()
            .and_then(|(bound, _)| bound.tenant())
            .map(|lease| TenantKey(lease.key().to_owned()))
    }

    /// The request's connection, for handlers that use it explicitly (to
    /// release it early, say); `None` when `use_connection_for_request` is
    /// off or nothing is bound.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// # extension.connect().await.unwrap();
    /// let scope = extension.request();
    /// assert!(scope.connection().is_some());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn connection(&self) -> Option<RequestConnection> {
        self.conn.clone().map(RequestConnection)
    }

    /// Runs the request's handling `fut` in the scope, and gives the
    /// connection back when it ends: with a `ROLLBACK` of anything left
    /// open when `fut` completes, and when it is dropped (the client went
    /// away) or panics, by the rule that a connection goes back to the pool
    /// only outside a transaction and is closed otherwise.
    ///
    /// The scope is a `tracing` span (`gino_request`, target `gino::web`)
    /// that records the borrows of the request's connection, the time spent
    /// waiting for them, and the statements run.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension, db: &'static gino::Gino) -> gino::Result<()> {
    /// # extension.connect().await.unwrap();
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let n: i32 = extension
    ///     .request()
    ///     .run(async { db.one(diesel::select(sql::<Integer>("1"))).await })
    ///     .await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    ///
    /// The request starts with a context of its own, as a spawned task
    /// does: its implicit queries find the request's connection (if it
    /// has one), and none of the reusable connections of the code that
    /// made or runs the future.
    ///
    /// The future is written by hand rather than by `async`, so that a web
    /// crate can name it as its service's future without boxing it: every
    /// request pays for whatever its scope allocates and moves.
    pub fn run<F: Future>(self, fut: F) -> RequestFuture<F> {
        self.run_then(fut, AsIs)
    }

    /// [`run`](Self::run), then `then` with the handling's output, once
    /// the connection is back and before the request stops counting as in
    /// flight: where a web crate holds a response whose body streams on
    /// ([`Extension::hold`](crate::web::Extension::hold)), so that shutdown
    /// waits for it too.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// use gino::web::{Extension, ResponseHold, Then};
    ///
    /// /// A streamed answer: the chunks and what holds them in flight.
    /// struct Streamed(Vec<&'static str>, Option<ResponseHold>);
    ///
    /// struct HoldIt;
    /// impl Then<Vec<&'static str>> for HoldIt {
    ///     type Output = Streamed;
    ///     fn then(self, chunks: Vec<&'static str>, extension: &Extension) -> Streamed {
    ///         Streamed(chunks, Some(extension.hold()))
    ///     }
    /// }
    ///
    /// let answer = extension.request().run_then(async { vec!["a", "b"] }, HoldIt).await;
    /// assert_eq!(extension.in_flight(), 1); // until the answer is out
    /// drop(answer);
    /// assert_eq!(extension.in_flight(), 0);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn run_then<F: Future, T: Then<F::Output>>(self, fut: F, then: T) -> RequestFuture<F, T> {
        let RequestScope {
            conn,
            bound,
            in_flight,
        } = self;
        // Nor does it see its caller's transaction (`Transaction::current`,
        // the parent of a block it opens).
        let in_request = outside_transactions(match &conn {
            Some(conn) => {
                let opener: Opener = conn.clone();
                let (engine_id, root) = (conn.engine().id(), conn.root.clone());
                Either::Left(Stack::request_scope(engine_id, root, opener, fut))
            }
            // Without a connection of its own, the request still sees none
            // of its caller's: its queries must not join a transaction of
            // the code around it only because the setting is off.
            None => {
                Either::Right(CURRENT.scope(Current { db: in_flight.db() }, Stack::isolated(fut)))
            }
        });
        let handling = match &bound {
            Some((bound, db)) => Either::Left(db.bind_scope(bound.engine(), in_request)),
            None => Either::Right(in_request),
        };
        RequestFuture {
            stage: Stage::Handling { handling },
            release_on_drop: conn.map(ReleaseOnDrop),
            span: None,
            recording: false,
            bound,
            in_flight: Some(in_flight),
            then: Some(then),
        }
    }
}

/// What [`RequestScope::run_then`] does with a request's output once its
/// connection is back: given the extension, to [hold](crate::web::Extension::hold)
/// what goes on after the request (a streamed body).
pub trait Then<O> {
    /// What the request's future yields.
    type Output;

    /// Makes the request's answer of `output`.
    fn then(self, output: O, extension: &crate::web::Extension) -> Self::Output;
}

/// The output as it is: [`RequestScope::run`]'s [`Then`].
///
/// ```
/// use gino::web::{AsIs, Then};
/// # async fn demo(extension: gino::web::Extension) {
/// assert_eq!(AsIs.then(7, &extension), 7);
/// # }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AsIs;

impl<O> Then<O> for AsIs {
    type Output = O;

    fn then(self, output: O, _: &crate::web::Extension) -> O {
        output
    }
}

/// The request's handling in its task-locals: the tenant's bind (if
/// any), no managed transaction, and the request's connection made
/// reusable (or, without one, the request in [`CURRENT`]).
type Handling<F> = Either<BindScope<InRequest<F>>, InRequest<F>>;
type InRequest<F> =
    Scoped<Option<Transaction>, Either<ReuseScope<F>, Scoped<Current, ReuseScope<F>>>>;

pin_project_lite::pin_project! {
    /// The future of [`RequestScope::run`]: the request's handling, then
    /// the release of its connection (a round trip only when something
    /// was left open: a `ROLLBACK`).
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// use gino::web::RequestFuture;
    /// let future: RequestFuture<_> = extension.request().run(async { 42 });
    /// assert_eq!(future.await, 42);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    #[project = RequestFutureProjection]
    pub struct RequestFuture<F: Future, T = AsIs> {
        // Dropped in this order: the handling (and the handler's clones
        // of the connection), then the connection's release, then the
        // in-flight count, whose end may close the pool.
        #[pin]
        stage: Stage<F>,
        release_on_drop: Option<ReleaseOnDrop>,
        // Made at the first poll, under the subscriber the request runs
        // with (`with_subscriber` applies to polls, not to `run`).
        span: Option<tracing::Span>,
        recording: bool,
        bound: Option<(Bound, &'static Gino)>,
        in_flight: Option<InFlight>,
        then: Option<T>,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProjection]
    enum Stage<F: Future> {
        Handling { #[pin] handling: Handling<F> },
        // Boxed: rare (something was left open), and every request's
        // future would carry the rollback's state otherwise.
        Releasing {
            output: Option<F::Output>,
            release: Pin<Box<dyn Future<Output = ()> + Send>>,
        },
        Done,
    }
}

impl<F: Future, T: Then<F::Output>> Future for RequestFuture<F, T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let mut this = self.project();
        loop {
            match this.stage.as_mut().project() {
                StageProjection::Handling { handling } => {
                    let span = this
                        .span
                        .get_or_insert_with(|| request_span(this.recording, this.bound));
                    let output = if *this.recording {
                        let _entered = span.enter();
                        ready!(handling.poll(cx))
                    } else {
                        ready!(handling.poll(cx))
                    };
                    let Some(ReleaseOnDrop(conn)) = this.release_on_drop.as_ref() else {
                        return Poll::Ready(finish(this, output));
                    };
                    if *this.recording
                        || tracing::enabled!(target: "gino::web", tracing::Level::DEBUG)
                    {
                        report(span, conn);
                    }
                    if conn.release_if_clean() {
                        return Poll::Ready(finish(this, output));
                    }
                    let conn = conn.clone();
                    this.stage.set(Stage::Releasing {
                        output: Some(output),
                        release: Box::pin(async move {
                            // Released already (explicitly) is fine.
                            let _ = conn.release().await;
                        }),
                    });
                }
                StageProjection::Releasing { output, release } => {
                    ready!(release.as_mut().poll(cx));
                    let output = output.take().expect("taken once, when released");
                    return Poll::Ready(finish(this, output));
                }
                StageProjection::Done => panic!("RequestFuture polled after it completed"),
            }
        }
    }
}

/// The request's span (`gino_request`); `recording` says whether anyone
/// wants it. Without a subscriber that does, entering, leaving and
/// recording it is work for nobody on every request.
fn request_span(recording: &mut bool, bound: &Option<(Bound, &'static Gino)>) -> tracing::Span {
    // Asked first: with no subscriber at all, tracing's `log` feature
    // (which axum turns on) would otherwise offer the disabled span to
    // `log` on every request, for nobody.
    if !tracing::enabled!(target: "gino::web", tracing::Level::INFO) {
        *recording = false;
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: "gino::web",
        "gino_request",
        borrows = tracing::field::Empty,
        borrow_wait_us = tracing::field::Empty,
        statements = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );
    *recording = !span.is_disabled();
    let tenant = bound.as_ref().and_then(|(bound, _)| bound.tenant());
    if let (true, Some(lease)) = (*recording, tenant) {
        span.record("tenant", lease.key());
    }
    span
}

/// Ends a request whose connection is back: the handling's future and
/// the connection are dropped, then the request stops counting as in
/// flight.
fn finish<F: Future, T: Then<F::Output>>(
    mut this: RequestFutureProjection<'_, F, T>,
    output: F::Output,
) -> T::Output {
    this.stage.set(Stage::Done);
    this.release_on_drop.take();
    let in_flight = this.in_flight.take().expect("finished once");
    let then = this.then.take().expect("finished once");
    // Offered to a hold `then` makes (a body streaming on), dropped here
    // otherwise, before the request stops counting as in flight.
    let _ending = Ending::offer(this.bound.take());
    then.then(output, in_flight.extension())
}

thread_local! {
    /// The bind of the request whose [`Then`] runs on this thread.
    static ENDING: std::cell::RefCell<Option<(Bound, &'static Gino)>> =
        const { std::cell::RefCell::new(None) };
}

/// Offers a request's bind (its tenant's engine and lease) to the
/// [`Extension::hold`](crate::web::Extension::hold) of its [`Then`], so
/// that a body streaming on runs where its handler ran; whatever is not
/// taken goes when this does, also on a panic.
pub(super) struct Ending;

impl Ending {
    fn offer(bound: Option<(Bound, &'static Gino)>) -> Ending {
        ENDING.with(|ending| *ending.borrow_mut() = bound);
        Ending
    }

    /// The bind offered by the request ending on this thread, if any.
    pub(super) fn take() -> Option<(Bound, &'static Gino)> {
        ENDING.with(|ending| ending.borrow_mut().take())
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        drop(Ending::take());
    }
}

impl<F: Future, T> std::fmt::Debug for RequestFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestFuture")
            .field("connection", &self.release_on_drop.as_ref().map(|r| &r.0))
            .finish_non_exhaustive()
    }
}

/// Records what a request's connection did on its span, and tells it in a
/// debug event when it used the database.
fn report(span: &tracing::Span, conn: &Connection) {
    let stats = conn.stats();
    span.record("borrows", stats.borrows);
    span.record(
        "borrow_wait_us",
        u64::try_from(stats.borrow_wait.as_micros()).unwrap_or(u64::MAX),
    );
    span.record("statements", stats.statements);
    if stats.borrows > 0 {
        tracing::debug!(
            target: "gino::web",
            parent: span,
            "request used the database: {} statement(s), {} borrow(s), {:?} waiting for a \
             connection",
            stats.statements,
            stats.borrows,
            stats.borrow_wait
        );
    }
}

struct ReleaseOnDrop(Arc<Connection>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_now();
    }
}

/// The connection of a request, for handlers that use it explicitly: every
/// method of [`Connection`] through `Deref`. Implicit queries of the
/// request run on the same connection.
///
/// [`release_raw`](Connection::release_raw) gives the raw connection back
/// before slow work that needs no database (GINO's
/// `release(permanent=False)`); the next query borrows again.
/// [`release`](Connection::release) ends it for the rest of the request;
/// later queries then borrow for themselves, one at a time.
///
/// ```
/// # async fn demo(conn: gino::web::RequestConnection) -> gino::Result<()> {
/// conn.release_raw().await?;  // before a slow call to another service
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Clone, Debug)]
pub struct RequestConnection(Arc<Connection>);

impl RequestConnection {
    /// The connection of the request whose scope the calling code runs in
    /// ([`RequestScope::run`]), for extractors and request guards: `None`
    /// outside a request's scope; a lazy connection of its own
    /// ([`own`](Self::own)) when the request has none
    /// (`use_connection_for_request` off); an error when no database is
    /// bound.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) -> gino::Result<()> {
    /// # extension.connect().await?;
    /// use gino::web::RequestConnection;
    /// assert!(RequestConnection::current().is_none());
    /// let conn = extension.request().run(async { RequestConnection::current() }).await;
    /// let conn = conn.expect("in a request's scope")?;
    /// assert_eq!(conn.stats().borrows, 0); // lazy: nothing borrowed yet
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn current() -> Option<Result<Self>> {
        if let Some(conn) = Stack::opener::<Connection>() {
            return Some(Ok(RequestConnection(conn)));
        }
        CURRENT
            .try_with(|current| current.db.engine().map(|e| Self::own(&e)))
            .ok()
    }

    /// A connection of its own for a request that has none (when
    /// `use_connection_for_request` is off): lazy, released when the last
    /// clone is dropped.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let conn = gino::web::RequestConnection::own(&db.engine()?);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn own(engine: &Engine) -> Self {
        RequestConnection(Arc::new(Connection::lazy(engine.clone())))
    }
}

impl std::ops::Deref for RequestConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl AsRef<Connection> for RequestConnection {
    fn as_ref(&self) -> &Connection {
        &self.0
    }
}

impl<'a> From<&'a RequestConnection> for crate::Bind<'a> {
    fn from(conn: &'a RequestConnection) -> Self {
        crate::Bind::Connection(&conn.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DB: Gino = Gino::secondary();

    /// Every request's future holds these, moved at least once per
    /// request: 3 KB before the scoped bind and the reuse scope stopped
    /// holding the request's future twice, and the release stopped
    /// carrying its rare rollback; the scope adds a few words to the
    /// handler's future now that it is written by hand. Sizes, not times:
    /// they do not drift.
    #[tokio::test]
    async fn request_futures_stay_small() {
        let engine = crate::engine::tests::unconnected().await;
        let conn = Connection::lazy(engine.clone());
        let release = std::mem::size_of_val(&conn.release());
        let handler: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async {});
        let run = std::mem::size_of_val(
            &crate::web::Extension::new(&DB, crate::web::Settings::default())
                .request()
                .run(handler),
        );
        assert!(release <= 512, "Connection::release: {release} bytes");
        let added = run - std::mem::size_of::<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>();
        assert!(added <= 256, "RequestScope::run adds {added} bytes");
    }
}
