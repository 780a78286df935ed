//! Loaders: objects assembled from the rows of one explicit query (GINO's
//! `gino.loader`), so that related rows come in one round trip, never N+1.
//!
//! diesel already loads what GINO's simpler loaders do: a tuple select
//! loads tuples (several models, a model with an aggregate), a select of
//! one column loads values, and the nullable side of an outer join loads as
//! `Option<Model>`, `None` when the join matched nothing (GINO's
//! `none_as_none`). diesel reads a part `None` as soon as one column of a
//! field that is not an `Option` is NULL, where GINO's `none_as_none` asks
//! for every column NULL: a row there with such a NULL (a model over a
//! table whose column allows NULL) counts as no row. Declare such a field
//! `Option`. Many-to-one is just that: `(Child, Option<Parent>)`;
//! nested, the parent with its own parent, is [`One::with`].
//! What is left is the other direction: parents made distinct by their
//! key, each collecting its children, to any depth; that is this module,
//! run with [`Executor::load`](crate::Executor::load).
//!
//! ```
//! use gino::loader::{child, distinct};
//! use gino::prelude::*;
//!
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "companies")]
//! pub struct Company { #[gino(primary_key)] pub id: i32, pub name: String }
//!
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "teams")]
//! pub struct Team {
//!     #[gino(primary_key)] pub id: i32,
//!     #[gino(references = Company)] pub company_id: i32,
//!     pub name: String,
//! }
//!
//! #[derive(Model, Debug, Clone)]
//! #[gino(table = "members")]
//! pub struct Member {
//!     #[gino(primary_key)] pub id: i32,
//!     #[gino(references = Team)] pub team_id: i32,
//!     pub name: String,
//! }
//!
//! // A key to a model joins its table both ways; a join over three
//! // tables still needs diesel's word for the pair without a key.
//! diesel::allow_tables_to_appear_in_same_query!(companies, members);
//!
//! # async fn demo() -> gino::Result<()> {
//! # Company::create_table().await?;
//! # Team::create_table().await?;
//! # Member::create_table().await?;
//! # let acme = Company::create().name("acme").await?;
//! # let red = Team::create().company_id(acme.id).name("red").await?;
//! # Team::create().company_id(acme.id).name("blue").await?;
//! # Member::create().team_id(red.id).name("ann").await?;
//! # Member::create().team_id(red.id).name("bob").await?;
//! // company → teams → members, in one query
//! let companies: Vec<(Company, Vec<(Team, Vec<Member>)>)> = companies::table
//!     .left_join(teams::table.left_join(members::table))
//!     .order_by((companies::id, teams::id, members::id))
//!     .select((
//!         Company::as_select(),
//!         (teams::all_columns.nullable(), members::all_columns.nullable()),
//!     ))
//!     .gino()
//!     .load(distinct::<Company, _>(distinct::<Team, _>(child::<Member>())))
//!     .await?;
//! let (acme, teams) = &companies[0];
//! assert_eq!((acme.name.as_str(), teams.len()), ("acme", 2));
//! assert_eq!(teams[0].1.len(), 2); // red's members; blue has none
//! # Ok(()) }
//! # gino_testkit::doc::run(demo);
//! ```

// Layer: above `model`; uses `model` (keys) and adds `Executor::load` to `executor`.

use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;

use diesel::query_builder::AsQuery;
use diesel_async::AsyncPgConnection;
use diesel_async::methods::LoadQuery;

use crate::cursor::{Command, Cursor};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::model::{Keyed, Model};

/// Turns a query's rows into what the application wants.
pub trait Loader: Send {
    /// One row of the query, as diesel loads it.
    type Row: Send + 'static;
    /// One assembled result.
    type Output: Send + 'static;

    /// Whether each row makes exactly one output, as gino's [`PerRow`]
    /// loaders do (a loader of one's own says so by setting it):
    /// [`one`](Load::one) and [`one_or_none`](Load::one_or_none) then ask
    /// the server for two rows at most, as the executor's own do, rather
    /// than reading every row to count the results.
    const ONE_PER_ROW: bool = false;

    /// Assembles rows, in their order. A loader can be used again, e.g. on
    /// every batch a [`Cursor`] reads
    /// (`loader.load(cursor.many(1000).await?)`); a [`distinct`] loader then
    /// sees one batch at a time, so order the query by the parent's key and
    /// expect a parent cut by a batch boundary to come twice.
    fn load(&mut self, rows: Vec<Self::Row>) -> Vec<Self::Output>;
}

/// The part of a joined row below a parent; `Row` holds `Option`s for the
/// outer join's columns. A tuple of children (up to eight) collects each
/// from its part of the row: a parent with several relations (GINO's
/// `Company.distinct(Company.id).load(add_team=..., add_user=...)`).
pub trait Children: Send {
    /// The child part of one row.
    type Row: Send + 'static;
    /// What one parent's rows assemble into: a `Vec` of children, the
    /// parent's one related model ([`one`]), or a tuple of those.
    type Collected: Send + 'static;

