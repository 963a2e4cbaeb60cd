//! A program that embeds orion's whole command line, with its own flows and deployments:
//! the template for a real application's `main.rs`.
//!
//! ```sh
//! cargo run -p examples --example my_app -- deployment create
//! cargo run -p examples --example my_app -- deployment run 'Addition Machine/my-first-deployment' --param 'nums=[5, 6]'
//! cargo run -p examples --example my_app -- agent start --work-queue default     # Ctrl-C stops it
//! cargo run -p examples --example my_app -- flow-run ls
//! cargo run -p examples --example my_app -- deployment execute 'Addition Machine/my-first-deployment'
//! ```

use orion::prelude::*;

#[task]
async fn add_numbers(nums: Vec<i64>) -> i64 {
    nums.iter().sum()
}

/// Adds up numbers.
#[flow(name = "Addition Machine")]
async fn calculator(nums: Vec<i64>) -> i64 {
    add_numbers(nums).await
}

/// Fails on purpose when asked to: `flow run fallible --param fail=true`.
#[flow(name = "fallible")]
async fn fallible(fail: bool) -> Result<u32, String> {
    if fail {
        Err("asked to fail".into())
    } else {
        Ok(7)
    }
}

fn main() -> std::process::ExitCode {
    orion::cli::Cli::new()
        .deployment(
            DeploymentSpec::new("my-first-deployment")
                .flow(calculator)
                .parameters(json!({"nums": [1, 2, 3, 4]})),
        )
        .deployment(
            DeploymentSpec::new("sometimes-fails")
                .flow(fallible)
                .parameters(json!({"fail": false})),
        )
        .main()
}
