//! Agency keys: each agency's private key, and the central's list of public keys.
//!
//! An agency's key file is one line, `lottery-agency-key v1 <agency> <64 hex digits>` (the
//! Ed25519 seed): the secret, readable by that agency only. The central's file lists one
//! `<agency> <64 hex digits>` line per agency (its Ed25519 public key), `#` comments allowed:
//! enough to verify a signature, useless to make one, so a copy of the central's
//! configuration lets nobody act for an agency.

use std::{collections::BTreeMap, fmt, path::Path, sync::Arc};

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::error::{invalid, read, SecurityError};

/// The first words of an agency's key file.
const KEY_TAG: &str = "lottery-agency-key v1";

/// One agency's private key (ring's Ed25519, the implementation rustls already links). Its
/// `Debug` shows the agency and the public key, never the secret.
#[derive(Clone)]
pub struct AgencyKey {
    agency: u32,
    /// The 32-byte seed (RFC 8032's private key): what the key file holds.
    seed: [u8; 32],
    /// The pair derived from the seed, once: deriving costs a scalar multiplication, as
    /// much as a signature, and an agency signs right after loading its key.
    pair: Arc<Ed25519KeyPair>,
    public: PublicKey,
}

impl fmt::Debug for AgencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgencyKey")
            .field("agency", &self.agency)
            .field("public", &hex(&self.public.0))
            .finish_non_exhaustive()
    }
}

/// An agency's Ed25519 public key: 32 bytes, as RFC 8032 encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Its 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `signature` is this key's signature of `message`.
    #[must_use]
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0).verify(message, signature).is_ok()
    }
}

/// The key pair of `seed`.
fn pair(seed: &[u8; 32]) -> Ed25519KeyPair {
    // ring refuses a seed only for its length, and this one is 32 bytes by its type.
    #[allow(clippy::expect_used)]
    Ed25519KeyPair::from_seed_unchecked(seed).expect("a 32-byte seed is a valid Ed25519 seed")
}

impl AgencyKey {
    /// A new random key for `agency`.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate(agency: u32) -> Result<AgencyKey, SecurityError> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| SecurityError::Random)?;
        Ok(AgencyKey::from_seed(agency, seed))
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a key file.
    pub fn load(path: &Path) -> Result<AgencyKey, SecurityError> {
        let bytes = read(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid(path, "not text"))?;
        let rest = text.trim().strip_prefix(KEY_TAG).ok_or_else(|| {
            invalid(path, format!("not an agency key file (it must start with `{KEY_TAG}`)"))
        })?;
        let mut words = rest.split_whitespace();
        let (Some(agency), Some(seed), None) = (words.next(), words.next(), words.next()) else {
            return Err(invalid(path, format!("expected `{KEY_TAG} <agency> <64 hex digits>`")));
        };
        let agency =
            agency.parse().map_err(|_| invalid(path, format!("`{agency}` is not an agency number")))?;
        let seed = unhex::<32>(seed).ok_or_else(|| invalid(path, "the key is not 64 hex digits"))?;
        Ok(AgencyKey::from_seed(agency, seed))
    }

    fn from_seed(agency: u32, seed: [u8; 32]) -> AgencyKey {
        let pair = pair(&seed);
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        AgencyKey { agency, seed, pair: Arc::new(pair), public: PublicKey(public) }
    }

    /// The key file's text.
    #[must_use]
    pub fn to_file_text(&self) -> String {
        format!("{KEY_TAG} {} {}\n", self.agency, hex(&self.seed))
    }

    /// The agency this key acts for.
    #[must_use]
    pub fn agency(&self) -> u32 {
        self.agency
    }

    /// Its public half, for the central's list.
    #[must_use]
    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.pair.sign(message).as_ref());
        signature
    }
}

/// The central's list: each agency's public key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgencyKeys {
    keys: BTreeMap<u32, PublicKey>,
}

