//! The compilers of the naming rules: `process_names` items into [`Rule`]s,
//! the legacy `procnames`/`namemapping` into a [`LegacyNamer`], and the
//! default rule when there is neither. Each error names the rule and field.

use super::*;

/// With no rules at all: every process with a non-empty command line,
/// grouped by comm (process-exporter's packaged `all.yaml`).
pub fn default_rules(procfs: &Path) -> Result<RuleSet, ConfigError> {
    let bad = |m: String| ConfigError::invalid(Origin::Default, "process_names", m);
    let rule = Rule {
        name: Template::parse("{{.Comm}}", &[]).map_err(|e| bad(e.0))?,
        comm: None,
        exe: None,
        cmdline: Some(vec![Regex::new(".+").map_err(|e| bad(e.to_string()))?]),
        k8s: K8sSelectors::default(),
    };
    Ok(RuleSet::new(vec![rule], UserNames::for_procfs(procfs)))
}

pub(super) fn rule_location(i: usize, item: &RawRule, field: &str) -> String {
    let name = match &item.name {
        Some(n) if !n.0.is_empty() => format!("name {:?}", n.0),
        _ => "no name".to_string(),
    };
    if field.is_empty() {
        format!("process_names[{i}] ({name})")
    } else {
        format!("process_names[{i}] ({name}): {field}")
    }
}

/// What went wrong in one rule: the field (empty for the rule as a whole)
/// and the message; the caller adds where the rule is.
type FieldError = (String, String);

/// Compiles one item; `Err((field, message))`. The fields are checked in
/// a fixed order (comm, exe, cmdline, the Kubernetes selectors, then the
/// name), so the error reported is the same from one run to the next.
pub(super) fn compile_rule(item: &RawRule) -> Result<Rule, FieldError> {
    let comm = match &item.comm {
        None => None,
        Some(list) => {
            let comms = entries("comm", list)?;
            for (j, c) in comms.iter().enumerate() {
                check_comm_len(c).map_err(|m| (format!("comm[{j}]"), m))?;
            }
            Some(comms)
        }
    };
    let exe = match &item.exe {
        None => None,
        Some(list) => Some(
            entries("exe", list)?
                .iter()
                .map(|e| ExeEntry::new(e))
                .collect(),
        ),
    };
    let cmdline = regexes("cmdline", &item.cmdline)?;
    let k8s = K8sSelectors {
        namespace: regexes("namespace", &item.namespace)?,
        pod: regexes("pod", &item.pod)?,
        container: regexes("container", &item.container)?,
    };
    if comm.is_none()
        && exe.is_none()
        && cmdline.is_none()
        && k8s.namespace.is_none()
        && k8s.pod.is_none()
        && k8s.container.is_none()
    {
        return Err((
            String::new(),
            "no selector: give at least one of comm, exe, cmdline, namespace, pod or container"
                .to_string(),
        ));
    }
    let name = name_template(item, cmdline.as_deref().unwrap_or_default())?;
    Ok(Rule {
        name,
        comm,
        exe,
        cmdline,
        k8s,
    })
}

/// The entries of a selector list. An empty list or entry would never
/// match, silently: it is an error, so that a typo does not disable a
/// rule.
fn entries(field: &str, list: &TextList) -> Result<Vec<String>, FieldError> {
    if list.0.is_empty() {
        return Err((
            field.to_string(),
            "empty list: remove the key or give at least one entry".to_string(),
        ));
    }
    for (j, e) in list.0.iter().enumerate() {
        if e.is_empty() {
            return Err((
                format!("{field}[{j}]"),
                "empty entry can never match".to_string(),
            ));
        }
    }
    Ok(list.0.clone())
}

/// A selector list of regexes (`cmdline` and the Kubernetes selectors),
/// compiled here so that a bad one is reported with its field and index.
fn regexes(field: &str, list: &Option<TextList>) -> Result<Option<Vec<Regex>>, FieldError> {
    let Some(list) = list else { return Ok(None) };
    let mut out = Vec::new();
    for (j, src) in entries(field, list)?.iter().enumerate() {
        out.push(
            Regex::new(src)
                .map_err(|e| (format!("{field}[{j}]"), format!("bad regex {src:?}: {e}")))?,
        );
    }
    Ok(Some(out))
}

