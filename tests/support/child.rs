//! What the test binaries that run child copies of themselves share: whether this process is
//! a child, the runtime each side uses, opening the shared SQLite file, and reading the
//! children's report lines.

use orion::Orion;

/// Whether this process is a child copy started by a test (`ORION_CHILD` set).
pub(crate) fn is_child() -> bool {
    std::env::var_os("ORION_CHILD").is_some()
}

/// A two-worker runtime, as on this project's machines.
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime over the SQLite file at `path`.
#[allow(dead_code)] // the PostgreSQL process tests open URLs instead
pub(crate) async fn open(path: &str) -> Orion {
    Orion::open(&format!("sqlite://{path}")).await.unwrap()
}

/// The child's report lines (`RAN …`, `STARTED …`, `CREATED …`), from where each starts:
/// libtest writes `test name ... ` before the first one, on the same line.
#[allow(dead_code)] // not every test binary reads reports
pub(crate) fn lines_of(c: &mut std::process::Child) -> Vec<String> {
    use std::io::BufRead;
    std::io::BufReader::new(c.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .filter_map(|l| report(&l))
        .collect()
}

/// The report lines of several children, read all at once, each on its own thread. Reading
/// them one after another deadlocks when a child not yet read fills its stdout pipe (64 KB):
/// its prints block its runtime's workers, and the child being read waits for its runs.
#[allow(dead_code)]
pub(crate) fn lines_of_all(children: &mut [std::process::Child]) -> Vec<Vec<String>> {
    std::thread::scope(|scope| {
        let readers: Vec<_> = children
            .iter_mut()
            .map(|c| scope.spawn(move || lines_of(c)))
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// The report a child's output line carries, if any.
#[allow(dead_code)]
pub(crate) fn report(line: &str) -> Option<String> {
    ["RAN ", "STARTED ", "CREATED "]
        .iter()
        .find_map(|tag| line.find(tag).map(|at| line[at..].to_owned()))
}
