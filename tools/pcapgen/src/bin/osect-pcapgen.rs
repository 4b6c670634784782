//! `osect-pcapgen`: writes the deterministic sample and benchmark captures.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use osect_pcapgen::bench::{write_bench, BenchOpts};
use osect_pcapgen::handshakes::write_handshakes;
use osect_pcapgen::ot::write_ot;
use osect_pcapgen::other_ip::write_other_ip;
use osect_pcapgen::sample::write_sample;

#[derive(Parser)]
#[command(
    name = "osect-pcapgen",
    version,
    about = "Deterministic pcap generator for osect-sensor tests and benchmarks",
    long_about = "Writes classic pcap files (Ethernet, microsecond timestamps, valid IP/TCP/UDP/ICMP \
checksums). Output depends only on the arguments: the same command always writes the same bytes.\n\n\
  osect-pcapgen sample --out samples/sample.pcap\n\
  osect-pcapgen bench --packets 1000000 --flows 100000 --out bench-out/bench-1m.pcap\n\
  osect-pcapgen bench --packets 2000000 --flows 1000000 --concurrent --out bench-out/concurrent-1m.pcap\n\
  osect-pcapgen ot ot.pcap"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The small OT sample capture (~3 min of packet time from 2024-06-01 00:00:30 UTC):
    /// Modbus/TCP polling session, HTTP, S7/ISO-TSAP, EtherNet/IP on VLAN 100, SNMP in QinQ,
    /// DNS, NTP, one-way cyclic UDP, ICMP echo and port-unreachable, a rejected and an
    /// unanswered SYN, ARP, and IPv6 (neighbour discovery, ICMPv6 echo, SSH over TCP).
    Sample {
        /// Output file.
        #[arg(long, default_value = "samples/sample.pcap")]
        out: PathBuf,
        /// Seed of the small timing jitter (the committed sample uses 1).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A synthetic capture with exactly N packets over exactly F flows (65% TCP with handshake,
    /// request/response data and FIN close when long enough; 35% UDP request/response;
    /// HTTP on 80 and DNS on 53 carry well-formed messages).
    Bench {
        /// Total packets (must be >= --flows).
        #[arg(long, default_value_t = 1_000_000)]
        packets: u64,
        /// Number of flows (distinct 5-tuples).
        #[arg(long, default_value_t = 100_000)]
        flows: u64,
        /// Open all flows first (the first packet of every flow), then send the rest round by
        /// round: the flow table holds all F flows at once.
        #[arg(long)]
        concurrent: bool,
        /// Average packet rate of the timestamps (packets per second of packet time).
        #[arg(long, default_value_t = 50_000)]
        pps: u64,
        /// Flows interleaved at any moment in the normal mode.
        #[arg(long, default_value_t = 1000)]
        active: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// The OT/discovery test capture: ARP, IPv6 neighbour discovery, DHCPv4 client requests
    /// and CC-Link IE Control frames (the protocols the public corpus has no capture of), with
    /// a few malformed messages.
    Ot {
        /// Output file.
        out: PathBuf,
    },
    /// TCP handshakes for passive OS fingerprinting (p0f-k.log): SYN / SYN+ACK of many
    /// systems' option layouts over IPv4 and IPv6, with every p0f quirk, retransmissions,
    /// late and unpaired answers.
    Handshakes {
        #[arg(long, default_value_t = 2000)]
        flows: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the frames that would be VLAN-tagged untagged (otherwise identical).
        #[arg(long)]
        no_vlan: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Flows of IP protocols other than TCP/UDP/ICMP (yaf_flow.log): OSPF, VRRP, ESP, PIM,
    /// IGMP, SCTP, GRE, EtherIP, UDP-Lite, IPv6 extension headers, idle and active timeouts.
    OtherIp {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

fn create(path: &PathBuf) -> std::io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok(BufWriter::with_capacity(1 << 20, File::create(path)?))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = Instant::now();
    let result = match cli.cmd {
        Cmd::Handshakes {
            flows,
            seed,
            no_vlan,
            out,
        } => create(&out)
            .and_then(|w| write_handshakes(w, flows, seed, !no_vlan))
            .map(|n| eprintln!("osect-pcapgen: wrote {} ({n} packets)", out.display())),
        Cmd::OtherIp { seed, out } => create(&out)
            .and_then(|w| write_other_ip(w, seed))
            .map(|n| eprintln!("osect-pcapgen: wrote {} ({n} packets)", out.display())),
        Cmd::Sample { out, seed } => create(&out).and_then(|w| write_sample(w, seed)).map(|n| {
            eprintln!("osect-pcapgen: wrote {} ({n} packets)", out.display());
        }),
        Cmd::Ot { out } => create(&out).and_then(write_ot).map(|n| {
            eprintln!("osect-pcapgen: wrote {} ({n} packets)", out.display());
        }),
        Cmd::Bench {
            packets,
            flows,
            concurrent,
            pps,
            active,
            seed,
            out,
        } => {
            let o = BenchOpts {
                packets,
                flows,
                concurrent,
                seed,
                pps,
                active,
            };
            create(&out).and_then(|w| write_bench(w, &o)).map(|st| {
                eprintln!(
                    "osect-pcapgen: wrote {} packets={} flows={} (tcp={} udp={}) frame_bytes={} span={:.1}s in {:.2}s",
                    out.display(),
                    st.packets,
                    st.flows,
                    st.tcp_flows,
                    st.udp_flows,
                    st.bytes,
                    (st.last_us - st.first_us) as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osect-pcapgen: {e}");
            ExitCode::FAILURE
        }
    }
}
