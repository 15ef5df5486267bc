//! Group-name templates: the subset of Go `text/template` that
//! process-exporter configurations use, parsed once at load time.
//!
//! A template is literal text with actions `{{.Field}}` or
//! `{{.Matches.NAME}}` (spaces inside the braces are allowed). Anything else
//! (pipelines, functions, `{{.Matches}}` alone, trim markers, comments) is
//! rejected when the configuration loads, and so is a field or capture name
//! that does not exist: process-exporter prints `<no value>` at run time
//! instead, which silently merges unrelated processes into one group.
//!
//! Rendering is infallible and allocation-light: the parsed parts are walked
//! once per newly seen process.
//!
//! Fixed formats (process-exporter used Go's default formatting for these):
//! - `{{.StartTime}}` is RFC 3339 in UTC with the fractional seconds trimmed
//!   of trailing zeros, and no fraction at all on a whole second:
//!   `2017-10-19T22:52:51.19Z`, `2017-10-19T22:52:51Z`.
//! - `{{.Cgroups}}` is the process's cgroup paths in `/proc/<pid>/cgroup`
//!   order joined by `,`: `/system.slice/foo.service` for cgroup v2, several
//!   (possibly repeated) paths for v1, the empty string when unknown.
//! - `{{.ContainerID}}`, `{{.PodUID}}`, `{{.Namespace}}`, `{{.PodName}}` and
//!   `{{.ContainerName}}` are the process's container identity, from its
//!   cgroup and the kubelet's log directories; each is empty outside a
//!   container, and the names are empty while the log root does not know
//!   the container.

use std::fmt::{self, Write as _};
use std::hash::Hasher as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::containers::ContainerInfo;

/// A field of the process that a template can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// comm, at most 15 bytes.
    Comm,
    /// Basename of argv\[0\]; comm when the command line is empty.
    ExeBase,
    /// argv\[0\] as written; comm when the command line is empty.
    ExeFull,
    /// User name of the effective uid, or the numeric uid when unknown.
    Username,
    /// Decimal PID.
    Pid,
    /// Start time, see the module documentation for the format.
    StartTime,
    /// cgroup paths, see the module documentation for the format.
    Cgroups,
    /// The container's 64-digit ID.
    ContainerId,
    /// The Kubernetes pod's UID.
    PodUid,
    /// The pod's namespace.
    Namespace,
    /// The pod's name.
    PodName,
    /// The container's name in its pod.
    ContainerName,
}

impl Field {
    /// Every field with its template spelling.
    pub const ALL: [(Field, &'static str); 12] = [
        (Field::Comm, "Comm"),
        (Field::ExeBase, "ExeBase"),
        (Field::ExeFull, "ExeFull"),
        (Field::Username, "Username"),
        (Field::Pid, "PID"),
        (Field::StartTime, "StartTime"),
        (Field::Cgroups, "Cgroups"),
        (Field::ContainerId, "ContainerID"),
        (Field::PodUid, "PodUID"),
        (Field::Namespace, "Namespace"),
        (Field::PodName, "PodName"),
        (Field::ContainerName, "ContainerName"),
    ];

    /// Whether the field needs the process's container identity.
    pub fn is_container(self) -> bool {
        matches!(
            self,
            Field::ContainerId
                | Field::PodUid
                | Field::Namespace
                | Field::PodName
                | Field::ContainerName
        )
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// The template spelling, e.g. `ExeBase`.
    pub fn name(self) -> &'static str {
        Field::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("?", |(_, n)| n)
    }
}

/// One parsed piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
    /// `{{.Matches.NAME}}`: a named capture of the rule's cmdline regexes.
    Capture(String),
}

