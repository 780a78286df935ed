//! `#[derive(Model)]`: parses the `#[gino(...)]` attributes and generates
//! the diesel table, the table metadata, the `gino::Model` impl and the
//! class-level API.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Path, Result, Type};

use crate::types;

/// One field and what its attributes say.
struct Field {
    ident: Ident,
    ty: Type,
    column: String,
    primary_key: bool,
    /// Where `gino::table!` lists the column in its key, which may differ
    /// from the columns' order; the key follows the fields' order without.
    key_position: Option<usize>,
    autoincrement: Option<bool>,
    default: Option<Expr>,
    server_default: Option<String>,
    unique: bool,
    index: bool,
    references: Option<Reference>,
    /// `false` (`join = false`) for a key to a model that makes no joins.
    join: bool,
    on_delete: Option<String>,
    on_update: Option<String>,
    check: Option<String>,
    /// `comment = "..."`: the column's comment.
    comment: Option<String>,
    sql_type: Option<Type>,
    ddl: Option<String>,
    db_enum: bool,
    /// `Some(column)` for a JSON property stored in that JSONB column.
    property: Option<String>,
    before_set: Option<Path>,
    after_get: Option<Path>,
    expr: Option<String>,
    /// The property's column is a plain `json` column, not `jsonb`.
    plain_json: bool,
    /// `#[gino(flatten)]`: the field holds a set of columns (`#[derive(Columns)]`).
    flatten: bool,
    /// For a column of a flattened set: the model's field holding the set,
    /// and the set's type.
    group: Option<(Ident, Type)>,
    /// The JSONB column of properties, added without a field of its own.
    hidden: bool,
}

/// The JSON key of a property: its field's name, without the `r#` of a raw
/// identifier (`r#loop` is stored as `"loop"`, as GINO's `loop` property).
fn property_key(p: &Field) -> String {
    p.ident.to_string().trim_start_matches("r#").to_owned()
}

