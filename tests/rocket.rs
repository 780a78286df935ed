//! gino-rocket as users run it: a launched rocket on 127.0.0.1 with a
//! random port, driven by a real HTTP client (rocket's local `Client` would
//! not show disconnects and concurrency), the database checked afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::Integer;
use gino::prelude::*;
use gino_integration_tests::web::{
    self as scenario, WebTest, absent_port, borrowed, fresh_db, leaky_query, pid, sleeper,
};
use gino_rocket::{Conn, Error, Extension};
use gino_testkit::Cluster;
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, State, get, routes};
use tokio::sync::{Notify, oneshot};

/// What the test's handlers reach through managed state.
struct Ctx {
    db: &'static gino::Gino,
    inside: Arc<Notify>,
    go_on: Arc<Notify>,
}

/// Rocket's configuration for a test: loopback, any port, quiet, no
/// signal handlers, the test database in `databases.gino`.
fn figment(dsn: &str) -> Figment {
    rocket::Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0))
        .merge(("log_level", "off"))
        .merge(("shutdown.ctrlc", false))
        .merge(("shutdown.signals", Vec::<String>::new()))
        .merge(("shutdown.grace", 2))
        .merge(("shutdown.mercy", 1))
        .merge(("databases.gino.dsn", dsn))
        .merge(("databases.gino.pool_min_size", 0))
        .merge(("databases.gino.pool_max_size", 5))
}

/// A rocket with gino's fairing, the test's state and `routes` scoped.
fn app(test: &WebTest, routes: Vec<rocket::Route>) -> Rocket<Build> {
    app_on(test.settings.dsn.as_deref().unwrap(), test.db, routes)
}

/// [`app`] on the database at `dsn`, bound to `db`.
fn app_on(dsn: &str, db: &'static gino::Gino, routes: Vec<rocket::Route>) -> Rocket<Build> {
    rocket::custom(figment(dsn))
        .attach(gino_rocket::Gino::fairing(db))
        .manage(Ctx {
            db,
            inside: Arc::new(Notify::new()),
            go_on: Arc::new(Notify::new()),
        })
        .mount("/", gino_rocket::scoped(routes))
}

/// A launched rocket: its base URL, a shutdown handle, the launch task.
struct Launched {
    base: String,
    shutdown: rocket::Shutdown,
    done: tokio::task::JoinHandle<()>,
    inside: Arc<Notify>,
    go_on: Arc<Notify>,
}

impl Launched {
    async fn start(rocket: Rocket<Build>) -> Launched {
        let (port_tx, port_rx) = oneshot::channel();
        let port_tx = std::sync::Mutex::new(Some(port_tx));
        let rocket = rocket.attach(AdHoc::on_liftoff("port", move |rocket| {
            let port = rocket.config().port;
            let tx = port_tx.lock().unwrap().take();
            Box::pin(async move {
                if let Some(tx) = tx {
                    let _ = tx.send(port);
                }
            })
        }));
        let ignited = rocket.ignite().await.expect("ignite");
        let shutdown = ignited.shutdown();
        let ctx = ignited.state::<Ctx>().expect("ctx");
        let (inside, go_on) = (ctx.inside.clone(), ctx.go_on.clone());
        let done = tokio::spawn(async move {
            ignited.launch().await.expect("launch");
        });
        let port = port_rx.await.expect("liftoff");
        Launched {
            base: format!("http://127.0.0.1:{port}"),
            shutdown,
            done,
            inside,
            go_on,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(self) {
        self.shutdown.notify();
        self.done.await.unwrap();
    }
}

async fn test(tune: impl FnOnce(&mut gino::web::Settings)) -> WebTest {
    WebTest::new(tune).await
}

#[get("/idle")]
async fn idle(ctx: &State<Ctx>) -> &'static str {
    ctx.inside.notify_one();
    ctx.go_on.notified().await;
    "no query"
}

#[rocket::async_test]
async fn a_request_that_never_queries_borrows_nothing() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![idle])).await;
    let opened = t.engine().pool_status().size;
    let request = tokio::spawn(reqwest::get(rocket.url("/idle")));
    rocket.inside.notified().await;
    assert_eq!(t.borrowed(), 0);
    rocket.go_on.notify_one();
    assert_eq!(request.await.unwrap().unwrap().status(), 200);
    assert_eq!(t.borrowed(), 0);
    assert_eq!(t.engine().pool_status().size, opened);
    rocket.stop().await;
}

