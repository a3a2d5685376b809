//! `manifest.json`: what a backup holds, written last, so a backup without one is incomplete.
//!
//! Every object is listed with its size and SHA-256 (configs also with the source's ETag and
//! version id); the Redis export with its record count and what it left out. `checksum` is the
//! SHA-256 of the manifest's canonical JSON with `checksum` empty: an edited or corrupted
//! manifest is refused even when its JSON still parses. (It does not stop a forger who can also
//! recompute it: that is the bucket policy's and versioning's job.)
//!
//! [`check_listing`] compares a manifest with the objects really under the backup's folder:
//! every listed object present with its size, nothing unlisted. That is what "complete" means
//! to `teal backups` and `--latest`; a restore then also checks every byte against the SHA-256.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names::BackupId;
use crate::util::sha256_hex;

/// The manifest format this version writes and reads.
pub const FORMAT: &str = "teal-backup/1";
/// File names inside `backups/{id}/`.
pub const MANIFEST: &str = "manifest.json";
pub const CLAIM: &str = "claim.json";
pub const EXPORT: &str = "redis.ndjson.gz";
pub const CONFIGS: &str = "configs/";
/// The largest manifest read back (a manifest entry is ~300 bytes).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub id: BackupId,
    /// The run that wrote it (its claim's id).
    pub run_id: String,
    /// What started it: `schedule (event …)`, `cli`, …
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    pub configs: Option<ConfigsPart>,
    pub redis: Option<RedisPart>,
    pub snapshot: Option<SnapshotPart>,
    #[serde(default)]
    pub checksum: String,
}

/// The configs: a copy of every object under `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigsPart {
    /// `s3://bucket/prefix/` they were copied from.
    pub source: String,
    pub objects: Vec<ObjectEntry>,
}

/// One copied object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectEntry {
    /// Inside the backup's folder: `configs/{key relative to the source prefix}`.
    pub key: String,
    /// Its key in the source bucket.
    pub source_key: String,
    pub size: u64,
    pub sha256: String,
    pub source_etag: Option<String>,
    pub source_version_id: Option<String>,
}

impl ObjectEntry {
    /// The key relative to the source prefix (and to the prefix it is restored under).
    pub fn relative(&self) -> &str {
        self.key.strip_prefix(CONFIGS).unwrap_or(&self.key)
    }
}

/// The logical export of the durable Redis state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisPart {
    /// `redis.ndjson.gz`: gzip of one JSON record per line.
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The prefix the keys were under (they are stored without it).
    pub prefix: String,
    /// Lines in the export.
    pub records: u64,
    /// Records by key kind (`session`, `task`, …).
    pub kinds: BTreeMap<String, u64>,
    /// Key kinds left out as disposable (rebuilt on demand), and how many keys that was.
    pub excluded: Vec<String>,
    pub excluded_keys: u64,
    /// Keys of a type the export does not copy (streams, module types): counted, not copied.
    pub unsupported_keys: u64,
}

/// The ElastiCache snapshot taken with this backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPart {
    pub replication_group: String,
    pub name: String,
}

impl Manifest {
    fn digest(&self) -> String {
        let mut plain = self.clone();
        plain.checksum.clear();
        // Serialising plain data to JSON cannot fail.
        sha256_hex(&serde_json::to_vec(&plain).unwrap_or_default())
    }

    /// Fills `checksum` and returns the JSON to store.
    pub fn seal(mut self) -> Vec<u8> {
        self.checksum = self.digest();
        serde_json::to_vec_pretty(&self).unwrap_or_default()
    }

    /// Parses a stored manifest of backup `id` and checks its format and checksum.
    pub fn open(bytes: &[u8], id: &BackupId) -> Result<Self, String> {
        let m: Self = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!("format `{}` is not {FORMAT}", m.format));
        }
        if &m.id != id {
            return Err(format!("it is the manifest of backup {}, not {id}", m.id));
        }
        let want = m.digest();
        if m.checksum != want {
            return Err(format!(
                "checksum {} does not match its content ({want}): it was edited",
                m.checksum
            ));
        }
        Ok(m)
    }

    /// Every object the backup holds besides the manifest: `(key in the folder, size)`.
    pub fn files(&self) -> Vec<(&str, u64)> {
        let configs = self.configs.iter().flat_map(|c| c.objects.iter().map(|o| (o.key.as_str(), o.size)));
        configs.chain(self.redis.iter().map(|r| (r.key.as_str(), r.size))).collect()
    }

    /// Total bytes of the objects it lists.
    pub fn bytes(&self) -> u64 {
        self.files().iter().map(|(_, size)| size).sum()
    }
}

