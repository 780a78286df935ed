//! gino-actix as users run it: an actix server with several workers on
//! 127.0.0.1 with a random port, driven by a real HTTP client, the database
//! checked afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use diesel::dsl::sql;
use diesel::sql_types::{BigInt, Integer};
use gino::prelude::*;
use gino_actix::{Conn, Error, Settings};
use gino_integration_tests::web::{
    self as scenario, WebTest, absent_port, borrowed, fresh_db, leaky_query, pid, sleeper,
};
use gino_testkit::Cluster;
use tokio::sync::Notify;

/// A test's database and the actix extension on it, connected.
async fn setup(tune: impl FnOnce(&mut Settings)) -> (WebTest, gino_actix::Gino) {
    let test = WebTest::new(tune).await;
    let web = gino_actix::Gino::new(test.db, test.settings.clone());
    web.connect().await.expect("connect");
    (test, web)
}

/// A [`Server`] of the apps `$app` (a closure, as `HttpServer::new`
/// takes) makes, one per worker: a macro, since the app's service types
/// cannot be named without actix-http.
macro_rules! serve {
    ($app:expr) => {{
        let server = HttpServer::new($app)
            .workers(2)
            .disable_signals()
            .shutdown_timeout(10)
            .bind(("127.0.0.1", 0))
            .expect("bind");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        Server {
            addr,
            handle,
            done: tokio::spawn(server),
        }
    }};
}

/// A running server with two workers.
struct Server {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn start<F>(web: &gino_actix::Gino, routes: F) -> Server
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let db = web.clone();
        serve!(move || {
            App::new()
                .app_data(web::Data::new(db.clone()))
                .wrap(db.middleware())
                .configure(routes.clone())
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful stop: waits for in-flight requests.
    async fn stop(self) {
        self.handle.stop(true).await;
        self.done.await.unwrap().unwrap();
    }
}

#[actix_web::test]
async fn a_request_that_never_queries_borrows_nothing() {
    let (test, web) = setup(|_| {}).await;
    let inside = Arc::new(Notify::new());
    let go_on = Arc::new(Notify::new());
    let (i, g) = (inside.clone(), go_on.clone());
    let server = Server::start(&web, move |cfg| {
        let (i, g) = (i.clone(), g.clone());
        cfg.route(
            "/",
            web::get().to(move || {
                let (i, g) = (i.clone(), g.clone());
                async move {
                    i.notify_one();
                    g.notified().await;
                    "no query"
                }
            }),
        );
    });
    let opened = test.engine().pool_status().size;
    let request = tokio::spawn(reqwest::get(server.url("/")));
    inside.notified().await;
    assert_eq!(
        test.borrowed(),
        0,
        "borrowed during a request without queries"
    );
    assert_eq!(web.in_flight(), 1);
    go_on.notify_one();
    assert_eq!(request.await.unwrap().unwrap().status(), 200);
    assert_eq!(test.borrowed(), 0);
    assert_eq!(test.engine().pool_status().size, opened);
    server.stop().await;
}

async fn pid_in_helper(db: &gino::Gino) -> gino::Result<i32> {
    db.one(pid()).await
}

#[actix_web::test]
async fn queries_of_a_request_share_one_connection_borrowed_once() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let server = Server::start(&web, move |cfg| {
        cfg.route(
            "/pids",
            web::get().to(move |conn: Conn| async move {
                let mut pids = vec![db.one(pid()).await?];
                pids.push(pid_in_helper(db).await?);
                pids.push(db.transaction(async { pid_in_helper(db).await }).await?);
                pids.push(pid().gino().bind(db).one().await?);
                pids.push(conn.one(pid()).await?);
                let stats = conn.stats();
                Ok::<_, Error>(web::Json((pids, stats.borrows)))
            }),
        );
    });
    scenario::expect_one_connection_per_request(&test, &server.url("")).await;
    server.stop().await;
}

#[actix_web::test]
async fn two_hundred_concurrent_requests_on_five_connections() {
    let (test, web) = setup(|s| s.pool_max_size = 5).await;
    let db = test.db;
    let server = Server::start(&web, move |cfg| {
        cfg.route(
            "/double/{n}",
            web::get().to(move |n: web::Path<i32>| async move {
                let n = n.into_inner();
                let twice: i32 = db
                    .transaction(async {
                        db.one(diesel::select(
                            sql::<Integer>("").bind::<Integer, _>(n).sql(" * 2"),
                        ))
                        .await
                    })
                    .await?;
                Ok::<_, Error>(web::Json(twice))
            }),
        );
    });
    scenario::expect_two_hundred_concurrent_requests(&test, &server.url("")).await;
    server.stop().await;
}

#[actix_web::test]
async fn clients_leaving_under_load_leave_nothing_open() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let keep = move |refuse: bool| {
        move |n: web::Path<i32>| async move {
            Ok::<_, Error>(web::Json(scenario::keep(db, n.into_inner(), refuse).await?))
        }
    };
    let server = Server::start(&web, move |cfg| {
        cfg.route("/keep/{n}", web::get().to(keep(false)))
            .route("/refuse/{n}", web::get().to(keep(true)));
    });
    scenario::expect_leaving_clients_under_load(&test, &server.url("")).await;
    server.stop().await;
}

