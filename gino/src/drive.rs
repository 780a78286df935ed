//! Driving a connection in the task that waits for its replies.
//!
//! tokio-postgres splits a connection in two: the client, which queues
//! requests, and the connection future, which writes them to the socket
//! and hands the replies back. Run as a task of its own, that future costs
//! every round trip two hand-offs between tasks (the request to the
//! connection's task, the reply back), each a wake-up, often of the other
//! worker thread: a transaction of four statements pays it four times. So
//! while a statement of gino's runs, its own future polls the connection
//! ([`Driving`]), and the socket wakes the task that waits for the reply.
//! Between statements, whatever the connection waits on (its socket, its
//! queue of requests) wakes the connection's own task
//! ([`Driver::spawn`]), which drives it then: the start-up, what an idle
//! connection hears (a server's goodbye), and the close once gino has let
//! go of it ([`Driver::hand_back`]). An idle connection hears nothing
//! as a rule, so that task sleeps while statements come and go.
//!
//! The price: a task that awaits statements on several connections at
//! once (`join!`, `join_all`) does the reading and writing of all of them
//! itself, on one thread, where tasks of their own would spread it over
//! the runtime's threads (measured in `bench/ANALYSIS.md`). Handing such
//! statements to their connections' own tasks once seen measured slower
//! still, or no faster: the note of what a task awaits, kept per thread,
//! loses a task that moves between threads, one kept for the whole
//! process gained nothing over driving, and one kept per task (by its
//! waker, decided at a statement's first poll) measured slower, the own
//! task's path costing more than diesel-async's connection task.
//!
//! Uses: nothing of gino's.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::task::{ArcWake, AtomicWaker, waker_ref};

/// A connection's future, polled by its own task between statements and
/// by the statement running on it otherwise.
pub(crate) struct Driver {
    /// `None` once the connection has ended.
    connection: Mutex<Option<BoxFuture<'static, ()>>>,
    /// The waker the connection is polled with by statements, and where
    /// its wakes go.
    relay: Arc<Relay>,
}

/// The waker of a driving statement's polls. The statement and the
/// connection wake each other as a request goes out and a reply comes in,
/// within one poll of the task: those wakes only mark that the other side
/// has something (so the poll goes on), since a task woken while it runs
/// is queued again, and tokio wakes another worker thread to take it.
/// Wakes from outside the poll (the socket, a reply read elsewhere) go to
/// the task, and mark that the next poll has something to do; once no
/// statement drives the connection, to the connection's own task.
#[derive(Debug, Default)]
struct Relay {
    /// Statements driving the connection now; its own task leaves it to
    /// them meanwhile.
    driving: AtomicUsize,
    /// The connection's own task.
    idle: AtomicWaker,
    /// Inside a driving statement's poll.
    polling: AtomicBool,
    /// Woken during that poll.
    woken: AtomicBool,
    /// Woken since the last poll. A task polls all of its futures when any
    /// of them is woken (`join!`, `select!`, a small `join_all`): a
    /// statement that nothing woke skips polling its connection then, so
    /// eight statements in one task cost one connection's poll per reply,
    /// not eight.
    pending: AtomicBool,
    /// The task of the statement driving the connection.
    task: AtomicWaker,
    /// Woken while no statement drove the connection, by something
    /// nobody may have read yet (the socket, the queue of requests); set
    /// at first, when the start-up is still to be read, and cleared by
    /// every poll of the connection. Only while it is set does a
    /// checkout's [`Driver::catch_up`] poll the connection.
    stirred: AtomicBool,
}

impl Relay {
    /// Hands a wake to the connection's own task, and marks the
    /// connection as having something to read.
    fn wake_idle(&self) {
        self.stirred.store(true, Ordering::SeqCst);
        self.idle.wake();
    }
}

