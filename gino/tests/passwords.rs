//! Password authentication against a server that asks for one
//! (`scram-sha-256`): the password in the URL, from libpq's password file
//! (read again for every new connection), the errors when it is wrong or
//! nowhere, logins bound to the server's TLS certificate
//! (`channel_binding`), the methods a client lets a server ask for
//! (`require_auth`, against servers using each), and the user a server on
//! a Unix-domain socket must run as (`requirepeer`).

mod common;

use std::path::PathBuf;
use std::sync::LazyLock;

use diesel::dsl::sql;
use diesel::sql_types::Text;
use gino::{Engine, EngineOptions, Error, create_engine};
use gino_testkit::Cluster;

/// Logins over TCP need a password; the role `app` has one with a colon
/// and a backslash in it, which a password file must escape.
///
/// Three more roles log in by the other methods: `plain` with a
/// cleartext password, `hashed` with an MD5 hash, `trusted` with none.
static SCRAM: LazyLock<Cluster> = LazyLock::new(|| {
    let cluster = Cluster::builder()
        .hba(
            "host all plain 127.0.0.1/32 password\n\
             host all hashed 127.0.0.1/32 md5\n\
             host all trusted 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256",
        )
        .start()
        .expect("start a cluster with password authentication");
    cluster
        .execute(
            "CREATE ROLE app LOGIN PASSWORD 'pa:ss\\word';\
             CREATE ROLE other LOGIN PASSWORD 'other';\
             CREATE ROLE plain LOGIN PASSWORD 'plain';\
             CREATE ROLE trusted LOGIN;\
             SET password_encryption = 'md5';\
             CREATE ROLE hashed LOGIN PASSWORD 'hashed';",
        )
        .expect("create the roles");
    cluster
        .execute("CREATE DATABASE shop OWNER app")
        .expect("create the database");
    cluster
});

/// `app`'s password as a password file writes it.
const ESCAPED: &str = "pa\\:ss\\\\word";

/// `postgres://<userinfo>@127.0.0.1:<port>/shop?<params>`.
fn url(userinfo: &str, params: &str) -> String {
    format!(
        "postgres://{userinfo}@127.0.0.1:{}/shop?{params}",
        SCRAM.port()
    )
}

/// A password file of its own for each test, removed when dropped.
struct PassFile(PathBuf);

impl PassFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("gino-pgpass-{}-{name}", std::process::id()));
        PassFile(path)
    }

    /// Writes `lines`, readable by its owner only unless `mode` says else.
    fn write(&self, lines: &str, mode: u32) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&self.0, lines).unwrap();
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn param(&self) -> String {
        format!("passfile={}", self.0.display())
    }
}

impl Drop for PassFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn open(url: &str) -> gino::Result<Engine> {
    create_engine(url, EngineOptions::new().min_size(0).max_size(2)).await
}

async fn who(engine: &Engine) -> gino::Result<String> {
    engine
        .one(diesel::select(sql::<Text>("current_user")))
        .await
}

#[tokio::test]
async fn a_password_in_the_url_logs_in_and_a_wrong_one_is_refused() {
    let engine = open(&url("app:pa%3Ass%5Cword", "")).await.unwrap();
    assert_eq!(who(&engine).await.unwrap(), "app");
    engine.close().await;

    let engine = engine_or_error(&url("app:wrong", "")).await;
    let Err(Error::Database(e)) = engine else {
        panic!("expected the server's refusal, got {engine:?}");
    };
    assert_eq!(e.code(), "28P01", "{e}");
    assert_eq!(e.hint(), None, "no password file was involved: {e}");
}

/// The engine, or the error of its first connection.
async fn engine_or_error(url: &str) -> gino::Result<Engine> {
    let engine = open(url).await?;
    who(&engine).await?;
    Ok(engine)
}

#[tokio::test]
async fn the_password_file_gives_the_password_of_the_first_matching_line() {
    let file = PassFile::new("matching");
    let port = SCRAM.port();
    file.write(
        &format!(
            "# host:port:database:user:password\n\
             127.0.0.1:{port}:otherdb:app:not-this-one\n\
             localhost:{port}:shop:app:nor-this-one\n\
             127.0.0.1:{port}:shop:other:nor-this\n\
             127.0.0.1:{port}:shop:app:{ESCAPED}\n\
             *:*:*:*:too-late\n"
        ),
        0o600,
    );
    let engine = open(&url("app", &file.param())).await.unwrap();
    assert_eq!(who(&engine).await.unwrap(), "app");
    engine.close().await;

    // Wildcards, and the user from the URL's parameters.
    file.write(&format!("*:{port}:*:app:{ESCAPED}\n"), 0o600);
    let wildcards = url("", &format!("user=app&{}", file.param())).replace("//@", "//");
    let engine = open(&wildcards).await.unwrap();
    assert_eq!(who(&engine).await.unwrap(), "app");
    engine.close().await;

    // A password in the URL wins over the file's.
    file.write("*:*:*:*:wrong\n", 0o600);
    let engine = open(&url("app:pa%3Ass%5Cword", &file.param()))
        .await
        .unwrap();
    assert_eq!(who(&engine).await.unwrap(), "app");
    engine.close().await;
}

