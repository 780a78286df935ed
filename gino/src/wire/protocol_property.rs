//! A property of [`WatchedSocket`] as a whole: whatever statements a client
//! sends (in the shapes tokio-postgres sends them), however the socket
//! splits its writes and the server's replies, with statements named or
//! going unnamed, with openings and row limits armed between statements,
//! the client reads exactly what a server would answer to its own
//! messages with each opening's `BEGIN` in front of the statement it went
//! with, and [`WireState`] records the tag, error and transaction status
//! of that answer. Both sides are played by the same simulated server: one
//! copy answers what the client meant, the other what went over the wire.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Socket, TxStatus, WatchedSocket, WireState};
use crate::framing::{body_len, write_message};

/// A frontend message, as a client means it.
#[derive(Debug, Clone, PartialEq)]
enum Front {
    Parse { name: String, query: String },
    Bind { statement: String },
    DescribeStatement(String),
    DescribePortal,
    Execute { rows: u32 },
    Close(String),
    Sync,
    Query(String),
}

impl Front {
    fn encode(&self, out: &mut Vec<u8>) {
        let cstr = |s: &str| [s.as_bytes(), b"\0"].concat();
        match self {
            Front::Parse { name, query } => write_message(
                out,
                b'P',
                &[
                    &cstr(name),
                    &cstr(query),
                    &1i16.to_be_bytes(),
                    &23i32.to_be_bytes(),
                ],
            ),
            Front::Bind { statement } => write_message(
                out,
                b'B',
                &[
                    b"\0",
                    &cstr(statement),
                    b"\0\0\0\x01\0\0\0\x04\0\0\0\x07\0\0",
                ],
            ),
            Front::DescribeStatement(name) => write_message(out, b'D', &[b"S", &cstr(name)]),
            Front::DescribePortal => write_message(out, b'D', &[b"P\0"]),
            Front::Execute { rows } => write_message(out, b'E', &[b"\0", &rows.to_be_bytes()]),
            Front::Close(name) => write_message(out, b'C', &[b"S", &cstr(name)]),
            Front::Sync => write_message(out, b'S', &[]),
            Front::Query(text) => write_message(out, b'Q', &[&cstr(text)]),
        }
    }

    /// Reads one message as the server does.
    fn decode(kind: u8, body: &[u8]) -> Front {
        let mut fields = body
            .split(|b| *b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let mut field = || fields.next().expect("a C string");
        match kind {
            b'P' => Front::Parse {
                name: field(),
                query: field(),
            },
            b'B' => {
                assert_eq!(field(), "", "the unnamed portal");
                Front::Bind { statement: field() }
            }
            b'D' if body[0] == b'S' => Front::DescribeStatement(field()[1..].to_owned()),
            b'D' => Front::DescribePortal,
            b'E' => {
                let rows = body.last_chunk::<4>().expect("a row limit");
                Front::Execute {
                    rows: u32::from_be_bytes(*rows),
                }
            }
            b'C' => Front::Close(field()[1..].to_owned()),
            b'S' => Front::Sync,
            b'Q' => Front::Query(field()),
            other => panic!("no such frontend message: {:?}", other as char),
        }
    }
}

/// The one-row answers of the simulated server.
mod answer {
    use super::write_message;

    pub(super) fn error(out: &mut Vec<u8>, code: &str) {
        let code = format!("C{code}\0");
        write_message(
            out,
            b'E',
            &[b"SERROR\0VERROR\0", code.as_bytes(), b"Mno\0\0"],
        );
    }

    pub(super) fn tag(out: &mut Vec<u8>, tag: &str) {
        write_message(out, b'C', &[tag.as_bytes(), b"\0"]);
    }

    pub(super) fn empty(out: &mut Vec<u8>, kind: u8) {
        write_message(out, kind, &[]);
    }

