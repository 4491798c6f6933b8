//! `portolan serve` driven from a test: started on a free loopback port, and asked for
//! pages over a plain socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// A running `portolan serve`, the address it listens on, and what it said on stderr up to
/// the line naming that address ("portolan serve: http://ADDR/ ...").
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub said: String,
}

/// Starts `portolan serve` with `args` (without `PORTOLAN_DB`) and waits for its address.
pub fn serve<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .arg("serve")
        .args(args)
        .env_remove("PORTOLAN_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_lines = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut said = String::new();
    while !line.contains("http://") {
        line.clear();
        if err_lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        said.push_str(&line);
    }
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {said:?}"))
        .to_string();
    Served { child, addr, said }
}

impl Served {
    /// The whole answer to `GET path`, with `headers` (each ending in CRLF) added.
    pub fn get(&self, path: &str, headers: &str) -> String {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Stops the server.
    pub fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}
