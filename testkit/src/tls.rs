//! Certificates for TLS tests: a certificate authority made up by the test,
//! server and client certificates it signs, and a [`ClusterBuilder`]
//! preset that turns TLS on with them.

use std::fs;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    date_time_ymd,
};

use crate::cluster::ClusterBuilder;

/// A certificate authority of a test's own.
///
/// ```no_run
/// use gino_testkit::{Cluster, TestCa};
/// let ca = TestCa::new("test CA");
/// let cluster = Cluster::builder()
///     .tls(&ca.server(&["localhost", "127.0.0.1"]), &ca)
///     .hba("hostssl all all 127.0.0.1/32 trust")
///     .start()
///     .unwrap();
/// let root = ca.write("root.crt", &ca.cert_pem());
/// let url = format!(
///     "{}?sslmode=verify-full&sslrootcert={}",
///     cluster.url_for("postgres"),
///     root.display()
/// );
/// # let _ = url;
/// ```
pub struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    dir: PathBuf,
    /// The serial number of the last certificate issued.
    issued: AtomicU64,
}

/// A certificate signed by a [`TestCa`], with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// Its serial number, which a revocation list names it by.
    pub serial: u64,
}

impl TestCa {
    /// A new authority named `name`; its files live in a directory of its
    /// own, removed when it is dropped.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let dir = crate::cluster::create_base_dir().expect("the CA's directory");
        // A CA held by a static is never dropped.
        if let Err(e) = crate::cluster::after_exit(":", &dir) {
            eprintln!("gino-testkit: {e}; {} stays behind", dir.display());
        }
        TestCa {
            key,
            cert,
            dir,
            issued: AtomicU64::new(0),
        }
    }

    /// The authority's certificate, to trust it (`sslrootcert`).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (host names and IP addresses).
    pub fn server(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server parameters");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        self.sign(params)
    }

    /// A server certificate named by its common name alone, with no
    /// subject alternative names, as older tools and PostgreSQL's own
    /// documentation make them: libpq then checks the host against the
    /// common name.
    pub fn server_by_common_name(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("server parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        self.sign(params)
    }

    /// A client certificate for the database user `user` (its common
    /// name, which PostgreSQL's `cert` authentication and
    /// `clientcert=verify-full` compare with the user name).
    pub fn client(&self, user: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name.push(DnType::CommonName, user);
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("generate a key");
        let serial = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }

    /// A certificate revocation list (PEM) of this authority that revokes
    /// `revoked`, valid from 2020 for a thousand years.
    pub fn crl(&self, revoked: &[&Issued]) -> String {
        self.signed_crl(revoked)
            .pem()
            .expect("a revocation list as PEM")
    }

    /// [`crl`](Self::crl) in DER, as some systems keep their lists.
    pub fn crl_der(&self, revoked: &[&Issued]) -> Vec<u8> {
        self.signed_crl(revoked).der().to_vec()
    }

    fn signed_crl(&self, revoked: &[&Issued]) -> rcgen::CertificateRevocationList {
        let revoked_certs = revoked
            .iter()
            .map(|issued| RevokedCertParams {
                serial_number: SerialNumber::from(issued.serial),
                revocation_time: date_time_ymd(2021, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        CertificateRevocationListParams {
            this_update: date_time_ymd(2020, 1, 1),
            next_update: date_time_ymd(3020, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.cert, &self.key)
        .expect("sign a revocation list")
    }

    /// Writes `contents` to a file named `name` in the authority's
    /// directory (readable by its owner only, as key files must be) and
    /// returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        fs::write(&path, contents).expect("write a certificate file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .expect("restrict a certificate file");
        path
    }

    /// The authority's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A self-signed server certificate for `name` (its common name, no
/// subject alternative names), marked a CA: what PostgreSQL's
/// documentation makes with `openssl req -new -x509 -subj "/CN=name"`, and
/// has clients trust as their own `root.crt`.
pub fn self_signed_server(name: &str) -> Issued {
    let key = KeyPair::generate().expect("generate a key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("server parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-sign the certificate");
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial: 0,
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl ClusterBuilder {
    /// Turns TLS on with the server certificate `server`, and trusts client
    /// certificates `ca` signed (for `clientcert=verify-full` rules).
    /// Which connections must use TLS is up to [`hba`](Self::hba)
    /// (`hostssl` rules).
    pub fn tls(self, server: &Issued, ca: &TestCa) -> Self {
        self.file("server.crt", server.cert_pem.as_bytes())
            .file("server.key", server.key_pem.as_bytes())
            .file("root.crt", ca.cert_pem().as_bytes())
            .setting("ssl", "on")
            .setting("ssl_cert_file", "server.crt")
            .setting("ssl_key_file", "server.key")
            .setting("ssl_ca_file", "root.crt")
    }
}
