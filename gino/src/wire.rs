//! Opening connections, and watching the PostgreSQL protocol on them.
//!
//! diesel's error type does not carry the SQLSTATE, diesel's `execute`
//! returns only a row count, not PostgreSQL's command tag, and nothing in the
//! stack says whether the server still thinks a transaction is open. All three
//! travel on the wire, so gino reads them there: every connection's socket is
//! wrapped in a [`WatchedSocket`] that follows the framing of the backend
//! messages (a type byte and a length, then the body) and records the
//! `ErrorResponse` code, the `CommandComplete` tag and the `ReadyForQuery`
//! transaction status. Other messages, data rows included, are skipped by
//! their length without being copied.
//!
//! Uses: `error` only.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;

use crate::error::{Error, Result};

/// What a connection's socket has seen of the backend's messages.
#[derive(Debug, Default)]
pub(crate) struct WireState {
    seen: Mutex<Seen>,
    closed: AtomicBool,
    /// Woken by every `ReadyForQuery` and when the connection closes.
    ready: tokio::sync::Notify,
}

#[derive(Debug)]
struct Seen {
    /// SQLSTATE of the first `ErrorResponse` since the last `begin_statement`.
    error_code: Option<String>,
    /// Tag of the last `CommandComplete` since the last `begin_statement`.
    tag: Option<String>,
    /// Status byte of the last `ReadyForQuery`: `I` idle, `T` in a
    /// transaction, `E` in a failed transaction.
    tx_status: u8,
    /// An `ErrorResponse` arrived and the `ReadyForQuery` that follows it
    /// has not yet.
    error_unsettled: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            error_code: None,
            tag: None,
            tx_status: b'I',
            error_unsettled: false,
        }
    }
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

    /// Forgets the error code and tag of earlier statements.
    pub(crate) fn begin_statement(&self) {
        let mut seen = self.lock();
        seen.error_code = None;
        seen.tag = None;
    }

    /// Whether the task driving the socket has ended (server gone).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub(crate) fn error_code(&self) -> Option<String> {
        self.lock().error_code.clone()
    }

    pub(crate) fn tag(&self) -> Option<String> {
        self.lock().tag.clone()
    }

    pub(crate) fn tx_status(&self) -> TxStatus {
        match self.lock().tx_status {
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
            if !self.lock().error_unsettled || self.is_closed() {
                return;
            }
            ready.await;
        }
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_waiters();
    }

    fn record(&self, kind: u8, body: &[u8]) {
        let mut seen = self.lock();
        match kind {
            b'E' => {
                seen.error_unsettled = true;
                if seen.error_code.is_none() {
                    seen.error_code = error_field(body, b'C');
                }
            }
            b'C' => seen.tag = Some(cstr(body)),
            b'Z' => {
                seen.tx_status = body.first().copied().unwrap_or(b'I');
                seen.error_unsettled = false;
                drop(seen);
                self.ready.notify_waiters();
            }
            _ => {}
        }
    }
}

fn cstr(body: &[u8]) -> String {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
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

/// Incremental parser of the backend message framing.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; 5],
    header_len: usize,
    remaining: usize,
    body: Vec<u8>,
}

impl Framing {
    fn interesting(kind: u8) -> bool {
        matches!(kind, b'E' | b'C' | b'Z')
    }

    fn feed(&mut self, mut data: &[u8], state: &WireState) {
        while !data.is_empty() {
            if self.header_len < 5 {
                let n = (5 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len == 5 {
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]) as usize;
                    self.remaining = len.saturating_sub(4);
                    self.body.clear();
                    if self.remaining == 0 {
                        self.finish(state);
                    }
                }
            } else {
                let n = self.remaining.min(data.len());
                if Self::interesting(self.header[0]) {
                    self.body.extend_from_slice(&data[..n]);
                }
                self.remaining -= n;
                data = &data[n..];
                if self.remaining == 0 {
                    self.finish(state);
                }
            }
        }
    }

    fn finish(&mut self, state: &WireState) {
        if Self::interesting(self.header[0]) {
            state.record(self.header[0], &self.body);
        }
        self.header_len = 0;
    }
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A socket whose incoming bytes are followed by [`Framing`].
#[derive(Debug)]
pub(crate) struct WatchedSocket {
    socket: Socket,
    framing: Framing,
    state: Arc<WireState>,
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for WatchedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.socket).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.framing.feed(&buf.filled()[before..], &this.state);
        }
        poll
    }
}

