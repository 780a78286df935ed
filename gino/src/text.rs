//! Raw SQL with named parameters: `text("... WHERE id = :id")`.
//!
//! Uses: `lex`; a diesel query fragment like any other.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

use crate::lex;

/// Raw SQL with `:name` parameters, runnable like any diesel query and
/// loadable into `#[derive(QueryableByName)]` rows.
///
/// A parameter is a `:` followed by a letter (of any script: `:ñame`) or
/// `_` and then letters, digits or `_`, where the `:` does not follow a
/// letter, digit or `_`
/// (`arr[lo:hi]` has none, as in SQLAlchemy's `text`); `\:` is a plain
/// colon, in a string literal too (`'10\:30'` is `'10:30'`, as SQLAlchemy
/// reads it; an escape string `E'..'` keeps its own escapes); `::` casts,
/// string literals, quoted identifiers, dollar-quoted strings and comments
/// are left alone. The same name may
/// appear several times. Each value is bound with its SQL type, so the
/// server sees real bind parameters, never interpolated text.
///
/// ```
/// # async fn demo() -> gino::Result<()> {
/// use diesel::sql_types::{Integer, Text};
/// use gino::prelude::*;
///
/// #[derive(diesel::QueryableByName, Debug)]
/// struct Row {
///     #[diesel(sql_type = Integer)]
///     n: i32,
///     #[diesel(sql_type = Text)]
///     label: String,
/// }
///
/// let rows: Vec<Row> = gino::text("SELECT :n::int + 1 AS n, :label AS label")
///     .bind::<Integer, _>("n", 41)
///     .bind::<Text, _>("label", "answer")
///     .gino()
///     .all()
///     .await?;
/// assert_eq!(rows[0].n, 42);
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
///
/// One statement per `text`: gino sends every statement prepared, as GINO
/// does through asyncpg, and PostgreSQL refuses several commands in one
/// prepared statement (SQLSTATE 42601, a typed [`Error::Database`]). A
/// script of several statements, without parameters, goes through the raw
/// connection's `batch_execute`, or is a migration:
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// use diesel_async::SimpleAsyncConnection;
/// use gino::prelude::*;
///
/// let conn = engine.acquire().await?;
/// let script = "CREATE TEMP TABLE t (n int); INSERT INTO t VALUES (1), (2)";
/// let refused = gino::text(script).gino().bind(&conn).status().await.unwrap_err();
/// assert_eq!(refused.sqlstate(), Some("42601"));
///
/// conn.run(|c| Box::pin(c.batch_execute(script))).await?;
/// let status = gino::text("DELETE FROM t").gino().bind(&conn).status().await?;
/// assert_eq!(status.tag(), "DELETE 2");
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
///
/// [`Error::Database`]: crate::Error::Database
pub fn text<'a>(sql: impl AsRef<str>) -> TextQuery<'a> {
    TextQuery::parse(sql.as_ref())
}

enum Piece {
    Sql(String),
    Param(usize),
}

trait BindValue: Send + Sync {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Typed<ST, T> {
    value: T,
    sql_type: std::marker::PhantomData<fn() -> ST>,
}

impl<ST, T> BindValue for Typed<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + Send + Sync,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.value)
    }
}

/// A raw SQL statement with named parameters whose values live for `'a`;
/// made by [`text`]. Values may borrow (`.bind::<Text, _>("name", &name)`),
/// as diesel's own binds may.
///
/// `ST` is the SQL type of its rows: [`Untyped`] (rows load by column name
/// into `QueryableByName` types) until [`columns`](TextQuery::columns)
/// declares it.
pub struct TextQuery<'a, ST = Untyped> {
    pieces: Vec<Piece>,
    names: Vec<String>,
    values: Vec<Option<Box<dyn BindValue + 'a>>>,
    /// Names bound that the statement does not have: running it fails,
    /// naming them.
    unknown: Vec<String>,
    columns: PhantomData<fn() -> ST>,
}

