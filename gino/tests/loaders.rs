//! Loaders: relationships assembled from the rows of one query.

mod common;

use diesel::dsl::count;
use gino::loader::{child, child_by, distinct, distinct_by, map, one, partial, select_in, value};
use gino::prelude::*;

static DB: Gino = Gino::secondary();

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "companies", db = DB)]
pub struct Company {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "teams", db = DB)]
pub struct Team {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(references = "companies(id)")]
    pub company_id: i32,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "members", db = DB)]
pub struct Member {
    #[gino(primary_key)]
    pub id: i32,
    #[gino(references = "teams(id)")]
    pub team_id: i32,
    pub name: String,
    pub mentor_id: Option<i32>,
}

/// Many-to-many: members in guilds through memberships.
#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "guilds", db = DB)]
pub struct Guild {
    #[gino(primary_key)]
    pub id: i32,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[gino(table = "memberships", db = DB)]
pub struct Membership {
    #[gino(primary_key, references = "members(id)")]
    pub member_id: i32,
    #[gino(primary_key, references = "guilds(id)")]
    pub guild_id: i32,
}

diesel::joinable!(teams -> companies (company_id));
diesel::joinable!(members -> teams (team_id));
diesel::joinable!(memberships -> members (member_id));
diesel::joinable!(memberships -> guilds (guild_id));
diesel::allow_tables_to_appear_in_same_query!(companies, teams, members, guilds, memberships);
diesel::alias!(members as mentors: Mentors);

/// A company with its teams, each with its members.
type CompanyTree = (Company, Vec<(Team, Vec<Member>)>);
/// A member with its mentor and its guilds.
type MemberRelations = (Member, (Option<Member>, Vec<Guild>));
/// A team with its company, the nested part of [`Mentored`].
type TeamOf = (Team, Option<Company>);
/// A member with its mentor, the mentor with its team and company.
type Mentored = (Member, Option<(Member, Option<TeamOf>)>);
/// A [`Mentored`] by names.
type MentoredNames<'a> = (
    &'a str,
    Option<(&'a str, Option<(&'a str, Option<&'a str>)>)>,
);
/// A [`CompanyTree`] by ids.
type Shape = (i32, Vec<(i32, Vec<i32>)>);
/// A company with its members grouped by their team's name.
type CompanyTeamNames = (Company, Vec<(String, Vec<Member>)>);
/// A [`CompanyTeamNames`] by company id, team name and member ids.
type NamedShape<'a> = (i32, Vec<(&'a str, Vec<i32>)>);

/// Two companies (one without teams), three teams (one without members),
/// members with mentors, and guild memberships.
async fn world() -> common::Setup {
    let s = common::setup().await;
    DB.set_bind(s.engine.clone()).await.unwrap();
    DB.create_all().await.unwrap();
    for insert in [
        "INSERT INTO companies VALUES (1, 'acme'), (2, 'empty')",
        "INSERT INTO teams VALUES (10, 1, 'red'), (11, 1, 'blue'), (12, 1, 'idle')",
        "INSERT INTO members VALUES (100, 10, 'ann', NULL), (101, 10, 'bob', 100), \
         (102, 11, 'cid', 100)",
        "INSERT INTO guilds VALUES (7, 'chess'), (8, 'go')",
        "INSERT INTO memberships VALUES (100, 7), (100, 8), (101, 7)",
    ] {
        DB.status(diesel::sql_query(insert)).await.unwrap();
    }
    s
}

