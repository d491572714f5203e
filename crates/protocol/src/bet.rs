//! The domain's bet: a player of an agency, valid by construction.
//!
//! Both ends validate with the same rules: the agency skips an invalid CSV row before it is
//! sent, and the central refuses a batch holding an invalid bet before anything is stored.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::{message::WireBetRef, WireBet};

/// Longest first or last name accepted, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 256;

/// Longest document accepted, in digits. Real documents have 7 to 9; the cap only keeps a
/// hostile peer from making the central store and hash megabytes of digits.
pub const MAX_DOCUMENT_LEN: usize = 32;

/// A player's bet, checked: names present and bounded, document made of digits, birth date a
/// real calendar date.
///
/// The three text fields share one allocation (a bet is built and dropped for every row an
/// agency reads and every bet the central checks, so allocations per bet are what it costs).
#[derive(Clone, PartialEq, Eq)]
pub struct Bet {
    /// First name, last name and document, one after the other.
    text: String,
    /// Where the first name ends in `text`.
    first_end: u16,
    /// Where the last name ends in `text`.
    last_end: u16,
    birthdate: NaiveDate,
}

impl fmt::Debug for Bet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bet")
            .field("first_name", &self.first_name())
            .field("last_name", &self.last_name())
            .field("document", &self.document())
            .field("birthdate", &self.birthdate)
            .finish()
    }
}

/// Why a bet is not valid. Its `Display` is the reason a person reads in the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidBet {
    /// A name is empty or only whitespace.
    EmptyName(&'static str),
    /// A name is longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong(&'static str, usize),
    /// The document is empty, too long, or has something other than ASCII digits.
    Document(String),
    /// The birth date is not a real date written `YYYY-MM-DD`.
    Birthdate(String),
    /// A CSV row without exactly four fields.
    FieldCount(usize),
}

impl fmt::Display for InvalidBet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidBet::EmptyName(field) => write!(f, "{field} is empty"),
            InvalidBet::NameTooLong(field, len) => {
                write!(f, "{field} is {len} bytes long, more than {MAX_NAME_LEN}")
            }
            InvalidBet::Document(doc) => {
                write!(f, "document {doc:?} is not 1 to {MAX_DOCUMENT_LEN} ASCII digits")
            }
            InvalidBet::Birthdate(date) => {
                write!(f, "birthdate {date:?} is not a real date written YYYY-MM-DD")
            }
            InvalidBet::FieldCount(n) => {
                write!(f, "expected 4 fields (first_name,last_name,document,birthdate), found {n}")
            }
        }
    }
}

impl std::error::Error for InvalidBet {}

impl Bet {
    /// Checks and builds a bet.
    ///
    /// # Errors
    /// The first rule the fields break, as an [`InvalidBet`].
    pub fn new(
        first_name: String,
        last_name: String,
        document: String,
        birthdate: &str,
    ) -> Result<Bet, InvalidBet> {
        Bet::from_fields(&first_name, &last_name, &document, birthdate)
    }

    /// Checks and builds a bet from borrowed fields, with one allocation.
    ///
    /// # Errors
    /// The first rule the fields break, as an [`InvalidBet`].
    pub fn from_fields(
        first_name: &str,
        last_name: &str,
        document: &str,
        birthdate: &str,
    ) -> Result<Bet, InvalidBet> {
        check_name("first_name", first_name)?;
        check_name("last_name", last_name)?;
        if document.is_empty()
            || document.len() > MAX_DOCUMENT_LEN
            || !document.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InvalidBet::Document(truncated(document)));
        }
        let birthdate = parse_date(birthdate).ok_or_else(|| InvalidBet::Birthdate(truncated(birthdate)))?;
        let mut text = String::with_capacity(first_name.len() + last_name.len() + document.len());
        text.push_str(first_name);
        // Names are at most MAX_NAME_LEN (256) bytes each: both ends fit a u16.
        let first_end = first_name.len() as u16;
        text.push_str(last_name);
        let last_end = text.len() as u16;
        text.push_str(document);
        Ok(Bet { text, first_end, last_end, birthdate })
    }

    /// The player's first name(s).
    #[must_use]
    pub fn first_name(&self) -> &str {
        &self.text[..usize::from(self.first_end)]
    }

    /// The player's last name(s).
    #[must_use]
    pub fn last_name(&self) -> &str {
        &self.text[usize::from(self.first_end)..usize::from(self.last_end)]
    }

    /// The player's document, ASCII digits.
    #[must_use]
    pub fn document(&self) -> &str {
        &self.text[usize::from(self.last_end)..]
    }

    /// Bytes this bet adds to a `BetBatch` payload (as [`WireBet::encoded_len`]).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        4 * 8 + self.text.len() + 10
    }

    /// The player's birth date.
    #[must_use]
    pub fn birthdate(&self) -> NaiveDate {
        self.birthdate
    }

    /// The birth date as the ten bytes `YYYY-MM-DD`, without allocating.
    #[must_use]
    pub fn birthdate_bytes(&self) -> [u8; 10] {
        format_date(self.birthdate)
    }
}

