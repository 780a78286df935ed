//! JSON properties: model fields stored as keys of a JSONB column (GINO's
//! `json_support`), declared with `#[gino(property)]`.
//!
//! ```
//! use gino::prelude::*;
//!
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "people")]
//! pub struct Person {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     pub name: String,
//!     #[gino(property)]                 // stored as profile->'age'
//!     pub age: Option<i32>,
//!     #[gino(property, default = 0)]    // missing key reads as 0
//!     pub visits: i64,
//!     #[gino(property = "settings")]    // in another JSONB column
//!     pub theme: Option<String>,
//! }
//!
//! # async fn demo() -> gino::Result<()> {
//! # Person::create_table().await?;
//! let mut p = Person::create().name("ann").age(30).await?;
//! p.update().visits(1_i64).apply().await?;          // profile = profile || '{"visits": 1}'
//! let adults: Vec<Person> = Person::query()
//!     .filter(people_props::age().ge(18))           // CAST(profile ->> 'age' AS INTEGER) >= $1
//!     .gino()
//!     .all()
//!     .await?;
//! # Ok(()) }
//! # fn main() { gino_testkit::doc::run(demo) } // models at the top level, not in main
//! ```
//!
//! A property's column is added to the table (`jsonb NOT NULL DEFAULT
//! '{}'`) without a field of its own, so serializing the model shows the
//! properties and not the column. Setting a property in an update changes
//! only its key (`||` merges), so updates of different properties of one row
//! never overwrite each other. A null column (JSON null, or SQL NULL in a
//! table made by another program) holds no properties, and an update
//! merges into it as into `{}`. `<table>_props::<property>()` (for a
//! table whose name is no Rust identifier, `<diesel_table module>_props`)
//! is the property as an SQL expression of its type (integers, floats, booleans,
//! text and date-times cast from `->>`, anything else as `jsonb` from
//! `->`), or `expr = "sql"` gives it one of your own. A value of the wrong
//! JSON type is an error naming the property.
//!
//! `before_set = path` and `after_get = path` are functions `T -> T` that
//! a property's value passes on its way in and out (GINO's hooks): `v` is
//! stored as `before_set(v)`, and the field holds what reading that back
//! gives, `after_get(before_set(v))`, as soon as it is set (in `build()`
//! and in an update's setters, as after a load). A `default` stands for a
//! stored value, as in GINO: a row without the key reads as
//! `after_get(default)`, and `create()` stores the default as it is. A
//! value inserted as a whole (`value.create()`, `insert_many`) stores
//! `before_set` of what its fields hold, so hooks that undo each other
//! keep a copied row as it was.
//!
//! ```
//! use gino::prelude::*;
//!
//! fn minus_one(age: i32) -> i32 { age - 1 }
//! fn plus_one(age: i32) -> i32 { age + 1 }
//!
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "users")]
//! pub struct User {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     #[gino(property, default = 0, before_set = minus_one, after_get = plus_one)]
//!     pub age: i32,
//! }
//!
//! # async fn demo() -> gino::Result<()> {
//! # User::create_table().await?;
//! let daisy = User::create().age(18).await?;           // profile = {"age": 17}
//! let stored: serde_json::Value = users::table.select(users::profile).gino().one().await?;
//! assert_eq!((daisy.age, stored["age"].as_i64()), (18, Some(17)));
//! assert_eq!(User::create().age(18).build()?.age, 18); // the same in memory
//! # Ok(()) }
//! # fn main() { gino_testkit::doc::run(demo) } // models at the top level, not in main
//! ```
//!
//! A property's name cannot be a column's, its own JSON column's included:
//! a partial load tells a property by its name as it tells a column, and
//! one name for both would be read as either (GINO refuses it too).
//!
//! ```compile_fail
//! # use gino::prelude::*;
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "notes")]
//! pub struct Note {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     #[gino(property)] // error: `profile` is a JSON column of properties
//!     pub profile: Option<String>,
//! }
//! ```
//!
//! Nor can two properties be stored in each other's columns (GINO's
//! `profile1`/`profile2`):
//!
//! ```compile_fail
//! # use gino::prelude::*;
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "notes")]
//! pub struct Note {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     #[gino(property = "second")] // error: `first` is a JSON column of properties
//!     pub first: Option<String>,
//!     #[gino(property = "first")]
//!     pub second: Option<i32>,
//! }
//! ```
//!
//! Hooks and `expr` belong to properties; on a column they are an error,
//! not ignored:
//!
//! ```compile_fail
//! # use gino::prelude::*;
//! # fn trimmed(s: String) -> String { s.trim().to_owned() }
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "notes")]
//! pub struct Note {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     #[gino(before_set = trimmed)] // error: `name` is a column
//!     pub name: String,
//! }
//! ```
//!
//! What makes a column (`column`, `sql_type`, `ddl`, `db_enum`,
//! `autoincrement`, `comment`) has no column to act on in a property:
//!
//! ```compile_fail
//! # use gino::prelude::*;
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "notes")]
//! pub struct Note {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     #[gino(property, column = "title")] // error: a property's key is its field's name
//!     pub heading: Option<String>,
//! }
//! ```
//!
//! An update sets a property to what SQL computes with
//! `.set_property(people_props::age(), people_props::age() + 1)`
//! ([`PropertyExpr`]). `#[gino(property, index)]` indexes the property's
//! expression (so a filter on it can use the index), and
//! `#[gino(property = "settings", json)]` keeps that column's properties in
//! a plain `json` column instead of `jsonb`.

