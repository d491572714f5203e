//! Reading an agency's dataset: the CSV file as a stream of valid bets, borrowed.
//!
//! - `bets`: [`Dataset`], valid rows handed out one at a time, invalid ones logged and
//!   counted;
//! - `records`: the file split into records as the csv crate would, in chunks checked for
//!   UTF-8 once;
//! - `scan`: the word-at-a-time scan of one line for its separators.

mod bets;
mod records;
mod scan;

pub use bets::{Dataset, DatasetError, Row};
