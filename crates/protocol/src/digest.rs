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

use crate::{
    bet::{BetRef, BIRTHDATE_LEN, MAX_DOCUMENT_LEN, MAX_NAME_LEN},
    short_copy::put,
};

/// The most bytes one bet's hash input takes: its position, three field lengths, the fields
/// at their caps (a [`BetRef`] is checked, so never longer) and the birth date.
const MAX_INPUT: usize = 8 + 3 * 4 + 2 * MAX_NAME_LEN + MAX_DOCUMENT_LEN + BIRTHDATE_LEN;

/// A digest of a run of bets; [`Digest::default`] is the digest of no bets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Digest(u128);

impl Digest {
    /// The digest of `bets` (each a [`crate::Bet`] or a [`BetRef`], borrowed), the first at
    /// position `first` of the agency's upload.
    pub fn of_bets<'a, B: Into<BetRef<'a>>>(first: u64, bets: impl IntoIterator<Item = B>) -> Digest {
        let mut input = [0; MAX_INPUT];
        let mut sum = Digest::default();
        for (position, bet) in (first..).zip(bets) {
            sum = sum.plus(Digest::of_bet(position, bet.into(), &mut input));
        }
        sum
    }

    /// The digest of one bet at `position`; `input` is scratch space, reused. A bet's fields
    /// are checked, so bounded, and its whole input fits `input` (see [`MAX_INPUT`]): built
    /// there with plain copies, it needs no growth checks and no allocation.
    fn of_bet(position: u64, bet: BetRef<'_>, input: &mut [u8; MAX_INPUT]) -> Digest {
        input[..8].copy_from_slice(&position.to_be_bytes());
        let mut at = 8;
        for field in [bet.first_name(), bet.last_name(), bet.document()] {
            // Fields are bounded (a few hundred bytes), so the length fits in a u32.
            input[at..at + 4].copy_from_slice(&(field.len() as u32).to_be_bytes());
            at = put(input, at + 4, field.as_bytes());
        }
        at = put(input, at, bet.birthdate_str().as_bytes());
        Digest(xxh3_128(&input[..at]))
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
    use crate::Bet;

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
        assert_eq!(Digest::of_bets(0, &[] as &[Bet]), Digest::default());
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

    /// The digest as it was first written (one buffer, extended field by field), kept to
    /// check that a faster path hashes exactly the same bytes.
    fn reference(first: u64, bets: &[Bet]) -> Digest {
        let mut sum = Digest::default();
        for (position, bet) in (first..).zip(bets) {
            let mut buffer = Vec::new();
            buffer.extend_from_slice(&position.to_be_bytes());
            for field in [bet.first_name(), bet.last_name(), bet.document()] {
                buffer.extend_from_slice(&(field.len() as u32).to_be_bytes());
                buffer.extend_from_slice(field.as_bytes());
            }
            buffer.extend_from_slice(&bet.birthdate_bytes());
            sum = sum.plus(Digest(xxh3_128(&buffer)));
        }
        sum
    }

    #[test]
    fn digests_are_the_ones_uploads_were_checked_with() {
        // Pinned from the first implementation: journals and agencies keep these values, so
        // they must never move.
        let a = Bet::new("Tiago Nicolás".into(), "Fornerón".into(), "34407251".into(), "2001-08-29").unwrap();
        let b = Bet::new("Kiara Valentina".into(), "Basile".into(), "32250087".into(), "1987-05-17").unwrap();
        let long = Bet::new("ñ".repeat(128), "Ü".repeat(128), "9".repeat(32), "0000-01-01").unwrap();
        assert_eq!(Digest::of_bets(0, [&a]).to_string(), "545dd19adc559ed7d8f4e37533cfcbb4");
        assert_eq!(Digest::of_bets(41, [&a, &b, &long]).to_string(), "5dccffc13ee62b964c06bec51fa33f00");
        assert_eq!(Digest::of_bets(1 << 40, [&long]).to_string(), "25d3b380018568bf965e9e0498fda60f");
    }

    #[test]
    fn borrowed_and_owned_bets_hash_as_the_first_implementation_did() {
        // Course-like rows: accented names of every length the hash treats apart (up to 16,
        // 17 to 128, 129 to 240 and longer inputs), documents of 1 to 32 digits.
        let names = ["Ana", "Julián", "María José", "Nicolás Agustín", "Fornerón", "Ñ", "Joe, Jr"];
        let bets: Vec<Bet> = (0..2000usize)
            .map(|i| {
                let first = names[i % names.len()].repeat(1 + i % 13);
                let last = names[(i / 7) % names.len()].repeat(1 + i % 11);
                let document = "7".repeat(1 + i % 32);
                let date = format!("{:04}-{:02}-{:02}", 1900 + i % 120, 1 + i % 12, 1 + i % 28);
                Bet::new(first, last, document, &date).unwrap()
            })
            .collect();
        let borrowed: Vec<BetRef<'_>> = bets.iter().map(Bet::as_ref).collect();
        for (first, range) in [(0, 0..2000), (5, 3..4), (1 << 33, 100..1500)] {
            let expected = reference(first, &bets[range.clone()]);
            assert_eq!(Digest::of_bets(first, &bets[range.clone()]), expected);
            assert_eq!(Digest::of_bets(first, &borrowed[range]), expected);
        }
    }
}
