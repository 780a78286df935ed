//! What the web extensions' tests share: a database of the test's own with
//! settings for it, a `'static` Gino, and looks at the database from
//! outside (sessions, open transactions, the pool).

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::{Bool, Integer, Text};
use gino::web::Settings;
use gino_testkit::{Cluster, TestDatabase};

/// A test's own database, a `'static` [`gino::Gino`] for the extension to
/// bind, and settings that name the app in `pg_stat_activity`.
pub struct WebTest {
    pub db: &'static gino::Gino,
    pub database: TestDatabase,
    pub app_name: String,
    pub settings: Settings,
}

impl WebTest {
    /// Settings with a pool of at most 5 opened lazily, changed by `tune`.
    pub async fn new(tune: impl FnOnce(&mut Settings)) -> WebTest {
        let database = TestDatabase::create().await;
        let app_name = database.name().to_owned();
        let mut settings = Settings::default();
        settings.dsn = Some(format!(
            "{}{}application_name={app_name}",
            database.url(),
            if database.url().contains('?') {
                '&'
            } else {
                '?'
            }
        ));
        settings.pool_min_size = 0;
        settings.pool_max_size = 5;
        tune(&mut settings);
        WebTest {
            db: fresh_db(),
            database,
            app_name,
            settings,
        }
    }

    pub fn engine(&self) -> gino::Engine {
        self.db.engine().expect("bound")
    }

    /// Connections of the pool that are borrowed right now.
    pub fn borrowed(&self) -> usize {
        borrowed(&self.engine())
    }

    /// States of the app's sessions in pg_stat_activity, seen from outside.
    pub async fn session_states(&self) -> Vec<String> {
        let observer = gino::create_engine(self.database.url(), Default::default())
            .await
            .expect("observer");
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            state: String,
        }
        let rows: Vec<Row> = observer
            .all(
                gino::text(
                    "SELECT coalesce(state, '') AS state FROM pg_stat_activity \
                     WHERE application_name = :app",
                )
                .bind::<Text, _>("app", self.app_name.clone()),
            )
            .await
            .expect("pg_stat_activity");
        observer.close().await;
        rows.into_iter().map(|r| r.state).collect()
    }

    /// Waits (ten seconds at most) until `done` holds for the app's
    /// sessions.
    pub async fn wait_for_sessions(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        loop {
            let states = self.session_states().await;
            if done(&states) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no session of the app is inside a transaction.
    pub async fn assert_no_open_transaction(&self) {
        self.wait_for_sessions("sessions still in a transaction", |states| {
            !any_in_transaction(states)
        })
        .await
    }

    /// Waits until a session of the app is inside a transaction.
    pub async fn wait_for_open_transaction(&self) {
        self.wait_for_sessions("no session in a transaction", any_in_transaction)
            .await
    }

    /// Waits until the app has no session left.
    pub async fn assert_all_closed(&self) {
        self.wait_for_sessions("connections left open", <[String]>::is_empty)
            .await
    }

    /// Borrows every connection the pool may hold and checks each is
    /// outside a transaction.
    pub async fn assert_pool_clean(&self) {
        let engine = self.engine();
        let mut conns = Vec::new();
        for _ in 0..engine.pool_status().max_size {
            conns.push(engine.acquire().reusable(false).await.expect("borrow"));
        }
        for conn in &conns {
            let no_xid: bool = conn
                .one(diesel::select(sql::<Bool>(
                    "txid_current_if_assigned() IS NULL",
                )))
                .await
                .expect("probe");
            assert!(no_xid, "a pooled connection is inside a transaction");
        }
        for conn in conns {
            conn.release().await.expect("release");
        }
    }

    /// Whether the table `name` exists (committed).
    pub async fn table_exists(&self, name: &str) -> bool {
        let engine = gino::create_engine(self.database.url(), Default::default())
            .await
            .expect("observer");
        let exists = engine
            .one(diesel::select(
                sql::<Bool>("to_regclass(")
                    .bind::<Text, _>(name.to_owned())
                    .sql(") IS NOT NULL"),
            ))
            .await
            .expect("to_regclass");
        engine.close().await;
        exists
    }
}

/// A database of its own for a test: the extensions bind a `'static`.
pub fn fresh_db() -> &'static gino::Gino {
    Box::leak(Box::new(gino::Gino::secondary()))
}

