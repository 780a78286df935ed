//! Statements that leave state in a session for the connection's next
//! user, read from what the client sends (`Parse` and `Query` messages, as
//! they go out): a `SET` that is not `LOCAL`, a `RESET`, a temporary
//! table, a session advisory lock, `set_config(.., .., false)`. The
//! replies cannot tell: `SET` and `SET LOCAL` both answer `SET`, the same
//! inside a transaction that then commits (and the session keeps the
//! former), and a `SELECT` that takes a lock or changes a setting answers
//! `SELECT`.
//!
//! Uses: `framing` (message headers), `lex` (what in SQL text is code).

use crate::framing::MessageReader;
use crate::lex;

/// How much of a statement's text is read: enough for any statement that
/// sets something, and a bound on what a long script costs.
const TEXT_READ: usize = 4096;

/// Follows the frontend messages of one connection, from its startup
/// message on, as they go out in pieces split anywhere.
#[derive(Debug, Default)]
pub(crate) struct FrontendScan {
    /// The startup message (a length and a body, no type byte) is behind.
    started: bool,
    /// The startup message's length, as far as it has gone out.
    startup_len: [u8; 4],
    startup_read: usize,
    /// Bytes of the startup message's body still to go out.
    startup_left: usize,
    messages: MessageReader,
}

impl FrontendScan {
    /// Follows `data`, just sent: whether a statement in it leaves state in
    /// the session.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> bool {
        let mut leaves = false;
        while !data.is_empty() {
            if self.startup_left > 0 {
                let n = self.startup_left.min(data.len());
                self.startup_left -= n;
                data = &data[n..];
                continue;
            }
            if !self.started {
                let n = (4 - self.startup_read).min(data.len());
                self.startup_len[self.startup_read..self.startup_read + n]
                    .copy_from_slice(&data[..n]);
                self.startup_read += n;
                data = &data[n..];
                if self.startup_read == 4 {
                    self.started = true;
                    self.startup_left =
                        (u32::from_be_bytes(self.startup_len) as usize).saturating_sub(4);
                }
                continue;
            }
            let n = self
                .messages
                .feed_message(data, holds_sql, TEXT_READ + 256, |kind, body| {
                    leaves |= message_leaves_state(kind, body);
                });
            data = &data[n..];
        }
        leaves
    }
}

/// `Parse` (a statement name, then its text) and `Query` (the text).
fn holds_sql(kind: u8) -> bool {
    matches!(kind, b'P' | b'Q')
}

fn message_leaves_state(kind: u8, body: &[u8]) -> bool {
    let body = if kind == b'P' {
        match body.iter().position(|b| *b == 0) {
            Some(end) => &body[end + 1..],
            None => return false,
        }
    } else {
        body
    };
    let text = &body[..body.len().min(TEXT_READ)];
    let text = &text[..text.iter().position(|b| *b == 0).unwrap_or(text.len())];
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        // Cut inside a character by the bound: what comes before it.
        Err(e) => std::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or_default(),
    };
    leaves_session_state(text)
}

/// Whether SQL text (one statement or a script) leaves state in the
/// session beyond its transaction. `set_config` with a bound third argument
/// counts as local (the row-level security pattern binds `true`).
pub(crate) fn leaves_session_state(sql: &str) -> bool {
    // Most statements have no word starting as these: no need to read them.
    let bytes = sql.as_bytes();
    let mentioned = (0..bytes.len()).any(|at| {
        let starts_word = word_byte(bytes[at]) && (at == 0 || !word_byte(bytes[at - 1]));
        starts_word
            && [&b"SET"[..], b"RESET", b"TEMP", b"PG_", b"HOLD"]
                .iter()
                .any(|word| {
                    bytes[at..]
                        .get(..word.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(word))
                })
    });
    if !mentioned {
        return false;
    }
    // The code with every literal, quoted name and comment blanked, at the
    // same offsets as `sql`: words are read in it, arguments in `sql`.
    let mut code = vec![b' '; bytes.len()];
    for range in lex::code_ranges(sql) {
        code[range.clone()].copy_from_slice(&bytes[range]);
    }
    let code = String::from_utf8_lossy(&code);
    let mut at = 0;
    code.split(';').any(|statement| {
        let from = at;
        at += statement.len() + 1;
        statement_leaves_state(statement, &sql[from..from + statement.len()])
    })
}

