//! Models: what `#[derive(Model)]` implements (GINO's `CRUDModel`), the
//! table metadata the schema layer reads, and the registry that lets a
//! [`Gino`] find its models.
//!
//! Uses: `executor` and `bind` (running its queries), `api` (the registry's
//! databases), `lex` (reading the columns an update's SET list assigns).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use diesel::Table;
use diesel::dsl::{Filter, Select};
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::query_dsl::methods::{FilterDsl, SelectDsl};
use diesel::sql_types::Bool;
use diesel_async::AsyncPgConnection;
use diesel_async::methods::ExecuteDsl;

use crate::api::Gino;
use crate::bind::Bind;
pub use crate::bind::TableRoute;
use crate::error::{Error, Result};
use crate::executor::{Executor, Status};
use crate::lex;

/// A table as declared by a model: what `create_all` turns into DDL.
///
/// `#[derive(Model)]` builds one per model as a `static`; it is public so
/// that tools (and hand-written models) can read and build it.
#[derive(Debug)]
pub struct TableMeta {
    /// Table name (GINO's `__tablename__`).
    pub name: &'static str,
    /// The schema the table is in (GINO's `__table_args__ = {'schema': ...}`);
    /// `None` for the search path's first.
    pub schema: Option<&'static str>,
    /// Columns, in declaration order.
    pub columns: &'static [ColumnMeta],
    /// Primary key column names, in key order; empty for none.
    pub primary_key: &'static [&'static str],
    /// Indexes, single- and multi-column.
    pub indexes: &'static [IndexMeta],
    /// Multi-column unique constraints (single-column ones are on the column).
    pub uniques: &'static [UniqueMeta],
    /// Table-level check constraints.
    pub checks: &'static [CheckMeta],
    /// Foreign keys.
    pub foreign_keys: &'static [ForeignKeyMeta],
    /// PostgreSQL enum types the columns use, created before the table.
    pub enums: &'static [&'static EnumMeta],
    /// The table's comment (`COMMENT ON TABLE`, GINO's `comment=`).
    pub comment: Option<&'static str>,
}

impl TableMeta {
    /// `schema.name`, or `name` without a schema: how foreign keys name the
    /// table (`#[gino(references = "app.teams(id)")]`).
    ///
    /// ```
    /// # static T: gino::model::TableMeta = gino::model::TableMeta {
    /// #     name: "users", schema: Some("app"), columns: &[], primary_key: &[], indexes: &[],
    /// #     uniques: &[], checks: &[], foreign_keys: &[], enums: &[], comment: None,
    /// # };
    /// assert_eq!(T.qualified_name(), "app.users");
    /// ```
    pub fn qualified_name(&self) -> String {
        match self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// One column of a [`TableMeta`].
#[derive(Debug)]
pub struct ColumnMeta {
    /// Column name in the database.
    pub name: &'static str,
    /// The type as written in DDL, e.g. `integer`, `text[]`, `mood`.
    pub sql_type: &'static str,
    /// Whether NULL is allowed (the field is an `Option`).
    pub nullable: bool,
    /// Assigned by the database on insert (`serial` / identity).
    pub serial: bool,
    /// SQL expression of the server-side default, if any.
    pub server_default: Option<&'static str>,
    /// A single-column unique constraint.
    pub unique: bool,
    /// The column's comment (`COMMENT ON COLUMN`, GINO's `comment=`).
    pub comment: Option<&'static str>,
}

/// An index of a [`TableMeta`].
#[derive(Debug)]
pub struct IndexMeta {
    /// Index name.
    pub name: &'static str,
    /// What is indexed, in order.
    pub keys: &'static [IndexKey],
    /// `CREATE UNIQUE INDEX`.
    pub unique: bool,
}

/// One key of an [`IndexMeta`]: a column, or an SQL expression (a JSON
/// property is indexed as the expression that reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKey {
    /// A column, by name.
    Column(&'static str),
    /// An SQL expression, e.g. `lower(email)`.
    Expression(&'static str),
}

/// A multi-column unique constraint of a [`TableMeta`].
#[derive(Debug)]
pub struct UniqueMeta {
    /// Constraint name; PostgreSQL names it when `None`.
    pub name: Option<&'static str>,
    /// Column names.
    pub columns: &'static [&'static str],
}

/// A check constraint of a [`TableMeta`].
#[derive(Debug)]
pub struct CheckMeta {
    /// Constraint name; PostgreSQL names it when `None`.
    pub name: Option<&'static str>,
    /// The boolean SQL expression.
    pub expression: &'static str,
}

/// Whether two names are one (for the derive's checks at compile time).
#[doc(hidden)]
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// What a foreign key to a model's table names, apart from the table's
/// [`TableMeta`]: `#[derive(Model)]` implements it, and a `references =
/// Model` key reads it, so that two models can reference each other (each
/// metadata reading the other's would be a cycle the compiler refuses).
#[doc(hidden)]
pub trait KeyTarget {
    /// The table's name.
    const TABLE_NAME: &'static str;
    /// The table's schema, if given.
    const TABLE_SCHEMA: Option<&'static str>;
    /// The primary key's column names.
    const PRIMARY_KEY: &'static [&'static str];
}

/// A foreign key of a [`TableMeta`].
#[derive(Debug)]
pub struct ForeignKeyMeta {
    /// Constraint name; PostgreSQL names it when `None`.
    pub name: Option<&'static str>,
    /// Referencing column names.
    pub columns: &'static [&'static str],
    /// Referenced table: `"teams"`, or schema-qualified `"app.teams"`.
    pub references_table: &'static str,
    /// The referenced table's schema, when given apart from its name.
    pub references_schema: Option<&'static str>,
    /// Referenced column names.
    pub references_columns: &'static [&'static str],
    /// `ON DELETE` action (`CASCADE`, `SET NULL`, ...), if any.
    pub on_delete: Option<&'static str>,
    /// `ON UPDATE` action, if any.
    pub on_update: Option<&'static str>,
}

impl ForeignKeyMeta {
    /// The referenced table as `(schema, name)`.
    ///
    /// ```
    /// let fk = gino::model::ForeignKeyMeta {
    ///     name: None,
    ///     columns: &["team_id"],
    ///     references_table: "app.teams",
    ///     references_schema: None,
    ///     references_columns: &["id"],
    ///     on_delete: None,
    ///     on_update: None,
    /// };
    /// assert_eq!(fk.target(), (Some("app"), "teams"));
    /// ```
    pub fn target(&self) -> (Option<&'static str>, &'static str) {
        match (
            self.references_schema,
            self.references_table.split_once('.'),
        ) {
            (Some(schema), _) => (Some(schema), self.references_table),
            (None, Some((schema, name))) => (Some(schema), name),
            (None, None) => (None, self.references_table),
        }
    }
}

/// A PostgreSQL enum type (`CREATE TYPE name AS ENUM (...)`).
#[derive(Debug)]
pub struct EnumMeta {
    /// Type name.
    pub name: &'static str,
    /// Labels, in order.
    pub variants: &'static [&'static str],
}

