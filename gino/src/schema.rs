//! Schema: DDL from model metadata (GINO's `GinoSchemaVisitor`).
//!
//! [`Gino::create_all`] creates the tables of a database's models, with
//! their enum types, constraints and indexes; [`Gino::drop_all`] drops them
//! again. Both run all their statements in one transaction, so a failure
//! leaves nothing half-created or half-dropped. [`Gino::schema_sql`] shows
//! the DDL without running it.
//!
//! Order of creation: enum types, then tables with referenced tables first
//! (foreign keys that close a cycle between tables are added afterwards
//! with `ALTER TABLE`), then indexes. Dropping goes the other way round.
//! Comments of tables and columns come with their tables. A [`Sequence`]
//! declared part of a database ([`Sequence::declare_in`]) is created
//! before its tables and dropped after them; a standalone one, and an enum
//! type apart from its tables ([`create_enum`]), are created and dropped
//! on their own.
//!
//! ```standalone_crate
//! # #[derive(gino::Model, Debug, Clone)]
//! # #[gino(table = "notes")]
//! # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
//! # async fn demo(db: &gino::Gino) -> gino::Result<()> {
//! println!("{}", db.schema_sql()); // the DDL, without running it
//! db.create_all().await?;          // CREATE TABLE IF NOT EXISTS ...
//! db.drop_all().await?;            // DROP TABLE IF EXISTS ...
//! # Ok(()) }
//! # gino_testkit::doc::run(demo);
//! ```
//!
//! ## Tables without models
//!
//! `gino::table!` declares a table in diesel's `table!` syntax, with gino's
//! attributes on the table (`db`, `index`, `unique`, `check`,
//! `foreign_key`, `comment`) and on the columns (`references` with
//! `on_delete`, `on_update`, `join`; `server_default`, `autoincrement`,
//! `unique`, `index`, `check`, `comment`, `ddl`), once for both uses: diesel gets the table for queries, and the
//! table's database learns it, so `create_all` creates it (GINO core's
//! `db.Table`). The PostgreSQL type of a column follows from its diesel
//! type; `#[gino(ddl = "...")]` names another.
//!
//! ```standalone_crate
//! use gino::prelude::*;
//!
//! static DB: Gino = Gino::new();
//!
//! gino::table! {
//!     #[gino(index(name = "user_roles_role", columns(role)))]
//!     user_roles (user_id, role) {
//!         #[gino(references = "users(id)", on_delete = "cascade")]
//!         user_id -> Integer,
//!         role -> Text,
//!         #[gino(server_default = "now()")]
//!         granted_at -> Timestamptz,
//!     }
//! }
//!
//! # async fn demo() -> gino::Result<()> {
//! # DB.status(diesel::sql_query("CREATE TABLE users (id int PRIMARY KEY)")).await?;
//! DB.create_all().await?; // CREATE TABLE IF NOT EXISTS "user_roles" ...
//! let admins: Vec<i32> = user_roles::table
//!     .filter(user_roles::role.eq("admin"))
//!     .select(user_roles::user_id)
//!     .gino()
//!     .all()
//!     .await?;
//! # Ok(()) }
//! # gino_testkit::doc::run_with(&DB, demo);
//! ```
//!
//! A column's name, type and key are the declaration's, read by diesel and
//! gino alike (`#[sql_name = "..."]` names a column in SQL); gino's
//! attributes that would change them for the DDL alone are refused:
//!
//! ```compile_fail
//! gino::table! {
//!     notes (id) {
//!         id -> Integer,
//!         #[gino(column = "body_text")] // error: use diesel's #[sql_name = "body_text"]
//!         body -> Text,
//!     }
//! }
//! # fn main() {}
//! ```

// Layer: above `model`; uses `model` (metadata), `executor` and `bind` (running DDL), `api`.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use crate::api::Gino;
use crate::bind::{Bind, Resolved};
use crate::engine::RenewOnDrop;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::model::{EnumMeta, ForeignKeyMeta, IndexKey, IndexMeta, PgEnum, TableMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Drop,
}

/// A schema operation to await: create or drop tables (with their enum
/// types, indexes and constraints). Returned by [`Gino::create_all`],
/// [`Gino::drop_all`], [`create_tables`] and [`drop_tables`].
///
/// All statements run in one managed transaction on the operation's bind
/// (a savepoint when that bind is inside a transaction already), so a
/// failing statement undoes the ones before it.
///
/// ```standalone_crate
/// # #[derive(gino::Model, Debug, Clone)]
/// # #[gino(table = "notes")]
/// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
/// # async fn demo(db: &gino::Gino, engine: &gino::Engine) -> gino::Result<()> {
/// db.create_all().checkfirst(false).bind(engine).await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[must_use = "a schema operation does nothing until awaited"]
#[derive(Debug)]
pub struct SchemaOp<'a> {
    action: Action,
    target: Target,
    checkfirst: bool,
    create_schemas: bool,
    bind: Bind<'a>,
}

/// What a [`SchemaOp`] creates or drops.
#[derive(Debug)]
enum Target {
    /// Tables, and sequences created before them (a column's default may
    /// call one) and dropped after them.
    Schema {
        tables: Vec<&'static TableMeta>,
        sequences: Vec<Sequence>,
    },
    Enum(&'static EnumMeta),
}

impl<'a> SchemaOp<'a> {
    fn new(action: Action, tables: Vec<&'static TableMeta>, bind: Bind<'a>) -> Self {
        let sequences = Vec::new();
        SchemaOp::of(action, Target::Schema { tables, sequences }, bind)
    }

    fn of(action: Action, target: Target, bind: Bind<'a>) -> Self {
        SchemaOp {
            action,
            target,
            checkfirst: true,
            create_schemas: false,
            bind,
        }
    }

    /// With `true`, creating also creates the schemas of tables declared
    /// with `#[gino(schema = "...")]` (`CREATE SCHEMA IF NOT EXISTS`), in
    /// the same transaction; by default, as in GINO, they must exist.
    /// Dropping never drops schemas.
    ///
    /// ```standalone_crate
    /// # #[derive(gino::Model, Debug, Clone)]
    /// # #[gino(table = "notes")]
    /// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.create_all().create_schemas(true).await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn create_schemas(mut self, create: bool) -> Self {
        self.create_schemas = create;
        self
    }