#[actix_web::test]
async fn a_panicking_handler_leaves_nothing_open() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let server = Server::start(&web, move |cfg| {
        cfg.route(
            "/",
            web::get().to(move || async move {
                let tx = db.begin().await.expect("begin");
                db.status(diesel::sql_query("CREATE TABLE panicked (x int)"))
                    .await
                    .expect("create");
                if tx.is_active().await {
                    panic!("the handler panics inside a transaction");
                }
                HttpResponse::Ok().finish()
            }),
        );
    });
    let answer = reqwest::get(server.url("/")).await;
    assert!(
        answer.as_ref().map_or(true, |r| r.status() == 500),
        "{answer:?}"
    );
    test.assert_no_open_transaction().await;
    test.assert_pool_clean().await;
    assert!(!test.table_exists("panicked").await);
    // The server still serves.
    let server_alive = reqwest::get(server.url("/missing")).await.unwrap();
    assert_eq!(server_alive.status(), 404);
    server.stop().await;
}

#[actix_web::test]
async fn a_client_leaving_mid_transaction_leaves_nothing_open() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let inside = Arc::new(Notify::new());
    let signal = inside.clone();
    let server = Server::start(&web, move |cfg| {
        let signal = signal.clone();
        cfg.route(
            "/slow",
            web::get().to(move || {
                let signal = signal.clone();
                async move {
                    db.transaction(async {
                        db.status(diesel::sql_query("CREATE TABLE abandoned (x int)"))
                            .await?;
                        signal.notify_one();
                        // actix-web runs a handler to its end even when the
                        // client is gone; this one ends with an error, so
                        // its transaction rolls back.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        Err::<(), _>(gino::Error::NotFound)
                    })
                    .await?;
                    Ok::<_, Error>("slow")
                }
            }),
        );
    });
    scenario::expect_nothing_open_after_the_client_left(&test, &server.url(""), &inside).await;
    assert_eq!(web.in_flight(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn early_release_and_borrow_again_within_a_request() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let engine = test.engine();
    let server = Server::start(&web, move |cfg| {
        let engine = engine.clone();
        cfg.route(
            "/release",
            web::get().to(move |conn: Conn| {
                let engine = engine.clone();
                async move {
                    db.one::<i32, _>(pid()).await?;
                    let before = borrowed(&engine);
                    conn.release_raw().await?;
                    let held = conn.has_raw_connection().await;
                    let between = borrowed(&engine);
                    db.one::<i32, _>(pid()).await?;
                    Ok::<_, Error>(web::Json((before, held, between, conn.stats().borrows)))
                }
            }),
        );
    });
    scenario::expect_early_release(&test, &server.url("")).await;
    server.stop().await;
}

#[actix_web::test]
async fn errors_answer_404_503_and_an_opaque_500() {
    let (test, web) = setup(|s| {
        s.pool_max_size = 1;
        s.acquire_timeout = Some(Duration::from_millis(200));
    })
    .await;
    let db = test.db;
    let holding = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (h, r) = (holding.clone(), release.clone());
    let server = Server::start(&web, move |cfg| {
        let (h, r) = (h.clone(), r.clone());
        cfg.route(
            "/missing",
            web::get().to(move || async move {
                let n: i32 = db
                    .first_or_404(diesel::select(sql::<Integer>("1 WHERE false")))
                    .await?;
                Ok::<_, Error>(web::Json(n))
            }),
        )
        .route(
            "/hold",
            web::get().to(move || {
                let (h, r) = (h.clone(), r.clone());
                async move {
                    db.one::<i32, _>(pid()).await?;
                    h.notify_one();
                    r.notified().await;
                    Ok::<_, Error>("held")
                }
            }),
        )
        .route(
            "/query",
            web::get().to(move || async move {
                Ok::<_, Error>(web::Json(db.one::<i32, _>(pid()).await?))
            }),
        )
        .route(
            "/broken",
            web::get().to(move || async move {
                Ok::<_, Error>(web::Json(db.one::<i32, _>(leaky_query()).await?))
            }),
        );
    });
    scenario::expect_error_answers(&server.url(""), &holding, &release).await;
    server.stop().await;
}

#[actix_web::test]
async fn without_a_connection_per_request_queries_borrow_per_statement() {
    let (test, web) = setup(|s| s.use_connection_for_request = false).await;
    let db = test.db;
    let engine = test.engine();
    let server = Server::start(&web, move |cfg| {
        let engine = engine.clone();
        cfg.route(
            "/borrowed",
            web::get().to(move || {
                let engine = engine.clone();
                async move {
                    db.one::<i32, _>(pid()).await?;
                    Ok::<_, Error>(web::Json(borrowed(&engine)))
                }
            }),
        );
    });
    scenario::expect_no_connection_held(&server.url("")).await;
    server.stop().await;
}

#[actix_web::test]
async fn the_handle_is_in_web_data_and_conn_needs_the_middleware() {
    let (test, web) = setup(|_| {}).await;
    let db = web.clone();
    let server = HttpServer::new(move || {
        let with = web::scope("/with").wrap(db.middleware()).route(
            "",
            web::get()
                .to(|data: web::Data<gino_actix::Gino>| async move { web::Json(data.in_flight()) }),
        );
        let without = web::resource("/without").to(|conn: Conn| async move {
            let _ = conn.has_raw_connection().await;
            "unreachable"
        });
        App::new()
            .app_data(web::Data::new(db.clone()))
            .service(with)
            .service(without)
    })
    .workers(2)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let done = tokio::spawn(server);
    let in_flight: usize = reqwest::get(format!("http://{addr}/with"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_flight, 1, "the handler sees its own request in flight");
    let without = reqwest::get(format!("http://{addr}/without"))
        .await
        .unwrap();
    assert_eq!(without.status(), 500);
    handle.stop(true).await;
    done.await.unwrap().unwrap();
    drop(test);
}

#[actix_web::test]
async fn shutdown_waits_for_in_flight_requests_then_closes_every_connection() {
    let (test, web) = setup(|s| s.pool_min_size = 2).await;
    let db = test.db;
    let inside = Arc::new(Notify::new());
    let signal = inside.clone();
    let server = Server::start(&web, move |cfg| {
        let signal = signal.clone();
        cfg.route(
            "/slow",
            web::get().to(move || {
                let signal = signal.clone();
                async move {
                    signal.notify_one();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok::<_, Error>(web::Json(db.one::<i32, _>(pid()).await?))
                }
            }),
        );
    });
    assert!(!test.session_states().await.is_empty());
    let slow = tokio::spawn(reqwest::get(server.url("/slow")));
    inside.notified().await;
    server.stop().await; // graceful: waits for /slow
    web.close().await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert!(!db.is_bound());
    test.assert_all_closed().await;
}

#[actix_web::test]
async fn a_streamed_body_keeps_the_pool_open_until_it_is_sent() {
    use futures_util::StreamExt;

    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let (streaming, go_on) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (started, release) = (streaming.clone(), go_on.clone());
    let server = Server::start(&web, move |cfg| {
        let (started, release) = (started.clone(), release.clone());
        cfg.route(
            "/stream",
            web::get().to(move || {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    // The handler is done once it returns the body; the
                    // body's second chunk queries while actix sends it.
                    let first = futures_util::stream::once(async {
                        Ok::<_, Error>(web::Bytes::from("first\n"))
                    });
                    let second = futures_util::stream::once(async move {
                        started.notify_one();
                        release.notified().await;
                        let pid = db.one::<i32, _>(pid()).await?;
                        Ok::<_, Error>(web::Bytes::from(format!("pid {pid}\n")))
                    });
                    HttpResponse::Ok().streaming(first.chain(second))
                }
            }),
        );
    });
    let close = {
        let web = web.clone();
        async move { web.close().await }
    };
    scenario::expect_a_streamed_body_held_through_shutdown(
        &test,
        &server.url(""),
        &streaming,
        &go_on,
        close,
    )
    .await;
    server.stop().await;
}

#[actix_web::test]
async fn a_database_that_is_down_answers_503_until_it_is_back() {
    let cluster = Arc::new(Cluster::builder().start().expect("a cluster to stop"));
    let mut settings = Settings::default();
    settings.dsn = Some(cluster.url_for("postgres"));
    let db = fresh_db();
    let web = gino_actix::Gino::new(db, settings);
    web.connect().await.expect("connect");
    let server = Server::start(&web, move |cfg| {
        cfg.route(
            "/query",
            web::get().to(move || async move {
                Ok::<_, Error>(web::Json(db.one::<i32, _>(pid()).await?))
            }),
        )
        .route(
            "/sleep",
            web::get().to(move || async move {
                Ok::<_, Error>(web::Json(db.one::<i32, _>(sleeper()).await?))
            }),
        );
    });
    scenario::expect_503_while_the_database_is_down(&server.url(""), &cluster).await;
    server.stop().await;
}

#[actix_web::test]
async fn start_up_waits_for_a_late_server_and_gives_up_on_an_absent_one() {
    let late = Cluster::builder().init().expect("a cluster to start later");
    let mut settings = Settings::default();
    settings.host = "127.0.0.1".to_owned();
    settings.port = late.port();
    settings.pool_min_size = 1;
    settings.retry_limit = 100;
    settings.retry_interval = Duration::from_millis(100);
    let db = fresh_db();
    let web = gino_actix::Gino::new(db, settings.clone());
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        late.start().expect("start the late cluster");
        late
    });
    let started = Instant::now();
    web.connect().await.expect("found the late server");
    assert!(started.elapsed() >= Duration::from_millis(600));
    let late = starter.join().unwrap();
    let n: i64 = db
        .one(diesel::select(sql::<BigInt>("1::bigint")))
        .await
        .unwrap();
    assert_eq!(n, 1);
    web.close().await;
    drop(late);

    settings.port = absent_port();
    settings.retry_limit = 2;
    settings.retry_interval = Duration::from_millis(150);
    let web = gino_actix::Gino::new(fresh_db(), settings);
    let started = Instant::now();
    let error = web.connect().await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(error, gino::Error::Connection(_)), "{error:?}");
}

