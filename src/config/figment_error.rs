//! figment's errors and metadata turned into a [`ConfigError`] that names
//! the source (file, variable or flag), the rule and the key, and the
//! [`Origin`] of a merged value.

use super::*;

/// Where the value of a top-level key came from.
pub(super) fn origin_of(fig: &Figment, key: &str) -> Origin {
    match fig.find_metadata(key) {
        Some(md) => origin_from_metadata(md, &[key]),
        None => Origin::Default,
    }
}

pub(super) fn origin_from_metadata<K: AsRef<str>>(md: &Metadata, path: &[K]) -> Origin {
    match md.name.as_ref() {
        layer::FILE => match md.source.as_ref().and_then(|s| s.file_path()) {
            Some(p) => Origin::File(p.to_path_buf()),
            None => Origin::File(PathBuf::from("?")),
        },
        layer::ENV => Origin::Env(md.interpolate(&Profile::Default, path)),
        layer::FLAGS => Origin::Flag(md.interpolate(&Profile::Default, path)),
        _ => Origin::Default,
    }
}

/// Turns figment's first error into one that names the source, the rule
/// and the key.
pub(super) fn from_figment(e: figment::Error, fig: &Figment, file: Option<&Path>) -> ConfigError {
    let more = e.count().saturating_sub(1);
    let Some(first) = e.into_iter().next() else {
        return ConfigError::invalid(Origin::Default, "", "invalid configuration");
    };
    let origin = match &first.metadata {
        Some(md) => origin_from_metadata(md, &first.path),
        // Errors raised while reading a provider (YAML syntax) carry no
        // metadata; only the file can produce them.
        None => file.map_or(Origin::Default, |p| Origin::File(p.to_path_buf())),
    };
    let mut path = first.path.clone();
    if let Kind::UnknownField(found, _) = &first.kind {
        // The path ends with the unknown key itself; the message names it.
        if path.last() == Some(found) {
            path.pop();
        }
    }
    let mut location = path_location(&path, fig);
    let mut message = match &first.kind {
        Kind::UnknownField(found, expected) => {
            format!(
                "unknown key `{found}` (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value `{found}` (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::Message(m) if path.is_empty() && matches!(origin, Origin::File(_)) => {
            format!("invalid YAML: {m}")
        }
        // serde names the Rust type it expected; say what it means instead.
        k => k
            .to_string()
            .replace(
                "struct RawRule",
                "a rule (a map of name, comm, exe, cmdline)",
            )
            .replace("struct RawSettings", "a map of settings"),
    };
    if location.is_empty()
        && let Kind::MissingField(f) = &first.kind
    {
        location = f.to_string();
    }
    if more > 0 {
        message.push_str(&format!(" (and {more} more error(s))"));
    }
    ConfigError::invalid(origin, location, message)
}

/// `["process_names", "2", "cmdline", "0"]` →
/// `process_names[2] (name "db"): cmdline[0]`.
pub(super) fn path_location(path: &[String], fig: &Figment) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < path.len() {
        let seg = &path[i];
        let index = path.get(i + 1).and_then(|s| s.parse::<usize>().ok());
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(seg);
        if let Some(idx) = index {
            out.push_str(&format!("[{idx}]"));
            if i == 0 && seg == "process_names" {
                let name = fig
                    .find_value("process_names")
                    .ok()
                    .and_then(|v| match v {
                        Value::Array(_, items) => items.get(idx).cloned(),
                        _ => None,
                    })
                    .and_then(|item| item.into_dict())
                    .and_then(|d| d.get("name").and_then(|n| n.as_str().map(str::to_string)));
                match name {
                    Some(n) if !n.is_empty() => out.push_str(&format!(" (name {n:?})")),
                    _ => out.push_str(" (no name)"),
                }
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}
