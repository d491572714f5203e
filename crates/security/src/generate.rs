//! A fresh set of credentials for a lottery among N agencies.
//!
//! Layout of the folder it writes (the compose and stack generators mount these paths):
//!
//! | path | holds | who reads it |
//! |---|---|---|
//! | `central/agencies.pub` | every agency's public key | the central |
//! | `central/tls.crt`, `central/tls.key` | the central's certificate and private key | the central |
//! | `ca.crt` | the lottery's certificate authority | every agency |
//! | `agency-N.key` | agency N's private key | agency N only |
//! | `database.password` | the centrals' database password, random | the centrals and the database |
//!
//! The authority's own private key is not kept: it signs the central's certificate once and
//! is dropped, so a stolen folder cannot mint another central. A new set replaces the old one
//! whole.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::{
    error::SecurityError,
    keys::{AgencyKey, AgencyKeys},
};

/// What [`write`] produced.
#[derive(Debug)]
pub struct Written {
    /// The folder.
    pub dir: PathBuf,
    /// Agencies with a key.
    pub agencies: u32,
}

/// The central's list of public keys, in `dir`.
#[must_use]
pub fn agencies_file(dir: &Path) -> PathBuf {
    dir.join("central").join("agencies.pub")
}
/// The central's certificate, in `dir`.
#[must_use]
pub fn central_cert(dir: &Path) -> PathBuf {
    dir.join("central").join("tls.crt")
}
/// The central's private key, in `dir`.
#[must_use]
pub fn central_key(dir: &Path) -> PathBuf {
    dir.join("central").join("tls.key")
}
/// The authority agencies trust, in `dir`.
#[must_use]
pub fn ca_cert(dir: &Path) -> PathBuf {
    dir.join("ca.crt")
}
/// The password the centrals' role has in the database (the Swarm stack's secret), in `dir`.
#[must_use]
pub fn database_password(dir: &Path) -> PathBuf {
    dir.join("database.password")
}
/// Agency `n`'s private key, in `dir`.
#[must_use]
pub fn agency_key(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("agency-{n}.key"))
}

/// Writes a fresh set for agencies `1..=agencies` into `dir`, the central's certificate valid
/// for each of `hosts` (DNS names or IP addresses).
///
/// # Errors
/// When a key or certificate cannot be made or a file cannot be written.
pub fn write(dir: &Path, agencies: u32, hosts: &[String]) -> Result<Written, SecurityError> {
    let keys = (1..=agencies).map(AgencyKey::generate).collect::<Result<Vec<_>, _>>()?;
    let (ca, cert, key) = certificates(hosts)?;
    let password = random_password()?;
    create_dir(&dir.join("central"))?;
    write_file(&agencies_file(dir), AgencyKeys::of(&keys).to_file_text().as_bytes(), false)?;
    write_file(&central_cert(dir), cert.as_bytes(), false)?;
    write_file(&central_key(dir), key.as_bytes(), true)?;
    write_file(&ca_cert(dir), ca.as_bytes(), false)?;
    write_file(&database_password(dir), format!("{password}\n").as_bytes(), true)?;
    for key in &keys {
        write_file(&agency_key(dir, key.agency()), key.to_file_text().as_bytes(), true)?;
    }
    Ok(Written { dir: dir.to_owned(), agencies })
}

/// The authority's certificate, the central's certificate and its private key, as PEM.
fn certificates(hosts: &[String]) -> Result<(String, String, String), SecurityError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "Lotería Nacional TP0 authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut central = CertificateParams::new(hosts.to_vec())?;
    central.distinguished_name.push(DnType::CommonName, "Lotería Nacional TP0 central");
    let central = central.signed_by(&key, &ca, &ca_key)?;
    Ok((ca.pem(), central.pem(), key.serialize_pem()))
}

/// 32 bytes of the system's random source, as 64 lower-case hex digits: nothing a
/// connection string, a shell or SQL would need to quote.
fn random_password() -> Result<String, SecurityError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn create_dir(dir: &Path) -> Result<(), SecurityError> {
    fs::create_dir_all(dir).map_err(|source| SecurityError::Io { path: dir.to_owned(), source })
}

