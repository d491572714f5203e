//! Splitting bets into batches: pure logic, no I/O.
//!
//! A batch closes when it holds `batch.maxAmount` bets, or when one more bet would take its
//! frame past 8 KiB on the wire, whichever comes first.

use protocol::{BetRef, EncodedBets, Request};

/// Largest frame (length prefix included) a batch may take on the wire.
pub const MAX_BATCH_FRAME_LEN: usize = 8 * 1024;

/// Accumulates bets and hands out full batches.
#[derive(Debug)]
pub struct Batcher {
    max_bets: usize,
    max_frame_len: usize,
    /// The frame of a batch without bets: each bet adds its encoded length to it.
    empty_frame_len: usize,
    /// The current batch's bets, already in their wire layout.
    bets: EncodedBets,
    /// A sent batch handed back ([`Batcher::recycle`]): the next batch fills its buffer.
    spare: Option<EncodedBets>,
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
        Batcher {
            max_bets: max_bets.max(1),
            max_frame_len,
            empty_frame_len: Request::bet_batch_frame_len(0),
            bets: EncodedBets::default(),
            spare: None,
        }
    }

    /// Adds `bet`; returns a batch when one is ready to send: the bets before this one if
    /// `bet` would overflow the frame, or the bets up to this one if they reach the count.
    pub fn push(&mut self, bet: &BetRef<'_>) -> Option<EncodedBets> {
        let len = bet.encoded_len();
        let overflows = self.empty_frame_len + self.bets.byte_len() + len > self.max_frame_len;
        let ready = if overflows && !self.bets.is_empty() { self.take() } else { None };
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
    pub fn finish(&mut self) -> Option<EncodedBets> {
        self.take()
    }

    /// Takes back a batch that was sent and is no longer needed: its buffer, already the
    /// size of a batch, holds a later one, so a long upload allocates for its first batches
    /// only.
    pub fn recycle(&mut self, mut sent: EncodedBets) {
        sent.clear();
        self.spare = Some(sent);
    }

    fn take(&mut self) -> Option<EncodedBets> {
        if self.bets.is_empty() {
            return None;
        }
        // The next batch is about the size of this one: a sent batch's buffer, or one
        // allocation, none a bet.
        let next = match self.spare.take() {
            Some(spare) => spare,
            None => EncodedBets::with_capacity(self.bets.byte_len()),
        };
        Some(std::mem::replace(&mut self.bets, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use protocol::{Bet, WireBet, WireBets};

    fn bet(n: usize) -> Bet {
        Bet::new(format!("Nombre{n}"), "Álvarez".into(), format!("{:08}", n), "1990-01-01").unwrap()
    }

    /// The batches of `count` bets, read back as `WireBets` to look at.
    fn split(max_bets: usize, max_frame_len: usize, count: usize) -> Vec<WireBets> {
        let mut batcher = Batcher::with_frame_limit(max_bets, max_frame_len);
        let mut batches: Vec<EncodedBets> = (0..count)
            .filter_map(|n| {
                let bet = bet(n);
                let fields = BetRef::new(bet.first_name(), bet.last_name(), bet.document(), "1990-01-01");
                batcher.push(&fields.unwrap())
            })
            .collect();
        batches.extend(batcher.finish());
        batches.iter().map(EncodedBets::to_wire_bets).collect()
    }

    fn frame_len(batch: &WireBets) -> usize {
        let len = Request::bet_batch_frame_len(batch.iter().map(|b| b.encoded_len()).sum());
        // The prediction is the encoded frame's length.
        let encoded =
            protocol::codec::encoded_len(&Request::BetBatch { agency: 1, sequence: 1, bets: batch.clone() });
        assert_eq!(len, encoded + protocol::frame::PREFIX_LEN);
        len
    }

    fn lens(batches: &[WireBets]) -> Vec<usize> {
        batches.iter().map(WireBets::len).collect()
    }

    #[test]
    fn batches_hold_max_amount_bets_and_keep_order() {
        let batches = split(3, MAX_BATCH_FRAME_LEN, 10);
        assert_eq!(lens(&batches), [3, 3, 3, 1]);
        let flat: Vec<WireBet> = batches.iter().flat_map(WireBets::iter).map(|b| b.to_owned()).collect();
        assert_eq!(flat, (0..10).map(|n| WireBet::from(bet(n))).collect::<Vec<_>>());
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
        assert_eq!(lens(&batches).iter().sum::<usize>(), 2_000);
    }

    #[test]
    fn the_frame_limit_and_the_count_combine() {
        let one = frame_len(&split(1, MAX_BATCH_FRAME_LEN, 1)[0]);
        let per_bet = bet(0).encoded_len();
        // Room for exactly two bets by size; the count allows five.
        let batches = split(5, one + per_bet, 5);
        assert_eq!(lens(&batches), [2, 2, 1]);
    }

    #[test]
    fn a_recycled_batch_holds_the_next_one_and_nothing_of_its_own() {
        fn fields(b: &Bet) -> BetRef<'_> {
            BetRef::new(b.first_name(), b.last_name(), b.document(), "1990-01-01").unwrap()
        }
        let mut batcher = Batcher::with_frame_limit(2, MAX_BATCH_FRAME_LEN);
        let (zero, one, two, three) = (bet(0), bet(1), bet(2), bet(3));
        assert!(batcher.push(&fields(&zero)).is_none());
        let first = batcher.push(&fields(&one)).unwrap();
        let room = first.clone();
        batcher.recycle(first);
        assert!(batcher.push(&fields(&two)).is_none());
        let second = batcher.push(&fields(&three)).unwrap();
        assert_ne!(second, room);
        let bets: Vec<WireBet> = second.to_wire_bets().iter().map(|b| b.to_owned()).collect();
        assert_eq!(bets, [WireBet::from(two), WireBet::from(three)]);
    }

    #[test]
    fn single_bet_batches_and_no_bets() {
        assert_eq!(lens(&split(1, MAX_BATCH_FRAME_LEN, 3)), [1, 1, 1]);
        assert!(split(7, MAX_BATCH_FRAME_LEN, 0).is_empty());
    }
}