/// Waits (ten seconds at most) until `done` holds: what the app does after
/// a client left happens a moment later.
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connections of `engine`'s pool that are borrowed right now.
pub fn borrowed(engine: &gino::Engine) -> usize {
    let status = engine.pool_status();
    status.size - status.available
}

/// `SELECT pg_backend_pid()`.
pub fn pid() -> diesel::dsl::select<diesel::expression::SqlLiteral<Integer>> {
    diesel::select(sql::<Integer>("pg_backend_pid()"))
}

/// `SELECT 1 FROM pg_sleep(60)`: a statement that runs until its
/// backend is terminated, as [`expect_503_while_the_database_is_down`]
/// does.
pub fn sleeper() -> diesel::dsl::select<diesel::expression::SqlLiteral<Integer>> {
    diesel::select(sql::<Integer>("1 FROM pg_sleep(60)"))
}

/// Terminates the backends of `cluster` running [`sleeper`], once one is:
/// their connection is lost in the middle of the statement.
async fn terminate_sleepers(cluster: &Cluster) {
    let admin = gino::create_engine(&cluster.url_for("postgres"), gino::EngineOptions::new())
        .await
        .expect("an admin engine");
    let terminate = || {
        diesel::select(sql::<diesel::sql_types::BigInt>(
            "count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query LIKE '%pg_sleep(60)%' AND state = 'active' \
             AND pid <> pg_backend_pid()",
        ))
    };
    let started = Instant::now();
    loop {
        let terminated: i64 = admin.one(terminate()).await.unwrap();
        if terminated > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the request's statement never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.close().await;
}

/// A query that fails on the server with a message holding a bound
/// parameter and a table name: what a 500 must not show.
pub fn leaky_query() -> impl diesel::query_builder::QueryFragment<diesel::pg::Pg>
+ diesel::query_builder::QueryId
+ diesel::query_builder::Query<SqlType = Integer>
+ Send
+ 'static {
    diesel::select(
        sql::<Integer>("")
            .bind::<Text, _>("secret-parameter")
            .sql("::int FROM secret_table_name"),
    )
}

