//! Copies of short byte strings without a call to `memcpy`.
//!
//! A bet's fields are a few to a few dozen bytes, and the central copies each of them into
//! its digest's input: four million calls to `memcpy` for a million bets, each paying its
//! dispatch on the length (with the copies out of the frame, which `codec` now makes its own
//! way, they were a tenth of the central's time). Up to 32 bytes, two fixed-size copies that
//! may overlap (the first and last 4, 8 or 16 bytes) do the same in a couple of moves.

/// Copies `src` into `dst` at `at`, and returns where it ends.
///
/// # Panics
/// If `src` does not fit in `dst` from `at`: callers size `dst` for the most they put.
#[inline]
pub(crate) fn put(dst: &mut [u8], at: usize, src: &[u8]) -> usize {
    let n = src.len();
    let out = &mut dst[at..at + n];
    match n {
        0 => {}
        1..=3 => {
            out[0] = src[0];
            out[n / 2] = src[n / 2];
            out[n - 1] = src[n - 1];
        }
        4..=7 => {
            out[..4].copy_from_slice(&src[..4]);
            out[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            out[..8].copy_from_slice(&src[..8]);
            out[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            out[..16].copy_from_slice(&src[..16]);
            out[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => out.copy_from_slice(src),
    }
    at + n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_is_copied_exactly_and_nothing_around_it_moves() {
        let src: Vec<u8> = (1..=80).collect();
        for n in 0..=80 {
            for at in [0, 1, 7] {
                let mut dst = [0xee; 100];
                assert_eq!(put(&mut dst, at, &src[..n]), at + n);
                assert_eq!(&dst[at..at + n], &src[..n], "{n} bytes at {at}");
                assert!(dst[..at].iter().chain(&dst[at + n..]).all(|&b| b == 0xee), "{n} bytes at {at}");
            }
        }
    }
}
