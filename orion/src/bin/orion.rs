//! The `orion` command-line program.

fn main() -> std::process::ExitCode {
    orion::cli::main()
}
