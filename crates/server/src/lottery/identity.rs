//! Who a connection acts for: the agencies' keys the central checks proofs with, and what one
//! connection has proved.
//!
//! With keys configured (`SERVER_AGENCY_KEYS`), a connection acts for no agency until it
//! proves it holds one agency's key: `Hello { agency }` gets a fresh challenge, `Prove` its
//! signature (bound to the TLS session when there is one, see `security::proof`). From then
//! on the connection acts for that agency only: a request naming another is refused with
//! `NotYourAgency`, one before any proof with `Unauthenticated`. `Echo` needs no identity
//! (the netcat check). Without keys the central runs open, as the course's exercises do: any
//! connection may act for any agency, unless it proved one (then it keeps to it).

use security::{proof, AgencyKeys, Binding, Challenge};

/// The keys proofs are checked against; `None`: the central runs open.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    keys: Option<AgencyKeys>,
}

/// What one connection has proved, and what it is proving.
#[derive(Debug, Default)]
pub struct Proof {
    /// The agency of a `Hello` and the challenge it was sent, until its `Prove` (one try).
    pending: Option<(u32, Challenge)>,
    /// The agency this connection proved it acts for.
    agency: Option<u32>,
    /// What proofs on this connection are bound to: the TLS session's exported keying
    /// material, or nothing on plain TCP; and whether it is a fresh challenge itself.
    binding: Binding,
}

/// Why a request is refused for who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No proof yet (or a failed one), with what to say.
    Unauthenticated(String),
    /// The connection acts for `bound`, not for the agency named.
    NotYourAgency {
        /// The agency the connection proved.
        bound: u32,
    },
}

impl Identities {
    /// Checks proofs against `keys`, or runs open with `None`.
    #[must_use]
    pub fn new(keys: Option<AgencyKeys>) -> Identities {
        Identities { keys }
    }

    /// Whether proofs are required.
    #[must_use]
    pub fn required(&self) -> bool {
        self.keys.is_some()
    }

    /// A challenge for a connection that says it acts for `agency`.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn hello(&self, proved: &mut Proof, agency: u32) -> Result<Challenge, security::SecurityError> {
        let challenge = Challenge::new()?;
        proved.pending = Some((agency, challenge.clone()));
        Ok(challenge)
    }

    /// Checks `signature` as `agency`'s answer to the challenge this connection was sent, or,
    /// with no challenge sent and none proved yet on a session whose binding is fresh (TLS 1.3
    /// with session proofs agreed), as its signature of the session; on success the connection
    /// acts for `agency` from now on. A challenge is good for one try. Open, any proof is taken
    /// at its word (there is nothing to check it against).
    ///
    /// # Errors
    /// [`Denied::Unauthenticated`] saying why.
    pub fn prove(&self, proved: &mut Proof, agency: u32, signature: &[u8]) -> Result<(), Denied> {
        let challenge = match proved.pending.take() {
            Some((asked, _)) if asked != agency => {
                return Err(Denied::Unauthenticated(format!(
                    "the challenge was for agency {asked}, not agency {agency}"
                )));
            }
            Some((_, challenge)) => Some(challenge),
            None if proved.binding.fresh && proved.agency.is_none() => None,
            None => {
                return Err(Denied::Unauthenticated(
                    "no challenge was sent on this connection: send Hello first".into(),
                ));
            }
        };
        if let Some(keys) = &self.keys {
            let material = &proved.binding.material;
            match &challenge {
                Some(challenge) => proof::verify(keys, agency, challenge, material, signature),
                None => proof::verify_session(keys, agency, material, signature),
            }
            .map_err(|refusal| Denied::Unauthenticated(format!("agency {agency}: {refusal}")))?;
        }
        proved.agency = Some(agency);
        Ok(())
    }

    /// Whether this connection may act for `agency`.
    ///
    /// # Errors
    /// [`Denied`] saying why not.
    pub fn authorize(&self, proved: &Proof, agency: u32) -> Result<(), Denied> {
        match proved.agency {
            Some(bound) if bound == agency => Ok(()),
            Some(bound) => Err(Denied::NotYourAgency { bound }),
            None if self.keys.is_some() => Err(Denied::Unauthenticated(format!(
                "this connection has not proved it acts for agency {agency} (Hello, then Prove with its key)"
            ))),
            None => Ok(()),
        }
    }
}

impl Proof {
    /// Nothing proved yet, proofs to be bound to `binding` (see [`Proof::binding`]).
    #[must_use]
    pub fn bound_to(binding: Binding) -> Proof {
        Proof { binding, ..Proof::default() }
    }

