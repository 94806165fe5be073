//! Counts and sizes as people type them (`50k`, `1,000`, `2.5M`, `64MiB`): the one parser every flag and profile value that takes one goes through, with one error wording.
//!
//! Pure: text in, a number or a message out. The message is what the user sees after clap's
//! `invalid value '1x' for '--target <N>':`, so it names the accepted forms and what was found.

/// What a count may look like, for error messages.
pub const COUNT_FORMS: &str =
    "a whole number such as 50000, 50_000 or \"50,000\", or with a suffix: \"50k\" (thousand), \"1m\" or \"1.5m\" (million), \"1g\" (billion)";

/// What a size may look like, for error messages.
pub const SIZE_FORMS: &str =
    "bytes such as 65536, 64K, 64KiB, 2.5M, 64MiB, 1G or 13.1KB (K, M, G, T and KiB, MiB, GiB, TiB are powers of 1,024; KB, MB, GB, TB are powers of 1,000, as tune prints sizes)";

/// Parses a count of connections, processes or addresses: `50000`, `50_000`, `50,000`,
/// `50k`, `1m`, `1.5M`, `2g` (k = 1,000, m = 1,000,000, g = 1,000,000,000, any case).
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("expected {COUNT_FORMS}, found {t:?}");
    let (num, mult): (&str, u64) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    scaled(t, num, mult, bad, "a count")
}

/// [`parse_count`] for flags whose type is `usize`.
pub fn parse_count_usize(text: &str) -> Result<usize, String> {
    let n = parse_count(text)?;
    usize::try_from(n).map_err(|_| format!("{:?} is too large for this machine", text.trim()))
}

/// [`parse_count`] for flags that take 1 or more.
pub fn parse_positive_count(text: &str) -> Result<u64, String> {
    match parse_count(text)? {
        0 => Err(format!(
            "expected 1 or more ({COUNT_FORMS}), found {:?}",
            text.trim()
        )),
        n => Ok(n),
    }
}

/// Parses a size in bytes: `65536`, `64K`, `64KiB`, `2.5M`, `64MiB`, `1G`, `1,048,576`,
/// `13.1KB` (any case). K/M/G/T and KiB/MiB/GiB/TiB are binary, as ulimit and the kernel
/// read them; KB/MB/GB/TB are decimal, because that is how tune prints a size (`13.1 KB` per
/// connection in a load report), so a figure copied from tune's output means what it said.
/// A size must come to a whole number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("expected {SIZE_FORMS}, found {t:?}");
    let lower = t.to_ascii_lowercase();
    let units: [(&str, u64); 13] = [
        ("kib", 1 << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("tib", 1 << 40),
        ("kb", 1_000),
        ("mb", 1_000_000),
        ("gb", 1_000_000_000),
        ("tb", 1_000_000_000_000),
        ("k", 1 << 10),
        ("m", 1 << 20),
        ("g", 1 << 30),
        ("t", 1 << 40),
        ("b", 1),
    ];
    let (num, mult) = units
        .iter()
        .find(|(u, _)| lower.ends_with(u))
        .map(|(u, mult)| (&t[..t.len() - u.len()], *mult))
        .unwrap_or((t, 1));
    scaled(t, num, mult, bad, "a size in bytes")
}

/// [`parse_size`] for flags whose type is `usize`.
pub fn parse_size_usize(text: &str) -> Result<usize, String> {
    let n = parse_size(text)?;
    usize::try_from(n).map_err(|_| format!("{:?} is too large for this machine", text.trim()))
}

/// `num` (digits, `_` and `,` separators, at most one decimal point) times `mult`, which must
/// come to a whole number. `t` is the whole text, for messages.
fn scaled(
    t: &str,
    num: &str,
    mult: u64,
    bad: impl Fn() -> String,
    what: &str,
) -> Result<u64, String> {
    let num: String = num
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != ',')
        .collect();
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let (whole, frac) = num.split_once('.').unwrap_or((&num, ""));
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let too_large = || format!("{t:?} is too large for {what}");
    // Decimal point: scale by the suffix, which must leave a whole number.
    // (checked: a fuzzer's 100-digit fraction overflowed 10^len.)
    let scale = u32::try_from(frac.len())
        .ok()
        .and_then(|n| 10u128.checked_pow(n))
        .ok_or_else(&bad)?;
    let digits: u128 = format!("{whole}{frac}").parse().map_err(|_| too_large())?;
    let total = digits.checked_mul(mult as u128).ok_or_else(too_large)?;
    if total % scale != 0 {
        return Err(format!(
            "{t:?} is not a whole number: {what} has no fractions (write {})",
            total / scale
        ));
    }
    u64::try_from(total / scale).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz find (fuzz/regressions/profile/count-with-a-long-fraction): 10^len overflowed.
    #[test]
    fn a_count_with_a_hundred_decimals_is_an_error_not_an_overflow() {
        let long = format!("1.{}g", "2".repeat(100));
        assert!(parse_count(&long).is_err());
        assert!(parse_size(&long).is_err());
    }

    #[test]
    fn counts_take_suffixes_and_separators() {
        assert_eq!(parse_count("50k"), Ok(50_000));
        assert_eq!(parse_count("50K"), Ok(50_000));
        assert_eq!(parse_count("1m"), Ok(1_000_000));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000));
        assert_eq!(parse_count("2.5M"), Ok(2_500_000));
        assert_eq!(parse_count("2g"), Ok(2_000_000_000));
        assert_eq!(parse_count("1,100,011"), Ok(1_100_011));
        assert_eq!(parse_count("1_000"), Ok(1_000));
        assert_eq!(parse_count(" 7 "), Ok(7));
        assert!(parse_count("1.0005k")
            .unwrap_err()
            .contains("not a whole number"));
        for bad in [
            "", "k", "50kb", "-5", "1.5", "5.k", "ten", "1e6", "50 ki", "1x",
        ] {
            assert!(parse_count(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_count("1.5").unwrap_err().contains("whole number"));
        assert!(parse_count("99999999999999999999999999g").is_err());
        assert_eq!(
            parse_count("1x").unwrap_err(),
            format!("expected {COUNT_FORMS}, found \"1x\"")
        );
        assert!(parse_positive_count("0").is_err());
        assert_eq!(parse_count_usize("1k"), Ok(1_000));
    }

    #[test]
    fn sizes_are_binary_but_kb_mb_gb_are_as_tune_prints_them() {
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("13.1KB"), Ok(13_100));
        assert_eq!(parse_size("16 KiB"), Ok(16_384));
        assert_eq!(parse_size("2.5M"), Ok(5 << 19));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1,048,576"), Ok(1 << 20));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1.5k"), Ok(1_536));
        for bad in ["", "M", "-1G", "lots", "1e6", "64 MiBs", "1.0001K"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_size("lots").unwrap_err().contains("65536, 64K"));
    }
}
