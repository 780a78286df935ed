//! `gino::table!`: a table without a model (GINO core's `db.Table`),
//! declared once in diesel's `table!` syntax for both queries and DDL.
//!
//! The declaration, minus its `#[gino(...)]` attributes, becomes the same
//! table module diesel's `table!` would make (`table_module`); gino reads the same declaration for the
//! table's metadata, which it registers with the table's database so that
//! `create_all` makes it. The metadata comes from the model derive, run on
//! a struct made up of the columns in table-only mode: one description of
//! columns, keys, constraints and indexes for models and tables alike.

use diesel_table_macro_syntax::{ColumnDef, TableDecl};
use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Result, TypePath};

use crate::model;

pub fn expand(input: TokenStream) -> Result<TokenStream> {
    let decl: TableDecl = syn::parse2(input.clone())?;
    let gino = |attrs: &[Attribute]| -> Vec<Attribute> {
        attrs
            .iter()
            .filter(|a| a.path().is_ident("gino"))
            .cloned()
            .collect()
    };
    let table_attrs = gino(&decl.meta);
    only(&table_attrs, TABLE_KEYS)?;
    for column in &decl.column_defs {
        only(&gino(&column.meta), COLUMN_KEYS)?;
    }
    let name = &decl.table_name;
    let sql_name = &decl.sql_name;
    let schema = decl.schema.as_ref().map(|s| {
        let schema = s.to_string();
        quote!(#[gino(schema = #schema)])
    });
    let keys: Vec<Ident> = match &decl.primary_keys {
        Some(pk) => pk.keys.iter().cloned().collect(),
        None => vec![Ident::new("id", Span::call_site())],
    };
    let fields = decl
        .column_defs
        .iter()
        .map(|column| field(column, &gino(&column.meta), &keys))
        .collect::<Vec<_>>();
    let holder = format_ident!("{}", name.to_string().to_uppercase());
    let described: syn::DeriveInput = syn::parse_quote! {
        #(#table_attrs)*
        #[gino(table = #sql_name, diesel_table = #name)]
        #schema
        struct #holder {
            #(#fields,)*
        }
    };
    let registration = model::expand_with(described, &[], true)?;
    let stripped: TableDecl = syn::parse2(strip_gino_attributes(input))?;
    let module = crate::table_module::expand(&stripped)?;
    Ok(quote! {
        #module
        #registration
    })
}

/// What `gino::table!` takes on the table: the rest (its name, schema,
/// key) is the declaration's own, which the diesel module follows too.
const TABLE_KEYS: &[&str] = &["db", "index", "unique", "check", "foreign_key", "comment"];

/// What `gino::table!` takes on a column: its DDL. Its name, type and key
/// are the declaration's; a model's field attributes (a client default, a
/// JSON property) have no field here to act on.
const COLUMN_KEYS: &[&str] = &[
    "references",
    "join",
    "on_delete",
    "on_update",
    "server_default",
    "autoincrement",
    "unique",
    "index",
    "check",
    "comment",
    "ddl",
];

