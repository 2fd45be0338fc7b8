//! Checks on a keyring kept in the store that every backend's test makes the same way.

use coffer_store::Error;
use coffer_store::keys::SharedKeyring;

/// Two instances rotate the keyring they share at the same moment: asserts that exactly
/// one rotation is written, that the loser has reloaded the winner's keyring, and returns
/// the loser's error (a [`Error::KeyringConflict`], for the caller to check its fields).
pub async fn race_rotations(a: &SharedKeyring, b: &SharedKeyring) -> Error {
    let (ra, rb) = tokio::join!(
        a.update(|ring| Ok(ring.rotate())),
        b.update(|ring| Ok(ring.rotate())),
    );
    let lost = match (ra, rb) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        (Ok(x), Ok(y)) => panic!("both rotations were written (keys {x} and {y})"),
        (Err(x), Err(y)) => panic!("neither rotation was written: {x}; {y}"),
    };
    assert!(
        matches!(lost, Error::KeyringConflict { .. }),
        "the losing rotation: {lost}"
    );
    assert_eq!(a.generation(), b.generation(), "the loser reloaded");
    assert_eq!(
        a.handle().current().primary_id(),
        b.handle().current().primary_id(),
        "both hold the winner's keyring"
    );
    lost
}
