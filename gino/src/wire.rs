//! Opening connections (hosts in turn, TLS negotiated as libpq does,
//! `target_session_attrs`), and watching the PostgreSQL protocol on them.
//!
//! diesel's error type does not carry the SQLSTATE, diesel's `execute`
//! returns only a row count, not PostgreSQL's command tag, and nothing in the
//! stack says whether the server still thinks a transaction is open. All three
//! travel on the wire, so gino reads them there: every connection's socket is
//! wrapped in a [`WatchedSocket`] that follows the framing of the backend
//! messages (a type byte and a length, then the body) and records the
//! `ErrorResponse` code, the `CommandComplete` tag and the `ReadyForQuery`
//! transaction status. Other messages, data rows included, are skipped by
//! their length without being copied. With the statement cache off, the
//! same socket also rewrites the protocol so that every statement goes
//! unnamed in the round trip that runs it ([`crate::unnamed`]).
//!
//! Uses: `config` (what to connect to), `passfile` (a password for a
//! host), `peer` (the user a Unix-socket server runs as), `tls` (the
//! handshake), `binding` (the login's channel binding over that
//! handshake), `auth` (the methods a server may ask for), `unnamed` (the
//! rewrite), `framing` (message headers), `session_state` (statements that
//! change the session), `error`.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, LoadBalanceHosts};

use crate::auth::{AuthGate, Refused, Verdict, refused_method};
use crate::binding::Binding;
#[cfg(feature = "tls")]
use crate::config::SslMode;
use crate::config::{ConnectConfig, TargetSessionAttrs};
use crate::drive::Driver;
use crate::error::{Error, Result};
use crate::framing::MessageReader;
use crate::opening::Replies;
use crate::passfile::{Entries, PassFile};
use crate::peer;
use crate::session_state::FrontendScan;
#[cfg(feature = "tls")]
use crate::tls::Tls;
use crate::unnamed::Rewriter;

/// A row limit armed for the next `Execute`, disarmed when dropped: a
/// statement that failed before sending it (or was dropped) leaves none
/// behind for the next one.
#[must_use = "the limit is disarmed when the guard drops"]
pub(crate) struct RowLimit<'w>(&'w WireState);

impl Drop for RowLimit<'_> {
    fn drop(&mut self) {
        self.0.row_limit.store(0, Ordering::Relaxed);
    }
}

/// What a connection's socket has seen of the backend's messages.
#[derive(Debug, Default)]
pub(crate) struct WireState {
    seen: Mutex<Seen>,
    /// Status byte of the last `ReadyForQuery`: `I` idle, `T` in a
    /// transaction, `E` in a failed transaction (0 before the first).
    /// Outside `seen`: every release and recycle reads it, and the
    /// `ReadyForQuery` that ends every statement writes it.
    tx_status: AtomicU8,
    /// An `ErrorResponse` arrived and the `ReadyForQuery` that follows it
    /// has not yet.
    error_unsettled: AtomicBool,
    closed: AtomicBool,
    /// The server sent a `FATAL` (or `PANIC`) error: it is ending the
    /// session, and the socket closes soon. Seen before the close, which
    /// may come later than the error's reader consumed it.
    ending: AtomicBool,
    /// The server began a `COPY` fed by the client (`COPY .. FROM STDIN`),
    /// which gino's driver cannot feed: the connection is closed.
    copy_in: AtomicBool,
    /// Statements go unnamed, each in one round trip ([`Rewriter`]).
    unnamed: AtomicBool,
    /// The session now differs from what a new connection's would be in
    /// a way its next user would inherit ([`WireState::session_changed`]).
    session_changed: AtomicBool,
    /// A `SET` or `RESET` completed, whose `ReadyForQuery` says whether
    /// it was outside a transaction (and so for the session).
    set_unsettled: AtomicBool,
    /// A setting the server reports differs from its value when the
    /// session was [kept](WireState::keep_session) (see `Seen::reported`).
    reported_changed: AtomicBool,
    /// Woken by every `ReadyForQuery` and when the connection closes.
    ready: tokio::sync::Notify,
    /// Bytes the socket has taken for the server: unchanged across a failed
    /// statement means the server never saw any of it.
    sent: AtomicU64,
    /// Kept until the connection's socket closes (a unit of a connection
    /// budget, which must not return while the connection is open).
    held: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// The messages of a transaction's `BEGIN` waiting to go out in front
    /// of the next statement ([`crate::opening`]).
    opening: Mutex<Option<Vec<u8>>>,
    /// `opening` holds messages: read on every write, so that writes
    /// without an opening (nearly all) take no lock.
    opening_armed: AtomicBool,
    /// The row limit for the next statement's `Execute` (0: none), set by a
    /// load that reads only its first rows ([`WireState::limit_rows`]).
    row_limit: AtomicU32,
    /// `ReadyForQuery` messages seen: the round trips, for tests to count.
    #[cfg(test)]
    pub(crate) readies: AtomicU64,
}

#[derive(Debug, Default)]
struct Seen {
    /// SQLSTATE of the first `ErrorResponse` since the last `begin_statement`.
    error_code: Option<String>,
    /// Tag of the last `CommandComplete` since the last `begin_statement`,
    /// if `has_tag`; the buffer is kept so that a statement allocates none.
    tag: Vec<u8>,
    has_tag: bool,
    /// The settings the server reports (`ParameterStatus`: the time zone,
    /// the date style, the application name, ...), name and value, as of
    /// now and as of [`WireState::keep_session`]. However a setting was
    /// changed (in a `DO` block or a function, which the client's SQL does
    /// not show), the server reports it.
    reported: Vec<(Vec<u8>, Vec<u8>)>,
    kept: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The server's transaction state of a connection, as of its last
/// `ReadyForQuery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

impl WireState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the error code and tag of earlier statements, and a row
    /// limit an earlier statement armed and never sent.
    pub(crate) fn begin_statement(&self) {
        self.row_limit.store(0, Ordering::Relaxed);
        let mut seen = self.lock();
        seen.error_code = None;
        seen.has_tag = false;
    }

    /// From now on, every statement is sent unnamed in the round trip that
    /// runs it (see [`crate::unnamed`]). Set before the first statement.
    pub(crate) fn use_unnamed_statements(&self) {
        self.unnamed.store(true, Ordering::Relaxed);
    }

    /// Sends `begin` in front of the next statement written, in its batch
    /// ([`crate::opening`]); [`withdraw_opening`](Self::withdraw_opening)
    /// tells whether it went.
    pub(crate) fn arm_opening(&self, begin: &str) {
        let messages = crate::opening::messages(begin);
        *self.opening.lock().unwrap_or_else(|p| p.into_inner()) = Some(messages);
        self.opening_armed.store(true, Ordering::Release);
    }

    /// Whether the session differs from a new connection's in what its
    /// next user would inherit: a setting `SET` for the session (in a
    /// transaction or not) or by `set_config`, a session advisory lock, a
    /// temporary table ([`crate::session_state`]), a `LISTEN`, a
    /// `PREPARE`d or deallocated statement, a plan the schema outdated, a
    /// setting the server reports changed however it was (`Seen::reported`).
    /// Such a connection is closed when given back, not pooled (asyncpg
    /// resets one instead, which would also undo `on_connect`).
    pub(crate) fn session_changed(&self) -> bool {
        self.session_changed.load(Ordering::Relaxed)
            || self.reported_changed.load(Ordering::Relaxed)
    }

