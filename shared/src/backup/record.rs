//! The Redis export's format: gzip of one JSON record per line (NDJSON), one record per key.
//!
//! A record is `{"key": "session:abc", "ttl_ms": 3599000, "type": "list", "value": [...]}`:
//! the key without the prefix, the remaining TTL when it was read (`null`: no expiry), the Redis
//! type and the value (`string`: a blob; `list`/`set`: blobs; `hash`: [field, value] pairs;
//! `zset`: [member, score] pairs). A blob is a JSON string when it is UTF-8 (sessions are JSON
//! text, so the export stays readable), else `{"hex": "…"}`. Any Redis or Valkey can load it with
//! plain commands. [`GzLines`] reads the export back a chunk at a time, in bounded memory: a
//! line longer than [`MAX_LINE_BYTES`] or a cut-off stream is an error, never a silent stop.

use std::io::Write;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::store::{KeyDump, KeyValue};
use crate::util::hex;

/// The longest record accepted when reading an export back.
pub const MAX_LINE_BYTES: usize = 64 << 20;

struct Blob<'a>(&'a [u8]);

impl Serialize for Blob<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("hex", &hex(self.0))?;
                map.end()
            }
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
enum ValueOut<'a> {
    String(Blob<'a>),
    List(Vec<Blob<'a>>),
    Hash(Vec<(Blob<'a>, Blob<'a>)>),
    Set(Vec<Blob<'a>>),
    Zset(Vec<(Blob<'a>, &'a str)>),
}

#[derive(Serialize)]
struct LineOut<'a> {
    key: &'a str,
    ttl_ms: Option<u64>,
    #[serde(flatten)]
    value: ValueOut<'a>,
}

fn blobs(v: &[Vec<u8>]) -> Vec<Blob<'_>> {
    v.iter().map(|b| Blob(b)).collect()
}

/// One record as a JSON line, `\n` included.
pub fn encode(dump: &KeyDump) -> Vec<u8> {
    let value = match &dump.value {
        KeyValue::String(v) => ValueOut::String(Blob(v)),
        KeyValue::List(v) => ValueOut::List(blobs(v)),
        KeyValue::Set(v) => ValueOut::Set(blobs(v)),
        KeyValue::Hash(v) => ValueOut::Hash(v.iter().map(|(f, x)| (Blob(f), Blob(x))).collect()),
        KeyValue::SortedSet(v) => ValueOut::Zset(v.iter().map(|(m, s)| (Blob(m), s.as_str())).collect()),
    };
    // Plain data: serialising it cannot fail.
    let mut line =
        serde_json::to_vec(&LineOut { key: &dump.key, ttl_ms: dump.ttl_ms, value }).unwrap_or_default();
    line.push(b'\n');
    line
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

fn blob(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if o.len() == 1 => {
            o.get("hex").and_then(Value::as_str).and_then(unhex).ok_or_else(|| {
                "a blob object must be {\"hex\": \"…\"} with an even number of hex digits".to_owned()
            })
        }
        _ => Err("a blob must be a string or {\"hex\": \"…\"}".to_owned()),
    }
}

fn array(v: &Value) -> Result<&Vec<Value>, String> {
    v.as_array().ok_or_else(|| "expected an array".to_owned())
}

fn pair(v: &Value) -> Result<(&Value, &Value), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((a, b)),
        _ => Err("expected a [first, second] pair".to_owned()),
    }
}