    /// Assembles the child parts of one parent's rows, in their order,
    /// leaving out rows where the join matched nothing.
    fn collect(&self, rows: Vec<Self::Row>) -> Self::Collected;
}

/// How rows of one type are told apart: by [`PrimaryKey`] ([`distinct`],
/// [`child`]), or by a function of the row (`Fn(&T) -> key`:
/// [`distinct_by`], [`child_by`]).
pub trait RowKey<T>: Send {
    /// What two rows of the same parent, or two copies of one child, have
    /// in common.
    type Key: Eq + Hash;

    /// The key of `row`.
    fn key_of(&self, row: &T) -> Self::Key;
}

/// Rows told apart by their primary key: what [`distinct`] and [`child`]
/// use.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrimaryKey;

impl<T: Keyed> RowKey<T> for PrimaryKey {
    type Key = T::Key;

    fn key_of(&self, row: &T) -> T::Key {
        row.key()
    }
}

impl<T, K: Eq + Hash, F: Fn(&T) -> K + Send> RowKey<T> for F {
    type Key = K;

    fn key_of(&self, row: &T) -> K {
        self(row)
    }
}

/// Leaf children of type `C`, distinct by key; see [`child`] and
/// [`child_by`].
pub struct Child<C, D = PrimaryKey>(D, PhantomData<fn() -> C>);

/// Children that are models of type `C` (the last level of a [`distinct`]).
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "members")]
/// # pub struct Member { #[gino(primary_key)] pub id: i32, pub name: String }
/// # fn main() {
/// use gino::loader::{Children, child};
/// let ann = Member { id: 1, name: "ann".into() };
/// // An outer join's child parts: one twice, and a row that matched nothing.
/// let members = child::<Member>().collect(vec![Some(ann.clone()), Some(ann), None]);
/// assert_eq!(members.len(), 1);
/// # }
/// ```
pub fn child<C: Keyed>() -> Child<C> {
    Child(PrimaryKey, PhantomData)
}

/// [`child`] with children told apart by `key` instead of a primary key:
/// for a model without one (rows of an association table, of a view), or
/// a child that is not a model. A child whose key came before is left out.
///
/// ```
/// use gino::loader::{Loader, child_by, distinct_by};
/// // Tags of posts, from rows (post, tag) where a second join repeated some.
/// let rows = vec![
///     (1, Some("rust".to_owned())),
///     (1, Some("rust".to_owned())),
///     (1, Some("sql".to_owned())),
///     (2, None),
/// ];
/// let posts = distinct_by(|post: &i32| *post, child_by(|tag: &String| tag.clone())).load(rows);
/// assert_eq!(posts, [(1, vec!["rust".to_owned(), "sql".to_owned()]), (2, vec![])]);
/// ```
pub fn child_by<C, T, F>(key: F) -> Child<C, F>
where
    C: Send + 'static,
    T: Eq + Hash,
    F: Fn(&C) -> T + Send,
{
    Child(key, PhantomData)
}

impl<C: Send + 'static, D: RowKey<C>> Children for Child<C, D> {
    type Row = Option<C>;
    type Collected = Vec<C>;

    fn collect(&self, rows: Vec<Option<C>>) -> Vec<C> {
        let mut seen = HashSet::new();
        rows.into_iter()
            .flatten()
            .filter(|c| seen.insert(self.0.key_of(c)))
            .collect()
    }
}

/// The one related model of a parent; see [`one`].
pub struct One<C>(PhantomData<fn() -> C>);

/// The parent's one related model, `None` when the join matched nothing
/// (GINO's `load(company=Company)` beside collections): in a tuple of
/// children, a many-to-one next to one-to-many relations of the same
/// parent.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone, PartialEq)]
/// # #[gino(table = "companies")]
/// # pub struct Company { #[gino(primary_key)] pub id: i32 }
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "teams")]
/// # pub struct Team { #[gino(primary_key)] pub id: i32 }
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "members")]
/// # pub struct Member { #[gino(primary_key)] pub id: i32 }
/// # fn main() {
/// use gino::loader::{Loader, child, distinct, one};
/// let (red, acme) = (Team { id: 1 }, Company { id: 7 });
/// // Each team with its company and its members.
/// let rows = vec![
///     (red.clone(), (Some(acme.clone()), Some(Member { id: 10 }))),
///     (red, (Some(acme.clone()), Some(Member { id: 11 }))),
/// ];
/// let teams = distinct::<Team, _>((one::<Company>(), child::<Member>())).load(rows);
/// let (_, (company, members)) = &teams[0];
/// assert_eq!((company.as_ref(), members.len()), (Some(&acme), 2));
/// # }
/// ```
pub fn one<C: Send + 'static>() -> One<C> {
    One(PhantomData)
}

