//! `bitcram-sync plugin test`: the default component's golden cases in the
//! repo pass; a case that does not hold fails with the differing rows, the
//! exit status and the JUnit report say so.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support;

fn plugin_test(cases: &Path, extra: &[&str]) -> Output {
    support::bin()
        .args(["plugin", "test", "--cases"])
        .arg(cases)
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the repo's case `name` into `dir`, as `new_name`.
fn copy_case(name: &str, dir: &Path, new_name: &str) -> PathBuf {
    let to = dir.join(new_name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(support::golden_cases_dir().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

#[test]
fn the_default_component_passes_every_golden_case_in_the_repo() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let cases = support::golden_case_names();
    assert!(cases.len() >= 13, "{cases:?}");
    for exact in [false, true] {
        let flags: &[&str] = if exact { &["--exact"] } else { &[] };
        let out = plugin_test(
            &support::golden_cases_dir(),
            &[flags, &["--junit", junit.to_str().unwrap()]].concat(),
        );
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for case in &cases {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("PASS {case} ("))),
                "{case}: {text}"
            );
        }
        assert!(
            text.lines().last().unwrap().starts_with(&format!(
                "{} passed, 0 failed: bitcram-transform 0.2.0 (sha256 {})",
                cases.len(),
                support::default_plugin_sha256()
            )),
            "{text}"
        );
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(
            xml.contains(&format!(
                "<testsuite name=\"bitcram-transform 0.2.0\" tests=\"{}\" failures=\"0\"",
                cases.len()
            )),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), cases.len(), "{xml}");
    }
}

#[test]
fn a_case_that_does_not_hold_fails_showing_the_rows_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // The right rows: passes.
    copy_case("left-join-in-price-list-order", dir.path(), "a-right");
    // A stock that is not the component's: fails at its row.
    let wrong = copy_case("left-join-in-price-list-order", dir.path(), "b-wrong-stock");
    let expected = std::fs::read_to_string(wrong.join("expected.jsonl")).unwrap();
    std::fs::write(
        wrong.join("expected.jsonl"),
        expected.replace(r#"{"id":"1","stock":4,"#, r#"{"id":"1","stock":5,"#),
    )
    .unwrap();
    // An error expected where the component makes rows.
    let error = copy_case("a-null-balance-is-zero", dir.path(), "c-error-expected");
    std::fs::remove_file(error.join("expected.jsonl")).unwrap();
    std::fs::write(
        error.join("expected-error.json"),
        r#"{"case":"invalid-item","product_id":"1"}"#,
    )
    .unwrap();
    // The same number spelled otherwise: equal as JSON, not as text.
    let spelled = copy_case(
        "data-keeps-every-field-as-it-came",
        dir.path(),
        "d-spelling",
    );
    let expected = std::fs::read_to_string(spelled.join("expected.jsonl")).unwrap();
    std::fs::write(
        spelled.join("expected.jsonl"),
        expected
            .replace(r#""price":12345.0"#, r#""price":12345"#)
            .replace(r#""nested":{"x":1.50}"#, r#""nested":{"x":1.5}"#),
    )
    .unwrap();

    let junit = dir.path().join("junit.xml");
    let out = plugin_test(dir.path(), &["--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("PASS a-right (3 rows, "), "{text}");
    assert_eq!(
        lines[1], "FAIL b-wrong-stock: row 2 (product 1) differs",
        "{text}"
    );
    assert_eq!(
        lines[2], r#"    expected: {"id":"1","stock":5,"data":{"price":10}}"#,
        "{text}"
    );
    assert_eq!(
        lines[3], r#"    actual:   {"id":"1","stock":4,"data":{"price":10}}"#,
        "{text}"
    );
    assert_eq!(
        lines[4],
        "FAIL c-error-expected: expected the error invalid-item (product 1), but the transform gave 2 rows",
        "{text}"
    );
    assert!(lines[5].starts_with("PASS d-spelling (1 row, "), "{text}");
    assert!(
        lines[6].starts_with("2 passed, 2 failed: bitcram-transform 0.2.0"),
        "{text}"
    );
    assert_eq!(
        crate::support::sync_run::error_line(&out),
        "error: 2 of 4 cases failed"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="4" failures="2""#), "{xml}");
    assert!(
        xml.contains(r#"name="b-wrong-stock" time=""#)
            && xml.contains(r#"<failure message="row 2 (product 1) differs">expected: {&quot;id&quot;:&quot;1&quot;,&quot;stock&quot;:5,"#),
        "{xml}"
    );

    // --exact: the number's spelling matters now.
    let out = plugin_test(dir.path(), &["--exact"]);
    let text = stdout(&out);
    assert!(
        text.contains("FAIL d-spelling: row 1 (product 5) differs"),
        "{text}"
    );
    assert!(text.contains("3 failed"), "{text}");
}

#[test]
fn an_unreadable_case_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let case = copy_case("ids-in-canonical-form", dir.path(), "no-expectation");
    std::fs::remove_file(case.join("expected.jsonl")).unwrap();
    let out = plugin_test(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        crate::support::sync_run::error_line(&out),
        "error: case no-expectation: holds neither expected.jsonl nor expected-error.json"
    );
    let empty = tempfile::tempdir().unwrap();
    let out = plugin_test(empty.path(), &[]);
    assert!(crate::support::sync_run::error_line(&out).contains("holds no case"));
}
