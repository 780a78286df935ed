//! Audit probes: GINO behaviours checked against the Rust port.
mod common;

use gino::prelude::*;
use gino::{Error, Gino};

async fn bound(db: &'static Gino) -> common::Setup {
    let s = common::setup().await;
    db.set_bind(s.engine.clone()).await.unwrap();
    s
}

async fn raw_json(db: &'static Gino, sql: &str) -> serde_json::Value {
    db.one(diesel::select(diesel::dsl::sql::<diesel::sql_types::Jsonb>(sql)))
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------
// P1 (test_json test_crud): an unapplied in-memory property change survives
// applying another update of the same JSON column.
mod p1 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p1_users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i64,
        pub nickname: String,
        #[gino(property, default = 18)]
        pub age: i32,
        #[gino(property)]
        pub realname: Option<String>,
        #[gino(property, default = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH.naive_utc())]
        pub birthday: chrono::NaiveDateTime,
        #[gino(property = "parameter", default = 170)]
        pub height: i32,
        #[gino(property = "parameter")]
        pub weight: Option<i32>,
        #[gino(property = "parameter")]
        pub bio: Option<String>,
    }

    #[tokio::test]
    async fn p1_unapplied_change_survives_and_mixed_update() {
        let _s = bound(&DB).await;
        User::create_table().await.unwrap();
        let now = chrono::NaiveDate::from_ymd_opt(2020, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 123456)
            .unwrap();
        let mut u = User::create()
            .nickname("fantix")
            .birthday(now)
            .bio("I code".to_owned())
            .await
            .unwrap();
        let stored = raw_json(&DB, "(SELECT profile FROM p1_users)").await;
        println!("P1 stored profile after create: {stored}");
        let stored2 = raw_json(&DB, "(SELECT parameter FROM p1_users)").await;
        println!("P1 stored parameter after create: {stored2}");
        assert_eq!(User::get(u.id).await.unwrap().unwrap().birthday, now);

        // In-memory update, not applied.
        let earlier = now - chrono::Duration::days(3650);
        {
            let _ = u.update().birthday(earlier);
        }
        assert_eq!(u.birthday, earlier);
        u.update()
            .set_property(p1_users_props::age(), p1_users_props::age() - 2)
            .height(180)
            .apply()
            .await
            .unwrap();
        println!("P1 after apply: {u:?}");
        assert_eq!(u.age, 16);
        assert_eq!(u.height, 180);
        assert_eq!(u.birthday, earlier, "unapplied in-memory change kept");

        // Mixed: expression + value in the same JSON column, a property in another
        // JSON column and a regular column, at once.
        let mut u = User::get(u.id).await.unwrap().unwrap();
        let r = u
            .update()
            .set_property(p1_users_props::age(), p1_users_props::age() - 2)
            .realname("daisy".to_owned())
            .nickname("daisy.nick")
            .height(185)
            .weight(75)
            .apply()
            .await;
        println!("P1 mixed update: {r:?} -> {u:?}");
        r.unwrap();
        assert_eq!(
            (u.age, u.realname.as_deref(), u.nickname.as_str(), u.height, u.weight),
            (14, Some("daisy"), "daisy.nick", 185, Some(75))
        );
        let stored = raw_json(&DB, "(SELECT profile FROM p1_users)").await;
        println!("P1 stored profile: {stored}");
        let got = User::get(u.id).await.unwrap().unwrap();
        assert_eq!(got, u);
        // Filter on a naive datetime property.
        let n: i64 = User::query()
            .filter(p1_users_props::birthday().eq(now))
            .count()
            .gino()
            .one()
            .await
            .unwrap();
        println!("P1 filter birthday = now count: {n}");
        assert_eq!(n, 1);
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P2 (test_crud: User.type column; reserved words): raw identifiers and
// reserved table/column names.
mod p2 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(DbEnum, Debug, Clone, Copy, PartialEq)]
    #[gino(type_name = "p2_usertype")]
    pub enum UserType {
        User,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "user", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i64,
        #[gino(db_enum)]
        pub r#type: UserType,
        #[gino(column = "select")]
        pub select_col: Option<String>,
        #[gino(property)]
        pub r#loop: Option<i32>,
    }

    #[tokio::test]
    async fn p2_raw_identifiers_and_reserved_names() {
        let _s = bound(&DB).await;
        let r = DB.create_all().await;
        println!("P2 create_all: {r:?}");
        r.unwrap();
        let mut u = User::create()
            .r#type(UserType::User)
            .select_col("x".to_owned())
            .r#loop(3)
            .await
            .unwrap();
        let stored = raw_json(&DB, "(SELECT profile FROM \"user\")").await;
        println!("P2 stored profile: {stored}");
        u.update().select_col("y".to_owned()).r#loop(4).apply().await.unwrap();
        let got = User::get(u.id).await.unwrap().unwrap();
        assert_eq!(got, u);
        // Textual SQL with an enum bind (test_textual_sql).
        let rows: Vec<User> = DB
            .all(
                gino::text("SELECT * FROM \"user\" WHERE id = :uid AND type = :utype")
                    .bind::<diesel::sql_types::BigInt, _>("uid", u.id)
                    .bind::<UserTypeType, _>("utype", UserType::User),
            )
            .await
            .unwrap();
        assert_eq!(rows, [u.clone()]);
        // A row as GINO would have written it.
        DB.status(diesel::sql_query("UPDATE \"user\" SET profile = '{\"loop\": 5}'")).await.unwrap();
        let r = User::get(u.id).await;
        println!("P2 read of GINO-written {{\"loop\": 5}}: {r:?}");
        let n: gino::Result<i64> = User::query().filter(user_props::r#loop().eq(5)).count().gino().bind(&DB).one().await;
        println!("P2 filter loop = 5 count: {n:?}");
        assert_eq!(stored, serde_json::json!({"loop": 3}), "property key of a raw identifier");
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P3 (test_lookup_custom_name): a primary key with a custom column name and
// explicit ids.
mod p3 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "custom_names", db = DB)]
    pub struct M {
        #[gino(primary_key, column = "other")]
        pub id: i32,
        pub field: Option<String>,
    }

    #[tokio::test]
    async fn p3_custom_pk_column() {
        let _s = bound(&DB).await;
        M::create_table().await.unwrap();
        let mut m1 = M::create().id(1).field("A".to_owned()).await.unwrap();
        let _m2 = M::create().id(2).field("B".to_owned()).await.unwrap();
        m1.update().field("C".to_owned()).apply().await.unwrap();
        let ids: Vec<i32> = M::select(custom_names::id).order_by(custom_names::id).gino().bind(&DB).all().await.unwrap();
        assert_eq!(ids, [1, 2]);
        assert_eq!(M::get(2).await.unwrap().unwrap().field.as_deref(), Some("B"));
        assert_eq!(M::get(1).await.unwrap().unwrap().field.as_deref(), Some("C"));
        assert!(M::get(3).await.unwrap().is_none());
        let st = DB.status(diesel::delete(custom_names::table.filter(custom_names::id.eq(3)))).await.unwrap();
        println!("P3 delete status: {st:?}");
        assert_eq!(st, "DELETE 0");
        let via_text: Vec<M> = DB.all(gino::text("SELECT * FROM custom_names ORDER BY other")).await.unwrap();
        assert_eq!(via_text.len(), 2);
        // Next serial after explicit ids
        let r = M::create().field("D".to_owned()).await;
        println!("P3 create after explicit ids: {r:?}");
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P4 (test_216_model_load_passive_partial, test_empty_model): a model loaded
// from a query selecting only some columns.
mod p4 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq, Default)]
    #[gino(table = "p4_users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i32,
        pub nickname: String,
        pub team_id: Option<i32>,
        #[gino(property)]
        pub realname: Option<String>,
    }

    #[tokio::test]
    async fn p4_partial_column_query_into_model() {
        let _s = bound(&DB).await;
        User::create_table().await.unwrap();
        User::create().nickname("ann").await.unwrap();
        let r: gino::Result<Vec<User>> = DB.all(gino::text("SELECT nickname FROM p4_users")).await;
        println!("P4 text partial: {r:?}");
        let r2: gino::Result<Vec<User>> = DB.all(gino::text("SELECT id, nickname, team_id FROM p4_users")).await;
        println!("P4 text without JSON column: {r2:?}");
        assert!(r.is_ok(), "partial select into a model: {r:?}");
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P5 (test_none_as_none_281, test_distinct_none, test_load_one_to_many): a
// model with JSON properties on the nullable side of an outer join.
mod p5 {
    use super::*;
    use gino::loader::{child, distinct};
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p5_teams", db = DB)]
    pub struct Team {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p5_users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i32,
        pub nickname: String,
        #[gino(references = Team)]
        pub team_id: Option<i32>,
        #[gino(property, default = 18)]
        pub age: i32,
        #[gino(property = "parameter", default = 170)]
        pub height: i32,
    }

    #[tokio::test]
    async fn p5_outer_join_with_properties() {
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let t1 = Team::create().name("t1").await.unwrap();
        let t2 = Team::create().name("t2").await.unwrap();
        let u = User::create().nickname("u").team_id(Some(t1.id)).await.unwrap();
        let lonely = User::create().nickname("lonely").await.unwrap();
        let rows: Vec<(Team, Option<User>)> = p5_teams::table
            .left_join(p5_users::table)
            .order_by(p5_teams::id)
            .select((Team::as_select(), Option::<User>::as_select()))
            .gino()
            .all()
            .await
            .unwrap();
        println!("P5 rows: {rows:?}");
        assert_eq!(rows, [(t1.clone(), Some(u.clone())), (t2.clone(), None)]);
        let loaded: Vec<(Team, Vec<User>)> = p5_teams::table
            .left_join(p5_users::table)
            .order_by(p5_teams::id)
            .select((Team::as_select(), Option::<User>::as_select()))
            .gino()
            .load(distinct::<Team, _>(child::<User>()))
            .await
            .unwrap();
        assert_eq!(loaded, [(t1.clone(), vec![u.clone()]), (t2, vec![])]);
        let many_to_one: Vec<(User, Option<Team>)> = User::with_team().gino().all().await.unwrap();
        println!("P5 with_team: {many_to_one:?}");
        assert!(many_to_one.contains(&(lonely, None)));
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P6 (test_json test_properties): properties of JSON, object, array and bool
// types, on a model without a primary key; their SQL expressions.
mod p6 {
    use super::*;
    use std::collections::HashMap;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "props_test", db = DB)]
    pub struct PropsTest {
        pub name: Option<String>,
        #[gino(property)]
        pub raw: Option<serde_json::Value>,
        #[gino(property)]
        pub bool: Option<bool>,
        #[gino(property)]
        pub obj: Option<HashMap<String, i32>>,
        #[gino(property)]
        pub arr: Option<Vec<i32>>,
        #[gino(property = "parameter")]
        pub raw_param: Option<serde_json::Value>,
        #[gino(property = "parameter")]
        pub bool_param: Option<bool>,
        #[gino(property = "parameter")]
        pub obj_param: Option<HashMap<String, i32>>,
        #[gino(property = "parameter")]
        pub arr_param: Option<Vec<i32>>,
    }

    #[tokio::test]
    async fn p6_property_types() {
        let _s = bound(&DB).await;
        PropsTest::create_table().await.unwrap();
        let t = PropsTest::create()
            .raw(serde_json::json!({"a": [1, 2]}))
            .bool(true)
            .obj(HashMap::from([("x".to_owned(), 1), ("y".to_owned(), 2)]))
            .arr(vec![3, 4, 5, 6])
            .raw_param(serde_json::json!({"a": [3, 4]}))
            .bool_param(false)
            .obj_param(HashMap::from([("x".to_owned(), 3), ("y".to_owned(), 4)]))
            .arr_param(vec![7, 8, 9, 10])
            .await
            .unwrap();
        assert_eq!(t.arr.as_ref().unwrap()[3], 6);
        let row = PropsTest::select((
            props_test::profile,
            props_test::parameter,
            props_test_props::raw(),
            props_test_props::bool(),
            props_test_props::obj_param(),
        ))
        .gino()
        .bind(&DB);
        let r: gino::Result<Option<(serde_json::Value, serde_json::Value, Option<serde_json::Value>, Option<bool>, Option<serde_json::Value>)>> =
            row.first().await;
        println!("P6 select: {r:?}");
        let (p, q, raw, b, op) = r.unwrap().unwrap();
        assert_eq!(p, serde_json::json!({"arr": [3,4,5,6], "obj": {"x":1,"y":2}, "raw": {"a":[1,2]}, "bool": true}));
        assert_eq!(q["bool_param"], false);
        assert_eq!(raw, Some(serde_json::json!({"a": [1, 2]})));
        assert_eq!(b, Some(true));
        assert_eq!(op, Some(serde_json::json!({"x": 3, "y": 4})));
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P7 (test_declarative test_inline_constraints_and_indexes): error kinds.
mod p7 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p7_users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i64,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(
        table = "p7_settings",
        db = DB,
        unique(columns(user_id, setting)),
        check(expr = "col1 >= 1 AND col1 <= 5"),
        index(name = "p7_col2_idx", columns(col2))
    )]
    pub struct UserSetting {
        #[gino(primary_key)]
        pub id: i64,
        #[gino(references = User)]
        pub user_id: i64,
        pub setting: String,
        pub value: String,
        #[gino(default = 1)]
        pub col1: i32,
        #[gino(default = 2)]
        pub col2: i32,
    }

    #[tokio::test]
    async fn p7_violations() {
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        let u = User::create().await.unwrap();
        let us1 = UserSetting::create().user_id(u.id).setting("skin").value("blue").await.unwrap();
        let e1 = UserSetting::create().id(us1.id).user_id(u.id).setting("k1").value("v").await.unwrap_err();
        let e2 = UserSetting::create().user_id(42).setting("k2").value("v").await.unwrap_err();
        let e3 = UserSetting::create().user_id(u.id).setting("skin").value("dup").await.unwrap_err();
        let e4 = UserSetting::create().user_id(u.id).setting("k3").value("v").col1(42).await.unwrap_err();
        for e in [&e1, &e2, &e3, &e4] {
            println!("P7 {:?} {e}", e.sqlstate());
        }
        assert_eq!(
            [e1.sqlstate(), e2.sqlstate(), e3.sqlstate(), e4.sqlstate()],
            [Some("23505"), Some("23503"), Some("23505"), Some("23514")]
        );
        let _ = Error::NotFound;
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P10 (test_json test_mixin): JSON properties in a flattened set of columns.
// P11 (test_declarative test_mixin): a set of columns with an index and a
// unique constraint flattened into two models.
mod p10 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Columns, Debug, Clone, PartialEq)]
    pub struct Tracked {
        #[gino(index)]
        pub created: Option<i64>,
        #[gino(unique)]
        pub unique_id: Option<i32>,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "thing", db = DB)]
    pub struct Thing {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(flatten)]
        pub tracked: Tracked,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "another", db = DB)]
    pub struct Another {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(flatten)]
        pub tracked: Tracked,
    }

    #[tokio::test]
    async fn p11_mixin_in_two_models() {
        let _s = bound(&DB).await;
        let r = DB.create_all().await;
        println!("P11 create_all: {r:?}");
        r.unwrap();
        Thing::create().unique_id(Some(1)).await.unwrap();
        Another::create().unique_id(Some(1)).await.unwrap();
        let e = Thing::create().unique_id(Some(1)).await.unwrap_err();
        assert_eq!(e.sqlstate(), Some("23505"));
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P12 (test_json test_non_jsonb / test_reload): the JSON column set as a
// whole, and properties of a plain `json` column.
mod p12 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "news", db = DB)]
    pub struct News {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(property, json, default = 0)]
        pub visits: i32,
        #[gino(property = "parameter")]
        pub weight: Option<i32>,
    }

    #[tokio::test]
    async fn p12_whole_column_and_plain_json() {
        let _s = bound(&DB).await;
        News::create_table().await.unwrap();
        let mut n = News::create().weight(75).await.unwrap();
        assert_eq!(n.visits, 0);
        let r = n.update().set_property(news_props::visits(), news_props::visits() + 10).apply().await;
        println!("P12 json expr update: {r:?} -> {n:?}");
        let r = n.update().visits(10).apply().await;
        println!("P12 json value update: {r:?} -> {n:?}");
        let v: Option<Option<i32>> = n.select(news_props::visits()).await.unwrap();
        println!("P12 stored visits: {v:?}");
        let r = n
            .update()
            .set(news::profile.eq(diesel::dsl::sql::<diesel::sql_types::Json>("'{\"visits\": 20}'::json")))
            .apply()
            .await;
        println!("P12 whole json column update: {r:?} -> {n:?}");
        let v: Option<Option<i32>> = n.select(news_props::visits()).await.unwrap();
        println!("P12 stored visits after whole-column set: {v:?}");
        assert_eq!(n.visits, 20, "refreshed from RETURNING");
        // test_reload: the column emptied, properties read back as absent.
        let r = n.update().set(news::parameter.eq(serde_json::json!({}))).apply().await;
        println!("P12 parameter emptied: {r:?} -> {n:?}");
        assert_eq!(n.weight, None);
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P13 (test_json test_json_path): a nullable plain jsonb column.
mod p13 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "path_test", db = DB)]
    pub struct PathTest {
        #[gino(primary_key)]
        pub id: i32,
        pub data: Option<serde_json::Value>,
    }

    #[tokio::test]
    async fn p13_json_path() {
        let _s = bound(&DB).await;
        PathTest::create_table().await.unwrap();
        let t1 = PathTest::create().data(Some(serde_json::json!({"a": {"b": "c"}}))).await.unwrap();
        let t2: Option<PathTest> = PathTest::query()
            .filter(path_test::data.retrieve_by_path_as_text(vec!["a", "b"]).eq("c"))
            .gino()
            .bind(&DB)
            .first()
            .await
            .unwrap();
        assert_eq!(t2.unwrap().data, t1.data);
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P14 (test_multiple_models_in_one_query, test_adjacency_list): aliases of a
// model with properties.
mod p14 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p14_users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(property, default = 18)]
        pub age: i32,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p14_teams", db = DB)]
    pub struct Team {
        #[gino(primary_key)]
        pub id: i32,
        pub name: String,
        pub parent_id: Option<i32>,
    }

    #[tokio::test]
    async fn p14_aliases() {
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        for _ in 0..3 {
            User::create().await.unwrap();
        }
        let (ua1, ua2) = diesel::alias!(p14_users as ua1, p14_users as ua2);
        let rows: Vec<(User, User)> = ua1
            .inner_join(ua2.on(ua1.field(p14_users::id).lt(ua2.field(p14_users::id))))
            .select((ua1.fields(<User as diesel::Selectable<diesel::pg::Pg>>::construct_selection()), ua2.fields(<User as diesel::Selectable<diesel::pg::Pg>>::construct_selection())))
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        let t1 = Team::create().name("t1").await.unwrap();
        let t2 = Team::create().name("t2").parent_id(Some(t1.id)).await.unwrap();
        let group = diesel::alias!(p14_teams as grp);
        let rows: Vec<(Team, Option<Team>)> = p14_teams::table
            .left_join(group.on(p14_teams::parent_id.eq(group.field(p14_teams::id).nullable())))
            .order_by(p14_teams::id)
            .select((Team::as_select(), group.fields(<Team as diesel::Selectable<diesel::pg::Pg>>::construct_selection()).nullable()))
            .gino()
            .bind(&DB)
            .all()
            .await
            .unwrap();
        assert_eq!(rows, [(t1.clone(), None), (t2, Some(t1))]);
        DB.pop_bind();
    }
}

