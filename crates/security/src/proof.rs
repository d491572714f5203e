//! The proof of identity: the central sends a fresh random challenge, the agency signs it
//! with its key, the central checks the signature with the agency's public key.
//!
//! What is signed: a fixed label, the agency's number, the challenge and a channel binding.
//! The number makes a proof for agency 2 worthless for agency 1; the fresh challenge makes a
//! recorded proof worthless later; the binding (under TLS, keying material exported from the
//! session, RFC 8446 §7.5; empty on plain TCP) makes a proof worthless on any other TLS
//! session, so a man in the middle who terminates TLS cannot relay it.
//!
//! On a TLS 1.3 session whose ends agreed on it ([`crate::tls::SESSION_PROOFS`]), the binding
//! is itself the fresh challenge: it derives from the central's fresh random and key share, so
//! no signature over it can predate the session or serve on another. There the agency signs,
//! under a label of its own, its number and the binding ([`sign_session`]) and sends `Prove`
//! at once, without `Hello`: one round trip less per connection.

use crate::{
    error::SecurityError,
    keys::{AgencyKey, AgencyKeys},
};

/// Bytes in a challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Bytes in a signature (Ed25519).
pub const SIGNATURE_LEN: usize = 64;

/// Domain separation: these signatures can mean nothing else.
const LABEL: &[u8] = b"tp0 lottery: agency proof v1\0";
/// The same for proofs over the session alone: neither kind can pass for the other.
const SESSION_LABEL: &[u8] = b"tp0 lottery: agency session proof v1\0";

/// A fresh random challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge([u8; CHALLENGE_LEN]);

/// Why a proof is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The central holds no key for that agency.
    UnknownAgency,
    /// The signature is not that agency's over this challenge (wrong key, another agency's
    /// key, another session, or garbage).
    BadSignature,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownAgency => write!(f, "no key is configured for that agency"),
            Refusal::BadSignature => write!(f, "the proof does not verify with that agency's key"),
        }
    }
}

impl Challenge {
    /// A challenge from the system's random source.
    ///
    /// # Errors
    /// When the random source fails.
    pub fn new() -> Result<Challenge, SecurityError> {
        let mut bytes = [0u8; CHALLENGE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| SecurityError::Random)?;
        Ok(Challenge(bytes))
    }

    /// A challenge as received; `None` unless exactly [`CHALLENGE_LEN`] bytes.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Challenge> {
        bytes.try_into().ok().map(Challenge)
    }

    /// Its bytes, to send.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; CHALLENGE_LEN] {
        &self.0
    }
}

/// The agency's answer to `challenge` on a channel with `binding`.
#[must_use]
pub fn sign(key: &AgencyKey, challenge: &Challenge, binding: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(&message(key.agency(), challenge, binding))
}

/// Checks `signature` as `agency`'s answer to `challenge` on a channel with `binding`.
///
/// # Errors
/// A [`Refusal`] saying why not.
pub fn verify(
    keys: &AgencyKeys,
    agency: u32,
    challenge: &Challenge,
    binding: &[u8],
    signature: &[u8],
) -> Result<(), Refusal> {
    checked(keys, agency, &message(agency, challenge, binding), signature)
}

/// The agency's proof on a session whose binding is fresh ([`crate::stream::Binding::fresh`]).
#[must_use]
pub fn sign_session(key: &AgencyKey, binding: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(&session_message(key.agency(), binding))
}

/// Checks `signature` as `agency`'s proof on a session with the fresh `binding`.
///
/// # Errors
/// A [`Refusal`] saying why not.
pub fn verify_session(
    keys: &AgencyKeys,
    agency: u32,
    binding: &[u8],
    signature: &[u8],
) -> Result<(), Refusal> {
    checked(keys, agency, &session_message(agency, binding), signature)
}