async fn pid_in_helper(db: &gino::Gino) -> gino::Result<i32> {
    db.one(pid()).await
}

#[get("/pids")]
async fn pids(ctx: &State<Ctx>, conn: Conn) -> Result<Json<(Vec<i32>, u32)>, Error> {
    let db = ctx.db;
    let mut pids = vec![db.one(pid()).await?];
    pids.push(pid_in_helper(db).await?);
    pids.push(db.transaction(async { pid_in_helper(db).await }).await?);
    pids.push(pid().gino().bind(db).one().await?);
    pids.push(conn.one(pid()).await?);
    Ok(Json((pids, conn.stats().borrows)))
}

#[rocket::async_test]
async fn queries_of_a_request_share_one_connection_borrowed_once() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![pids])).await;
    scenario::expect_one_connection_per_request(&t, &rocket.base).await;
    rocket.stop().await;
}

/// Forwards a request without `x-member` to the next route.
struct Member;

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Member {
    type Error = ();

    async fn from_request(request: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        match request.headers().get_one("x-member") {
            Some(_) => rocket::request::Outcome::Success(Member),
            None => rocket::request::Outcome::Forward(rocket::http::Status::Unauthorized),
        }
    }
}

#[get("/who")]
async fn member(_member: Member, conn: Conn) -> Result<Json<&'static str>, Error> {
    let _: i32 = conn.one(pid()).await?;
    Ok(Json("member"))
}

#[get("/who", rank = 2)]
async fn anyone(ctx: &State<Ctx>, conn: Conn) -> Result<Json<(i32, i32)>, Error> {
    let implicit = ctx.db.one(pid()).await?;
    Ok(Json((implicit, conn.one(pid()).await?)))
}

/// A route a request was forwarded to runs in a scope of its own, and its
/// `Conn` is that scope's connection, not the released one of the route
/// that forwarded (rocket's request-local cache outlives a forward).
#[rocket::async_test]
async fn after_a_forward_conn_is_the_scope_of_the_route_that_runs() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![member, anyone])).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let forwarded = client.get(rocket.url("/who")).send().await.unwrap();
        assert_eq!(forwarded.status(), 200);
        let (implicit, explicit): (i32, i32) = forwarded.json().await.unwrap();
        assert_eq!(implicit, explicit, "one connection for the route that ran");
        let direct = client
            .get(rocket.url("/who"))
            .header("x-member", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), 200);
    }
    assert_eq!(t.borrowed(), 0);
    rocket.stop().await;
}

#[get("/double/<n>")]
async fn double(ctx: &State<Ctx>, n: i32) -> Result<Json<i32>, Error> {
    let db = ctx.db;
    let twice: i32 = db
        .transaction(async {
            db.one(diesel::select(
                sql::<Integer>("").bind::<Integer, _>(n).sql(" * 2"),
            ))
            .await
        })
        .await?;
    Ok(Json(twice))
}

#[rocket::async_test]
async fn two_hundred_concurrent_requests_on_five_connections() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![double])).await;
    scenario::expect_two_hundred_concurrent_requests(&t, &rocket.base).await;
    rocket.stop().await;
}

#[get("/keep/<n>")]
async fn keep(ctx: &State<Ctx>, n: i32) -> Result<Json<i32>, Error> {
    Ok(Json(scenario::keep(ctx.db, n, false).await?))
}

#[get("/refuse/<n>")]
async fn refuse(ctx: &State<Ctx>, n: i32) -> Result<Json<i32>, Error> {
    Ok(Json(scenario::keep(ctx.db, n, true).await?))
}

#[rocket::async_test]
async fn clients_leaving_under_load_leave_nothing_open() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![keep, refuse])).await;
    scenario::expect_leaving_clients_under_load(&t, &rocket.base).await;
    rocket.stop().await;
}

#[get("/panic")]
async fn panics(ctx: &State<Ctx>) -> &'static str {
    let db = ctx.db;
    let tx = db.begin().await.expect("begin");
    db.status(diesel::sql_query("CREATE TABLE panicked (x int)"))
        .await
        .expect("create");
    if tx.is_active().await {
        panic!("the handler panics inside a transaction");
    }
    "unreachable"
}