// COMPILE PROBES
mod c1 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    // test_json test_no_profile: a property named like its own JSON column.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "c1_no_profile", db = DB)]
    pub struct NoProfile {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(property)]
        pub profile: Option<String>,
    }

    #[tokio::test]
    async fn c1_property_named_profile() {
        let _s = bound(&DB).await;
        let r = NoProfile::create_table().await;
        println!("C1 create_table: {r:?}");
        let r = NoProfile::create().profile("x".to_owned()).await;
        println!("C1 create: {r:?}");
        DB.pop_bind();
    }
}

mod c3 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    // test_declarative test_invert_dict: two fields mapped to one column name.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "c3_dup", db = DB)]
    pub struct Dup {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(column = "c1")]
        pub col1: Option<String>,
        #[gino(column = "c1")]
        pub col2: Option<String>,
    }

    #[tokio::test]
    async fn c3_duplicate_column_name() {
        let _s = bound(&DB).await;
        let r = Dup::create_table().await;
        println!("C3 create_table: {r:?}");
        DB.pop_bind();
    }
}


// ---------------------------------------------------------------------------
// P15: a DateTime<Utc> property's SQL expression under a non-UTC session
// time zone (GINO's DateTimeProperty is compared as a naive timestamp).
// P16 (test_json test_crud: `update(balance=None)` stores JSON null, read back
// through `after_get`/default): a null stored for a property with a default.
mod p15 {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p15_people", db = DB)]
    pub struct Person {
        #[gino(primary_key)]
        pub id: i32,
        #[gino(property)]
        pub joined: Option<DateTime<Utc>>,
        #[gino(property, default = 0)]
        pub balance: i64,
    }

