//! Step 8 up to the deploy: the normalised stack of the pinned ke2-docker
//! tree (real `docker compose config` output, see fixtures/stack/README.md),
//! its no-IPVS adaptation and rabbitmq-cluster.conf as snapshots; the
//! `Certs` and `SetupStack` steps on `RecordingHost`s for `debian` and
//! `rhel9`, each followed by a second run that must change nothing; the
//! error cases of `setup_stack.sh`, each naming what is wrong; and no
//! password anywhere a person could read it.

use std::sync::Arc;

use ke2lab::host::{Host, Output, Recorder, Rule};
use ke2lab::render::stack::{
    adapt_without_ipvs, normalise, rabbitmq_cluster_conf, rabbitmq_hostname_template,
};
use ke2lab::steps::stack::{Certs, SetupStack, StackOptions};
use ke2lab::steps::{self, Cx, StepError};
use ke2lab::topology::{Credentials, Platform, Secret, Topology};

use support::stack::{BASE_CONF, CHECKOUT, COMPOSE_CONFIG, stable};

mod support;

const SWARM_DIR: &str = "/opt/ke2-docker/ke2/cluster/swarm";
const PASSWORD: &str = "Kp4ssw0rdNeverShown";

fn topology(platform: Platform) -> Topology {
    let mut t = Topology::fixture("three-node").unwrap().topology;
    for h in &mut t.hosts {
        h.platform = platform;
    }
    t
}

fn creds() -> Credentials {
    let mut c = Credentials::document_defaults();
    c.kompira = Secret::new(PASSWORD);
    c
}

fn manager(rec: &Recorder) {
    support::stack::manager(&topology(Platform::Debian), rec);
}

async fn run_both(cx: &Cx<'_>, opts: &StackOptions) -> Result<(usize, Vec<String>), StepError> {
    let certs = steps::run(&Certs::new(opts), cx).await?;
    let stack = steps::run(&SetupStack::new(opts.clone()), cx).await?;
    let mut warnings = certs.warnings;
    warnings.extend(stack.warnings);
    Ok((certs.changes.len() + stack.changes.len(), warnings))
}

async fn transcripts(platform: Platform) -> (String, String) {
    let t = topology(platform);
    let c = creds();
    let rec = Recorder::new();
    manager(&rec);
    let hosts: Vec<Arc<dyn Host>> = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hosts).with_credentials(&c);
    let opts = StackOptions::from_topology(&t, CHECKOUT);

    let (changes, warnings) = run_both(&cx, &opts).await.unwrap();
    assert_eq!(changes, 7, "CA and server key+cert, ssl copy, two files");
    assert!(warnings.is_empty(), "{warnings:?}");
    let first = rec.transcript();

    // The files are what the pure renderers make of the captured output.
    let stack = normalise(COMPOSE_CONFIG).unwrap();
    let written = rec
        .file_on("ke2-server1", &format!("{SWARM_DIR}/docker-swarm.yml"))
        .unwrap();
    assert_eq!(String::from_utf8(written).unwrap(), stack);
    let conf = rec
        .file_on("ke2-server1", &format!("{SWARM_DIR}/rabbitmq-cluster.conf"))
        .unwrap();
    assert!(
        String::from_utf8(conf)
            .unwrap()
            .ends_with("nodes.3 = rabbit@mq-ke2-server3\n")
    );

    rec.clear_events();
    let (changes, warnings) = run_both(&cx, &opts).await.unwrap();
    assert_eq!(changes, 0, "a second run changes nothing");
    assert_eq!(
        warnings,
        [
            "the server certificate `/opt/ke2-docker/ssl/server.crt` already exists: kept, not overwritten"
        ]
    );
    let second = rec.transcript();
    for t in [&first, &second] {
        assert!(!t.contains(PASSWORD), "the password leaked:\n{t}");
        assert!(!t.contains("PRIVATE KEY"), "a key leaked:\n{t}");
    }
    (stable(&first), second)
}

#[tokio::test]
async fn debian_stack_transcript() {
    let (first, second) = transcripts(Platform::Debian).await;
    insta::assert_snapshot!("debian_stack_first_run", first);
    insta::assert_snapshot!("debian_stack_second_run", second);
}

