//! Whole keys in and out of Redis, for backups: which keys are durable state, `SCAN` over the
//! prefix, reading keys with their type and remaining TTL, and writing them back.
//!
//! Owns the classification of the key layout ([`KeyKind`]: sessions and tasks are durable; the
//! response cache, the tool catalog, its refresh leases and the rate-limit buckets are
//! disposable, rebuilt on demand) and the commands. It reads and writes values with the plain
//! per-type commands (`GET`/`LRANGE`/`HGETALL`/`SMEMBERS`/`ZRANGE`, `SET`/`RPUSH`/`HSET`/`SADD`/
//! `ZADD`), never `DUMP`/`RESTORE`, whose payload only the same RDB version reads: a dump must
//! load into any Redis or Valkey. Each batch is one Lua script, so a key is read (or written)
//! with its TTL atomically, and a restore never interleaves with a live write to the same key.
//! It must not decide the file format of a backup (`crate::backup::record` does).

use std::sync::LazyLock;

use ::redis::Value;

use super::{OnError, RedisConnection};
use crate::store::StoreError;

/// What a key under the prefix holds, from its first segment (`{p}session:…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    Session,
    Task,
    TaskRequest,
    Cache,
    Catalog,
    CatalogLock,
    Rate,
    /// A kind this version does not write (a newer version's state): kept, to be safe.
    Other,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::Session,
        Self::Task,
        Self::TaskRequest,
        Self::Cache,
        Self::Catalog,
        Self::CatalogLock,
        Self::Rate,
        Self::Other,
    ];

    /// The kind of `key` (without the prefix).
    pub fn of(key: &str) -> Self {
        match key.split_once(':').map_or(key, |(kind, _)| kind) {
            "session" => Self::Session,
            "task" => Self::Task,
            "task-req" => Self::TaskRequest,
            "cache" => Self::Cache,
            "catalog" => Self::Catalog,
            "catalog-lock" => Self::CatalogLock,
            "rate" => Self::Rate,
            _ => Self::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Task => "task",
            Self::TaskRequest => "task-req",
            Self::Cache => "cache",
            Self::Catalog => "catalog",
            Self::CatalogLock => "catalog-lock",
            Self::Rate => "rate",
            Self::Other => "other",
        }
    }

    /// Rebuilt on demand, so left out of backups: a restored cache would only serve stale
    /// answers, and stale rate-limit buckets or leases would only get in the way.
    pub fn is_disposable(self) -> bool {
        match self {
            Self::Cache | Self::Catalog | Self::CatalogLock | Self::Rate => true,
            Self::Session | Self::Task | Self::TaskRequest | Self::Other => false,
        }
    }

    /// Every disposable kind, for a manifest to say what it left out.
    pub fn disposable() -> Vec<Self> {
        Self::ALL.into_iter().filter(|k| k.is_disposable()).collect()
    }
}

/// One key's value, by Redis type. Bytes stay bytes (values need not be UTF-8); sorted-set
/// scores stay the text Redis gave, so they round-trip exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Set(Vec<Vec<u8>>),
    /// `(member, score)`.
    SortedSet(Vec<(Vec<u8>, String)>),
}

impl KeyValue {
    /// The Redis type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::String(_) => "string",
            Self::List(_) => "list",
            Self::Hash(_) => "hash",
            Self::Set(_) => "set",
            Self::SortedSet(_) => "zset",
        }
    }

    /// Bytes of payload (for batching and progress).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Self::String(v) => v.len(),
            Self::List(v) | Self::Set(v) => v.iter().map(Vec::len).sum(),
            Self::Hash(v) => v.iter().map(|(f, x)| f.len() + x.len()).sum(),
            Self::SortedSet(v) => v.iter().map(|(m, s)| m.len() + s.len()).sum(),
        }
    }
}

/// A key (without the prefix), its value and its remaining time to live.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDump {
    pub key: String,
    /// Milliseconds left when it was read; `None`: no expiry.
    pub ttl_ms: Option<u64>,
    pub value: KeyValue,
}

/// What reading one key found.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRead {
    Found(KeyDump),
    /// Expired or deleted since the `SCAN` listed it.
    Gone,
    /// A type we do not copy (a stream, a module type), by name.
    Unsupported(String),
}

/// What a restore batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreCounts {
    pub written: u64,
    /// Already present and left alone (no overwrite).
    pub kept: u64,
}

