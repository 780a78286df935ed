//! Where PostgreSQL's opaque spans of SQL text begin and end: string
//! literals (`'...'`, `E'...'`), quoted identifiers (`"..."`), dollar
//! quotes (`$$...$$`, `$tag$...$tag$`) and comments (`-- ...`,
//! `/* ... */`, which nest). Everything that reads SQL text (`:name`
//! parameters, what a cursor can be declared for, which table a statement
//! names) asks here, so a word inside a literal never counts as SQL.
//!
//! Uses: nothing of gino.

use std::ops::Range;

/// Where the opaque span opening at byte `at` of `sql` ends (one past its
/// last byte), or `None` when none opens there. A span left open runs to
/// the end of `sql`.
pub(crate) fn opaque_end(sql: &str, at: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let next = bytes.get(at + 1).copied();
    match bytes.get(at)? {
        b'\'' => {
            let escapes = escape_string(bytes, at);
            let mut end = skip_text(bytes, at, b'\'', escapes);
            while let Some(next) = continuation(bytes, end) {
                end = skip_text(bytes, next, b'\'', escapes);
            }
            Some(end)
        }
        b'"' => Some(skip_quoted(bytes, at, b'"')),
        // PostgreSQL's lexer ends a comment at either line break.
        b'-' if next == Some(b'-') => {
            Some(sql[at..].find(['\n', '\r']).map_or(sql.len(), |n| at + n))
        }
        b'/' if next == Some(b'*') => Some(skip_block_comment(bytes, at)),
        b'$' => dollar_quote_end(sql, at),
        _ => None,
    }
}

/// Byte ranges of `sql` that are code, every opaque span left out;
/// adjacent spans leave no empty range between them.
pub(crate) fn code_ranges(sql: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let mut start = at;
        while at < sql.len() {
            match opaque_end(sql, at) {
                Some(end) if start == at => (start, at) = (end, end),
                Some(_) => return Some(start..at),
                None => at += 1,
            }
        }
        (start < at).then_some(start..at)
    })
}

/// `sql`'s code alone, each opaque span replaced by one space.
pub(crate) fn code_only(sql: &str) -> String {
    let mut code = String::with_capacity(sql.len());
    for range in code_ranges(sql) {
        code.push_str(&sql[range]);
        code.push(' ');
    }
    code
}

