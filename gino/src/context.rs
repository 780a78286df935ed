//! The reuse context: which connections a task has acquired as reusable.
//!
//! GINO keeps this stack in a context variable, so it belongs to one task.
//! gino keeps it in two places: inside a scope that gino opens (a managed
//! transaction, a web request) it lives in a tokio task-local, so concurrent
//! futures of one task (`join!`) each see only their own scopes; outside any
//! scope it lives in a process-wide table keyed by the tokio task (or by the
//! thread, for code driven by `block_on`), so a plain
//! `let conn = engine.acquire().await?` is seen by later calls in the same
//! task without a closure. Spawned tasks start with an empty context either
//! way, and so does a web request's scope (whichever task made its future,
//! it sees none of that task's connections); an entry disappears when its
//! connection is released or dropped.
//! Futures joined in one task share its unscoped context, as coroutines of
//! one asyncio task share GINO's; [`Stack::isolated`] (the public
//! `gino::own_context`) gives one future a context of its own.
//!
//! A scope opened for a managed transaction's block records the level it
//! is the block of, so that a statement finding the connection through a
//! scope says which level it runs in ([`Access`]).
//!
//! Uses: `root` (what an entry holds), `task` (whose stack it is), `sync`.

use std::any::Any;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::root::{Access, Root};
use crate::scoped::{Scoped, scoped_local};
use crate::sync::lock;
use crate::task::TaskKey;

scoped_local! {
    static SCOPE: Scope;
}

/// The innermost scope of a task: the connection it was opened with, and
/// its own stack, made when something needs it (a reusable connection
/// acquired in the scope, or a scope opened inside it). Most scopes (a web
/// request, a managed transaction) never need one, and then cost no
/// allocation and their lookups no lock.
pub(crate) struct Scope {
    /// `None` for a scope of its own ([`Stack::isolated`]).
    base: Option<Base>,
    parent: Option<Arc<Stack>>,
    stack: OnceCell<Arc<Stack>>,
    opener: Option<Opener>,
}

/// The connection a scope was opened with.
#[derive(Clone)]
struct Base {
    engine_id: u64,
    root: Arc<Root>,
    /// The managed transaction level the scope is the block of, if any.
    level: Option<u64>,
    /// A connection's own scope ([`Stack::scope`]) outside any block on
    /// it: its statements meet the blocks open there as the connection's
    /// own blocks do ([`Access::Beside`]), waiting out one of their task
    /// (a future joined beside them) and nesting in another task's, where
    /// waiting could never end (a block awaiting the task the scope runs
    /// in).
    beside: bool,
}

impl Base {
    /// The base as what an implicit statement of `engine_id` runs on, if
    /// it is a live connection of that engine; or the connection of a
    /// transaction's block, even released (its owner dropped it while the
    /// block ran), so that the block's statement fails on it rather than
    /// run on some other connection outside the transaction.
    fn found(&self, engine_id: u64) -> Option<Found> {
        let in_block = self.level.is_some() && self.engine_id == engine_id;
        let level = self.level.and_then(std::num::NonZeroU64::new);
        (in_block || live(engine_id, (self.engine_id, &self.root))).then(|| Found {
            root: self.root.clone(),
            access: if self.beside {
                Access::Beside(level)
            } else {
                Access::Contextual(level)
            },
        })
    }
}

/// A contextual connection, and how a statement on it came there.
pub(crate) struct Found {
    pub(crate) root: Arc<Root>,
    pub(crate) access: Access,
}

/// What opened a scope, for the layer that opened it to find again
/// ([`Stack::opener`]): a web request's connection, so that its handler
/// finds it through the one task-local that its implicit queries use.
pub(crate) type Opener = Arc<dyn Any + Send + Sync>;

impl Scope {
    /// `fut` in a scope of `base` (none for a scope of its own) inside
    /// `parent`'s context, opened by `opener`; its stack is made later, if
    /// ever.
    fn enter<F: std::future::Future>(
        base: Option<Base>,
        parent: Option<Arc<Stack>>,
        opener: Option<Opener>,
        fut: F,
    ) -> ReuseScope<F> {
        let scope = Scope {
            base,
            parent,
            stack: OnceCell::new(),
            opener,
        };
        SCOPE.scope(scope, fut)
    }

