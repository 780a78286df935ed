//! Statements that leave state in a session for the connection's next
//! user, read from what the client sends (`Parse` and `Query` messages, as
//! they go out): a `SET` that is not `LOCAL`, a `RESET`, a temporary
//! table, a session advisory lock, `set_config(.., .., false)`. The
//! replies cannot tell: `SET` and `SET LOCAL` both answer `SET`, the same
//! inside a transaction that then commits (and the session keeps the
//! former), and a `SELECT` that takes a lock or changes a setting answers
//! `SELECT`. A `set_config` whose third argument is bound is read from the
//! value each `Bind` of its statement sends. What the text does not show
//! (a `DO` block or a function that changes a setting) is seen only for
//! the settings the server reports, by their `ParameterStatus` (in `wire`).
//!
//! Uses: `framing` (message headers), `lex` (what in SQL text is code).

use std::collections::HashMap;

use crate::framing::{MessageReader, split_cstr};
use crate::lex;

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
    /// Prepared statements (by name; the unnamed one is `""`) that call
    /// `set_config` with its third argument bound: the parameters, from
    /// 0, whose values say whether the setting ends with its transaction.
    /// Nearly always empty, and then no `Bind` is read.
    bound_local: HashMap<Vec<u8>, Vec<u16>>,
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
            // One message per call: a `Parse` that changes the statements
            // to watch has been read before the next message's header.
            let watch_binds = !self.bound_local.is_empty();
            let bound_local = &mut self.bound_local;
            let n = self.messages.feed_message(
                data,
                |kind| holds_sql(kind) || (watch_binds && kind == b'B'),
                // Every statement of a script is read, however long: a
                // temporary table after 4 KB of other statements is left
                // to the next user as much as one at the start.
                usize::MAX,
                |kind, body| {
                    leaves |= match kind {
                        b'B' => bind_leaves_state(body, bound_local),
                        _ => message_leaves_state(kind, body, bound_local),
                    };
                },
            );
            data = &data[n..];
        }
        leaves
    }
}

/// `Parse` (a statement name, then its text) and `Query` (the text).
fn holds_sql(kind: u8) -> bool {
    matches!(kind, b'P' | b'Q')
}

/// Whether a `Parse` or `Query` leaves state; a `Parse` whose
/// `set_config` takes a bound third argument is noted in `bound_local`.
fn message_leaves_state(
    kind: u8,
    body: &[u8],
    bound_local: &mut HashMap<Vec<u8>, Vec<u16>>,
) -> bool {
    let (name, body) = match kind {
        b'P' => {
            let (name, rest) = split_cstr(body);
            (Some(name), rest)
        }
        _ => (None, body),
    };
    let (text, _) = split_cstr(body);
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        // The server refuses text that is not UTF-8 (a client encoding of
        // UTF8 is what gino sets): what comes before it is all that runs.
        Err(e) => std::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or_default(),
    };
    let (leaves, bound) = scan(text);
    if let Some(name) = name {
        // A statement parsed again under a name replaces the one before.
        if bound.is_empty() {
            if !bound_local.is_empty() {
                bound_local.remove(name);
            }
        } else {
            bound_local.insert(name.to_vec(), bound);
        }
    }
    leaves
}

/// Whether a `Bind` of a statement noted in `bound_local` binds a value
/// that makes its `set_config` last the session: false, NULL (which
/// PostgreSQL takes as false), or a value the message does not hold.
fn bind_leaves_state(body: &[u8], bound_local: &HashMap<Vec<u8>, Vec<u16>>) -> bool {
    let (_portal, after_portal) = split_cstr(body);
    let (statement, rest) = split_cstr(after_portal);
    let Some(parameters) = bound_local.get(statement) else {
        return false;
    };
    let values = bind_values(rest);
    parameters
        .iter()
        .any(|&at| match values.get(usize::from(at)) {
            Some((true, Some(value))) => value.first().is_none_or(|b| *b == 0),
            Some((false, Some(value))) => {
                !std::str::from_utf8(value).is_ok_and(|v| says_true(v.trim()))
            }
            // NULL, or not read.
            _ => true,
        })
}

