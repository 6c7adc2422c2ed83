//! One httpbin (PyPI, under gunicorn) per test binary, shared by its tests: starting it costs
//! about a second of CPU, which on CI's two cores is most of a conformance test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

struct Shared {
    address: SocketAddr,
    // Never dropped (it lives in a static): the shell's stdin stays open while the binary
    // runs and closes when it exits, which is what stops gunicorn (see `start`).
    _shell: Child,
}

/// The shared httpbin's address, started on first use.
pub fn address() -> SocketAddr {
    static HTTPBIN: OnceLock<Shared> = OnceLock::new();
    HTTPBIN.get_or_init(start).address
}

fn start() -> Shared {
    let check = Command::new("python3")
        .args(["-c", "import httpbin, gunicorn"])
        .stderr(Stdio::null())
        .status()
        .expect("python3 must be installed");
    assert!(
        check.success(),
        "httpbin and gunicorn are missing: python3 -m pip install httpbin gunicorn"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    // Statics are not dropped, so kill_on_drop cannot stop it: the shell waits for EOF on its
    // stdin (the test binary exiting, however it exits) and then stops gunicorn. It is never
    // waited for on purpose: it must outlive every test of the binary.
    #[allow(clippy::zombie_processes)]
    let shell = Command::new("sh")
        .args([
            "-c",
            "python3 -m gunicorn -b \"$0\" -w 1 httpbin:app >/dev/null 2>&1 & g=$!; read _; kill $g",
            &address.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if status_200(address) {
            return Shared {
                address,
                _shell: shell,
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("httpbin did not start on {address}");
}

fn status_200(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /status/200 HTTP/1.0\r\nHost: httpbin\r\n\r\n";
    let mut reply = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.0 200")
}