impl<C: Send + 'static> Children for One<C> {
    type Row = Option<C>;
    type Collected = Option<C>;

    fn collect(&self, rows: Vec<Option<C>>) -> Option<C> {
        rows.into_iter().flatten().next()
    }
}

impl<C: Keyed> One<C> {
    /// The related model with relations of its own, to any depth (GINO's
    /// `User.load(team=Team.load(company=Company))`): each row's part is
    /// `(Option<C>, children's part)`, and a parent gets `Some((model,
    /// its children))`, or `None` when the join matched nothing. Should
    /// the join give a parent more than one related model (a relation that
    /// is not many-to-one), the first is kept with its own children.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone, PartialEq)]
    /// # #[gino(table = "companies")]
    /// # pub struct Company { #[gino(primary_key)] pub id: i32 }
    /// # #[derive(Model, Debug, Clone, PartialEq)]
    /// # #[gino(table = "teams")]
    /// # pub struct Team { #[gino(primary_key)] pub id: i32 }
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32 }
    /// # fn main() {
    /// use gino::loader::{Loader, distinct, one};
    /// let (red, acme) = (Team { id: 1 }, Company { id: 7 });
    /// // Each user with its team, and the team with its company.
    /// let rows = vec![
    ///     (User { id: 10 }, (Some(red.clone()), Some(acme.clone()))),
    ///     (User { id: 11 }, (None, None)), // in no team
    /// ];
    /// let users = distinct::<User, _>(one::<Team>().with(one::<Company>())).load(rows);
    /// assert_eq!(users[0].1, Some((red.clone(), Some(acme.clone()))));
    /// assert_eq!(users[1].1, None);
    /// // Two teams for one user: the first, with its own company only.
    /// let rows = vec![
    ///     (User { id: 12 }, (Some(red.clone()), None)),
    ///     (User { id: 12 }, (Some(Team { id: 2 }), Some(acme))),
    /// ];
    /// let users = distinct::<User, _>(one::<Team>().with(one::<Company>())).load(rows);
    /// assert_eq!(users[0].1, Some((red, None)));
    /// # }
    /// ```
    pub fn with<K: Children>(self, children: K) -> OneWith<C, K> {
        OneWith(distinct(children))
    }
}

/// The one related model of a parent, with its own children; see
/// [`One::with`].
pub struct OneWith<C, K>(Distinct<C, K>);

impl<C: Keyed, K: Children> Children for OneWith<C, K> {
    type Row = (Option<C>, K::Row);
    type Collected = Option<(C, K::Collected)>;

    fn collect(&self, rows: Vec<Self::Row>) -> Self::Collected {
        self.0.collect(rows).into_iter().next()
    }
}

macro_rules! children_tuples {
    ($($name:ident $rows:ident $index:tt)+) => {
        impl<$($name: Children),+> Children for ($($name,)+) {
            type Row = ($($name::Row,)+);
            type Collected = ($($name::Collected,)+);

            fn collect(&self, rows: Vec<Self::Row>) -> Self::Collected {
                $(let mut $rows = Vec::with_capacity(rows.len());)+
                for row in rows {
                    $($rows.push(row.$index);)+
                }
                ($(self.$index.collect($rows),)+)
            }
        }
    };
}

children_tuples!(A a 0 B b 1);
children_tuples!(A a 0 B b 1 C c 2);
children_tuples!(A a 0 B b 1 C c 2 D d 3);
children_tuples!(A a 0 B b 1 C c 2 D d 3 E e 4);
children_tuples!(A a 0 B b 1 C c 2 D d 3 E e 4 F f 5);
children_tuples!(A a 0 B b 1 C c 2 D d 3 E e 4 F f 5 G g 6);
children_tuples!(A a 0 B b 1 C c 2 D d 3 E e 4 F f 5 G g 6 H h 7);

/// Parents of type `P`, distinct by key, each with its children; see
/// [`distinct`] (by primary key) and [`distinct_by`] (by a key of your
/// own).
pub struct Distinct<P, K, D = PrimaryKey>(K, D, PhantomData<fn() -> P>);