    /// Takes the session as it is now as the connection's own (after
    /// `on_connect`, whose settings every user of the connection shares).
    pub(crate) fn keep_session(&self) {
        self.session_changed.store(false, Ordering::Relaxed);
        let seen = &mut *self.lock();
        seen.kept.clone_from(&seen.reported);
        self.reported_changed.store(false, Ordering::Relaxed);
    }

    /// A `ParameterStatus`: `name\0value\0`.
    fn report(&self, body: &[u8]) {
        let mut fields = body.split(|b| *b == 0);
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            return;
        };
        let mut seen = self.lock();
        match seen.reported.iter_mut().find(|(known, _)| known == name) {
            Some((_, now)) => {
                now.clear();
                now.extend_from_slice(value);
            }
            None => seen.reported.push((name.to_vec(), value.to_vec())),
        }
        // A setting set back (a `SET LOCAL` ending with its transaction)
        // is as it was.
        let changed = seen.reported != seen.kept;
        self.reported_changed.store(changed, Ordering::Relaxed);
    }

    /// Whether an opening waits for a statement to go out with.
    pub(crate) fn opening_armed(&self) -> bool {
        self.opening_armed.load(Ordering::Acquire)
    }

    /// The opening's messages, for the socket to send now (once).
    fn take_opening(&self) -> Option<Vec<u8>> {
        if !self.opening_armed() {
            return None;
        }
        let taken = self
            .opening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.opening_armed.store(false, Ordering::Release);
        taken
    }

    /// Takes back an opening that has not gone out: `true` if it was still
    /// waiting (and now never goes), `false` if it went out (or none was
    /// armed).
    pub(crate) fn withdraw_opening(&self) -> bool {
        self.take_opening().is_some()
    }

    /// Sends the next `Execute` with a row limit of `rows` (asyncpg's
    /// `fetchrow`, which GINO's `first` uses): the server stops after them
    /// and suspends the portal, which the statement's `Sync` closes. Until
    /// the guard drops.
    pub(crate) fn limit_rows(&self, rows: u32) -> RowLimit<'_> {
        self.row_limit.store(rows, Ordering::Relaxed);
        RowLimit(self)
    }

    /// Whether a row limit waits for its `Execute`.
    fn row_limit_armed(&self) -> bool {
        self.row_limit.load(Ordering::Relaxed) != 0
    }

    /// The armed row limit, for the socket to send now (once).
    fn take_row_limit(&self) -> Option<u32> {
        Some(self.row_limit.swap(0, Ordering::Relaxed)).filter(|&rows| rows != 0)
    }

    /// Bytes written to the socket so far (see [`WireState::sent`]).
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether the task driving the socket has ended (server gone).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Whether the session is over or ending: closed, or the server said
    /// goodbye with a `FATAL` error (`pg_terminate_backend`, a shutdown).
    pub(crate) fn is_ending(&self) -> bool {
        self.is_closed() || self.ending.load(Ordering::Relaxed)
    }

    pub(crate) fn error_code(&self) -> Option<String> {
        self.lock().error_code.clone()
    }

    /// Whether the server began a `COPY` the client would have to feed,
    /// which closed the connection ([`COPY_IN_REFUSED`]).
    pub(crate) fn copy_in_refused(&self) -> bool {
        self.copy_in.load(Ordering::Relaxed)
    }

    /// Whether an `ErrorResponse` came since the last `begin_statement`.
    pub(crate) fn error_seen(&self) -> bool {
        self.lock().error_code.is_some()
    }

    pub(crate) fn tag(&self) -> Option<String> {
        let seen = self.lock();
        // Decoded when asked (rarely), not for every statement.
        seen.has_tag
            .then(|| String::from_utf8_lossy(&seen.tag).into_owned())
    }

    /// Whether the last statement may have changed data: its command tag
    /// is not `SELECT` (a write, DDL, a transaction's start or end), or
    /// none was seen (it failed, or its rows were not all read).
    pub(crate) fn may_have_written(&self) -> bool {
        let seen = self.lock();
        !(seen.has_tag && seen.tag.starts_with(b"SELECT"))
    }

    pub(crate) fn tx_status(&self) -> TxStatus {
        match self.tx_status.load(Ordering::Acquire) {
            b'T' => TxStatus::InTransaction,
            b'E' => TxStatus::Failed,
            _ => TxStatus::Idle,
        }
    }

    /// Waits until the `ReadyForQuery` that follows the last
    /// `ErrorResponse` has arrived (or the connection closed).
    ///
    /// tokio-postgres reports an error as soon as its `ErrorResponse`
    /// arrives, and PostgreSQL flushes that message on its own, so the
    /// `ReadyForQuery` carrying the transaction status after the error may
    /// still be on its way; [`tx_status`](Self::tx_status) is current only
    /// after this.
    pub(crate) async fn settle(&self) {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if !self.error_unsettled.load(Ordering::Acquire) || self.is_closed() {
                return;
            }
            ready.await;
        }
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_waiters();
        drop(self.held.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// Keeps `held` until the socket closes (dropping it at once if it has).
    pub(crate) fn keep_until_closed(&self, held: Box<dyn std::any::Any + Send>) {
        // Under the lock `mark_closed` takes after setting `closed`: either
        // it sees `held` there, or this sees `closed` and drops it now.
        let mut slot = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_closed() {
            *slot = Some(held);
        }
    }

    fn record(&self, kind: u8, body: &[u8]) {
        match kind {
            b'E' => {
                let mut seen = self.lock();
                self.error_unsettled.store(true, Ordering::Release);
                if seen.error_code.is_none() {
                    seen.error_code = error_field(body, b'C');
                }
                // A cached plan the schema outdated (0A000 from the plan
                // cache's revalidation, by its routine's name, which is
                // not translated; other 0A000s are a statement's own
                // features), or a prepared statement the session lost
                // (26000): the connection's statement cache would fail the
                // same way every time.
                let outdated = match seen.error_code.as_deref() {
                    Some("0A000") => {
                        error_field(body, b'R').as_deref() == Some("RevalidateCachedQuery")
                    }
                    Some("26000") => true,
                    _ => false,
                };
                if outdated {
                    self.session_changed.store(true, Ordering::Relaxed);
                }
                // `V` is the severity never translated (9.6 and later).
                let severity = error_field(body, b'V').or_else(|| error_field(body, b'S'));
                if matches!(severity.as_deref(), Some("FATAL" | "PANIC")) {
                    self.ending.store(true, Ordering::Relaxed);
                }
            }
            b'C' => {
                let tag = until_nul(body);
                match changes_session(tag) {
                    Some(SessionChange::Always) => {
                        self.session_changed.store(true, Ordering::Relaxed);
                    }
                    Some(SessionChange::OutsideTransactions) => {
                        self.set_unsettled.store(true, Ordering::Relaxed);
                    }
                    None => {}
                }
                let mut seen = self.lock();
                seen.tag.clear();
                seen.tag.extend_from_slice(tag);
                seen.has_tag = true;
            }
            // CopyInResponse, CopyBothResponse: the server now reads COPY
            // data until the client ends it, and takes nothing else; the
            // driver has no data to send, and would wait forever.
            b'G' | b'W' => {
                self.copy_in.store(true, Ordering::Relaxed);
                self.ending.store(true, Ordering::Relaxed);
            }
            b'S' => self.report(body),
            b'Z' => {
                #[cfg(test)]
                self.readies.fetch_add(1, Ordering::Relaxed);
                let status = body.first().copied().unwrap_or(b'I');
                self.tx_status.store(status, Ordering::Release);
                if self.set_unsettled.swap(false, Ordering::Relaxed) && status == b'I' {
                    self.session_changed.store(true, Ordering::Relaxed);
                }
                // `settle` waits only while an error is unsettled (it checks
                // after it began listening), so only then is anyone to be
                // woken.
                if self.error_unsettled.swap(false, Ordering::AcqRel) {
                    self.ready.notify_waiters();
                }
            }
            _ => {}
        }
    }
}

