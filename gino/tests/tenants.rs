//! Contextual binds and the tenant registry against a real server: scoped
//! binds stay in their task, creation is single-flight and never caches a
//! failure, eviction closes pools only after their last user, the global
//! connection budget holds (sampled in `pg_stat_activity`), and a
//! connection cannot cross tenants.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::eventually;
use diesel::sql_types::{BigInt, Text};
use gino::prelude::*;
use gino::{EngineOptions, Error, Tenants, create_engine};
use gino_testkit::{Server, TestDatabase};

/// `current_setting('application_name')`, implicitly on `db`.
async fn app_name(db: &Gino) -> gino::Result<String> {
    db.one(diesel::select(diesel::dsl::sql::<Text>(
        "current_setting('application_name')",
    )))
    .await
}

fn with_app(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

/// Server backends whose application_name starts with `prefix`.
async fn backends(observer: &gino::Engine, prefix: &str) -> i64 {
    // `prefix` is the test's own identifier, never input.
    observer
        .one(diesel::select(diesel::dsl::sql::<BigInt>(&format!(
            "(SELECT count(*) FROM pg_stat_activity \
             WHERE application_name LIKE '{prefix}%' AND pid <> pg_backend_pid())"
        ))))
        .await
        .unwrap()
}

/// The backends of tenants `t0..t<tenants>` of `prefix`'s registry, if
/// only the `live` ones have any.
async fn open_if_only_live(
    observer: &gino::Engine,
    prefix: &str,
    tenants: usize,
    live: &[String],
) -> Option<i64> {
    let mut open = 0;
    for t in 0..tenants {
        let key = format!("t{t}");
        let n = backends(observer, &format!("{prefix}_{key}")).await;
        if !live.contains(&key) && n > 0 {
            return None;
        }
        open += n;
    }
    Some(open)
}

/// A registry whose tenant `t` is the test database under the
/// application_name `<prefix>_<t>`; the key `missing` names a database
/// that does not exist.
fn registry(db: &'static Gino, base: &str, prefix: &str) -> gino::TenantsBuilder {
    let (base, prefix) = (base.to_owned(), prefix.to_owned());
    Tenants::builder(db, move |tenant: String| {
        let url = if tenant == "missing" {
            Server::get().url_for("gino_no_such_database")
        } else {
            with_app(&base, &format!("{prefix}_{tenant}"))
        };
        async move { Ok(url) }
    })
}

/// `registry` with pools of `max_size` whose borrows wait long enough for
/// a loaded budget to make room.
fn under_load(registry: gino::TenantsBuilder, max_size: usize) -> gino::TenantsBuilder {
    registry.options(
        EngineOptions::new()
            .max_size(max_size)
            .acquire_timeout(Duration::from_secs(20)),
    )
}

fn leak(db: Gino) -> &'static Gino {
    Box::leak(Box::new(db))
}

#[tokio::test]
async fn a_scoped_bind_stays_in_its_task() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    db.set_bind(with_app(test.url(), "global")).await.unwrap();
    let a = create_engine(&with_app(test.url(), "scope_a"), EngineOptions::new())
        .await
        .unwrap();
    let b = create_engine(&with_app(test.url(), "scope_b"), EngineOptions::new())
        .await
        .unwrap();

    let seen = db
        .scoped_bind(&a, async {
            let outer = app_name(db).await.unwrap();
            let inner = db.scoped_bind(&b, app_name(db)).await.unwrap();
            let again = app_name(db).await.unwrap();
            // A spawned task starts outside the scope.
            let spawned = tokio::spawn(async move { app_name(db).await.unwrap() })
                .await
                .unwrap();
            // A transaction in the scope runs on the scope's engine.
            let in_tx = db.transaction(async { app_name(db).await }).await.unwrap();
            (outer, inner, again, spawned, in_tx)
        })
        .await;
    assert_eq!(
        seen,
        (
            "scope_a".to_owned(),
            "scope_b".to_owned(),
            "scope_a".to_owned(),
            "global".to_owned(),
            "scope_a".to_owned()
        )
    );
    assert_eq!(app_name(db).await.unwrap(), "global");

    // Concurrent futures of one task, each in its own scope.
    let (x, y) = tokio::join!(
        db.scoped_bind(&a, app_name(db)),
        db.scoped_bind(&b, app_name(db))
    );
    assert_eq!(
        (x.unwrap(), y.unwrap()),
        ("scope_a".into(), "scope_b".into())
    );
    db.pop_bind().unwrap().close().await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn concurrent_first_requests_make_one_engine() {
    let test = TestDatabase::create().await;
    let observer = create_engine(test.url(), EngineOptions::new())
        .await
        .unwrap();
    let db = leak(Gino::secondary());
    let tenants = registry(db, test.url(), "flight")
        .options(EngineOptions::new().max_size(4))
        .build();
    let runs = (0..100).map(|_| {
        let tenants = tenants.clone();
        tokio::spawn(async move {
            tenants
                .run("new", async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    app_name(db).await
                })
                .await
        })
    });
    for run in futures_util::future::join_all(runs).await {
        assert_eq!(run.unwrap().unwrap().unwrap(), "flight_new");
    }
    let stats = tenants.stats();
    assert_eq!((stats.created, stats.live, stats.failed), (1, 1, 0));
    let open = backends(&observer, "flight_").await;
    assert!((1..=4).contains(&open), "{open} backends for one pool of 4");
    tenants.close();
    observer.close().await;
}

