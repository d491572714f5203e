//! Round-trip times of an agency's batches, kept as a histogram so memory does not grow with
//! the number of batches, and logged once at the end in a form a benchmark can merge across
//! agencies (percentiles of percentiles would not be percentiles). The agency only records
//! and logs; reading the histogram back and merging it is the benchmark's (`crates/bench`).
//!
//! Buckets are log-linear: exact below 128 µs, then 64 per power of two, so a bucket is at
//! most 1/64 (1.6%) wide. A percentile is reported as the upper end of its bucket: never below
//! the true value, at most 1.6% above it.

use std::{collections::BTreeMap, fmt, time::Duration};

/// Bucket counts, keyed by each bucket's lowest value in microseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Latencies {
    buckets: BTreeMap<u64, u64>,
    count: u64,
}

impl Latencies {
    /// Counts one round trip.
    pub fn record(&mut self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        *self.buckets.entry(bucket_low(micros)).or_insert(0) += 1;
        self.count += 1;
    }

    /// Round trips counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q`-quantile (`0.5`, `0.99`) in microseconds, as the upper end of its bucket;
    /// `None` when nothing was counted.
    #[must_use]
    pub fn quantile_micros(&self, q: f64) -> Option<u64> {
        // The rank of the quantile among `count` values, 1-based, at least 1.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.buckets.iter().find_map(|(&low, &n)| {
            seen += n;
            (seen >= rank).then(|| bucket_high(low))
        })
    }

    /// Logs one line for `agency`: the count, p50 and p99, and the histogram for a benchmark
    /// to merge across agencies.
    pub fn log(&self, agency: u32) {
        let [p50, p99] = [0.5, 0.99].map(|q| self.quantile_micros(q).unwrap_or(0));
        log::info!(
            "action: batch_rtt | result: success | agency: {agency} | batches: {} | p50_us: {p50} | p99_us: {p99} | histogram_us: {self}",
            self.count
        );
    }
}

/// The histogram as `LOW*COUNT` pairs, lowest bucket first: `96*3,100*12`.
impl fmt::Display for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (low, n)) in self.buckets.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{low}*{n}")?;
        }
        Ok(())
    }
}

/// Significant bits kept of a value in microseconds: 2^(BITS-1) buckets per power of two.
const BITS: u32 = 7;

/// Below this many microseconds every value has its own bucket.
const EXACT_BELOW: u64 = 1 << BITS;

/// The lowest value of the bucket holding `micros`: its top [`BITS`] significant bits kept.
fn bucket_low(micros: u64) -> u64 {
    if micros < EXACT_BELOW {
        return micros;
    }
    let shift = micros.ilog2() + 1 - BITS;
    (micros >> shift) << shift
}

/// The highest value of the bucket whose lowest value is `low`.
fn bucket_high(low: u64) -> u64 {
    if low < EXACT_BELOW {
        return low;
    }
    low + (1 << (low.ilog2() + 1 - BITS)) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(micros: &[u64]) -> Latencies {
        let mut l = Latencies::default();
        for &m in micros {
            l.record(Duration::from_micros(m));
        }
        l
    }

    #[test]
    fn buckets_are_exact_then_one_sixty_fourth_wide() {
        assert_eq!((bucket_low(127), bucket_high(127)), (127, 127));
        assert_eq!((bucket_low(128), bucket_high(128)), (128, 129));
        assert_eq!((bucket_low(1001), bucket_high(1000)), (1000, 1007));
        for micros in [140, 999, 12_345, 7_000_000] {
            let (low, high) = (bucket_low(micros), bucket_high(bucket_low(micros)));
            assert!(low <= micros && micros <= high, "{micros} not in {low}..={high}");
            assert!((high - low + 1) * 64 <= low, "bucket {low}..={high} wider than 1/64");
        }
    }

    #[test]
    fn quantiles_never_understate() {
        let l = of(&(1..=1000).collect::<Vec<_>>());
        assert_eq!(l.quantile_micros(0.1), Some(100)); // exact below 128
        assert_eq!(l.quantile_micros(0.5), Some(503)); // 500 is in 500..=503
        assert_eq!(l.quantile_micros(0.99), Some(991)); // 990 is in 984..=991
        assert_eq!(l.quantile_micros(1.0), Some(1007)); // 1000 is in 1000..=1007
        assert_eq!(Latencies::default().quantile_micros(0.5), None);
    }
}