/// Checks `signature` as `agency`'s over `message`.
fn checked(keys: &AgencyKeys, agency: u32, message: &[u8], signature: &[u8]) -> Result<(), Refusal> {
    let key = keys.get(agency).ok_or(Refusal::UnknownAgency)?;
    if key.verifies(message, signature) {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

fn message(agency: u32, challenge: &Challenge, binding: &[u8]) -> Vec<u8> {
    signed(LABEL, agency, &challenge.0, binding)
}

fn session_message(agency: u32, binding: &[u8]) -> Vec<u8> {
    signed(SESSION_LABEL, agency, &[], binding)
}

/// `label`, the agency's number, `challenge` and the binding with its length.
fn signed(label: &[u8], agency: u32, challenge: &[u8], binding: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(label.len() + 4 + challenge.len() + 1 + binding.len());
    message.extend_from_slice(label);
    message.extend_from_slice(&agency.to_be_bytes());
    message.extend_from_slice(challenge);
    // Bindings are at most 255 bytes (32 in practice); longer ones are cut to keep the
    // length byte honest, which only weakens a binding nobody uses.
    let binding = &binding[..binding.len().min(255)];
    message.push(binding.len() as u8);
    message.extend_from_slice(binding);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Vec<AgencyKey>, AgencyKeys) {
        let keys: Vec<_> = (1..=2).map(|i| AgencyKey::generate(i).unwrap()).collect();
        let list = AgencyKeys::of(&keys);
        (keys, list)
    }

    #[test]
    fn an_agency_proves_itself_and_nobody_else() {
        let (keys, list) = setup();
        let challenge = Challenge::new().unwrap();
        let proof = sign(&keys[0], &challenge, b"session");
        assert_eq!(verify(&list, 1, &challenge, b"session", &proof), Ok(()));
        // Agency 1's proof does not make anyone agency 2.
        assert_eq!(verify(&list, 2, &challenge, b"session", &proof), Err(Refusal::BadSignature));
        // Agency 2's key cannot claim agency 1.
        let forged = sign(&keys[1], &challenge, b"session");
        assert_eq!(verify(&list, 1, &challenge, b"session", &forged), Err(Refusal::BadSignature));
        assert_eq!(verify(&list, 3, &challenge, b"session", &proof), Err(Refusal::UnknownAgency));
    }

    #[test]
    fn a_proof_is_worthless_for_another_challenge_or_session() {
        let (keys, list) = setup();
        let challenge = Challenge::new().unwrap();
        let proof = sign(&keys[0], &challenge, b"session a");
        let other = Challenge::new().unwrap();
        assert_ne!(challenge, other);
        assert_eq!(verify(&list, 1, &other, b"session a", &proof), Err(Refusal::BadSignature));
        assert_eq!(verify(&list, 1, &challenge, b"session b", &proof), Err(Refusal::BadSignature));
        assert_eq!(verify(&list, 1, &challenge, b"session a", &proof[..63]), Err(Refusal::BadSignature));
        assert_eq!(verify(&list, 1, &challenge, b"session a", &[0u8; 64]), Err(Refusal::BadSignature));
    }

    #[test]
    fn a_session_proof_holds_for_its_agency_and_session_only_and_never_as_a_challenge_proof() {
        let (keys, list) = setup();
        let proof = sign_session(&keys[0], b"session a");
        assert_eq!(verify_session(&list, 1, b"session a", &proof), Ok(()));
        assert_eq!(verify_session(&list, 1, b"session b", &proof), Err(Refusal::BadSignature));
        assert_eq!(verify_session(&list, 2, b"session a", &proof), Err(Refusal::BadSignature));
        assert_eq!(verify_session(&list, 3, b"session a", &proof), Err(Refusal::UnknownAgency));
        // The labels keep the two kinds apart, whatever challenge a central might send.
        let challenge = Challenge::new().unwrap();
        let answered = sign(&keys[0], &challenge, b"session a");
        assert_eq!(verify_session(&list, 1, b"session a", &answered), Err(Refusal::BadSignature));
        assert_eq!(verify(&list, 1, &challenge, b"session a", &proof), Err(Refusal::BadSignature));
    }

    #[test]
    fn challenges_are_exactly_their_length() {
        assert!(Challenge::from_bytes(&[1u8; CHALLENGE_LEN]).is_some());
        assert!(Challenge::from_bytes(&[1u8; CHALLENGE_LEN - 1]).is_none());
        assert!(Challenge::from_bytes(&[]).is_none());
    }
}