/// A Rust enum stored as a PostgreSQL enum type: implemented by
/// `#[derive(DbEnum)]`, which also makes the SQL type `<Enum>Type`.
///
/// Labels are the variant names in snake_case unless renamed; the type
/// name is the enum's name in snake_case unless set with `type_name`.
/// Names split into words as heck splits them, an acronym being one word
/// (`HTTPError` → `http_error`); earlier builds split an acronym letter by
/// letter (`h_t_t_p_error`), and a database made then keeps its labels with
/// `#[gino(rename = "h_t_t_p_error")]` on the variant. A
/// model field of the enum's type says `#[gino(db_enum)]`, and
/// `create_all` creates the type before the table.
///
/// ```
/// #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
/// #[gino(type_name = "mood")]
/// pub enum Mood {
///     Happy,
///     #[gino(rename = "so-so")]
///     SoSo,
/// }
///
/// use gino::model::PgEnum;
/// assert_eq!(Mood::META.name, "mood");
/// assert_eq!(Mood::META.variants, ["happy", "so-so"]);
/// ```
///
/// Each variant needs a label of its own, of at most 63 bytes (and the
/// type's name too, as PostgreSQL keeps 63 bytes of a name):
///
/// ```compile_fail
/// #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
/// pub enum Mood {
///     Happy,
///     #[gino(rename = "happy")] // error: `Happy` and `Glad` have one label
///     Glad,
/// }
/// ```
///
/// Nor an empty one:
///
/// ```compile_fail
/// #[derive(gino::DbEnum, Debug, Clone, Copy, PartialEq)]
/// pub enum Mood {
///     #[gino(rename = "")] // error: the label name `` is empty
///     Happy,
/// }
/// ```
///
/// Two enum types of one name in a database, with different labels, are
/// refused by `create_all`; give one a `type_name`.
pub trait PgEnum {
    /// The type's name and labels.
    const META: &'static EnumMeta;
}

/// Which database a model belongs to.
#[derive(Clone, Copy)]
pub enum ModelDb {
    /// Every default database (`Gino::new()`), and `.gino()`'s fallback.
    Default,
    /// The `Gino` the function returns (a `static`).
    Named(fn() -> &'static Gino),
}

impl ModelDb {
    /// Where the model's implicit queries run.
    ///
    /// ```
    /// use gino::model::ModelDb;
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// assert!(matches!(ModelDb::Default.bind(), gino::Bind::Default));
    /// let named = ModelDb::Named(|| &DB).bind();
    /// assert!(matches!(named, gino::Bind::Db(db) if std::ptr::eq(db, &DB)));
    /// ```
    pub fn bind(self) -> Bind<'static> {
        match self {
            ModelDb::Default => Bind::Default,
            ModelDb::Named(db) => Bind::Db(db()),
        }
    }

    pub(crate) fn includes(self, db: &Gino) -> bool {
        match self {
            ModelDb::Default => db.is_default(),
            ModelDb::Named(f) => std::ptr::eq(f(), db),
        }
    }
}

impl std::fmt::Debug for ModelDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelDb::Default => "ModelDb::Default",
            ModelDb::Named(_) => "ModelDb::Named",
        })
    }
}

/// A model's entry in the registry `Gino::create_all` reads;
/// `#[derive(Model)]` submits one per model.
#[derive(Debug)]
pub struct ModelEntry {
    /// The model's table.
    pub table: &'static TableMeta,
    /// The model's database.
    pub db: ModelDb,
}

inventory::collect!(ModelEntry);

impl Gino {
    /// The tables of the models that belong to this database, in
    /// declaration-independent (registration) order.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// assert!(DB.models().is_empty());
    /// ```
    pub fn models(&self) -> Vec<&'static TableMeta> {
        inventory::iter::<ModelEntry>
            .into_iter()
            .filter(|entry| entry.db.includes(self))
            .map(|entry| entry.table)
            .collect()
    }
}

/// The WHERE condition that locates one row of table `T` (GINO's
/// `lookup()`): by default the primary key's current values.
///
/// diesel's boxed expressions are neither `Send` nor `Sync`, which the
/// futures of a web handler must be; this holds the condition (checked
/// against the table when built) as a plain SQL fragment that is both.
///
/// ```
/// use gino::model::Lookup;
/// use gino::prelude::*;
///
/// diesel::table! { users (id) { id -> Integer, nickname -> Text } }
///
/// let lookup: Lookup<users::table> = Lookup::new(users::nickname.eq("daisy"));
/// let q = users::table.filter(lookup).select(users::id);
/// assert!(q.gino().compile().sql().ends_with("WHERE (\"users\".\"nickname\" = $1)"));
/// ```
pub struct Lookup<T> {
    condition: Box<dyn QueryFragment<Pg> + Send + Sync>,
    table: PhantomData<fn() -> T>,
}

impl<T> Lookup<T> {
    /// A condition on the columns of table `T`.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// use gino::model::Lookup;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "settings", lookup = by_key)]
    /// # pub struct Setting { #[gino(unique)] pub key: String, pub value: String }
    /// // The lookup of `#[gino(table = "settings", lookup = by_key)]`, a model without a key:
    /// fn by_key(s: &Setting) -> gino::Result<Lookup<settings::table>> {
    ///     Ok(Lookup::new(settings::key.eq(s.key.clone())))
    /// }
    /// # async fn demo() -> gino::Result<()> {
    /// # Setting::create_table().await?;
    /// let theme = Setting::create().key("theme").value("dark").await?;
    /// assert_eq!(theme.delete().await?, "DELETE 1"); // located by `by_key`
    /// # Ok(()) }
    /// # fn main() { gino_testkit::doc::run(demo) }
    /// ```
    pub fn new<E>(condition: E) -> Self
    where
        E: BoxableExpression<T, Pg, SqlType = Bool> + Send + Sync + 'static,
    {
        Lookup {
            condition: Box::new(condition),
            table: PhantomData,
        }
    }
}

impl<T> diesel::Expression for Lookup<T> {
    type SqlType = Bool;
}

impl<T> diesel::AppearsOnTable<T> for Lookup<T> {}

impl<T> diesel::SelectableExpression<T> for Lookup<T> {}

impl<T, GB> diesel::expression::ValidGrouping<GB> for Lookup<T> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<T> QueryFragment<Pg> for Lookup<T> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.condition.walk_ast(out)
    }
}

