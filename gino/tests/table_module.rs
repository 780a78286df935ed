//! The table modules that models and `gino::table!` declare, through
//! gino's re-export of diesel, against diesel's query builder: the SQL they
//! write and the queries a diesel user builds on them (joins, aliases,
//! grouping, boxing, `ONLY`, `TABLESAMPLE`, arithmetic, INSERT ... SELECT),
//! run on a real server. Every diesel path here goes through `gino::diesel`,
//! as in a crate with no diesel dependency of its own.

use gino::diesel::dsl::{IntervalDsl, OnlyDsl, TablesampleDsl, count_star, max, now, sum};
use gino::diesel::pg::Pg;
use gino::diesel::{self, debug_query};
use gino::prelude::*;
use gino_testkit::TestDatabase;

static DB: Gino = Gino::new();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "teams")]
pub struct Team {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "staff")]
pub struct Staff {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
    #[gino(references = Team)]
    pub team_id: i32,
    pub manager_id: Option<i32>,
    pub salary: i64,
    #[gino(column = "full_title")]
    pub title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "units", schema = "hr")]
pub struct Unit {
    #[gino(primary_key)]
    pub code: String,
}

gino::table! {
    use gino::diesel::sql_types::*;

    #[gino(index(name = "events_at", columns(at)))]
    events (id) {
        id -> Integer,
        #[sql_name = "happened_at"]
        at -> Timestamp,
        #[max_length = 20]
        label -> VarChar,
        weight -> Nullable<Double>,
    }
}

gino::table! {
    archive (staff_id, name) {
        staff_id -> Integer,
        name -> Text,
    }
}

// A key in another order than the columns'.
gino::table! {
    rosters (name, staff_id) {
        staff_id -> Integer,
        name -> Text,
    }
}

