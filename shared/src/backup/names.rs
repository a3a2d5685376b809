//! Names: a backup's id (the UTC minute it was made for) and where a backup lives in S3.
//!
//! A backup is `s3://{bucket}/backups/{id}/`, `id` like `20261123T0300Z`: ids sort in time
//! order, and two runs for the same minute (an EventBridge event delivered twice, two operators)
//! name the same backup, so the claim decides which one writes it.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};

use super::BackupError;
use crate::config::s3::is_bucket_name;

const FORMAT: &str = "%Y%m%dT%H%MZ";

/// The folder every backup is under, in the backup bucket.
pub const BACKUPS: &str = "backups/";

/// A backup's id: the UTC minute it was made for, `YYYYMMDDTHHMMZ`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(String);

impl BackupId {
    /// The id of the minute `t` falls in.
    pub fn at(t: DateTime<Utc>) -> Self {
        let minute = t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t);
        Self(minute.format(FORMAT).to_string())
    }

    /// The id of this minute.
    pub fn now() -> Self {
        Self::at(DateTime::<Utc>::from(std::time::SystemTime::now()))
    }

    pub fn parse(s: &str) -> Result<Self, BackupError> {
        NaiveDateTime::parse_from_str(s, FORMAT)
            .ok()
            .filter(|t| t.format(FORMAT).to_string() == s)
            .map(|_| Self(s.to_owned()))
            .ok_or_else(|| BackupError::BadInput {
                field: "backup",
                detail: format!("`{s}` is not a backup id (YYYYMMDDTHHMMZ, e.g. 20261123T0300Z)"),
            })
    }

    /// When the backup was made for.
    pub fn time(&self) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(&self.0, FORMAT).map(|t| t.and_utc()).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `backups/{id}/`: the folder of this backup.
    pub fn folder(&self) -> String {
        format!("{BACKUPS}{}/", self.0)
    }
}

impl std::fmt::Display for BackupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for BackupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for BackupId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One backup in S3: `s3://{bucket}/backups/{id}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRef {
    pub bucket: String,
    pub id: BackupId,
}

impl BackupRef {
    /// `s3://bucket/backups/{id}` (a trailing `/` is fine).
    pub fn parse(s: &str) -> Result<Self, BackupError> {
        let bad = |detail: String| BackupError::BadInput { field: "backup", detail };
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| bad(format!("`{s}`: expected s3://bucket/backups/ID (e.g. 20261123T0300Z)")))?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket_name(bucket) {
            return Err(bad(format!("`{s}`: `{bucket}` is not an S3 bucket name")));
        }
        let id =
            path.trim_end_matches('/').strip_prefix(BACKUPS).filter(|id| !id.contains('/')).ok_or_else(
                || bad(format!("`{s}`: expected s3://{bucket}/backups/ID (e.g. 20261123T0300Z)")),
            )?;
        Ok(Self { bucket: bucket.to_owned(), id: BackupId::parse(id)? })
    }

    /// `backups/{id}/{name}`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.id.folder())
    }
}

impl std::fmt::Display for BackupRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}{}", self.bucket, BACKUPS, self.id)
    }
}

/// RFC 3339 UTC, to the millisecond: the timestamps of manifests and claims.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

pub(crate) fn utc_now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_are_the_utc_minute_and_sort_in_time_order() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 59).single().expect("time");
        let id = BackupId::at(t);
        assert_eq!(id.as_str(), "20261123T0300Z");
        assert_eq!(id.folder(), "backups/20261123T0300Z/");
        assert_eq!(id.time(), Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).single().expect("time"));
        assert_eq!(BackupId::parse("20261123T0300Z").expect("valid"), id);
        assert!(
            BackupId::parse("20261123T0300Z").expect("a") < BackupId::parse("20261124T0000Z").expect("b")
        );
        for bad in ["", "2026-11-23T03:00Z", "20261323T0300Z", "20261123T0300", "20261123T03000Z"] {
            let e = BackupId::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("backup: `"), "{e}");
        }
        assert!(BackupId::now().as_str().ends_with('Z'));
    }

    #[test]
    fn backup_refs_parse_s3_urls() {
        let r = BackupRef::parse("s3://teal-backups/backups/20261123T0300Z/").expect("valid");
        assert_eq!((r.bucket.as_str(), r.id.as_str()), ("teal-backups", "20261123T0300Z"));
        assert_eq!(r.to_string(), "s3://teal-backups/backups/20261123T0300Z");
        assert_eq!(r.key("manifest.json"), "backups/20261123T0300Z/manifest.json");
        assert_eq!(BackupRef::parse("s3://teal-backups/backups/20261123T0300Z").expect("no slash"), r);
        let cases = [
            ("teal-backups/backups/20261123T0300Z", "expected s3://bucket/backups/ID"),
            ("s3://Bad_Bucket/backups/20261123T0300Z", "is not an S3 bucket name"),
            ("s3://teal-backups/other/20261123T0300Z", "expected s3://teal-backups/backups/ID"),
            ("s3://teal-backups/backups/x/y", "expected s3://teal-backups/backups/ID"),
            ("s3://teal-backups/backups/yesterday", "is not a backup id"),
        ];
        for (input, want) in cases {
            let e = BackupRef::parse(input).expect_err(input).to_string();
            assert!(e.starts_with("backup: ") && e.contains(want), "{input}: {e}");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 1).single().expect("time");
        assert_eq!(rfc3339(t), "2026-11-23T03:00:01.000Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
