//! Splitting bets into batches: pure logic, no I/O.
//!
//! A batch closes when it holds `batch.maxAmount` bets, or when one more bet would take its
//! frame past 8 KiB on the wire, whichever comes first.

use protocol::{Request, WireBet};

/// Largest frame (length prefix included) a batch may take on the wire.
pub const MAX_BATCH_FRAME_LEN: usize = 8 * 1024;

/// Accumulates bets and hands out full batches.
#[derive(Debug)]
pub struct Batcher {
    max_bets: usize,
    max_frame_len: usize,
    bets: Vec<WireBet>,
    /// Bytes the current batch's bets take in the payload.
    bets_len: usize,
}

impl Batcher {
    /// Batches of at most `max_bets` bets (at least 1) and [`MAX_BATCH_FRAME_LEN`] bytes.
    #[must_use]
    pub fn new(max_bets: usize) -> Batcher {
        Batcher::with_frame_limit(max_bets, MAX_BATCH_FRAME_LEN)
    }

    /// Batches of at most `max_bets` bets (at least 1) and `max_frame_len` bytes.
    #[must_use]
    pub fn with_frame_limit(max_bets: usize, max_frame_len: usize) -> Batcher {
        Batcher { max_bets: max_bets.max(1), max_frame_len, bets: Vec::new(), bets_len: 0 }
    }

    /// Adds `bet`; returns a batch when one is ready to send: the bets before this one if
    /// `bet` would overflow the frame, or the bets up to this one if they reach the count.
    pub fn push(&mut self, bet: WireBet) -> Option<Vec<WireBet>> {
        let len = bet.encoded_len();
        let overflows = Request::bet_batch_frame_len(self.bets_len + len) > self.max_frame_len;
        let ready = if overflows && !self.bets.is_empty() { self.take() } else { None };
        self.bets_len += len;
        self.bets.push(bet);
        if self.bets.len() >= self.max_bets {
            // Only one of the two can happen: right after `take` the batch holds one bet,
            // which reaches the count only when `max_bets` is 1, and then the batch was
            // already empty before this push.
            debug_assert!(ready.is_none());
            return self.take();
        }
        ready
    }

    /// The last, partial batch, if any bets are left.
    pub fn finish(&mut self) -> Option<Vec<WireBet>> {
        self.take()
    }

    fn take(&mut self) -> Option<Vec<WireBet>> {
        if self.bets.is_empty() {
            return None;
        }
        self.bets_len = 0;
        Some(std::mem::replace(&mut self.bets, Vec::with_capacity(self.max_bets.min(1024))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bet(n: usize) -> WireBet {
        WireBet {
            first_name: format!("Nombre{n}"),
            last_name: "Álvarez".into(),
            document: format!("{:08}", n),
            birthdate: "1990-01-01".into(),
        }
    }

    fn split(max_bets: usize, max_frame_len: usize, count: usize) -> Vec<Vec<WireBet>> {
        let mut batcher = Batcher::with_frame_limit(max_bets, max_frame_len);
        let mut batches: Vec<Vec<WireBet>> = (0..count).filter_map(|n| batcher.push(bet(n))).collect();
        batches.extend(batcher.finish());
        batches
    }

    fn frame_len(batch: &[WireBet]) -> usize {
        Request::bet_batch_frame_len(batch.iter().map(WireBet::encoded_len).sum())
    }

    #[test]
    fn batches_hold_max_amount_bets_and_keep_order() {
        let batches = split(3, MAX_BATCH_FRAME_LEN, 10);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
        let flat: Vec<WireBet> = batches.into_iter().flatten().collect();
        assert_eq!(flat, (0..10).map(bet).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_never_exceeds_8_kib_on_the_wire() {
        let batches = split(10_000, MAX_BATCH_FRAME_LEN, 2_000);
        assert!(batches.len() > 1);
        for batch in &batches[..batches.len() - 1] {
            let len = frame_len(batch);
            assert!(len <= MAX_BATCH_FRAME_LEN, "{len}");
            assert!(len + bet(0).encoded_len() > MAX_BATCH_FRAME_LEN, "full batches are filled: {len}");
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 2_000);
    }

    #[test]
    fn the_frame_limit_and_the_count_combine() {
        let one = frame_len(&[bet(0)]);
        let per_bet = bet(0).encoded_len();
        // Room for exactly two bets by size; the count allows five.
        let batches = split(5, one + per_bet, 5);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    }

    #[test]
    fn single_bet_batches_and_no_bets() {
        assert_eq!(split(1, MAX_BATCH_FRAME_LEN, 3).iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(split(7, MAX_BATCH_FRAME_LEN, 0).is_empty());
    }
}