/// `sql` with each opaque span replaced by what `with` makes of it (given
/// the span's first byte and its text); `None` keeps the span as it is.
pub(crate) fn map_opaque(sql: &str, mut with: impl FnMut(usize, &str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let (mut copied, mut at) = (0, 0);
    while at < sql.len() {
        match opaque_end(sql, at) {
            Some(end) => {
                if let Some(replaced) = with(at, &sql[at..end]) {
                    out.push_str(&sql[copied..at]);
                    out.push_str(&replaced);
                    copied = end;
                }
                at = end;
            }
            None => at += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// `sql` as its words read: each literal and comment one space, each
/// quoted identifier its name (`"set_config"` is `set_config`), so that
/// neither hides a word (`FOR /* .. */ UPDATE`) nor makes one up.
pub(crate) fn words(sql: &str) -> String {
    map_opaque(sql, |_, span| {
        Some(quoted_identifier(span).map_or_else(|| " ".to_owned(), |(name, _)| name))
    })
}

/// The quoted identifier that opens `text` (`"a""b"` is `a"b`) and the
/// text after it; `None` when `text` does not open with one, or it is
/// never closed, or empty (PostgreSQL refuses a zero-length identifier).
pub(crate) fn quoted_identifier(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut name = String::new();
    let mut chars = body.char_indices();
    loop {
        match chars.next()? {
            (i, '"') if body[i + 1..].starts_with('"') => {
                name.push('"');
                chars.next();
            }
            (i, '"') => return (!name.is_empty()).then(|| (name, &body[i + 1..])),
            (_, c) => name.push(c),
        }
    }
}

/// Past the quoted text (`'...'` or `"..."`) opening at `open`; a doubled
/// quote is an escape.
fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> usize {
    skip_text(bytes, open, quote, false)
}

/// Past the quoted text opening at `open`: a doubled quote is a quote,
/// and with `backslashes` (an escape string) a backslash escapes the byte
/// after it.
fn skip_text(bytes: &[u8], open: usize, quote: u8, backslashes: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslashes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Where a string literal ending at `end` goes on: at a `'` after
/// whitespace holding a line break (`--` comments count as whitespace),
/// PostgreSQL's lexer continues the same literal (an escape string keeps
/// its escapes there).
fn continuation(bytes: &[u8], end: usize) -> Option<usize> {
    let mut i = end;
    let mut line_break = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' | b'\r' => line_break = true,
            b' ' | b'\t' | b'\x0c' => {}
            // A comment runs to the line break, which the loop then sees.
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while bytes
                    .get(i + 1)
                    .is_some_and(|b| !matches!(b, b'\n' | b'\r'))
                {
                    i += 1;
                }
            }
            _ => break,
        }
        i += 1;
    }
    (line_break && bytes.get(i) == Some(&b'\'')).then_some(i)
}

/// Whether the `'` at byte `quote` of `sql` opens an escape string
/// (`E'...'`), whose backslashes are escapes.
pub(crate) fn is_escape_string(sql: &str, quote: usize) -> bool {
    escape_string(sql.as_bytes(), quote)
}

/// Whether the `'` at `quote` opens an escape string (`E'...'`): one
/// whose `E` is a word of its own, not the end of an identifier.
fn escape_string(bytes: &[u8], quote: usize) -> bool {
    quote >= 1
        && matches!(bytes[quote - 1], b'E' | b'e')
        && (quote < 2 || !identifier_byte(bytes[quote - 2]))
}

/// Past the block comment opening at `open`; PostgreSQL's block comments
/// nest.
fn skip_block_comment(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Past the dollar-quoted string opening at `open`, or `None` when the
/// `$` there opens none: a positional parameter (`$1`) or part of an
/// identifier (`a$b`).
fn dollar_quote_end(sql: &str, open: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    if open > 0 && identifier_byte(bytes[open - 1]) {
        return None;
    }
    let rest = &bytes[open + 1..];
    let tag_len = rest
        .iter()
        .position(|b| !identifier_byte(*b) || *b == b'$')?;
    if rest[tag_len] != b'$' || rest.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let delimiter = &sql[open..open + tag_len + 2];
    let body = open + delimiter.len();
    Some(
        sql[body..]
            .find(delimiter)
            .map_or(sql.len(), |n| body + n + delimiter.len()),
    )
}

/// A byte that may continue an identifier: PostgreSQL allows letters,
/// digits, `_`, `$` and any non-ASCII character.
fn identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || !b.is_ascii()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SQL-like text for the property tests of everything that reads SQL
    /// text: the words and delimiters those readers look for (literals,
    /// quoted identifiers, dollar quotes and comments, opened and left
    /// open, `:name` parameters and `::` casts, the keywords that name
    /// tables and writes) between arbitrary characters, multi-byte ones
    /// included, since a reader that slices text at a byte that does not
    /// start a character panics.
    pub(crate) fn sql_text() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            prop::sample::select(
                &[
                    "SELECT ",
                    "FROM ",
                    "INTO ",
                    "UPDATE ",
                    "SET ",
                    "WITH ",
                    "INSERT ",
                    "DELETE ",
                    "MERGE ",
                    "EXISTS ",
                    "(",
                    ")",
                    ",",
                    " = ",
                    ":name",
                    ":n_1",
                    "::int",
                    ":",
                    "'",
                    "E'",
                    "e'",
                    "\\'",
                    "''",
                    "\\",
                    "\"",
                    "\"\"",
                    "$",
                    "$$",
                    "$tag$",
                    "$1",
                    "$ä$",
                    "--",
                    "/*",
                    "*/",
                    "\n",
                    " ",
                    ";",
                    ".",
                    "\"s\".\"t\"",
                    "é",
                    "😀",
                    "ß",
                    "\u{0}",
                ][..]
            )
            .prop_map(str::to_owned),
            "[a-z_]{1,6}",
            "\\PC{1,3}",
        ];
        prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #[test]
        fn any_text_lexes_into_spans_within_it(sql in sql_text()) {
            for at in 0..sql.len() {
                if let Some(end) = opaque_end(&sql, at) {
                    prop_assert!(at < end && end <= sql.len(), "{at}..{end} of {sql:?}");
                }
            }
            // Code ranges and opaque spans tile the text: every gap
            // between two ranges (and before the first, after the last)
            // is a run of spans that ends exactly where the next range
            // starts.
            let mut last = 0;
            let ranges: Vec<_> = code_ranges(&sql).collect();
            for range in ranges.iter().cloned().chain(std::iter::once(sql.len()..sql.len())) {
                prop_assert!(last <= range.start && range.start <= range.end);
                prop_assert!(sql.get(range.clone()).is_some(), "{range:?} of {sql:?}");
                let mut at = last;
                while at < range.start {
                    let end = opaque_end(&sql, at);
                    prop_assert!(
                        end.is_some_and(|end| end <= range.start),
                        "the gap {at}..{} of {sql:?} is not spans", range.start
                    );
                    at = end.unwrap_or(range.start);
                }
                last = range.end;
            }
            prop_assert!(ranges.iter().all(|r| !r.is_empty()));
            prop_assert!(code_only(&sql).len() <= sql.len() * 2);
        }
    }

    #[test]
    fn a_quoted_identifier_is_read_closed_and_unescaped() {
        assert_eq!(
            quoted_identifier(r#""a""b".c"#),
            Some((r#"a"b"#.to_owned(), ".c"))
        );
        assert_eq!(quoted_identifier(r#""é""#), Some(("é".to_owned(), "")));
        for open in [r#""a"#, r#""a"""#, r#""""#, "a", ""] {
            assert_eq!(quoted_identifier(open), None, "{open}");
        }
    }

    fn code(sql: &str) -> Vec<&str> {
        code_ranges(sql).map(|r| &sql[r]).collect()
    }

    #[test]
    fn literals_and_identifiers_are_opaque_with_doubled_quotes() {
        assert_eq!(code("a 'b''c' d"), ["a ", " d"]);
        assert_eq!(code(r#"a "b""c" d"#), ["a ", " d"]);
        assert_eq!(code("'x'"), Vec::<&str>::new());
        assert_eq!(code("a 'open"), ["a "]);
    }

    #[test]
    fn escape_strings_end_at_an_unescaped_quote() {
        assert_eq!(code(r"a E'it\'s' b"), ["a E", " b"]);
        assert_eq!(code(r"a e'\\' b"), ["a e", " b"]);
        assert_eq!(code(r"a E'x''y' b"), ["a E", " b"]);
        // In a plain literal a backslash is an ordinary character.
        assert_eq!(code(r"a '\' b"), ["a ", " b"]);
        // `E` ending an identifier does not make an escape string.
        assert_eq!(code(r"name'\' b"), ["name", " b"]);
    }

    #[test]
    fn a_literal_goes_on_after_a_line_break_with_its_escapes() {
        // One literal, `x' , :p --`, as PostgreSQL reads it.
        assert_eq!(code("a E'x'\n  '\\' , :p --' b"), ["a E", " b"]);
        assert_eq!(code("a 'x'\r\n'y' b"), ["a ", " b"]);
        // A comment before the line break is whitespace there too.
        assert_eq!(code("a E'x' -- c\n'\\' :p' b"), ["a E", " b"]);
        // Without a line break, two literals side by side.
        assert_eq!(code("a 'x' 'y' b"), ["a ", " ", " b"]);
    }

    #[test]
    fn dollar_quotes_need_a_matching_tag() {
        assert_eq!(code("a $$ 'x $$ b"), ["a ", " b"]);
        assert_eq!(code("a $t$ $$ $t$ b"), ["a ", " b"]);
        assert_eq!(code("a $1 b $2"), ["a $1 b $2"]);
        assert_eq!(code("a$b$ c"), ["a$b$ c"]);
        assert_eq!(code("a $t$ open"), ["a "]);
    }

    #[test]
    fn comments_are_opaque_and_block_comments_nest() {
        assert_eq!(code("a -- 'x\nb"), ["a ", "\nb"]);
        assert_eq!(code("a -- 'x\rb"), ["a ", "\rb"]);
        assert_eq!(code("a /* x /* y */ z */ b"), ["a ", " b"]);
        assert_eq!(code("a /* open"), ["a "]);
        assert_eq!(code("a - b / c"), ["a - b / c"]);
    }

    /// Every text of up to five characters from SQL's quoting alphabet
    /// (with a multi-byte character): scanning never panics, the code
    /// ranges are ordered, disjoint, non-empty and on character boundaries,
    /// and the readers built on them take the text.
    #[test]
    fn any_short_text_scans_into_ordered_ranges() {
        let alphabet = [
            '\'', '"', '$', 'E', '-', '/', '*', '\\', 'é', 'a', '\n', ':',
        ];
        let mut text = String::new();
        let mut digits = [0usize; 5];
        for count in 0..alphabet.len().pow(5) {
            let mut rest = count;
            for digit in &mut digits {
                *digit = rest % alphabet.len();
                rest /= alphabet.len();
            }
            for len in 0..=digits.len() {
                text.clear();
                text.extend(digits[..len].iter().map(|d| alphabet[*d]));
                let mut end = 0;
                for range in code_ranges(&text) {
                    assert!(range.start >= end && range.start < range.end, "{text:?}");
                    assert!(text.get(range.clone()).is_some(), "{text:?}: {range:?}");
                    end = range.end;
                }
                assert!(end <= text.len());
                // What reads SQL through these ranges takes any text too.
                let _ = crate::text(&text);
                let _ = crate::cursor::can_declare(&text);
            }
        }
    }

    #[test]
    fn adjacent_spans_leave_no_empty_code() {
        assert_eq!(code("'a''b'"), Vec::<&str>::new());
        assert_eq!(code("'a' 'b'"), [" "]);
        assert_eq!(code("'a'/* c */\"d\"e"), ["e"]);
    }
}
