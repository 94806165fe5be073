//! Numbers as people read them: thousands grouped (19,990), approximate counts (2.1M) and
//! decimal bytes (8.3 KB), for every report, reason line and error of tune.

/// 19990 -> "19,990".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 2_073_000 -> "2.1M", 19_990 -> "20.0k", 512 -> "512".
pub fn approx(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// Bytes in decimal units: 8314 -> "8.3 KB", 18_906_000_000 -> "18.9 GB".
pub fn bytes(n: u64) -> String {
    let f = n as f64;
    if n >= 1_000_000_000 {
        format!("{:.1} GB", f / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1} MB", f / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} KB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(group(19990), "19,990");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000_000), "1,000,000");
        assert_eq!(approx(2_073_000), "2.1M");
        assert_eq!(bytes(8320), "8.3 KB");
    }
}