impl<T> QueryId for Lookup<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// What every model is: implemented by `#[derive(Model)]`, which also adds
/// the class-level API as inherent functions (`User::create()`,
/// `User::get(pk)`, `User::query()`, `User::select(columns)`,
/// `User::create_table()`, `User::drop_table()`).
///
/// The instance-level API is this trait's (`use gino::prelude::*`):
/// `user.create()`, `user.query()`, `user.select(columns)`,
/// `user.update()...apply()`, `user.delete()`. Every call runs implicitly on
/// the model's database; chain `.bind(...)` or `.timeout(...)` before
/// `.await` to change that.
///
/// A model is a plain value: nothing is tracked, and getting the same row
/// twice gives two values. The derive declares the diesel table too (a
/// module named after the table, `users::table`, `users::nickname`, the
/// same module diesel's `table!` makes), through gino's re-export of
/// diesel: a crate needs no `diesel` dependency of its own for models.
///
/// ```standalone_crate
/// use gino::prelude::*;
///
/// static DB: Gino = Gino::new();
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "users")]
/// pub struct User {
///     #[gino(primary_key)]
///     pub id: i32, // serial: one integer key is assigned by the database
///     #[gino(default = "noname")]
///     pub nickname: String,
///     #[gino(column = "mail", unique)]
///     pub email: Option<String>,
///     #[gino(server_default = "0", check = "balance >= 0")]
///     pub balance: i64,
/// }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "bookings", index(name = "bookings_idx_day_room", columns(day, room), unique))]
/// pub struct Booking {
///     #[gino(primary_key)]
///     pub day: i32,
///     #[gino(primary_key, references = "users(id)", on_delete = "cascade")]
///     pub booker: i32,
///     #[gino(index)]
///     pub room: String,
/// }
///
/// # async fn demo() -> gino::Result<()> {
/// DB.create_all().await?;
/// let mut u = User::create().nickname("fantix").await?;
/// let same: Option<User> = User::get(u.id).await?;
/// let rich: Vec<User> = User::query().filter(users::balance.gt(100)).gino().all().await?;
/// u.update()
///     .nickname("daisy")
///     .set(users::balance.eq(users::balance + 100))
///     .apply()
///     .await?;
/// Booking::create().day(1).booker(u.id).room("A").await?;
/// let booking = Booking::get((1, u.id)).await?.expect("just created");
/// assert_eq!(u.delete().await?, "DELETE 1");
///
/// // A value in memory first, with the client defaults; inserted later.
/// let draft = User::create().email("d@example.com".to_owned()).build()?;
/// assert_eq!((draft.id, draft.nickname.as_str()), (0, "noname"));
/// let stored = draft.create().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run_with(&DB, demo);
/// ```
///
/// A model can also sit on a diesel `table!` that already exists (as
/// `diesel print-schema` writes it): name it with `diesel_table`, and the
/// derive declares no table of its own. Field names are then the table's
/// column names (its columns' Rust names).
///
/// ```
/// use gino::prelude::*;
///
/// mod schema {
///     diesel::table! {
///         accounts (id) {
///             id -> Integer,
///             owner -> Text,
///         }
///     }
/// }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "accounts", diesel_table = schema::accounts)]
/// pub struct Account {
///     #[gino(primary_key)]
///     pub id: i32,
///     pub owner: String,
/// }
///
/// # async fn demo() -> gino::Result<()> {
/// # Account::create_table().await?;
/// let mine: Vec<Account> = Account::query()
///     .filter(schema::accounts::owner.eq("me"))
///     .gino()
///     .all()
///     .await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
///
/// A column the `table!` renames (`#[sql_name = "..."]`, as print-schema
/// writes a column named as a Rust keyword, say) keeps its SQL name in the
/// model: `#[gino(column = "...")]`, which the derive checks against the
/// table.
///
/// ```compile_fail
/// use gino::prelude::*;
///
/// diesel::table! {
///     items (id) {
///         id -> Integer,
///         #[sql_name = "type"]
///         kind -> Text,
///     }
/// }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "items", diesel_table = items)]
/// pub struct Item {
///     #[gino(primary_key)]
///     pub id: i32,
///     pub kind: String, // error: `items::kind` is `type` in SQL; say #[gino(column = "type")]
/// }
/// # fn main() {}
/// ```
///
/// Columns that many models share (GINO's mixins) are declared once, in a
/// struct deriving [`Columns`](crate::Columns) with the usual field
/// attributes, and flattened into each model with `#[gino(flatten)]`. The
/// table gets the columns with their constraints and indexes; setters and
/// column constants stay flat (`Note::create().version(2)`,
/// `Note::version`), and the value nests them (`note.audit.version`). A
/// set may declare JSON properties too (GINO's mixin of properties), kept
/// in the model's JSON column. A set of columns is usable in the crate that
/// declares it. Its struct attributes `index`, `unique`, `check` and
/// `foreign_key` (the table attributes below) go to every model flattening
/// it, GINO's mixin with `__table_args__` or a `declared_attr` constraint;
/// a `{table}` in their names becomes each model's table name, and a set's
/// index or unique constraint that has a name needs one, as such names
/// are the schema's.
///
/// ```
/// use gino::prelude::*;
///
/// #[derive(Columns, Debug, Clone)]
/// #[gino(unique(columns(id, version)), check(name = "{table}_recent", expr = "version < 100"))]
/// pub struct Audit {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(server_default = "0", index)]
///     pub version: i32,
/// }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "notes")]
/// pub struct Note {
///     #[gino(flatten)]
///     pub audit: Audit,
///     pub body: String,
/// }
///
/// # async fn demo() -> gino::Result<()> {
/// # Note::create_table().await?;
/// let mut note = Note::create().body("hello").await?;
/// note.update().version(2).apply().await?;
/// assert_eq!(note.audit.version, 2);
/// let fresh: Vec<Note> = Note::query().filter(Note::version.gt(0)).gino().all().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
///
/// Struct attributes, `#[gino(...)]`:
///
/// | attribute | meaning |
/// | --- | --- |
/// | `table = "users"` | the table name (required) |
/// | `schema = "app"` | the PostgreSQL schema of the table (`"app"."users"`); `create_all().create_schemas(true)` creates it |
/// | `db = DB` | the `Gino` static the model belongs to (default: the default database) |
/// | `index(name = "ix", columns(a, b), unique)` | a (multi-column, optionally unique) index; without a name, `ix_<table>_<a>_<b>` (`ux_` when unique) |
/// | `unique(name = "uq", columns(a, b))` | a multi-column unique constraint |
/// | `check(name = "ck", expr = "a < b")` | a table check constraint |
/// | `foreign_key(name = "fk", columns(a, b), references = Room, on_delete = "cascade")` | a foreign key of several columns (or a named one) to a model's primary key, or to `references = "rooms(building, number)"`; `on_update` too; no joins |
/// | `lookup = path::to_fn` | how rows are located: `fn(&Self) -> gino::Result<Lookup<table>>` |
/// | `diesel_table = path::to::users` | use an existing diesel `table!` instead of declaring one |
/// | `comment = "text"` | the table's comment (`COMMENT ON TABLE`) |
/// | `unknown_properties = "ignore"` | read rows whose JSON property columns hold undeclared keys (by default an error naming the key, as GINO's `UnknownJSONPropertyError`); updates keep those keys |
///
/// `User::create()...build()` makes the value in memory without touching
/// the database (GINO's `User(nickname="fantix")`): unset fields take their
/// `default`, else their type's `Default`, else the build fails with
/// [`Error::MissingValue`]; `.create()` on the value then inserts it.
///
/// `create()` takes a value for a serial key too (`User::create().id(5)`,
/// GINO's `create(id=5)`), and so does `.create()` on a value holding a
/// key other than 0 (0 leaves it to the sequence); the sequence is not
/// moved past it, so follow
/// explicit keys with `SELECT setval(pg_get_serial_sequence('users', 'id'),
/// (SELECT max(id) FROM users))` before relying on it again.
///
/// In any of these names, `{table}` stands for the table's name.
///
/// A set's named index would be made under one name for every table that
/// flattens the set, so its name needs `{table}`:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Columns, Debug, Clone)]
/// #[gino(index(name = "ix_version", columns(version)))] // error: put `{table}` in it
/// pub struct Audit {
///     pub version: i32,
/// }
/// ```
///
/// The set's fields carry their columns' attributes; the field that
/// flattens it takes none (they would be lost):
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Columns, Debug, Clone)]
/// pub struct Key {
///     pub day: i32,
/// }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "shifts")]
/// pub struct Shift {
///     #[gino(flatten, primary_key)] // error: put primary_key on `day` in Key
///     pub key: Key,
/// }
/// ```
///
/// A set of columns takes only the indexes and constraints; the table's
/// name and settings belong to the model:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Columns, Debug, Clone)]
/// #[gino(table = "audits")]
/// pub struct Audit {
///     pub version: i32,
/// }
/// ```
///
/// A model names its table; a struct without one is not a model (GINO's
/// abstract model), and deriving `Model` for it fails:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)] // error: a model needs its table name
/// pub struct Abstract {
///     #[gino(primary_key)]
///     pub id: i32,
/// }
/// ```
///
/// An attribute given twice would silently take its last value; it is
/// refused (but for the table items `index`, `unique`, `check` and
/// `foreign_key`, one per item):
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "notes")]
/// pub struct Note {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(column = "body", column = "text")] // error: `column` is given twice
///     pub body: String,
/// }
/// ```
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "notes", index(name = "a", name = "b", columns(id)))] // error: `name` twice
/// pub struct Note {
///     #[gino(primary_key)]
///     pub id: i32,
/// }
/// ```
///
/// A primary key column is never NULL, so its field is no `Option`; a key
/// the database assigns is left out of `create()` and read back from it:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "notes")]
/// pub struct Note {
///     #[gino(primary_key)]
///     pub id: Option<i32>, // error: the primary key `id` is an Option
///     pub body: String,
/// }
/// ```
///
/// A unique constraint or a foreign key takes columns, not JSON
/// properties; a property is made unique by a unique index on it:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "people", unique(columns(email)))] // error: `email` is a JSON property
/// pub struct Person {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(property)]
///     pub email: String,
/// }
/// ```
///
/// Two fields cannot map to one column (GINO refuses it when the model is
/// declared, as the derive does at compile time):
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "pairs")]
/// pub struct Pair {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(column = "c1")]
///     pub first: i32,
///     #[gino(column = "c1")] // error: column `c1` is already the column of field `first`
///     pub second: i32,
/// }
/// ```
///
/// PostgreSQL keeps 63 bytes of a name, so two indexes whose names are
/// alike that far would be one (the second skipped by `IF NOT EXISTS`):
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(
///     table = "organization_membership_invitations",
///     index(columns(tenant_id, created_at, status)),
///     index(columns(tenant_id, created_at, state)), // error: named alike in 63 bytes
/// )]
/// pub struct Invitation {
///     #[gino(primary_key)]
///     pub id: i32,
///     pub tenant_id: i32,
///     pub created_at: i64,
///     pub status: i32,
///     pub state: i32,
/// }
/// ```
///
/// A field cannot take the name of a method of `create()` or `update()`
/// (`bind`, `timeout`, `build`, `set`, `apply`, `set_property`); its
/// column can:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "jobs")]
/// pub struct Job {
///     #[gino(primary_key)]
///     pub id: i32,
///     pub timeout: i32, // error: rename it, with #[gino(column = "timeout")]
/// }
/// ```
///
/// PostgreSQL keeps 63 bytes of a table's or column's name; a longer one
/// would be made cut while queries name it whole:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "events")]
/// pub struct Event {
///     #[gino(primary_key)]
///     pub id: i32,
///     // error: the column name is 65 bytes
///     pub when_the_event_was_first_reported_by_the_monitoring_system_at_utc: i64,
/// }
/// ```
///
/// A column takes one default: an integer key with a `server_default` (a
/// sequence's `nextval`, say) is not serial, and cannot be made so:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "tickets")]
/// pub struct Ticket {
///     // error: leave out autoincrement or server_default
///     #[gino(primary_key, autoincrement = true, server_default = "nextval('tickets')")]
///     pub id: i64,
/// }
/// ```
///
/// A model that references itself (`references = Self`, a tree's parent)
/// does so by a key as wide as its own primary key:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "nodes")]
/// pub struct Node {
///     #[gino(primary_key)]
///     pub tree: i32,
///     #[gino(primary_key)]
///     pub id: i32,
///     // error: `Node` has no primary key of one column
///     #[gino(references = Self)]
///     pub parent_id: Option<i32>,
/// }
/// ```
///
/// `on_delete` and `on_update` belong to a foreign key:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "posts")]
/// pub struct Post {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(on_delete = "cascade")] // error: no references
///     pub author_id: i32,
/// }
/// ```
///
/// A key of several columns names as many as the key it references:
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "rooms")]
/// pub struct Room { #[gino(primary_key)] pub building: String, #[gino(primary_key)] pub number: i32 }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "bookings", foreign_key(columns(room), references = Room))]
/// pub struct Booking { #[gino(primary_key)] pub id: i32, pub room: i32 } // error: 1 column, not 2
/// ```
///
/// and `references = M` on one field, a model keyed by one column (a
/// model without a primary key has nothing to reference):
///
/// ```compile_fail
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "events")]
/// pub struct Event { pub at: i64, pub name: String }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "alerts")]
/// pub struct Alert {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(references = Event)] // error: `Event` has no primary key of one column
///     pub event_at: i64,
/// }
/// ```
///
/// Columns are also associated constants of the model (`User::nickname`,
/// the same as `users::nickname`), and raw SQL loads models by column name
/// (`db.all::<User, _>(gino::text("SELECT * FROM users"))`); a column the
/// query leaves out takes its type's default (GINO's passive partial load),
/// or fails the load naming it when the type has none.
///
/// Field attributes, `#[gino(...)]`:
///
/// | attribute | meaning |
/// | --- | --- |
/// | `primary_key` | part of the primary key (several fields: composite, in order) |
/// | `autoincrement = false` | a single integer key that is not serial (one that is also a foreign key, or has a `server_default`, never is) |
/// | `column = "name"` | the column's name when it differs from the field's |
/// | `default = expr` | client-side default for `create()` (any Rust expression) |
/// | `server_default = "sql"` | `DEFAULT sql` in the table |
/// | `unique` / `index` | a unique constraint / an index on the column (on a JSON property: on its expression, refused at compile time for a date or time property, whose casts from text are not immutable) |
/// | `references = User` | a foreign key to that model's primary key, the joins diesel needs (`posts::table.inner_join(users::table)` with no `joinable!`), and for a field `author_id` the loader `Post::with_author()` (rows `(Post, Option<User>)`); no joins when the model is referenced twice or by itself |
/// | `references = Team, join = false` | the key without the joins: for one of two models that reference each other, whose joins would be declared twice (diesel's `JoinTo` between two tables is one, whichever side declares it) |
/// | `references = "table(column)"`, `on_delete = "cascade"`, `on_update = ".."` | a foreign key by SQL names |
/// | `check = "sql"` | a check constraint |
/// | `comment = "text"` | the column's comment (`COMMENT ON COLUMN`) |
/// | `db_enum` | a field of a `#[derive(DbEnum)]` type |
/// | `sql_type = path, ddl = "type"` | a type gino does not know: its diesel SQL type and DDL |
/// | `flatten` | the field is a set of columns deriving [`Columns`](crate::Columns), its columns added to the table |
/// | `property` / `property = "column"` | a JSON property, a key of the jsonb column `profile` (or the one named); see `gino::json` (feature `json`) |
/// | `property, json` | the property's column is plain `json` instead of `jsonb` |
/// | `property, index` | an index on the property's SQL expression (in a model's `index(columns(..))` too) |
/// | `property, expr = "sql"` | the property's SQL expression, instead of the one gino derives |
/// | `before_set = path`, `after_get = path` | functions `T -> T` a property's value passes on its way in and out |
///
/// Field types: `i16`, `i32`, `i64`, `f32`, `f64`, `bool`, `String`,
/// `Vec<u8>` (bytea), `Vec<T>` (arrays), `Option<T>` (nullable), and with
/// the crate features `json` `serde_json::Value` (jsonb), `chrono`
/// `NaiveDateTime` / `DateTime<Utc>` / `NaiveDate` / `NaiveTime`, `uuid`
/// `uuid::Uuid`.
///
/// Two models that reference each other declare their joins once (diesel
/// joins two tables on one condition); the other key says `join = false`,
/// and `create_all()` adds the key that closes the cycle with `ALTER TABLE`:
///
/// ```
/// use gino::prelude::*;
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "clans")]
/// pub struct Clan {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(references = Warrior, join = false)]
///     pub leader_id: Option<i32>,
/// }
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "warriors")]
/// pub struct Warrior {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(references = Clan)]
///     pub clan_id: Option<i32>,
/// }
///
/// let with_clans = Warrior::with_clan(); // rows (Warrior, Option<Clan>)
/// ```
pub trait Model: Sized + Send + Sync + 'static {
    /// The diesel table (`users::table`).
    type Table: Table + Default + Copy + Send + Sync + 'static;
    /// The model's update request (`UserUpdate`): setters per field.
    type UpdateRequest<'a>;
    /// The primary key's values (a tuple for a composite key; `()` for a
    /// model without one): what loaders tell rows apart by, for models
    /// that are [`Keyed`].
    type Key: Eq + std::hash::Hash + Clone + Send + Sync + 'static;
    /// The model's table metadata.
    const TABLE: &'static TableMeta;
    /// The model's database.
    const DB: ModelDb;

    /// The condition locating this row; by default its primary key. A model
    /// without a primary key fails with [`Error::NoPrimaryKey`] unless it
    /// names a lookup function with `#[gino(lookup = path)]`.
    fn lookup(&self) -> Result<Lookup<Self::Table>>;

    /// This row's primary key values.
    fn key(&self) -> Self::Key;

    /// Resets every field whose column is not in `loaded` to its type's
    /// `Default` (fields of a type without one keep their value): what a
    /// partial model load ([`loader::partial`](crate::loader::partial))
    /// leaves of a row. A JSON property is kept when its JSON column (or
    /// its key) is in `loaded`, and otherwise reads as a row without its
    /// key does: its declared `default`, else its type's.
    fn keep_only(&mut self, loaded: &[&str]);

    /// Inserts this value (every field; a serial key only when it is set,
    /// not 0, else the sequence assigns it) and returns the stored row
    /// (`INSERT ... RETURNING`).
    fn create(&self) -> Run<'static, impl crate::Loadable<'static, Self>, One<Self>>;

    /// Loads this row again (located by [`lookup`](Self::lookup)); `None`
    /// if it no longer exists.
    fn query(&self) -> Run<'static, impl crate::Loadable<'static, Self>, First<Self>>;

    /// Deletes this row; returns the status, e.g. `DELETE 1`. The value in
    /// memory is left as it is.
    fn delete(&self)
    -> Run<'static, impl ExecuteDsl<AsyncPgConnection> + Send + 'static, StatusOf>;

    /// Starts an update of this row: setters change the value in memory at
    /// once, and `apply()` runs one `UPDATE ... RETURNING` that refreshes it.
    /// The row is located by its key as it is now, so changing key fields
    /// updates the right row.
    fn update(&mut self) -> Self::UpdateRequest<'_>;

    /// Loads `columns` of this row (located by [`lookup`](Self::lookup)).
    fn select<S, T>(&self, columns: S) -> Run<'static, Located<Self::Table, S>, First<T>>
    where
        S: diesel::Expression,
        Self::Table: FilterDsl<Lookup<Self::Table>>,
        Filter<Self::Table, Lookup<Self::Table>>: SelectDsl<S>,
    {
        let query = self
            .lookup()
            .map(|lookup| Self::Table::default().filter(lookup).select(columns));
        Run::reading(query, Self::DB.bind())
    }
}

