//! The guest SDKs' histogram helpers (decode, merge by bounds, percentiles) in JavaScript, Python
//! and C over `guest-sdk/histogram-cases.tsv`; the Rust SDK's runs as `sdk_histogram::tests`.

use crate::common;

#[test]
fn histogram_helpers_pass_the_shared_table_in_javascript_python_and_c() {
    let root = common::repo_root();
    let table = root.join("guest-sdk/histogram-cases.tsv");
    let cases = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert!(cases >= 15, "{cases}");

    let js = common::sdk_node_test("histogram.test.mjs");
    assert!(
        js.contains(&format!("{cases} cases passed")) && js.contains("# pass 1"),
        "{js}"
    );

    let report = common::sdk_python_tests("test_histogram.py");
    assert!(
        report.contains("test_the_shared_table_of_histogram_cases")
            && report.contains("Ran 1 test"),
        "{report}"
    );

    let c = common::sdk_c_test("test_histogram.c", "histogram-cases.tsv");
    assert!(c.contains(&format!("{cases} cases, 0 failed")), "{c}");
}
