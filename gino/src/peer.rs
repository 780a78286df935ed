//! libpq's `requirepeer`: the operating-system user the server at the
//! other end of a Unix-domain socket must run as, read from the socket's
//! peer credentials before anything is sent, so that a process that took
//! the socket's path (in a shared `/tmp`, say) gets no password.
//!
//! Uses: `error`.

use std::path::Path;

use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// Where user names are looked up. Accounts that only a directory service
/// (LDAP, say) knows are not in it; the error then says so.
const PASSWD: &str = "/etc/passwd";

/// Checks that the process at the other end of `socket` (at `path`) runs
/// as the user `required`.
pub(crate) fn check(socket: &UnixStream, path: &Path, required: &str) -> Result<()> {
    let server = path.display();
    let uid = socket
        .peer_cred()
        .map_err(|e| {
            Error::Connection(format!(
                "cannot read which user the server at {server} runs as (for requirepeer): {e}"
            ))
        })?
        .uid();
    let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
    match user_name(&passwd, uid) {
        Some(name) if name == required => Ok(()),
        Some(name) => Err(Error::Configuration(format!(
            "the server at {server} runs as the user `{name}`, but requirepeer={required}: \
             another process may have taken the socket's path; connect to the right socket \
             directory, or correct requirepeer"
        ))),
        None => Err(Error::Configuration(format!(
            "the server at {server} runs as uid {uid}, which {PASSWD} does not name, so \
             requirepeer={required} cannot be checked"
        ))),
    }
}

/// The name `passwd` (the text of `/etc/passwd`) gives the user `uid`.
fn user_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then_some(name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_named_by_its_line_of_the_passwd_file() {
        let passwd = "# system users\n\
                      root:x:0:0:root:/root:/bin/bash\n\
                      broken line\n\
                      postgres:x:104:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(user_name(passwd, 0), Some("root"));
        assert_eq!(user_name(passwd, 104), Some("postgres"));
        assert_eq!(user_name(passwd, 110), None, "a group id is no user id");
        assert_eq!(user_name(passwd, 1000), None);
    }
}