/// A [`Model`] with a primary key, so that its rows can be told apart:
/// what the [`distinct`](crate::loader::distinct) and
/// [`child`](crate::loader::child) loaders group and deduplicate by.
/// `#[derive(Model)]` implements it for every model with a
/// `#[gino(primary_key)]` field; a model without one (located by a
/// `#[gino(lookup = ...)]` function) has no key to group by, and those
/// loaders refuse it at compile time rather than merge its rows into one
/// ([`distinct_by`](crate::loader::distinct_by) and
/// [`child_by`](crate::loader::child_by) take a key you give).
///
/// ```
/// # use gino::prelude::*;
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "users")]
/// pub struct User { #[gino(primary_key)] pub id: i32, pub name: String }
///
/// fn assert_keyed<M: gino::model::Keyed>() {}
/// assert_keyed::<User>();
/// ```
///
/// ```compile_fail
/// # use gino::prelude::*;
/// # fn by_at(e: &Event) -> gino::Result<gino::model::Lookup<events::table>> {
/// #     Ok(gino::model::Lookup::new(events::at.eq(e.at)))
/// # }
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "events", lookup = by_at)]
/// pub struct Event { pub at: i64, pub what: String }
///
/// // Error: `Event` has no primary key, so its rows cannot be told apart.
/// let loader = gino::loader::distinct::<Event, _>(gino::loader::child::<Event>());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no primary key, so its rows cannot be told apart",
    note = "declare its key with `#[gino(primary_key)]`, or pair rows by a key of your own with `gino::loader::distinct_by` and `child_by`, `gino::loader::select_in` or `gino::loader::group`"
)]
pub trait Keyed: Model {}