    #[tokio::test]
    async fn p15_timestamptz_property_and_null_default() {
        let s = bound(&DB).await;
        Person::create_table().await.unwrap();
        let joined = Utc.with_ymd_and_hms(2018, 11, 19, 12, 0, 0).unwrap();
        let p = Person::create().joined(joined).await.unwrap();
        let conn = s.engine.acquire().reusable(false).await.unwrap();
        conn.status(diesel::sql_query("SET TIME ZONE 'Asia/Shanghai'")).await.unwrap();
        let read: Option<Option<DateTime<Utc>>> = p.select(p15_people_props::joined()).bind(&conn).await.unwrap();
        println!("P15 joined stored {joined}, selected through the SQL expression under Asia/Shanghai: {read:?}");
        let n: i64 = Person::query()
            .filter(p15_people_props::joined().eq(joined))
            .count()
            .gino()
            .bind(&conn)
            .one()
            .await
            .unwrap();
        println!("P15 filter joined = stored value count: {n}");
        let via_model = Person::get(p.id).bind(&conn).await.unwrap().unwrap().joined;
        println!("P15 via model: {via_model:?}");
        conn.release().await.unwrap();
        // P16
        DB.status(diesel::sql_query("UPDATE p15_people SET profile = profile || '{\"balance\": null}'")).await.unwrap();
        let r = Person::get(p.id).await;
        println!("P16 read of balance = null with default 0: {r:?}");
        assert_eq!(n, 1, "filter on the stored instant");
        assert_eq!(read, Some(Some(joined)));
        DB.pop_bind();
    }
}