/// The rule's name template (the default when it gives none), which may
/// use the named captures of its `cmdline` regexes: they are passed to the
/// parser so that a template naming an unknown capture is an error now,
/// not an empty name later.
fn name_template(item: &RawRule, cmdline: &[Regex]) -> Result<Template, FieldError> {
    let mut captures: Vec<String> = Vec::new();
    for re in cmdline {
        for n in re.capture_names().flatten() {
            if !captures.iter().any(|c| c == n) {
                captures.push(n.to_string());
            }
        }
    }
    let source = match &item.name {
        Some(n) if !n.0.is_empty() => n.0.as_str(),
        _ => DEFAULT_TEMPLATE,
    };
    Template::parse(source, &captures).map_err(|e| ("name".to_string(), e.0))
}

pub(super) fn check_comm_len(c: &str) -> Result<(), String> {
    if c.len() <= COMM_MAX_BYTES {
        return Ok(());
    }
    let mut cut = COMM_MAX_BYTES;
    while !c.is_char_boundary(cut) {
        cut -= 1;
    }
    Err(format!(
        "{c:?} is {} bytes long but the kernel truncates comm to {COMM_MAX_BYTES} ({:?}), \
         so it can never match",
        c.len(),
        &c[..cut]
    ))
}

/// Splits a legacy value into tokens: a joined string on commas, a YAML
/// list as it is.
pub(super) fn tokens(t: &Tokens) -> Vec<String> {
    match t {
        Tokens::Joined(s) => s.split(',').map(str::to_string).collect(),
        Tokens::List(l) => l.clone(),
    }
}

