//! The schema layer against a real server: `create_all` / `drop_all` and
//! per-table creation from hand-written table metadata (what
//! `#[derive(Model)]` generates), checked in PostgreSQL's catalogs.
//!
//! Every test has its own `Gino` and tables: the model registry is
//! process-wide, and a `Gino` finds only the models registered for it.
mod common;

use std::future::IntoFuture;

use diesel::sql_types::Text;
use gino::model::{
    CheckMeta, ColumnMeta, EnumMeta, ForeignKeyMeta, IndexKey, IndexMeta, ModelDb, ModelEntry,
    TableMeta, UniqueMeta,
};
use gino::prelude::*;
use gino::schema::{create_statements, create_tables, drop_tables};
use gino::{Bind, Error, Transaction};

/// A NOT NULL column without default.
const fn col(name: &'static str, sql_type: &'static str) -> ColumnMeta {
    ColumnMeta {
        name,
        sql_type,
        nullable: false,
        serial: false,
        server_default: None,
        unique: false,
        comment: None,
    }
}

/// A NULL-able column without default.
const fn null_col(name: &'static str, sql_type: &'static str) -> ColumnMeta {
    ColumnMeta {
        nullable: true,
        ..col(name, sql_type)
    }
}

/// A `serial` primary key column.
const fn id() -> ColumnMeta {
    ColumnMeta {
        serial: true,
        ..col("id", "serial")
    }
}

/// A table with only columns and a primary key.
const fn table(
    name: &'static str,
    columns: &'static [ColumnMeta],
    primary_key: &'static [&'static str],
) -> TableMeta {
    TableMeta {
        name,
        schema: None,
        columns,
        primary_key,
        indexes: &[],
        uniques: &[],
        checks: &[],
        foreign_keys: &[],
        enums: &[],
        comment: None,
    }
}

/// A foreign key from `column` to `table.id`.
const fn fk(column: &'static [&'static str], table: &'static str) -> ForeignKeyMeta {
    ForeignKeyMeta {
        name: None,
        columns: column,
        references_table: table,
        references_schema: None,
        references_columns: &["id"],
        on_delete: None,
        on_update: None,
    }
}

/// Registers `tables` as the models of `db`, as `#[derive(Model)]` does.
macro_rules! models {
    ($db:ident: $($table:ident),+ $(,)?) => {
        static $db: gino::Gino = gino::Gino::secondary();
        $(
            gino::reexports::inventory::submit! {
                ModelEntry { table: &$table, db: ModelDb::Named(|| &$db) }
            }
        )+
    };
}

/// A fresh database with `db` bound to its engine.
async fn bound(db: &'static gino::Gino) -> common::Setup {
    let s = common::setup().await;
    db.set_bind(s.engine.clone()).await.expect("bind");
    s
}

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The `v` column of `sql` run on `on`, with `:t` bound to `t`.
async fn strings<'a>(on: impl Into<Bind<'a>>, sql: &str, t: &str) -> Vec<String> {
    let rows: Vec<Value> = gino::text(sql)
        .bind::<Text, _>("t", t.to_owned())
        .gino()
        .bind(on)
        .all()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|r| r.v).collect()
}

/// The tables of the `public` schema, by name.
async fn tables<'a>(on: impl Into<Bind<'a>>) -> Vec<String> {
    let sql = "SELECT tablename::text AS v FROM pg_tables \
               WHERE schemaname = 'public' AND :t = :t ORDER BY 1";
    strings(on, sql, "").await
}

/// The enum types, each as `name: label, label, ...`.
async fn enum_types<'a>(on: impl Into<Bind<'a>>) -> Vec<String> {
    let sql = "SELECT t.typname || ': ' || string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) \
               AS v FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid \
               WHERE :t = :t GROUP BY t.typname ORDER BY 1";
    strings(on, sql, "").await
}

/// The constraints of `table`, each as `name: definition`.
async fn constraints<'a>(on: impl Into<Bind<'a>>, table: &str) -> Vec<String> {
    let sql = "SELECT conname || ': ' || pg_get_constraintdef(oid) AS v FROM pg_constraint \
               WHERE conrelid = :t::regclass ORDER BY conname";
    strings(on, sql, table).await
}

/// The `CREATE INDEX` statements PostgreSQL reports for `table`.
async fn indexes<'a>(on: impl Into<Bind<'a>>, table: &str) -> Vec<String> {
    let sql = "SELECT indexdef AS v FROM pg_indexes WHERE tablename = :t ORDER BY indexname";
    strings(on, sql, table).await
}

/// The comment on the table `name` (schema-qualified or on the search
/// path), if it exists and has one.
async fn table_comment<'a>(on: impl Into<Bind<'a>>, name: &str) -> Option<String> {
    diesel::select(
        diesel::dsl::sql::<diesel::sql_types::Nullable<Text>>("obj_description(to_regclass(")
            .bind::<Text, _>(name.to_owned())
            .sql("), 'pg_class')"),
    )
    .gino()
    .bind(on)
    .one()
    .await
    .unwrap()
}

async fn exec<'a>(on: impl Into<Bind<'a>>, sql: &str) -> gino::Result<gino::Status> {
    diesel::sql_query(sql).gino().bind(on).status().await
}

/// SQLSTATE and constraint of a database error.
fn violation(result: gino::Result<gino::Status>) -> (String, Option<String>) {
    match result {
        Err(Error::Database(e)) => (e.code().to_owned(), e.constraint().map(str::to_owned)),
        other => panic!("expected a database error, got {other:?}"),
    }
}

