//! The `ke2lab` command line: boot a lab and install the cluster on it, look
//! at it, run commands on its hosts, tear it down; or install real servers
//! over SSH with the same core.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use ke2lab::cluster::resolved::Resolved;
use ke2lab::host::{Cmd, Host, SshConfig, SshHost};
use ke2lab::steps::Cx;
use ke2lab::topology::{Topology, TopologyError, Validated};
use ke2lab_harness::Lab;
use ke2lab_harness::console::{self, Verbosity};
use ke2lab_harness::faults::{self, Faults};
use ke2lab_harness::lab::{self, StackImages};
use ke2lab_harness::status::{self, LabStatus, StatusDoc};

/// Exit codes, as `--help` and the README state them.
const EXIT_CODES: &str = "Exit codes:
  0  success (verify: healthy; provision/install --check: nothing changed)
  1  failure (verify: the verdict lists an unhealthy fact)
  2  bad input (topology, --run, checkout), nothing touched
  3  provision/install --check: the install changed something
  130/143  interrupted by SIGINT/SIGTERM";

#[derive(Parser)]
#[command(
    name = "ke2lab",
    version,
    about = "Kompira Enterprise 2.0 cluster: provision and test",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Also print the per-host detail (always in the run's `install.log`).
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Print only errors and the final summary.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a lab of container hosts and install the cluster on it.
    Up {
        /// Topology file (default: the document's three-node example).
        #[arg(long, short)]
        topology: Option<PathBuf>,
        /// Keep the hosts when something fails, to look at them.
        #[arg(long)]
        keep_on_failure: bool,
        /// Boot the hosts only.
        #[arg(long)]
        no_install: bool,
        /// Also step 8: the ke2 stack from this ke2-docker checkout
        /// (read-only input), deployed with the lab's stand-in images, then
        /// awaited until every service converges and each host answers
        /// HTTPS.
        #[arg(long, value_name = "DIR", conflicts_with = "no_install")]
        stack: Option<PathBuf>,
        /// With --stack: let the hosts' engines pull the real images (needs
        /// registry access) instead of loading the stand-ins.
        #[arg(long, requires = "stack")]
        real_images: bool,
        /// A name for the lab, usable wherever `--run` is (lowercase
        /// letters, digits and `-`, starting with a letter).
        #[arg(long)]
        name: Option<String>,
    },
    /// Show every lab (or the one named): the cluster's snapshot (swarm,
    /// Gluster, PostgreSQL, Pgpool-II, the stack) and its verdict, as a
    /// table or as JSON (`docs/status.schema.json`).
    Status {
        #[arg(long)]
        run: Option<String>,
        /// `table` or `json`.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Check a lab's health: exit 0 when the verdict is empty, 1 with every
    /// unhealthy fact (naming its host) printed otherwise.
    Verify {
        #[arg(long)]
        run: Option<String>,
    },
    /// A lab's logs and evidence: `logs export [--run ID] DIR`.
    Logs {
        #[command(subcommand)]
        action: LogsAction,
    },
    /// Inject a fault into a running lab, list what is in force, heal it:
    /// `ke2lab fault list` shows the verbs.
    Fault {
        #[arg(long)]
        run: Option<String>,
        #[command(subcommand)]
        verb: faults::Verb,
    },
    /// Run a command on a lab host: `ke2lab exec ke2-server1 -- docker node ls`.
    Exec {
        #[arg(long)]
        run: Option<String>,
        host: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Remove a lab (the only one, or `--run ID|NAME`); `--stale` every lab
    /// whose owner process is gone and that `up` did not leave for its user
    /// (killed runs, dead tests); `--all` every labelled resource on this
    /// machine, other people's live labs too (asks first, or `--yes`).
    Down {
        #[arg(long, conflicts_with_all = ["all", "stale"])]
        run: Option<String>,
        #[arg(long, conflicts_with = "stale")]
        all: bool,
        #[arg(long)]
        stale: bool,
        /// With --all: do not ask.
        #[arg(long, requires = "all")]
        yes: bool,
    },
    /// Run the install again on a running lab (a re-run repairs and, on a
    /// healthy cluster, changes nothing).
    Provision {
        #[arg(long)]
        run: Option<String>,
        /// Idempotence gate: exit 0 when nothing changed, 3 when the install
        /// changed something.
        #[arg(long)]
        check: bool,
    },
    /// Step 8 on a running lab: copy a ke2-docker checkout to the manager,
    /// make the certificates and stack files, `docker stack deploy`.
    Stack {
        #[arg(long)]
        run: Option<String>,
        /// The ke2-docker checkout (read-only input).
        #[arg(long, required_unless_present = "rm")]
        ke2_docker: Option<PathBuf>,
        /// Let the hosts' engines pull the real images (needs registry
        /// access) instead of loading the stand-ins.
        #[arg(long, conflicts_with = "rm")]
        real_images: bool,
        /// Stop Kompira instead: `docker stack rm ke2`, then wait until no
        /// service or container of it is left on any host.
        #[arg(long, conflicts_with = "ke2_docker")]
        rm: bool,
    },
    /// Install real servers over SSH (the topology's addresses).
    Install {
        #[arg(long, short)]
        topology: PathBuf,
        #[arg(long, default_value = "root")]
        ssh_user: String,
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Idempotence gate: exit 0 when nothing changed, 3 when the install
        /// changed something.
        #[arg(long)]
        check: bool,
    },
    /// Print ke2lab's version and the commit it was built from.
    Version,
    /// Print a shell completion script: `ke2lab completions bash >
    /// /etc/bash_completion.d/ke2lab`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// A seeded schedule of faults under SQL and shared-file workloads, then
    /// a heal and checks over the recorded history: `ke2lab chaos --seed 7
    /// --duration 120s` (boots its own lab unless `--run`).
    Chaos(ke2lab_harness::chaos::cli::Args),
    /// Fault scenarios, as the cluster tier runs them: `scenario list`,
    /// `scenario run NAME [--topology FILE] [--cycles N] [--keep]`.
    Scenario {
        #[command(subcommand)]
        action: ke2lab_harness::scenario::cli::Action,
    },
    /// Check a topology file: print its warnings and what it resolves to
    /// (ports and why, quorums and the host failures they tolerate, the
    /// ports to open on each host).
    Check {
        #[arg(long, short)]
        topology: PathBuf,
        /// Print the resolution as one JSON document on stdout instead
        /// (warnings also go to stderr; bad input prints nothing on stdout).
        #[arg(long)]
        json: bool,
    },
}

/// `ke2lab status`'s formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Exit code for bad input: nothing was touched.
const EXIT_BAD_INPUT: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let var = std::env::var("KE2LAB_LOG").ok();
    console::install(
        console::Mode::detect(verbosity),
        detail_level(var.as_deref()),
        tracing_subscriber::EnvFilter::new(log_filter(var.as_deref())),
    );
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// `EXIT_BAD_INPUT` when the error is the user's input (a topology, a
/// ke2-docker checkout, a run id), else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    let bad_input = e.chain().any(|c| {
        c.is::<TopologyError>()
            || c.is::<ke2lab::steps::checkout::TreeError>()
            || c.is::<lab::BadRunId>()
            || c.is::<Refused>()
            || c.is::<faults::BadFault>()
            || ke2lab_harness::scenario::cli::is_bad_input(c)
            || ke2lab_harness::chaos::cli::is_bad_input(c)
    });
    if bad_input { EXIT_BAD_INPUT } else { 1 }
}