impl ArcWake for Relay {
    fn wake_by_ref(relay: &Arc<Self>) {
        if relay.driving.load(Ordering::SeqCst) == 0 {
            // What the connection registered while a statement drove it
            // (its socket, its queue of requests) now calls its own task:
            // a statement left to it, the connection's goodbye.
            relay.wake_idle();
            return;
        }
        // Marks first, then looks: a wake from another thread that sees a
        // poll under way leaves the task to that poll, whose end (which
        // clears `polling`, then looks at the marks) is sure to see them.
        relay.woken.store(true, Ordering::SeqCst);
        relay.pending.store(true, Ordering::SeqCst);
        if relay.driving.load(Ordering::SeqCst) == 0 {
            // The statement stopped driving since the look above, perhaps
            // before the mark: whichever of the two takes the mark back
            // hands the wake to the connection's own task.
            if relay.pending.swap(false, Ordering::SeqCst) {
                relay.wake_idle();
            }
            return;
        }
        if !relay.polling.load(Ordering::SeqCst) {
            relay.task.wake();
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("driving", &self.relay.driving)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Makes the driver of `connection` and hands its own task to `spawn`.
    pub(crate) fn spawn(
        connection: impl Future<Output = ()> + Send + 'static,
        spawn: impl FnOnce(BoxFuture<'static, ()>),
    ) -> Arc<Driver> {
        let driver = Arc::new(Driver {
            connection: Mutex::new(Some(Box::pin(connection))),
            relay: Arc::new(Relay {
                stirred: AtomicBool::new(true),
                ..Relay::default()
            }),
        });
        let own = OwnTask(driver.clone());
        spawn(Box::pin(std::future::poll_fn(move |cx| own.poll(cx))));
        driver
    }

    /// Hands the connection to its own task, to close it: gino has let
    /// go of it. Waking that task from every statement's end instead would
    /// cost a wake-up of another thread per statement, and from every
    /// return to the pool one per borrow.
    pub(crate) fn hand_back(&self) {
        self.put_away();
        self.relay.wake_idle();
    }

    /// The connection goes back to the pool, where its own task reads
    /// what arrives (the relay wakes it once no statement drives), and
    /// the pool's checkout catches up on it for a server that left.
    pub(crate) fn put_away(&self) {
        // The last statement's task is no one to wake any more.
        drop(self.relay.task.take());
    }

    /// Reads what has arrived on the connection since its last statement
    /// (a server's goodbye, say) without waiting: between statements
    /// nobody else does while gino holds it. Nothing at all (not even a
    /// poll) when nothing has woken the connection since.
    pub(crate) fn catch_up(&self) {
        if self.relay.stirred.load(Ordering::SeqCst) {
            let _ = self.poll_connection();
        }
    }

    /// Polls the connection, always with the relay's waker, so that
    /// whatever it waits on wakes whoever drives it when that happens.
    /// `None` when someone else is polling it right now; `Some(true)` once
    /// it has ended.
    fn poll_connection(&self) -> Option<bool> {
        let waker = waker_ref(&self.relay);
        let mut cx = Context::from_waker(&waker);
        let mut slot = match self.connection.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // This poll reads whatever stirred the connection. Cleared first
        // (and as a store that later reads cannot pass), so that what
        // arrives during the poll marks it again.
        self.relay.stirred.store(false, Ordering::SeqCst);
        let Some(connection) = slot.as_mut() else {
            return Some(true);
        };
        if connection.as_mut().poll(&mut cx).is_ready() {
            *slot = None;
            return Some(true);
        }
        Some(false)
    }
}

/// The connection's own task.
struct OwnTask(Arc<Driver>);

impl OwnTask {
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let driver = &self.0;
        driver.relay.idle.register(cx.waker());
        if driver.relay.driving.load(Ordering::Acquire) > 0 {
            return Poll::Pending;
        }
        // Busy means a statement is polling it: what that statement leaves
        // waiting wakes this task through the relay once it stops.
        match driver.poll_connection() {
            Some(true) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

impl Drop for OwnTask {
    fn drop(&mut self) {
        // Dropped unfinished, its runtime shutting down: the connection
        // goes too (and says so to whoever watches it), as it would have
        // inside a task of its own.
        let connection = self
            .0
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(connection);
    }
}

/// A statement's future on a driven connection, polled together with the
/// connection until it is done.
struct Driving<'d, F> {
    driver: &'d Driver,
    fut: F,
    /// This future has taken the connection over from its own task.
    driving: bool,
}

/// Runs `fut`, a future of the driver's connection (a statement, a wait
/// for its end), driving the connection meanwhile.
pub(crate) async fn drive<F: Future>(driver: &Driver, fut: F) -> F::Output {
    Driving {
        driver,
        fut: std::pin::pin!(fut),
        driving: false,
    }
    .await
}

impl<F> Driving<'_, F> {
    /// Ends this statement's hold on the connection: the next statement
    /// takes over, or the connection's own task.
    fn stop(&mut self) {
        if std::mem::take(&mut self.driving) {
            let relay = &self.driver.relay;
            relay.driving.fetch_sub(1, Ordering::SeqCst);
            // A wake this statement will never see (it came after its last
            // poll, or it is dropped unfinished) is the connection's to
            // handle: later ones go to its own task anyway.
            if relay.pending.swap(false, Ordering::SeqCst) {
                relay.wake_idle();
            }
        }
    }
}

impl<F: Future + Unpin> Future for Driving<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        /// Rounds of connection and statement in one poll: a request
        /// written, a reply read, the statement's next request (a prepare,
        /// then its run) at most.
        const ROUNDS: usize = 4;
        let this = &mut *self;
        let relay = &this.driver.relay;
        relay.task.register(cx.waker());
        // The first poll polls the statement before the connection: the
        // connection has nothing to write until the statement has queued
        // its request, and it is polled next in any case (which takes over
        // whatever its own task has left to read). Later polls were woken
        // by the socket, as a rule: the connection goes first.
        let first = !this.driving;
        if first {
            this.driving = true;
            relay.driving.fetch_add(1, Ordering::SeqCst);
        } else if !relay.pending.swap(false, Ordering::SeqCst) {
            // Neither the socket nor the statement has anything new:
            // everything this future waits on wakes the relay.
            return Poll::Pending;
        }
        relay.polling.store(true, Ordering::SeqCst);
        let waker = waker_ref(relay);
        let mut relayed = Context::from_waker(&waker);
        let mut busy = false;
        let mut output = Poll::Pending;
        let mut queued = false;
        for round in 0..ROUNDS {
            relay.woken.store(false, Ordering::SeqCst);
            let connection_polled = round > 0 || !first;
            let mut answered = false;
            if connection_polled {
                // It writes what the statement queued and reads what has
                // come, registering for the socket.
                busy |= this.driver.poll_connection().is_none();
                answered = relay.woken.swap(false, Ordering::SeqCst);
            }
            output = Pin::new(&mut this.fut).poll(&mut relayed);
            queued = relay.woken.load(Ordering::SeqCst);
            if answered {
                // The round's wakes, all of them, for what follows.
                relay.woken.store(true, Ordering::SeqCst);
            }
            if output.is_ready() || (connection_polled && !answered && !queued) {
                break;
            }
        }
        if output.is_ready() && queued {
            // The statement ended with a request still queued (a pipelined
            // sibling's, after the other failed; a prepared statement's
            // `Close`, dropped with it): it goes out now, as the
            // connection's own task would send it, not in front of
            // whatever statement comes next. Its replies wake that task.
            busy |= this.driver.poll_connection().is_none();
        }
        relay.polling.store(false, Ordering::SeqCst);
        // What woke the relay during this poll was seen by it; if the
        // connection's own task was polling it just now, what it had not
        // seen yet is that task's to read once this statement stops.
        relay
            .pending
            .store(output.is_ready() && busy, Ordering::SeqCst);
        if output.is_ready() {
            this.stop();
        } else if busy || relay.woken.swap(false, Ordering::SeqCst) {
            // The connection's own task was polling it this instant (it
            // had not seen this statement yet), the rounds ran out, or a
            // wake from another thread came as this poll ended: poll again
            // at once rather than wait for that task.
            relay.pending.store(true, Ordering::SeqCst);
            cx.waker().wake_by_ref();
        }
        output
    }
}

impl<F> Drop for Driving<'_, F> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::{mpsc, oneshot};