impl AsyncWrite for WatchedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

/// Where a connection's server lives, kept for cancel requests, which
/// PostgreSQL takes on a separate connection.
#[derive(Debug, Clone)]
pub(crate) enum ServerAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl ServerAddr {
    async fn open(&self) -> io::Result<Socket> {
        match self {
            ServerAddr::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                // Queries are small request/response exchanges: Nagle's
                // algorithm would add its delay to every one of them.
                stream.set_nodelay(true)?;
                Ok(Socket::Tcp(stream))
            }
            ServerAddr::Unix(path) => Ok(Socket::Unix(UnixStream::connect(path).await?)),
        }
    }

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
        let mut socket = self
            .open()
            .await
            .map_err(|e| Error::Connection(format!("cannot send cancel request: {e}")))?;
        token
            .cancel_query_raw(&mut socket, tokio_postgres::NoTls)
            .await
            .map_err(Error::from_postgres)?;
        // The server sends nothing; an error means it is gone, which ends
        // the wait as well.
        let _ = socket.read_to_end(&mut Vec::new()).await;
        Ok(())
    }
}

/// A freshly opened connection: the client, the task that drives its
/// socket, and what the socket sees.
pub(crate) struct Opened {
    pub(crate) client: tokio_postgres::Client,
    pub(crate) addr: ServerAddr,
    pub(crate) state: Arc<WireState>,
}

/// Opens a watched connection to the first reachable host of `config`.
pub(crate) async fn open(config: &tokio_postgres::Config) -> Result<Opened> {
    let ports = config.get_ports();
    let mut last_error = None;
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let candidates = match resolve(host, port).await {
            Ok(c) => c,
            Err(e) => {
                last_error = Some(Error::Connection(format!("cannot resolve {host:?}: {e}")));
                continue;
            }
        };
        for addr in candidates {
            let connect = addr.open();
            let socket = match config.get_connect_timeout() {
                Some(t) => match tokio::time::timeout(*t, connect).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                },
                None => connect.await,
            };
            let socket = match socket {
                Ok(s) => s,
                Err(e) => {
                    last_error = Some(Error::Connection(format!(
                        "cannot connect to {}: {e}; is the PostgreSQL server running there?",
                        describe(&addr)
                    )));
                    continue;
                }
            };
            let state = Arc::new(WireState::default());
            let watched = WatchedSocket {
                socket,
                framing: Framing::default(),
                state: state.clone(),
            };
            let (client, connection) = config
                .connect_raw(watched, tokio_postgres::NoTls)
                .await
                .map_err(Error::from_postgres)?;
            let driven = state.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(target: "gino", "connection closed with error: {e}");
                }
                driven.mark_closed();
            });
            return Ok(Opened {
                client,
                addr,
                state,
            });
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Configuration("no host to connect to".to_owned())))
}

fn describe(addr: &ServerAddr) -> String {
    match addr {
        ServerAddr::Tcp(a) => a.to_string(),
        ServerAddr::Unix(p) => p.display().to_string(),
    }
}

async fn resolve(host: &Host, port: u16) -> io::Result<Vec<ServerAddr>> {
    match host {
        Host::Tcp(name) => Ok(tokio::net::lookup_host((name.as_str(), port))
            .await?
            .map(ServerAddr::Tcp)
            .collect()),
        Host::Unix(dir) => Ok(vec![ServerAddr::Unix(dir.join(format!(".s.PGSQL.{port}")))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn empty_bodies_complete_at_the_header() {
        let state = WireState::default();
        let mut framing = Framing::default();
        framing.feed(&message(b'1', b""), &state);
        framing.feed(&message(b'Z', b"T"), &state);
        assert_eq!(state.tx_status(), TxStatus::InTransaction);
    }
}
