//! Knob values and their shapes: a single number, a triple (tcp_mem) or a range (ip_local_port_range).

use std::fmt;

/// The shape a knob's value takes in its /proc file and in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// One integer (`net.core.somaxconn`).
    Int,
    /// Three integers, ordered low to high (`net.ipv4.tcp_mem`: min pressure max).
    Triple,
    /// Two integers, low and high (`net.ipv4.ip_local_port_range`).
    Range,
}

impl Shape {
    /// The words a user substitutes in a fix: `N`, `LOW MID HIGH`, `LOW HIGH`.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Shape::Int => &["N"],
            Shape::Triple => &["LOW", "MID", "HIGH"],
            Shape::Range => &["LOW", "HIGH"],
        }
    }

    /// What a value of this shape counts, in words (`one integer (fds)`).
    pub fn describe(self, unit: &str) -> String {
        match self {
            Shape::Int => format!("one integer ({unit})"),
            Shape::Triple => format!("three integers, low to high ({unit})"),
            Shape::Range => format!("two integers: low, high ({unit})"),
        }
    }

    /// What a value of this shape looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Shape::Int => "an integer",
            Shape::Triple => "three integers [low, pressure, high] (or \"low pressure high\")",
            Shape::Range => "two integers [low, high] (or \"low high\")",
        }
    }
}

/// `u64::MAX` stands for "unlimited" (RLIMIT_INFINITY), as the kernel parsers read it.
pub const UNLIMITED: u64 = crate::kernel::process::UNLIMITED;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(u64),
    Triple([u64; 3]),
    Range([u64; 2]),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found:?}")]
pub struct ValueError {
    pub expected: &'static str,
    pub found: String,
}

impl Value {
    /// Parses kernel text (whitespace separated, as /proc/sys prints it).
    pub fn parse(shape: Shape, text: &str) -> Result<Value, ValueError> {
        let err = || ValueError {
            expected: shape.expected(),
            found: text.trim().to_string(),
        };
        let nums: Vec<u64> = text
            .split_whitespace()
            .map(|w| {
                if w == "unlimited" {
                    Ok(UNLIMITED)
                } else {
                    w.parse::<u64>()
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|_| err())?;
        match (shape, nums.as_slice()) {
            (Shape::Int, [a]) => Ok(Value::Int(*a)),
            (Shape::Triple, [a, b, c]) => Ok(Value::Triple([*a, *b, *c])),
            (Shape::Range, [a, b]) => Ok(Value::Range([*a, *b])),
            _ => Err(err()),
        }
    }

    pub fn shape(&self) -> Shape {
        match self {
            Value::Int(_) => Shape::Int,
            Value::Triple(_) => Shape::Triple,
            Value::Range(_) => Shape::Range,
        }
    }

    /// The text to write into the knob's /proc/sys file or a sysctl.d line.
    pub fn to_kernel(&self) -> String {
        match self {
            Value::Int(a) => a.to_string(),
            Value::Triple([a, b, c]) => format!("{a} {b} {c}"),
            Value::Range([a, b]) => format!("{a} {b}"),
        }
    }

    /// The components as a slice, for component-wise comparisons.
    pub fn parts(&self) -> &[u64] {
        match self {
            Value::Int(a) => std::slice::from_ref(a),
            Value::Triple(t) => t,
            Value::Range(r) => r,
        }
    }
}

/// A value as a fix shows it: a real one, or the placeholder words a user substitutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown<'a> {
    Value(&'a Value),
    Placeholder(Shape),
}

impl Shown<'_> {
    /// The text for a /proc/sys file or a sysctl.d line (`1 2 3`, `LOW MID HIGH`).
    pub fn kernel_text(&self) -> String {
        match self {
            Shown::Value(v) => v.to_kernel(),
            Shown::Placeholder(s) => s.placeholders().join(" "),
        }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Value(v) => v.fmt(f),
            Shown::Placeholder(s) => f.write_str(&s.placeholders().join(" ")),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |f: &mut fmt::Formatter<'_>, n: u64| {
            if n == UNLIMITED {
                f.write_str("unlimited")
            } else {
                write!(f, "{n}")
            }
        };
        for (i, n) in self.parts().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            one(f, *n)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_text() {
        // Linux 6.18: cat /proc/sys/net/ipv4/tcp_mem
        assert_eq!(
            Value::parse(Shape::Triple, "287898\t383867\t575796\n").unwrap(),
            Value::Triple([287898, 383867, 575796])
        );
        // Linux 6.18: cat /proc/sys/net/ipv4/ip_local_port_range
        assert_eq!(
            Value::parse(Shape::Range, "32768\t60999\n").unwrap(),
            Value::Range([32768, 60999])
        );
        assert_eq!(
            Value::parse(Shape::Int, "4096\n").unwrap(),
            Value::Int(4096)
        );
        assert_eq!(
            Value::parse(Shape::Int, "unlimited").unwrap(),
            Value::Int(UNLIMITED)
        );
    }

    #[test]
    fn rejects_wrong_shape() {
        let e = Value::parse(Shape::Triple, "1 2").unwrap_err();
        assert!(e.to_string().contains("three integers"), "{e}");
        assert!(Value::parse(Shape::Int, "abc").is_err());
        assert!(Value::parse(Shape::Int, "").is_err());
    }

    #[test]
    fn round_trips_to_kernel_text() {
        let v = Value::Triple([1, 2, 3]);
        assert_eq!(Value::parse(Shape::Triple, &v.to_kernel()).unwrap(), v);
        assert_eq!(Value::Int(UNLIMITED).to_string(), "unlimited");
    }
}
