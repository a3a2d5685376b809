//! `read_media_file`: a file's bytes as base64 with its MIME type (by extension, the reference
//! server's table), as an image or audio content block, or an embedded blob resource for any
//! other type. Bounded by the server's file size limit like every read.

use base64::Engine;
use rmcp::model::{ContentBlock, ResourceContents};

use crate::{
    error::FsError,
    ops::{Ctx, read_bytes, too_large},
};

/// The MIME types the reference server knows, by lower-case extension.
const MIME_TYPES: [(&str, &str); 11] = [
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("bmp", "image/bmp"),
    ("svg", "image/svg+xml"),
    ("mp3", "audio/mpeg"),
    ("wav", "audio/wav"),
    ("ogg", "audio/ogg"),
    ("flac", "audio/flac"),
];

/// The content block for the file at `path`, and the structured content holding it.
pub(crate) fn read_media_file(ctx: &Ctx, path: &str) -> Result<(ContentBlock, serde_json::Value), FsError> {
    let limit = ctx.max_file_size;
    let (bytes, handle) = read_bytes(ctx, path, limit.bytes(), |size| match size {
        Some(size) => too_large(format!("file {path}"), size, limit),
        None => FsError::GrewTooLarge { path: path.to_owned(), limit },
    })?;
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let mime = mime_type(path);
    let block = if mime.starts_with("image/") {
        ContentBlock::image(data, mime)
    } else if mime.starts_with("audio/") {
        ContentBlock::audio(data, mime)
    } else {
        let uri = format!("file://{}", handle.real().display());
        ContentBlock::resource(ResourceContents::BlobResourceContents {
            uri,
            mime_type: Some(mime.to_owned()),
            blob: data,
            meta: None,
        })
    };
    let json =
        serde_json::to_value(&block).map_err(|e| FsError::io("encode", path, std::io::Error::other(e)))?;
    Ok((block, serde_json::json!({ "content": [json] })))
}

fn mime_type(path: &str) -> &'static str {
    let ext =
        std::path::Path::new(path).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    MIME_TYPES.iter().find(|(e, _)| *e == ext).map_or("application/octet-stream", |(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_follow_the_extension_and_default_to_octet_stream() {
        assert_eq!(mime_type("a/b.PNG"), "image/png");
        assert_eq!(mime_type("song.flac"), "audio/flac");
        assert_eq!(mime_type("notes.txt"), "application/octet-stream");
        assert_eq!(mime_type("no-extension"), "application/octet-stream");
    }
}