static ACCOUNTS: TableMeta = TableMeta {
    uniques: &[
        UniqueMeta {
            name: Some("accounts_nickname_bio_key"),
            columns: &["nickname", "bio"],
        },
        UniqueMeta {
            name: None,
            columns: &["bio", "score"],
        },
    ],
    checks: &[
        CheckMeta {
            name: Some("accounts_score_positive"),
            expression: "score >= 0",
        },
        CheckMeta {
            name: None,
            expression: "nickname <> ''",
        },
    ],
    ..table(
        "accounts",
        &[
            id(),
            ColumnMeta {
                unique: true,
                comment: None,
                ..col("email", "text")
            },
            ColumnMeta {
                server_default: Some("'noname'"),
                ..col("nickname", "varchar(50)")
            },
            null_col("bio", "text"),
            ColumnMeta {
                server_default: Some("0"),
                ..col("score", "integer")
            },
            ColumnMeta {
                server_default: Some("now()"),
                ..null_col("created", "timestamptz")
            },
        ],
        &["id"],
    )
};
models!(COLUMNS_DB: ACCOUNTS);

#[tokio::test]
async fn columns_defaults_uniques_and_checks() {
    let s = bound(&COLUMNS_DB).await;
    COLUMNS_DB.create_all().await.unwrap();
    let columns = strings(
        &s.engine,
        "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || \
         coalesce(column_default, '-') AS v FROM information_schema.columns \
         WHERE table_name = :t ORDER BY ordinal_position",
        "accounts",
    )
    .await;
    assert_eq!(
        columns,
        [
            "id integer NO nextval('accounts_id_seq'::regclass)",
            "email text NO -",
            "nickname character varying NO 'noname'::character varying",
            "bio text YES -",
            "score integer NO 0",
            "created timestamp with time zone YES now()",
        ]
    );
    assert_eq!(
        constraints(&s.engine, "accounts").await,
        [
            "accounts_bio_score_key: UNIQUE (bio, score)",
            "accounts_email_key: UNIQUE (email)",
            "accounts_nickname_bio_key: UNIQUE (nickname, bio)",
            "accounts_nickname_check: CHECK (((nickname)::text <> ''::text))",
            "accounts_pkey: PRIMARY KEY (id)",
            "accounts_score_positive: CHECK ((score >= 0))",
        ]
    );

    exec(&s.engine, "INSERT INTO accounts (email) VALUES ('a@x')")
        .await
        .unwrap();
    let defaults = strings(
        &s.engine,
        "SELECT nickname || ' ' || score || ' ' || (created IS NOT NULL) AS v \
         FROM accounts WHERE email = :t",
        "a@x",
    )
    .await;
    assert_eq!(defaults, ["noname 0 true"]);
    let negative = exec(
        &s.engine,
        "INSERT INTO accounts (email, score) VALUES ('b@x', -1)",
    )
    .await;
    assert_eq!(
        violation(negative),
        ("23514".into(), Some("accounts_score_positive".into()))
    );
    let duplicate = exec(&s.engine, "INSERT INTO accounts (email) VALUES ('a@x')").await;
    assert_eq!(
        violation(duplicate),
        ("23505".into(), Some("accounts_email_key".into()))
    );
}

/// The tutorial's `Booking`: a composite primary key and two multi-column
/// indexes, one of them unique.
static BOOKINGS: TableMeta = TableMeta {
    indexes: &[
        IndexMeta {
            name: "bookings_idx_day_room",
            keys: &[IndexKey::Column("day"), IndexKey::Column("room")],
            unique: true,
        },
        IndexMeta {
            name: "bookings_idx_booker_room",
            keys: &[IndexKey::Column("booker"), IndexKey::Column("room")],
            unique: false,
        },
    ],
    ..table(
        "bookings",
        &[
            col("day", "date"),
            col("booker", "text"),
            null_col("room", "text"),
        ],
        &["day", "booker"],
    )
};
models!(BOOKING_DB: BOOKINGS);

/// Two default index names alike: `user.group_id` and `user_group.id`.
static MEMBERS: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "ix_user_group_id",
        keys: &[IndexKey::Column("group_id")],
        unique: false,
    }],
    ..table(
        "user",
        &[col("id", "integer"), col("group_id", "integer")],
        &["id"],
    )
};
static GROUPS: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "ix_user_group_id",
        keys: &[IndexKey::Column("id")],
        unique: false,
    }],
    ..table("user_group", &[col("id", "integer")], &["id"])
};
models!(CLASHING_DB: MEMBERS, GROUPS);

/// Two indexes of one schema named alike: the second would be skipped by
/// its `IF NOT EXISTS` (its table left unindexed); nothing is created and
/// the error names both.
#[tokio::test]
async fn names_alike_in_one_schema_are_refused_before_anything_runs() {
    let s = bound(&CLASHING_DB).await;
    let error = CLASHING_DB.create_all().await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, gino::Error::Configuration(_))
            && message.contains("`user`")
            && message.contains("`user_group`"),
        "{message}"
    );
    assert!(tables(&s.engine).await.is_empty());
}

/// An index on `nick` named `name`.
const fn nick_index(name: &'static str) -> IndexMeta {
    IndexMeta {
        name,
        keys: &[IndexKey::Column("nick")],
        unique: false,
    }
}
const ACCOUNT_COLUMNS: &[ColumnMeta] = &[
    id(),
    ColumnMeta {
        unique: true,
        ..col("email", "text")
    },
    col("nick", "text"),
];
static ON_THE_KEY: TableMeta = TableMeta {
    indexes: &[nick_index("accounts_pkey")],
    ..table("accounts", ACCOUNT_COLUMNS, &["id"])
};
static ON_THE_UNIQUE: TableMeta = TableMeta {
    indexes: &[nick_index("accounts_email_key")],
    ..table("accounts", ACCOUNT_COLUMNS, &["id"])
};
static ON_THE_SEQUENCE: TableMeta = TableMeta {
    indexes: &[nick_index("accounts_id_seq")],
    ..table("accounts", ACCOUNT_COLUMNS, &["id"])
};
static ON_THE_COMPOSITE: TableMeta = TableMeta {
    uniques: &[UniqueMeta {
        name: None,
        columns: &["email", "nick"],
    }],
    indexes: &[nick_index("accounts_email_nick_key")],
    ..table("accounts", ACCOUNT_COLUMNS, &["id"])
};

