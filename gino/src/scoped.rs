//! Values that the code of a future sees while the future is polled: what
//! tokio's `task_local!` gives, kept by reference.
//!
//! A scope's value stays in its future ([`Scoped`]); each poll points a
//! thread-local at it for the duration of the poll and restores what was
//! there before. tokio's task-locals move the value into a thread-local
//! and back out on every poll instead, through a `RefCell` and a lazily
//! registered thread-local: on every poll of every web request, which
//! polls its handler inside a scope (the request's connection), that cost
//! more than the request's lookup of its connection.
//!
//! Uses: nothing of gino's.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// Declares a [`Key`]: `scoped_local! { static NAME: Type; }`.
macro_rules! scoped_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty;) => {
        $(#[$attr])*
        $vis static $name: $crate::scoped::Key<$ty> = {
            ::std::thread_local! {
                static CURRENT: ::std::cell::Cell<*const ()> =
                    const { ::std::cell::Cell::new(::std::ptr::null()) };
            }
            $crate::scoped::Key::new(&CURRENT)
        };
    };
}
pub(crate) use scoped_local;

/// A value that futures run in scope of ([`Key::scope`]) and that the code
/// they run reads ([`Key::try_with`]).
pub(crate) struct Key<T: 'static> {
    /// The value of the innermost scope being polled on this thread.
    current: &'static LocalKey<Cell<*const ()>>,
    _value: PhantomData<fn() -> T>,
}

/// The code asking is not running in a scope of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotInScope;

impl<T: 'static> Key<T> {
    pub(crate) const fn new(current: &'static LocalKey<Cell<*const ()>>) -> Self {
        Key {
            current,
            _value: PhantomData,
        }
    }

    /// `fut` with `value` as this key's value while it is polled (and
    /// dropped).
    pub(crate) fn scope<F: Future>(&'static self, value: T, fut: F) -> Scoped<T, F> {
        Scoped {
            key: self,
            value,
            fut: Some(fut),
        }
    }

    /// `f` run with `value` as this key's value: [`scope`](Self::scope)
    /// for code that is not a future (a poll of something else).
    #[cfg(feature = "web")]
    pub(crate) fn sync_scope<R>(&'static self, value: &T, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter(value);
        f()
    }

    /// `f` of the value of the innermost scope the caller runs in.
    pub(crate) fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, NotInScope> {
        let current = self.current.with(Cell::get);
        if current.is_null() {
            return Err(NotInScope);
        }
        // SAFETY: a non-null pointer is set only by `Entered`, for as long
        // as it lives, to the value of a `Scoped` that is pinned and being
        // polled or dropped on this thread further up the stack: the value
        // can be neither moved, dropped nor mutably borrowed before the
        // pointer is restored. `T` is this key's type: `scoped_local!` makes
        // a thread-local per key.
        Ok(f(unsafe { &*current.cast::<T>() }))
    }

    /// Points this key at `value` until the returned guard is dropped.
    fn enter(&'static self, value: &T) -> Entered<T> {
        let previous = self
            .current
            .with(|current| current.replace(std::ptr::from_ref(value).cast()));
        Entered {
            key: self,
            previous,
        }
    }
}

/// Restores the value a key had before [`Key::enter`], also on a panic.
struct Entered<T: 'static> {
    key: &'static Key<T>,
    previous: *const (),
}

impl<T: 'static> Drop for Entered<T> {
    fn drop(&mut self) {
        self.key.current.with(|current| current.set(self.previous));
    }
}

pin_project_lite::pin_project! {
    /// A future run in scope of a value: [`Key::scope`].
    pub(crate) struct Scoped<T: 'static, F> {
        key: &'static Key<T>,
        value: T,
        // Dropped in the scope when done, as tokio's task-locals do: what
        // it drops may look for the value.
        #[pin]
        fut: Option<F>,
    }

    impl<T: 'static, F> PinnedDrop for Scoped<T, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.fut.is_some() {
                let _entered = this.key.enter(this.value);
                let mut fut = this.fut;
                fut.set(None);
            }
        }
    }
}

impl<T: 'static, F: Future> Future for Scoped<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.key.enter(this.value);
        let mut fut = this.fut;
        let inner = fut
            .as_mut()
            .as_pin_mut()
            .expect("a scoped future polled after it completed");
        let output = inner.poll(cx);
        if output.is_ready() {
            fut.set(None);
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    scoped_local! {
        static NAME: String;
    }

    fn name() -> Option<String> {
        NAME.try_with(String::clone).ok()
    }

    /// Reads the key when dropped.
    struct SeesOnDrop(std::sync::Arc<std::sync::Mutex<Option<String>>>);

    impl Drop for SeesOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = name();
        }
    }

    #[tokio::test]
    async fn the_code_of_a_scope_sees_its_value_and_only_it() {
        assert_eq!(name(), None);
        let outer = NAME.scope("outer".to_owned(), async {
            let before = name();
            tokio::task::yield_now().await;
            let inner = NAME
                .scope("inner".to_owned(), async {
                    tokio::task::yield_now().await;
                    name()
                })
                .await;
            (before, inner, name())
        });
        let sibling = NAME.scope("sibling".to_owned(), async {
            tokio::task::yield_now().await;
            name()
        });
        let ((before, inner, after), sibling) = tokio::join!(outer, sibling);
        assert_eq!(before.as_deref(), Some("outer"));
        assert_eq!(inner.as_deref(), Some("inner"));
        assert_eq!(after.as_deref(), Some("outer"));
        assert_eq!(sibling.as_deref(), Some("sibling"));
        assert_eq!(name(), None);
    }

    #[tokio::test]
    async fn a_scoped_future_is_dropped_in_its_scope() {
        let seen = std::sync::Arc::default();
        let guard = SeesOnDrop(std::sync::Arc::clone(&seen));
        let scoped = NAME.scope("dropped".to_owned(), async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let mut scoped = Box::pin(scoped);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(scoped.as_mut().poll(&mut cx).is_pending());
        drop(scoped);
        assert_eq!(seen.lock().unwrap().as_deref(), Some("dropped"));
        assert_eq!(name(), None);
    }

    #[tokio::test]
    async fn a_panic_in_a_scope_leaves_no_value_behind() {
        let panicked = std::panic::AssertUnwindSafe(NAME.scope("panics".to_owned(), async {
            panic!("in the scope");
        }));
        let caught = futures_util::FutureExt::catch_unwind(panicked).await;
        assert!(caught.is_err());
        assert_eq!(name(), None);
    }
}