/// Asserts that a 500 body is the opaque one.
pub fn assert_opaque_500(body: &str) {
    assert_eq!(body, r#"{"error":"internal server error"}"#);
    for leak in ["secret", "SELECT", "42P01", "relation"] {
        assert!(!body.contains(leak), "500 body leaks `{leak}`: {body}");
    }
}

/// A port nothing listens on.
pub fn absent_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// The client's side of the scenarios every framework's tests run. Each app
// serves the same paths: `/pids`, `/double/{n}`, `/missing`, `/hold`,
// `/query`, `/broken`, `/release`, `/slow`, `/borrowed`.

/// `GET {base}/pids` answers `(pids, borrows)`: every query of a request
/// ran on one backend, borrowed once; nothing stays borrowed.
pub async fn expect_one_connection_per_request(test: &WebTest, base: &str) {
    // Several requests, so that every worker of a server serves some.
    for _ in 0..4 {
        let (pids, borrows): (Vec<i32>, u32) = reqwest::get(format!("{base}/pids"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            pids.len() >= 5 && pids.iter().all(|p| *p == pids[0]),
            "{pids:?}"
        );
        assert_eq!(borrows, 1);
    }
    assert_eq!(test.borrowed(), 0, "given back after the response");
}

/// 200 concurrent `GET {base}/double/{n}` answer `n * 2` on a pool of
/// five; afterwards every connection is idle in the pool.
pub async fn expect_two_hundred_concurrent_requests(test: &WebTest, base: &str) {
    let client = reqwest::Client::new();
    let answers = futures_util::future::join_all((0..200).map(|n| {
        let request = client.get(format!("{base}/double/{n}")).send();
        async move {
            let response = request.await.expect("response");
            assert_eq!(response.status(), 200);
            response.json::<i32>().await.expect("json")
        }
    }))
    .await;
    assert_eq!(answers, (0..200).map(|n| n * 2).collect::<Vec<_>>());
    assert_eq!(test.borrowed(), 0);
    assert!(test.engine().pool_status().size <= 5);
    let states = test.session_states().await;
    assert!(states.len() <= 5, "{states:?}");
    assert!(states.iter().all(|s| s == "idle"), "{states:?}");
    test.assert_pool_clean().await;
}

/// 404 from `/missing`; 503 with `Retry-After` from `/query` while `/hold`
/// holds the only connection (it signals `holding`, then waits for
/// `release`); an opaque 500 from `/broken`.
pub async fn expect_error_answers(
    base: &str,
    holding: &tokio::sync::Notify,
    release: &tokio::sync::Notify,
) {
    let missing = reqwest::get(format!("{base}/missing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/json");
    assert_eq!(missing.text().await.unwrap(), r#"{"error":"not found"}"#);

    let hold = tokio::spawn(reqwest::get(format!("{base}/hold")));
    holding.notified().await;
    let busy = reqwest::get(format!("{base}/query")).await.unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    release.notify_one();
    assert_eq!(hold.await.unwrap().unwrap().status(), 200);
    let query = reqwest::get(format!("{base}/query")).await.unwrap();
    assert_eq!(query.status(), 200);

    let broken = reqwest::get(format!("{base}/broken")).await.unwrap();
    assert_eq!(broken.status(), 500);
    assert_opaque_500(&broken.text().await.unwrap());
}

/// `GET {base}/query` answers 200; while `cluster` is stopped, 503 with
/// `Retry-After` and a body that names no server (at once, not after a
/// hang); once it is started again, 200 from the first request: the pool
/// drops the connections the server left instead of failing on them.
/// Then `GET {base}/sleep` (running [`sleeper`]) loses its connection
/// mid-statement: 503 again, and `/query` 200 after it.
pub async fn expect_503_while_the_database_is_down(base: &str, cluster: &Arc<Cluster>) {
    let query = || reqwest::get(format!("{base}/query"));
    assert_eq!(query().await.unwrap().status(), 200);

    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap()
        .expect("stop the cluster");
    for _ in 0..3 {
        let started = Instant::now();
        assert_unavailable(query().await.unwrap()).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a refused connection answers at once, not after {:?}",
            started.elapsed()
        );
    }

    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .unwrap()
        .expect("start the cluster again");
    let back = query().await.unwrap();
    assert_eq!(back.status(), 200, "{:?}", back.text().await);

    // A connection lost in the middle of a request's statement (its
    // backend terminated: 57P01, then the socket closes) answers 503 too,
    // and the next request gets a connection that works.
    let sleeping = tokio::spawn(reqwest::get(format!("{base}/sleep")));
    terminate_sleepers(cluster).await;
    assert_unavailable(sleeping.await.unwrap().unwrap()).await;
    let after = query().await.unwrap();
    assert_eq!(after.status(), 200, "{:?}", after.text().await);
}

/// Asserts gino's answer for a database it cannot reach: 503, `Retry-After`,
/// and a JSON body that names no server.
async fn assert_unavailable(answer: reqwest::Response) {
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(answer.headers()["content-type"], "application/json");
    let status = answer.status();
    let body = answer.text().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        r#"{"error":"the database is unavailable; try again shortly"}"#
    );
}

/// `GET {base}/release` answers `(borrowed before, still held, borrowed
/// between, borrows)` around a `release_raw` between two queries.
pub async fn expect_early_release(test: &WebTest, base: &str) {
    let answer: (usize, bool, usize, u32) = reqwest::get(format!("{base}/release"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, (1, false, 0, 2));
    assert_eq!(test.borrowed(), 0);
}

/// The client of `GET {base}/slow` goes away while its handler sits in a
/// transaction that created the table `abandoned` (it signals `inside`):
/// nothing stays open, nothing is committed, the pool is intact.
pub async fn expect_nothing_open_after_the_client_left(
    test: &WebTest,
    base: &str,
    inside: &tokio::sync::Notify,
) {
    let request = tokio::spawn(reqwest::get(format!("{base}/slow")));
    inside.notified().await;
    assert!(
        test.session_states()
            .await
            .iter()
            .any(|s| s == "idle in transaction"),
        "the handler's transaction is open"
    );
    request.abort();
    test.assert_no_open_transaction().await;
    test.assert_pool_clean().await;
    assert!(
        !test.table_exists("abandoned").await,
        "the abandoned transaction was committed"
    );
}

/// `GET {base}/borrowed` answers how many connections were borrowed right
/// after a query: none, without a connection per request.
pub async fn expect_no_connection_held(base: &str) {
    let borrowed: usize = reqwest::get(format!("{base}/borrowed"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(borrowed, 0, "the statement's connection went back at once");
}

/// A streamed body through a graceful shutdown: `/stream` sends a first
/// chunk, signals `streaming`, waits for `go_on`, then queries. Once it
/// streams, `shut_down` starts the shutdown (run in a task of its own, as
/// it waits); the pool must stay open until the body is sent, and close
/// after.
pub async fn expect_a_streamed_body_held_through_shutdown<F>(
    test: &WebTest,
    base: &str,
    streaming: &tokio::sync::Notify,
    go_on: &tokio::sync::Notify,
    shut_down: F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let response = reqwest::get(format!("{base}/stream")).await.unwrap();
    streaming.notified().await;
    let stopping = tokio::spawn(shut_down);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        test.db.is_bound(),
        "the pool closed under a body being sent"
    );
    go_on.notify_one();
    let body = response.text().await.unwrap();
    assert!(body.starts_with("first\npid "), "{body:?}");
    stopping.await.unwrap();
    wait_until("the pool to close once the body was sent", || {
        !test.db.is_bound()
    })
    .await;
    test.assert_all_closed().await;
}

/// Whether a session is inside a transaction (`idle in transaction`, or
/// `idle in transaction (aborted)`), by `pg_stat_activity.state`.
fn any_in_transaction(states: &[String]) -> bool {
    states.iter().any(|s| s.contains("transaction"))
}

/// The work of `/keep/{n}` and `/refuse/{n}` in
/// [`expect_leaving_clients_under_load`]: a transaction that stores `n` in
/// `kept`, takes a moment on the server, and commits, or, if `refuse`,
/// then runs a statement that fails, so that it rolls back.
pub async fn keep(db: &gino::Gino, n: i32, refuse: bool) -> gino::Result<i32> {
    db.transaction(async {
        db.status(diesel::sql_query("INSERT INTO kept VALUES ($1)").bind::<Integer, _>(n))
            .await?;
        db.status(diesel::sql_query("SELECT pg_sleep(0.003)"))
            .await?;
        if refuse {
            db.status(diesel::sql_query("SELECT 1 / 0")).await?;
        }
        Ok(n)
    })
    .await
}

/// 160 concurrent requests on a pool of five, a third of them refused
/// (`/refuse/{n}`: 500, nothing stored) and the rest kept (`/keep/{n}`:
/// 200, stored), a quarter of their clients leaving at once or within
/// 13 ms: afterwards every answered keep is stored, nothing refused is,
/// nothing stays borrowed or inside a transaction, and every pooled
/// connection is clean.
pub async fn expect_leaving_clients_under_load(test: &WebTest, base: &str) {
    test.engine()
        .status(diesel::sql_query("CREATE TABLE kept (n int PRIMARY KEY)"))
        .await
        .expect("create kept");
    let client = reqwest::Client::new();
    let requests = (0..160).map(|n: i32| {
        let refuse = n % 3 == 0;
        let path = if refuse { "refuse" } else { "keep" };
        let request = client.get(format!("{base}/{path}/{n}")).send();
        let leaves = n % 4 == 1;
        let patience = Duration::from_millis((n * 7 % 13) as u64);
        tokio::spawn(async move {
            if leaves {
                // The client drops the request when its patience ends.
                let _ = tokio::time::timeout(patience, request).await;
                return (n, refuse, None);
            }
            let status = request.await.expect("response").status().as_u16();
            (n, refuse, Some(status))
        })
    });
    let answers = futures_util::future::join_all(requests).await;
    wait_until("connections still borrowed after the load", || {
        test.borrowed() == 0
    })
    .await;
    test.assert_no_open_transaction().await;
    test.assert_pool_clean().await;
    let stored: Vec<i32> = test
        .engine()
        .all(diesel::select(sql::<Integer>("n FROM kept")))
        .await
        .expect("kept rows");
    for answer in answers {
        let (n, refuse, status) = answer.expect("client task");
        match (refuse, status) {
            (false, Some(status)) => {
                assert_eq!(status, 200, "/keep/{n}");
                assert!(
                    stored.contains(&n),
                    "/keep/{n} answered 200 but {n} is not stored"
                );
            }
            (true, Some(status)) => assert_eq!(status, 500, "/refuse/{n}"),
            (_, None) => {}
        }
        if refuse {
            assert!(!stored.contains(&n), "/refuse/{n} stored {n}");
        }
    }
}
