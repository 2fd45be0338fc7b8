//! What a backend author uses beside the [`SecretStore`](crate::SecretStore) trait, kept
//! apart from what a service that only stores and reads secrets needs (as OpenDAL keeps
//! its `raw` module).
//!
//! - [`check_condition`]: a [`WriteCondition`](crate::WriteCondition) against the live
//!   version, with the errors every backend returns for it.
//! - [`put_optimistic`]: a put for backends without transactions: read, check, write
//!   with check-and-set, retried up to [`MAX_WRITE_ATTEMPTS`] times.
//! - [`retry_optimistic`]: the same retry loop for any other optimistic write.
//! - [`page_of`]: one [`ListPage`](crate::ListPage) of sorted items after a cursor.
//! - [`list_filtered`]: [`ListOptions`](crate::ListOptions)' filters over a listing by
//!   prefix and cursor.
//! - [`now`], [`truncate_millis`]: times at the millisecond precision every backend
//!   keeps, so a value reads back as written.
//! - [`validate_value`]: the size rule for values.
//! - [`not_found`]: the error for a secret (or one of its versions) that is not there.
//! - [`tag_head`], [`verify_head`], [`head_needs_retag`]: the MAC over a secret's head
//!   state that a database writer without the key cannot forge (see [`integrity`]).

pub use crate::memory::{
    MAX_WRITE_ATTEMPTS, check_condition, list_filtered, page_of, put_optimistic, retry_optimistic,
};
pub use crate::types::{now, truncate_millis, validate_value};
pub use integrity::{head_message, head_needs_retag, tag_head, verify_head};

use crate::{Error, Scope, SecretName};

pub mod integrity;

/// [`Error::NotFound`] for `name` in `scope` (at `version`, where one was asked for).
pub fn not_found(scope: &Scope, name: &SecretName, version: Option<u64>) -> Error {
    Error::NotFound {
        scope: scope.to_string(),
        name: name.to_string(),
        version,
    }
}