/// Compares `manifest` with `listing` (`(key in the folder, size)` of every object under the
/// backup's folder): each listed file present with its size, nothing but the manifest and the
/// claim besides. `Err` says the first difference.
pub fn check_listing(manifest: &Manifest, listing: &BTreeMap<String, u64>) -> Result<(), String> {
    let files = manifest.files();
    for (key, size) in &files {
        match listing.get(*key) {
            None => return Err(format!("{key} is missing")),
            Some(found) if found != size => {
                return Err(format!("{key} is {found} bytes, the manifest says {size}"));
            }
            Some(_) => {}
        }
    }
    let listed: std::collections::HashSet<&str> = files.iter().map(|(k, _)| *k).collect();
    match listing.keys().find(|k| !listed.contains(k.as_str()) && *k != MANIFEST && *k != CLAIM) {
        Some(extra) => Err(format!("{extra} is not in the manifest")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            id: BackupId::parse("20261123T0300Z").expect("id"),
            run_id: "run-1".into(),
            trigger: "cli".into(),
            started_at: "2026-11-23T03:00:01.000Z".into(),
            finished_at: "2026-11-23T03:00:02.000Z".into(),
            configs: Some(ConfigsPart {
                source: "s3://configs/agents/".into(),
                objects: vec![ObjectEntry {
                    key: "configs/chat.yaml".into(),
                    source_key: "agents/chat.yaml".into(),
                    size: 10,
                    sha256: "ab".into(),
                    source_etag: Some("\"e\"".into()),
                    source_version_id: None,
                }],
            }),
            redis: Some(RedisPart {
                key: EXPORT.into(),
                size: 20,
                sha256: "cd".into(),
                prefix: "teal:".into(),
                records: 2,
                kinds: BTreeMap::from([("session".into(), 2)]),
                excluded: vec!["cache".into()],
                excluded_keys: 1,
                unsupported_keys: 0,
            }),
            snapshot: None,
            checksum: String::new(),
        }
    }

    #[test]
    fn a_sealed_manifest_opens_and_any_edit_is_refused() {
        let m = manifest();
        let id = m.id.clone();
        let sealed = m.clone().seal();
        let opened = Manifest::open(&sealed, &id).expect("opens");
        assert_eq!(Manifest { checksum: String::new(), ..opened.clone() }, m);
        assert_eq!(opened.bytes(), 30);
        assert_eq!(opened.configs.as_ref().map(|c| c.objects[0].relative()), Some("chat.yaml"));

        let text = String::from_utf8(sealed).expect("utf-8");
        let edited = text.replace("\"records\": 2", "\"records\": 3");
        assert_ne!(edited, text);
        let e = Manifest::open(edited.as_bytes(), &id).expect_err("edited");
        assert!(e.contains("it was edited"), "{e}");
        let e = Manifest::open(&text.as_bytes()[..text.len() / 2], &id).expect_err("cut");
        assert!(e.starts_with("not a manifest"), "{e}");
        let other = BackupId::parse("20261124T0300Z").expect("id");
        assert!(
            Manifest::open(text.as_bytes(), &other).expect_err("other id").contains("not 20261124T0300Z")
        );
        let e = Manifest::open(text.replace("teal-backup/1", "teal-backup/9").as_bytes(), &id)
            .expect_err("format");
        assert!(e.starts_with("format `teal-backup/9`"), "{e}");
        let e = Manifest::open(text.replace("\"trigger\"", "\"extra\": 1, \"trigger\"").as_bytes(), &id)
            .expect_err("unknown field");
        assert!(e.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn listings_must_match_the_manifest_exactly() {
        let m = manifest();
        let mut listing: BTreeMap<String, u64> = BTreeMap::from([
            ("configs/chat.yaml".into(), 10),
            (EXPORT.into(), 20),
            (MANIFEST.into(), 1),
            (CLAIM.into(), 1),
        ]);
        assert_eq!(check_listing(&m, &listing), Ok(()));
        listing.insert(EXPORT.into(), 19);
        assert_eq!(
            check_listing(&m, &listing),
            Err("redis.ndjson.gz is 19 bytes, the manifest says 20".into())
        );
        listing.remove(EXPORT);
        assert_eq!(check_listing(&m, &listing), Err("redis.ndjson.gz is missing".into()));
        listing.insert(EXPORT.into(), 20);
        listing.insert("configs/stray.yaml".into(), 3);
        assert_eq!(check_listing(&m, &listing), Err("configs/stray.yaml is not in the manifest".into()));
    }
}