    /// With `true` (the default: GINO's for `create_all` and `drop_all`;
    /// GINO's per-table `gino.create()` and `gino.drop()` default to
    /// `false`, which `.checkfirst(false)` asks for) existing objects are
    /// skipped when creating (`CREATE TABLE IF NOT EXISTS`, ...) and missing ones
    /// when dropping (`DROP TABLE IF EXISTS`, ...; an enum type another
    /// table still uses is kept). With `false` the plain statements run, so
    /// an existing table fails the creation with SQLSTATE `42P07` (an
    /// existing enum type with `42710`) and a missing table the drop with
    /// `42P01`; either way nothing of the operation remains.
    ///
    /// ```standalone_crate
    /// # #[derive(gino::Model, Debug, Clone)]
    /// # #[gino(table = "notes")]
    /// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.create_all().await?;
    /// db.create_all().await?; // changes nothing
    /// let again = db.create_all().checkfirst(false).await;
    /// assert!(matches!(again, Err(gino::Error::Database(_))));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn checkfirst(mut self, checkfirst: bool) -> Self {
        self.checkfirst = checkfirst;
        self
    }

    /// Runs on `to` (an [`Engine`](crate::Engine), a [`Connection`](crate::Connection), a
    /// [`Transaction`](crate::Transaction) or a [`Gino`]) instead. Bound to
    /// a connection inside a transaction, the schema change commits or rolls
    /// back with that transaction.
    ///
    /// ```standalone_crate
    /// # #[derive(gino::Model, Debug, Clone)]
    /// # #[gino(table = "notes")]
    /// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
    /// # async fn demo(db: &gino::Gino, engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// let tx = conn.begin().await?;
    /// db.create_all().bind(&conn).await?;
    /// tx.rollback().await?; // the tables are gone again
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn bind<'b>(self, to: impl Into<Bind<'b>>) -> SchemaOp<'b> {
        SchemaOp {
            action: self.action,
            target: self.target,
            checkfirst: self.checkfirst,
            create_schemas: self.create_schemas,
            bind: to.into(),
        }
    }

    fn statements(&self) -> Vec<String> {
        let (tables, sequences) = match &self.target {
            Target::Schema { tables, sequences } => (tables, sequences),
            Target::Enum(e) => {
                return vec![match self.action {
                    Action::Create => create_type(e, self.checkfirst),
                    Action::Drop => drop_type(e, self.checkfirst),
                }];
            }
        };
        let sequence_ddl = sequences
            .iter()
            .map(|seq| seq.ddl(self.action, self.checkfirst));
        match self.action {
            Action::Create => {
                let mut schemas: Vec<&str> = Vec::new();
                if self.create_schemas {
                    let table_schemas = tables.iter().filter_map(|t| t.schema);
                    let sequence_schemas = sequences.iter().filter_map(Sequence::schema);
                    for schema in table_schemas.chain(sequence_schemas) {
                        if !schemas.contains(&schema) {
                            schemas.push(schema);
                        }
                    }
                }
                schemas
                    .into_iter()
                    .map(create_schema)
                    .chain(sequence_ddl)
                    .chain(create_statements(tables, self.checkfirst))
                    .collect()
            }
            Action::Drop => drop_statements(tables, self.checkfirst)
                .into_iter()
                .chain(sequence_ddl)
                .collect(),
        }
    }
}

impl<'a> IntoFuture for SchemaOp<'a> {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        if let (Action::Create, Target::Schema { tables, sequences }) = (self.action, &self.target)
            && let Some(clash) = name_clash(tables, sequences)
        {
            return Box::pin(std::future::ready(Err(clash)));
        }
        let statements = self.statements();
        let types = match &self.target {
            Target::Enum(_) => true,
            Target::Schema { tables, .. } => tables.iter().any(|t| !t.enums.is_empty()),
        };
        Box::pin(run_in_transaction(self.bind, statements, types))
    }
}

/// The name PostgreSQL keeps of `name`: its first 63 bytes (whole
/// characters).
fn kept(name: &str) -> &str {
    clipped(name, 63)
}

/// `name` cut to at most `bytes` bytes, at a character boundary.
fn clipped(name: &str, bytes: usize) -> &str {
    let end = (0..=name.len().min(bytes))
        .rev()
        .find(|&end| name.is_char_boundary(end))
        .unwrap_or(0);
    &name[..end]
}

/// `{first}_{second}_{label}` as PostgreSQL makes a name it chooses for a
/// constraint (`makeObjectName`): the longer of the two parts is shortened
/// until the whole fits in 63 bytes, so the label always stays.
/// Without a `second` part (a primary key's `{table}_pkey`), the first is
/// shortened alone.
fn object_name(first: &str, second: &str, label: &str) -> String {
    if second.is_empty() {
        return format!("{}_{label}", clipped(first, 63 - (label.len() + 1)));
    }
    let room = 63 - (label.len() + 1) - 1;
    let (mut a, mut b) = (first.len(), second.len());
    while a + b > room {
        if a > b {
            a -= 1;
        } else {
            b -= 1;
        }
    }
    format!("{}_{}_{label}", clipped(first, a), clipped(second, b))
}

/// Two tables, indexes, unique constraints or sequences of one schema
/// named alike: PostgreSQL names them all in one namespace, and with
/// `IF NOT EXISTS` the second would be skipped in silence (an index
/// missing, its table unindexed) rather than fail. So is a declared name
/// that PostgreSQL gives an object it names itself (`users_pkey`,
/// `users_email_key`, `users_id_seq`): that object takes it first. One
/// table declared twice, differently, is refused too.
fn name_clash(tables: &[&TableMeta], sequences: &[Sequence]) -> Option<Error> {
    let mut named: Vec<(Option<&str>, &str, String)> = Vec::new();
    // Names PostgreSQL picks (it numbers its own picks apart, so they
    // clash only with declared ones).
    let mut picked: Vec<(Option<&str>, String, String)> = Vec::new();
    let mut seen_tables: Vec<&TableMeta> = Vec::new();
    for table in tables {
        let name = table.qualified_name();
        if let Some(seen) = seen_tables.iter().find(|t| t.qualified_name() == name) {
            // A table given twice is one table; declared twice (two
            // models of one table), it must be declared alike, or which
            // declaration the database gets would be chance.
            if format!("{seen:?}") != format!("{table:?}") {
                return Some(Error::Configuration(format!(
                    "two models declare table `{name}`, differently: create_all cannot tell \
                     which to create; give one of them another table, or declare them alike"
                )));
            }
            continue;
        }
        seen_tables.push(table);
        let what = |kind: &str, name: &str| format!("{kind} `{name}` of table `{}`", table.name);
        let mut pick = |second: &str, label: &str, what: &str| {
            let name = object_name(table.name, second, label);
            let what = format!("the {what} of table `{}`", table.name);
            picked.push((table.schema, name, what));
        };
        if !table.primary_key.is_empty() {
            pick("", "pkey", "primary key");
        }
        for column in table.columns {
            if column.unique {
                pick(
                    column.name,
                    "key",
                    &format!("unique constraint of `{}`", column.name),
                );
            }
            if column.serial {
                pick(
                    column.name,
                    "seq",
                    &format!("sequence of `{}`", column.name),
                );
            }
        }
        for unique in table.uniques.iter().filter(|u| u.name.is_none()) {
            pick(&unique.columns.join("_"), "key", "unique constraint");
        }
        named.push((table.schema, table.name, format!("table `{}`", table.name)));
        for index in table.indexes {
            named.push((table.schema, index.name, what("index", index.name)));
        }
        for unique in table.uniques {
            if let Some(name) = unique.name {
                named.push((table.schema, name, what("unique constraint", name)));
            }
        }
    }
    if let Some(clash) = enum_clash(&seen_tables) {
        return Some(clash);
    }
    for sequence in sequences {
        let what = format!("sequence `{}`", sequence.name());
        named.push((sequence.schema(), sequence.name(), what));
    }
    for (i, (schema, name, first)) in named.iter().enumerate() {
        if let Some((_, _, second)) = named[i + 1..]
            .iter()
            .find(|(s, n, _)| s == schema && kept(n) == kept(name))
        {
            return Some(Error::Configuration(format!(
                "{first} and {second} have one name (as PostgreSQL keeps 63 bytes of it), \
                 and PostgreSQL names the tables, indexes and sequences of a schema in one \
                 namespace: give one of them another name"
            )));
        }
        if let Some((_, _, chosen)) = picked
            .iter()
            .find(|(s, n, _)| s == schema && n.as_str() == kept(name))
        {
            return Some(Error::Configuration(format!(
                "{first} has the name PostgreSQL gives {chosen}, which takes it first: give it \
                 another name"
            )));
        }
    }
    None
}