/// A [`TextQuery`] whose values are owned: the type to name where a
/// function returns a statement it built.
///
/// ```
/// use diesel::sql_types::Integer;
/// fn by_id(id: i32) -> gino::Text {
///     gino::text("SELECT * FROM users WHERE id = :id").bind::<Integer, _>("id", id)
/// }
/// assert_eq!(by_id(7).param_names(), ["id"]);
/// ```
pub type Text = TextQuery<'static>;

impl<ST> fmt::Debug for TextQuery<'_, ST> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextQuery")
            .field("params", &self.names)
            .finish_non_exhaustive()
    }
}

/// `sql` with the backslash of every `\:` in a string literal gone:
/// SQLAlchemy's `text` takes `\:` for a colon everywhere (its documents
/// write `'\:username'` for a colon in an inline string), so SQL written
/// for it says `'10\:30'` for `'10:30'`. An escape string (`E'..'`) is
/// left alone: there `\:` is a colon already, and `\\:` a backslash and
/// a colon.
fn colons_in_literals(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains("\\:") {
        return std::borrow::Cow::Borrowed(sql);
    }
    let plain_string = |at: usize| sql.as_bytes()[at] == b'\'' && !lex::is_escape_string(sql, at);
    std::borrow::Cow::Owned(lex::map_opaque(sql, |at, span| {
        plain_string(at).then(|| span.replace("\\:", ":"))
    }))
}

impl<'a> TextQuery<'a> {
    fn parse(sql: &str) -> Self {
        let sql = &*colons_in_literals(sql);
        let mut pieces = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let bytes = sql.as_bytes();
        let mut start = 0;
        for code in lex::code_ranges(sql) {
            let mut i = code.start;
            while i < code.end {
                if bytes[i..code.end].starts_with(b"\\:") {
                    // `\:` is a colon of the statement's own: the
                    // backslash goes.
                    pieces.push(Piece::Sql(sql[start..i].to_owned()));
                    start = i + 1;
                    i += 2;
                    continue;
                }
                // A colon right after a word (`arr[1:n]`, `x:y`) is no
                // parameter's, as in SQLAlchemy's `text`.
                let after_word = i > 0 && {
                    let before = bytes[i - 1];
                    before.is_ascii_alphanumeric() || before == b'_' || !before.is_ascii()
                };
                // Names are words as SQLAlchemy's `\w` reads them, any
                // script's letters and digits (`:ñame`), not starting with
                // a digit.
                let param = bytes[i] == b':'
                    && !after_word
                    && sql[i + 1..code.end]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_');
                if !param {
                    // `::` is a cast: step over both colons.
                    i += if bytes[i..].starts_with(b"::") { 2 } else { 1 };
                    continue;
                }
                let end = sql[i + 1..code.end]
                    .char_indices()
                    .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(code.end, |(n, _)| i + 1 + n);
                let name = &sql[i + 1..end];
                pieces.push(Piece::Sql(sql[start..i].to_owned()));
                let slot = *index.entry(name.to_owned()).or_insert_with(|| {
                    names.push(name.to_owned());
                    names.len() - 1
                });
                pieces.push(Piece::Param(slot));
                start = end;
                i = end;
            }
        }
        pieces.push(Piece::Sql(sql[start..].to_owned()));
        let values = names.iter().map(|_| None).collect();
        TextQuery {
            pieces,
            names,
            values,
            unknown: Vec::new(),
            columns: PhantomData,
        }
    }

    /// Declares the SQL types of the statement's columns, as SQLAlchemy's
    /// `text(...).columns(...)` does: rows then load by position into plain
    /// values, tuples and `Queryable` types, and [`scalar`] works on raw
    /// SQL. `C` is one SQL type for one column, a tuple for several.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use diesel::sql_types::{Integer, Nullable, Text};
    ///
    /// let eight = gino::text("SELECT 8").columns::<Integer>();
    /// assert_eq!(engine.scalar::<i32, _>(eight).await?, Some(8));
    ///
    /// let rows: Vec<(i32, Option<String>)> = engine
    ///     .all(
    ///         gino::text("SELECT n, NULLIF(n::text, :skip) FROM generate_series(1, 3) n")
    ///             .bind::<Text, _>("skip", "2")
    ///             .columns::<(Integer, Nullable<Text>)>(),
    ///     )
    ///     .await?;
    /// assert_eq!(rows, [(1, Some("1".into())), (2, None), (3, Some("3".into()))]);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    ///
    /// The declared types are trusted as diesel's `sql::<ST>` trusts them:
    /// the server sends binary values, decoded as declared. Declare what
    /// the statement returns, and cast in SQL where unsure (`n::int`); a
    /// row with fewer columns than declared is an
    /// [`Error::Query`](crate::Error::Query).
    ///
    /// [`scalar`]: crate::Executor::scalar
    pub fn columns<C>(self) -> TextQuery<'a, C> {
        TextQuery {
            pieces: self.pieces,
            names: self.names,
            values: self.values,
            unknown: self.unknown,
            columns: PhantomData,
        }
    }
}