/// GINO's `distinct` + `add_child`: rows `(P, children)` become one `(P,
/// Vec<child>)` per distinct `P`, in order of first appearance (with a
/// tuple of children, `(P, (Vec<a>, Vec<b>))`: see [`Children`]). Nest it
/// (`distinct::<Company, _>(distinct::<Team, _>(child::<Member>()))`) for
/// deeper trees; at inner levels the parent comes from an outer join, so
/// its part of the row is `Option<P>`.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "teams")]
/// # pub struct Team { #[gino(primary_key)] pub id: i32 }
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "members")]
/// # pub struct Member { #[gino(primary_key)] pub id: i32 }
/// # fn main() {
/// use gino::loader::{Loader, child, distinct};
/// let (red, blue) = (Team { id: 1 }, Team { id: 2 });
/// let rows = vec![
///     (red.clone(), Some(Member { id: 10 })),
///     (blue, None), // the outer join matched no member
///     (red, Some(Member { id: 11 })),
/// ];
/// let teams = distinct::<Team, _>(child::<Member>()).load(rows);
/// assert_eq!((teams[0].1.len(), teams[1].1.len()), (2, 0));
/// # }
/// ```
pub fn distinct<P: Keyed, K: Children>(children: K) -> Distinct<P, K> {
    Distinct(children, PrimaryKey, PhantomData)
}

/// GINO's `distinct(*columns)` by columns of your choice: [`distinct`]
/// with parents told apart by `key` instead of their primary key. For a
/// model without a primary key, a parent that is not a model (a tuple, a
/// struct of some columns), or parents that are one by other columns than
/// their key (rows of a view, say). Rows with equal keys become one
/// parent, the first of them.
///
/// At an inner level the parent's part of the row is `Option<P>`, `None`
/// meaning the outer join matched nothing. Key such a parent by columns
/// of which one is never NULL (add its primary key to the tuple): a
/// matched parent read from nullable columns that are all NULL is
/// `None` too, and is taken for no match.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "members")]
/// # pub struct Member { #[gino(primary_key)] pub id: i32 }
/// # fn main() {
/// use gino::loader::{Loader, child, distinct_by};
/// // Members by team name, the parent being a plain `String`.
/// let rows = vec![
///     ("red".to_owned(), Some(Member { id: 10 })),
///     ("blue".to_owned(), None),
///     ("red".to_owned(), Some(Member { id: 11 })),
/// ];
/// let teams = distinct_by(|name: &String| name.clone(), child::<Member>()).load(rows);
/// assert_eq!(teams.iter().map(|(name, m)| (name.as_str(), m.len())).collect::<Vec<_>>(),
///            [("red", 2), ("blue", 0)]);
/// # }
/// ```
pub fn distinct_by<P, T, F, K>(key: F, children: K) -> Distinct<P, K, F>
where
    P: Send + 'static,
    T: Eq + Hash,
    F: Fn(&P) -> T + Send,
    K: Children,
{
    Distinct(children, key, PhantomData)
}

impl<P, K: Children, D: RowKey<P>> Distinct<P, K, D> {
    fn group(&self, rows: impl Iterator<Item = (P, K::Row)>) -> Vec<(P, K::Collected)> {
        let mut order: Vec<(P, Vec<K::Row>)> = Vec::new();
        let mut index: HashMap<D::Key, usize> = HashMap::new();
        for (parent, row) in rows {
            let at = *index.entry(self.1.key_of(&parent)).or_insert_with(|| {
                order.push((parent, Vec::new()));
                order.len() - 1
            });
            order[at].1.push(row);
        }
        order
            .into_iter()
            .map(|(parent, rows)| {
                let children = self.0.collect(rows);
                (parent, children)
            })
            .collect()
    }
}

impl<P: Send + 'static, K: Children, D: RowKey<P>> Loader for Distinct<P, K, D> {
    type Row = (P, K::Row);
    type Output = (P, K::Collected);

    fn load(&mut self, rows: Vec<Self::Row>) -> Vec<Self::Output> {
        self.group(rows.into_iter())
    }
}

impl<P: Send + 'static, K: Children, D: RowKey<P>> Children for Distinct<P, K, D> {
    type Row = (Option<P>, K::Row);
    type Collected = Vec<(P, K::Collected)>;

    fn collect(&self, rows: Vec<Self::Row>) -> Self::Collected {
        self.group(rows.into_iter().filter_map(|(p, row)| Some((p?, row))))
    }
}

/// A loader that is a function of each row (GINO's callable loader).
pub struct Map<F, R>(F, PhantomData<fn(R)>);

/// Applies `f` to every row.
///
/// ```
/// let shout = gino::loader::map(|name: String| name.to_uppercase());
/// # let _ = shout;
/// ```
pub fn map<R, O, F>(f: F) -> Map<F, R>
where
    F: FnMut(R) -> O + Send,
{
    Map(f, PhantomData)
}

impl<R, O, F> Loader for Map<F, R>
where
    R: Send + 'static,
    O: Send + 'static,
    F: FnMut(R) -> O + Send,
{
    type Row = R;
    type Output = O;
    const ONE_PER_ROW: bool = true;

    fn load(&mut self, rows: Vec<R>) -> Vec<O> {
        rows.into_iter().map(|row| self.load_row(row)).collect()
    }
}

/// Models with only some columns loaded; see [`partial`].
pub struct Partial<M> {
    columns: Vec<&'static str>,
    model: PhantomData<fn() -> M>,
}