// Layer: beside `config`; uses `error` only. The derive generates the code that calls it.

use std::fmt;
use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::Table;
use diesel::deserialize::FromSql;
use diesel::expression::{
    AppearsOnTable, AsExpression, Expression, SelectableExpression, TypedExpressionType,
    ValidGrouping, is_aggregate,
};
use diesel::pg::{Pg, PgValue};
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::query_source::{AppearsInFromClause, Once};
use diesel::sql_types::{self, SqlType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

mod finite;

/// A JSON column of properties as a model's row reads it: a JSON value,
/// where SQL NULL (which a table made by another program, Python GINO's
/// `db.Column(JSONB())` say, may hold) reads as JSON null, and so as no
/// properties rather than an error.
#[doc(hidden)]
#[derive(Debug, Default, diesel::deserialize::FromSqlRow)]
pub struct Properties(pub Value);

impl std::ops::Deref for Properties {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

macro_rules! properties_from_sql {
    ($sql_type:ty) => {
        impl FromSql<$sql_type, Pg> for Properties {
            fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <Value as FromSql<$sql_type, Pg>>::from_sql(bytes).map(Properties)
            }

            fn from_nullable_sql(bytes: Option<PgValue<'_>>) -> diesel::deserialize::Result<Self> {
                bytes.map_or(
                    Ok(Properties(Value::Null)),
                    <Self as FromSql<$sql_type, Pg>>::from_sql,
                )
            }
        }
    };
}

properties_from_sql!(sql_types::Jsonb);
properties_from_sql!(sql_types::Json);

/// Reads `key` of the JSON object in `column`: `None` when the key is
/// missing, or null for a type that cannot hold null (as GINO reads a
/// null property as its default), an error naming the property when its
/// value has the wrong type.
#[doc(hidden)]
pub fn property<T: DeserializeOwned>(
    object: &Value,
    column: &str,
    key: &str,
) -> diesel::deserialize::Result<Option<T>> {
    match stored(object, column, key)? {
        None => Ok(None),
        Some(Value::Null) => Ok(serde_json::from_value(Value::Null).ok()),
        Some(value) => serde_json::from_value(value.clone()).map(Some).map_err(|e| {
            format!("JSON property `{key}` (in column `{column}`) holds {value}, which is not valid for it: {e}").into()
        }),
    }
}

/// The value stored under `key` in `column`, which must hold an object
/// (or null, read as GINO reads it: no properties).
fn stored<'v>(
    object: &'v Value,
    column: &str,
    key: &str,
) -> diesel::deserialize::Result<Option<&'v Value>> {
    match object {
        Value::Object(map) => Ok(map.get(key)),
        Value::Null => Ok(None),
        other => Err(format!(
            "JSON column `{column}` holds {}, not an object of properties: set it back to an \
             object (`{{}}` holds none) before reading the row as a model",
            kind(other)
        )
        .into()),
    }
}

/// The error of a property that must be there and is not.
fn missing(column: &str, key: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!(
        "JSON property `{key}` is missing or null in column `{column}`: give the field a \
         default with #[gino(property, default = ...)] or make it an Option"
    )
    .into()
}