#[rocket::async_test]
async fn a_panicking_handler_leaves_nothing_open() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![panics])).await;
    let response = reqwest::get(rocket.url("/panic")).await.unwrap();
    assert_eq!(response.status(), 500, "rocket catches the panic");
    t.assert_no_open_transaction().await;
    t.assert_pool_clean().await;
    assert!(!t.table_exists("panicked").await);
    rocket.stop().await;
}

#[get("/slow")]
async fn slow(ctx: &State<Ctx>) -> Result<&'static str, Error> {
    let db = ctx.db;
    db.transaction(async {
        db.status(diesel::sql_query("CREATE TABLE abandoned (x int)"))
            .await?;
        ctx.inside.notify_one();
        // Rocket runs a handler to its end even when the client is gone
        // (it handles each request in a task of its own); this one ends
        // with an error, so its transaction rolls back.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Err::<(), _>(gino::Error::NotFound)
    })
    .await?;
    Ok("slow")
}

#[rocket::async_test]
async fn a_client_leaving_mid_transaction_leaves_nothing_open() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![slow])).await;
    scenario::expect_nothing_open_after_the_client_left(&t, &rocket.base, &rocket.inside).await;
    rocket.stop().await;
}

#[get("/release")]
async fn release(ctx: &State<Ctx>, conn: Conn) -> Result<Json<(usize, bool, usize, u32)>, Error> {
    let db = ctx.db;
    let engine = db.engine()?;
    db.one::<i32, _>(pid()).await?;
    let before = borrowed(&engine);
    conn.release_raw().await?;
    let held = conn.has_raw_connection().await;
    let between = borrowed(&engine);
    db.one::<i32, _>(pid()).await?;
    Ok(Json((before, held, between, conn.stats().borrows)))
}

#[rocket::async_test]
async fn early_release_and_borrow_again_within_a_request() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![release])).await;
    scenario::expect_early_release(&t, &rocket.base).await;
    rocket.stop().await;
}

#[get("/missing")]
async fn missing(ctx: &State<Ctx>) -> Result<Json<i32>, Error> {
    Ok(Json(
        ctx.db
            .first_or_404(diesel::select(sql::<Integer>("1 WHERE false")))
            .await?,
    ))
}

#[get("/hold")]
async fn hold(ctx: &State<Ctx>) -> Result<&'static str, Error> {
    ctx.db.one::<i32, _>(pid()).await?;
    ctx.inside.notify_one();
    ctx.go_on.notified().await;
    Ok("held")
}

#[get("/query")]
async fn query(ctx: &State<Ctx>) -> Result<Json<i32>, Error> {
    Ok(Json(ctx.db.one(pid()).await?))
}

#[get("/sleep")]
async fn sleep(ctx: &State<Ctx>) -> Result<Json<i32>, Error> {
    Ok(Json(ctx.db.one(sleeper()).await?))
}

#[get("/broken")]
async fn broken(ctx: &State<Ctx>) -> Result<Json<i32>, Error> {
    Ok(Json(ctx.db.one(leaky_query()).await?))
}

#[rocket::async_test]
async fn errors_answer_404_503_and_an_opaque_500() {
    let t = test(|_| {}).await;
    let rocket = app(&t, routes![missing, hold, query, broken]).configure(
        figment(t.settings.dsn.as_deref().unwrap())
            .merge(("databases.gino.pool_max_size", 1))
            .merge(("databases.gino.acquire_timeout", "200ms")),
    );
    let rocket = Launched::start(rocket).await;
    scenario::expect_error_answers(&rocket.base, &rocket.inside, &rocket.go_on).await;
    rocket.stop().await;
}

#[rocket::async_test]
async fn a_database_that_is_down_answers_503_until_it_is_back() {
    let cluster = Arc::new(Cluster::builder().start().expect("a cluster to stop"));
    let rocket = app_on(
        &cluster.url_for("postgres"),
        fresh_db(),
        routes![query, sleep],
    );
    let rocket = Launched::start(rocket).await;
    scenario::expect_503_while_the_database_is_down(&rocket.base, &cluster).await;
    rocket.stop().await;
}

