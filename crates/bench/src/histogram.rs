//! Reading back the round-trip histograms the agencies log (`batch_rtt ... | histogram_us:
//! LOW*COUNT,...`) and merging them across agencies: percentiles of the whole run, not
//! percentiles of percentiles. Only the benchmark reads them, so this lives here; the agency
//! only records and logs (`client::latency`).

use client::latency::Latencies;

/// Adds the histogram written as `LOW*COUNT` pairs (what `Latencies` displays) to `into`.
/// Each bucket is rebuilt by recording its lowest value, which falls in that same bucket.
///
/// # Errors
/// A message naming the part that is not a pair of numbers; `into` may then hold part of it.
pub fn merge_logged(into: &mut Latencies, text: &str) -> Result<(), String> {
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let pair: Option<(u64, u64)> =
            part.split_once('*').and_then(|(l, n)| Some((l.parse().ok()?, n.parse().ok()?)));
        let Some((low, n)) = pair else { return Err(format!("{part:?} is not LOW*COUNT")) };
        for _ in 0..n {
            into.record(std::time::Duration::from_micros(low));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The histogram written as `LOW*COUNT` pairs, alone.
    fn parse(text: &str) -> Result<Latencies, String> {
        let mut latencies = Latencies::default();
        merge_logged(&mut latencies, text)?;
        Ok(latencies)
    }

    fn of(micros: &[u64]) -> Latencies {
        let mut l = Latencies::default();
        for &m in micros {
            l.record(Duration::from_micros(m));
        }
        l
    }

    #[test]
    fn written_histograms_read_back_and_merge() {
        let (a, b) = (of(&[5, 40, 40, 1000]), of(&[5, 7000]));
        assert_eq!(a.to_string(), "5*1,40*2,1000*1");
        assert_eq!(parse(&a.to_string()), Ok(a.clone()));
        let mut both = a;
        merge_logged(&mut both, &b.to_string()).unwrap();
        assert_eq!(both, of(&[5, 40, 40, 1000, 5, 7000]));
        assert_eq!(both.count(), 6);
        assert!(parse("5*1,x").is_err());
        assert_eq!(parse(""), Ok(Latencies::default()));
    }

    #[test]
    fn every_bucket_of_a_wide_histogram_reads_back_as_written() {
        let wide = of(&(0..20_000).step_by(7).collect::<Vec<_>>());
        assert_eq!(parse(&wide.to_string()), Ok(wide));
    }
}