/// How a statement of command tag `tag` leaves the session for the
/// connection's next user: `SET`/`RESET` for the session when run outside a
/// transaction (inside one, `SET LOCAL` is common and ends with it);
/// `LISTEN`, `PREPARE`, `DEALLOCATE` and `DISCARD` always. A `PREPARE
/// TRANSACTION` (two-phase commit) ends its transaction and keeps nothing.
fn changes_session(tag: &[u8]) -> Option<SessionChange> {
    let verb = tag.split(|b| *b == b' ').next().unwrap_or_default();
    match verb {
        b"SET" | b"RESET" => Some(SessionChange::OutsideTransactions),
        b"PREPARE" if tag != b"PREPARE" => None,
        b"LISTEN" | b"PREPARE" | b"DEALLOCATE" | b"DISCARD" => Some(SessionChange::Always),
        _ => None,
    }
}

enum SessionChange {
    Always,
    OutsideTransactions,
}

/// A C string's bytes, without the terminating NUL.
fn until_nul(body: &[u8]) -> &[u8] {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    &body[..end]
}

/// Finds one field of an `ErrorResponse` body: (type byte, C string)*, 0.
fn error_field(mut body: &[u8], wanted: u8) -> Option<String> {
    while let Some((&kind, rest)) = body.split_first() {
        if kind == 0 {
            return None;
        }
        let end = rest.iter().position(|b| *b == 0)?;
        if kind == wanted {
            return Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        body = &rest[end + 1..];
    }
    None
}

/// Incremental parser of the backend message framing; it also takes the
/// replies to an opening out of the bytes it follows.
#[derive(Debug, Default)]
struct Framing {
    messages: MessageReader,
    /// Replies to an opening that are still to come ([`crate::opening`]).
    replies: Replies,
    /// Bytes of such a reply still to be taken out.
    dropping: usize,
}

impl Framing {
    fn interesting(kind: u8) -> bool {
        matches!(kind, b'E' | b'C' | b'Z' | b'G' | b'W' | b'S')
    }

    fn feed(&mut self, mut data: &[u8], state: &WireState) {
        while !data.is_empty() {
            let n = self.feed_message(data, state);
            data = &data[n..];
        }
    }

    /// Follows `data`, just read, and takes the replies to an opening out
    /// of it, moving what stays to the front: returns its length.
    fn feed_filtered(&mut self, data: &mut [u8], state: &WireState) -> usize {
        let mut kept = 0;
        let mut at = 0;
        while at < data.len() {
            if self.dropping > 0 {
                let n = self.dropping.min(data.len() - at);
                self.dropping -= n;
                at += n;
                continue;
            }
            if !self.replies.pending() {
                // Nothing more to take out: the rest goes as it is.
                self.feed(&data[at..], state);
                data.copy_within(at.., kept);
                return kept + data.len() - at;
            }
            if self.messages.is_between_messages() {
                self.dropping = self.replies.take(data[at]);
                if self.dropping > 0 {
                    continue;
                }
            }
            let n = self.feed_message(&data[at..], state);
            data.copy_within(at..at + n, kept);
            kept += n;
            at += n;
        }
        kept
    }

    /// Follows `data` up to the end of the message it is in (or all of
    /// it, if that message goes on): returns how much it took.
    fn feed_message(&mut self, data: &[u8], state: &WireState) -> usize {
        self.messages
            .feed_message(data, Self::interesting, usize::MAX, |kind, body| {
                state.record(kind, body)
            })
    }
}

/// Anything a connection can run over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

/// The transport under a connection: TCP, a Unix-domain socket, or TLS
/// over TCP. The observer reads above it, so it always sees the plaintext
/// protocol.
#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A transport whose reads and writes a test scripts.
    #[cfg(test)]
    Scripted(Box<dyn Io>),
}