/// Two enum types of the tables named alike with different labels (one
/// would be created, and the other's values would not fit it), or an enum
/// type named as a table of the search path's schema, whose row type has
/// the table's name (the enum, made first, would be found in place of the
/// table, or the table refused).
fn enum_clash(tables: &[&TableMeta]) -> Option<Error> {
    let mut enums: Vec<&EnumMeta> = Vec::new();
    for e in tables.iter().flat_map(|t| t.enums.iter().copied()) {
        if let Some(known) = enums.iter().find(|known| kept(known.name) == kept(e.name)) {
            if known.variants != e.variants {
                return Some(Error::Configuration(format!(
                    "two enum types are named `{}`, with the labels {:?} and {:?}: create_all \
                     would make one of them, and the other's values would not fit it; give one \
                     of them another #[gino(type_name = \"...\")]",
                    e.name, known.variants, e.variants
                )));
            }
            continue;
        }
        if let Some(table) = tables
            .iter()
            .find(|t| t.schema.is_none() && kept(t.name) == kept(e.name))
        {
            return Some(Error::Configuration(format!(
                "the enum type `{}` has the name of table `{}`, whose row type PostgreSQL names \
                 after the table: give the enum another #[gino(type_name = \"...\")]",
                e.name, table.name
            )));
        }
        enums.push(e);
    }
    None
}

/// Runs `statements` in one managed transaction on `bind`. A `Gino` (or the
/// default one) is resolved to its engine once, so that the transaction and
/// its statements surely use the same engine, and an unbound one fails with
/// `Uninitialized` before anything runs.
///
/// With `types`, the statements create or drop enum types, which the
/// engine's connections must not remember: they are
/// [renewed](crate::Engine::renew_connections) once the transaction ends.
async fn run_in_transaction(bind: Bind<'_>, statements: Vec<String>, types: bool) -> Result<()> {
    let resolved = bind.resolve()?;
    let engine = match &resolved {
        Resolved::Connection(conn) => conn.engine(),
        Resolved::Engine(engine) => engine,
    };
    // Also when this future is dropped while the `COMMIT` is under way.
    let _renew = types.then(|| RenewOnDrop::new(engine));
    match resolved {
        Resolved::Connection(conn) => conn.transaction(execute(bind, statements)).await,
        // Inside the transaction, the engine's contextual connection is the
        // transaction's, so the statements run in it.
        Resolved::Engine(engine) => {
            engine
                .transaction(execute(Bind::Engine(&engine), statements))
                .await
        }
    }
}

/// The advisory lock every schema change of gino holds for its
/// transaction: PostgreSQL's `IF NOT EXISTS` / `IF EXISTS` are not safe
/// against a concurrent twin (two instances of an app starting at once, each
/// running `create_all`, would both find a table missing and one would fail
/// on the catalog's unique index), so the second waits for the first to
/// commit and then finds everything in place. An arbitrary, fixed key.
const SCHEMA_LOCK_KEY: i64 = 0x0067_696e_6f64_646c; // "ginoddl"

async fn execute(on: Bind<'_>, statements: Vec<String>) -> Result<()> {
    if statements.is_empty() {
        return Ok(());
    }
    let lock = format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})");
    for sql in std::iter::once(lock).chain(statements) {
        Executor::new(diesel::sql_query(sql), on).status().await?;
    }
    Ok(())
}

impl Gino {
    /// Creates the tables of this database's models ([`Gino::models`]) with
    /// their enum types, constraints and indexes, referenced tables first;
    /// GINO's `db.gino.create_all()`. Skips what exists unless
    /// [`checkfirst(false)`](SchemaOp::checkfirst). Two tables, indexes,
    /// named unique constraints or sequences of one schema named alike are
    /// [`Error::Configuration`] before anything runs: PostgreSQL names
    /// them in one namespace, and the second would be skipped as existing.
    /// So is one named as PostgreSQL names a key, a unique constraint or a
    /// serial's sequence itself (`users_pkey`, `users_email_key`).
    ///
    /// Schema changes of gino wait for each other (a transaction-level
    /// advisory lock), so instances of an app that start at once and each
    /// run `create_all` do not collide: the later ones find the tables in
    /// place.
    ///
    /// `create_all` creates what is missing but never alters what exists
    /// (a table that exists is skipped with its indexes and comments, also
    /// those the model gained since);
    /// for a schema that evolves, use migrations instead
    /// ([`crate::migrate`], [`Gino::run_migrations`]), as GINO recommends
    /// Alembic.
    ///
    /// ```standalone_crate
    /// # #[derive(gino::Model, Debug, Clone)]
    /// # #[gino(table = "notes")]
    /// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.create_all().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn create_all(&self) -> SchemaOp<'_> {
        self.schema_op(Action::Create)
    }

    /// Drops the tables of this database's models, referencing tables
    /// first, and then their enum types; GINO's `db.gino.drop_all()`.
    /// Skips what is missing unless [`checkfirst(false)`](SchemaOp::checkfirst).
    ///
    /// An enum type created again gets a new OID, and each connection
    /// remembers the OIDs it looked up. So after a schema change of gino
    /// that touches enum types (and after migrations that ran), the engine
    /// lends none of the connections it had open again: the pool opens
    /// new ones. One held meanwhile (in a transaction that ran the change,
    /// say) keeps what it looked up until it goes back.
    ///
    /// ```standalone_crate
    /// # #[derive(gino::Model, Debug, Clone)]
    /// # #[gino(table = "notes")]
    /// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.drop_all().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn drop_all(&self) -> SchemaOp<'_> {
        self.schema_op(Action::Drop)
    }

    /// The DDL `create_all().checkfirst(false)` runs, each statement
    /// followed by `;\n`: a script for `psql` or a migration tool.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// assert_eq!(DB.schema_sql(), ""); // no models
    /// ```
    pub fn schema_sql(&self) -> String {
        self.create_all()
            .checkfirst(false)
            .statements()
            .into_iter()
            .map(|statement| statement + ";\n")
            .collect()
    }

    /// The sequences declared part of this database with
    /// [`Sequence::declare_in`], by schema and name.
    ///
    /// ```
    /// use gino::schema::Sequence;
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// Sequence::new("tickets").declare_in(&DB);
    /// assert_eq!(DB.sequences(), [Sequence::new("tickets")]);
    /// ```
    pub fn sequences(&self) -> Vec<Sequence> {
        let declared = crate::sync::lock(&DECLARED_SEQUENCES);
        let mut sequences: Vec<Sequence> = declared
            .iter()
            .filter(|(db, _)| std::ptr::eq(*db, self))
            .map(|(_, sequence)| sequence.clone())
            .collect();
        sequences.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        sequences
    }

    /// `create_all` or `drop_all`: the models' tables by name (the
    /// registry's order is not defined, and the DDL must not change from
    /// one build to the next) and the declared sequences.
    fn schema_op(&self, action: Action) -> SchemaOp<'_> {
        let mut tables = self.models();
        tables.sort_by_key(|table| table.name);
        let sequences = self.sequences();
        SchemaOp::of(action, Target::Schema { tables, sequences }, Bind::Db(self))
    }
}

