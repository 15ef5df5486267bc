//! The compiled naming rules: process-exporter's `process_names` items
//! ([`RuleSet`]) and its legacy `--procnames`/`--namemapping` flags
//! ([`LegacyNamer`]), both implementing [`MatchNamer`].
//!
//! Semantics of a [`RuleSet`] (process-exporter's, with its bugs fixed):
//! - Items are tried in file order; the first whose selectors all match
//!   names the process. Each process belongs to at most one group.
//! - Within an item, `comm`, `exe` and `cmdline` are ANDed, evaluated in that
//!   order (cheapest first) and short-circuited.
//! - `comm` matches when the comm equals one entry exactly.
//! - `exe` matches argv\[0\]: an entry without `/` against its basename, an
//!   entry with `/` against the whole of it. Every entry is kept (two
//!   entries sharing a basename both work, unlike process-exporter, which
//!   kept only the last one).
//! - `cmdline` regexes are all searched, unanchored, in the arguments joined
//!   by single spaces; named groups become `{{.Matches.NAME}}` (a group that
//!   did not take part gives ""; a later regex overwrites an earlier one's
//!   equal name). Captures live in the call, never in the matcher, so one
//!   namer can serve several threads.
//! - `namespace`, `pod` and `container` regexes (any of a list, unanchored
//!   unless written with `^…$`) match the process's pod namespace, pod name
//!   and container name, after `cmdline`. A process outside a container, or
//!   whose names the log root does not give, matches none of them. The
//!   container identity is worked out only when some rule needs it, from
//!   the cgroup paths already read, through a [`NameResolver`].

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use regex::Regex;

use super::template::{self, Field, Template, Values, bounded_group_name};
use super::users::UserNames;
use crate::containers::{ContainerInfo, NameResolver};
use crate::proc::{Explanation, MatchNamer, ProcAttributes};

/// One entry of an `exe` selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExeEntry {
    /// No `/`: compared with the basename of argv\[0\].
    Base(String),
    /// Contains `/`: compared with argv\[0\] as a whole.
    Full(String),
}

impl ExeEntry {
    /// Classifies an entry as written in the configuration.
    pub fn new(entry: &str) -> ExeEntry {
        if entry.contains('/') {
            ExeEntry::Full(entry.to_string())
        } else {
            ExeEntry::Base(entry.to_string())
        }
    }

    fn matches(&self, argv0: &str) -> bool {
        match self {
            ExeEntry::Base(b) => template::basename(argv0) == b,
            ExeEntry::Full(f) => argv0 == f,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            ExeEntry::Base(s) | ExeEntry::Full(s) => s,
        }
    }
}

/// One compiled `process_names` item.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The group-name template.
    pub name: Template,
    /// `comm` selector, when given.
    pub comm: Option<Vec<String>>,
    /// `exe` selector, when given.
    pub exe: Option<Vec<ExeEntry>>,
    /// `cmdline` selector, when given.
    pub cmdline: Option<Vec<Regex>>,
    /// `namespace`, `pod` and `container` selectors.
    pub k8s: K8sSelectors,
}

/// The selectors on a process's Kubernetes names: each, when given, is a
/// list of regexes of which one must match.
#[derive(Debug, Clone, Default)]
pub struct K8sSelectors {
    pub namespace: Option<Vec<Regex>>,
    pub pod: Option<Vec<Regex>>,
    pub container: Option<Vec<Regex>>,
}

impl K8sSelectors {
    fn is_empty(&self) -> bool {
        self.namespace.is_none() && self.pod.is_none() && self.container.is_none()
    }