/// A command refused before it touched anything (several labs and no
/// `--run`, a taken `--name`, `--all` without confirmation): bad input.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Command {
    /// The `--run` argument of the commands that take one.
    fn run_arg(&self) -> Option<&str> {
        match self {
            Command::Status { run, .. }
            | Command::Verify { run }
            | Command::Exec { run, .. }
            | Command::Fault { run, .. }
            | Command::Down { run, .. }
            | Command::Provision { run, .. }
            | Command::Stack { run, .. } => run.as_deref(),
            Command::Chaos(a) => a.run.as_deref(),
            Command::Logs {
                action: LogsAction::Export { run, .. },
            } => run.as_deref(),
            Command::Up { .. }
            | Command::Install { .. }
            | Command::Check { .. }
            | Command::Version
            | Command::Scenario { .. }
            | Command::Completions { .. } => None,
        }
    }
}

/// The run's `install.log` filter for `KE2LAB_LOG`. A bare level applies
/// to ke2lab's own crates only: the Docker client logs request bodies at
/// debug level, and those carry commands' arguments, secret ones included.
fn log_filter(var: Option<&str>) -> String {
    match var.map(str::trim) {
        None | Some("") => "warn,ke2lab=debug,ke2lab_harness=debug,ke2lab_cli=debug".into(),
        Some(level) if !level.contains('=') && !level.contains(',') => {
            format!("warn,ke2lab={level},ke2lab_harness={level},ke2lab_cli={level}")
        }
        // An explicit directive list is the user's own choice.
        Some(directives) => directives.into(),
    }
}

/// How much of ke2lab's detail `-v` shows: `KE2LAB_LOG`'s level when it is
/// a bare one, else `info`.
fn detail_level(var: Option<&str>) -> tracing::Level {
    var.map(str::trim)
        .and_then(|v| v.parse().ok())
        .unwrap_or(tracing::Level::INFO)
}

fn load_topology(path: Option<&PathBuf>) -> Result<Validated> {
    match path {
        Some(p) => lab::load_topology(p),
        None => {
            let v =
                Topology::from_toml_str(include_str!("../../fixtures/topologies/three-node.toml"))?;
            for w in &v.warnings {
                console::warn(&w.to_string());
            }
            Ok(v)
        }
    }
}

