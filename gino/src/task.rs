//! Which task is running: the tokio task, or the thread for code driven by
//! `block_on` outside any task. Per-task state that no scope carries (the
//! reuse context of a plain task, read-your-writes after a write) is keyed
//! by it.
//!
//! Uses: nothing.

/// The running tokio task, or the thread outside one. Task ids are never
/// reused while the runtime lives, so a key left behind by an ended task
/// is never mistaken for a later task's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TaskKey {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl TaskKey {
    pub(crate) fn current() -> Self {
        match tokio::task::try_id() {
            Some(id) => TaskKey::Task(id),
            None => TaskKey::Thread(std::thread::current().id()),
        }
    }
}
