//! The rows the store reads and the put it writes, in the store's own types: what
//! [`crate::sql`]'s statements return and bind.

use chrono::{DateTime, Utc};
use coffer_envelope::Keyring;
use coffer_store::backend::verify_head;
use coffer_store::{
    Change, ChangeOp, Error, Scope, SecretKind, SecretMeta, SecretName, VersionInfo,
};

use crate::common::{ms, to_i64};
use crate::driver::{Columns, FromColumns, Param};

/// The head row of a secret with its MAC and the key id in its latest envelope's header
/// ([`crate::sql::SELECT_HEAD`], [`crate::sql::LIST`]).
#[derive(Debug)]
pub(crate) struct MetaRow {
    pub(crate) scope: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) deleted: bool,
    provider: Option<String>,
    kind: String,
    description: Option<String>,
    tags: String,
    env_name: Option<String>,
    expires_at: Option<i64>,
    active: bool,
    created_at: i64,
    pub(crate) updated_at: i64,
    last_used_at: Option<i64>,
    usage_count: i64,
    /// The head's MAC ([`coffer_store::backend::tag_head`]); `None` for a head written
    /// before coffer authenticated metadata.
    pub(crate) mac: Option<Vec<u8>>,
    /// Bytes 2-5 of the latest envelope: the id of the key that sealed it.
    sealed_by: Option<Vec<u8>>,
}

impl FromColumns for MetaRow {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            scope: row.text("scope")?,
            name: row.text("name")?,
            version: row.int("version")?,
            deleted: row.flag("deleted")?,
            provider: row.opt_text("provider")?,
            kind: row.text("kind")?,
            description: row.opt_text("description")?,
            tags: row.text("tags")?,
            env_name: row.opt_text("env_name")?,
            expires_at: row.opt_int("expires_at")?,
            active: row.flag("active")?,
            created_at: row.int("created_at")?,
            updated_at: row.int("updated_at")?,
            last_used_at: row.opt_int("last_used_at")?,
            usage_count: row.int("usage_count")?,
            mac: row.opt_blob("mac")?,
            sealed_by: row.opt_blob("sealed_by")?,
        })
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl MetaRow {
    /// The metadata this row describes, after checking the row against its MAC: a head
    /// changed without the key is [`Error::Tampered`], never metadata to act on.
    pub(crate) fn into_checked(
        self,
        backend: &'static str,
        keyring: &Keyring,
    ) -> Result<SecretMeta, Error> {
        let (deleted, mac) = (self.deleted, self.mac.clone());
        let meta = self.into_meta(backend)?;
        verify_head(keyring, &meta, deleted, mac.as_deref())?;
        Ok(meta)
    }

    /// The metadata this row describes, unchecked. A row the store did not write (edited
    /// by hand) is reported as a backend error naming the column, never a panic.
    pub(crate) fn into_meta(self, backend: &'static str) -> Result<SecretMeta, Error> {
        let corrupt = |column: &str| {
            Error::backend(
                backend,
                format!("row {}/{} has an invalid {column}", self.scope, self.name),
            )
        };
        let scope = Scope::new(self.scope.clone()).map_err(|_| corrupt("scope"))?;
        let name = SecretName::new(self.name.clone()).map_err(|_| corrupt("name"))?;
        let kind: SecretKind = self.kind.parse().map_err(|_| corrupt("kind"))?;
        let tags: Vec<String> = serde_json::from_str(&self.tags).map_err(|_| corrupt("tags"))?;
        let mut meta = SecretMeta::new(scope, name, &Default::default());
        meta.provider = self.provider;
        meta.kind = kind;
        meta.description = self.description;
        meta.tags = tags;
        meta.env_name = self.env_name;
        meta.expires_at = self.expires_at.map(millis);
        meta.active = self.active;
        meta.version = u64::try_from(self.version).map_err(|_| corrupt("version"))?;
        meta.created_at = millis(self.created_at);
        meta.updated_at = millis(self.updated_at);
        meta.last_used_at = self.last_used_at.map(millis);
        meta.usage_count = u64::try_from(self.usage_count).unwrap_or(0);
        meta.key_id = key_id_of(self.sealed_by.as_deref());
        Ok(meta)
    }
}

/// A head row with one version's envelope ([`crate::sql::SELECT_VALUE`]).
#[derive(Debug)]
pub(crate) struct ValueRow {
    pub(crate) head: MetaRow,
    pub(crate) version: i64,
    pub(crate) ciphertext: Vec<u8>,
}

impl FromColumns for ValueRow {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            head: MetaRow::from_columns(row)?,
            version: row.int("v_version")?,
            ciphertext: row.blob("ciphertext")?,
        })
    }
}

/// One kept version of a secret, without its envelope ([`crate::sql::VERSIONS`]).
#[derive(Debug)]
pub(crate) struct VersionRow {
    version: i64,
    created_at: i64,
    sealed_by: Option<Vec<u8>>,
}

impl FromColumns for VersionRow {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            version: row.int("version")?,
            created_at: row.int("created_at")?,
            sealed_by: row.opt_blob("sealed_by")?,
        })
    }
}

impl VersionRow {
    /// The version this row describes; a version number out of range is a backend error.
    pub(crate) fn into_info(self, backend: &'static str) -> Result<VersionInfo, Error> {
        let version = u64::try_from(self.version)
            .map_err(|_| Error::backend(backend, "a version row has an invalid version"))?;
        Ok(VersionInfo::new(version, millis(self.created_at))
            .key_id(key_id_of(self.sealed_by.as_deref())))
    }
}

