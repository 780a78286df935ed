//! A transaction's `BEGIN`, sent in the round trip of the transaction's
//! first statement instead of in one of its own.
//!
//! Beginning a transaction sends nothing: the root keeps its `BEGIN` until
//! the first statement runs, and the connection's socket puts it in front
//! of that statement's first message as a `Parse`, `Bind` and `Execute`
//! with no `Sync` of their own ([`messages`]). Up to the statement's
//! `Sync` the server takes the two as one: if the `BEGIN` fails, the
//! server skips the statement, whose caller gets the `BEGIN`'s error, so
//! no statement ever runs outside the transaction it was written in. The
//! replies to the three messages are taken out of what the client reads
//! ([`Replies`]); it sees its own statement's only. A transaction saves a
//! round trip, and one that runs no statement costs none.
//!
//! Uses: `framing` (message layout).

use crate::framing::write_message;

/// The frontend messages that run `begin` (a `BEGIN` statement) without
/// ending the batch: unnamed statement and portal, no parameters, all rows.
pub(crate) fn messages(begin: &str) -> Vec<u8> {
    debug_assert!(begin.starts_with("BEGIN") && !begin.contains('\0'));
    let none = 0i16.to_be_bytes();
    let mut out = Vec::with_capacity(begin.len() + 40);
    // Statement "", the query, no parameter types.
    write_message(&mut out, b'P', &[b"\0", begin.as_bytes(), b"\0", &none]);
    // Portal "", statement "", no formats, no parameters, no result formats.
    write_message(&mut out, b'B', &[b"\0\0", &none, &none, &none]);
    // Portal "", no row limit.
    write_message(&mut out, b'E', &[b"\0", &0i32.to_be_bytes()]);
    out
}

/// The backend's replies to [`messages`], in order, with their whole
/// length: `ParseComplete`, `BindComplete`, `CommandComplete "BEGIN"`.
const REPLIES: [(u8, usize); 3] = [(b'1', 5), (b'2', 5), (b'C', 5 + b"BEGIN\0".len())];

/// The replies to an opening that are still to be taken out of the
/// backend's messages.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// How many of [`REPLIES`] have not arrived yet.
    left: usize,
}

impl Replies {
    /// An opening went out: its replies come next.
    pub(crate) fn expect(&mut self) {
        self.left = REPLIES.len();
    }

    pub(crate) fn pending(&self) -> bool {
        self.left > 0
    }

    /// Called at the start of every backend message while replies are
    /// pending, with its type: how many bytes of it to take out (all of
    /// it, for a reply to the opening), or 0 to let it through.
    pub(crate) fn take(&mut self, kind: u8) -> usize {
        let Some(&(expected, len)) = REPLIES.get(REPLIES.len() - self.left) else {
            return 0;
        };
        if kind == expected {
            self.left -= 1;
            return len;
        }
        // The opening failed (its error goes to the client as its
        // statement's): the server skips to the `Sync`, and no more of its
        // replies come. Anything else passes and changes nothing: notices,
        // and the replies to batches sent before the opening's (a `Close`
        // and `Sync` that the client sent when it dropped a statement).
        if kind == b'E' {
            self.left = 0;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round trips (`ReadyForQuery` messages) on a real server.
    #[tokio::test]
    async fn a_transaction_s_begin_takes_no_round_trip_of_its_own() {
        use std::sync::atomic::Ordering;

        use diesel::IntoSql;
        use diesel::sql_types::Integer;

        let (_db, engine) = crate::engine::tests::connected().await;
        let conn = engine.acquire().await.unwrap();
        let deadline = crate::statement::Deadline::none();
        let wire = {
            let mut slot = conn.root.lock(&deadline).await.unwrap();
            slot.raw_if_any().unwrap().wire.clone()
        };
        let round_trips = |since: &mut u64| {
            let now = wire.readies.load(Ordering::Relaxed);
            std::mem::replace(since, now).abs_diff(now)
        };
        // Bound, not literal: prepared once and cached, so a statement is
        // one round trip (a literal is prepared in one of its own each
        // time, and closed in a third whose reply may come late).
        let one = || conn.one::<i32, _>(diesel::select(1.into_sql::<Integer>()));
        let mut mark = 0;
        one().await.unwrap();
        round_trips(&mut mark);
        one().await.unwrap();
        let statement = round_trips(&mut mark);
        assert_eq!(statement, 1);

        conn.transaction(one()).await.unwrap();
        assert_eq!(
            round_trips(&mut mark),
            statement + 1,
            "the statement with its BEGIN, then COMMIT"
        );

        conn.transaction(async { Ok::<_, crate::Error>(()) })
            .await
            .unwrap();
        assert_eq!(
            round_trips(&mut mark),
            0,
            "nothing ran: nothing to begin or commit"
        );

        conn.transaction(async { conn.transaction(one()).await })
            .await
            .unwrap();
        assert_eq!(
            round_trips(&mut mark),
            statement + 3,
            "BEGIN with the SAVEPOINT, the statement, RELEASE, COMMIT"
        );

        let tx = conn.begin().await.unwrap();
        assert_eq!(round_trips(&mut mark), 0, "begin() sends nothing");
        one().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(round_trips(&mut mark), statement + 1);
        conn.release().await.unwrap();
    }

    #[test]
    fn the_opening_is_parse_bind_execute_without_sync() {
        let out = messages("BEGIN ISOLATION LEVEL SERIALIZABLE");
        let mut kinds = Vec::new();
        let mut rest = &out[..];
        while let Some(header) = rest.first_chunk::<5>() {
            kinds.push(header[0]);
            rest = &rest[5 + crate::framing::body_len(header)..];
        }
        assert_eq!(kinds, b"PBE", "no Sync: the statement's ends the batch");
        assert!(
            out.windows(34)
                .any(|w| w == b"BEGIN ISOLATION LEVEL SERIALIZABLE")
        );
    }

    #[test]
    fn replies_are_taken_in_order_and_an_error_ends_them() {
        let mut replies = Replies::default();
        assert_eq!(replies.take(b'1'), 0, "nothing expected yet");
        replies.expect();
        assert_eq!(replies.take(b'3'), 0, "an earlier batch's CloseComplete");
        assert_eq!(replies.take(b'Z'), 0, "and its ReadyForQuery pass");
        assert_eq!(replies.take(b'N'), 0, "a notice passes");
        assert_eq!(replies.take(b'1'), 5);
        assert_eq!(replies.take(b'2'), 5);
        assert_eq!(replies.take(b'C'), 11);
        assert!(!replies.pending());
        assert_eq!(replies.take(b'1'), 0, "the statement's own ParseComplete");

        replies.expect();
        assert_eq!(replies.take(b'1'), 5);
        assert_eq!(
            replies.take(b'E'),
            0,
            "the BEGIN's error reaches the client"
        );
        assert!(!replies.pending());
        assert_eq!(replies.take(b'2'), 0);
    }
}
