//! Where a query runs: [`Bind`] names a database, engine or connection,
//! and resolves to a connection's root (the given one, or the task's
//! contextual connection of the engine) or to the engine itself.
//!
//! A query given no place runs where the models of its tables belong: the
//! database of a model declared with `db = X` owns its table
//! ([`TableRoute`]), as GINO finds a statement's bind through its tables'
//! metadata; every other query runs on the default database.
//!
//! Uses: `api` (a database's bound engine), `transaction`, `connection`,
//! `context`, `root`, `engine`, `statement`, `lex` (reading a statement's
//! SQL for the table it names).

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};

use crate::api::{Gino, default_engine};
use crate::connection::Connection;
use crate::context::Stack;
use crate::engine::Engine;
use crate::error::Result;
use crate::lex;
use crate::root::{Access, Root};
use crate::statement::{Reread, Statement};
use crate::transaction::Transaction;

/// Where a query runs; see [`Executor::bind`](crate::Executor::bind).
///
/// Implicit execution looks for, in order: the connection given with
/// `.bind(...)`; the current task's contextual connection of the engine
/// (a managed transaction, a connection acquired as reusable, a web
/// request's connection); the engine itself. Contextual connections of
/// other engines belong to other databases and are never picked up.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Bind<'a> {
    /// The default `Gino`'s engine (or its contextual connection).
    Default,
    /// This `Gino`'s engine (or its contextual connection).
    Db(&'a Gino),
    /// This engine's contextual connection, else a pooled connection of it.
    Engine(&'a Engine),
    /// Exactly this connection.
    Connection(&'a Connection),
}

impl Bind<'_> {
    /// The default query timeout of where this binds, when it has one of
    /// its own (a connection's, [`Connection::query_timeout`]).
    pub(crate) fn query_timeout(&self) -> Option<Duration> {
        match self {
            Bind::Connection(conn) => conn.query_timeout(),
            _ => None,
        }
    }
}

impl fmt::Debug for Bind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bind::Default => "Bind::Default",
            Bind::Db(_) => "Bind::Db",
            Bind::Engine(_) => "Bind::Engine",
            Bind::Connection(_) => "Bind::Connection",
        })
    }
}

impl<'a> From<&'a Engine> for Bind<'a> {
    fn from(engine: &'a Engine) -> Self {
        Bind::Engine(engine)
    }
}

impl<'a> From<&'a Connection> for Bind<'a> {
    fn from(conn: &'a Connection) -> Self {
        Bind::Connection(conn)
    }
}

impl<'a> From<&'a Gino> for Bind<'a> {
    fn from(db: &'a Gino) -> Self {
        Bind::Db(db)
    }
}

impl<'a> From<&'a Transaction> for Bind<'a> {
    fn from(tx: &'a Transaction) -> Self {
        Bind::Connection(tx.connection())
    }
}

pub(crate) enum Target {
    Root(Arc<Root>, Access),
    Engine(Engine),
}

impl Target {
    async fn run<R, S: Statement<R>>(self, timeout: Option<Duration>, statement: S) -> Result<R> {
        match self {
            Target::Root(root, access) => root.run_as(access, timeout, statement).await,
            Target::Engine(engine) => engine.run_once(timeout, statement).await,
        }
    }
}

/// What a [`Bind`] names once a database is resolved to its engine.
pub(crate) enum Resolved<'a> {
    Connection(&'a Connection),
    Engine(Engine),
}