impl Socket {
    fn io(&mut self) -> Pin<&mut dyn Io> {
        match self {
            Socket::Tcp(s) => Pin::new(s),
            Socket::Unix(s) => Pin::new(s),
            #[cfg(feature = "tls")]
            Socket::Tls(s) => Pin::new(&mut **s),
            #[cfg(test)]
            Socket::Scripted(s) => Pin::new(&mut **s),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

/// A socket whose incoming bytes are followed by [`Framing`], and whose
/// frontend messages go through a [`Rewriter`] once the connection uses
/// unnamed statements (both ways then), and while an opening waits for its
/// statement.
#[derive(Debug)]
pub(crate) struct WatchedSocket {
    socket: Socket,
    framing: Framing,
    /// What the client sends, followed for statements that leave state in
    /// the session ([`crate::session_state`]).
    frontend: FrontendScan,
    state: Arc<WireState>,
    rewriting: Option<Box<Rewriting>>,
    /// Bytes at the front of the client's next write that end messages
    /// begun in an earlier one: what an unrewritten write left unwritten.
    /// The client's buffer always ends with a whole message, so a message
    /// starts right after them.
    unaligned: usize,
    /// Closing: our side is shut, and the server has until this deadline
    /// to close its own.
    closing: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Until the server's first authentication request is judged: the
    /// `require_auth` it is held to.
    auth: Option<Box<AuthGate>>,
}

/// Why a connection whose server began a `COPY .. FROM STDIN` ended.
pub(crate) const COPY_IN_REFUSED: &str = "the server waits for COPY data (COPY .. FROM STDIN), \
    which gino cannot send, so the connection was closed: load rows with insert_many, or COPY \
    from a file the server reads";

/// How long closing waits for the server to close its side of the socket.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The buffers of a rewritten socket.
#[derive(Debug, Default)]
struct Rewriting {
    rewriter: Rewriter,
    /// Backend bytes for the client, not yet read by it.
    inbound: Vec<u8>,
    /// Frontend bytes for the server, not yet written to it.
    outbound: Vec<u8>,
}

/// Rewritten bytes waiting for the socket beyond which a write waits.
const OUTBOUND_LIMIT: usize = 64 * 1024;

impl Rewriting {
    /// Whether nothing rewritten is still on its way out.
    fn is_idle(&self) -> bool {
        self.outbound.is_empty() && self.rewriter.is_between_messages()
    }
}

impl WatchedSocket {
    /// `socket` watched into `state`, its server held to `gate` at login.
    fn new(socket: Socket, state: Arc<WireState>, gate: Option<AuthGate>) -> Self {
        WatchedSocket {
            socket,
            framing: Framing::default(),
            frontend: FrontendScan::default(),
            state,
            rewriting: None,
            unaligned: 0,
            closing: None,
            auth: gate.map(Box::new),
        }
    }

    fn unnamed(&self) -> bool {
        self.state.unnamed.load(Ordering::Relaxed)
    }

    /// Ends the connection once the server waits for `COPY` data: the
    /// statement, and every one queued behind it, fail with this error
    /// rather than wait for data nobody sends.
    fn refuse_copy_in(&self) -> io::Result<()> {
        if !self.state.copy_in_refused() {
            return Ok(());
        }
        Err(io::Error::new(io::ErrorKind::Unsupported, COPY_IN_REFUSED))
    }

    /// The rewriting of what the server sends: only for unnamed statements.
    fn rewriting_reads(&mut self) -> Option<&mut Rewriting> {
        if !self.unnamed() {
            return None;
        }
        Some(self.rewriting.get_or_insert_with(Box::default))
    }

    /// The rewriting of what the client writes: for unnamed statements,
    /// while an opening is armed, and until what it took has gone out.
    fn rewriting_writes(&mut self) -> Option<&mut Rewriting> {
        let idle = self.rewriting.as_deref().is_none_or(Rewriting::is_idle);
        if idle && !self.unnamed() && !self.state.opening_armed() && !self.state.row_limit_armed() {
            return None;
        }
        Some(self.rewriting.get_or_insert_with(Box::default))
    }

    /// Writes out rewritten bytes until none are left or the socket is busy.
    fn drain_outbound(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(rewriting) = self.rewriting.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !rewriting.outbound.is_empty() {
            match write_counted(
                &mut self.socket,
                &self.state,
                &mut self.frontend,
                cx,
                &rewriting.outbound,
            ) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => drop(rewriting.outbound.drain(..n)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        crate::framing::release_excess(&mut rewriting.outbound);
        Poll::Ready(Ok(()))
    }
}

/// Writes to the socket, counting what it took in [`WireState::sent`] and
/// noting a statement that leaves state in the session.
fn write_counted(
    socket: &mut Socket,
    state: &WireState,
    scan: &mut FrontendScan,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let poll = Pin::new(socket).poll_write(cx, buf);
    if let Poll::Ready(Ok(n)) = poll {
        state.sent.fetch_add(n as u64, Ordering::Relaxed);
        if scan.feed(&buf[..n]) {
            state.session_changed.store(true, Ordering::Relaxed);
        }
    }
    poll
}

impl AsyncRead for WatchedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.rewriting_reads().is_none() {
            let before = buf.filled().len();
            loop {
                std::task::ready!(Pin::new(&mut this.socket).poll_read(cx, buf))?;
                let filled = buf.filled().len();
                if filled == before {
                    return Poll::Ready(Ok(()));
                }
                // Only this path needs the gate: statements go unnamed (and
                // reads through the rewriter) once the login is over.
                if let Some(gate) = this.auth.as_deref_mut() {
                    match gate.inspect(&buf.filled()[before..]) {
                        Verdict::Undecided => {}
                        Verdict::Passed => this.auth = None,
                        Verdict::Refused(method) => {
                            // The driver never sees the request, so it
                            // sends no password in answer.
                            buf.set_filled(before);
                            let refused = Refused(method);
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::PermissionDenied,
                                refused,
                            )));
                        }
                    }
                }
                let kept = this
                    .framing
                    .feed_filtered(&mut buf.filled_mut()[before..], &this.state);
                buf.set_filled(before + kept);
                this.refuse_copy_in()?;
                if kept > 0 {
                    return Poll::Ready(Ok(()));
                }
                // All of it taken out (replies to an opening): read on, as
                // nothing read would be taken for the end of the stream.
            }
        }
        let mut scratch = [0u8; 8192];
        loop {
            let rewriting = this.rewriting.as_deref_mut().expect("checked above");
            if !rewriting.inbound.is_empty() {
                let n = buf.remaining().min(rewriting.inbound.len());
                buf.put_slice(&rewriting.inbound[..n]);
                rewriting.inbound.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut scratch);
            std::task::ready!(Pin::new(&mut this.socket).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            rewriting
                .rewriter
                .incoming(read.filled(), &mut rewriting.inbound);
            let kept = this
                .framing
                .feed_filtered(&mut rewriting.inbound, &this.state);
            rewriting.inbound.truncate(kept);
            this.refuse_copy_in()?;
            // All of it taken out (a ParseComplete): read on.
        }
    }
}

impl AsyncWrite for WatchedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewriting_writes().is_none() {
            let poll = write_counted(&mut this.socket, &this.state, &mut this.frontend, cx, buf);
            if let Poll::Ready(Ok(n)) = poll {
                this.unaligned = buf.len() - n;
            }
            return poll;
        }
        if this.drain_outbound(cx)?.is_pending() {
            let rewriting = this.rewriting.as_deref().expect("checked above");
            if rewriting.outbound.len() >= OUTBOUND_LIMIT {
                return Poll::Pending;
            }
        }
        let unnamed = this.unnamed();
        let state = &this.state;
        let rewriting = this.rewriting.as_deref_mut().expect("checked above");
        let unaligned = this.unaligned.min(buf.len());
        this.unaligned -= unaligned;
        rewriting.outbound.extend_from_slice(&buf[..unaligned]);
        let opened = rewriting.rewriter.outgoing(
            &buf[unaligned..],
            &mut rewriting.outbound,
            unnamed,
            &mut || state.take_opening(),
            &mut || state.take_row_limit(),
        );
        if opened {
            this.framing.replies.expect();
        }
        // Pending here is fine: the bytes are taken, and the flush that
        // follows every write of the client waits for them.
        let _ = this.drain_outbound(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.drain_outbound(cx))?;
        Pin::new(&mut this.socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.is_none() {
            std::task::ready!(this.drain_outbound(cx))?;
            std::task::ready!(Pin::new(&mut this.socket).poll_shutdown(cx))?;
            this.closing = Some(Box::pin(tokio::time::sleep(CLOSE_WAIT)));
        }
        // The connection counts as closed (for a connection budget, say)
        // once the server has closed its side too: its backend has left
        // pg_stat_activity by then, where right after our `Terminate` it
        // may still be listed. A server that does not close in time is not
        // waited for.
        let deadline = this.closing.as_mut().expect("set above");
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [0u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.socket).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// TCP keepalive settings of a connection's socket.
#[derive(Debug, Clone, Copy)]
struct Keepalive {
    idle: Duration,
    interval: Option<Duration>,
    retries: Option<u32>,
}

/// The TCP options of a connection's socket: keepalives and libpq's
/// `tcp_user_timeout`, the longest time sent data may stay unacknowledged
/// before the kernel drops the connection.
#[derive(Debug, Clone, Copy)]
struct TcpOptions {
    keepalive: Option<Keepalive>,
    user_timeout: Option<Duration>,
}

impl TcpOptions {
    fn of(pg: &tokio_postgres::Config) -> TcpOptions {
        TcpOptions {
            keepalive: Keepalive::of(pg),
            user_timeout: pg.get_tcp_user_timeout().copied(),
        }
    }

    fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        if let Some(keepalive) = &self.keepalive {
            keepalive.apply(stream)?;
        }
        // Linux's option; libpq, too, has it only where the system does.
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        if let Some(timeout) = self.user_timeout {
            socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout))?;
        }
        Ok(())
    }
}

