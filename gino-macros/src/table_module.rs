//! The table module of a declaration (`pub mod users { table, columns, dsl }`):
//! the items diesel's `table!` makes, written against gino's re-export of
//! diesel so that a crate whose only database dependency is `gino` can
//! declare models and tables.
//!
//! diesel's own expansion opens with `use ::diesel;`, a path only the
//! extern prelude resolves: a crate must list diesel itself to expand it.
//! Every path here starts at `::gino::reexports::diesel` instead. The
//! module implements diesel's public traits plus the hidden
//! `diesel::internal::table_macro` items that exist for table declarations;
//! those stay fixed within a diesel minor version (any `diesel_derives`
//! 2.3 must work with any diesel 2.3), the version gino depends on.
//!
//! The module has the same shape as diesel's, so diesel's documentation,
//! `joinable!`, `allow_tables_to_appear_in_same_query!`, `alias!` and every
//! query builder method apply to it unchanged.

use diesel_table_macro_syntax::{ColumnDef, TableDecl};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, ItemUse, Result, TypePath};

/// How many columns diesel's tuples reach, as the workspace configures it
/// (gino's `64-column-tables` / `128-column-tables` features raise it in
/// both diesel and this crate).
const MAX_COLUMNS: usize = if cfg!(feature = "128-column-tables") {
    128
} else if cfg!(feature = "64-column-tables") {
    64
} else {
    32
};

/// The module `decl` declares.
pub fn expand(decl: &TableDecl) -> Result<TokenStream> {
    let columns: Vec<&ColumnDef> = decl.column_defs.iter().collect();
    check(decl, &columns)?;
    let keys = primary_key(decl, &columns)?;
    let d = diesel();
    let meta = &decl.meta;
    let module = &decl.table_name;
    let imports = imports(&decl.use_statements);
    let column_imports = imports.iter().map(one_level_deeper);
    let names: Vec<&Ident> = columns.iter().map(|c| &c.column_name).collect();
    let sql_types = columns.iter().map(|c| &c.tpe);
    let key = match keys.as_slice() {
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    };
    let single_key = match keys.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let table_items = table_items(decl);
    let column_items = columns.iter().map(|c| column_items(c));
    let grouping = grouping(&names, single_key);

    Ok(quote! {
        #(#meta)*
        #[allow(unused_imports, dead_code, unreachable_pub, unused_qualifications)]
        pub mod #module {
            pub use self::columns::*;
            #(#imports)*

            /// The columns of this table and the table itself under the
            /// module's name, for glob imports in code about one table.
            pub mod dsl {
                #(pub use super::columns::#names;)*
                pub use super::table as #module;
            }

            #[allow(non_upper_case_globals, dead_code)]
            /// All columns of this table, in declaration order.
            pub const all_columns: (#(#names,)*) = (#(#names,)*);

            /// The SQL types of all columns, in declaration order.
            pub type SqlType = (#(#sql_types,)*);

            /// A boxed query from this table.
            pub type BoxedQuery<'a, DB, ST = SqlType> = #d::internal::table_macro::BoxedSelectStatement<
                'a, ST, #d::internal::table_macro::FromClause<table>, DB,
            >;

            impl #d::Table for table {
                type PrimaryKey = #key;
                type AllColumns = (#(#names,)*);

                fn primary_key(&self) -> Self::PrimaryKey {
                    #key
                }

                fn all_columns() -> Self::AllColumns {
                    (#(#names,)*)
                }
            }

            #table_items

            /// The columns of this table.
            pub mod columns {
                use super::table;
                #(#column_imports)*

                #[allow(non_camel_case_types, dead_code)]
                #[derive(Debug, Clone, Copy)]
                /// `table.*`, for `count(table.*)` and the like; its SQL type
                /// is not selectable, so it cannot stand for `all_columns`.
                pub struct star;

                impl #d::query_builder::QueryId for star {
                    type QueryId = star;
                    const HAS_STATIC_QUERY_ID: bool = true;
                }

                impl<GroupBy> #d::expression::ValidGrouping<GroupBy> for star
                where
                    (#(#names,)*): #d::expression::ValidGrouping<GroupBy>,
                {
                    type IsAggregate =
                        <(#(#names,)*) as #d::expression::ValidGrouping<GroupBy>>::IsAggregate;
                }

                impl #d::Expression for star {
                    type SqlType = #d::expression::expression_types::NotSelectable;
                }

                impl<DB: #d::backend::Backend> #d::query_builder::QueryFragment<DB> for star
                where
                    <table as #d::QuerySource>::FromClause: #d::query_builder::QueryFragment<DB>,
                {
                    fn walk_ast<'b>(
                        &'b self,
                        mut out: #d::query_builder::AstPass<'_, 'b, DB>,
                    ) -> #d::result::QueryResult<()> {
                        __gino_qualify::<DB>(out.reborrow())?;
                        out.push_sql("*");
                        Ok(())
                    }
                }

                impl #d::SelectableExpression<table> for star {}

                impl #d::AppearsOnTable<table> for star {}

                /// `table.` before a column, unless the statement leaves its
                /// single table implicit (`UPDATE`, `DELETE`).
                #[doc(hidden)]
                fn __gino_qualify<'b, DB>(
                    mut out: #d::query_builder::AstPass<'_, 'b, DB>,
                ) -> #d::result::QueryResult<()>
                where
                    DB: #d::backend::Backend,
                    #d::internal::table_macro::StaticQueryFragmentInstance<table>:
                        #d::query_builder::QueryFragment<DB>,
                {
                    use #d::query_builder::QueryFragment;
                    if !out.should_skip_from() {
                        const TABLE: #d::internal::table_macro::StaticQueryFragmentInstance<table> =
                            #d::internal::table_macro::StaticQueryFragmentInstance::new();
                        TABLE.walk_ast(out.reborrow())?;
                        out.push_sql(".");
                    }
                    Ok(())
                }

                #(#column_items)*

                #(#grouping)*
            }
        }
    })
}

