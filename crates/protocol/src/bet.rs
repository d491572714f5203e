//! The domain's bet: a player of an agency, valid by construction.
//!
//! Both ends validate with the same rules: the agency skips an invalid CSV row before it is
//! sent, and the central refuses a batch holding an invalid bet before anything is stored.
//! The rules live in one place, [`BetRef::new`]: a checked bet that borrows its fields, which
//! is all the central needs (it checks a batch without one allocation per bet). [`Bet`] is
//! the same bet owning its fields, for those who keep it (the agency, tests).

use std::fmt;

use chrono::NaiveDate;

use crate::message::{WireBet, WireBetRef, WireBets};

/// Longest first or last name accepted, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 256;

/// Longest document accepted, in digits. Real documents have 7 to 9; the cap only keeps a
/// hostile peer from making the central store and hash megabytes of digits.
pub const MAX_DOCUMENT_LEN: usize = 32;

/// Length of a birth date, written `YYYY-MM-DD`.
pub const BIRTHDATE_LEN: usize = 10;

/// A player's bet, checked, borrowing its fields: names present and bounded, document made of
/// digits, birth date a real calendar date written `YYYY-MM-DD`.
///
/// Invariant: only [`BetRef::new`] (and [`Bet::as_ref`], whose fields passed it) makes one, so
/// every `BetRef` holds fields that passed the checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BetRef<'a> {
    first_name: &'a str,
    last_name: &'a str,
    document: &'a str,
    /// Exactly [`BIRTHDATE_LEN`] bytes, `YYYY-MM-DD`, a real date. The accepted spelling is
    /// the only one (four, two and two digits), so these bytes are also the date's canonical
    /// form: what the digest, the winner rule and the winners file read.
    birthdate: &'a str,
}

/// A player's bet, checked, owning its fields (see [`BetRef`] for the rules).
///
/// The four text fields share one allocation (the agency builds one for every row it reads,
/// so allocations per bet are what it costs).
#[derive(Clone, PartialEq, Eq)]
pub struct Bet {
    /// First name, last name, document and birth date (`YYYY-MM-DD`), one after the other.
    text: String,
    /// Where the first name ends in `text`.
    first_end: u16,
    /// Where the last name ends in `text`.
    last_end: u16,
    /// Where the document ends in `text` (the birth date's ten bytes follow).
    document_end: u16,
}

impl fmt::Debug for BetRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BetRef")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("document", &self.document)
            .field("birthdate", &self.birthdate)
            .finish()
    }
}

impl fmt::Debug for Bet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bet")
            .field("first_name", &self.first_name())
            .field("last_name", &self.last_name())
            .field("document", &self.document())
            .field("birthdate", &self.as_ref().birthdate)
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

// The reasons are built out of line: the checks, inlined where bets are checked one after
// another, stay small.
impl InvalidBet {
    #[cold]
    fn document(document: &str) -> InvalidBet {
        InvalidBet::Document(truncated(document))
    }

    #[cold]
    fn birthdate(birthdate: &str) -> InvalidBet {
        InvalidBet::Birthdate(truncated(birthdate))
    }
}

impl<'a> BetRef<'a> {
    /// Checks a bet's fields: the lottery's rules for a bet, the only place they are written.
    ///
    /// # Errors
    /// The first rule the fields break, as an [`InvalidBet`].
    #[inline]
    pub fn new(
        first_name: &'a str,
        last_name: &'a str,
        document: &'a str,
        birthdate: &'a str,
    ) -> Result<BetRef<'a>, InvalidBet> {
        check_name("first_name", first_name)?;
        check_name("last_name", last_name)?;
        if document.is_empty() || document.len() > MAX_DOCUMENT_LEN || !all_ascii_digits(document.as_bytes())
        {
            return Err(InvalidBet::document(document));
        }
        if parse_date(birthdate).is_none() {
            return Err(InvalidBet::birthdate(birthdate));
        }
        Ok(BetRef { first_name, last_name, document, birthdate })
    }

    /// Bytes of its four fields together.
    #[must_use]
    pub fn text_len(&self) -> usize {
        self.first_name.len() + self.last_name.len() + self.document.len() + BIRTHDATE_LEN
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
    pub fn birthdate_str(&self) -> &'a str {
        self.birthdate
    }

    /// The birth date as the ten bytes `YYYY-MM-DD`.
    #[must_use]
    pub fn birthdate_bytes(&self) -> [u8; BIRTHDATE_LEN] {
        let mut bytes = [0; BIRTHDATE_LEN];
        // The invariant: a checked birth date is exactly BIRTHDATE_LEN bytes.
        bytes.copy_from_slice(self.birthdate.as_bytes());
        bytes
    }

    /// The bet as it travels.
    #[must_use]
    pub fn to_wire(&self) -> WireBetRef<'a> {
        WireBetRef {
            first_name: self.first_name,
            last_name: self.last_name,
            document: self.document,
            birthdate: self.birthdate,
        }
    }
}