/// GINO's `User.load('id', 'name')`: each row's model keeps the values of
/// `columns` (a tuple of diesel columns of the model's table), and every
/// other field is left at its type's `Default` (a field of a type without
/// one keeps what was loaded). JSON properties stay with their JSON column
/// (`people::profile`); left out, each takes its declared default. A
/// primary key left out is left at its `Default` (`0`) as well: keep the
/// key's columns to update or delete such a model by its key.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "users")]
/// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String, pub secret: String }
/// # async fn demo() -> gino::Result<()> {
/// # User::create_table().await?;
/// # User::create().nickname("fantix").secret("s3cret").await?;
/// let users: Vec<User> = User::query()
///     .gino()
///     .load(gino::loader::partial::<User, _>((users::id, users::nickname)))
///     .await?;
/// assert_eq!((users[0].nickname.as_str(), users[0].secret.as_str()), ("fantix", ""));
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub fn partial<M: Model, C: ColumnList<M::Table>>(columns: C) -> Partial<M> {
    let _ = columns;
    Partial {
        columns: C::names(),
        model: PhantomData,
    }
}

impl<M: Model> Loader for Partial<M> {
    type Row = M;
    type Output = M;
    const ONE_PER_ROW: bool = true;

    fn load(&mut self, rows: Vec<M>) -> Vec<M> {
        rows.into_iter().map(|row| self.load_row(row)).collect()
    }
}

/// A loader that makes one output of each row, in order (every loader but
/// [`distinct`], which merges rows): what a tuple of loaders is made of.
/// A tuple of them (up to eight) loads each part of a tuple row with its
/// own loader, as GINO's tuple loader (`(ua1.load("id"), ua2.load("name"))`).
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone, PartialEq)]
/// # #[gino(table = "users")]
/// # pub struct User { #[gino(primary_key)] pub id: i32, pub name: String }
/// # fn main() {
/// use gino::loader::{Loader, map, partial};
/// let ann = User { id: 1, name: "ann".into() };
/// let mut loader = (partial::<User, _>((users::id,)), map(|n: i64| n * 10));
/// let rows = loader.load(vec![(ann, 4)]);
/// assert_eq!(rows, [(User { id: 1, name: String::new() }, 40)]);
/// # }
/// ```
pub trait PerRow: Loader {
    /// The output of one row: what [`load`](Loader::load) makes of each.
    fn load_row(&mut self, row: Self::Row) -> Self::Output;
}

impl<M: Model> PerRow for Partial<M> {
    fn load_row(&mut self, mut row: M) -> M {
        row.keep_only(&self.columns);
        row
    }
}

impl<R, O, F> PerRow for Map<F, R>
where
    R: Send + 'static,
    O: Send + 'static,
    F: FnMut(R) -> O + Send,
{
    fn load_row(&mut self, row: R) -> O {
        (self.0)(row)
    }
}

macro_rules! loader_tuples {
    ($($name:ident $index:tt)+) => {
        impl<$($name: PerRow),+> Loader for ($($name,)+) {
            type Row = ($($name::Row,)+);
            type Output = ($($name::Output,)+);
            const ONE_PER_ROW: bool = true;

            fn load(&mut self, rows: Vec<Self::Row>) -> Vec<Self::Output> {
                rows.into_iter().map(|row| self.load_row(row)).collect()
            }
        }

        impl<$($name: PerRow),+> PerRow for ($($name,)+) {
            fn load_row(&mut self, row: Self::Row) -> Self::Output {
                ($(self.$index.load_row(row.$index),)+)
            }
        }
    };
}

loader_tuples!(A 0 B 1);
loader_tuples!(A 0 B 1 C 2);
loader_tuples!(A 0 B 1 C 2 D 3);
loader_tuples!(A 0 B 1 C 2 D 3 E 4);
loader_tuples!(A 0 B 1 C 2 D 3 E 4 F 5);
loader_tuples!(A 0 B 1 C 2 D 3 E 4 F 5 G 6);
loader_tuples!(A 0 B 1 C 2 D 3 E 4 F 5 G 6 H 7);

/// A tuple of diesel columns of table `T` (`(users::id,)` for one), by
/// name: a column of another table is a compile error, as GINO refuses
/// one (`User.load(Team.id)`).
///
/// ```compile_fail
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "users")]
/// # pub struct User { #[gino(primary_key)] pub id: i32, pub name: String }
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "teams")]
/// # pub struct Team { #[gino(primary_key)] pub id: i32, pub name: String }
/// let loader = gino::loader::partial::<User, _>((teams::name,)); // error: not a column of users
/// ```
pub trait ColumnList<T> {
    /// The columns' names in the database.
    fn names() -> Vec<&'static str>;
}

