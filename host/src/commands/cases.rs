//! `bitcram-sync plugin test`: golden cases for a transform's CI.
//!
//! A case is a directory holding a snapshot (the layout `snapshot` writes)
//! and what the transform must make of it: `expected.jsonl`, the rows as
//! `plugin run` writes them, in order; or `expected-error.json`,
//! `{"case": "<transform-error case>", "product_id": "<id>"}` (the product id
//! where the error names one). Rows are compared as JSON values (key order
//! and `12345` against `12345.0` do not matter) unless `--exact`, which
//! compares `data` as text.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::model::Row;
use crate::plugin::{GuestError, Plugin, PluginError};
use crate::snapshot::Snapshot;
use crate::transform::{RowSink, TransformFailure};

const EXPECTED_ROWS: &str = "expected.jsonl";
const EXPECTED_ERROR: &str = "expected-error.json";
/// The `transform-error` cases of the contract.
const ERROR_CASES: &[&str] = &[
    "malformed-body",
    "invalid-item",
    "duplicate-key",
    "protocol",
    "other",
];

/// One golden case.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    dir: PathBuf,
    expected: Expected,
}

#[derive(Debug)]
enum Expected {
    Rows(Vec<ExpectedRow>),
    Error(ExpectedError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    case: String,
    #[serde(default)]
    product_id: Option<String>,
}

#[derive(Debug)]
struct ExpectedRow {
    id: String,
    stock: i64,
    data: Value,
    /// `data` as the file spells it, for `--exact`.
    data_text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowLine<'a> {
    id: String,
    stock: i64,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Every case under `dir` (its subdirectories, by name).
pub fn discover(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the cases directory {}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "the cases directory {} holds no case (a case is a directory with a snapshot and \
             {EXPECTED_ROWS} or {EXPECTED_ERROR})",
            dir.display()
        );
    }
    dirs.into_iter().map(|dir| read_case(&dir)).collect()
}

fn read_case(dir: &Path) -> anyhow::Result<Case> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (rows, error) = (dir.join(EXPECTED_ROWS), dir.join(EXPECTED_ERROR));
    let expected = match (rows.is_file(), error.is_file()) {
        (true, true) => bail!("case {name}: holds both {EXPECTED_ROWS} and {EXPECTED_ERROR}"),
        (false, false) => bail!("case {name}: holds neither {EXPECTED_ROWS} nor {EXPECTED_ERROR}"),
        (true, false) => Expected::Rows(read_rows(&rows)?),
        (false, true) => {
            let text =
                std::fs::read(&error).with_context(|| format!("reading {}", error.display()))?;
            let expected: ExpectedError = serde_json::from_slice(&text).with_context(|| {
                format!(
                    "{}: expected {{\"case\": \"<transform-error case>\", \"product_id\": \"<id>\"}}",
                    error.display()
                )
            })?;
            if !ERROR_CASES.contains(&expected.case.as_str()) {
                bail!(
                    "{}: unknown case {:?} (one of {})",
                    error.display(),
                    expected.case,
                    ERROR_CASES.join(", ")
                );
            }
            Expected::Error(expected)
        }
    };
    Ok(Case {
        name,
        dir: dir.to_owned(),
        expected,
    })
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<ExpectedRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: RowLine<'_> = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: expected {{\"id\": \"…\", \"stock\": N, \"data\": {{…}}}}",
                path.display(),
                n + 1
            )
        })?;
        rows.push(ExpectedRow {
            id: row.id,
            stock: row.stock,
            data: serde_json::from_str(row.data.get()).expect("a RawValue is valid JSON"),
            data_text: row.data.get().to_owned(),
        });
    }
    Ok(rows)
}

/// What one case gave.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub elapsed: Duration,
    /// `None` when it passed; else why, then the lines that show it.
    pub failure: Option<(String, Vec<String>)>,
    /// What it checked, for the passing line (`12 rows`, `duplicate-key`).
    pub checked: String,
}