#[test]
fn a_key_is_created_in_the_order_the_table_lists_it() {
    let ddl = DB.schema_sql();
    assert!(ddl.contains(r#"PRIMARY KEY ("name", "staff_id")"#), "{ddl}");
    assert!(ddl.contains(r#"PRIMARY KEY ("staff_id", "name")"#), "{ddl}");
}

fn sql<Q: diesel::query_builder::QueryFragment<Pg>>(query: Q) -> String {
    let text = debug_query::<Pg, _>(&query).to_string();
    text.split(" -- binds").next().unwrap().to_owned()
}

#[test]
fn columns_are_qualified_except_in_single_table_statements() {
    assert_eq!(
        sql(staff::table.select((staff::name, staff::title))),
        r#"SELECT "staff"."name", "staff"."full_title" FROM "staff""#
    );
    assert_eq!(
        sql(diesel::update(staff::table.find(7)).set(staff::salary.eq(staff::salary * 2))),
        r#"UPDATE "staff" SET "salary" = ("staff"."salary" * $1) WHERE ("staff"."id" = $2)"#
    );
    assert_eq!(
        sql(diesel::delete(events::table.filter(events::label.eq("x")))),
        r#"DELETE FROM "events" WHERE ("events"."label" = $1)"#
    );
    assert_eq!(
        sql(units::table.filter(units::code.eq("x"))),
        r#"SELECT "hr"."units"."code" FROM "hr"."units" WHERE ("hr"."units"."code" = $1)"#
    );
    assert_eq!(sql(staff::table.star()), r#""staff".*"#);
    assert_eq!(
        sql(events::table.select(events::at)),
        r#"SELECT "events"."happened_at" FROM "events""#
    );
}

#[test]
fn tables_describe_themselves_to_diesel() {
    use diesel::query_source::{Column, SizeRestrictedColumn, Table};
    assert_eq!(<events::at as Column>::NAME, "happened_at");
    assert_eq!(<events::label as SizeRestrictedColumn>::MAX_LENGTH, 20);
    let (staff_id, name) = archive::table.primary_key();
    assert_eq!(
        (sql(staff_id), sql(name)),
        (
            r#""archive"."staff_id""#.to_owned(),
            r#""archive"."name""#.to_owned()
        )
    );
    assert_eq!(
        sql(archive::table.find((1, "x"))),
        r#"SELECT "archive"."staff_id", "archive"."name" FROM "archive" WHERE (("archive"."staff_id" = $1) AND ("archive"."name" = $2))"#
    );
    assert_eq!(
        sql(staff::table.only().select(staff::id)),
        // (diesel's own spacing)
        r#"SELECT "staff"."id" FROM  ONLY "staff""#
    );
    assert!(
        sql(staff::table.tablesample_system(50).select(staff::id))
            .starts_with(r#"SELECT "staff"."id" FROM "staff" TABLESAMPLE SYSTEM"#)
    );
    // `use dsl::*` brings the columns and the table under the module's name.
    {
        use crate::staff::dsl::*;
        assert_eq!(
            sql(staff.select(name).filter(salary.gt(1))),
            r#"SELECT "staff"."name" FROM "staff" WHERE ("staff"."salary" > $1)"#
        );
    }
}

async fn seeded(db: &TestDatabase) {
    DB.set_bind(db.url()).await.unwrap();
    DB.status(diesel::sql_query("CREATE SCHEMA hr"))
        .await
        .unwrap();
    DB.create_all().await.unwrap();
    Team::create().id(1).name("core").await.unwrap();
    Team::create().id(2).name("web").await.unwrap();
    for (id, name, team, manager, salary) in [
        (1, "ada", 1, None, 300),
        (2, "bob", 1, Some(1), 200),
        (3, "cy", 2, Some(1), 150),
        (4, "di", 2, Some(3), 100),
    ] {
        Staff::create()
            .id(id)
            .name(name)
            .team_id(team)
            .manager_id(manager)
            .salary(salary)
            .title("eng")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn diesel_queries_on_declared_tables_run() {
    let db = TestDatabase::create().await;
    seeded(&db).await;

    // Self-join through an alias: each report with its manager's name.
    let managers = diesel::alias!(staff as managers);
    let reports: Vec<(String, String)> = staff::table
        .inner_join(managers.on(staff::manager_id.eq(managers.field(staff::id).nullable())))
        .select((staff::name, managers.field(staff::name)))
        .order_by(staff::id)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(
        reports,
        [("bob", "ada"), ("cy", "ada"), ("di", "cy")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    // GROUP BY the key lets every column of the row be selected; GROUP BY
    // another column only aggregates.
    let by_key: Vec<(i32, String, i64)> = staff::table
        .group_by(staff::id)
        .select((staff::id, staff::name, count_star()))
        .order_by(staff::id)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(by_key.len(), 4);
    let payroll: Vec<(i32, Option<diesel::data_types::PgNumeric>, Option<i64>)> = staff::table
        .group_by(staff::team_id)
        .select((staff::team_id, sum(staff::salary), max(staff::salary)))
        .order_by(staff::team_id)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(
        payroll.iter().map(|(t, _, m)| (*t, *m)).collect::<Vec<_>>(),
        [(1, Some(300)), (2, Some(150))]
    );

    // Joins from the reference, inner and left (the right side nullable).
    let with_team: Vec<(String, String)> = staff::table
        .inner_join(teams::table)
        .filter(teams::name.eq("web"))
        .select((staff::name, teams::name))
        .order_by(staff::id)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(with_team.len(), 2);
    let left: Vec<(String, Option<String>)> = teams::table
        .left_join(staff::table)
        .select((teams::name, staff::name.nullable()))
        .filter(staff::salary.nullable().gt(250))
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(left, [("core".to_owned(), Some("ada".to_owned()))]);

    // A boxed query, built up at run time.
    let mut query: staff::BoxedQuery<'_, Pg> = staff::table.into_boxed();
    query = query.filter(staff::salary.ge(150));
    query = query.order_by(staff::salary.desc());
    let names: Vec<String> = query.select(staff::name).gino().all().await.unwrap();
    assert_eq!(names, ["ada", "bob", "cy"]);

    // Arithmetic on numeric columns, in SELECT and in UPDATE.
    let doubled: i64 = staff::table
        .find(4)
        .select(staff::salary * 2 + 1)
        .gino()
        .one()
        .await
        .unwrap();
    assert_eq!(doubled, 201);
    let raised = diesel::update(staff::table.filter(staff::team_id.eq(2)))
        .set(staff::salary.eq(staff::salary + 10))
        .gino()
        .status()
        .await
        .unwrap();
    assert_eq!(raised.rows(), 2);

    // INSERT ... SELECT from one declared table into another.
    let copied = diesel::insert_into(archive::table)
        .values(
            staff::table
                .filter(staff::team_id.eq(1))
                .select((staff::id, staff::name)),
        )
        .into_columns((archive::staff_id, archive::name))
        .gino()
        .status()
        .await
        .unwrap();
    assert_eq!(copied.rows(), 2);
    let archived: i64 = archive::table.count().gino().one().await.unwrap();
    assert_eq!(archived, 2);

    // Timestamps shift by intervals; NULL-able doubles are numeric.
    DB.status(diesel::sql_query(
        "INSERT INTO events (id, happened_at, label, weight) \
         VALUES (1, now() - interval '2 days', 'old', NULL), (2, now(), 'new', 1.5)",
    ))
    .await
    .unwrap();
    let recent: Vec<String> = events::table
        .filter((events::at + 1.day()).gt(now))
        .select(events::label)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(recent, ["new"]);
    let weights: Vec<Option<f64>> = events::table
        .order_by(events::id)
        .select(events::weight * 2.0)
        .gino()
        .all()
        .await
        .unwrap();
    assert_eq!(weights, [None, Some(3.0)]);

    DB.pop_bind().unwrap().close().await;
}