/// The command's exit code on success (0, or what `verify` and `--check`
/// report); an error is mapped by [`exit_code`].
async fn run(cli: Cli) -> Result<u8> {
    // A run id names a directory to delete and a label to filter on: it is
    // checked before anything else, Docker included.
    if let Some(r) = cli.command.run_arg()
        && !ke2lab_harness::owner::is_lab_name(r)
    {
        lab::check_run_id(r)?;
    }
    match cli.command {
        Command::Up {
            topology,
            keep_on_failure,
            no_install,
            stack,
            real_images,
            name,
        } => up(
            topology.as_ref(),
            keep_on_failure,
            no_install,
            stack.as_deref().map(|d| (d, images_of(real_images))),
            name,
        )
        .await
        .map(|()| 0),
        Command::Status { run, output } => status(run, output).await.map(|()| 0),
        Command::Verify { run } => verify(run).await,
        Command::Logs {
            action: LogsAction::Export { run, dir },
        } => logs_export(run, dir).await.map(|()| 0),
        Command::Exec { run, host, cmd } => exec(run, &host, cmd).await.map(|()| 0),
        Command::Fault { run, verb } => fault(run, verb).await.map(|()| 0),
        Command::Down {
            run,
            all,
            stale,
            yes,
        } => down(run, all, stale, yes).await.map(|()| 0),
        Command::Provision { run, check } => {
            let run = pick_run(run).await?;
            let mut lab = Lab::attach(&run).await?;
            open_run_log(&lab.state_dir);
            let work = lab.install();
            let report = tokio::select! {
                r = work => r?,
                // The lab was there before: an interrupt stops the work and
                // leaves it (a re-run repairs what was half done).
                code = lab::interrupt() => interrupted(code, None).await,
            };
            lab.write_phases(None)?;
            print!("{}", changes_lines(&report));
            println!("run `{run}`: {} change(s)", report.changes());
            Ok(check_outcome(check, report.changes()))
        }
        Command::Stack {
            run,
            ke2_docker,
            real_images,
            rm,
        } => {
            // The checkout is read before anything else: bad input touches
            // no host.
            let tree = ke2_docker
                .as_deref()
                .map(ke2lab::steps::checkout::Tree::read)
                .transpose()?;
            let t0 = Instant::now();
            let run = pick_run(run).await?;
            let mut lab = Lab::attach(&run).await?;
            open_run_log(&lab.state_dir);
            let work = async {
                match tree {
                    Some(tree) if !rm => stack_up(&mut lab, tree, images_of(real_images)).await,
                    _ => lab.remove_stack(Duration::from_secs(180)).await,
                }
            };
            let r = tokio::select! {
                r = work => r,
                code = lab::interrupt() => interrupted(code, None).await,
            };
            lab.write_phases(None)?;
            r?;
            if !rm {
                print_summary(&lab, t0.elapsed(), Some(images_of(real_images))).await?;
            }
            Ok(0)
        }
        Command::Install {
            topology,
            ssh_user,
            identity,
            check,
        } => {
            let changes = install_ssh(&topology, ssh_user, identity).await?;
            Ok(check_outcome(check, changes))
        }
        Command::Check { topology, json } => {
            print!("{}", check(&topology, json)?);
            Ok(0)
        }
        Command::Scenario { action } => ke2lab_harness::scenario::cli::main(action).await,
        Command::Chaos(args) => ke2lab_harness::chaos::cli::main(args).await,
        Command::Version => {
            println!("{}", version_line());
            Ok(0)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Into a buffer first: clap_complete panics on a closed pipe
            // (`| head`), a plain write reports it.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ke2lab", &mut script);
            use std::io::Write;
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(0),
            }
        }
    }
}

/// With `--check`, the idempotence gate's code (said on stderr when the
/// install changed something); without it, 0.
fn check_outcome(check: bool, changes: usize) -> u8 {
    if !check {
        return 0;
    }
    let code = status::check_exit(changes);
    if code != 0 {
        eprintln!("--check: the install made {changes} change(s); exit {code}");
    }
    code
}

/// What `ke2lab check` prints on stdout: the table, or the JSON document.
/// Bad input is an error before anything is printed.
fn check(path: &PathBuf, json: bool) -> Result<String> {
    let v = load_topology(Some(path))?;
    let resolved = Resolved::of_validated(&v);
    Ok(if json {
        format!("{}\n", resolved.to_json())
    } else {
        format!("topology `{}` is valid\n\n{resolved}", path.display())
    })
}

/// Points this process's detail log at `<run dir>/install.log`; a log that
/// cannot be opened is a warning, never a reason to stop.
fn open_run_log(run_dir: &std::path::Path) {
    open_run_log_at(&run_dir.join("install.log"));
}

fn open_run_log_at(path: &std::path::Path) {
    if let Err(e) = console::open_log(path) {
        console::warn(&format!("cannot open `{}`: {e}", path.display()));
    }
}

/// The changes an install made, one line each (nothing when none).
fn changes_lines(report: &ke2lab::install::InstallReport) -> String {
    report
        .steps
        .iter()
        .flat_map(|s| {
            s.changes
                .iter()
                .map(move |c| format!("  {} [{}] {}\n", s.step, c.host, c.summary))
        })
        .collect()
}

/// `ke2lab version`: the version and the commit it was built from.
fn version_line() -> String {
    format!(
        "ke2lab {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        option_env!("KE2LAB_COMMIT").unwrap_or("unknown")
    )
}

fn images_of(real: bool) -> StackImages {
    if real {
        StackImages::Registry
    } else {
        StackImages::Standins
    }
}