#[tokio::test]
async fn every_new_connection_reads_the_file_again() {
    SCRAM
        .execute("CREATE ROLE rotating LOGIN PASSWORD 'first'")
        .unwrap();
    let file = PassFile::new("rotating");
    file.write("*:*:*:rotating:first\n", 0o600);
    let engine = open(&url("rotating", &file.param())).await.unwrap();
    let held = engine.acquire().await.unwrap();
    assert_eq!(who_on(&held).await, "rotating");

    SCRAM
        .execute("ALTER ROLE rotating PASSWORD 'second'")
        .unwrap();
    file.write("*:*:*:rotating:second\n", 0o600);
    // The pool's one connection is held: this query opens a second one,
    // with the file's new password.
    assert_eq!(who(&engine).await.unwrap(), "rotating");
    drop(held);
    common::assert_pool_clean(&engine).await;
    engine.close().await;
}

async fn who_on(conn: &gino::Connection) -> String {
    conn.one(diesel::select(sql::<Text>("current_user")))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_password_from_the_file_names_the_file() {
    let file = PassFile::new("wrong");
    file.write("*:*:*:app:wrong\n", 0o600);
    let refused = engine_or_error(&url("app", &file.param())).await;
    let Err(Error::Database(e)) = refused else {
        panic!("expected the server's refusal, got {refused:?}");
    };
    assert_eq!(e.code(), "28P01", "{e}");
    let hint = e.hint().expect("a hint naming the password file");
    assert!(hint.contains(&file.0.display().to_string()), "{hint}");
}

#[tokio::test]
async fn no_password_anywhere_is_a_configuration_error_saying_where_to_put_one() {
    let file = PassFile::new("none");
    file.write("*:*:*:someone-else:secret\n", 0o600);
    let refused = engine_or_error(&url("app", &file.param())).await;
    let Err(Error::Configuration(message)) = refused else {
        panic!("expected a configuration error, got {refused:?}");
    };
    for needed in [
        "password",
        "`app`",
        "PGPASSWORD",
        &file.0.display().to_string(),
    ] {
        assert!(message.contains(needed), "{needed:?} missing in: {message}");
    }

    // A file that others can read is ignored, as libpq ignores it.
    file.write(&format!("*:*:*:app:{ESCAPED}\n"), 0o644);
    let (refused, log) = common::with_log(engine_or_error(&url("app", &file.param()))).await;
    assert!(
        matches!(refused, Err(Error::Configuration(_))),
        "{refused:?}"
    );
    assert!(log.contains("group or world access"), "{log}");
    file.write(&format!("*:*:*:app:{ESCAPED}\n"), 0o600);
    let engine = engine_or_error(&url("app", &file.param())).await.unwrap();
    engine.close().await;
}

/// A web app's start-up does not wait out its retries on a login the
/// server refused: another attempt would be refused the same way.
#[cfg(feature = "web")]
#[tokio::test]
async fn a_web_app_does_not_retry_a_refused_login() {
    use std::time::Duration;
    let mut settings = gino::web::Settings::default();
    settings.dsn = Some(url("app:wrong", ""));
    settings.pool_min_size = 1;
    settings.retry_limit = 3;
    settings.retry_interval = Duration::from_millis(100);
    let db: &'static gino::Gino = Box::leak(Box::new(gino::Gino::secondary()));
    let (refused, log) = common::with_log(gino::web::Extension::new(db, settings).connect()).await;
    assert_eq!(refused.unwrap_err().sqlstate(), Some("28P01"));
    assert!(!log.contains("retrying"), "{log}");
}

/// Over TLS, a password login is bound to the server's certificate
/// (SCRAM-SHA-256-PLUS): `channel_binding=require` refuses a login
/// without the binding, so its success shows the binding was made, and
/// checked by the server.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_login_over_tls_binds_to_the_server_s_certificate() {
    let ca = gino_testkit::TestCa::new("channel binding CA");
    let cluster = Cluster::builder()
        .tls(&ca.server(&["localhost"]), &ca)
        .hba("hostssl all all 127.0.0.1/32 scram-sha-256")
        .start()
        .expect("start a TLS cluster with password authentication");
    cluster
        .execute("CREATE ROLE app LOGIN PASSWORD 'secret'")
        .unwrap();
    let root = ca.write("root.crt", &ca.cert_pem());
    let over_tls = |binding: &str| {
        format!(
            "postgres://app:secret@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}\
             &channel_binding={binding}",
            cluster.port(),
            root.display()
        )
    };
    for binding in ["require", "prefer", "disable"] {
        let engine = engine_or_error(&over_tls(binding)).await;
        let engine = engine.unwrap_or_else(|e| panic!("channel_binding={binding}: {e}"));
        engine.close().await;
    }
    // require_auth reads the login inside the TLS session.
    let scram = engine_or_error(&format!(
        "{}&require_auth=scram-sha-256",
        over_tls("require")
    ))
    .await;
    scram.expect("a SCRAM login over TLS").close().await;
    let refused = engine_or_error(&format!("{}&require_auth=password", over_tls("prefer"))).await;
    assert!(
        matches!(&refused, Err(Error::Configuration(m)) if m.contains("SCRAM-SHA-256")),
        "{refused:?}"
    );

    // Plaintext has nothing to bind to: a server without TLS is refused,
    // and so is a login the client does not encrypt.
    let plain = url("app:pa%3Ass%5Cword", "channel_binding=require");
    let refused = engine_or_error(&plain).await;
    let Err(Error::Tls(message)) = refused else {
        panic!("expected a refused login, got {refused:?}");
    };
    assert!(message.contains("channel_binding=require"), "{message}");
    let refused = engine_or_error(&format!("{plain}&sslmode=disable")).await;
    let Err(Error::Connection(message)) = refused else {
        panic!("expected a refused login, got {refused:?}");
    };
    assert!(message.contains("channel binding"), "{message}");
}

