//! TLS for connections: a rustls client configuration built from libpq's
//! settings (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslcertmode`...), the handshake, and errors that say which check
//! failed and what to set.
//!
//! Only the handshake lives here; negotiating it on the PostgreSQL
//! protocol (`SSLRequest`) is `wire`'s job, which keeps reading the
//! plaintext protocol above the TLS layer.
//!
//! Uses: `config` (the settings), `error`, `sync`, `x509` (what webpki does
//! not read of a certificate).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{KeyPassword, SslMode, SslRootCert, TlsSettings, TlsVersion};
use crate::error::{Error, Result};

/// The TLS side of an engine's connections, built once per engine.
pub(crate) struct Tls {
    connector: TlsConnector,
    /// `sslcertmode=require`: each handshake copies the connector's
    /// configuration to see whether the server asks for the certificate.
    must_be_asked: bool,
    mode: SslMode,
    /// How the roots were configured, for error messages.
    roots: Option<SslRootCert>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// The client's certificate, handed over as the configuration's own
/// resolver would, noting that the server asked for one
/// (`sslcertmode=require`).
#[derive(Debug)]
struct NoteAsked {
    inner: Arc<dyn ResolvesClientCert>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for NoteAsked {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, schemes)
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// The client's private key (`sslkey`): a PEM file with a PKCS#8, PKCS#1
/// or SEC1 key, or with an encrypted PKCS#8 key (`BEGIN ENCRYPTED PRIVATE
/// KEY`, what `openssl genpkey -aes256` writes), which `sslpassword`
/// decrypts. libpq would ask for the passphrase on the terminal; a server
/// has none, so a missing one is an error saying what to set.
/// libpq's rule for a client key: readable by its owner only (0600), or
/// by root's group too when root owns it (0640), since a key others can
/// read is no longer the client's alone.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(metadata) = std::fs::metadata(path) else {
            // Reading it says what is wrong.
            return Ok(());
        };
        let mode = metadata.permissions().mode();
        let by_root = metadata.uid() == 0;
        let open_to_others = mode & if by_root { 0o037 } else { 0o077 };
        if open_to_others != 0 {
            return Err(Error::Configuration(format!(
                "the client key sslkey={} has group or world access: make it readable by its \
                 owner only (chmod 600), or by root's group too when root owns it (chmod 640)",
                path.display()
            )));
        }
    }
    Ok(())
}

fn load_key(path: &Path, password: Option<&KeyPassword>) -> Result<PrivateKeyDer<'static>> {
    const ENCRYPTED: (&str, &str) = (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        "-----END ENCRYPTED PRIVATE KEY-----",
    );
    let shown = path.display();
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Configuration(format!("cannot read the client key sslkey={shown}: {e}"))
    })?;
    let Some(start) = text.find(ENCRYPTED.0) else {
        if text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(Error::Configuration(format!(
                "the client key sslkey={shown} is encrypted in OpenSSL's traditional format, \
                 which gino cannot read: convert it to encrypted PKCS#8 with `openssl pkcs8 \
                 -topk8 -v2 aes-256-cbc -in <old> -out <new>`"
            )));
        }
        return PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| {
            Error::Configuration(format!(
                "cannot read the client key sslkey={shown}: {e}: give a PEM file with a \
                 PKCS#8, PKCS#1 or SEC1 private key"
            ))
        });
    };
    let Some(password) = password else {
        return Err(Error::Configuration(format!(
            "the client key sslkey={shown} is encrypted: give its passphrase as sslpassword"
        )));
    };
    let end = text[start..]
        .find(ENCRYPTED.1)
        .map(|end| start + end + ENCRYPTED.1.len());
    let malformed = |e: &dyn fmt::Display| {
        Error::Configuration(format!(
            "the encrypted client key sslkey={shown} is malformed: {e}"
        ))
    };
    let pem = &text[start..end.ok_or_else(|| malformed(&"its END line is missing"))?];
    let (_, der) = pkcs8::Document::from_pem(pem).map_err(|e| malformed(&e))?;
    let encrypted =
        pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| malformed(&e))?;
    let key = encrypted.decrypt(password.0.as_bytes()).map_err(|e| {
        Error::Configuration(format!(
            "cannot decrypt the client key sslkey={shown} with sslpassword ({e}): is the \
             passphrase right?"
        ))
    })?;
    Ok(PrivateKeyDer::Pkcs8(key.as_bytes().to_vec().into()))
}