/// Step 8 on a lab, then what a user checks: every service converged and
/// each host's nginx answering HTTPS (verified against the local CA).
async fn stack_up(
    lab: &mut Lab,
    tree: ke2lab::steps::checkout::Tree,
    images: StackImages,
) -> Result<()> {
    // The steps' warnings reached the console once, as they were raised.
    lab.install_stack(tree, images).await?;
    let services = lab.await_stack(Duration::from_secs(300)).await?;
    for s in &services {
        tracing::info!("service `{}` at {}", s.name, s.replicas);
    }
    let t = lab::PhaseTimer::start("https");
    let ca = lab.cluster().stack_ca().await?;
    // In `host` mode with fewer nginx replicas than hosts only the nodes
    // running nginx listen; the others refusing is the expected state.
    let serving = lab
        .cluster()
        .https_hosts()
        .await
        .map_err(|e| anyhow::anyhow!("where nginx publishes: {e}"))?;
    // The CA a person trusts to open Kompira (the summary says where).
    lab::write_private(&lab.state_dir.join("ca.crt"), &ca.pem)?;
    let what = format!(
        "HTTPS 200 from the 443 of {} (verified against the local CA)",
        serving
            .iter()
            .map(|h| format!("`{h}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (serving, ca, shared): (&Vec<String>, _, &Lab) = (&serving, &ca, lab);
    let answers = ke2lab::wait::wait_for_every(
        &what,
        Duration::from_secs(120),
        Duration::from_secs(1),
        || async move {
            let r: Vec<_> = shared
                .cluster()
                .https_each(ca, "/", Duration::from_secs(10))
                .await
                .into_iter()
                .filter(|(h, _)| serving.contains(h))
                .collect();
            if r.iter()
                .all(|(_, x)| matches!(x, Ok(resp) if resp.status == 200))
            {
                ke2lab::wait::Poll::Ready(r)
            } else {
                ke2lab::wait::Poll::NotYet(
                    r.iter()
                        .map(|(h, x)| match x {
                            Ok(resp) => format!("{h}: {}", resp.status),
                            Err(e) => format!("{h}: {e}"),
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        },
    )
    .await?;
    lab.phase(
        t.end(
            answers
                .iter()
                .map(|(h, _)| format!("{h} 200"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    );
    Ok(())
}

async fn up(
    topology: Option<&PathBuf>,
    keep: bool,
    no_install: bool,
    stack: Option<(&std::path::Path, StackImages)>,
    name: Option<String>,
) -> Result<()> {
    let t0 = Instant::now();
    let v = load_topology(topology)?;
    // Bad input is found before any host exists.
    let tree = match stack {
        Some((dir, images)) => Some((ke2lab::steps::checkout::Tree::read(dir)?, images)),
        None => None,
    };
    if let Some(n) = &name {
        if let Some(why) = ke2lab_harness::owner::lab_name_problem(n) {
            return Err(anyhow::Error::new(Refused(format!(
                "`--name`: invalid lab name `{}` ({why})",
                ke2lab::topology::shown(n)
            ))));
        }
        let docker = lab::connect().await?;
        if lab::labs(&docker)
            .await?
            .iter()
            .any(|l| l.name.as_ref() == Some(n))
        {
            return Err(anyhow::Error::new(Refused(format!(
                "`--name`: a lab named `{n}` is already on this machine"
            ))));
        }
    }
    // The run id is chosen here, so that an interrupt knows what to remove
    // even while the hosts are still being created.
    let run = lab::new_run_id();
    let work = up_work(v, tree, keep, no_install, run.clone(), name, t0);
    tokio::select! {
        r = work => r,
        code = lab::interrupt() => interrupted(code, if keep { None } else { Some(&run) }).await,
    }
}

/// The work was dropped by a signal: removes the lab this command created
/// (`remove`), unless a second signal says to leave at once (the lab then
/// stays for `ke2lab down --stale`), and exits with the signal's code.
async fn interrupted(code: i32, remove: Option<&str>) -> ! {
    if let Some(run) = remove {
        eprintln!(
            "interrupted; removing run `{run}` (interrupt again to leave it for `ke2lab down --stale`)"
        );
        let down = async {
            match lab::connect().await {
                Ok(docker) => lab::down_run(&docker, run).await,
                Err(e) => Err(e),
            }
        };
        tokio::select! {
            r = down => if let Err(e) = r { eprintln!("warning: removing run `{run}`: {e:#}") },
            _ = lab::interrupt() => eprintln!("left run `{run}`; `ke2lab down --stale` removes it"),
        }
    } else {
        eprintln!("interrupted");
    }
    std::process::exit(code)
}

async fn up_work(
    v: Validated,
    tree: Option<(ke2lab::steps::checkout::Tree, StackImages)>,
    keep: bool,
    no_install: bool,
    run: String,
    name: Option<String>,
    t0: Instant,
) -> Result<()> {
    // The detail goes to the run's own log from the first line on.
    let run_dir = lab::run_dir(&run);
    std::fs::create_dir_all(&run_dir)?;
    open_run_log(&run_dir);
    console::note(&format!(
        "run `{run}`: booting {} hosts",
        v.topology.hosts.len()
    ));
    let mut lab = Lab::boot_as(&v.topology, keep, run, name).await?;
    let images = tree.as_ref().map(|(_, i)| *i);
    if !no_install {
        let mut result = lab.install().await.map(|_| ());
        if let (Ok(()), Some((tree, images))) = (&result, tree) {
            result = stack_up(&mut lab, tree, images).await;
        }
        lab.write_phases(Some(t0.elapsed()))?;
        if let Err(e) = result {
            if keep {
                ke2lab_harness::owner::keep(&lab.state_dir).ok();
                eprintln!(
                    "install failed; hosts kept: `ke2lab exec --run {} {} -- sh -c '…'`, \
                     `ke2lab down --run {}` when done",
                    lab.run, lab.topology.hosts[0].name, lab.run
                );
            } else {
                let run = lab.run.clone();
                lab.teardown().await.ok();
                eprintln!("install failed; run `{run}` removed (use --keep-on-failure to keep it)");
            }
            return Err(e);
        }
    }
    // The user's lab from now on: `down --stale` leaves it alone.
    ke2lab_harness::owner::keep(&lab.state_dir)?;
    lab.write_phases(Some(t0.elapsed()))?;
    print_summary(&lab, t0.elapsed(), images).await?;
    Ok(())
}

/// `up`'s (and `stack`'s) last words on stdout: the summary, from a
/// snapshot of the cluster taken now.
async fn print_summary(lab: &Lab, total: Duration, images: Option<StackImages>) -> Result<()> {
    let snapshot = lab.snapshot().await?;
    let ca = lab.state_dir.join("ca.crt");
    let memory = lab::memory(lab)
        .await
        .ok()
        .map(|m| m.iter().map(|(_, b)| b).sum());
    print!(
        "{}",
        status::summary(&status::Summary {
            run: &lab.run,
            name: lab.name.as_deref(),
            topology: &lab.topology,
            run_dir: &lab.state_dir,
            snapshot: &snapshot,
            total,
            ca: ca.is_file().then_some(ca.as_path()),
            standins: images == Some(StackImages::Standins),
            memory,
        })
    );
    Ok(())
}

/// The run a command acts on: `--run` (a run id, or a lab's name), else
/// the only lab on this machine. With several and no `--run` it refuses
/// and lists them: acting on "the newest" could be someone else's lab.
async fn pick_run(run: Option<String>) -> Result<String> {
    let docker = lab::connect().await?;
    let labs = lab::labs(&docker).await?;
    if let Some(r) = run {
        if lab::is_run_id(&r) {
            return Ok(r);
        }
        return labs
            .iter()
            .find(|l| l.name.as_deref() == Some(r.as_str()))
            .map(|l| l.run.clone())
            .ok_or_else(|| anyhow::Error::new(Refused(format!("`--run`: no lab is named `{r}`"))));
    }
    match labs.as_slice() {
        [] => bail!("no lab is running (`ke2lab up` starts one)"),
        [l] => Ok(l.run.clone()),
        many => Err(anyhow::Error::new(Refused(format!(
            "several labs are on this machine; name one with `--run`:\n{}",
            describe_labs(many)
        )))),
    }
}

fn describe_labs(labs: &[lab::LabInfo]) -> String {
    labs.iter()
        .map(|l| {
            format!(
                "  {}{}  {} ({} container(s))",
                l.run,
                l.name.as_ref().map_or(String::new(), |n| format!(" `{n}`")),
                l.liveness,
                l.containers
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every lab's (or the named one's) snapshot and verdict.
async fn status(run: Option<String>, output: Output) -> Result<()> {
    let runs = match run {
        Some(r) => vec![pick_run(Some(r)).await?],
        None => Lab::runs().await?,
    };
    let mut labs = Vec::new();
    for r in runs {
        labs.push(match Lab::attach(&r).await {
            Ok(lab) => {
                let name = lab.name.clone();
                match lab.snapshot().await {
                    Ok(s) => LabStatus::of(r, name, s),
                    Err(e) => LabStatus::unreachable(r, format!("{e:#}")),
                }
            }
            Err(e) => LabStatus::unreachable(
                r,
                format!("{e:#} (leftover? `ke2lab down --stale` reaps it)"),
            ),
        });
    }
    print!("{}", render_status(&labs, output));
    Ok(())
}

/// `status`'s stdout for `labs`.
fn render_status(labs: &[LabStatus], output: Output) -> String {
    match output {
        Output::Json => {
            let doc = StatusDoc::new(labs.to_vec());
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).expect("a snapshot serialises")
            )
        }
        Output::Table if labs.is_empty() => "no lab is running\n".into(),
        Output::Table => labs
            .iter()
            .map(status::table)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The lab's verdict: `healthy` and 0, or every finding and 1.
async fn verify(run: Option<String>) -> Result<u8> {
    let run = pick_run(run).await?;
    let lab = Lab::attach(&run).await?;
    let verdict = lab.verdict().await?;
    if verdict.is_empty() {
        println!("run `{run}`: healthy");
    } else {
        println!(
            "run `{run}`: {} unhealthy fact(s)\n{}",
            verdict.len(),
            status::verdict_lines(&verdict).trim_end()
        );
    }
    Ok(status::verify_exit(&verdict))
}

/// `ke2lab logs`'s actions.
#[derive(Subcommand)]
enum LogsAction {
    /// Write the lab's evidence into DIR (created if missing; refused when
    /// it is not empty): per host the service logs, configuration files
    /// and state, the snapshot and verdict, the event log, the run's
    /// topology and install log; every password replaced by `***`.
    Export {
        #[arg(long)]
        run: Option<String>,
        dir: PathBuf,
    },
}

/// `logs export`: the same export a failing scenario's evidence is. A DIR
/// that exists and is not empty is bad input, found before any lab is
/// asked: nothing outside DIR, and nothing already in it, is written.
async fn logs_export(run: Option<String>, dir: PathBuf) -> Result<()> {
    if let Some(why) = ke2lab_harness::artifacts::export_dir_problem(&dir) {
        return Err(anyhow::Error::new(Refused(format!("`DIR`: {why}"))));
    }
    let run = pick_run(run).await?;
    let lab = Lab::attach(&run).await?;
    let report = ke2lab_harness::artifacts::export(&lab, &dir).await?;
    print!("{report}");
    Ok(())
}

/// `ke2lab fault`: the arguments are checked before Docker is asked (bad
/// input, exit 2), the hosts against the lab's topology before anything is
/// injected; the record in the run directory is read and written under its
/// lock.
async fn fault(run: Option<String>, verb: faults::Verb) -> Result<()> {
    let request = verb.request()?;
    if verb == faults::Verb::List {
        print!("{}", faults::vocabulary());
        return Ok(());
    }
    let run = pick_run(run).await?;
    let lab = Lab::attach(&run).await?;
    let mut f = Faults::new(&lab);
    let _lock = f.lock()?;
    match (verb, request) {
        (_, Some(r)) => {
            let names: Vec<&str> = lab.topology.hosts.iter().map(|h| h.name.as_str()).collect();
            let r = r.resolve(&names)?;
            let id = f.apply(&r).await?;
            println!("fault `{id}` in force on run `{run}` (`ke2lab fault heal {id}` undoes it)");
        }
        (faults::Verb::Active { json }, None) => {
            let active = f.records();
            if json {
                let doc = faults::Record::load(&lab.state_dir)?;
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", faults::active_table(&active));
            }
        }
        (faults::Verb::Heal { id: Some(id), .. }, None) => {
            let a = f.records();
            let found = faults::Record {
                active: a,
                ..Default::default()
            }
            .find(&id)?
            .clone();
            f.heal(&found.fault).await?;
            println!("fault `{id}` healed: {}", found.undo);
        }
        (faults::Verb::Heal { .. }, None) => {
            let n = f.records().len();
            f.undo_all().await?;
            println!("{n} fault(s) healed on run `{run}`");
        }
        (_, None) => unreachable!("every other verb is a request"),
    }
    Ok(())
}

async fn exec(run: Option<String>, host: &str, cmd: Vec<String>) -> Result<()> {
    let run = pick_run(run).await?;
    let lab = Lab::attach(&run).await?;
    let h = lab.host(host)?;
    let out = h.run(&Cmd::new(cmd)).await?;
    use std::io::Write;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    if out.status != 0 {
        std::process::exit(out.status.clamp(1, 255));
    }
    Ok(())
}

async fn down(run: Option<String>, all: bool, stale: bool, yes: bool) -> Result<()> {
    use ke2lab_harness::owner::Liveness;
    let docker = lab::connect().await?;
    if stale {
        let labs = lab::labs(&docker).await?;
        let mut removed = 0;
        for l in labs.iter().filter(|l| l.liveness == Liveness::Stale) {
            lab::reap(&docker, Some(&l.run)).await?;
            println!("removed stale run `{}`", l.run);
            removed += 1;
        }
        let left = labs.len() - removed;
        println!("removed {removed} stale lab(s); left {left} live or kept lab(s) alone");
        return Ok(());
    }
    if all {
        let labs = lab::labs(&docker).await?;
        let live = labs
            .iter()
            .filter(|l| l.liveness != Liveness::Stale)
            .count();
        let what = format!(
            "`--all` removes every lab on this machine: {} lab(s), {live} of them live or kept by their users",
            labs.len()
        );
        if !yes {
            use std::io::{BufRead, IsTerminal, Write};
            if !std::io::stdin().is_terminal() {
                return Err(anyhow::Error::new(Refused(format!(
                    "{what}; pass `--yes` to confirm (or `--stale` for only the labs nobody owns)"
                ))));
            }
            eprint!("{what}. remove them all? [y/N] ");
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                println!("nothing removed");
                return Ok(());
            }
        }
        let removed = lab::reap(&docker, None).await?;
        println!(
            "removed {} container(s), {} network(s), {} volume(s) of every run",
            removed.containers.len(),
            removed.networks.len(),
            removed.volumes.len(),
        );
        return Ok(());
    }
    let target = pick_run(run).await?;
    // Faults in force are forgotten, not undone: each lives in the lab's
    // containers (their network, processes, filesystems) or is a
    // container's state, and removing the containers ends it.
    if let Ok(lab) = Lab::attach(&target).await {
        let gone = Faults::new(&lab).forget_all();
        if !gone.is_empty() {
            println!(
                "{} fault(s) in force end with the hosts: {}",
                gone.len(),
                gone.iter()
                    .map(|a| format!("`{}` {}", a.id, a.what))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    let removed = lab::reap(&docker, Some(&target)).await?;
    println!(
        "removed {} container(s), {} network(s), {} volume(s) of run `{target}`",
        removed.containers.len(),
        removed.networks.len(),
        removed.volumes.len(),
    );
    Ok(())
}

/// Installs real servers; returns how many changes the install made.
async fn install_ssh(path: &PathBuf, user: String, identity: Option<PathBuf>) -> Result<usize> {
    let v = load_topology(Some(path))?;
    // One multiplexed connection per host for the whole install.
    let mux = match lab::mux_dir() {
        Ok(d) => Some(d),
        Err(e) => {
            console::warn(&format!("{e:#}; a new ssh connection per command"));
            None
        }
    };
    let hosts: Vec<Arc<dyn Host>> = v
        .topology
        .hosts
        .iter()
        .map(|h| {
            let mut cfg = SshConfig::new(h.name.clone(), h.address.to_string());
            cfg.user = user.clone();
            cfg.identity = identity.clone();
            cfg.control_dir = mux.clone();
            Arc::new(SshHost::new(cfg)) as Arc<dyn Host>
        })
        .collect();
    // Generated passwords are kept beside the topology (mode 0600), so a
    // re-run uses the same ones.
    let creds = v
        .topology
        .credentials
        .resolve_kept(&path.with_extension("secrets.toml"))?;
    // The detail log lives beside the topology, as its passwords do.
    open_run_log_at(&path.with_extension("install.log"));
    let cx = Cx::new(&v.topology, &hosts).with_credentials(&creds);
    let report = ke2lab::install::install(&cx).await;
    // The master connections end with the install, failed or not.
    for h in &hosts {
        if let Err(e) = h.close().await {
            console::warn(&format!("{e}"));
        }
    }
    let report = report?;
    print!("{}", changes_lines(&report));
    println!("`{}`: {} change(s)", path.display(), report.changes());
    Ok(report.changes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(args: &[&str]) -> anyhow::Error {
        let cli = Cli::try_parse_from(args).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(cli)).unwrap_err()
    }

    /// Refused before Docker is contacted: without the check these would
    /// reach `lab::connect` and fail with another message or exit code.
    #[test]
    fn a_bad_run_id_is_bad_input_naming_run() {
        for value in ["../x", "/", "/tmp/r123456", "", "a/b", "r12345"] {
            for command in [
                &["ke2lab", "down", "--run", value][..],
                &["ke2lab", "status", "--run", value],
                &["ke2lab", "provision", "--run", value],
                &["ke2lab", "exec", "--run", value, "h", "--", "true"],
                &["ke2lab", "stack", "--run", value, "--rm"],
                &["ke2lab", "logs", "export", "--run", value, "/nx"],
            ] {
                let e = refused(command);
                assert_eq!(exit_code(&e), EXIT_BAD_INPUT, "{command:?}: {e:#}");
                assert_eq!(
                    format!("{e:#}"),
                    format!(
                        "`--run`: invalid run id `{value}` (expected `r` and 6 lowercase hex \
                         digits, as `ke2lab up` prints, e.g. `r1a2b3c`)"
                    ),
                    "{command:?}"
                );
            }
        }
    }

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/topologies"
        ))
        .join(format!("{name}.toml"))
    }

    #[test]
    fn check_prints_the_table_after_the_verdict() {
        let path = fixture("three-node");
        let out = check(&path, false).unwrap();
        assert!(
            out.starts_with(&format!("topology `{}` is valid\n\n", path.display())),
            "{out}"
        );
        for line in [
            "  data-path port  4789/udp",
            "  volume        gvol0, replica 3",
            "ports to open",
        ] {
            assert!(out.contains(line), "no `{line}` in:\n{out}");
        }
    }

    #[test]
    fn check_json_is_one_document_with_the_resolved_values() {
        let out = check(&fixture("three-node-vmxnet3"), true).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["swarm"]["data_path_port"], 7789);
        assert_eq!(doc["shared_dir"]["replica"], 3);
        assert_eq!(doc["quorums"]["swarm_raft"]["tolerates"], 1);
        assert_eq!(doc["quorums"]["pgpool_watchdog"]["tolerates"], 1);
        assert_eq!(doc["firewall"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn check_json_of_bad_input_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            include_str!("../../fixtures/topologies/three-node.toml")
                .replace("pgpool = 9999", "pgpool = 2377"),
        )
        .unwrap();
        let e = check(&path, true).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_BAD_INPUT);
        assert!(
            format!("{e:#}").contains("`ports.pgpool`: port `2377`"),
            "{e:#}"
        );
    }

    #[test]
    fn an_unreadable_topology_names_its_path_once() {
        let path = PathBuf::from("/nonexistent/ke2lab/topology.toml");
        let e = load_topology(Some(&path)).unwrap_err();
        let text = format!("{e:#}");
        assert_eq!(
            text,
            "cannot read `/nonexistent/ke2lab/topology.toml`: No such file or directory \
             (os error 2)"
        );
        assert_eq!(exit_code(&e), EXIT_BAD_INPUT);
    }

    #[test]
    fn an_invalid_topology_names_its_path_as_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            include_str!("../../fixtures/topologies/three-node.toml")
                .replace("/mnt/gluster", "/etc/gluster"),
        )
        .unwrap();
        let e = load_topology(Some(&path)).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "topology `{}`: `shared_dir.path`: `/etc/gluster` is inside the system \
                 directory `/etc`",
                path.display()
            )
        );
        assert_eq!(exit_code(&e), EXIT_BAD_INPUT);
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;
    use clap::CommandFactory;
    use ke2lab::cluster::pgpool::PgState;
    use ke2lab::cluster::{ProbeFailure, Snapshot};

    fn schema() -> serde_json::Value {
        serde_json::from_str(include_str!("../../docs/status.schema.json")).unwrap()
    }

    fn validate(doc: &serde_json::Value) -> Vec<String> {
        let v = jsonschema::validator_for(&schema()).expect("the schema is a valid JSON Schema");
        v.iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }

    /// A healthy lab, a broken one (every optional part absent, probes
    /// failed, PostgreSQL down, the decision waiting) and one not attached.
    fn labs() -> Vec<LabStatus> {
        let mut broken = Snapshot::example();
        broken.swarm = None;
        broken.gluster = None;
        broken.stack = None;
        broken.pgpool.pool_nodes = None;
        broken.pgpool.leader = None;
        broken.pgpool.quorum = None;
        broken.hosts[2].postgres = PgState::Down("no server".into());
        broken.hosts[2].replication = None;
        broken.hosts[1].gluster_peers = None;
        broken.hosts[1].holds_vip = None;
        broken.pgpool.view.pg[2] = PgState::Down("no server".into());
        broken.pgpool.view.members[1].watchdog = Err("refused".into());
        broken.pgpool.view.via_vip = Err("timed out".into());
        broken.pgpool.decision = ke2lab::cluster::pgpool::decide(&broken.pgpool.view);
        broken.errors.push(ProbeFailure {
            host: "ke2-server1".into(),
            probe: "docker node ls".into(),
            error: "the swarm has no leader".into(),
        });
        vec![
            LabStatus::of("r1a2b3c".into(), Some("demo".into()), Snapshot::example()),
            LabStatus::of("r0000ff".into(), None, broken),
            LabStatus::unreachable("r123456".into(), "no lab with run id `r123456`".into()),
        ]
    }

    #[test]
    fn status_json_validates_against_the_committed_schema() {
        let out = render_status(&labs(), Output::Json);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(validate(&doc), Vec::<String>::new());
        assert_eq!(doc["schema"], schema()["$id"]);
        assert_eq!(doc["version"], schema()["version"]);
        assert_eq!(doc["labs"][0]["healthy"], true);
        assert_eq!(doc["labs"][1]["healthy"], false);
        // The schema is closed: a field it does not document fails.
        let mut extra = doc.clone();
        extra["labs"][0]["snapshot"]["hosts"][0]["undocumented"] = 1.into();
        assert!(!validate(&extra).is_empty());
        let back: StatusDoc = serde_json::from_str(&out).unwrap();
        assert_eq!(back.labs, labs());
    }

    #[test]
    fn status_table_names_what_is_wrong() {
        let out = render_status(&labs(), Output::Table);
        for line in [
            "lab `r1a2b3c` (`demo`): cluster `ke2`, 3 hosts, VIP 10.20.0.100",
            "  volume `gvol0`: Started, replica 3, 3/3 bricks online, 0 pending heal",
            "  pgpool: leader ke2-server1, quorum yes, VIP on ke2-server1, healthy",
            "  stack `ke2`: 1/1 services converged, HTTPS 200 on 3/3 hosts",
            "  verdict: healthy",
            "    host `ke2-server3`: PostgreSQL down: no server",
            "lab `r123456`: no lab with run id `r123456`",
        ] {
            assert!(out.contains(line), "no `{line}` in:\n{out}");
        }
        assert_eq!(render_status(&[], Output::Table), "no lab is running\n");
    }

    #[test]
    fn exit_codes() {
        let healthy = LabStatus::of("r1a2b3c".into(), None, Snapshot::example());
        assert_eq!(status::verify_exit(&healthy.verdict), 0);
        let broken = &labs()[1];
        assert_eq!(status::verify_exit(&broken.verdict), 1);
        assert_eq!(check_outcome(true, 0), 0);
        assert_eq!(check_outcome(true, 2), status::EXIT_CHANGED);
        assert_eq!(check_outcome(false, 2), 0);
        assert_ne!(status::EXIT_CHANGED, EXIT_BAD_INPUT);
        assert_ne!(status::EXIT_CHANGED, status::EXIT_UNHEALTHY);
    }

    #[test]
    fn parses_the_new_commands() {
        let c =
            Cli::try_parse_from(["ke2lab", "status", "-o", "json", "--run", "r1a2b3c"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Status { output: Output::Json, ref run } if run.as_deref() == Some("r1a2b3c")
        ));
        let c = Cli::try_parse_from(["ke2lab", "status"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Status {
                output: Output::Table,
                run: None
            }
        ));
        assert!(Cli::try_parse_from(["ke2lab", "status", "-o", "yaml"]).is_err());
        let c = Cli::try_parse_from(["ke2lab", "verify", "--run", "lab1"]).unwrap();
        assert!(matches!(c.command, Command::Verify { ref run } if run.as_deref() == Some("lab1")));
        let c = Cli::try_parse_from(["ke2lab", "provision", "--check"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Provision {
                check: true,
                run: None
            }
        ));
        let c = Cli::try_parse_from(["ke2lab", "install", "-t", "x.toml", "--check"]).unwrap();
        assert!(matches!(c.command, Command::Install { check: true, .. }));
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("3  provision/install --check"), "{help}");
    }

    #[test]
    fn verbosity_flags_version_and_completions() {
        let c = Cli::try_parse_from(["ke2lab", "up", "-q"]).unwrap();
        assert!(c.quiet && !c.verbose);
        let c = Cli::try_parse_from(["ke2lab", "-v", "provision"]).unwrap();
        assert!(c.verbose && !c.quiet);
        assert!(Cli::try_parse_from(["ke2lab", "up", "-q", "-v"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["ke2lab", "version"]).unwrap().command,
            Command::Version
        ));
        assert!(
            version_line().starts_with(&format!("ke2lab {} (commit ", env!("CARGO_PKG_VERSION")))
        );
        let c = Cli::try_parse_from(["ke2lab", "completions", "bash"]).unwrap();
        let Command::Completions { shell } = c.command else {
            panic!("not completions")
        };
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ke2lab", &mut script);
        let script = String::from_utf8(script).unwrap();
        for word in ["provision", "verify", "status", "completions", "--run"] {
            assert!(
                script.contains(word),
                "`{word}` missing from the bash completions"
            );
        }
        assert!(Cli::try_parse_from(["ke2lab", "completions", "tcsh"]).is_err());
    }

    #[test]
    fn detail_level_follows_a_bare_ke2lab_log() {
        assert_eq!(detail_level(None), tracing::Level::INFO);
        assert_eq!(detail_level(Some("debug")), tracing::Level::DEBUG);
        assert_eq!(detail_level(Some("ke2lab=trace")), tracing::Level::INFO);
    }

    #[test]
    fn verify_refuses_a_bad_run_id_before_docker() {
        let cli = Cli::try_parse_from(["ke2lab", "verify", "--run", "../x"]).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = runtime.block_on(run(cli)).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_BAD_INPUT);
    }
}