/// Sequences declared part of a database's schema, with their database.
static DECLARED_SEQUENCES: std::sync::Mutex<Vec<(&'static Gino, Sequence)>> =
    std::sync::Mutex::new(Vec::new());

/// A sequence (GINO's `db.Sequence("blog_seq", schema=...)`): created and
/// dropped on its own, or with a database's tables once
/// [declared](Self::declare_in) part of it; its next value read with
/// [`next_value`](Self::next_value).
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// use gino::schema::Sequence;
/// let tickets = Sequence::new("tickets");
/// tickets.create().bind(db).await?; // CREATE SEQUENCE IF NOT EXISTS "tickets"
/// assert!(db.has_sequence("tickets").await?);
/// let first: i64 = db.one(diesel::select(tickets.next_value())).await?;
/// assert_eq!(first, 1);
/// tickets.drop().bind(db).await?;
/// assert!(!db.has_sequence("tickets").await?);
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    name: String,
    schema: Option<String>,
}

impl Sequence {
    /// The sequence `name`, in the search path's first schema.
    ///
    /// ```
    /// assert_eq!(gino::schema::Sequence::new("tickets").name(), "tickets");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Sequence {
            name: name.into(),
            schema: None,
        }
    }

    /// The sequence in `schema`; creating it with
    /// [`create_schemas(true)`](SchemaOp::create_schemas) creates the
    /// schema too.
    ///
    /// ```
    /// let seq = gino::schema::Sequence::new("tickets").in_schema("app");
    /// assert_eq!(seq.schema(), Some("app"));
    /// ```
    pub fn in_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The sequence's name.
    ///
    /// ```
    /// assert_eq!(gino::schema::Sequence::new("tickets").name(), "tickets");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sequence's schema, if given.
    ///
    /// ```
    /// assert_eq!(gino::schema::Sequence::new("tickets").schema(), None);
    /// ```
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Creates the sequence on the default database (`.bind(..)` for
    /// another); skips an existing one unless
    /// [`checkfirst(false)`](SchemaOp::checkfirst).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let seq = gino::schema::Sequence::new("tickets");
    /// seq.create().bind(db).await?;
    /// seq.create().bind(db).await?; // exists: skipped
    /// assert!(seq.create().checkfirst(false).bind(db).await.is_err());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn create(&self) -> SchemaOp<'static> {
        self.alone(Action::Create)
    }

    /// Drops the sequence on the default database (`.bind(..)` for
    /// another); a missing one is no error unless
    /// [`checkfirst(false)`](SchemaOp::checkfirst).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let seq = gino::schema::Sequence::new("tickets");
    /// seq.drop().bind(db).await?; // none: nothing to do
    /// assert!(seq.drop().checkfirst(false).bind(db).await.is_err());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn drop(&self) -> SchemaOp<'static> {
        self.alone(Action::Drop)
    }

    /// `nextval(...)` of the sequence, for a select or an insert.
    ///
    /// ```
    /// let seq = gino::schema::Sequence::new("tickets").in_schema("app");
    /// let q = diesel::select(seq.next_value());
    /// assert_eq!(gino::Compiled::of(&q).sql(), "SELECT nextval('\"app\".\"tickets\"')");
    /// ```
    pub fn next_value(&self) -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
        let name = TableName(self.schema.as_deref(), &self.name).to_string();
        diesel::dsl::sql(&format!("nextval({})", literal(&name)))
    }

    /// Declares the sequence part of `db`'s schema, as GINO's
    /// `db.Sequence(..., metadata=db)`: [`Gino::create_all`] creates it
    /// before the tables (a column's default may call it),
    /// [`Gino::drop_all`] drops it after them, and [`Gino::schema_sql`]
    /// lists it. Declaring it again changes nothing. Returns the sequence,
    /// for [`next_value`](Self::next_value).
    ///
    /// ```
    /// use gino::schema::Sequence;
    /// static DB: gino::Gino = gino::Gino::secondary();
    ///
    /// # async fn demo() -> gino::Result<()> {
    /// let tickets = Sequence::new("tickets").declare_in(&DB);
    /// assert!(DB.schema_sql().contains("CREATE SEQUENCE \"tickets\""));
    /// DB.create_all().await?;
    /// assert_eq!(DB.one::<i64, _>(diesel::select(tickets.next_value())).await?, 1);
    /// DB.drop_all().await?;
    /// assert!(!DB.has_sequence("tickets").await?);
    /// # Ok(()) }
    /// # gino_testkit::doc::run_with(&DB, demo);
    /// ```
    pub fn declare_in(self, db: &'static Gino) -> Self {
        let mut declared = crate::sync::lock(&DECLARED_SEQUENCES);
        let known = declared
            .iter()
            .any(|(d, sequence)| std::ptr::eq(*d, db) && *sequence == self);
        if !known {
            declared.push((db, self.clone()));
        }
        self
    }

    /// Creating or dropping the sequence on its own, on the default
    /// database.
    fn alone(&self, action: Action) -> SchemaOp<'static> {
        let target = Target::Schema {
            tables: Vec::new(),
            sequences: vec![self.clone()],
        };
        SchemaOp::of(action, target, Bind::Default)
    }

    fn ddl(&self, action: Action, checkfirst: bool) -> String {
        let name = TableName(self.schema.as_deref(), &self.name);
        let (verb, guard) = match action {
            Action::Create => ("CREATE", "IF NOT EXISTS "),
            Action::Drop => ("DROP", "IF EXISTS "),
        };
        let guard = if checkfirst { guard } else { "" };
        format!("{verb} SEQUENCE {guard}{name}")
    }
}