    fn stack(&self) -> &Arc<Stack> {
        self.stack.get_or_init(|| {
            Arc::new(Stack {
                parent: self.parent.clone(),
                owner: None,
                base: self.base.clone(),
                opener: self.opener.clone(),
                entries: Mutex::new(Vec::new()),
            })
        })
    }
}

/// `F` in a scope of [`Stack::scope`].
pub(crate) type ReuseScope<F> = Scoped<Scope, F>;

/// Whether `root` is a live connection of the engine `engine_id`.
fn live(engine_id: u64, (id, root): (u64, &Arc<Root>)) -> bool {
    id == engine_id && !root.is_released()
}

/// How many unscoped stacks exist, so that lookups skip the table's lock
/// while there are none (the common case of scoped web requests and plain
/// engine queries).
static UNSCOPED_STACKS: AtomicUsize = AtomicUsize::new(0);

fn unscoped() -> &'static Mutex<HashMap<TaskKey, Arc<Stack>>> {
    static TABLE: OnceLock<Mutex<HashMap<TaskKey, Arc<Stack>>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

struct Entry {
    id: u64,
    engine_id: u64,
    root: Arc<Root>,
}

/// One level of reusable connections; a scope's stack sees its parent's.
pub(crate) struct Stack {
    parent: Option<Arc<Stack>>,
    owner: Option<TaskKey>,
    /// The connection a scope was opened with: below every entry, and
    /// outside the lock (it never leaves before the scope).
    base: Option<Base>,
    // Read by the web request layer only.
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    opener: Option<Opener>,
    entries: Mutex<Vec<Entry>>,
}

/// Proof that a connection sits on a stack; removing it is the connection's
/// job when it is released or dropped.
pub(crate) struct Registration {
    stack: Arc<Stack>,
    id: u64,
}

impl Stack {
    /// The stack of this task outside any scope, if it has one.
    fn unscoped() -> Option<Arc<Stack>> {
        if UNSCOPED_STACKS.load(Ordering::Acquire) == 0 {
            return None;
        }
        lock(unscoped()).get(&TaskKey::current()).cloned()
    }

