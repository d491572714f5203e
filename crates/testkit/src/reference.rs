//! The winning rule, written again from its definition: a bet wins when the 64-bit FNV-1a hash
//! of `first_name|last_name|document|birthdate` is divisible by 17.

/// The winners file's header row, as the course's format has it.
pub const WINNERS_HEADER: &str = "agency,first_name,last_name,document,birthdate";

/// A dataset row: first name, last name, document, birth date (`YYYY-MM-DD`).
pub type Row = [String; 4];

/// 64-bit FNV-1a.
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Whether the row's bet wins.
#[must_use]
pub fn wins(row: &Row) -> bool {
    fnv1a(row.join("|").as_bytes()).is_multiple_of(17)
}

/// The rows that win, in order.
#[must_use]
pub fn winners(rows: &[Row]) -> Vec<&Row> {
    rows.iter().filter(|r| wins(r)).collect()
}

/// The winners file rows (`agency,first_name,last_name,document,birthdate`) that agency
/// `agency`'s `rows` must produce, in dataset order.
#[must_use]
pub fn winner_rows(agency: u32, rows: &[Row]) -> Vec<String> {
    winners(rows)
        .into_iter()
        .map(|[first, last, document, birthdate]| format!("{agency},{first},{last},{document},{birthdate}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