    pub(super) fn row_description(out: &mut Vec<u8>) {
        write_message(
            out,
            b'T',
            &[
                b"\0\x01a\0",
                &[0; 6],
                &23i32.to_be_bytes(),
                &4i16.to_be_bytes(),
                &[255; 4],
                &[0; 2],
            ],
        );
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Tx {
    #[default]
    Idle,
    Open,
    Failed,
}

/// A PostgreSQL server as far as this property needs one: statements by
/// name, the unnamed portal, skipping to the `Sync` after an error, and a
/// transaction that `BEGIN` opens, an error fails and `ROLLBACK` ends.
/// Queries holding `FAIL` do not parse; those holding `ERR` fail to run.
#[derive(Debug, Default)]
struct Server {
    statements: BTreeMap<String, String>,
    portal: Option<String>,
    skipping: bool,
    tx: Tx,
}

impl Server {
    fn answer(&mut self, message: &Front, out: &mut Vec<u8>) {
        let result = match message {
            Front::Sync => {
                self.skipping = false;
                self.portal = None;
                return self.ready(out);
            }
            Front::Query(text) => {
                self.skipping = false;
                self.statements.remove("");
                let result = self.run(text, 0, out);
                if let Err(code) = result {
                    self.fail(code, out);
                }
                self.skipping = false;
                return self.ready(out);
            }
            _ if self.skipping => return,
            Front::Close(name) => {
                self.statements.remove(name);
                answer::empty(out, b'3');
                Ok(())
            }
            Front::Parse { name, query } => self.allowed(query).and_then(|()| {
                if query.contains("FAIL") {
                    Err("42601")
                } else if !name.is_empty() && self.statements.contains_key(name) {
                    Err("42P05")
                } else {
                    self.statements.insert(name.clone(), query.clone());
                    answer::empty(out, b'1');
                    Ok(())
                }
            }),
            Front::Bind { statement } => match self.statements.get(statement).cloned() {
                None => Err("26000"),
                Some(query) => self.allowed(&query).map(|()| {
                    self.portal = Some(query);
                    answer::empty(out, b'2');
                }),
            },
            Front::DescribeStatement(name) => match self.statements.get(name) {
                None => Err("26000"),
                Some(_) => {
                    write_message(out, b't', &[&1i16.to_be_bytes(), &23i32.to_be_bytes()]);
                    answer::row_description(out);
                    Ok(())
                }
            },
            Front::DescribePortal => match self.portal {
                None => Err("34000"),
                Some(_) => {
                    answer::row_description(out);
                    Ok(())
                }
            },
            Front::Execute { rows } => match self.portal.clone() {
                None => Err("34000"),
                Some(query) => self.run(&query, *rows, out),
            },
        };
        if let Err(code) = result {
            self.fail(code, out);
        }
    }

    /// In a failed transaction only its end may run.
    fn allowed(&self, query: &str) -> Result<(), &'static str> {
        if self.tx == Tx::Failed && !query.starts_with("ROLLBACK") {
            return Err("25P02");
        }
        Ok(())
    }

    fn run(&mut self, query: &str, rows: u32, out: &mut Vec<u8>) -> Result<(), &'static str> {
        self.allowed(query)?;
        if query.contains("FAIL") {
            return Err("42601");
        }
        if query.contains("ERR") {
            return Err("22012");
        }
        if query.starts_with("BEGIN") {
            if self.tx == Tx::Open {
                write_message(out, b'N', &[b"SWARNING\0VWARNING\0C25001\0Malready\0\0"]);
            }
            self.tx = Tx::Open;
            answer::tag(out, "BEGIN");
        } else if query.starts_with("ROLLBACK") {
            self.tx = Tx::Idle;
            answer::tag(out, "ROLLBACK");
        } else {
            write_message(out, b'D', &[&1i16.to_be_bytes(), &1i32.to_be_bytes(), b"1"]);
            match rows {
                0 => answer::tag(out, "SELECT 1"),
                _ => answer::empty(out, b's'),
            }
        }
        Ok(())
    }

    fn fail(&mut self, code: &str, out: &mut Vec<u8>) {
        answer::error(out, code);
        self.skipping = true;
        if self.tx == Tx::Open {
            self.tx = Tx::Failed;
        }
    }

