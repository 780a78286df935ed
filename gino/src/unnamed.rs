//! Statements without names, each in one round trip: what a connection
//! does with the statement cache off, so that it works through poolers
//! that hand each round trip to whichever server connection is free
//! (PgBouncer's transaction mode before 1.21, and its kin).
//!
//! diesel-async prepares every statement as a named one in a round trip of
//! its own (`Parse "s3"`, `Describe`, `Sync`) and runs it in the next
//! (`Bind "s3"`, `Execute`, `Sync`). Behind such a pooler the second round
//! trip may reach a server that never saw `s3`, and two clients' `s3` may
//! meet on one server. [`Rewriter`] rewrites the protocol on its way
//! through the connection's socket instead: every `Parse` creates the
//! unnamed statement, every `Bind` of a named one is preceded by the
//! `Parse` it needs (so the round trip that runs a statement carries it),
//! and the `ParseComplete` answering such an added `Parse` is taken out of
//! the replies again. The statement's text and parameter types are
//! remembered by name until its `Close`.
//!
//! The same walk over the frontend messages puts a transaction's opening
//! `BEGIN` in front of the first message of the statement it goes with
//! ([`crate::opening`]), on every connection while one waits.
//!
//! Uses: `framing` (message headers); `wire` runs it on the bytes of a socket.

use std::collections::{HashMap, VecDeque};

use crate::framing::{Header, HeaderReader, body_len, split_cstr, write_message};

/// Rewrites the frontend messages of one connection and filters the
/// backend messages answering them. Used only after the startup, so every
/// message it sees has a type byte.
#[derive(Debug, Default)]
pub(crate) struct Rewriter {
    /// Bytes of a frontend message not yet complete.
    partial: Vec<u8>,
    /// Per statement name: the rest of its `Parse` after the name (query,
    /// parameter count and types).
    statements: HashMap<Vec<u8>, Vec<u8>>,
    /// Per `Parse` written since the last `Sync`: whether its
    /// `ParseComplete` goes to the client.
    batch: VecDeque<bool>,
    /// The same for batches already ended by a `Sync` (or a simple query),
    /// oldest first; each `ReadyForQuery` ends the oldest.
    sent: VecDeque<VecDeque<bool>>,
    /// The header of a backend message being read.
    header: HeaderReader,
    /// Body bytes of the current backend message still to pass through.
    passing: usize,
}

impl Rewriter {
    /// Takes frontend bytes as the client writes them and appends what is
    /// to be sent instead to `out`; an incomplete message waits for the
    /// rest. Statements go unnamed if `unnamed`; `opening` is asked at the
    /// first message of every statement for an opening to put in front of
    /// it, `row_limit` at every `Execute` without a row limit for one to
    /// give it. Returns whether an opening went out.
    pub(crate) fn outgoing(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        unnamed: bool,
        opening: &mut dyn FnMut() -> Option<Vec<u8>>,
        row_limit: &mut dyn FnMut() -> Option<u32>,
    ) -> bool {
        self.partial.extend_from_slice(data);
        let mut start = 0;
        let mut opened = false;
        while let Some(len) = message_len(&self.partial[start..]) {
            let mut message = self.partial[start..start + len].to_vec();
            // `Execute`: portal name, then the row limit (0 for all rows).
            if message[0] == b'E'
                && let Some(max_rows) = message.last_chunk_mut::<4>()
                && *max_rows == [0; 4]
                && let Some(rows) = row_limit()
            {
                *max_rows = rows.min(i32::MAX as u32).to_be_bytes();
            }
            // A statement starts with its `Parse` (prepared, or run
            // unnamed) or its `Bind` (prepared before).
            if matches!(message[0], b'P' | b'B')
                && let Some(begin) = opening()
            {
                out.extend_from_slice(&begin);
                if unnamed {
                    // Its `ParseComplete` is the client's business (the
                    // socket takes it out), not this rewriter's.
                    self.batch.push_back(true);
                }
                opened = true;
            }
            if unnamed {
                self.rewrite(&message, out);
            } else {
                out.extend_from_slice(&message);
            }
            start += len;
        }
        self.partial.drain(..start);
        opened
    }

    /// Whether no frontend message is half-taken.
    pub(crate) fn is_between_messages(&self) -> bool {
        self.partial.is_empty()
    }