#[tokio::test]
async fn rhel9_stack_transcript() {
    let (first, second) = transcripts(Platform::Rhel9).await;
    insta::assert_snapshot!("rhel9_stack_first_run", first);
    insta::assert_snapshot!("rhel9_stack_second_run", second);
}

#[test]
fn normalised_stack_of_the_pinned_tree() {
    let stack = normalise(COMPOSE_CONFIG).unwrap();
    insta::assert_snapshot!("docker_swarm_yml", stack);
    assert!(!stack.starts_with("name:"));
    assert!(!stack.contains("<<"), "every placeholder became a template");
    assert!(stack.contains("AMQP_URL: amqp://guest:guest@mq-{{.Node.Hostname}}:5672"));
    assert!(stack.contains("published: 443\n"));
    assert!(
        stack.contains("LOGGING_STREAM: 'true'"),
        "only numbers lose quotes"
    );
    assert_eq!(normalise(COMPOSE_CONFIG).unwrap(), stack, "byte-stable");
    assert_eq!(normalise(&stack).unwrap(), stack, "idempotent");
}

#[test]
fn pinned_tree_without_ipvs() {
    let stack = normalise(COMPOSE_CONFIG).unwrap();
    let (adapted, changes) = adapt_without_ipvs(&stack).unwrap();
    insta::assert_snapshot!("docker_swarm_no_ipvs_yml", adapted);
    insta::assert_snapshot!("docker_swarm_no_ipvs_changes", changes.join("\n"));
    assert_eq!(
        changes.iter().filter(|c| c.contains("dnsrr` (was")).count(),
        6
    );
    assert_eq!(
        changes.iter().filter(|c| c.contains("`host` mode")).count(),
        3
    );
}

#[test]
fn pinned_tree_rabbitmq_cluster_conf() {
    let template = rabbitmq_hostname_template(&normalise(COMPOSE_CONFIG).unwrap()).unwrap();
    assert_eq!(template, "mq-{{.Node.Hostname}}");
    let nodes = ["ke2-server1", "ke2-server2", "ke2-server3"].map(String::from);
    insta::assert_snapshot!(
        "pinned_rabbitmq_cluster_conf",
        rabbitmq_cluster_conf(BASE_CONF, &template, &nodes).unwrap()
    );
}

/// Runs `SetupStack` with `opts` on a scripted manager changed by `script`
/// and returns its error.
async fn stack_error(opts: StackOptions, script: impl FnOnce(&Recorder)) -> String {
    let t = topology(Platform::Debian);
    let c = creds();
    let rec = Recorder::new();
    manager(&rec);
    script(&rec);
    let hosts: Vec<Arc<dyn Host>> = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hosts).with_credentials(&c);
    let e = steps::run(&SetupStack::new(opts), &cx).await.unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains(PASSWORD), "{msg}");
    assert!(!rec.transcript().contains(PASSWORD));
    msg
}

#[tokio::test]
async fn each_directory_must_be_writable() {
    let t = topology(Platform::Debian);
    for (var, dir) in [
        ("KOMPIRA_LOG_DIR", "/mnt/gluster/log"),
        ("KOMPIRA_VAR_DIR", "/mnt/gluster/var"),
        ("KOMPIRA_SSL_DIR", "/mnt/gluster/ssl"),
    ] {
        let msg = stack_error(StackOptions::from_topology(&t, CHECKOUT), |rec| {
            rec.rule(Rule::on(
                "ke2-server1",
                format!("test -w {dir}"),
                vec![Output::fail(1, "")],
            ));
        })
        .await;
        assert_eq!(
            msg,
            format!("stack on `ke2-server1`: `{var}` (`{dir}`) is not writable")
        );
    }
    // An overridden directory is the one checked and named.
    let mut opts = StackOptions::from_topology(&t, CHECKOUT);
    opts.log_dir = Some("/var/log/kompira".into());
    let msg = stack_error(opts, |rec| {
        rec.rule(Rule::on(
            "ke2-server1",
            "test -w /var/log/kompira",
            vec![Output::fail(1, "")],
        ));
    })
    .await;
    assert_eq!(
        msg,
        "stack on `ke2-server1`: `KOMPIRA_LOG_DIR` (`/var/log/kompira`) is not writable"
    );
}

