//! Where a query runs: [`Bind`] names a database, engine or connection,
//! and resolves to a connection's root (the given one, or the task's
//! contextual connection of the engine) or to the engine itself.
//!
//! Uses: `api` (a database's bound engine), `transaction`, `connection`,
//! `context`, `root`, `engine`, `statement`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{Gino, default_engine};
use crate::connection::Connection;
use crate::context::Stack;
use crate::engine::Engine;
use crate::error::Result;
use crate::root::Root;
use crate::statement::Statement;
use crate::transaction::Transaction;

/// Where a query runs; see [`Executor::bind`](crate::Executor::bind).
///
/// Implicit execution looks for, in order: the connection given with
/// `.bind(...)`; the current task's contextual connection of the engine
/// (a managed transaction, a connection acquired as reusable, a web
/// request's connection); the engine itself. Contextual connections of
/// other engines belong to other databases and are never picked up.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Bind<'a> {
    /// The default `Gino`'s engine (or its contextual connection).
    Default,
    /// This `Gino`'s engine (or its contextual connection).
    Db(&'a Gino),
    /// This engine's contextual connection, else a pooled connection of it.
    Engine(&'a Engine),
    /// Exactly this connection.
    Connection(&'a Connection),
}

impl fmt::Debug for Bind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bind::Default => "Bind::Default",
            Bind::Db(_) => "Bind::Db",
            Bind::Engine(_) => "Bind::Engine",
            Bind::Connection(_) => "Bind::Connection",
        })
    }
}

impl<'a> From<&'a Engine> for Bind<'a> {
    fn from(engine: &'a Engine) -> Self {
        Bind::Engine(engine)
    }
}

impl<'a> From<&'a Connection> for Bind<'a> {
    fn from(conn: &'a Connection) -> Self {
        Bind::Connection(conn)
    }
}

impl<'a> From<&'a Gino> for Bind<'a> {
    fn from(db: &'a Gino) -> Self {
        Bind::Db(db)
    }
}

impl<'a> From<&'a Transaction> for Bind<'a> {
    fn from(tx: &'a Transaction) -> Self {
        Bind::Connection(tx.connection())
    }
}

pub(crate) enum Target {
    Root(Arc<Root>),
    Engine(Engine),
}

impl Target {
    /// The engine's contextual connection in this task, else the engine.
    fn of(engine: Engine) -> Target {
        match Stack::find(engine.id()) {
            Some(root) => Target::Root(root),
            None => Target::Engine(engine),
        }
    }
}

/// What a [`Bind`] names once a database is resolved to its engine.
pub(crate) enum Resolved<'a> {
    Connection(&'a Connection),
    Engine(Engine),
}

impl<'a> Bind<'a> {
    /// The connection, or the engine (a `Gino`'s bound one); an unbound
    /// `Gino` is [`Error::Uninitialized`](crate::Error::Uninitialized).
    pub(crate) fn resolve(self) -> Result<Resolved<'a>> {
        Ok(match self {
            Bind::Connection(conn) => Resolved::Connection(conn),
            Bind::Engine(engine) => Resolved::Engine(engine.clone()),
            Bind::Db(db) => Resolved::Engine(db.engine()?),
            Bind::Default => Resolved::Engine(default_engine()?),
        })
    }

    /// The root or engine the query runs on.
    pub(crate) fn target(self) -> Result<Target> {
        Ok(match self.resolve()? {
            Resolved::Connection(conn) => {
                conn.check_usable()?;
                Target::Root(conn.root.clone())
            }
            Resolved::Engine(engine) => Target::of(engine),
        })
    }

    pub(crate) async fn run<R, S: Statement<R>>(
        self,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        match self.target()? {
            Target::Root(root) => root.run(timeout, statement).await,
            Target::Engine(engine) => engine.run_once(timeout, statement).await,
        }
    }
}
