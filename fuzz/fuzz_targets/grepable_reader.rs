//! Grepable (-oG) reader on arbitrary bytes: must never panic. A file that reads is written
//! back with `GrepableWriter` (at -v, so down hosts are written too) and must read again,
//! with the same hosts: address, state, and each up host's listed ports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_model::sink::{OutputOptions, Sink};
use portolan_model::{Host, HostState, PortState, Protocol, ScanRun};
use portolan_report::grepable_reader::read_grepable;
use portolan_report::GrepableWriter;

type Seen = Vec<(String, HostState, Vec<(Protocol, u16, PortState)>)>;

fn seen(run: &ScanRun) -> Seen {
    let ports = |h: &Host| {
        if h.status.state != HostState::Up {
            return Vec::new();
        }
        h.ports
            .iter()
            .map(|p| (p.protocol, p.portid, p.state))
            .collect()
    };
    run.hosts
        .iter()
        .map(|h| (h.addr_str().to_string(), h.status.state, ports(h)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(run) = read_grepable(data) else { return };

    let opts = OutputOptions {
        verbose: 1,
        ..OutputOptions::default()
    };
    let mut w = GrepableWriter::new(Vec::<u8>::new(), opts);
    w.begin(&run).expect("GrepableWriter::begin into a Vec");
    for host in &run.hosts {
        w.host(&run, host).expect("GrepableWriter::host into a Vec");
    }
    w.end(&run).expect("GrepableWriter::end into a Vec");
    let out = w.into_inner();

    match read_grepable(out.as_slice()) {
        Ok(again) => assert_eq!(
            seen(&again),
            seen(&run),
            "our own grepable output read back differently\n--- output ---\n{}",
            String::from_utf8_lossy(&out)
        ),
        Err(e) => panic!(
            "re-reading our own grepable output failed: {e}\n--- output ---\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
});