impl<'a> Bind<'a> {
    /// The connection, or the engine (a `Gino`'s bound one); an unbound
    /// `Gino` is [`Error::Uninitialized`](crate::Error::Uninitialized).
    pub(crate) fn resolve(self) -> Result<Resolved<'a>> {
        Ok(match self {
            Bind::Connection(conn) => Resolved::Connection(conn),
            Bind::Engine(engine) => Resolved::Engine(engine.clone()),
            Bind::Db(db) => Resolved::Engine(db.engine()?),
            Bind::Default => Resolved::Engine(default_engine()?),
        })
    }

    /// The id of the engine this names, when that takes no reference to
    /// the engine (a database's, the default's, an engine's).
    fn engine_id(self) -> Option<u64> {
        match self {
            Bind::Connection(_) => None,
            Bind::Engine(engine) => Some(engine.id()),
            Bind::Db(db) => db.engine_id(),
            Bind::Default => crate::api::default_engine_id(),
        }
    }

    /// The root or engine the query runs on.
    pub(crate) fn target(self) -> Result<Target> {
        // Inside a request or a managed transaction, the task's connection
        // of the engine: found by the engine's id alone, so that the engine
        // itself is only taken when there is none.
        if let Some(found) = self.engine_id().and_then(Stack::find_access) {
            return Ok(Target::Root(found.root, found.access));
        }
        Ok(match self.resolve()? {
            Resolved::Connection(conn) => {
                conn.check_usable()?;
                check_tenant(conn.engine())?;
                Target::Root(conn.root.clone(), conn.access())
            }
            // Looked for above, by this engine's id.
            Resolved::Engine(engine) => Target::Engine(engine),
        })
    }

    pub(crate) async fn run<R, S: Statement<R>>(
        self,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        match self.target()? {
            Target::Root(root, access) => root.run_as(access, timeout, statement).await,
            Target::Engine(engine) => engine.run_on_primary(timeout, statement).await,
        }
    }

    /// Whether the engine this place runs on has read replicas (where
    /// what a query's SQL does decides something).
    pub(crate) fn has_replicas(self) -> bool {
        crate::engine::any_replicas()
            && match self.resolve() {
                Ok(Resolved::Engine(engine)) => engine.has_replicas(),
                Ok(Resolved::Connection(conn)) => conn.engine().has_replicas(),
                Err(_) => false,
            }
    }

    /// Runs a statement that only reads: on a read replica when the place
    /// is an engine with replicas and the task's contextual connection of
    /// it (if any) has not pinned its reads (a write or a transaction ran
    /// on it); otherwise as [`run`](Self::run) would, without pinning.
    pub(crate) async fn run_read<R, S: Reread<R>>(
        self,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        if !crate::engine::any_replicas() {
            return self.target()?.run(timeout, statement).await;
        }
        match self.resolve()? {
            Resolved::Engine(engine) if engine.has_replicas() => {
                match Stack::find_access(engine.id()) {
                    Some(found) if found.root.pins_reads() => {
                        found.root.run_as(found.access, timeout, statement).await
                    }
                    _ => engine.run_read(timeout, statement).await,
                }
            }
            _ => self.target()?.run(timeout, statement).await,
        }
    }
}