    fn rewrite(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let kind = message[0];
        let body = &message[5..];
        match kind {
            b'P' => {
                let (name, rest) = split_cstr(body);
                if !name.is_empty() {
                    self.statements.insert(name.to_vec(), rest.to_vec());
                }
                self.batch.push_back(true);
                write_message(out, b'P', &[b"\0", rest]);
            }
            b'B' => {
                let (portal, after_portal) = split_cstr(body);
                let (statement, rest) = split_cstr(after_portal);
                match self.statements.get(statement) {
                    Some(parse) if !statement.is_empty() => {
                        write_message(out, b'P', &[b"\0", parse]);
                        self.batch.push_back(false);
                        write_message(out, b'B', &[portal, b"\0\0", rest]);
                    }
                    _ => out.extend_from_slice(message),
                }
            }
            b'D' | b'C' if body.first() == Some(&b'S') => {
                let (name, _) = split_cstr(&body[1..]);
                if !self.statements.contains_key(name) {
                    out.extend_from_slice(message);
                    return;
                }
                if kind == b'C' {
                    self.statements.remove(name);
                }
                write_message(out, kind, &[b"S\0"]);
            }
            // A simple query (or function call) ends with its own
            // `ReadyForQuery`, as a `Sync` does.
            b'S' | b'Q' | b'F' => {
                let batch = std::mem::take(&mut self.batch);
                self.sent.push_back(batch);
                out.extend_from_slice(message);
            }
            _ => out.extend_from_slice(message),
        }
    }

    /// Takes backend bytes as they arrive and appends what the client is to
    /// see to `out`: everything but the `ParseComplete` of an added
    /// `Parse`. Bodies pass through as they come, unbuffered.
    pub(crate) fn incoming(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.passing > 0 {
                let n = self.passing.min(data.len());
                out.extend_from_slice(&data[..n]);
                self.passing -= n;
                data = &data[n..];
                continue;
            }
            let Some(header) = self.header.take(&mut data) else {
                continue;
            };
            if self.deliver(header[0]) {
                out.extend_from_slice(&header);
                self.passing = body_len(&header);
            } else {
                // A `ParseComplete` has no body.
                self.passing = 0;
            }
        }
    }

    /// Whether a backend message of type `kind` goes to the client.
    fn deliver(&mut self, kind: u8) -> bool {
        match kind {
            b'1' => self
                .sent
                .front_mut()
                .and_then(VecDeque::pop_front)
                .unwrap_or(true),
            // After an error the server skips to the `Sync`: the batch ends
            // here whatever of it was answered.
            b'Z' => {
                self.sent.pop_front();
                true
            }
            _ => true,
        }
    }
}