impl AgencyKeys {
    /// The list of `keys`' public halves.
    #[must_use]
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a AgencyKey>) -> AgencyKeys {
        AgencyKeys { keys: keys.into_iter().map(|k| (k.agency, k.public())).collect() }
    }

    /// Reads the central's list.
    ///
    /// # Errors
    /// When the file cannot be read, a line is not `<agency> <64 hex digits>`, a key is not a
    /// or an agency appears twice.
    pub fn load(path: &Path) -> Result<AgencyKeys, SecurityError> {
        let bytes = read(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid(path, "not text"))?;
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |what: &str| invalid(path, format!("line {}: {what}", n + 1));
            let mut words = line.split_whitespace();
            let (Some(agency), Some(key), None) = (words.next(), words.next(), words.next()) else {
                return Err(at("expected `<agency> <64 hex digits>`"));
            };
            let agency: u32 = agency.parse().map_err(|_| at("not an agency number"))?;
            let bytes = unhex::<32>(key).ok_or_else(|| at("the key is not 64 hex digits"))?;
            // ring checks that the bytes are a point of the curve when it verifies: a key that
            // is not one fails every proof (and is never accepted for any).
            let key = PublicKey(bytes);
            if keys.insert(agency, key).is_some() {
                return Err(at(&format!("agency {agency} is listed twice")));
            }
        }
        Ok(AgencyKeys { keys })
    }

    /// The file's text.
    #[must_use]
    pub fn to_file_text(&self) -> String {
        let mut text = String::from("# The agencies' public keys: <agency> <Ed25519 public key, hex>.\n");
        for (agency, key) in &self.keys {
            text.push_str(&format!("{agency} {}\n", hex(key.as_bytes())));
        }
        text
    }

    /// `agency`'s public key, if listed.
    #[must_use]
    pub fn get(&self, agency: u32) -> Option<&PublicKey> {
        self.keys.get(&agency)
    }

    /// How many agencies are listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2N` hex digits.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_reads_back_as_written_and_never_shows_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let key = AgencyKey::generate(7).unwrap();
        let path = dir.path().join("agency-7.key");
        std::fs::write(&path, key.to_file_text()).unwrap();
        let read = AgencyKey::load(&path).unwrap();
        assert_eq!(read.agency(), 7);
        assert_eq!(read.public(), key.public());
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex(&key.seed)), "{shown}");
    }

    /// RFC 8032's first Ed25519 test vector: its seed, public key and the signature of the
    /// empty message, which every correct implementation (ed25519-dalek before, ring now) agrees on.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    #[test]
    fn key_files_written_before_load_and_sign_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agency-1.key");
        std::fs::write(&path, format!("lottery-agency-key v1 1 {SEED}\n")).unwrap();
        let key = AgencyKey::load(&path).unwrap();
        assert_eq!(hex(key.public().as_bytes()), PUBLIC);
        assert_eq!(hex(&key.sign(b"")), SIGNATURE);
        assert_eq!(key.to_file_text(), format!("lottery-agency-key v1 1 {SEED}\n"), "the same bytes");
        let list = dir.path().join("agencies.pub");
        std::fs::write(&list, format!("# written before\n1 {PUBLIC}\n")).unwrap();
        let keys = AgencyKeys::load(&list).unwrap();
        let public = keys.get(1).unwrap();
        assert!(public.verifies(b"", &unhex::<64>(SIGNATURE).unwrap()));
        assert!(!public.verifies(b"x", &unhex::<64>(SIGNATURE).unwrap()));
        assert!(keys.to_file_text().ends_with(&format!("1 {PUBLIC}\n")));
    }

    #[test]
    fn the_list_reads_back_and_refuses_what_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<_> = (1..=3).map(|i| AgencyKey::generate(i).unwrap()).collect();
        let list = AgencyKeys::of(&keys);
        let path = dir.path().join("agencies.pub");
        std::fs::write(&path, list.to_file_text()).unwrap();
        assert_eq!(AgencyKeys::load(&path).unwrap(), list);
        assert_eq!(list.get(2), Some(&keys[1].public()));
        assert!(list.get(4).is_none());
        for bad in [
            "1 abc\n",
            "x 00\n",
            &format!("1 {}\n1 {}\n", hex(keys[0].public().as_bytes()), hex(keys[1].public().as_bytes())),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = AgencyKeys::load(&path).unwrap_err().to_string();
            assert!(err.contains("line"), "{bad:?}: {err}");
        }
        std::fs::write(&path, keys[0].to_file_text()).unwrap();
        assert!(AgencyKeys::load(&path).is_err(), "a private key file is not a list");
    }

    #[test]
    fn a_damaged_key_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agency-1.key");
        for bad in ["", "lottery-agency-key v1 1\n", "lottery-agency-key v1 1 zz\n", "1 00\n"] {
            std::fs::write(&path, bad).unwrap();
            let err = AgencyKey::load(&path).unwrap_err().to_string();
            assert!(err.contains("agency-1.key"), "{err}");
        }
    }
}