/// A tenant's connection may not serve another tenant's scope: carried
/// out of its request (a spawned task, a stored handle) into one, it fails
/// instead of reading or writing the wrong database.
fn check_tenant(engine: &Engine) -> Result<()> {
    let Some((registry, key)) = engine.tenant() else {
        return Ok(());
    };
    let Some(scoped) = crate::api::scoped_engine() else {
        return Ok(());
    };
    match scoped.tenant() {
        Some((scope_registry, scope_key)) if scope_registry == registry && scope_key != key => {
            Err(crate::Error::TenantMismatch {
                connection: key.to_string(),
                scope: scope_key.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// A table that belongs to a database other than the default one: queries
/// that name it first run on that database unless bound elsewhere.
/// `#[derive(Model)]` submits one for every model declared with `db = X`.
#[derive(Debug)]
pub struct TableRoute {
    /// The table's name, schema-qualified (`app.users`) when it has a schema.
    pub table: &'static str,
    /// Its database.
    pub db: fn() -> &'static Gino,
}

inventory::collect!(TableRoute);

/// Table name → its database, `None` where two databases claim the name.
fn routes() -> &'static HashMap<&'static str, Option<&'static Gino>> {
    static ROUTES: OnceLock<HashMap<&'static str, Option<&'static Gino>>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut routes: HashMap<&'static str, Option<&'static Gino>> = HashMap::new();
        for route in inventory::iter::<TableRoute> {
            let db = (route.db)();
            routes
                .entry(route.table)
                .and_modify(|known| {
                    if known.is_some_and(|k| !std::ptr::eq(k, db)) {
                        *known = None;
                    }
                })
                .or_insert(Some(db));
        }
        routes
    })
}

/// What a query's SQL shows it does, which decides where it may run when
/// its engine has read replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlKind {
    /// A plain `SELECT`: a replica may answer it.
    Read,
    /// A read gino sends to the primary all the same, which writes
    /// nothing: a `SELECT` that takes row locks (`FOR UPDATE`, `FOR SHARE`,
    /// ...), or a query that is no plain `SELECT` (a union in parentheses,
    /// a `WITH` that only reads, `VALUES`, `TABLE`).
    Lock,
    /// A statement that changes data (anything but a query, a `WITH`
    /// holding an `INSERT`, `UPDATE`, `DELETE` or `MERGE`, `SELECT ..
    /// INTO`), or a `SELECT` that steps a sequence or calls `set_config`
    /// or an advisory-lock function (which a standby runs as readily as
    /// the primary, but for the wrong server): the primary's, and a write
    /// for read-your-writes whatever its command tag.
    Write,
}

/// What `query` does, as its SQL shows ([`SqlKind`]). Cached per query
/// type when diesel can name it.
pub(crate) fn sql_kind<Q: QueryFragment<Pg> + QueryId>(query: &Q) -> SqlKind {
    thread_local! {
        static KNOWN: PerQueryType<SqlKind> = PerQueryType::default();
    }
    per_query_type(&KNOWN, query, |sql| {
        if bare_table(sql).is_some() {
            return SqlKind::Read;
        }
        // One space for every run of whitespace, so that a lock clause
        // split over lines (`FOR\n  UPDATE`) is seen too; no comment or
        // literal, so that neither hides a word nor makes one up.
        let mut upper = String::with_capacity(sql.len());
        for word in crate::lex::words(sql).split_ascii_whitespace() {
            if !upper.is_empty() {
                upper.push(' ');
            }
            upper.push_str(word);
        }
        upper.make_ascii_uppercase();
        let has = |markers: &[&str]| markers.iter().any(|m| upper.contains(m));
        // What changes data is what a cursor cannot be declared for.
        if !crate::cursor::can_declare(sql)
            || has(&[
                "NEXTVAL(",
                "NEXTVAL (",
                "SETVAL(",
                "SETVAL (",
                "SET_CONFIG(",
                "SET_CONFIG (",
                "PG_ADVISORY_",
                "PG_TRY_ADVISORY_",
            ])
        {
            SqlKind::Write
        } else if !upper.starts_with("SELECT")
            || has(&[
                "FOR UPDATE",
                "FOR NO KEY UPDATE",
                "FOR SHARE",
                "FOR KEY SHARE",
            ])
        {
            SqlKind::Lock
        } else {
            SqlKind::Read
        }
    })
}

/// Whether PostgreSQL can declare a cursor for `query`
/// ([`crate::cursor::can_declare`]), learnt once per query type.
pub(crate) fn declarable<Q: QueryFragment<Pg> + QueryId>(query: &Q) -> bool {
    thread_local! {
        static KNOWN: PerQueryType<bool> = PerQueryType::default();
    }
    per_query_type(&KNOWN, query, crate::cursor::can_declare)
}

/// The database of the table `query` names first, if a model of a named
/// database owns it. Free when no model names a database; otherwise the
/// query is rendered, once per query type where diesel gives it a static
/// identity.
pub(crate) fn route<Q: QueryFragment<Pg> + QueryId>(query: &Q) -> Option<&'static Gino> {
    let routes = routes();
    if routes.is_empty() {
        return None;
    }
    thread_local! {
        // The routes are made once, so the database a table leads to can be
        // kept, not just the table's name.
        static DATABASES: PerQueryType<Option<&'static Gino>> = PerQueryType::default();
    }
    per_query_type(&DATABASES, query, |sql| {
        routes.get(first_table(sql)?.as_str()).copied().flatten()
    })
}