// One test: the loaders share the `DB` static and its world.
#[tokio::test]
async fn relationships_load_from_one_query() {
    let _s = world().await;

    // Many-to-one: each team with its company.
    let teams: Vec<(Team, Company)> = teams::table
        .inner_join(companies::table)
        .order_by(teams::id)
        .select((Team::as_select(), Company::as_select()))
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    assert_eq!(teams.len(), 3);
    assert!(teams.iter().all(|(t, c)| t.company_id == c.id));

    // One-to-many: companies made distinct, collecting teams in order; an
    // outer join that matches nothing gives no child (none_as_none).
    let companies: Vec<(Company, Vec<Team>)> = companies::table
        .left_join(teams::table)
        .order_by((companies::id, teams::id))
        .select((Company::as_select(), teams::all_columns.nullable()))
        .gino()
        .bind(&DB)
        .load(distinct::<Company, _>(child::<Team>()))
        .await
        .unwrap();
    let names: Vec<(&str, Vec<&str>)> = companies
        .iter()
        .map(|(c, ts)| {
            (
                c.name.as_str(),
                ts.iter().map(|t| t.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("acme", vec!["red", "blue", "idle"]), ("empty", vec![])]
    );

    // Nested three levels: company → teams → members.
    let tree: Vec<CompanyTree> = companies::table
        .left_join(teams::table.left_join(members::table))
        .order_by((companies::id, teams::id, members::id))
        .select((
            Company::as_select(),
            (
                teams::all_columns.nullable(),
                members::all_columns.nullable(),
            ),
        ))
        .gino()
        .bind(&DB)
        .load(distinct::<Company, _>(distinct::<Team, _>(
            child::<Member>(),
        )))
        .await
        .unwrap();
    let shape: Vec<Shape> = tree
        .iter()
        .map(|(c, ts)| {
            (
                c.id,
                ts.iter()
                    .map(|(t, ms)| (t.id, ms.iter().map(|m| m.id).collect()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, vec![(10, vec![100, 101]), (11, vec![102]), (12, vec![])]),
            (2, vec![])
        ]
    );

    // Parents told apart by columns of our choice (GINO's
    // `distinct(*columns)`): the members of every team merged under their
    // company's name, a parent that is no model.
    let by_company: Vec<(String, Vec<Member>)> = companies::table
        .inner_join(teams::table.inner_join(members::table))
        .order_by((companies::name, members::id))
        .select((companies::name, members::all_columns.nullable()))
        .gino()
        .bind(&DB)
        .load(distinct_by(|name: &String| name.clone(), child::<Member>()))
        .await
        .unwrap();
    let names: Vec<(&str, Vec<&str>)> = by_company
        .iter()
        .map(|(c, ms)| (c.as_str(), ms.iter().map(|m| m.name.as_str()).collect()))
        .collect();
    assert_eq!(names, [("acme", vec!["ann", "bob", "cid"])]);
    // Children told apart by a key of our choice: each company's guilds
    // by name, chess twice in the rows (ann's and bob's) and once here.
    let guilds: Vec<(Company, Vec<String>)> = companies::table
        .left_join(
            teams::table
                .left_join(members::table.left_join(memberships::table.left_join(guilds::table))),
        )
        .order_by((companies::id, guilds::name))
        .select((Company::as_select(), guilds::name.nullable()))
        .gino()
        .bind(&DB)
        .load(distinct::<Company, _>(child_by(|name: &String| {
            name.clone()
        })))
        .await
        .unwrap();
    let names: Vec<(&str, &[String])> = guilds
        .iter()
        .map(|(c, gs)| (c.name.as_str(), gs.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("acme", &["chess".to_owned(), "go".to_owned()][..]),
            ("empty", &[][..])
        ]
    );
    // At an inner level, below a parent of the outer join: teams by name.
    let teams_by_name: Vec<CompanyTeamNames> = companies::table
        .left_join(teams::table.left_join(members::table))
        .order_by((companies::id, teams::id, members::id))
        .select((
            Company::as_select(),
            (teams::name.nullable(), members::all_columns.nullable()),
        ))
        .gino()
        .bind(&DB)
        .load(distinct::<Company, _>(distinct_by(
            |name: &String| name.clone(),
            child::<Member>(),
        )))
        .await
        .unwrap();
    let shape: Vec<NamedShape> = teams_by_name
        .iter()
        .map(|(c, ts)| {
            let teams = ts
                .iter()
                .map(|(t, ms)| (t.as_str(), ms.iter().map(|m| m.id).collect()));
            (c.id, teams.collect())
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                1,
                vec![
                    ("red", vec![100, 101]),
                    ("blue", vec![102]),
                    ("idle", vec![])
                ]
            ),
            (2, vec![])
        ]
    );

    // The same tree "select in": one query per level, assembled from the
    // leaves up, no row sent twice.
    let companies: Vec<Company> = Company::query()
        .order_by(companies::id)
        .gino()
        .all()
        .await
        .unwrap();
    let company_teams = select_in(
        companies,
        |c: &Company| c.id,
        |t: &Team| t.company_id,
        |ids| {
            Team::query()
                .filter(teams::company_id.eq_any(ids))
                .order_by(teams::id)
                .gino()
        },
    )
    .await
    .unwrap();
    let teams: Vec<Team> = company_teams
        .iter()
        .flat_map(|(_, ts)| ts.iter().cloned())
        .collect();
    let team_ids: Vec<i32> = teams.iter().map(|t| t.id).collect();
    let members: Vec<Member> = Member::query()
        .filter(members::team_id.eq_any(team_ids))
        .order_by(members::id)
        .gino()
        .all()
        .await
        .unwrap();
    let teams = gino::loader::group(teams, |t| t.id, members, |m| m.team_id);
    let companies: Vec<Company> = company_teams.into_iter().map(|(c, _)| c).collect();
    let selected_in: Vec<CompanyTree> =
        gino::loader::group(companies, |c| c.id, teams, |(t, _)| t.company_id);
    assert_eq!(selected_in, tree, "select-in and the join give one tree");
    assert!(
        select_in(
            Vec::<Company>::new(),
            |c: &Company| c.id,
            |t: &Team| t.company_id,
            |ids| Team::query().filter(teams::company_id.eq_any(ids)).gino(),
        )
        .await
        .unwrap()
        .is_empty(),
        "no parents, no query"
    );

    // Many-to-many through the association table; children distinct even
    // when the join repeats them.
    let guilds: Vec<(Member, Vec<Guild>)> = members::table
        .left_join(memberships::table.left_join(guilds::table))
        .order_by((members::id, guilds::id))
        .select((Member::as_select(), guilds::all_columns.nullable()))
        .gino()
        .bind(&DB)
        .load(distinct::<Member, _>(child::<Guild>()))
        .await
        .unwrap();
    let by_member: Vec<(i32, Vec<i32>)> = guilds
        .iter()
        .map(|(m, gs)| (m.id, gs.iter().map(|g| g.id).collect()))
        .collect();
    assert_eq!(
        by_member,
        [(100, vec![7, 8]), (101, vec![7]), (102, vec![])]
    );

    // Self-referential (adjacency list) through an alias; no mentor is None.
    let mentored: Vec<(Member, Option<Member>)> = members::table
        .left_join(mentors.on(members::mentor_id.eq(mentors.field(members::id).nullable())))
        .order_by(members::id)
        .select((
            Member::as_select(),
            mentors.fields(members::all_columns).nullable(),
        ))
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    let pairs: Vec<(&str, Option<&str>)> = mentored
        .iter()
        .map(|(m, mentor)| (m.name.as_str(), mentor.as_ref().map(|x| x.name.as_str())))
        .collect();
    assert_eq!(
        pairs,
        [("ann", None), ("bob", Some("ann")), ("cid", Some("ann"))]
    );

    // A tuple of loaders, one per part of the row (GINO's
    // `(ua1.load("id"), ua2.load("name"))`): each mentored member's id,
    // its mentor's name.
    let partial_pairs: Vec<(Member, Member)> = members::table
        .inner_join(mentors.on(members::mentor_id.eq(mentors.field(members::id).nullable())))
        .order_by(members::id)
        .select((Member::as_select(), mentors.fields(members::all_columns)))
        .gino()
        .bind(&DB)
        .load((
            partial::<Member, _>((members::id,)),
            partial::<Member, _>((members::name,)),
        ))
        .await
        .unwrap();
    let kept: Vec<(i32, &str, &str, i32)> = partial_pairs
        .iter()
        .map(|(m, mentor)| (m.id, m.name.as_str(), mentor.name.as_str(), mentor.id))
        .collect();
    assert_eq!(kept, [(101, "", "ann", 0), (102, "", "ann", 0)]);

    // Several relations of one parent in one query (GINO's
    // `Member.distinct(Member.id).load(mentor=..., add_guild=...)`): the
    // mentor (many-to-one, through the alias) and the guilds, each
    // collected from its part of the joined rows.
    let related: Vec<MemberRelations> = members::table
        .left_join(mentors.on(members::mentor_id.eq(mentors.field(members::id).nullable())))
        .left_join(memberships::table.left_join(guilds::table))
        .order_by((members::id, guilds::id))
        .select((
            Member::as_select(),
            (
                mentors.fields(members::all_columns).nullable(),
                guilds::all_columns.nullable(),
            ),
        ))
        .gino()
        .bind(&DB)
        .load(distinct::<Member, _>((one::<Member>(), child::<Guild>())))
        .await
        .unwrap();
    let shape: Vec<(i32, Option<i32>, Vec<i32>)> = related
        .iter()
        .map(|(m, (mentor, guilds))| {
            let guilds = guilds.iter().map(|g| g.id).collect();
            (m.id, mentor.as_ref().map(|x| x.id), guilds)
        })
        .collect();
    assert_eq!(
        shape,
        [
            (100, None, vec![7, 8]),
            (101, Some(100), vec![7]),
            (102, Some(100), vec![])
        ]
    );

    // Many-to-one nested (GINO's `User.load(team=Team.load(company=
    // Company))`): each member with its mentor, the mentor with its team,
    // and the team with its company; a member without a mentor has None.
    let nested: Vec<Mentored> = members::table
        .left_join(mentors.on(members::mentor_id.eq(mentors.field(members::id).nullable())))
        .left_join(teams::table.on(teams::id.eq(mentors.field(members::team_id))))
        .left_join(companies::table.on(companies::id.eq(teams::company_id)))
        .order_by(members::id)
        .select((
            Member::as_select(),
            (
                mentors.fields(members::all_columns).nullable(),
                (
                    teams::all_columns.nullable(),
                    companies::all_columns.nullable(),
                ),
            ),
        ))
        .gino()
        .bind(&DB)
        .load(distinct::<Member, _>(
            one::<Member>().with(one::<Team>().with(one::<Company>())),
        ))
        .await
        .unwrap();
    let shape: Vec<MentoredNames> = nested
        .iter()
        .map(|(m, mentor)| {
            let mentor = mentor.as_ref().map(|(mentor, team)| {
                let team = team
                    .as_ref()
                    .map(|(t, c)| (t.name.as_str(), c.as_ref().map(|c| c.name.as_str())));
                (mentor.name.as_str(), team)
            });
            (m.name.as_str(), mentor)
        })
        .collect();
    let by_ann = Some(("ann", Some(("red", Some("acme")))));
    assert_eq!(shape, [("ann", None), ("bob", by_ann), ("cid", by_ann)]);

    // One result instead of all (GINO's `.gino.load(..).first()`, `.one()`,
    // `.one_or_none()`): `first` reads one row, so its parent comes with
    // that row's child only; `one` counts assembled parents, not rows.
    let acme_and_teams = || {
        companies::table
            .left_join(teams::table)
            .filter(companies::id.eq(1))
            .order_by((companies::id, teams::id))
            .select((Company::as_select(), teams::all_columns.nullable()))
            .gino()
            .bind(&DB)
    };
    let first = acme_and_teams()
        .load(distinct::<Company, _>(child::<Team>()))
        .first()
        .await
        .unwrap()
        .expect("acme");
    assert_eq!((first.0.id, first.1.len()), (1, 1));
    let (acme, teams) = acme_and_teams()
        .load(distinct::<Company, _>(child::<Team>()))
        .one()
        .await
        .unwrap();
    assert_eq!((acme.name.as_str(), teams.len()), ("acme", 3));
    let every = companies::table
        .left_join(teams::table)
        .select((Company::as_select(), teams::all_columns.nullable()))
        .gino()
        .bind(&DB)
        .load(distinct::<Company, _>(child::<Team>()))
        .one_or_none()
        .await;
    assert!(
        matches!(every, Err(gino::Error::MultipleResultsFound)),
        "{every:?}"
    );
    let nobody = companies::table
        .left_join(teams::table)
        .filter(companies::id.eq(-1))
        .select((Company::as_select(), teams::all_columns.nullable()))
        .gino()
        .bind(&DB)
        .load(distinct::<Company, _>(child::<Team>()));
    assert!(matches!(
        nobody.one().await,
        Err(gino::Error::NoResultFound)
    ));

    // A function of each joined row (GINO's callable loader, test_func).
    let paths: Vec<String> = teams::table
        .inner_join(companies::table)
        .order_by(teams::id)
        .select((Team::as_select(), Company::as_select()))
        .gino()
        .bind(&DB)
        .load(map(|(t, c): (Team, Company)| {
            format!("{}/{}", c.name, t.name)
        }))
        .await
        .unwrap();
    assert_eq!(paths, ["acme/red", "acme/blue", "acme/idle"]);

    // A model together with an aggregate: each team with its member count.
    let sizes: Vec<(Team, i64)> = teams::table
        .left_join(members::table)
        .group_by(teams::id)
        .order_by(teams::id)
        .select((Team::as_select(), count(members::id.nullable())))
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    let sizes: Vec<(i32, i64)> = sizes.iter().map(|(t, n)| (t.id, *n)).collect();
    assert_eq!(sizes, [(10, 2), (11, 1), (12, 0)]);

    // A callable loader, on raw SQL too.
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let upper: Vec<String> = gino::text("SELECT name FROM teams WHERE company_id = :c ORDER BY id")
        .bind::<diesel::sql_types::Integer, _>("c", 1)
        .gino()
        .bind(&DB)
        .load(map(|n: Name| n.name.to_uppercase()))
        .await
        .unwrap();
    assert_eq!(upper, ["RED", "BLUE", "IDLE"]);

    // Partial model loads: only the named columns keep their values.
    let partial_members: Vec<Member> = Member::query()
        .order_by(members::id)
        .gino()
        .bind(&DB)
        .load(partial::<Member, _>((members::id, members::name)))
        .await
        .unwrap();
    assert_eq!(
        partial_members[1],
        Member {
            id: 101,
            team_id: 0,
            name: "bob".into(),
            mentor_id: None
        }
    );

    // A literal value per row, and column and tuple loading (plain diesel).
    let marks: Vec<&str> = teams::table
        .select(teams::id)
        .gino()
        .bind(&DB)
        .load(value::<i32, _>("team"))
        .await
        .unwrap();
    assert_eq!(marks, ["team"; 3]);
    // Literals beside columns and models in one wide tuple (GINO's
    // test_literal), each part of the row with its own loader.
    let wide = teams::table
        .inner_join(companies::table)
        .filter(teams::id.eq(10))
        .select((
            teams::id,
            teams::name,
            Company::as_select(),
            teams::company_id,
            teams::id,
            Team::as_select(),
        ))
        .gino()
        .bind(&DB)
        .load((
            value::<i32, _>("mark"),
            map(|name: String| name.to_uppercase()),
            partial::<Company, _>((companies::name,)),
            map(|company_id: i32| company_id * 100),
            value::<i32, _>(0.5),
            partial::<Team, _>((teams::id,)),
        ))
        .one()
        .await
        .unwrap();
    let acme = Company {
        id: 0,
        name: "acme".into(),
    };
    let red = Team {
        id: 10,
        company_id: 0,
        name: String::new(),
    };
    assert_eq!(wide, ("mark", "RED".to_owned(), acme, 100, 0.5, red));
    let ids: Vec<i32> = teams::table
        .select(teams::id)
        .order_by(teams::id)
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    assert_eq!(ids, [10, 11, 12]);
    let nested: Vec<(i32, (String, i32))> = teams::table
        .select((teams::id, (teams::name, teams::company_id)))
        .order_by(teams::id)
        .gino()
        .bind(&DB)
        .all()
        .await
        .unwrap();
    assert_eq!(nested[0], (10, ("red".into(), 1)));
    DB.pop_bind();
}

/// `one()` / `one_or_none()` of a loader that makes an output of each row
/// ask the server for two rows, as the executor's own do: the third row,
/// which would fail, is never computed. A loader that merges rows reads
/// them all, and meets the failure.
#[tokio::test]
async fn one_of_a_per_row_loader_reads_two_rows_at_most() {
    use diesel::dsl::sql;
    use diesel::sql_types::Integer;
    let s = common::setup().await;
    let failing_third = || {
        diesel::select(sql::<Integer>(
            "CASE WHEN n < 3 THEN n ELSE 1 / (n - 3) END FROM generate_series(1, 3) AS n",
        ))
    };
    let more = failing_third()
        .gino()
        .bind(&s.engine)
        .load(map(|n: i32| n * 10))
        .one()
        .await;
    assert!(
        matches!(more, Err(gino::Error::MultipleResultsFound)),
        "{more:?}"
    );
    let tuple = diesel::select(sql::<(Integer, Integer)>(
        "CASE WHEN n < 3 THEN n ELSE 1 / (n - 3) END, n FROM generate_series(1, 3) AS n",
    ))
    .gino()
    .bind(&s.engine)
    .load((map(|n: i32| n), value::<i32, _>("and a value")))
    .one_or_none()
    .await;
    assert!(
        matches!(tuple, Err(gino::Error::MultipleResultsFound)),
        "{tuple:?}"
    );
    let merged = diesel::select(sql::<(Integer, diesel::sql_types::Nullable<Integer>)>(
        "CASE WHEN n < 3 THEN 1 ELSE 1 / (n - 3) END, n FROM generate_series(1, 3) AS n",
    ))
    .gino()
    .bind(&s.engine)
    .load(distinct_by(|one: &i32| *one, child_by(|n: &i32| *n)))
    .one()
    .await;
    assert_eq!(
        merged.unwrap_err().sqlstate(),
        Some("22012"),
        "division by zero"
    );
    let single = diesel::select(sql::<Integer>("7"))
        .gino()
        .bind(&s.engine)
        .load(map(|n: i32| n + 1))
        .one()
        .await
        .unwrap();
    assert_eq!(single, 8);
}
