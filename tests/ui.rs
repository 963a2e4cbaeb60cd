//! Compile-time behaviour of `#[flow]` and `#[task]`: what compiles, and the errors misuse
//! gets, pointed at the offending token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