/// `SELECT columns FROM table WHERE lookup`: what `instance.select(columns)` runs.
pub type Located<T, S> = Select<Filter<T, Lookup<T>>, S>;

/// One entry of [`Changes`]: the columns it assigns (empty when unknown)
/// and the `column = value` fragment.
type Change = (Vec<String>, Box<dyn QueryFragment<Pg> + Send + Sync>);

/// Resets a field to `Default` when its type has one, and leaves it alone
/// otherwise; `#[derive(Model)]` calls `(&mut Reset(&mut field)).reset()`,
/// where method resolution picks [`ResetToDefault`] if it applies and
/// [`KeepValue`] if not.
#[doc(hidden)]
pub struct Reset<'a, T>(pub &'a mut T);

#[doc(hidden)]
pub trait ResetToDefault {
    fn reset(&mut self);
}

impl<T: Default> ResetToDefault for Reset<'_, T> {
    fn reset(&mut self) {
        *self.0 = T::default();
    }
}

#[doc(hidden)]
pub trait KeepValue {
    fn reset(&mut self);
}

impl<T> KeepValue for &mut Reset<'_, T> {
    fn reset(&mut self) {}
}

/// Refuses a raw row in which a column of `model` comes more than once
/// (`SELECT users.*, teams.*`: two `id`s): a load by name would take the
/// first, whichever table it is of, and give a value of the other model
/// without a word. GINO refuses such a row too (SQLAlchemy's "ambiguous
/// column"). `#[derive(Model)]` calls it before a raw-SQL load.
#[doc(hidden)]
pub fn unambiguous<'a, R: diesel::row::Row<'a, Pg>>(
    row: &R,
    model: &str,
    columns: &[&str],
) -> diesel::deserialize::Result<()> {
    use diesel::row::Field as _;
    let count = row.field_count();
    for i in 0..count {
        let Some(field) = row.get(i) else { continue };
        let Some(name) = field.field_name().filter(|name| columns.contains(name)) else {
            continue;
        };
        let again = (i + 1..count).any(|j| {
            row.get(j)
                .is_some_and(|other| other.field_name() == Some(name))
        });
        if again {
            return Err(format!(
                "column `{name}` comes more than once in the row loaded as `{model}`, so which \
                 one is the model's is ambiguous: give the others names of their own \
                 (`SELECT users.*, teams.id AS team_id ...`)"
            )
            .into());
        }
    }
    Ok(())
}

