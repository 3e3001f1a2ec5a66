//! The ke2 stack's files (PROCEDURE.md step 8, what `setup_stack.sh`
//! derives): `docker-swarm.yml` from `docker compose config`, normalised so
//! `docker stack deploy` accepts it; `rabbitmq-cluster.conf` listing every
//! swarm node; and the adaptation of the stack for swarms whose routing mesh
//! (IPVS) does not work.
//!
//! Everything works on parsed YAML, never on lines: a `sed` that strips
//! quotes cannot tell a port number from a password that happens to be
//! digits inside a URL. Mapping order is kept as parsed, so the same input
//! always renders the same bytes.

use std::fmt::Write as _;

use serde_yaml_ng::{Mapping, Number, Value};
use thiserror::Error;

/// Why a stack file could not be rendered.
#[derive(Debug, Error)]
pub enum StackError {
    /// The input is not YAML, or not the shape compose produces. The detail
    /// is the parser's location message, never a value of the file (the file
    /// holds `DATABASE_URL` with its password).
    #[error("cannot read {what}: {detail}")]
    Parse { what: &'static str, detail: String },
    /// A value the rules need is missing or unusable.
    #[error("{0}")]
    Invalid(String),
}

fn parse(what: &'static str, text: &str) -> Result<Mapping, StackError> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| StackError::Parse {
        what,
        detail: e
            .location()
            .map(|l| format!("invalid YAML at line {}, column {}", l.line(), l.column()))
            .unwrap_or_else(|| "invalid YAML".to_string()),
    })?;
    match value {
        Value::Mapping(m) => Ok(m),
        _ => Err(StackError::Parse {
            what,
            detail: "the document is not a mapping".into(),
        }),
    }
}

fn render(m: Mapping) -> Result<String, StackError> {
    serde_yaml_ng::to_string(&Value::Mapping(m)).map_err(|e| StackError::Parse {
        what: "the rendered stack",
        detail: e.to_string(),
    })
}

/// Replaces every `<<X>>` by `{{X}}`. The compose files write swarm
/// templates that way where compose itself must not see braces (inside
/// `${VAR:-default}` values); swarm wants them as Go templates.
pub fn placeholders_to_templates(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("<<") {
        let after = &rest[start + 2..];
        match after.find(">>") {
            Some(end) if end > 0 && !after[..end].contains("<<") => {
                out.push_str(&rest[..start]);
                out.push_str("{{");
                out.push_str(&after[..end]);
                out.push_str("}}");
                rest = &after[end + 2..];
            }
            _ => {
                // Not a placeholder: keep the `<<` and look further on.
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The number a quoted decimal string stands for. Strings with leading
/// zeros (`"0755"`) stay strings: unquoted, YAML readers disagree on them.
fn as_number(s: &str) -> Option<Number> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse::<u64>().ok().map(Number::from)
    } else {
        None
    }
}

/// Applies the value rules below `v`: placeholders in keys and strings,
/// quoted numbers in values.
fn normalise_value(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(n) = as_number(s) {
                *v = Value::Number(n);
            } else if s.contains("<<") {
                *s = placeholders_to_templates(s);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(normalise_value),
        Value::Mapping(m) => {
            let old = std::mem::take(m);
            for (mut k, mut val) in old {
                if let Value::String(ks) = &mut k {
                    *ks = placeholders_to_templates(ks);
                }
                normalise_value(&mut val);
                m.insert(k, val);
            }
        }
        Value::Tagged(t) => normalise_value(&mut t.value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `docker compose config` output made fit for `docker stack deploy`:
/// the top-level `name` is dropped (the stack's name is given at deploy),
/// quoted decimal numbers become numbers (`published: "80"` → `80`), and
/// `<<X>>` placeholders become swarm templates `{{X}}`.
pub fn normalise(compose_config: &str) -> Result<String, StackError> {
    let mut top = parse("the output of `docker compose config`", compose_config)?;
    top.shift_remove("name");
    let mut v = Value::Mapping(top);
    normalise_value(&mut v);
    let Value::Mapping(top) = v else {
        unreachable!("a mapping stays a mapping")
    };
    render(top)
}

fn services_of<'a>(top: &'a Mapping, what: &str) -> Result<&'a Mapping, StackError> {
    top.get("services")
        .and_then(Value::as_mapping)
        .ok_or_else(|| StackError::Invalid(format!("{what} has no `services` mapping")))
}

/// The rabbitmq service's `hostname:` template from the normalised stack
/// (e.g. `mq-{{.Node.Hostname}}`).
pub fn rabbitmq_hostname_template(stack_yaml: &str) -> Result<String, StackError> {
    let top = parse("the normalised stack", stack_yaml)?;
    let services = services_of(&top, "the normalised stack")?;
    let rabbitmq = services
        .get("rabbitmq")
        .ok_or_else(|| StackError::Invalid("the stack has no `rabbitmq` service".into()))?;
    rabbitmq
        .get("hostname")
        .and_then(Value::as_str)
        .filter(|h| !h.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            StackError::Invalid(
                "the `rabbitmq` service has no `hostname`: cannot name the cluster's nodes".into(),
            )
        })
}

/// Each service's `image:` in a stack file, by service name (what a host's
/// engine must have, or pull, before the tasks can start).
pub fn service_images(
    stack_yaml: &str,
) -> Result<std::collections::BTreeMap<String, String>, StackError> {
    let top = parse("the stack file", stack_yaml)?;
    let services = services_of(&top, "the stack file")?;
    let mut out = std::collections::BTreeMap::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap_or_default().to_string();
        let image = svc
            .get("image")
            .and_then(Value::as_str)
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| StackError::Invalid(format!("service `{name}` has no `image`")))?;
        out.insert(name, image.to_string());
    }
    Ok(out)
}