/// The length of the first complete frontend message of `data`.
fn message_len(data: &[u8]) -> Option<usize> {
    let header: &Header = data.get(..5)?.try_into().ok()?;
    let len = 5 + body_len(header);
    (data.len() >= len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_message(&mut out, kind, parts);
        out
    }

    fn parse(name: &[u8]) -> Vec<u8> {
        message(b'P', &[name, b"\0SELECT $1\0\0\x01\0\0\0\x17"])
    }

    fn bind(statement: &[u8]) -> Vec<u8> {
        message(
            b'B',
            &[b"\0", statement, b"\0\0\0\0\x01\0\0\0\x04\0\0\0\x07\0\0"],
        )
    }

    const SYNC: &[u8] = b"S\0\0\0\x04";
    const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
    const BIND_COMPLETE: &[u8] = b"2\0\0\0\x04";
    const READY: &[u8] = b"Z\0\0\0\x05I";

    #[test]
    fn a_named_statement_is_parsed_again_where_it_runs() {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        // Prepare round trip, written in two pieces.
        let prepare = [parse(b"s0"), message(b'D', &[b"Ss0\0"]), SYNC.to_vec()].concat();
        r.outgoing(&prepare[..7], &mut out, true, &mut || None, &mut || None);
        assert!(out.is_empty(), "an incomplete message waits");
        r.outgoing(&prepare[7..], &mut out, true, &mut || None, &mut || None);
        assert_eq!(
            out,
            [parse(b""), message(b'D', &[b"S\0"]), SYNC.to_vec()].concat()
        );
        // Its replies reach the client untouched.
        let replies = [PARSE_COMPLETE, READY].concat();
        let mut seen = Vec::new();
        r.incoming(&replies, &mut seen);
        assert_eq!(seen, replies);

        // Run round trip: the Parse goes along, its ParseComplete does not
        // come back.
        out.clear();
        r.outgoing(
            &[bind(b"s0"), SYNC.to_vec()].concat(),
            &mut out,
            true,
            &mut || None,
            &mut || None,
        );
        assert_eq!(out, [parse(b""), bind(b""), SYNC.to_vec()].concat());
        let replies = [PARSE_COMPLETE, BIND_COMPLETE, READY].concat();
        seen.clear();
        // One byte at a time: headers are split anywhere.
        for byte in &replies {
            r.incoming(std::slice::from_ref(byte), &mut seen);
        }
        assert_eq!(seen, [BIND_COMPLETE, READY].concat());

        // Closing forgets it.
        out.clear();
        r.outgoing(
            &message(b'C', &[b"Ss0\0"]),
            &mut out,
            true,
            &mut || None,
            &mut || None,
        );
        assert_eq!(out, message(b'C', &[b"S\0"]));
        assert!(r.statements.is_empty());
    }

    #[test]
    fn an_error_ends_the_batch_and_later_replies_stay_in_step() {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        r.outgoing(
            &[parse(b"s1"), SYNC.to_vec()].concat(),
            &mut out,
            true,
            &mut || None,
            &mut || None,
        );
        r.incoming(&[PARSE_COMPLETE, READY].concat(), &mut Vec::new());
        // The added Parse fails: no ParseComplete, an error, then Ready.
        r.outgoing(
            &[bind(b"s1"), SYNC.to_vec()].concat(),
            &mut out,
            true,
            &mut || None,
            &mut || None,
        );
        let error = message(b'E', &[b"C42P01\0\0"]);
        let mut seen = Vec::new();
        r.incoming(&[error.as_slice(), READY].concat(), &mut seen);
        assert_eq!(seen, [error.as_slice(), READY].concat());
        // The next run's added ParseComplete is still taken out.
        r.outgoing(
            &[bind(b"s1"), SYNC.to_vec()].concat(),
            &mut out,
            true,
            &mut || None,
            &mut || None,
        );
        seen.clear();
        r.incoming(&[PARSE_COMPLETE, BIND_COMPLETE, READY].concat(), &mut seen);
        assert_eq!(seen, [BIND_COMPLETE, READY].concat());
    }

    #[test]
    fn other_messages_and_bodies_pass_through() {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        let query = message(b'Q', &[b"SELECT 1\0"]);
        r.outgoing(&query, &mut out, true, &mut || None, &mut || None);
        assert_eq!(out, query);
        let row = message(b'D', &[b"\0\x01\0\0\0\x011"]);
        let replies = [row.as_slice(), READY].concat();
        let mut seen = Vec::new();
        r.incoming(&replies[..3], &mut seen);
        r.incoming(&replies[3..], &mut seen);
        assert_eq!(seen, replies);
        // A Bind of the unnamed statement is left alone.
        out.clear();
        r.outgoing(&bind(b""), &mut out, true, &mut || None, &mut || None);
        assert_eq!(out, bind(b""));
    }

    #[test]
    fn a_row_limit_goes_to_the_next_execute_without_one_only() {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        let execute = |rows: i32| message(b'E', &[b"\0", &rows.to_be_bytes()]);
        let mut limit = Some(1);
        let batch = [bind(b""), execute(0), SYNC.to_vec()].concat();
        // Split inside the Execute: the limit waits for the whole message.
        r.outgoing(
            &batch[..batch.len() - 7],
            &mut out,
            false,
            &mut || None,
            &mut || limit.take(),
        );
        r.outgoing(
            &batch[batch.len() - 7..],
            &mut out,
            false,
            &mut || None,
            &mut || limit.take(),
        );
        assert_eq!(out, [bind(b""), execute(1), SYNC.to_vec()].concat());
        assert_eq!(limit, None, "taken once");

        // An Execute with a limit of its own keeps it, and the armed one
        // waits for the next.
        out.clear();
        let mut limit = Some(2);
        let batch = [execute(5), execute(0), execute(0)].concat();
        r.outgoing(&batch, &mut out, false, &mut || None, &mut || limit.take());
        assert_eq!(out, [execute(5), execute(2), execute(0)].concat());
    }
}