#[tokio::test]
async fn a_failed_creation_is_not_remembered() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let missing_name = format!("{}_late", test.name());
    let missing_url = Server::get().url_for(&missing_name);
    let tenants = Tenants::builder(db, move |_tenant: String| {
        let url = missing_url.clone();
        async move { Ok(url) }
    })
    .build();

    // Callers arriving together share the one failed creation: none of
    // them tries again behind it.
    let failed = futures_util::future::join_all((0..8).map(|_| tenants.lease("late"))).await;
    for err in failed.into_iter().map(Result::unwrap_err) {
        assert!(
            matches!(&err, Error::UnknownTenant(key) if key == "late"),
            "{err:?}"
        );
        assert!(err.to_string().contains("unknown tenant `late`"), "{err}");
    }
    let stats = tenants.stats();
    assert_eq!((stats.created, stats.failed, stats.live), (0, 1, 0));

    // The database appears; the next request finds it.
    let admin = create_engine(Server::get().admin_url(), EngineOptions::new())
        .await
        .unwrap();
    admin
        .status(diesel::sql_query(format!(
            "CREATE DATABASE \"{missing_name}\""
        )))
        .await
        .unwrap();
    let lease = tenants.lease("late").await.unwrap();
    assert_eq!(tenants.stats().created, 1);
    drop(lease);
    tenants.close();
    // Its pool closes with the registry; then the database can go.
    admin
        .status(diesel::sql_query(format!(
            "DROP DATABASE \"{missing_name}\" WITH (FORCE)"
        )))
        .await
        .unwrap();
    admin.close().await;
}

#[tokio::test]
async fn eviction_closes_pools_after_their_last_request() {
    let test = TestDatabase::create().await;
    let observer = create_engine(test.url(), EngineOptions::new())
        .await
        .unwrap();
    let db = leak(Gino::secondary());
    let tenants = registry(db, test.url(), "evict").cap(3).build();

    // Tenant t0 has a request in flight while the others push it out.
    let started = Arc::new(tokio::sync::Notify::new());
    let slow = {
        let (tenants, started) = (tenants.clone(), started.clone());
        tokio::spawn(async move {
            tenants
                .run("t0", async {
                    let sleep = db.status(diesel::sql_query("SELECT pg_sleep(0.1)"));
                    let name = app_name(db).await?;
                    started.notify_one();
                    sleep.await?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    // Still on its own engine after the eviction.
                    Ok::<_, Error>((name, app_name(db).await?))
                })
                .await
        })
    };
    started.notified().await;
    for round in 0..3 {
        for t in 1..8 {
            let key = format!("t{t}");
            let name = tenants.run(&key, app_name(db)).await.unwrap().unwrap();
            assert_eq!(name, format!("evict_{key}"), "round {round}");
        }
    }
    let stats = tenants.stats();
    assert_eq!(stats.live, 3);
    assert!(stats.evicted >= 5, "{stats:?}");
    assert_eq!(stats.created, stats.evicted + 3, "{stats:?}");
    let (before, after) = slow.await.unwrap().unwrap().unwrap();
    assert_eq!((before.as_str(), after.as_str()), ("evict_t0", "evict_t0"));

    // Only the live tenants keep connections.
    let live: Vec<String> = stats.tenants.iter().map(|t| t.key.clone()).collect();
    eventually("evicted pools' connections are gone", || async {
        open_if_only_live(&observer, "evict", 8, &live)
            .await
            .is_some_and(|open| open > 0)
    })
    .await;
    tenants.close();
    eventually("every pool closed", || async {
        backends(&observer, "evict_").await == 0
    })
    .await;
    observer.close().await;
}