#[tokio::test]
async fn database_url_or_host_is_required() {
    let t = topology(Platform::Debian);
    let mut opts = StackOptions::from_topology(&t, CHECKOUT);
    opts.database_url = Some(Secret::new(""));
    opts.database_host = String::new();
    let msg = stack_error(opts, |_| {}).await;
    assert_eq!(
        msg,
        "stack on `ke2-server1`: `DATABASE_URL`: is empty and so is `DATABASE_HOST`: one of them is required"
    );
}

#[tokio::test]
async fn shared_dir_is_required() {
    let t = topology(Platform::Debian);
    let mut opts = StackOptions::from_topology(&t, CHECKOUT);
    opts.shared_dir = String::new();
    let msg = stack_error(opts, |_| {}).await;
    assert_eq!(msg, "stack on `ke2-server1`: `SHARED_DIR`: is required");
}

#[tokio::test]
async fn a_failing_compose_never_shows_the_password() {
    let t = topology(Platform::Debian);
    let msg = stack_error(StackOptions::from_topology(&t, CHECKOUT), |rec| {
        rec.rule(Rule::on(
            "ke2-server1",
            format!("sh -c 'set -a; . /dev/stdin; set +a; exec \"$@\"' sh env -C {SWARM_DIR} "),
            vec![Output::fail(
                15,
                format!("invalid interpolation in pgsql://kompira:{PASSWORD}@host.docker.internal:9999/kompira"),
            )],
        ));
    })
    .await;
    assert!(
        msg.starts_with(
            "command `sh -c 'set -a; . /dev/stdin; set +a; exec \"$@\"' sh env -C /opt/ke2-docker/ke2/cluster/swarm HOSTNAME=ke2-server1"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("KOMPIRA_SSL_DIR=/mnt/gluster/ssl NGINX_PORT_MODE=ingress"),
        "{msg}"
    );
    assert!(
        msg.ends_with("(exit 15): invalid interpolation in ***"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_given_database_url_keeps_its_password_hidden() {
    let t = topology(Platform::Debian);
    let mut opts = StackOptions::from_topology(&t, CHECKOUT);
    opts.database_url = Some(Secret::new(format!(
        "pgsql://app:{PASSWORD}@db.example:5432/k"
    )));
    let msg = stack_error(opts, |rec| {
        rec.rule(Rule::on(
            "ke2-server1",
            format!("sh -c 'set -a; . /dev/stdin; set +a; exec \"$@\"' sh env -C {SWARM_DIR} "),
            vec![Output::fail(1, format!("bad value `{PASSWORD}`"))],
        ));
    })
    .await;
    assert!(msg.ends_with("(exit 1): bad value `***`"), "{msg}");
}

#[tokio::test]
async fn no_swarm_node_is_an_error() {
    let t = topology(Platform::Debian);
    let msg = stack_error(StackOptions::from_topology(&t, CHECKOUT), |rec| {
        rec.rule(Rule::on(
            "ke2-server1",
            "docker node ls",
            vec![Output::ok("")],
        ));
    })
    .await;
    assert_eq!(
        msg,
        "stack on `ke2-server1`: no swarm node is listed: cannot write the rabbitmq cluster's node list"
    );
}

#[tokio::test]
async fn a_missing_checkout_ssl_is_named() {
    let t = topology(Platform::Debian);
    let msg = stack_error(StackOptions::from_topology(&t, CHECKOUT), |rec| {
        rec.rule(Rule::on(
            "ke2-server1",
            "sh -c 'cd \"$1\" || exit 2",
            vec![Output::fail(2, "")],
        ));
    })
    .await;
    assert_eq!(
        msg,
        "stack on `ke2-server1`: the checkout's `/opt/ke2-docker/ssl` does not exist: make the certificates first"
    );
}
