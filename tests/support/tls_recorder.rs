//! An external TLS server for egress tests, written with Python's `ssl` module so it shares no
//! code with the gateway: it requires a client certificate from its CA, and answers each HTTP
//! request with what it saw (its name, the TLS version, the SNI, the client certificate's
//! SANs, one request header). Every handshake it refuses and every request is also logged, so
//! a test can tell a refused origination from plaintext sent where TLS was due.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SCRIPT: &str = r#"
import http.server, ssl, sys
ip, cert, key, ca, name = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
seen = {}
def on_sni(sock, server_name, _ctx):
    seen['sni'] = server_name
ctx.sni_callback = on_sni
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        peer = self.connection.getpeercert() or {}
        sans = ','.join(f'{k}:{v}' for k, v in peer.get('subjectAltName', ()))
        body = (f"{name} {self.connection.version()} sni={seen.get('sni')} client={sans} "
                f"path={self.path} x-egress={self.headers.get('x-egress')}\n").encode()
        print('request', self.path, flush=True)
        self.send_response(200)
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def get_request(self):
        sock, addr = self.socket.accept()
        try:
            return ctx.wrap_socket(sock, server_side=True), addr
        except OSError as error:
            print('refused', getattr(error, 'reason', None) or error, flush=True)
            sock.close()
            raise
server = Server((ip, 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

pub struct TlsRecorder {
    pub address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _child: Child,
}

impl TlsRecorder {
    /// Listens on `ip` (a free port), presenting `cert`/`key` and trusting clients of `ca`.
    pub async fn start(name: &str, ip: &str, cert: &str, key: &str, ca: &str) -> TlsRecorder {
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT, ip, cert, key, ca, name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 must be installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port: u16 = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
            .await
            .expect("the TLS recorder prints its port")
            .unwrap()
            .expect("the TLS recorder exited")
            .parse()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        TlsRecorder {
            address: SocketAddr::new(ip.parse().unwrap(), port),
            log,
            _child: child,
        }
    }

    /// What it logged so far: `request <path>` and `refused <reason>` lines.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}