#[tokio::test]
async fn the_connection_budget_holds_under_load() {
    let test = TestDatabase::create().await;
    let observer = create_engine(test.url(), EngineOptions::new())
        .await
        .unwrap();
    let db = leak(Gino::secondary());
    let tenants = under_load(registry(db, test.url(), "budget"), 3)
        .connections(4)
        .build();

    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, most, observer) = (stop.clone(), most.clone(), observer.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let open = backends(&observer, "budget_").await as usize;
                most.fetch_max(open, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let clients = (0..16).map(|client| {
        let tenants = tenants.clone();
        tokio::spawn(async move {
            for i in 0..12 {
                let key = format!("t{}", (client + i) % 8);
                let name = tenants
                    .run(&key, async {
                        db.status(diesel::sql_query("SELECT pg_sleep(0.002)"))
                            .await?;
                        app_name(db).await
                    })
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(name, format!("budget_{key}"));
            }
        })
    });
    for client in futures_util::future::join_all(clients).await {
        client.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let stats = tenants.stats();
    assert!(
        most.load(Ordering::SeqCst) <= 4,
        "{} backends open at once with a budget of 4",
        most.load(Ordering::SeqCst)
    );
    assert!(most.load(Ordering::SeqCst) >= 2, "the sampler saw the load");
    assert!(stats.open_connections.unwrap() <= 4, "{stats:?}");
    assert_eq!(stats.live, 8);
    tenants.close();
    observer.close().await;
}

#[tokio::test]
async fn the_budget_times_out_like_a_pool() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let tenants = registry(db, test.url(), "tight")
        .options(EngineOptions::new().acquire_timeout(Duration::from_millis(200)))
        .connections(1)
        .build();
    // Tenant a holds the only connection (borrowed, not idle).
    let a = tenants.lease("a").await.unwrap();
    let held = a.engine().acquire().await.unwrap();
    held.status(diesel::sql_query("SELECT 1")).await.unwrap();
    let err = tenants.lease("b").await.unwrap_err();
    assert!(matches!(err, Error::PoolTimeout(_)), "{err:?}");
    // Released and idle, it makes room for b.
    held.release().await.unwrap();
    let b = tenants.lease("b").await.unwrap();
    b.engine()
        .status(diesel::sql_query("SELECT 1"))
        .await
        .unwrap();
    assert_eq!(tenants.stats().open_connections, Some(1));
    drop((a, b));
    tenants.close();
}

#[tokio::test]
async fn a_connection_cannot_cross_tenants() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let tenants = registry(db, test.url(), "cross").build();
    let carried = tenants
        .run("a", async { db.acquire().await })
        .await
        .unwrap()
        .unwrap();
    let err = tenants
        .run("b", async {
            diesel::select(diesel::dsl::sql::<Text>("'x'"))
                .gino()
                .bind(&carried)
                .one::<String>()
                .await
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, Error::TenantMismatch { connection, scope } if connection == "a" && scope == "b"),
        "{err:?}"
    );
    // In its own tenant's scope, and outside any, it still works.
    let own = tenants
        .run("a", async {
            diesel::select(diesel::dsl::sql::<Text>("'x'"))
                .gino()
                .bind(&carried)
                .one::<String>()
                .await
        })
        .await
        .unwrap();
    assert_eq!(own.unwrap(), "x");
    carried.release().await.unwrap();
    tenants.close();
}