/// The legacy `procnames`/`namemapping` settings as one namer.
pub(super) fn compile_legacy(
    procnames: Option<&Tokens>,
    namemapping: Option<&Tokens>,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<LegacyNamer, ConfigError> {
    let mappings = match namemapping {
        Some(nm) => compile_namemapping(nm, origin)?,
        None => Vec::new(),
    };
    let names = match procnames {
        Some(pn) => compile_procnames(pn, &mappings, origin)?,
        None => Vec::new(),
    };
    Ok(LegacyNamer::new(names, mappings))
}

/// `namemapping`: name,regex pairs. Each regex needs a capture group (the
/// group is `name:` + its first non-empty capture), and each name may be
/// mapped once, so a pair that can never name a process is an error.
fn compile_namemapping(
    nm: &Tokens,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<Vec<(String, Regex)>, ConfigError> {
    let bad = |loc: String, m: String| ConfigError::invalid(origin("namemapping"), loc, m);
    let toks = tokens(nm);
    if toks.len() % 2 == 1 {
        return Err(bad(
            "namemapping".into(),
            format!(
                "odd number of tokens ({}): expected name,regex pairs (a regex cannot \
                 contain a comma here; use a YAML list or process_names rules)",
                toks.len()
            ),
        ));
    }
    let mut mappings: Vec<(String, Regex)> = Vec::new();
    for (j, pair) in toks.chunks(2).enumerate() {
        let (name, src) = (&pair[0], &pair[1]);
        let loc = format!("namemapping[{j}] (name {name:?})");
        if name.is_empty() {
            return Err(bad(loc, "empty name".into()));
        }
        if src.is_empty() {
            return Err(bad(loc, "empty regex".into()));
        }
        check_comm_len(name).map_err(|m| bad(loc.clone(), m))?;
        if mappings.iter().any(|(n, _)| n == name) {
            return Err(bad(loc, format!("{name:?} is mapped twice")));
        }
        let re =
            Regex::new(src).map_err(|e| bad(loc.clone(), format!("bad regex {src:?}: {e}")))?;
        if re.captures_len() < 2 {
            return Err(bad(
                loc,
                format!(
                    "regex {src:?} has no capture group, so it can never name a process \
                     (the group is \"{name}:\" + the first non-empty capture)"
                ),
            ));
        }
        mappings.push((name.clone(), re));
    }
    Ok(mappings)
}

/// `procnames`: the comms to track, empty tokens skipped. A comm longer
/// than the kernel keeps can never match and is an error, unless it is a
/// mapped group name.
fn compile_procnames(
    pn: &Tokens,
    mappings: &[(String, Regex)],
    origin: &dyn Fn(&str) -> Origin,
) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for (j, name) in tokens(pn).into_iter().filter(|t| !t.is_empty()).enumerate() {
        // process-exporter's README has users list mapped group names
        // (`java:app`) here too; they are harmless, the mapping applies
        // anyway.
        let mapped = mappings.iter().any(|(m, _)| {
            name.strip_prefix(m.as_str())
                .is_some_and(|r| r.starts_with(':'))
        });
        if !mapped {
            check_comm_len(&name).map_err(|m| {
                ConfigError::invalid(origin("procnames"), format!("procnames[{j}]"), m)
            })?;
        }
        names.push(name);
    }
    Ok(names)
}

/// The namer the settings ask for: the `process_names` rules, the legacy
/// settings, or the default rule; never both rules and a legacy setting.
/// `forgets_groups` (empty groups are forgotten, at once or after a time
/// to live) silences the warning that per-process groups pile up.
pub(super) fn compile_namer(
    raw: &RawSettings,
    procfs: &Path,
    containers: &Arc<NameResolver>,
    origin: &dyn Fn(&str) -> Origin,
    forgets_groups: bool,
    warnings: &mut Vec<String>,
) -> Result<Arc<dyn MatchNamer>, ConfigError> {
    let legacy = raw.procnames.is_some() || raw.namemapping.is_some();
    let namer: Arc<dyn MatchNamer> = match (raw.process_names.as_deref(), legacy) {
        (Some(_), true) => {
            let which = if raw.procnames.is_some() {
                "procnames"
            } else {
                "namemapping"
            };
            return Err(ConfigError::Conflict(format!(
                "process_names (from {}) cannot be combined with {which} (from {}); \
                 use the rules or the legacy setting, not both",
                origin("process_names"),
                origin(which)
            )));
        }
        (Some(items), false) => compile_rules(
            items,
            origin("process_names"),
            forgets_groups,
            procfs,
            containers,
            warnings,
        )?,
        (None, true) => Arc::new(compile_legacy(
            raw.procnames.as_ref(),
            raw.namemapping.as_ref(),
            origin,
        )?),
        (None, false) => Arc::new(default_rules(procfs)?),
    };
    if raw.container_attributes {
        return Ok(Arc::new(ContainerSplit::new(namer, Arc::clone(containers))));
    }
    Ok(namer)
}

/// The `process_names` rules, with a warning for each name that makes one
/// group per process and for an empty list.
fn compile_rules(
    items: &[RawRule],
    rules_origin: Origin,
    forgets_groups: bool,
    procfs: &Path,
    containers: &Arc<NameResolver>,
    warnings: &mut Vec<String>,
) -> Result<Arc<dyn MatchNamer>, ConfigError> {
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let rule = compile_rule(item).map_err(|(field, message)| {
            ConfigError::invalid(
                rules_origin.clone(),
                rule_location(i, item, &field),
                message,
            )
        })?;
        if rule.name.uses(Field::Pid) || rule.name.uses(Field::StartTime) {
            warnings.push(format!(
                "process_names[{i}]: name {:?} uses .PID or .StartTime: one group per \
                         process (high cardinality){}",
                rule.name.source(),
                if forgets_groups {
                    ""
                } else {
                    "; with empty_group_ttl never, those groups are kept forever"
                }
            ));
        }
        rules.push(rule);
    }
    if rules.is_empty() {
        warnings.push("process_names is empty: no process will be tracked".into());
    }
    Ok(Arc::new(
        RuleSet::new(rules, UserNames::for_procfs(procfs)).with_containers(containers.clone()),
    ))
}