/// The value of a field a builder left unset: its type's `Default` when
/// it has one, [`Error::MissingValue`] otherwise. `#[derive(Model)]` calls
/// `(&Unset::<T>::new(model, field)).value()`, where method resolution
/// picks [`UnsetDefault`] if it applies and [`UnsetMissing`] if not.
#[doc(hidden)]
pub struct Unset<T> {
    model: &'static str,
    field: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> Unset<T> {
    #[doc(hidden)]
    pub fn new(model: &'static str, field: &'static str) -> Self {
        Unset {
            model,
            field,
            value: PhantomData,
        }
    }
}

#[doc(hidden)]
pub trait UnsetDefault<T> {
    fn value(&self) -> Result<T>;
}

impl<T: Default> UnsetDefault<T> for Unset<T> {
    fn value(&self) -> Result<T> {
        Ok(T::default())
    }
}

#[doc(hidden)]
pub trait UnsetMissing<T> {
    fn value(&self) -> Result<T>;
}

impl<T> UnsetMissing<T> for &Unset<T> {
    fn value(&self) -> Result<T> {
        Err(Error::MissingValue {
            model: self.model,
            field: self.field,
        })
    }
}

/// The SET list of an update built at run time, from plain values and SQL
/// expressions alike; a change to a column replaces every earlier change
/// of that column alone (GINO: the last value set for an attribute wins).
/// An earlier change that assigns other columns too cannot be split and
/// stays, and PostgreSQL then refuses the column assigned twice.
pub struct Changes<T> {
    items: Vec<Change>,
    table: PhantomData<fn() -> T>,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes {
            items: Vec::new(),
            table: PhantomData,
        }
    }
}

impl<T> Changes<T> {
    /// Sets `column` to a value, replacing an earlier change of it.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # diesel::table! { users (id) { id -> Integer, nickname -> Text, balance -> BigInt } }
    /// use gino::model::Changes;
    /// let mut changes = Changes::<users::table>::default();
    /// changes.set_value("nickname", users::nickname.eq("ann"));
    /// changes.set_value("nickname", users::nickname.eq("bob")); // replaces "ann"
    /// let update = diesel::update(users::table).set(changes);
    /// assert_eq!(gino::Compiled::of(&update).binds(), ["\"bob\""]);
    /// ```
    pub fn set_value<C>(&mut self, column: &'static str, change: C)
    where
        C: AsChangeset<Target = T>,
        C::Changeset: QueryFragment<Pg> + Send + Sync + 'static,
    {
        self.add(Some(column), change.as_changeset());
    }

    /// Adds a change given as a diesel changeset, e.g.
    /// `users::balance.eq(users::balance + 100)`; it replaces earlier
    /// changes that assign only columns it assigns too (see [`Changes`]).
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # diesel::table! { users (id) { id -> Integer, nickname -> Text, balance -> BigInt } }
    /// use gino::model::Changes;
    /// let mut changes = Changes::<users::table>::default();
    /// changes.push(users::balance.eq(users::balance + 100_i64));
    /// changes.push(users::nickname.eq("ann"));
    /// let update = diesel::update(users::table).set(changes);
    /// let sql = gino::Compiled::of(&update).sql().to_owned();
    /// assert!(sql.ends_with(r#"SET "balance" = ("users"."balance" + $1), "nickname" = $2"#));
    /// ```
    pub fn push<C>(&mut self, change: C)
    where
        C: AsChangeset<Target = T>,
        C::Changeset: QueryFragment<Pg> + Send + Sync + 'static,
    {
        self.add(None, change.as_changeset());
    }

    /// Adds `change`, which assigns the columns its SQL names (or
    /// `fallback` when that cannot be read).
    fn add<C>(&mut self, fallback: Option<&'static str>, change: C)
    where
        C: QueryFragment<Pg> + Send + Sync + 'static,
    {
        let sql = render(&change);
        if sql.as_deref().is_some_and(|sql| sql.trim().is_empty()) {
            // e.g. a `None` changeset: an empty item would break the list.
            return;
        }
        let mut columns = sql.as_deref().and_then(parse_targets).unwrap_or_default();
        if columns.is_empty() {
            columns.extend(fallback.map(str::to_owned));
        }
        // An earlier change that assigns only columns this one assigns too
        // is superseded; one that also assigns others cannot be split and
        // stays (PostgreSQL then reports the column assigned twice).
        if !columns.is_empty() {
            self.items
                .retain(|(old, _)| old.is_empty() || !old.iter().all(|c| columns.contains(c)));
        }
        self.items.push((columns, Box::new(change)));
    }

    /// Adds the properties `merge` sets, if any. A change that also sets
    /// their whole column is refused rather than replaced: one `SET`
    /// cannot hold both, and dropping either loses what the caller gave.
    #[doc(hidden)]
    #[cfg(feature = "json")]
    pub fn merge_properties(&mut self, merge: crate::json::Merge<T>) -> Result<()>
    where
        T: diesel::QuerySource + 'static,
    {
        if merge.is_empty() {
            return Ok(());
        }
        if self.columns().assigns_directly(merge.column()) {
            return Err(Error::Query(diesel::result::Error::QueryBuilderError(
                format!(
                    "the update sets the JSON column `{}` as a whole and some of its properties \
                     as well: set the properties in the value given for the column, or apply \
                     them in a second update",
                    merge.column()
                )
                .into(),
            )));
        }
        self.push(merge);
        Ok(())
    }

    /// Whether nothing is to be changed.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # diesel::table! { users (id) { id -> Integer, nickname -> Text, balance -> BigInt } }
    /// use gino::model::Changes;
    /// let mut changes = Changes::<users::table>::default();
    /// assert!(changes.is_empty());
    /// changes.push(users::nickname.eq("ann"));
    /// assert!(!changes.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The columns the changes assign, as far as their SQL tells.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # diesel::table! { users (id) { id -> Integer, nickname -> Text, balance -> BigInt } }
    /// use gino::model::Changes;
    /// let mut changes = Changes::<users::table>::default();
    /// changes.push((users::nickname.eq("ann"), users::balance.eq(users::balance * 2)));
    /// let assigned = changes.columns();
    /// assert!(assigned.assigns("nickname") && assigned.assigns("balance"));
    /// assert!(!assigned.assigns("id"));
    /// ```
    pub fn columns(&self) -> AssignedColumns {
        AssignedColumns {
            columns: self
                .items
                .iter()
                .flat_map(|(columns, _)| columns.iter().cloned())
                .collect(),
            unknown: self.items.iter().any(|(columns, _)| columns.is_empty()),
        }
    }
}

/// What a set of [`Changes`] assigns, for refreshing a value after an
/// update: a column is taken as assigned when a change names it, or when a
/// change's SQL could not be read.
#[derive(Debug, Clone, Default)]
pub struct AssignedColumns {
    columns: Vec<String>,
    unknown: bool,
}

impl AssignedColumns {
    /// Whether `column` may have been assigned.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # diesel::table! { users (id) { id -> Integer, nickname -> Text, balance -> BigInt } }
    /// use gino::model::Changes;
    /// let mut changes = Changes::<users::table>::default();
    /// changes.set_value("balance", users::balance.eq(0_i64));
    /// assert!(changes.columns().assigns("balance"));
    /// assert!(!changes.columns().assigns("nickname"));
    /// ```
    pub fn assigns(&self, column: &str) -> bool {
        self.unknown || self.assigns_directly(column)
    }

    /// Whether a change names `column`.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # diesel::table! { users (id) { id -> Integer, nickname -> Text, balance -> BigInt } }
    /// use gino::model::Changes;
    /// let mut changes = Changes::<users::table>::default();
    /// changes.push(users::nickname.eq("ann"));
    /// assert!(changes.columns().assigns_directly("nickname"));
    /// assert!(!changes.columns().assigns_directly("balance"));
    /// ```
    pub fn assigns_directly(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }
}

impl<T: diesel::QuerySource> AsChangeset for Changes<T> {
    type Target = T;
    type Changeset = Self;

    fn as_changeset(self) -> Self {
        self
    }
}

impl<T> QueryFragment<Pg> for Changes<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        for (i, (_, item)) in self.items.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            item.walk_ast(out.reborrow())?;
        }
        Ok(())
    }
}