    type Client = mpsc::UnboundedSender<(u32, oneshot::Sender<u32>)>;
    type Answer = Result<u32, oneshot::error::RecvError>;

    /// A stand-in for tokio-postgres's connection future: answers each
    /// request (a number) with its double, counting its polls, and ends
    /// when the client goes.
    fn connection(polls: Arc<AtomicUsize>) -> (Client, impl Future<Output = ()> + Send + 'static) {
        let (client, mut requests) = mpsc::unbounded_channel::<(u32, oneshot::Sender<u32>)>();
        let future = std::future::poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            loop {
                match requests.poll_recv(cx) {
                    Poll::Ready(Some((n, reply))) => drop(reply.send(n * 2)),
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        (client, future)
    }

    /// Counts the wakes of the connection's own task.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(wakes: &Arc<Self>) {
            wakes.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Where the connection's own task is kept to be polled by hand.
    type OwnSlot = Mutex<Option<BoxFuture<'static, ()>>>;

    /// A stand-in connection with its driver, whose own task is not run
    /// but polled by hand.
    struct Fixture {
        /// `None` once hung up, which ends the connection.
        client: Option<Client>,
        polls: Arc<AtomicUsize>,
        driver: Arc<Driver>,
        own: Arc<OwnSlot>,
        /// The wakes of the own task.
        wakes: Arc<Wakes>,
    }

    impl Fixture {
        fn parked() -> Fixture {
            let polls = Arc::new(AtomicUsize::new(0));
            let (client, connection) = connection(polls.clone());
            let own = Arc::new(Mutex::new(None));
            let keep = own.clone();
            let driver = Driver::spawn(connection, move |task| {
                *keep.lock().unwrap() = Some(task);
            });
            Fixture {
                client: Some(client),
                polls,
                driver,
                own,
                wakes: Arc::default(),
            }
        }

        /// Past its start-up: the own task has polled the connection once.
        fn started() -> Fixture {
            let fixture = Fixture::parked();
            assert!(fixture.poll_own().is_pending(), "the start-up");
            fixture
        }

        fn poll_own(&self) -> Poll<()> {
            let waker = waker_ref(&self.wakes);
            let mut cx = Context::from_waker(&waker);
            let mut own = self.own.lock().unwrap();
            own.as_mut().unwrap().as_mut().poll(&mut cx)
        }

        /// A statement on this connection that waits for a reply sent
        /// through the returned sender, polled once as the returned task.
        fn waiting_statement(
            &self,
        ) -> (
            oneshot::Sender<u32>,
            Pin<Box<impl Future<Output = Answer> + '_>>,
            Arc<Wakes>,
        ) {
            let (reply, answer) = oneshot::channel();
            let mut statement = Box::pin(drive(&self.driver, answer));
            let task = Arc::new(Wakes::default());
            assert!(poll_as(&mut statement, &task).is_pending());
            (reply, statement, task)
        }

        fn client(&self) -> &Client {
            self.client.as_ref().expect("not hung up")
        }

        fn hang_up(&mut self) {
            self.client = None;
        }

        fn own_wakes(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }

        fn polls(&self) -> usize {
            self.polls.load(Ordering::SeqCst)
        }
    }

    /// Polls `fut` once as the task `task`.
    fn poll_as<F: Future + Unpin>(fut: &mut F, task: &Arc<Wakes>) -> Poll<F::Output> {
        let waker = waker_ref(task);
        Pin::new(fut).poll(&mut Context::from_waker(&waker))
    }

    async fn ask(client: &Client, n: u32) -> u32 {
        let (reply, answer) = oneshot::channel();
        client.send((n, reply)).unwrap();
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn statements_get_their_replies_without_the_connection_s_own_task() {
        let f = Fixture::started();
        for n in 1..=3 {
            assert_eq!(drive(&f.driver, ask(f.client(), n)).await, n * 2);
        }
        assert_eq!(
            f.own_wakes(),
            0,
            "the statements woke the connection's own task"
        );
        assert!(f.polls() > 1);
    }

    #[test]
    fn a_statement_nothing_woke_leaves_its_connection_alone() {
        let f = Fixture::started();
        let (reply, mut statement, task) = f.waiting_statement();
        let polled = f.polls();
        // Its task polled again for a sibling's sake (`join!`, `select!`).
        for _ in 0..5 {
            assert!(poll_as(&mut statement, &task).is_pending());
        }
        assert_eq!(f.polls(), polled, "polled for nothing");
        assert_eq!(task.0.load(Ordering::SeqCst), 0);

        // A request reaches the connection from outside the poll: the
        // task is woken and the next poll drives the connection, which
        // answers it.
        f.client().send((4, reply)).unwrap();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert_eq!(poll_as(&mut statement, &task), Poll::Ready(Ok(8)));
        assert!(f.polls() > polled);
    }

    #[test]
    fn a_statement_s_first_poll_polls_the_connection_once_its_request_is_queued() {
        let f = Fixture::started();
        let polled = f.polls();
        let mut statement = Box::pin(drive(&f.driver, ask(f.client(), 3)));
        // The statement queues its request, the connection answers it,
        // the statement reads the answer: one poll of the connection.
        assert_eq!(poll_as(&mut statement, &Arc::default()), Poll::Ready(6));
        assert_eq!(f.polls(), polled + 1);
    }

    #[test]
    fn a_request_a_finished_statement_left_queued_is_written_at_once() {
        let f = Fixture::started();
        let (reply, mut answer) = oneshot::channel();
        let client = f.client().clone();
        // A statement that queues a request and ends without waiting for
        // it (its pipelined sibling failed first).
        let mut statement = Box::pin(drive(&f.driver, async move {
            client.send((8, reply)).unwrap();
            "refused"
        }));
        let polled = f.polls();
        assert_eq!(
            poll_as(&mut statement, &Arc::default()),
            Poll::Ready("refused")
        );
        assert_eq!(f.polls(), polled + 1, "the connection took the request");
        assert_eq!(answer.try_recv(), Ok(16));
        assert_eq!(f.own_wakes(), 0);
    }

    #[test]
    fn catching_up_polls_only_a_connection_something_woke() {
        let f = Fixture::started();
        let mut statement = Box::pin(drive(&f.driver, ask(f.client(), 1)));
        assert_eq!(poll_as(&mut statement, &Arc::default()), Poll::Ready(2));
        drop(statement);
        f.driver.put_away();
        let polled = f.polls();
        f.driver.catch_up();
        assert_eq!(f.polls(), polled, "nothing arrived, nothing to read");

        // Something reaches the idle connection: its own task is woken,
        // and a checkout that comes first reads it.
        let (reply, mut answer) = oneshot::channel();
        f.client().send((5, reply)).unwrap();
        assert_eq!(f.own_wakes(), 1);
        f.driver.catch_up();
        assert_eq!(f.polls(), polled + 1);
        assert_eq!(answer.try_recv(), Ok(10));
        f.driver.catch_up();
        assert_eq!(f.polls(), polled + 1, "read already");
    }

    #[test]
    fn what_reached_an_idle_connection_stays_to_be_read_by_a_statement_that_never_polled_it() {
        let f = Fixture::started();
        let (reply, mut answer) = oneshot::channel();
        f.client().send((6, reply)).unwrap();
        assert_eq!(f.own_wakes(), 1);
        // A statement done at its first poll (a wait for something already
        // there) never polls the connection: the request is still unread.
        let mut done = Box::pin(drive(&f.driver, std::future::ready(7)));
        assert_eq!(poll_as(&mut done, &Arc::default()), Poll::Ready(7));
        drop(done);
        let polled = f.polls();
        f.driver.catch_up();
        assert_eq!(f.polls(), polled + 1, "the checkout reads it");
        assert_eq!(answer.try_recv(), Ok(12));
    }

    #[tokio::test]
    async fn statements_one_after_the_other_on_two_connections_both_drive() {
        let (one, two) = (Fixture::started(), Fixture::started());
        for n in 1..=2 {
            assert_eq!(drive(&one.driver, ask(one.client(), n)).await, n * 2);
            assert_eq!(drive(&two.driver, ask(two.client(), n)).await, n * 2);
        }
        assert_eq!(
            one.own_wakes() + two.own_wakes(),
            0,
            "an own task was woken"
        );
    }

    #[test]
    fn an_idle_connection_s_wakes_go_to_its_own_task() {
        let f = Fixture::started();
        let (reply, statement, task) = f.waiting_statement();
        drop(statement);
        f.driver.put_away();

        // The connection was last polled by the statement; a request
        // reaching it now wakes the connection's own task, not that
        // statement's.
        f.client().send((1, reply)).unwrap();
        assert_eq!(f.own_wakes(), 1);
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
        assert!(f.poll_own().is_pending());
    }

    #[test]
    fn a_wake_a_dropped_statement_never_saw_goes_to_the_own_task() {
        let f = Fixture::started();
        let (reply, statement, task) = f.waiting_statement();
        // The request reaches the connection while the statement drives
        // it: its task is woken, but drops the statement instead.
        f.client().send((2, reply)).unwrap();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert_eq!(f.own_wakes(), 0);
        drop(statement);
        assert_eq!(f.own_wakes(), 1, "nobody would answer the request");
        assert!(f.poll_own().is_pending());
    }

    #[test]
    fn a_wake_racing_a_statement_s_end_reaches_the_own_task() {
        for _ in 0..20_000 {
            let f = Fixture::started();
            let (reply, statement, _task) = f.waiting_statement();
            let client = f.client().clone();
            let go = Arc::new(std::sync::Barrier::new(2));
            let other = std::thread::spawn({
                let go = go.clone();
                move || {
                    go.wait();
                    client.send((1, reply)).unwrap();
                }
            });
            go.wait();
            drop(statement);
            other.join().unwrap();
            // Whether the request came before the statement's end or
            // after it, nobody but the own task is left to answer it.
            assert_eq!(f.own_wakes(), 1, "the request reached nobody");
        }
    }

    #[tokio::test]
    async fn a_handed_back_connection_is_closed_by_its_own_task() {
        let mut f = Fixture::started();
        assert_eq!(drive(&f.driver, ask(f.client(), 21)).await, 42);

        f.hang_up();
        f.driver.hand_back();
        assert_eq!(f.own_wakes(), 1, "handing back wakes the task");
        assert!(f.poll_own().is_ready(), "the connection ended");
        assert!(
            f.driver.connection.lock().unwrap().is_none(),
            "the connection's future is dropped"
        );
    }

    #[tokio::test]
    async fn a_cancelled_statement_leaves_the_connection_to_its_own_task() {
        let mut f = Fixture::parked();
        let (reply, answer) = oneshot::channel();
        let client = f.client().clone();
        let statement = drive(&f.driver, async move {
            client.send((5, reply)).unwrap();
            std::future::pending::<()>().await
        });
        // One poll sends the request and drives the connection, which
        // answers; then the statement is dropped, waiting on nothing.
        let mut statement = Box::pin(statement);
        assert!(poll_as(&mut statement, &Arc::default()).is_pending());
        assert!(f.poll_own().is_pending(), "left alone while driven");
        let polled = f.polls();
        drop(statement);

        assert_eq!(answer.await.unwrap(), 10);
        f.hang_up();
        assert!(
            f.poll_own().is_ready(),
            "the own task drives the connection again"
        );
        assert!(f.polls() > polled);
    }
}