    /// Puts a reusable connection on this task's context: its scope's
    /// stack, or outside any scope the task's own.
    pub(crate) fn register(engine_id: u64, root: Arc<Root>) -> Registration {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            id,
            engine_id,
            root,
        };
        if let Ok(stack) = SCOPE.try_with(|scope| scope.stack().clone()) {
            lock(&stack.entries).push(entry);
            return Registration { stack, id };
        }
        let owner = TaskKey::current();
        // Pushed under the table's lock: the last registration of the
        // task's stack, dropped meanwhile on another thread, forgets the
        // stack only if it finds it empty under that lock, so the entry
        // never lands on a stack no longer on record.
        let mut table = lock(unscoped());
        let stack = table
            .entry(owner)
            .or_insert_with(|| {
                UNSCOPED_STACKS.fetch_add(1, Ordering::AcqRel);
                Arc::new(Stack {
                    parent: None,
                    owner: Some(owner),
                    base: None,
                    opener: None,
                    entries: Mutex::new(Vec::new()),
                })
            })
            .clone();
        lock(&stack.entries).push(entry);
        drop(table);
        Registration { stack, id }
    }

    /// The newest live reusable connection of the engine `engine_id`.
    pub(crate) fn find(engine_id: u64) -> Option<Arc<Root>> {
        Stack::find_access(engine_id).map(|found| found.root)
    }

    /// [`find`](Self::find), with how a statement on it comes there.
    pub(crate) fn find_access(engine_id: u64) -> Option<Found> {
        let scoped = SCOPE.try_with(|scope| match scope.stack.get() {
            Some(stack) => Err(Some(stack.clone())),
            None => scope
                .base
                .as_ref()
                .and_then(|base| base.found(engine_id))
                .ok_or_else(|| scope.parent.clone()),
        });
        let mut level = match scoped {
            Ok(Ok(found)) => return Some(found),
            Ok(Err(level)) => level,
            Err(_) => Stack::unscoped(),
        };
        while let Some(stack) = level {
            let found = lock(&stack.entries)
                .iter()
                .rev()
                .find(|e| live(engine_id, (e.engine_id, &e.root)))
                .map(|e| Found {
                    root: e.root.clone(),
                    access: Access::Contextual(None),
                })
                .or_else(|| stack.base.as_ref()?.found(engine_id));
            if found.is_some() {
                return found;
            }
            level = stack.parent.clone();
        }
        None
    }

    /// `fut` in a new scope whose context is the current one (where this
    /// is called) plus `root`, made reusable for the scope. Not an `async
    /// fn`: one would hold `fut` twice (as its argument and inside the
    /// scope), and request futures are kilobytes.
    pub(crate) fn scope<F: std::future::Future>(
        engine_id: u64,
        root: Arc<Root>,
        fut: F,
    ) -> ReuseScope<F> {
        let base = Base {
            engine_id,
            root,
            level: None,
            beside: false,
        };
        Stack::open(base, fut)
    }

    /// [`scope`](Self::scope) for the block of the managed transaction
    /// level `level` on `root`.
    pub(crate) fn transaction_scope<F: std::future::Future>(
        engine_id: u64,
        root: Arc<Root>,
        level: u64,
        fut: F,
    ) -> ReuseScope<F> {
        Stack::open(
            Base {
                engine_id,
                root,
                level: Some(level),
                beside: false,
            },
            fut,
        )
    }

    /// A web request's scope: `fut` with `root` made reusable, opened by
    /// `opener`. It sees no connection of the code that made it, as a
    /// spawned task would not: a request future may be made in one task
    /// and run in another, and the context it would take at its making is
    /// the first's.
    #[cfg(feature = "web")]
    pub(crate) fn request_scope<F: std::future::Future>(
        engine_id: u64,
        root: Arc<Root>,
        opener: Opener,
        fut: F,
    ) -> ReuseScope<F> {
        let base = Base {
            engine_id,
            root,
            level: None,
            beside: false,
        };
        Scope::enter(Some(base), None, Some(opener), fut)
    }

    fn open<F: std::future::Future>(mut base: Base, fut: F) -> ReuseScope<F> {
        let parent = match SCOPE.try_with(|scope| scope.stack().clone()) {
            Ok(stack) => Some(stack),
            Err(_) => Stack::unscoped(),
        };
        if base.level.is_none() {
            // A scope of a connection inside a transaction's block on that
            // same connection is part of the block: its statements must not
            // wait for the block to end.
            base.level = parent.as_deref().and_then(|p| p.level_of(&base.root));
            base.beside = base.level.is_none();
        }
        Scope::enter(Some(base), parent, None, fut)
    }

    /// `fut` with a context of its own, empty to begin with: it sees none
    /// of the connections around it, as a spawned task would not, and the
    /// connections it acquires are seen by no one else.
    pub(crate) fn isolated<F: std::future::Future>(fut: F) -> ReuseScope<F> {
        Scope::enter(None, None, None, fut)
    }

    /// The managed level of the innermost scope, from this one outwards,
    /// opened with `root`.
    fn level_of(&self, root: &Arc<Root>) -> Option<u64> {
        let mut stack = Some(self);
        while let Some(s) = stack {
            if let Some(base) = s.base.as_ref().filter(|b| Arc::ptr_eq(&b.root, root)) {
                return base.level;
            }
            stack = s.parent.as_deref();
        }
        None
    }

    /// The innermost opener of type `T` of the scopes around the caller.
    #[cfg(feature = "web")]
    pub(crate) fn opener<T: Any + Send + Sync>() -> Option<Arc<T>> {
        let downcast = |opener: &Option<Opener>| {
            opener
                .as_ref()
                .and_then(|o| Arc::downcast::<T>(o.clone()).ok())
        };
        SCOPE
            .try_with(|scope| {
                if let Some(found) = downcast(&scope.opener) {
                    return Some(found);
                }
                let mut level = scope.parent.clone();
                while let Some(stack) = level {
                    if let Some(found) = downcast(&stack.opener) {
                        return Some(found);
                    }
                    level = stack.parent.clone();
                }
                None
            })
            .ok()
            .flatten()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = lock(&self.stack.entries);
        entries.retain(|e| e.id != self.id);
        let now_empty = entries.is_empty();
        drop(entries);
        if let (true, Some(owner)) = (now_empty, self.stack.owner) {
            let mut table = lock(unscoped());
            // Only forget the stack if it is still the one on record and
            // nothing was pushed on it meanwhile.
            if table
                .get(&owner)
                .is_some_and(|s| Arc::ptr_eq(s, &self.stack) && lock(&s.entries).is_empty())
            {
                table.remove(&owner);
                UNSCOPED_STACKS.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}