    fn each(&self) -> [(&'static str, Option<&Vec<Regex>>); 3] {
        [
            ("namespace", self.namespace.as_ref()),
            ("pod", self.pod.as_ref()),
            ("container", self.container.as_ref()),
        ]
    }

    /// `Ok` when every given selector has a regex matching its name.
    fn check(&self, info: Option<&ContainerInfo>) -> Result<(), String> {
        for (field, regexes) in self.each() {
            let Some(regexes) = regexes else { continue };
            let value = info.and_then(|i| match field {
                "namespace" => i.namespace.as_deref(),
                "pod" => i.pod_name.as_deref(),
                _ => i.container_name.as_deref(),
            });
            let Some(value) = value else {
                return Err(format!("{field}: the process has no known {field} name"));
            };
            if !regexes.iter().any(|re| re.is_match(value)) {
                let list: Vec<String> = regexes
                    .iter()
                    .map(|r| format!("/{}/", r.as_str()))
                    .collect();
                return Err(format!(
                    "{field} {value:?} matches none of [{}]",
                    list.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The arguments joined by spaces, computed at most once per process.
struct Joined<'a> {
    cmdline: &'a [String],
    cell: OnceCell<String>,
}

impl Joined<'_> {
    fn get(&self) -> &str {
        self.cell.get_or_init(|| self.cmdline.join(" "))
    }
}

impl Rule {
    /// `Ok(captures)` when every selector matches, else the reason the first
    /// failing one gives.
    fn try_match(
        &self,
        attrs: &ProcAttributes<'_>,
        joined: &Joined<'_>,
        container: Option<&ContainerInfo>,
    ) -> Result<Vec<(String, String)>, String> {
        if let Some(comms) = &self.comm
            && !comms.iter().any(|c| c == attrs.name)
        {
            return Err(format!("comm {:?} is not one of {comms:?}", attrs.name));
        }
        if let Some(exes) = &self.exe {
            let Some(argv0) = attrs.cmdline.first() else {
                return Err("exe: the command line is empty".to_string());
            };
            if !exes.iter().any(|e| e.matches(argv0)) {
                let list: Vec<&str> = exes.iter().map(ExeEntry::as_str).collect();
                return Err(format!("exe: argv[0] {argv0:?} is not one of {list:?}"));
            }
        }
        let mut captures = Vec::new();
        if let Some(regexes) = &self.cmdline {
            let text = joined.get();
            for (i, re) in regexes.iter().enumerate() {
                let Some(caps) = re.captures(text) else {
                    return Err(format!(
                        "cmdline[{i}] /{}/ does not match {text:?}",
                        re.as_str()
                    ));
                };
                for name in re.capture_names().flatten() {
                    let value = caps.name(name).map_or("", |m| m.as_str());
                    captures.push((name.to_string(), value.to_string()));
                }
            }
        }
        self.k8s.check(container)?;
        Ok(captures)
    }

    /// One line describing the rule, for `--check-config` and the status API.
    pub fn describe(&self) -> String {
        let mut s = format!("name {:?}", self.name.source());
        if let Some(c) = &self.comm {
            let _ = write!(s, ", comm in {c:?}");
        }
        if let Some(e) = &self.exe {
            let list: Vec<String> = e
                .iter()
                .map(|e| match e {
                    ExeEntry::Base(b) => format!("basename(argv[0]) == {b:?}"),
                    ExeEntry::Full(f) => format!("argv[0] == {f:?}"),
                })
                .collect();
            let _ = write!(s, ", exe: {}", list.join(" or "));
        }
        if let Some(r) = &self.cmdline {
            let list: Vec<String> = r.iter().map(|r| format!("/{}/", r.as_str())).collect();
            let _ = write!(s, ", cmdline matches all of [{}]", list.join(", "));
        }
        for (field, regexes) in self.k8s.each() {
            if let Some(r) = regexes {
                let list: Vec<String> = r.iter().map(|r| format!("/{}/", r.as_str())).collect();
                let _ = write!(s, ", {field} matches one of [{}]", list.join(", "));
            }
        }
        s
    }
}

/// An ordered list of rules: the first that matches names the process.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    users: Option<UserNames>,
    /// Present when some rule shows or selects on the container.
    containers: Option<Arc<NameResolver>>,
}

impl RuleSet {
    /// The rules, in order. `users` resolves `{{.Username}}`; it is only
    /// consulted by rules whose template uses that field.
    pub fn new(rules: Vec<Rule>, users: UserNames) -> RuleSet {
        let needs_users = rules.iter().any(|r| r.name.uses(Field::Username));
        RuleSet {
            rules,
            users: needs_users.then_some(users),
            containers: None,
        }
    }

    /// Whether some rule shows or selects on the container identity.
    pub fn uses_containers(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.name.uses_container() || !r.k8s.is_empty())
    }

    /// The rules naming containers through `resolver`. Rules that never
    /// look at containers do not keep it, so that naming costs nothing more.
    pub fn with_containers(mut self, resolver: Arc<NameResolver>) -> RuleSet {
        self.containers = self.uses_containers().then_some(resolver);
        self
    }

    /// The decision for a process whose container (if any) is already
    /// known: the pure part of naming, which the tests drive directly.
    pub fn explain_in(
        &self,
        attrs: &ProcAttributes<'_>,
        container: Option<&ContainerInfo>,
    ) -> Explanation {
        self.decide_in(attrs, container, true)
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn decide(&self, attrs: &ProcAttributes<'_>, explain: bool) -> Explanation {
        let container = self.containers.as_ref().and_then(|r| r.info(attrs.cgroups));
        self.decide_in(attrs, container.as_ref(), explain)
    }

    fn decide_in(
        &self,
        attrs: &ProcAttributes<'_>,
        container: Option<&ContainerInfo>,
        explain: bool,
    ) -> Explanation {
        let joined = Joined {
            cmdline: attrs.cmdline,
            cell: OnceCell::new(),
        };
        let mut misses = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            match rule.try_match(attrs, &joined, container) {
                Ok(captures) => {
                    let username = || match &self.users {
                        Some(u) => u.name(attrs.uid),
                        None => attrs.uid.to_string(),
                    };
                    let group = rule.name.render(&Values {
                        comm: attrs.name,
                        cmdline: attrs.cmdline,
                        cgroups: attrs.cgroups,
                        pid: attrs.pid,
                        start_time: attrs.start_time,
                        username: &username,
                        captures: &captures,
                        container,
                    });
                    return Explanation {
                        detail: if explain {
                            format!("rule {i} matched ({})", rule.describe())
                        } else {
                            String::new()
                        },
                        group: Some(group),
                        rule: Some(i),
                        template: Some(rule.name.source().to_string()),
                    };
                }
                Err(why) if explain => misses.push(format!("rule {i}: {why}")),
                Err(_) => {}
            }
        }
        Explanation {
            group: None,
            rule: None,
            template: None,
            detail: if self.rules.is_empty() {
                "no rules: nothing is tracked".to_string()
            } else {
                format!("no rule matched: {}", misses.join("; "))
            },
        }
    }
}

impl MatchNamer for RuleSet {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        self.decide(attrs, false).group
    }

    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        self.decide(attrs, true)
    }

    fn describe(&self) -> Vec<String> {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| format!("[{i}] {}", r.describe()))
            .collect()
    }
}