macro_rules! column_tuples {
    ($($name:ident)+) => {
        impl<T, $($name: diesel::Column<Table = T>),+> ColumnList<T> for ($($name,)+) {
            fn names() -> Vec<&'static str> {
                vec![$($name::NAME),+]
            }
        }
    };
}

column_tuples!(A);
column_tuples!(A B);
column_tuples!(A B C);
column_tuples!(A B C D);
column_tuples!(A B C D E);
column_tuples!(A B C D E F);
column_tuples!(A B C D E F G);
column_tuples!(A B C D E F G H);

/// A loader giving `value` for every row (GINO's literal value loader),
/// e.g. to mark where rows came from.
///
/// ```
/// let marked = gino::loader::value::<(i32,), _>("cache");
/// # let _ = marked;
/// ```
pub fn value<R, V>(value: V) -> Map<impl FnMut(R) -> V + Send, R>
where
    V: Clone + Send + 'static,
    R: Send + 'static,
{
    map(move |_: R| value.clone())
}

/// The other way to load a relationship (SQLAlchemy's "select in"): the
/// children of `parents` in one more query, `WHERE <fk> = ANY(<keys>)`,
/// paired with their parents. A join repeats every parent's columns on
/// each child's row; this sends each row once, and one query per level
/// however deep the tree. GINO has only the join; choose per relationship.
///
/// `key` gives a parent's key, `child_key` the child's reference to it;
/// `query` makes the children's query from the keys (the filter stays
/// visible SQL, and `.bind(...)` picks where it runs). Parents keep their
/// order, children the query's; a parent listed twice has its children at
/// its first place only, and keys pair as [`group`] pairs them.
///
/// `eq_any` on a column of a scalar type sends every key as one array
/// parameter (`= ANY($1)`), however many parents. A query that binds
/// each key on its own (composite keys as `OR`ed pairs, keys of an array
/// type) binds a parameter per key, of which PostgreSQL takes 65,535:
/// call `select_in` on batches of parents there.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "users")]
/// # pub struct User { #[gino(primary_key)] pub id: i32, pub name: String }
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "posts")]
/// # pub struct Post { #[gino(primary_key)] pub id: i32, pub user_id: i32, pub title: String }
/// # async fn demo() -> gino::Result<()> {
/// # User::create_table().await?;
/// # Post::create_table().await?;
/// # let ann = User::create().name("ann").await?;
/// # User::create().name("bob").await?;
/// # Post::create().user_id(ann.id).title("hello").await?;
/// use gino::loader::select_in;
///
/// let users: Vec<User> = User::query().order_by(users::id).gino().all().await?;
/// let users: Vec<(User, Vec<Post>)> = select_in(
///     users,
///     |u: &User| u.id,
///     |p: &Post| p.user_id,
///     |ids| Post::query().filter(posts::user_id.eq_any(ids)).order_by(posts::id).gino(),
/// )
/// .await?;
/// assert_eq!((users[0].1.len(), users[1].1.len()), (1, 0)); // ann's post; bob has none
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub async fn select_in<'q, P, C, K, Q>(
    parents: Vec<P>,
    key: impl Fn(&P) -> K,
    child_key: impl Fn(&C) -> K,
    query: impl FnOnce(Vec<K>) -> Executor<'q, Q>,
) -> Result<Vec<(P, Vec<C>)>>
where
    K: std::hash::Hash + Eq + Clone,
    Q: crate::Loadable<'q, C>,
    C: Send + 'static,
{
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let keys = distinct_keys(&parents, &key);
    let children: Vec<C> = query(keys).all().await?;
    Ok(group(parents, key, children, child_key))
}