/// An index named as PostgreSQL names a key, a unique constraint or a
/// serial's sequence of its own would find that name taken (and with
/// `IF NOT EXISTS`, be skipped in silence): refused before anything runs.
#[tokio::test]
async fn names_postgresql_picks_are_not_declared_again() {
    let s = common::setup().await;
    for (table, picked) in [
        (&ON_THE_KEY, "primary key"),
        (&ON_THE_UNIQUE, "unique constraint of `email`"),
        (&ON_THE_SEQUENCE, "sequence of `id`"),
        (&ON_THE_COMPOSITE, "unique constraint of table"),
    ] {
        let error = create_tables(vec![table], Bind::Default)
            .bind(&s.engine)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, gino::Error::Configuration(_)) && message.contains(picked),
            "{message}"
        );
        assert!(tables(&s.engine).await.is_empty());
    }
}

/// Two models of one table, declared differently (GINO's tests declare
/// `NameCard` twice, its key in either order).
static CARDS_BY_NAME: TableMeta = table(
    "cards",
    &[col("first", "text"), col("last", "text")],
    &["first", "last"],
);
static CARDS_BY_SURNAME: TableMeta = table(
    "cards",
    &[col("first", "text"), col("last", "text")],
    &["last", "first"],
);
static CARDS_AGAIN: TableMeta = table(
    "cards",
    &[col("first", "text"), col("last", "text")],
    &["last", "first"],
);
models!(TWICE_DB: CARDS_BY_NAME, CARDS_BY_SURNAME);
models!(ALIKE_DB: CARDS_BY_SURNAME, CARDS_AGAIN);

#[tokio::test]
async fn a_table_two_models_declare_differently_is_refused() {
    let s = bound(&TWICE_DB).await;
    let error = TWICE_DB.create_all().await.unwrap_err();
    assert!(
        matches!(&error, gino::Error::Configuration(m) if m.contains("`cards`")),
        "{error}"
    );
    assert!(tables(&s.engine).await.is_empty());

    // Declared alike, it is one table.
    let s = bound(&ALIKE_DB).await;
    ALIKE_DB.create_all().await.unwrap();
    assert_eq!(tables(&s.engine).await, ["cards"]);
}

/// Two enums of one type name (`orders::Status`, `users::Status`): only
/// one type would be made, and the other model's values refused by it.
static ORDER_STATUS: EnumMeta = EnumMeta {
    name: "status",
    variants: &["pending", "shipped"],
};
static ACCOUNT_STATUS: EnumMeta = EnumMeta {
    name: "status",
    variants: &["active", "banned"],
};
static SHIPMENTS: TableMeta = TableMeta {
    enums: &[&ORDER_STATUS],
    ..table(
        "shipments",
        &[col("id", "integer"), col("status", "status")],
        &["id"],
    )
};
static MEMBERSHIPS: TableMeta = TableMeta {
    enums: &[&ACCOUNT_STATUS],
    ..table(
        "memberships",
        &[col("id", "integer"), col("status", "status")],
        &["id"],
    )
};
models!(ENUM_CLASH_DB: SHIPMENTS, MEMBERSHIPS);
/// An enum type named as a table: the table's row type has its name.
static STATUS_TABLE: TableMeta = table("status", &[col("id", "integer")], &["id"]);
models!(ENUM_TABLE_DB: SHIPMENTS, STATUS_TABLE);

#[tokio::test]
async fn enum_types_named_alike_or_as_a_table_are_refused_before_anything_runs() {
    for (db, needle) in [
        (&ENUM_CLASH_DB, "banned"),
        (&ENUM_TABLE_DB, "table `status`"),
    ] {
        let s = bound(db).await;
        let error = db.create_all().await.unwrap_err();
        assert!(
            matches!(&error, gino::Error::Configuration(m) if m.contains(needle)),
            "{error}"
        );
        assert!(tables(&s.engine).await.is_empty());
        assert!(enum_types(&s.engine).await.is_empty());
    }
}

#[tokio::test]
async fn composite_primary_key_and_multi_column_indexes() {
    let s = bound(&BOOKING_DB).await;
    BOOKING_DB.create_all().await.unwrap();
    assert_eq!(
        indexes(&s.engine, "bookings").await,
        [
            "CREATE INDEX bookings_idx_booker_room ON public.bookings USING btree (booker, room)",
            "CREATE UNIQUE INDEX bookings_idx_day_room ON public.bookings USING btree (day, room)",
            "CREATE UNIQUE INDEX bookings_pkey ON public.bookings USING btree (day, booker)",
        ]
    );
    assert_eq!(
        constraints(&s.engine, "bookings").await,
        ["bookings_pkey: PRIMARY KEY (day, booker)"]
    );
    exec(
        &s.engine,
        "INSERT INTO bookings VALUES ('2024-01-01', 'ann', 'red')",
    )
    .await
    .unwrap();
    let same_room = exec(
        &s.engine,
        "INSERT INTO bookings VALUES ('2024-01-01', 'bob', 'red')",
    )
    .await;
    assert_eq!(
        violation(same_room),
        ("23505".into(), Some("bookings_idx_day_room".into()))
    );
    let same_booker = exec(
        &s.engine,
        "INSERT INTO bookings VALUES ('2024-01-01', 'ann', 'blue')",
    )
    .await;
    assert_eq!(
        violation(same_booker),
        ("23505".into(), Some("bookings_pkey".into()))
    );
}

