//! Bad attributes are compile errors at the offending token. Each case's
//! expected output is the `.stderr` beside it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    // `distributed = true` is an error of its own without the feature, and
    // checks the key and value types with it.
    #[cfg(not(feature = "redis"))]
    cases.compile_fail("tests/ui-no-redis/*.rs");
    #[cfg(feature = "redis")]
    cases.compile_fail("tests/ui-redis/*.rs");
}