/// Each parent's key, once, in the parents' order.
fn distinct_keys<P, K: Hash + Eq + Clone>(parents: &[P], key: &impl Fn(&P) -> K) -> Vec<K> {
    let mut seen = HashSet::with_capacity(parents.len());
    parents
        .iter()
        .map(key)
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// Pairs `parents` with their `children` in memory: what [`select_in`]
/// does after its query, for trees loaded one level at a time (load every
/// level's rows, then group from the leaves up). Parents keep their order,
/// children theirs; a child without its parent is left out. A parent
/// listed twice (one key) gets its children at its first place, and its
/// copies get none: the children are not cloned (diesel's `grouped_by`
/// gives them to one place too, the last). Pass distinct parents to have
/// no such copies.
///
/// Keys pair as Rust values compare: with `Option` keys (a nullable
/// column on both sides), a child keyed `None` goes to the first parent
/// keyed `None`, where SQL's NULL would match nothing. Leave parents and
/// children without a key out first when that is not what you mean.
///
/// ```
/// use gino::loader::group;
/// let posts = vec![(1, "hello"), (2, "again")];
/// let comments = vec![(10, 2, "nice"), (11, 1, "first"), (12, 2, "+1")];
/// let tree = group(posts, |p| p.0, comments, |c| c.1);
/// assert_eq!(tree[1].1.iter().map(|c| c.2).collect::<Vec<_>>(), ["nice", "+1"]);
///
/// let twice = group(vec![1, 2, 1], |p| *p, vec![(10, 1)], |c| c.1);
/// assert_eq!((twice[0].1.len(), twice[2].1.len()), (1, 0));
/// ```
pub fn group<P, C, K>(
    parents: Vec<P>,
    key: impl Fn(&P) -> K,
    children: Vec<C>,
    child_key: impl Fn(&C) -> K,
) -> Vec<(P, Vec<C>)>
where
    K: std::hash::Hash + Eq,
{
    let mut first_place: HashMap<K, usize> = HashMap::with_capacity(parents.len());
    for (i, parent) in parents.iter().enumerate() {
        first_place.entry(key(parent)).or_insert(i);
    }
    let mut grouped: Vec<Vec<C>> = parents.iter().map(|_| Vec::new()).collect();
    for child in children {
        // A parent listed twice gets its children once, at its first place.
        if let Some(&at) = first_place.get(&child_key(&child)) {
            grouped[at].push(child);
        }
    }
    parents.into_iter().zip(grouped).collect()
}

impl<'a, Q> Executor<'a, Q> {
    /// The rows, assembled by `loader` (see [`loader`](crate::loader)):
    /// parents distinct by key with their children, or any function of the
    /// rows. Awaited, every row (GINO's `.gino.load(loader).all()`); see
    /// [`Load`] for the first row only, or exactly one result.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let doubled: Vec<i32> = diesel::select(sql::<Integer>("generate_series(1, 3)"))
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n * 2))
    ///     .await?;
    /// assert_eq!(doubled, [2, 4, 6]);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn load<'q, L>(self, loader: L) -> Load<'a, 'q, Q, L>
    where
        L: Loader,
        Q: crate::Loadable<'q, L::Row>,
    {
        Load {
            executor: self,
            loader,
            rows: PhantomData,
        }
    }
}

/// A query whose rows a [`Loader`] assembles; made by
/// [`Executor::load`]. Awaiting it loads every row, as
/// [`all`](Self::all) does.
#[must_use = "a load does nothing until it is awaited"]
pub struct Load<'a, 'q, Q, L> {
    executor: Executor<'a, Q>,
    loader: L,
    /// The lifetime of the query's binds, which awaiting needs to name.
    rows: PhantomData<&'q ()>,
}

impl<'q, Q, L> Load<'_, 'q, Q, L>
where
    L: Loader,
    Q: crate::Loadable<'q, L::Row>,
{
    /// Every row, assembled: the same as awaiting the load.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let n = 3;
    /// let q = gino::text("SELECT generate_series(1, :n) AS n").bind::<Integer, _>("n", &n);
    /// let squares: Vec<i32> = q
    ///     .columns::<Integer>()
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n * n))
    ///     .all()
    ///     .await?;
    /// assert_eq!(squares, [1, 4, 9]);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn all(mut self) -> Result<Vec<L::Output>> {
        let rows = self.executor.all::<L::Row>().await?;
        Ok(self.loader.load(rows))
    }

    /// The first row only, assembled; `None` when there is none (GINO's
    /// `.gino.load(loader).first()`). The server is asked for that row
    /// only, so a [`distinct`] parent comes with the children of its first
    /// row: order by the parent's key and use [`all`](Self::all) for whole
    /// parents.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let first = diesel::select(sql::<Integer>("generate_series(5, 9)"))
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n * 2))
    ///     .first()
    ///     .await?;
    /// assert_eq!(first, Some(10));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn first(mut self) -> Result<Option<L::Output>> {
        let row = self.executor.first::<L::Row>().await?;
        Ok(row.and_then(|row| self.loader.load(vec![row]).into_iter().next()))
    }

    /// The first row, assembled, or [`Error::NotFound`] when there is none
    /// (which the web extensions answer with 404): GINO's
    /// `.gino.load(loader).first_or_404()`.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let missing = diesel::select(sql::<Integer>("1 WHERE false"))
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n))
    ///     .first_or_404()
    ///     .await;
    /// assert!(matches!(missing, Err(gino::Error::NotFound)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn first_or_404(self) -> Result<L::Output> {
        self.first().await?.ok_or(Error::NotFound)
    }

    /// The one result the rows assemble into, `None` when they are none,
    /// and [`Error::MultipleResultsFound`] when they assemble into more
    /// (GINO's `.gino.load(loader).one_or_none()`): a [`distinct`] parent
    /// of many rows is one result. A loader that merges rows reads every
    /// row to tell, as GINO does; one that makes an output of each row
    /// ([`Loader::ONE_PER_ROW`]) asks the server for two rows only, as
    /// [`Executor::one_or_none`] does, so that a query matching millions
    /// by mistake is not loaded to find out.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let none = diesel::select(sql::<Integer>("1 WHERE false"))
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n + 1))
    ///     .one_or_none()
    ///     .await?;
    /// assert_eq!(none, None);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn one_or_none(mut self) -> Result<Option<L::Output>> {
        if L::ONE_PER_ROW {
            let row = self.executor.one_or_none::<L::Row>().await?;
            return Ok(row.and_then(|row| self.loader.load(vec![row]).pop()));
        }
        let mut outputs = self.all().await?;
        if outputs.len() > 1 {
            return Err(Error::MultipleResultsFound);
        }
        Ok(outputs.pop())
    }

    /// The one result the rows assemble into: as
    /// [`one_or_none`](Self::one_or_none), with none an
    /// [`Error::NoResultFound`] (GINO's `.gino.load(loader).one()`).
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let more = diesel::select(sql::<Integer>("generate_series(1, 2)"))
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n))
    ///     .one()
    ///     .await;
    /// assert!(matches!(more, Err(gino::Error::MultipleResultsFound)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn one(self) -> Result<L::Output> {
        self.one_or_none().await?.ok_or(Error::NoResultFound)
    }
}

