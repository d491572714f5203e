//! Finding the end and the commas of a line of a dataset, eight bytes at a time, in safe
//! code: the eight bytes of a `u64` are compared at once by arithmetic that never carries from
//! one byte into the next, so a line of about 40 bytes takes five steps, not forty.

/// The first line of some text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line {
    /// Its length, without terminator.
    pub(crate) len: usize,
    /// Whether a terminator ends it (at `len`), rather than the end of the text.
    pub(crate) terminated: bool,
}

/// Scans the first line of `bytes` for its end and its commas (into `commas`), eight bytes at
/// a time: a line of a dataset is about 40 bytes with four of these, too short for `memchr`
/// to pay for each call.
pub(crate) fn scan_line(bytes: &[u8], commas: &mut Vec<usize>) -> Line {
    commas.clear();
    let (words, _) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let base = n * 8;
        let w = u64::from_le_bytes(*word);
        let mut comma = zero_bytes(w ^ splat(b','));
        // Control bytes, both terminators among them. Only the first one found is sure
        // (`below` may mark a byte after a marked one): the rest of the word is not used.
        let stop = below(w, 0x20);
        if stop != 0 {
            let at = (stop.trailing_zeros() / 8) as usize;
            // Commas before the stop: those whose marks are below its byte.
            comma &= (1u64 << (at * 8)) - 1;
            push_marked(commas, base, comma);
            return match word[at] {
                b'\n' | b'\r' => Line { len: base + at, terminated: true },
                // Another control byte (a tab, say): the rest byte by byte.
                _ => scan_bytes(bytes, base + at + 1, commas),
            };
        }
        push_marked(commas, base, comma);
    }
    scan_bytes(bytes, words.len() * 8, commas)
}

/// `scan_line` from `from` on, one byte at a time.
fn scan_bytes(bytes: &[u8], from: usize, commas: &mut Vec<usize>) -> Line {
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match b {
            b',' => commas.push(i),
            b'\n' | b'\r' => return Line { len: i, terminated: true },
            _ => {}
        }
    }
    Line { len: bytes.len(), terminated: false }
}

/// Eight copies of `b`, one a byte.
const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// The high bit of every byte of `x` that is zero, and nothing else.
const fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = splat(0x7f);
    // A byte's low seven bits plus 0x7f carry into its high bit unless they are all zero
    // (and never into the next byte); or'ed with the byte, the high bit is clear only for 0.
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The high bit of the first byte of `x` below `n` (at most 0x80), surely; bytes after it may
/// be marked too.
const fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(splat(n)) & !x & splat(0x80)
}

/// Pushes `base` plus the index of every byte whose high bit is set in `marks`.
fn push_marked(positions: &mut Vec<usize>, base: usize, mut marks: u64) {
    while marks != 0 {
        positions.push(base + (marks.trailing_zeros() / 8) as usize);
        marks &= marks - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_marks_are_exact_for_every_byte_in_every_place() {
        for b in 0..=255u8 {
            for place in 0..8 {
                let mut word = [b'a'; 8];
                word[place] = b;
                let w = u64::from_le_bytes(word);
                let mark = 0x80u64 << (place * 8);
                assert_eq!(
                    zero_bytes(w ^ splat(b',')),
                    if b == b',' { mark } else { 0 },
                    "{b:#x} at {place}"
                );
                // `below` is sure of the first byte it marks; here it is the only candidate.
                assert_eq!(below(w, 0x20), if b < 0x20 { mark } else { 0 }, "{b:#x} at {place}");
            }
        }
    }

    #[test]
    fn the_word_scan_agrees_with_the_byte_scan() {
        const BYTES: &[u8] = b",,\n\r\"\ta \x1f\x7f\x80\xc3\xb1\xff09-";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let (mut words, mut bytes) = (Vec::new(), Vec::new());
        for len in 0..2000 {
            let line: Vec<u8> = (0..len % 41)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    BYTES[(state % BYTES.len() as u64) as usize]
                })
                .collect();
            let scan = scan_line(&line, &mut words);
            assert_eq!(scan, scan_bytes(&line, 0, &mut bytes), "{line:?}");
            assert_eq!(words, bytes, "{line:?}");
            bytes.clear();
        }
    }
}
