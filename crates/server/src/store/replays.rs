//! The answers an agency may ask for again: those of its last few batches only.
//!
//! An agency whose connection broke sends again the batches it had in flight (at most its
//! window, [`protocol::MAX_WINDOW`] at the very most), so the central keeps the answers of the last [`KEPT`]
//! batches of each agency, and the count of all of them. What it keeps no longer grows with
//! the number of batches; a replay older than that is refused, not answered wrongly.

use std::collections::VecDeque;

/// Answers kept per agency: an agency's window is at most [`protocol::MAX_WINDOW`] batches,
/// so every batch it may legitimately send again is among these. About 25 KiB an agency once
/// it has sent that many (about 100 bytes an answer).
pub const KEPT: usize = protocol::MAX_WINDOW;

/// One agency's committed batches: how many, and the answers (`T`, the ledger's record of a
/// committed batch) of the last [`KEPT`].
#[derive(Debug, Clone)]
pub struct Recent<T> {
    /// Batches committed: the last sequence.
    committed: u64,
    /// Batches `committed - len + 1` to `committed`.
    kept: VecDeque<T>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent { committed: 0, kept: VecDeque::new() }
    }
}

impl<T> Recent<T> {
    /// Counts the next batch and keeps its answer, forgetting the oldest beyond [`KEPT`].
    pub fn push(&mut self, result: T) {
        self.committed += 1;
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(result);
    }

    /// The last committed sequence (0: none).
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        self.committed
    }

    /// The oldest sequence whose answer is kept.
    #[must_use]
    pub fn oldest_kept(&self) -> u64 {
        self.committed + 1 - self.kept.len() as u64
    }

    /// Committed batch `sequence`, if still kept.
    #[must_use]
    pub fn get(&self, sequence: u64) -> Option<&T> {
        let index = sequence.checked_sub(self.oldest_kept())?;
        self.kept.get(usize::try_from(index).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_answers_are_kept_and_the_count_stays_exact() {
        let mut recent = Recent::default();
        assert_eq!(recent.last_sequence(), 0);
        assert_eq!(recent.get(1), None);
        let batch = |sequence: u64| (sequence, vec![u32::try_from(sequence).unwrap()]);
        for sequence in 1..=(KEPT as u64 + 10) {
            recent.push(batch(sequence));
        }
        assert_eq!(recent.last_sequence(), KEPT as u64 + 10);
        assert_eq!(recent.oldest_kept(), 11);
        assert_eq!(recent.get(10), None, "forgotten");
        assert_eq!(recent.get(11), Some(&batch(11)));
        assert_eq!(recent.get(KEPT as u64 + 10), Some(&batch(KEPT as u64 + 10)));
        assert_eq!(recent.get(KEPT as u64 + 11), None, "not committed yet");
        assert_eq!(recent.get(0), None);
    }
}
