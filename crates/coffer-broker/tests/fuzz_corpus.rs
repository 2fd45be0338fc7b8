//! The `statement` fuzz corpus, replayed on stable Rust.

#[test]
fn statement_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/statement");
    let n = coffer_testkit::replay_corpus(&dir, coffer_broker::fuzzing::statement);
    assert!(n >= 10, "corpus too small: {n} files");
}
