//! TLS and libpq's connection settings against real servers: a TLS-only
//! cluster with a certificate authority made up by the test, a cluster
//! without TLS, and a read-only one.

mod common;

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::sql_types::{Bool, Integer, Text};
use gino::prelude::*;
use gino::{EngineOptions, Error, create_engine};
use gino_testkit::{Cluster, TestCa};

struct Fixture {
    /// TLS only (`hostssl`), with a certificate for `localhost` alone; the
    /// database `certdb` also wants a client certificate.
    tls: Cluster,
    /// The authority that signed the server and client certificates.
    root: PathBuf,
    /// An authority the server has never heard of.
    other_root: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// The server's certificate, to revoke.
    server: gino_testkit::Issued,
    cas: (TestCa, TestCa),
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ca = TestCa::new("gino test CA");
    let other = TestCa::new("someone else's CA");
    let server = ca.server(&["localhost"]);
    let tls = Cluster::builder()
        .tls(&server, &ca)
        .hba(
            "hostssl certdb all 127.0.0.1/32 trust clientcert=verify-full\n\
             hostssl all all 127.0.0.1/32 trust",
        )
        .start()
        .expect("start a TLS cluster");
    tls.execute("CREATE DATABASE certdb")
        .expect("create certdb");
    let client = ca.client("postgres");
    Fixture {
        root: ca.write("root.crt", &ca.cert_pem()),
        other_root: other.write("other.crt", &other.cert_pem()),
        client_cert: ca.write("client.crt", &client.cert_pem),
        client_key: ca.write("client.key", &client.key_pem),
        tls,
        server,
        cas: (ca, other),
    }
});

/// A cluster without TLS.
static PLAIN: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::builder().start().expect("start a plain cluster"));

/// A cluster whose sessions are read-only.
static READ_ONLY: LazyLock<Cluster> = LazyLock::new(|| {
    Cluster::builder()
        .setting("default_transaction_read_only", "on")
        .start()
        .expect("start a read-only cluster")
});

/// `postgres://postgres@<host>:<port>/<db>?<params>` on the TLS cluster.
fn tls_url(host: &str, db: &str, params: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/{db}?{params}",
        FIXTURE.tls.port()
    )
}

fn root_param() -> String {
    format!("sslrootcert={}", FIXTURE.root.display())
}

async fn engine(url: &str) -> gino::Result<gino::Engine> {
    create_engine(url, EngineOptions::new().max_size(3)).await
}