impl Keepalive {
    fn of(pg: &tokio_postgres::Config) -> Option<Keepalive> {
        pg.get_keepalives().then(|| Keepalive {
            idle: pg.get_keepalives_idle(),
            interval: pg.get_keepalives_interval(),
            retries: pg.get_keepalives_retries(),
        })
    }

    fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        let mut keepalive = socket2::TcpKeepalive::new().with_time(self.idle);
        if let Some(interval) = self.interval {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = self.retries {
            keepalive = keepalive.with_retries(retries);
        }
        socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
    }
}

#[derive(Debug, Clone)]
enum Place {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The TLS configuration and host name a connection is encrypted with.
#[cfg(feature = "tls")]
type Encryption = (Arc<Tls>, String);
/// Without the `tls` feature no connection is encrypted.
#[cfg(not(feature = "tls"))]
type Encryption = std::convert::Infallible;

/// Where a connection's server lives and how its traffic is encrypted,
/// kept for cancel requests, which PostgreSQL takes on a connection of
/// their own, encrypted as the connection is.
#[derive(Debug, Clone)]
pub(crate) struct ServerAddr {
    place: Place,
    encryption: Option<Encryption>,
}

impl Place {
    async fn open(&self, tcp: Option<&TcpOptions>) -> io::Result<Socket> {
        match self {
            Place::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                // Queries are small request/response exchanges: Nagle's
                // algorithm would add its delay to every one of them.
                stream.set_nodelay(true)?;
                if let Some(tcp) = tcp {
                    tcp.apply(&stream)?;
                }
                Ok(Socket::Tcp(stream))
            }
            Place::Unix(path) => Ok(Socket::Unix(UnixStream::connect(path).await?)),
        }
    }

    #[cfg(feature = "tls")]
    fn is_loopback(&self) -> bool {
        match self {
            Place::Tcp(addr) => addr.ip().is_loopback(),
            Place::Unix(_) => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Place::Tcp(a) => a.to_string(),
            Place::Unix(p) => p.display().to_string(),
        }
    }
}

impl ServerAddr {
    /// Asks the server to cancel whatever the connection identified by
    /// `token` is running, and returns once the server has delivered the
    /// request.
    ///
    /// PostgreSQL signals the backend twice (the process, then its process
    /// group) and closes the cancel connection after both. Returning as soon
    /// as the request is written, the second signal can come late enough to
    /// cancel the connection's *next* statement; once the server has closed
    /// the connection, a late signal reaches the backend before it reads
    /// that statement, and the backend discards it.
    pub(crate) async fn cancel(&self, token: &tokio_postgres::CancelToken) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let unreachable =
            |e: io::Error| Error::Connection(format!("cannot send cancel request: {e}"));
        let mut socket = self.place.open(None).await.map_err(unreachable)?;
        if let Some(encryption) = &self.encryption {
            socket = encrypt(socket, encryption).await?;
        }
        // As libpq does, the request is followed by a wait for the server
        // to close, not by a half-close of ours: PgBouncer 1.18 takes an
        // early end of the request's connection for a broken client and
        // crashes on it.
        let mut socket = NoShutdown(socket);
        // The token keeps the connection's TLS settings: for an encrypted
        // one, a TLS session that starts at once (see `binding`), which
        // `Binding` gives as it gives it to the connection's login.
        token
            .cancel_query_raw(&mut socket, Binding::default())
            .await
            .map_err(Error::from_postgres)?;
        // The server sends nothing; an error means it is gone, which ends
        // the wait as well.
        let _ = socket.0.read_to_end(&mut Vec::new()).await;
        Ok(())
    }
}

/// A socket whose `shutdown` does nothing (see [`ServerAddr::cancel`]).
struct NoShutdown(Socket);

