//! Channel binding (libpq's `channel_binding`, SCRAM-SHA-256-PLUS): the
//! hash of the server's certificate that ties a password login to the TLS
//! session it travels in, so that a man in the middle holding another
//! certificate cannot relay the login.
//!
//! gino negotiates TLS itself (see `wire`), so tokio-postgres, which runs
//! the login, gets a socket that is encrypted already and would see no
//! certificate. It is given [`Binding`] as its TLS connector instead: a
//! connector that does no handshake (tokio-postgres is told the TLS
//! session starts at once, as with PostgreSQL 17's direct TLS, so it sends
//! nothing either) and hands over the socket as it is, with the
//! certificate's hash for the login to bind to. A cancel request keeps the
//! connection's settings, so it goes through `Binding` too.
//!
//! Uses: `x509` (the certificate's signature algorithm).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// tokio-postgres's TLS connector for a socket gino has encrypted (or not):
/// it wraps the socket with the binding data of its session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Binding {
    /// `tls-server-end-point` (RFC 5929): the server certificate's hash.
    end_point: Option<Vec<u8>>,
}

impl Binding {
    /// The binding of a session whose server presented `certificate` (DER):
    /// none when its signature algorithm names no hash PostgreSQL can
    /// bind to (Ed25519, say), as PostgreSQL then offers no binding.
    #[cfg(feature = "tls")]
    pub(crate) fn of_certificate(certificate: &[u8]) -> Self {
        Binding {
            end_point: end_point(certificate),
        }
    }

    /// Adjusts `pg` so that tokio-postgres takes a socket already
    /// encrypted as a TLS session that starts at once.
    pub(crate) fn prepare(pg: &mut tokio_postgres::Config) {
        use tokio_postgres::config::{SslMode, SslNegotiation};
        pg.ssl_mode(SslMode::Require)
            .ssl_negotiation(SslNegotiation::Direct);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsConnect<S> for Binding {
    type Stream = Bound<S>;
    type Error = Infallible;
    type Future = Ready<Result<Bound<S>, Infallible>>;

    fn connect(self, socket: S) -> Self::Future {
        ready(Ok(Bound {
            socket,
            end_point: self.end_point,
        }))
    }
}

/// A socket with the binding data of its TLS session.
pub(crate) struct Bound<S> {
    socket: S,
    end_point: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Bound<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.end_point {
            Some(hash) => ChannelBinding::tls_server_end_point(hash.clone()),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// `tls-server-end-point`: the certificate hashed with the hash of its
/// signature algorithm, SHA-256 in place of MD5 and SHA-1 (RFC 5929,
/// section 4.1).
#[cfg(feature = "tls")]
fn end_point(certificate: &[u8]) -> Option<Vec<u8>> {
    use ring::digest;
    let hash = match crate::x509::signature_algorithm(certificate)? {
        // sha256/md5/sha1 with RSA; ecdsa with sha256/sha1; dsa with sha1/sha256
        [
            0x2a,
            0x86,
            0x48,
            0x86,
            0xf7,
            0x0d,
            0x01,
            0x01,
            0x04 | 0x05 | 0x0b,
        ]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        | [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03]
        | [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02] => &digest::SHA256,
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => &digest::SHA384,
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04] => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(hash, certificate).as_ref().to_vec())
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    /// A certificate's outline: the three fields, with `oid` as its
    /// signature algorithm, `tbs` long (long form lengths past 127).
    fn certificate(oid: &[u8], tbs: usize) -> Vec<u8> {
        fn element(tag: u8, contents: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            match contents.len() {
                n @ 0..0x80 => out.push(n as u8),
                n => {
                    out.extend([0x82, (n >> 8) as u8, n as u8]);
                }
            }
            out.extend(contents);
            out
        }
        let tbs = element(0x30, &vec![0x02; tbs]);
        let algorithm = element(0x30, &[element(0x06, oid), vec![0x05, 0x00]].concat());
        let signature = element(0x03, &[0x00, 0x01]);
        element(0x30, &[tbs, algorithm, signature].concat())
    }

    #[test]
    fn the_hash_follows_the_signature_algorithm() {
        let sha256_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        let sha384_ecdsa = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let sha1_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        let ed25519 = [0x2b, 0x65, 0x70];
        for tbs in [10, 300] {
            let len = |oid: &[u8]| end_point(&certificate(oid, tbs)).map(|h| h.len());
            assert_eq!(len(&sha256_rsa), Some(32));
            assert_eq!(len(&sha384_ecdsa), Some(48));
            assert_eq!(len(&sha1_rsa), Some(32), "SHA-1 is bound with SHA-256");
            assert_eq!(
                len(&ed25519),
                None,
                "PostgreSQL binds no Ed25519 certificate"
            );
        }
        let cert = certificate(&sha256_rsa, 10);
        let expected = ring::digest::digest(&ring::digest::SHA256, &cert);
        assert_eq!(end_point(&cert).unwrap(), expected.as_ref());
    }

    #[test]
    fn a_malformed_certificate_has_no_binding() {
        let cert = certificate(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], 10);
        for cut in 0..cert.len() - 4 {
            assert_eq!(end_point(&cert[..cut]), None, "cut at {cut}");
        }
        assert_eq!(end_point(&[0x31, 0x00]), None);
    }
}