/// Creates the enum type `E` (of `#[derive(DbEnum)]`) on its own, on the
/// default database (`.bind(..)` for another); GINO's
/// `Blog.number.type.create_async(engine, checkfirst=True)`. `create_all`
/// creates the types its tables use anyway.
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
/// #[gino(type_name = "mood")]
/// enum Mood { Happy, Sad }
///
/// gino::schema::create_enum::<Mood>().bind(db).await?;
/// assert!(db.has_type("mood").await?);
/// gino::schema::drop_enum::<Mood>().bind(db).await?;
/// assert!(!db.has_type("mood").await?);
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub fn create_enum<E: PgEnum>() -> SchemaOp<'static> {
    SchemaOp::of(Action::Create, Target::Enum(E::META), Bind::Default)
}

/// Drops the enum type `E` on the default database (`.bind(..)` for
/// another); with `checkfirst` (the default) a missing type, or one a
/// table still uses, is left alone.
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
/// #[gino(type_name = "mood")]
/// enum Mood { Happy, Sad }
///
/// gino::schema::drop_enum::<Mood>().bind(db).await?; // none: nothing to do
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub fn drop_enum<E: PgEnum>() -> SchemaOp<'static> {
    SchemaOp::of(Action::Drop, Target::Enum(E::META), Bind::Default)
}

fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", Ident(schema))
}

/// Creates exactly `tables` (with their enum types, constraints and
/// indexes) on `bind`, in dependency order; `User::create_table()` of
/// `#[derive(Model)]` is this for one table.
///
/// ```
/// # async fn demo(engine: &'static gino::Engine) -> gino::Result<()> {
/// use gino::model::{ColumnMeta, TableMeta};
/// static NOTES: TableMeta = TableMeta {
///     schema: None,
///     name: "notes",
///     columns: &[ColumnMeta {
///         name: "body",
///         sql_type: "text",
///         nullable: false,
///         serial: false,
///         server_default: None,
///         unique: false,
///         comment: None,
///     }],
///     primary_key: &[],
///     indexes: &[],
///     uniques: &[],
///     checks: &[],
///     foreign_keys: &[],
///     enums: &[],
///     comment: None,
/// };
/// gino::schema::create_tables(vec![&NOTES], gino::Bind::Engine(engine)).await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub fn create_tables(tables: Vec<&'static TableMeta>, bind: Bind<'static>) -> SchemaOp<'static> {
    SchemaOp::new(Action::Create, tables, bind)
}

/// Drops exactly `tables` on `bind`, referencing tables first, and then
/// their enum types; `User::drop_table()` of `#[derive(Model)]` is this for
/// one table. With `checkfirst` (the default), an enum type that another
/// table still uses is kept.
///
/// ```
/// # #[derive(gino::Model, Debug, Clone)]
/// # #[gino(table = "notes")]
/// # pub struct Note { #[gino(primary_key)] pub id: i32, pub body: String }
/// # async fn demo() -> gino::Result<()> {
/// use gino::model::Model;
/// # Note::create_table().await?;
/// gino::schema::drop_tables(vec![Note::TABLE], gino::Bind::Default).await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub fn drop_tables(tables: Vec<&'static TableMeta>, bind: Bind<'static>) -> SchemaOp<'static> {
    SchemaOp::new(Action::Drop, tables, bind)
}

/// The statements that create `tables`: enum types, tables (referenced ones
/// first), each followed by its comments and indexes, then foreign keys
/// that close a cycle between tables. A table name given twice is created
/// once. With `checkfirst`, a table with comments or indexes goes in one
/// `DO` block with them, which skips them all when the table exists.
///
/// ```
/// use gino::model::{ColumnMeta, IndexKey, IndexMeta, TableMeta};
/// static TAGS: TableMeta = TableMeta {
///     schema: None,
///     name: "tags",
///     columns: &[ColumnMeta {
///         name: "label",
///         sql_type: "text",
///         nullable: true,
///         serial: false,
///         server_default: Some("'new'"),
///         unique: true,
///         comment: None,
///     }],
///     primary_key: &[],
///     indexes: &[IndexMeta { name: "tags_label", keys: &[IndexKey::Column("label")], unique: false }],
///     uniques: &[],
///     checks: &[],
///     foreign_keys: &[],
///     enums: &[],
///     comment: None,
/// };
/// assert_eq!(
///     gino::schema::create_statements(&[&TAGS], false),
///     [
///         "CREATE TABLE \"tags\" (\n    \"label\" text DEFAULT 'new' UNIQUE\n)",
///         "CREATE INDEX \"tags_label\" ON \"tags\" (\"label\")",
///     ]
/// );
/// let checked = gino::schema::create_statements(&[&TAGS], true);
/// assert_eq!(checked.len(), 1);
/// assert!(checked[0].starts_with("DO $gino$ BEGIN IF to_regclass("));
/// ```
pub fn create_statements(tables: &[&TableMeta], checkfirst: bool) -> Vec<String> {
    let plan = Plan::of(tables);
    let mut statements: Vec<String> = plan
        .enums()
        .into_iter()
        .map(|e| create_type(e, checkfirst))
        .collect();
    for table in &plan.tables {
        let create = create_table(table, &plan, checkfirst);
        // Right after their table, indexes: a unique index may be what a
        // later table's foreign key, or a deferred one, references.
        let with_it: Vec<String> = comments(table)
            .chain(
                table
                    .indexes
                    .iter()
                    .map(|index| create_index(table, index, checkfirst)),
            )
            .collect();
        if with_it.is_empty() {
            statements.push(create);
        } else if checkfirst {
            // An existing table is skipped with its comments and indexes,
            // as SQLAlchemy's `checkfirst` skips it: an index the model
            // gained since the table was made may name a column the table
            // lacks, or lock a large table while it builds. Looked for
            // where `CREATE TABLE` makes it: an unqualified name in the
            // current schema, not in the whole search path (a table of a
            // later schema, or a temporary one, is another table).
            let name = literal(&TableName::of(table).to_string());
            let exists = match table.schema {
                Some(_) => format!("to_regclass({name})"),
                None => format!("to_regclass(quote_ident(current_schema()) || '.' || {name})"),
            };
            statements.push(do_block(&format!(
                "BEGIN IF {exists} IS NULL THEN {create}; {}; END IF; END",
                with_it.join("; ")
            )));
        } else {
            statements.push(create);
            statements.extend(with_it);
        }
    }
    statements.extend(plan.deferred.iter().map(|fk| fk.add(checkfirst)));
    statements
}