mod tenant_app {
    use super::Server;
    use actix_web::dev::ServiceRequest;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use gino_actix::{Error, TenantKey};
    use gino_integration_tests::tenants::{
        TENANT_DB, TenantDatabases, TenantUser, database_lines, expect_tenants_isolated,
        tenant_body, valid_tenant,
    };
    use serde_json::Value;

    async fn tenant(t: web::ReqData<TenantKey>) -> Result<HttpResponse, Error> {
        Ok(HttpResponse::Ok().json(tenant_body(&t.into_inner().0).await?))
    }

    async fn show(id: web::Path<i32>) -> Result<HttpResponse, Error> {
        Ok(HttpResponse::Ok().json(TenantUser::get_or_404(id.into_inner()).await?))
    }

    async fn create(body: web::Json<Value>) -> Result<HttpResponse, Error> {
        let nickname = body["nickname"].as_str().unwrap_or_default().to_owned();
        let user = TenantUser::create().nickname(nickname).await?;
        Ok(HttpResponse::Created().json(user))
    }

    fn pick(request: &ServiceRequest) -> Result<String, actix_web::Error> {
        valid_tenant(
            request
                .headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok()),
        )
        .ok_or_else(|| actix_web::error::ErrorBadRequest("a valid X-Tenant is required"))
    }

    static OUTER_DB: gino::Gino = gino::Gino::secondary();

    async fn hello() -> HttpResponse {
        HttpResponse::Ok().body("hello")
    }

    async fn stream_database() -> HttpResponse {
        use futures_util::TryStreamExt;
        HttpResponse::Ok().streaming(database_lines(&OUTER_DB).map_ok(web::Bytes::from))
    }

    /// The same body with its length said beforehand: actix then sends it
    /// as a sized body, which streams all the same.
    async fn stream_database_sized() -> Result<HttpResponse, gino_actix::Error> {
        use futures_util::TryStreamExt;
        let name = gino_integration_tests::tenants::current_database_of(&OUTER_DB).await?;
        Ok(HttpResponse::Ok()
            .insert_header((
                actix_web::http::header::CONTENT_LENGTH,
                3 * (name.len() + 1),
            ))
            .streaming(database_lines(&OUTER_DB).map_ok(web::Bytes::from)))
    }

    /// A request the tenant middleware refuses (no tenant, an unknown one)
    /// is answered as any other: middleware around it sees the answer, as
    /// it does in axum, rather than an `Err` passing it by. A request it
    /// takes streams its body in its tenant's scope.
    #[actix_web::test]
    async fn refusals_are_answers_that_outer_middleware_sees() {
        let databases = TenantDatabases::create(1).await;
        let registry = databases.registry_for(&OUTER_DB).build();
        let db = gino_actix::Gino::new(&OUTER_DB, databases.web_settings()).with_tenants(registry);
        let app_db = db.clone();
        let server = serve!(move || {
            App::new()
                .route("/hello", web::get().to(hello))
                .route("/stream", web::get().to(stream_database))
                .route("/stream-sized", web::get().to(stream_database_sized))
                .wrap(app_db.tenant_middleware(pick))
                .wrap(actix_web::middleware::DefaultHeaders::new().add(("x-outer", "seen")))
        });
        let client = reqwest::Client::new();
        for (tenant, status) in [(None, 400), (Some("nobody"), 404), (Some("t0"), 200)] {
            let mut request = client.get(server.url("/hello"));
            if let Some(tenant) = tenant {
                request = request.header("x-tenant", tenant);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), status, "{tenant:?}");
            assert_eq!(answer.headers()["x-outer"], "seen", "{tenant:?}");
        }
        // A tenant's streamed body queries its own tenant's database.
        for path in ["/stream", "/stream-sized"] {
            databases
                .expect_database_lines(&server.url(path), "t0")
                .await;
        }
        server.stop().await;
        db.close().await;
        databases.expect_all_closed().await;
        databases.drop_all().await;
    }

    #[actix_web::test]
    async fn two_thousand_requests_never_cross_tenants() {
        let databases = TenantDatabases::create(8).await;
        let db = gino_actix::Gino::new(&TENANT_DB, databases.web_settings())
            .with_tenants(databases.registry(3, 6));
        let app_db = db.clone();
        // Two workers, each its own runtime, share the registry.
        let server = serve!(move || {
            App::new()
                .route("/tenant", web::get().to(tenant))
                .route("/users/{id}", web::get().to(show))
                .route("/users", web::post().to(create))
                .wrap(app_db.tenant_middleware(pick))
        });
        expect_tenants_isolated(&server.url(""), &databases, 2000, 6).await;
        let stats = db.tenants().unwrap().stats();
        assert!(
            stats.evicted > 0,
            "a cap of 3 with 8 tenants evicts: {stats:?}"
        );
        server.stop().await;
        db.close().await;
        databases.expect_all_closed().await;
        databases.drop_all().await;
    }
}
