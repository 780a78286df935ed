//! libpq's `require_auth`: the ways of logging in a client lets a server
//! ask for. [`RequireAuth`] is the parsed setting; [`AuthGate`] follows
//! the first messages a server sends on a new connection and judges its
//! first authentication request before the driver (tokio-postgres) reads
//! it, so that a password never goes to a server that asks for it in a way
//! the setting rules out (a cleartext password, say, from a server posing
//! as one that uses SCRAM).
//!
//! Uses: `error`, `framing`.

use std::fmt;

use crate::error::{Error, Result};
use crate::framing::{HeaderReader, body_len};

/// A way a server can have a client log in, as `require_auth` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// No request at all: the server lets the client in (`trust`).
    None,
    /// A cleartext password.
    Password,
    /// An MD5 hash of the password.
    Md5,
    /// Kerberos through GSSAPI.
    Gss,
    /// Windows' SSPI.
    Sspi,
    /// SCRAM-SHA-256 (with or without channel binding).
    ScramSha256,
}

impl Method {
    const ALL: [Method; 6] = [
        Method::None,
        Method::Password,
        Method::Md5,
        Method::Gss,
        Method::Sspi,
        Method::ScramSha256,
    ];

    /// Its name in `require_auth`.
    fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Password => "password",
            Method::Md5 => "md5",
            Method::Gss => "gss",
            Method::Sspi => "sspi",
            Method::ScramSha256 => "scram-sha-256",
        }
    }

    /// What the server did, for an error message.
    fn asked(self) -> &'static str {
        match self {
            Method::None => "let the client in without authentication",
            Method::Password => "asked for a cleartext password",
            Method::Md5 => "asked for an MD5 password hash",
            Method::Gss => "asked for GSSAPI authentication",
            Method::Sspi => "asked for SSPI authentication",
            Method::ScramSha256 => "asked for SCRAM-SHA-256 authentication",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The method of an `AuthenticationRequest` whose code is `code`;
    /// `None` for a code that only continues an exchange under way.
    fn of_request(code: u32) -> Option<Method> {
        match code {
            0 => Some(Method::None),
            3 => Some(Method::Password),
            5 => Some(Method::Md5),
            7 => Some(Method::Gss),
            9 => Some(Method::Sspi),
            10 => Some(Method::ScramSha256),
            _ => None,
        }
    }
}

/// libpq's `require_auth` (`PGREQUIREAUTH`): the methods a server may ask
/// for, given as a list (`scram-sha-256,none`) or as a list of negated
/// methods it may not (`!password,!md5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequireAuth {
    /// One bit per allowed [`Method`].
    allowed: u8,
    /// The setting as given, for messages.
    given: String,
}

impl RequireAuth {
    /// Parses the setting, with libpq's rules: known names only, each once,
    /// all negated or none.
    pub(crate) fn parse(value: &str) -> Result<Self> {
        let invalid = |why: String| {
            Error::Configuration(format!(
                "require_auth `{value}` {why}: give a comma-separated list of none, password, \
                 md5, gss, sspi and scram-sha-256, or of those to refuse, each with a `!` in \
                 front"
            ))
        };
        let mut listed = 0u8;
        let mut negated = None;
        for item in value.split(',') {
            let (negate, name) = match item.strip_prefix('!') {
                Some(name) => (true, name),
                None => (false, item),
            };
            let method = Method::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| invalid(format!("names no method `{item}`")))?;
            if *negated.get_or_insert(negate) != negate {
                return Err(invalid(
                    "mixes methods to allow with methods to refuse".to_owned(),
                ));
            }
            if listed & method.bit() != 0 {
                return Err(invalid(format!("names `{name}` twice")));
            }
            listed |= method.bit();
        }
        let every = Method::ALL.into_iter().fold(0, |bits, m| bits | m.bit());
        Ok(RequireAuth {
            allowed: if negated == Some(true) {
                every & !listed
            } else {
                listed
            },
            given: value.to_owned(),
        })
    }

    /// Whether a server may have the client log in by `method`.
    pub(crate) fn allows(&self, method: Method) -> bool {
        self.allowed & method.bit() != 0
    }

    /// The error for a server at `server` that asked for `method`.
    pub(crate) fn refusal(&self, method: Method, server: &str) -> Error {
        Error::Configuration(format!(
            "the server at {server} {}, which require_auth={} does not allow, so the \
             connection was closed before answering: change the server's method in its \
             pg_hba.conf, or require_auth",
            method.asked(),
            self.given
        ))
    }
}

/// Why a gate closed a connection: the error its socket's read fails with,
/// which [`refused_method`] finds again under the driver's error.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) Method);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server {}, which require_auth does not allow",
            self.0.asked()
        )
    }
}

impl std::error::Error for Refused {}

/// The method a gate refused, if `error` (or an error under it) is its
/// [`Refused`].
pub(crate) fn refused_method(error: &(dyn std::error::Error + 'static)) -> Option<Method> {
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| {
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>())
            .map(|refused| refused.0)
    })
}

/// What an [`AuthGate`] made of the bytes it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No authentication request yet: keep following.
    Undecided,
    /// The server's first request is allowed, or it sent something else
    /// first (an error): nothing more to check on this connection.
    Passed,
    /// The server's first request is not allowed: close the connection
    /// without answering.
    Refused(Method),
}

