//! The lottery's rules: which bets win.
//!
//! `is_winner` is the course's provided function made exact: a bet wins when the 64-bit FNV-1a
//! hash of `first_name|last_name|document|YYYY-MM-DD` (UTF-8) is divisible by 17, which makes
//! about one bet in seventeen a winner. Like the course's function it stands for expensive
//! work, simulated by sleeping a configurable delay before answering.

use std::{thread, time::Duration};

use protocol::Bet;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Whether `bet` wins, after sleeping `delay` (the simulated cost of the check).
#[must_use]
pub fn is_winner(bet: &Bet, delay: Duration) -> bool {
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    bet_hash(bet) % 17 == 0
}

/// FNV-1a of `first_name|last_name|document|YYYY-MM-DD`, hashed piece by piece so no string
/// is built.
#[must_use]
pub fn bet_hash(bet: &Bet) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    feed(bet.first_name().as_bytes());
    feed(b"|");
    feed(bet.last_name().as_bytes());
    feed(b"|");
    feed(bet.document().as_bytes());
    feed(b"|");
    feed(&bet.birthdate_bytes());
    hash
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn bet(first: &str, last: &str, doc: &str, date: &str) -> Bet {
        Bet::new(first.into(), last.into(), doc.into(), date).unwrap()
    }

    #[test]
    fn fnv1a_constants_match_the_reference() {
        // Reference values from the FNV specification: FNV-1a 64 of "a" is af63dc4c8601ec8c.
        let mut hash = FNV_OFFSET_BASIS;
        hash ^= u64::from(b'a');
        hash = hash.wrapping_mul(FNV_PRIME);
        assert_eq!(hash, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn pinned_winners_from_the_course_dataset() {
        // Hashes computed independently (Python) over the same strings.
        let kiara = bet("Kiara Valentina", "Basile", "32250087", "1987-05-17");
        assert_eq!(bet_hash(&kiara), 0x3443_1564_4823_85c8);
        assert!(is_winner(&kiara, Duration::ZERO));
        assert!(is_winner(&bet("Rodrigo Gabriel", "Varela", "35387663", "1999-07-11"), Duration::ZERO));
        assert!(is_winner(&bet("Jonathan", "Pérez", "36556481", "2003-10-05"), Duration::ZERO));
    }

    #[test]
    fn pinned_losers_from_the_course_dataset() {
        assert!(!is_winner(&bet("Santiago Lionel", "Lorca", "30904465", "1999-03-17"), Duration::ZERO));
        assert!(!is_winner(&bet("Agustin Emanuel", "Zambrano", "21689196", "2000-05-10"), Duration::ZERO));
    }

    #[test]
    fn the_simulated_cost_is_paid() {
        let started = Instant::now();
        let _ = is_winner(&bet("Ana", "Díaz", "1", "2000-01-31"), Duration::from_millis(20));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