/// Refuses a `#[gino(...)]` key not in `keys`: the model derive would
/// take it, for the DDL alone, while the diesel module went on without it
/// (a renamed column created under one name and queried under another).
fn only(attrs: &[Attribute], keys: &[&str]) -> Result<()> {
    use syn::punctuated::Punctuated;
    for attr in attrs {
        let metas =
            attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)?;
        for meta in metas {
            let path = meta.path();
            if !keys.iter().any(|key| path.is_ident(key)) {
                return Err(syn::Error::new_spanned(
                    path,
                    format!(
                        "gino::table! takes {} here; a table's name, schema, columns and key \
                         are the declaration's own (diesel's `table!` syntax), and what a \
                         field does is a model's: #[derive(Model)]",
                        keys.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A column as a field of the description: its attributes, its SQL name,
/// its SQL type (nullable as `Option<()>`), and its DDL.
fn field(column: &ColumnDef, attrs: &[Attribute], keys: &[Ident]) -> TokenStream {
    let ident = &column.column_name;
    let sql_name = &column.sql_name;
    let (inner, nullable) = strip_nullable(&column.tpe);
    // The column's own `#[gino(ddl = ...)]`, else the DDL inferred from
    // its type; with neither, the derive says what to add.
    let own_ddl = attrs.iter().filter(|a| a.path().is_ident("gino")).any(|a| {
        a.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
            .is_ok_and(|metas| metas.iter().any(|m| m.path().is_ident("ddl")))
    });
    let ddl = ddl_of(inner)
        .filter(|_| !own_ddl)
        .map(|ddl| quote!(#[gino(ddl = #ddl)]));
    let key = keys.iter().position(|k| k == ident).map(|at| {
        let at = syn::Index::from(at);
        quote!(#[gino(primary_key, __key_position = #at)])
    });
    let ty = if nullable {
        quote!(Option<()>)
    } else {
        quote!(())
    };
    quote! {
        #ddl
        #[gino(column = #sql_name, sql_type = #inner)]
        #key
        #(#attrs)*
        #ident: #ty
    }
}

/// `(T, true)` for `Nullable<T>`.
fn strip_nullable(ty: &TypePath) -> (&TypePath, bool) {
    let Some(last) = ty.path.segments.last() else {
        return (ty, false);
    };
    if last.ident != "Nullable" {
        return (ty, false);
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => match args.args.first() {
            Some(syn::GenericArgument::Type(syn::Type::Path(inner))) => (inner, true),
            _ => (ty, false),
        },
        _ => (ty, false),
    }
}

/// The PostgreSQL type of a diesel SQL type, by its name.
fn ddl_of(ty: &TypePath) -> Option<String> {
    let last = ty.path.segments.last()?;
    let ddl = match last.ident.to_string().as_str() {
        "SmallInt" | "Int2" | "Smallint" => "smallint",
        "Integer" | "Int4" => "integer",
        "BigInt" | "Int8" | "Bigint" => "bigint",
        "Float" | "Float4" => "real",
        "Double" | "Float8" => "double precision",
        "Numeric" | "Decimal" => "numeric",
        "Text" | "VarChar" | "Varchar" => "text",
        "Bool" => "boolean",
        "Binary" | "Bytea" => "bytea",
        "Date" => "date",
        "Time" => "time",
        "Timestamp" => "timestamp",
        "Timestamptz" => "timestamptz",
        "Interval" => "interval",
        "Uuid" => "uuid",
        "Json" => "json",
        "Jsonb" => "jsonb",
        "Inet" => "inet",
        "Cidr" => "cidr",
        "Money" => "money",
        "Array" => {
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            let Some(syn::GenericArgument::Type(syn::Type::Path(element))) = args.args.first()
            else {
                return None;
            };
            return ddl_of(strip_nullable(element).0).map(|e| format!("{e}[]"));
        }
        _ => return None,
    };
    Some(ddl.to_owned())
}

/// The tokens without any `#[gino(...)]` attribute, at any depth.
fn strip_gino_attributes(tokens: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if is_gino_attribute(&tokens[i], tokens.get(i + 1)) {
            i += 2;
            continue;
        }
        out.push(match &tokens[i] {
            TokenTree::Group(group) => {
                let mut inner =
                    Group::new(group.delimiter(), strip_gino_attributes(group.stream()));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            other => other.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}

/// Whether `pound` and `next` are `#` and `[gino(...)]`.
fn is_gino_attribute(pound: &TokenTree, next: Option<&TokenTree>) -> bool {
    let (TokenTree::Punct(pound), Some(TokenTree::Group(attr))) = (pound, next) else {
        return false;
    };
    pound.as_char() == '#'
        && attr.delimiter() == proc_macro2::Delimiter::Bracket
        && matches!(attr.stream().into_iter().next(), Some(TokenTree::Ident(id)) if id == "gino")
}