/// Logs in as `user` with `password` and `require_auth=<setting>`: the
/// user, or the error.
async fn login_requiring(user: &str, password: &str, setting: &str) -> gino::Result<String> {
    let engine = open(&url(
        &format!("{user}:{password}"),
        &format!("require_auth={setting}"),
    ))
    .await?;
    let name = who(&engine).await;
    engine.close().await;
    name
}

#[tokio::test]
async fn require_auth_refuses_a_server_that_asks_for_another_method() {
    // (user, require_auth, what the server asked for if refused)
    let cases = [
        ("other", "scram-sha-256", None),
        ("other", "!password,!md5", None),
        ("other", "password,md5", Some("asked for SCRAM-SHA-256")),
        ("other", "!scram-sha-256", Some("asked for SCRAM-SHA-256")),
        ("plain", "password", None),
        (
            "plain",
            "scram-sha-256",
            Some("asked for a cleartext password"),
        ),
        (
            "plain",
            "!password,!md5",
            Some("asked for a cleartext password"),
        ),
        ("hashed", "md5", None),
        (
            "hashed",
            "scram-sha-256,none",
            Some("asked for an MD5 password hash"),
        ),
        ("trusted", "none", None),
        ("trusted", "scram-sha-256", Some("without authentication")),
        ("trusted", "!none", Some("without authentication")),
    ];
    for (user, setting, refused) in cases {
        let login = login_requiring(user, user, setting).await;
        match (refused, login) {
            (None, Ok(name)) => assert_eq!(name, user),
            (Some(asked), Err(Error::Configuration(message))) => {
                assert!(message.contains(asked), "{user}, {setting}: {message}");
                assert!(
                    message.contains(&format!("require_auth={setting} does not allow")),
                    "{message}"
                );
            }
            (expected, got) => panic!("{user}, {setting}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn require_auth_sends_no_password_to_a_server_it_refuses() {
    let log_before = SCRAM.log().len();
    // A wrong password: had it been sent, the server would refuse it
    // (28P01) and log the failure.
    let login = login_requiring("plain", "wrong", "scram-sha-256").await;
    assert!(
        matches!(&login, Err(Error::Configuration(m)) if m.contains("cleartext password")),
        "{login:?}"
    );
    let log = SCRAM.log();
    assert!(
        !log[log_before..].contains("password authentication failed for user \"plain\""),
        "the password went to the server: {}",
        &log[log_before..]
    );
    // The same password without require_auth does reach it.
    let login = login_requiring("plain", "wrong", "!none").await;
    assert!(
        matches!(&login, Err(Error::Database(e)) if e.code() == "28P01"),
        "{login:?}"
    );
}

#[tokio::test]
async fn requirepeer_checks_the_user_a_unix_socket_server_runs_as() {
    let at_socket = |params: &str| {
        format!(
            "postgres://postgres@/postgres?host={}&port={}&{params}",
            SCRAM.socket_dir().display(),
            SCRAM.port()
        )
    };
    let server_user = SCRAM.os_user();
    let engine = open(&at_socket(&format!("requirepeer={server_user}")))
        .await
        .expect("the server runs as its own user");
    assert_eq!(who(&engine).await.unwrap(), "postgres");
    engine.close().await;

    let impostor = if server_user == "root" {
        "nobody"
    } else {
        "root"
    };
    let refused = engine_or_error(&at_socket(&format!("requirepeer={impostor}"))).await;
    let Err(Error::Configuration(message)) = &refused else {
        panic!("expected requirepeer to refuse the server, got {refused:?}");
    };
    assert!(
        message.contains(&format!(
            "runs as the user `{server_user}`, but requirepeer={impostor}"
        )),
        "{message}"
    );

    // Over TCP there is no peer to ask: the setting does not apply.
    let tcp = url("other:other", &format!("requirepeer={impostor}"));
    let engine = engine_or_error(&tcp)
        .await
        .expect("TCP ignores requirepeer");
    engine.close().await;
}