impl<'a, C> TextQuery<'a, C> {
    /// Binds `value` as SQL type `ST` to every `:name` in the statement.
    ///
    /// Binding a name the statement does not have is a mistake that would
    /// otherwise go unnoticed, so running the statement then fails
    /// ([`Error::Query`](crate::Error::Query)) with the names it does have,
    /// before anything is sent.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) {
    /// use diesel::sql_types::BigInt;
    /// let q = gino::text("SELECT :id::bigint").bind::<BigInt, _>("id", 7_i64);
    /// assert_eq!(q.param_names(), ["id"]);
    /// assert_eq!(engine.status(q).await.unwrap(), "SELECT 1");
    ///
    /// let typo = gino::text("SELECT :id::bigint").bind::<BigInt, _>("ids", 7_i64);
    /// let err = engine.status(typo).await.unwrap_err();
    /// assert!(err.to_string().contains("no parameter `:ids`"), "{err}");
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn bind<ST, T>(mut self, name: &str, value: T) -> Self
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + Sync + 'a,
        ST: 'static,
    {
        let Some(slot) = self.names.iter().position(|n| n == name) else {
            self.unknown.push(name.to_owned());
            return self;
        };
        self.values[slot] = Some(Box::new(Typed {
            value,
            sql_type: std::marker::PhantomData::<fn() -> ST>,
        }));
        self
    }

    /// The parameter names, in order of first appearance.
    ///
    /// ```
    /// let q = gino::text("SELECT :b, :a::int, ':not_one', :b");
    /// assert_eq!(q.param_names(), ["b", "a"]);
    /// ```
    pub fn param_names(&self) -> &[String] {
        &self.names
    }
}

impl<ST> QueryFragment<Pg> for TextQuery<'_, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.unknown.is_empty() {
            let unknown: Vec<String> = self.unknown.iter().map(|n| format!("`:{n}`")).collect();
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "gino::text: the statement has no parameter {} (its parameters: {:?})",
                    unknown.join(", "),
                    self.names
                )
                .into(),
            ));
        }
        out.unsafe_to_cache_prepared();
        for piece in &self.pieces {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Param(slot) => match &self.values[*slot] {
                    Some(value) => value.push(&mut out)?,
                    None => {
                        return Err(diesel::result::Error::QueryBuilderError(
                            format!(
                                "no value bound for parameter `:{}`: call .bind::<SqlType, _>(\"{}\", value)",
                                self.names[*slot], self.names[*slot]
                            )
                            .into(),
                        ))
                    }
                },
            }
        }
        Ok(())
    }
}

impl<ST> QueryId for TextQuery<'_, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST> Query for TextQuery<'_, ST> {
    type SqlType = ST;
}

