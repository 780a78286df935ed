//! How Rust field types map to diesel SQL types and PostgreSQL DDL types.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{GenericArgument, PathArguments, Type};

/// The SQL side of a field type.
pub struct Mapped {
    /// diesel SQL type, e.g. `diesel::sql_types::Nullable<Text>`.
    pub sql_type: TokenStream,
    /// DDL type, e.g. `text[]`.
    pub ddl: String,
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// The single generic argument of `Option<T>` / `Vec<T>`.
fn inner(segment: &syn::PathSegment) -> Option<&Type> {
    match &segment.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// Maps `ty`; `None` for a type gino does not know (the field then needs
/// `sql_type` and `ddl` attributes).
pub fn map(ty: &Type) -> Option<Mapped> {
    let st = |name: &str| {
        let ident = syn::Ident::new(name, proc_macro2::Span::call_site());
        quote!(::gino::reexports::diesel::sql_types::#ident)
    };
    let segment = last_segment(ty)?;
    let name = segment.ident.to_string();
    let plain = |sql: &str, ddl: &str| {
        Some(Mapped {
            sql_type: st(sql),
            ddl: ddl.to_owned(),
        })
    };
    match name.as_str() {
        "Option" => {
            let inner = map(inner(segment)?)?;
            let sql = inner.sql_type;
            Some(Mapped {
                sql_type: quote!(::gino::reexports::diesel::sql_types::Nullable<#sql>),
                ddl: inner.ddl,
            })
        }
        "Vec" => {
            let element = inner(segment)?;
            if last_segment(element).is_some_and(|s| s.ident == "u8") {
                return plain("Binary", "bytea");
            }
            let inner = map(element)?;
            let sql = inner.sql_type;
            Some(Mapped {
                sql_type: quote!(::gino::reexports::diesel::sql_types::Array<#sql>),
                ddl: format!("{}[]", inner.ddl),
            })
        }
        "i16" => plain("SmallInt", "smallint"),
        "i32" => plain("Integer", "integer"),
        "i64" => plain("BigInt", "bigint"),
        "f32" => plain("Float", "real"),
        "f64" => plain("Double", "double precision"),
        "bool" => plain("Bool", "boolean"),
        "String" => plain("Text", "text"),
        "Value" => plain("Jsonb", "jsonb"),
        "NaiveDateTime" => plain("Timestamp", "timestamp"),
        "DateTime" => plain("Timestamptz", "timestamptz"),
        "NaiveDate" => plain("Date", "date"),
        "NaiveTime" => plain("Time", "time"),
        "Uuid" => plain("Uuid", "uuid"),
        _ => None,
    }
}

/// The serial DDL type for an integer type, if it is one.
pub fn serial_ddl(ddl: &str) -> Option<&'static str> {
    match ddl {
        "smallint" => Some("smallserial"),
        "integer" => Some("serial"),
        "bigint" => Some("bigserial"),
        _ => None,
    }
}

/// `(T, true)` for `Option<T>`, else `(ty, false)`.
/// The last identifier of a type's path (`DateTime` of `chrono::DateTime<Utc>`).
pub fn last_ident(ty: &Type) -> Option<String> {
    last_segment(ty).map(|s| s.ident.to_string())
}

pub fn strip_option(ty: &Type) -> (&Type, bool) {
    match last_segment(ty) {
        Some(segment) if segment.ident == "Option" => match inner(segment) {
            Some(inner) => (inner, true),
            None => (ty, false),
        },
        _ => (ty, false),
    }
}

/// Whether the expression [`property_sql`] makes for `ty` can be indexed:
/// PostgreSQL's casts from text to dates and times read the session's
/// `DateStyle` and time zone, so they are not immutable, which an index
/// expression must be.
pub fn property_indexable(ty: &Type) -> bool {
    !TEMPORAL.contains(&last_ident(ty).unwrap_or_default().as_str())
}

/// The date and time types [`property_sql`] casts from text.
const TEMPORAL: [&str; 3] = ["NaiveDateTime", "DateTime", "NaiveDate"];

/// The diesel and PostgreSQL types of a JSON property of Rust type `ty`
/// (an `Option`'s inner type).
pub fn property_types(ty: &Type) -> (&'static str, &'static str) {
    match last_ident(ty).unwrap_or_default().as_str() {
        "i16" => ("SmallInt", "SMALLINT"),
        "i32" => ("Integer", "INTEGER"),
        "i64" => ("BigInt", "BIGINT"),
        "f32" => ("Float", "REAL"),
        "f64" => ("Double", "DOUBLE PRECISION"),
        "bool" => ("Bool", "BOOLEAN"),
        "String" => ("Text", "TEXT"),
        "NaiveDateTime" => ("Timestamp", "TIMESTAMP"),
        "DateTime" => ("Timestamptz", "TIMESTAMPTZ"),
        "NaiveDate" => ("Date", "DATE"),
        _ => ("Jsonb", "JSONB"),
    }
}

/// The SQL type of a floating-point property of Rust type `ty`, whose
/// values set in SQL gino checks to be finite.
pub fn float_sql(ty: &Type) -> Option<&'static str> {
    match property_types(ty) {
        ("Float" | "Double", pg) => Some(pg),
        _ => None,
    }
}

/// How a JSON property of type `ty` reads in SQL: its diesel SQL type and
/// the expression on `target` (the quoted JSONB column): `->>` cast to the
/// type for scalars, `->` (jsonb) for anything else.
pub fn property_sql(ty: &Type, target: &str, key: &str) -> (TokenStream, String) {
    let (diesel_type, pg) = property_types(ty);
    let ident = syn::Ident::new(diesel_type, proc_macro2::Span::call_site());
    let sql_type = quote!(::gino::reexports::diesel::sql_types::#ident);
    let text = format!("({target} ->> '{key}')");
    let sql = match diesel_type {
        "Text" => text,
        // Stored as GINO stores date-times, without an offset, in UTC; a
        // plain TIMESTAMPTZ cast would read that in the session's time
        // zone. A text with an offset (written by another program, or by
        // PostgreSQL, whose offsets can have seconds) is read with it.
        "Timestamptz" => format!(
            "(CASE WHEN {text} ~ '([Zz]|[+-]\\d\\d(:?\\d\\d(:?\\d\\d)?)?)$' THEN CAST({text} AS TIMESTAMPTZ) \
             ELSE CAST({text} AS TIMESTAMP) AT TIME ZONE 'UTC' END)"
        ),
        "Jsonb" => format!("({target} -> '{key}')"),
        _ => format!("CAST({target} ->> '{key}' AS {pg})"),
    };
    (sql_type, sql)
}
