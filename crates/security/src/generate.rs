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
//! whole, all or nothing: it is written into a fresh folder beside `dir`, then renamed over it,
//! so no run (however it ends) leaves half a set where a whole one is expected. A folder
//! holding anything else than a set is refused rather than replaced.

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
/// for each of `hosts` (DNS names or IP addresses), replacing the set `dir` held.
///
/// # Errors
/// When a key or certificate cannot be made, a file cannot be written, or `dir` holds
/// something that is not part of a set (it is then left as it was).
pub fn write(dir: &Path, agencies: u32, hosts: &[String]) -> Result<Written, SecurityError> {
    refuse_foreign_entries(dir)?;
    let keys = (1..=agencies).map(AgencyKey::generate).collect::<Result<Vec<_>, _>>()?;
    let (ca, cert, key) = certificates(hosts)?;
    let password = random_password()?;
    let name = dir.file_name().map_or_else(|| "credentials".into(), |n| n.to_string_lossy().into_owned());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_dir(parent)?;
    let fresh = parent.join(format!(".{name}.new-{}", std::process::id()));
    let _ = fs::remove_dir_all(&fresh);
    let written = (|| {
        create_dir(&fresh.join("central"))?;
        write_file(&agencies_file(&fresh), AgencyKeys::of(&keys).to_file_text().as_bytes(), false)?;
        write_file(&central_cert(&fresh), cert.as_bytes(), false)?;
        write_file(&central_key(&fresh), key.as_bytes(), true)?;
        write_file(&ca_cert(&fresh), ca.as_bytes(), false)?;
        write_file(&database_password(&fresh), format!("{password}\n").as_bytes(), true)?;
        for key in &keys {
            write_file(&agency_key(&fresh, key.agency()), key.to_file_text().as_bytes(), true)?;
        }
        replace(&fresh, dir)
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&fresh);
    }
    written.map(|()| Written { dir: dir.to_owned(), agencies })
}

/// Whether `name` is one of a set's entries (including what Docker may have made in their
/// place): `central`, `ca.crt`, `database.password`, `agency-N.key`.
fn is_set_entry(name: &str) -> bool {
    let agency = name.strip_prefix("agency-").and_then(|n| n.strip_suffix(".key"));
    name == "central"
        || name == "ca.crt"
        || name == "database.password"
        || agency.is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Refuses a `dir` that holds anything else than a set: replacing it would delete the user's
/// files (`credentials .data 5` instead of `.data/credentials`).
fn refuse_foreign_entries(dir: &Path) -> Result<(), SecurityError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(SecurityError::Io { path: dir.to_owned(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| SecurityError::Io { path: dir.to_owned(), source })?;
        if !is_set_entry(&entry.file_name().to_string_lossy()) {
            return Err(SecurityError::Invalid {
                path: entry.path(),
                reason: "not part of a credentials set; the set's folder is replaced whole, so give the \
                         credentials a folder of their own (such as .data/credentials)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Puts the complete set `fresh` in the place of `dir`: the old set (if any) is moved aside
/// first, so `dir` is at every moment a whole set or absent, never a mix.
fn replace(fresh: &Path, dir: &Path) -> Result<(), SecurityError> {
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |source| SecurityError::Io { path, source }
    };
    let old = fresh.with_extension("old");
    let had_old = match fs::rename(dir, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(fail(dir)(source)),
    };
    fs::rename(fresh, dir).map_err(fail(dir))?;
    if had_old {
        fs::remove_dir_all(&old).map_err(fail(&old))?;
    }
    Ok(())
}

/// The authority's certificate, the central's certificate and its private key, as PEM.
///
/// Both keys are Ed25519: each agency checks two signatures per connection (the authority's
/// on the certificate, the central's on the handshake) and the central makes one, all
/// cheaper than with ECDSA P-256. Sets written with P-256 keys before still work.
fn certificates(hosts: &[String]) -> Result<(String, String, String), SecurityError> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "Lotería Nacional TP0 authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut central = CertificateParams::new(hosts.to_vec())?;
    central.distinguished_name.push(DnType::CommonName, "Lotería Nacional TP0 central");
    let central = central.signed_by(&key, &ca, &ca_key)?;
    Ok((ca.pem(), central.pem(), key.serialize_pem()))
}

/// 32 bytes of the system's random source, as 64 lower-case hex digits: nothing a
/// connection string, a shell or SQL would need to quote.
fn random_password() -> Result<String, SecurityError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| SecurityError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn create_dir(dir: &Path) -> Result<(), SecurityError> {
    fs::create_dir_all(dir).map_err(|source| SecurityError::Io { path: dir.to_owned(), source })
}

/// Writes `bytes` to `path` (replacing it), readable by its owner only when `secret`.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), SecurityError> {
    let fail = |source| SecurityError::Io { path: path.to_owned(), source };
    let _ = fs::remove_file(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
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
        let Stream::Client(tls) = &stream else { panic!("a TLS stream") };
        // TLS 1.3 with the suite preferred for its cheaper key schedule and records.
        assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        let suite = tls.conn.negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        let key = fs::read_to_string(central_key(dir.path())).unwrap();
        assert_eq!(KeyPair::from_pem(&key).unwrap().algorithm(), &rcgen::PKCS_ED25519);
        assert_eq!(binding, central.join().unwrap(), "both ends export the same binding");
        assert_eq!(binding.material.len(), 32);
        assert!(binding.fresh, "TLS 1.3 and session proofs agreed: the binding is a challenge");
        let challenge = Challenge::new().unwrap();
        let signed = proof::sign(&agency, &challenge, &binding.material);
        assert_eq!(proof::verify(&keys, 2, &challenge, &binding.material, &signed), Ok(()));
        let signed = proof::sign_session(&agency, &binding.material);
        assert_eq!(proof::verify_session(&keys, 2, &binding.material, &signed), Ok(()));
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
        // A new set replaces the old password (and keeps the folder a set: it is no foreign entry).
        write(first.path(), 1, &["server".into()]).unwrap();
        assert_ne!(read(first.path()), format!("{password}\n"));
    }

    #[test]
    fn a_new_set_replaces_a_broken_one_whole_and_foreign_folders_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("credentials");
        // What a plain `docker-compose up` leaves: directories where the files belong, and
        // half of an earlier set.
        fs::create_dir_all(dir.join("central/agencies.pub")).unwrap();
        fs::create_dir_all(dir.join("agency-1.key")).unwrap();
        fs::write(dir.join("agency-2.key"), b"stale").unwrap();
        write(&dir, 3, &["server".into()]).unwrap();
        let keys = AgencyKeys::load(&agencies_file(&dir)).unwrap();
        assert_eq!(keys.len(), 3);
        for n in 1..=3 {
            assert!(fs::metadata(agency_key(&dir, n)).unwrap().is_file(), "agency {n}");
            AgencyKey::load(&agency_key(&dir, n)).unwrap();
        }
        let names: Vec<_> = fs::read_dir(parent.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["credentials"], "no temporary folder is left beside it");

        let data = tempfile::tempdir().unwrap();
        fs::write(data.path().join("dataset-1.csv"), b"the user's").unwrap();
        let err = write(data.path(), 1, &["server".into()]).unwrap_err();
        assert!(err.to_string().contains("dataset-1.csv: not part of a credentials set"), "{err}");
        assert_eq!(fs::read(data.path().join("dataset-1.csv")).unwrap(), b"the user's");
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
