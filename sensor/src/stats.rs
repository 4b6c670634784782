//! The sensor's counters: one struct of atomics, shared by every stage.
//!
//! Stages bump counters with relaxed ordering (they are statistics, not synchronisation);
//! `sensor.log` records a snapshot at every interval and the diagnostics command reads the last
//! one. Adding a counter means adding one line to the `counters!` list below.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Every counter the sensor keeps. All start at zero.
        #[derive(Debug, Default)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// A plain copy of [`Stats`] at one instant.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $( pub $name: u64, )*
        }

        impl Stats {
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl StatsSnapshot {
            /// `(name, value)` pairs in declaration order, for logs and diagnostics.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

counters! {
    /// Frames handed to the decoder.
    packets_read,
    /// Bytes of those frames as captured.
    bytes_read,
    /// Frames whose link type the decoder does not know.
    drop_unknown_linktype,
    /// Frames too short for a header they claim to carry, or with bogus header lengths.
    drop_malformed,
    /// Frames whose capture was cut (snaplen) before the transport header.
    drop_truncated,
    /// Non-IP frames (ARP, LLDP, CC-Link, ...) that no analyzer took.
    non_ip_frames,
    /// Packets with a bad TCP/UDP/ICMP checksum (when checksums are verified).
    bad_checksums,
    /// Encapsulations deeper than the tunnel depth limit.
    drop_tunnel_depth,
    /// IP fragments received.
    fragments_seen,
    /// Datagrams rebuilt from fragments.
    fragments_reassembled,
    /// Fragment sets given up: timed out, overlapping badly, too large, or evicted when full.
    fragments_dropped,
    /// Connections created.
    flows_created,
    /// Connections that ended by timeout, close or end of input.
    flows_expired,
    /// Connections pushed out of a full flow table before their time.
    flows_evicted,
    /// Interim conn.log rows for long-lived connections.
    flows_interim_rows,
    /// Records written to logs, all logs together.
    records_written,
    /// Records lost because the log stage was failing (disk full, I/O error).
    records_dropped,
    /// Packets the kernel / libpcap dropped (live capture).
    capture_dropped,
    /// Packets the interface dropped (live capture).
    capture_if_dropped,
    /// Intervals closed.
    intervals_closed,
    /// Minute bundles written to the spool.
    bundles_written,
    /// Bundle attempts that failed.
    bundle_errors,
    // -- spool, upload and retention --
    /// Bundle attempts that hit a full disk (ENOSPC); each is retried once after retention.
    bundle_disk_full,
    /// Of those, retries that then succeeded.
    bundle_retried_ok,
    /// Bundles delivered (HTTP 200).
    bundles_uploaded,
    /// Bytes of the bundles delivered.
    upload_bytes,
    /// Upload attempts that failed (connection, TLS, timeout, non-200 answer).
    upload_failures,
    /// Upload rounds postponed because the modem did not answer `OK`.
    upload_postponed_modem,
    /// Delivered bundles removed by retention (age or budget).
    retention_sent_deleted,
    /// Bundles never delivered that retention dropped to stay within the disk budget.
    retention_unsent_dropped,
    /// Bytes freed by retention.
    retention_bytes_freed,
    /// Connections left without application-layer analysis because the table of
    /// per-connection analyzer state was full.
    app_states_full,
    // -- dns --
    /// Connections whose service was recognised by content.
    services_detected,
    /// DNS messages read (UDP datagrams, TCP length-prefixed messages).
    dns_messages,
    /// DNS messages with something malformed: truncated, a name or length past the end, a
    /// compression pointer not pointing backwards, too many questions.
    dns_malformed,
    /// DNS messages of an opcode dns.log does not record (not query, notify or update).
    dns_unknown_opcodes,
    /// Times a connection had too many unanswered DNS transaction ids or messages per id:
    /// the waiting ones were written unpaired.
    dns_pending_overflows,
    /// DNS-over-TCP directions given up at a hole in the stream.
    dns_tcp_gaps,
    /// dns.log rows written.
    dns_rows,
    /// dns.log records folded into an identical row of the last 60 s (its `pkts`).
    dns_rows_merged,
    // -- http --
    /// http.log records written.
    http_records,
    /// HTTP oddities: malformed request/status lines, cut lines, too many headers, content
    /// gaps outside bodies, bodies that failed to decode.
    http_weirds,
    /// Connections where HTTP was attached but the bytes turned out not to be HTTP.
    http_violations,
    /// Bytes of HTTP streams never seen (content gaps).
    http_gap_bytes,
    /// Times an HTTP stream's out-of-order buffer was full and a hole was given up.
    http_reassembly_overflows,
    /// HTTP transactions written before their reply because too many were pending.
    http_pending_flushed,
    /// Records of any kind that an analyzer could not produce because of malformed input
    /// (each analyzer counts its own details too).
    analyzer_weirds,
    // -- OT and discovery logs --
    /// Aggregation windows (per-key tables of the OT, ARP/NS and DNS logs) that were full
    /// when a new key arrived; the oldest window was written early.
    window_evictions,
    /// Messages the OT and discovery analyzers decoded (ARP, NS/NA, DHCP, NBNS, browser,
    /// DHCPv6, SSDP, CC-Link IE/TSN/PTP/SLMP, CC-Link IE Field Basic).
    ot_messages,
    /// Of those protocols' messages, the malformed ones (short, bad lengths, truncated
    /// options): no row, also counted in `analyzer_weirds`.
    ot_malformed,
    // -- p0f and yaf --
    /// SYNs fingerprinted (p0f-k.log lines with mod `syn`).
    p0f_syn,
    /// SYN+ACKs fingerprinted (mod `syn+ack`).
    p0f_syn_ack,
    /// Fingerprints that matched no signature (`???`).
    p0f_unknown,
    /// SYN / SYN+ACK headers too inconsistent to fingerprint (also in `analyzer_weirds`).
    p0f_malformed,
    /// Open handshakes pushed out of the full handshake table.
    p0f_handshakes_evicted,
    /// yaf_flow.log flows started (IP protocols other than TCP, UDP, ICMP, ICMPv6).
    yaf_flows,
    /// yaf flows ended early because the yaf flow table was full (`end-reason` rsrc).
    yaf_flows_evicted,
    /// yaf flows of IP protocol 0 not written (the reference drops HOPOPT rows).
    yaf_hopopt_dropped,
    // -- detect --
    /// Rules that matched (before thresholds and noalert).
    detect_matches,
    /// Alerts written to eve.json.
    detect_alerts,
    /// Connections without detection state because its table was full.
    detect_flows_full,
    /// Flowbits not set because a connection already held the maximum.
    detect_flowbits_full,
    /// Threshold entries not tracked because the table was full.
    detect_threshold_full,
    /// Rule sets swapped in by a reload (SIGHUP).
    rules_reloaded,
    /// Reloads that failed (the running rules stayed).
    rules_reload_failed,
    /// Matching failed on a bug and detection was turned off (until a rule reload).
    detect_failures,
}

impl Stats {
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl StatsSnapshot {
    /// One line, `name=value` pairs separated by spaces: the format of `sensor.log` entries.
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        for (i, (k, v)) in self.pairs().into_iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(&v.to_string());
        }
        s
    }
}
