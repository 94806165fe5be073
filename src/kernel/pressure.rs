//! `/proc/pressure/memory` (PSI): the share of time tasks stalled waiting for memory, the
//! kernel's own measure of a reclaim storm.

use super::ParseError;

/// One line of a PSI file: the stalled share of wall time (percent) over 10, 60 and 300 s, and
/// the total stall time since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Stall {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds stalled since boot.
    pub total_us: u64,
}

/// Memory pressure: `some` (at least one task stalled on memory) and `full` (every non-idle
/// task stalled at once: the host does no work, the thrashing the verify run must not cause).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Pressure {
    pub some: Stall,
    pub full: Stall,
}

/// Parses the file (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0`, then the `full` line).
/// Both lines are required: `full` is there for memory since PSI came (4.20).
pub fn parse(text: &str) -> Result<Pressure, ParseError> {
    super::ascii_only(text)?;
    let (mut some, mut full) = (None, None);
    for (i, l) in text.lines().enumerate() {
        let n = i + 1;
        let mut words = l.split_ascii_whitespace();
        let slot = match words.next() {
            None => continue,
            Some("some") => &mut some,
            Some("full") => &mut full,
            Some(w) => {
                return Err(ParseError::new(
                    n,
                    format!("expected a \"some\" or \"full\" line, found {w:?}"),
                ))
            }
        };
        *slot = Some(stall(n, words)?);
    }
    let missing = |what: &str| {
        ParseError::new(
            1,
            format!("no \"{what}\" line: the kernel writes both some and full"),
        )
    };
    Ok(Pressure {
        some: some.ok_or_else(|| missing("some"))?,
        full: full.ok_or_else(|| missing("full"))?,
    })
}

fn stall<'a>(n: usize, words: impl Iterator<Item = &'a str>) -> Result<Stall, ParseError> {
    let mut s = Stall::default();
    let mut seen = 0;
    for w in words {
        let (key, value) = w
            .split_once('=')
            .ok_or_else(|| ParseError::new(n, format!("expected key=value, found {w:?}")))?;
        let avg = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=100.0).contains(v))
                .ok_or_else(|| {
                    ParseError::new(n, format!("{key}: expected a percentage, found {value:?}"))
                })
        };
        match key {
            "avg10" => s.avg10 = avg()?,
            "avg60" => s.avg60 = avg()?,
            "avg300" => s.avg300 = avg()?,
            "total" => s.total_us = super::number(n, value)?,
            _ => continue,
        }
        seen += 1;
    }
    if seen < 4 {
        return Err(ParseError::new(
            n,
            "expected avg10=, avg60=, avg300= and total=",
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44 (fc-v1300): /proc/pressure/memory of the development machine, while other
    /// sessions built and benchmarked beside it.
    const LINUX_6_18: &str = "some avg10=0.65 avg60=0.32 avg300=0.24 total=45844868
full avg10=0.00 avg60=0.00 avg300=0.04 total=13545729
";

    #[test]
    fn parses_linux_6_18() {
        let p = parse(LINUX_6_18).unwrap();
        assert_eq!(p.some.avg10, 0.65);
        assert_eq!(p.some.avg300, 0.24);
        assert_eq!(p.some.total_us, 45844868);
        assert_eq!(p.full.avg10, 0.0);
        assert_eq!(p.full.avg300, 0.04);
        assert_eq!(p.full.total_us, 13545729);
    }

    #[test]
    fn damaged_text_is_an_error_naming_the_line() {
        let e = parse("some avg10=0.65 avg60=0.32 avg300=0.24 total=1\nfull avg10=x avg60=0 avg300=0 total=1\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("avg10"), "{}", e.problem);
        let e = parse("some avg10=0.65 avg60=0.32 avg300=0.24 total=1\n").unwrap_err();
        assert!(e.problem.contains("full"), "{}", e.problem);
        assert!(parse("cpu avg10=0 avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse("some avg10=0 total=0\nfull avg10=0 avg60=0 avg300=0 total=0\n").is_err());
    }
}