/// The key id in bytes 2-5 of an envelope, read as `sealed_by`.
fn key_id_of(sealed_by: Option<&[u8]>) -> Option<u32> {
    sealed_by
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
}

/// One stored envelope and where it belongs ([`crate::sql::REWRAP_CANDIDATES`]).
#[derive(Debug)]
pub(crate) struct EnvelopeRow {
    pub(crate) scope: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) ciphertext: Vec<u8>,
}

impl FromColumns for EnvelopeRow {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            scope: row.text("scope")?,
            name: row.text("name")?,
            version: row.int("version")?,
            ciphertext: row.blob("ciphertext")?,
        })
    }
}

/// A recorded key check value ([`crate::sql::KEY_CHECKS`]).
#[derive(Debug)]
pub(crate) struct KeyCheck {
    pub(crate) key_id: i64,
    pub(crate) check: String,
    /// When the key was retired (Unix milliseconds), if it was.
    pub(crate) retired_at: Option<i64>,
}

impl FromColumns for KeyCheck {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            key_id: row.int("key_id")?,
            check: row.text("check_value")?,
            retired_at: row.opt_int("retired_at")?,
        })
    }
}

/// How many envelopes one key sealed ([`crate::sql::KEY_USAGE`]); `key_id` is `None`
/// for envelopes too short to have a header.
#[derive(Debug)]
pub(crate) struct KeyCount {
    pub(crate) key_id: Option<u32>,
    pub(crate) n: u64,
}

impl FromColumns for KeyCount {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            key_id: key_id_of(row.opt_blob("sealed_by")?.as_deref()),
            n: u64::try_from(row.int("n")?).unwrap_or(0),
        })
    }
}

/// A count, in a column named `n`.
#[derive(Debug)]
pub(crate) struct Count(pub(crate) i64);

impl FromColumns for Count {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self(row.int("n")?))
    }
}

/// A scope, in a column named `scope`.
#[derive(Debug)]
pub(crate) struct ScopeRow {
    pub(crate) scope: String,
}

impl FromColumns for ScopeRow {
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            scope: row.text("scope")?,
        })
    }
}

/// A returned row whose columns are not read: only that it came back matters.
#[derive(Debug)]
pub(crate) struct Returned;

impl FromColumns for Returned {
    fn from_columns(_: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self)
    }
}

/// What one put writes: the new head row of a secret and its new version.
#[derive(Debug)]
pub struct PutWrite<'a> {
    pub(crate) scope: &'a Scope,
    pub(crate) name: &'a SecretName,
    pub(crate) meta: &'a SecretMeta,
    /// `meta.tags` as JSON text.
    pub(crate) tags: String,
    /// The head this put replaces, `(version, deleted)`, checked and set atomically
    /// (`None`: the name is new, and the put loses if another writer creates it first).
    pub(crate) old: Option<(i64, bool)>,
    pub(crate) key_id: i64,
    pub(crate) sealed: Vec<u8>,
    /// The new head's MAC.
    pub(crate) mac: Vec<u8>,
}

impl PutWrite<'_> {
    /// The error of a put whose statement failed: a version row that already exists (the
    /// head was put back to an older version, with its MAC, by someone who kept a copy)
    /// is [`Error::Conflict`], not a raw duplicate-key error; anything else as the
    /// backend reports it.
    pub(crate) fn failed(&self, backend: &'static str, e: sqlx::Error) -> Error {
        let duplicate = e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation());
        if duplicate {
            return Error::Conflict {
                scope: self.scope.to_string(),
                name: self.name.to_string(),
                expected: self.old.map_or(0, |(v, _)| u64::try_from(v).unwrap_or(0)),
                actual: Some(self.meta.version),
            };
        }
        crate::common::map_sqlx(backend, e)
    }

    /// The change this put announces to other instances.
    pub(crate) fn change(&self) -> Change {
        Change {
            scope: self.scope.clone(),
            name: self.name.clone(),
            version: self.meta.version,
            op: ChangeOp::Put,
        }
    }

    /// The head parameters, in the order of `sql::HEAD_INSERT_PARAMS` for a new name and of
    /// `sql::HEAD_UPDATE_PARAMS` over an existing head; a dialect's
    /// put statement binds its own parameters after them.
    pub(crate) fn head_params(&self) -> Vec<Param<'_>> {
        let m = self.meta;
        let (scope, name) = (
            Param::Text(self.scope.as_str()),
            Param::Text(self.name.as_str()),
        );
        let fields = [
            Param::OptText(m.provider.as_deref()),
            Param::Text(m.kind.as_str()),
            Param::OptText(m.description.as_deref()),
            Param::Text(&self.tags),
            Param::OptText(m.env_name.as_deref()),
            Param::OptInt(m.expires_at.map(ms)),
            Param::Bool(m.active),
        ];
        let version = Param::Int(to_i64(m.version));
        let mut params = Vec::with_capacity(18);
        match self.old {
            None => {
                params.extend([scope, name, version]);
                params.extend(fields);
                params.extend([
                    Param::Int(ms(m.created_at)),
                    Param::Int(ms(m.updated_at)),
                    Param::Blob(&self.mac),
                ]);
            }
            Some((old_version, old_deleted)) => {
                params.push(version);
                params.extend(fields);
                params.extend([
                    Param::Int(ms(m.updated_at)),
                    Param::Blob(&self.mac),
                    scope,
                    name,
                ]);
                params.extend([Param::Int(old_version), Param::Bool(old_deleted)]);
            }
        }
        params
    }
}
