//! What the web extensions' tests share: a database of the test's own with
//! settings for it, a `'static` Gino, and looks at the database from
//! outside (sessions, open transactions, the pool).

use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::{Bool, Integer, Text};
use gino::web::Settings;
use gino_testkit::TestDatabase;

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
            !states.iter().any(|s| s.contains("transaction"))
        })
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

/// Connections of `engine`'s pool that are borrowed right now.
pub fn borrowed(engine: &gino::Engine) -> usize {
    let status = engine.pool_status();
    status.size - status.available
}

/// `SELECT pg_backend_pid()`.
pub fn pid() -> diesel::dsl::select<diesel::expression::SqlLiteral<Integer>> {
    diesel::select(sql::<Integer>("pg_backend_pid()"))
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