/// The statements that drop `tables`: foreign keys that close a cycle
/// between tables, tables (referencing ones first), then their enum types.
///
/// ```
/// use gino::model::{EnumMeta, TableMeta};
/// static MOOD: EnumMeta = EnumMeta { name: "mood", variants: &["sad", "happy"] };
/// static PEOPLE: TableMeta = TableMeta {
///     schema: None,
///     name: "people",
///     columns: &[],
///     primary_key: &[],
///     indexes: &[],
///     uniques: &[],
///     checks: &[],
///     foreign_keys: &[],
///     enums: &[&MOOD],
///     comment: None,
/// };
/// assert_eq!(
///     gino::schema::drop_statements(&[&PEOPLE], false),
///     ["DROP TABLE \"people\"", "DROP TYPE \"mood\""]
/// );
/// ```
pub fn drop_statements(tables: &[&TableMeta], checkfirst: bool) -> Vec<String> {
    let plan = Plan::of(tables);
    let mut statements: Vec<String> = plan.deferred.iter().map(|fk| fk.drop(checkfirst)).collect();
    let if_exists = if checkfirst { "IF EXISTS " } else { "" };
    statements.extend(
        plan.tables
            .iter()
            .rev()
            .map(|t| format!("DROP TABLE {if_exists}{}", TableName::of(t))),
    );
    statements.extend(plan.enums().into_iter().map(|e| drop_type(e, checkfirst)));
    statements
}

/// The tables in creation order, and the foreign keys that are created
/// after all tables because they close a cycle between tables.
struct Plan<'t> {
    tables: Vec<&'t TableMeta>,
    deferred: Vec<Deferred<'t>>,
}

impl<'t> Plan<'t> {
    /// Sorts `input` so that every table comes after the tables it
    /// references, moving tables only as far as their references require.
    ///
    /// Every foreign key between two tables that reference each other,
    /// directly or through others, is deferred: then the rest of the
    /// references form no cycle, and which keys are deferred does not
    /// depend on the input order. References to tables outside `input`
    /// and to the table itself need no order.
    fn of(input: &[&'t TableMeta]) -> Self {
        let mut tables: Vec<&'t TableMeta> = Vec::with_capacity(input.len());
        for &table in input {
            if !tables
                .iter()
                .any(|t| t.qualified_name() == table.qualified_name())
            {
                tables.push(table);
            }
        }
        // A reference names `schema.table`, or a table without a schema
        // (the search path's), else of any schema: a same-named table of
        // another schema is not the one an unqualified reference means
        // when the set has that one. A qualified one finds a table of no
        // declared schema when no table is declared in its schema.
        let position = |fk: &ForeignKeyMeta| {
            let (schema, name) = fk.target();
            let exact = tables
                .iter()
                .position(|t| t.name == name && t.schema == schema);
            exact.or_else(|| match schema {
                None => tables.iter().position(|t| t.name == name),
                // A table declared without a schema is in the search
                // path's first one, `public` as a rule: likely the one
                // meant, and coming after it costs nothing if not.
                Some(_) => tables
                    .iter()
                    .position(|t| t.name == name && t.schema.is_none()),
            })
        };
        // references[i]: positions of the other tables that table i references.
        let references: Vec<Vec<usize>> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.foreign_keys
                    .iter()
                    .filter_map(position)
                    .filter(|&j| j != i)
                    .collect()
            })
            .collect();
        let mut deferred = Vec::new();
        let mut ordering: Vec<Vec<usize>> = vec![Vec::new(); tables.len()];
        for (i, table) in tables.iter().enumerate() {
            for fk in table.foreign_keys {
                match position(fk) {
                    Some(j) if j != i && reaches(&references, j, i) => {
                        deferred.push(Deferred { table, fk })
                    }
                    Some(j) if j != i => ordering[i].push(j),
                    _ => {}
                }
            }
        }
        let mut placed = vec![false; tables.len()];
        let mut order = Vec::with_capacity(tables.len());
        for i in 0..tables.len() {
            place(i, &ordering, &mut placed, &mut order);
        }
        Plan {
            tables: order.into_iter().map(|i| tables[i]).collect(),
            deferred,
        }
    }

    /// The enum types of the tables, each once, in table order.
    fn enums(&self) -> Vec<&'t EnumMeta> {
        let mut enums: Vec<&'t EnumMeta> = Vec::new();
        for e in self.tables.iter().flat_map(|t| t.enums.iter().copied()) {
            if !enums.iter().any(|known| known.name == e.name) {
                enums.push(e);
            }
        }
        enums
    }

    fn is_deferred(&self, fk: &ForeignKeyMeta) -> bool {
        self.deferred.iter().any(|d| std::ptr::eq(d.fk, fk))
    }
}

/// Whether table `to` can be reached from table `from` along `edges`.
fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        if i == to {
            return true;
        }
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(&edges[i]);
        }
    }
    false
}

/// Appends table `i` to `order` after the tables it must follow (depth
/// first). The edges form no cycle, so the depth is at most the number of
/// tables; `placed` is set before descending all the same, so that a cycle
/// could not recurse forever.
fn place(i: usize, edges: &[Vec<usize>], placed: &mut [bool], order: &mut Vec<usize>) {
    if std::mem::replace(&mut placed[i], true) {
        return;
    }
    for &j in &edges[i] {
        place(j, edges, placed, order);
    }
    order.push(i);
}

/// A foreign key added with `ALTER TABLE` once all tables exist.
struct Deferred<'t> {
    table: &'t TableMeta,
    fk: &'t ForeignKeyMeta,
}

impl Deferred<'_> {
    /// The constraint's name: the declared one, else the one PostgreSQL
    /// would choose. It is always spelled out, so that `checkfirst` can
    /// recognise the constraint when adding it again and the drop can
    /// remove it before the tables.
    fn name(&self) -> String {
        match self.fk.name {
            Some(name) => name.to_owned(),
            None => object_name(kept(self.table.name), &self.fk.columns.join("_"), "fkey"),
        }
    }

    fn add(&self, checkfirst: bool) -> String {
        let name = self.name();
        let sql = format!(
            "ALTER TABLE {} ADD {}",
            TableName::of(self.table),
            constraint(Some(&name), &foreign_key(self.fk))
        );
        if checkfirst {
            ignoring("duplicate_object", &sql)
        } else {
            sql
        }
    }

    fn drop(&self, checkfirst: bool) -> String {
        let if_exists = if checkfirst { "IF EXISTS " } else { "" };
        format!(
            "ALTER TABLE {if_exists}{} DROP CONSTRAINT {if_exists}{}",
            TableName::of(self.table),
            Ident(&self.name())
        )
    }
}

/// An identifier, double-quoted, with `"` doubled.
struct Ident<'s>(&'s str);

impl fmt::Display for Ident<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.replace('"', "\"\""))
    }
}

/// A table's (or a sequence's) name in SQL: `"schema"."name"` or `"name"`.
struct TableName<'s>(Option<&'s str>, &'s str);

impl<'s> TableName<'s> {
    fn of(table: &'s TableMeta) -> Self {
        TableName(table.schema, table.name)
    }

    /// The table a foreign key references.
    fn referenced(fk: &ForeignKeyMeta) -> Self {
        let (schema, name) = fk.target();
        TableName(schema, name)
    }
}

