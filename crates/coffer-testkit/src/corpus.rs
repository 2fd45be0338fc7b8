//! Replays of the fuzz corpus.

/// Feeds every file of a fuzz corpus folder to `target` (the body of a fuzz target) and
/// returns how many there were: fuzz findings replayed as stable tests.
pub fn replay_corpus(dir: &std::path::Path, target: impl Fn(&[u8])) -> usize {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        target(&data);
        n += 1;
    }
    n
}