/// process-exporter's `-procnames`/`-namemapping` namer: a process whose comm
/// is listed is tracked under its comm; a process whose comm has a mapping is
/// tracked as `comm:` + the first non-empty capture group of the mapping's
/// regex over its joined arguments, and ignored when there is none (even if
/// its comm is also in the procnames list). Mappings apply whether or not
/// their name is in the procnames list.
#[derive(Debug, Default)]
pub struct LegacyNamer {
    /// comm → mapping regex (`None`: tracked under the comm itself).
    entries: BTreeMap<String, Option<Regex>>,
}

impl LegacyNamer {
    /// Builds the namer from already validated comm names and mappings.
    pub fn new(procnames: Vec<String>, mappings: Vec<(String, Regex)>) -> LegacyNamer {
        let mut entries: BTreeMap<String, Option<Regex>> = BTreeMap::new();
        for (name, re) in mappings {
            entries.insert(name, Some(re));
        }
        for name in procnames {
            entries.entry(name).or_insert(None);
        }
        LegacyNamer { entries }
    }

    fn decide(&self, attrs: &ProcAttributes<'_>) -> Result<String, String> {
        match self.entries.get(attrs.name) {
            None => Err(format!(
                "comm {:?} is not in --procnames or --namemapping",
                attrs.name
            )),
            Some(None) => Ok(bounded_group_name(attrs.name.to_string())),
            Some(Some(re)) => {
                let text = attrs.cmdline.join(" ");
                let caps = re.captures(&text).ok_or_else(|| {
                    format!("namemapping /{}/ does not match {text:?}", re.as_str())
                })?;
                caps.iter()
                    .skip(1)
                    .flatten()
                    .map(|m| m.as_str())
                    .find(|s| !s.is_empty())
                    .map(|s| bounded_group_name(format!("{}:{s}", attrs.name)))
                    .ok_or_else(|| {
                        format!(
                            "namemapping /{}/ matched {text:?} but captured nothing",
                            re.as_str()
                        )
                    })
            }
        }
    }
}