impl fmt::Display for TableName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = self.0 {
            write!(f, "{}.", Ident(schema))?;
        }
        write!(f, "{}", Ident(self.1))
    }
}

/// `"a", "b"`
fn idents(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| Ident(n).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string literal, with `'` doubled. One with a backslash is an escape
/// string (`E'...'`) with the backslash doubled: a plain literal's
/// backslash escapes the quote after it on a server (or session) with
/// `standard_conforming_strings` off, and would end the literal there.
fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `statement` in a `DO` block that ignores the error `condition`: how to
/// say "unless it exists" where PostgreSQL has no `IF NOT EXISTS`.
fn ignoring(condition: &str, statement: &str) -> String {
    do_block(&format!(
        "BEGIN {statement}; EXCEPTION WHEN {condition} THEN NULL; END"
    ))
}

/// `body` (PL/pgSQL) as a `DO` statement.
fn do_block(body: &str) -> String {
    // The dollar quote must not occur in the body it quotes.
    let mut tag = String::from("$gino$");
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$gino{n}$");
    }
    format!("DO {tag} {body} {tag}")
}

fn create_type(e: &EnumMeta, checkfirst: bool) -> String {
    let labels: Vec<String> = e.variants.iter().map(|v| literal(v)).collect();
    let sql = format!(
        "CREATE TYPE {} AS ENUM ({})",
        Ident(e.name),
        labels.join(", ")
    );
    if checkfirst {
        ignoring("duplicate_object", &sql)
    } else {
        sql
    }
}

fn drop_type(e: &EnumMeta, checkfirst: bool) -> String {
    if checkfirst {
        // A type some other table still uses stays, instead of failing
        // the whole drop: e.g. dropping one of two tables sharing it.
        let sql = format!("DROP TYPE IF EXISTS {}", Ident(e.name));
        ignoring("dependent_objects_still_exist", &sql)
    } else {
        format!("DROP TYPE {}", Ident(e.name))
    }
}

/// `[CONSTRAINT "name"] body`
fn constraint(name: Option<&str>, body: &str) -> String {
    match name {
        Some(name) => format!("CONSTRAINT {} {body}", Ident(name)),
        None => body.to_owned(),
    }
}

/// `FOREIGN KEY (...) REFERENCES "t" (...) [ON DELETE x] [ON UPDATE y]`;
/// without referenced columns the referenced table's primary key is meant.
fn foreign_key(fk: &ForeignKeyMeta) -> String {
    let mut sql = format!(
        "FOREIGN KEY ({}) REFERENCES {}",
        idents(fk.columns),
        TableName::referenced(fk)
    );
    if !fk.references_columns.is_empty() {
        sql += &format!(" ({})", idents(fk.references_columns));
    }
    if let Some(action) = fk.on_delete {
        sql += &format!(" ON DELETE {action}");
    }
    if let Some(action) = fk.on_update {
        sql += &format!(" ON UPDATE {action}");
    }
    sql
}

fn create_table(table: &TableMeta, plan: &Plan<'_>, checkfirst: bool) -> String {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            // The table's enum types are created by their exact (quoted)
            // name, which a column must then also use: unquoted, `Mood`
            // would mean `mood`.
            let mut sql = if table.enums.iter().any(|e| e.name == c.sql_type) {
                format!("{} {}", Ident(c.name), Ident(c.sql_type))
            } else {
                format!("{} {}", Ident(c.name), c.sql_type)
            };
            if !c.nullable {
                sql += " NOT NULL";
            }
            if let Some(default) = c.server_default {
                sql += &format!(" DEFAULT {default}");
            }
            if c.unique {
                sql += " UNIQUE";
            }
            sql
        })
        .collect();
    if !table.primary_key.is_empty() {
        lines.push(format!("PRIMARY KEY ({})", idents(table.primary_key)));
    }
    lines.extend(
        table
            .uniques
            .iter()
            .map(|u| constraint(u.name, &format!("UNIQUE ({})", idents(u.columns)))),
    );
    lines.extend(
        table
            .checks
            .iter()
            .map(|c| constraint(c.name, &format!("CHECK ({})", c.expression))),
    );
    lines.extend(
        table
            .foreign_keys
            .iter()
            .filter(|fk| !plan.is_deferred(fk))
            .map(|fk| constraint(fk.name, &foreign_key(fk))),
    );
    let if_not_exists = if checkfirst { "IF NOT EXISTS " } else { "" };
    let body = if lines.is_empty() {
        "()".to_owned()
    } else {
        format!("(\n    {}\n)", lines.join(",\n    "))
    };
    format!(
        "CREATE TABLE {if_not_exists}{} {body}",
        TableName::of(table)
    )
}

/// `COMMENT ON` the table and its columns that have one.
fn comments(table: &TableMeta) -> impl Iterator<Item = String> + '_ {
    let name = TableName::of(table);
    let on_table = table
        .comment
        .map(|comment| format!("COMMENT ON TABLE {name} IS {}", literal(comment)));
    let on_columns = table.columns.iter().filter_map(move |column| {
        let comment = column.comment?;
        Some(format!(
            "COMMENT ON COLUMN {name}.{} IS {}",
            Ident(column.name),
            literal(comment)
        ))
    });
    on_table.into_iter().chain(on_columns)
}