impl<'a> TryFrom<WireBetRef<'a>> for BetRef<'a> {
    type Error = InvalidBet;

    #[inline]
    fn try_from(wire: WireBetRef<'a>) -> Result<BetRef<'a>, InvalidBet> {
        BetRef::new(wire.first_name, wire.last_name, wire.document, wire.birthdate)
    }
}

impl<'a> From<&'a Bet> for BetRef<'a> {
    fn from(bet: &'a Bet) -> BetRef<'a> {
        bet.as_ref()
    }
}

impl<'a> From<&'a BetRef<'_>> for BetRef<'a> {
    fn from(bet: &'a BetRef<'_>) -> BetRef<'a> {
        *bet
    }
}

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
        Ok(Bet::from(BetRef::new(first_name, last_name, document, birthdate)?))
    }

    /// The bet borrowed as a [`BetRef`].
    #[must_use]
    pub fn as_ref(&self) -> BetRef<'_> {
        let (first_end, last_end, document_end) =
            (usize::from(self.first_end), usize::from(self.last_end), usize::from(self.document_end));
        // The ends were taken from these very fields when the text was built.
        BetRef {
            first_name: &self.text[..first_end],
            last_name: &self.text[first_end..last_end],
            document: &self.text[last_end..document_end],
            birthdate: &self.text[document_end..],
        }
    }

    /// The player's first name(s).
    #[must_use]
    pub fn first_name(&self) -> &str {
        self.as_ref().first_name()
    }

    /// The player's last name(s).
    #[must_use]
    pub fn last_name(&self) -> &str {
        self.as_ref().last_name()
    }

    /// The player's document, ASCII digits.
    #[must_use]
    pub fn document(&self) -> &str {
        self.as_ref().document()
    }

    /// The player's birth date.
    ///
    /// # Panics
    /// Never: the text passed [`BetRef::new`]'s calendar check, which accepts exactly the
    /// dates chrono does (a test compares them over every day of the years 0 to 9999).
    #[must_use]
    pub fn birthdate(&self) -> NaiveDate {
        parse_date(self.as_ref().birthdate)
            .and_then(|(year, month, day)| NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day))
            .expect("a checked birth date is a real date")
    }

    /// The birth date as the ten bytes `YYYY-MM-DD`, without allocating.
    #[must_use]
    pub fn birthdate_bytes(&self) -> [u8; BIRTHDATE_LEN] {
        self.as_ref().birthdate_bytes()
    }
}

impl From<BetRef<'_>> for Bet {
    /// The bet with its own copy of the fields.
    fn from(bet: BetRef<'_>) -> Bet {
        let mut text = String::with_capacity(bet.text_len());
        // Every field is bounded (names MAX_NAME_LEN bytes, documents MAX_DOCUMENT_LEN,
        // dates BIRTHDATE_LEN), so every end fits a u16.
        text.push_str(bet.first_name);
        let first_end = text.len() as u16;
        text.push_str(bet.last_name);
        let last_end = text.len() as u16;
        text.push_str(bet.document);
        let document_end = text.len() as u16;
        text.push_str(bet.birthdate);
        Bet { text, first_end, last_end, document_end }
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
        bet.as_ref().to_wire().to_owned()
    }
}

#[inline]
fn check_name(field: &'static str, value: &str) -> Result<(), InvalidBet> {
    // The same as `value.trim().is_empty()`, but stops at the first character that is not
    // whitespace (the first, for any real name) instead of trimming both ends; a first byte
    // that is a visible ASCII character answers without decoding anything.
    let visible_first = value.as_bytes().first().is_some_and(u8::is_ascii_graphic);
    if !visible_first && value.chars().all(char::is_whitespace) {
        return Err(InvalidBet::EmptyName(field));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(InvalidBet::NameTooLong(field, value.len()));
    }
    Ok(())
}

/// Whether every byte is an ASCII digit: eight at a time, then one at a time.
#[inline]
fn all_ascii_digits(bytes: &[u8]) -> bool {
    /// A word of eight digits: every byte's high half is 3 (so no byte carries into the next
    /// when 6 is added), and is still 3 once 6 is added to each (so the low half is 0 to 9).
    fn eight_digits(word: u64) -> bool {
        const HIGH_HALVES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const THREES: u64 = 0x3030_3030_3030_3030;
        const SIXES: u64 = 0x0606_0606_0606_0606;
        word & HIGH_HALVES == THREES && word.wrapping_add(SIXES) & HIGH_HALVES == THREES
    }
    let (words, rest) = bytes.as_chunks::<8>();
    words.iter().all(|&word| eight_digits(u64::from_le_bytes(word))) && rest.iter().all(u8::is_ascii_digit)
}