/// Parses one line (without its `\n`). `Err` says what is wrong with it.
pub fn decode(line: &[u8]) -> Result<KeyDump, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let o = v.as_object().ok_or("not a JSON object")?;
    if let Some(extra) = o.keys().find(|k| !matches!(k.as_str(), "key" | "ttl_ms" | "type" | "value")) {
        return Err(format!("unknown field `{extra}`"));
    }
    let key = o
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or("`key` must be a non-empty string")?;
    let ttl_ms = match o.get("ttl_ms") {
        None | Some(Value::Null) => None,
        Some(t) => Some(t.as_u64().ok_or("`ttl_ms` must be a whole number of milliseconds or null")?),
    };
    let value = o.get("value").ok_or("`value` is missing")?;
    let in_value = |e: String| format!("`value`: {e}");
    let blobs = |v: &Value| array(v)?.iter().map(blob).collect::<Result<Vec<_>, _>>();
    let value = match o.get("type").and_then(Value::as_str) {
        Some("string") => KeyValue::String(blob(value).map_err(in_value)?),
        Some("list") => KeyValue::List(blobs(value).map_err(in_value)?),
        Some("set") => KeyValue::Set(blobs(value).map_err(in_value)?),
        Some("hash") => KeyValue::Hash(
            array(value)
                .and_then(|a| a.iter().map(|p| pair(p).and_then(|(f, x)| Ok((blob(f)?, blob(x)?)))).collect())
                .map_err(in_value)?,
        ),
        Some("zset") => KeyValue::SortedSet(
            array(value)
                .and_then(|a| {
                    a.iter()
                        .map(|p| {
                            let (m, s) = pair(p)?;
                            let score = s.as_str().filter(|s| s.parse::<f64>().is_ok() || s.ends_with("inf"));
                            Ok((blob(m)?, score.ok_or("a score must be a number as a string")?.to_owned()))
                        })
                        .collect()
                })
                .map_err(in_value)?,
        ),
        Some(other) => return Err(format!("`type` {other:?} is not string, list, set, hash or zset")),
        None => return Err("`type` must be a string".to_owned()),
    };
    let empty = match &value {
        KeyValue::String(_) => false,
        KeyValue::List(v) | KeyValue::Set(v) => v.is_empty(),
        KeyValue::Hash(v) => v.is_empty(),
        KeyValue::SortedSet(v) => v.is_empty(),
    };
    if empty {
        return Err("`value` is empty (Redis holds no empty collections)".to_owned());
    }
    Ok(KeyDump { key: key.to_owned(), ttl_ms, value })
}

/// Collects the decompressed bytes into whole lines.
struct LineSink {
    partial: Vec<u8>,
    lines: Vec<Vec<u8>>,
    max: usize,
}

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            self.check_len()?;
            self.lines.push(std::mem::take(&mut self.partial));
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        self.check_len()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LineSink {
    fn check_len(&self) -> std::io::Result<()> {
        if self.partial.len() > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a record is longer than {} bytes", self.max),
            ));
        }
        Ok(())
    }
}

/// Gzip-compressed NDJSON in, whole lines out, fed a chunk at a time.
pub struct GzLines {
    decoder: flate2::write::GzDecoder<LineSink>,
}

impl Default for GzLines {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl GzLines {
    /// Lines longer than `max_line` bytes are an error.
    pub fn new(max_line: usize) -> Self {
        let sink = LineSink { partial: Vec::new(), lines: Vec::new(), max: max_line };
        Self { decoder: flate2::write::GzDecoder::new(sink) }
    }

    /// Feeds compressed bytes; complete lines are then in [`take_lines`](Self::take_lines).
    pub fn push(&mut self, compressed: &[u8]) -> std::io::Result<()> {
        self.decoder.write_all(compressed)
    }

    /// The complete lines so far (without `\n`).
    pub fn take_lines(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.decoder.get_mut().lines)
    }

    /// Ends the stream: the last lines, or an error if the gzip stream is cut off or the data
    /// does not end with a newline.
    pub fn finish(mut self) -> std::io::Result<Vec<Vec<u8>>> {
        self.decoder.try_finish()?;
        let sink = self.decoder.finish()?;
        if !sink.partial.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the last record is cut off"));
        }
        Ok(sink.lines)
    }
}