/// libpq's `sslkeylogfile`: every session's secrets, appended to a file
/// in the NSS key log format that Wireshark reads. Opened when the engine
/// is made, so that a path that cannot be written is an error then.
struct KeyLogFile {
    path: std::path::PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

impl KeyLogFile {
    fn open(path: &Path) -> Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        // The secrets decrypt the traffic: only the owner reads them, as
        // with libpq's file.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| {
            Error::Configuration(format!(
                "cannot open sslkeylogfile={} for appending: {e}",
                path.display()
            ))
        })?;
        tracing::warn!(
            target: "gino",
            "sslkeylogfile: the TLS secrets of this engine's connections go to {}, which \
             decrypts their traffic for whoever reads it",
            path.display()
        );
        Ok(KeyLogFile {
            path: path.to_owned(),
            file: std::sync::Mutex::new(file),
        })
    }
}

impl fmt::Debug for KeyLogFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLogFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        use std::fmt::Write as _;
        let mut line = label.to_owned();
        for part in [client_random, secret] {
            line.push(' ');
            for byte in part {
                let _ = write!(line, "{byte:02x}");
            }
        }
        line.push('\n');
        // One write per line, so that lines of concurrent handshakes do
        // not interleave.
        let written =
            std::io::Write::write_all(&mut *crate::sync::lock(&self.file), line.as_bytes());
        if let Err(e) = written {
            tracing::warn!(
                target: "gino",
                "cannot append to sslkeylogfile={}: {e}",
                self.path.display()
            );
        }
    }
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing (libpq's `require` and `prefer` without a root certificate).
    Nothing,
    /// The chain up to a trusted root, not the host name (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

impl Tls {
    /// The TLS configuration for `settings`; `None` for `sslmode=disable`.
    /// Certificate and key files are read now, so a missing or malformed
    /// one is an error when the engine is created, not at first use.
    pub(crate) fn new(settings: &TlsSettings) -> Result<Option<Tls>> {
        if settings.mode == SslMode::Disable {
            return Ok(None);
        }
        // The provider goes into this configuration only, not into rustls'
        // process-wide default, which stays the application's choice.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &settings.root_cert {
            Some(root) => Some(load_roots(root)?),
            None => None,
        };
        let check = match (settings.mode, &roots) {
            (SslMode::VerifyFull, Some(_)) => Check::Full,
            // libpq checks the chain whenever a root certificate is there,
            // so `require` with one behaves as `verify-ca`.
            (_, Some(_)) => Check::Chain,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                let looked_at = settings
                    .default_root_cert
                    .as_ref()
                    .map(|p| format!(" (looked for {})", p.display()))
                    .unwrap_or_default();
                return Err(Error::Configuration(format!(
                    "sslmode={} checks the server's certificate, but no root certificate is \
                     configured{looked_at}: set sslrootcert to the CA's PEM file, or \
                     sslrootcert=system for the operating system's trusted roots, or use \
                     sslmode=require to encrypt without checking",
                    settings.mode
                )));
            }
            (_, None) => Check::Nothing,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (check, roots) {
            (Check::Nothing, _) | (_, None) => Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }),
            (check, Some((roots, root_certificates))) => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .with_crls(load_crls(settings)?)
                        .build()
                        .map_err(|e| match e {
                            rustls::client::VerifierBuilderError::InvalidCrl(e) => {
                                Error::Configuration(format!(
                                    "a file of sslcrl/sslcrldir is not a certificate \
                                     revocation list (PEM or DER): {e:?}"
                                ))
                            }
                            e => Error::Configuration(format!(
                                "cannot use the root certificates of sslrootcert={}: {e}",
                                describe_roots(&settings.root_cert)
                            )),
                        })?;
                Arc::new(ChainVerifier {
                    webpki,
                    roots: root_certificates,
                    check_name: check == Check::Full,
                })
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&protocol_versions(settings.versions)?)
            .map_err(|e| Error::Configuration(format!("cannot configure TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let chain = load_certificates(cert, "sslcert")?;
                let key = load_key(key, settings.key_password.as_ref())?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::Configuration(format!(
                        "the client certificate sslcert={} does not go with the key \
                         sslkey: {e}",
                        cert.display()
                    ))
                })?
            }
            (Some(cert), None) => {
                return Err(Error::Configuration(format!(
                    "sslcert={} has no key: set sslkey to its private key's PEM file",
                    cert.display()
                )));
            }
            (None, _) => builder.with_no_client_auth(),
        };
        config.enable_sni = settings.sni;
        if let Some(path) = &settings.key_log {
            config.key_log = Arc::new(KeyLogFile::open(path)?);
        }
        Ok(Some(Tls {
            must_be_asked: settings.require_client_cert,
            connector: TlsConnector::from(Arc::new(config)),
            mode: settings.mode,
            roots: settings.root_cert.clone(),
        }))
    }

    pub(crate) fn mode(&self) -> SslMode {
        self.mode
    }

    /// `sslcertmode=require`: the server must ask for the client's
    /// certificate, which it can only do in a TLS session.
    pub(crate) fn must_be_asked(&self) -> bool {
        self.must_be_asked
    }

    /// Runs the TLS handshake on `socket`, which the server agreed to
    /// encrypt; `host` is the name the certificate must carry under
    /// `verify-full`.
    pub(crate) async fn handshake(
        &self,
        socket: TcpStream,
        host: &str,
    ) -> Result<Box<TlsStream<TcpStream>>> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            Error::Configuration(format!(
                "`{host}` is not a host name or IP address TLS can check a certificate against"
            ))
        })?;
        let (connector, asked) = if self.must_be_asked {
            let config = self.connector.config();
            let asked = Arc::new(AtomicBool::new(false));
            let mut watched = (**config).clone();
            watched.client_auth_cert_resolver = Arc::new(NoteAsked {
                inner: config.client_auth_cert_resolver.clone(),
                asked: asked.clone(),
            });
            (TlsConnector::from(Arc::new(watched)), Some(asked))
        } else {
            (self.connector.clone(), None)
        };
        let stream = connector
            .connect(name, socket)
            .await
            .map_err(|e| self.explain(&e, host))?;
        if asked.is_some_and(|asked| !asked.load(Ordering::Relaxed)) {
            return Err(Error::Tls(format!(
                "TLS with {host}: the server did not ask for a client certificate, which \
                 sslcertmode=require demands: have the server ask for one (ssl_ca_file in its \
                 postgresql.conf), or use sslcertmode=allow"
            )));
        }
        Ok(Box::new(stream))
    }

    /// The error for a failed handshake: which check failed, and what to
    /// set.
    pub(crate) fn explain(&self, error: &std::io::Error, host: &str) -> Error {
        let roots = describe_roots(&self.roots);
        let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            return Error::Connection(format!("TLS handshake with {host} failed: {error}"));
        };
        let what = match tls {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => format!(
                    "the server's certificate is not signed by a root of sslrootcert={roots}: set \
                     sslrootcert to the CA certificate that signed the server's certificate"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the server's certificate is not valid for the host name `{host}` \
                     (sslmode=verify-full checks it): connect with a name the certificate \
                     lists, or use sslmode=verify-ca to check the chain only"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired: renew it on the server".to_owned()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet: check the clocks of client and \
                     server"
                        .to_owned()
                }
                CertificateError::BadSignature => {
                    "the server's certificate chain has a bad signature".to_owned()
                }
                CertificateError::Revoked => "the server's certificate is revoked by a \
                    revocation list of sslcrl/sslcrldir: the server needs a new certificate"
                    .to_owned(),
                CertificateError::UnknownRevocationStatus => "sslcrl/sslcrldir hold no \
                    revocation list of the authority that issued the server's certificate: add \
                    that authority's list, as every certificate of the chain is checked"
                    .to_owned(),
                // webpki's `CaUsedAsEndEntity`, which rustls passes on only
                // as an opaque error: a self-signed certificate (marked a
                // CA) that is not one of the roots.
                CertificateError::Other(other)
                    if format!("{other:?}").contains("CaUsedAsEndEntity") =>
                {
                    format!(
                        "the server's certificate is a self-signed (CA) certificate that \
                         sslrootcert={roots} does not hold: set sslrootcert to that certificate \
                         to trust it"
                    )
                }
                other => format!("the server's certificate was refused: {other:?}"),
            },
            rustls::Error::AlertReceived(alert) => format!(
                "the server ended the handshake ({alert:?}); if it asks for a client \
                 certificate, set sslcert and sslkey to one its CA signed"
            ),
            other => other.to_string(),
        };
        Error::Tls(format!("TLS with {host}: {what}"))
    }
}

