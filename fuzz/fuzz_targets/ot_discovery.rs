//! Fuzz target for the device-discovery parsers over UDP (DHCPv4, NBNS, CIFS browser, DHCPv6,
//! SSDP) and IPv6 neighbour discovery: `cargo +nightly fuzz run ot_discovery`.
//!
//! The whole input is one message, handed to every parser.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use osect_sensor::analyzers::{browser, dhcp, dhcpv6, nbns, ns, ssdp};

fuzz_target!(|data: &[u8]| {
    let v4 = IpAddr::from([10, 0, 0, 1]);
    let v6 = IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, 1]);
    let mac = Some([2, 0, 0, 0, 0, 1]);
    let _ = dhcp::parse(v4, data);
    let _ = nbns::parse(v4, mac, data);
    let _ = browser::parse(v4, mac, data);
    let _ = browser::looks_valid(data);
    let _ = dhcpv6::parse(v6, mac, data);
    let _ = dhcpv6::looks_valid(data);
    let _ = ssdp::parse(v4, mac, data, ssdp::Direction::ToPort);
    let _ = ssdp::parse(v4, mac, data, ssdp::Direction::FromPort);
    let _ = ssdp::looks_valid(data);
    for t in [ns::SOLICITATION, ns::ADVERTISEMENT] {
        let _ = ns::parse(t, (v6, mac), (v6, None), data);
    }
});