/// What kind of JSON value `value` is, for errors that should not print a
/// whole column.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses a JSON column holding a key that no property declares (GINO's
/// `UnknownJSONPropertyError`): it would be lost from the value, and may
/// be a typo or another program's data. A model can read such rows anyway
/// with `#[gino(unknown_properties = "ignore")]`; the keys then stay in the
/// database, since updates merge only the keys they set.
#[doc(hidden)]
pub fn declared_only(
    object: &Value,
    column: &str,
    keys: &[&str],
) -> diesel::deserialize::Result<()> {
    let Value::Object(map) = object else {
        return Ok(());
    };
    match map.keys().find(|k| !keys.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "JSON column `{column}` holds the key `{unknown}`, which no property declares: \
             declare it with #[gino(property)], or read such rows with \
             #[gino(unknown_properties = \"ignore\")] on the model"
        )
        .into()),
    }
}

/// Reads a property that must be there (no default, not an `Option`):
/// a missing key is read as JSON `null`, which only an `Option` accepts.
#[doc(hidden)]
pub fn required<T: DeserializeOwned>(
    object: &Value,
    column: &str,
    key: &str,
) -> diesel::deserialize::Result<T> {
    match property(object, column, key)? {
        Some(value) => Ok(value),
        None => serde_json::from_value(Value::Null).map_err(|_| missing(column, key)),
    }
}

/// The JSON object of some properties, for an insert or a merge.
#[doc(hidden)]
pub fn object<'a>(entries: impl IntoIterator<Item = (&'a str, Result<Value>)>) -> Result<Value> {
    let mut map = Map::new();
    for (key, value) in entries {
        map.insert(key.to_owned(), value?);
    }
    Ok(Value::Object(map))
}

/// A property's value as JSON; a non-finite float (which JSON cannot hold,
/// and `serde_json` would turn into `null`) is an error, so that what is
/// stored reads back as what was written.
#[doc(hidden)]
pub fn to_value<T: Serialize>(key: &str, value: &T) -> Result<Value> {
    if let Some(float) = finite::first_non_finite(value) {
        return Err(Error::Query(diesel::result::Error::SerializationError(
            format!("JSON property `{key}` cannot be stored: {float} is not a JSON number (JSON has no NaN or infinity)").into(),
        )));
    }
    let refused = |why: String| {
        Error::Query(diesel::result::Error::SerializationError(
            format!("JSON property `{key}` cannot be stored: {why}").into(),
        ))
    };
    let value = serde_json::to_value(value).map_err(|e| refused(e.to_string()))?;
    if holds_nul(&value) {
        // `jsonb` refuses `\u0000`; a plain `json` column takes it, and then
        // every merge into the column and every property filter on the
        // table (both read it as `jsonb`) fails.
        return Err(refused(
            "a text in it holds a NUL character (\\u0000), which jsonb cannot hold".to_owned(),
        ));
    }
    Ok(value)
}

/// Whether a string (or an object's key) anywhere in `value` holds a NUL.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A JSON property as an SQL expression of its type: what
/// `<table>_props::<property>()` returns, for filters, orders, selects and
/// [`set_property`](#set_property) updates. Numeric properties take
/// `+ - * /` like diesel columns.
///
/// ```
/// use gino::prelude::*;
///
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "people")]
/// pub struct Person {
///     #[gino(primary_key)]
///     pub id: i32,
///     #[gino(property)]
///     pub age: Option<i32>,
/// }
///
/// # async fn demo() -> gino::Result<()> {
/// # Person::create_table().await?;
/// let mut p = Person::create().age(40).await?;
/// let older = Person::query().filter(people_props::age().gt(30)).gino().all().await?;
/// // GINO's `p.update(age=Person.age - 2)`: computed in SQL, the key merged.
/// p.update().set_property(people_props::age(), people_props::age() - 2).apply().await?;
/// assert_eq!((older.len(), p.age), (1, Some(38)));
/// # Ok(()) }
/// # fn main() { gino_testkit::doc::run(demo) } // models at the top level, not in main
/// ```
///
/// A property reads its table's column, so, like a column, it does not
/// compile in a query without its table (PostgreSQL would refuse it,
/// 42P01):
///
/// ```compile_fail,E0277
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "people")]
/// # pub struct Person { #[gino(primary_key)] pub id: i32, #[gino(property)] pub age: Option<i32> }
/// #[derive(Model, Debug, Clone)]
/// #[gino(table = "teams")]
/// pub struct Team {
///     #[gino(primary_key)]
///     pub id: i32,
/// }
/// async fn refused() -> gino::Result<Vec<Team>> {
///     Team::query().filter(people_props::age().gt(30)).gino().all().await
/// }
/// # fn main() {}
/// ```
///
/// nor beside an aggregate (42803):
///
/// ```compile_fail,E0271
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "people")]
/// # pub struct Person { #[gino(primary_key)] pub id: i32, #[gino(property)] pub age: Option<i32> }
/// fn refused() {
///     let _ = people::table.select((people_props::age(), diesel::dsl::count_star()));
/// }
/// # fn main() {}
/// ```
pub struct PropertyExpr<T, ST> {
    sql: &'static str,
    column: &'static str,
    key: &'static str,
    /// The SQL type of a floating-point property, whose values set in SQL
    /// must be checked for NaN and infinities ([`Checked`]).
    float: Option<&'static str>,
    /// The SQL type of a property whose field is no `Option`, whose values
    /// set in SQL must not be NULL: stored as JSON `null`, the row would no
    /// longer load ([`Checked`]).
    required: Option<&'static str>,
    /// Of a required JSONB property: whether its field's type reads JSON
    /// `null` (`serde_json::Value` does, a `Vec` or a struct does not);
    /// where not, a JSON `null` set in SQL is refused as NULL is. Asked
    /// only when a value is set, not whenever the property is named in a
    /// filter.
    reads_json_null: Option<fn() -> bool>,
    /// The SQL type of a date-time property, whose values set in SQL are
    /// written in GINO's format ([`Checked`]).
    datetime: Option<&'static str>,
    types: PhantomData<fn() -> (T, ST)>,
}

