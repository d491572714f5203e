//! Durations written the way the course's Go client writes them: `5s`, `200ms`, `1m30s`.

use std::time::Duration;

/// Parses a sequence of `<number><unit>` parts (`h`, `m`, `s`, `ms`; decimals allowed), or a
/// bare `0`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let expected = || format!("{text:?} is not a duration such as 5s, 200ms or 1m30s");
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(expected());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(expected)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| expected())?;
        let seconds = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(expected()),
        };
        let part = Duration::try_from_secs_f64(value * seconds).map_err(|_| expected())?;
        // A sum past what a `Duration` holds is refused, never a panic.
        total = total.checked_add(part).ok_or_else(expected)?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "5", "s", "5x", "-1s", "1.2.3s", "5 s", "ms5", "18446744073709551615s1s", "1e300h"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
