//! The `store_url` fuzz corpus, replayed on stable Rust.

#[test]
fn store_url_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/store_url");
    let n = coffer_testkit::replay_corpus(&dir, coffer_store::fuzzing::store_url);
    assert!(n >= 10, "corpus too small: {n} files");
}