fn describe_roots(roots: &Option<SslRootCert>) -> String {
    match roots {
        Some(root) => root.to_string(),
        None => "(none)".to_owned(),
    }
}

fn load_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Configuration(format!(
                "cannot read the certificates of {what}={}: {e}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(Error::Configuration(format!(
            "{what}={} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The revocation lists of `sslcrl` (a file) and `sslcrldir` (the files
/// of a directory), each PEM or DER.
fn load_crls(settings: &TlsSettings) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let mut files = Vec::new();
    files.extend(settings.crl.iter().map(|path| ("sslcrl", path.clone())));
    if let Some(dir) = &settings.crl_dir {
        let unreadable = |e: std::io::Error| {
            Error::Configuration(format!("cannot read sslcrldir={}: {e}", dir.display()))
        };
        let mut entries = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(unreadable)?;
        entries.sort();
        files.extend(
            entries
                .into_iter()
                .filter(|p| p.is_file())
                .map(|p| ("sslcrldir", p)),
        );
    }
    let mut crls = Vec::new();
    for (what, path) in files {
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::Configuration(format!("cannot read {what} file {}: {e}", path.display()))
        })?;
        let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::Configuration(format!(
                    "{what} file {} is not a certificate revocation list (PEM or DER): {e}",
                    path.display()
                ))
            })?;
        if pem.is_empty() {
            // DER: checked when the verifier is built.
            crls.push(CertificateRevocationListDer::from(bytes));
        } else {
            crls.extend(pem);
        }
    }
    Ok(crls)
}