    fn ready(&self, out: &mut Vec<u8>) {
        let status = match self.tx {
            Tx::Idle => b'I',
            Tx::Open => b'T',
            Tx::Failed => b'E',
        };
        write_message(out, b'Z', &[&[status]]);
    }

    fn status(&self) -> TxStatus {
        match self.tx {
            Tx::Idle => TxStatus::Idle,
            Tx::Open => TxStatus::InTransaction,
            Tx::Failed => TxStatus::Failed,
        }
    }
}

/// The transport under the watched socket: what it wrote, and the replies
/// for it to read, both taken and given in pieces of the sizes scripted.
#[derive(Debug, Default)]
struct Wire {
    sent: Vec<u8>,
    replies: VecDeque<u8>,
    write_sizes: VecDeque<usize>,
    read_sizes: VecDeque<usize>,
}

/// The next of `sizes`, cycled (whole when none are scripted).
fn next_size(sizes: &mut VecDeque<usize>) -> usize {
    let size = sizes.pop_front().unwrap_or(usize::MAX);
    sizes.push_back(size);
    size
}

#[derive(Debug)]
struct Scripted(Arc<Mutex<Wire>>);

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut wire = self.0.lock().unwrap();
        if wire.replies.is_empty() {
            // Everything the server said has been read: the caller stops.
            return Poll::Pending;
        }
        let n = next_size(&mut wire.read_sizes)
            .min(buf.remaining())
            .min(wire.replies.len());
        let piece: Vec<u8> = wire.replies.drain(..n).collect();
        buf.put_slice(&piece);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut wire = self.0.lock().unwrap();
        let n = next_size(&mut wire.write_sizes).min(buf.len());
        wire.sent.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A query: one that runs, one that does not parse, one that fails to
/// run, or the end of a transaction; padded to vary the messages' sizes.
fn query() -> impl Strategy<Value = String> {
    let text = prop::sample::select(&["SELECT 1", "SELECT FAIL", "SELECT ERR", "ROLLBACK"][..]);
    (text, 0..40usize).prop_map(|(text, pad)| format!("{text} {}", "x".repeat(pad)))
}

/// What a client does between two reads of its replies, in the shapes
/// tokio-postgres uses; names are picked among the statements it holds.
#[derive(Debug, Clone)]
enum Op {
    /// `Parse` of a new named statement, `Describe` of it, `Sync`.
    Prepare(String),
    /// `Bind` of a prepared statement, `Execute`, `Sync`.
    Run { pick: usize, rows: u32 },
    /// `Parse`, `Bind`, `Describe` of the portal, `Execute`, `Sync`, all
    /// unnamed (`query_typed`).
    RunUnnamed(String, u32),
    /// `Close` of a statement and `Sync`, written and not waited for (a
    /// dropped statement): what the socket does not take of it goes out in
    /// front of the next statement.
    Close(usize),
    /// A simple query.
    Simple(String),
}

fn op() -> impl Strategy<Value = Op> {
    let rows = prop_oneof![3 => Just(0u32), 1 => 1..5u32];
    prop_oneof![
        query().prop_map(Op::Prepare),
        (any::<usize>(), rows.clone()).prop_map(|(pick, rows)| Op::Run { pick, rows }),
        (query(), rows).prop_map(|(q, rows)| Op::RunUnnamed(q, rows)),
        any::<usize>().prop_map(Op::Close),
        query().prop_map(Op::Simple),
    ]
}

/// One op, and what is armed before it.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// A transaction's opening (failing if it says so).
    opening: Option<&'static str>,
    row_limit: Option<u32>,
}

fn step() -> impl Strategy<Value = Step> {
    let opening = prop::option::weighted(
        0.3,
        prop::sample::select(&["BEGIN", "BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN FAIL"][..]),
    );
    (op(), opening, prop::option::weighted(0.2, 1..3u32)).prop_map(|(op, opening, row_limit)| {
        Step {
            op,
            opening,
            row_limit,
        }
    })
}