/// Parses exactly `YYYY-MM-DD` (four, two and two ASCII digits) naming a real date of the
/// proleptic Gregorian calendar (chrono's), as year, month and day. Stricter than chrono's
/// `%Y-%m-%d`, which also takes `2000-1-5` or a signed year. Checked here by arithmetic
/// rather than by building a `NaiveDate`: the central checks every bet it receives, and
/// accepts exactly the dates `NaiveDate::from_ymd_opt` does (a test compares them).
#[inline]
fn parse_date(s: &str) -> Option<(u32, u32, u32)> {
    let b: &[u8; BIRTHDATE_LEN] = s.as_bytes().try_into().ok()?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digit = |i: usize| -> Option<u32> {
        let d = b[i].wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    let year = digit(0)? * 1000 + digit(1)? * 100 + digit(2)? * 10 + digit(3)?;
    let month = digit(5)? * 10 + digit(6)?;
    let day = digit(8)? * 10 + digit(9)?;
    (day >= 1 && day <= days_in_month(year, month)).then_some((year, month, day))
}

/// Days in `month` (1 to 12) of `year`; 0 for any other month, so no day is in it.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A field quoted in an error, cut short so a huge hostile field does not flood the log.
fn truncated(s: &str) -> String {
    const KEEP: usize = 40;
    match s.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

impl WireBets {
    /// Appends a checked bet, its birth date written `YYYY-MM-DD`.
    pub fn push_bet(&mut self, bet: &Bet) {
        let date = bet.birthdate_bytes();
        // `birthdate_bytes` writes ASCII digits and dashes only.
        let date = std::str::from_utf8(&date).unwrap_or_default();
        self.push(WireBetRef {
            first_name: bet.first_name(),
            last_name: bet.last_name(),
            document: bet.document(),
            birthdate: date,
        });
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
        for blank in ["\t\n", "\u{a0}", "\u{2003} \u{3000}", "\u{85}"] {
            assert_eq!(
                bet(blank, "Lorca", "1", "1999-03-17"),
                Err(InvalidBet::EmptyName("first_name")),
                "{blank:?}"
            );
        }
        for name in [" Ana", "\u{a0}Ñ", "~", "Ñ", "\u{200b}"] {
            assert!(bet(name, "Lorca", "1", "1999-03-17").is_ok(), "{name:?}");
        }
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
    fn documents_are_checked_eight_digits_at_a_time_as_one_at_a_time() {
        for len in 0..=24 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut document = vec![b'7'; len];
                    document[at] = byte;
                    assert_eq!(
                        all_ascii_digits(&document),
                        byte.is_ascii_digit(),
                        "{byte:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(all_ascii_digits(b""));
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
    fn a_borrowed_bet_is_checked_as_an_owned_one() {
        let cases = [
            ("Tiago Nicolás", "Fornerón", "34407251", "2001-08-29"),
            ("", "Lorca", "1", "1999-03-17"),
            ("Ana", "\u{2003}\t", "1", "1999-03-17"),
            ("Ana", "Díaz", "3090446a", "1999-03-17"),
            ("Ana", "Díaz", "1", "1999-02-29"),
            ("Ana", "Díaz", "1", "2000-02-29"),
        ];
        for (first, last, doc, date) in cases {
            let borrowed = BetRef::new(first, last, doc, date);
            let owned = Bet::from_fields(first, last, doc, date);
            assert_eq!(borrowed.clone().map(Bet::from), owned, "{first} {last} {doc} {date}");
            if let (Ok(owned), Ok(borrowed)) = (owned, borrowed) {
                assert_eq!(owned.as_ref(), borrowed);
                assert_eq!(owned.as_ref().birthdate_str(), date);
                assert_eq!(owned.encoded_len(), borrowed.encoded_len());
                assert_eq!(owned.encoded_len(), WireBet::from(owned.clone()).encoded_len());
            }
        }
    }

    #[test]
    fn the_calendar_check_accepts_exactly_the_dates_chrono_does() {
        // Every year the format can write, every month and day two digits can (and a few
        // past them), against chrono's own calendar.
        for year in 0..=9999u32 {
            for month in 0..=13u32 {
                for day in 0..=32u32 {
                    let digit = |n: u32| b'0' + (n % 10) as u8;
                    let bytes = [
                        digit(year / 1000),
                        digit(year / 100),
                        digit(year / 10),
                        digit(year),
                        b'-',
                        digit(month / 10),
                        digit(month),
                        b'-',
                        digit(day / 10),
                        digit(day),
                    ];
                    let text = std::str::from_utf8(&bytes).unwrap();
                    let chrono = NaiveDate::from_ymd_opt(year as i32, month, day);
                    assert_eq!(parse_date(text), chrono.map(|_| (year, month, day)), "{text}");
                }
            }
        }
        for text in ["2000-02-2a", "2000-0a-01", "200a-01-01", "2000-01-01 ", "2000-01-001", "2000_01-01"] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    #[test]
    fn reasons_quote_the_offending_value_briefly() {
        let err = bet("Ana", "Díaz", &"x".repeat(1000), "1999-03-17").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("document \"xxxx"), "{text}");
        assert!(text.len() < 120, "{text}");
    }
}