// `comments` sorts (and is registered) before the `posts` it references;
// `players` and `teams` reference each other.
static COMMENTS: TableMeta = TableMeta {
    foreign_keys: &[ForeignKeyMeta {
        on_delete: Some("CASCADE"),
        ..fk(&["post_id"], "posts")
    }],
    ..table(
        "comments",
        &[id(), col("post_id", "integer"), col("body", "text")],
        &["id"],
    )
};
static POSTS: TableMeta = table("posts", &[id(), col("title", "text")], &["id"]);
static PLAYERS: TableMeta = TableMeta {
    foreign_keys: &[ForeignKeyMeta {
        on_delete: Some("CASCADE"),
        ..fk(&["team_id"], "teams")
    }],
    ..table("players", &[id(), null_col("team_id", "integer")], &["id"])
};
static TEAMS: TableMeta = TableMeta {
    foreign_keys: &[ForeignKeyMeta {
        name: Some("teams_captain_fk"),
        on_delete: Some("SET NULL"),
        on_update: Some("CASCADE"),
        ..fk(&["captain_id"], "players")
    }],
    ..table("teams", &[id(), null_col("captain_id", "integer")], &["id"])
};
models!(FK_DB: COMMENTS, POSTS, PLAYERS, TEAMS);

#[tokio::test]
async fn foreign_keys_in_dependency_order_and_cycles() {
    let s = bound(&FK_DB).await;
    let names: Vec<_> = create_statements(&[&COMMENTS, &POSTS], false)
        .iter()
        .map(|sql| sql.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["CREATE TABLE \"posts\" (", "CREATE TABLE \"comments\" ("]
    );
    FK_DB.create_all().await.unwrap();
    assert_eq!(
        tables(&s.engine).await,
        ["comments", "players", "posts", "teams"]
    );
    assert_eq!(
        constraints(&s.engine, "comments").await,
        [
            "comments_pkey: PRIMARY KEY (id)",
            "comments_post_id_fkey: FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE",
        ]
    );
    assert_eq!(
        constraints(&s.engine, "players").await[1],
        "players_team_id_fkey: FOREIGN KEY (team_id) REFERENCES teams(id) ON DELETE CASCADE"
    );
    assert_eq!(
        constraints(&s.engine, "teams").await[0],
        "teams_captain_fk: FOREIGN KEY (captain_id) REFERENCES players(id) \
         ON UPDATE CASCADE ON DELETE SET NULL"
    );

    // ON DELETE CASCADE: deleting the parent deletes its children.
    for sql in [
        "INSERT INTO posts (title) VALUES ('hello')",
        "INSERT INTO comments (post_id, body) VALUES (1, 'first'), (1, 'second')",
        "DELETE FROM posts",
    ] {
        exec(&s.engine, sql).await.unwrap();
    }
    let left = strings(
        &s.engine,
        "SELECT count(*)::text AS v FROM comments WHERE :t = :t",
        "",
    );
    assert_eq!(left.await, ["0"]);
    let orphan = exec(
        &s.engine,
        "INSERT INTO comments (post_id, body) VALUES (7, 'lost')",
    )
    .await;
    assert_eq!(
        violation(orphan),
        ("23503".into(), Some("comments_post_id_fkey".into()))
    );

    // Both directions of the cycle are enforced.
    for sql in [
        "INSERT INTO teams (captain_id) VALUES (NULL)",
        "INSERT INTO players (team_id) VALUES (1)",
        "UPDATE teams SET captain_id = 1",
        "DELETE FROM players",
    ] {
        exec(&s.engine, sql).await.unwrap();
    }
    let captain = "SELECT coalesce(captain_id::text, 'none') AS v FROM teams WHERE :t = :t";
    assert_eq!(strings(&s.engine, captain, "").await, ["none"]);

    FK_DB.drop_all().await.unwrap();
    assert!(tables(&s.engine).await.is_empty());
}

// `cities` references a column that only a unique index makes unique.
static COUNTRIES: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "countries_code",
        keys: &[IndexKey::Column("code")],
        unique: true,
    }],
    ..table("countries", &[id(), col("code", "text")], &["id"])
};
static CITIES: TableMeta = TableMeta {
    foreign_keys: &[ForeignKeyMeta {
        references_columns: &["code"],
        ..fk(&["country_code"], "countries")
    }],
    ..table("cities", &[id(), col("country_code", "text")], &["id"])
};
models!(INDEXED_FK_DB: CITIES, COUNTRIES);