impl AsyncRead for NoShutdown {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for NoShutdown {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A freshly opened connection: the client, the task that drives its
/// socket, and what the socket sees.
pub(crate) struct Opened {
    pub(crate) client: tokio_postgres::Client,
    pub(crate) driver: Arc<Driver>,
    pub(crate) addr: ServerAddr,
    pub(crate) state: Arc<WireState>,
}

/// How an engine opens connections: where to, as whom, which server of
/// several to settle on, and with what TLS. Built once per engine, so that
/// certificate files are read once and a bad one fails engine creation.
#[derive(Debug)]
pub(crate) struct Connector {
    config: ConnectConfig,
    tcp: TcpOptions,
    /// The runtime that created the engine, where every connection's
    /// socket is driven while that runtime lives. With one runtime per
    /// thread (actix's workers), a connection opened by one worker and used
    /// by another would otherwise depend on the first worker's scheduling,
    /// and die with it.
    runtime: Option<CreationRuntime>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<Tls>>,
}

impl Connector {
    pub(crate) fn new(config: ConnectConfig) -> Result<Self> {
        #[cfg(feature = "tls")]
        let tls = Tls::new(&config.tls)?.map(Arc::new);
        #[cfg(not(feature = "tls"))]
        if config.tls.mode.requires_tls() {
            return Err(Error::Configuration(format!(
                "sslmode={} needs TLS, which this build of gino leaves out: enable gino's `tls` \
                 feature (on by default)",
                config.tls.mode
            )));
        }
        Ok(Connector {
            tcp: TcpOptions::of(&config.pg),
            runtime: CreationRuntime::current(),
            config,
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// Opens a watched connection to the first host (in order) that
    /// answers and is what `target_session_attrs` asks for.
    pub(crate) async fn open(&self) -> Result<Opened> {
        let pg = &self.config.pg;
        let ports = pg.get_ports();
        let passes: &[TargetSessionAttrs] = match self.config.target {
            TargetSessionAttrs::PreferStandby => {
                &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any]
            }
            ref one => std::slice::from_ref(one),
        };
        let passwords = self
            .config
            .passfile
            .as_ref()
            .map(|file| (file, file.read()));
        let random = pg.get_load_balance_hosts() == LoadBalanceHosts::Random;
        let mut hosts: Vec<_> = pg.get_hosts().iter().enumerate().collect();
        if random {
            shuffle(&mut hosts);
        }
        let mut last_error = None;
        for wanted in passes {
            for &(i, host) in &hosts {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                let login = Login::new(pg, passwords.as_ref(), host, port);
                let candidates = match resolve(host, pg.get_hostaddrs().get(i), port).await {
                    Ok(mut c) if random => {
                        shuffle(&mut c);
                        c
                    }
                    Ok(c) => c,
                    Err(e) => {
                        last_error =
                            Some(Error::Connection(format!("cannot resolve {host:?}: {e}")));
                        continue;
                    }
                };
                let name = match host {
                    Host::Tcp(name) => name.as_str(),
                    Host::Unix(_) => "",
                };
                for place in candidates {
                    // The check of the session's kind is part of the
                    // attempt, within its time as in libpq: a server that
                    // logs in and then stalls gives way to the next one.
                    let attempt = async {
                        let opened = self.open_at(&place, name, &login).await?;
                        let wanted = is_wanted(&opened.client, *wanted).await?;
                        Ok::<_, Error>((opened, wanted))
                    };
                    let opened = match pg.get_connect_timeout() {
                        Some(t) => tokio::time::timeout(*t, attempt).await.unwrap_or_else(|_| {
                            Err(Error::Connection(format!(
                                "timed out after {t:?} connecting to {}",
                                place.describe()
                            )))
                        }),
                        None => attempt.await,
                    };
                    match opened {
                        Ok((opened, true)) => return Ok(opened),
                        Ok((_, false)) => {
                            last_error = Some(Error::Connection(format!(
                                "{} is not a {} server, as target_session_attrs asks",
                                place.describe(),
                                wanted.describe()
                            )));
                        }
                        Err(e) => last_error = Some(e),
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Configuration("no host to connect to".to_owned())))
    }

    /// Connects to one address, negotiating TLS as the mode says.
    async fn open_at(&self, place: &Place, host: &str, login: &Login<'_>) -> Result<Opened> {
        #[cfg(feature = "tls")]
        if let (Place::Tcp(_), Some(tls)) = (place, &self.tls) {
            return self.open_tls(place, host, tls, login).await;
        }
        let _ = host;
        self.start(self.connect(place).await?, place, None, login)
            .await
    }

    #[cfg(feature = "tls")]
    async fn open_tls(
        &self,
        place: &Place,
        host: &str,
        tls: &Arc<Tls>,
        login: &Login<'_>,
    ) -> Result<Opened> {
        let plaintext = async || {
            self.start(self.connect(place).await?, place, None, login)
                .await
        };
        // A client certificate the server must ask for, or channel binding
        // that is required, needs TLS: no plaintext session can give
        // either, so `allow` and `prefer` (on loopback too) go encrypted.
        let must_encrypt = if tls.must_be_asked() {
            Some("sslcertmode=require")
        } else if matches!(
            login.pg.get_channel_binding(),
            tokio_postgres::config::ChannelBinding::Require
        ) {
            Some("channel_binding=require")
        } else {
            None
        };
        let required_by = must_encrypt
            .map(str::to_owned)
            .or_else(|| (tls.mode() != SslMode::Prefer).then(|| format!("sslmode={}", tls.mode())));
        let encrypted = async || {
            let required_by = required_by.as_deref();
            let (socket, used) =
                negotiate(self.connect(place).await?, tls, host, required_by).await?;
            let encryption = used.then(|| (tls.clone(), host.to_owned()));
            self.start(socket, place, encryption, login).await
        };
        match tls.mode() {
            SslMode::Allow | SslMode::Prefer if must_encrypt.is_some() => encrypted().await,
            // libpq's `allow`: plaintext first, TLS if the server refuses it.
            SslMode::Allow => match plaintext().await {
                Err(Error::Database(_)) => encrypted().await,
                other => other,
            },
            // On loopback `prefer` behaves as `allow`: no one can listen in
            // there (the reason libpq never encrypts Unix sockets), and TLS
            // would add its cost to every round trip.
            SslMode::Prefer if place.is_loopback() => match plaintext().await {
                Err(Error::Database(_)) => encrypted().await,
                other => other,
            },
            // libpq's `prefer`: TLS first; plaintext when the server has no
            // TLS (negotiate) or refuses the encrypted session.
            SslMode::Prefer => match encrypted().await {
                Err(Error::Database(e)) => {
                    tracing::debug!(target: "gino", "encrypted session refused ({e}), trying plaintext");
                    plaintext().await
                }
                other => other,
            },
            _ => encrypted().await,
        }
    }

    async fn connect(&self, place: &Place) -> Result<Socket> {
        let socket = place.open(Some(&self.tcp)).await.map_err(|e| {
            Error::Connection(format!(
                "cannot connect to {}: {e}; is the PostgreSQL server running there?",
                place.describe()
            ))
        })?;
        if let (Socket::Unix(stream), Place::Unix(path), Some(user)) =
            (&socket, place, &self.config.require_peer)
        {
            peer::check(stream, path, user)?;
        }
        Ok(socket)
    }

    /// Runs the startup (authentication) on `socket` and spawns the task
    /// that drives the connection.
    async fn start(
        &self,
        socket: Socket,
        place: &Place,
        encryption: Option<Encryption>,
        login: &Login<'_>,
    ) -> Result<Opened> {
        let state = Arc::new(WireState::default());
        let gate = self.config.require_auth.clone().map(AuthGate::new);
        let watched = WatchedSocket::new(socket, state.clone(), gate);
        let binding = socket_binding(&watched.socket);
        let pg = match binding {
            Some(_) => {
                let mut pg = login.pg.as_ref().clone();
                Binding::prepare(&mut pg);
                Cow::Owned(pg)
            }
            None => Cow::Borrowed(login.pg.as_ref()),
        };
        let (client, connection) = pg
            .connect_raw(watched, binding.unwrap_or_default())
            .await
            .map_err(|e| match (&self.config.require_auth, refused_method(&e)) {
                (Some(policy), Some(method)) => policy.refusal(method, &place.describe()),
                _ => login.refused(e, place),
            })?;
        // Marks the connection closed when its driver ends, also when the
        // driver is dropped unfinished (its runtime shut down).
        struct Driven(Arc<WireState>);
        impl Drop for Driven {
            fn drop(&mut self) {
                self.0.mark_closed();
            }
        }
        let driven = Driven(state.clone());
        let drive = async move {
            let _driven = driven;
            if let Err(e) = connection.await {
                tracing::debug!(target: "gino", "connection closed with error: {e}");
            }
        };
        let driver = Driver::spawn(drive, |task| {
            match self.runtime.as_ref().filter(|r| r.is_alive()) {
                Some(runtime) => drop(runtime.handle.spawn(task)),
                // Gone (an engine kept past the runtime that made it, as in
                // tests sharing a static): the current runtime drives it.
                None => drop(tokio::spawn(task)),
            }
        });
        Ok(Opened {
            client,
            driver,
            addr: ServerAddr {
                place: place.clone(),
                encryption,
            },
            state,
        })
    }
}

/// Puts `items` in a random order (Fisher-Yates), for
/// `load_balance_hosts=random`: std's randomly keyed hasher is the
/// source, which is random enough to spread connections over servers.
fn shuffle<T>(items: &mut [T]) {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new();
    for i in (1..items.len()).rev() {
        let bound = u64::try_from(i + 1).unwrap_or(u64::MAX);
        let j = usize::try_from(random.hash_one(i) % bound).unwrap_or(0);
        items.swap(i, j);
    }
}

/// The channel binding of an encrypted socket; `None` for plaintext.
fn socket_binding(socket: &Socket) -> Option<Binding> {
    match socket {
        #[cfg(feature = "tls")]
        Socket::Tls(stream) => {
            let certificate = stream.get_ref().1.peer_certificates()?.first()?;
            Some(Binding::of_certificate(certificate))
        }
        _ => None,
    }
}

/// The startup parameters for one host: the engine's, with the password
/// file's password for that host when the engine has none.
struct Login<'a> {
    pg: Cow<'a, tokio_postgres::Config>,
    /// The password file looked in, and whether the password came from it.
    file: Option<(&'a PassFile, bool)>,
}

impl<'a> Login<'a> {
    fn new(
        pg: &'a tokio_postgres::Config,
        passwords: Option<&'a (&'a PassFile, Entries)>,
        host: &Host,
        port: u16,
    ) -> Self {
        let Some((file, entries)) = passwords else {
            return Login {
                pg: Cow::Borrowed(pg),
                file: None,
            };
        };
        match file.password(entries, host, port) {
            Some(password) => {
                let mut pg = pg.clone();
                pg.password(password);
                Login {
                    pg: Cow::Owned(pg),
                    file: Some((file, true)),
                }
            }
            None => Login {
                pg: Cow::Borrowed(pg),
                file: Some((file, false)),
            },
        }
    }

    /// The error of a failed startup, saying where a password was looked
    /// for when the server wanted one.
    fn refused(&self, error: tokio_postgres::Error, place: &Place) -> Error {
        // tokio-postgres says only this when the server asks for a
        // password and its config has none.
        let missing = std::error::Error::source(&error)
            .is_some_and(|reason| reason.to_string() == "password missing");
        if missing && error.as_db_error().is_none() && self.pg.get_password().is_none() {
            let looked = match self.file {
                Some((file, _)) => {
                    format!("the password file {} has none for it", file.path.display())
                }
                None => "there is no password file (PGPASSFILE, ~/.pgpass)".to_owned(),
            };
            return Error::Configuration(format!(
                "the server at {} asks for a password for user `{}` and none was given: put it in \
                 the URL (postgres://user:password@host/db), in PGPASSWORD or in the password \
                 file; {looked}",
                place.describe(),
                self.pg.get_user().unwrap_or_default(),
            ));
        }
        let mut refused = Error::from_postgres(error);
        if let (Some((file, true)), Error::Database(e)) = (self.file, &mut refused) {
            // 28P01 invalid_password, 28000 invalid_authorization_specification
            if e.code.starts_with("28") && e.hint.is_none() {
                e.hint = Some(format!(
                    "the password came from the password file {}",
                    file.path.display()
                ));
            }
        }
        refused
    }
}

/// Encrypts a new socket to the server (for a cancel request) as the
/// connection it belongs to is.
#[cfg(feature = "tls")]
async fn encrypt(socket: Socket, (tls, host): &Encryption) -> Result<Socket> {
    let encrypted = "the encrypted connection it cancels a statement of";
    Ok(negotiate(socket, tls, host, Some(encrypted)).await?.0)
}

#[cfg(not(feature = "tls"))]
async fn encrypt(_: Socket, encryption: &Encryption) -> Result<Socket> {
    match *encryption {}
}

/// The runtime an engine was created on, and whether it still runs: a
/// task that never ends holds `alive`, and a runtime that shuts down drops
/// its tasks.
#[derive(Debug)]
struct CreationRuntime {
    handle: tokio::runtime::Handle,
    alive: std::sync::Weak<()>,
}

impl CreationRuntime {
    fn current() -> Option<CreationRuntime> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let token = Arc::new(());
        let alive = Arc::downgrade(&token);
        drop(handle.spawn(async move {
            let _token = token;
            std::future::pending::<()>().await
        }));
        Some(CreationRuntime { handle, alive })
    }

    fn is_alive(&self) -> bool {
        self.alive.strong_count() > 0
    }
}

/// Asks the server to encrypt (`SSLRequest`) and runs the handshake if it
/// agrees. Returns the socket to speak the protocol on and whether it is
/// encrypted; a server without TLS is an error only when a setting
/// (`required_by`, as the user wrote it) requires it.
#[cfg(feature = "tls")]
async fn negotiate(
    socket: Socket,
    tls: &Tls,
    host: &str,
    required_by: Option<&str>,
) -> Result<(Socket, bool)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Socket::Tcp(mut stream) = socket else {
        unreachable!("TLS is only negotiated over TCP, as libpq does")
    };
    // Length 8, then the SSLRequest code 1234.5679.
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let failed =
        |e: io::Error| Error::Connection(format!("TLS negotiation with {host} failed: {e}"));
    stream.write_all(&SSL_REQUEST).await.map_err(failed)?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(failed)?;
    match answer[0] {
        b'S' => Ok((Socket::Tls(tls.handshake(stream, host).await?), true)),
        b'N' if let Some(setting) = required_by => Err(Error::Tls(format!(
            "the server at {host} does not accept TLS, which {setting} requires: turn `ssl` on \
             in its postgresql.conf{}",
            if setting.starts_with("sslmode") {
                ", or use sslmode=prefer to allow plaintext"
            } else {
                ""
            }
        ))),
        b'N' => Ok((Socket::Tcp(stream), false)),
        other => Err(Error::Connection(format!(
            "the server at {host} answered the TLS request with {:?}; is it a PostgreSQL server?",
            other as char
        ))),
    }
}

/// Whether the server of `client` is what `wanted` asks for.
async fn is_wanted(client: &tokio_postgres::Client, wanted: TargetSessionAttrs) -> Result<bool> {
    let (query, expected) = match wanted {
        TargetSessionAttrs::Any => return Ok(true),
        TargetSessionAttrs::ReadWrite => ("SHOW transaction_read_only", "off"),
        TargetSessionAttrs::ReadOnly => ("SHOW transaction_read_only", "on"),
        TargetSessionAttrs::Primary => ("SELECT pg_is_in_recovery()", "f"),
        TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => {
            ("SELECT pg_is_in_recovery()", "t")
        }
    };
    let messages = client
        .simple_query(query)
        .await
        .map_err(Error::from_postgres)?;
    Ok(messages.iter().any(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0) == Some(expected),
        _ => false,
    }))
}

/// The addresses of `host`: its `hostaddr` when given, else what its name
/// resolves to.
async fn resolve(host: &Host, address: Option<&IpAddr>, port: u16) -> io::Result<Vec<Place>> {
    if let Some(&address) = address {
        return Ok(vec![Place::Tcp(SocketAddr::new(address, port))]);
    }
    match host {
        Host::Tcp(name) => Ok(tokio::net::lookup_host((name.as_str(), port))
            .await?
            .map(Place::Tcp)
            .collect()),
        Host::Unix(dir) => Ok(vec![Place::Unix(dir.join(format!(".s.PGSQL.{port}")))]),
    }
}

#[cfg(test)]
mod protocol_property;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags_that_change_the_session_for_good() {
        for tag in [
            &b"LISTEN"[..],
            b"PREPARE",
            b"DEALLOCATE ALL",
            b"DISCARD ALL",
        ] {
            assert!(matches!(changes_session(tag), Some(SessionChange::Always)));
        }
        assert!(matches!(
            changes_session(b"SET"),
            Some(SessionChange::OutsideTransactions)
        ));
        for tag in [&b"PREPARE TRANSACTION"[..], b"COMMIT PREPARED", b"SELECT 1"] {
            assert!(changes_session(tag).is_none(), "{tag:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn tcp_options_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let place = Place::Tcp(listener.local_addr().unwrap());
        let mut pg = tokio_postgres::Config::new();
        pg.tcp_user_timeout(Duration::from_millis(2500))
            .keepalives_idle(Duration::from_secs(30));
        let Socket::Tcp(stream) = place.open(Some(&TcpOptions::of(&pg))).await.unwrap() else {
            panic!("a TCP place opens a TCP socket");
        };
        let socket = socket2::SockRef::from(&stream);
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(2500))
        );
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(30)
        );
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn follows_messages_split_anywhere() {
        let mut stream = Vec::new();
        stream.extend(message(b'D', b"\x00\x01\x00\x00\x00\x01x"));
        stream.extend(message(b'C', b"UPDATE 8\0"));
        stream.extend(message(b'E', b"SERROR\0C23505\0Mduplicate\0\0"));
        stream.extend(message(b'E', b"SERROR\0C42601\0Mlater\0\0"));
        stream.extend(message(b'Z', b"E"));
        for chunk in [1, 2, 3, 7, stream.len()] {
            let state = WireState::default();
            let mut framing = Framing::default();
            for piece in stream.chunks(chunk) {
                framing.feed(piece, &state);
            }
            assert_eq!(state.tag().as_deref(), Some("UPDATE 8"));
            assert_eq!(state.error_code().as_deref(), Some("23505"));
            assert_eq!(state.tx_status(), TxStatus::Failed);
            state.begin_statement();
            assert_eq!(state.tag(), None);
            assert_eq!(state.error_code(), None);
        }
    }

