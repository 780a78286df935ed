//! Shared set-up of gino's integration tests: a fresh database per test.
#![allow(dead_code)]

use gino::{Engine, EngineOptions, create_engine};
use gino_testkit::TestDatabase;

/// A test's own database and an engine on it.
pub struct Setup {
    pub db: TestDatabase,
    pub engine: Engine,
}

pub async fn setup() -> Setup {
    setup_with(EngineOptions::new()).await
}

pub async fn setup_with(options: EngineOptions) -> Setup {
    let db = TestDatabase::create().await;
    let engine = create_engine(db.url(), options)
        .await
        .expect("engine for the test database");
    Setup { db, engine }
}

/// A URL of the test server with extra query parameters.
pub fn url_with(db: &TestDatabase, params: &str) -> String {
    let sep = if db.url().contains('?') { '&' } else { '?' };
    format!("{}{sep}{params}", db.url())
}

/// States of the sessions of `application_name`, as pg_stat_activity shows them.
pub async fn session_states(engine: &Engine, application_name: &str) -> Vec<String> {
    use diesel::sql_types::Text;
    let q = gino::text(
        "SELECT coalesce(state, '') AS state FROM pg_stat_activity \
         WHERE application_name = :app AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>("app", application_name.to_owned());
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let rows: Vec<Row> = engine.all(q).await.expect("pg_stat_activity");
    rows.into_iter().map(|r| r.state).collect()
}