impl TryFrom<WireBet> for Bet {
    type Error = InvalidBet;

    fn try_from(wire: WireBet) -> Result<Bet, InvalidBet> {
        Bet::try_from(wire.as_ref())
    }
}

impl TryFrom<WireBetRef<'_>> for Bet {
    type Error = InvalidBet;

    fn try_from(wire: WireBetRef<'_>) -> Result<Bet, InvalidBet> {
        Bet::from_fields(wire.first_name, wire.last_name, wire.document, wire.birthdate)
    }
}

impl From<Bet> for WireBet {
    fn from(bet: Bet) -> WireBet {
        let date = format_date(bet.birthdate);
        WireBet {
            first_name: bet.first_name().to_owned(),
            last_name: bet.last_name().to_owned(),
            document: bet.document().to_owned(),
            // format_date writes ASCII digits and dashes only.
            birthdate: date.iter().map(|&b| char::from(b)).collect(),
        }
    }
}

fn check_name(field: &'static str, value: &str) -> Result<(), InvalidBet> {
    if value.trim().is_empty() {
        return Err(InvalidBet::EmptyName(field));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(InvalidBet::NameTooLong(field, value.len()));
    }
    Ok(())
}

/// Parses exactly `YYYY-MM-DD` (four, two and two ASCII digits) into a real calendar date.
/// Stricter than chrono's `%Y-%m-%d`, which also takes `2000-1-5` or a signed year.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0')))
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

fn format_date(date: NaiveDate) -> [u8; 10] {
    // Dates only come from `parse_date`, so the year is 0..=9999 and fits four digits.
    let (y, m, d) = (date.year().clamp(0, 9999) as u32, date.month(), date.day());
    let digit = |n: u32| b'0' + (n % 10) as u8;
    [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(d / 10),
        digit(d),
    ]
}

/// A field quoted in an error, cut short so a huge hostile field does not flood the log.
fn truncated(s: &str) -> String {
    const KEEP: usize = 40;
    match s.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bet(first: &str, last: &str, doc: &str, date: &str) -> Result<Bet, InvalidBet> {
        Bet::new(first.into(), last.into(), doc.into(), date)
    }

    #[test]
    fn accepts_a_course_row_with_accents() {
        let b = bet("Tiago Nicolás", "Fornerón", "34407251", "2001-08-29").unwrap();
        assert_eq!(b.last_name(), "Fornerón");
        assert_eq!(b.birthdate(), NaiveDate::from_ymd_opt(2001, 8, 29).unwrap());
        assert_eq!(&b.birthdate_bytes(), b"2001-08-29");
    }

    #[test]
    fn names_must_be_present_and_bounded() {
        assert_eq!(bet("", "Lorca", "1", "1999-03-17"), Err(InvalidBet::EmptyName("first_name")));
        assert_eq!(bet("Ana", "  ", "1", "1999-03-17"), Err(InvalidBet::EmptyName("last_name")));
        let long = "ñ".repeat(129); // 258 bytes
        assert_eq!(bet(&long, "Lorca", "1", "1999-03-17"), Err(InvalidBet::NameTooLong("first_name", 258)));
        assert!(bet(&"a".repeat(MAX_NAME_LEN), "Lorca", "1", "1999-03-17").is_ok());
    }

    #[test]
    fn documents_are_ascii_digits() {
        for doc in ["", "12.345.678", "3090446a", "٣٠٩", "-1", &"9".repeat(MAX_DOCUMENT_LEN + 1)] {
            assert!(matches!(bet("Ana", "Díaz", doc, "1999-03-17"), Err(InvalidBet::Document(_))), "{doc}");
        }
        assert!(bet("Ana", "Díaz", "00012", "1999-03-17").is_ok(), "leading zeros are kept");
    }

    #[test]
    fn birthdates_are_real_dates_written_yyyy_mm_dd() {
        for date in [
            "1999-02-29",
            "2001-13-01",
            "2001-00-10",
            "2001-04-31",
            "2001-4-03",
            "01-04-2001",
            "+2001-04-0",
            "2001/04/03",
            "",
        ] {
            assert!(matches!(bet("Ana", "Díaz", "1", date), Err(InvalidBet::Birthdate(_))), "{date}");
        }
        assert!(bet("Ana", "Díaz", "1", "2000-02-29").is_ok(), "a leap day");
    }

    #[test]
    fn wire_roundtrip_keeps_every_field() {
        let original = bet("Agustin Emanuel", "Zambrano", "21689196", "2000-05-10").unwrap();
        let wire = WireBet::from(original.clone());
        assert_eq!(wire.birthdate, "2000-05-10");
        assert_eq!(Bet::try_from(wire).unwrap(), original);
    }

    #[test]
    fn reasons_quote_the_offending_value_briefly() {
        let err = bet("Ana", "Díaz", &"x".repeat(1000), "1999-03-17").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("document \"xxxx"), "{text}");
        assert!(text.len() < 120, "{text}");
    }
}