#[tokio::test]
async fn quiet_pools_shrink() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let tenants = registry(db, test.url(), "quiet")
        .idle_after(Duration::from_millis(100))
        .build();
    tenants.run("a", app_name(db)).await.unwrap().unwrap();
    assert_eq!(tenants.stats().tenants[0].pool.size, 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Any use of the registry sweeps.
    tenants.run("b", app_name(db)).await.unwrap().unwrap();
    let stats = tenants.stats();
    let a = stats.tenants.iter().find(|t| t.key == "a").unwrap();
    assert_eq!(a.pool.size, 0, "{stats:?}");
    tenants.close();
}

/// A registry whose locator takes `delay` before naming the test database
/// under the application_name `<prefix>_<t>`.
fn slow_registry(db: &'static Gino, base: &str, prefix: &str, delay: Duration) -> Tenants {
    let (base, prefix) = (base.to_owned(), prefix.to_owned());
    Tenants::builder(db, move |tenant: String| {
        let url = with_app(&base, &format!("{prefix}_{tenant}"));
        async move {
            tokio::time::sleep(delay).await;
            Ok(url)
        }
    })
    .build()
}

#[tokio::test]
async fn closing_while_an_engine_is_made_closes_it_too() {
    let test = TestDatabase::create().await;
    let observer = create_engine(test.url(), EngineOptions::new())
        .await
        .unwrap();
    let db = leak(Gino::secondary());
    let tenants = slow_registry(db, test.url(), "closing", Duration::from_millis(300));
    let lease = tokio::spawn({
        let tenants = tenants.clone();
        async move { tenants.lease("late").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tenants.close();
    let err = lease.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::PoolClosed), "{err:?}");
    // The engine made meanwhile was closed, not left behind.
    eventually("the engine made during close is closed", || async {
        backends(&observer, "closing_").await == 0
    })
    .await;
    assert_eq!(tenants.stats().live, 0);
    observer.close().await;
}

#[tokio::test]
async fn a_dropped_first_request_leaves_the_next_one_to_make_the_engine() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let tenants = slow_registry(db, test.url(), "dropped", Duration::from_millis(200));
    // The client goes away while its request is making the engine.
    let gone = tokio::time::timeout(Duration::from_millis(50), tenants.lease("t")).await;
    assert!(gone.is_err(), "the first request was cut off");
    let name = tenants.run("t", app_name(db)).await.unwrap().unwrap();
    assert_eq!(name, "dropped_t");
    let stats = tenants.stats();
    assert_eq!((stats.created, stats.live, stats.failed), (1, 1, 0));
    tenants.close();
}

/// Clients that go away while their tenants are made (a fresh key each, as
/// a crawler sends) leave no creation listed: nothing waits for them.
#[tokio::test]
async fn creations_nobody_waits_for_any_more_are_not_kept() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let tenants = slow_registry(db, test.url(), "gone", Duration::from_millis(200));
    for key in ["a", "b", "c"] {
        // Two callers of one key: the first to go leaves it to the other.
        let (first, second) = (tenants.lease(key), tenants.lease(key));
        let mut second = Box::pin(second);
        let raced = tokio::time::timeout(Duration::from_millis(30), async {
            tokio::join!(first, &mut second)
        })
        .await;
        assert!(raced.is_err(), "both were cut off");
        assert_eq!(tenants.stats().creating, 1, "the second still waits");
        drop(second);
        assert_eq!(tenants.stats().creating, 0);
    }
    let stats = tenants.stats();
    assert_eq!((stats.created, stats.live, stats.creating), (0, 0, 0));
    tenants.close();
}