/// Follows the bytes a server sends on a new connection up to its first
/// `AuthenticationRequest`, and judges it by a [`RequireAuth`].
#[derive(Debug)]
pub(crate) struct AuthGate {
    policy: RequireAuth,
    header: HeaderReader,
    reading: Reading,
}

/// Where in the server's messages an [`AuthGate`] is.
#[derive(Debug)]
enum Reading {
    /// A message header.
    Header,
    /// A `NegotiateProtocolVersion` body: this many bytes to skip.
    Skipped(usize),
    /// An `AuthenticationRequest`'s code: its bytes so far.
    Code(Vec<u8>),
}

impl AuthGate {
    /// A gate that holds a server to `policy`.
    pub(crate) fn new(policy: RequireAuth) -> Self {
        AuthGate {
            policy,
            header: HeaderReader::default(),
            reading: Reading::Header,
        }
    }

    /// Follows `data`, the next bytes from the server.
    pub(crate) fn inspect(&mut self, mut data: &[u8]) -> Verdict {
        while !data.is_empty() {
            match &mut self.reading {
                Reading::Header => {
                    let Some(header) = self.header.take(&mut data) else {
                        return Verdict::Undecided;
                    };
                    self.reading = match header[0] {
                        b'R' => Reading::Code(Vec::with_capacity(4)),
                        // NegotiateProtocolVersion may come first.
                        b'v' => Reading::Skipped(body_len(&header)),
                        _ => return Verdict::Passed,
                    };
                }
                Reading::Skipped(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.reading = Reading::Header;
                    }
                }
                Reading::Code(code) => {
                    let n = (4 - code.len()).min(data.len());
                    code.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if let Ok(&bytes) = <&[u8; 4]>::try_from(code.as_slice()) {
                        return match Method::of_request(u32::from_be_bytes(bytes)) {
                            Some(method) if self.policy.allows(method) => Verdict::Passed,
                            Some(method) => Verdict::Refused(method),
                            // A continuation cannot come first; the driver
                            // refuses it.
                            None => Verdict::Passed,
                        };
                    }
                }
            }
        }
        Verdict::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(code: u32) -> Vec<u8> {
        let mut message = Vec::new();
        crate::framing::write_message(&mut message, b'R', &[&code.to_be_bytes()]);
        message
    }

    #[test]
    fn a_list_allows_what_it_names_and_a_negated_one_all_else() {
        let scram = RequireAuth::parse("scram-sha-256,none").unwrap();
        assert!(scram.allows(Method::ScramSha256) && scram.allows(Method::None));
        assert!(!scram.allows(Method::Password) && !scram.allows(Method::Md5));
        let not_plain = RequireAuth::parse("!password,!md5").unwrap();
        assert!(not_plain.allows(Method::ScramSha256) && not_plain.allows(Method::None));
        assert!(!not_plain.allows(Method::Password) && !not_plain.allows(Method::Md5));
        let not_none = RequireAuth::parse("!none").unwrap();
        assert!(!not_none.allows(Method::None) && not_none.allows(Method::Gss));
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        for (value, why) in [
            ("scram", "names no method `scram`"),
            ("password,", "names no method ``"),
            ("md5,!password", "mixes methods"),
            ("md5,md5", "names `md5` twice"),
            ("!md5,!md5", "names `md5` twice"),
            ("SCRAM-SHA-256", "names no method"),
        ] {
            let Err(Error::Configuration(message)) = RequireAuth::parse(value) else {
                panic!("{value} was taken");
            };
            assert!(message.contains(why), "{value}: {message}");
            assert!(
                message.contains(&format!("require_auth `{value}`")),
                "{message}"
            );
        }
    }

    #[test]
    fn the_first_request_is_judged_however_the_bytes_are_split() {
        let negotiate = {
            let mut message = Vec::new();
            crate::framing::write_message(&mut message, b'v', &[&[0, 0, 0, 0], &[0, 0, 0, 0]]);
            message
        };
        let scram_only = RequireAuth::parse("scram-sha-256").unwrap();
        for (first, verdict) in [
            (request(3), Verdict::Refused(Method::Password)),
            (request(5), Verdict::Refused(Method::Md5)),
            (request(0), Verdict::Refused(Method::None)),
            (request(10), Verdict::Passed),
        ] {
            let stream = [negotiate.clone(), first, request(0)].concat();
            for split in 0..=stream.len() {
                let mut gate = AuthGate::new(scram_only.clone());
                let (a, b) = stream.split_at(split);
                let seen = match gate.inspect(a) {
                    Verdict::Undecided => gate.inspect(b),
                    decided => decided,
                };
                assert_eq!(seen, verdict, "split at {split}");
            }
        }
    }

    #[test]
    fn an_error_before_any_request_passes_through() {
        let mut error = Vec::new();
        crate::framing::write_message(&mut error, b'E', &[b"SFATAL\0C28000\0\0"]);
        let mut gate = AuthGate::new(RequireAuth::parse("none").unwrap());
        assert_eq!(gate.inspect(&error), Verdict::Passed);
    }
}