/// The trusted roots of `root`, as a store and as the certificates.
fn load_roots(root: &SslRootCert) -> Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut store = RootCertStore::empty();
    let certificates = match root {
        SslRootCert::File(path) => {
            let certificates = load_certificates(path, "sslrootcert")?;
            for cert in certificates.iter().cloned() {
                store.add(cert).map_err(|e| {
                    Error::Configuration(format!(
                        "sslrootcert={} holds a certificate that cannot be a root: {e}",
                        path.display()
                    ))
                })?;
            }
            certificates
        }
        SslRootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs.iter().cloned());
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(Error::Configuration(format!(
                    "sslrootcert=system found no trusted root certificates on this system{why}: \
                     install the CA bundle (Debian: ca-certificates) or point sslrootcert at a \
                     PEM file"
                )));
            }
            found.certs
        }
    };
    Ok((store, certificates))
}

/// Checks the chain against the roots, and the host name unless told not
/// to (`verify-ca`).
#[derive(Debug)]
struct ChainVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The roots' certificates, to know a server that shows one of them.
    roots: Vec<CertificateDer<'static>>,
    check_name: bool,
}

impl ChainVerifier {
    /// A server certificate that is itself one of the roots (a
    /// self-signed certificate trusted as its own root, as PostgreSQL's
    /// documentation sets one up): trusted as it is, as OpenSSL and so
    /// libpq trust it whatever its basic constraints say, where webpki
    /// refuses a CA's certificate as a server's. Its dates still count,
    /// and its names (see [`names_match`]).
    fn verify_root_itself(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let (not_before, not_after) =
            crate::x509::validity(end_entity).ok_or(CertificateError::BadEncoding)?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > not_after {
            return Err(CertificateError::Expired.into());
        }
        if !names_match(end_entity, server_name) {
            return Err(CertificateError::NotValidForName.into());
        }
        Ok(ServerCertVerified::assertion())
    }
}

