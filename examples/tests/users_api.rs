//! The web examples as users run them: each example binary started on a
//! free port with `DB_DSN` pointing at a test database, driven over HTTP by
//! one client (the API is the same in every framework), stopped with
//! SIGTERM, and the database checked afterwards.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The example binary `name`, built next to this test by `cargo test`.
fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable");
    dir.pop(); // deps
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// The example `name` as the tests run it: `env` over a free port,
/// warnings logged, no input.
fn example_command(name: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(example(name));
    command
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .env("ROCKET_LOG_LEVEL", "off")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
}

struct App {
    child: Child,
    base: String,
}

impl App {
    /// Starts the example and waits for its `listening on` line.
    fn start(name: &str, dsn: &str) -> App {
        App::start_with(name, dsn, &[])
    }

    /// [`start`](Self::start) with more environment variables.
    fn start_with(name: &str, dsn: &str, env: &[(&str, &str)]) -> App {
        let database = [
            ("DB_DSN", dsn),
            ("DB_POOL_MIN_SIZE", "1"),
            ("DB_POOL_MAX_SIZE", "4"),
        ];
        App::launch(name, &[env, &database].concat())
    }

    /// Starts the example with only `env` configuring it (and a free
    /// port), and waits for its `listening on` line.
    fn launch(name: &str, env: &[(&str, &str)]) -> App {
        let mut child = example_command(name, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(base) = line.strip_prefix("listening on ") {
                    let _ = tx.send(base.trim().to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name} never printed `listening on ...`"));
        App { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /users` of a user named `nickname`.
    async fn post_user(&self, client: &reqwest::Client, nickname: &str) -> reqwest::Response {
        client
            .post(self.url("/users"))
            .json(&json!({ "nickname": nickname }))
            .send()
            .await
            .unwrap()
    }

    /// The JSON body of `GET path`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> T {
        let response = client.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(self) {
        self.signal("TERM");
        self.wait_for_a_clean_exit();
    }

    /// Sends the signal `name` (`TERM`, `INT`).
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a clean exit, and says how long it took.
    fn wait_for_a_clean_exit(mut self) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exited with {status}");
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn drive(name: &str) {
    let database = gino_testkit::TestDatabase::create().await;
    let app_name = format!("example_{name}");
    let dsn = format!(
        "{}{}application_name={app_name}",
        database.url(),
        if database.url().contains('?') {
            '&'
        } else {
            '?'
        }
    );
    let app = App::start(name, &dsn);
    let client = reqwest::Client::new();

    let created = app.post_user(&client, "fantix").await;
    assert_eq!(created.status(), 201, "{name}: POST /users");
    let location = created
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("{name}: a 201 without Location"))
        .to_str()
        .unwrap()
        .to_owned();
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["nickname"], "fantix");
    let id = user["id"].as_i64().expect("an id");
    assert_eq!(location, format!("/users/{id}"), "{name}: Location");
    let at_location: Value = app.get_json(&client, &location).await;
    assert_eq!(at_location, user, "{name}: GET of the Location");
    for n in ["daisy", "bob"] {
        let response = app.post_user(&client, n).await;
        assert_eq!(response.status(), 201);
    }

    let shown = client
        .get(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200, "{name}: GET /users/{{id}}");
    assert_eq!(
        shown.json::<Value>().await.unwrap(),
        json!({"id": id, "nickname": "fantix"})
    );

    // HEAD is GET without the body (RFC 9110), on every framework.
    for path in [format!("/users/{id}"), "/users".to_owned()] {
        let head = client.head(app.url(&path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "{name}: HEAD {path}");
        assert_eq!(
            head.headers()
                .get("content-type")
                .map(|kind| kind.to_str().unwrap()),
            Some("application/json"),
            "{name}: HEAD {path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "{name}: HEAD {path}"
        );
    }

    let missing = client.get(app.url("/users/999999")).send().await.unwrap();
    assert_eq!(missing.status(), 404, "{name}: GET of a missing user");
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"error": "not found"})
    );

    let page: Vec<Value> = app.get_json(&client, "/users?limit=2&offset=1").await;
    let names: Vec<&str> = page
        .iter()
        .map(|u| u["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["daisy", "bob"], "{name}: GET /users?limit=&offset=");
    let all: Vec<Value> = app.get_json(&client, "/users").await;
    assert_eq!(all.len(), 3);

    let patched = client
        .patch(app.url(&format!("/users/{id}")))
        .json(&json!({"nickname": "fantix (member)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200, "{name}: PATCH");
    assert_eq!(
        patched.json::<Value>().await.unwrap(),
        json!({"id": id, "nickname": "fantix (member)"})
    );
    let patch_missing = client
        .patch(app.url("/users/999999"))
        .json(&json!({"nickname": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch_missing.status(), 404);

    // Malformed bodies and nicknames the API refuses (PostgreSQL cannot
    // store a NUL in text): the client's error, before any query, and
    // nothing stored.
    let too_long = "x".repeat(201);
    for body in [
        json!({"nickname": 7}),
        json!({"nickname": "a\u{0}b"}),
        json!({"nickname": ""}),
        json!({ "nickname": too_long }),
    ] {
        for (method, path) in [
            (reqwest::Method::POST, "/users".to_owned()),
            (reqwest::Method::PATCH, format!("/users/{id}")),
        ] {
            let refused = client
                .request(method.clone(), app.url(&path))
                .json(&body)
                .send()
                .await
                .unwrap();
            let what = format!("{name}: {method} {path} of {body}");
            // JSON of the wrong shape: 422 in every framework.
            assert_eq!(refused.status(), 422, "{what}");
            let message = expect_json_refusal(refused, &what).await;
            if body["nickname"] == "" {
                assert!(message.contains("expected 1 to 200"), "{what}: {message}");
            }
        }
    }
    // Bodies that are not JSON of the right kind at all.
    for (content_type, body, status) in [
        ("application/json", "{\"nickname\": ", 400),
        ("application/json", "", 400),
        ("application/json", "[1]", 422),
        // The fields' values in an array: no JSON object.
        ("application/json", "[\"mallory\"]", 422),
        // JSON under a type no example takes.
        ("text/json", "{\"nickname\":\"x=text\"}", 415),
        ("application/x-www-form-urlencoded", "nickname=x", 415),
        // What `<form enctype="text/plain">` on another site can post
        // without the browser asking first: JSON in all but its type.
        ("text/plain", "{\"nickname\":\"x=forged\"}", 415),
        // And the same without a content type at all.
        ("", "{\"nickname\":\"x=untyped\"}", 415),
    ] {
        let mut request = client.post(app.url("/users")).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let refused = request.send().await.unwrap();
        let what = format!("{name}: POST {content_type} {body:?}");
        assert_eq!(refused.status(), status, "{what}");
        expect_json_refusal(refused, &what).await;
    }
    // rocket reads a form POST opening with `_method=` as that method; an
    // HTML form on another site could then delete a user. No example
    // takes it: the POST it is, refused.
    for (path, body, status) in [
        (format!("/users/{id}"), "_method=delete", 405),
        (format!("/users/{id}"), "_method=PATCH&nickname=forged", 405),
        ("/users".to_owned(), "_method=get", 415),
    ] {
        let refused = client
            .post(app.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let what = format!("{name}: POST {path} of the form {body}");
        assert_eq!(refused.status(), status, "{what}");
        expect_json_refusal(refused, &what).await;
        let kept = client.get(app.url(&format!("/users/{id}"))).send().await;
        assert_eq!(kept.unwrap().status(), 200, "{what}: the user is kept");
    }
    // A body past every framework's limit (axum's and actix's 2 MiB,
    // rocket's 1 MiB for JSON): 413, in JSON. A client of its own, since
    // the server closes a connection whose body it did not read, and a
    // pooled one would be reused for the next request as it closes.
    let huge = json!({ "nickname": "x".repeat(3 << 20) });
    let refused = reqwest::Client::new()
        .post(app.url("/users"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413, "{name}: a body of 3 MiB");
    expect_json_refusal(refused, &format!("{name}: POST of 3 MiB")).await;
    let unchanged: Value = app.get_json(&client, &format!("/users/{id}")).await;
    assert_eq!(
        unchanged["nickname"], "fantix (member)",
        "{name}: refused PATCH"
    );
    // Every example takes a body up to 2 MiB (rocket's own limit is 1).
    let padded = format!(
        "{{\"nickname\":\"fantix (member)\"}}{}",
        " ".repeat(3 << 19)
    );
    let accepted = client
        .patch(app.url(&format!("/users/{id}")))
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200, "{name}: a body of 1.5 MiB");
    // Every example takes `application/<something>+json` (a JSON merge
    // patch, say) and the type's parameters.
    for content_type in [
        "application/merge-patch+json",
        "Application/JSON; charset=utf-8",
    ] {
        let accepted = client
            .patch(app.url(&format!("/users/{id}")))
            .header("content-type", content_type)
            .body(r#"{"nickname":"fantix (member)"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 200, "{name}: PATCH as {content_type}");
    }
    let longest = "x".repeat(200);
    let accepted = client
        .patch(app.url(&format!("/users/{id}")))
        .json(&json!({ "nickname": longest }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        accepted.status(),
        200,
        "{name}: a nickname of 200 characters"
    );
    assert_eq!(
        accepted.json::<Value>().await.unwrap()["nickname"],
        longest.as_str()
    );
    // A method a path does not take: 405 in JSON, saying which methods
    // are allowed, in every framework.
    for (method, path, allowed) in [
        (reqwest::Method::PUT, "/users".to_owned(), "POST"),
        (reqwest::Method::PATCH, "/users".to_owned(), "GET"),
        (reqwest::Method::POST, format!("/users/{id}"), "PATCH"),
        (reqwest::Method::PUT, format!("/users/{id}"), "DELETE"),
    ] {
        let what = format!("{name}: {method} {path}");
        let refused = client.request(method, app.url(&path)).send().await.unwrap();
        assert_eq!(refused.status(), 405, "{what}");
        let allow = refused.headers().get("allow").map(|a| a.to_str().unwrap());
        assert_eq!(
            allow.map(|a| a.contains(allowed) && a.contains("HEAD")),
            Some(true),
            "{what}: Allow {allow:?}"
        );
        expect_json_refusal(refused, &what).await;
    }
    // Paths and queries no user can match: the client's error, never 500,
    // and the same one in every framework.
    for (path, status) in [
        ("/users?limit=-1", 400),
        ("/users?limit=abc", 400),
        ("/users?offset=99999999999", 400),
        ("/users?limit=1&limit=2", 400),
        ("/users/abc", 400),
        ("/users/99999999999", 400),
        ("/users/1.5", 400),
        ("/users/%00", 400),
        ("/users/-1", 404),
        ("/nowhere", 404),
        ("/users/", 404),
        ("//users", 404),
    ] {
        let refused = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(refused.status(), status, "{name}: GET {path}");
        expect_json_refusal(refused, &format!("{name}: GET {path}")).await;
    }
    for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
        let refused = client
            .request(method.clone(), app.url("/users/abc"))
            .json(&json!({ "nickname": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{name}: {method} /users/abc");
    }
    let huge_offset: Vec<Value> = app.get_json(&client, "/users?offset=4294967295").await;
    assert!(huge_offset.is_empty(), "{name}: an offset past every row");

    let deleted = client
        .delete(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204, "{name}: DELETE");
    let again = client
        .delete(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "{name}: DELETE of a missing user");
    deletes_of_one_user_at_once(name, &app, &client, database.url()).await;

    an_interrupt_waits_for_a_request_in_flight(name, app, &client, database.url()).await;

    // What the API reported is what the database holds, and the app left
    // no connection behind.
    let engine = gino::create_engine(database.url(), Default::default())
        .await
        .unwrap();
    use gino::diesel::{
        self,
        dsl::sql,
        sql_types::{BigInt, Text},
    };
    let stored: Vec<String> = engine
        .all(diesel::select(sql::<Text>(
            "nickname FROM users ORDER BY id",
        )))
        .await
        .unwrap();
    assert_eq!(stored, ["daisy", "bob"]);
    let left: i64 = engine
        .one(diesel::select(
            sql::<BigInt>("count(*) FROM pg_stat_activity WHERE application_name = ")
                .bind::<Text, _>(app_name),
        ))
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} left connections open");
    engine.close().await;
}

/// A user created through the app whose row the test holds locked (in a
/// transaction of a connection of its own), so that requests on it wait.
struct LockedUser {
    engine: gino::Engine,
    conn: gino::Connection,
    lock: gino::Transaction,
}

impl LockedUser {
    /// Creates the user `nickname` and locks its row: its id, and the lock.
    async fn create(
        app: &App,
        client: &reqwest::Client,
        url: &str,
        nickname: &str,
    ) -> (i64, LockedUser) {
        let user: Value = app.post_user(client, nickname).await.json().await.unwrap();
        let id = user["id"].as_i64().unwrap();
        let engine = gino::create_engine(url, Default::default()).await.unwrap();
        // Not the task's connection: the polls of `wait_for_deletes` run
        // on another, as pg_stat_activity stays as a transaction first
        // read it.
        let conn = engine.acquire().reusable(false).await.unwrap();
        let lock = conn.begin().await.unwrap();
        conn.status(gino::diesel::sql_query(format!(
            "SELECT 1 FROM users WHERE id = {id} FOR UPDATE"
        )))
        .await
        .unwrap();
        let locked = LockedUser { engine, conn, lock };
        (id, locked)
    }

    /// Waits until `requests` DELETEs wait for the lock.
    async fn wait_for_deletes(&self, requests: i64, name: &str) {
        use gino::diesel::{self, dsl::sql, sql_types::BigInt};
        let waiting = diesel::select(sql::<BigInt>(
            "count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE 'DELETE%' AND datname = current_database()",
        ));
        let started = Instant::now();
        while self.engine.one::<i64, _>(waiting.clone()).await.unwrap() < requests {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name}: the DELETEs never reached the locked row"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn release(self) {
        self.lock.commit().await.unwrap();
        self.conn.release().await.unwrap();
        self.engine.close().await;
    }
}

/// Requests deleting one user at once: one answers 204, the others 404.
/// The row is locked meanwhile, so that every request has come as far as
/// its `DELETE` (and a handler that first loads the user has found it)
/// before any of them deletes.
async fn deletes_of_one_user_at_once(name: &str, app: &App, client: &reqwest::Client, url: &str) {
    let (doomed, lock) = LockedUser::create(app, client, url, "doomed").await;
    // As many as the app's pool holds (`DB_POOL_MAX_SIZE`).
    let requests = 4;
    let mut deletes = tokio::task::JoinSet::new();
    for _ in 0..requests {
        deletes.spawn(client.delete(app.url(&format!("/users/{doomed}"))).send());
    }
    lock.wait_for_deletes(requests, name).await;
    lock.release().await;
    let mut statuses: Vec<u16> = deletes
        .join_all()
        .await
        .into_iter()
        .map(|answer| answer.unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [204, 404, 404, 404],
        "{name}: DELETEs of one user at once"
    );
}

/// Ctrl-C (SIGINT) stops an app as SIGTERM does: after the requests in
/// flight. A DELETE waits on a row the test has locked when the signal
/// comes; it is answered, and then the app exits cleanly.
async fn an_interrupt_waits_for_a_request_in_flight(
    name: &str,
    app: App,
    client: &reqwest::Client,
    url: &str,
) {
    let (late, lock) = LockedUser::create(&app, client, url, "late").await;
    let delete = tokio::spawn(client.delete(app.url(&format!("/users/{late}"))).send());
    lock.wait_for_deletes(1, name).await;
    app.signal("INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    let answer = delete.await.unwrap();
    assert_eq!(
        answer
            .map(|a| a.status().as_u16())
            .map_err(|e| e.to_string()),
        Ok(204),
        "{name}: a DELETE in flight at Ctrl-C"
    );
    tokio::task::spawn_blocking(move || app.wait_for_a_clean_exit())
        .await
        .unwrap();
}

/// A stop gives the requests in flight `DB_SHUTDOWN_TIMEOUT`, and no more:
/// a request waiting on a locked row past it, and a client that never
/// finishes sending its request, do not keep the app from stopping.
async fn a_stop_outlasted_by_its_requests_ends_at_the_shutdown_timeout(name: &str) {
    let database = gino_testkit::TestDatabase::create().await;
    let app = App::start_with(name, database.url(), &[("DB_SHUTDOWN_TIMEOUT", "2")]);
    let client = reqwest::Client::new();
    let (stuck, lock) = LockedUser::create(&app, &client, database.url(), "stuck").await;
    let delete = tokio::spawn(client.delete(app.url(&format!("/users/{stuck}"))).send());
    lock.wait_for_deletes(1, name).await;
    let mut half_sent =
        std::net::TcpStream::connect(app.base.trim_start_matches("http://")).expect("connect");
    std::io::Write::write_all(&mut half_sent, b"GET /users HTTP/1.1\r\nHost: x\r\n").unwrap();
    app.signal("TERM");
    let took = tokio::task::spawn_blocking(move || app.wait_for_a_clean_exit())
        .await
        .unwrap();
    assert!(
        took < Duration::from_secs(15),
        "{name}: stopped {took:?} after the signal, with a shutdown timeout of 2 s"
    );
    lock.release().await;
    assert!(
        delete.await.unwrap().is_err(),
        "{name}: the stuck DELETE was cut off"
    );
    drop(half_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_at_the_shutdown_timeout_in_every_framework() {
    for name in ["axum_users", "actix_users", "rocket_users"] {
        a_stop_outlasted_by_its_requests_ends_at_the_shutdown_timeout(name).await;
    }
}

/// A stop signal while an app still starts (its database is not up yet,
/// and it waits to try again) ends the start, rather than waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_starting_ends_the_start() {
    for name in ["axum_users", "actix_users", "rocket_users"] {
        let unreachable = [
            ("DB_DSN", "postgres://postgres@127.0.0.1:1/nowhere"),
            ("DB_RETRY_LIMIT", "100"),
            ("DB_RETRY_INTERVAL", "5s"),
        ];
        let mut child = example_command(name, &unreachable)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the example");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(4) {
                let _ = child.kill();
                panic!("{name}: still starting 4 s after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// rocket's own configuration (`ROCKET_DATABASES`, as Rocket.toml) is the
/// database the app serves when no `DB_*` variable is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocket_users_serves_the_database_rocket_s_configuration_names() {
    let database = gino_testkit::TestDatabase::create().await;
    let configured = format!("{{gino={{dsn=\"{}\",pool_min_size=1}}}}", database.url());
    let app = App::launch("rocket_users", &[("ROCKET_DATABASES", &configured)]);
    let client = reqwest::Client::new();
    let created = app.post_user(&client, "configured").await;
    assert_eq!(created.status(), 201);
    app.stop();
    let engine = gino::create_engine(database.url(), Default::default())
        .await
        .unwrap();
    use gino::diesel::{self, dsl::sql, sql_types::Text};
    let stored: Vec<String> = engine
        .all(diesel::select(sql::<Text>("nickname FROM users")))
        .await
        .unwrap();
    assert_eq!(stored, ["configured"]);
    engine.close().await;
}

/// A refusal as the API promises every error: the client's (4xx), in
/// JSON, with a message.
async fn expect_json_refusal(refused: reqwest::Response, what: &str) -> String {
    let status = refused.status();
    assert!(status.is_client_error(), "{what}: gave {status}");
    let kind = refused.headers().get("content-type").cloned();
    assert_eq!(
        kind.as_ref().and_then(|k| k.to_str().ok()),
        Some("application/json"),
        "{what}: {status} not in JSON"
    );
    let body: Value = refused.json().await.expect("a JSON body");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty(),
        "{what}: {status} without a message: {body}"
    );
    message.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_users_serves_the_api() {
    drive("axum_users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_users_serves_the_api() {
    drive("actix_users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocket_users_serves_the_api() {
    drive("rocket_users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_tenants_serves_each_tenant_its_own_database() {
    use gino::diesel::{self, dsl::sql, sql_types::BigInt};

    let base = gino_testkit::TestDatabase::create().await;
    let admin = gino::create_engine(base.url(), Default::default())
        .await
        .unwrap();
    let tenants = ["acme", "globex", "initech"];
    for t in tenants {
        admin
            .status(diesel::sql_query(format!(
                "CREATE DATABASE \"{}_{t}\"",
                base.name()
            )))
            .await
            .unwrap();
    }
    let app_name = format!("{}_app", base.name());
    let dsn = format!(
        "{}{}application_name={app_name}",
        base.url(),
        if base.url().contains('?') { '&' } else { '?' }
    );
    let app = App::start_with(
        "axum_tenants",
        &dsn,
        &[("DB_TENANT_CAP", "2"), ("DB_TENANT_CONNECTIONS", "3")],
    );
    let client = reqwest::Client::new();
    let get = |path: &str, tenant: Option<&str>| {
        let mut request = client.get(app.url(path));
        if let Some(t) = tenant {
            request = request.header("X-Tenant", t);
        }
        request.send()
    };

    // Each tenant its own database, in rotation past the cap of 2.
    for round in 0..3 {
        for t in tenants {
            let response = get("/tenant", Some(t)).await.unwrap();
            assert_eq!(response.status(), 200, "round {round}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body,
                json!({"tenant": t, "database": format!("{}_{t}", base.name())})
            );
        }
    }
    // Writes stay in their tenant.
    let created = client
        .post(app.url("/users"))
        .header("X-Tenant", "acme")
        .json(&json!({"nickname": "wile"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let acme: Value = get("/users", Some("acme"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let globex: Value = get("/users", Some("globex"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acme.as_array().unwrap().len(), 1);
    assert_eq!(globex, json!([]));

    // Missing or malformed: 400; no database: 404; both JSON.
    for (tenant, status) in [(None, 400), (Some("Not Valid"), 400), (Some("nobody"), 404)] {
        let response = get("/tenant", tenant).await.unwrap();
        assert_eq!(response.status(), status, "X-Tenant {tenant:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    // An unknown path is the API's JSON 404, with or without a tenant; a
    // method the path does not take its JSON 405.
    for tenant in [None, Some("acme"), Some("nobody")] {
        let response = get("/nowhere", tenant).await.unwrap();
        assert_eq!(response.status(), 404, "X-Tenant {tenant:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    let response = client
        .post(app.url("/tenant"))
        .header("X-Tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    app.stop();
    let left: i64 = admin
        .one(diesel::select(sql::<BigInt>(&format!(
            "(SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app_name}')"
        ))))
        .await
        .unwrap();
    assert_eq!(left, 0, "the example left connections open");
    for t in tenants {
        admin
            .status(diesel::sql_query(format!(
                "DROP DATABASE \"{}_{t}\" WITH (FORCE)",
                base.name()
            )))
            .await
            .unwrap();
    }
    admin.close().await;
}

/// What an example that is to refuse its start printed, once it exited:
/// one that serves instead is killed after 60 s and fails the test.
fn output_of_a_start_that_fails(mut run: Command) -> std::process::Output {
    let child = run
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("the example's output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the example still runs 60 s after its start: it did not refuse it");
        }
    }
}

/// Tenant settings no tenant's engine could be made with stop the
/// start, saying which, rather than answer every tenant's first request
/// with a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_settings_no_engine_can_have_stop_the_start() {
    let database = gino_testkit::TestDatabase::create().await;
    for (variable, value, said) in [
        ("DB_TENANT_CONNECTIONS", "3", "min_size"),
        ("DB_TENANT_CONNECTIONS", "0", "DB_TENANT_CONNECTIONS"),
        ("DB_TENANT_CAP", "0", "DB_TENANT_CAP"),
    ] {
        let run = example_command(
            "axum_tenants",
            &[
                ("DB_DSN", database.url()),
                ("DB_POOL_MIN_SIZE", "5"),
                (variable, value),
            ],
        );
        let output = tokio::task::spawn_blocking(move || output_of_a_start_that_fails(run))
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value}");
        assert!(stderr.contains(said), "{variable}={value}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening on"),
            "{variable}={value}"
        );
    }
}

/// A `PORT` that is no port stops the start, saying so, rather than
/// serving on another port than the one asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_is_no_port_stops_the_start() {
    let database = gino_testkit::TestDatabase::create().await;
    for name in ["axum_users", "actix_users", "rocket_users"] {
        let run = example_command(name, &[("DB_DSN", database.url()), ("PORT", "70000")]);
        let output = tokio::task::spawn_blocking(move || output_of_a_start_that_fails(run))
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: {}", output.status);
        assert!(said.contains("PORT"), "{name}: {said}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening on"),
            "{name}"
        );
    }
}