impl MatchNamer for LegacyNamer {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        self.decide(attrs).ok()
    }

    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        match self.decide(attrs) {
            Ok(group) => Explanation {
                detail: format!("comm {:?} is listed", attrs.name),
                group: Some(group),
                rule: None,
                template: None,
            },
            Err(detail) => Explanation {
                group: None,
                rule: None,
                template: None,
                detail,
            },
        }
    }

    fn describe(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(name, re)| match re {
                None => format!("comm == {name:?} -> group {name:?}"),
                Some(re) => format!(
                    "comm == {name:?} -> group \"{name}:\" + first non-empty capture of /{}/",
                    re.as_str()
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::UNIX_EPOCH;

    fn attrs<'a>(comm: &'a str, argv: &'a [String]) -> ProcAttributes<'a> {
        ProcAttributes {
            name: comm,
            cmdline: argv,
            cgroups: &[],
            uid: 0,
            pid: 1,
            start_time: UNIX_EPOCH,
        }
    }

    #[test]
    fn legacy_mapping_needs_a_non_empty_capture() {
        let n = LegacyNamer::new(
            vec!["bash".into(), "java".into()],
            vec![(
                "java".into(),
                Regex::new(r"-jar\s+([^/]+)\.jar|(-x)").unwrap(),
            )],
        );
        let argv = vec!["java".to_string(), "-jar".into(), "app.jar".into()];
        assert_eq!(
            n.match_and_name(&attrs("java", &argv)).as_deref(),
            Some("java:app")
        );
        let argv = vec!["java".to_string(), "-x".into()];
        assert_eq!(
            n.match_and_name(&attrs("java", &argv)).as_deref(),
            Some("java:-x")
        );
        let argv = vec!["java".to_string(), "-version".into()];
        assert_eq!(n.match_and_name(&attrs("java", &argv)), None);
        assert!(
            n.explain(&attrs("java", &argv))
                .detail
                .contains("does not match")
        );
        assert_eq!(
            n.match_and_name(&attrs("bash", &[])).as_deref(),
            Some("bash")
        );
        assert_eq!(n.match_and_name(&attrs("zsh", &[])), None);
    }

    #[test]
    fn explain_names_the_rule_or_each_miss() {
        let rules = vec![
            Rule {
                name: Template::parse("{{.Comm}}", &[]).unwrap(),
                comm: Some(vec!["bash".into()]),
                exe: None,
                cmdline: None,
                k8s: K8sSelectors::default(),
            },
            Rule {
                name: Template::parse("x", &[]).unwrap(),
                comm: None,
                exe: Some(vec![ExeEntry::new("/bin/sh")]),
                cmdline: None,
                k8s: K8sSelectors::default(),
            },
        ];
        let set = RuleSet::new(rules, UserNames::new(PathBuf::from("/nonexistent")));
        let argv = vec!["/bin/sh".to_string()];
        let e = set.explain(&attrs("sh", &argv));
        assert_eq!(e.rule, Some(1));
        assert_eq!(e.group.as_deref(), Some("x"));
        assert_eq!(e.template.as_deref(), Some("x"));
        let argv = vec!["/usr/bin/sh".to_string()];
        let e = set.explain(&attrs("sh", &argv));
        assert_eq!(e.group, None);
        assert!(e.detail.contains("rule 0: comm \"sh\""), "{}", e.detail);
        assert!(e.detail.contains("rule 1: exe"), "{}", e.detail);
        assert_eq!(set.describe().len(), 2);
    }
}