impl<T, ST> PropertyExpr<T, ST> {
    #[doc(hidden)]
    pub const fn new(sql: &'static str, column: &'static str, key: &'static str) -> Self {
        PropertyExpr {
            sql,
            column,
            key,
            float: None,
            required: None,
            reads_json_null: None,
            datetime: None,
            types: PhantomData,
        }
    }

    /// Marks a required JSONB property as one whose field's type `F` does
    /// not read JSON `null` (unless it does).
    #[doc(hidden)]
    pub fn refuses_json_null<F: DeserializeOwned>(mut self) -> Self {
        self.reads_json_null = Some(|| serde_json::from_value::<F>(Value::Null).is_ok());
        self
    }

    /// Marks the property as a date-time one of SQL type `sql_type`.
    #[doc(hidden)]
    pub const fn datetime(mut self, sql_type: &'static str) -> Self {
        self.datetime = Some(sql_type);
        self
    }

    /// Marks the property as one whose field is no `Option`, of SQL type
    /// `sql_type`.
    #[doc(hidden)]
    pub const fn required(mut self, sql_type: &'static str) -> Self {
        self.required = Some(sql_type);
        self
    }

    /// Marks the property as a floating-point one of SQL type `sql_type`.
    #[doc(hidden)]
    pub const fn float(mut self, sql_type: &'static str) -> Self {
        self.float = Some(sql_type);
        self
    }

    /// `expression` as the value this property is set to in SQL: for a
    /// floating-point property, checked to be finite, since JSON has no
    /// NaN or infinity and PostgreSQL would store them as strings that no
    /// longer read as numbers; for a property whose field is no `Option`,
    /// checked not to be NULL (`visits + 1` where the key is missing, say),
    /// nor JSON `null` unless the field's type reads it, since JSON `null`
    /// would not load into the field; for a date-time property, written as
    /// gino writes one (GINO's format, in UTC), not as PostgreSQL writes a
    /// timestamp in JSON, and refused where that format has no form for it
    /// (an infinite one, one before year 1).
    #[doc(hidden)]
    pub fn value_of<E>(&self, expression: E) -> Checked<E> {
        let refuses_json_null = self.reads_json_null.is_some_and(|reads| !reads());
        let required = self.required.map(|sql_type| {
            let null = if refuses_json_null {
                "NULL or JSON null"
            } else {
                "NULL"
            };
            let refusal = format!(
                "the JSON property `{}` cannot be set to {null}: its field is no Option (a \
                 computed value is NULL where the key is missing; COALESCE it with a default)",
                self.key
            );
            (sql_type, refusal)
        });
        // The refusal's text only where it can be needed: a non-float
        // property's value goes as it is.
        let float = self.float.map(|sql_type| {
            let refusal = format!(
                "JSON has no NaN or Infinity, so the property `{}` cannot hold ",
                self.key
            );
            (sql_type, refusal)
        });
        // PostgreSQL's infinite date-times and years before 1 have no form
        // in GINO's format (`to_char` makes NULL of the first and drops the
        // era of the other): stored, they would read back as something
        // else.
        let datetime = self.datetime.map(|sql_type| {
            let refusal = format!(
                "the JSON property `{}` holds date-times as GINO writes them, from year 1 \
                 on, so it cannot hold ",
                self.key
            );
            (sql_type, refusal)
        });
        Checked {
            expression,
            float,
            required,
            refuses_json_null,
            datetime,
        }
    }