/// Callers that waited for a creation that failed get the error the
/// creation got, so that each is answered alike: a login refused for good
/// is no "try again" for those behind the first.
#[tokio::test]
async fn waiters_of_a_failed_creation_get_its_error() {
    let test = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let (_, address) = test.url().split_once("://").unwrap();
    let address = address.split_once('@').map_or(address, |(_, a)| a);
    let url = format!("postgres://gino_no_such_role@{address}");
    let tenants = Tenants::builder(db, move |_tenant: String| {
        let url = url.clone();
        async move { Ok(url) }
    })
    .build();
    let failed = futures_util::future::join_all((0..4).map(|_| tenants.lease("t"))).await;
    for err in failed.into_iter().map(Result::unwrap_err) {
        // 28000 under trust, 28P01 where a password is asked for.
        assert!(
            err.sqlstate().is_some_and(|c| c.starts_with("28")),
            "{err:?}"
        );
        assert!(!err.is_retryable(), "{err:?}");
    }
    assert_eq!(tenants.stats().failed, 1);
    tenants.close();

    // A server nobody listens at: the creator and those behind it get one
    // message, naming the tenant.
    let tenants = Tenants::builder(db, |_tenant: String| async {
        Ok("postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2".to_owned())
    })
    .build();
    let failed = futures_util::future::join_all((0..4).map(|_| tenants.lease("gone"))).await;
    let messages: Vec<String> = failed
        .into_iter()
        .map(|lease| match lease.unwrap_err() {
            err @ Error::Connection(_) => err.to_string(),
            other => panic!("expected a connection error, got {other:?}"),
        })
        .collect();
    assert!(messages[0].contains("tenant `gone`"), "{messages:?}");
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:#?}");
    tenants.close();
}

/// Sixteen clients over ten tenants with a cap of three engines and a
/// budget of four connections, a third of their runs dropped part-way
/// (while the engine is made, waiting for a connection, or mid-statement):
/// every run that ends sees its own tenant, and once the load is over only
/// the live tenants keep connections, within the budget; closing ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_runs_under_eviction_and_a_budget_leave_no_engine_behind() {
    let test = TestDatabase::create().await;
    let observer = create_engine(test.url(), EngineOptions::new())
        .await
        .unwrap();
    let db = leak(Gino::secondary());
    let tenants = under_load(registry(db, test.url(), "churn"), 2)
        .cap(3)
        .connections(4)
        .build();
    let clients = (0..16u64).map(|client| {
        let tenants = tenants.clone();
        tokio::spawn(async move {
            // A fixed walk per client: the same load on every run.
            let mut seed = client * 2_654_435_761 + 1;
            let mut next = move |n: u64| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 33) % n
            };
            for _ in 0..10 {
                let key = format!("t{}", next(10));
                let run = tenants.run(&key, async {
                    db.status(diesel::sql_query("SELECT pg_sleep(0.002)"))
                        .await?;
                    app_name(db).await
                });
                if next(3) == 0 {
                    let patience = Duration::from_millis(next(6));
                    let _ = tokio::time::timeout(patience, run).await;
                    continue;
                }
                let name = run.await.unwrap().unwrap();
                assert_eq!(name, format!("churn_{key}"));
            }
        })
    });
    for client in futures_util::future::join_all(clients).await {
        client.unwrap();
    }
    let stats = tenants.stats();
    assert!(stats.live <= 3, "{stats:?}");
    assert_eq!(
        stats.created,
        stats.evicted + stats.live as u64,
        "{stats:?}"
    );
    assert!(stats.tenants.iter().all(|t| t.in_use == 0), "{stats:?}");
    let live: Vec<String> = stats.tenants.iter().map(|t| t.key.clone()).collect();
    eventually("evicted engines keep connections", || async {
        open_if_only_live(&observer, "churn", 10, &live)
            .await
            .is_some_and(|open| open <= 4)
    })
    .await;
    assert!(stats.open_connections.unwrap() <= 4, "{stats:?}");
    tenants.close();
    eventually("every pool closed", || async {
        backends(&observer, "churn_").await == 0
    })
    .await;
    observer.close().await;
}

/// A replica URL names one database, which every tenant's reads would
/// reach: refused in the tenants' options, before any engine is made.
#[tokio::test]
async fn replicas_in_the_tenants_options_are_refused() {
    let base = TestDatabase::create().await;
    let db = leak(Gino::secondary());
    let tenants = registry(db, base.url(), "replicated")
        .options(EngineOptions::new().replica(base.url()))
        .build();
    let refused = tenants.lease("t0").await;
    assert!(
        matches!(&refused, Err(Error::Configuration(m)) if m.contains("replica")),
        "{:?}",
        refused.map(|_| ())
    );
    tenants.close();
}