#[tokio::test]
async fn a_foreign_key_may_reference_a_unique_index() {
    let s = bound(&INDEXED_FK_DB).await;
    let firsts: Vec<_> = create_statements(&[&CITIES, &COUNTRIES], false)
        .iter()
        .map(|sql| sql.split(" (").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        firsts,
        [
            "CREATE TABLE \"countries\"",
            "CREATE UNIQUE INDEX \"countries_code\" ON \"countries\"",
            "CREATE TABLE \"cities\"",
        ]
    );
    // With checkfirst, the index goes with its table, in one statement.
    let checked = create_statements(&[&CITIES, &COUNTRIES], true);
    assert_eq!(checked.len(), 2, "{checked:#?}");
    let (table, index) = (
        checked[0]
            .find("CREATE TABLE IF NOT EXISTS \"countries\"")
            .unwrap(),
        checked[0]
            .find("CREATE UNIQUE INDEX IF NOT EXISTS \"countries_code\"")
            .unwrap(),
    );
    assert!(table < index, "{}", checked[0]);
    assert!(checked[1].starts_with("CREATE TABLE IF NOT EXISTS \"cities\""));
    INDEXED_FK_DB.create_all().await.unwrap();
    exec(&s.engine, "INSERT INTO countries (code) VALUES ('fr')")
        .await
        .unwrap();
    exec(&s.engine, "INSERT INTO cities (country_code) VALUES ('fr')")
        .await
        .unwrap();
    let unknown = exec(&s.engine, "INSERT INTO cities (country_code) VALUES ('xx')").await;
    assert_eq!(
        violation(unknown),
        ("23503".into(), Some("cities_country_code_fkey".into()))
    );
    INDEXED_FK_DB.drop_all().await.unwrap();
    assert!(tables(&s.engine).await.is_empty());
}

static MOOD: EnumMeta = EnumMeta {
    name: "mood",
    variants: &["sad", "ok", "it's great"],
};
static SIZE: EnumMeta = EnumMeta {
    name: "size",
    variants: &["S", "M", "L"],
};
static PEOPLE: TableMeta = TableMeta {
    enums: &[&MOOD],
    comment: None,
    ..table(
        "people",
        &[
            col("name", "text"),
            ColumnMeta {
                server_default: Some("'ok'"),
                ..col("mood", "mood")
            },
        ],
        &["name"],
    )
};
static PETS: TableMeta = TableMeta {
    enums: &[&MOOD, &SIZE],
    comment: None,
    ..table(
        "pets",
        &[
            col("name", "text"),
            null_col("mood", "mood"),
            null_col("size", "size"),
        ],
        &["name"],
    )
};
models!(ENUM_DB: PETS, PEOPLE);

#[tokio::test]
async fn enum_types_come_before_their_tables_and_go_after_them() {
    let s = bound(&ENUM_DB).await;
    let statements = create_statements(&[&PEOPLE, &PETS], false);
    assert_eq!(
        statements[..2],
        [
            "CREATE TYPE \"mood\" AS ENUM ('sad', 'ok', 'it''s great')",
            "CREATE TYPE \"size\" AS ENUM ('S', 'M', 'L')",
        ]
    );
    assert_eq!(statements.len(), 4, "each type once: {statements:?}");

    ENUM_DB.create_all().await.unwrap();
    assert_eq!(
        enum_types(&s.engine).await,
        ["mood: sad, ok, it's great", "size: S, M, L"]
    );
    exec(&s.engine, "INSERT INTO people (name) VALUES ('ann')")
        .await
        .unwrap();
    let mood = "SELECT mood::text AS v FROM people WHERE name = :t";
    assert_eq!(strings(&s.engine, mood, "ann").await, ["ok"]);
    let unknown = exec(
        &s.engine,
        "INSERT INTO pets (name, mood) VALUES ('rex', 'angry')",
    )
    .await;
    assert_eq!(violation(unknown).0, "22P02");

    // Dropping one of the tables keeps the type the other still uses.
    drop_tables(vec![&PEOPLE], Bind::Db(&ENUM_DB))
        .await
        .unwrap();
    assert_eq!(tables(&s.engine).await, ["pets"]);
    assert_eq!(enum_types(&s.engine).await.len(), 2);

    ENUM_DB.drop_all().await.unwrap();
    assert!(tables(&s.engine).await.is_empty());
    assert!(enum_types(&s.engine).await.is_empty());
    // Without checkfirst, dropping what is missing fails.
    let again = ENUM_DB.drop_all().checkfirst(false).await.unwrap_err();
    assert_eq!(again.sqlstate(), Some("42P01"));
    ENUM_DB.drop_all().await.unwrap();
}

static LEVEL: EnumMeta = EnumMeta {
    name: "level",
    variants: &["low", "high"],
};
// A cycle, an enum and an index: every kind of statement that needs a
// DO block or IF NOT EXISTS for checkfirst.
static ALPHA: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "alpha_level",
        keys: &[IndexKey::Column("level")],
        unique: false,
    }],
    foreign_keys: &[fk(&["omega_id"], "omega")],
    enums: &[&LEVEL],
    comment: None,
    ..table(
        "alpha",
        &[id(), col("level", "level"), null_col("omega_id", "integer")],
        &["id"],
    )
};
static OMEGA: TableMeta = TableMeta {
    foreign_keys: &[ForeignKeyMeta {
        name: Some("omega_alpha_fk"),
        ..fk(&["alpha_id"], "alpha")
    }],
    ..table("omega", &[id(), null_col("alpha_id", "integer")], &["id"])
};
models!(CHECKFIRST_DB: OMEGA, ALPHA);