/// Reads each key of KEYS with its type and PTTL: a flat array of (type, pttl, value) triples.
static READ: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local out = {}
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)['ok']
  local v = false
  if t == 'string' then v = redis.call('GET', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'hash' then v = redis.call('HGETALL', k)
  elseif t == 'set' then v = redis.call('SMEMBERS', k)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  end
  out[#out + 1] = t
  out[#out + 1] = redis.call('PTTL', k)
  out[#out + 1] = v
end
return out
",
    )
});

/// Writes keys: ARGV[1] is '1' to overwrite; then per key of KEYS: type, ttl ms ('' for none),
/// the number n of values that follow, and the n values (hash: field, value; zset: score,
/// member). Returns {written, kept}. Values go in chunks of 512 (Lua's unpack limit is ~8000).
static WRITE: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local overwrite = ARGV[1] == '1'
local cmds = {list = 'RPUSH', hash = 'HSET', set = 'SADD', zset = 'ZADD'}
local pos, written, kept = 2, 0, 0
for _, k in ipairs(KEYS) do
  local t, ttl, n = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  pos = pos + 3
  local exists = redis.call('EXISTS', k) == 1
  if exists and not overwrite then
    kept = kept + 1
  else
    if exists then redis.call('DEL', k) end
    if t == 'string' then
      redis.call('SET', k, ARGV[pos])
    else
      local j = 0
      while j < n do
        local m = math.min(n - j, 512)
        redis.call(cmds[t], k, unpack(ARGV, pos + j, pos + j + m - 1))
        j = j + m
      end
    end
    if ttl ~= '' then redis.call('PEXPIRE', k, ttl) end
    written = written + 1
  end
  pos = pos + n
end
return {written, kept}
",
    )
});

