//! The namespace harness cleans up after itself: namespaces, links and processes are gone
//! after a test ends, and also after it panics halfway.

#![allow(clippy::unwrap_used)] // tests: a panic is how they report a failure

mod netns;

use std::path::Path;

use netns::Netns;

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    if let Some(reason) = netns::unavailable() {
        println!("SKIPPED netns_harness: {reason}");
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let prefix = Netns::new("hp", logs.path()).prefix().to_owned();
    let logs_path = logs.path().to_owned();
    let outcome = std::panic::catch_unwind(move || {
        let mut net = Netns::new("hp", &logs_path);
        let a = net.add_namespace("a");
        let b = net.add_namespace("b");
        let (if_a, if_b) = net.link(&a, "x", &b, "y");
        net.address(&a, &if_a, "10.30.0.1/24");
        net.address(&b, &if_b, "10.30.0.2/24");
        net.spawn(&b, "sleeper", Path::new("/bin/sleep"), &["600".to_owned()]);
        assert_eq!(Netns::leftovers(net.prefix()).len(), 2);
        let ping = net.run(
            &a,
            "timeout",
            &["3", "bash", "-c", "exec 3<>/dev/tcp/10.30.0.2/9"],
        );
        // Nothing listens there, but the refusal proves the link works.
        assert!(!ping.status.success());
        panic!("halfway through a test");
    });
    assert!(outcome.is_err(), "the closure panics by design");
    assert_eq!(Netns::leftovers(&prefix), Vec::<String>::new());
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&prefix), "links left behind: {links}");
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "^/bin/sleep 600$"])
        .output();
    if let Ok(output) = sleepers {
        assert!(
            output.stdout.is_empty(),
            "the background process outlived the test"
        );
    }
}