/// One statement's `code` (see [`leaves_session_state`]) and its `text`.
fn statement_leaves_state(code: &str, text: &str) -> bool {
    let words: Vec<(&str, usize)> = words(code).collect();
    let word = |i: usize| words.get(i).map_or("", |(w, _)| *w);
    let is = |i: usize, of: &[&str]| of.iter().any(|o| word(i).eq_ignore_ascii_case(o));
    let has = |run: &[&str]| {
        words.windows(run.len()).any(|w| {
            w.iter()
                .zip(run)
                .all(|((word, _), r)| word.eq_ignore_ascii_case(r))
        })
    };
    let temporary = &["TEMP", "TEMPORARY"];
    let first_says = if is(0, &["SET"]) {
        !is(1, &["LOCAL", "TRANSACTION", "CONSTRAINTS"])
    } else if is(0, &["RESET"]) {
        true
    } else if is(0, &["CREATE"]) {
        // CREATE [OR REPLACE] [LOCAL|GLOBAL] TEMP ..., or into `pg_temp`;
        // a table dropped at commit is gone with its transaction.
        let mut at = if is(1, &["OR"]) { 3 } else { 1 };
        if is(at, &["LOCAL", "GLOBAL"]) {
            at += 1;
        }
        (is(at, temporary) || words.iter().any(|(w, _)| w.eq_ignore_ascii_case("pg_temp")))
            && !has(&["ON", "COMMIT", "DROP"])
    } else if is(0, &["SELECT", "WITH"]) {
        // SELECT ... INTO TEMP t: a table named `temp` is only `INTO temp`.
        words.windows(3).any(|w| {
            w[0].0.eq_ignore_ascii_case("INTO")
                && temporary.iter().any(|t| w[1].0.eq_ignore_ascii_case(t))
                && !["FROM", "WHERE"]
                    .iter()
                    .any(|k| w[2].0.eq_ignore_ascii_case(k))
        })
    } else if is(0, &["DECLARE"]) {
        // A cursor held past its transaction.
        has(&["WITH", "HOLD"])
    } else {
        false
    };
    first_says
        || words.iter().any(|&(word, end)| {
            let Some(args) = code[end..].trim_start().strip_prefix('(') else {
                return false;
            };
            let named = |name: &str| word.eq_ignore_ascii_case(name);
            if named("set_config") {
                let args_at = code.len() - args.len();
                // Commas and parentheses read in the code, the value in
                // the text (a quoted `'on'` is blank in the code).
                let third = third_argument(&code[args_at..]);
                return !is_local(&text[args_at + third.start..args_at + third.end]);
            }
            [
                "pg_advisory_lock",
                "pg_advisory_lock_shared",
                "pg_try_advisory_lock",
                "pg_try_advisory_lock_shared",
            ]
            .iter()
            .any(|name| named(name))
        })
}

/// Whether `set_config`'s third argument says the setting ends with its
/// transaction: `true` as PostgreSQL reads a boolean (also quoted, in
/// parentheses or cast), or a bound parameter.
fn is_local(argument: &str) -> bool {
    let mut value = argument.trim();
    loop {
        let before = value;
        if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
            value = inner.trim();
        }
        if let Some(cast) = value.rfind("::") {
            value = value[..cast].trim();
        }
        if value == before {
            break;
        }
    }
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map_or(value, str::trim);
    let bound = value
        .strip_prefix('$')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    bound
        || ["true", "t", "tr", "tru", "yes", "y", "ye", "on", "1"]
            .iter()
            .any(|t| value.eq_ignore_ascii_case(t))
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The words of `code` (identifiers and keywords), each with the offset
/// just past it.
fn words(code: &str) -> impl Iterator<Item = (&str, usize)> {
    let bytes = code.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() && !word_byte(bytes[at]) {
            at += 1;
        }
        let start = at;
        while at < bytes.len() && word_byte(bytes[at]) {
            at += 1;
        }
        (start < at).then(|| (&code[start..at], at))
    })
}

