//! `#[derive(DbEnum)]`: a Rust enum as a PostgreSQL enum type.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Result};

/// `CamelCase` → `camel_case` as heck (and so diesel-derive-enum) splits
/// names: a word starts at an upper-case letter when the last letter
/// before it (digits between carry it) is lower-case, and at the last
/// upper-case letter of a run when a lower-case one follows it; an acronym
/// is one word (`HTTPError` → `http_error`, `P2P` → `p2p`).
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    let mut after_lower = false;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let run_ends =
                chars[i - 1].is_uppercase() && chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if (after_lower || run_ends) && !out.ends_with('_') {
                out.push('_');
            }
        }
        if c.is_lowercase() {
            after_lower = true;
        } else if c.is_uppercase() || c == '_' {
            after_lower = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

pub fn expand(input: DeriveInput) -> Result<TokenStream> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "DbEnum is derived for enums",
        ));
    };
    let mut type_name = snake_case(&name.to_string());
    let mut seen = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("gino")) {
        attr.parse_nested_meta(|meta| {
            crate::model::given_once(&mut seen, &meta)?;
            if meta.path.is_ident("type_name") {
                type_name = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("expected `type_name = \"...\"`"))
            }
        })?;
    }
    let mut variants = Vec::new();
    let mut labels = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return Err(syn::Error::new(
                variant.span(),
                "a PostgreSQL enum's variants cannot carry data",
            ));
        }
        let mut label = snake_case(&variant.ident.to_string());
        let mut seen = Vec::new();
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("gino")) {
            attr.parse_nested_meta(|meta| {
                crate::model::given_once(&mut seen, &meta)?;
                if meta.path.is_ident("rename") {
                    label = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else {
                    Err(meta.error("expected `rename = \"label\"`"))
                }
            })?;
        }
        // PostgreSQL refuses a longer label, and two alike would read
        // back as one variant.
        crate::model::name_fits(&label, "label", variant.span())?;
        if let Some(at) = labels.iter().position(|l| *l == label) {
            return Err(syn::Error::new(
                variant.span(),
                format!(
                    "`{}` and `{}` have one label, `{label}`: each variant needs its own \
                     (#[gino(rename = \"...\")])",
                    variants[at], variant.ident
                ),
            ));
        }
        variants.push(&variant.ident);
        labels.push(label);
    }
    crate::model::name_fits(&type_name, "type", Span::call_site())?;
    let sql_type = format_ident!("{}Type", name);
    let meta = format_ident!("__GINO_ENUM_{}", name.to_string().to_uppercase());
    let vis = &input.vis;
    let d = quote!(::gino::reexports::diesel);
    let type_doc = format!("The SQL type of [`{name}`]: PostgreSQL's `{type_name}`.");
    let label_bytes = labels
        .iter()
        .map(|l| syn::LitByteStr::new(l.as_bytes(), Span::call_site()));

    Ok(quote! {
        #[doc = #type_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        #vis struct #sql_type;

        impl #d::sql_types::SqlType for #sql_type {
            type IsNull = #d::sql_types::is_nullable::NotNull;
        }

        impl #d::sql_types::SingleValue for #sql_type {}

        impl #d::query_builder::QueryId for #sql_type {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl #d::sql_types::HasSqlType<#sql_type> for #d::pg::Pg {
            fn metadata(lookup: &mut Self::MetadataLookup) -> #d::pg::PgTypeMetadata {
                #d::pg::PgMetadataLookup::lookup_type(lookup, #type_name, ::core::option::Option::None)
            }
        }

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #meta: ::gino::model::EnumMeta = ::gino::model::EnumMeta {
            name: #type_name,
            variants: &[#(#labels),*],
        };

        impl ::gino::model::PgEnum for #name {
            const META: &'static ::gino::model::EnumMeta = &#meta;
        }

        impl #d::serialize::ToSql<#sql_type, #d::pg::Pg> for #name {
            fn to_sql<'b>(&'b self, out: &mut #d::serialize::Output<'b, '_, #d::pg::Pg>) -> #d::serialize::Result {
                let label: &'static str = match self {
                    #(Self::#variants => #labels,)*
                };
                ::std::io::Write::write_all(out, label.as_bytes())?;
                ::core::result::Result::Ok(#d::serialize::IsNull::No)
            }
        }

        impl #d::deserialize::FromSql<#sql_type, #d::pg::Pg> for #name {
            fn from_sql(value: #d::pg::PgValue<'_>) -> #d::deserialize::Result<Self> {
                match value.as_bytes() {
                    #(#label_bytes => ::core::result::Result::Ok(Self::#variants),)*
                    other => ::core::result::Result::Err(::std::format!(
                        "unknown label {:?} for the PostgreSQL enum `{}`: update the Rust enum `{}`",
                        ::std::string::String::from_utf8_lossy(other),
                        #type_name,
                        ::core::stringify!(#name),
                    ).into()),
                }
            }
        }

        impl #d::deserialize::Queryable<#sql_type, #d::pg::Pg> for #name {
            type Row = Self;

            fn build(row: Self) -> #d::deserialize::Result<Self> {
                ::core::result::Result::Ok(row)
            }
        }

        impl #d::expression::AsExpression<#sql_type> for #name {
            type Expression = #d::internal::derives::as_expression::Bound<#sql_type, Self>;

            fn as_expression(self) -> Self::Expression {
                #d::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl #d::expression::AsExpression<#d::sql_types::Nullable<#sql_type>> for #name {
            type Expression = #d::internal::derives::as_expression::Bound<#d::sql_types::Nullable<#sql_type>, Self>;

            fn as_expression(self) -> Self::Expression {
                #d::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<'a> #d::expression::AsExpression<#sql_type> for &'a #name {
            type Expression = #d::internal::derives::as_expression::Bound<#sql_type, Self>;

            fn as_expression(self) -> Self::Expression {
                #d::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<'a> #d::expression::AsExpression<#d::sql_types::Nullable<#sql_type>> for &'a #name {
            type Expression = #d::internal::derives::as_expression::Bound<#d::sql_types::Nullable<#sql_type>, Self>;

            fn as_expression(self) -> Self::Expression {
                #d::internal::derives::as_expression::Bound::new(self)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn words_and_acronyms_split_as_heck_does() {
        for (name, snake) in [
            ("User", "user"),
            ("UserType", "user_type"),
            ("HTTPError", "http_error"),
            ("ParseURL", "parse_url"),
            ("ABC", "abc"),
            ("IPv4Addr", "i_pv4_addr"),
            ("Level2Cache", "level2_cache"),
            ("P2P", "p2p"),
            ("B2bSale", "b2b_sale"),
            ("Vec3D", "vec3_d"),
            ("Already_Snake", "already_snake"),
            ("lower", "lower"),
        ] {
            assert_eq!(snake_case(name), snake, "{name}");
        }
    }
}
