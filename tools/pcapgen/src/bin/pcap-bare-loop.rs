//! `pcap-bare-loop FILE`: the benchmark ceiling. Reads every packet of FILE through libpcap
//! and touches one byte of each, i.e. what any libpcap-based reader pays before doing work.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file] = args.as_slice() else {
        eprintln!("usage: pcap-bare-loop FILE");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let mut cap = match pcap::Capture::from_file(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pcap-bare-loop: {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut packets, mut bytes, mut acc) = (0u64, 0u64, 0u64);
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                bytes += p.data.len() as u64;
                // Touch the first byte so the data is really fetched from the buffer.
                acc = acc.wrapping_add(u64::from(p.data.first().copied().unwrap_or(0)));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                eprintln!("pcap-bare-loop: {file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    black_box(acc);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "packets={packets} bytes={bytes} secs={secs:.6} pps={:.0}",
        packets as f64 / secs.max(1e-9)
    );
    ExitCode::SUCCESS
}