    /// The JSON column the property is stored in.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "people")]
    /// # pub struct Person {
    /// #     #[gino(primary_key)]
    /// #     pub id: i32,
    /// #     #[gino(property)]
    /// #     pub age: Option<i32>,
    /// #     #[gino(property = "settings")]
    /// #     pub theme: Option<String>,
    /// # }
    /// # fn main() {
    /// assert_eq!(people_props::age().column(), "profile"); // the default column
    /// assert_eq!(people_props::theme().column(), "settings");
    /// # }
    /// ```
    pub fn column(&self) -> &'static str {
        self.column
    }

    /// The property's key in its column.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "people")]
    /// # pub struct Person {
    /// #     #[gino(primary_key)]
    /// #     pub id: i32,
    /// #     #[gino(property)]
    /// #     pub age: Option<i32>,
    /// #     #[gino(property = "settings")]
    /// #     pub theme: Option<String>,
    /// # }
    /// # fn main() {
    /// assert_eq!(people_props::theme().key(), "theme"); // the field's name
    /// # }
    /// ```
    pub fn key(&self) -> &'static str {
        self.key
    }
}

/// A value a property is set to in SQL ([`PropertyExpr::value_of`]).
#[doc(hidden)]
pub struct Checked<E> {
    expression: E,
    /// A float property's SQL type and the text refusing a non-finite
    /// value.
    float: Option<(&'static str, String)>,
    /// A required property's SQL type and the text refusing NULL.
    required: Option<(&'static str, String)>,
    /// JSON `null` is refused as NULL is.
    refuses_json_null: bool,
    /// A date-time property's SQL type and the text refusing one GINO's
    /// format cannot write.
    datetime: Option<(&'static str, String)>,
}

impl<E: QueryFragment<Pg>> QueryFragment<Pg> for Checked<E> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let Some((sql_type, _)) = &self.datetime else {
            return self.walk_checked(out);
        };
        // GINO's `%Y-%m-%dT%H:%M:%S.%f`, a time zone's in UTC, as
        // `JsonDateTime` writes it: a database shared with Python GINO
        // reads the same on both sides.
        out.push_sql("to_char(");
        self.walk_checked(out.reborrow())?;
        if *sql_type == "TIMESTAMPTZ" {
            out.push_sql(" AT TIME ZONE 'UTC'");
        }
        out.push_sql(", 'YYYY-MM-DD\"T\"HH24:MI:SS.US')");
        Ok(())
    }
}

impl<E: QueryFragment<Pg>> Checked<E> {
    /// The value, refused where it must not be stored.
    fn walk_checked<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.float.is_none() && self.required.is_none() && self.datetime.is_none() {
            return self.expression.walk_ast(out);
        }
        // Computed once (an expression may be volatile), then checked; a
        // value refused fails a cast of the refusal's text, which is SQL's
        // one way to raise an error of its own. The text is made to depend
        // on the value, so that a refusal's arm is not evaluated ahead
        // (constant folding) unless the value is a constant refused.
        out.push_sql("(SELECT CASE");
        if let Some((sql_type, refusal)) = &self.required {
            out.push_sql(" WHEN gino_value IS NULL");
            if self.refuses_json_null {
                out.push_sql(" OR jsonb_typeof(gino_value) = 'null'");
            }
            out.push_sql(" THEN ");
            let tail = " || left(pg_typeof(gino_value)::text, 0)";
            // A cast to text or jsonb takes any text: the refusal fails a
            // cast to integer first.
            match *sql_type {
                "TEXT" => {
                    out.push_sql("CAST(");
                    refuse(out.reborrow(), refusal, tail, "INTEGER")?;
                    out.push_sql(" AS TEXT)");
                }
                "JSONB" => {
                    out.push_sql("to_jsonb(");
                    refuse(out.reborrow(), refusal, tail, "INTEGER")?;
                    out.push_sql(")");
                }
                sql_type => refuse(out.reborrow(), refusal, tail, sql_type)?,
            }
        }
        if let Some((sql_type, refusal)) = &self.float {
            out.push_sql(" WHEN gino_value IN ('NaN', 'Infinity', '-Infinity') THEN ");
            refuse(out.reborrow(), refusal, " || gino_value", sql_type)?;
        }
        if let Some((sql_type, refusal)) = &self.datetime {
            out.push_sql(
                " WHEN NOT isfinite(gino_value) OR date_part('year', gino_value) < 1 THEN ",
            );
            refuse(out.reborrow(), refusal, " || gino_value", sql_type)?;
        }
        out.push_sql(" ELSE gino_value END FROM (SELECT ");
        self.expression.walk_ast(out.reborrow())?;
        out.push_sql(" AS gino_value) AS gino_checked)");
        Ok(())
    }
}

