//! The floor of a scenario on this machine: the least work any implementation must do to
//! take its bets from the agencies' files to a decided winner, timed here with nothing else.
//!
//! Per agency file, two threads in one process: one reads the file and sends its bytes over
//! a loopback TCP connection in 64 KiB writes; the other receives them and, row by row, checks
//! the four fields are UTF-8 and computes the winning hash (the rule's FNV-1a of
//! `first_name|last_name|document|birthdate`). The two overlap as an agency and a central
//! would, on the machine's cores. No validation beyond UTF-8, no framing, no file written,
//! no sync: a lower bound, not a design.

use std::{
    fs::File,
    io::{self, Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::Path,
    thread,
    time::{Duration, Instant},
};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// What one floor run found: its time, and the rows and winners it counted (so the work
/// cannot be optimised away, and a wrong split shows).
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// From opening the file to the last row hashed.
    pub wall: Duration,
    /// Rows hashed.
    pub rows: u64,
    /// Rows whose hash is divisible by 17.
    pub winners: u64,
}

/// Reads `path`, sends it over loopback and hashes every row on the receiving side.
///
/// # Errors
/// When the file cannot be read or the loopback connection fails.
pub fn measure(path: &Path) -> io::Result<Floor> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let address = listener.local_addr()?;
    let start = Instant::now();
    let path = path.to_owned();
    let sender = thread::spawn(move || -> io::Result<()> {
        let mut file = File::open(path)?;
        let mut stream = TcpStream::connect(address)?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&chunk[..n])?;
        }
    });
    let (mut stream, _) = listener.accept()?;
    let mut counts = (0u64, 0u64);
    let mut buffer = vec![0u8; 128 * 1024];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buffer[filled..])?;
        filled += n;
        // Hash every whole line; keep the partial one at the front.
        let whole = if n == 0 {
            filled
        } else {
            buffer[..filled].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        for line in buffer[..whole].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            counts.0 += 1;
            if row_hash(line)?.is_multiple_of(17) {
                counts.1 += 1;
            }
        }
        buffer.copy_within(whole..filled, 0);
        filled -= whole;
        if n == 0 {
            break;
        }
        if filled == buffer.len() {
            return Err(io::Error::other("a line longer than the floor's buffer"));
        }
    }
    sender.join().map_err(|_| io::Error::other("the floor's sender panicked"))??;
    Ok(Floor { wall: start.elapsed(), rows: counts.0, winners: counts.1 })
}

/// The rule's hash of one unquoted CSV row, its fields checked as UTF-8.
fn row_hash(line: &[u8]) -> io::Result<u64> {
    let mut hash = FNV_OFFSET_BASIS;
    for (i, field) in line.split(|&b| b == b',').enumerate() {
        std::str::from_utf8(field).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if i > 0 {
            hash ^= u64::from(b'|');
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        for &b in field {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_row_of_a_file_sent_over_loopback() {
        let dir = tempfile_dir();
        let path = dir.join("rows.csv");
        let row = "Santiago Lionel,Lorca,30904465,1999-03-17\n";
        std::fs::write(&path, row.repeat(10_000)).unwrap();
        let floor = measure(&path).unwrap();
        assert_eq!(floor.rows, 10_000);
        let one = u64::from(row_hash(row.trim_end().as_bytes()).unwrap().is_multiple_of(17));
        assert_eq!(floor.winners, one * 10_000);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_hash_is_the_rules_hash() {
        // FNV-1a 64 of "a|b": the separators are hashed as the rule hashes them.
        let mut expected = FNV_OFFSET_BASIS;
        for &b in b"a|b" {
            expected = (expected ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        assert_eq!(row_hash(b"a,b").unwrap(), expected);
        assert!(row_hash(b"a,\xff").is_err());
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bench-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