/// A parsed name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template was rejected. The message is complete and user-facing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The values a template is rendered from, all borrowed from the process
/// being named. `username` is only computed when the template uses it.
pub struct Values<'a> {
    /// comm.
    pub comm: &'a str,
    /// argv.
    pub cmdline: &'a [String],
    /// cgroup paths.
    pub cgroups: &'a [String],
    /// PID.
    pub pid: i32,
    /// Start time.
    pub start_time: SystemTime,
    /// Resolves the user name when the template needs it.
    pub username: &'a dyn Fn() -> String,
    /// Named captures of the cmdline regexes, in no particular order.
    pub captures: &'a [(String, String)],
    /// The process's container, when it runs in one and a template or
    /// selector of the rules asked for it.
    pub container: Option<&'a ContainerInfo>,
}

/// The default template of process-exporter.
pub const DEFAULT_TEMPLATE: &str = "{{.ExeBase}}";

impl Template {
    /// Parses `source`. `capture_names` are the named groups of the rule's
    /// cmdline regexes: `{{.Matches.X}}` must name one of them.
    pub fn parse(source: &str, capture_names: &[String]) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError(format!(
                    "unclosed `{{{{` at byte {} of name template {source:?}",
                    source.len() - rest.len() + open
                )));
            };
            let action = &after[..close];
            parts.push(parse_action(action, capture_names)?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template shows `field` (the namer loads the passwd file
    /// only when some template shows `.Username`).
    pub fn uses(&self, field: Field) -> bool {
        self.parts.contains(&Part::Field(field))
    }

    /// Whether the template shows any part of the container identity.
    pub fn uses_container(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Field(f) if f.is_container()))
    }

    /// Renders the template for one process.
    pub fn render(&self, v: &Values<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Capture(name) => {
                    // The last regex that defines the name wins, as in
                    // process-exporter.
                    if let Some((_, val)) = v.captures.iter().rev().find(|(k, _)| k == name) {
                        out.push_str(val);
                    }
                }
                Part::Field(f) => match f {
                    Field::Comm => out.push_str(v.comm),
                    Field::ExeFull => out.push_str(exe_full(v.comm, v.cmdline)),
                    Field::ExeBase => out.push_str(basename(exe_full(v.comm, v.cmdline))),
                    Field::Username => out.push_str(&(v.username)()),
                    Field::Pid => {
                        let _ = write!(out, "{}", v.pid);
                    }
                    Field::StartTime => {
                        let _ = write!(out, "{}", Rfc3339(v.start_time));
                    }
                    Field::Cgroups => out.push_str(&v.cgroups.join(",")),
                    Field::ContainerId
                    | Field::PodUid
                    | Field::Namespace
                    | Field::PodName
                    | Field::ContainerName => {
                        if let Some(c) = v.container {
                            out.push_str(container_field(c, *f));
                        }
                    }
                },
            }
        }
        bounded_group_name(out)
    }
}

