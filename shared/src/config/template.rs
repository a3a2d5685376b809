//! Header value templates: `Bearer ${secret:GITHUB_TOKEN}` parsed into [`HeaderTemplate`].
//!
//! Owns the template syntax and header-name checks. It must not resolve secrets (that is
//! [`HeaderTemplate::render`] with the caller's lookup) nor ever hold a secret value.
//!
//! Syntax: `${secret:NAME}` or `${NAME}` is a secret reference; `$$` is a literal `$` (so
//! `$${X}` is the literal text `${X}`); a `$` followed by anything else is a literal `$`.
//! NAME is made of `A-Z a-z 0-9 _ . / + = @ -` (what AWS Secrets Manager allows in names).
//!
//! Also owns [`expand_vars`], the same `${NAME}` / `$$` syntax for load-time variables in `url`
//! (no `secret:` there: a URL is logged, a secret must not be).

use crate::config::types::{HeaderTemplate, TemplatePart};

impl HeaderTemplate {
    /// Parses a header value template. The error is a message for the header's YAML path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err("header value must not contain control characters (such as newlines)".to_owned());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                literal.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let Some(end) = r.find('}') else {
                    return Err(format!("unclosed `${{` in `{text}`"));
                };
                let name = secret_name(&r[..end])?;
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Secret(name.to_owned()));
                rest = &r[end + 1..];
            } else {
                literal.push('$');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Ok(Self { parts })
    }
}

fn secret_name(inner: &str) -> Result<&str, String> {
    let name = inner.strip_prefix("secret:").unwrap_or(inner);
    if name.is_empty() {
        return Err(format!("empty secret name in `${{{inner}}}`"));
    }
    if let Some((prefix, _)) = name.split_once(':') {
        return Err(format!(
            "unknown reference kind `{prefix}:` in `${{{inner}}}`; write ${{secret:NAME}} or ${{NAME}}"
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "_./+=@-".contains(c)) {
        return Err(format!("invalid secret name `{name}`: use letters, digits and `_ . / + = @ -`"));
    }
    Ok(name)
}

/// Replaces `${NAME}` with `lookup(NAME)` (`$$` is a literal `$`). The error is a message.
pub(crate) fn expand_vars(
    text: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let Some(end) = r.find('}') else {
                return Err(format!("unclosed `${{` in `{text}`"));
            };
            let name = &r[..end];
            if name.is_empty() {
                return Err("empty variable name in `${}`".to_owned());
            }
            if name.starts_with("secret:") {
                return Err(format!("`${{{name}}}`: secrets are not allowed here (only in headers)"));
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("variable `{name}` is not set")),
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 9110 `token`: the characters a header name may use.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use TemplatePart::{Literal, Secret};

    fn parts(s: &str) -> Vec<TemplatePart> {
        HeaderTemplate::parse(s).unwrap().parts
    }

    #[test]
    fn secrets_both_spellings_and_literals() {
        assert_eq!(
            parts("Bearer ${secret:FS_TOKEN}"),
            vec![Literal("Bearer ".into()), Secret("FS_TOKEN".into())]
        );
        assert_eq!(
            parts("${A}:${secret:prod/b}!"),
            vec![Secret("A".into()), Literal(":".into()), Secret("prod/b".into()), Literal("!".into())]
        );
        assert_eq!(parts("plain"), vec![Literal("plain".into())]);
        assert_eq!(parts(""), vec![]);
    }

    #[test]
    fn dollar_escapes() {
        assert_eq!(parts("cost $$5"), vec![Literal("cost $5".into())]);
        assert_eq!(parts("$${X}"), vec![Literal("${X}".into())]);
        assert_eq!(parts("a$b $"), vec![Literal("a$b $".into())]);
        assert_eq!(parts("$$${X}"), vec![Literal("$".into()), Secret("X".into())]);
    }

    #[test]
    fn syntax_errors() {
        let err = |s| HeaderTemplate::parse(s).unwrap_err();
        assert_eq!(err("Bearer ${TOKEN"), "unclosed `${` in `Bearer ${TOKEN`");
        assert_eq!(err("${}"), "empty secret name in `${}`");
        assert_eq!(err("${secret:}"), "empty secret name in `${secret:}`");
        assert_eq!(
            err("${env:HOME}"),
            "unknown reference kind `env:` in `${env:HOME}`; write ${secret:NAME} or ${NAME}"
        );
        assert_eq!(err("${A B}"), "invalid secret name `A B`: use letters, digits and `_ . / + = @ -`");
        assert!(err("a\nb").contains("control characters"));
    }

    #[test]
    fn render_and_secret_names() {
        let t = HeaderTemplate::parse("Bearer ${secret:T} ${U}").unwrap();
        assert_eq!(t.secret_names().collect::<Vec<_>>(), ["T", "U"]);
        let out: Result<String, ()> = t.render(|n| Ok(n.to_lowercase()));
        assert_eq!(out.unwrap(), "Bearer t u");
    }

    #[test]
    fn variables_expand_and_fail_clearly() {
        let look = |n: &str| (n == "FS").then(|| "http://h:1".to_owned());
        assert_eq!(expand_vars("${FS}/mcp", look).unwrap(), "http://h:1/mcp");
        assert_eq!(expand_vars("a$$b$c", look).unwrap(), "a$b$c");
        assert_eq!(expand_vars("${NOPE}", look).unwrap_err(), "variable `NOPE` is not set");
        assert_eq!(expand_vars("${FS", look).unwrap_err(), "unclosed `${` in `${FS`");
        assert_eq!(expand_vars("${}", look).unwrap_err(), "empty variable name in `${}`");
        assert_eq!(
            expand_vars("${secret:T}", look).unwrap_err(),
            "`${secret:T}`: secrets are not allowed here (only in headers)"
        );
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("Authorization"));
        assert!(is_header_name("X-Api-Key"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("X Api"));
        assert!(!is_header_name("X:Api"));
        assert!(!is_header_name("Ünicode"));
    }
}
