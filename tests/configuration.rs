//! Property-based bad input for configuration: arbitrary connection URLs
//! (libpq's parameters and gino's engine options with values of every
//! shape) and arbitrary `DB_*` settings. Each is either taken or refused
//! with a typed error, never a panic, and no message, `Debug` or
//! `Display` ever shows the password. Engines are made with `min_size(0)`,
//! so nothing here connects to a server.

use std::collections::HashMap;

use gino::web::Settings;
use gino::{DatabaseUrl, EngineOptions, Error};
use proptest::prelude::*;

/// The password every generated input carries: a marker no other part of
/// an input can spell, since the other parts are drawn without a `Q`.
const SECRET: &str = "QzQ-s3cr3t";

/// Connection parameters a URL may carry: libpq's, gino's engine
/// options, their aliases, ones gino refuses with a reason, and unknown
/// ones. `sslkeylogfile` is left out: a value taken would create a file.
const KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "options",
    "passfile",
    "service",
    "servicefile",
    "application_name",
    "fallback_application_name",
    "connect_timeout",
    "target_session_attrs",
    "load_balance_hosts",
    "channel_binding",
    "require_auth",
    "requirepeer",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "client_encoding",
    "sslmode",
    "ssl",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslcertmode",
    "sslnegotiation",
    "sslcompression",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "gssencmode",
    "gssdelegation",
    "krbsrvname",
    "requiressl",
    "replication",
    "oauth_issuer",
    "min_size",
    "max_size",
    "pool_min_size",
    "pool_max_size",
    "acquire_timeout",
    "max_inactive_connection_lifetime",
    "echo",
    "statement_timeout",
    "timeout",
    "command_timeout",
    "isolation_level",
    "pool",
    "statement_cache",
    "statement_cache_size",
    "no_such_option",
    "",
];

/// Values of the shapes that parsers trip on: numbers at and past their
/// types' ends, durations with and without units, booleans, modes,
/// lists, escapes (good and bad), paths, unicode and control characters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1e30".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("65536".to_owned()),
        Just("262144".to_owned()),
        Just("1.5".to_owned()),
        Just("500ms".to_owned()),
        Just("2m".to_owned()),
        Just("10 s".to_owned()),
        Just("true".to_owned()),
        Just("off".to_owned()),
        Just("require".to_owned()),
        Just("verify-full".to_owned()),
        Just("latest".to_owned()),
        Just("3.2".to_owned()),
        Just("read-write".to_owned()),
        Just("serializable".to_owned()),
        Just("a,b,,c".to_owned()),
        Just("[::1]".to_owned()),
        Just("/nonexistent/dir/file.pem".to_owned()),
        Just("system".to_owned()),
        Just("%".to_owned()),
        Just("%zz".to_owned()),
        Just("%E2%82".to_owned()),
        Just("%00".to_owned()),
        Just("-c search_path=x".to_owned()),
        "[a-zA-PR-Z0-9 ._:/,=&?#@%+\\-\\[\\]'\"\\\\]{0,24}",
        "[\\PC&&[^Q]]{0,12}",
    ]
}

/// The secret as a URL may hold it: plain, with a malformed escape, with
/// an escaped or a raw reserved character.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SECRET.to_owned()),
        Just(format!("{SECRET}%")),
        Just(format!("{SECRET}%4")),
        Just(format!("p%40{SECRET}")),
        Just(format!("{SECRET}@x")),
        Just(format!("{SECRET}?x")),
    ]
}

/// One piece of a URL (a user name, a host, a path) with anything in it
/// but the characters that would move the pieces around it (a `/` in a
/// user name moves the password into the path, as libpq reads such a URL
/// too, where it is no longer known to be one): `%` escapes, good and
/// bad, included.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9_.\\-]{1,12}",
        "[a-zA-PR-Z0-9%\\[\\].]{0,12}",
        "[\\PC&&[^Q/?@#,:=&]]{0,8}",
    ]
}

/// A connection URL: a scheme (right, wrong or missing), user info with
/// the secret as its password (escaped or not), hosts, ports, a path and
/// a query of known and unknown parameters.
fn url() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("postgres://"),
        Just("postgresql://"),
        Just("postgres:"),
        Just("mysql://"),
        Just(""),
    ];
    let user = (piece(), secret(), any::<u8>()).prop_map(|(user, secret, shape)| match shape % 4 {
        0 => String::new(),
        1 => format!("{user}@"),
        _ => format!("{user}:{secret}@"),
    });
    let hosts =
        prop::collection::vec((piece(), prop::option::of(value())), 0..3).prop_map(|hosts| {
            hosts
                .into_iter()
                .map(|(host, port)| match port {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
                .collect::<Vec<_>>()
                .join(",")
        });
    // Some parameters are the secret, as `password` or `sslpassword`.
    let param = prop_oneof![
        3 => (prop::sample::select(KEYS), value()),
        1 => (prop::sample::select(&["password", "sslpassword"][..]), secret()),
    ];
    let query = prop::collection::vec(param, 0..5);
    (scheme, user, hosts, piece(), query, any::<bool>()).prop_map(
        |(scheme, user, hosts, path, query, slash)| {
            let mut url = format!("{scheme}{user}{hosts}");
            if slash || !path.is_empty() {
                url.push('/');
                url.push_str(&path);
            }
            for (at, (key, value)) in query.iter().enumerate() {
                url.push(if at == 0 { '?' } else { '&' });
                url.push_str(&format!("{key}={value}"));
            }
            url
        },
    )
}

fn assert_secret_kept(shown: &str, what: &str, input: &str) {
    assert!(
        !shown.contains(SECRET),
        "{what} shows the password: {shown}\n(input: {input})"
    );
}

/// A refusal as configuration should be refused: typed, and without the
/// password.
fn assert_refused(error: &Error, what: &str, input: &str) {
    assert!(
        matches!(error, Error::Configuration(_)),
        "{what} is not a configuration error: {error:?} (input: {input})"
    );
    assert_secret_kept(&error.to_string(), what, input);
}

/// What settings that were taken give: checked, an engine or a refusal.
fn use_settings(settings: &Settings, input: &str) {
    assert_secret_kept(&format!("{settings:?}"), "Settings' Debug", input);
    match settings.validate().and_then(|()| settings.engine_options()) {
        Ok(options) => make_engine(&settings.url(), options),
        Err(e) => assert_refused(&e, "the settings' check", input),
    }
}

/// A JSON value of any shape a config file may give a setting.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0.5), Just(-1.0), Just(1e30), Just(f64::MAX)].prop_map(|f| json!(f)),
        value().prop_map(Value::from),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..3).prop_map(Value::from),
        1 => prop::collection::hash_map(value(), scalar, 0..3)
            .prop_map(|map| Value::Object(map.into_iter().collect())),
    ]
}

