//! Tool and argument names (the rules are in the module doc of `openapi`).

use super::catalog::PluginName;

/// Longest tool name OpenAI-compatible APIs accept.
pub(crate) const MAX_TOOL_NAME: usize = 64;

/// Every run of characters outside `[A-Za-z0-9_]` becomes one `_` (SK's parameter
/// `alternative_name`).
pub(crate) fn arg_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_run = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The function part of an operation's tool name, before length and collision handling:
/// the `operationId` with each character outside `[A-Za-z0-9_]` turned into `_`, or, without
/// one, `{method}_{path}` with the path's braces dropped and separators folded.
pub(crate) fn function_name(operation_id: Option<&str>, method: &str, path: &str) -> String {
    match operation_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect(),
        None => {
            let path: String = path.chars().filter(|c| *c != '{' && *c != '}').collect();
            let joined = arg_name(&format!("{} {}", method.to_ascii_lowercase(), path));
            joined.trim_end_matches('_').to_owned()
        }
    }
}

/// `{plugin}-{function}`, cut to [`MAX_TOOL_NAME`] with a hash of `original` when too long or
/// when `taken` says the plain name is already used. `None` only if even the hashed name is taken.
pub(crate) fn tool_name(
    plugin: &PluginName,
    function: &str,
    original: &str,
    taken: impl Fn(&str) -> bool,
) -> Option<String> {
    let plain = format!("{plugin}-{function}");
    if plain.len() <= MAX_TOOL_NAME && !taken(&plain) {
        return Some(plain);
    }
    let suffix = &crate::util::sha256_hex(original.as_bytes())[..8];
    let room = MAX_TOOL_NAME - plugin.as_str().len() - 1 - suffix.len() - 1;
    // `function` is ASCII, so any byte index is a char boundary.
    let head = &function[..function.len().min(room)];
    let hashed = format!("{plugin}-{head}_{suffix}");
    (!taken(&hashed)).then_some(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str) -> PluginName {
        PluginName::parse(name).expect("plugin name")
    }

    #[test]
    fn argument_names_follow_sk() {
        assert_eq!(arg_name("X-Request-Id"), "X_Request_Id");
        assert_eq!(arg_name("address.city"), "address_city");
        assert_eq!(arg_name("a--b"), "a_b");
        assert_eq!(arg_name("page[size]"), "page_size_");
    }

    #[test]
    fn function_names_come_from_operation_id_or_method_and_path() {
        assert_eq!(function_name(Some("GetForecast"), "GET", "/v1/forecast"), "GetForecast");
        assert_eq!(function_name(Some("pets.list-all"), "GET", "/pets"), "pets_list_all");
        assert_eq!(function_name(None, "GET", "/users/{id}/posts"), "get_users_id_posts");
        assert_eq!(function_name(Some(" "), "DELETE", "/v1/items/{item-id}/"), "delete_v1_items_item_id");
    }

    #[test]
    fn tool_names_keep_teal_names_and_stay_short_and_distinct() {
        let p = plugin("api_weather");
        assert_eq!(
            tool_name(&p, "GetForecast", "GetForecast", |_| false).as_deref(),
            Some("api_weather-GetForecast")
        );
        let long = "x".repeat(80);
        let cut = tool_name(&p, &long, &long, |_| false).expect("name");
        assert_eq!(cut.len(), MAX_TOOL_NAME);
        assert!(cut.starts_with("api_weather-xxx"), "{cut}");
        let again = tool_name(&p, "get_a", "get.a", |n| n == "api_weather-get_a").expect("name");
        assert_eq!(again, format!("api_weather-get_a_{}", &crate::util::sha256_hex(b"get.a")[..8]));
        assert_eq!(tool_name(&p, "get_a", "get.a", |_| true), None);
    }
}
