//! A batch's bets written in their wire layout as they are added: what an agency fills row by
//! row and sends with one copy, not two (into a [`WireBets`], then into the frame).
//!
//! The layout is a `BetBatch`'s after its bet count, written and read by `codec` (the only
//! module that knows the encoding). Only checked bets ([`BetRef`]) go in, so the bytes
//! always decode to the bets that were pushed.

use crate::{bet::BetRef, codec, message::WireBets};

/// Bets in their wire layout, and how many.
#[derive(Debug, Clone, Default)]
pub struct EncodedBets {
    /// `bytes[..end]` are the bets; the rest is room, zeroed once when it was made and
    /// overwritten since, so a bet is written with plain stores (no growth check and no
    /// `memcpy` call a field), and a cleared batch's room holds the next.
    bytes: Vec<u8>,
    end: usize,
    count: usize,
}

impl PartialEq for EncodedBets {
    fn eq(&self, other: &EncodedBets) -> bool {
        self.count == other.count && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EncodedBets {}

impl EncodedBets {
    /// No bets, with room for `bytes` bytes of them.
    #[must_use]
    pub fn with_capacity(bytes: usize) -> EncodedBets {
        EncodedBets { bytes: vec![0; bytes], end: 0, count: 0 }
    }

    /// Appends `bet` in its wire layout.
    pub fn push(&mut self, bet: &BetRef<'_>) {
        let end = self.end + bet.encoded_len();
        if end > self.bytes.len() {
            // At least doubled, so a batch's room is made a few times, not a bet at a time.
            self.bytes.resize(end.max(self.bytes.len() * 2), 0);
        }
        self.end = codec::put_bet(&mut self.bytes, self.end, bet);
        self.count += 1;
    }

    /// How many bets it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds no bets.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes its bets take in a `BetBatch` payload (the sum of their
    /// [`BetRef::encoded_len`]).
    #[must_use]
    pub fn byte_len(&self) -> usize {
        self.end
    }

    /// Removes every bet, keeping the room they took: a sent batch's buffer holds the next.
    pub fn clear(&mut self) {
        self.end = 0;
        self.count = 0;
    }

    /// The bytes that follow a `BetBatch`'s bet count.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.end]
    }

    /// The same bets, packed as a [`WireBets`] (for a caller that looks them up by place).
    ///
    /// # Panics
    /// Never: the bytes are the layout of checked bets, written by [`EncodedBets::push`].
    #[must_use]
    pub fn to_wire_bets(&self) -> WireBets {
        codec::bets_of(self.as_bytes(), self.count as u64)
            .expect("pushed bets are the layout of checked bets")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec, frame, Bet, Request};

    fn bets() -> Vec<Bet> {
        vec![
            Bet::new("Santiago Lionel".into(), "Lorca".into(), "30904465".into(), "1999-03-17").unwrap(),
            Bet::new("Ñ".repeat(40), "O'Brien, Jr".into(), "1".into(), "2000-02-29").unwrap(),
        ]
    }

    #[test]
    fn the_layout_is_a_bet_batchs_after_its_count() {
        let mut encoded = EncodedBets::default();
        let mut wire = WireBets::default();
        for bet in bets() {
            encoded.push(&bet.as_ref());
            wire.push_bet(&bet);
        }
        assert_eq!((encoded.len(), encoded.byte_len()), (2, bets().iter().map(Bet::encoded_len).sum()));
        let request = Request::BetBatch { agency: 3, sequence: 9, bets: wire.clone() };
        let mut frame_bytes = Vec::new();
        codec::append_frame(&request, &mut frame_bytes, frame::DEFAULT_MAX_FRAME_LEN).unwrap();
        // Prefix, variant, agency, sequence, count: then exactly the encoded bets.
        assert_eq!(&frame_bytes[4 + 4 + 4 + 8 + 8..], encoded.as_bytes());
        assert_eq!(encoded.to_wire_bets(), wire);
        encoded.clear();
        assert!(encoded.is_empty() && encoded.byte_len() == 0);
        assert_eq!(encoded.to_wire_bets(), WireBets::default());
    }

    #[test]
    fn a_cleared_batch_holds_the_next_with_nothing_of_its_own() {
        let many: Vec<Bet> = (0..500)
            .map(|n| Bet::new(format!("Nombre{n}"), "Fornerón".into(), n.to_string(), "1990-01-01").unwrap())
            .collect();
        // Grown from nothing, a bet at a time.
        let mut reused = EncodedBets::default();
        for bet in &many {
            reused.push(&bet.as_ref());
        }
        reused.clear();
        let mut fresh = EncodedBets::with_capacity(16);
        for bet in bets() {
            reused.push(&bet.as_ref());
            fresh.push(&bet.as_ref());
        }
        assert_eq!(reused, fresh);
        assert_eq!(reused.as_bytes(), fresh.as_bytes());
        assert_eq!(reused.to_wire_bets(), WireBets::from_iter(bets().into_iter().map(crate::WireBet::from)));
    }
}
