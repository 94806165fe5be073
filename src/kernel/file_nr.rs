//! `/proc/sys/fs/file-nr`: open files allocated, free and the maximum (fs.file-max) host-wide.

use super::{number, ParseError};

/// The three numbers of fs.file-nr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileNr {
    /// File handles allocated now (open files on the whole host).
    pub allocated: u64,
    /// Allocated but unused handles; always 0 since Linux 2.6.
    pub free: u64,
    /// fs.file-max.
    pub max: u64,
}

impl FileNr {
    /// Handles in use: allocated minus free.
    pub fn in_use(&self) -> u64 {
        self.allocated.saturating_sub(self.free)
    }
}

pub fn parse(text: &str) -> Result<FileNr, ParseError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [a, f, m] => Ok(FileNr {
            allocated: number(1, a)?,
            free: number(1, f)?,
            max: number(1, m)?,
        }),
        _ => Err(ParseError::new(
            1,
            format!(
                "expected three numbers (allocated free max), found {:?}",
                text.trim()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44: cat /proc/sys/fs/file-nr
    const LINUX_6_18: &str = "450\t0\t2466186\n";

    #[test]
    fn parses_linux_6_18() {
        let f = parse(LINUX_6_18).unwrap();
        assert_eq!(
            f,
            FileNr {
                allocated: 450,
                free: 0,
                max: 2466186
            }
        );
        assert_eq!(f.in_use(), 450);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("450 0")
            .unwrap_err()
            .problem
            .contains("three numbers"));
        assert!(parse("a b c").is_err());
    }
}