impl<T> QueryId for Changes<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// `change` as PostgreSQL would receive it, binds as `$n`; `None` if it
/// cannot be rendered.
fn render(change: &dyn QueryFragment<Pg>) -> Option<String> {
    use diesel::query_builder::QueryBuilder;
    let mut builder = diesel::pg::PgQueryBuilder::default();
    change.to_sql(&mut builder, &Pg).ok()?;
    Some(builder.finish())
}

/// The columns a SET list assigns: diesel renders it as
/// `"column" = expression, ...`, with the targets as bare quoted
/// identifiers (columns inside expressions are qualified by their table).
/// `None` when the SQL does not have that shape.
fn parse_targets(sql: &str) -> Option<Vec<String>> {
    let mut targets = Vec::new();
    let mut rest = sql;
    loop {
        // A target: `"name"` (quotes doubled inside), then ` = `.
        let (name, after) = lex::quoted_identifier(rest.trim_start())?;
        rest = after.strip_prefix(" = ")?;
        targets.push(name);
        // The expression: up to a comma outside parentheses, in its code.
        let mut depth = 0usize;
        let mut end = None;
        'code: for code in lex::code_ranges(rest) {
            for (i, b) in rest.as_bytes()[code.clone()].iter().enumerate() {
                match b {
                    b'(' => depth += 1,
                    b')' => depth = depth.checked_sub(1)?,
                    b',' if depth == 0 => {
                        end = Some(code.start + i);
                        break 'code;
                    }
                    _ => {}
                }
            }
        }
        match end {
            Some(i) => rest = &rest[i + 1..],
            None => return Some(targets),
        }
    }
}

/// A query with its execution settled in advance: `.bind(...)` and
/// `.timeout(...)` may still be chained before `.await`. Returned by the
/// model API (`User::get(1)`, `user.delete()`, ...); `M` says what awaiting
/// yields ([`All`], [`First`], [`One`], [`StatusOf`]).
#[must_use = "a query does nothing until awaited"]
pub struct Run<'a, Q, M> {
    query: Result<Q>,
    bind: Bind<'a>,
    timeout: Option<Duration>,
    /// A plain read, which may run on a read replica.
    read: bool,
    mode: PhantomData<fn() -> M>,
}

/// [`Run`] mode: all rows as `U`.
pub struct All<U>(PhantomData<U>);
/// [`Run`] mode: the first row as `U`, if any.
pub struct First<U>(PhantomData<U>);
/// [`Run`] mode: the first row as `U` (GINO's `apply` reads `first`);
/// none is [`Error::NoSuchRow`].
pub struct One<U>(PhantomData<U>);
/// [`Run`] mode: the first row as `U`; none is [`Error::NotFound`].
pub struct Found<U>(PhantomData<U>);
/// [`Run`] mode: the statement's [`Status`].
pub struct StatusOf;

impl<'a, Q, M> Run<'a, Q, M> {
    /// A query to run on `bind`, or the error that prevented building it.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use gino::model::{Run, StatusOf};
    /// let ok: Run<'_, _, StatusOf> = Run::new(Ok(diesel::sql_query("SELECT 1")), gino::Bind::Default);
    /// assert_eq!(ok.await?, "SELECT 1");
    /// let failed: Run<'_, diesel::query_builder::SqlQuery, StatusOf> =
    ///     Run::new(Err(gino::Error::NoPrimaryKey("users")), gino::Bind::Default);
    /// assert!(matches!(failed.await, Err(gino::Error::NoPrimaryKey(_)))); // nothing ran
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn new(query: Result<Q>, bind: Bind<'a>) -> Self {
        Run {
            query,
            bind,
            timeout: None,
            read: false,
            mode: PhantomData,
        }
    }

