//! What the web examples share: the `User` model, the request bodies, and
//! where the database comes from.
//!
//! The API, the same in every framework's example:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /users?limit=&offset=` | 200, a JSON array of users by id |
//! | `GET /users/{id}` | 200 `{"id": 1, "nickname": "fantix"}`, or 404 |
//! | `POST /users` `{"nickname": "..."}` | 201, the stored user (1 to 200 characters, no NUL), its URL in `Location` |
//! | `PATCH /users/{id}` `{"nickname": "..."}` | 200, the updated user, or 404 |
//! | `DELETE /users/{id}` | 204, or 404 |
//!
//! `HEAD` answers as `GET` without the body. Every error answers in JSON
//! too, `{"error": "..."}`: gino's (404, 503, 500) and the framework's
//! own, with its status and its message (400 for an `{id}` that is not a
//! 32-bit integer or a malformed query, 400 for a body that is no JSON,
//! 422 for JSON of the wrong shape, 413 for a body past 2 MiB, 404 for an
//! unknown path, 405 with `Allow` for a method the path does not take,
//! and 415 for a body not sent as `application/json` or
//! `application/<something>+json`), the same in every framework, made by
//! [`ErrorResponse::body_for`]. Each app stops gracefully on Ctrl-C or
//! SIGTERM, after the requests in flight (given `DB_SHUTDOWN_TIMEOUT`,
//! 30 s, and then dropped), then closes the pool; a signal while it
//! starts (its database not up yet) ends the start. The rocket app takes
//! its database from rocket's configuration (`Rocket.toml`,
//! `ROCKET_DATABASES`) too.

use gino::prelude::*;
use gino::web::{ErrorResponse, Settings};
use gino_testkit::TestDatabase;

/// A user of the examples' API.
#[derive(Model, Debug, Clone, serde::Serialize)]
#[gino(table = "users")]
pub struct User {
    /// Assigned by the database.
    #[gino(primary_key)]
    pub id: i32,
    /// The user's nickname.
    #[gino(default = "noname")]
    pub nickname: String,
}

impl User {
    /// The path of this user's resource, `/users/{id}`: the `Location` of
    /// the 201 that created it (RFC 9110, 15.3.2).
    ///
    /// ```
    /// use gino_examples::users::User;
    /// let user = User { id: 7, nickname: "fantix".into() };
    /// assert_eq!(user.location(), "/users/7");
    /// ```
    pub fn location(&self) -> String {
        format!("/users/{}", self.id)
    }
}

/// The body of `POST /users` and `PATCH /users/{id}`: a JSON object with
/// one field, `nickname`.
///
/// ```
/// use gino_examples::users::NicknameBody;
/// let body: NicknameBody = serde_json::from_str(r#"{"nickname": "fantix"}"#).unwrap();
/// assert_eq!(body.nickname, "fantix");
/// // The fields' values in an array are no object (serde's derive would
/// // take them).
/// assert!(serde_json::from_str::<NicknameBody>(r#"["fantix"]"#).is_err());
/// assert!(serde_json::from_str::<NicknameBody>(r#"{"nickname": "x", "admin": true}"#).is_err());
/// ```
#[derive(Debug)]
pub struct NicknameBody {
    /// The new nickname: 1 to [`NICKNAME_MAX`] characters, none of them
    /// NUL.
    pub nickname: String,
}

/// The fields of a [`NicknameBody`], as serde's derive reads them.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NicknameFields {
    #[serde(deserialize_with = "nickname")]
    nickname: String,
}

impl<'de> serde::Deserialize<'de> for NicknameBody {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = NicknameFields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<NicknameFields, A::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        let NicknameFields { nickname } = from.deserialize_map(Object)?;
        Ok(NicknameBody { nickname })
    }
}

/// The longest nickname the API stores, in characters.
pub const NICKNAME_MAX: usize = 200;

/// A nickname the database can store and the API wants: checked while the
/// body is read, so that each framework answers a bad one as it answers any
/// malformed body (400 or 422), before a query runs. PostgreSQL refuses a
/// NUL in text, which would otherwise end as a 500.
fn nickname<'de, D: serde::Deserializer<'de>>(from: D) -> Result<String, D::Error> {
    use serde::de::Error as _;
    let nickname = <String as serde::Deserialize>::deserialize(from)?;
    let length = nickname.chars().count();
    if length == 0 || length > NICKNAME_MAX {
        return Err(D::Error::custom(format_args!(
            "a nickname of {length} characters, expected 1 to {NICKNAME_MAX}"
        )));
    }
    if nickname.contains('\0') {
        return Err(D::Error::custom(
            "a nickname with a NUL character, which text cannot hold",
        ));
    }
    Ok(nickname)
}

