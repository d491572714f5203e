//! The lottery's rules: which bets win.
//!
//! `is_winner` is the course's provided function made exact: a bet wins when the 64-bit FNV-1a
//! hash of `first_name|last_name|document|YYYY-MM-DD` (UTF-8) is divisible by 17, which makes
//! about one bet in seventeen a winner. Like the course's function it stands for expensive
//! work, simulated by sleeping a configurable delay before answering.
//!
//! The simulated cost is paid per batch against deadlines, not one `thread::sleep(delay)` per
//! bet: a sleep wakes late (timer slack and scheduling, about 9% of 1 ms on the development
//! machine), and paying that on every bet made a batch of n bets take about 1.09 × n × delay.
//! In [`winners`] the k-th check of a batch ends at `start + k × delay`, so a late wake-up is
//! taken from the next bet's sleep instead of adding up.

use std::{
    thread,
    time::{Duration, Instant},
};

use protocol::BetRef;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Whether `bet` wins: its hash is divisible by 17. The rule alone, free; [`winners`] pays the
/// simulated cost.
#[must_use]
pub fn is_winner(bet: BetRef<'_>) -> bool {
    bet_hash(bet).is_multiple_of(17)
}

/// The positions in `bets` of the winners, after paying `delay` per bet against one deadline
/// per batch: the k-th bet's check ends at `start + k × delay`, so the batch takes
/// `bets.len() × delay` plus one wake-up's lateness, never less.
///
/// `finish_by` is asked before every paid check: once it names an instant (the central is
/// stopping) and the batch's check would end after it, the check is abandoned and `None`
/// returned, so a long batch cannot hold a stop.
///
/// The check's clock starts at `start`, the instant its request was taken: whatever the
/// connection did since (writing the answers of the batch before, `net/held_answers.rs`)
/// comes out of the sleeps like a late wake-up, so the batch still ends at
/// `start + bets.len() × delay`.
#[must_use]
pub fn winners(
    bets: &[BetRef<'_>],
    delay: Duration,
    start: Instant,
    finish_by: impl Fn() -> Option<Instant>,
) -> Option<Vec<u32>> {
    if delay.is_zero() {
        return Some((0u32..).zip(bets).filter(|&(_, &bet)| is_winner(bet)).map(|(i, _)| i).collect());
    }
    let end = u32::try_from(bets.len()).ok().and_then(|n| delay.checked_mul(n)).map(|total| start + total);
    let mut deadline = start;
    let mut found = Vec::new();
    for (i, &bet) in (0u32..).zip(bets) {
        if let Some(limit) = finish_by() {
            if end.is_none_or(|end| end > limit) {
                return None;
            }
        }
        deadline += delay;
        sleep_until(deadline);
        if is_winner(bet) {
            found.push(i);
        }
    }
    Some(found)
}

/// Sleeps until `deadline`; `thread::sleep` may wake early on some platforms, so it loops.
fn sleep_until(deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        thread::sleep(left);
    }
}

/// FNV-1a of `first_name|last_name|document|YYYY-MM-DD`, hashed piece by piece so no string
/// is built.
#[must_use]
pub fn bet_hash(bet: BetRef<'_>) -> u64 {
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
    feed(bet.birthdate_str().as_bytes());
    hash
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A checked bet; test strings live for the whole test, so it borrows them.
    fn bet<'a>(first: &'a str, last: &'a str, doc: &'a str, date: &'a str) -> BetRef<'a> {
        BetRef::new(first, last, doc, date).unwrap()
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
        assert_eq!(bet_hash(kiara), 0x3443_1564_4823_85c8);
        assert!(is_winner(kiara));
        assert!(is_winner(bet("Rodrigo Gabriel", "Varela", "35387663", "1999-07-11")));
        assert!(is_winner(bet("Jonathan", "Pérez", "36556481", "2003-10-05")));
    }

    #[test]
    fn pinned_losers_from_the_course_dataset() {
        assert!(!is_winner(bet("Santiago Lionel", "Lorca", "30904465", "1999-03-17")));
        assert!(!is_winner(bet("Agustin Emanuel", "Zambrano", "21689196", "2000-05-10")));
    }

    #[test]
    fn the_simulated_cost_is_paid_for_every_bet() {
        let ana = bet("Ana", "Díaz", "1", "2000-01-31");
        let started = Instant::now();
        assert_eq!(winners(&vec![ana; 10], Duration::from_millis(2), Instant::now(), || None), Some(vec![]));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_batch_pays_exactly_its_bets() {
        let bets = vec![
            bet("Kiara Valentina", "Basile", "32250087", "1987-05-17"),
            bet("Santiago Lionel", "Lorca", "30904465", "1999-03-17"),
            bet("Jonathan", "Pérez", "36556481", "2003-10-05"),
        ];
        assert_eq!(winners(&bets, Duration::ZERO, Instant::now(), || None), Some(vec![0, 2]));
        let started = Instant::now();
        assert_eq!(winners(&bets, Duration::from_millis(5), Instant::now(), || None), Some(vec![0, 2]));
        assert!(started.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn a_check_that_would_end_past_the_stop_is_abandoned_at_once() {
        let bets = vec![bet("Ana", "Díaz", "1", "2000-01-31"); 1000];
        let started = Instant::now();
        let limit = started + Duration::from_millis(100);
        assert_eq!(winners(&bets, Duration::from_millis(10), Instant::now(), || Some(limit)), None);
        assert!(started.elapsed() < Duration::from_secs(5), "abandoned without paying 10 s");
    }

    #[test]
    fn a_check_that_ends_before_the_stop_is_finished() {
        let bets = vec![bet("Kiara Valentina", "Basile", "32250087", "1987-05-17"); 3];
        let limit = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            winners(&bets, Duration::from_millis(2), Instant::now(), || Some(limit)),
            Some(vec![0, 1, 2])
        );
    }
}
