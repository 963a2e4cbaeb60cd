use orion::deployment::DeploymentSpec;

async fn plain(x: u32) -> u32 {
    x
}

fn main() {
    let _ = DeploymentSpec::new("d").flow(plain);
}