/// Runs the transform on the case's snapshot and compares.
pub async fn run_case(plugin: &Plugin, case: &Case, exact: bool) -> CaseResult {
    let started = Instant::now();
    let mut sink = Collect(Vec::new());
    let outcome = match Snapshot::open(&case.dir) {
        Ok(snapshot) => super::replay::transform_snapshot(plugin, &snapshot, &mut sink)
            .await
            .map(|_| ()),
        Err(e) => Err(e.context("reading its snapshot")),
    };
    let (checked, failure) = judge(&case.expected, outcome, &sink.0, exact);
    CaseResult {
        name: case.name.clone(),
        elapsed: started.elapsed(),
        failure,
        checked,
    }
}

type Verdict = (String, Option<(String, Vec<String>)>);

fn judge(expected: &Expected, outcome: anyhow::Result<()>, rows: &[Row], exact: bool) -> Verdict {
    match (expected, outcome) {
        (Expected::Rows(want), Ok(())) => {
            let checked = rows_count(want.len());
            (checked, compare_rows(want, rows, exact))
        }
        (Expected::Rows(want), Err(e)) => (
            format!("{} rows", want.len()),
            Some((
                format!(
                    "expected {} rows, but the transform failed: {e:#}",
                    want.len()
                ),
                vec![],
            )),
        ),
        (Expected::Error(want), Ok(())) => (
            want.case.clone(),
            Some((
                format!(
                    "expected the error {}, but the transform gave {}",
                    describe_expected_error(want),
                    rows_count(rows.len())
                ),
                vec![],
            )),
        ),
        (Expected::Error(want), Err(e)) => {
            let got = guest_error(&e);
            let failure = match got {
                Some((case, product))
                    if case == want.case
                        && (want.product_id.is_none() || want.product_id == product) =>
                {
                    None
                }
                Some((case, product)) => Some((
                    format!(
                        "expected the error {}, got {}: {e:#}",
                        describe_expected_error(want),
                        describe_error(case, product.as_deref())
                    ),
                    vec![],
                )),
                None => Some((
                    format!(
                        "expected the error {}, but the transform failed otherwise: {e:#}",
                        describe_expected_error(want)
                    ),
                    vec![],
                )),
            };
            (want.case.clone(), failure)
        }
    }
}

fn rows_count(n: usize) -> String {
    if n == 1 {
        "1 row".to_owned()
    } else {
        format!("{n} rows")
    }
}

fn describe_expected_error(want: &ExpectedError) -> String {
    describe_error(&want.case, want.product_id.as_deref())
}

fn describe_error(case: &str, product: Option<&str>) -> String {
    match product {
        Some(id) => format!("{case} (product {id})"),
        None => case.to_owned(),
    }
}

/// The `transform-error` case the plugin returned, and its product id.
fn guest_error(error: &anyhow::Error) -> Option<(&'static str, Option<String>)> {
    let failure = error
        .chain()
        .find_map(|c| c.downcast_ref::<TransformFailure>())?;
    let error = match failure {
        TransformFailure::Plugin(PluginError::Guest { error, .. }) => error,
        // A plugin that takes items never sees a malformed body: the host
        // refuses it, which is what the case expects.
        TransformFailure::MalformedBody { .. } => return Some(("malformed-body", None)),
        _ => return None,
    };
    let product_id = match &**error {
        GuestError::MalformedBody(e) | GuestError::InvalidItem(e) => e.product_id.clone(),
        GuestError::DuplicateKey(d) => Some(d.product_id.clone()),
        GuestError::Protocol(_) | GuestError::Other(_) => None,
    };
    Some((error.kind(), product_id))
}

/// The first difference between the rows expected and those made: `None`
/// when there is none.
fn compare_rows(want: &[ExpectedRow], got: &[Row], exact: bool) -> Option<(String, Vec<String>)> {
    for (n, pair) in want.iter().zip(got).enumerate() {
        let (expected, actual) = pair;
        if !row_matches(expected, actual, exact) {
            return Some((
                format!("row {} (product {}) differs", n + 1, expected.id),
                side_by_side(Some(expected), Some(actual)),
            ));
        }
    }
    if want.len() != got.len() {
        let n = want.len().min(got.len());
        return Some((
            format!(
                "expected {}, got {}; the first {n} agree",
                rows_count(want.len()),
                got.len(),
            ),
            side_by_side(want.get(n), got.get(n)),
        ));
    }
    None
}