    #[test]
    fn a_fatal_error_ends_the_session_and_others_do_not() {
        let state = WireState::default();
        state.record(b'E', b"SERROR\0VERROR\0C23505\0Mduplicate\0\0");
        assert!(!state.is_ending(), "an ERROR leaves the session usable");
        state.record(b'C', b"SELECT 1\0");
        assert!(!state.may_have_written(), "a SELECT tag");
        state.record(b'C', b"INSERT 0 1\0");
        assert!(state.may_have_written());
        // Localised severity in `S`; `V` is what counts.
        state.record(
            b'E',
            b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0",
        );
        assert!(state.is_ending(), "FATAL: the server is ending the session");
        assert!(!state.is_closed(), "the socket itself has not closed yet");
    }

    /// Feeds `stream` to a framing expecting an opening's replies, in
    /// pieces of `chunk` bytes: what the client gets.
    fn filtered(stream: &[u8], chunk: usize, state: &WireState) -> Vec<u8> {
        let mut framing = Framing::default();
        framing.replies.expect();
        let mut seen = Vec::new();
        for piece in stream.chunks(chunk) {
            let mut piece = piece.to_vec();
            let kept = framing.feed_filtered(&mut piece, state);
            seen.extend_from_slice(&piece[..kept]);
        }
        seen
    }

