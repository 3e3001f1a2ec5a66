//! Step 8 up to the deploy (`Certs`, `SetupStack`) on the manager, the
//! first host. `docker compose config` answers with the output captured
//! from the real tool (`tests/fixtures/stack/`), its directories and
//! database URL rewritten as the tool would print them for the topology.

use ke2lab::host::{Output, Recorder, Rule};
use ke2lab::topology::Topology;

pub const COMPOSE_CONFIG: &str = include_str!("../fixtures/stack/compose-config.yml");
pub const BASE_CONF: &str = include_str!("../fixtures/stack/rabbitmq-cluster.base.conf");
pub const CHECKOUT: &str = "/opt/ke2-docker";

pub fn swarm_dir() -> String {
    format!("{CHECKOUT}/ke2/cluster/swarm")
}

pub fn node_ls(names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{{\"Availability\":\"Active\",\"EngineVersion\":\"26.1.5+dfsg1\",\"Hostname\":\"{n}\",\
                 \"ID\":\"id{i}\",\"ManagerStatus\":\"{}\",\"Self\":{},\"Status\":\"Ready\"}}\n",
                if i == 0 { "Leader" } else { "Reachable" },
                i == 0
            )
        })
        .collect()
}

/// The captured `docker compose config` output as the tool would print it
/// with the topology's directories and Pgpool-II port and database (the
/// capture's password, the document's `kompira`, stays: the fake's answer
/// is not the secret under test).
pub fn compose_config(t: &Topology) -> String {
    let url = format!(
        "pgsql://kompira:kompira@host.docker.internal:{}/{}",
        t.ports.pgpool, t.postgres.database
    );
    COMPOSE_CONFIG
        .replace("/mnt/gluster/var", &t.kompira_var_dir())
        .replace("/mnt/gluster/log", &t.kompira_log_dir())
        .replace("/mnt/gluster/ssl", &t.kompira_ssl_dir())
        .replace(
            "pgsql://kompira:kompira@host.docker.internal:9999/kompira",
            &url,
        )
}

/// A manager that has the checkout (its base rabbitmq config), a swarm of
/// the topology's hosts and the real compose tool. The SSL copy is missing
/// at first and present once `cp` ran.
pub fn manager(t: &Topology, rec: &Recorder) {
    let m = t.hosts[0].name.as_str();
    rec.rule(Rule::on(m, "hostname", vec![Output::ok(format!("{m}\n"))]));
    rec.file(
        m,
        &format!("{CHECKOUT}/configs/rabbitmq-cluster.conf"),
        BASE_CONF,
    );
    rec.rule(Rule::on(
        m,
        "sh -c 'cd \"$1\" || exit 2",
        vec![Output::fail(1, "")],
    ));
    rec.rule(Rule::on(m, "sh -c 'cd \"$1\" || exit 2", vec![Output::ok("")]).when("ssl-copied"));
    rec.rule(Rule::on(m, "cp -f -a -r -T", vec![Output::ok("")]).sets("ssl-copied"));
    rec.rule(Rule::on(
        m,
        format!(
            "sh -c 'set -a; . /dev/stdin; set +a; exec \"$@\"' sh env -C {} ",
            swarm_dir()
        ),
        vec![Output::ok(compose_config(t))],
    ));
    let names: Vec<&str> = t.hosts.iter().map(|h| h.name.as_str()).collect();
    rec.rule(Rule::on(
        m,
        "docker node ls",
        vec![Output::ok(node_ls(&names))],
    ));
}

/// The transcript with the certificates' random bodies replaced, so a
/// snapshot can hold it.
pub fn stable(transcript: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in transcript.lines() {
        if line.ends_with("-----BEGIN CERTIFICATE-----") {
            inside = true;
            out.push_str(line);
            out.push('\n');
            let prefix = line.trim_end_matches("-----BEGIN CERTIFICATE-----");
            out.push_str(&format!("{prefix}<random certificate body>\n"));
            continue;
        }
        if line.ends_with("-----END CERTIFICATE-----") {
            inside = false;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