/// Reads the complete messages of `bytes` from `*at` on.
fn messages(bytes: &[u8], at: &mut usize) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(header) = bytes[*at..].first_chunk::<5>() {
        let end = *at + 5 + body_len(header);
        if end > bytes.len() {
            break;
        }
        out.push((header[0], bytes[*at + 5..end].to_vec()));
        *at = end;
    }
    out
}

/// What the client meant: its messages with each opening put in front of
/// the first `Parse` or `Bind` after it, and the row limit given to the
/// first `Execute` that has none; the server's answer to them, less the
/// opening's own `ParseComplete`, `BindComplete` and `BEGIN` tag.
#[derive(Debug, Default)]
struct Meant {
    server: Server,
    opening: Option<&'static str>,
    row_limit: Option<u32>,
    sent: Vec<u8>,
    answer: Vec<u8>,
}

impl Meant {
    fn send(&mut self, batch: &[Front]) {
        for message in batch {
            if matches!(message, Front::Parse { .. } | Front::Bind { .. })
                && let Some(begin) = self.opening.take()
            {
                let opening = crate::opening::messages(begin);
                self.sent.extend_from_slice(&opening);
                let mut replies = Vec::new();
                for (kind, body) in messages(&opening, &mut 0) {
                    self.server
                        .answer(&Front::decode(kind, &body), &mut replies);
                }
                for (kind, body) in messages(&replies, &mut 0) {
                    if !matches!(kind, b'1' | b'2' | b'C') {
                        write_message(&mut self.answer, kind, &[&body]);
                    }
                }
            }
            let mut message = message.clone();
            if let Front::Execute { rows: rows @ 0 } = &mut message
                && let Some(limit) = self.row_limit.take()
            {
                *rows = limit;
            }
            message.encode(&mut self.sent);
            self.server.answer(&message, &mut self.answer);
        }
    }
}

/// The last tag and the first error code among `replies`.
fn tag_and_error(replies: &[u8]) -> (Option<String>, Option<String>) {
    let (mut tag, mut error) = (None, None);
    for (kind, body) in messages(replies, &mut 0) {
        let text = || String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
        match kind {
            b'C' => tag = Some(text()),
            b'E' if error.is_none() => error = super::error_field(&body, b'C'),
            _ => {}
        }
    }
    (tag, error)
}