/// A swarm template's field name with Go's optional inner spaces trimmed:
/// `{{ .Node.Hostname }}` is `.Node.Hostname`.
fn template_fields(template: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = template[from..].find("{{").map(|i| i + from) {
        let Some(end) = template[start..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        out.push((start, end, template[start + 2..end - 2].trim().to_string()));
        from = end;
    }
    out
}

/// The hostname a rabbitmq task gets on `node` in slot `slot`: the
/// template with `{{.Node.Hostname}}` and `{{.Task.Slot}}` filled in. Other
/// template fields cannot be known here and are refused.
pub fn format_hostname(template: &str, node: &str, slot: usize) -> Result<String, StackError> {
    let mut out = String::new();
    let mut last = 0;
    for (start, end, field) in template_fields(template) {
        out.push_str(&template[last..start]);
        match field.as_str() {
            ".Node.Hostname" => out.push_str(node),
            ".Task.Slot" => {
                let _ = write!(out, "{slot}");
            }
            _ => {
                return Err(StackError::Invalid(format!(
                    "the rabbitmq hostname `{template}` uses `{{{{{field}}}}}`: only \
                     `{{{{.Node.Hostname}}}}` and `{{{{.Task.Slot}}}}` can be filled in"
                )));
            }
        }
        last = end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

/// `rabbitmq-cluster.conf`: the base config, then one
/// `cluster_formation.classic_config.nodes.<i> = rabbit@<hostname>` line per
/// swarm node (numbered from 1, in the given order), the hostname formatted
/// by the rabbitmq service's template. No node is an error: the cluster
/// would form from nothing.
pub fn rabbitmq_cluster_conf(
    base: &str,
    template: &str,
    nodes: &[String],
) -> Result<String, StackError> {
    if nodes.is_empty() {
        return Err(StackError::Invalid(
            "no swarm node is listed: cannot write the rabbitmq cluster's node list".into(),
        ));
    }
    let mut out = base.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (i, node) in nodes.iter().enumerate() {
        let slot = i + 1;
        let host = format_hostname(template, node, slot)?;
        let _ = writeln!(
            out,
            "cluster_formation.classic_config.nodes.{slot} = rabbit@{host}"
        );
    }
    Ok(out)
}

/// The stack adapted to a swarm without a working routing mesh (no IPVS in
/// the hosts' kernels, as in the lab's container hosts): every service is
/// reached by DNS round robin (`deploy.endpoint_mode: dnsrr`) instead of a
/// virtual IP, and every published port is published on the node itself
/// (`mode: host`), since swarm refuses ingress-mode ports on a `dnsrr`
/// service. In this tree that is nginx (80, 443) and rabbitmq (5671).
/// Returns the new YAML and one line per change made.
pub fn adapt_without_ipvs(stack_yaml: &str) -> Result<(String, Vec<String>), StackError> {
    let mut top = parse("the normalised stack", stack_yaml)?;
    let mut changes = Vec::new();
    let services = top
        .get_mut("services")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| {
            StackError::Invalid("the normalised stack has no `services` mapping".into())
        })?;
    for (name, service) in services.iter_mut() {
        let name = name.as_str().unwrap_or("?").to_string();
        let service = service
            .as_mapping_mut()
            .ok_or_else(|| StackError::Invalid(format!("the service `{name}` is not a mapping")))?;

        let deploy = service
            .entry(Value::from("deploy"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if deploy.is_null() {
            *deploy = Value::Mapping(Mapping::new());
        }
        let deploy = deploy.as_mapping_mut().ok_or_else(|| {
            StackError::Invalid(format!("`services.{name}.deploy` is not a mapping"))
        })?;
        let was = deploy
            .get("endpoint_mode")
            .and_then(Value::as_str)
            .unwrap_or("vip")
            .to_string();
        if was != "dnsrr" {
            deploy.insert("endpoint_mode".into(), "dnsrr".into());
            changes.push(format!(
                "`{name}`: endpoint mode `dnsrr` (was `{was}`): no virtual IP without IPVS"
            ));
        }

        let Some(ports) = service.get_mut("ports") else {
            continue;
        };
        let ports = ports
            .as_sequence_mut()
            .ok_or_else(|| StackError::Invalid(format!("`services.{name}.ports` is not a list")))?;
        for port in ports.iter_mut() {
            if let Value::String(short) = port {
                *port = Value::Mapping(long_port(&name, short)?);
            }
            let port = port.as_mapping_mut().ok_or_else(|| {
                StackError::Invalid(format!("a port of `services.{name}` is not a mapping"))
            })?;
            if port.get("published").is_none() {
                continue;
            }
            let was = port
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("ingress")
                .to_string();
            if was != "host" {
                port.insert("mode".into(), "host".into());
                let published = port.get("published").map(scalar_text).unwrap_or_default();
                changes.push(format!(
                    "`{name}`: port `{published}` published in `host` mode (was `{was}`): \
                     swarm refuses ingress ports on a `dnsrr` service"
                ));
            }
        }
    }
    Ok((render(top)?, changes))
}

/// Lowers every service's `ulimits.<name>` (a number, or `soft`/`hard`)
/// to at most `max`, the hard limit the hosts' engines can grant: an engine
/// without `CAP_SYS_RESOURCE` cannot raise a container's limit above its
/// own, and the task would fail with "error setting rlimit". Returns the new
/// YAML and one line per change.
pub fn cap_ulimit(
    stack_yaml: &str,
    limit: &str,
    max: u64,
) -> Result<(String, Vec<String>), StackError> {
    let mut top = parse("the stack file", stack_yaml)?;
    let mut changes = Vec::new();
    let services = top
        .get_mut("services")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| StackError::Invalid("the stack file has no `services` mapping".into()))?;
    for (name, service) in services.iter_mut() {
        let name = name.as_str().unwrap_or("?").to_string();
        let Some(v) = service
            .get_mut("ulimits")
            .and_then(Value::as_mapping_mut)
            .and_then(|u| u.get_mut(limit))
        else {
            continue;
        };
        let slots: Vec<&mut Value> = match v {
            Value::Mapping(m) => m
                .iter_mut()
                .filter(|(k, _)| matches!(k.as_str(), Some("soft" | "hard")))
                .map(|(_, v)| v)
                .collect(),
            other => vec![other],
        };
        for slot in slots {
            let Some(was) = slot.as_u64() else {
                continue;
            };
            if was > max {
                *slot = Value::from(max);
                changes.push(format!(
                    "`{name}`: ulimit `{limit}` {max} (was {was}): the hosts' engines cannot grant more"
                ));
            }
        }
    }
    Ok((render(top)?, changes))
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// The long form of a short port (`"5671:5671"`, `"53:53/udp"`); compose
/// config writes long forms, but a hand-written stack may not.
fn long_port(service: &str, short: &str) -> Result<Mapping, StackError> {
    let bad = || {
        StackError::Invalid(format!(
            "`services.{service}.ports`: `{short}` is not `published:target[/protocol]`"
        ))
    };
    let (ports, protocol) = short.split_once('/').unwrap_or((short, "tcp"));
    let (published, target) = ports.split_once(':').ok_or_else(bad)?;
    let target = as_number(target).ok_or_else(bad)?;
    let mut m = Mapping::new();
    m.insert("mode".into(), "ingress".into());
    m.insert("target".into(), Value::Number(target));
    m.insert(
        "published".into(),
        as_number(published).map_or_else(|| Value::from(published), Value::Number),
    );
    m.insert("protocol".into(), protocol.into());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The shape `docker compose config` prints, cut down to what the rules
    // touch.
    const CONFIG: &str = r#"name: swarm
services:
  jobmngrd:
    environment:
      AMQP_URL: amqp://guest:guest@mq-<<.Node.Hostname>>:5672
      LOGGING_BACKUP: "7"
      TZ: Asia/Tokyo
    hostname: jm-{{.Node.Hostname}}
    user: "0:0"
  nginx:
    deploy:
      mode: replicated
      replicas: 3
    ports:
      - mode: ingress
        target: 80
        published: "80"
        protocol: tcp
  rabbitmq:
    environment:
      MODE: "0755"
    hostname: mq-{{.Node.Hostname}}
    ports:
      - mode: ingress
        target: 5671
        published: "5671"
        protocol: tcp
"#;

    #[test]
    fn normalise_applies_the_three_rules() {
        let out = normalise(CONFIG).unwrap();
        insta::assert_snapshot!(out);
        assert!(!out.contains("name: swarm"));
        assert!(out.contains("mq-{{.Node.Hostname}}:5672"));
        assert!(out.contains("LOGGING_BACKUP: 7\n"));
        assert!(out.contains("published: 80\n"));
        assert!(out.contains("'0755'"), "leading zeros stay a string");
        assert_eq!(normalise(&out).unwrap(), out, "idempotent");
    }

    #[test]
    fn parse_errors_show_no_values() {
        let e = normalise("services:\n  a: [\n DATABASE_URL: pgsql://k:s3cret@h").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "cannot read the output of `docker compose config`: invalid YAML at line"
            ),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"));
        assert_eq!(
            normalise("- a\n").unwrap_err().to_string(),
            "cannot read the output of `docker compose config`: the document is not a mapping"
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            placeholders_to_templates("a<<.X>>b<<.Y>>"),
            "a{{.X}}b{{.Y}}"
        );
        assert_eq!(placeholders_to_templates("<<>> << a"), "<<>> << a");
        assert_eq!(placeholders_to_templates("<<<<.X>>"), "<<{{.X}}");
    }

    #[test]
    fn rabbitmq_conf_for_three_and_five_nodes() {
        let template = rabbitmq_hostname_template(&normalise(CONFIG).unwrap()).unwrap();
        assert_eq!(template, "mq-{{.Node.Hostname}}");
        let base = "cluster_partition_handling = pause_minority\n";
        let three: Vec<String> = (1..=3).map(|i| format!("ke2-server{i}")).collect();
        insta::assert_snapshot!(
            "rabbitmq_three_nodes",
            rabbitmq_cluster_conf(base, &template, &three).unwrap()
        );
        let five: Vec<String> = (1..=5).map(|i| format!("node{i}.example.com")).collect();
        insta::assert_snapshot!(
            "rabbitmq_five_nodes",
            rabbitmq_cluster_conf(base, &template, &five).unwrap()
        );
    }

    #[test]
    fn rabbitmq_conf_with_a_slot_template() {
        let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let out = rabbitmq_cluster_conf(
            "cluster_partition_handling = pause_minority",
            "rabbitmq-{{ .Task.Slot }}.{{.Node.Hostname}}",
            &nodes,
        )
        .unwrap();
        insta::assert_snapshot!("rabbitmq_slot_template", out);
    }

    #[test]
    fn rabbitmq_conf_errors() {
        let e = rabbitmq_cluster_conf("x\n", "mq-{{.Node.Hostname}}", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no swarm node is listed: cannot write the rabbitmq cluster's node list"
        );
        let e = rabbitmq_cluster_conf("", "mq-{{.Node.ID}}", &["a".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the rabbitmq hostname `mq-{{.Node.ID}}` uses `{{.Node.ID}}`: only \
             `{{.Node.Hostname}}` and `{{.Task.Slot}}` can be filled in"
        );
        let e = rabbitmq_hostname_template("services:\n  rabbitmq:\n    image: r\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the `rabbitmq` service has no `hostname`: cannot name the cluster's nodes"
        );
    }

    #[test]
    fn service_images_by_service() {
        let images = service_images(
            "services:\n  nginx:\n    image: registry.hub.docker.com/library/nginx:1.27-alpine\n  \
             kengine:\n    image: kompira.azurecr.io/kompira-enterprise:2.0.2\n",
        )
        .unwrap();
        assert_eq!(
            images.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "kengine".to_string(),
                    "kompira.azurecr.io/kompira-enterprise:2.0.2".to_string()
                ),
                (
                    "nginx".into(),
                    "registry.hub.docker.com/library/nginx:1.27-alpine".into()
                ),
            ]
        );
        let e = service_images("services:\n  a:\n    hostname: x\n").unwrap_err();
        assert_eq!(e.to_string(), "service `a` has no `image`");
    }

    #[test]
    fn ulimits_above_the_hosts_hard_limit_are_lowered() {
        let yaml = "services:\n  a:\n    ulimits:\n      nofile:\n        soft: 65535\n        hard: 65535\n      nproc: 65535\n  \
                    b:\n    ulimits:\n      nofile: 1024\n  c:\n    image: x\n";
        let (out, changes) = cap_ulimit(yaml, "nofile", 20000).unwrap();
        insta::assert_snapshot!("ulimit_nofile_capped", out);
        assert_eq!(
            changes,
            vec![
                "`a`: ulimit `nofile` 20000 (was 65535): the hosts' engines cannot grant more",
                "`a`: ulimit `nofile` 20000 (was 65535): the hosts' engines cannot grant more",
            ]
        );
        let (again, none) = cap_ulimit(&out, "nofile", 20000).unwrap();
        assert_eq!(again, out);
        assert!(none.is_empty());
        let (_, none) = cap_ulimit(yaml, "nproc", 96365).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn without_ipvs_every_service_is_dnsrr_and_ports_are_host() {
        let stack = normalise(CONFIG).unwrap();
        let (out, changes) = adapt_without_ipvs(&stack).unwrap();
        insta::assert_snapshot!("no_ipvs_yaml", out);
        insta::assert_snapshot!("no_ipvs_changes", changes.join("\n"));
        let (again, none) = adapt_without_ipvs(&out).unwrap();
        assert_eq!(again, out);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn short_ports_are_made_long() {
        let (out, changes) =
            adapt_without_ipvs("services:\n  mq:\n    ports:\n      - \"5671:5671\"\n").unwrap();
        assert!(out.contains("mode: host"), "{out}");
        assert!(out.contains("published: 5671"), "{out}");
        assert_eq!(changes.len(), 2, "{changes:?}");
        let e = adapt_without_ipvs("services:\n  mq:\n    ports:\n      - \"x\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`services.mq.ports`: `x` is not `published:target[/protocol]`"
        );
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 .:/<>{}_-]{0,16}"
    }

    proptest! {
        // Normalising twice is normalising once, and the output is the same
        // bytes every time for the same input.
        #[test]
        fn normalise_is_idempotent_and_stable(
            env in proptest::collection::btree_map("[A-Z_]{1,8}", word(), 0..6),
            published in 1u32..65535,
        ) {
            let mut doc = String::from("name: x\nservices:\n  s:\n    environment:\n");
            for (k, v) in &env {
                doc.push_str(&format!("      {k}: {}\n", serde_yaml_ng::to_string(v).unwrap().trim_end()));
            }
            doc.push_str(&format!("    ports:\n      - published: \"{published}\"\n        target: 80\n"));
            let once = normalise(&doc).unwrap();
            prop_assert_eq!(normalise(&doc).unwrap(), once.clone());
            prop_assert_eq!(normalise(&once).unwrap(), once.clone());
            let expected_published = format!("published: {}", published);
            prop_assert!(once.contains(&expected_published));
        }

        // One line per node, numbered from 1, each naming its node.
        #[test]
        fn one_rabbitmq_line_per_node(nodes in proptest::collection::vec("[a-z][a-z0-9-]{0,10}", 1..9)) {
            let out = rabbitmq_cluster_conf("base = 1\n", "mq-{{.Node.Hostname}}", &nodes).unwrap();
            let lines: Vec<&str> = out.lines().collect();
            prop_assert_eq!(lines.len(), nodes.len() + 1);
            for (i, n) in nodes.iter().enumerate() {
                prop_assert_eq!(lines[i + 1].to_string(), format!("cluster_formation.classic_config.nodes.{} = rabbit@mq-{n}", i + 1));
            }
        }
    }
}