/// Where the third top-level argument of the arguments after a `(` is
/// (empty when there is none).
fn third_argument(args: &str) -> std::ops::Range<usize> {
    let mut depth = 0usize;
    let mut commas = 0;
    let mut start = None;
    for (i, b) in args.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' if depth == 0 => return start.map_or(0..0, |s| s..i),
            b')' => depth -= 1,
            b',' if depth == 0 => {
                commas += 1;
                if commas == 2 {
                    start = Some(i + 1);
                } else if let Some(s) = start {
                    return s..i;
                }
            }
            _ => {}
        }
    }
    start.map_or(0..0, |s| s..args.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::write_message;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_read_without_a_panic_and_as_its_message_says(
            sql in crate::lex::tests::sql_text(),
            split in any::<prop::sample::Index>(),
        ) {
            let leaves = leaves_session_state(&sql);
            if !sql.contains('\0') {
                let bytes = stream(&[(b'Q', &sql)]);
                let at = split.index(bytes.len() + 1);
                let mut scan = FrontendScan::default();
                let seen = scan.feed(&bytes[..at]) | scan.feed(&bytes[at..]);
                prop_assert_eq!(seen, leaves, "{:?}", sql);
            }
        }
    }

    #[test]
    fn statements_that_leave_session_state() {
        for sql in [
            "SET search_path TO app",
            "  set SESSION search_path = app",
            "/* tenant */ SET ROLE app_user",
            "SET SESSION AUTHORIZATION app_user",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "RESET ALL",
            "reset statement_timeout",
            "BEGIN; SET search_path TO app; COMMIT",
            "CREATE TEMP TABLE scratch (id int)",
            "create local temporary table scratch (id int)",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_catalog.pg_try_advisory_lock_shared ($1)",
            "SELECT set_config('app.tenant', $1, false)",
            "SELECT set_config('app.tenant', lower($1), false)",
            "SELECT set_config('app.tenant', $1, 'off')",
            "SELECT set_config('app.tenant', $1, (false)::boolean)",
            "SELECT set_config('app.flags', 'beta,on,x', false)",
            "SELECT set_config('a', 'b')",
            "SELECT * INTO TEMP scratch FROM users",
            "WITH u AS (SELECT 1) SELECT * INTO TEMPORARY TABLE scratch FROM u",
            "CREATE TABLE pg_temp.scratch (id int)",
            "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        ] {
            assert!(leaves_session_state(sql), "{sql}");
        }
    }

    #[test]
    fn statements_that_leave_none() {
        for sql in [
            "SET LOCAL search_path TO app",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET CONSTRAINTS ALL DEFERRED",
            "UPDATE users SET name = $1",
            "SELECT 'SET search_path TO app'",
            "-- SET search_path TO app\nSELECT 1",
            "SELECT $$; RESET ALL$$",
            "SELECT set_config('app.tenant', $1, true)",
            "SELECT set_config('app.tenant', lower($1), TRUE)",
            "SELECT set_config($1, $2, $3)",
            "SELECT set_config('app.tenant', $1, 'on')",
            "SELECT set_config('app.tenant', $1, ('t')::bool)",
            "SELECT set_config('app.flags', 'a,false', true)",
            "CREATE TEMP TABLE staging (id int) ON COMMIT DROP",
            "SELECT id FROM users ORDER BY id OFFSET 10",
            "SELECT * INTO temp FROM users",
            "DECLARE c CURSOR FOR SELECT 1",
            "SELECT current_setting('app.tenant')",
            "SELECT pg_advisory_xact_lock(1)",
            "SELECT pg_advisory_unlock_all()",
            "CREATE TABLE temperatures (id int)",
            "SELECT * FROM settings_temp",
            "SELECT a.pg_advisory_lock FROM a",
            "",
        ] {
            assert!(!leaves_session_state(sql), "{sql}");
        }
    }

    fn stream(statements: &[(u8, &str)]) -> Vec<u8> {
        // A startup message: a length, the protocol version, parameters.
        let mut out = Vec::new();
        let params = b"\0\x03\0\0user\0postgres\0\0";
        out.extend_from_slice(&((params.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(params);
        for &(kind, sql) in statements {
            let text = [sql.as_bytes(), b"\0"].concat();
            match kind {
                b'P' => write_message(&mut out, b'P', &[b"s1\0", &text, &[0, 0]]),
                _ => write_message(&mut out, kind, &[&text]),
            }
            write_message(&mut out, b'S', &[]);
        }
        out
    }

    #[test]
    fn messages_split_anywhere_are_read_whole() {
        for (statements, leaves) in [
            (vec![(b'P', "SELECT 1"), (b'Q', "SET LOCAL x = 1")], false),
            (
                vec![(b'P', "SELECT 1"), (b'P', "SET search_path TO app")],
                true,
            ),
            (vec![(b'Q', "SELECT 1; RESET ALL")], true),
            // A bind's bytes are no SQL, whatever they spell.
            (vec![(b'B', "SET search_path TO app")], false),
        ] {
            let bytes = stream(&statements);
            for split in 0..bytes.len() {
                let mut scan = FrontendScan::default();
                let seen = scan.feed(&bytes[..split]) | scan.feed(&bytes[split..]);
                assert_eq!(seen, leaves, "{statements:?} split at {split}");
            }
            let mut scan = FrontendScan::default();
            let seen = bytes.iter().fold(false, |seen, b| scan.feed(&[*b]) | seen);
            assert_eq!(seen, leaves, "{statements:?} byte by byte");
        }
    }
}