fn poll<T>(f: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    f(&mut Context::from_waker(Waker::noop()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_client_reads_what_the_server_answered_to_its_own_statements(
        unnamed in any::<bool>(),
        steps in prop::collection::vec(step(), 1..14),
        write_sizes in prop::collection::vec(1..48usize, 1..8),
        read_sizes in prop::collection::vec(1..48usize, 1..8),
        buffer_sizes in prop::collection::vec(1..64usize, 1..8),
    ) {
        let wire = Arc::new(Mutex::new(Wire {
            write_sizes: write_sizes.into(),
            read_sizes: read_sizes.into(),
            ..Wire::default()
        }));
        let state = Arc::new(WireState::default());
        if unnamed {
            state.use_unnamed_statements();
        }
        let scripted = Socket::Scripted(Box::new(Scripted(wire.clone())));
        let mut socket = WatchedSocket::new(scripted, state.clone(), None);
        let mut buffer_sizes: VecDeque<usize> = buffer_sizes.into();

        let mut meant = Meant::default();
        let mut server = Server::default();
        let (mut parsed, mut answered) = (0, 0);
        let mut unwritten = Vec::new();
        let mut read = Vec::new();
        let mut next_name = 0;
        for step in steps {
            let statements: Vec<String> = meant
                .server
                .statements
                .keys()
                .filter(|name| !name.is_empty())
                .cloned()
                .collect();
            let picked = |pick: usize| statements.get(pick % statements.len().max(1)).cloned();
            let batch = match &step.op {
                Op::Prepare(query) => {
                    next_name += 1;
                    let name = format!("s{next_name}");
                    vec![
                        Front::Parse { name: name.clone(), query: query.clone() },
                        Front::DescribeStatement(name),
                        Front::Sync,
                    ]
                }
                Op::Run { pick, rows } => match picked(*pick) {
                    Some(statement) => {
                        vec![Front::Bind { statement }, Front::Execute { rows: *rows }, Front::Sync]
                    }
                    None => continue,
                },
                Op::RunUnnamed(query, rows) => vec![
                    Front::Parse { name: String::new(), query: query.clone() },
                    Front::Bind { statement: String::new() },
                    Front::DescribePortal,
                    Front::Execute { rows: *rows },
                    Front::Sync,
                ],
                Op::Close(pick) => vec![
                    Front::Close(picked(*pick).unwrap_or_else(|| "never".to_owned())),
                    Front::Sync,
                ],
                Op::Simple(query) => vec![Front::Query(query.clone())],
            };
            let waits = !matches!(step.op, Op::Close(_));
            if waits {
                state.begin_statement();
            }
            // A row limit is a statement's; a close is none.
            let row_limit = step.row_limit.filter(|_| waits);
            let limit = row_limit.map(|rows| state.limit_rows(rows));
            meant.row_limit = row_limit;
            if let Some(begin) = step.opening {
                state.arm_opening(begin);
                meant.opening = Some(begin);
            }
            meant.send(&batch);

            // The client's buffer: what the socket left of the last write,
            // then this batch; a dropped statement's close is written once
            // and not waited for.
            for message in &batch {
                message.encode(&mut unwritten);
            }
            loop {
                let Poll::Ready(n) = poll(|cx| Pin::new(&mut socket).poll_write(cx, &unwritten)) else {
                    panic!("the socket never waits for this transport");
                };
                unwritten.drain(..n.unwrap());
                if unwritten.is_empty() || !waits {
                    break;
                }
            }
            // The guard disarms what no `Execute` took, as it does after a
            // statement.
            drop(limit);
            meant.row_limit = None;
            if !waits {
                continue;
            }
            let flushed = poll(|cx| Pin::new(&mut socket).poll_flush(cx));
            prop_assert!(matches!(flushed, Poll::Ready(Ok(()))), "{:?}", flushed);

            // The server answers what reached it.
            let mut wire_now = wire.lock().unwrap();
            let arrived = messages(&wire_now.sent, &mut parsed);
            let mut replies = Vec::new();
            for (kind, body) in arrived {
                let message = Front::decode(kind, &body);
                if unnamed {
                    match &message {
                        Front::Parse { name, .. } => prop_assert_eq!(name, ""),
                        Front::Bind { statement } => prop_assert_eq!(statement, ""),
                        _ => {}
                    }
                }
                server.answer(&message, &mut replies);
            }
            wire_now.replies.extend(replies);
            if !unnamed {
                prop_assert_eq!(&wire_now.sent, &meant.sent, "named: sent as meant");
            }
            drop(wire_now);

            // The client reads until nothing is left.
            loop {
                let size = next_size(&mut buffer_sizes);
                let mut space = vec![0; size];
                let mut buf = ReadBuf::new(&mut space);
                match poll(|cx| Pin::new(&mut socket).poll_read(cx, &mut buf)) {
                    Poll::Ready(result) => {
                        result.unwrap();
                        prop_assert!(!buf.filled().is_empty(), "no end of stream");
                        read.extend_from_slice(buf.filled());
                    }
                    Poll::Pending => break,
                }
            }
            prop_assert_eq!(
                messages(&read, &mut 0),
                messages(&meant.answer, &mut 0),
                "the replies of {:?}",
                step
            );
            prop_assert_eq!(read.len(), meant.answer.len());
            let (tag, error) = tag_and_error(&meant.answer[answered..]);
            answered = meant.answer.len();
            prop_assert_eq!(state.tag(), tag);
            prop_assert_eq!(state.error_code(), error);
            prop_assert_eq!(state.tx_status(), meant.server.status());
            prop_assert_eq!(server.status(), meant.server.status());
        }
    }
}
