//! Integration tests live in `it/` and `ui.rs`.