impl Field {
    /// The field in a value of the model: `nickname`, or for a column of a
    /// flattened set `stamps.created_at`.
    fn access(&self) -> TokenStream {
        let ident = &self.ident;
        match &self.group {
            Some((holder, _)) => quote!(#holder.#ident),
            None => quote!(#ident),
        }
    }
}

/// The struct literal `path { field: value, ... }` of the model, the
/// columns of a flattened set nested in a literal of their own type.
fn construct(path: TokenStream, items: &[(&Field, TokenStream)]) -> TokenStream {
    let mut fields = Vec::new();
    let mut built: Vec<&Ident> = Vec::new();
    for (field, value) in items {
        let ident = &field.ident;
        match &field.group {
            None => fields.push(quote!(#ident: #value,)),
            Some((holder, ty)) if !built.contains(&holder) => {
                built.push(holder);
                let members = items.iter().filter_map(|(member, value)| {
                    let (h, _) = member.group.as_ref()?;
                    let ident = &member.ident;
                    (h == holder).then(|| quote!(#ident: #value,))
                });
                fields.push(quote!(#holder: #ty { #(#members)* },));
            }
            Some(_) => {}
        }
    }
    quote!(#path { #(#fields)* })
}

/// What a foreign key field references.
enum Reference {
    /// `references = "table(column, ...)"`: a table and its columns by
    /// their SQL names.
    Table(String, Vec<String>),
    /// `references = Model`: that model's table and primary key, joinable
    /// with diesel.
    Model(Path),
}

struct Index {
    /// `None`: `ix_<table>_<columns>`.
    name: Option<String>,
    columns: Vec<Ident>,
    unique: bool,
}

struct Unique {
    name: Option<String>,
    columns: Vec<Ident>,
}

struct Check {
    name: Option<String>,
    expression: String,
}

/// A model attribute `foreign_key(...)`: a key of several columns, or one
/// with a name.
struct ForeignKey {
    name: Option<String>,
    columns: Vec<Ident>,
    references: Reference,
    on_delete: Option<String>,
    on_update: Option<String>,
}

#[derive(Default)]
struct ModelAttrs {
    table: Option<String>,
    schema: Option<String>,
    db: Option<Path>,
    lookup: Option<Path>,
    diesel_table: Option<Path>,
    indexes: Vec<Index>,
    uniques: Vec<Unique>,
    checks: Vec<Check>,
    foreign_keys: Vec<ForeignKey>,
    /// Read rows whose JSON property columns hold keys no property
    /// declares, instead of refusing them.
    ignore_unknown_properties: bool,
    /// `comment = "..."`: the table's comment.
    comment: Option<String>,
}

fn lit_str(meta: &syn::meta::ParseNestedMeta) -> Result<String> {
    Ok(meta.value()?.parse::<LitStr>()?.value())
}

/// `references = Model` or `references = "table(column, ...)"`.
fn parse_reference(meta: &syn::meta::ParseNestedMeta) -> Result<Reference> {
    let value = meta.value()?;
    if !value.peek(LitStr) {
        return Ok(Reference::Model(value.parse()?));
    }
    let target = value.parse::<LitStr>()?.value();
    target
        .strip_suffix(')')
        .and_then(|t| t.split_once('('))
        .map(|(table, columns)| {
            let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_owned()).collect();
            (table.trim().to_owned(), columns)
        })
        .filter(|(table, columns)| !table.is_empty() && columns.iter().all(|c| !c.is_empty()))
        .map(|(table, columns)| Reference::Table(table, columns))
        .ok_or_else(|| {
            meta.error(
                "references takes a model (references = User) or \"table(column)\" \
                 (references = \"users(id)\")",
            )
        })
}

fn ident_list(meta: &syn::meta::ParseNestedMeta) -> Result<Vec<Ident>> {
    let mut idents = Vec::new();
    meta.parse_nested_meta(|m| {
        idents.push(m.path.require_ident()?.clone());
        Ok(())
    })?;
    Ok(idents)
}

/// Who declares table attributes: a model, or a set of columns, whose
/// indexes and constraints every model flattening it gets.
#[derive(Clone, Copy, PartialEq)]
enum Declarer {
    Model,
    ColumnSet,
}

/// What a set of columns may declare for its models' tables.
const SET_TABLE_ATTRS: [&str; 4] = ["index", "unique", "check", "foreign_key"];

impl ModelAttrs {
    /// Adds the indexes and constraints a flattened set declares.
    fn add_set(&mut self, set: ModelAttrs) {
        self.indexes.extend(set.indexes);
        self.uniques.extend(set.uniques);
        self.checks.extend(set.checks);
        self.foreign_keys.extend(set.foreign_keys);
    }
}

/// A constraint or index name, with `{table}` replaced by the table's
/// name, so that a set of columns can name one per table.
fn name_for(name: &str, table: &str) -> String {
    name.replace("{table}", table)
}

/// A set's index or unique constraint is made once per table that
/// flattens the set, and such names are the schema's: a set names one
/// with `{table}` in it, or leaves the name to the table.
fn per_table_name(
    meta: &syn::meta::ParseNestedMeta,
    declarer: Declarer,
    name: Option<&str>,
) -> Result<()> {
    match name {
        Some(name) if declarer == Declarer::ColumnSet && !name.contains("{table}") => Err(meta
            .error(format!(
                "every model flattening this set gets this index or constraint, and its name \
                 must differ per table: put `{{table}}` in it (\"{{table}}_{name}\"), or leave \
                 the name out"
            ))),
        _ => Ok(()),
    }
}

fn parse_model_attrs(input: &DeriveInput) -> Result<ModelAttrs> {
    parse_table_attrs(input, Declarer::Model)
}

/// Refuses an attribute key that `seen` (the keys of one item's
/// attributes so far) already holds: the later value would silently win.
pub(crate) fn given_once(seen: &mut Vec<String>, meta: &syn::meta::ParseNestedMeta) -> Result<()> {
    let Some(key) = meta.path.get_ident().map(ToString::to_string) else {
        return Ok(());
    };
    if seen.contains(&key) {
        return Err(meta.error(format!("`{key}` is given twice: give it once")));
    }
    seen.push(key);
    Ok(())
}

fn parse_table_attrs(input: &DeriveInput, declarer: Declarer) -> Result<ModelAttrs> {
    let mut attrs = ModelAttrs::default();
    let mut seen = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("gino")) {
        attr.parse_nested_meta(|meta| {
            // A set's attributes are the table's items, each as often as
            // there are items.
            if !SET_TABLE_ATTRS.iter().any(|key| meta.path.is_ident(key)) {
                given_once(&mut seen, &meta)?;
            }
            if declarer == Declarer::ColumnSet
                && !SET_TABLE_ATTRS.iter().any(|key| meta.path.is_ident(key))
            {
                return Err(meta.error(
                    "a set of columns declares only index, unique, check and foreign_key, \
                     which every model flattening it gets; the table's name and settings \
                     belong to the model",
                ));
            }
            if meta.path.is_ident("table") {
                attrs.table = Some(lit_str(&meta)?);
            } else if meta.path.is_ident("schema") {
                attrs.schema = Some(lit_str(&meta)?);
            } else if meta.path.is_ident("comment") {
                attrs.comment = Some(lit_str(&meta)?);
            } else if meta.path.is_ident("db") {
                attrs.db = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("lookup") {
                attrs.lookup = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("diesel_table") {
                attrs.diesel_table = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("index") {
                let mut index = Index {
                    name: None,
                    columns: Vec::new(),
                    unique: false,
                };
                let mut item_keys = Vec::new();
                meta.parse_nested_meta(|m| {
                    given_once(&mut item_keys, &m)?;
                    if m.path.is_ident("name") {
                        index.name = Some(lit_str(&m)?);
                    } else if m.path.is_ident("columns") {
                        index.columns = ident_list(&m)?;
                    } else if m.path.is_ident("unique") {
                        index.unique = true;
                    } else {
                        return Err(
                            m.error("expected `name = \"...\"`, `columns(a, b)` or `unique`")
                        );
                    }
                    Ok(())
                })?;
                if index.columns.is_empty() {
                    return Err(meta.error(
                        "an index needs columns: index(columns(a, b)), or \
                         index(name = \"ix\", columns(a, b))",
                    ));
                }
                per_table_name(&meta, declarer, index.name.as_deref())?;
                attrs.indexes.push(index);
            } else if meta.path.is_ident("unique") {
                let mut unique = Unique {
                    name: None,
                    columns: Vec::new(),
                };
                let mut item_keys = Vec::new();
                meta.parse_nested_meta(|m| {
                    given_once(&mut item_keys, &m)?;
                    if m.path.is_ident("name") {
                        unique.name = Some(lit_str(&m)?);
                    } else if m.path.is_ident("columns") {
                        unique.columns = ident_list(&m)?;
                    } else {
                        return Err(m.error("expected `name = \"...\"` or `columns(a, b)`"));
                    }
                    Ok(())
                })?;
                if unique.columns.is_empty() {
                    return Err(
                        meta.error("a unique constraint needs columns: unique(columns(a, b))")
                    );
                }
                per_table_name(&meta, declarer, unique.name.as_deref())?;
                attrs.uniques.push(unique);
            } else if meta.path.is_ident("check") {
                let mut check = Check {
                    name: None,
                    expression: String::new(),
                };
                let mut item_keys = Vec::new();
                meta.parse_nested_meta(|m| {
                    given_once(&mut item_keys, &m)?;
                    if m.path.is_ident("name") {
                        check.name = Some(lit_str(&m)?);
                    } else if m.path.is_ident("expr") {
                        check.expression = lit_str(&m)?;
                    } else {
                        return Err(m.error("expected `name = \"...\"` or `expr = \"...\"`"));
                    }
                    Ok(())
                })?;
                if check.expression.is_empty() {
                    return Err(meta.error("a check needs an expression: check(expr = \"x > 0\")"));
                }
                attrs.checks.push(check);
            } else if meta.path.is_ident("foreign_key") {
                let (mut name, mut columns, mut references) = (None, Vec::new(), None);
                let (mut on_delete, mut on_update) = (None, None);
                let mut item_keys = Vec::new();
                meta.parse_nested_meta(|m| {
                    given_once(&mut item_keys, &m)?;
                    if m.path.is_ident("name") {
                        name = Some(lit_str(&m)?);
                    } else if m.path.is_ident("columns") {
                        columns = ident_list(&m)?;
                    } else if m.path.is_ident("references") {
                        references = Some(parse_reference(&m)?);
                    } else if m.path.is_ident("on_delete") {
                        on_delete = Some(lit_str(&m)?.to_uppercase());
                    } else if m.path.is_ident("on_update") {
                        on_update = Some(lit_str(&m)?.to_uppercase());
                    } else {
                        return Err(m.error(
                            "expected `name = \"...\"`, `columns(a, b)`, `references = ...`, \
                             `on_delete = \"...\"` or `on_update = \"...\"`",
                        ));
                    }
                    Ok(())
                })?;
                let usage = "a foreign key needs columns and what they reference: \
                             foreign_key(columns(a, b), references = \"t(a, b)\")";
                let references = references.ok_or_else(|| meta.error(usage))?;
                if columns.is_empty() {
                    return Err(meta.error(usage));
                }
                if let Reference::Table(_, referenced) = &references
                    && referenced.len() != columns.len()
                {
                    return Err(meta.error(format!(
                        "this foreign key has {} columns but references {}",
                        columns.len(),
                        referenced.len()
                    )));
                }
                attrs.foreign_keys.push(ForeignKey {
                    name,
                    columns,
                    references,
                    on_delete,
                    on_update,
                });
            } else if meta.path.is_ident("unknown_properties") {
                attrs.ignore_unknown_properties = match lit_str(&meta)?.as_str() {
                    "error" => false,
                    "ignore" => true,
                    _ => {
                        return Err(meta
                            .error("unknown_properties is \"error\" (the default) or \"ignore\""));
                    }
                };
            } else {
                return Err(meta.error(
                    "unknown model attribute: expected table, schema, db, lookup, diesel_table, \
                     index, unique, check, foreign_key, comment or unknown_properties",
                ));
            }
            Ok(())
        })?;
    }
    Ok(attrs)
}

fn parse_field(field: &syn::Field) -> Result<Field> {
    let ident = field
        .ident
        .clone()
        .ok_or_else(|| syn::Error::new(field.span(), "models need named fields"))?;
    let mut parsed = Field {
        column: ident.to_string().trim_start_matches("r#").to_owned(),
        ident,
        ty: field.ty.clone(),
        primary_key: false,
        key_position: None,
        autoincrement: None,
        default: None,
        server_default: None,
        unique: false,
        index: false,
        references: None,
        join: true,
        on_delete: None,
        on_update: None,
        check: None,
        comment: None,
        sql_type: None,
        ddl: None,
        db_enum: false,
        property: None,
        before_set: None,
        after_get: None,
        expr: None,
        plain_json: false,
        flatten: false,
        group: None,
        hidden: false,
    };
    let mut seen = Vec::new();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("gino")) {
        attr.parse_nested_meta(|meta| {
            given_once(&mut seen, &meta)?;
            let p = &meta.path;
            if p.is_ident("primary_key") {
                parsed.primary_key = true;
            } else if p.is_ident("__key_position") {
                parsed.key_position = Some(meta.value()?.parse::<syn::LitInt>()?.base10_parse()?);
            } else if p.is_ident("autoincrement") {
                parsed.autoincrement = Some(meta.value()?.parse::<syn::LitBool>()?.value);
            } else if p.is_ident("column") {
                parsed.column = lit_str(&meta)?;
            } else if p.is_ident("default") {
                parsed.default = Some(meta.value()?.parse()?);
            } else if p.is_ident("server_default") {
                parsed.server_default = Some(lit_str(&meta)?);
            } else if p.is_ident("unique") {
                parsed.unique = true;
            } else if p.is_ident("index") {
                parsed.index = true;
            } else if p.is_ident("references") {
                let reference = parse_reference(&meta)?;
                if let Reference::Table(_, columns) = &reference
                    && columns.len() != 1
                {
                    return Err(meta.error(
                        "a field's key references one column; a key of several columns is a \
                         model attribute: #[gino(foreign_key(columns(a, b), references = \"t(a, b)\"))]",
                    ));
                }
                parsed.references = Some(reference);
            } else if p.is_ident("join") {
                parsed.join = meta.value()?.parse::<syn::LitBool>()?.value;
            } else if p.is_ident("on_delete") {
                parsed.on_delete = Some(lit_str(&meta)?.to_uppercase());
            } else if p.is_ident("on_update") {
                parsed.on_update = Some(lit_str(&meta)?.to_uppercase());
            } else if p.is_ident("check") {
                parsed.check = Some(lit_str(&meta)?);
            } else if p.is_ident("comment") {
                parsed.comment = Some(lit_str(&meta)?);
            } else if p.is_ident("sql_type") {
                parsed.sql_type = Some(meta.value()?.parse()?);
            } else if p.is_ident("ddl") {
                parsed.ddl = Some(lit_str(&meta)?);
            } else if p.is_ident("property") {
                parsed.property = Some(if meta.input.peek(syn::Token![=]) {
                    lit_str(&meta)?
                } else {
                    "profile".to_owned()
                });
            } else if p.is_ident("before_set") {
                parsed.before_set = Some(meta.value()?.parse()?);
            } else if p.is_ident("after_get") {
                parsed.after_get = Some(meta.value()?.parse()?);
            } else if p.is_ident("expr") {
                parsed.expr = Some(lit_str(&meta)?);
            } else if p.is_ident("db_enum") {
                parsed.db_enum = true;
            } else if p.is_ident("json") {
                parsed.plain_json = true;
            } else if p.is_ident("flatten") {
                parsed.flatten = true;
            } else {
                return Err(meta.error(
                    "unknown field attribute: expected primary_key, autoincrement, column, \
                     default, server_default, unique, index, references, join, on_delete, \
                     on_update, check, comment, sql_type, ddl, db_enum, property, json, before_set, \
                     after_get, expr or flatten",
                ));
            }
            Ok(())
        })?;
    }
    if let Some(other) = seen
        .iter()
        .find(|key| *key != "flatten")
        .filter(|_| parsed.flatten)
    {
        return Err(syn::Error::new(
            parsed.ident.span(),
            format!(
                "#[gino(flatten)] takes no `{other}`: the set's columns carry their own \
                 attributes, on the fields of the struct deriving gino::Columns"
            ),
        ));
    }
    if parsed.plain_json && parsed.property.is_none() {
        return Err(syn::Error::new(
            parsed.ident.span(),
            "`json` makes a property's column plain json: #[gino(property, json)]",
        ));
    }
    if parsed.property.is_none()
        && (parsed.before_set.is_some() || parsed.after_get.is_some() || parsed.expr.is_some())
    {
        return Err(syn::Error::new(
            parsed.ident.span(),
            "`before_set`, `after_get` and `expr` belong to JSON properties: \
             #[gino(property, before_set = path)]; a column's value is what its field holds",
        ));
    }
    if parsed.references.is_none() && (parsed.on_delete.is_some() || parsed.on_update.is_some()) {
        return Err(syn::Error::new(
            parsed.ident.span(),
            "`on_delete` and `on_update` are actions of a foreign key: \
             #[gino(references = User, on_delete = \"cascade\")]",
        ));
    }
    if !parsed.join && !matches!(parsed.references, Some(Reference::Model(_))) {
        return Err(syn::Error::new(
            parsed.ident.span(),
            "`join = false` leaves out the joins of a key to a model: \
             #[gino(references = Team, join = false)]",
        ));
    }
    Ok(parsed)
}

/// What the SQL side of a field is, attributes applied.
struct Resolved {
    sql_type: TokenStream,
    /// An expression of type `&'static str`.
    ddl: TokenStream,
    nullable: bool,
    serial: bool,
    /// The enum type of a `db_enum` field.
    db_enum: Option<Type>,
}

/// A field of a `#[derive(DbEnum)]` type `E` (or `Option<E>`): SQL type
/// `ETypeWithSuffix`, made by that derive next to `E`.
fn resolve_db_enum(field: &Field) -> Result<Resolved> {
    let (inner, nullable) = types::strip_option(&field.ty);
    let mut path = match inner {
        Type::Path(p) if p.qself.is_none() => p.path.clone(),
        _ => {
            return Err(syn::Error::new(
                field.ty.span(),
                "db_enum fields must be of an enum type (or an Option of one)",
            ));
        }
    };
    let last = path.segments.last_mut().expect("a path has a segment");
    last.ident = quote::format_ident!("{}Type", last.ident);
    let sql_type = if nullable {
        quote!(::gino::reexports::diesel::sql_types::Nullable<#path>)
    } else {
        quote!(#path)
    };
    Ok(Resolved {
        sql_type,
        ddl: quote!(<#inner as ::gino::model::PgEnum>::META.name),
        nullable,
        serial: false,
        db_enum: Some(inner.clone()),
    })
}

/// `single_pk`: the model's key is one column; `foreign`: this field is a
/// column of a foreign key (its own `references`, or a model's
/// `foreign_key(columns(..))`).
fn resolve(field: &Field, single_pk: bool, foreign: bool) -> Result<Resolved> {
    if field.db_enum {
        return resolve_db_enum(field);
    }
    let mapped = types::map(&field.ty);
    // From the type itself: `Option<T>` of a type gino does not know (one
    // with `sql_type`) is nullable too.
    let nullable = types::strip_option(&field.ty).1;
    let sql_type = match (&field.sql_type, &mapped) {
        (Some(ty), _) if nullable => {
            quote!(::gino::reexports::diesel::sql_types::Nullable<#ty>)
        }
        (Some(ty), _) => quote!(#ty),
        (None, Some(m)) => m.sql_type.clone(),
        (None, None) => {
            return Err(syn::Error::new(
                field.ty.span(),
                "gino does not know the SQL type of this field: add \
                 #[gino(sql_type = path::to::DieselSqlType, ddl = \"postgres type\")]",
            ));
        }
    };
    let base_ddl = match (&field.ddl, &mapped) {
        (Some(ddl), _) => ddl.clone(),
        (None, Some(m)) => m.ddl.clone(),
        (None, None) => {
            return Err(syn::Error::new(
                field.ty.span(),
                "add #[gino(ddl = \"postgres type\")] to say how to create this column",
            ));
        }
    };
    // Like SQLAlchemy: the integer primary key of a table with a one-column
    // key is assigned by the database unless told otherwise.
    let serial_ddl = types::serial_ddl(&base_ddl);
    // A key with a default of its own (`nextval` of a shared sequence, say)
    // is not serial: PostgreSQL takes one default per column. Nor is a key
    // that is also a foreign key (a profile keyed by its user's id), as in
    // SQLAlchemy: one left out would be the sequence's, naming some other
    // row, where it must fail as a missing value.
    let serial = field.autoincrement.unwrap_or(
        single_pk
            && field.primary_key
            && !foreign
            && serial_ddl.is_some()
            && field.server_default.is_none(),
    );
    if serial && field.server_default.is_some() {
        return Err(syn::Error::new(
            field.ident.span(),
            "a serial column has its sequence's default: leave out autoincrement or server_default",
        ));
    }
    if serial && serial_ddl.is_none() {
        return Err(syn::Error::new(
            field.ident.span(),
            "autoincrement needs an integer column (i16, i32 or i64)",
        ));
    }
    let ddl = match serial_ddl {
        Some(s) if serial => s.to_owned(),
        _ => base_ddl,
    };
    Ok(Resolved {
        sql_type,
        ddl: quote!(#ddl),
        nullable,
        serial,
        db_enum: None,
    })
}

fn opt_str(value: &Option<String>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

pub fn expand(input: DeriveInput) -> Result<TokenStream> {
    expand_with(input, &[], false)
}

/// The sets of columns a model's flattened fields hold, as
/// `#[derive(Columns)]` hands them over, then the model:
/// `{ struct Timestamps {..} } struct User {..}`.
pub struct WithColumns {
    sets: Vec<DeriveInput>,
    model: DeriveInput,
}

impl syn::parse::Parse for WithColumns {
    fn parse(input: syn::parse::ParseStream) -> Result<Self> {
        let mut sets = Vec::new();
        while input.peek(syn::token::Brace) {
            let content;
            syn::braced!(content in input);
            sets.push(content.parse()?);
        }
        Ok(WithColumns {
            sets,
            model: input.parse()?,
        })
    }
}

/// The model, once every set of columns it flattens has been handed over.
pub fn expand_with_columns(input: WithColumns) -> Result<TokenStream> {
    expand_with(input.model, &input.sets, false)
}

/// `#[derive(Columns)]`: a set of columns for models to share with
/// `#[gino(flatten)]`. A proc macro cannot see another type's fields, so
/// the set hands them over itself: it defines a `macro_rules!` under its
/// own name (the macro namespace is separate from the type's), which a
/// model's derive calls with the model; that macro passes the set and the
/// model on to `gino::__model_with_columns!`.
pub fn expand_columns(input: DeriveInput) -> Result<TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "a set of columns cannot be generic",
        ));
    }
    // Errors in the set's attributes are reported here, at the set.
    columns_of(&input)?;
    parse_table_attrs(&input, Declarer::ColumnSet)?;
    let macro_name = format_ident!("__gino_columns_{}", name);
    Ok(quote! {
        #[doc(hidden)]
        macro_rules! #macro_name {
            ($($model:tt)*) => {
                ::gino::__model_with_columns! { { #input } $($model)* }
            };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use #macro_name as #name;
    })
}

/// The columns of a `#[derive(Columns)]` struct.
fn columns_of(set: &DeriveInput) -> Result<Vec<Field>> {
    let Data::Struct(data) = &set.data else {
        return Err(syn::Error::new(
            set.ident.span(),
            "Columns is derived for structs",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "a set of columns needs named fields",
        ));
    };
    named
        .named
        .iter()
        .map(|field| {
            let parsed = parse_field(field)?;
            if parsed.flatten {
                return Err(syn::Error::new(
                    parsed.ident.span(),
                    "a set of columns holds columns and JSON properties, not other sets: \
                     flatten each set into the model itself",
                ));
            }
            Ok(parsed)
        })
        .collect()
}

/// A model's fields with each flattened set replaced by its columns, or,
/// when a set has not been handed over yet, the call of its macro that
/// will (with the sets handed over so far).
fn model_fields(
    input: &DeriveInput,
    named: &syn::FieldsNamed,
    sets: &[DeriveInput],
) -> Result<std::result::Result<Vec<Field>, TokenStream>> {
    let mut fields = Vec::new();
    for field in &named.named {
        let parsed = parse_field(field)?;
        if !parsed.flatten {
            fields.push(parsed);
            continue;
        }
        let Type::Path(set_path) = &parsed.ty else {
            return Err(syn::Error::new(
                parsed.ty.span(),
                "#[gino(flatten)] takes a struct deriving gino::Columns",
            ));
        };
        let set_name = set_path.path.segments.last().map(|s| &s.ident);
        let Some(set) = sets.iter().find(|s| Some(&s.ident) == set_name) else {
            let path = &set_path.path;
            return Ok(Err(quote! {
                #path! { #({ #sets })* #input }
            }));
        };
        for mut column in columns_of(set)? {
            column.group = Some((parsed.ident.clone(), parsed.ty.clone()));
            fields.push(column);
        }
    }
    Ok(Ok(fields))
}

/// The derive's output for `input`, flattening `sets`; with `table_only`,
/// just the table's registered metadata (for `gino::table!`).
pub(crate) fn expand_with(
    input: DeriveInput,
    sets: &[DeriveInput],
    table_only: bool,
) -> Result<TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "models cannot be generic",
        ));
    }
    let mut attrs = parse_model_attrs(&input)?;
    for set in sets {
        attrs.add_set(parse_table_attrs(set, Declarer::ColumnSet)?);
    }
    let table = attrs.table.clone().ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "a model needs its table name: #[gino(table = \"users\")]",
        )
    })?;
    name_fits(&table, "table", Span::call_site())?;
    if let Some(schema) = &attrs.schema {
        name_fits(schema, "schema", Span::call_site())?;
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "Model is derived for structs",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "models need named fields",
        ));
    };
    let parsed = match model_fields(&input, named, sets)? {
        Ok(fields) => fields,
        Err(call) => return Ok(call),
    };
    let (props, mut fields): (Vec<Field>, Vec<Field>) =
        parsed.into_iter().partition(|f| f.property.is_some());
    // Each JSONB column of properties becomes a column without a field.
    let mut json_columns: Vec<String> = Vec::new();
    for prop in &props {
        let column = prop.property.clone().expect("partitioned on it");
        // What belongs to a column has no column here: a property is a key
        // of the JSON column, named after its field, its type the field's.
        let column_only = [
            (prop.primary_key, "primary_key"),
            (prop.unique, "unique"),
            (prop.server_default.is_some(), "server_default"),
            (prop.references.is_some(), "references"),
            (prop.check.is_some(), "check"),
            (prop.column != property_key(prop), "column"),
            (prop.sql_type.is_some(), "sql_type"),
            (prop.ddl.is_some(), "ddl"),
            (prop.db_enum, "db_enum"),
            (prop.autoincrement.is_some(), "autoincrement"),
            (prop.comment.is_some(), "comment"),
        ];
        if let Some((_, attribute)) = column_only.iter().find(|(set, _)| *set) {
            return Err(syn::Error::new(
                prop.ident.span(),
                format!(
                    "a JSON property takes no `{attribute}`: it is a key of the column \
                     `{column}`, named after its field, and its type is the field's (a unique \
                     property is a unique index: #[gino(index(name = \"...\", \
                     columns(property), unique))] on the model)"
                ),
            ));
        }
        if !json_columns.contains(&column) {
            // The generated code names the column's field after it.
            if syn::parse_str::<syn::Ident>(&column).is_err() {
                return Err(syn::Error::new(
                    prop.ident.span(),
                    format!(
                        "the properties' column `{column}` is not a Rust identifier (or is a \
                         keyword), which the generated code needs it to be: choose another \
                         name, #[gino(property = \"extra_data\")]"
                    ),
                ));
            }
            if fields.iter().any(|f| f.column == column) {
                return Err(syn::Error::new(
                    prop.ident.span(),
                    format!(
                        "the property column `{column}` is also a field: name the properties' column with #[gino(property = \"...\")]"
                    ),
                ));
            }
            json_columns.push(column.clone());
            let plain_json = props
                .iter()
                .any(|p| p.plain_json && p.property.as_deref() == Some(column.as_str()));
            // Read as `Properties`, which takes an SQL NULL (a table made by
            // another program may allow it) for no properties.
            let mut hidden = if plain_json {
                parse_field(&syn::parse_quote!(
                    #[gino(server_default = "'{}'::json", ddl = "json", sql_type = ::gino::reexports::diesel::sql_types::Json)]
                    __gino_json: ::gino::json::Properties
                ))?
            } else {
                parse_field(&syn::parse_quote!(
                    #[gino(server_default = "'{}'::jsonb", ddl = "jsonb", sql_type = ::gino::reexports::diesel::sql_types::Jsonb)]
                    __gino_json: ::gino::json::Properties
                ))?
            };
            hidden.plain_json = plain_json;
            hidden.ident = syn::Ident::new(&column, Span::call_site());
            hidden.column = column;
            hidden.hidden = true;
            fields.push(hidden);
        }
    }
    let fields = fields;
    // The builders of `create()` and `update()` have a setter per field
    // beside methods and fields of their own.
    const BUILDER_NAMES: &[&str] = &["bind", "timeout", "build", "set", "apply", "set_property"];
    for f in fields.iter().chain(&props).filter(|f| !f.hidden) {
        let ident = f.ident.to_string();
        let ident = ident.trim_start_matches("r#");
        if BUILDER_NAMES.contains(&ident) {
            return Err(syn::Error::new(
                f.ident.span(),
                format!(
                    "a field named `{ident}` would clash with the `{ident}` of `create()` and \
                     `update()`: rename the field, and keep the column's name with \
                     #[gino(column = \"{ident}\")]"
                ),
            ));
        }
    }
    if fields.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "a model needs at least one field",
        ));
    }
    // GINO refuses a second attribute for a mapped column name when the
    // model is declared; without this the table would fail only when
    // created (42701), or an insert would name the column twice.
    for (i, f) in fields.iter().enumerate() {
        name_fits(&f.column, "column", f.ident.span())?;
        if let Some(first) = fields[..i].iter().find(|g| g.column == f.column) {
            return Err(syn::Error::new(
                f.ident.span(),
                format!(
                    "column `{}` is already the column of field `{}`: give one of them another \
                     #[gino(column = \"...\")]",
                    f.column, first.ident
                ),
            ));
        }
    }
    // A partial load tells a property by its key as it tells a column by
    // its name, so one name for both would be read as either (GINO
    // refuses a property named after a column when the model is declared).
    for prop in &props {
        let key = property_key(prop);
        if let Some(column) = fields.iter().find(|f| f.column == key) {
            let (what, rename) = if column.hidden {
                ("a JSON column of properties".to_owned(), "property")
            } else {
                (format!("the column of field `{}`", column.ident), "column")
            };
            return Err(syn::Error::new(
                prop.ident.span(),
                format!(
                    "the JSON property `{key}` has the name of a column: `{key}` is {what}; \
                     rename the property, or the column with #[gino({rename} = \"...\")]"
                ),
            ));
        }
    }
    let mut pk: Vec<&Field> = fields.iter().filter(|f| f.primary_key).collect();
    pk.sort_by_key(|f| f.key_position);
    if let Some(nullable) = pk.iter().find(|f| types::strip_option(&f.ty).1) {
        return Err(syn::Error::new(
            nullable.ty.span(),
            format!(
                "the primary key `{}` is an Option, but a primary key column is never NULL: \
                 give it the plain type (a key the database assigns is left out of create() \
                 and read back from it)",
                nullable.ident
            ),
        ));
    }
    let resolved = fields
        .iter()
        .map(|f| {
            let foreign = f.references.is_some()
                || attrs
                    .foreign_keys
                    .iter()
                    .any(|key| key.columns.contains(&f.ident));
            resolve(f, pk.len() == 1, foreign)
        })
        .collect::<Result<Vec<_>>>()?;
    let column_of = |ident: &Ident| -> Result<String> {
        if let Some(p) = props.iter().find(|p| p.ident == *ident) {
            let column = p.property.as_deref().unwrap_or_default();
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "`{ident}` is a JSON property, kept inside the column `{column}`, and a \
                     unique constraint or foreign key takes columns: make it a column, or (for \
                     a unique property) declare a unique index on it: \
                     index(columns({ident}), unique)"
                ),
            ));
        }
        fields
            .iter()
            .find(|f| f.ident == *ident)
            .map(|f| f.column.clone())
            .ok_or_else(|| syn::Error::new(ident.span(), "no field of this name in the model"))
    };

    let (schema, table_decl) = match &attrs.diesel_table {
        Some(path) => (quote!(#path), quote!()),
        None => {
            let module = syn::parse_str::<Ident>(&table).map_err(|_| {
                syn::Error::new(
                    Span::call_site(),
                    "the table name is not a Rust identifier; declare the table with diesel's \
                     table! and name it with #[gino(diesel_table = path::to::module)]",
                )
            })?;
            let key: Vec<&Ident> = if pk.is_empty() {
                vec![&fields[0].ident]
            } else {
                pk.iter().map(|f| &f.ident).collect()
            };
            let columns = fields.iter().zip(&resolved).map(|(f, r)| {
                let ident = &f.ident;
                let sql_type = &r.sql_type;
                let rename = (*ident != f.column).then(|| {
                    let column = &f.column;
                    quote!(#[sql_name = #column])
                });
                quote!(#rename #ident -> #sql_type,)
            });
            // diesel's `table!` spells a schema-qualified table `schema.name`.
            let qualifier = match &attrs.schema {
                Some(schema) => {
                    let schema = syn::parse_str::<Ident>(schema).map_err(|_| {
                        syn::Error::new(
                            Span::call_site(),
                            "the schema name is not a Rust identifier; declare the table with \
                             diesel's table! and name it with #[gino(diesel_table = path)]",
                        )
                    })?;
                    quote!(#schema .)
                }
                None => quote!(),
            };
            // SQL types named by the model (enums, `sql_type`) are paths
            // relative to the model's module, one level above the table's.
            let parent_scope = fields
                .iter()
                .any(|f| !f.hidden && (f.db_enum || f.sql_type.is_some()))
                .then(|| {
                    quote!(
                        use super::*;
                    )
                });
            let decl = syn::parse2(quote! {
                #parent_scope
                #qualifier #module (#(#key),*) {
                    #(#columns)*
                }
            })?;
            (quote!(#module), crate::table_module::expand(&decl)?)
        }
    };

    // -- metadata ------------------------------------------------------
    let column_metas = fields.iter().zip(&resolved).map(|(f, r)| {
        let column = &f.column;
        let ddl = &r.ddl;
        let nullable = r.nullable;
        let serial = r.serial;
        let server_default = opt_str(&f.server_default);
        let unique = f.unique;
        let comment = opt_str(&f.comment);
        quote! {
            ::gino::model::ColumnMeta {
                name: #column,
                sql_type: #ddl,
                nullable: #nullable,
                serial: #serial,
                server_default: #server_default,
                unique: #unique,
                comment: #comment,
            }
        }
    });
    // A property as SQL: its type, and the expression reading it (a plain
    // json column is read as jsonb).
    let property_sql = |p: &Field| -> (TokenStream, String) {
        let key = property_key(p).replace('\'', "''");
        let column = p.property.clone().unwrap_or_default();
        let plain_json = fields
            .iter()
            .any(|f| f.hidden && f.plain_json && f.column == column);
        let mut target = format!(
            "\"{}\".\"{}\"",
            table.replace('"', "\"\""),
            column.replace('"', "\"\"")
        );
        if plain_json {
            target.push_str("::jsonb");
        }
        let (inner, _) = types::strip_option(&p.ty);
        let (sql_type, sql) = types::property_sql(inner, &target, &key);
        (sql_type, p.expr.clone().unwrap_or(sql))
    };
    let pk_columns = pk.iter().map(|f| f.column.clone()).collect::<Vec<_>>();
    let mut index_metas = Vec::new();
    // An index key: a field's column, or the expression of a property.
    let index_key = |ident: &Ident| -> Result<TokenStream> {
        match props.iter().find(|p| p.ident == *ident) {
            Some(p) => {
                if p.expr.is_none() && !types::property_indexable(types::strip_option(&p.ty).0) {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "the date or time property `{ident}` cannot be indexed: PostgreSQL's \
                             casts from text to dates and times depend on the session's DateStyle \
                             and time zone, and an index expression must not; make it a column, \
                             or give it an immutable expression (expr = \"...\")"
                        ),
                    ));
                }
                let sql = property_sql(p).1;
                Ok(quote!(::gino::model::IndexKey::Expression(#sql)))
            }
            None => {
                let column = column_of(ident)?;
                Ok(quote!(::gino::model::IndexKey::Column(#column)))
            }
        }
    };
    // Index names are the schema's: two of one table with one name would
    // leave the second uncreated (`CREATE INDEX IF NOT EXISTS`).
    let mut index_names: Vec<String> = Vec::new();
    let mut claim = |name: &str, span: Span| -> Result<()> {
        // PostgreSQL keeps the first 63 bytes of a name: two names alike
        // that far are one.
        let kept = kept_name(name);
        if index_names.iter().any(|taken| kept_name(taken) == kept) {
            let same = if kept.len() < name.len() {
                format!("named alike in the 63 bytes PostgreSQL keeps of a name (`{kept}`)")
            } else {
                format!("named `{name}`")
            };
            return Err(syn::Error::new(
                span,
                format!(
                    "two indexes of `{table}` are {same}: name this one \
                     (index(name = \"...\", columns(..)))"
                ),
            ));
        }
        index_names.push(name.to_owned());
        Ok(())
    };
    for f in fields.iter().chain(&props).filter(|f| f.index) {
        let name = format!("ix_{table}_{}", f.column);
        claim(&name, f.ident.span())?;
        let key = index_key(&f.ident)?;
        index_metas.push(quote! {
            ::gino::model::IndexMeta { name: #name, keys: &[#key], unique: false }
        });
    }
    for index in &attrs.indexes {
        let name = match &index.name {
            Some(name) => name_for(name, &table),
            None => {
                // Named as a field's index is (`ux_` when unique); an
                // unknown column fails below.
                let prefix = if index.unique { "ux" } else { "ix" };
                let columns: Vec<&str> = index
                    .columns
                    .iter()
                    .map(|ident| {
                        fields
                            .iter()
                            .chain(&props)
                            .find(|f| f.ident == *ident)
                            .map_or("", |f| f.column.as_str())
                    })
                    .collect();
                format!("{prefix}_{table}_{}", columns.join("_"))
            }
        };
        claim(&name, index.columns[0].span())?;
        let unique = index.unique;
        let keys = index
            .columns
            .iter()
            .map(&index_key)
            .collect::<Result<Vec<_>>>()?;
        index_metas.push(quote! {
            ::gino::model::IndexMeta { name: #name, keys: &[#(#keys),*], unique: #unique }
        });
    }
    let mut unique_metas = Vec::new();
    for unique in &attrs.uniques {
        let name = opt_str(&unique.name.as_ref().map(|n| name_for(n, &table)));
        let columns = unique
            .columns
            .iter()
            .map(&column_of)
            .collect::<Result<Vec<_>>>()?;
        unique_metas.push(quote! {
            ::gino::model::UniqueMeta { name: #name, columns: &[#(#columns),*] }
        });
    }
    let check_metas = fields
        .iter()
        .filter_map(|f| f.check.as_ref().map(|c| (None, c.clone())))
        .chain(attrs.checks.iter().map(|c| {
            (
                c.name.as_ref().map(|n| name_for(n, &table)),
                c.expression.clone(),
            )
        }))
        .map(|(name, expression)| {
            let name = opt_str(&name);
            quote!(::gino::model::CheckMeta { name: #name, expression: #expression })
        });
    let table_schema = opt_str(&attrs.schema);
    let table_comment = opt_str(&attrs.comment);
    let fk_meta = |key_name: &Option<String>,
                   columns: &[String],
                   reference: &Reference,
                   on_delete: &Option<String>,
                   on_update: &Option<String>| {
        let (ref_table, ref_schema, ref_columns) = match reference {
            Reference::Table(table, referenced) => (
                quote!(#table),
                quote!(::core::option::Option::None),
                quote!(&[#(#referenced),*]),
            ),
            // Its own table: named directly, as the metadata cannot read
            // itself while it is being made.
            Reference::Model(model) if refers_to_itself(name, model) => {
                (quote!(#table), table_schema.clone(), quote!(&[]))
            }
            Reference::Model(model) => (
                quote!(<#model as ::gino::model::KeyTarget>::TABLE_NAME),
                quote!(<#model as ::gino::model::KeyTarget>::TABLE_SCHEMA),
                quote!(<#model as ::gino::model::KeyTarget>::PRIMARY_KEY),
            ),
        };
        let (key_name, on_delete, on_update) =
            (opt_str(key_name), opt_str(on_delete), opt_str(on_update));
        quote! {
            ::gino::model::ForeignKeyMeta {
                name: #key_name,
                columns: &[#(#columns),*],
                references_table: #ref_table,
                references_schema: #ref_schema,
                references_columns: #ref_columns,
                on_delete: #on_delete,
                on_update: #on_update,
            }
        }
    };
    // Checks made once constants are known, at compile time.
    let mut const_checks = Vec::new();
    // On a diesel table, the model's name of a column must be the table's
    // (a `#[sql_name]` renames it): raw loads, partial loads and `apply()`'s
    // refresh find a column by the model's name.
    if attrs.diesel_table.is_some() {
        for f in fields.iter().filter(|f| f.property.is_none() && !f.hidden) {
            let (ident, column) = (&f.ident, &f.column);
            let message = format!(
                "`{ident}` of `{name}`: the diesel table's column `{ident}` has another name in \
                 SQL than `{column}` (a #[sql_name]); give the field #[gino(column = \"...\")] \
                 with that name"
            );
            const_checks.push(quote! {
                const _: () = ::core::assert!(
                    ::gino::model::same_name(<#schema::#ident as ::gino::reexports::diesel::Column>::NAME, #column),
                    #message
                );
            });
        }
    }
    // A key to a model's primary key is checked against that key's width:
    // a model without a primary key, or with one of another width, cannot
    // be referenced so.
    // Its own key is known here: a model referencing itself is refused at
    // once, not by the server at `create_all`.
    let mut check_width = |reference: &Reference, width: usize, message: String| -> Result<()> {
        let Reference::Model(model) = reference else {
            return Ok(());
        };
        if refers_to_itself(name, model) {
            if pk.len() != width {
                let message = message.replace("{model}", &name.to_string());
                return Err(syn::Error::new(model.span(), message));
            }
            return Ok(());
        }
        let message = message.replace("{model}", &quote!(#model).to_string().replace(' ', ""));
        const_checks.push(quote! {
            const _: () = ::core::assert!(
                <#model as ::gino::model::KeyTarget>::PRIMARY_KEY.len() == #width,
                #message
            );
        });
        Ok(())
    };
    let mut fk_metas: Vec<TokenStream> = Vec::new();
    for f in &fields {
        let Some(reference) = &f.references else {
            continue;
        };
        fk_metas.push(fk_meta(
            &None,
            std::slice::from_ref(&f.column),
            reference,
            &f.on_delete,
            &f.on_update,
        ));
        check_width(
            reference,
            1,
            format!(
                "`references = {{model}}` on `{}` of `{name}`: `{{model}}` has no primary key \
                 of one column; reference a model keyed by one column, or a key of several \
                 with `foreign_key(columns(...), references = {{model}})`",
                f.ident
            ),
        )?;
    }
    for key in &attrs.foreign_keys {
        let columns = key
            .columns
            .iter()
            .map(&column_of)
            .collect::<Result<Vec<_>>>()?;
        fk_metas.push(fk_meta(
            &key.name.as_ref().map(|n| name_for(n, &table)),
            &columns,
            &key.references,
            &key.on_delete,
            &key.on_update,
        ));
        let width = columns.len();
        check_width(
            &key.references,
            width,
            format!(
                "foreign_key(columns(...)) of `{name}` has {width} column(s), not as many as \
                 the primary key of `{{model}}`: name one column per key column, in key order"
            ),
        )?;
    }
    let joins = joins(name, &input.vis, &schema, &fields);
    let mut enum_metas: Vec<TokenStream> = Vec::new();
    for ty in resolved.iter().filter_map(|r| r.db_enum.as_ref()) {
        let meta = quote!(<#ty as ::gino::model::PgEnum>::META);
        if !enum_metas.iter().any(|m| m.to_string() == meta.to_string()) {
            enum_metas.push(meta);
        }
    }
    let meta_ident = format_ident!("__GINO_TABLE_{}", name.to_string().to_uppercase());
    let db = match &attrs.db {
        Some(path) => quote!(::gino::model::ModelDb::Named(|| &#path)),
        None => quote!(::gino::model::ModelDb::Default),
    };

    // The columns, reachable from the model as GINO writes them
    // (`User::nickname`), except where a generated function has the name.
    const TAKEN: &[&str] = &[
        "insert_many",
        "create",
        "get",
        "get_or_404",
        "query",
        "select",
        "create_table",
        "drop_table",
    ];
    let column_consts = {
        let consts = fields
            .iter()
            .filter(|f| f.property.is_none() && !f.hidden)
            .filter(|f| !TAKEN.contains(&f.ident.to_string().trim_start_matches("r#")))
            .map(|f| {
                let ident = &f.ident;
                let doc = format!(
                    "The `{}` column, for queries: `{name}::{}` is `{}::{}`.",
                    f.column,
                    ident.to_string().trim_start_matches("r#"),
                    schema.to_string().replace(' ', ""),
                    ident.to_string().trim_start_matches("r#"),
                );
                let vis = &input.vis;
                quote! {
                    #[doc = #doc]
                    #vis const #ident: #schema::#ident = #schema::#ident;
                }
            });
        quote! {
            #[allow(non_upper_case_globals, dead_code)]
            impl #name {
                #(#consts)*
            }
        }
    };

    // A model of a named database routes the queries of its table there.
    let route_name = match &attrs.schema {
        Some(schema) => format!("{schema}.{table}"),
        None => table.clone(),
    };
    let table_route = attrs.db.as_ref().map(|path| {
        quote! {
            ::gino::reexports::inventory::submit! {
                ::gino::model::TableRoute { table: #route_name, db: || &#path }
            }
        }
    });

    // -- pieces of the generated code ------------------------------------
    let idents: Vec<&Ident> = fields.iter().map(|f| &f.ident).collect();
    let tys: Vec<&Type> = fields.iter().map(|f| &f.ty).collect();
    let sql_types: Vec<&TokenStream> = resolved.iter().map(|r| &r.sql_type).collect();
    let column_names: Vec<&str> = fields.iter().map(|f| f.column.as_str()).collect();
    // The struct is built from the row: fields from their columns,
    // properties from the JSONB columns.
    let mut reads = Vec::new();
    let mut assigns = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let index = syn::Index::from(i);
        if f.hidden {
            let column = &f.column;
            if !attrs.ignore_unknown_properties {
                let keys = props
                    .iter()
                    .filter(|p| p.property.as_deref() == Some(column.as_str()))
                    .map(property_key);
                reads.push(quote! {
                    ::gino::json::declared_only(&row.#index, #column, &[#(#keys),*])?;
                });
            }
            for prop in props
                .iter()
                .filter(|p| p.property.as_deref() == Some(column.as_str()))
            {
                let ident = &prop.ident;
                let ty = &prop.ty;
                let key = property_key(prop);
                let json = json_functions(prop);
                let read = match &prop.default {
                    Some(default) => quote! {
                        #json::property::<#ty>(&row.#index, #column, #key)?
                            .unwrap_or_else(|| ::core::convert::Into::into(#default))
                    },
                    None => quote!(#json::required::<#ty>(&row.#index, #column, #key)?),
                };
                let read = hooked(&prop.after_get, read);
                reads.push(quote!(let #ident: #ty = #read;));
                assigns.push((prop, quote!(#ident)));
            }
        } else {
            assigns.push((f, quote!(row.#index)));
        }
    }
    let from_row = construct(quote!(Self), &assigns);
    let regular: Vec<&Field> = fields.iter().filter(|f| !f.hidden).collect();
    // The JSON object of the properties of `column`, read from `source`
    // (a value of the model, or a builder of options).
    let json_object = |column: &str, source: TokenStream, optional: bool| {
        let entries = props.iter().filter(|p| p.property.as_deref() == Some(column)).map(|p| {
            let ident = &p.ident;
            let key = property_key(p);
            let json = json_functions(p);
            let stored = |value: TokenStream| hooked(&p.before_set, value);
            if optional {
                // Unset, a property stores its default as it is (the value a
                // row without the key stands for), else its type's default,
                // which reading it back needs; an `Option` stores no key.
                let ty = &p.ty;
                let field = ident.to_string();
                let unset = match (&p.default, types::strip_option(ty).1) {
                    (Some(default), _) => quote! {
                        ::core::option::Option::Some((#key, #json::to_value::<#ty>(#key, &::core::convert::Into::into(#default))))
                    },
                    (None, true) => quote!(::core::option::Option::None),
                    (None, false) => {
                        let value = type_default(name, ty, &field);
                        quote! {
                            ::core::option::Option::Some((#key, #value.and_then(|v| #json::to_value(#key, &v))))
                        }
                    }
                };
                let value = stored(quote!(::core::clone::Clone::clone(v)));
                quote! {
                    match &#source.#ident {
                        ::core::option::Option::Some(v) => ::core::option::Option::Some((#key, #json::to_value(#key, &#value))),
                        ::core::option::Option::None => #unset,
                    }
                }
            } else {
                // A value of the model: a property of a flattened set is
                // in the set's field.
                let access = p.access();
                let value = stored(quote!(::core::clone::Clone::clone(&#source.#access)));
                quote!(::core::option::Option::Some((#key, #json::to_value(#key, &#value))))
            }
        });
        quote!(::gino::json::object([#(#entries),*].into_iter().flatten())?)
    };
    let insertable: Vec<(&Field, &Resolved)> = fields
        .iter()
        .zip(&resolved)
        .filter(|(_, r)| !r.serial)
        .collect();
    let d = quote!(::gino::reexports::diesel);

    let columns_lit: Vec<String> = regular.iter().map(|f| f.column.clone()).collect();
    let resettable: Vec<TokenStream> = regular.iter().map(|f| f.access()).collect();
    // A property is loaded with its JSON column (GINO reads properties
    // from the column's value), or named by its key; one that was not
    // takes what a row without its key gives: its default, else its type's.
    let keep_properties = props.iter().map(|p| {
        let (column, key, access) = (
            p.property.clone().unwrap_or_default(),
            property_key(p),
            p.access(),
        );
        let ty = &p.ty;
        let reset = match &p.default {
            Some(default) => {
                let value = hooked(&p.after_get, quote!(::core::convert::Into::into(#default)));
                quote!(self.#access = #value;)
            }
            // Its type's default, when it has one, else the value stays.
            None => {
                let default = type_default(name, ty, &p.ident.to_string());
                let value = hooked(&p.after_get, quote!(value));
                quote! {
                    if let ::core::result::Result::Ok(value) = #default {
                        self.#access = #value;
                    }
                }
            }
        };
        quote! {
            if !loaded.contains(&#column) && !loaded.contains(&#key) {
                #reset
            }
        }
    });
    let pk_access: Vec<TokenStream> = pk.iter().map(|f| f.access()).collect();
    let pk_tys: Vec<&Type> = pk.iter().map(|f| &f.ty).collect();
    let keyed = (!pk.is_empty()).then(|| quote!(impl ::gino::model::Keyed for #name {}));
    // `()` for a model without a key: written as an empty body, which is
    // what clippy wants of generated code too.
    let key_body =
        (!pk.is_empty()).then(|| quote!((#(::core::clone::Clone::clone(&self.#pk_access)),*)));
    let lookup_body = match (&attrs.lookup, pk.as_slice()) {
        (Some(path), _) => quote!(#path(self)),
        (None, []) => quote!(::core::result::Result::Err(::gino::Error::NoPrimaryKey(
            ::core::stringify!(#name)
        ))),
        (None, [first, rest @ ..]) => {
            let first_ident = &first.ident;
            let first_access = first.access();
            let mut condition = quote!(#d::ExpressionMethods::eq(#schema::#first_ident, ::core::clone::Clone::clone(&self.#first_access)));
            for f in rest {
                let ident = &f.ident;
                let access = f.access();
                condition = quote!(#d::BoolExpressionMethods::and(#condition, #d::ExpressionMethods::eq(#schema::#ident, ::core::clone::Clone::clone(&self.#access))));
            }
            quote!(::core::result::Result::Ok(::gino::model::Lookup::new(#condition)))
        }
    };

    let value_of = |f: &Field, source: TokenStream| {
        let ident = &f.ident;
        if f.hidden {
            let object = json_object(&f.column, source, false);
            quote!(#d::ExpressionMethods::eq(#schema::#ident, #object),)
        } else {
            let access = f.access();
            quote!(#d::ExpressionMethods::eq(#schema::#ident, ::core::clone::Clone::clone(&#source.#access)),)
        }
    };
    // Whether `source` holds a serial key of its own: not its type's
    // default (0: none yet, so the sequence gives it).
    let holds_key = |f: &Field, source: TokenStream| {
        let (access, ty) = (f.access(), &f.ty);
        quote!(#source.#access != <#ty as ::core::default::Default>::default())
    };
    // A serial key goes in when `source` holds one (GINO inserts what an
    // instance holds), as DEFAULT when it does not.
    let key_value = |f: &Field, source: TokenStream| {
        let (ident, access) = (&f.ident, f.access());
        let holds = holds_key(f, source.clone());
        quote! {
            (#holds).then(|| {
                #d::ExpressionMethods::eq(#schema::#ident, ::core::clone::Clone::clone(&#source.#access))
            }),
        }
    };
    // Every field is a column, so the value always has one to insert.
    let instance_values = fields.iter().zip(&resolved).map(|(f, r)| {
        if r.serial {
            key_value(f, quote!(self))
        } else {
            value_of(f, quote!(self))
        }
    });
    let instance_insert = quote!(#d::insert_into(#schema::table).values((#(#instance_values)*)));
    // Serializing properties can fail, so the statements are built in a
    // closure returning a Result.
    let instance_insert = quote! {
        (|| -> ::gino::Result<_> {
            ::core::result::Result::Ok(#instance_insert
                .returning(<Self as #d::SelectableHelper<#d::pg::Pg>>::as_returning()))
        })()
    };

    // Rows that hold serial keys of their own (not 0) keep them, as
    // `create()` does: such a batch goes as VALUES rows with the key column
    // (DEFAULT in rows whose key is 0); a batch without any keeps the
    // statements below, which leave keys to the sequence.
    let serials: Vec<&Field> = fields
        .iter()
        .zip(&resolved)
        .filter(|(_, r)| r.serial)
        .map(|(f, _)| f)
        .collect();
    let bulk_parameters = insertable.len();
    let serial_parameters = serials.len();
    let keyed_path = (!serials.is_empty()).then(|| {
        let holds = serials.iter().map(|f| holds_key(f, quote!(row)));
        let keys = serials.iter().map(|f| key_value(f, quote!(row)));
        let values = insertable.iter().map(|(f, _)| value_of(f, quote!(row)));
        (
            quote!(rows.iter().any(|row| #(#holds)||*)),
            quote! {
                rows.iter()
                    .map(|row| ::core::result::Result::Ok((#(#keys)* #(#values)*)))
                    .collect::<::gino::Result<::std::vec::Vec<_>>>()
            },
        )
    });
    let bulk_values: Vec<TokenStream> = insertable
        .iter()
        .map(|(f, _)| value_of(f, quote!(row)))
        .collect();
    let returning = quote!(.returning(<Self as #d::SelectableHelper<#d::pg::Pg>>::as_returning()));
    // The VALUES rows of a slice `rows`, or the error serializing one.
    let row_values = quote! {
        rows.iter()
            .map(|row| ::core::result::Result::Ok((#(#bulk_values)*)))
            .collect::<::gino::Result<::std::vec::Vec<_>>>()
    };
    // Counting inserts send each column as one array, unnested by the
    // server: a statement of fixed text (prepared once, whatever the number
    // of rows) with as many parameters as columns, cheaper to encode than
    // a VALUES list of rows.
    let unnest_columns = insertable.iter().map(|(f, _)| {
        let ident = &f.ident;
        quote!(<#schema::#ident as #d::Column>::NAME)
    });
    let unnest_sql = quote! {{
        static SQL: ::std::sync::OnceLock<::std::string::String> = ::std::sync::OnceLock::new();
        ::gino::bulk::unnest_insert_sql(&SQL, #schema::table, &[#(#unnest_columns),*])?
    }};
    let unnest_binds: Vec<TokenStream> = insertable
        .iter()
        .map(|(f, r)| {
            let sql_type = &r.sql_type;
            let value = if f.hidden {
                json_object(&f.column, quote!(row), false)
            } else {
                let access = f.access();
                quote!(::core::clone::Clone::clone(&row.#access))
            };
            quote! {
                .bind::<#d::sql_types::Array<#sql_type>, _>(
                    rows.iter()
                        .map(|row| {
                            let value = #value;
                            ::core::result::Result::Ok(value)
                        })
                        .collect::<::gino::Result<::std::vec::Vec<_>>>()?,
                )
            }
        })
        .collect();
    // A column that is an array itself cannot go as an array of arrays:
    // UNNEST would flatten it. Such models keep VALUES rows.
    let unnestable = insertable
        .iter()
        .all(|(_, r)| !r.sql_type.to_string().contains("Array"));
    let unnest_query = quote! {
        (|| -> ::gino::Result<_> {
            ::core::result::Result::Ok(::gino::CachedByText(#d::sql_query(#unnest_sql) #(#unnest_binds)*))
        })()
    };
    let bulk_compile = if insertable.is_empty() {
        quote! {
            let one = #d::insert_into(#schema::table).default_values();
            let statement = if returning {
                ::gino::Compiled::of(&one #returning)
            } else {
                ::gino::Compiled::of(&one)
            };
            ::core::result::Result::Ok(::std::vec![statement; rows.len()])
        }
    } else {
        let counting = if unnestable {
            quote!(::gino::Compiled::of(&#unnest_query?))
        } else {
            quote!(::gino::Compiled::of(&#d::insert_into(#schema::table).values(#row_values?)))
        };
        quote! {
            ::core::result::Result::Ok(::std::vec![if returning {
                let values = #d::insert_into(#schema::table).values(#row_values?);
                ::gino::Compiled::of(&values #returning)
            } else {
                #counting
            }])
        }
    };
    // `let values = INSERT ... VALUES rows` from the rows `rows_of` makes,
    // or a return of the error making them (inside a boxed-future method).
    let insert_values = |rows_of: &TokenStream| {
        quote! {
            let rows = match #rows_of {
                ::core::result::Result::Ok(rows) => rows,
                ::core::result::Result::Err(e) => {
                    return ::std::boxed::Box::pin(async move { ::core::result::Result::Err(e) });
                }
            };
            let values = #d::insert_into(#schema::table).values(rows);
        }
    };
    let (bulk_count, bulk_rows) = if insertable.is_empty() {
        // Rows with only database-assigned columns: one DEFAULT VALUES each.
        let one = quote!(#d::insert_into(#schema::table).default_values());
        (
            quote! {
                let count = rows.len();
                ::std::boxed::Box::pin(async move {
                    let mut inserted = 0;
                    for _ in 0..count {
                        inserted += ::gino::bulk::execute(#one, on).await?;
                    }
                    ::core::result::Result::Ok(inserted)
                })
            },
            quote! {
                let count = rows.len();
                ::std::boxed::Box::pin(async move {
                    let mut stored = ::std::vec::Vec::with_capacity(count);
                    for _ in 0..count {
                        stored.extend(::gino::bulk::load(#one #returning, on).await?);
                    }
                    ::core::result::Result::Ok(stored)
                })
            },
        )
    } else {
        let values = insert_values(&row_values);
        let count = if unnestable {
            quote! {
                match #unnest_query {
                    ::core::result::Result::Ok(query) => ::gino::bulk::execute(query, on),
                    ::core::result::Result::Err(e) => {
                        ::std::boxed::Box::pin(async move { ::core::result::Result::Err(e) })
                    }
                }
            }
        } else {
            quote!(#values ::gino::bulk::execute(values, on))
        };
        (
            count,
            quote!(#values ::gino::bulk::load(values #returning, on)),
        )
    };
    let parameters_per_row = match &keyed_path {
        None => quote!(#bulk_parameters),
        Some((any_keyed, _)) => quote! {
            if #any_keyed { #bulk_parameters + #serial_parameters } else { #bulk_parameters }
        },
    };
    let (keyed_count, keyed_rows, keyed_compile) = match &keyed_path {
        None => (quote!(), quote!(), quote!()),
        Some((any_keyed, keyed_values)) => {
            let values = insert_values(keyed_values);
            (
                quote! {
                    if #any_keyed {
                        #values
                        return ::gino::bulk::execute(values, on);
                    }
                },
                quote! {
                    if #any_keyed {
                        #values
                        return ::gino::bulk::load(values #returning, on);
                    }
                },
                quote! {
                    if #any_keyed {
                        let values = #d::insert_into(#schema::table).values(#keyed_values?);
                        return ::core::result::Result::Ok(::std::vec![if returning {
                            ::gino::Compiled::of(&values #returning)
                        } else {
                            ::gino::Compiled::of(&values)
                        }]);
                    }
                },
            )
        }
    };
    let create_ident = format_ident!("{}Create", name);
    let update_ident = format_ident!("{}Update", name);
    // The builder also takes a serial key: an explicit value goes into the
    // INSERT (GINO's `create(id=...)`), none leaves it to the sequence.
    let creatable: Vec<(&Field, &Resolved)> = fields.iter().zip(&resolved).collect();
    let builder: Vec<&Field> = creatable
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !f.hidden)
        .chain(props.iter())
        .collect();
    let create_fields = builder.iter().map(|f| {
        let ident = &f.ident;
        let ty = &f.ty;
        quote!(#ident: ::core::option::Option<#ty>,)
    });
    let create_nones = builder.iter().map(|f| {
        let ident = &f.ident;
        quote!(#ident: ::core::option::Option::None,)
    });
    let create_moves = builder.iter().map(|f| {
        let ident = &f.ident;
        quote!(#ident: self.#ident,)
    });
    let name_lit = name.to_string();
    let build_values: Vec<(&Field, TokenStream)> = builder
        .iter()
        .map(|f| {
            let ident = &f.ident;
            let ty = &f.ty;
            let field = ident.to_string();
            let fallback = match &f.default {
                Some(default) => {
                    quote!(::core::result::Result::Ok(::core::convert::Into::into(#default)))
                }
                None => type_default(name, ty, &field),
            };
            // A property holds what reading its row back gives: `after_get`
            // of what `before_set` stores, or of the default stored as it is
            // (only properties have hooks).
            let given = hooked(&f.before_set, quote!(value));
            let value = quote! {
                match self.#ident {
                    ::core::option::Option::Some(value) => #given,
                    ::core::option::Option::None => #fallback?,
                }
            };
            (*f, hooked(&f.after_get, value))
        })
        .collect();
    let built = construct(quote!(#name), &build_values);
    let create_setters = builder.iter().map(|f| {
        let ident = &f.ident;
        let ty = &f.ty;
        let doc = format!("Sets `{}`.", f.column);
        quote! {
            #[doc = #doc]
            pub fn #ident(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                self.#ident = ::core::option::Option::Some(value.into());
                self
            }
        }
    });
    let create_values = creatable.iter().map(|(f, _)| {
        let ident = &f.ident;
        if f.hidden {
            let object = json_object(&f.column, quote!(self), true);
            return quote!(::core::option::Option::Some(#d::ExpressionMethods::eq(#schema::#ident, #object)),);
        }
        let value = match &f.default {
            Some(default) => quote! {
                ::core::option::Option::Some(self.#ident.unwrap_or_else(|| ::core::convert::Into::into(#default)))
            },
            None => quote!(self.#ident),
        };
        quote!(#value.map(|v| #d::ExpressionMethods::eq(#schema::#ident, v)),)
    });
    let builder_insert = if creatable.is_empty() {
        quote!(#d::insert_into(#schema::table).default_values())
    } else {
        quote!(#d::insert_into(#schema::table).values((#(#create_values)*)))
    };

    let update_setters = regular.iter().map(|f| {
        let ident = &f.ident;
        let access = f.access();
        let ty = &f.ty;
        let column = &f.column;
        let doc = format!("Sets `{}` in memory now and in the database on `apply()`.", f.column);
        quote! {
            #[doc = #doc]
            pub fn #ident(self, value: impl ::core::convert::Into<#ty>) -> Self {
                let value: #ty = value.into();
                let mut this = self;
                this.changes.set_value(#column, #d::ExpressionMethods::eq(#schema::#ident, ::core::clone::Clone::clone(&value)));
                this.instance.#access = value;
                this
            }
        }
    });

    let json_fields: Vec<Ident> = json_columns
        .iter()
        .map(|c| format_ident!("json_{}", c))
        .collect();
    let property_setters = props.iter().map(|p| {
        let ident = &p.ident;
        let access = p.access();
        let ty = &p.ty;
        let key = property_key(p);
        let map = format_ident!("json_{}", p.property.as_deref().unwrap_or_default());
        let stored = hooked(&p.before_set, quote!(value.into()));
        let read = hooked(&p.after_get, quote!(stored));
        let doc = format!(
            "Sets the JSON property `{key}` in memory now, and on `apply()` merges just that key into `{}`.",
            p.property.as_deref().unwrap_or_default()
        );
        let json = json_functions(p);
        // In memory it holds what reading the stored value back gives
        // (GINO's property reads `after_get` of what `before_set` stored).
        quote! {
            #[doc = #doc]
            pub fn #ident(self, value: impl ::core::convert::Into<#ty>) -> Self {
                let stored: #ty = #stored;
                let mut this = self;
                match #json::to_value(#key, &stored) {
                    ::core::result::Result::Ok(json) => this.#map.set_value(#key, json),
                    ::core::result::Result::Err(e) => this.error = ::core::option::Option::Some(e),
                }
                this.instance.#access = #read;
                this
            }
        }
    });
    let merges = json_fields
        .iter()
        .map(|map| quote!(changes.merge_properties(self.#map)?;));
    let merge_inits = json_columns.iter().zip(&json_fields).map(|(column, map)| {
        let plain_json = fields
            .iter()
            .any(|f| f.hidden && f.plain_json && f.column == *column);
        quote!(#map: ::gino::json::Merge::new(#column, #plain_json),)
    });
    let set_property = (!props.is_empty()).then(|| {
        let arms = json_columns.iter().zip(&json_fields).map(|(column, map)| {
            quote!(#column => self.#map.set_sql(property.key(), property.value_of(value.as_expression())),)
        });
        quote! {
            /// Sets a JSON property to what an SQL expression computes,
            /// e.g. `.set_property(people_props::age(), people_props::age() - 2)`
            /// (GINO's `update(age=Person.age - 2)`); only its key is merged
            /// into the column, and `apply()` refreshes it in memory. A
            /// property whose field is no `Option` is not set to NULL (say,
            /// `visits + 1` where the key is missing): the update fails.
            pub fn set_property<ST, E>(mut self, property: ::gino::json::PropertyExpr<#schema::table, ST>, value: E) -> Self
            where
                ST: #d::sql_types::SqlType + #d::expression::TypedExpressionType,
                E: #d::expression::AsExpression<ST>,
                E::Expression: #d::query_builder::QueryFragment<#d::pg::Pg> + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                match property.column() {
                    #(#arms)*
                    other => {
                        self.error = ::core::option::Option::Some(::gino::Error::Configuration(::std::format!(
                            "the model has no JSON column `{other}` of properties"
                        )));
                    }
                }
                self
            }
        }
    });
    // After `apply()`, only what the update changed is refreshed from the
    // row (as GINO does): a value set in memory by an update request that
    // was never applied stays.
    let refreshes = regular.iter().map(|f| {
        let access = f.access();
        let column = &f.column;
        quote! {
            if changes.assigns(#column) {
                self.instance.#access = fresh.#access;
            }
        }
    });
    let refresh_keys = json_fields.iter().map(|map| {
        let keys = format_ident!("{}_keys", map);
        quote! {
            let #keys: ::std::vec::Vec<::std::string::String> = self.#map.keys();
        }
    });
    let property_refreshes = props.iter().map(|p| {
        let access = p.access();
        let key = property_key(p);
        let keys = format_ident!("json_{}_keys", p.property.as_deref().unwrap_or_default());
        let column = p.property.clone().unwrap_or_default();
        quote! {
            if #keys.iter().any(|k| k == #key) || changes.assigns_directly(#column) {
                self.instance.#access = fresh.#access;
            }
        }
    });
    let vis = &input.vis;
    let props_module = (!props.is_empty()).then(|| {
        // Named after the table; a table whose name is no Rust identifier
        // (given with `diesel_table`) lends its module's name instead.
        let module = syn::parse_str::<Ident>(&format!("{table}_props"))
            .ok()
            .or_else(|| {
                let last = attrs.diesel_table.as_ref()?.segments.last()?;
                Some(format_ident!("{}_props", last.ident))
            })
            .unwrap_or_else(|| format_ident!("table_props"));
        let functions = props.iter().map(|p| {
            let ident = &p.ident;
            let (sql_type, sql) = property_sql(p);
            let column = p.property.clone().unwrap_or_default();
            let key = property_key(p);
            let doc = format!("The JSON property `{}` as SQL: `{sql}`.", p.ident);
            let (inner, optional) = types::strip_option(&p.ty);
            let float = types::float_sql(inner).map(|sql_type| quote!(.float(#sql_type)));
            let pg = types::property_types(inner).1;
            let required = (!optional).then(|| match pg {
                "JSONB" => quote!(.required(#pg).refuses_json_null::<#inner>()),
                _ => quote!(.required(#pg)),
            });
            let datetime = matches!(pg, "TIMESTAMP" | "TIMESTAMPTZ").then(|| quote!(.datetime(#pg)));
            quote! {
                #[doc = #doc]
                pub fn #ident() -> ::gino::json::PropertyExpr<#schema::table, #d::sql_types::Nullable<#sql_type>> {
                    ::gino::json::PropertyExpr::new(#sql, #column, #key)#float #required #datetime
                }
            }
        });
        let doc =
            format!("The JSON properties of `{table}` as SQL expressions, for filters and orders.");
        quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            #vis mod #module {
                // The table module, wherever the model's module has it.
                #[allow(unused_imports)]
                use super::*;

                #(#functions)*
            }
        }
    });

    let (pk_param, pk_rows) = match pk.as_slice() {
        [] => (None, None),
        // Each key column by name, not diesel's `find`: that looks up the
        // `table!`'s key, which a printed schema need not share with the
        // model (another column, or another order of a composite key; equal
        // types would then find another row).
        [single] => {
            let (ty, ident) = (&single.ty, &single.ident);
            let condition = quote!(#d::ExpressionMethods::eq(#schema::#ident, key.into()));
            (
                Some(quote!(key: impl ::core::convert::Into<#ty>)),
                Some(quote!(#d::QueryDsl::filter(#schema::table, #condition))),
            )
        }
        many => {
            let tys = many.iter().map(|f| &f.ty);
            let equals = many.iter().enumerate().map(|(i, f)| {
                let (ident, at) = (&f.ident, syn::Index::from(i));
                quote!(#d::ExpressionMethods::eq(#schema::#ident, key.#at))
            });
            let condition = equals
                .reduce(|all, eq| quote!(#d::BoolExpressionMethods::and(#all, #eq)))
                .expect("two key columns or more");
            (
                Some(quote!(key: (#(#tys),*))),
                Some(quote!(#d::QueryDsl::filter(#schema::table, #condition))),
            )
        }
    };
    let get_fn = pk_param.map(|param| {
        quote! {
            /// Loads the row with this primary key (a tuple for a composite
            /// key, in declaration order); `None` if there is none.
            pub fn get(#param) -> ::gino::Run<'static, impl ::gino::Loadable<'static, Self>, ::gino::model::First<Self>> {
                let query = #d::QueryDsl::select(
                    #pk_rows,
                    <Self as #d::SelectableHelper<#d::pg::Pg>>::as_select(),
                );
                ::gino::Run::reading(::core::result::Result::Ok(query), <Self as ::gino::Model>::DB.bind())
            }

            /// Loads the row with this primary key, or fails with
            /// `gino::Error::NotFound` (404 in the web extensions) if there
            /// is none: GINO's `get_or_404`.
            pub fn get_or_404(#param) -> ::gino::Run<'static, impl ::gino::Loadable<'static, Self>, ::gino::model::Found<Self>> {
                Self::get(key).or_not_found()
            }
        }
    });

    let create_doc = format!("The insert builder of [`{name}`]: `{name}::create()`.");
    let update_doc = format!(
        "The update request of [`{name}`]: `{}.update()`.",
        name.to_string().to_lowercase()
    );

    // The table's metadata, registered with its database (and the route
    // of its queries there): all a table without a model gets.
    let registration = quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #meta_ident: ::gino::model::TableMeta = ::gino::model::TableMeta {
            name: #table,
            schema: #table_schema,
            columns: &[#(#column_metas),*],
            primary_key: &[#(#pk_columns),*],
            indexes: &[#(#index_metas),*],
            uniques: &[#(#unique_metas),*],
            checks: &[#(#check_metas),*],
            foreign_keys: &[#(#fk_metas),*],
            enums: &[#(#enum_metas),*],
            comment: #table_comment,
        };

        ::gino::reexports::inventory::submit! {
            ::gino::model::ModelEntry { table: &#meta_ident, db: #db }
        }

        #table_route
    };
    if table_only {
        return Ok(registration);
    }

    Ok(quote! {
        #table_decl

        #joins

        #(#const_checks)*

        #props_module

        #registration

        impl #d::Selectable<#d::pg::Pg> for #name {
            type SelectExpression = (#(#schema::#idents,)*);

            fn construct_selection() -> Self::SelectExpression {
                (#(#schema::#idents,)*)
            }
        }

        impl #d::Queryable<(#(#sql_types,)*), #d::pg::Pg> for #name {
            type Row = (#(#tys,)*);

            fn build(row: Self::Row) -> #d::deserialize::Result<Self> {
                #(#reads)*
                ::core::result::Result::Ok(#from_row)
            }
        }

        // Raw SQL (`gino::text`, `sql_query`) loads models by column name,
        // as GINO's `execution_options(loader=User)` on textual SQL.
        impl #d::deserialize::QueryableByName<#d::pg::Pg> for #name {
            fn build<'__gino_row>(
                row: &impl #d::row::NamedRow<'__gino_row, #d::pg::Pg>,
            ) -> #d::deserialize::Result<Self> {
                #[allow(unused_imports)]
                use ::gino::model::{UnsetDefault as _, UnsetMissing as _};
                ::gino::model::unambiguous(row, #name_lit, &[#(#column_names),*])?;
                // A column the query leaves out takes its type's default
                // (GINO's passive partial load); without one, the load
                // fails naming it.
                let row = (#(
                    if #d::row::Row::get(row, #column_names).is_some() {
                        #d::row::NamedRow::get::<#sql_types, #tys>(row, #column_names)?
                    } else {
                        (&::gino::model::Unset::<#tys>::new(#name_lit, #column_names))
                            .value()
                            .map_err(|_| ::std::format!(
                                "column `{}` of model `{}` is not in the query, and its type has \
                                 no default to load it as: select it",
                                #column_names, #name_lit,
                            ))?
                    },
                )*);
                <Self as #d::Queryable<(#(#sql_types,)*), #d::pg::Pg>>::build(row)
            }
        }

        #keyed

        impl ::gino::model::KeyTarget for #name {
            const TABLE_NAME: &'static str = #table;
            const TABLE_SCHEMA: ::core::option::Option<&'static str> = #table_schema;
            const PRIMARY_KEY: &'static [&'static str] = &[#(#pk_columns),*];
        }

        impl ::gino::Model for #name {
            type Table = #schema::table;
            type UpdateRequest<'a> = #update_ident<'a>;
            type Key = (#(#pk_tys),*);
            const TABLE: &'static ::gino::model::TableMeta = &#meta_ident;
            const DB: ::gino::model::ModelDb = #db;

            fn lookup(&self) -> ::gino::Result<::gino::model::Lookup<#schema::table>> {
                #lookup_body
            }

            fn key(&self) -> Self::Key {
                #key_body
            }

            fn keep_only(&mut self, loaded: &[&str]) {
                #[allow(unused_imports)]
                use ::gino::model::{KeepValue as _, ResetToDefault as _};
                #(
                    if !loaded.contains(&#columns_lit) {
                        (&mut ::gino::model::Reset(&mut self.#resettable)).reset();
                    }
                )*
                #(#keep_properties)*
            }

            fn create(&self) -> ::gino::Run<'static, impl ::gino::Loadable<'static, Self>, ::gino::model::One<Self>> {
                let query = #instance_insert;
                ::gino::Run::new(query, Self::DB.bind())
            }

            fn query(&self) -> ::gino::Run<'static, impl ::gino::Loadable<'static, Self>, ::gino::model::First<Self>> {
                let query = self.lookup().map(|lookup| {
                    #d::QueryDsl::select(
                        #d::QueryDsl::filter(#schema::table, lookup),
                        <Self as #d::SelectableHelper<#d::pg::Pg>>::as_select(),
                    )
                });
                ::gino::Run::reading(query, Self::DB.bind())
            }

            fn delete(&self) -> ::gino::Run<'static, impl ::gino::reexports::diesel_async::methods::ExecuteDsl<::gino::reexports::diesel_async::AsyncPgConnection> + ::core::marker::Send + 'static, ::gino::model::StatusOf> {
                let query = self
                    .lookup()
                    .map(|lookup| #d::delete(#d::QueryDsl::filter(#schema::table, lookup)));
                ::gino::Run::new(query, Self::DB.bind())
            }

            fn update(&mut self) -> #update_ident<'_> {
                let lookup = self.lookup();
                #update_ident {
                    instance: self,
                    lookup,
                    changes: ::core::default::Default::default(),
                    #(#merge_inits)*
                    error: ::core::option::Option::None,
                    bind: <Self as ::gino::Model>::DB.bind(),
                    timeout: ::core::option::Option::None,
                }
            }
        }

        impl ::gino::bulk::BulkInsert for #name {
            fn parameters_per_row(rows: &[Self]) -> usize {
                #parameters_per_row
            }

            fn insert_rows<'b>(rows: &[Self], on: ::gino::Bind<'b>) -> ::gino::reexports::futures_util::future::BoxFuture<'b, ::gino::Result<u64>> {
                #keyed_count
                #bulk_count
            }

            fn insert_rows_returning<'b>(rows: &[Self], on: ::gino::Bind<'b>) -> ::gino::reexports::futures_util::future::BoxFuture<'b, ::gino::Result<::std::vec::Vec<Self>>> {
                #keyed_rows
                #bulk_rows
            }

            fn compile_rows(rows: &[Self], returning: bool) -> ::gino::Result<::std::vec::Vec<::gino::Compiled>> {
                #keyed_compile
                #bulk_compile
            }
        }

        #column_consts

        // The class-level API is generated whole; what an application
        // does not call must not warn (it would inside a macro_rules!).
        #[allow(dead_code)]
        impl #name {
            /// Inserts many rows at once, in as few statements as the
            /// bind-parameter limit allows and in one transaction; `.await`
            /// gives the count, `.returning().await` the stored rows. A row
            /// holding a serial key (not 0) keeps it; the sequence gives the
            /// rest theirs.
            #vis fn insert_many(rows: impl ::core::iter::IntoIterator<Item = Self>) -> ::gino::bulk::InsertMany<'static, Self> {
                ::gino::bulk::InsertMany::new(rows.into_iter().collect())
            }

            /// Starts an insert: a setter per column, then `.await` runs
            /// `INSERT ... RETURNING` and returns the stored row. Columns not
            /// set get their declared default, or the database's.
            #vis fn create() -> #create_ident<'static> {
                #create_ident {
                    #(#create_nones)*
                    bind: <Self as ::gino::Model>::DB.bind(),
                    timeout: ::core::option::Option::None,
                }
            }

            #get_fn

            /// `SELECT` of all columns as this model: add diesel filters, then
            /// `.gino().all()` / `.first()` / ...
            #vis fn query() -> #d::dsl::Select<#schema::table, #d::dsl::AsSelect<Self, #d::pg::Pg>> {
                #d::QueryDsl::select(#schema::table, <Self as #d::SelectableHelper<#d::pg::Pg>>::as_select())
            }

            /// `SELECT` of just `columns` (plain rows, not models).
            #vis fn select<S>(columns: S) -> #d::dsl::Select<#schema::table, S>
            where
                S: #d::Expression,
                #schema::table: #d::query_dsl::methods::SelectDsl<S>,
            {
                #d::QueryDsl::select(#schema::table, columns)
            }

            /// Creates this model's table (with its indexes and constraints).
            #vis fn create_table() -> ::gino::schema::SchemaOp<'static> {
                ::gino::schema::create_tables(::std::vec![<Self as ::gino::Model>::TABLE], <Self as ::gino::Model>::DB.bind())
            }

            /// Drops this model's table.
            #vis fn drop_table() -> ::gino::schema::SchemaOp<'static> {
                ::gino::schema::drop_tables(::std::vec![<Self as ::gino::Model>::TABLE], <Self as ::gino::Model>::DB.bind())
            }
        }

        #[doc = #create_doc]
        #[must_use = "an insert does nothing until awaited"]
        #vis struct #create_ident<'a> {
            #(#create_fields)*
            bind: ::gino::Bind<'a>,
            timeout: ::core::option::Option<::core::time::Duration>,
        }

        impl<'a> #create_ident<'a> {
            #(#create_setters)*

            /// Runs on `to` instead of the model's database.
            pub fn bind<'b>(self, to: impl ::core::convert::Into<::gino::Bind<'b>>) -> #create_ident<'b> {
                #create_ident {
                    #(#create_moves)*
                    bind: to.into(),
                    timeout: self.timeout,
                }
            }

            /// Fails with `gino::Error::QueryTimeout` after `timeout`.
            pub fn timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.timeout = ::core::option::Option::Some(timeout);
                self
            }

            /// The value in memory, without touching the database (GINO's
            /// `User(nickname=...)`): each field left unset takes its
            /// `#[gino(default = ...)]`, else its type's `Default`, else
            /// fails with `gino::Error::MissingValue`. `.create()` on it
            /// inserts every field (a serial key only when set, not 0), so
            /// server defaults apply only when inserting through the
            /// builder itself.
            pub fn build(self) -> ::gino::Result<#name> {
                ::core::result::Result::Ok(#built)
            }
        }

        impl<'a> ::core::future::IntoFuture for #create_ident<'a> {
            type Output = ::gino::Result<#name>;
            type IntoFuture = ::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ::gino::Result<#name>> + ::core::marker::Send + 'a>>;

            fn into_future(self) -> Self::IntoFuture {
                let query = (|| -> ::gino::Result<_> {
                    // Prepared once per set of columns given, not per call.
                    ::core::result::Result::Ok(::gino::CachedByText(#builder_insert
                        .returning(<#name as #d::SelectableHelper<#d::pg::Pg>>::as_returning())))
                })();
                let run = ::gino::Run::<_, ::gino::model::One<#name>>::new(query, self.bind);
                match self.timeout {
                    ::core::option::Option::Some(t) => ::core::future::IntoFuture::into_future(run.timeout(t)),
                    ::core::option::Option::None => ::core::future::IntoFuture::into_future(run),
                }
            }
        }

        #[doc = #update_doc]
        #[must_use = "an update request changes the database only on apply()"]
        #vis struct #update_ident<'a> {
            instance: &'a mut #name,
            lookup: ::gino::Result<::gino::model::Lookup<#schema::table>>,
            changes: ::gino::model::Changes<#schema::table>,
            #(#json_fields: ::gino::json::Merge<#schema::table>,)*
            error: ::core::option::Option<::gino::Error>,
            bind: ::gino::Bind<'a>,
            timeout: ::core::option::Option<::core::time::Duration>,
        }

        impl<'a> #update_ident<'a> {
            #(#update_setters)*
            #(#property_setters)*

            #set_property

            /// Adds a change computed in SQL, e.g.
            /// `.set(users::balance.eq(users::balance + 100))`; the value in
            /// memory is refreshed by `apply()`.
            pub fn set<C>(mut self, change: C) -> Self
            where
                C: #d::query_builder::AsChangeset<Target = #schema::table>,
                C::Changeset: #d::query_builder::QueryFragment<#d::pg::Pg> + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                self.changes.push(change);
                self
            }

            /// Runs on `to` instead of the model's database.
            pub fn bind(mut self, to: impl ::core::convert::Into<::gino::Bind<'a>>) -> Self {
                self.bind = to.into();
                self
            }

            /// Fails with `gino::Error::QueryTimeout` after `timeout`.
            pub fn timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.timeout = ::core::option::Option::Some(timeout);
                self
            }

            /// Runs one `UPDATE ... RETURNING` with every change and
            /// refreshes what it changed from what the database stored
            /// (values set in memory by requests never applied stay); with
            /// nothing to change, one query that the row exists.
            /// `gino::Error::NoSuchRow` if the row no longer exists; a
            /// `gino::Error::Query` if a JSON column is set whole and by
            /// its properties in one update.
            pub async fn apply(self) -> ::gino::Result<()> {
                // A row that cannot be located is refused even with nothing
                // to change, like every other instance-level call.
                let lookup = self.lookup?;
                if let ::core::option::Option::Some(e) = self.error {
                    return ::core::result::Result::Err(e);
                }
                let mut changes = self.changes;
                #(#refresh_keys)*
                let changes_before_merges = changes.columns();
                #(#merges)*
                if changes.is_empty() {
                    // Nothing to write, but a row deleted meanwhile is
                    // still `NoSuchRow`, as with changes.
                    let query = #d::select(#d::dsl::exists(#d::QueryDsl::filter(#schema::table, lookup)));
                    let mut run = ::gino::Run::<_, ::gino::model::One<bool>>::new(::core::result::Result::Ok(query), self.bind);
                    if let ::core::option::Option::Some(t) = self.timeout {
                        run = run.timeout(t);
                    }
                    return match run.await? {
                        true => ::core::result::Result::Ok(()),
                        false => ::core::result::Result::Err(::gino::Error::NoSuchRow),
                    };
                }
                // Kept prepared per set of changed columns (the text differs
                // with the set; diesel would prepare it on every call).
                let query = ::gino::CachedByText(
                    #d::update(#d::QueryDsl::filter(#schema::table, lookup))
                        .set(changes)
                        .returning(<#name as #d::SelectableHelper<#d::pg::Pg>>::as_returning()),
                );
                let mut run = ::gino::Run::<_, ::gino::model::One<#name>>::new(::core::result::Result::Ok(query), self.bind);
                if let ::core::option::Option::Some(t) = self.timeout {
                    run = run.timeout(t);
                }
                let fresh: #name = run.await?;
                let changes = changes_before_merges;
                #(#refreshes)*
                #(#property_refreshes)*
                ::core::result::Result::Ok(())
            }
        }
    })
}

/// What diesel needs to join the model's table with each model it
/// references (`references = User`): `JoinTo` both ways (what
/// `joinable!` writes) and the pair allowed in one query (what
/// `allow_tables_to_appear_in_same_query!` writes for it). A model
/// referenced by more than one field, or by itself, gets none: the join
/// would be ambiguous, as diesel says too.
fn joins(
    model: &Ident,
    vis: &syn::Visibility,
    schema: &TokenStream,
    fields: &[Field],
) -> TokenStream {
    let d = quote!(::gino::reexports::diesel);
    let targets: Vec<(&Field, &Path)> = fields
        .iter()
        .filter_map(|f| match &f.references {
            Some(Reference::Model(path)) if f.join => Some((f, path)),
            _ => None,
        })
        .collect();
    let key = |path: &Path| quote!(#path).to_string();
    let joinable: Vec<&(&Field, &Path)> = targets
        .iter()
        .filter(|(_, path)| {
            !refers_to_itself(model, path)
                && targets.iter().filter(|(_, p)| key(p) == key(path)).count() == 1
        })
        .collect();
    let loaders = joinable.iter().map(|(f, path)| {
        let field = f.ident.to_string();
        let relation = field.strip_suffix("_id").unwrap_or(&field);
        let method = format_ident!("with_{}", relation);
        let parent = quote!(<#path as ::gino::Model>::Table);
        let doc = format!(
            "`SELECT` of each `{model}` with its `{relation}` (`LEFT JOIN` on `{field}`): \
             rows `({model}, Option<{}>)`, GINO's `load({relation}=...)`. Add filters, \
             then `.gino().all()`.",
            quote!(#path).to_string().replace(' ', "")
        );
        quote! {
            #[doc = #doc]
            #vis fn #method() -> #d::dsl::Select<
                #d::dsl::LeftJoin<#schema::table, #parent>,
                (#d::dsl::AsSelect<Self, #d::pg::Pg>, #d::dsl::AsSelect<::core::option::Option<#path>, #d::pg::Pg>),
            > {
                #d::QueryDsl::select(
                    #d::QueryDsl::left_join(#schema::table, <#parent as ::core::default::Default>::default()),
                    (
                        <Self as #d::SelectableHelper<#d::pg::Pg>>::as_select(),
                        <::core::option::Option<#path> as #d::SelectableHelper<#d::pg::Pg>>::as_select(),
                    ),
                )
            }
        }
    });
    let loaders = quote! {
        #[allow(dead_code)]
        impl #model {
            #(#loaders)*
        }
    };
    let impls = joinable.iter().map(|(f, path)| {
        let ident = &f.ident;
        let parent = quote!(<#path as ::gino::Model>::Table);
        quote! {
            impl #d::JoinTo<#parent> for #schema::table {
                type FromClause = #parent;
                type OnClause = #d::dsl::Eq<
                    #d::dsl::Nullable<#schema::#ident>,
                    #d::dsl::Nullable<<#parent as #d::Table>::PrimaryKey>,
                >;

                fn join_target(rhs: #parent) -> (Self::FromClause, Self::OnClause) {
                    let on = #d::ExpressionMethods::eq(
                        #d::NullableExpressionMethods::nullable(#schema::#ident),
                        #d::NullableExpressionMethods::nullable(#d::Table::primary_key(&rhs)),
                    );
                    (rhs, on)
                }
            }

            impl #d::JoinTo<#schema::table> for #parent {
                type FromClause = #schema::table;
                type OnClause = <#schema::table as #d::JoinTo<#parent>>::OnClause;

                fn join_target(rhs: #schema::table) -> (Self::FromClause, Self::OnClause) {
                    let (_, on) = <#schema::table as #d::JoinTo<#parent>>::join_target(
                        ::core::default::Default::default(),
                    );
                    (rhs, on)
                }
            }

            impl #d::query_source::TableNotEqual<#parent> for #schema::table {}
            impl #d::query_source::TableNotEqual<#schema::table> for #parent {}
        }
    });
    quote! {
        #(#impls)*
        #loaders
    }
}

/// Whether `references = path` names the model being derived: `Self` or
/// its bare name. A longer path (`legacy::User`) is another model, even of
/// the same name.
fn refers_to_itself(model: &Ident, path: &Path) -> bool {
    path.is_ident("Self") || path.is_ident(model)
}

/// Refuses a name PostgreSQL would cut to 63 bytes (DDL would make the
/// cut name while queries and row reads use the whole one), or an empty
/// one, which it refuses.
pub(crate) fn name_fits(name: &str, what: &str, span: Span) -> Result<()> {
    let problem = match name.len() {
        0 => "is empty".to_owned(),
        1..=63 => return Ok(()),
        len => format!("is {len} bytes, and PostgreSQL keeps 63 of a name"),
    };
    Err(syn::Error::new(
        span,
        format!("the {what} name `{name}` {problem}: give it another"),
    ))
}

/// The default of a field of `model` of type `ty` that was given no value:
/// its type's `Default`, else `Err(MissingValue)` naming the field (an
/// expression of type `gino::Result<ty>`; autoref picks the case).
fn type_default(model: &Ident, ty: &Type, field: &str) -> TokenStream {
    let model = model.to_string();
    quote! {{
        #[allow(unused_imports)]
        use ::gino::model::{UnsetDefault as _, UnsetMissing as _};
        (&::gino::model::Unset::<#ty>::new(#model, #field)).value()
    }}
}

/// `value` passed through a property's `before_set` or `after_get` hook,
/// when it has one.
fn hooked(hook: &Option<Path>, value: TokenStream) -> TokenStream {
    match hook {
        Some(hook) => quote!(#hook(#value)),
        None => value,
    }
}

/// Where the JSON reading and writing of a property's type lives: date-times
/// have GINO's own format (`%Y-%m-%dT%H:%M:%S.%f`), everything else goes
/// through serde.
fn json_functions(property: &Field) -> TokenStream {
    let (inner, _) = types::strip_option(&property.ty);
    let name = types::last_ident(inner);
    if matches!(name.as_deref(), Some("NaiveDateTime" | "DateTime")) {
        quote!(::gino::json::datetime)
    } else {
        quote!(::gino::json)
    }
}

/// What PostgreSQL keeps of a name: its first 63 bytes, cut on a
/// character's boundary.
fn kept_name(name: &str) -> &str {
    // `floor_char_boundary` is newer than the crate's MSRV.
    let end = (0..=name.len().min(63))
        .rev()
        .find(|&end| name.is_char_boundary(end))
        .unwrap_or(0);
    &name[..end]
}