/// `CAST(<refusal> <tail> AS <sql_type>)`: an error of the refusal's text,
/// raised by the cast that fails on it.
fn refuse<'b>(
    mut out: AstPass<'_, 'b, Pg>,
    refusal: &'b String,
    tail: &str,
    sql_type: &str,
) -> QueryResult<()> {
    out.push_sql("CAST(");
    out.push_bind_param::<sql_types::Text, _>(refusal)?;
    out.push_sql(tail);
    out.push_sql(" AS ");
    out.push_sql(sql_type);
    out.push_sql(")");
    Ok(())
}

impl<T, ST> Clone for PropertyExpr<T, ST> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, ST> Copy for PropertyExpr<T, ST> {}

impl<T, ST> fmt::Debug for PropertyExpr<T, ST> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PropertyExpr").field(&self.sql).finish()
    }
}

impl<T, ST: TypedExpressionType> Expression for PropertyExpr<T, ST> {
    type SqlType = ST;
}

impl<T, ST> QueryFragment<Pg> for PropertyExpr<T, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.sql);
        Ok(())
    }
}

impl<T, ST> QueryId for PropertyExpr<T, ST> {
    // The SQL differs between properties of one type: cached by its text.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

// A property reads its table's column, so it appears where that table is
// in the FROM clause once, as the column may (in a query of another
// table, PostgreSQL would refuse the statement: 42P01), and selected it
// is of every row (42803 beside an aggregate, or grouped by another
// expression).
impl<T, ST, QS> AppearsOnTable<QS> for PropertyExpr<T, ST>
where
    Self: Expression,
    T: Table,
    QS: AppearsInFromClause<T, Count = Once>,
{
}

impl<T, ST, QS> SelectableExpression<QS> for PropertyExpr<T, ST> where Self: AppearsOnTable<QS> {}

impl<T, ST> ValidGrouping<()> for PropertyExpr<T, ST> {
    type IsAggregate = is_aggregate::No;
}

macro_rules! property_operator {
    ($op:ident, $method:ident) => {
        impl<T, ST, Rhs> std::ops::$op<Rhs> for PropertyExpr<T, ST>
        where
            ST: SqlType + TypedExpressionType + sql_types::ops::$op,
            <ST as sql_types::ops::$op>::Rhs: TypedExpressionType,
            Rhs: AsExpression<<ST as sql_types::ops::$op>::Rhs>,
        {
            // diesel's own operator impls name this path (its `ops` module
            // is private).
            type Output = diesel::internal::table_macro::ops::$op<Self, Rhs::Expression>;

            fn $method(self, rhs: Rhs) -> Self::Output {
                diesel::internal::table_macro::ops::$op::new(self, rhs.as_expression())
            }
        }
    };
}

property_operator!(Add, add);
property_operator!(Sub, sub);
property_operator!(Mul, mul);
property_operator!(Div, div);

/// The changes of one update to one JSON column of properties, as one
/// assignment: `"profile" = "profile" || $values || jsonb_build_object(key,
/// expression, ...)`. `||` merges, so a concurrent update of other keys of
/// the row survives; a null column merges as `{}`, and a plain `json`
/// column is cast there and back.
#[doc(hidden)]
pub struct Merge<T> {
    column: &'static str,
    plain_json: bool,
    values: Value,
    expressions: Vec<(String, Box<dyn QueryFragment<Pg> + Send + Sync>)>,
    table: PhantomData<fn() -> T>,
}

impl<T> Merge<T> {
    pub fn new(column: &'static str, plain_json: bool) -> Self {
        Merge {
            column,
            plain_json,
            values: Value::Object(Map::new()),
            expressions: Vec::new(),
            table: PhantomData,
        }
    }