/// What was learnt from the SQL of each query type, kept per thread: every
/// query of a routed or replicated database looks here, and a cache that
/// the worker threads share would be a lock they all take on every query.
/// A thread learns a type once.
type PerQueryType<T> = std::cell::RefCell<HashMap<TypeId, T>>;

/// What `learn` makes of `query`'s SQL: rendered and learnt once per query
/// type (and thread) when diesel can name the type (`HAS_STATIC_QUERY_ID`),
/// the SQL being the same for every value of it; every time otherwise.
fn per_query_type<Q, T>(
    cache: &'static std::thread::LocalKey<PerQueryType<T>>,
    query: &Q,
    learn: impl FnOnce(&str) -> T,
) -> T
where
    Q: QueryFragment<Pg> + QueryId,
    T: Copy,
{
    if !Q::HAS_STATIC_QUERY_ID {
        return learn(&render(query));
    }
    let id = TypeId::of::<Q::QueryId>();
    if let Ok(Some(known)) = cache.try_with(|known| known.borrow().get(&id).copied()) {
        return known;
    }
    let learnt = learn(&render(query));
    // Not kept while the thread ends (its cache is gone).
    let _ = cache.try_with(|known| known.borrow_mut().insert(id, learnt));
    learnt
}

/// The SQL of `query`, or a placeholder saying why it cannot be rendered.
pub(crate) fn render<Q: QueryFragment<Pg>>(query: &Q) -> String {
    use diesel::query_builder::QueryBuilder;
    let mut builder = diesel::pg::PgQueryBuilder::default();
    match query.to_sql(&mut builder, &Pg) {
        Ok(()) => builder.finish(),
        Err(e) => format!("<cannot render query: {e}>"),
    }
}

/// The table a statement names first: after `FROM`, `INTO` or `UPDATE`,
/// outside parentheses if there is one there (`SELECT EXISTS (SELECT ...
/// FROM t)` names `t`), unqualified.
fn first_table(sql: &str) -> Option<String> {
    if let Some(table) = bare_table(sql) {
        return Some(table);
    }
    let bytes = sql.as_bytes();
    let mut depth = 0usize;
    let mut best: Option<(usize, String)> = None;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = lex::opaque_end(sql, i) {
            i = end;
            continue;
        }
        match bytes[i] {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &sql[start..i];
                let names_table = ["FROM", "INTO", "UPDATE"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k));
                if names_table
                    && best.as_ref().is_none_or(|(d, _)| depth < *d)
                    && let Some(table) = table_named(&sql[i..])
                {
                    best = Some((depth, table));
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => i += 1,
        }
    }
    best.map(|(_, table)| table)
}

/// The table named at the start of `rest`, after `FROM`, `INTO` or
/// `UPDATE`: past `ONLY` and `LATERAL`; none for a subquery (`(SELECT
/// ...)`, `(VALUES ...)`), whose own `FROM` names it.
fn table_named(rest: &str) -> Option<String> {
    let mut rest = rest;
    loop {
        rest = rest.trim_start_matches(|c: char| c == '(' || c.is_ascii_whitespace());
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        let is = |keywords: &[&str]| keywords.iter().any(|k| word.eq_ignore_ascii_case(k));
        if is(&["ONLY", "LATERAL"]) {
            rest = &rest[end..];
        } else if is(&["SELECT", "WITH", "VALUES", "TABLE"]) {
            return None;
        } else {
            return table_after(rest);
        }
    }
}

