//! The lottery's rules: which bets win.
//!
//! `is_winner` is the course's provided function made exact: a bet wins when the 64-bit FNV-1a
//! hash of `first_name|last_name|document|YYYY-MM-DD` (UTF-8) is divisible by 17, which makes
//! about one bet in seventeen a winner. Like the course's function it stands for expensive
//! work, simulated by sleeping a configurable delay before answering.
//!
//! The simulated cost is paid against deadlines, not one `thread::sleep(delay)` per bet: a
//! sleep wakes late (timer slack and scheduling, about 9% of 1 ms on the development machine),
//! and paying that on every bet made a batch of n bets take about 1.09 × n × delay. Bets
//! checked back to back on one thread instead end at `start + k × delay`, so one late wake-up
//! is taken from the next bet's sleep instead of adding up. [`winners`] does the same for a
//! whole batch explicitly.

use std::{
    cell::Cell,
    thread,
    time::{Duration, Instant},
};

use protocol::Bet;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The most time a thread may spend outside the simulated check, between the end of one
/// check's sleep and the start of the next, for the two to count as one run of checks: the hash
/// and the loop take well under a microsecond, while anything between two batches (storing,
/// answering, a network round trip, reading the next batch) takes far more than this.
const BACK_TO_BACK: Duration = Duration::from_micros(20);

thread_local! {
    /// The last simulated check on this thread: its deadline, and when its sleep returned.
    /// The server runs one thread per connection, so this chains the checks of one batch.
    static LAST_CHECK: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
}

/// Whether `bet` wins, after paying `delay` (the simulated cost of the check).
///
/// A check that starts within [`BACK_TO_BACK`] of the previous check's wake-up on the same
/// thread continues its chain: it ends at that check's deadline plus `delay`, so however late
/// a sleep woke up, the lateness (time the thread spent asleep, paid) counts for the next bet
/// instead of adding up. Any other check (the first of a batch, or after a preemption) starts
/// a new chain at `now + delay`. So a batch of n bets takes at least n × delay from its first
/// check, and a late wake-up is paid once, not on every bet.
#[must_use]
pub fn is_winner(bet: &Bet, delay: Duration) -> bool {
    if !delay.is_zero() {
        let now = Instant::now();
        let start = LAST_CHECK
            .get()
            .filter(|&(_, woke)| now.saturating_duration_since(woke) <= BACK_TO_BACK)
            .map_or(now, |(deadline, _)| deadline);
        let deadline = start + delay;
        sleep_until(deadline);
        LAST_CHECK.set(Some((deadline, Instant::now())));
    }
    bet_hash(bet) % 17 == 0
}

/// The positions in `bets` of the winners, after paying `delay` per bet against one deadline
/// per batch: the k-th bet's check ends at `start + k × delay`, so the batch takes
/// `bets.len() × delay` plus one wake-up's lateness, never less.
#[must_use]
pub fn winners(bets: &[Bet], delay: Duration) -> Vec<u32> {
    let start = Instant::now();
    let mut deadline = start;
    (0u32..)
        .zip(bets)
        .filter(|(_, bet)| {
            if !delay.is_zero() {
                deadline += delay;
                sleep_until(deadline);
            }
            bet_hash(bet) % 17 == 0
        })
        .map(|(i, _)| i)
        .collect()
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

    #[test]
    fn checks_back_to_back_do_not_add_up_late_wake_ups() {
        // Each test runs on its own thread, so the chain starts here.
        let ana = bet("Ana", "Díaz", "1", "2000-01-31");
        let delay = Duration::from_millis(2);
        let started = Instant::now();
        for _ in 0..50 {
            let _ = is_winner(&ana, delay);
        }
        let took = started.elapsed();
        assert!(took >= 50 * delay, "50 checks of 2 ms took {took:?}");
        // Generous for a loaded machine: the point is that 50 wake-ups cannot each add 9%.
        assert!(took < 50 * delay + Duration::from_millis(40), "50 checks of 2 ms took {took:?}");
    }

    #[test]
    fn an_idle_thread_gets_no_credit() {
        let ana = bet("Ana", "Díaz", "1", "2000-01-31");
        let delay = Duration::from_millis(10);
        let _ = is_winner(&ana, delay);
        // Idle (waiting for the network, say) well past the last deadline.
        thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        let _ = is_winner(&ana, delay);
        assert!(started.elapsed() >= delay);
    }

    #[test]
    fn a_batch_pays_exactly_its_bets() {
        let bets = vec![
            bet("Kiara Valentina", "Basile", "32250087", "1987-05-17"),
            bet("Santiago Lionel", "Lorca", "30904465", "1999-03-17"),
            bet("Jonathan", "Pérez", "36556481", "2003-10-05"),
        ];
        assert_eq!(winners(&bets, Duration::ZERO), vec![0, 2]);
        let started = Instant::now();
        assert_eq!(winners(&bets, Duration::from_millis(5)), vec![0, 2]);
        assert!(started.elapsed() >= Duration::from_millis(15));
    }
}