#[rocket::async_test]
async fn text_settings_the_figment_typed_are_read_as_text() {
    // Figment (and TOML, and `ROCKET_DATABASES`) read a password `12345`
    // as a number: the settings take its text, and rocket launches.
    let t = test(|_| {}).await;
    let config = figment(t.settings.dsn.as_deref().unwrap())
        .merge(("databases.gino.password", 12345))
        .merge(("databases.gino.user", 1000));
    let ignited = app(&t, routes![query])
        .configure(config.clone())
        .ignite()
        .await
        .expect("ignites");
    let extension = ignited.state::<Extension>().unwrap();
    let settings = extension.settings();
    assert_eq!(
        (settings.user.as_str(), settings.password.as_str()),
        ("1000", "12345")
    );
    extension.close().await;
    drop(ignited);
    let rocket = Launched::start(app(&t, routes![query]).configure(config)).await;
    let answer = reqwest::get(format!("{}/query", rocket.base))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    rocket.stop().await;
}

#[get("/borrowed")]
async fn borrowed_now(ctx: &State<Ctx>) -> Result<Json<usize>, Error> {
    ctx.db.one::<i32, _>(pid()).await?;
    Ok(Json(borrowed(&ctx.db.engine()?)))
}

#[rocket::async_test]
async fn without_a_connection_per_request_queries_borrow_per_statement() {
    let t = test(|_| {}).await;
    let rocket = app(&t, routes![borrowed_now]).configure(
        figment(t.settings.dsn.as_deref().unwrap())
            .merge(("databases.gino.use_connection_for_request", false)),
    );
    let rocket = Launched::start(rocket).await;
    scenario::expect_no_connection_held(&rocket.base).await;
    rocket.stop().await;
}

#[get("/slow-pid")]
async fn slow_pid(ctx: &State<Ctx>) -> Result<Json<i32>, Error> {
    ctx.inside.notify_one();
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Json(ctx.db.one(pid()).await?))
}

#[rocket::async_test]
async fn shutdown_waits_for_in_flight_requests_then_closes_every_connection() {
    let t = test(|_| {}).await;
    let rocket = app(&t, routes![slow_pid]).configure(
        figment(t.settings.dsn.as_deref().unwrap()).merge(("databases.gino.pool_min_size", 2)),
    );
    let rocket = Launched::start(rocket).await;
    assert!(!t.session_states().await.is_empty());
    let request = tokio::spawn(reqwest::get(rocket.url("/slow-pid")));
    rocket.inside.notified().await;
    rocket.stop().await;
    assert_eq!(request.await.unwrap().unwrap().status(), 200);
    assert!(!t.db.is_bound());
    t.assert_all_closed().await;
}

#[get("/stream")]
fn stream(ctx: &State<Ctx>) -> rocket::response::stream::TextStream![String] {
    let (db, inside, go_on) = (ctx.db, ctx.inside.clone(), ctx.go_on.clone());
    // The handler is done once it returns the stream; the stream's second
    // item queries while rocket sends it.
    rocket::response::stream::TextStream! {
        yield "first\n".to_owned();
        inside.notify_one();
        go_on.notified().await;
        yield match db.one::<i32, _>(pid()).await {
            Ok(pid) => format!("pid {pid}\n"),
            Err(e) => format!("error {e}\n"),
        };
    }
}

#[rocket::async_test]
async fn a_streamed_body_keeps_the_pool_open_until_it_is_sent() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![stream])).await;
    let shutdown = rocket.shutdown.clone();
    let stop = async move { shutdown.notify() }; // graceful: the body is still going out
    scenario::expect_a_streamed_body_held_through_shutdown(
        &t,
        &rocket.base,
        &rocket.inside,
        &rocket.go_on,
        stop,
    )
    .await;
    rocket.stop().await;
}

#[get("/manifest")]
async fn manifest() -> std::io::Result<rocket::fs::NamedFile> {
    rocket::fs::NamedFile::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).await
}