    #[test]
    fn an_opening_s_replies_are_taken_out_wherever_the_reads_split() {
        let statement = [
            message(b'N', b"SWARNING\0Mnotice\0\0"),
            message(b'2', b""),
            message(b'D', b"\x00\x01\x00\x00\x00\x011"),
            message(b'C', b"SELECT 1\0"),
            message(b'Z', b"T"),
        ]
        .concat();
        let stream = [
            message(b'1', b""),
            message(b'2', b""),
            message(b'C', b"BEGIN\0"),
            statement.clone(),
        ]
        .concat();
        for chunk in [1, 2, 3, 5, 7, 11, stream.len()] {
            let state = WireState::default();
            assert_eq!(
                filtered(&stream, chunk, &state),
                statement,
                "pieces of {chunk}"
            );
            assert_eq!(state.tag().as_deref(), Some("SELECT 1"));
            assert_eq!(state.tx_status(), TxStatus::InTransaction);
        }
        // A failed BEGIN: its error is the statement's, and what follows
        // (the statement's own ParseComplete, here) reaches the client.
        let failed = [
            message(b'E', b"SERROR\0C25006\0Mread-only\0\0"),
            message(b'Z', b"I"),
            message(b'1', b""),
        ]
        .concat();
        for chunk in [1, 4, failed.len()] {
            let state = WireState::default();
            assert_eq!(
                filtered(&failed, chunk, &state),
                failed,
                "pieces of {chunk}"
            );
            assert_eq!(state.error_code().as_deref(), Some("25006"));
        }
    }

    /// A socket watched as a connection's, and the server's end of it.
    async fn watched_pair(state: &Arc<WireState>) -> (WatchedSocket, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let watched = WatchedSocket::new(Socket::Tcp(client), state.clone(), None);
        (watched, server)
    }

    #[tokio::test]
    async fn an_opening_goes_out_in_front_of_the_next_statement_in_its_batch() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for unnamed in [false, true] {
            let state = Arc::new(WireState::default());
            if unnamed {
                state.use_unnamed_statements();
            }
            let (mut client, mut server) = watched_pair(&state).await;
            let close = [message(b'C', b"Ss1\0"), message(b'S', b"")].concat();
            let statement = [
                message(b'B', b"\0\0\0\0\0\0\0\0"),
                message(b'E', b"\0\0\0\0\0"),
                message(b'S', b""),
            ]
            .concat();
            state.arm_opening("BEGIN READ ONLY");
            // The close of a dropped statement is no statement: the opening
            // waits for the Bind, half of which comes in a later write.
            client.write_all(&close).await.unwrap();
            client.write_all(&statement[..3]).await.unwrap();
            assert!(state.opening_armed(), "nothing to go with yet");
            client.write_all(&statement[3..]).await.unwrap();
            client.flush().await.unwrap();
            assert!(!state.withdraw_opening(), "it went out");

            let opening = crate::opening::messages("BEGIN READ ONLY");
            let expected = [close.as_slice(), &opening, &statement].concat();
            let mut sent = vec![0; expected.len()];
            server.read_exact(&mut sent).await.unwrap();
            assert_eq!(sent, expected, "unnamed: {unnamed}");

            let close_replies = [message(b'3', b""), message(b'Z', b"I")].concat();
            let statement_replies = [
                message(b'2', b""),
                message(b'C', b"SELECT 0\0"),
                message(b'Z', b"T"),
            ]
            .concat();
            let opening_replies = [
                message(b'1', b""),
                message(b'2', b""),
                message(b'C', b"BEGIN\0"),
            ]
            .concat();
            server
                .write_all(
                    &[
                        close_replies.as_slice(),
                        &opening_replies,
                        &statement_replies,
                    ]
                    .concat(),
                )
                .await
                .unwrap();
            let expected = [close_replies, statement_replies].concat();
            let mut seen = vec![0; expected.len()];
            client.read_exact(&mut seen).await.unwrap();
            assert_eq!(seen, expected, "unnamed: {unnamed}");
            assert_eq!(state.tx_status(), TxStatus::InTransaction);

            // Nothing armed: writes go straight through again.
            client.write_all(&statement).await.unwrap();
            client.flush().await.unwrap();
            let mut sent = vec![0; statement.len()];
            server.read_exact(&mut sent).await.unwrap();
            assert_eq!(sent, statement);
            assert!(client.rewriting.as_deref().is_none_or(Rewriting::is_idle));
        }
    }

    #[test]
    fn empty_bodies_complete_at_the_header() {
        let state = WireState::default();
        let mut framing = Framing::default();
        framing.feed(&message(b'1', b""), &state);
        framing.feed(&message(b'Z', b"T"), &state);
        assert_eq!(state.tx_status(), TxStatus::InTransaction);
    }
}