/// `?limit=&offset=` of `GET /users`; negative or non-numeric values are
/// rejected by the frameworks' query extractors with 400.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Page {
    /// At most this many users (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Skip this many first.
    pub offset: Option<u32>,
}

impl Page {
    /// `User`s of this page, by id.
    pub async fn load(&self) -> gino::Result<Vec<User>> {
        User::query()
            .order_by(users::id)
            .limit(i64::from(self.limit.unwrap_or(100).min(1000)))
            .offset(i64::from(self.offset.unwrap_or(0)))
            .gino()
            .all()
            .await
    }
}

/// `DELETE /users/{id}`: one `DELETE` by key, [`gino::Error::NotFound`]
/// (404) when it removed no row. Not a load and then a delete: of two
/// requests deleting one user at once, both would find it and both answer
/// 204.
pub async fn delete_user(id: i32) -> gino::Result<()> {
    let deleted = gino::diesel::delete(users::table.find(id))
        .gino()
        .status()
        .await?;
    if deleted.rows() == 0 {
        return Err(gino::Error::NotFound);
    }
    Ok(())
}

/// The refusal of a body that does not say it is JSON (415).
pub const NOT_JSON: &str = "expected a request with `Content-Type: application/json`";

/// The message of a 400 for an `{id}` that is not a 32-bit integer, where
/// the framework's own would say less.
pub const BAD_ID: &str = "the user id in the path is not a 32-bit integer";

/// The application's database; the models above belong to it.
pub static DB: Gino = Gino::new();

/// The database settings: the `DB_*` variables when any is set (but the
/// tenant example's own `DB_TENANT_*`), otherwise a database of the test
/// server (`DATABASE_URL`, or a throwaway cluster), which lives as long as
/// the returned guard.
pub async fn settings() -> gino::Result<(Settings, Option<TestDatabase>)> {
    // `vars_os`: `vars` panics on a variable that is not UTF-8.
    if std::env::vars_os().any(|(name, _)| {
        let name = name.to_string_lossy();
        name.starts_with("DB_") && !name.starts_with("DB_TENANT_")
    }) {
        return Ok((Settings::from_env()?, None));
    }
    let database = TestDatabase::create().await;
    let mut settings = Settings::default();
    settings.dsn = Some(database.url().to_owned());
    settings.pool_min_size = 1;
    Ok((settings, Some(database)))
}

/// The error body ([`ErrorResponse::body_for`]) of an answer the
/// framework made itself: its message, or the status's `reason` when the
/// message is empty (an unknown path's 404 has no body).
///
/// ```
/// use gino_examples::users::refusal_body;
/// assert_eq!(refusal_body(" bad query\n", Some("Bad Request")), r#"{"error":"bad query"}"#);
/// assert_eq!(refusal_body("", Some("Not Found")), r#"{"error":"Not Found"}"#);
/// ```
pub fn refusal_body(message: &str, reason: Option<&str>) -> String {
    match message.trim() {
        "" => ErrorResponse::body_for(reason.unwrap_or("error")),
        message => ErrorResponse::body_for(message),
    }
}

/// Whether a `Content-Type` value is JSON, whatever its parameters and
/// case: `application/json` or `application/<something>+json` (as axum's
/// `Json` takes it). Every example takes a request body with such a type
/// alone, and an answer already in JSON (gino's, a handler's) passes the
/// examples' rewriting of errors as it is.
///
/// ```
/// use gino_examples::users::is_json;
/// assert!(is_json(b"application/json"));
/// assert!(is_json(b"Application/JSON; charset=utf-8"));
/// assert!(is_json(b"application/merge-patch+json"));
/// assert!(!is_json(b"text/json"));
/// assert!(!is_json(b"application/+json"));
/// assert!(!is_json(b"text/plain; charset=utf-8"));
/// ```
pub fn is_json(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    match essence.strip_prefix(b"application/") {
        Some(b"json") => true,
        Some(subtype) => subtype.len() > b"+json".len() && subtype.ends_with(b"+json"),
        None => false,
    }
}

/// The TCP port from `PORT` (`0`: any free port), 8000 by default; a
/// `PORT` that is no port stops the start, rather than serving elsewhere.
pub fn port() -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(port) => port
            .trim()
            .parse()
            .map_err(|_| format!("PORT={port:?} is no TCP port (0 to 65535)")),
        Err(std::env::VarError::NotPresent) => Ok(8000),
        Err(std::env::VarError::NotUnicode(_)) => Err("PORT is not text".to_owned()),
    }
}

/// Logs through `tracing` at INFO (or as `RUST_LOG` says).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM. Both are caught
/// from this call on, not from the future's first poll: made before the
/// `listening on` line, a signal sent as soon as the line is read stops
/// the server gracefully rather than killing the process.
pub fn stop_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}
