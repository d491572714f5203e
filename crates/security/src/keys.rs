//! Agency keys: each agency's private key, and the central's list of public keys.
//!
//! An agency's key file is one line, `lottery-agency-key v1 <agency> <64 hex digits>` (the
//! Ed25519 seed): the secret, readable by that agency only. The central's file lists one
//! `<agency> <64 hex digits>` line per agency (its Ed25519 public key), `#` comments allowed:
//! enough to verify a signature, useless to make one, so a copy of the central's
//! configuration lets nobody act for an agency.

use std::{collections::BTreeMap, fmt, path::Path};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::error::{invalid, read, SecurityError};

/// The first words of an agency's key file.
const KEY_TAG: &str = "lottery-agency-key v1";

/// One agency's private key. Its `Debug` shows the agency and the public key, never the
/// secret.
#[derive(Clone)]
pub struct AgencyKey {
    agency: u32,
    signing: SigningKey,
}

impl fmt::Debug for AgencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgencyKey")
            .field("agency", &self.agency)
            .field("public", &hex(self.signing.verifying_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

impl AgencyKey {
    /// A new random key for `agency`.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate(agency: u32) -> Result<AgencyKey, SecurityError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(AgencyKey { agency, signing: SigningKey::from_bytes(&seed) })
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
        Ok(AgencyKey { agency, signing: SigningKey::from_bytes(&seed) })
    }

    /// The key file's text.
    #[must_use]
    pub fn to_file_text(&self) -> String {
        format!("{KEY_TAG} {} {}\n", self.agency, hex(self.signing.as_bytes()))
    }

    /// The agency this key acts for.
    #[must_use]
    pub fn agency(&self) -> u32 {
        self.agency
    }

    /// Its public half, for the central's list.
    #[must_use]
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// The central's list: each agency's public key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgencyKeys {
    keys: BTreeMap<u32, VerifyingKey>,
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
    /// valid Ed25519 point, or an agency appears twice.
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
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| at("not an Ed25519 public key"))?;
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
    pub fn get(&self, agency: u32) -> Option<&VerifyingKey> {
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
        assert!(!shown.contains(&hex(key.signing.as_bytes())), "{shown}");
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
