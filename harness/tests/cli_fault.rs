//! Cluster tier: `ke2lab fault` as support staff run it, on one lab booted
//! without the install (`ke2lab up --no-install`): every verb is injected
//! through the binary, its effect checked through a typed probe (nftables
//! JSON, ping loss, `/proc/<pid>/stat`, `df`, the container's state),
//! `fault active --json` lists it with its id, `fault heal ID` undoes it
//! and the effect is gone; then `heal --all`, then `down` with faults in
//! force and no labelled resource left.
//!
//! Not covered here: `kill-process`/`freeze-process`/`kill` of postgres,
//! pgpool, glusterd and bricks (the bare hosts run none of them; dockerd
//! stands in, the same code path with another process name); `slow`'s
//! delay where the kernel has netem (this machine's has none: the test
//! then checks the refusal and that nothing was injected, and on a kernel
//! with netem it measures the delay instead).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ke2lab::host::Cmd;
use ke2lab::wait::{Poll, wait_for};
use ke2lab_harness::Lab;
use ke2lab_harness::lab::{self, leftovers};

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn ke2lab(args: &[&str]) -> Result<Out> {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    Ok(Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `ke2lab fault --run RUN ARGS`.
async fn fault(run: &str, args: &[&str]) -> Result<Out> {
    let mut a = vec!["fault", "--run", run];
    a.extend_from_slice(args);
    ke2lab(&a).await
}

/// Injects; returns the new fault's id.
async fn inject(run: &str, args: &[&str]) -> Result<String> {
    let o = fault(run, args).await?;
    ensure!(
        o.code == Some(0),
        "`fault {args:?}` exit {:?}: {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    let id = o
        .stdout
        .split("fault `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .with_context(|| format!("no fault id in {:?}", o.stdout))?;
    Ok(id.to_string())
}

async fn heal(run: &str, id: &str) -> Result<()> {
    let o = fault(run, &["heal", id]).await?;
    ensure!(
        o.code == Some(0),
        "`heal {id}` exit {:?}: {}",
        o.code,
        o.stderr
    );
    Ok(())
}

/// `fault active --json`'s faults as (id, fault kind, the fault).
async fn active(run: &str) -> Result<Vec<(String, String, serde_json::Value)>> {
    let o = fault(run, &["active", "--json"]).await?;
    ensure!(o.code == Some(0), "`active --json`: {}", o.stderr);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).context("not JSON")?;
    ensure!(doc["version"] == 1, "{doc}");
    doc["active"]
        .as_array()
        .context("no `active` array")?
        .iter()
        .map(|a| {
            let fault = &a["fault"];
            let kind = match fault {
                serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
                serde_json::Value::String(s) => s.clone(),
                _ => String::new(),
            };
            Ok((
                a["id"].as_str().context("no id")?.to_string(),
                kind,
                fault.clone(),
            ))
        })
        .collect()
}

async fn ensure_active(run: &str, want: &[(&str, &str)]) -> Result<()> {
    let got = active(run).await?;
    let got: Vec<(String, String)> = got.into_iter().map(|(i, k, _)| (i, k)).collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(i, k)| (i.to_string(), k.to_string()))
        .collect();
    ensure!(got == want, "active faults {got:?}, expected {want:?}");
    Ok(())
}

async fn sh(lab: &Lab, host: &str, script: &str) -> Result<String> {
    let out = Cmd::sh(script)
        .check(lab.host(host)?.as_ref())
        .await
        .with_context(|| format!("on `{host}`"))?;
    Ok(out.stdout_lossy())
}

/// The share of `count` pings from `from` to `to` that got no answer, %.
async fn ping_loss(lab: &Lab, from: &str, to: &str, count: u32) -> Result<u32> {
    let addr = lab.topology.host(to).context("no such host")?.address;
    let out = lab
        .host(from)?
        .run(&Cmd::new([
            "ping".to_string(),
            "-q".into(),
            "-n".into(),
            "-c".into(),
            count.to_string(),
            "-i".into(),
            "0.02".into(),
            "-W".into(),
            "1".into(),
            addr.to_string(),
        ]))
        .await?;
    let text = out.stdout_lossy();
    let loss = text
        .split_whitespace()
        .find_map(|w| w.strip_suffix("%"))
        .and_then(|p| p.parse::<f64>().ok())
        .with_context(|| format!("no loss in `ping`'s output: {text}"))?;
    Ok(loss.round() as u32)
}

/// The nftables tables of `host`, by name (`nft -j list tables`).
async fn nft_tables(lab: &Lab, host: &str) -> Result<Vec<String>> {
    let doc: serde_json::Value = serde_json::from_str(&sh(lab, host, "nft -j list tables").await?)?;
    Ok(doc["nftables"]
        .as_array()
        .context("no nftables array")?
        .iter()
        .filter_map(|o| o["table"]["name"].as_str().map(String::from))
        .collect())
}

/// The state letter of `/proc/<pid>/stat` (`S`, `R`, `T` …).
async fn proc_state(lab: &Lab, host: &str, pid: u64) -> Result<char> {
    let stat = sh(lab, host, &format!("cat /proc/{pid}/stat")).await?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .with_context(|| format!("cannot read the state in `{stat}`"))
}

/// Bytes available on the filesystem under `dir` (`df --output=avail`).
async fn avail(lab: &Lab, host: &str, dir: &str) -> Result<u64> {
    let out = sh(lab, host, &format!("df -B1 --output=avail {dir} | tail -1")).await?;
    Ok(out.trim().parse()?)
}

async fn container_status(lab: &Lab, host: &str) -> Result<String> {
    let c = lab.container_of(host)?;
    let i = lab.docker().inspect_container(&c, None).await?;
    Ok(i.state
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_default())
}

async fn docker_answers(lab: &Lab, host: &str, timeout: Duration) -> Result<()> {
    let h = lab.host(host)?;
    wait_for(&format!("dockerd on `{host}` answering"), timeout, || {
        let h = h.clone();
        async move {
            match h
                .run(&Cmd::sh(
                    "test -e /run/ke2lab-booted && docker version --format '{{.Server.Version}}'",
                ))
                .await
            {
                Ok(o) if o.success() => Poll::Ready(()),
                Ok(o) => Poll::NotYet(o.stderr_lossy()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn every_fault_verb_injects_lists_and_heals() -> Result<()> {
    let t0 = Instant::now();
    let name = format!("cli-fault-{:04x}", rand::random::<u16>());
    let up = ke2lab(&["up", "--no-install", "--name", &name]).await?;
    let text = format!("{}{}", up.stdout, up.stderr);
    let run = text
        .split("run `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .context("no run id in `up`'s output")?
        .to_string();
    let outcome = async {
        ensure!(up.code == Some(0), "`up --no-install` failed:\n{text}");
        let lab = Lab::attach(&run).await?;
        let (s1, s2, s3) = ("ke2-server1", "ke2-server2", "ke2-server3");
        eprintln!("booted in {:?}", t0.elapsed());

        // An unknown host is bad input, found with the lab's topology.
        let o = fault(&run, &["stop", "ke2-server9"]).await?;
        ensure!(o.code == Some(2), "exit {:?}: {}", o.code, o.stderr);
        ensure!(
            o.stderr.starts_with(
                "error: `HOST`: the lab has no host `ke2-server9` (its hosts: ke2-server1, \
                 ke2-server2, ke2-server3)"
            ),
            "{}",
            o.stderr
        );
        let o = fault(&run, &["flaky", s1, "--from", "nope", "--loss", "5%"]).await?;
        ensure!(o.code == Some(2), "exit {:?}: {}", o.code, o.stderr);
        ensure!(
            o.stderr.contains("`--from`: the lab has no host `nope`"),
            "{}",
            o.stderr
        );
        let o = fault(&run, &["heal", "f99"]).await?;
        ensure!(o.code == Some(2), "exit {:?}: {}", o.code, o.stderr);
        ensure_active(&run, &[]).await?;

        // slow: netem where the kernel has it, else a refusal naming why.
        let o = fault(&run, &["slow", s2, "--from", s1, "--delay", "200ms"]).await?;
        if o.code == Some(0) {
            let id = o.stdout.split('`').nth(1).context("no id")?.to_string();
            let qdisc = sh(&lab, s2, "tc -j qdisc show").await?;
            ensure!(qdisc.contains("\"netem\""), "no netem qdisc: {qdisc}");
            let rtt = |from: &'static str, to: &'static str| {
                let lab = &lab;
                async move {
                    let addr = lab.topology.host(to).unwrap().address;
                    let out =
                        sh(lab, from, &format!("ping -n -c 3 -i 0.2 {addr} | tail -1")).await?;
                    // rtt min/avg/max/mdev = a/b/c/d ms
                    let avg: f64 = out
                        .split('=')
                        .nth(1)
                        .and_then(|v| v.trim().split('/').nth(1))
                        .and_then(|v| v.parse().ok())
                        .with_context(|| format!("no rtt in `{out}`"))?;
                    anyhow::Ok(avg)
                }
            };
            let slowed = rtt(s1, s2).await?;
            let other = rtt(s3, s2).await?;
            ensure!(slowed >= 190.0, "rtt {slowed} ms to the slowed host");
            ensure!(other < 100.0, "rtt {other} ms from a host not named");
            ensure_active(&run, &[(&id, "slowed")]).await?;
            heal(&run, &id).await?;
            ensure!(rtt(s1, s2).await? < 100.0, "still slow after heal");
        } else {
            ensure!(o.code == Some(1), "exit {:?}: {}", o.code, o.stderr);
            ensure!(
                o.stderr
                    .contains("`slow`: the kernel of `ke2-server2` cannot delay packets")
                    && o.stderr.contains("nothing injected"),
                "{}",
                o.stderr
            );
            eprintln!("slow refused as it should be here: {}", o.stderr.trim());
            let qdisc = sh(&lab, s2, "tc -j qdisc show").await?;
            ensure!(!qdisc.contains("\"prio\""), "a prio qdisc left: {qdisc}");
            ensure_active(&run, &[]).await?;
        }

        // flaky: half the packets each way between s2 and s1 only.
        let id = inject(&run, &["flaky", s2, "--from", s1, "--loss", "50%"]).await?;
        ensure_active(&run, &[(&id, "lossy")]).await?;
        let table = format!("ke2lab_loss_{id}");
        ensure!(nft_tables(&lab, s2).await?.contains(&table));
        let lossy = ping_loss(&lab, s1, s2, 100).await?;
        let clean = ping_loss(&lab, s3, s2, 50).await?;
        eprintln!("flaky 50% each way: {lossy}% of pings s1->s2 lost, {clean}% s3->s2");
        ensure!(
            (50..=95).contains(&lossy),
            "{lossy}% lost, expected about 75%"
        );
        ensure!(clean == 0, "{clean}% lost from a host not named");
        heal(&run, &id).await?;
        ensure!(!nft_tables(&lab, s2).await?.contains(&table));
        ensure!(ping_loss(&lab, s1, s2, 20).await? == 0, "loss after heal");
        ensure_active(&run, &[]).await?;

        // partition: s1 from s2 and s3.
        let id = inject(
            &run,
            &["partition", s1, "--from", "ke2-server2,ke2-server3"],
        )
        .await?;
        ensure_active(&run, &[(&id, "partition")]).await?;
        ensure!(ping_loss(&lab, s1, s2, 3).await? == 100);
        ensure!(ping_loss(&lab, s3, s1, 3).await? == 100);
        ensure!(ping_loss(&lab, s2, s3, 3).await? == 0);
        // A second partition is refused while one is in force.
        let o = fault(&run, &["partition", s2]).await?;
        ensure!(o.code == Some(2), "exit {:?}: {}", o.code, o.stderr);
        heal(&run, &id).await?;
        ensure!(ping_loss(&lab, s1, s2, 3).await? == 0);
        for h in [s1, s2, s3] {
            ensure!(
                !nft_tables(&lab, h)
                    .await?
                    .contains(&"ke2lab_partition".to_string())
            );
        }

        // drop-vxlan-tcp: the table on every host, gone after heal.
        let id = inject(&run, &["drop-vxlan-tcp"]).await?;
        ensure_active(&run, &[(&id, "vxlan-tcp-dropped")]).await?;
        let (_, _, f) = active(&run).await?.remove(0);
        ensure!(f["vxlan-tcp-dropped"] == 4789, "{f}");
        for h in [s1, s2, s3] {
            let rules = sh(&lab, h, "nft -j list table inet ke2lab").await?;
            ensure!(rules.contains("\"drop\""), "{h}: {rules}");
        }
        heal(&run, &id).await?;
        for h in [s1, s2, s3] {
            ensure!(!nft_tables(&lab, h).await?.contains(&"ke2lab".to_string()));
        }

        // freeze-process: every dockerd of s3 in state T, then not.
        let id = inject(&run, &["freeze-process", s3, "dockerd"]).await?;
        let (_, kind, f) = active(&run).await?.remove(0);
        ensure!(kind == "frozen", "{kind}");
        let pids: Vec<u64> = f["frozen"]["pids"]
            .as_array()
            .context("no pids")?
            .iter()
            .filter_map(|p| p.as_u64())
            .collect();
        ensure!(!pids.is_empty(), "{f}");
        for &p in &pids {
            ensure!(proc_state(&lab, s3, p).await? == 'T', "pid {p} not stopped");
        }
        heal(&run, &id).await?;
        for &p in &pids {
            ensure!(
                proc_state(&lab, s3, p).await? != 'T',
                "pid {p} still stopped"
            );
        }
        docker_answers(&lab, s3, Duration::from_secs(10)).await?;

        // kill-process: the main dockerd of s3 gone; heal starts it.
        let id = inject(&run, &["kill-process", s3, "dockerd"]).await?;
        let (_, kind, f) = active(&run).await?.remove(0);
        ensure!(kind == "process-killed", "{kind}");
        let pid = f["process-killed"]["pids"][0].as_u64().context("no pid")?;
        wait_for(
            "the killed dockerd gone",
            Duration::from_secs(10),
            || async {
                match sh(&lab, s3, &format!("test ! -e /proc/{pid} && echo gone")).await {
                    Ok(_) => Poll::Ready(()),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
        heal(&run, &id).await?;
        docker_answers(&lab, s3, Duration::from_secs(60)).await?;

        // kill: every dockerd process; heal starts it again.
        let id = inject(&run, &["kill", s3, "dockerd"]).await?;
        ensure_active(&run, &[(&id, "killed")]).await?;
        heal(&run, &id).await?;
        docker_answers(&lab, s3, Duration::from_secs(60)).await?;
        // A process that does not run is an error that injects nothing.
        let o = fault(&run, &["kill-process", s3, "postgres"]).await?;
        ensure!(o.code == Some(1), "exit {:?}: {}", o.code, o.stderr);
        ensure!(
            o.stderr
                .contains("no `postgres` process runs on `ke2-server3`"),
            "{}",
            o.stderr
        );
        ensure_active(&run, &[]).await?;

        // disk-full: on a small filesystem of the host's own under the
        // brick, down to --leave; the container's root is refused.
        let brick = lab.topology.shared_dir.brick.clone();
        sh(
            &lab,
            s1,
            &format!("mkdir -p {brick} && mount -t tmpfs -o size=64m tmpfs {brick}"),
        )
        .await?;
        let before = avail(&lab, s1, &brick).await?;
        let id = inject(&run, &["disk-full", s1, "brick", "--leave", "10MiB"]).await?;
        let (_, kind, f) = active(&run).await?.remove(0);
        ensure!(kind == "disk-filled", "{kind}");
        let filler = f["disk-filled"]["filler"]
            .as_str()
            .context("no filler")?
            .to_string();
        ensure!(
            filler.starts_with(&format!("{brick}/.ke2lab-filler-")),
            "{filler}"
        );
        let left = avail(&lab, s1, &brick).await?;
        eprintln!(
            "disk-full: {} MiB free before, {} KiB after",
            before >> 20,
            left >> 10
        );
        ensure!(
            (9 << 20..=11 << 20).contains(&left),
            "{left} bytes free, expected about 10 MiB"
        );
        heal(&run, &id).await?;
        ensure!(
            avail(&lab, s1, &brick).await? == before,
            "the filler is still there"
        );
        let o = fault(&run, &["disk-full", s1, "pgdata"]).await?;
        ensure!(o.code == Some(1), "exit {:?}: {}", o.code, o.stderr);
        ensure!(o.stderr.contains("this machine's own disk"), "{}", o.stderr);
        ensure_active(&run, &[]).await?;
        sh(&lab, s1, &format!("umount {brick}")).await?;

        // pause, then stop: the container's state, and back.
        let id = inject(&run, &["pause", s3]).await?;
        ensure_active(&run, &[(&id, "paused")]).await?;
        ensure!(container_status(&lab, s3).await? == "paused");
        heal(&run, &id).await?;
        ensure!(container_status(&lab, s3).await? == "running");
        let id = inject(&run, &["stop", s3]).await?;
        ensure!(container_status(&lab, s3).await? == "exited");
        let table = fault(&run, &["active"]).await?;
        ensure!(
            table.stdout.starts_with(&format!("{id} ")) && table.stdout.contains("stop host"),
            "{}",
            table.stdout
        );
        heal(&run, &id).await?;
        ensure!(container_status(&lab, s3).await? == "running");
        docker_answers(&lab, s3, Duration::from_secs(60)).await?;

        // heal --all: several at once.
        let a = inject(&run, &["flaky", s1, "--loss", "10%"]).await?;
        let b = inject(&run, &["partition", s2, "--from", s3]).await?;
        let c = inject(&run, &["pause", s1]).await?;
        ensure_active(&run, &[(&a, "lossy"), (&b, "partition"), (&c, "paused")]).await?;
        let o = fault(&run, &["heal", "--all"]).await?;
        ensure!(o.code == Some(0), "heal --all: {}", o.stderr);
        ensure_active(&run, &[]).await?;
        ensure!(container_status(&lab, s1).await? == "running");
        for h in [s1, s2, s3] {
            let t = nft_tables(&lab, h).await?;
            ensure!(
                !t.iter()
                    .any(|n| n.starts_with("ke2lab_loss_") || n == "ke2lab_partition"),
                "{h}: {t:?}"
            );
        }
        ensure!(ping_loss(&lab, s2, s3, 5).await? == 0);

        // Faults in force when the lab goes: `down` forgets them.
        inject(&run, &["pause", s2]).await?;
        inject(&run, &["flaky", s1, "--loss", "20%"]).await?;
        eprintln!("every verb done after {:?}", t0.elapsed());
        Ok(())
    }
    .await;
    let down = ke2lab(&["down", "--run", &run]).await?;
    let docker = lab::connect().await?;
    let left = leftovers(&docker, Some(&run)).await?;
    if outcome.is_ok() {
        ensure!(down.code == Some(0), "down failed: {}", down.stderr);
        ensure!(
            down.stdout
                .contains("2 fault(s) in force end with the hosts"),
            "{}",
            down.stdout
        );
        ensure!(!lab::run_dir(&run).exists(), "the run directory is left");
    }
    if !left.is_empty() {
        bail!("run `{run}` left resources: {left:?}");
    }
    eprintln!("total {:?}", t0.elapsed());
    outcome
}