impl<Conn, ST> diesel::query_dsl::RunQueryDsl<Conn> for TextQuery<'_, ST> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Every `:name` found is bound, and the statement renders with one
        // `$n` per name, whatever else the text holds.
        #[test]
        fn any_text_parses_binds_and_renders(sql in crate::lex::tests::sql_text()) {
            let (rendered, binds) = rendered(&sql);
            let names = text(&sql).names.len();
            prop_assert_eq!(binds.len(), names);
            for n in 1..=names {
                prop_assert!(rendered.contains(&format!("${n}")), "{rendered}");
            }
        }
    }

    fn rendered(sql: &str) -> (String, Vec<String>) {
        let mut t = text(sql);
        for name in t.names.clone() {
            t = t.bind::<diesel::sql_types::Integer, _>(&name, 1);
        }
        let compiled = crate::Compiled::of(&t);
        (compiled.sql().to_owned(), t.names)
    }

    #[test]
    fn numbers_parameters_and_repeats_names() {
        let (sql, names) = rendered("SELECT :a, :b_2, :a");
        assert_eq!(sql, "SELECT $1, $2, $3");
        assert_eq!(names, ["a", "b_2"]);
    }

    #[test]
    fn names_are_words_of_any_script_as_in_sqlalchemy() {
        let (sql, names) = rendered("SELECT :ñame, :名前, :é1 || 'x', :1, x:ñ");
        assert_eq!(names, ["ñame", "名前", "é1"]);
        assert_eq!(sql, "SELECT $1, $2, $3 || 'x', :1, x:ñ");
    }

    #[test]
    fn leaves_casts_literals_comments_and_dollar_quotes_alone() {
        let (sql, names) = rendered(
            "SELECT ':x', \"col:y\", 1::int, $$ :z $$, $t$ :w $t$ -- :c\n, /* :d */ :real, $1",
        );
        assert_eq!(names, ["real"]);
        assert!(sql.contains("':x'") && sql.contains("$$ :z $$") && sql.contains("-- :c"));
        assert!(sql.ends_with("$1, $1"), "{sql}");
    }

    #[test]
    fn escape_strings_nested_comments_and_identifier_dollars_are_read_as_postgres_does() {
        // `E'it\'s'` ends at its last quote: `:x` is inside it, `:y` is not.
        let (sql, names) = rendered(r"SELECT E'it\'s :x', :y, '\' :z");
        assert_eq!(names, ["y", "z"]);
        assert!(sql.starts_with(r"SELECT E'it\'s :x', $1, '\' $2"), "{sql}");
        let (_, names) = rendered("SELECT /* a /* b */ :in */ :out");
        assert_eq!(names, ["out"]);
        // `a$b$` is an identifier, not a dollar quote hiding `:p`.
        let (_, names) = rendered("SELECT 1 AS a$b$, :p");
        assert_eq!(names, ["p"]);
        let (_, names) = rendered("SELECT :a::text, x:: int, ::b");
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_colon_after_a_word_or_escaped_is_the_statements_own() {
        let (sql, names) = rendered("SELECT (tags)[1:n], arr[lo:hi], arr[:lo], x \\:y, é:z");
        assert_eq!(names, ["lo"]);
        assert_eq!(sql, "SELECT (tags)[1:n], arr[lo:hi], arr[$1], x :y, é:z");
    }

    /// SQLAlchemy's documents write `'\:username'` for a colon in an
    /// inline string: the backslash goes there too, but not from an
    /// escape string, nor from a quoted name or a comment.
    #[test]
    fn an_escaped_colon_in_a_literal_is_a_colon_as_in_sqlalchemy() {
        let (sql, names) = rendered(r#"SELECT '10\:30', 'a''\:b', :t, E'x\\:y', "q\:" -- \:c"#);
        assert_eq!(names, ["t"]);
        assert_eq!(
            sql,
            r#"SELECT '10:30', 'a'':b', $1, E'x\\:y', "q\:" -- \:c"#
        );
    }

    #[test]
    fn binding_an_unknown_name_fails_the_statement_naming_the_known_ones() {
        let q = text("SELECT :yes").bind::<diesel::sql_types::Integer, _>("nope", 1);
        let mut builder = diesel::pg::PgQueryBuilder::default();
        let err = q.to_sql(&mut builder, &Pg).unwrap_err().to_string();
        assert!(
            err.contains("no parameter `:nope`") && err.contains(r#"["yes"]"#),
            "{err}"
        );
        // Every name that is not there, not only the first.
        let q = text("SELECT :yes")
            .bind::<diesel::sql_types::Integer, _>("nope", 1)
            .bind::<diesel::sql_types::Integer, _>("yes", 2)
            .bind::<diesel::sql_types::Integer, _>("neither", 3);
        let err = q.to_sql(&mut builder, &Pg).unwrap_err().to_string();
        assert!(err.contains("no parameter `:nope`, `:neither`"), "{err}");
    }
}
