//! A bet's four fields as a dataset row holds them, checked, borrowed: what the agency batches
//! without building (and allocating) a [`Bet`] for every row.
//!
//! The rules are [`Bet::from_fields`]'s: the check here only decides fast that a row is valid
//! (the common case); for a row it refuses, `Bet::from_fields` itself names the reason, so the
//! messages stay protocol's. The accepted sets are the same (tests compare them, dates
//! exhaustively over the years a bet can carry).
//!
//! This belongs in `protocol`, beside `Bet`, as a borrowed bet sharing its checks; it lives
//! here until `protocol` has one.

use protocol::{
    bet::{MAX_DOCUMENT_LEN, MAX_NAME_LEN},
    Bet, InvalidBet, WireBetRef,
};

/// A valid bet's fields, borrowed: names present and bounded, document made of digits, birth
/// date a real calendar date written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BetFields<'a> {
    first_name: &'a str,
    last_name: &'a str,
    document: &'a str,
    /// Exactly ten bytes, `YYYY-MM-DD`: what `Bet::birthdate_bytes` gives for the parsed date.
    birthdate: &'a str,
}

impl<'a> BetFields<'a> {
    /// Checks the fields as [`Bet::from_fields`] does.
    ///
    /// # Errors
    /// The first rule the fields break, as `Bet::from_fields` reports it.
    pub fn check(
        first_name: &'a str,
        last_name: &'a str,
        document: &'a str,
        birthdate: &'a str,
    ) -> Result<BetFields<'a>, InvalidBet> {
        let fields = BetFields { first_name, last_name, document, birthdate };
        if is_name(first_name) && is_name(last_name) && is_document(document) && is_date(birthdate) {
            return Ok(fields);
        }
        // Refused here: protocol's own check says why. Should it accept (it cannot: the
        // tests compare both), the bet is valid by protocol's rules and is taken.
        Bet::from_fields(first_name, last_name, document, birthdate).map(|_| fields)
    }

    /// The player's first name(s).
    #[must_use]
    pub fn first_name(&self) -> &'a str {
        self.first_name
    }

    /// The player's last name(s).
    #[must_use]
    pub fn last_name(&self) -> &'a str {
        self.last_name
    }

    /// The player's document, ASCII digits.
    #[must_use]
    pub fn document(&self) -> &'a str {
        self.document
    }

    /// The birth date, written `YYYY-MM-DD`.
    #[must_use]
    pub fn birthdate(&self) -> &'a str {
        self.birthdate
    }

    /// The bet as it travels: the same bytes `WireBets::push_bet` writes for the `Bet`.
    #[must_use]
    pub fn wire(&self) -> WireBetRef<'a> {
        WireBetRef {
            first_name: self.first_name,
            last_name: self.last_name,
            document: self.document,
            birthdate: self.birthdate,
        }
    }

    /// The bet with its own strings (one allocation), for what needs a [`Bet`].
    ///
    /// # Panics
    /// Never: the fields passed the same checks `Bet::from_fields` makes.
    #[must_use]
    pub fn to_bet(&self) -> Bet {
        Bet::from_fields(self.first_name, self.last_name, self.document, self.birthdate)
            .expect("fields checked by the rules of Bet::from_fields")
    }
}

/// `check_name` of `protocol::bet`: not only whitespace, at most [`MAX_NAME_LEN`] bytes. A
/// name starting with an ASCII letter or digit is not whitespace; any other is trimmed
/// (`trim().is_empty()` looks no further than the first character that is not whitespace).
fn is_name(value: &str) -> bool {
    let starts_alphanumeric = value.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
    value.len() <= MAX_NAME_LEN && (starts_alphanumeric || !value.trim_start().is_empty())
}

fn is_document(value: &str) -> bool {
    // Without stopping at the first non-digit: a branch a byte costs more than the few bytes.
    (1..=MAX_DOCUMENT_LEN).contains(&value.len())
        && value.bytes().fold(true, |digits, b| digits & b.is_ascii_digit())
}

/// `parse_date` of `protocol::bet` without building the date: exactly `YYYY-MM-DD` in ASCII
/// digits, and a day of the proleptic Gregorian calendar (chrono's, for years 0 to 9999).
fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if ![0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| b[i].is_ascii_digit()) {
        return false;
    }
    let digit = |i: usize| u32::from(b[i] - b'0');
    let year = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3);
    let (month, day) = (digit(5) * 10 + digit(6), digit(8) * 10 + digit(9));
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both checks give the same answer, and the same reason when they refuse.
    fn same(first: &str, last: &str, document: &str, birthdate: &str) {
        let ours = BetFields::check(first, last, document, birthdate);
        let theirs = Bet::from_fields(first, last, document, birthdate);
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{first:?} {last:?} {document:?} {birthdate:?}");
        let fast = is_name(first) && is_name(last) && is_document(document) && is_date(birthdate);
        assert_eq!(
            fast,
            theirs.is_ok(),
            "the fast check alone decides: {first:?} {last:?} {document:?} {birthdate:?}"
        );
    }

    #[test]
    fn every_day_of_every_year_a_bet_can_carry() {
        for year in 0..=9999 {
            for (month, day) in
                [(1, 1), (1, 31), (2, 28), (2, 29), (2, 30), (4, 30), (4, 31), (12, 31), (12, 32)]
            {
                same("Ana", "Díaz", "1", &format!("{year:04}-{month:02}-{day:02}"));
            }
        }
        for year in [0, 1, 4, 100, 400, 1900, 1999, 2000, 2001, 2024, 2100, 9999] {
            for month in 0..=99 {
                for day in 0..=99 {
                    same("Ana", "Díaz", "1", &format!("{year:04}-{month:02}-{day:02}"));
                }
            }
        }
    }

    #[test]
    fn malformed_dates() {
        for date in [
            "",
            "2000-1-01",
            "2000-01-1",
            "+200-01-01",
            "-200-01-01",
            "2000/01/01",
            "2000-01-01 ",
            " 2000-01-01",
            "20000-01-01",
            "2000-0a-01",
            "２000-01-01",
            "2000-01-0١",
            "2000-01-011",
            "2000--1-01",
            "0000-00-00",
        ] {
            same("Ana", "Díaz", "1", date);
        }
    }

    #[test]
    fn names_and_documents() {
        let long = "a".repeat(MAX_NAME_LEN);
        let too_long = "ñ".repeat(MAX_NAME_LEN / 2 + 1);
        let names = [
            "",
            " ",
            "\t",
            "\u{b}",
            "\u{a0}",
            "\u{3000} ",
            " \u{85}\u{2028}x",
            "Ana",
            " Ana ",
            "\u{1c}",
            &long,
            &too_long,
        ];
        let documents = [
            "",
            "1",
            "0001",
            "12.3",
            "-1",
            "٣",
            "1 ",
            &"9".repeat(MAX_DOCUMENT_LEN),
            &"9".repeat(MAX_DOCUMENT_LEN + 1),
        ];
        for first in names {
            for last in names {
                for document in documents {
                    same(first, last, document, "2000-02-29");
                }
            }
        }
    }

    #[test]
    fn travels_and_hashes_as_the_bet() {
        let fields = BetFields::check("Tiago Nicolás", "Fornerón", "34407251", "2001-08-29").unwrap();
        let bet = fields.to_bet();
        let mut from_bet = protocol::WireBets::default();
        from_bet.push_bet(&bet);
        let mut from_fields = protocol::WireBets::default();
        from_fields.push(fields.wire());
        assert_eq!(from_bet, from_fields);
        assert_eq!(fields.wire().encoded_len(), bet.encoded_len());
    }
}
