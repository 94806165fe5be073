//! The JUnit XML form of the check report: one test case per knob, plus one for the capacity, for CI dashboards.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{value_text, CheckReport, Status};

pub fn render(report: &CheckReport) -> anyhow::Result<String> {
    let mut suite = TestSuite::new(format!(
        "tune check {} ({} connections, {})",
        report.profile.name, report.profile.target, report.profile.role
    ));
    for row in &report.knobs {
        let detail = format!(
            "current: {}; required: {}{}{}{}",
            value_text(row.current.as_ref(), row.unit),
            value_text(row.required.as_ref(), row.unit),
            row.why
                .as_ref()
                .map(|w| format!("; why: {w}"))
                .unwrap_or_default(),
            row.note
                .as_ref()
                .map(|n| format!("; {n}"))
                .unwrap_or_default(),
            row.fix_runtime
                .as_ref()
                .map(|f| format!("; fix: {f}"))
                .unwrap_or_default(),
        );
        let failing = row.status == Status::Fail || (report.strict && row.status == Status::Warn);
        let status = if failing {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("{} {}", row.knob, row.status.as_str()));
            s.set_type(row.status.as_str());
            s.set_description(detail.clone());
            s
        } else if row.status == Status::Absent {
            let mut s = TestCaseStatus::skipped();
            s.set_message(row.note.clone().unwrap_or_else(|| "absent".into()));
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(row.knob, status);
        case.set_classname(format!("tune.knobs.{}", row.scope.as_str()));
        if !failing {
            case.set_system_out(format!("{}: {detail}", row.status.as_str()));
        }
        suite.add_test_case(case);
    }
    let cap = &report.capacity;
    let text = cap.summary().join("\n");
    // The capacity case fails exactly when the host does not hold the target and that is what
    // the exit code says (the verdict: tune check's first line).
    let status = if cap.meets_target || report.summary.exit_code == 0 {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(match &report.verdict {
            Some(v) => super::verdict::headline(v),
            None => format!(
                "the host holds fewer than the target {} connections",
                report.profile.target
            ),
        });
        s.set_description(text.clone());
        s
    };
    let mut case = TestCase::new("capacity", status);
    case.set_classname("tune.capacity");
    case.set_system_out(text);
    suite.add_test_case(case);
    let mut r = Report::new("tune check");
    r.add_test_suite(suite);
    Ok(r.to_string()?)
}
