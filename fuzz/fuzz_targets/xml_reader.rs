//! Nmap XML reader on arbitrary bytes: must never panic. A document that parses is written
//! back with `XmlWriter` and the output must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_model::sink::{OutputOptions, Sink};
use portolan_report::xml::XmlWriter;
use portolan_report::xml_reader::read_xml;

fuzz_target!(|data: &[u8]| {
    let Ok(run) = read_xml(data) else { return };

    let mut w = XmlWriter::new(Vec::<u8>::new(), OutputOptions::default());
    w.begin(&run).expect("XmlWriter::begin into a Vec");
    for host in &run.hosts {
        w.host(&run, host).expect("XmlWriter::host into a Vec");
    }
    w.end(&run).expect("XmlWriter::end into a Vec");
    let out = w.into_inner();

    if let Err(e) = read_xml(out.as_slice()) {
        panic!(
            "re-reading our own XML output failed: {e}\n--- output ---\n{}",
            String::from_utf8_lossy(&out)
        );
    }
});