impl<'q, Q, L> Load<'_, 'q, Q, L>
where
    L: PerRow,
    Q: crate::Loadable<'q, L::Row>,
    Q::Query: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
{
    /// The rows through a server-side cursor (inside a transaction), each
    /// assembled as it is read (GINO's `.gino.load(loader).iterate()`); for
    /// loaders that make one output of each row ([`PerRow`]: a
    /// [`distinct`] parent could be cut by a batch).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let tx = db.begin().await?;
    /// let mut rows = diesel::select(sql::<Integer>("generate_series(1, 5)"))
    ///     .gino()
    ///     .load(gino::loader::map(|n: i32| n * 10))
    ///     .iterate()
    ///     .await?;
    /// assert_eq!(rows.next().await?, Some(10));
    /// assert_eq!(rows.many(10).await?, [20, 30, 40, 50]);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn iterate(self) -> Result<LoadCursor<L, <Q as AsQuery>::SqlType>> {
        let cursor = self.executor.iterate::<L::Row>().await?;
        Ok(LoadCursor {
            cursor,
            loader: self.loader,
        })
    }
}

/// A [`Cursor`] whose rows a [`PerRow`] loader assembles; made by
/// [`Load::iterate`].
pub struct LoadCursor<L: Loader, ST> {
    cursor: Cursor<L::Row, ST>,
    loader: L,
}

impl<L, ST> LoadCursor<L, ST>
where
    L: PerRow,
    ST: Send + 'static,
    Command<ST>: LoadQuery<'static, AsyncPgConnection, L::Row>,
{
    /// The next row, assembled; `None` at the end. See [`Cursor::next`].
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let tx = db.begin().await?;
    /// let query = diesel::select(sql::<Integer>("generate_series(1, 2)"));
    /// let mut rows = query.gino().load(gino::loader::map(|n: i32| -n)).iterate().await?;
    /// assert_eq!(rows.next().await?, Some(-1));
    /// assert_eq!(rows.next().await?, Some(-2));
    /// assert_eq!(rows.next().await?, None);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn next(&mut self) -> Result<Option<L::Output>> {
        let row = self.cursor.next().await?;
        Ok(row.map(|row| self.loader.load_row(row)))
    }

    /// Up to `n` next rows, assembled (fewer at the end). See
    /// [`Cursor::many`].
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let tx = db.begin().await?;
    /// let query = diesel::select(sql::<Integer>("generate_series(1, 3)"));
    /// let mut rows = query.gino().load(gino::loader::map(|n: i32| n + 1)).iterate().await?;
    /// assert_eq!(rows.many(5).await?, [2, 3, 4]);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn many(&mut self, n: usize) -> Result<Vec<L::Output>> {
        let rows = self.cursor.many(n).await?;
        Ok(self.loader.load(rows))
    }

    /// Skips `n` rows without reading them. See [`Cursor::forward`].
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let tx = db.begin().await?;
    /// let query = diesel::select(sql::<Integer>("generate_series(1, 9)"));
    /// let mut rows = query.gino().load(gino::loader::map(|n: i32| n)).iterate().await?;
    /// rows.forward(7).await?;
    /// assert_eq!(rows.next().await?, Some(8));
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn forward(&mut self, n: usize) -> Result<()> {
        self.cursor.forward(n).await
    }
}

impl<'a, 'q: 'a, Q, L> IntoFuture for Load<'a, 'q, Q, L>
where
    Q: crate::Loadable<'q, L::Row>,
    L: Loader + 'a,
{
    type Output = Result<Vec<L::Output>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.all())
    }
}
