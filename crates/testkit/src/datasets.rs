//! Agency datasets in the course's format (`first_name,last_name,document,birthdate`, no
//! header, UTF-8), generated from a seed so every run sees the same bets.

use std::path::Path;

use crate::reference::Row;

const FIRST_NAMES: [&str; 24] = [
    "Santiago",
    "Valentina",
    "Joaquín",
    "María José",
    "Agustín",
    "Sofía",
    "Lucía",
    "Tomás",
    "Martín",
    "Ramón",
    "Inés",
    "Benjamín",
    "Camila",
    "Julián",
    "Máximo",
    "Zoe",
    "Nicolás",
    "Ángel",
    "Tiago Nicolás",
    "Kiara Valentina",
    "Begoña",
    "Iñaki",
    "Florencia",
    "Emilia",
];

const LAST_NAMES: [&str; 24] = [
    "Álvarez",
    "Saldaña",
    "Fornerón",
    "Gómez",
    "Pérez",
    "Muñoz",
    "Rodríguez",
    "Fernández",
    "López",
    "Díaz",
    "Martínez",
    "Sánchez",
    "Romero",
    "Núñez",
    "Ibáñez",
    "Castaño",
    "Peña",
    "Acuña",
    "Lorca",
    "Zambrano",
    "Güemes",
    "Ordóñez",
    "Basile",
    "Varela",
];

/// A small deterministic generator (SplitMix64): good spread, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `count` rows for the agency seeded by `seed`: accented names, 8-digit documents, birth
/// dates between 1930 and 2005 (every one a real date).
#[must_use]
pub fn generate(seed: u64, count: usize) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
            let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
            let document = 10_000_000 + rng.below(40_000_000);
            let year = 1930 + rng.below(76);
            let month = 1 + rng.below(12);
            let day = 1 + rng.below(28);
            [
                first.to_owned(),
                last.to_owned(),
                document.to_string(),
                format!("{year:04}-{month:02}-{day:02}"),
            ]
        })
        .collect()
}

/// Writes `rows` as a course dataset at `path`, replacing what is there (tests' own files;
/// `datagen` never replaces a file, see [`write_to`]).
///
/// # Errors
/// When the file cannot be written.
pub fn write(path: &Path, rows: &[Row]) -> std::io::Result<()> {
    write_to(std::fs::File::create(path)?, rows)
}

/// Writes `rows` as a course dataset to `out` (a file the caller opened, with `create_new`
/// for one that must not replace anything).
///
/// # Errors
/// When `out` cannot be written.
pub fn write_to(out: impl std::io::Write, rows: &[Row]) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(out);
    for row in rows {
        writer.write_record(row)?;
    }
    writer.flush()
}

/// Reads a course dataset (no header; four fields a row).
///
/// # Errors
/// When the file cannot be read or a row is not four CSV fields.
pub fn read(path: &Path) -> Result<Vec<Row>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(path)?;
    reader
        .deserialize::<(String, String, String, String)>()
        .map(|row| row.map(|(first, last, document, birthdate)| [first, last, document, birthdate]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dataset-1.csv");
        let rows = generate(3, 200);
        write(&path, &rows).unwrap();
        assert_eq!(read(&path).unwrap(), rows);
    }

    #[test]
    fn the_same_seed_gives_the_same_rows() {
        assert_eq!(generate(7, 50), generate(7, 50));
        assert_ne!(generate(7, 50), generate(8, 50));
    }

    #[test]
    fn about_one_bet_in_seventeen_wins() {
        let rows = generate(1, 17_000);
        let won = crate::reference::winners(&rows).len();
        assert!((700..1300).contains(&won), "{won}");
    }
}