/// `prefix` with the glob characters of `MATCH` escaped, then `*`.
fn match_pattern(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

fn bytes(v: Value) -> Result<Vec<u8>, String> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

fn items(v: Value) -> Result<Vec<Vec<u8>>, String> {
    match v {
        Value::Array(a) | Value::Set(a) => a.into_iter().map(bytes).collect(),
        other => Err(format!("expected an array, got {other:?}")),
    }
}

/// Field/value (or member/score) pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn pairs(v: Value) -> Result<Pairs, String> {
    let flat = items(v)?;
    if !flat.len().is_multiple_of(2) {
        return Err("odd number of items in a field/value reply".to_owned());
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

/// One (type, pttl, value) triple of [`READ`].
fn decode_read(key: &str, t: Value, pttl: Value, v: Value) -> Result<KeyRead, String> {
    let t = String::from_utf8(bytes(t)?).map_err(|_| "type is not UTF-8".to_owned())?;
    let pttl = match pttl {
        Value::Int(n) => n,
        other => return Err(format!("expected a PTTL, got {other:?}")),
    };
    if t == "none" || pttl == -2 {
        return Ok(KeyRead::Gone);
    }
    let value = match t.as_str() {
        "string" => KeyValue::String(bytes(v)?),
        "list" => KeyValue::List(items(v)?),
        "hash" => KeyValue::Hash(pairs(v)?),
        "set" => KeyValue::Set(items(v)?),
        "zset" => KeyValue::SortedSet(
            pairs(v)?
                .into_iter()
                .map(|(m, s)| {
                    String::from_utf8(s).map(|s| (m, s)).map_err(|_| "score is not UTF-8".to_owned())
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Ok(KeyRead::Unsupported(t)),
    };
    let ttl_ms = u64::try_from(pttl).ok();
    Ok(KeyRead::Found(KeyDump { key: key.to_owned(), ttl_ms, value }))
}

impl RedisConnection {
    /// The number of keys in the database (all prefixes): a progress estimate.
    pub async fn db_size(&self) -> Result<u64, StoreError> {
        self.run("dbsize", OnError::Surface, |mut c| async move {
            ::redis::cmd("DBSIZE").query_async::<u64>(&mut c).await
        })
        .await
    }

    /// One `SCAN` step over the keys under the prefix: the next cursor (0 when done) and the
    /// keys found, without the prefix. Keys that are not UTF-8 cannot be ours and are skipped.
    pub async fn scan_keys(&self, cursor: u64, count: u32) -> Result<(u64, Vec<String>), StoreError> {
        let pattern = match_pattern(self.prefix());
        let (next, keys): (u64, Vec<Vec<u8>>) = self
            .run("backup_scan", OnError::Surface, |mut c| async move {
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let prefix = self.prefix();
        let keys = keys
            .into_iter()
            .filter_map(|k| String::from_utf8(k).ok())
            .filter_map(|k| k.strip_prefix(prefix).map(str::to_owned))
            .collect();
        Ok((next, keys))
    }

    /// Reads `keys` (without the prefix) atomically, each with its type and remaining TTL.
    pub async fn dump_keys(&self, keys: &[String]) -> Result<Vec<KeyRead>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| format!("{}{k}", self.prefix())).collect();
        let flat: Vec<Value> = self
            .run("backup_read", OnError::Surface, |mut c| async move {
                let mut call = READ.prepare_invoke();
                for k in &full {
                    call.key(k);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        if flat.len() != keys.len() * 3 {
            return Err(StoreError::Unavailable(format!(
                "redis backup_read: {} values for {} keys",
                flat.len(),
                keys.len()
            )));
        }
        let mut it = flat.into_iter();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (Some(t), Some(ttl), Some(v)) = (it.next(), it.next(), it.next()) else { break };
            let read = decode_read(key, t, ttl, v)
                .map_err(|e| StoreError::Unavailable(format!("redis backup_read of {key}: {e}")))?;
            out.push(read);
        }
        Ok(out)
    }

    /// How many of `keys` (without the prefix) exist now (a dry run's "would be kept").
    pub async fn count_existing(&self, keys: &[String]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let full: Vec<String> = keys.iter().map(|k| format!("{}{k}", self.prefix())).collect();
        self.run("restore_exists", OnError::Surface, |mut c| async move {
            ::redis::cmd("EXISTS").arg(&full).query_async::<u64>(&mut c).await
        })
        .await
    }

    /// Writes `dumps` under this connection's prefix, each with its TTL, in one script: a key
    /// that exists is left alone unless `overwrite` (then replaced whole).
    pub async fn restore_keys(
        &self,
        dumps: &[KeyDump],
        overwrite: bool,
    ) -> Result<RestoreCounts, StoreError> {
        if dumps.is_empty() {
            return Ok(RestoreCounts::default());
        }
        let prefix = self.prefix();
        let (written, kept): (u64, u64) = self
            .run("restore_write", OnError::Surface, |mut c| async move {
                let mut call = WRITE.prepare_invoke();
                call.arg(if overwrite { "1" } else { "0" });
                for d in dumps {
                    call.key(format!("{prefix}{}", d.key));
                    call.arg(d.value.type_name())
                        .arg(d.ttl_ms.map(|t| t.max(1).to_string()).unwrap_or_default());
                    match &d.value {
                        KeyValue::String(v) => {
                            call.arg(1).arg(v.as_slice());
                        }
                        KeyValue::List(v) | KeyValue::Set(v) => {
                            call.arg(v.len());
                            for x in v {
                                call.arg(x.as_slice());
                            }
                        }
                        KeyValue::Hash(v) => {
                            call.arg(v.len() * 2);
                            for (f, x) in v {
                                call.arg(f.as_slice()).arg(x.as_slice());
                            }
                        }
                        KeyValue::SortedSet(v) => {
                            call.arg(v.len() * 2);
                            for (m, s) in v {
                                call.arg(s.as_str()).arg(m.as_slice());
                            }
                        }
                    }
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(RestoreCounts { written, kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_key_layout() {
        let cases = [
            ("session:abc", KeyKind::Session, false),
            ("task:t-1", KeyKind::Task, false),
            ("task-req:r-1", KeyKind::TaskRequest, false),
            ("cache:0f", KeyKind::Cache, true),
            ("catalog:0f", KeyKind::Catalog, true),
            ("catalog-lock:0f", KeyKind::CatalogLock, true),
            ("rate:ci-bot", KeyKind::Rate, true),
            ("future:x", KeyKind::Other, false),
            ("plain", KeyKind::Other, false),
        ];
        for (key, kind, disposable) in cases {
            assert_eq!(KeyKind::of(key), kind, "{key}");
            assert_eq!(kind.is_disposable(), disposable, "{key}");
        }
        let names: Vec<&str> = KeyKind::disposable().into_iter().map(KeyKind::name).collect();
        assert_eq!(names, ["cache", "catalog", "catalog-lock", "rate"]);
    }

    #[test]
    fn match_patterns_escape_globs() {
        assert_eq!(match_pattern("teal:"), "teal:*");
        assert_eq!(match_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(match_pattern(""), "*");
    }
}
