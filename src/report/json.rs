//! The JSON form of the check report: the serde form of [`CheckReport`], documented in docs/check-schema.json.

use super::CheckReport;

pub fn render(report: &CheckReport) -> String {
    // CheckReport holds only strings, numbers and plain structs: serialization cannot fail.
    serde_json::to_string_pretty(report).expect("the check report serializes") + "\n"
}