/// Runs `future` to its end on a runtime of its own (proptest's cases are
/// synchronous).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// What making an engine from `url` gives, checked: a typed error that
/// keeps the password, or an engine, closed at once. Nothing connects
/// with `min_size(0)`.
fn make_engine(url: &str, options: EngineOptions) {
    block_on(async {
        match gino::create_engine(url, options.min_size(0)).await {
            Ok(engine) => engine.close().await,
            Err(e) => {
                assert_secret_kept(&e.to_string(), "create_engine's error", url);
                assert_secret_kept(&format!("{e:?}"), "create_engine's error (Debug)", url);
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn any_url_is_taken_or_refused_with_a_typed_error(url in url()) {
        match url.parse::<DatabaseUrl>() {
            Ok(parsed) => {
                assert_secret_kept(&parsed.to_string(), "DatabaseUrl's Display", &url);
                assert_secret_kept(&format!("{parsed:?}"), "DatabaseUrl's Debug", &url);
                make_engine(&url, EngineOptions::new());
            }
            Err(e) => assert_refused(&e, "the parse error", &url),
        }
    }

    #[test]
    fn any_engine_option_set_by_name_is_taken_or_refused(
        pairs in prop::collection::vec((prop::sample::select(KEYS), value()), 1..6)
    ) {
        let mut options = EngineOptions::new();
        for (key, value) in &pairs {
            match options.clone().set(key, value) {
                Ok(next) => options = next,
                Err(e) => assert_refused(&e, "set's error", &format!("{key}={value}")),
            }
        }
        make_engine("postgres://gino@localhost/gino", options);
    }

    #[test]
    fn any_db_settings_are_taken_or_refused_and_keep_the_password(
        vars in prop::collection::hash_map(
            prop::sample::select(&[
                "DB_DSN", "DB_HOST", "DB_PORT", "DB_USER", "DB_DATABASE",
                "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE", "DB_ECHO", "DB_SSL",
                "DB_SSL_ROOT_CERT", "DB_USE_CONNECTION_FOR_REQUEST",
                "DB_RETRY_LIMIT", "DB_RETRY_INTERVAL", "DB_ACQUIRE_TIMEOUT",
                "DB_STATEMENT_TIMEOUT", "DB_MAX_INACTIVE_CONNECTION_LIFETIME",
                "DB_STATEMENT_CACHE", "DB_SHUTDOWN_TIMEOUT", "DB_REPLICA_DSNS",
                "DB_KWARGS",
            ][..]),
            value(),
            0..6,
        ),
        dsn in prop::option::of(url()),
        // Commas separate replicas where a scheme follows them.
        replicas in prop::option::of(prop::collection::vec(
            url().prop_filter("a scheme", |url| url.contains("://")),
            1..3,
        )),
        password in prop_oneof![Just(SECRET.to_owned()), Just(format!("{SECRET} %zz:@/"))],
    ) {
        let mut vars: HashMap<&str, String> = vars;
        vars.insert("DB_PASSWORD", password);
        if let Some(dsn) = dsn {
            vars.insert("DB_DSN", dsn);
        }
        if let Some(replicas) = replicas {
            vars.insert("DB_REPLICA_DSNS", replicas.join(","));
        }
        let input = format!("{vars:?}");
        match Settings::from_lookup(|name| vars.get(name).cloned()) {
            Ok(settings) => use_settings(&settings, &input),
            Err(e) => assert_refused(&e, "the settings' error", &input),
        }
    }

    #[test]
    fn any_settings_file_is_taken_or_refused_and_keeps_the_password(
        fields in prop::collection::hash_map(
            prop::sample::select(Settings::KEYS),
            json_value(),
            0..6,
        ),
        dsn in prop::option::of(url()),
        replicas in prop::option::of(prop::collection::vec(url(), 0..3)),
        password in prop_oneof![
            Just(serde_json::Value::from(SECRET)),
            Just(serde_json::json!([SECRET])),
            Just(serde_json::json!({ "key": SECRET })),
        ],
    ) {
        let mut object: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        object.insert("password".to_owned(), password);
        if let Some(dsn) = dsn {
            object.insert("dsn".to_owned(), dsn.into());
        }
        if let Some(replicas) = replicas {
            object.insert("replica_dsns".to_owned(), replicas.into());
        }
        let input = serde_json::Value::Object(object).to_string();
        match serde_json::from_str::<Settings>(&input) {
            Ok(settings) => use_settings(&settings, &input),
            Err(e) => assert_secret_kept(&e.to_string(), "serde's error", &input),
        }
    }
}
