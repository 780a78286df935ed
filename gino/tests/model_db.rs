//! A query built from a model runs on the model's database without being
//! told: GINO finds a statement's bind through its tables. Its own binary,
//! since the default database is process-wide.

use diesel::dsl::{exists, sql};
use diesel::sql_types::Text;
use gino::prelude::*;
use gino_testkit::TestDatabase;

static REPORTS: Gino = Gino::secondary();
static DEFAULT: Gino = Gino::new();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "reports", db = REPORTS)]
pub struct Report {
    #[gino(primary_key)]
    pub id: i32,
    pub title: String,
    #[gino(default = 0)]
    pub pages: i32,
}

async fn current_database() -> String {
    diesel::select(sql::<Text>("current_database()"))
        .gino()
        .one()
        .await
        .unwrap()
}

#[tokio::test]
async fn queries_of_a_model_run_on_its_database() {
    let reports_db = TestDatabase::create().await;
    let default_db = TestDatabase::create().await;
    REPORTS.set_bind(reports_db.url()).await.unwrap();
    REPORTS.create_all().await.unwrap();

    // Only the model's database is bound: no Uninitialized.
    Report::create().title("q1").await.unwrap();
    Report::create().title("q2").await.unwrap();
    let all: Vec<Report> = Report::query()
        .order_by(reports::id)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        matches!(
            diesel::select(sql::<Text>("'x'"))
                .gino()
                .one::<String>()
                .await,
            Err(gino::Error::Uninitialized)
        ),
        "a query of no model's table still needs the default database"
    );

    // Both bound: the model's queries do not stray to the default one.
    DEFAULT.set_bind(default_db.url()).await.unwrap();
    assert_eq!(current_database().await, default_db.name());
    // Columns from the model read as GINO writes them (`Report.title`).
    let first: Option<Report> = Report::query()
        .filter(Report::title.eq("q1"))
        .gino()
        .first()
        .await
        .unwrap();
    assert_eq!(first.map(|r| r.title).as_deref(), Some("q1"));
    // A table alone (GINO's `users.select().gino.all()` of test_core)
    // goes to its database too; the default one has no such table.
    let whole: Vec<Report> = reports::table.gino().all().await.unwrap();
    assert_eq!(whole.len(), 2);
    let status = diesel::update(reports::table)
        .set(reports::title.eq(reports::title.concat(" (done)")))
        .gino()
        .status()
        .await
        .unwrap();
    assert_eq!(status, "UPDATE 2");
    // GINO's FAQ: `db.scalar(db.exists().where(...).select())`.
    let there: bool = diesel::select(exists(
        reports::table.filter(reports::title.eq("q2 (done)")),
    ))
    .gino()
    .one()
    .await
    .unwrap();
    assert!(there);
    let counted: i64 = reports::table.count().gino().one().await.unwrap();
    assert_eq!(counted, 2);
    let deleted = diesel::delete(reports::table.filter(reports::title.like("q1%")))
        .gino()
        .status()
        .await
        .unwrap();
    assert_eq!(deleted, "DELETE 1");

    // apply() refreshes what it changed, and only that: a value set in
    // memory by a request never applied stays, as in GINO.
    let mut draft = Report::create().title("draft").await.unwrap();
    let _never_applied = draft.update().title("unsaved title");
    draft
        .update()
        .set(reports::pages.eq(reports::pages + 3))
        .apply()
        .await
        .unwrap();
    assert_eq!((draft.title.as_str(), draft.pages), ("unsaved title", 3));
    let stored = Report::get(draft.id).await.unwrap().unwrap();
    assert_eq!((stored.title.as_str(), stored.pages), ("draft", 3));
    draft.delete().await.unwrap();

    // An explicit value for the serial key, as GINO's `create(id=...)`;
    // the sequence is the application's to move past it (setval).
    let chosen = Report::create().id(1000).title("chosen").await.unwrap();
    assert_eq!(chosen.id, 1000);
    REPORTS
        .status(diesel::sql_query(
            "SELECT setval(pg_get_serial_sequence('reports', 'id'), (SELECT max(id) FROM reports))",
        ))
        .await
        .unwrap();
    let next = Report::create().title("after").await.unwrap();
    assert_eq!(next.id, 1001);

    // Raw SQL into the model, by column name.
    let raw: Option<Report> = REPORTS
        .first(
            gino::text("SELECT id, title, pages FROM reports WHERE title = :t")
                .bind::<Text, _>("t", "q2 (done)"),
        )
        .await
        .unwrap();
    assert_eq!(raw.map(|r| r.title).as_deref(), Some("q2 (done)"));
    // Columns left out take their types' defaults (GINO's passive partial
    // load).
    let ids = REPORTS
        .all::<Report, _>(gino::text("SELECT id FROM reports ORDER BY id"))
        .await
        .unwrap();
    assert!(
        ids.iter().all(|r| r.title.is_empty() && r.pages == 0),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 3);

    // Introspection, as GINO's has_table / has_schema / has_type.
    assert!(REPORTS.has_table("reports").await.unwrap());
    assert!(REPORTS.has_table("public.reports").await.unwrap());
    assert!(
        !REPORTS.has_table("Reports").await.unwrap(),
        "taken as written"
    );
    assert!(!REPORTS.has_schema("app").await.unwrap());
    REPORTS
        .status(diesel::sql_query("CREATE SCHEMA app"))
        .await
        .unwrap();
    REPORTS
        .status(diesel::sql_query("CREATE TYPE app.mood AS ENUM ('ok')"))
        .await
        .unwrap();
    REPORTS
        .status(diesel::sql_query("CREATE TABLE app.hidden (x int)"))
        .await
        .unwrap();
    assert!(REPORTS.has_schema("app").await.unwrap());
    assert!(REPORTS.has_table("app.hidden").await.unwrap());
    assert!(
        !REPORTS.has_table("hidden").await.unwrap(),
        "not on the search path"
    );
    assert!(REPORTS.has_type("app.mood").await.unwrap());
    assert!(!REPORTS.has_type("mood").await.unwrap());
    let engine = REPORTS.engine().unwrap();
    let conn = engine.acquire().await.unwrap();
    assert!(engine.has_table("reports").await.unwrap());
    assert!(conn.has_type("int4").await.unwrap());
    conn.release().await.unwrap();

    // `.bind(...)` still decides.
    let elsewhere = Report::query().gino().bind(&DEFAULT).all::<Report>().await;
    assert_eq!(
        elsewhere.unwrap_err().sqlstate(),
        Some("42P01"),
        "the default database has no reports table"
    );

    DEFAULT.pop_bind().unwrap().close().await;
    REPORTS.pop_bind().unwrap().close().await;
}
