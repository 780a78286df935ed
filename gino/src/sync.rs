//! Locking the crate's `std` mutexes: state guarded by them stays valid
//! when a holder panics (each update is one assignment or one collection
//! call), so a poisoned lock is taken as it is.
//!
//! Uses: nothing.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