    fn values(&mut self) -> &mut Map<String, Value> {
        match &mut self.values {
            Value::Object(map) => map,
            _ => unreachable!("made as an object"),
        }
    }

    /// Sets `key` to a value, replacing an earlier change of it.
    pub fn set_value(&mut self, key: &str, value: Value) {
        self.expressions.retain(|(k, _)| k != key);
        self.values().insert(key.to_owned(), value);
    }

    /// Sets `key` to what an SQL expression computes.
    pub fn set_sql<E>(&mut self, key: &str, expression: E)
    where
        E: QueryFragment<Pg> + Send + Sync + 'static,
    {
        self.values().remove(key);
        self.expressions.retain(|(k, _)| k != key);
        self.expressions
            .push((key.to_owned(), Box::new(expression)));
    }

    /// The keys changed.
    pub fn keys(&self) -> Vec<String> {
        let values = self.values.as_object().into_iter().flat_map(Map::keys);
        values
            .chain(self.expressions.iter().map(|(k, _)| k))
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.values.as_object().is_none_or(Map::is_empty) && self.expressions.is_empty()
    }

    /// The JSON column it merges into.
    pub fn column(&self) -> &'static str {
        self.column
    }
}

impl<T: diesel::QuerySource> AsChangeset for Merge<T> {
    type Target = T;
    type Changeset = Self;

    fn as_changeset(self) -> Self {
        self
    }
}

impl<T> QueryFragment<Pg> for Merge<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_identifier(self.column)?;
        out.push_sql(" = ");
        if self.plain_json {
            out.push_sql("(");
        }
        // A null column (JSON's or SQL's, as another program may leave it)
        // merges as no properties: `null || object` would be an array.
        out.push_sql("COALESCE(NULLIF(");
        out.push_identifier(self.column)?;
        if self.plain_json {
            out.push_sql("::jsonb");
        }
        out.push_sql(", 'null'::jsonb), '{}'::jsonb)");
        if !self.values.as_object().is_none_or(Map::is_empty) {
            out.push_sql(" || ");
            out.push_bind_param::<sql_types::Jsonb, _>(&self.values)?;
        }
        if !self.expressions.is_empty() {
            out.push_sql(" || jsonb_build_object(");
            for (i, (key, expression)) in self.expressions.iter().enumerate() {
                if i > 0 {
                    out.push_sql(", ");
                }
                out.push_bind_param::<sql_types::Text, _>(key)?;
                out.push_sql("::text, ");
                expression.walk_ast(out.reborrow())?;
            }
            out.push_sql(")");
        }
        if self.plain_json {
            out.push_sql(")::json");
        }
        Ok(())
    }
}

impl<T> QueryId for Merge<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Date-time properties in GINO's format, so that a database shared with
/// Python GINO reads the same on both sides: written as
/// `%Y-%m-%dT%H:%M:%S.%f` (`1970-01-01T00:00:00.000000`, UTC for a
/// `DateTime<Utc>`, as GINO's `DateTimeProperty` stores naive date-times),
/// read from that, from the same without fractions, and from RFC 3339 with
/// an offset.
#[doc(hidden)]
#[cfg(feature = "chrono")]
pub mod datetime {
    use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
    use serde_json::Value;

    use crate::error::Result;

    /// A date-time type of a JSON property.
    pub trait JsonDateTime: Sized {
        fn to_json(&self) -> Value;
        fn from_json(value: &Value) -> Option<Self>;
    }

    const GINO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

    /// A naive date-time of `text`; of one with an offset, its wall-clock
    /// time, the offset dropped, as the property's SQL (`CAST(... AS
    /// TIMESTAMP)`) reads it, so that a filter and the loaded value agree.
    ///
    /// ```
    /// use gino::json::datetime::JsonDateTime;
    /// let stored = serde_json::json!("2020-01-01T00:00:00+05:00");
    /// let read = chrono::NaiveDateTime::from_json(&stored).unwrap();
    /// assert_eq!(read.to_string(), "2020-01-01 00:00:00");
    /// ```
    fn parse_naive(text: &str) -> Option<NaiveDateTime> {
        parse_wall(text).or_else(|| parse_with_offset(text).map(|d| d.naive_local()))
    }