#[tokio::test]
async fn checkfirst_is_idempotent_and_without_it_nothing_is_half_done() {
    let s = bound(&CHECKFIRST_DB).await;
    CHECKFIRST_DB.create_all().await.unwrap();
    let catalog = async || {
        (
            tables(&s.engine).await,
            enum_types(&s.engine).await,
            constraints(&s.engine, "alpha").await,
            constraints(&s.engine, "omega").await,
            indexes(&s.engine, "alpha").await,
        )
    };
    let first = catalog().await;
    assert_eq!(first.0, ["alpha", "omega"]);
    assert_eq!(
        first.2,
        [
            "alpha_omega_id_fkey: FOREIGN KEY (omega_id) REFERENCES omega(id)",
            "alpha_pkey: PRIMARY KEY (id)",
        ]
    );
    CHECKFIRST_DB.create_all().await.unwrap();
    assert_eq!(
        catalog().await,
        first,
        "a second create_all changes nothing"
    );

    let existing = CHECKFIRST_DB.create_all().checkfirst(false).await;
    assert_eq!(
        existing.unwrap_err().sqlstate(),
        Some("42710"),
        "type exists"
    );

    // A table in the way of a plain create: the statements before it
    // (the type, `alpha`) are undone with it.
    CHECKFIRST_DB.drop_all().await.unwrap();
    exec(&s.engine, "CREATE TABLE omega (x int)").await.unwrap();
    let err = CHECKFIRST_DB
        .create_all()
        .checkfirst(false)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P07"), "{err}");
    assert_eq!(tables(&s.engine).await, ["omega"]);
    assert!(enum_types(&s.engine).await.is_empty());
    common::assert_pool_clean(&s.engine).await;

    // Dropping with checkfirst skips the missing `alpha` and its key.
    CHECKFIRST_DB.drop_all().await.unwrap();
    assert!(tables(&s.engine).await.is_empty());
    CHECKFIRST_DB.drop_all().await.unwrap();
}

static GROWN: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "grown_email",
        keys: &[IndexKey::Column("email")],
        unique: false,
    }],
    ..table("grown", &[id(), col("email", "text")], &["id"])
};
models!(GROWN_DB: GROWN);

/// With checkfirst, a table that exists is skipped with its indexes, as
/// SQLAlchemy skips it: an index the model gained since the table was made
/// (on a column the table lacks) neither fails `create_all` nor is built.
#[tokio::test]
async fn an_existing_table_is_skipped_with_the_indexes_its_model_gained() {
    let s = bound(&GROWN_DB).await;
    exec(&s.engine, "CREATE TABLE grown (id int PRIMARY KEY)")
        .await
        .unwrap();
    GROWN_DB.create_all().await.unwrap();
    assert_eq!(
        indexes(&s.engine, "grown").await,
        ["CREATE UNIQUE INDEX grown_pkey ON public.grown USING btree (id)"]
    );
    GROWN_DB.drop_all().await.unwrap();
    GROWN_DB.create_all().await.unwrap();
    assert_eq!(
        indexes(&s.engine, "grown").await,
        [
            "CREATE INDEX grown_email ON public.grown USING btree (email)",
            "CREATE UNIQUE INDEX grown_pkey ON public.grown USING btree (id)",
        ]
    );
    GROWN_DB.create_all().await.unwrap();
    GROWN_DB.drop_all().await.unwrap();
}

static RACE_PARENT: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "race_parent_label",
        keys: &[IndexKey::Column("label")],
        unique: false,
    }],
    ..table("race_parent", &[id(), col("label", "text")], &["id"])
};
static RACE_CHILD: TableMeta = TableMeta {
    foreign_keys: &[fk(&["parent_id"], "race_parent")],
    ..table("race_child", &[id(), col("parent_id", "integer")], &["id"])
};
models!(RACE_DB: RACE_PARENT, RACE_CHILD);

/// Instances of an app starting at once each run `create_all` (and tests
/// `drop_all`): PostgreSQL's `IF NOT EXISTS` alone lets two of them find a
/// table missing and the later one fail on the catalog's unique index.
#[tokio::test]
async fn concurrent_create_all_and_drop_all_wait_for_each_other() {
    let s = bound(&RACE_DB).await;
    for round in 0..5 {
        let created =
            futures_util::future::join_all((0..6).map(|_| RACE_DB.create_all().into_future()))
                .await;
        for result in created {
            result.unwrap_or_else(|e| panic!("create_all of round {round}: {e}"));
        }
        assert_eq!(tables(&s.engine).await, ["race_child", "race_parent"]);
        let dropped =
            futures_util::future::join_all((0..6).map(|_| RACE_DB.drop_all().into_future())).await;
        for result in dropped {
            result.unwrap_or_else(|e| panic!("drop_all of round {round}: {e}"));
        }
        assert!(tables(&s.engine).await.is_empty());
    }
    common::assert_pool_clean(&s.engine).await;
}

static WAITED: TableMeta = table("waited", &[id()], &["id"]);
models!(WAIT_DB: WAITED);

/// A schema change waits for one in progress, and one given up on while it
/// waits leaves nothing behind: no session still waiting for the lock, no
/// connection in a transaction.
#[tokio::test]
async fn a_schema_change_waits_for_one_in_progress_and_can_be_given_up_on() {
    let s = bound(&WAIT_DB).await;
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    let tx = holder.begin().await.unwrap();
    // Holds the lock until `tx` ends.
    WAIT_DB.create_all().bind(&holder).await.unwrap();

    // pg_stat_activity is read once per transaction: ask from outside it.
    let other = common::observer(&s).await;
    let waiting = tokio::spawn(WAIT_DB.drop_all().into_future());
    common::eventually("drop_all waits for the open create_all", || async {
        common::sessions_running(&other, "pg_advisory_xact_lock").await == 1
    })
    .await;
    assert!(!waiting.is_finished());
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    common::eventually("the abandoned drop_all stops waiting", || async {
        common::sessions_running(&other, "pg_advisory_xact_lock").await == 0
    })
    .await;

    tx.commit().await.unwrap();
    holder.release().await.unwrap();
    assert_eq!(tables(&s.engine).await, ["waited"]);
    WAIT_DB.drop_all().await.unwrap();
    assert!(tables(&s.engine).await.is_empty());
    common::assert_pool_clean(&s.engine).await;
}

static LONELY: TableMeta = table("lonely", &[id()], &["id"]);
static OTHER: TableMeta = table("other", &[id()], &["id"]);
models!(TABLES_DB: LONELY, OTHER);