#[cfg(test)]
mod tests {
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn dumps() -> Vec<KeyDump> {
        vec![
            KeyDump {
                key: "session:s1".into(),
                ttl_ms: Some(3_599_000),
                value: KeyValue::List(vec![
                    br#"{"role":"user","content":"hi"}"#.to_vec(),
                    b"\xff\x00".to_vec(),
                ]),
            },
            KeyDump { key: "task-req:r1".into(), ttl_ms: None, value: KeyValue::String(b"t-1".to_vec()) },
            KeyDump {
                key: "task:t-1".into(),
                ttl_ms: Some(5),
                value: KeyValue::Hash(vec![
                    (b"rev".to_vec(), b"3".to_vec()),
                    (b"task".to_vec(), b"{}".to_vec()),
                ]),
            },
            KeyDump { key: "other:s".into(), ttl_ms: None, value: KeyValue::Set(vec![b"a".to_vec()]) },
            KeyDump {
                key: "other:z".into(),
                ttl_ms: None,
                value: KeyValue::SortedSet(vec![
                    (b"m".to_vec(), "1.5".into()),
                    (b"n".to_vec(), "-inf".into()),
                ]),
            },
        ]
    }

    #[test]
    fn records_round_trip_and_stay_readable() {
        for d in dumps() {
            let line = encode(&d);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(decode(&line[..line.len() - 1]).expect("decodes"), d);
        }
        let line = String::from_utf8(encode(&dumps()[0])).expect("utf-8");
        assert_eq!(
            line,
            "{\"key\":\"session:s1\",\"ttl_ms\":3599000,\"type\":\"list\",\"value\":[\"{\\\"role\\\":\\\"user\\\",\\\"content\\\":\\\"hi\\\"}\",{\"hex\":\"ff00\"}]}\n"
        );
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        let cases = [
            ("[]", "not a JSON object"),
            ("{", "not JSON"),
            (r#"{"key":"","type":"string","value":"x"}"#, "`key` must be a non-empty string"),
            (r#"{"key":"k","ttl_ms":-1,"type":"string","value":"x"}"#, "`ttl_ms` must be"),
            (r#"{"key":"k","type":"stream","value":[]}"#, "`type` \"stream\" is not"),
            (r#"{"key":"k","type":"list","value":"x"}"#, "`value`: expected an array"),
            (r#"{"key":"k","type":"list","value":[]}"#, "`value` is empty"),
            (r#"{"key":"k","type":"string","value":{"hex":"f"}}"#, "even number of hex digits"),
            (r#"{"key":"k","type":"hash","value":[["a"]]}"#, "expected a [first, second] pair"),
            (r#"{"key":"k","type":"zset","value":[["a","x"]]}"#, "a score must be a number"),
            (r#"{"key":"k","type":"string","value":"x","more":1}"#, "unknown field `more`"),
        ];
        for (line, want) in cases {
            let e = decode(line.as_bytes()).expect_err(line);
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(data).expect("compress");
        gz.finish().expect("finish")
    }

    #[test]
    fn gzip_lines_come_back_whole_in_any_chunking_and_cut_streams_fail() {
        let text: Vec<u8> = dumps().iter().flat_map(encode).collect();
        let compressed = gzip(&text);
        for chunk in [1, 7, 64, compressed.len()] {
            let mut r = GzLines::default();
            let mut lines = Vec::new();
            for c in compressed.chunks(chunk) {
                r.push(c).expect("push");
                lines.extend(r.take_lines());
            }
            lines.extend(r.finish().expect("complete"));
            assert_eq!(lines.len(), 5, "chunks of {chunk}");
            assert_eq!(decode(&lines[4]).expect("decodes"), dumps()[4]);
        }
        let mut r = GzLines::default();
        r.push(&compressed[..compressed.len() - 10]).expect("push");
        assert!(r.finish().is_err(), "a truncated stream is an error");
        let mut r = GzLines::default();
        r.push(&gzip(b"{\"key\":\"no newline\"")).expect("push");
        assert_eq!(r.finish().expect_err("cut").to_string(), "the last record is cut off");
        let mut r = GzLines::new(8);
        let long = r.push(&gzip(b"0123456789\n")).and_then(|()| r.finish().map(drop));
        assert!(long.expect_err("long").to_string().contains("longer than 8 bytes"));
    }
}