// ---------------------------------------------------------------------------
// P17 (test_multiple_primary_key_order; test_create_from_instance with a key).
mod p17 {
    use super::*;
    pub static DB: Gino = Gino::secondary();

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "name_cards", db = DB)]
    pub struct NameCard {
        #[gino(primary_key)]
        pub last_name: String,
        #[gino(primary_key)]
        pub first_name: String,
    }

    #[derive(Model, Debug, Clone, PartialEq)]
    #[gino(table = "p17_users", db = DB)]
    pub struct User {
        #[gino(primary_key)]
        pub id: i64,
        pub nickname: String,
    }

    #[tokio::test]
    async fn p17_key_order_and_instance_with_key() {
        let _s = bound(&DB).await;
        DB.create_all().await.unwrap();
        NameCard::create().first_name("first").last_name("last").await.unwrap();
        let nc = NameCard::get(("last".to_owned(), "first".to_owned())).await.unwrap();
        println!("P17 get by (last, first): {nc:?}");
        assert!(nc.is_some());
        let draft = User::create().id(7).nickname("seven").build().unwrap();
        let stored = draft.create().await.unwrap();
        println!("P17 instance with id 7 created as: {stored:?}");
        let lit = User { id: 9, nickname: "nine".into() };
        let stored9 = lit.create().await.unwrap();
        println!("P17 literal instance with id 9 created as: {stored9:?}");
        assert_eq!((stored.id, stored9.id), (7, 9), "explicit key of an in-memory instance kept");
        DB.pop_bind();
    }
}