/// The values of a `Bind`'s parameters after its statement's name, each
/// with whether it is sent binary (`None` for NULL), as far as `rest`
/// holds them.
fn bind_values(mut rest: &[u8]) -> Vec<(bool, Option<&[u8]>)> {
    fn take<'b>(rest: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
        let (taken, after) = rest.split_at_checked(n)?;
        *rest = after;
        Some(taken)
    }
    fn int16(rest: &mut &[u8]) -> Option<usize> {
        take(rest, 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    let mut values = Vec::new();
    let Some(format_count) = int16(&mut rest) else {
        return values;
    };
    let mut formats = Vec::with_capacity(format_count);
    for _ in 0..format_count {
        let Some(format) = int16(&mut rest) else {
            return values;
        };
        formats.push(format == 1);
    }
    let Some(count) = int16(&mut rest) else {
        return values;
    };
    for at in 0..count {
        // No codes: all text; one: every parameter's; else one each.
        let binary = match formats.as_slice() {
            [] => false,
            [only] => *only,
            each => each.get(at).copied().unwrap_or(false),
        };
        let Some(len) = take(&mut rest, 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        let Ok(len) = usize::try_from(len) else {
            values.push((binary, None));
            continue;
        };
        match take(&mut rest, len) {
            Some(value) => values.push((binary, Some(value))),
            None => break,
        }
    }
    values
}

/// Whether SQL text (one statement or a script) leaves state in the
/// session beyond its transaction, and the parameters (from 0) bound as a
/// `set_config`'s third argument, whose values decide ([`FrontendScan`]
/// reads them from the statement's `Bind`s).
fn scan(sql: &str) -> (bool, Vec<u16>) {
    let mut bound = Vec::new();
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
        return (false, bound);
    }
    // The code with every literal and comment blanked and each quoted name
    // unquoted (`"set_config"` is `set_config`), at the same offsets as
    // `sql`: words are read in it, arguments in `sql`.
    let code = lex::map_opaque(sql, |_, span| {
        Some(match lex::quoted_identifier(span) {
            Some((name, "")) if name.bytes().all(word_byte) => format!(" {name} "),
            _ => " ".repeat(span.len()),
        })
    });
    let mut at = 0;
    let leaves = code.split(';').any(|statement| {
        let from = at;
        at += statement.len() + 1;
        statement_leaves_state(statement, &sql[from..from + statement.len()], &mut bound)
    });
    (leaves, bound)
}

/// One statement's `code` (see [`scan`]) and its `text`;
/// a `set_config`'s bound third argument is added to `bound`.
fn statement_leaves_state(code: &str, text: &str, bound: &mut Vec<u16>) -> bool {
    let words: Vec<(&str, usize)> = words(code).collect();
    // EXPLAIN ANALYZE runs the statement it explains: read from there.
    let explained = if words
        .first()
        .is_some_and(|(w, _)| w.eq_ignore_ascii_case("EXPLAIN"))
    {
        let runs = ["SELECT", "WITH", "CREATE", "DECLARE", "EXECUTE"];
        words
            .iter()
            .position(|(w, _)| runs.iter().any(|r| w.eq_ignore_ascii_case(r)))
            .unwrap_or(0)
    } else {
        0
    };
    let word = |i: usize| words.get(explained + i).map_or("", |(w, _)| *w);
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
        // CREATE [OR REPLACE] [LOCAL|GLOBAL] TEMP ..., or into `pg_temp`
        // (a name it qualifies, not `pg_temp` in a function's
        // `SET search_path`); a table dropped at commit is gone with its
        // transaction.
        let mut at = if is(1, &["OR"]) { 3 } else { 1 };
        if is(at, &["LOCAL", "GLOBAL"]) {
            at += 1;
        }
        let into_pg_temp = words.iter().any(|(w, end)| {
            w.eq_ignore_ascii_case("pg_temp") && code[*end..].trim_start().starts_with('.')
        });
        (is(at, temporary) || into_pg_temp) && !has(&["ON", "COMMIT", "DROP"])
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
    // PostgreSQL's documented equivalent of `SET`, also inside a `WITH`.
    let sets_settings = words.iter().enumerate().any(|(at, (word, _))| {
        // UPDATE [ONLY] [pg_catalog.]pg_settings
        word.eq_ignore_ascii_case("UPDATE")
            && words[at + 1..]
                .iter()
                .take(3)
                .any(|(w, _)| w.eq_ignore_ascii_case("pg_settings"))
    });
    first_says
        || sets_settings
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
                return match is_local(&text[args_at + third.start..args_at + third.end]) {
                    Local::Yes => false,
                    Local::No => true,
                    Local::Bound(parameter) => {
                        bound.push(parameter);
                        false
                    }
                };
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

/// What `set_config`'s third argument says of the setting.
enum Local {
    /// It ends with its transaction.
    Yes,
    /// It lasts the session.
    No,
    /// Parameter `$n + 1`'s value decides.
    Bound(u16),
}

/// What `set_config`'s third argument says: `true` as PostgreSQL reads a
/// boolean (also quoted, in parentheses or cast) is local, a bound
/// parameter is read from its value.
fn is_local(argument: &str) -> Local {
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
    let parameter = value
        .strip_prefix('$')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|n| n.parse::<u16>().ok().filter(|n| *n > 0));
    match parameter {
        Some(Some(n)) => Local::Bound(n - 1),
        // `$0` or past the protocol's 65,535: the server refuses it.
        Some(None) => Local::Yes,
        None if says_true(value) => Local::Yes,
        None => Local::No,
    }
}

/// Whether `value` is `true` as PostgreSQL reads a boolean's text.
fn says_true(value: &str) -> bool {
    ["true", "t", "tr", "tru", "yes", "y", "ye", "on", "1"]
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

    fn leaves_session_state(sql: &str) -> bool {
        scan(sql).0
    }

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
            // Quoted names are the names they quote.
            "SELECT \"set_config\"('app.tenant', 'x', false)",
            "SELECT \"pg_advisory_lock\"(1)",
            "CREATE TABLE \"pg_temp\".scratch (id int)",
            "SELECT * INTO TEMP \"Scratch\" FROM users",
            // PostgreSQL's documented equivalent of SET.
            "UPDATE pg_settings SET setting = '5s' WHERE name = 'statement_timeout'",
            "update only pg_catalog.pg_settings set setting = 'x' where name = 'y'",
            // EXPLAIN ANALYZE runs its statement.
            "EXPLAIN ANALYZE CREATE TEMP TABLE scratch AS SELECT 1",
            "EXPLAIN (ANALYZE, BUFFERS) SELECT * INTO TEMP scratch FROM users",
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
            "SELECT \"set;config\"('a', 'b', false)",
            "UPDATE settings SET value = 1 WHERE name = 'pg_settings'",
            "SELECT * FROM pg_settings",
            "CREATE FUNCTION f() RETURNS int SECURITY DEFINER SET search_path = admin, pg_temp \
             AS $$ SELECT 1 $$ LANGUAGE sql",
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

    /// A bound value: whether binary, and its bytes (`None`: NULL).
    type Value<'v> = (bool, Option<&'v [u8]>);

    /// A `Parse` of `sql` as statement `name`, then `Bind`s of statements
    /// with their values.
    fn parse_and_binds(name: &str, sql: &str, binds: &[(&str, &[Value<'_>])]) -> Vec<u8> {
        let mut out = stream(&[]);
        let (name, text) = (
            [name.as_bytes(), b"\0"].concat(),
            [sql.as_bytes(), b"\0"].concat(),
        );
        write_message(&mut out, b'P', &[&name, &text, &[0, 0]]);
        for (statement, values) in binds {
            let mut body = [b"\0", statement.as_bytes(), b"\0"].concat();
            body.extend_from_slice(&(values.len() as u16).to_be_bytes());
            for (binary, _) in *values {
                body.extend_from_slice(&u16::from(*binary).to_be_bytes());
            }
            body.extend_from_slice(&(values.len() as u16).to_be_bytes());
            for (_, value) in *values {
                match value {
                    Some(v) => {
                        body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        body.extend_from_slice(v);
                    }
                    None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
            body.extend_from_slice(&[0, 0]);
            write_message(&mut out, b'B', &[&body]);
            write_message(&mut out, b'E', &[b"\0", &[0, 0, 0, 0]]);
            write_message(&mut out, b'S', &[]);
        }
        out
    }

    #[test]
    fn a_bound_set_config_is_read_from_each_bind() {
        let sql = "SELECT set_config('app.tenant', $1, $2)";
        let tenant: Value<'_> = (false, Some(b"acme"));
        for (name, binds, leaves) in [
            (
                "s1",
                vec![("s1", vec![tenant, (true, Some(&[1u8][..]))])],
                false,
            ),
            (
                "s1",
                vec![("s1", vec![tenant, (true, Some(&[0u8][..]))])],
                true,
            ),
            ("s1", vec![("s1", vec![tenant, (true, None)])], true),
            (
                "s1",
                vec![("s1", vec![tenant, (false, Some(&b" on"[..]))])],
                false,
            ),
            (
                "s1",
                vec![("s1", vec![tenant, (false, Some(&b"off"[..]))])],
                true,
            ),
            // The unnamed statement, as with the statement cache off.
            ("", vec![("", vec![tenant, (true, Some(&[0u8][..]))])], true),
            // Run again and again; one run that binds false is enough.
            (
                "s1",
                vec![
                    ("s1", vec![tenant, (true, Some(&[1u8][..]))]),
                    ("s1", vec![tenant, (true, Some(&[0u8][..]))]),
                ],
                true,
            ),
            // Another statement's bind is not read for it.
            (
                "s1",
                vec![("s2", vec![tenant, (true, Some(&[0u8][..]))])],
                false,
            ),
            // A bind cut short of the value counts as session-wide.
            ("s1", vec![("s1", vec![tenant])], true),
        ] {
            let bytes = parse_and_binds(
                name,
                sql,
                &binds.iter().map(|(s, v)| (*s, &v[..])).collect::<Vec<_>>(),
            );
            for split in 0..bytes.len() {
                let mut scan = FrontendScan::default();
                let seen = scan.feed(&bytes[..split]) | scan.feed(&bytes[split..]);
                assert_eq!(seen, leaves, "{binds:?} split at {split}");
            }
        }
        // A name parsed again for another statement is no longer read.
        let mut scan = FrontendScan::default();
        assert!(!scan.feed(&parse_and_binds("s1", sql, &[])));
        let again = &parse_and_binds(
            "s1",
            "SELECT $1, $2",
            &[("s1", &[tenant, (true, Some(&[0u8][..]))])],
        );
        assert!(!scan.feed(&again[stream(&[]).len()..]));
    }

    /// A statement far into a long script is read as its first one is.
    #[test]
    fn a_long_scripts_every_statement_is_read() {
        let filler = "SELECT 1; ".repeat(1000);
        for (last, leaves) in [
            ("CREATE TEMP TABLE scratch (id int)", true),
            ("SELECT pg_advisory_lock(1)", true),
            ("SELECT set_config('app.tenant', 'x', false)", true),
            ("SELECT 2", false),
        ] {
            let script = format!("{filler}{last}");
            for kind in [b'Q', b'P'] {
                let bytes = stream(&[(kind, &script)]);
                let mut whole = FrontendScan::default();
                assert_eq!(whole.feed(&bytes), leaves, "{last}, whole");
                let mut split = FrontendScan::default();
                let half = bytes.len() / 2;
                let seen = split.feed(&bytes[..half]) | split.feed(&bytes[half..]);
                assert_eq!(seen, leaves, "{last}, split");
            }
        }
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
