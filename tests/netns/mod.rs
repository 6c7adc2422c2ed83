//! Network namespaces for tests: separate L3 networks on one machine, joined only where the
//! test says. A [`Netns`] owns every namespace, veth pair and process it creates and removes
//! them all when dropped, on success and on panic alike.
//!
//! Rules kept here so tests cannot break them: the test process itself never sends traffic to
//! the namespaces' addresses (it would leave the machine by the root namespace's default
//! route); every client runs inside a namespace with `ip netns exec`.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Why these tests cannot run here, or `None` when they can (root and a working `ip netns`).
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output();
    match uid {
        Ok(output) if String::from_utf8_lossy(&output.stdout).trim() == "0" => {}
        Ok(_) => return Some("not running as root (network namespaces need CAP_SYS_ADMIN)".into()),
        Err(error) => return Some(format!("cannot run `id -u`: {error}")),
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Some(format!("`ip` (iproute2) is not usable: {error}")),
    }
}

/// Namespaces, links and processes of one test, named after the test process's pid so tests
/// running side by side never collide.
pub struct Netns {
    prefix: String,
    namespaces: Vec<String>,
    /// veth names as created in the root namespace, in case setup fails before they move.
    links: Vec<String>,
    processes: Vec<(String, Child, PathBuf)>,
    logs: PathBuf,
}

impl Netns {
    /// `tag` (a couple of letters) keeps names unique between tests of one binary.
    pub fn new(tag: &str, logs: &Path) -> Netns {
        Netns {
            prefix: format!("i{}{tag}", std::process::id()),
            namespaces: Vec::new(),
            links: Vec::new(),
            processes: Vec::new(),
            logs: logs.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates namespace `<prefix><short>` with loopback up; returns its full name.
    pub fn add_namespace(&mut self, short: &str) -> String {
        let name = format!("{}{short}", self.prefix);
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair between two namespaces. Interface names get the prefix too, since they
    /// exist briefly in the root namespace; keep `a` and `b` short (15-byte limit).
    pub fn link(&mut self, ns_a: &str, a: &str, ns_b: &str, b: &str) -> (String, String) {
        let if_a = format!("{}{a}", self.prefix);
        let if_b = format!("{}{b}", self.prefix);
        assert!(
            if_a.len() <= 15 && if_b.len() <= 15,
            "interface names too long: {if_a} {if_b}"
        );
        ip(&["link", "add", &if_a, "type", "veth", "peer", "name", &if_b]);
        self.links.push(if_a.clone());
        ip(&["link", "set", &if_a, "netns", ns_a]);
        ip(&["link", "set", &if_b, "netns", ns_b]);
        ip(&["-n", ns_a, "link", "set", &if_a, "up"]);
        ip(&["-n", ns_b, "link", "set", &if_b, "up"]);
        (if_a, if_b)
    }

    pub fn address(&self, ns: &str, interface: &str, cidr: &str) {
        ip(&["-n", ns, "addr", "add", cidr, "dev", interface]);
    }

    pub fn default_route(&self, ns: &str, via: &str) {
        ip(&["-n", ns, "route", "add", "default", "via", via]);
    }

    /// Sets `net.ipv4.ip_forward` inside `ns` and reads it back.
    pub fn forwarding(&self, ns: &str, on: bool) -> String {
        let value = if on { "1" } else { "0" };
        let set = self.run(
            ns,
            "sysctl",
            &["-qw", &format!("net.ipv4.ip_forward={value}")],
        );
        assert!(set.status.success(), "sysctl in {ns}: {}", stderr(&set));
        let read = self.run(ns, "sysctl", &["-n", "net.ipv4.ip_forward"]);
        String::from_utf8_lossy(&read.stdout).trim().to_owned()
    }

    /// Runs `program args` inside `ns` to completion.
    pub fn run(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program} in {ns}: {error}"))
    }

    /// Starts `program args` inside `ns` in the background; output goes to `<logs>/<label>.log`.
    /// `ip netns exec` execs the program, so the child is the program itself.
    pub fn spawn(&mut self, ns: &str, label: &str, program: &Path, args: &[String]) {
        let log = self.logs.join(format!("{label}.log"));
        let out = File::create(&log).unwrap_or_else(|error| panic!("{}: {error}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|error| panic!("{}: {error}", log.display()));
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {label} in {ns}: {error}"));
        self.processes.push((label.to_owned(), child, log));
    }

    /// Fails loudly if a background process has exited (a bad flag, a port in use).
    pub fn assert_running(&mut self) {
        for (label, child, log) in &mut self.processes {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{label} exited early ({status}):\n{}", tail(log));
            }
        }
    }

    /// The last lines of every process log, for failure messages.
    pub fn logs_tail(&self) -> String {
        self.processes
            .iter()
            .map(|(label, _, log)| format!("--- {label} ---\n{}", tail(log)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Namespaces of this test still present, per `ip netns list`.
    pub fn leftovers(prefix: &str) -> Vec<String> {
        let output = Command::new("ip").args(["netns", "list"]).output();
        let text = output
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| name.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes first: a namespace deleted under a running process lingers until it exits.
        for (_, child, _) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace also deletes the veth ends inside it, and with them their peers.
        for name in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        // Only a pair that never left the root namespace is still here; the rest are gone.
        for link in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run ip {args:?}: {error}"));
    assert!(
        output.status.success(),
        "ip {args:?} failed: {}",
        stderr(&output)
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}
