//! Bad attributes are compile errors at the offending token. Each case's
//! expected output is the `.stderr` beside it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
