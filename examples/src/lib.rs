//! Runnable stories: see the `examples/` folder of this package.