    /// The agency this connection proved, if any.
    #[must_use]
    pub fn agency(&self) -> Option<u32> {
        self.agency
    }
}

#[cfg(test)]
mod tests {
    use security::AgencyKey;

    use super::*;

    fn keys() -> (Vec<AgencyKey>, Identities) {
        let keys: Vec<_> = (1..=2).map(|i| AgencyKey::generate(i).unwrap()).collect();
        let list = AgencyKeys::of(&keys);
        (keys, Identities::new(Some(list)))
    }

    #[test]
    fn a_proof_binds_the_connection_to_its_agency_only() {
        let (keys, ids) = keys();
        let mut session = Proof::bound_to(Binding { material: b"tls".to_vec(), fresh: false });
        assert!(matches!(ids.authorize(&session, 1), Err(Denied::Unauthenticated(_))));
        let challenge = ids.hello(&mut session, 1).unwrap();
        ids.prove(&mut session, 1, &proof::sign(&keys[0], &challenge, b"tls")).unwrap();
        assert_eq!(ids.authorize(&session, 1), Ok(()));
        assert_eq!(ids.authorize(&session, 2), Err(Denied::NotYourAgency { bound: 1 }));
    }

    #[test]
    fn a_wrong_key_another_agency_or_a_reused_challenge_is_refused() {
        let (keys, ids) = keys();
        let mut session = Proof::default();
        // Agency 2's key claiming agency 1.
        let challenge = ids.hello(&mut session, 1).unwrap();
        let forged = proof::sign(&keys[1], &challenge, b"");
        assert!(matches!(ids.prove(&mut session, 1, &forged), Err(Denied::Unauthenticated(_))));
        // The challenge was used up: even the right signature of it is refused now.
        let right = proof::sign(&keys[0], &challenge, b"");
        assert!(matches!(ids.prove(&mut session, 1, &right), Err(Denied::Unauthenticated(_))));
        // A proof for the agency the challenge was not sent for.
        let challenge = ids.hello(&mut session, 2).unwrap();
        let other = proof::sign(&keys[0], &challenge, b"");
        assert!(matches!(ids.prove(&mut session, 1, &other), Err(Denied::Unauthenticated(_))));
        assert_eq!(session.agency(), None);
    }

    #[test]
    fn a_fresh_session_is_its_own_challenge_once_and_only_when_fresh() {
        let (keys, ids) = keys();
        let fresh = || Proof::bound_to(Binding { material: b"session".to_vec(), fresh: true });
        let mut session = fresh();
        // Agency 2's key cannot claim agency 1; a challenge's kind of proof is not a session's.
        let forged = proof::sign_session(&keys[1], b"session");
        assert!(matches!(ids.prove(&mut session, 1, &forged), Err(Denied::Unauthenticated(_))));
        let challenge = Challenge::new().unwrap();
        let other_kind = proof::sign(&keys[0], &challenge, b"session");
        assert!(matches!(ids.prove(&mut session, 1, &other_kind), Err(Denied::Unauthenticated(_))));
        ids.prove(&mut session, 1, &proof::sign_session(&keys[0], b"session")).unwrap();
        assert_eq!(ids.authorize(&session, 1), Ok(()));
        // Proved once: the session cannot prove another agency without a challenge.
        let second = proof::sign_session(&keys[1], b"session");
        assert!(matches!(ids.prove(&mut session, 2, &second), Err(Denied::Unauthenticated(_))));
        assert_eq!(session.agency(), Some(1));
        // A binding that is not fresh (plain TCP, TLS 1.2, an older agency) needs a challenge.
        let mut stale = Proof::bound_to(Binding { material: b"session".to_vec(), fresh: false });
        let signed = proof::sign_session(&keys[0], b"session");
        assert!(matches!(ids.prove(&mut stale, 1, &signed), Err(Denied::Unauthenticated(_))));
        // And a fresh session still takes Hello and a challenge, as older agencies send them.
        let mut session = fresh();
        let challenge = ids.hello(&mut session, 2).unwrap();
        ids.prove(&mut session, 2, &proof::sign(&keys[1], &challenge, b"session")).unwrap();
        assert_eq!(session.agency(), Some(2));
    }

    #[test]
    fn open_without_keys_unless_a_connection_proved_an_agency() {
        let ids = Identities::new(None);
        let mut session = Proof::default();
        assert_eq!(ids.authorize(&session, 3), Ok(()));
        let _ = ids.hello(&mut session, 3).unwrap();
        ids.prove(&mut session, 3, b"anything").unwrap();
        assert_eq!(ids.authorize(&session, 4), Err(Denied::NotYourAgency { bound: 3 }));
    }
}
