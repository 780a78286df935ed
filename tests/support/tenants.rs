//! What the web extensions' tenant tests share: eight tenant databases,
//! each with a marker row; a registry over them; the handlers' queries;
//! and the load that checks, through real HTTP, that no request ever reads
//! or writes another tenant's database.
//!
//! Every app under test serves, per tenant (header `X-Tenant`):
//! `GET /tenant` → `{"tenant", "database"}`, `GET /users/{id}` and
//! `POST /users {"nickname"}` → 201, on [`TENANT_DB`]'s [`TenantUser`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use gino::prelude::*;
use gino::web::Settings;
use gino::{Engine, EngineOptions, Tenants};
use gino_testkit::TestDatabase;
use serde_json::{Value, json};

/// The database the tenant apps' models belong to; tenant scopes bind it.
pub static TENANT_DB: Gino = Gino::secondary();

/// A tenant's user.
#[derive(Model, Debug, Clone, serde::Serialize)]
#[gino(table = "tenant_users", db = TENANT_DB)]
pub struct TenantUser {
    #[gino(primary_key)]
    pub id: i32,
    pub nickname: String,
}

/// `current_database()` of the request's tenant.
pub async fn current_database() -> gino::Result<String> {
    current_database_of(&TENANT_DB).await
}

/// `current_database()` where `db` runs its queries now.
pub async fn current_database_of(db: &'static gino::Gino) -> gino::Result<String> {
    db.one(diesel::select(diesel::dsl::sql::<Text>(
        "current_database()",
    )))
    .await
}

/// Three lines, each the database a query of `db` ran on as the line was
/// made: a streamed body whose queries run after its handler returned.
pub fn database_lines(
    db: &'static gino::Gino,
) -> impl futures_util::Stream<Item = gino::Result<String>> + Send + 'static {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..3)
        .then(move |_| async move { Ok(format!("{}\n", current_database_of(db).await?)) })
}

/// `{"tenant", "database"}` for `GET /tenant`.
pub async fn tenant_body(tenant: &str) -> gino::Result<Value> {
    Ok(json!({ "tenant": tenant, "database": current_database().await? }))
}

/// The tenant named by an `X-Tenant` value: `t0`..`t7` and other plain
/// names; `None` (400) for anything else.
pub fn valid_tenant(header: Option<&str>) -> Option<String> {
    let tenant = header?;
    let plain = !tenant.is_empty()
        && tenant.len() <= 32
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    plain.then(|| tenant.to_owned())
}

/// Eight tenant databases next to a base database of the test's own.
pub struct TenantDatabases {
    pub base: TestDatabase,
    pub app_name: String,
    admin: Engine,
    pub count: usize,
}

impl TenantDatabases {
    /// `<base>_t0` .. `<base>_t<count-1>`, each with its users table and
    /// the marker row `(1, 'marker_t<i>')`.
    pub async fn create(count: usize) -> TenantDatabases {
        let base = TestDatabase::create().await;
        let app_name = format!("{}_app", base.name());
        let admin = gino::create_engine(base.url(), EngineOptions::new())
            .await
            .expect("admin engine");
        let databases = TenantDatabases {
            base,
            app_name,
            admin,
            count,
        };
        for t in 0..count {
            let name = databases.database(&format!("t{t}"));
            databases
                .admin
                .status(diesel::sql_query(format!("CREATE DATABASE \"{name}\"")))
                .await
                .expect("create a tenant database");
            let engine =
                gino::create_engine(&databases.url(&format!("t{t}")), EngineOptions::new())
                    .await
                    .expect("tenant engine");
            TENANT_DB
                .scoped_bind(&engine, async {
                    TENANT_DB.create_all().await?;
                    // The first row of a fresh table: id 1.
                    TenantUser::create()
                        .nickname(format!("marker_t{t}"))
                        .await
                        .map(drop)
                })
                .await
                .expect("the tenant's marker");
            engine.close().await;
        }
        databases
    }

    /// The database of tenant `tenant`.
    pub fn database(&self, tenant: &str) -> String {
        format!("{}_{tenant}", self.base.name())
    }

    fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.dsn = Some(format!(
            "{}{}application_name={}",
            self.base.url(),
            if self.base.url().contains('?') {
                '&'
            } else {
                '?'
            },
            self.app_name
        ));
        settings
    }

    /// The URL of tenant `tenant`'s database, as the app's connections
    /// name themselves.
    pub fn url(&self, tenant: &str) -> String {
        self.settings().for_database(&self.database(tenant)).url()
    }

    /// Settings for the web extension (the base database).
    pub fn web_settings(&self) -> Settings {
        let mut settings = self.settings();
        settings.pool_min_size = 0;
        settings.pool_max_size = 4;
        settings
    }

    /// A registry over the tenant databases, with `cap` live engines and
    /// `connections` connections in all.
    pub fn registry(&self, cap: usize, connections: usize) -> Tenants {
        self.registry_for(&TENANT_DB)
            .options(
                EngineOptions::new()
                    .max_size(3)
                    .acquire_timeout(Duration::from_secs(30)),
            )
            .cap(cap)
            .connections(connections)
            .build()
    }

    /// The builder of a registry over the tenant databases for `db`, with
    /// no limits of its own.
    pub fn registry_for(&self, db: &'static gino::Gino) -> gino::TenantsBuilder {
        let settings = self.settings();
        let base = self.base.name().to_owned();
        Tenants::builder(db, move |tenant: String| {
            let url = settings.for_database(&format!("{base}_{tenant}")).url();
            async move { Ok(url) }
        })
    }

    /// Expects `url`'s body for `tenant` to be [`database_lines`] of the
    /// tenant's own database.
    pub async fn expect_database_lines(&self, url: &str, tenant: &str) {
        let text = reqwest::Client::new()
            .get(url)
            .header("x-tenant", tenant)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = format!("{}_{tenant}\n", self.base.name());
        assert_eq!(text, line.repeat(3), "{tenant}");
    }

    /// Backends the app has open on the server, and how many of them sit
    /// in a transaction.
    pub async fn backends(&self) -> (i64, i64) {
        (
            count_backends(&self.admin, &self.app_name, "true").await,
            count_backends(
                &self.admin,
                &self.app_name,
                "state LIKE 'idle in transaction%'",
            )
            .await,
        )
    }

    /// Waits (up to 5 s: a backend leaves a moment after its socket
    /// closes) until the app has no connection open.
    pub async fn expect_all_closed(&self) {
        for _ in 0..100 {
            if self.backends().await.0 == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the app left {} connection(s) open",
            self.backends().await.0
        );
    }

    /// The nicknames written to tenant `tenant`'s database.
    async fn written(&self, tenant: &str) -> Vec<String> {
        let engine = gino::create_engine(&self.url(tenant), EngineOptions::new())
            .await
            .unwrap();
        let names: Vec<String> = TENANT_DB
            .scoped_bind(&engine, async {
                TenantUser::query()
                    .filter(tenant_users::id.ne(1))
                    .select(tenant_users::nickname)
                    .gino()
                    .all()
                    .await
            })
            .await
            .unwrap();
        engine.close().await;
        names
    }

    /// Drops the tenant databases (the base goes with its guard).
    pub async fn drop_all(self) {
        for t in 0..self.count {
            let name = self.database(&format!("t{t}"));
            self.admin
                .status(diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await
                .unwrap();
        }
        self.admin.close().await;
    }
}

/// Backends of `app_name` on the server that match `condition` (the
/// test's own SQL, never input).
async fn count_backends(admin: &Engine, app_name: &str, condition: &str) -> i64 {
    admin
        .one(diesel::select(diesel::dsl::sql::<BigInt>(&format!(
            "(SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = '{app_name}' AND {condition})"
        ))))
        .await
        .unwrap()
}

/// A small deterministic generator, so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// `requests` requests from 16 concurrent clients, each to a random
/// tenant: reads must see the tenant's own database and marker, writes
/// must land in it and nowhere else; while they run, the app never has
/// more than `budget` connections open. Then the rejections: no header
/// (400), a malformed one (400), a tenant without a database (404).
pub async fn expect_tenants_isolated(
    base_url: &str,
    databases: &TenantDatabases,
    requests: usize,
    budget: i64,
) {
    let client = reqwest::Client::new();
    let written: Arc<Vec<AtomicUsize>> =
        Arc::new((0..databases.count).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, most) = (stop.clone(), most.clone());
        let admin = databases.admin.clone();
        let app_name = databases.app_name.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let open = count_backends(&admin, &app_name, "true").await;
                most.fetch_max(open as usize, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let clients = 16;
    let runs = (0..clients).map(|c| {
        let client = client.clone();
        let written = written.clone();
        let base_url = base_url.to_owned();
        let names: Vec<String> = (0..databases.count)
            .map(|t| databases.database(&format!("t{t}")))
            .collect();
        tokio::spawn(async move {
            let mut rng = Rng(c as u64 + 1);
            for i in 0..requests / clients {
                let t = rng.below(names.len());
                let tenant = format!("t{t}");
                match rng.below(3) {
                    0 => {
                        let body: Value = client
                            .get(format!("{base_url}/tenant"))
                            .header("x-tenant", &tenant)
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        assert_eq!(body["tenant"], tenant.as_str());
                        assert_eq!(body["database"], names[t].as_str(), "{body}");
                    }
                    1 => {
                        let response = client
                            .get(format!("{base_url}/users/1"))
                            .header("x-tenant", &tenant)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        let body: Value = response.json().await.unwrap();
                        assert_eq!(body["nickname"], format!("marker_{tenant}"));
                    }
                    _ => {
                        let response = client
                            .post(format!("{base_url}/users"))
                            .header("x-tenant", &tenant)
                            .json(&json!({ "nickname": format!("w_{tenant}_{c}_{i}") }))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 201);
                        written[t].fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    });
    for run in futures_util::future::join_all(runs).await {
        run.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let most = most.load(Ordering::SeqCst) as i64;
    assert!(
        most <= budget,
        "{most} connections open at once with a budget of {budget}"
    );

    // Every write is in its own tenant's database, and only there.
    for t in 0..databases.count {
        let tenant = format!("t{t}");
        let names = databases.written(&tenant).await;
        let prefix = format!("w_{tenant}_");
        assert!(
            names.iter().all(|n| n.starts_with(&prefix)),
            "{tenant}'s database holds another tenant's rows"
        );
        assert_eq!(names.len(), written[t].load(Ordering::SeqCst));
    }

    let missing = client
        .get(format!("{base_url}/tenant"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let malformed = client
        .get(format!("{base_url}/tenant"))
        .header("x-tenant", "Robert'); DROP")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    for _ in 0..2 {
        let unknown = client
            .get(format!("{base_url}/tenant"))
            .header("x-tenant", "nobody")
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        let body: Value = unknown.json().await.unwrap();
        assert_eq!(body["error"], "unknown tenant");
    }
    // The registry is not poisoned: known tenants still answer.
    let body: Value = client
        .get(format!("{base_url}/tenant"))
        .header("x-tenant", "t0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tenant"], "t0");

    let (_, in_tx) = databases.backends().await;
    assert_eq!(in_tx, 0, "connections left inside a transaction");
}
