//! How a gino error answers an HTTP request, the same in every framework:
//! 404 for a missing row (`get_or_404`, or a row gone before its update)
//! or an unknown tenant, 503 with `Retry-After` when no connection came
//! in time, and an opaque 500 for everything else, whose detail goes to the
//! log, never to the client.

use crate::error::Error;

/// The HTTP answer to a gino error: status, `Retry-After`, and a JSON body
/// that says nothing about SQL, parameters or the schema; the detail goes to
/// the log ([`report`](Self::report)): at `error` level for a 500, `warn`
/// for a 503, `debug` for a 404.
///
/// ```
/// use gino::web::ErrorResponse;
/// let answer = ErrorResponse::new(&gino::Error::NotFound);
/// assert_eq!(answer.status(), 404);
/// assert_eq!(answer.body(), r#"{"error":"not found"}"#);
///
/// let busy = ErrorResponse::new(&gino::Error::PoolTimeout(std::time::Duration::from_secs(5)));
/// assert_eq!((busy.status(), busy.retry_after()), (503, Some(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorResponse {
    status: u16,
    message: &'static str,
    retry_after: Option<u32>,
}

impl ErrorResponse {
    /// The answer to `error`.
    ///
    /// ```
    /// let answer = gino::web::ErrorResponse::new(&gino::Error::NotFound);
    /// assert_eq!(answer.status(), 404);
    /// ```
    pub fn new(error: &Error) -> Self {
        match error {
            Error::NotFound | Error::NoSuchRow => ErrorResponse {
                status: 404,
                message: "not found",
                retry_after: None,
            },
            Error::UnknownTenant(_) => ErrorResponse {
                status: 404,
                message: "unknown tenant",
                retry_after: None,
            },
            Error::PoolTimeout(_) | Error::PoolClosed => ErrorResponse {
                status: 503,
                message: "the database is busy; try again shortly",
                retry_after: Some(1),
            },
            _ => ErrorResponse {
                status: 500,
                message: "internal server error",
                retry_after: None,
            },
        }
    }

    /// [`new`](Self::new), logging the error's detail through `tracing`
    /// (target `gino::web`): what a response made from an error should do
    /// once.
    ///
    /// ```
    /// let answer = gino::web::ErrorResponse::report(&gino::Error::Uninitialized);
    /// assert_eq!(answer.status(), 500); // and the detail is in the log
    /// ```
    pub fn report(error: &Error) -> Self {
        let answer = ErrorResponse::new(error);
        match answer.status {
            500 => tracing::error!(target: "gino::web", "request failed: {error}"),
            503 => tracing::warn!(target: "gino::web", "answering 503: {error}"),
            _ => tracing::debug!(target: "gino::web", "answering {}: {error}", answer.status),
        }
        answer
    }

    /// The HTTP status code.
    ///
    /// ```
    /// let answer = gino::web::ErrorResponse::new(&gino::Error::MultipleResultsFound);
    /// assert_eq!(answer.status(), 500);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Seconds for a `Retry-After` header, when the client should retry.
    ///
    /// ```
    /// let answer = gino::web::ErrorResponse::new(&gino::Error::PoolClosed);
    /// assert_eq!(answer.retry_after(), Some(1));
    /// ```
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    /// The JSON body, `{"error": "..."}`.
    ///
    /// ```
    /// let answer = gino::web::ErrorResponse::new(&gino::Error::Uninitialized);
    /// assert_eq!(answer.body(), r#"{"error":"internal server error"}"#);
    /// ```
    pub fn body(&self) -> String {
        ErrorResponse::body_for(self.message)
    }

    /// An error body of this shape, `{"error": message}`, for the errors an
    /// app or its framework answers itself (a malformed request body, an
    /// unknown path), so that every error of the app reads alike.
    ///
    /// ```
    /// use gino::web::ErrorResponse;
    /// let body = ErrorResponse::body_for(r#"missing field "nickname""#);
    /// assert_eq!(body, r#"{"error":"missing field \"nickname\""}"#);
    /// ```
    pub fn body_for(message: &str) -> String {
        serde_json::json!({ "error": message }).to_string()
    }

    /// The body's media type, `application/json`.
    pub const CONTENT_TYPE: &'static str = "application/json";
}