/// The table a query of a table alone names (`users::table.gino()`):
/// diesel renders such a query as the table's name, as in a `FROM`
/// clause, and selects all of it only when it runs the query.
fn bare_table(sql: &str) -> Option<String> {
    let sql = sql.trim();
    let mut rest = sql;
    loop {
        (_, rest) = lex::quoted_identifier(rest)?;
        if rest.is_empty() {
            return table_after(sql);
        }
        rest = rest.strip_prefix('.')?;
    }
}

/// The identifier at the start of `rest`, its parts joined by `.`
/// (`schema.table`).
fn table_after(rest: &str) -> Option<String> {
    // diesel writes a join as `FROM ("a" INNER JOIN "b" ON ...)`.
    let mut rest = rest.trim_start().trim_start_matches(['(', ' ']);
    let mut name = None;
    loop {
        let (part, after) = if rest.starts_with('"') {
            lex::quoted_identifier(rest)?
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                return name;
            }
            (rest[..end].to_owned(), &rest[end..])
        };
        name = Some(match name {
            Some(qualifier) => format!("{qualifier}.{part}"),
            None => part,
        });
        match after.strip_prefix('.') {
            Some(next) => rest = next,
            None => return name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SqlKind, first_table, sql_kind};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_read_for_its_table_without_a_panic(sql in crate::lex::tests::sql_text()) {
            let table = first_table(&sql);
            prop_assert!(table.as_ref().is_none_or(|t| !t.is_empty()), "{table:?} of {sql:?}");
            let _ = sql_kind(&diesel::dsl::sql::<diesel::sql_types::Integer>(&sql));
        }
    }

    #[test]
    fn finds_the_table_a_statement_names_first() {
        let table = |sql: &str| first_table(sql);
        assert_eq!(
            table(r#"SELECT 1 FROM (("s"."a" INNER JOIN "b" ON 1) LEFT JOIN "c" ON 2)"#).as_deref(),
            Some("s.a")
        );
        assert_eq!(
            table(r#"SELECT "users"."id" FROM "users" WHERE "users"."id" = $1"#).as_deref(),
            Some("users")
        );
        assert_eq!(
            table(r#"SELECT "a"."x" FROM "a" INNER JOIN "b" ON "a"."id" = "b"."a""#).as_deref(),
            Some("a")
        );
        assert_eq!(
            table(r#"INSERT INTO "reports" ("x") VALUES ($1) RETURNING "reports"."id""#).as_deref(),
            Some("reports")
        );
        assert_eq!(
            table(r#"UPDATE "app"."t" SET "x" = $1"#).as_deref(),
            Some("app.t")
        );
        assert_eq!(
            table(r#"DELETE FROM "we""ird" WHERE 1 = 1"#).as_deref(),
            Some("we\"ird")
        );
        assert_eq!(
            table(r#"SELECT EXISTS (SELECT "r"."id" FROM "r" WHERE "r"."id" = $1)"#).as_deref(),
            Some("r")
        );
        assert_eq!(
            table(r#"SELECT "t"."from" FROM t WHERE x IN (SELECT y FROM u)"#).as_deref(),
            Some("t")
        );
        assert_eq!(
            table("SELECT * FROM (SELECT * FROM reports) r").as_deref(),
            Some("reports")
        );
        assert_eq!(
            table("SELECT * FROM ONLY reports").as_deref(),
            Some("reports")
        );
        assert_eq!(
            table("SELECT * FROM LATERAL (\n  SELECT 1 FROM \"s\".reports) x").as_deref(),
            Some("s.reports")
        );
        assert_eq!(table("SELECT 'FROM x' AS a").as_deref(), None);
        assert_eq!(table("SELECT 1").as_deref(), None);
        // An identifier never closed, or empty, names no table.
        for sql in [
            r#"SELECT 1 FROM "users"#,
            r#"DELETE FROM """#,
            r#""users"#,
            r#""s".""#,
        ] {
            assert_eq!(table(sql).as_deref(), None, "{sql}");
        }
    }

    #[test]
    fn a_table_alone_names_itself_and_reads() {
        assert_eq!(first_table(r#""reports""#).as_deref(), Some("reports"));
        assert_eq!(
            first_table(r#""s"."re""ports""#).as_deref(),
            Some("s.re\"ports")
        );
        assert_eq!(first_table(r#""a" x"#).as_deref(), None);
        diesel::table! { reports (id) { id -> Integer, } }
        assert_eq!(
            sql_kind(&reports::table),
            SqlKind::Read,
            "a table alone may go to a replica"
        );
        assert_eq!(sql_kind(&diesel::delete(reports::table)), SqlKind::Write);
    }

    fn kind(sql: &str) -> SqlKind {
        sql_kind(&diesel::dsl::sql::<diesel::sql_types::Integer>(sql))
    }

    #[test]
    fn a_lock_or_a_sequence_split_over_lines_is_no_read() {
        assert_eq!(kind("SELECT\n  1"), SqlKind::Read);
        assert_eq!(kind("SELECT 1 FROM t\nFOR\n  UPDATE"), SqlKind::Lock);
        assert_eq!(kind("SELECT 1 FROM t FOR  NO KEY\tUPDATE"), SqlKind::Lock);
        assert_eq!(kind("SELECT nextval ('s')"), SqlKind::Write);
        assert_eq!(kind("select setval\n('s', 1)"), SqlKind::Write);
        assert_eq!(
            kind("SELECT nextval('s') FROM t FOR UPDATE"),
            SqlKind::Write
        );
    }

    #[test]
    fn a_setting_or_an_advisory_lock_is_no_read() {
        assert_eq!(
            kind("SELECT set_config('app.user', $1, false)"),
            SqlKind::Write
        );
        assert_eq!(kind("SELECT pg_try_advisory_lock(42)"), SqlKind::Write);
        assert_eq!(
            kind("SELECT pg_advisory_xact_lock_shared (42)"),
            SqlKind::Write
        );
        assert_eq!(kind("SELECT pg_advisory_unlock_all()"), SqlKind::Write);
        assert_eq!(kind("SELECT current_setting('app.user')"), SqlKind::Read);
        assert_eq!(kind("SELECT * FROM security_advisory_items"), SqlKind::Read);
    }

    #[test]
    fn a_query_writes_when_it_changes_data_whatever_it_selects() {
        assert_eq!(
            kind("WITH ins AS (INSERT INTO t VALUES (1) RETURNING n) SELECT n FROM ins"),
            SqlKind::Write
        );
        assert_eq!(kind("SELECT 1 AS n INTO made"), SqlKind::Write);
        assert_eq!(kind("UPDATE t SET n = 1"), SqlKind::Write);
        // Reads, on the primary all the same.
        assert_eq!(kind("with x as (select 1) select * from x"), SqlKind::Lock);
        assert_eq!(kind("(SELECT 1) UNION (SELECT 2)"), SqlKind::Lock);
        assert_eq!(kind("VALUES (1), (2)"), SqlKind::Lock);
        assert_eq!(kind("SELECT 'INSERT INTO t' AS text"), SqlKind::Read);
    }

    #[test]
    fn comments_literals_and_quotes_neither_hide_nor_make_up_words() {
        assert_eq!(kind("SELECT * FROM t FOR /* l */ UPDATE"), SqlKind::Lock);
        assert_eq!(kind("SELECT * FROM t FOR -- l\nUPDATE"), SqlKind::Lock);
        assert_eq!(
            kind(r#"SELECT "set_config"('a.b', '1', false)"#),
            SqlKind::Write
        );
        assert_eq!(kind("SELECT nextval/**/('s')"), SqlKind::Write);
        assert_eq!(
            kind("SELECT * FROM docs WHERE body = 'nextval(' -- FOR UPDATE"),
            SqlKind::Read
        );
        assert_eq!(kind("SELECT $$ FOR SHARE $$ AS x"), SqlKind::Read);
    }
}