/// A file served by a scoped route goes out whole, with its length, as it
/// does from a route of its own: it is no stream to hold in flight.
#[rocket::async_test]
async fn a_file_keeps_its_content_length() {
    let t = test(|_| {}).await;
    let rocket = Launched::start(app(&t, routes![manifest])).await;
    let size = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .unwrap()
        .len();
    let client = reqwest::Client::new();
    for request in [
        client.get(rocket.url("/manifest")),
        client.head(rocket.url("/manifest")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let length = response.headers().get("content-length").cloned();
        assert_eq!(
            length.as_ref().and_then(|l| l.to_str().ok()),
            Some(size.to_string().as_str()),
            "{:?}",
            response.headers()
        );
    }
    rocket.stop().await;
}

#[get("/tenant_only")]
async fn tenant_only(tenant: gino_rocket::Tenant) -> String {
    tenant.0
}

#[get("/conn")]
async fn needs_conn(conn: Conn) -> String {
    conn.is_reusing().to_string()
}

#[rocket::async_test]
async fn launch_is_refused_without_the_fairing_or_with_bad_settings() {
    let t = test(|_| {}).await;
    // A route that takes Conn, without gino's fairing.
    let error = rocket::custom(figment(t.settings.dsn.as_deref().unwrap()))
        .mount("/", gino_rocket::scoped(routes![needs_conn]))
        .ignite()
        .await
        .expect_err("a Conn route without the fairing");
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::SentinelAborts(_)),
        "{error}"
    );

    // A bad value, from Rocket's figment and from DB_* alike.
    let dsn = t.settings.dsn.as_deref().unwrap();
    let port = figment(dsn).merge(("databases.gino.port", "x"));
    refused_ignition(&t, port, "a bad port").await;
    let unknown = figment(dsn).merge(("databases.gino.hots", "x"));
    refused_ignition(&t, unknown, "an unknown key").await;
    // Not a table: refused, not read as no settings (a local `postgres`).
    let flat = rocket::Config::figment()
        .merge(("log_level", "off"))
        .merge(("databases.gino", dsn));
    refused_ignition(&t, flat, "a URL where the table of settings goes").await;

    // Routes for tenants, and a fairing without them.
    let error = rocket::custom(figment(dsn))
        .attach(gino_rocket::Gino::fairing(fresh_db()))
        .mount(
            "/",
            gino_rocket::tenant_scoped(routes![tenant_only], |_| Ok("t0".to_owned())),
        )
        .ignite()
        .await
        .expect_err("tenant routes, no tenants");
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{error}"
    );

    // The DSN says echo=on: alone it applies, and a figment that says
    // `echo = false` contradicts it even though false is the default.
    let loud = format!("{dsn}{}echo=on", if dsn.contains('?') { '&' } else { '?' });
    let rocket = app(&t, routes![needs_conn])
        .configure(figment(&loud))
        .ignite()
        .await
        .expect("echo from the DSN alone");
    drop(rocket);
    let twice = figment(&loud).merge(("databases.gino.echo", false));
    refused_ignition(&t, twice, "echo given twice, each saying otherwise").await;

    // A second gino fairing: refused, not rocket's panic over managed
    // state given twice.
    let second = figment(dsn).merge(("databases.reports.dsn", dsn));
    let error = app(&t, routes![needs_conn])
        .attach(gino_rocket::Gino::fairing(fresh_db()).named("reports"))
        .configure(second)
        .ignite()
        .await
        .expect_err("two gino fairings");
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{error}"
    );
}

/// Ignition with `config` fails in gino's fairing, for the reason `why`.
async fn refused_ignition(t: &WebTest, config: Figment, why: &str) {
    let error = app(t, routes![needs_conn])
        .configure(config)
        .ignite()
        .await
        .expect_err(why);
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{why}: {error}"
    );
}

#[rocket::async_test]
async fn launch_waits_for_a_late_server_and_gives_up_on_an_absent_one() {
    let late = Cluster::builder().init().expect("a cluster to start later");
    let db = fresh_db();
    let config = rocket::Config::figment()
        .merge(("log_level", "off"))
        .merge(("databases.gino.host", "127.0.0.1"))
        .merge(("databases.gino.port", late.port()))
        .merge(("databases.gino.pool_min_size", 1))
        .merge(("databases.gino.retry_limit", 100))
        .merge(("databases.gino.retry_interval", 0.1));
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        late.start().expect("start the late cluster");
        late
    });
    let started = Instant::now();
    let ignited = rocket::custom(config.clone())
        .attach(gino_rocket::Gino::fairing(db))
        .ignite()
        .await
        .expect("ignites once the database is up");
    assert!(started.elapsed() >= Duration::from_millis(600));
    let late = starter.join().unwrap();
    assert!(db.is_bound());
    ignited.state::<Extension>().unwrap().close().await;
    drop(late);

    let started = Instant::now();
    let error = rocket::custom(
        config
            .merge(("databases.gino.port", absent_port()))
            .merge(("databases.gino.retry_limit", 2))
            .merge(("databases.gino.retry_interval", "150ms")),
    )
    .attach(gino_rocket::Gino::fairing(fresh_db()))
    .ignite()
    .await
    .expect_err("no database, no launch");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(
        error.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
}