fn row_matches(expected: &ExpectedRow, actual: &Row, exact: bool) -> bool {
    if expected.id != actual.id || expected.stock != actual.stock {
        return false;
    }
    if exact {
        return expected.data_text == actual.data;
    }
    serde_json::from_str::<Value>(&actual.data).is_ok_and(|data| same_json(&expected.data, &data))
}

fn side_by_side(expected: Option<&ExpectedRow>, actual: Option<&Row>) -> Vec<String> {
    let expected = expected.map_or("(none)".to_owned(), |r| {
        format!(
            r#"{{"id":{:?},"stock":{},"data":{}}}"#,
            r.id, r.stock, r.data_text
        )
    });
    let actual = actual.map_or("(none)".to_owned(), |r| {
        format!(
            r#"{{"id":{:?},"stock":{},"data":{}}}"#,
            r.id, r.stock, r.data
        )
    });
    vec![
        format!("expected: {expected}"),
        format!("actual:   {actual}"),
    ]
}

/// JSON equality where key order and a number's spelling do not matter:
/// `12345`, `12345.0` and `1.2345e4` are the same number.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Rows kept in memory: a case is small.
struct Collect(Vec<Row>);

impl RowSink for Collect {
    async fn accept(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        self.0.extend(rows);
        Ok(())
    }
}

/// JUnit XML for the results, as CI dashboards read it: one test suite, a
/// test case per golden case, a `<failure>` for each that failed.
pub fn junit(plugin: &str, results: &[CaseResult]) -> String {
    let failures = results.iter().filter(|r| r.failure.is_some()).count();
    let total: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml += &format!(
        "<testsuites tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">\n",
        results.len()
    );
    xml += &format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{total:.3}\">\n",
        escape(plugin),
        results.len()
    );
    for result in results {
        xml += &format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(plugin),
            escape(&result.name),
            result.elapsed.as_secs_f64()
        );
        match &result.failure {
            None => xml += "/>\n",
            Some((why, lines)) => {
                xml += &format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(why),
                    escape(&lines.join("\n"))
                );
            }
        }
    }
    xml += "  </testsuite>\n</testsuites>\n";
    xml
}

/// Text as XML character data or an attribute value; characters XML 1.0
/// cannot hold are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&apos;",
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value_and_objects_by_key() {
        let a: Value = serde_json::from_str(r#"{"price":12345,"n":[1,2.5],"s":"x"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"s":"x","n":[1.0,2.5],"price":12345.0}"#).unwrap();
        assert!(same_json(&a, &b));
        let c: Value = serde_json::from_str(r#"{"s":"x","n":[1.0,2.5],"price":12346}"#).unwrap();
        assert!(!same_json(&a, &c));
        let d: Value = serde_json::from_str(r#"{"s":"x","n":[1.0,2.5]}"#).unwrap();
        assert!(!same_json(&a, &d));
        // Integers past f64's exact range stay exact.
        let big: Value = serde_json::from_str("18446744073709551615").unwrap();
        let near: Value = serde_json::from_str("18446744073709551614").unwrap();
        assert!(!same_json(&big, &near));
        assert!(!same_json(&Value::from("1"), &Value::from(1)));
    }

    #[test]
    fn junit_escapes_what_it_quotes() {
        let results = [
            CaseResult {
                name: "a<b".to_owned(),
                elapsed: Duration::from_millis(1500),
                failure: None,
                checked: String::new(),
            },
            CaseResult {
                name: "c".to_owned(),
                elapsed: Duration::ZERO,
                failure: Some((
                    "row 1 \"x\" & y".to_owned(),
                    vec!["expected: {}\u{1}".to_owned()],
                )),
                checked: String::new(),
            },
        ];
        let xml = junit("p", &results);
        assert!(
            xml.contains(
                r#"<testsuite name="p" tests="2" failures="1" errors="0" skipped="0" time="1.500">"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase classname="p" name="a&lt;b" time="1.500"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<failure message="row 1 &quot;x&quot; &amp; y">expected: {}</failure>"#
            ),
            "{xml}"
        );
    }
}