/// One field of a container's identity; empty when unknown.
fn container_field(c: &ContainerInfo, field: Field) -> &str {
    match field {
        Field::ContainerId => c.container_id.as_ref().map_or("", |id| id.as_str()),
        Field::PodUid => c.pod_uid.as_ref().map_or("", |uid| uid.as_str()),
        Field::Namespace => c.namespace.as_deref().unwrap_or(""),
        Field::PodName => c.pod_name.as_deref().unwrap_or(""),
        Field::ContainerName => c.container_name.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// Longest group name, in bytes. Names are made of process data that any
/// local user controls (argv[0], command-line captures, cgroup paths); one
/// name of 128 KiB, attached to every point of every export, would push the
/// request past the Collector's 4 MiB limit and stop all exports.
pub const MAX_GROUP_NAME_BYTES: usize = 255;

/// Length of the `~` and hash suffix of a cut name.
const HASH_SUFFIX_BYTES: usize = 17;

/// `name` made safe to export and to print: control characters (newlines,
/// terminal escapes) become `?`, and a name longer than
/// [`MAX_GROUP_NAME_BYTES`] is cut at a character boundary and ends in `~`
/// and 16 hex digits of a hash of the whole name, so that two long names
/// that differ only past the cut stay two groups.
pub fn bounded_group_name(name: String) -> String {
    if name.len() <= MAX_GROUP_NAME_BYTES && !name.chars().any(char::is_control) {
        return name;
    }
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.len() <= MAX_GROUP_NAME_BYTES {
        return clean;
    }
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(name.as_bytes());
    let mut cut = MAX_GROUP_NAME_BYTES - HASH_SUFFIX_BYTES;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{:016x}", &clean[..cut], hasher.finish())
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn known_fields() -> String {
    Field::ALL
        .iter()
        .map(|(_, n)| format!(".{n}"))
        .chain(std::iter::once(".Matches.NAME".to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_action(action: &str, capture_names: &[String]) -> Result<Part, TemplateError> {
    let unsupported = || {
        TemplateError(format!(
            "unsupported template action `{{{{{action}}}}}`: only {} are supported",
            known_fields()
        ))
    };
    if action.starts_with('-') || action.ends_with('-') || action.starts_with("/*") {
        return Err(unsupported());
    }
    let inner = action.trim_matches(|c: char| c == ' ' || c == '\t');
    let Some(path) = inner.strip_prefix('.') else {
        return Err(unsupported());
    };
    let segments: Vec<&str> = path.split('.').collect();
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !segments.iter().all(|s| is_ident(s)) {
        return Err(unsupported());
    }
    match segments.as_slice() {
        ["Matches"] => Err(TemplateError(
            "`{{.Matches}}` needs a capture name: write `{{.Matches.NAME}}` for the named \
             group (?P<NAME>...) of a cmdline regex"
                .to_string(),
        )),
        ["Matches", name] => {
            if capture_names.iter().any(|c| c == name) {
                Ok(Part::Capture((*name).to_string()))
            } else if capture_names.is_empty() {
                Err(TemplateError(format!(
                    "`{{{{.Matches.{name}}}}}` refers to a capture group, but this rule has no \
                     named group in its cmdline regexes (write (?P<{name}>...))"
                )))
            } else {
                Err(TemplateError(format!(
                    "`{{{{.Matches.{name}}}}}` names no capture group of this rule's cmdline \
                     regexes (named groups: {})",
                    capture_names.join(", ")
                )))
            }
        }
        [field] => Field::from_name(field).map(Part::Field).ok_or_else(|| {
            let hint = Field::ALL
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(field))
                .map(|(_, n)| format!(" (did you mean `.{n}`?)"))
                .unwrap_or_default();
            TemplateError(format!(
                "unknown field `.{field}` in name template{hint}; known: {}",
                known_fields()
            ))
        }),
        _ => Err(unsupported()),
    }
}

/// argv\[0\], or comm when there is no command line (kernel threads, zombies).
pub fn exe_full<'a>(comm: &'a str, cmdline: &'a [String]) -> &'a str {
    cmdline.first().map_or(comm, String::as_str)
}

/// The last element of a `/`-separated path, as Go's `filepath.Base`:
/// trailing slashes are ignored, `""` gives `.`, and all slashes give `/`.
pub fn basename(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// RFC 3339 in UTC, fractional seconds without trailing zeros, no fraction on
/// a whole second. Written here rather than borrowed from a crate because it
/// must never panic, also for times before 1970.
pub struct Rfc3339(pub SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos): (i64, u32) = match self.0.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    (-s, 0)
                } else {
                    (-s - 1, 1_000_000_000 - d.subsec_nanos())
                }
            }
        };
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )?;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // d is in 1..=31 and m in 1..=12 by construction.
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn values<'a>(
        cmdline: &'a [String],
        captures: &'a [(String, String)],
        user: &'a dyn Fn() -> String,
    ) -> Values<'a> {
        Values {
            comm: "postmaster",
            cmdline,
            cgroups: &[],
            pid: 7,
            start_time: UNIX_EPOCH,
            username: user,
            captures,
            container: None,
        }
    }

    #[test]
    fn long_or_unprintable_names_are_bounded() {
        let short = "postgres: writer".to_string();
        assert_eq!(bounded_group_name(short.clone()), short);
        assert_eq!(bounded_group_name("a\nb\u{1b}[31m".into()), "a?b?[31m");

        // Multi-byte characters across the cut, and two names that differ
        // only at their end.
        let long = |last: char| format!("{}{last}", "é".repeat(100_000));
        let (a, b) = (bounded_group_name(long('a')), bounded_group_name(long('b')));
        assert!(a.len() <= MAX_GROUP_NAME_BYTES, "{}", a.len());
        assert!(a.starts_with("éé"));
        assert_ne!(a, b);
        assert_eq!(a, bounded_group_name(long('a')), "the same name each time");
        let (head, hash) = a.rsplit_once('~').unwrap();
        assert!(head.chars().all(|c| c == 'é'));
        assert_eq!(hash.len(), 16);
    }

    #[test]
    fn a_rendered_name_is_bounded() {
        let t = Template::parse("{{.ExeBase}}", &[]).unwrap();
        let argv = vec!["A".repeat(131_000)];
        let user = || "postgres".to_string();
        let name = t.render(&values(&argv, &[], &user));
        assert!(name.len() <= MAX_GROUP_NAME_BYTES, "{}", name.len());
        assert!(name.starts_with("AAAA"));
    }

    #[test]
    fn literal_and_fields() {
        let t = Template::parse("x-{{ .Comm }}:{{.PID}}-y", &[]).unwrap();
        let argv = vec!["/usr/bin/postmaster".to_string()];
        let user = || "postgres".to_string();
        assert_eq!(t.render(&values(&argv, &[], &user)), "x-postmaster:7-y");
    }

    #[test]
    fn unknown_field_is_an_error_with_a_hint() {
        let e = Template::parse("{{.comm}}", &[]).unwrap_err();
        assert!(e.0.contains("unknown field `.comm`"), "{e}");
        assert!(e.0.contains("did you mean `.Comm`"), "{e}");
    }

    #[test]
    fn unknown_capture_is_an_error() {
        let e = Template::parse("{{.Matches.Nope}}", &["Path".to_string()]).unwrap_err();
        assert!(e.0.contains("names no capture group"), "{e}");
        assert!(e.0.contains("Path"), "{e}");
    }

    #[test]
    fn unsupported_actions_are_rejected() {
        for bad in [
            "{{.Matches}}",
            "{{index .Matches \"x\"}}",
            "{{- .Comm}}",
            "{{/* c */}}",
            "{{.Comm | printf}}",
            "{{Comm}}",
            "{{.Comm",
            "{{}}",
        ] {
            assert!(Template::parse(bad, &[]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn closing_braces_alone_are_literal() {
        let t = Template::parse("a}}b", &[]).unwrap();
        let user = String::new;
        assert_eq!(t.render(&values(&[], &[], &user)), "a}}b");
    }

    #[test]
    fn basename_follows_go() {
        assert_eq!(basename("/bin/bash"), "bash");
        assert_eq!(basename("bash"), "bash");
        assert_eq!(basename("/usr/lib/"), "lib");
        assert_eq!(basename(""), ".");
        assert_eq!(basename("///"), "/");
        assert_eq!(
            basename("postgres: writer process"),
            "postgres: writer process"
        );
    }

    #[test]
    fn rfc3339_format() {
        let t = UNIX_EPOCH + Duration::new(1_508_453_571, 190_000_000);
        assert_eq!(Rfc3339(t).to_string(), "2017-10-19T22:52:51.19Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_508_453_571);
        assert_eq!(Rfc3339(t).to_string(), "2017-10-19T22:52:51Z");
        assert_eq!(Rfc3339(UNIX_EPOCH).to_string(), "1970-01-01T00:00:00Z");
        let before = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_eq!(Rfc3339(before).to_string(), "1969-12-31T23:59:58.5Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(Rfc3339(leap).to_string(), "2000-02-29T00:00:00Z");
    }
}
