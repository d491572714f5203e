//! Content digests: what a run of an agency's bets hashes to.
//!
//! Each bet is hashed with its position in the agency's upload (the first bet is 0), and the
//! digests of a run are added (wrapping, 128 bits). So a digest is the same however the run is
//! cut into batches (the agency's upload digest is the sum of its batches' digests), yet moves
//! when any bet changes, is dropped, is added or changes place. The hash is XXH3-128 over the
//! position and the validated fields (length-prefixed, so no two bets' bytes run together):
//! fast enough to hash every bet on both ends; not a defence against a forger, who would need
//! the agency's credential first.

use xxhash_rust::xxh3::xxh3_128;

use crate::Bet;

/// A digest of a run of bets; [`Digest::default`] is the digest of no bets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Digest(u128);

impl Digest {
    /// The digest of `bets`, the first at position `first` of the agency's upload.
    pub fn of_bets<'a>(first: u64, bets: impl IntoIterator<Item = &'a Bet>) -> Digest {
        let mut buffer = Vec::with_capacity(128);
        let mut sum = Digest::default();
        for (position, bet) in (first..).zip(bets) {
            sum = sum.plus(Digest::of_bet(position, bet, &mut buffer));
        }
        sum
    }

    /// The digest of one bet at `position`; `buffer` is scratch space, reused.
    fn of_bet(position: u64, bet: &Bet, buffer: &mut Vec<u8>) -> Digest {
        buffer.clear();
        buffer.extend_from_slice(&position.to_be_bytes());
        for field in [bet.first_name(), bet.last_name(), bet.document()] {
            // Fields are bounded (a few hundred bytes), so the length fits in a u32.
            buffer.extend_from_slice(&(field.len() as u32).to_be_bytes());
            buffer.extend_from_slice(field.as_bytes());
        }
        buffer.extend_from_slice(&bet.birthdate_bytes());
        Digest(xxh3_128(buffer))
    }

    /// The digest of two runs, one after the other.
    #[must_use]
    pub fn plus(self, other: Digest) -> Digest {
        Digest(self.0.wrapping_add(other.0))
    }

    /// Its 16 bytes, big-endian, as they travel and are journaled.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// A digest from its 16 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 16]) -> Digest {
        Digest(u128::from_be_bytes(bytes))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bets(n: usize) -> Vec<Bet> {
        (0..n)
            .map(|i| {
                Bet::new(format!("Nombre {i}"), "Pérez".into(), format!("{}", 30_000_000 + i), "1990-01-31")
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn a_run_hashes_the_same_however_it_is_batched() {
        let run = bets(10);
        let whole = Digest::of_bets(0, &run);
        let split = Digest::of_bets(0, &run[..3])
            .plus(Digest::of_bets(3, &run[3..7]))
            .plus(Digest::of_bets(7, &run[7..]));
        assert_eq!(whole, split);
        assert_eq!(Digest::from_bytes(whole.to_bytes()), whole);
        assert_eq!(Digest::of_bets(0, &[]), Digest::default());
    }

    #[test]
    fn any_change_of_content_or_place_moves_it() {
        let run = bets(4);
        let base = Digest::of_bets(0, &run);
        let mut swapped = run.clone();
        swapped.swap(1, 2);
        assert_ne!(Digest::of_bets(0, &swapped), base, "order counts");
        assert_ne!(Digest::of_bets(1, &run), base, "place in the upload counts");
        assert_ne!(Digest::of_bets(0, &run[..3]), base, "a dropped bet counts");
        let mut changed = run.clone();
        changed[3] = Bet::new("Nombre 3".into(), "Perez".into(), "30000003".into(), "1990-01-31").unwrap();
        assert_ne!(Digest::of_bets(0, &changed), base, "one letter counts");
        // Fields do not run together: moving a character across a boundary changes it.
        let a = Bet::new("Ana".into(), "Bo".into(), "1".into(), "1990-01-31").unwrap();
        let b = Bet::new("An".into(), "aBo".into(), "1".into(), "1990-01-31").unwrap();
        assert_ne!(Digest::of_bets(0, [&a]), Digest::of_bets(0, [&b]));
    }
}
