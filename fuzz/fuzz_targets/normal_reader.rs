//! Normal-output (-oN) reader, and `read_log` (which tells -oN from -oG), on arbitrary
//! bytes: must never panic. A file that reads is written back with `NormalWriter` (at -v
//! with --reason) and must read again, with the same hosts and listed port states.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_model::sink::{OutputOptions, Sink};
use portolan_model::{HostState, PortState, Protocol, ScanRun};
use portolan_report::normal_reader::read_normal;
use portolan_report::read::read_log_from;
use portolan_report::NormalWriter;

type Seen = Vec<(String, Vec<(Protocol, u16, PortState)>)>;

/// Up hosts, and their listed ports (other hosts are written as a line at most).
fn seen(run: &ScanRun) -> Seen {
    run.hosts
        .iter()
        .filter(|h| h.status.state == HostState::Up)
        .map(|h| {
            let ports = h
                .ports
                .iter()
                .map(|p| (p.protocol, p.portid, p.state))
                .collect();
            (h.addr_str().to_string(), ports)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let _ = read_log_from(data);
    let Ok(run) = read_normal(data) else { return };

    let opts = OutputOptions {
        verbose: 1,
        reason: true,
        ..OutputOptions::default()
    };
    let mut w = NormalWriter::new(Vec::<u8>::new(), opts, true);
    w.begin(&run).expect("NormalWriter::begin into a Vec");
    for host in &run.hosts {
        w.host(&run, host).expect("NormalWriter::host into a Vec");
    }
    w.end(&run).expect("NormalWriter::end into a Vec");
    let out = w.into_inner();

    match read_normal(out.as_slice()) {
        Ok(again) => assert_eq!(
            seen(&again),
            seen(&run),
            "our own normal output read back differently\n--- output ---\n{}",
            String::from_utf8_lossy(&out)
        ),
        Err(e) => panic!(
            "re-reading our own normal output failed: {e}\n--- output ---\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
});