/// `::gino::reexports::diesel`, the one way generated code names diesel.
fn diesel() -> TokenStream {
    quote!(::gino::reexports::diesel)
}

/// What diesel's `table!` refuses, refused with the same reasons.
fn check(decl: &TableDecl, columns: &[&ColumnDef]) -> Result<()> {
    if columns.len() > MAX_COLUMNS {
        let advice = if MAX_COLUMNS < 128 {
            "enable gino's `64-column-tables` or `128-column-tables` feature"
        } else {
            "split the table: diesel supports at most 128 columns"
        };
        return Err(syn::Error::new(
            decl.table_name.span(),
            format!(
                "`{}` has {} columns, more than the {MAX_COLUMNS} diesel is built for: {advice}",
                decl.table_name,
                columns.len()
            ),
        ));
    }
    if let Some(clash) = columns.iter().find(|c| c.column_name == decl.table_name) {
        return Err(syn::Error::new(
            clash.column_name.span(),
            format!(
                "a column cannot have its table's name `{0}` in Rust: name the field \
                 differently and keep the SQL name with #[gino(column = \"{0}\")] \
                 (in table! syntax, #[sql_name = \"{0}\"])",
                decl.table_name
            ),
        ));
    }
    Ok(())
}

/// The primary key's columns: the declared ones, else `id`.
fn primary_key<'a>(decl: &'a TableDecl, columns: &[&'a ColumnDef]) -> Result<Vec<&'a Ident>> {
    if let Some(pk) = &decl.primary_keys {
        return Ok(pk.keys.iter().collect());
    }
    match columns.iter().find(|c| c.column_name == "id") {
        Some(id) => Ok(vec![&id.column_name]),
        None => Err(syn::Error::new(
            decl.table_name.span(),
            format!(
                "`{0}` has no `id` column and declares no primary key: name it, e.g. \
                 `{0} ({1}) {{ ... }}`",
                decl.table_name, columns[0].column_name
            ),
        )),
    }
}

/// The declaration's `use` items, or diesel's SQL types when it has none.
fn imports(declared: &[ItemUse]) -> Vec<ItemUse> {
    if declared.is_empty() {
        let d = diesel();
        vec![syn::parse_quote!(use #d::sql_types::*;)]
    } else {
        declared.to_vec()
    }
}

/// `import` as written one module further down (`columns` inside the
/// table module): a leading `super` gains another.
fn one_level_deeper(import: &ItemUse) -> ItemUse {
    let mut import = import.clone();
    if let syn::UseTree::Path(path) = &mut import.tree
        && path.ident == "super"
    {
        let inner = path.clone();
        *path.tree = syn::UseTree::Path(inner);
    }
    import
}

/// `impl JoinTo<Target> for table` that lets `Target` say how it joins the
/// table: the same body for every kind of query source that can stand on
/// the left of a join.
fn join_from(generics: TokenStream, target: TokenStream, bounds: TokenStream) -> TokenStream {
    let d = diesel();
    quote! {
        impl<#generics> #d::JoinTo<#target> for table
        where
            #target: #d::JoinTo<table>,
            #bounds
        {
            type FromClause = #target;
            type OnClause = <#target as #d::JoinTo<table>>::OnClause;

            fn join_target(rhs: #target) -> (Self::FromClause, Self::OnClause) {
                let (_, on) = <#target as #d::JoinTo<table>>::join_target(table);
                (rhs, on)
            }
        }
    }
}

/// The table struct and what makes it a query source: its SQL name, its
/// place in FROM clauses (itself, aliases, joins, `ONLY`, `TABLESAMPLE`)
/// and its use as the target of statements.
fn table_items(decl: &TableDecl) -> TokenStream {
    let d = diesel();
    let tm = quote!(#d::internal::table_macro);
    let sql_name = &decl.sql_name;
    let component = match &decl.schema {
        Some(schema) => {
            let schema = schema.to_string();
            quote! {
                type Component = #tm::InfixNode<#tm::Identifier<'static>, #tm::Identifier<'static>, &'static str>;
                const STATIC_COMPONENT: &'static Self::Component =
                    &#tm::InfixNode::new(#tm::Identifier(#schema), #tm::Identifier(#sql_name), ".");
            }
        }
        None => quote! {
            type Component = #tm::Identifier<'static>;
            const STATIC_COMPONENT: &'static Self::Component = &#tm::Identifier(#sql_name);
        },
    };
    let from_clause = quote!(#tm::FromClause);
    let sources = quote!(#d::query_source);
    let joins = [
        join_from(
            quote!(Left, Right, Kind),
            quote!(#tm::Join<Left, Right, Kind>),
            quote!(Left: #sources::QuerySource, Right: #sources::QuerySource,),
        ),
        join_from(quote!(Join, On), quote!(#tm::JoinOn<Join, On>), quote!()),
        join_from(
            quote!(F, S, D, W, O, L, Of, G),
            quote!(#tm::SelectStatement<#from_clause<F>, S, D, W, O, L, Of, G>),
            quote!(F: #sources::QuerySource,),
        ),
        join_from(
            quote!('a, QS, ST, DB),
            quote!(#tm::BoxedSelectStatement<'a, #from_clause<QS>, ST, DB>),
            quote!(QS: #sources::QuerySource,),
        ),
        join_from(quote!(S), quote!(#sources::Alias<S>), quote!()),
        join_from(quote!(S), quote!(#d::query_builder::Only<S>), quote!()),
        join_from(
            quote!(S, TSM),
            quote!(#d::query_builder::Tablesample<S, TSM>),
            quote!(TSM: #tm::TablesampleMethod,),
        ),
    ];
    quote! {
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        /// The table: where query building starts (`table.filter(..)`).
        pub struct table;

        impl table {
            #[allow(dead_code)]
            /// `table.*` (see [`columns::star`]).
            pub fn star(&self) -> star {
                star
            }
        }

        impl #d::query_builder::QueryId for table {
            type QueryId = table;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl #tm::StaticQueryFragment for table {
            #component
        }

        impl<DB> #d::query_builder::QueryFragment<DB> for table
        where
            DB: #d::backend::Backend,
            <table as #tm::StaticQueryFragment>::Component: #d::query_builder::QueryFragment<DB>,
        {
            fn walk_ast<'b>(
                &'b self,
                pass: #d::query_builder::AstPass<'_, 'b, DB>,
            ) -> #d::result::QueryResult<()> {
                #d::query_builder::QueryFragment::<DB>::walk_ast(<table as #tm::StaticQueryFragment>::STATIC_COMPONENT, pass)
            }
        }

        impl #d::QuerySource for table {
            type FromClause = #tm::StaticQueryFragmentInstance<table>;
            type DefaultSelection = <Self as #d::Table>::AllColumns;

            fn from_clause(&self) -> Self::FromClause {
                #tm::StaticQueryFragmentInstance::new()
            }

            fn default_selection(&self) -> Self::DefaultSelection {
                <Self as #d::Table>::all_columns()
            }
        }

        impl #d::query_builder::AsQuery for table {
            type SqlType = SqlType;
            type Query = #tm::SelectStatement<#from_clause<Self>>;

            fn as_query(self) -> Self::Query {
                #tm::SelectStatement::simple(self)
            }
        }

        impl #d::associations::HasTable for table {
            type Table = Self;

            fn table() -> Self::Table {
                table
            }
        }

        impl #d::query_builder::IntoUpdateTarget for table {
            type WhereClause = <<Self as #d::query_builder::AsQuery>::Query as #d::query_builder::IntoUpdateTarget>::WhereClause;

            fn into_update_target(self) -> #d::query_builder::UpdateTarget<Self::Table, Self::WhereClause> {
                let query: #tm::SelectStatement<#from_clause<table>> =
                    #d::query_builder::AsQuery::as_query(self);
                #d::query_builder::IntoUpdateTarget::into_update_target(query)
            }
        }

        // `INSERT INTO t SELECT ... FROM table`: diesel cannot state this
        // once for all tables without the trait solver recursing.
        impl<T> #d::insertable::Insertable<T> for table
        where
            <table as #d::query_builder::AsQuery>::Query: #d::insertable::Insertable<T>,
        {
            type Values = <<table as #d::query_builder::AsQuery>::Query as #d::insertable::Insertable<T>>::Values;

            fn values(self) -> Self::Values {
                #d::insertable::Insertable::values(#d::query_builder::AsQuery::as_query(self))
            }
        }

        impl<'a, T> #d::insertable::Insertable<T> for &'a table
        where
            table: #d::insertable::Insertable<T>,
        {
            type Values = <table as #d::insertable::Insertable<T>>::Values;

            fn values(self) -> Self::Values {
                #d::insertable::Insertable::values(*self)
            }
        }

        // Where the table appears: once in itself, never in a FROM clause
        // without tables or in an alias (the alias's own impls count it),
        // once in `ONLY table` and `table TABLESAMPLE ...`.
        impl #sources::AppearsInFromClause<table> for table {
            type Count = #sources::Once;
        }

        impl #sources::AppearsInFromClause<table> for #tm::NoFromClause {
            type Count = #sources::Never;
        }

        impl<S> #sources::AppearsInFromClause<#sources::Alias<S>> for table
        where
            S: #sources::AliasSource,
        {
            type Count = #sources::Never;
        }

        impl<S> #tm::AliasAppearsInFromClause<S, table> for table
        where
            S: #sources::AliasSource<Target = table>,
        {
            type Count = #sources::Never;
        }

        // Lets `alias!` relate two aliases of this table from any crate.
        impl<S1, S2> #tm::AliasAliasAppearsInFromClause<table, S2, S1> for table
        where
            S1: #sources::AliasSource<Target = table>,
            S2: #sources::AliasSource<Target = table>,
            S1: #tm::AliasAliasAppearsInFromClauseSameTable<S2, table>,
        {
            type Count = <S1 as #tm::AliasAliasAppearsInFromClauseSameTable<S2, table>>::Count;
        }

        impl<S, C> #tm::FieldAliasMapperAssociatedTypesDisjointnessTrick<table, S, C> for table
        where
            S: #sources::AliasSource<Target = table> + ::core::clone::Clone,
            C: #sources::Column<Table = table>,
        {
            type Out = #sources::AliasedField<S, C>;

            fn map(column: C, alias: &#sources::Alias<S>) -> Self::Out {
                alias.field(column)
            }
        }

        impl #sources::AppearsInFromClause<#d::query_builder::Only<table>> for table {
            type Count = #sources::Once;
        }

        impl #sources::AppearsInFromClause<table> for #d::query_builder::Only<table> {
            type Count = #sources::Once;
        }

        impl<TSM> #sources::AppearsInFromClause<#d::query_builder::Tablesample<table, TSM>> for table
        where
            TSM: #tm::TablesampleMethod,
        {
            type Count = #sources::Once;
        }

        impl<TSM> #sources::AppearsInFromClause<table> for #d::query_builder::Tablesample<table, TSM>
        where
            TSM: #tm::TablesampleMethod,
        {
            type Count = #sources::Once;
        }

        #(#joins)*
    }
}

/// A column's struct: its SQL, its type, where it may be selected, how it
/// groups, and the operators its SQL type has.
fn column_items(column: &ColumnDef) -> TokenStream {
    let d = diesel();
    let tm = quote!(#d::internal::table_macro);
    let sources = quote!(#d::query_source);
    let meta = &column.meta;
    let name = &column.column_name;
    let sql_name = &column.sql_name;
    let sql_type = &column.tpe;
    let max_length = column.max_length.as_ref().map(|max| {
        quote! {
            impl #sources::SizeRestrictedColumn for #name {
                const MAX_LENGTH: usize = #max;
            }
        }
    });
    let operators = operators(sql_type).iter().map(|op| {
        let method = Ident::new(&op.to_lowercase(), Span::call_site());
        let op = Ident::new(op, Span::call_site());
        quote! {
            impl<Rhs> ::core::ops::#op<Rhs> for #name
            where
                Rhs: #d::expression::AsExpression<
                    <<#name as #d::Expression>::SqlType as #d::sql_types::ops::#op>::Rhs,
                >,
            {
                type Output = #tm::ops::#op<Self, Rhs::Expression>;

                fn #method(self, rhs: Rhs) -> Self::Output {
                    #tm::ops::#op::new(self, #d::expression::AsExpression::as_expression(rhs))
                }
            }
        }
    });
    quote! {
        #(#meta)*
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct #name;

        impl #d::query_builder::QueryId for #name {
            type QueryId = #name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl #d::expression::Expression for #name {
            type SqlType = #sql_type;
        }

        impl #sources::Column for #name {
            type Table = super::table;

            const NAME: &'static str = #sql_name;
        }

        impl<DB> #d::query_builder::QueryFragment<DB> for #name
        where
            DB: #d::backend::Backend,
            #tm::StaticQueryFragmentInstance<table>: #d::query_builder::QueryFragment<DB>,
        {
            fn walk_ast<'b>(
                &'b self,
                mut out: #d::query_builder::AstPass<'_, 'b, DB>,
            ) -> #d::result::QueryResult<()> {
                __gino_qualify::<DB>(out.reborrow())?;
                out.push_identifier(#sql_name)
            }
        }

        // Where the column may appear: wherever its table is in the FROM
        // clause exactly once; selected from the table, from inner joins
        // that hold it, from the left side of left joins (the right side's
        // columns are selected as `.nullable()`), and through `ON` clauses
        // and subselects.
        impl<QS> #d::AppearsOnTable<QS> for #name
        where
            QS: #sources::AppearsInFromClause<super::table, Count = #sources::Once>,
        {
        }

        impl #d::SelectableExpression<super::table> for #name {}

        impl<Left, Right> #d::SelectableExpression<#tm::Join<Left, Right, #tm::LeftOuter>> for #name
        where
            #name: #d::AppearsOnTable<#tm::Join<Left, Right, #tm::LeftOuter>>,
            Self: #d::SelectableExpression<Left>,
            Right: #sources::AppearsInFromClause<super::table, Count = #sources::Never> + #sources::QuerySource,
            Left: #sources::QuerySource,
        {
        }

        impl<Left, Right> #d::SelectableExpression<#tm::Join<Left, Right, #tm::Inner>> for #name
        where
            #name: #d::AppearsOnTable<#tm::Join<Left, Right, #tm::Inner>>,
            Left: #sources::AppearsInFromClause<super::table> + #sources::QuerySource,
            Right: #sources::AppearsInFromClause<super::table> + #sources::QuerySource,
            (Left::Count, Right::Count): #tm::Pick<Left, Right>,
            Self: #d::SelectableExpression<<(Left::Count, Right::Count) as #tm::Pick<Left, Right>>::Selection>,
        {
        }

        impl<Join, On> #d::SelectableExpression<#tm::JoinOn<Join, On>> for #name
        where
            #name: #d::SelectableExpression<Join> + #d::AppearsOnTable<#tm::JoinOn<Join, On>>,
        {
        }

        impl<From> #d::SelectableExpression<#tm::SelectStatement<#tm::FromClause<From>>> for #name
        where
            From: #sources::QuerySource,
            #name: #d::SelectableExpression<From> + #d::AppearsOnTable<#tm::SelectStatement<#tm::FromClause<From>>>,
        {
        }

        impl #sources::AppearsInFromClause<#d::query_builder::Only<super::table>> for #name {
            type Count = #sources::Once;
        }

        impl #d::SelectableExpression<#d::query_builder::Only<super::table>> for #name {}

        impl<TSM> #sources::AppearsInFromClause<#d::query_builder::Tablesample<super::table, TSM>> for #name
        where
            TSM: #tm::TablesampleMethod,
        {
            type Count = #sources::Once;
        }

        impl<TSM> #d::SelectableExpression<#d::query_builder::Tablesample<super::table, TSM>> for #name
        where
            TSM: #tm::TablesampleMethod,
        {
        }

        // A column is an aggregate-free expression outside GROUP BY, and
        // may be selected under a GROUP BY that determines it.
        impl #d::expression::ValidGrouping<()> for #name {
            type IsAggregate = #d::expression::is_aggregate::No;
        }

        impl<GroupBy> #d::expression::ValidGrouping<GroupBy> for #name
        where
            GroupBy: #d::expression::IsContainedInGroupBy<#name, Output = #d::expression::is_contained_in_group_by::Yes>,
        {
            type IsAggregate = #d::expression::is_aggregate::Yes;
        }

        impl #d::expression::IsContainedInGroupBy<#name> for #name {
            type Output = #d::expression::is_contained_in_group_by::Yes;
        }

        impl<T> #d::EqAll<T> for #name
        where
            T: #d::expression::AsExpression<#sql_type>,
            #d::dsl::Eq<#name, T::Expression>: #d::Expression<SqlType = #d::sql_types::Bool>,
        {
            type Output = #d::dsl::Eq<Self, T::Expression>;

            fn eq_all(self, rhs: T) -> Self::Output {
                #d::expression_methods::ExpressionMethods::eq(self, rhs)
            }
        }

        #max_length

        #(#operators)*
    }
}

/// `GROUP BY g` determines column `c` of the same table when `g` is the
/// table's single-column primary key (PostgreSQL's functional dependency).
fn grouping(names: &[&Ident], single_key: Option<&Ident>) -> Vec<TokenStream> {
    let d = diesel();
    let mut impls = Vec::with_capacity(names.len() * names.len());
    for group_by in names {
        let determines = if Some(*group_by) == single_key {
            quote!(Yes)
        } else {
            quote!(No)
        };
        for column in names.iter().filter(|c| *c != group_by) {
            impls.push(quote! {
                impl #d::expression::IsContainedInGroupBy<#column> for #group_by {
                    type Output = #d::expression::is_contained_in_group_by::#determines;
                }
            });
        }
    }
    impls
}

/// The arithmetic operators diesel gives columns of `sql_type` (and of its
/// `Nullable`): all four for numbers, `+` and `-` for dates, times and
/// network addresses.
fn operators(sql_type: &TypePath) -> &'static [&'static str] {
    const NUMBERS: &[&str] = &[
        "SmallInt",
        "Int2",
        "Smallint",
        "SmallSerial",
        "Integer",
        "Int4",
        "Serial",
        "BigInt",
        "Int8",
        "Bigint",
        "BigSerial",
        "Decimal",
        "Float",
        "Float4",
        "Float8",
        "Double",
        "Numeric",
    ];
    const SHIFTABLE: &[&str] = &["Time", "Date", "Timestamp", "Timestamptz", "Cidr", "Inet"];
    let Some(name) = base_type_name(sql_type) else {
        return &[];
    };
    if NUMBERS.contains(&name.as_str()) {
        &["Add", "Sub", "Div", "Mul"]
    } else if SHIFTABLE.contains(&name.as_str()) {
        &["Add", "Sub"]
    } else {
        &[]
    }
}

/// The last segment's name of `ty`, seen through `Nullable<..>` (and
/// `Unsigned<..>`, which diesel counts as numeric).
fn base_type_name(ty: &TypePath) -> Option<String> {
    let last = ty.path.segments.last()?;
    let wrapped = match &last.arguments {
        syn::PathArguments::AngleBracketed(args)
            if matches!(last.ident.to_string().as_str(), "Nullable" | "Unsigned")
                && args.args.len() == 1 =>
        {
            match args.args.first() {
                Some(syn::GenericArgument::Type(syn::Type::Path(inner))) => Some(inner),
                _ => None,
            }
        }
        _ => None,
    };
    match wrapped {
        Some(inner) => inner.path.segments.last().map(|s| s.ident.to_string()),
        None => Some(last.ident.to_string()),
    }
}
