use orion::prelude::*;
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    orion::logging::set_console_level(None);
    rt.block_on(async {
        let url = std::env::var("U").unwrap();
        let orion = Orion::open(&url).await.unwrap();
        let store = orion.client().store().clone();
        let id = orion::Uuid::from_u128(5);
        for _ in 0..100 {
            store.read_flow_run(id).await.unwrap();
        }
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            store.read_flow_run(id).await.unwrap();
        }
        println!("store read: {:?} per call", t.elapsed() / 2000);
        let (client, conn) = tokio_postgres::connect(
            "postgres://orion@127.0.0.1:54329/postgres",
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let st = client.prepare("SELECT 1").await.unwrap();
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            client.query(&st, &[]).await.unwrap();
        }
        println!("raw SELECT 1: {:?} per call", t.elapsed() / 2000);
    });
}