fn create_index(table: &TableMeta, index: &IndexMeta, checkfirst: bool) -> String {
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|key| match key {
            IndexKey::Column(name) => Ident(name).to_string(),
            IndexKey::Expression(sql) => format!("({sql})"),
        })
        .collect();
    format!(
        "CREATE {}INDEX {}{} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        if checkfirst { "IF NOT EXISTS " } else { "" },
        Ident(index.name),
        TableName::of(table),
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ColumnMeta;

    fn leak<T>(items: Vec<T>) -> &'static [T] {
        Box::leak(items.into_boxed_slice())
    }

    /// A leaked table named `name` with a foreign key to each of `refs`,
    /// on a column `<ref>_id`.
    fn table(name: &'static str, refs: &[&'static str]) -> &'static TableMeta {
        let fks = refs
            .iter()
            .map(|&target| ForeignKeyMeta {
                name: None,
                columns: leak(vec![
                    &*format!("{}_id", target.rsplit('.').next().unwrap()).leak(),
                ]),
                references_table: target,
                references_schema: None,
                references_columns: &["id"],
                on_delete: None,
                on_update: None,
            })
            .collect();
        Box::leak(Box::new(TableMeta {
            schema: None,
            name,
            columns: &[],
            primary_key: &[],
            indexes: &[],
            uniques: &[],
            checks: &[],
            foreign_keys: leak(fks),
            enums: &[],
            comment: None,
        }))
    }

    fn names(plan: &Plan<'_>) -> Vec<&'static str> {
        plan.tables.iter().map(|t| t.name).collect()
    }

    fn deferred(plan: &Plan<'_>) -> Vec<String> {
        plan.deferred
            .iter()
            .map(|d| format!("{}->{}", d.table.name, d.fk.references_table))
            .collect()
    }

    #[test]
    fn referenced_tables_come_first() {
        let plan = Plan::of(&[
            table("a", &["c"]),
            table("b", &[]),
            table("c", &["d"]),
            table("d", &[]),
        ]);
        assert_eq!(names(&plan), ["d", "c", "a", "b"]);
        assert!(plan.deferred.is_empty());
    }

    #[test]
    fn a_qualified_reference_comes_after_a_table_declared_without_a_schema() {
        let plan = Plan::of(&[table("posts", &["public.users"]), table("users", &[])]);
        assert_eq!(names(&plan), ["users", "posts"]);
    }

    #[test]
    fn chosen_constraint_names_are_shortened_as_postgresql_does() {
        assert_eq!(object_name("a", "b_id", "fkey"), "a_b_id_fkey");
        let long = "t".repeat(70);
        let name = object_name(&long, "owner_id", "fkey");
        assert_eq!(name, format!("{}_owner_id_fkey", "t".repeat(49)));
        assert_eq!(name.len(), 63);
    }

    #[test]
    fn independent_tables_keep_their_order() {
        let input = [table("z", &[]), table("a", &[]), table("m", &[])];
        assert_eq!(names(&Plan::of(&input)), ["z", "a", "m"]);
    }

    #[test]
    fn references_outside_the_set_and_to_itself_need_no_order() {
        let plan = Plan::of(&[table("a", &["elsewhere", "a"]), table("b", &["a"])]);
        assert_eq!(names(&plan), ["a", "b"]);
        assert!(plan.deferred.is_empty());
    }

    #[test]
    fn every_key_of_a_cycle_is_deferred_and_nothing_else() {
        let plan = Plan::of(&[
            table("a", &["b"]),
            table("b", &["c"]),
            table("c", &["a", "d"]),
            table("d", &[]),
            table("e", &["a"]),
        ]);
        assert_eq!(deferred(&plan), ["a->b", "b->c", "c->a"]);
        assert_eq!(names(&plan), ["a", "b", "d", "c", "e"]);
    }

    #[test]
    fn a_table_given_twice_is_planned_once() {
        let a = table("a", &[]);
        assert_eq!(names(&Plan::of(&[a, table("b", &["a"]), a])), ["a", "b"]);
    }

    #[test]
    fn cyclic_keys_are_added_and_dropped_by_name() {
        let (a, b) = (table("a", &["b"]), table("b", &["a"]));
        let create = create_statements(&[a, b], false);
        assert_eq!(
            create,
            [
                "CREATE TABLE \"a\" ()",
                "CREATE TABLE \"b\" ()",
                "ALTER TABLE \"a\" ADD CONSTRAINT \"a_b_id_fkey\" FOREIGN KEY (\"b_id\") \
                 REFERENCES \"b\" (\"id\")",
                "ALTER TABLE \"b\" ADD CONSTRAINT \"b_a_id_fkey\" FOREIGN KEY (\"a_id\") \
                 REFERENCES \"a\" (\"id\")",
            ]
        );
        assert_eq!(
            drop_statements(&[a, b], true),
            [
                "ALTER TABLE IF EXISTS \"a\" DROP CONSTRAINT IF EXISTS \"a_b_id_fkey\"",
                "ALTER TABLE IF EXISTS \"b\" DROP CONSTRAINT IF EXISTS \"b_a_id_fkey\"",
                "DROP TABLE IF EXISTS \"b\"",
                "DROP TABLE IF EXISTS \"a\"",
            ]
        );
    }

    #[test]
    fn columns_of_an_enum_type_name_it_as_it_is_created() {
        static MOOD: EnumMeta = EnumMeta {
            name: "Mood",
            variants: &["ok"],
        };
        static PEOPLE: TableMeta = TableMeta {
            schema: None,
            name: "people",
            columns: &[ColumnMeta {
                name: "mood",
                sql_type: "Mood",
                nullable: true,
                serial: false,
                server_default: None,
                unique: false,
                comment: None,
            }],
            primary_key: &[],
            indexes: &[],
            uniques: &[],
            checks: &[],
            foreign_keys: &[],
            enums: &[&MOOD],
            comment: None,
        };
        assert_eq!(
            create_statements(&[&PEOPLE], false),
            [
                "CREATE TYPE \"Mood\" AS ENUM ('ok')",
                "CREATE TABLE \"people\" (\n    \"mood\" \"Mood\"\n)",
            ]
        );
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(Ident("users").to_string(), "\"users\"");
        assert_eq!(Ident("we\"ird").to_string(), "\"we\"\"ird\"");
        assert_eq!(idents(&["a", "B c"]), "\"a\", \"B c\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"it\'s"), r"E'it\\''s'");
        assert_eq!(literal(r"C:\"), r"E'C:\\'");
    }

    #[test]
    fn do_blocks_pick_a_dollar_quote_the_statement_lacks() {
        assert_eq!(
            ignoring(
                "duplicate_object",
                "CREATE TYPE \"$gino$\" AS ENUM ('$gino1$')"
            ),
            "DO $gino2$ BEGIN CREATE TYPE \"$gino$\" AS ENUM ('$gino1$'); \
             EXCEPTION WHEN duplicate_object THEN NULL; END $gino2$"
        );
    }
    #[test]
    fn an_unqualified_reference_means_the_unqualified_table() {
        let archived: &'static TableMeta = Box::leak(Box::new(TableMeta {
            schema: Some("archive"),
            ..*table("a", &["a"])
        }));
        let a = table("a", &[]);
        let names: Vec<String> = Plan::of(&[archived, a])
            .tables
            .iter()
            .map(|t| t.qualified_name())
            .collect();
        assert_eq!(names, ["a", "archive.a"]);
    }

    #[test]
    fn qualified_tables_are_ordered_and_named_with_their_schema() {
        let in_app = |t: &'static TableMeta| -> &'static TableMeta {
            Box::leak(Box::new(TableMeta {
                schema: Some("app"),
                ..*t
            }))
        };
        // Listed first, "app.b" is still created after the "app.a" it
        // references; the plain "a" elsewhere is some other table.
        let a = in_app(table("a", &[]));
        let b = in_app(table("b", &["app.a", "elsewhere"]));
        assert_eq!(
            create_statements(&[b, a], false),
            [
                "CREATE TABLE \"app\".\"a\" ()",
                "CREATE TABLE \"app\".\"b\" (\n    FOREIGN KEY (\"a_id\") REFERENCES \"app\".\"a\" \
                 (\"id\"),\n    FOREIGN KEY (\"elsewhere_id\") REFERENCES \"elsewhere\" (\"id\")\n)",
            ]
        );
        assert_eq!(
            drop_statements(&[b, a], false),
            ["DROP TABLE \"app\".\"b\"", "DROP TABLE \"app\".\"a\""]
        );
    }
}
