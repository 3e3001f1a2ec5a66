//! `ci/bench`: where the install's time goes, as figures to compare before
//! and after a change (issue 17). Not a timed test: it measures and prints,
//! it never judges.
//!
//! Each round boots the default three-host lab with the image cached and
//! installs steps 1-7 (what a warm `ke2lab up` does), then re-provisions the
//! healthy cluster twice with nothing to change: through the container
//! transport (`ke2lab provision`) and over the lab hosts' sshd (`ke2lab
//! install`'s transport, one multiplexed connection per host). The round
//! then runs the shell prototype (`../shared/bench/proto/run.sh`, a floor:
//! it does less than the procedure) right after, so each pair of figures
//! meets the same machine; the ratio is taken pair by pair and its median
//! printed. After the rounds, the five-host fixture is installed once for
//! the recovery figure with five hosts.
//!
//! Every figure is printed as min / median / max over the rounds: quote
//! the median. Labs are this process's own and removed at the end of each
//! round, on failure too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ke2lab::steps::Cx;
use ke2lab::topology::Topology;
use ke2lab_harness::Lab;

const USAGE: &str =
    "usage: ke2lab-bench [--rounds N] [--proto DIR | --no-proto] [--no-ssh] [--no-five]";

struct Args {
    rounds: usize,
    /// The prototype's directory (its `run.sh`), unless `--no-proto`.
    proto: Option<PathBuf>,
    ssh: bool,
    five: bool,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        rounds: 3,
        proto: Some(PathBuf::from("../shared/bench/proto")),
        ssh: true,
        five: true,
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow!("`--rounds` needs a number"))?;
                a.rounds = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=20).contains(n))
                    .ok_or_else(|| anyhow!("`--rounds`: `{v}` is not a number from 1 to 20"))?;
            }
            "--proto" => {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow!("`--proto` needs a directory"))?;
                a.proto = Some(PathBuf::from(v));
            }
            "--no-proto" => a.proto = None,
            "--no-ssh" => a.ssh = false,
            "--no-five" => a.five = false,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if let Some(p) = &a.proto {
        ensure!(
            p.join("run.sh").is_file(),
            "`--proto`: no `run.sh` in `{}` (or pass `--no-proto`)",
            p.display()
        );
    }
    Ok(a)
}

/// Every figure's values, one per round, in the order first seen.
#[derive(Default)]
struct Figures {
    order: Vec<String>,
    values: BTreeMap<String, Vec<f64>>,
}

impl Figures {
    fn push(&mut self, name: &str, secs: f64) {
        if !self.values.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.values.entry(name.to_string()).or_default().push(secs);
    }

    fn median(&self, name: &str) -> Option<f64> {
        self.values.get(name).map(|v| median(v))
    }