#[tokio::test]
async fn create_and_drop_single_tables() {
    let s = bound(&TABLES_DB).await;
    create_tables(vec![&LONELY], Bind::Db(&TABLES_DB))
        .await
        .unwrap();
    assert_eq!(tables(&s.engine).await, ["lonely"]);
    // Bound elsewhere: to the engine itself.
    create_tables(vec![&OTHER], Bind::Default)
        .bind(&s.engine)
        .await
        .unwrap();
    assert_eq!(tables(&s.engine).await, ["lonely", "other"]);

    drop_tables(vec![&LONELY], Bind::Db(&TABLES_DB))
        .await
        .unwrap();
    assert_eq!(tables(&s.engine).await, ["other"]);
    drop_tables(vec![&LONELY], Bind::Db(&TABLES_DB))
        .await
        .unwrap();
    let missing = drop_tables(vec![&LONELY], Bind::Db(&TABLES_DB))
        .checkfirst(false)
        .await
        .unwrap_err();
    assert_eq!(missing.sqlstate(), Some("42P01"));
}

static SLASHED: EnumMeta = EnumMeta {
    name: "slashed",
    variants: &[r"it\'s", r"C:\"],
};
static PATHS: TableMeta = TableMeta {
    enums: &[&SLASHED],
    comment: Some(r"a\'comment"),
    ..table("paths", &[col("kind", "slashed")], &[])
};

/// Text that gino writes into DDL as a literal (enum labels, comments, a
/// sequence's name) keeps its backslashes on a session with
/// `standard_conforming_strings` off, where a plain literal's backslash
/// escapes the quote after it.
#[tokio::test]
async fn literals_keep_their_backslashes_without_standard_conforming_strings() {
    let s = common::setup().await;
    let url = common::url_with(&s.db, "options=-c%20standard_conforming_strings%3Doff");
    let off = gino::create_engine(&url, gino::EngineOptions::new())
        .await
        .unwrap();
    create_tables(vec![&PATHS], Bind::Default)
        .bind(&off)
        .await
        .unwrap();
    assert_eq!(enum_types(&s.engine).await, [r"slashed: it\'s, C:\"]);
    assert_eq!(
        table_comment(&s.engine, "paths").await.as_deref(),
        Some(r"a\'comment")
    );
    let seq = gino::schema::Sequence::new(r"odd\'seq");
    seq.create().bind(&off).await.unwrap();
    let first: i64 = diesel::select(seq.next_value())
        .gino()
        .bind(&off)
        .one()
        .await
        .unwrap();
    assert_eq!(first, 1);
    off.close().await;
}

static NOTES: TableMeta = TableMeta {
    comment: Some("notes of the app"),
    ..table("notes", &[id()], &["id"])
};

/// With `checkfirst`, a table with comments is looked for where `CREATE
/// TABLE` would make it: a same-named table of a later schema of the
/// search path does not stand in for it.
#[tokio::test]
async fn a_commented_table_is_looked_for_in_the_schema_it_goes_to() {
    let s = common::setup().await;
    for sql in ["CREATE SCHEMA app", "CREATE TABLE public.notes (id int)"] {
        s.engine.status(diesel::sql_query(sql)).await.unwrap();
    }
    let url = common::url_with(&s.db, "options=-c%20search_path%3Dapp%2Cpublic");
    let in_app = gino::create_engine(&url, gino::EngineOptions::new())
        .await
        .unwrap();
    create_tables(vec![&NOTES], Bind::Default)
        .bind(&in_app)
        .await
        .unwrap();
    assert_eq!(
        table_comment(&s.engine, "app.notes").await.as_deref(),
        Some("notes of the app")
    );
    in_app.close().await;
}

static AUTHORS: TableMeta = TableMeta {
    uniques: &[UniqueMeta {
        name: None,
        columns: &["name", "born"],
    }],
    ..table(
        "authors",
        &[
            id(),
            ColumnMeta {
                unique: true,
                comment: None,
                ..col("name", "text")
            },
            null_col("born", "date"),
        ],
        &["id"],
    )
};
static BOOKS: TableMeta = TableMeta {
    indexes: &[IndexMeta {
        name: "books_author_title",
        keys: &[IndexKey::Column("author_id"), IndexKey::Column("title")],
        unique: true,
    }],
    checks: &[CheckMeta {
        name: Some("books_title_nonempty"),
        expression: "title <> ''",
    }],
    foreign_keys: &[ForeignKeyMeta {
        on_delete: Some("CASCADE"),
        ..fk(&["author_id"], "authors")
    }],
    ..table(
        "books",
        &[
            ColumnMeta {
                serial: true,
                ..col("id", "bigserial")
            },
            col("author_id", "integer"),
            ColumnMeta {
                server_default: Some("'untitled'"),
                ..col("title", "text")
            },
        ],
        &["id"],
    )
};
models!(SQL_DB: BOOKS, AUTHORS);

#[tokio::test]
async fn schema_sql_is_the_plain_ddl() {
    assert_eq!(
        SQL_DB.schema_sql(),
        r#"CREATE TABLE "authors" (
    "id" serial NOT NULL,
    "name" text NOT NULL UNIQUE,
    "born" date,
    PRIMARY KEY ("id"),
    UNIQUE ("name", "born")
);
CREATE TABLE "books" (
    "id" bigserial NOT NULL,
    "author_id" integer NOT NULL,
    "title" text NOT NULL DEFAULT 'untitled',
    PRIMARY KEY ("id"),
    CONSTRAINT "books_title_nonempty" CHECK (title <> ''),
    FOREIGN KEY ("author_id") REFERENCES "authors" ("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "books_author_title" ON "books" ("author_id", "title");
"#
    );
    // ... and PostgreSQL runs it as it is.
    let s = common::setup().await;
    s.engine
        .transaction(async {
            for statement in SQL_DB.schema_sql().split_terminator(";\n") {
                exec(&s.engine, statement).await?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(tables(&s.engine).await, ["authors", "books"]);
}

static NOWHERE: TableMeta = table("nowhere", &[id()], &["id"]);
models!(UNBOUND_DB: NOWHERE);

#[tokio::test]
async fn an_unbound_database_is_uninitialized() {
    let create = UNBOUND_DB.create_all().await;
    assert!(matches!(create, Err(Error::Uninitialized)), "{create:?}");
    let drop = UNBOUND_DB.drop_all().await;
    assert!(matches!(drop, Err(Error::Uninitialized)), "{drop:?}");
}

static DRAFTS: TableMeta = table("drafts", &[id(), col("body", "text")], &["id"]);
models!(TX_DB: DRAFTS);

#[tokio::test]
async fn inside_a_transaction_the_schema_change_is_part_of_it() {
    let s = bound(&TX_DB).await;
    let observer = common::observer(&s).await;

    // Bound to a connection inside a manual transaction.
    let conn = s.engine.acquire().await.unwrap();
    let tx = conn.begin().await.unwrap();
    TX_DB.create_all().bind(&conn).await.unwrap();
    assert_eq!(tables(&conn).await, ["drafts"]);
    assert!(tables(&observer).await.is_empty(), "not committed yet");
    // A failing operation undoes only itself (it ran in a savepoint).
    let failed = TX_DB.create_all().checkfirst(false).bind(&tx).await;
    assert_eq!(failed.unwrap_err().sqlstate(), Some("42P07"));
    exec(&conn, "INSERT INTO drafts (body) VALUES ('x')")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(tables(&conn).await.is_empty());
    conn.release().await.unwrap();

    // Implicitly, in the database's managed transaction.
    TX_DB
        .transaction(async {
            TX_DB.create_all().await?;
            assert_eq!(tables(&TX_DB).await, ["drafts"]);
            Transaction::current().unwrap().raise_rollback()?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert!(tables(&s.engine).await.is_empty());

    TX_DB.create_all().await.unwrap();
    assert_eq!(tables(&observer).await, ["drafts"]);
    common::assert_pool_clean(&s.engine).await;
}

/// Web frameworks need `Send` futures; this fails to compile otherwise.
#[allow(dead_code)]
fn schema_futures_are_send(db: &'static gino::Gino, conn: gino::Connection) {
    fn send<T: Send>(_: T) {}
    send(db.create_all().into_future());
    send(db.drop_all().checkfirst(false).bind(&conn).into_future());
    send(create_tables(vec![&DRAFTS], Bind::Default).into_future());
}

static ORDERS: TableMeta = table(
    "orders",
    &[ColumnMeta {
        server_default: Some("nextval('order_numbers')"),
        ..col("number", "bigint")
    }],
    &["number"],
);
models!(SEQUENCES_DB: ORDERS);

#[tokio::test]
async fn declared_sequences_are_created_before_the_tables_and_dropped_after() {
    use gino::schema::Sequence;
    // A column's default calls the sequence: created after the table, the
    // table could not be made; dropped before it, the drop would fail.
    for _ in 0..2 {
        Sequence::new("order_numbers").declare_in(&SEQUENCES_DB);
    }
    // One in a schema of its own, which only `create_schemas` makes.
    let invoices = Sequence::new("invoices").in_schema("numbering");
    invoices.clone().declare_in(&SEQUENCES_DB);
    assert_eq!(
        SEQUENCES_DB.sequences(),
        [Sequence::new("order_numbers"), invoices]
    );
    let sql = SEQUENCES_DB.schema_sql();
    let (sequence, table) = (
        sql.find("CREATE SEQUENCE \"order_numbers\";").expect(&sql),
        sql.find("CREATE TABLE \"orders\"").expect(&sql),
    );
    assert!(sequence < table, "{sql}");

    let s = bound(&SEQUENCES_DB).await;
    let no_schema = SEQUENCES_DB.create_all().await.unwrap_err();
    assert_eq!(no_schema.sqlstate(), Some("3F000"), "{no_schema}");
    assert!(!SEQUENCES_DB.has_sequence("order_numbers").await.unwrap());
    SEQUENCES_DB
        .create_all()
        .create_schemas(true)
        .await
        .unwrap();
    SEQUENCES_DB.create_all().await.unwrap();
    assert!(
        SEQUENCES_DB
            .has_sequence("numbering.invoices")
            .await
            .unwrap()
    );
    let insert = "INSERT INTO orders DEFAULT VALUES RETURNING number";
    let first = SEQUENCES_DB
        .one::<i64, _>(gino::text(insert).columns::<diesel::sql_types::BigInt>())
        .await
        .unwrap();
    assert_eq!(first, 1);
    assert!(SEQUENCES_DB.has_sequence("order_numbers").await.unwrap());

    SEQUENCES_DB.drop_all().await.unwrap();
    assert!(tables(&s.engine).await.is_empty());
    assert!(!SEQUENCES_DB.has_sequence("order_numbers").await.unwrap());
    assert!(
        !SEQUENCES_DB
            .has_sequence("numbering.invoices")
            .await
            .unwrap()
    );
    SEQUENCES_DB.drop_all().await.unwrap();
    let missing = SEQUENCES_DB.drop_all().checkfirst(false).await.unwrap_err();
    assert_eq!(missing.sqlstate(), Some("42P01"));
    SEQUENCES_DB.pop_bind();
}