    /// A query that only reads ([`new`](Self::new) otherwise): an engine
    /// with read replicas may run it on one.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::model::{All, Run};
    /// let q = diesel::select(sql::<Integer>("generate_series(1, 2)"));
    /// let rows: Vec<i32> = Run::<_, All<i32>>::reading(Ok(q), gino::Bind::Default).await?;
    /// assert_eq!(rows, [1, 2]);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn reading(query: Result<Q>, bind: Bind<'a>) -> Self {
        Run {
            read: true,
            ..Run::new(query, bind)
        }
    }

    /// Runs on `to` (an engine, connection, transaction or `Gino`) instead
    /// of the model's database.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32 }
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().reusable(false).await?; // only used when bound
    /// conn.status(diesel::sql_query("CREATE TEMP TABLE users (id int PRIMARY KEY)")).await?;
    /// conn.status(diesel::sql_query("INSERT INTO users VALUES (1)")).await?;
    /// assert!(User::get(1).bind(&conn).await?.is_some()); // conn's own table
    /// assert!(User::get(1).await.is_err()); // the model's database has no `users`
    /// # Ok(()) }
    /// # fn main() { gino_testkit::doc::run(demo) }
    /// ```
    pub fn bind<'b>(self, to: impl Into<Bind<'b>>) -> Run<'b, Q, M> {
        Run {
            query: self.query,
            bind: to.into(),
            timeout: self.timeout,
            read: self.read,
            mode: PhantomData,
        }
    }

    /// Fails with [`Error::QueryTimeout`] after `timeout`; see
    /// [`Executor::timeout`].
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32, pub name: String }
    /// # async fn demo() -> gino::Result<()> {
    /// # User::create_table().await?;
    /// use std::time::Duration;
    /// use diesel::{dsl::sql, sql_types::Integer};
    /// let ann = User::create().name("ann").await?;
    /// let slow = ann.select::<_, i32>(sql::<Integer>("(SELECT 1 FROM pg_sleep(10))"));
    /// let err = slow.timeout(Duration::from_millis(100)).await.unwrap_err();
    /// assert!(matches!(err, gino::Error::QueryTimeout(_)));
    /// # Ok(()) }
    /// # fn main() { gino_testkit::doc::run(demo) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn with_mode<N>(self) -> Run<'a, Q, N> {
        Run {
            query: self.query,
            bind: self.bind,
            timeout: self.timeout,
            read: self.read,
            mode: PhantomData,
        }
    }

    fn executor(self) -> Result<Executor<'a, Q>> {
        let exec = Executor::new(self.query?, self.bind);
        let exec = if self.read { exec.replica() } else { exec };
        Ok(match self.timeout {
            Some(t) => exec.timeout(t),
            None => exec,
        })
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

impl<'a, Q, U> IntoFuture for Run<'a, Q, All<U>>
where
    Q: crate::Loadable<'static, U>,
    U: Send + 'static,
{
    type Output = Result<Vec<U>>;
    type IntoFuture = Boxed<'a, Vec<U>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.executor()?.all().await })
    }
}

impl<'a, Q, U> IntoFuture for Run<'a, Q, First<U>>
where
    Q: crate::Loadable<'static, U>,
    U: Send + 'static,
{
    type Output = Result<Option<U>>;
    type IntoFuture = Boxed<'a, Option<U>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.executor()?.first().await })
    }
}

impl<'a, Q, U> Run<'a, Q, First<U>> {
    /// Makes a missing row the error [`Error::NotFound`] (which the web
    /// integrations answer with 404) instead of `None`.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # struct User { #[gino(primary_key)] id: i32 }
    /// # async fn demo() -> gino::Result<()> {
    /// # User::create_table().await?;
    /// match User::get(42).or_not_found().await {
    ///     Ok(user) => println!("{user:?}"),
    ///     Err(gino::Error::NotFound) => println!("no user 42"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn or_not_found(self) -> Run<'a, Q, Found<U>> {
        self.with_mode()
    }
}

impl<'a, Q, U> IntoFuture for Run<'a, Q, Found<U>>
where
    Q: crate::Loadable<'static, U>,
    U: Send + 'static,
{
    type Output = Result<U>;
    type IntoFuture = Boxed<'a, U>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.executor()?.first().await?.ok_or(Error::NotFound) })
    }
}

impl<'a, Q, U> IntoFuture for Run<'a, Q, One<U>>
where
    Q: crate::Loadable<'static, U>,
    U: Send + 'static,
{
    type Output = Result<U>;
    type IntoFuture = Boxed<'a, U>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.executor()?.first().await?.ok_or(Error::NoSuchRow) })
    }
}

impl<'a, Q> IntoFuture for Run<'a, Q, StatusOf>
where
    Q: ExecuteDsl<AsyncPgConnection> + Send + 'static,
{
    type Output = Result<Status>;
    type IntoFuture = Boxed<'a, Status>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.executor()?.status().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // A changeset's SQL holds the user's own expressions (`set_sql`),
        // so its reader meets any text.
        #[test]
        fn any_changeset_text_is_read_or_refused_without_a_panic(
            sql in crate::lex::tests::sql_text()
        ) {
            let _ = parse_targets(&sql);
            let _ = parse_targets(&format!("\"a\" = {sql}, \"b\" = 1"));
        }
    }

    diesel::table! {
        users (id) {
            id -> Integer,
            #[sql_name = "real name"]
            name -> Text,
            balance -> BigInt,
        }
    }

    use diesel::ExpressionMethods;

    #[test]
    fn assigned_columns_are_read_from_the_rendered_set_list() {
        let columns = |c: &dyn QueryFragment<Pg>| parse_targets(&render(c).unwrap()).unwrap();
        assert_eq!(
            columns(&users::balance.eq(users::balance + 1).as_changeset()),
            ["balance"]
        );
        assert_eq!(
            columns(&(users::name.eq("a, \"id\" = 1"), users::id.eq(users::id)).as_changeset()),
            ["real name", "id"]
        );
        let raw = diesel::dsl::sql::<diesel::sql_types::BigInt>("coalesce(1, 2)");
        assert_eq!(columns(&users::balance.eq(raw).as_changeset()), ["balance"]);
    }

    #[test]
    fn targets_are_parsed_past_quotes_and_parentheses() {
        assert_eq!(
            parse_targets(r#""a" = f($1, 'x,)'), "b""c" = ("t"."b" + 1)"#),
            Some(vec!["a".to_owned(), "b\"c".to_owned()])
        );
        assert_eq!(parse_targets("\"a\" = 1, "), None);
        assert_eq!(parse_targets("a = 1"), None);
        assert_eq!(parse_targets(""), None);
    }

    #[test]
    fn a_later_change_of_a_column_replaces_earlier_ones() {
        let mut changes = Changes::<users::table>::default();
        changes.set_value("balance", users::balance.eq(5));
        changes.push(users::balance.eq(users::balance + 1));
        changes.push((users::id.eq(2), users::name.eq("x")));
        changes.set_value("id", users::id.eq(3));
        changes.push(None::<diesel::dsl::Eq<users::id, i32>>);
        let sql = render(&changes).unwrap();
        // The pair stays whole: it also assigns a column nothing replaced.
        assert_eq!(
            sql,
            "\"balance\" = (\"users\".\"balance\" + $1), \"id\" = $2, \"real name\" = $3, \
             \"id\" = $4"
        );
    }
}