/// Whether the session answering on `engine` is encrypted, per the server.
async fn encrypted(engine: &gino::Engine) -> bool {
    engine
        .one(diesel::select(sql::<Bool>(
            "ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )))
        .await
        .expect("pg_stat_ssl")
}

fn tls_error(result: gino::Result<gino::Engine>) -> String {
    match result {
        Err(Error::Tls(message)) => message,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

fn configuration_error(result: gino::Result<gino::Engine>) -> String {
    match result {
        Err(Error::Configuration(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn require_encrypts_and_disable_is_refused_by_the_server() {
    for params in ["sslmode=require", "", "sslmode=prefer", "sslmode=allow"] {
        let engine = engine(&tls_url("127.0.0.1", "postgres", params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(encrypted(&engine).await, "{params} did not encrypt");
        engine.close().await;
    }
    let refused = engine(&tls_url("127.0.0.1", "postgres", "sslmode=disable")).await;
    match refused {
        Err(Error::Database(e)) => {
            assert_eq!(e.code(), "28000");
            assert!(e.message().contains("no encryption"), "{}", e.message());
        }
        other => panic!("expected the server's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let full = engine(&tls_url(
        "localhost",
        "postgres",
        &format!("sslmode=verify-full&{}", root_param()),
    ))
    .await
    .expect("verify-full with the right CA and host name");
    assert!(encrypted(&full).await);
    full.close().await;

    let stranger = tls_error(
        engine(&tls_url(
            "localhost",
            "postgres",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                FIXTURE.other_root.display()
            ),
        ))
        .await,
    );
    assert!(
        stranger.contains("not signed by a root of sslrootcert")
            && stranger.contains(&FIXTURE.other_root.display().to_string()),
        "{stranger}"
    );

    let wrong_name = tls_error(
        engine(&tls_url(
            "127.0.0.1",
            "postgres",
            &format!("sslmode=verify-full&{}", root_param()),
        ))
        .await,
    );
    assert!(
        wrong_name.contains("not valid for the host name `127.0.0.1`")
            && wrong_name.contains("verify-ca"),
        "{wrong_name}"
    );

    let chain_only = engine(&tls_url(
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-ca&{}", root_param()),
    ))
    .await
    .expect("verify-ca ignores the host name");
    assert!(encrypted(&chain_only).await);
    chain_only.close().await;

    // As in libpq, `require` with a root certificate checks the chain.
    let checked = tls_error(
        engine(&tls_url(
            "127.0.0.1",
            "postgres",
            &format!(
                "sslmode=require&sslrootcert={}",
                FIXTURE.other_root.display()
            ),
        ))
        .await,
    );
    assert!(checked.contains("not signed by a root"), "{checked}");
}

/// The web settings' `DB_SSL` as GINO's extensions take it: `true` is
/// asyncpg's `ssl=True`, which checks the certificate and the host name,
/// against the roots it is given (`system` for the operating system's);
/// `require` only encrypts.
#[cfg(feature = "web")]
#[tokio::test]
async fn web_settings_ssl_true_checks_the_certificate() {
    use gino::web::{Extension, Settings};
    static WEB_TLS: Gino = Gino::secondary();
    let port = FIXTURE.tls.port().to_string();
    let root = FIXTURE.root.display().to_string();
    let settings = |vars: &[(&str, &str)]| {
        let mut all = vec![("DB_HOST", "localhost"), ("DB_PORT", port.as_str())];
        all.extend_from_slice(vars);
        all.push(("DB_POOL_MIN_SIZE", "1"));
        all.push(("DB_RETRY_LIMIT", "0"));
        Settings::from_lookup(|name| {
            all.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    };

    // Checking with no roots to check against: said, at once.
    let no_roots = Extension::new(&WEB_TLS, settings(&[("DB_SSL", "true")]).unwrap())
        .connect()
        .await;
    match no_roots {
        Err(Error::Configuration(message)) => {
            assert!(message.contains("sslrootcert=system"), "{message}")
        }
        other => panic!("expected no root certificate to be an error, got {other:?}"),
    }
    // The test's authority is none of the system's: refused, at once.
    let system = [("DB_SSL", "true"), ("DB_SSL_ROOT_CERT", "system")];
    let unknown = Extension::new(&WEB_TLS, settings(&system).unwrap())
        .connect()
        .await;
    match unknown {
        Err(Error::Tls(message)) => assert!(message.contains("certificate"), "{message}"),
        // A machine without a CA bundle has no system roots at all.
        Err(Error::Configuration(message)) => {
            assert!(message.contains("no trusted root"), "{message}")
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    assert!(!WEB_TLS.is_bound());

    for vars in [
        vec![("DB_SSL", "true"), ("DB_SSL_ROOT_CERT", root.as_str())],
        vec![("DB_SSL", "require")],
    ] {
        let engine = Extension::new(&WEB_TLS, settings(&vars).unwrap())
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{vars:?}: {e}"));
        assert!(encrypted(&engine).await, "{vars:?}");
        WEB_TLS.pop_bind().unwrap().close().await;
    }

    // A DSN that says otherwise is refused before anything is opened.
    let dsn = tls_url("localhost", "postgres", "sslmode=disable");
    match settings(&[("DB_DSN", dsn.as_str()), ("DB_SSL", "verify-full")]) {
        Err(Error::Configuration(message)) => {
            assert!(
                message.contains("DB_SSL") && message.contains("sslmode=disable"),
                "{message}"
            )
        }
        other => panic!("expected the clash to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn client_certificates_satisfy_clientcert_verify_full() {
    let without = engine(&tls_url("127.0.0.1", "certdb", "sslmode=require")).await;
    match without {
        Err(Error::Database(e)) => {
            assert_eq!(e.code(), "28000", "{e}");
            assert!(e.message().contains("certificate"), "{}", e.message());
        }
        other => panic!("expected the server to ask for a certificate, got {other:?}"),
    }
    // certdb over verify-full, with the fixture's certificate and `key`.
    let with_key = |key: &std::path::Path| {
        tls_url(
            "localhost",
            "certdb",
            &format!(
                "sslmode=verify-full&{}&sslcert={}&sslkey={}",
                root_param(),
                FIXTURE.client_cert.display(),
                key.display()
            ),
        )
    };
    let with = engine(&with_key(&FIXTURE.client_key))
        .await
        .expect("a client certificate the server's CA signed");
    let dn: String = with
        .one(diesel::select(sql::<Text>(
            "client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )))
        .await
        .unwrap();
    assert!(dn.contains("CN=postgres"), "{dn}");
    with.close().await;

    // A key others can read is refused, as libpq refuses it.
    let shared = FIXTURE.client_key.with_file_name("shared.key");
    std::fs::copy(&FIXTURE.client_key, &shared).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let refused = engine(&with_key(&shared)).await;
    assert!(configuration_error(refused).contains("group or world access"));
}

#[tokio::test]
async fn sslcertmode_require_needs_a_server_that_asks_and_disable_sends_none() {
    let client = format!(
        "{}&sslcert={}&sslkey={}",
        root_param(),
        FIXTURE.client_cert.display(),
        FIXTURE.client_key.display()
    );
    let client_dn = |engine: gino::Engine| async move {
        let dn: Option<String> = engine
            .one(diesel::select(sql::<diesel::sql_types::Nullable<Text>>(
                "client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            )))
            .await
            .unwrap();
        engine.close().await;
        dn
    };
    // The fixture's server asks (it has ssl_ca_file).
    let asked = engine(&tls_url(
        "localhost",
        "postgres",
        &format!("sslmode=verify-full&{client}&sslcertmode=require"),
    ))
    .await
    .expect("the server asks for the certificate");
    assert!(
        client_dn(asked)
            .await
            .is_some_and(|dn| dn.contains("CN=postgres"))
    );
    let disabled = format!("sslmode=verify-full&{client}&sslcertmode=disable");
    let none_sent = engine(&tls_url("localhost", "postgres", &disabled))
        .await
        .unwrap();
    assert_eq!(
        client_dn(none_sent).await,
        None,
        "sslcertmode=disable sent the certificate"
    );
    let refused = engine(&tls_url("localhost", "certdb", &disabled)).await;
    assert!(
        matches!(&refused, Err(Error::Database(e)) if e.code() == "28000"),
        "certdb wants a certificate: {refused:?}"
    );

    // A server without ssl_ca_file asks for none.
    let (ca, _) = &FIXTURE.cas;
    let incurious = Cluster::builder()
        .tls(&FIXTURE.server, ca)
        .setting("ssl_ca_file", "")
        .start()
        .expect("start a TLS cluster that asks for no client certificate");
    let url = |mode: &str| {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&{client}&sslcertmode={mode}",
            incurious.port()
        )
    };
    let message = tls_error(engine(&url("require")).await);
    assert!(
        message.contains("did not ask for a client certificate")
            && message.contains("sslcertmode=require"),
        "{message}"
    );
    let allowed = engine(&url("allow")).await.expect("allow needs no request");
    assert_eq!(client_dn(allowed).await, None);

    let without = tls_url(
        "localhost",
        "postgres",
        &format!("sslmode=verify-full&{}&sslcertmode=require", root_param()),
    );
    let message = configuration_error(engine(&without).await);
    assert!(
        message.contains("none is configured: set sslcert"),
        "{message}"
    );
    let bogus = tls_url("localhost", "postgres", "sslcertmode=always");
    assert!(configuration_error(engine(&bogus).await).contains("sslcertmode `always`"));
}

#[tokio::test]
async fn prefer_leaves_loopback_plaintext_unless_the_server_insists() {
    // A server that takes both: on loopback, `prefer` does not encrypt,
    // `require` does; the TLS-only server above gets TLS from `prefer`.
    let ca = TestCa::new("loopback CA");
    let both = Cluster::builder()
        .tls(&ca.server(&["localhost"]), &ca)
        .start()
        .expect("a cluster with optional TLS");
    let url = both.url_for("postgres");
    // A certificate the server must ask for needs TLS: `prefer` and
    // `allow` encrypt then, on loopback too.
    let client = ca.client("postgres");
    let client = format!(
        "sslcert={}&sslkey={}&sslcertmode=require",
        ca.write("loopback-client.crt", &client.cert_pem).display(),
        ca.write("loopback-client.key", &client.key_pem).display()
    );
    let asked = format!("?{client}");
    let allowed = format!("?sslmode=allow&{client}");
    for (params, expected) in [
        ("", false),
        ("?sslmode=prefer", false),
        ("?sslmode=require", true),
        (asked.as_str(), true),
        (allowed.as_str(), true),
    ] {
        let engine = engine(&format!("{url}{params}")).await.unwrap();
        assert_eq!(encrypted(&engine).await, expected, "{params}");
        engine.close().await;
    }
    let disabled = format!("{url}?sslmode=disable&{client}");
    assert!(configuration_error(engine(&disabled).await).contains("sslcertmode=require"));
}

#[tokio::test]
async fn prefer_falls_back_to_plaintext_and_require_refuses_it() {
    let url = PLAIN.url_for("postgres");
    let preferred = engine(&url).await.expect("prefer on a server without TLS");
    assert!(!encrypted(&preferred).await);
    preferred.close().await;

    let required = tls_error(engine(&format!("{url}?sslmode=require")).await);
    assert!(
        required.contains("does not accept TLS") && required.contains("sslmode=require"),
        "{required}"
    );
}

#[tokio::test]
async fn the_protocol_is_observed_over_tls() {
    let engine = create_engine(
        &tls_url(
            "localhost",
            "postgres",
            &format!(
                "sslmode=verify-full&{}&application_name=gino_tls_observed",
                root_param()
            ),
        ),
        EngineOptions::new().max_size(2),
    )
    .await
    .expect("engine over TLS");
    assert!(encrypted(&engine).await);

    // Command tags and SQLSTATEs come from the (decrypted) wire.
    let conn = engine.acquire().await.unwrap();
    let status = conn
        .status(diesel::sql_query(
            "CREATE TEMP TABLE tags (x int PRIMARY KEY)",
        ))
        .await
        .unwrap();
    assert_eq!(status, "CREATE TABLE");
    let inserted = conn
        .status(diesel::sql_query(
            "INSERT INTO tags SELECT generate_series(1, 3)",
        ))
        .await
        .unwrap();
    assert_eq!(inserted, "INSERT 0 3");
    let duplicate = conn
        .status(diesel::sql_query("INSERT INTO tags VALUES (1)"))
        .await
        .unwrap_err();
    assert_eq!(duplicate.sqlstate(), Some("23505"), "{duplicate}");
    conn.release().await.unwrap();

    // A timed-out statement is cancelled on the server, over TLS.
    let started = Instant::now();
    let slow = diesel::sql_query("SELECT pg_sleep(30)")
        .gino()
        .bind(&engine)
        .timeout(Duration::from_millis(300))
        .status()
        .await;
    assert!(matches!(slow, Err(Error::QueryTimeout(_))), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let sleeping: i64 = engine
        .one(diesel::select(sql::<diesel::sql_types::BigInt>(
            "count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' \
             AND state = 'active'",
        )))
        .await
        .unwrap();
    assert_eq!(sleeping, 0, "the cancelled statement still runs");

    // A transaction dropped half-way never goes back to the pool open.
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        engine.transaction(async {
            engine
                .status(diesel::sql_query("CREATE TEMP TABLE dropped (x int)"))
                .await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, gino::Error>(())
        }),
    )
    .await;
    assert!(dropped.is_err(), "the transaction should have been dropped");
    common::assert_pool_clean(&engine).await;
    let states = common::session_states(&engine, "gino_tls_observed").await;
    assert!(
        !states.iter().any(|s| s.starts_with("idle in transaction")),
        "{states:?}"
    );
    engine.close().await;
}

/// The port of the server a URL's engine settles on.
async fn settled_port(url: &str) -> gino::Result<i32> {
    let engine = engine(url).await?;
    let port = engine
        .one(diesel::select(sql::<Integer>("inet_server_port()")))
        .await;
    engine.close().await;
    port
}

#[tokio::test]
async fn target_session_attrs_chooses_among_hosts() {
    let (ro, rw) = (READ_ONLY.port(), PLAIN.port());
    let url = |attrs: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{ro},127.0.0.1:{rw}/postgres?target_session_attrs={attrs}"
        )
    };
    assert_eq!(
        settled_port(&url("read-write")).await.unwrap(),
        i32::from(rw)
    );
    assert_eq!(
        settled_port(&url("read-only")).await.unwrap(),
        i32::from(ro)
    );
    assert_eq!(settled_port(&url("any")).await.unwrap(), i32::from(ro));
    assert_eq!(settled_port(&url("primary")).await.unwrap(), i32::from(ro));
    assert_eq!(
        settled_port(&url("prefer-standby")).await.unwrap(),
        i32::from(ro)
    );
    match settled_port(&url("standby")).await {
        Err(Error::Connection(message)) => {
            assert!(message.contains("not a standby server"), "{message}")
        }
        other => panic!("no standby among the hosts, yet {other:?}"),
    }
    // The same with the hosts listed libpq's other way.
    let listed = format!(
        "postgres:///postgres?host=127.0.0.1,127.0.0.1&port={ro},{rw}&user=postgres\
         &target_session_attrs=read-write"
    );
    assert_eq!(settled_port(&listed).await.unwrap(), i32::from(rw));
    // A host that is down is skipped.
    let down = format!("postgres://postgres@127.0.0.1:1,127.0.0.1:{rw}/postgres?connect_timeout=2");
    assert_eq!(settled_port(&down).await.unwrap(), i32::from(rw));
}

/// libpq's `hostaddr`: the address to connect to, while the host's name
/// is what TLS checks the certificate against (and nothing is looked up).
#[tokio::test]
async fn hostaddr_connects_to_the_address_and_checks_the_host_s_name() {
    // `name` at 127.0.0.1, its certificate checked as `sslmode` says.
    let at_loopback = |name: &str, sslmode: &str| {
        let params = format!("hostaddr=127.0.0.1&sslmode={sslmode}&{}", root_param());
        tls_url(name, "postgres", &params)
    };
    let checked = engine(&at_loopback("localhost", "verify-full"))
        .await
        .unwrap();
    assert!(encrypted(&checked).await);
    checked.close().await;
    // A name no resolver knows: only the address is used to connect.
    let unresolvable = engine(&at_loopback("gino-test.invalid", "verify-ca"))
        .await
        .unwrap();
    assert!(encrypted(&unresolvable).await);
    unresolvable.close().await;
    // The name is still checked: the certificate is for localhost only.
    match engine(&at_loopback("gino-test.invalid", "verify-full")).await {
        Err(Error::Tls(message)) => assert!(message.contains("gino-test.invalid"), "{message}"),
        other => panic!("a certificate for another name passed: {other:?}"),
    }
}

/// libpq's `sslcrl` and `sslcrldir`: a server certificate its authority
/// revoked is refused, and every certificate of the chain needs a list.
#[tokio::test]
async fn revocation_lists_refuse_a_revoked_server_certificate() {
    let (ca, other) = &FIXTURE.cas;
    let connect = |crl: String| {
        let url = tls_url(
            "localhost",
            "postgres",
            &format!("sslmode=verify-full&{}&{crl}", root_param()),
        );
        async move {
            engine(&url).await?.close().await;
            gino::Result::Ok(())
        }
    };
    let none_revoked = ca.write("none-revoked.crl", &ca.crl(&[]));
    connect(format!("sslcrl={}", none_revoked.display()))
        .await
        .expect("a list that revokes nothing");

    let revoked = ca.write("revoked.crl", &ca.crl(&[&FIXTURE.server]));
    // The directory holds the same list in DER.
    let crl_dir = ca.dir().join("crls");
    std::fs::create_dir_all(&crl_dir).unwrap();
    std::fs::write(crl_dir.join("ca.r0"), ca.crl_der(&[&FIXTURE.server])).unwrap();
    for param in [
        format!("sslcrl={}", revoked.display()),
        format!("sslcrldir={}", crl_dir.display()),
    ] {
        match connect(param.clone()).await {
            Err(Error::Tls(message)) => assert!(message.contains("revoked"), "{message}"),
            other => panic!("{param}: a revoked certificate passed: {other:?}"),
        }
    }

    // Only another authority's list: the server's status is unknown.
    let unrelated = other.write("other.crl", &other.crl(&[]));
    match connect(format!("sslcrl={}", unrelated.display())).await {
        Err(Error::Tls(message)) => {
            assert!(
                message.contains("no revocation list of the authority"),
                "{message}"
            )
        }
        other => panic!("an unknown revocation status passed: {other:?}"),
    }
    // A directory that is not there.
    match connect("sslcrldir=/nonexistent/gino-crls".to_owned()).await {
        Err(Error::Configuration(message)) => {
            assert!(message.contains("cannot read sslcrldir"), "{message}")
        }
        other => panic!("a missing sslcrldir passed: {other:?}"),
    }
    // A file that holds no list.
    match connect(format!("sslcrl={}", FIXTURE.root.display())).await {
        Err(Error::Configuration(message)) => {
            assert!(
                message.contains("not a certificate revocation list"),
                "{message}"
            )
        }
        other => panic!("a certificate taken for a revocation list: {other:?}"),
    }
}

/// libpq's `ssl_min_protocol_version` and `ssl_max_protocol_version`
/// choose the TLS version, as the server reports it.
#[tokio::test]
async fn the_tls_version_stays_within_the_bounds_given() {
    let version = |bounds: &str| {
        let url = tls_url(
            "localhost",
            "postgres",
            &format!("sslmode=verify-full&{}&{bounds}", root_param()),
        );
        async move {
            let engine = engine(&url).await?;
            let version: gino::Result<String> = engine
                .one(diesel::select(sql::<Text>(
                    "version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                )))
                .await;
            engine.close().await;
            version
        }
    };
    assert_eq!(version("").await.unwrap(), "TLSv1.3");
    let capped = version("ssl_max_protocol_version=TLSv1.2").await;
    assert_eq!(capped.unwrap(), "TLSv1.2");
    let floor = version("ssl_min_protocol_version=TLSv1.3").await;
    assert_eq!(floor.unwrap(), "TLSv1.3");
    // Without SNI the handshake names no host; the name is still checked.
    let unnamed = version("sslsni=0").await;
    assert_eq!(unnamed.unwrap(), "TLSv1.3");
    match version("ssl_max_protocol_version=TLSv1.1").await {
        Err(Error::Configuration(message)) => assert!(message.contains("TLSv1.1"), "{message}"),
        other => panic!("no version is left, yet {other:?}"),
    }
}

/// libpq's `sslpassword`: a client key encrypted by `openssl` (PKCS#8,
/// AES-256 or triple DES) is decrypted with it; a missing or wrong
/// passphrase, or OpenSSL's traditional encrypted format, is a
/// configuration error saying what to do.
#[tokio::test]
async fn sslpassword_decrypts_an_encrypted_client_key() {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl (install it: apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let key = FIXTURE.client_key.display().to_string();
    let dir = FIXTURE.client_key.with_file_name("");
    let written = |name: &str| dir.join(name).display().to_string();
    let (aes, des, traditional) = (
        written("client-aes.key"),
        written("client-des.key"),
        written("client-traditional.key"),
    );
    for (cipher, out) in [("aes-256-cbc", &aes), ("des3", &des)] {
        openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            cipher,
            "-in",
            &key,
            "-out",
            out,
            "-passout",
            "pass:s3cret",
        ]);
    }
    openssl(&[
        "ec",
        "-in",
        &key,
        "-aes256",
        "-out",
        &traditional,
        "-passout",
        "pass:s3cret",
    ]);
    let url = |key: &str, password: &str| {
        tls_url(
            "localhost",
            "certdb",
            &format!(
                "sslmode=verify-full&{}&sslcert={}&sslkey={key}{password}",
                root_param(),
                FIXTURE.client_cert.display()
            ),
        )
    };
    // certdb takes only a client certificate that the key goes with.
    for protected in [&aes, &des] {
        let engine = engine(&url(protected, "&sslpassword=s3cret"))
            .await
            .unwrap();
        assert!(encrypted(&engine).await);
        engine.close().await;
    }
    let missing = configuration_error(engine(&url(&aes, "")).await);
    assert!(
        missing.contains("is encrypted: give its passphrase as sslpassword"),
        "{missing}"
    );
    let wrong = configuration_error(engine(&url(&aes, "&sslpassword=guess")).await);
    assert!(wrong.contains("cannot decrypt"), "{wrong}");
    assert!(
        !wrong.contains("guess"),
        "the passphrase was shown: {wrong}"
    );
    let old = configuration_error(engine(&url(&traditional, "&sslpassword=s3cret")).await);
    assert!(old.contains("openssl pkcs8 -topk8"), "{old}");
    // A key that is not encrypted ignores the passphrase, as in libpq.
    let plain = engine(&url(&key, "&sslpassword=unused")).await.unwrap();
    plain.close().await;
}

/// libpq 18's `sslkeylogfile`: each session's secrets are appended, in
/// the NSS key log format (TLS 1.3's traffic secrets, TLS 1.2's master
/// secret), to a file only its owner may read.
#[tokio::test]
async fn sslkeylogfile_appends_each_session_s_secrets() {
    let path = FIXTURE.root.with_file_name("sslkeylog.txt");
    let _ = std::fs::remove_file(&path);
    let session = |version: &str| {
        let url = tls_url(
            "localhost",
            "postgres",
            &format!(
                "sslmode=verify-full&{}&ssl_max_protocol_version={version}&sslkeylogfile={}",
                root_param(),
                path.display()
            ),
        );
        async move {
            let engine = engine(&url).await.unwrap();
            assert!(encrypted(&engine).await);
            engine.close().await;
        }
    };
    // Lines of the file: label, client random, secret.
    let lines = || -> Vec<(String, String, String)> {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| {
                let parts: Vec<_> = line.split(' ').collect();
                assert_eq!(parts.len(), 3, "{line}");
                let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
                assert!(hex(parts[1]) && parts[1].len() == 64, "{line}");
                assert!(hex(parts[2]) && parts[2].len() >= 64, "{line}");
                (
                    parts[0].to_owned(),
                    parts[1].to_owned(),
                    parts[2].to_owned(),
                )
            })
            .collect()
    };
    session("TLSv1.3").await;
    let first = lines();
    let labels: Vec<_> = first.iter().map(|(label, _, _)| label.as_str()).collect();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert_eq!(
            labels.iter().filter(|l| **l == label).count(),
            1,
            "{label} in {labels:?}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    session("TLSv1.2").await;
    let all = lines();
    assert_eq!(
        all[..first.len()],
        first[..],
        "the file was not appended to"
    );
    let added: Vec<_> = all[first.len()..]
        .iter()
        .map(|(l, _, _)| l.as_str())
        .collect();
    assert_eq!(added, ["CLIENT_RANDOM"]);
    assert_eq!(
        all.last().unwrap().2.len(),
        96,
        "TLS 1.2's master secret is 48 bytes"
    );
    assert_ne!(
        all.last().unwrap().1,
        first[0].1,
        "two sessions, one client random"
    );
    std::fs::remove_file(&path).unwrap();

    let unwritable = tls_url(
        "localhost",
        "postgres",
        "sslmode=require&sslkeylogfile=/nonexistent/gino/keys.log",
    );
    let message = configuration_error(engine(&unwritable).await);
    assert!(
        message.contains("sslkeylogfile=/nonexistent/gino/keys.log"),
        "{message}"
    );
}

/// libpq 16's `load_balance_hosts`: `random` spreads new connections
/// over the hosts; `disable` (the default) always starts with the first.
#[tokio::test]
async fn load_balance_hosts_spreads_new_connections_over_the_hosts() {
    let (first, second) = (READ_ONLY.port(), PLAIN.port());
    let url = |mode: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{first},127.0.0.1:{second}/postgres\
             ?load_balance_hosts={mode}"
        )
    };
    let mut seen = std::collections::HashSet::new();
    // Twenty connections all on one host would happen once in 2^19 runs.
    for _ in 0..20 {
        seen.insert(settled_port(&url("random")).await.unwrap());
    }
    let both = [i32::from(first), i32::from(second)].into();
    assert_eq!(seen, both);
    for _ in 0..5 {
        let port = settled_port(&url("disable")).await.unwrap();
        assert_eq!(port, i32::from(first));
    }
}

#[tokio::test]
async fn connection_settings_reach_the_server() {
    let engine = engine(&format!(
        "{}?application_name=gino%20settings&options=-c%20search_path%3Dapp,public\
         &keepalives_idle=60&connect_timeout=5\
         &max_protocol_version=latest&krbsrvname=postgres&gssdelegation=0",
        PLAIN.url_for("postgres")
    ))
    .await
    .unwrap();
    assert_eq!(
        common::setting(&engine, "application_name").await,
        "gino settings"
    );
    assert_eq!(common::setting(&engine, "search_path").await, "app,public");
    engine.close().await;

    // A tool's fallback name, when nothing names the application.
    let url = format!(
        "{}?fallback_application_name=a%20tool",
        PLAIN.url_for("postgres")
    );
    let tool = self::engine(&url).await.unwrap();
    assert_eq!(common::setting(&tool, "application_name").await, "a tool");
    tool.close().await;
}

#[tokio::test]
async fn malformed_settings_are_errors_naming_them() {
    let base = tls_url("localhost", "postgres", "");
    let missing = configuration_error(
        engine(&format!(
            "{base}sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem"
        ))
        .await,
    );
    assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    let not_pem = configuration_error(
        engine(&format!(
            "{base}sslmode=verify-ca&sslrootcert={}",
            FIXTURE.client_key.display()
        ))
        .await,
    );
    assert!(not_pem.contains("sslrootcert"), "{not_pem}");
    let no_key = configuration_error(
        engine(&format!(
            "{base}sslcert={}&sslkey=/nonexistent/client.key",
            FIXTURE.client_cert.display()
        ))
        .await,
    );
    assert!(
        no_key.contains("sslkey=/nonexistent/client.key"),
        "{no_key}"
    );
    for (url, named) in [
        (format!("{base}sslmode=bogus"), "bogus"),
        (format!("{base}sslmode=verify_full"), "verify_full"),
        (format!("{base}target_session_attrs=master"), "master"),
        (format!("{base}sslnegotiation=direct"), "sslnegotiation"),
        (
            format!("{base}sslrootcert=system&sslmode=verify-ca"),
            "verify-full",
        ),
    ] {
        let message = configuration_error(engine(&url).await);
        assert!(message.contains(named), "{url}: {message}");
    }
}

/// A TLS-only cluster serving `server`'s certificate (client certificates
/// of the fixture's authority), and a URL for `host` on it.
fn serving(server: &gino_testkit::Issued) -> Cluster {
    Cluster::builder()
        .tls(server, &FIXTURE.cas.0)
        .hba("hostssl all all 127.0.0.1/32 trust")
        .start()
        .expect("start a TLS cluster")
}

fn url_on(cluster: &Cluster, host: &str, params: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/postgres?{params}",
        cluster.port()
    )
}

/// libpq checks the host against the certificate's common name when the
/// certificate has no subject alternative names (what older tools and
/// PostgreSQL's own documentation make); webpki reads only the latter.
#[tokio::test]
async fn verify_full_falls_back_to_the_common_name_as_libpq_does() {
    let cluster = serving(&FIXTURE.cas.0.server_by_common_name("localhost"));
    let full = format!("sslmode=verify-full&{}", root_param());
    let named = engine(&url_on(&cluster, "localhost", &full))
        .await
        .expect("the common name is the host's");
    assert!(encrypted(&named).await);
    named.close().await;
    let wrong = tls_error(engine(&url_on(&cluster, "127.0.0.1", &full)).await);
    assert!(
        wrong.contains("not valid for the host name `127.0.0.1`"),
        "{wrong}"
    );
}

/// PostgreSQL's documented set-up: a self-signed server certificate
/// (`openssl req -x509`, marked a CA), copied to the client as its root
/// certificate. libpq trusts it under verify-ca and verify-full.
#[tokio::test]
async fn a_self_signed_server_certificate_trusted_as_the_root_is_accepted() {
    let server = gino_testkit::self_signed_server("localhost");
    let cluster = serving(&server);
    let root = FIXTURE.cas.1.write("self-signed.crt", &server.cert_pem);
    let root = format!("sslrootcert={}", root.display());
    for (host, mode) in [
        ("localhost", "verify-full"),
        ("127.0.0.1", "verify-ca"),
        ("127.0.0.1", "require"),
    ] {
        let engine = engine(&url_on(&cluster, host, &format!("sslmode={mode}&{root}")))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(encrypted(&engine).await);
        engine.close().await;
    }
    let wrong = tls_error(
        engine(&url_on(
            &cluster,
            "127.0.0.1",
            &format!("sslmode=verify-full&{root}"),
        ))
        .await,
    );
    assert!(
        wrong.contains("not valid for the host name `127.0.0.1`"),
        "{wrong}"
    );
    // Another root does not vouch for it.
    let stranger = tls_error(
        engine(&url_on(
            &cluster,
            "localhost",
            &format!("sslmode=verify-full&{}", root_param()),
        ))
        .await,
    );
    assert!(
        stranger.contains("self-signed") && stranger.contains("does not hold"),
        "{stranger}"
    );
}
