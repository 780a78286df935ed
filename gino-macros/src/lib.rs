//! Derive macros of gino (`#[derive(Model)]`), re-exported by `gino`; see
//! `gino::Model` for the attributes.

mod db_enum;
mod migrations;
mod model;
mod table;
mod table_module;
mod types;

use proc_macro::TokenStream;

/// Declares a table for a struct and implements gino's CRUD on it; see the
/// documentation of the `gino::Model` trait.
#[proc_macro_derive(Model, attributes(gino))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    model::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A set of columns that models share with `#[gino(flatten)]` (GINO's
/// mixins); see the documentation of the `gino::Model` trait.
#[proc_macro_derive(Columns, attributes(gino))]
pub fn derive_columns(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    model::expand_columns(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A model with the sets of columns it flattens, as `#[derive(Columns)]`
/// hands them over; not called directly.
#[doc(hidden)]
#[proc_macro]
pub fn __model_with_columns(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as model::WithColumns);
    model::expand_with_columns(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A table without a model, in diesel's `table!` syntax with gino's column
/// attributes; see `gino::table!`.
#[proc_macro]
pub fn table(input: TokenStream) -> TokenStream {
    table::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A Rust enum as a PostgreSQL enum type; see `gino::model::PgEnum`.
#[proc_macro_derive(DbEnum, attributes(gino))]
pub fn derive_db_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    db_enum::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Compiles the migrations of a diesel-style directory (default
/// `migrations`, relative to the crate's `Cargo.toml`) into the binary; see
/// `gino::migrate`.
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    let dir = if input.is_empty() {
        None
    } else {
        Some(syn::parse_macro_input!(input as syn::LitStr))
    };
    migrations::expand(dir)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
