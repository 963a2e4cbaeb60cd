use orion::store::MemoryStore;

#[tokio::test]
async fn the_memory_store_passes_the_conformance_suite() {
    orion::store::testing::run_all(MemoryStore::new).await;
}
