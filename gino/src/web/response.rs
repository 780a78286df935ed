//! How a gino error answers an HTTP request, the same in every framework:
//! 404 for a missing row (`get_or_404`, or a row gone before its update)
//! or an unknown tenant, 503 with `Retry-After` when no connection came
//! in time, a statement's timeout ran out (waiting for a connection
//! included) or the database cannot be reached, and an opaque 500 for
//! everything else, whose detail goes to the log, never to the client.

use crate::error::Error;

/// The HTTP answer to a gino error: status, `Retry-After`, and a JSON body
/// that says nothing about SQL, parameters or the schema; the detail goes to
/// the log ([`report`](Self::report)): at `error` level for a 500 and for
/// an unreachable database, `warn` for a busy pool, `debug` for a 404.
///
/// The 503s are the errors [`Error::is_connection_lost`] names (the server
/// is down, restarting, or dropped the connection; `53300` too many
/// connections too) besides a busy or closed pool and a statement's
/// timeout ([`Error::QueryTimeout`], which also ends a wait for a busy
/// pool that the acquire timeout would not have ended yet): the server,
/// not the request, is at fault, and a later try may succeed, as with
/// rocket_db_pools' connection guard. A statement cut off by a lost
/// connection outside a transaction may have run, so a client should
/// retry only work that is safe to repeat, as after any 5xx.
///
/// ```
/// use gino::web::ErrorResponse;
/// let answer = ErrorResponse::new(&gino::Error::NotFound);
/// assert_eq!(answer.status(), 404);
/// assert_eq!(answer.body(), r#"{"error":"not found"}"#);
///
/// let busy = ErrorResponse::new(&gino::Error::PoolTimeout(std::time::Duration::from_secs(5)));
/// assert_eq!((busy.status(), busy.retry_after()), (503, Some(1)));
///
/// let down = ErrorResponse::new(&gino::Error::Connection("connection refused".into()));
/// assert_eq!((down.status(), down.retry_after()), (503, Some(1)));
/// assert_eq!(down.body(), r#"{"error":"the database is unavailable; try again shortly"}"#);
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
            Error::QueryTimeout(_) => ErrorResponse {
                status: 503,
                message: "the database did not answer in time; try again shortly",
                retry_after: Some(1),
            },
            error if unreachable(error) => UNAVAILABLE,
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
            // Operators need to hear of a database that is down; a busy
            // pool under a burst is routine.
            503 if answer == UNAVAILABLE => {
                tracing::error!(target: "gino::web", "answering 503, the database is unavailable: {error}")
            }
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

/// The answer when the database cannot be reached.
const UNAVAILABLE: ErrorResponse = ErrorResponse {
    status: 503,
    message: "the database is unavailable; try again shortly",
    retry_after: Some(1),
};

/// Whether `error` says the database cannot be reached or cannot take the
/// request now (rather than that the request's work is at fault).
fn unreachable(error: &Error) -> bool {
    error.is_connection_lost() || error.sqlstate() == Some("53300")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DatabaseError;

    fn server_error(code: &str) -> Error {
        Error::Database(Box::new(DatabaseError::refused(code, "from the server")))
    }

    #[test]
    fn a_database_that_cannot_take_the_request_answers_503() {
        let lost = Error::NotSent(Box::new(Error::Connection("reset".to_owned())));
        // terminated backend, crash, starting up, connection exception,
        // too many connections
        let codes = ["57P01", "57P02", "57P03", "08006", "53300"];
        for error in codes.map(server_error).into_iter().chain([lost]) {
            let answer = ErrorResponse::new(&error);
            assert_eq!(
                (answer.status(), answer.retry_after()),
                (503, Some(1)),
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_statement_out_of_time_answers_503() {
        // Its deadline may have ended a wait for a busy pool as well.
        let late = ErrorResponse::new(&Error::QueryTimeout(std::time::Duration::from_secs(2)));
        assert_eq!((late.status(), late.retry_after()), (503, Some(1)));
        assert_eq!(
            late.body(),
            r#"{"error":"the database did not answer in time; try again shortly"}"#
        );
    }

    #[test]
    fn a_failing_statement_answers_an_opaque_500() {
        for code in ["22012", "23505", "42P01", "57014", "40001"] {
            let answer = ErrorResponse::new(&server_error(code));
            assert_eq!(
                (answer.status(), answer.retry_after()),
                (500, None),
                "{code}"
            );
            assert_eq!(answer.body(), r#"{"error":"internal server error"}"#);
        }
        let tls = ErrorResponse::new(&Error::Tls("certificate expired".to_owned()));
        assert_eq!(tls.status(), 500, "a TLS failure is the app's set-up");
    }
}