    fn table(&self) -> String {
        let width = self.order.iter().map(String::len).max().unwrap_or(6).max(6);
        let mut s = format!(
            "{:width$}  {:>3}  {:>8}  {:>8}  {:>8}\n",
            "figure", "n", "min", "median", "max"
        );
        for name in &self.order {
            let v = &self.values[name];
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            s.push_str(&format!(
                "{name:width$}  {:>3}  {min:>8.2}  {:>8.2}  {max:>8.2}\n",
                v.len(),
                median(v)
            ));
        }
        s
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One warm install of `fixture` and, unless `only_install`, the two no-op
/// re-provisions. The lab is removed whatever happens.
async fn install_round(fx: &mut Figures, fixture: &str, prefix: &str, ssh: bool) -> Result<()> {
    let topology = Topology::fixture(fixture)?.topology;
    let start = Instant::now();
    let mut lab = Lab::boot(&topology, false).await?;
    let outcome = async {
        lab.install().await?;
        fx.push(
            &format!("{prefix}up (boot + steps 1-7)"),
            start.elapsed().as_secs_f64(),
        );
        for p in lab.phases.iter().filter(|p| p.name != "image") {
            fx.push(&format!("{prefix}  {}", p.name), p.elapsed.as_secs_f64());
        }
        if !prefix.is_empty() {
            return Ok(());
        }
        let mem: u64 = ke2lab_harness::lab::memory(&lab)
            .await?
            .iter()
            .map(|(_, b)| b)
            .sum();
        fx.push("hosts' memory (MiB, not s)", (mem / (1024 * 1024)) as f64);

        let t = Instant::now();
        let r = lab.install().await?;
        ensure!(r.changes() == 0, "the no-op provision changed:\n{r}");
        fx.push("no-op provision (container)", t.elapsed().as_secs_f64());

        if ssh {
            let hosts = lab.ssh_hosts();
            let creds = lab.credentials()?;
            let t = Instant::now();
            let r = {
                let cx = Cx::new(&lab.topology, &hosts).with_credentials(&creds);
                ke2lab::install::install(&cx).await
            };
            let elapsed = t.elapsed();
            for h in &hosts {
                h.close().await?;
            }
            let r = r?;
            ensure!(r.changes() == 0, "the no-op install over ssh changed:\n{r}");
            fx.push("no-op install (ssh)", elapsed.as_secs_f64());
        }
        Ok(())
    }
    .await;
    let down = lab.teardown().await;
    outcome.and(down)
}

/// The prototype's marks: `[N ms] name` lines, each phase the time since
/// the mark before it; and its `total X s` line.
fn proto_phases(out: &str) -> Result<(Vec<(String, f64)>, f64)> {
    let mut phases = Vec::new();
    let mut last = 0.0;
    let mut total = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix('[')
            && let Some((ms, name)) = rest.split_once(" ms] ")
            && let Ok(ms) = ms.parse::<f64>()
        {
            phases.push((name.trim().to_string(), (ms - last) / 1000.0));
            last = ms;
        } else if let Some(t) = line.strip_prefix("total ")
            && let Some(t) = t.strip_suffix(" s")
        {
            total = t.parse().ok();
        }
    }
    let total = total.ok_or_else(|| anyhow!("the prototype printed no `total … s` line"))?;
    ensure!(
        !phases.is_empty(),
        "the prototype printed no `[… ms]` marks"
    );
    Ok((phases, total))
}

async fn proto_round(fx: &mut Figures, dir: &std::path::Path) -> Result<f64> {
    let run = dir.join("run.sh");
    let out = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new("bash")
            .arg(&run)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow!("`{}` did not end in 900 s", run.display()))?
    .with_context(|| format!("cannot run `{}`", run.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "`{}` failed ({}): {}{}",
        run.display(),
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let (phases, total) = proto_phases(&text)?;
    fx.push("prototype total", total);
    for (name, s) in phases {
        fx.push(&format!("prototype  {name}"), s);
    }
    Ok(total)
}

async fn bench(a: Args) -> Result<()> {
    let mut fx = Figures::default();
    let mut ratios = Vec::new();
    for round in 1..=a.rounds {
        eprintln!("round {round} of {}: warm up of the default lab", a.rounds);
        install_round(&mut fx, "three-node", "", a.ssh).await?;
        if let Some(dir) = &a.proto {
            eprintln!("round {round} of {}: the shell prototype", a.rounds);
            let proto = proto_round(&mut fx, dir).await?;
            let ours = *fx.values["up (boot + steps 1-7)"].last().unwrap();
            ratios.push(ours / proto);
        }
    }
    if a.five {
        eprintln!("five hosts: one install of `matrix-five-fqdn`");
        install_round(&mut fx, "matrix-five-fqdn", "5 hosts: ", false).await?;
    }
    print!("{}", fx.table());
    if !ratios.is_empty() {
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "warm up / prototype, pair by pair: {} (median {:.2})",
            shown.join(", "),
            median(&ratios)
        );
    }
    if let (Some(three), Some(five)) = (fx.median("  recovery"), fx.median("5 hosts:   recovery")) {
        println!(
            "recovery: 5 hosts {five:.1} s vs 3 hosts {three:.1} s ({:+.0}%)",
            (five / three - 1.0) * 100.0
        );
    }
    if let (Some(noop), Some(ssh)) = (
        fx.median("no-op provision (container)"),
        fx.median("no-op install (ssh)"),
    ) {
        println!(
            "no-op over ssh / over the container transport: {:.2}",
            ssh / noop
        );
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prototype_marks_become_phases() {
        let out =
            "[812 ms] hosts-running\n[5012 ms] inner-dockerd+glusterd+sshd\nhi\ntotal 41.3 s\n";
        let (p, total) = proto_phases(out).unwrap();
        assert_eq!(total, 41.3);
        assert_eq!(p[0], ("hosts-running".into(), 0.812));
        assert_eq!(p[1].0, "inner-dockerd+glusterd+sshd");
        assert!((p[1].1 - 4.2).abs() < 1e-9);
        assert!(proto_phases("[1 ms] a\n").is_err());
    }

    #[test]
    fn medians_and_bad_arguments() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let a = parse(
            ["--rounds", "2", "--no-proto"]
                .map(String::from)
                .into_iter(),
        )
        .unwrap();
        assert_eq!(a.rounds, 2);
        assert!(a.proto.is_none());
        let e = parse(["--rounds", "0"].map(String::from).into_iter())
            .err()
            .unwrap();
        assert!(e.to_string().contains("`--rounds`"), "{e}");
        let e = parse(["--proto", "/nonexistent"].map(String::from).into_iter())
            .err()
            .unwrap();
        assert!(e.to_string().contains("`--proto`"), "{e}");
    }
}