/// Writes `bytes` to `path` (replacing it), readable by its owner only when `secret`. All or
/// nothing: the bytes go to a new file beside it, renamed over `path` once synced, so a
/// reader never sees half a key, and a secret is never readable by others, even briefly.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), SecurityError> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    let fail = |source| SecurityError::Io { path: path.to_owned(), source };
    let _ = fs::remove_file(&staging);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&staging).map_err(fail)?;
    let written =
        file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| fs::rename(&staging, path));
    if written.is_err() {
        let _ = fs::remove_file(&staging);
    }
    written.map_err(fail)
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        thread,
    };

    use super::*;
    use crate::{
        proof::{self, Challenge},
        stream::Stream,
        tls,
        wire::Deadlines,
    };

    /// Generous: these handshakes run on loopback, whole.
    const DEADLINES: Deadlines =
        Deadlines { idle: std::time::Duration::from_secs(20), frame: std::time::Duration::from_secs(20) };

    #[test]
    fn a_generated_set_serves_tls_and_proves_each_agency() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 3, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let keys = AgencyKeys::load(&agencies_file(dir.path())).unwrap();
        assert_eq!(keys.len(), 3);
        let agency = AgencyKey::load(&agency_key(dir.path(), 2)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(agency_key(dir.path(), 2)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "a private key is its owner's only");
        }

        let server = tls::server_config(&central_cert(dir.path()), &central_key(dir.path())).unwrap();
        let client = tls::client_config(&ca_cert(dir.path())).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let central = thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            let stream = Stream::accept_tls(socket, server, DEADLINES).unwrap();
            stream.binding().unwrap()
        });
        let socket = TcpStream::connect(addr).unwrap();
        let stream =
            Stream::connect_tls(socket, client, tls::server_name(&addr.to_string()).unwrap()).unwrap();
        let binding = stream.binding().unwrap();
        assert_eq!(binding, central.join().unwrap(), "both ends export the same binding");
        assert_eq!(binding.len(), 32);
        let challenge = Challenge::new().unwrap();
        let signed = proof::sign(&agency, &challenge, &binding);
        assert_eq!(proof::verify(&keys, 2, &challenge, &binding, &signed), Ok(()));
    }

    #[test]
    fn each_set_has_its_own_database_password_readable_by_its_owner_only() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(first.path(), 1, &["server".into()]).unwrap();
        write(second.path(), 1, &["server".into()]).unwrap();
        let read = |dir: &Path| fs::read_to_string(database_password(dir)).unwrap();
        let password = read(first.path());
        let password = password.strip_suffix('\n').expect("one line");
        assert_eq!(password.len(), 64, "{password}");
        assert!(password.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{password}");
        assert_ne!(read(first.path()), read(second.path()), "random, not a constant");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(database_password(first.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A new set replaces the old password whole and leaves no staging file behind.
        write(first.path(), 1, &["server".into()]).unwrap();
        assert_ne!(read(first.path()), format!("{password}\n"));
        assert!(fs::read_dir(first.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".new")));
    }

    #[test]
    fn an_agency_refuses_a_central_its_authority_did_not_sign() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        write(ours.path(), 1, &["localhost".into()]).unwrap();
        write(theirs.path(), 1, &["localhost".into()]).unwrap();
        let impostor = tls::server_config(&central_cert(theirs.path()), &central_key(theirs.path())).unwrap();
        let client = tls::client_config(&ca_cert(ours.path())).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let central = thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            Stream::accept_tls(socket, impostor, DEADLINES).is_err()
        });
        let socket = TcpStream::connect(addr).unwrap();
        let name = tls::server_name("localhost:1").unwrap();
        assert!(Stream::connect_tls(socket, client, name).is_err());
        assert!(central.join().unwrap(), "the handshake fails on both ends");
    }

    #[test]
    fn the_pinned_check_trusts_exactly_the_central_certificate() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &["server".into()]).unwrap();
        let server = tls::server_config(&central_cert(dir.path()), &central_key(dir.path())).unwrap();
        let pinned = tls::pinned_client_config(&central_cert(dir.path())).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let central = thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            Stream::accept_tls(socket, server, DEADLINES).is_ok()
        });
        // Reached as 127.0.0.1 though the certificate names `server`: pinning ignores names.
        let socket = TcpStream::connect(addr).unwrap();
        assert!(Stream::connect_tls(socket, pinned, tls::server_name(&addr.to_string()).unwrap()).is_ok());
        assert!(central.join().unwrap());
    }

    #[test]
    fn a_plain_tcp_peer_fails_the_central_handshake() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &["localhost".into()]).unwrap();
        let server = tls::server_config(&central_cert(dir.path()), &central_key(dir.path())).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let central = thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            Stream::accept_tls(socket, server, DEADLINES).map(|_| ()).map_err(|e| e.kind())
        });
        let mut socket = TcpStream::connect(addr).unwrap();
        // An echo frame, as netcat would send it.
        socket.write_all(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(central.join().unwrap().is_err());
    }
}