mod tenant_app {
    use std::sync::Arc;

    use futures_util::{Stream, StreamExt};
    use gino_integration_tests::tenants::{
        TENANT_DB, TenantDatabases, TenantUser, database_lines, expect_tenants_isolated,
        tenant_body, valid_tenant,
    };
    use gino_rocket::{Error, Tenant};
    use rocket::http::Status;
    use rocket::response::stream::TextStream;
    use rocket::serde::json::Json;
    use rocket::{get, post, routes};
    use serde_json::Value;
    use tokio::sync::Notify;

    use super::{Ctx, Launched, figment};

    #[get("/tenant")]
    async fn tenant(t: Tenant) -> Result<Json<Value>, Error> {
        Ok(Json(tenant_body(&t.0).await?))
    }

    #[get("/users/<id>")]
    async fn show(id: i32) -> Result<Json<TenantUser>, Error> {
        Ok(Json(TenantUser::get_or_404(id).await?))
    }

    #[post("/users", data = "<body>")]
    async fn create(body: Json<Value>) -> Result<(Status, Json<TenantUser>), Error> {
        let nickname = body["nickname"].as_str().unwrap_or_default().to_owned();
        let user = TenantUser::create().nickname(nickname).await?;
        Ok((Status::Created, Json(user)))
    }

    static STREAM_DB: gino::Gino = gino::Gino::secondary();

    #[get("/stream")]
    fn stream_databases() -> TextStream<impl Stream<Item = String>> {
        TextStream::from(
            database_lines(&STREAM_DB)
                .map(|line| line.unwrap_or_else(|error| format!("{error}\n"))),
        )
    }

    fn pick_tenant(request: &rocket::Request<'_>) -> Result<String, Status> {
        valid_tenant(request.headers().get_one("x-tenant")).ok_or(Status::BadRequest)
    }

    /// A tenant's streamed body queries its own tenant's database: the
    /// response keeps the request's tenant (and its lease) until it is sent.
    #[rocket::async_test]
    async fn a_streamed_body_queries_its_own_tenants_database() {
        let databases = TenantDatabases::create(2).await;
        let settings = databases.web_settings();
        let rocket = rocket::custom(figment(settings.dsn.as_deref().unwrap()))
            .attach(
                gino_rocket::Gino::fairing(&STREAM_DB)
                    .tenants(databases.registry_for(&STREAM_DB).build()),
            )
            .manage(Ctx {
                db: &STREAM_DB,
                inside: Arc::new(Notify::new()),
                go_on: Arc::new(Notify::new()),
            })
            .mount(
                "/",
                gino_rocket::tenant_scoped(routes![stream_databases], pick_tenant),
            );
        let launched = Launched::start(rocket).await;
        for tenant in ["t0", "t1"] {
            databases
                .expect_database_lines(&launched.url("/stream"), tenant)
                .await;
        }
        launched.stop().await;
        databases.expect_all_closed().await;
        databases.drop_all().await;
    }

    #[rocket::async_test]
    async fn two_thousand_requests_never_cross_tenants() {
        let databases = TenantDatabases::create(8).await;
        let settings = databases.web_settings();
        let tenants = databases.registry(3, 6);
        let rocket = rocket::custom(figment(settings.dsn.as_deref().unwrap()))
            .attach(gino_rocket::Gino::fairing(&TENANT_DB).tenants(tenants.clone()))
            .manage(Ctx {
                db: &TENANT_DB,
                inside: Arc::new(Notify::new()),
                go_on: Arc::new(Notify::new()),
            })
            .mount(
                "/",
                gino_rocket::tenant_scoped(routes![tenant, show, create], pick_tenant),
            );
        let launched = Launched::start(rocket).await;
        // The fairing's start-up proof keeps one connection of the base
        // database in its pool: one more than the tenants' budget.
        expect_tenants_isolated(&launched.url(""), &databases, 2000, 7).await;
        let stats = tenants.stats();
        assert!(
            stats.evicted > 0,
            "a cap of 3 with 8 tenants evicts: {stats:?}"
        );
        launched.stop().await;
        databases.expect_all_closed().await;
        databases.drop_all().await;
    }
}