/// Whether the certificate names `server_name` as libpq reads names: by its
/// common name too when it has no subject alternative name of the host's
/// kind, which webpki never reads.
fn names_match(end_entity: &CertificateDer<'_>, server_name: &ServerName<'_>) -> bool {
    crate::x509::names(end_entity).is_some_and(|names| names.match_host(&server_name.to_str()))
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verified = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(_) if self.roots.iter().any(|root| root == end_entity) => {
                self.verify_root_itself(end_entity, server_name, now)
            }
            other => other,
        };
        match verified {
            // webpki checks the name only after the chain, so a name error
            // means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name || names_match(end_entity, server_name) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Takes any certificate (libpq's `require` without a root certificate:
/// encryption against eavesdropping, no protection against an impostor),
/// while still checking that the server holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The versions rustls speaks (1.2 and 1.3) within libpq's
/// `ssl_min_protocol_version` and `ssl_max_protocol_version`.
fn protocol_versions(
    (min, max): (TlsVersion, Option<TlsVersion>),
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let spoken = [
        (TlsVersion::V1_2, &rustls::version::TLS12),
        (TlsVersion::V1_3, &rustls::version::TLS13),
    ];
    let allowed: Vec<_> = spoken
        .into_iter()
        .filter(|(version, _)| *version >= min && max.is_none_or(|max| *version <= max))
        .map(|(_, protocol)| protocol)
        .collect();
    if allowed.is_empty() {
        return Err(Error::Configuration(format!(
            "ssl_max_protocol_version={} leaves no TLS version gino speaks (TLSv1.2, TLSv1.3)",
            max.unwrap_or(min)
        )));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: SslMode) -> TlsSettings {
        TlsSettings {
            mode,
            root_cert: None,
            default_root_cert: Some("/home/u/.postgresql/root.crt".into()),
            cert: None,
            key: None,
            versions: (TlsVersion::V1_2, None),
            crl: None,
            crl_dir: None,
            sni: true,
            require_client_cert: false,
            key_log: None,
            key_password: None,
        }
    }

    #[test]
    fn protocol_versions_are_those_rustls_speaks_within_the_bounds() {
        use TlsVersion::*;
        let spoken = |min, max| {
            protocol_versions((min, max)).map(|v| v.iter().map(|p| p.version).collect::<Vec<_>>())
        };
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(spoken(V1_2, None).unwrap(), [TLSv1_2, TLSv1_3]);
        assert_eq!(spoken(V1_0, Some(V1_2)).unwrap(), [TLSv1_2]);
        assert_eq!(spoken(V1_3, Some(V1_3)).unwrap(), [TLSv1_3]);
        let none = spoken(V1_0, Some(V1_1)).unwrap_err().to_string();
        assert!(
            none.contains("ssl_max_protocol_version=TLSv1.1 leaves no TLS version"),
            "{none}"
        );
    }

    #[test]
    fn sslsni_reaches_the_client_configuration() {
        let mut settings = settings(SslMode::Require);
        let sni = |settings: &TlsSettings| {
            let tls = Tls::new(settings).unwrap().expect("TLS");
            tls.connector.config().enable_sni
        };
        assert!(sni(&settings));
        settings.sni = false;
        assert!(!sni(&settings));
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            match Tls::new(&settings(mode)) {
                Err(Error::Configuration(m)) => {
                    assert!(m.contains("no root certificate"), "{m}");
                    assert!(m.contains("/home/u/.postgresql/root.crt"), "{m}");
                    assert!(m.contains("sslrootcert=system"), "{m}");
                }
                other => panic!("{mode}: expected a configuration error, got {other:?}"),
            }
        }
        for mode in [SslMode::Allow, SslMode::Prefer, SslMode::Require] {
            assert!(Tls::new(&settings(mode)).unwrap().is_some(), "{mode}");
        }
        assert!(Tls::new(&settings(SslMode::Disable)).unwrap().is_none());
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let mut with_cert = settings(SslMode::Require);
        with_cert.cert = Some("/c.crt".into());
        match Tls::new(&with_cert) {
            Err(Error::Configuration(m)) => assert!(m.contains("has no key"), "{m}"),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_encrypted_key_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("gino-tls-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let password = KeyPassword("s3cret".to_owned());
        let error = |name: &str, text: &str, password: Option<&KeyPassword>| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            match load_key(&path, password) {
                Err(Error::Configuration(m)) => {
                    assert!(m.contains(&path.display().to_string()), "{m}");
                    m
                }
                other => panic!("{name}: expected a configuration error, got {other:?}"),
            }
        };
        let begin = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n";
        let end = "-----END ENCRYPTED PRIVATE KEY-----\n";
        let cut = error("cut.key", &format!("{begin}MIIB\n"), Some(&password));
        assert!(cut.contains("its END line is missing"), "{cut}");
        let garbage = error(
            "garbage.key",
            &format!("{begin}bm90IGEga2V5\n{end}"),
            Some(&password),
        );
        assert!(garbage.contains("is malformed"), "{garbage}");
        let asked = error("asked.key", &format!("{begin}bm90IGEga2V5\n{end}"), None);
        assert!(
            asked.contains("give its passphrase as sslpassword"),
            "{asked}"
        );
        let empty = error("empty.key", "", None);
        assert!(empty.contains("cannot read the client key"), "{empty}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
