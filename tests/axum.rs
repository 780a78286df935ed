//! gino-axum as users run it: the app on 127.0.0.1 with a random port,
//! driven by a real HTTP client, the database checked afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use diesel::dsl::sql;
use diesel::sql_types::{BigInt, Integer};
use futures_util::{SinkExt, StreamExt};
use gino::prelude::*;
use gino_axum::{Conn, Error, Settings};
use gino_integration_tests::web::{
    self as scenario, WebTest, borrowed, fresh_db, leaky_query, pid, sleeper,
};
use gino_testkit::Cluster;
use tokio::sync::{Notify, oneshot};
use tokio_tungstenite::tungstenite::Message as ClientMessage;

/// A test's database and the axum extension on it, connected.
async fn setup(tune: impl FnOnce(&mut Settings)) -> (WebTest, gino_axum::Gino) {
    let test = WebTest::new(tune).await;
    let web = gino_axum::Gino::new(test.db, test.settings.clone());
    web.connect().await.expect("connect");
    (test, web)
}

/// A running app: its address, and a switch that starts its graceful
/// shutdown.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `app`: a `Router`, or one wrapped whole by `Gino::wrap`.
    async fn start<S>(web: &gino_axum::Gino, app: S) -> Server
    where
        S: tower_service::Service<
                axum::extract::Request,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = web.shutdown_on(async move {
            let _ = stopped.await;
        });
        let web = web.clone();
        // As an application runs it: the pool closes once the server is done.
        let done = tokio::spawn(async move {
            axum::serve(listener, axum::ServiceExt::into_make_service(app))
                .with_graceful_shutdown(shutdown)
                .await
                .unwrap();
            web.close().await;
        });
        Server {
            addr,
            stop: Some(stop),
            done,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_queries_borrows_nothing() {
    let (test, web) = setup(|_| {}).await;
    let inside = Arc::new(Notify::new());
    let go_on = Arc::new(Notify::new());
    let (i, g) = (inside.clone(), go_on.clone());
    let app = Router::new()
        .route(
            "/",
            get(move || async move {
                i.notify_one();
                g.notified().await;
                "no query"
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    assert_eq!(test.borrowed(), 0);
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
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(test.borrowed(), 0);
    assert_eq!(
        test.engine().pool_status().size,
        opened,
        "nothing was opened"
    );
    server.stop().await;
}

async fn pid_in_helper(db: &gino::Gino) -> gino::Result<i32> {
    db.one(pid()).await
}

async fn pid_in_nested_helper(db: &gino::Gino) -> gino::Result<i32> {
    db.transaction(async { pid_in_helper(db).await }).await
}

/// `GET /pids`: the pids of every way a handler can query, and how often
/// the request borrowed.
fn pids_app(db: &'static gino::Gino) -> Router {
    Router::new().route(
        "/pids",
        get(move |conn: Conn| async move {
            let mut pids = vec![db.one(pid()).await?];
            pids.push(pid_in_helper(db).await?);
            pids.push(pid_in_nested_helper(db).await?);
            pids.push(pid().gino().bind(db).one().await?);
            pids.push(conn.one(pid()).await?);
            // The engine's own queries find the request's connection too.
            pids.push(db.engine()?.one(pid()).await?);
            Ok::<_, Error>(Json((pids, conn.stats().borrows)))
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_of_a_request_share_one_connection_borrowed_once() {
    let (test, web) = setup(|_| {}).await;
    let server = Server::start(&web, pids_app(test.db).layer(web.layer())).await;
    scenario::expect_one_connection_per_request(&test, &server.url("")).await;
    server.stop().await;
}

/// The same with the router wrapped whole (`Gino::wrap`) instead of
/// layered, and a request that never queries borrowing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_wrapped_whole_runs_every_request_in_its_scope() {
    let (test, web) = setup(|_| {}).await;
    let app = pids_app(test.db).route("/idle", get(|| async { "no query" }));
    let server = Server::start(&web, web.wrap(app)).await;
    scenario::expect_one_connection_per_request(&test, &server.url("")).await;
    let idle = reqwest::get(server.url("/idle")).await.unwrap();
    assert_eq!(idle.text().await.unwrap(), "no query");
    assert_eq!(web.in_flight(), 0);
    assert_eq!(test.borrowed(), 0);
    server.stop().await;
    test.assert_all_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_on_five_connections() {
    let (test, web) = setup(|s| s.pool_max_size = 5).await;
    let db = test.db;
    let app = Router::new()
        .route(
            "/double/{n}",
            get(move |Path(n): Path<i32>| async move {
                let twice: i32 = db
                    .transaction(async {
                        db.one(diesel::select(
                            sql::<Integer>("").bind::<Integer, _>(n).sql(" * 2"),
                        ))
                        .await
                    })
                    .await?;
                Ok::<_, Error>(Json(twice))
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    scenario::expect_two_hundred_concurrent_requests(&test, &server.url("")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_leaving_under_load_leave_nothing_open() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let keep = move |refuse: bool| {
        move |Path(n): Path<i32>| async move {
            Ok::<_, Error>(Json(scenario::keep(db, n, refuse).await?))
        }
    };
    let app = Router::new()
        .route("/keep/{n}", get(keep(false)))
        .route("/refuse/{n}", get(keep(true)))
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    scenario::expect_leaving_clients_under_load(&test, &server.url("")).await;
    scenario::wait_until("requests still in flight", || web.in_flight() == 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_leaves_nothing_open() {
    use tower_http::catch_panic::CatchPanicLayer;
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let handler = move || async move {
        let tx = db.begin().await.expect("begin");
        db.status(diesel::sql_query("CREATE TABLE panicked (x int)"))
            .await
            .expect("create");
        if tx.is_active().await {
            panic!("the handler panics inside a transaction");
        }
        "unreachable"
    };
    // gino's layer inside CatchPanicLayer, and outside it.
    let outer = Router::new()
        .route("/", get(handler))
        .layer(web.layer())
        .layer(CatchPanicLayer::new());
    let inner = Router::new()
        .route("/", get(handler))
        .layer(CatchPanicLayer::new())
        .layer(web.layer());
    for app in [outer, inner] {
        let server = Server::start(&web, app).await;
        let response = reqwest::get(server.url("/")).await.unwrap();
        assert_eq!(response.status(), 500);
        test.assert_no_open_transaction().await;
        test.assert_pool_clean().await;
        assert!(
            !test.table_exists("panicked").await,
            "the panicked transaction was committed"
        );
        server.stop().await;
        // The extension is closed by the stop; bind it again for the next round.
        web.connect().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_transaction_leaves_nothing_open() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let inside = Arc::new(Notify::new());
    let signal = inside.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(move || async move {
                db.transaction(async {
                    db.status(diesel::sql_query("CREATE TABLE abandoned (x int)"))
                        .await?;
                    signal.notify_one();
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, gino::Error>(())
                })
                .await?;
                Ok::<_, Error>("slow")
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    scenario::expect_nothing_open_after_the_client_left(&test, &server.url(""), &inside).await;
    // axum drops the handler's future when its client goes away.
    scenario::wait_until("the request never ended", || web.in_flight() == 0).await;
    server.stop().await;
}

/// A client that leaves while its request's statement runs: the statement
/// is cancelled on the server (nobody awaits it), and its connection,
/// outside any transaction, goes back to the pool instead of being closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_statement_cancels_it_and_keeps_the_connection() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let app = Router::new()
        .route(
            "/pid",
            get(move || async move { Ok::<_, Error>(Json(db.one::<i32, _>(pid()).await?)) }),
        )
        .route(
            "/sleep",
            get(move || async move {
                db.status(diesel::sql_query("SELECT pg_sleep(30)")).await?;
                Ok::<_, Error>("slept")
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    let pid_now = || async {
        let pid: i32 = reqwest::get(server.url("/pid"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pid
    };
    let before = pid_now().await;
    let request = tokio::spawn(reqwest::get(server.url("/sleep")));
    test.wait_for_sessions("the statement never started", |states| {
        states.iter().any(|s| s == "active")
    })
    .await;
    request.abort();
    scenario::wait_until("the request never ended", || web.in_flight() == 0).await;
    scenario::wait_until("the connection never came back", || test.borrowed() == 0).await;
    test.wait_for_sessions("the abandoned statement still runs", |states| {
        !states.iter().any(|s| s == "active")
    })
    .await;
    assert_eq!(
        pid_now().await,
        before,
        "the connection was closed, not kept"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_release_and_borrow_again_within_a_request() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let engine = test.engine();
    let app = Router::new()
        .route(
            "/release",
            get(move |conn: Conn| async move {
                db.one::<i32, _>(pid()).await?;
                let before = borrowed(&engine);
                conn.release_raw().await?;
                let held = conn.has_raw_connection().await;
                let between = borrowed(&engine);
                db.one::<i32, _>(pid()).await?; // borrows again, implicitly
                Ok::<_, Error>(Json((before, held, between, conn.stats().borrows)))
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    scenario::expect_early_release(&test, &server.url("")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_answer_404_503_and_an_opaque_500() {
    // A busy pool answers 503 whichever ends the wait for it: the acquire
    // timeout, or the statement's own (asyncpg's `command_timeout`).
    for statement_timeout in [false, true] {
        let (test, web) = setup(|s| {
            s.pool_max_size = 1;
            if statement_timeout {
                s.kwargs = vec![("command_timeout".to_owned(), "0.2".to_owned())];
            } else {
                s.acquire_timeout = Some(Duration::from_millis(200));
            }
        })
        .await;
        let db = test.db;
        let holding = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let (h, r) = (holding.clone(), release.clone());
        let app =
            Router::new()
                .route(
                    "/missing",
                    get(move || async move {
                        let n: i32 = db
                            .first_or_404(diesel::select(sql::<Integer>("1 WHERE false")))
                            .await?;
                        Ok::<_, Error>(Json(n))
                    }),
                )
                .route(
                    "/hold",
                    get(move || async move {
                        db.one::<i32, _>(pid()).await?;
                        h.notify_one();
                        r.notified().await;
                        Ok::<_, Error>("held")
                    }),
                )
                .route(
                    "/query",
                    get(
                        move || async move { Ok::<_, Error>(Json(db.one::<i32, _>(pid()).await?)) },
                    ),
                )
                .route(
                    "/broken",
                    get(move || async move {
                        Ok::<_, Error>(Json(db.one::<i32, _>(leaky_query()).await?))
                    }),
                )
                .route(
                    "/missing/{via}",
                    get(move |Path(via): Path<String>, conn: Conn| async move {
                        // Every way GINO's extensions answer 404 (the tests of
                        // gino-starlette and gino-aiohttp).
                        let none = || diesel::select(sql::<Integer>("1 WHERE false"));
                        let n: i32 = match via.as_str() {
                            "db" => db.first_or_404(none()).await?,
                            "conn" => conn.first_or_404(none()).await?,
                            "engine" => db.engine()?.first_or_404(none()).await?,
                            "query" => none().gino().bind(db).first_or_404().await?,
                            _ => none().gino().bind(&conn).first_or_404().await?,
                        };
                        Ok::<_, Error>(Json(n))
                    }),
                )
                .layer(web.layer());
        let server = Server::start(&web, app).await;
        scenario::expect_error_answers(&server.url(""), &holding, &release).await;
        for via in ["db", "conn", "engine", "query", "bound"] {
            let missing = reqwest::get(server.url(&format!("/missing/{via}")))
                .await
                .unwrap();
            assert_eq!(missing.status(), 404, "{via}");
            assert_eq!(missing.text().await.unwrap(), r#"{"error":"not found"}"#);
        }
        assert_eq!(test.borrowed(), 0);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_connection_per_request_queries_borrow_per_statement() {
    let (test, web) = setup(|s| s.use_connection_for_request = false).await;
    let db = test.db;
    let engine = test.engine();
    let app = Router::new()
        .route(
            "/borrowed",
            get(move || async move {
                db.one::<i32, _>(pid()).await?;
                Ok::<_, Error>(Json(borrowed(&engine)))
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    scenario::expect_no_connection_held(&server.url("")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composes_with_state_nesting_and_other_layers() {
    use tower_http::catch_panic::CatchPanicLayer;
    use tower_http::cors::CorsLayer;
    use tower_http::timeout::TimeoutLayer;
    use tower_http::trace::TraceLayer;
    let (test, web) = setup(|_| {}).await;

    #[derive(Clone)]
    struct AppState {
        db: &'static gino::Gino,
        greeting: &'static str,
    }
    async fn pids(State(state): State<AppState>) -> Result<Json<(String, i32, i32)>, Error> {
        let first = state.db.one(pid()).await?;
        let second = state.db.one(pid()).await?;
        Ok(Json((state.greeting.to_owned(), first, second)))
    }
    let state = AppState {
        db: test.db,
        greeting: "hi",
    };
    let nested = Router::new()
        .route("/pids", get(pids))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ));
    let app = Router::new()
        .route("/pids", get(pids))
        .nest("/nested", nested)
        .layer(CorsLayer::permissive())
        .layer(web.layer())
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(state);
    let server = Server::start(&web, app).await;
    for path in ["/pids", "/nested/pids"] {
        let (greeting, first, second): (String, i32, i32) = reqwest::get(server.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(greeting, "hi");
        assert_eq!(first, second, "{path}: one backend per request");
    }
    // The layer on a nested router only.
    let (test2, web2) = setup(|_| {}).await;
    let inner_only = Router::new()
        .nest(
            "/api",
            Router::new().route("/pids", get(pids)).layer(web2.layer()),
        )
        .with_state(AppState {
            db: test2.db,
            greeting: "nested",
        });
    let server2 = Server::start(&web2, inner_only).await;
    let (_, first, second): (String, i32, i32) = reqwest::get(server2.url("/api/pids"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first, second);
    server.stop().await;
    server2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_in_flight_requests_then_closes_every_connection() {
    let (test, web) = setup(|s| s.pool_min_size = 2).await;
    let db = test.db;
    let inside = Arc::new(Notify::new());
    let signal = inside.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(move || async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok::<_, Error>(Json(db.one::<i32, _>(pid()).await?))
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    assert!(!test.session_states().await.is_empty());
    let slow = tokio::spawn(reqwest::get(server.url("/slow")));
    inside.notified().await;
    server.stop().await; // graceful: waits for /slow
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the in-flight request completed");
    assert!(!db.is_bound(), "the database was unbound");
    test.assert_all_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_keeps_the_pool_open_until_it_is_sent() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let (streaming, go_on) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (started, release) = (streaming.clone(), go_on.clone());
    let app = Router::new()
        .route(
            "/stream",
            get(move || async move {
                // The handler is done once it returns the body; the body's
                // second chunk queries while hyper sends it.
                let first = futures_util::stream::once(async { Ok::<_, Error>("first\n".into()) });
                let second = futures_util::stream::once(async move {
                    started.notify_one();
                    release.notified().await;
                    let pid = db.one::<i32, _>(pid()).await?;
                    Ok::<String, Error>(format!("pid {pid}\n"))
                });
                axum::body::Body::from_stream(first.chain(second))
            }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    let base = server.url("");
    // Graceful: the body is still going out.
    let stop = server.stop();
    scenario::expect_a_streamed_body_held_through_shutdown(&test, &base, &streaming, &go_on, stop)
        .await;
}

/// A request the server took before the signal but that is still in a
/// layer outside gino's (an authentication awaiting a session store) when
/// the signal comes finds the database: the pool closes once the server
/// is done, not at the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_in_outer_layers_at_the_signal_finds_the_database() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let entered = Arc::new(Notify::new());
    let slow_outer_layer = {
        let entered = entered.clone();
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let entered = entered.clone();
            async move {
                entered.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                next.run(request).await
            }
        }
    };
    let app = Router::new()
        .route(
            "/pid",
            get(move || async move { Ok::<_, Error>(Json(db.one::<i32, _>(pid()).await?)) }),
        )
        .layer(web.layer())
        .layer(axum::middleware::from_fn(slow_outer_layer));
    let server = Server::start(&web, app).await;
    let url = server.url("/pid");
    let request = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
    entered.notified().await;
    let stopped = tokio::spawn(server.stop());
    assert_eq!(request.await.unwrap(), 200);
    stopped.await.unwrap();
    test.assert_all_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_of_requests_after_shutdown_answer_503() {
    let (test, web) = setup(|_| {}).await;
    let db = test.db;
    let app = Router::new()
        .route(
            "/pid",
            get(move || async move { Ok::<_, Error>(Json(db.one::<i32, _>(pid()).await?)) }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    assert_eq!(
        reqwest::get(server.url("/pid")).await.unwrap().status(),
        200
    );
    web.shutdown();
    let late = reqwest::get(server.url("/pid")).await.unwrap();
    assert_eq!(late.status(), 503, "{:?}", late.text().await);
    server.stop().await;
    test.assert_all_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_answers_503_until_it_is_back() {
    let cluster = Arc::new(Cluster::builder().start().expect("a cluster to stop"));
    let mut settings = Settings::default();
    settings.dsn = Some(cluster.url_for("postgres"));
    let db = fresh_db();
    let web = gino_axum::Gino::new(db, settings);
    web.connect().await.expect("connect");
    let app = Router::new()
        .route(
            "/query",
            get(move || async move { Ok::<_, Error>(Json(db.one::<i32, _>(pid()).await?)) }),
        )
        .route(
            "/sleep",
            get(move || async move { Ok::<_, Error>(Json(db.one::<i32, _>(sleeper()).await?)) }),
        )
        .layer(web.layer());
    let server = Server::start(&web, app).await;
    scenario::expect_503_while_the_database_is_down(&server.url(""), &cluster).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_a_late_server_and_gives_up_on_an_absent_one() {
    let late = Cluster::builder().init().expect("a cluster to start later");
    let mut settings = Settings::default();
    settings.host = "127.0.0.1".to_owned();
    settings.port = late.port();
    settings.pool_min_size = 1;
    settings.retry_limit = 100;
    settings.retry_interval = Duration::from_millis(100);
    let db = fresh_db();
    let web = gino_axum::Gino::new(db, settings.clone());
    let connecting = tokio::spawn(async move { web.connect().await.map(|_| web) });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !connecting.is_finished(),
        "connected before the server was up"
    );
    tokio::task::spawn_blocking(move || {
        late.start().expect("start the late cluster");
        late
    })
    .await
    .map(|late| {
        // Kept until the end of the test.
        std::mem::forget(late);
    })
    .unwrap();
    let web = connecting.await.unwrap().expect("found the late server");
    let n: i64 = db
        .one(diesel::select(sql::<BigInt>("1::bigint")))
        .await
        .unwrap();
    assert_eq!(n, 1);
    web.close().await;

    let port = gino_integration_tests::web::absent_port();
    settings.port = port;
    settings.retry_limit = 3;
    settings.retry_interval = Duration::from_millis(150);
    let db = fresh_db();
    let web = gino_axum::Gino::new(db, settings);
    let started = Instant::now();
    let error = web.connect().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450),
        "gave up after {elapsed:?}, before 3 retries 150 ms apart"
    );
    assert!(matches!(error, gino::Error::Connection(_)), "{error:?}");
    assert!(
        error.to_string().contains(&port.to_string()),
        "the error names where it tried: {error}"
    );
    assert!(!db.is_bound());
}

mod tenant_app {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::http::request::Parts;
    use axum::routing::{get, post};
    use axum::{Extension, Json, Router};
    use gino_axum::{Error, TenantKey};
    use gino_integration_tests::tenants::{
        TenantDatabases, TenantUser, database_lines, expect_tenants_isolated, tenant_body,
        valid_tenant,
    };
    use serde_json::{Value, json};

    use super::Server;

    async fn tenant(Extension(TenantKey(t)): Extension<TenantKey>) -> Result<Json<Value>, Error> {
        Ok(Json(tenant_body(&t).await?))
    }

    async fn show(Path(id): Path<i32>) -> Result<Json<TenantUser>, Error> {
        Ok(Json(TenantUser::get_or_404(id).await?))
    }

    async fn create(Json(body): Json<Value>) -> Result<(StatusCode, Json<TenantUser>), Error> {
        let nickname = body["nickname"].as_str().unwrap_or_default().to_owned();
        let user = TenantUser::create().nickname(nickname).await?;
        Ok((StatusCode::CREATED, Json(user)))
    }

    fn pick(request: &Parts) -> Result<String, (StatusCode, Json<Value>)> {
        valid_tenant(
            request
                .headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok()),
        )
        .ok_or((
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "a valid X-Tenant is required" })),
        ))
    }

    static STREAM_DB: gino::Gino = gino::Gino::secondary();

    async fn stream_databases() -> axum::body::Body {
        axum::body::Body::from_stream(database_lines(&STREAM_DB))
    }

    /// A tenant's streamed body queries its own tenant's database: the
    /// response keeps the request's tenant (and its lease) until it is sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_body_queries_its_own_tenants_database() {
        let databases = TenantDatabases::create(2).await;
        let registry = databases.registry_for(&STREAM_DB).build();
        let web = gino_axum::Gino::new(&STREAM_DB, databases.web_settings()).with_tenants(registry);
        let app = Router::new()
            .route("/stream", get(stream_databases))
            .layer(web.tenant_layer(pick));
        let server = Server::start(&web, app).await;
        for tenant in ["t0", "t1"] {
            databases
                .expect_database_lines(&server.url("/stream"), tenant)
                .await;
        }
        server.stop().await;
        databases.expect_all_closed().await;
        databases.drop_all().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_thousand_requests_never_cross_tenants() {
        let databases = TenantDatabases::create(8).await;
        let web = gino_axum::Gino::new(
            &gino_integration_tests::tenants::TENANT_DB,
            databases.web_settings(),
        )
        .with_tenants(databases.registry(3, 6));
        let app = Router::new()
            .route("/tenant", get(tenant))
            .route("/users/{id}", get(show))
            .route("/users", post(create))
            .layer(web.tenant_layer(pick));
        let server = Server::start(&web, app).await;
        expect_tenants_isolated(&server.url(""), &databases, 2000, 6).await;
        let stats = web.tenants().unwrap().stats();
        assert!(
            stats.evicted > 0,
            "a cap of 3 with 8 tenants evicts: {stats:?}"
        );
        assert!(stats.live <= 3, "{stats:?}");
        server.stop().await;
        databases.expect_all_closed().await;
        databases.drop_all().await;
    }
}

/// A websocket session's protocol. `pid` answers the backend pid that a
/// query of the session ran on. `tx` opens a transaction that creates the
/// table `ws_kept` and answers `in`; the next message `commit` commits it
/// (answered `done`), and anything else or the client leaving rolls it
/// back (GINO's `raise_rollback`). `begin` sends `BEGIN` and creates the
/// table `ws_begun` in a transaction of its own SQL that nothing ends.
async fn ws_session(db: &'static gino::Gino, mut socket: WebSocket) -> gino::Result<()> {
    while let Some(Ok(message)) = socket.recv().await {
        let WsMessage::Text(text) = message else {
            continue;
        };
        let answer = match text.as_str() {
            "pid" => db.one::<i32, _>(pid()).await?.to_string(),
            "tx" => {
                let socket = &mut socket;
                db.transaction_with(|tx| async move {
                    db.status(diesel::sql_query("CREATE TABLE ws_kept (x int)"))
                        .await?;
                    let _ = socket.send(WsMessage::Text("in".into())).await;
                    match socket.recv().await {
                        Some(Ok(WsMessage::Text(t))) if t.as_str() == "commit" => Ok(()),
                        _ => tx.raise_rollback().map(|_| ()),
                    }
                })
                .await?;
                "done".to_owned()
            }
            "begin" => {
                // A transaction of the session's own SQL, left open.
                db.status(diesel::sql_query("BEGIN")).await?;
                db.status(diesel::sql_query("CREATE TABLE ws_begun (x int)"))
                    .await?;
                "begun".to_owned()
            }
            other => format!("unknown: {other}"),
        };
        if socket.send(WsMessage::Text(answer.into())).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// `GET /ws`: a websocket running [`ws_session`], in a request scope of
/// its own when `scoped` (the way the README shows), else on its own.
fn ws_app(web: gino_axum::Gino, db: &'static gino::Gino, scoped: bool) -> Router {
    let route = get(move |upgrade: WebSocketUpgrade| async move {
        upgrade.on_upgrade(move |socket| async move {
            let session = ws_session(db, socket);
            let ended = if scoped {
                web.request().run(session).await
            } else {
                session.await
            };
            ended.expect("the session's queries");
        })
    });
    Router::new().route("/ws", route)
}

type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A test's database, its extension, [`ws_app`] served with gino-axum's
/// layer, and a client connected to `/ws`.
async fn ws_served(scoped: bool) -> (WebTest, gino_axum::Gino, Server, WsClient) {
    let (test, web) = setup(|_| {}).await;
    let app = ws_app(web.clone(), test.db, scoped).layer(web.layer());
    let server = Server::start(&web, app).await;
    let url = format!("ws://{}/ws", server.addr);
    let (client, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    (test, web, server, client)
}

/// What a scoped session leaves when it ends: nothing in flight, nothing
/// borrowed, no session inside a transaction, a clean pool.
async fn expect_session_ended(test: &WebTest, web: &gino_axum::Gino) {
    scenario::wait_until("the session never ended", || web.in_flight() == 0).await;
    scenario::wait_until("the connection was kept", || test.borrowed() == 0).await;
    test.assert_no_open_transaction().await;
    test.assert_pool_clean().await;
}

/// Sends `text` and waits for the session's answer.
async fn ws_ask(client: &mut WsClient, text: &str) -> String {
    client.send(ClientMessage::text(text)).await.expect("send");
    loop {
        match client.next().await.expect("an answer").expect("a frame") {
            ClientMessage::Text(answer) => return answer.as_str().to_owned(),
            ClientMessage::Ping(_) | ClientMessage::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// GINO's websocket handlers (gino-quart's `test_ws`) run with the
/// request's lazy connection. axum runs an upgraded socket in a task of its
/// own, after the upgrade request's scope ended; a session run in a
/// request scope of its own has one lazy connection that all its messages'
/// queries share, borrowed at the first query, kept between messages and
/// given back when the session ends. It counts as in flight meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_in_a_request_scope_shares_one_lazy_connection() {
    let (test, web, server, mut client) = ws_served(true).await;
    scenario::wait_until("the session never began", || web.in_flight() == 1).await;
    assert_eq!(test.borrowed(), 0, "borrowed before the first query");

    let first = ws_ask(&mut client, "pid").await;
    assert_eq!(test.borrowed(), 1, "the session holds its connection");
    for _ in 0..3 {
        assert_eq!(ws_ask(&mut client, "pid").await, first);
    }
    assert_eq!(ws_ask(&mut client, "tx").await, "in");
    assert_eq!(ws_ask(&mut client, "commit").await, "done");
    assert_eq!(ws_ask(&mut client, "pid").await, first);
    assert!(test.table_exists("ws_kept").await);

    client.close(None).await.expect("close");
    expect_session_ended(&test, &web).await;
    server.stop().await;
}

/// Outside a request scope a websocket's queries borrow per statement:
/// nothing is held between messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_without_a_scope_borrows_per_statement() {
    let (test, web, server, mut client) = ws_served(false).await;
    for _ in 0..3 {
        let answer = ws_ask(&mut client, "pid").await;
        assert!(answer.parse::<i32>().is_ok(), "{answer}");
        scenario::wait_until("a statement's connection was kept", || test.borrowed() == 0).await;
    }
    assert_eq!(web.in_flight(), 0, "the session is no request");
    client.close(None).await.expect("close");
    server.stop().await;
}

/// A client that leaves a websocket while its session is inside a
/// transaction: the transaction rolls back, the session's connection goes
/// back to the pool outside any transaction, and the session stops
/// counting as in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_a_websocket_mid_transaction_rolls_it_back() {
    // No closing handshake: the socket just goes.
    expect_rolled_back_when_left(("tx", "in"), "ws_kept", false).await;
}

/// A session that ends normally (the client closes) with a transaction it
/// began by its own SQL still open: the scope's end rolls it back, as a
/// request's end does, and the connection goes back clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_ending_inside_its_own_transaction_rolls_it_back() {
    expect_rolled_back_when_left(("begin", "begun"), "ws_begun", true).await;
}

/// A scoped session asked `ask.0` (answered `ask.1`) is inside a
/// transaction that created `table`; the client then leaves, with a
/// closing handshake (`close`) or without. The transaction rolls back and
/// the session ends clean.
async fn expect_rolled_back_when_left(ask: (&str, &str), table: &str, close: bool) {
    let (test, web, server, mut client) = ws_served(true).await;
    assert_eq!(ws_ask(&mut client, ask.0).await, ask.1);
    test.wait_for_open_transaction().await;
    if close {
        client.close(None).await.expect("close");
    } else {
        drop(client);
    }
    expect_session_ended(&test, &web).await;
    assert!(!test.table_exists(table).await, "committed");
    server.stop().await;
}