    /// A wall-clock date-time, a `T` or a space between date and time.
    fn parse_wall(text: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
            .ok()
    }

    /// A date-time with an offset, in the forms the property's SQL reads
    /// with theirs: `Z`, or `±HH`, `±HH:MM` or `±HH:MM:SS` (colons
    /// optional) after the time. PostgreSQL writes seconds for a zone's
    /// local mean time (`to_json` of a `timestamptz`:
    /// `1879-12-31T19:03:58-04:56:02`), which RFC 3339 has not.
    ///
    /// ```
    /// use gino::json::datetime::JsonDateTime;
    /// let stored = serde_json::json!("1879-12-31T19:03:58-04:56:02");
    /// let read = chrono::DateTime::<chrono::Utc>::from_json(&stored).unwrap();
    /// assert_eq!(read.to_rfc3339(), "1880-01-01T00:00:00+00:00");
    /// let hours = serde_json::json!("2020-01-01 05:00:00+05");
    /// let read = chrono::DateTime::<chrono::Utc>::from_json(&hours).unwrap();
    /// assert_eq!(read.to_rfc3339(), "2020-01-01T00:00:00+00:00");
    /// ```
    fn parse_with_offset(text: &str) -> Option<DateTime<FixedOffset>> {
        if let Some(wall) = text.strip_suffix(['Z', 'z']) {
            return Some(parse_wall(wall)?.and_utc().fixed_offset());
        }
        // The sign after the date's own dashes.
        let at = text.get(10..)?.rfind(['+', '-'])? + 10;
        let (wall, offset) = text.split_at(at);
        let digits: Vec<u8> = offset[1..].bytes().filter(|b| *b != b':').collect();
        if !matches!(digits.len(), 2 | 4 | 6) || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let seconds = digits
            .chunks(2)
            .zip([3600, 60, 1])
            .map(|(pair, unit)| i32::from((pair[0] - b'0') * 10 + (pair[1] - b'0')) * unit)
            .sum();
        let offset = if offset.starts_with('-') {
            FixedOffset::west_opt(seconds)?
        } else {
            FixedOffset::east_opt(seconds)?
        };
        parse_wall(wall)?.and_local_timezone(offset).single()
    }

    impl JsonDateTime for NaiveDateTime {
        fn to_json(&self) -> Value {
            Value::String(self.format(GINO_FORMAT).to_string())
        }

        fn from_json(value: &Value) -> Option<Self> {
            parse_naive(value.as_str()?)
        }
    }

    impl JsonDateTime for DateTime<Utc> {
        fn to_json(&self) -> Value {
            self.naive_utc().to_json()
        }

        fn from_json(value: &Value) -> Option<Self> {
            let text = value.as_str()?;
            parse_with_offset(text)
                .map(|d| d.with_timezone(&Utc))
                .or_else(|| parse_wall(text).map(|n| n.and_utc()))
        }
    }

    impl<T: JsonDateTime> JsonDateTime for Option<T> {
        fn to_json(&self) -> Value {
            self.as_ref().map_or(Value::Null, T::to_json)
        }

        fn from_json(value: &Value) -> Option<Self> {
            match value {
                Value::Null => Some(None),
                other => T::from_json(other).map(Some),
            }
        }
    }

    /// [`super::to_value`] for date-times.
    pub fn to_value<T: JsonDateTime>(_key: &str, value: &T) -> Result<Value> {
        Ok(value.to_json())
    }

    /// [`super::property`] for date-times.
    pub fn property<T: JsonDateTime>(
        object: &Value,
        column: &str,
        key: &str,
    ) -> diesel::deserialize::Result<Option<T>> {
        match super::stored(object, column, key)? {
            None => Ok(None),
            Some(Value::Null) => Ok(T::from_json(&Value::Null)),
            Some(value) => T::from_json(value).map(Some).ok_or_else(|| {
                format!(
                    "JSON property `{key}` (in column `{column}`) holds {value}, which is not a \
                     date-time (expected e.g. \"1970-01-01T00:00:00.000000\")"
                )
                .into()
            }),
        }
    }

    /// [`super::required`] for date-times.
    pub fn required<T: JsonDateTime>(
        object: &Value,
        column: &str,
        key: &str,
    ) -> diesel::deserialize::Result<T> {
        match property(object, column, key)? {
            Some(value) => Ok(value),
            None => T::from_json(&Value::Null).ok_or_else(|| super::missing(column, key)),
        }
    }
}
