//! cclink-ie.log and the CC-Link IE TSN extras (reference §3.15–§3.16).
//!
//! - cclink-ie.log: CC-Link IE Field and Control frames (EtherType 0x890F, also VLAN-tagged).
//!   Byte 0 is the frame type; "field-family" frames carry the protocol (0 Control, 1 Field)
//!   in byte 8, "control" frames are always Control.
//! - cclink-ie-tsn.log: CC-Link IE TSN frames on the same EtherType (types 0xc0..0xc5) and the
//!   test-data frames of TSN stations (protocol bytes 2 and 3).
//! - cclink-ie-tsn-ptp.log: PTP (EtherType 0x88F7) messages, the TSN time synchronisation.
//! - cclink-ie-tsn-slmp.log: SLMP network management over 45238-45239/udp.
//!
//! Which columns a frame fills depends on its type and protocol exactly as the reference
//! documents; unknown codes are written as the reference does (a name plus the raw byte).

use super::ot::{write_mac, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::flow::uid::UID_TEXT_MAX;
use crate::flow::{PacketView, Uid};
use crate::logs::zeek::{LogStyle, Row, Schema};
use std::net::IpAddr;

pub static IE_SCHEMA: Schema = Schema {
    path: "cclink-ie",
    fields: &[
        ("ts", "time"),
        ("src_mac", "string"),
        ("dst_mac", "string"),
        ("service", "string"),
        ("pdu_type", "string"),
        ("cmd", "string"),
        ("node_type", "string"),
        ("node_id", "int"),
        ("connection_info", "string"),
        ("src_node_number", "string"),
        ("number", "int"),
        ("ts_end", "time"),
    ],
    style: LogStyle::Zeek,
};

pub static TSN_SCHEMA: Schema = Schema {
    path: "cclink-ie-tsn",
    fields: &[
        ("ts", "time"),
        ("src_mac", "string"),
        ("dst_mac", "string"),
        ("service", "string"),
        ("flame_type", "string"),
        ("pdu_type", "string"),
        ("node_type", "string"),
        ("device_type", "string"),
        ("function_name", "string"),
        ("number", "int"),
        ("ts_end", "time"),
    ],
    style: LogStyle::Zeek,
};

pub static PTP_SCHEMA: Schema = Schema {
    path: "cclink-ie-tsn-ptp",
    fields: &[
        ("ts", "time"),
        ("src_mac", "string"),
        ("dst_mac", "string"),
        ("service", "string"),
        ("flame_type", "string"),
        ("pdu_type", "string"),
        ("number", "int"),
        ("ts_end", "time"),
    ],
    style: LogStyle::Zeek,
};

pub static SLMP_SCHEMA: Schema = Schema {
    path: "cclink-ie-tsn-slmp",
    fields: &[
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("service", "string"),
        ("flame_type", "string"),
        ("pdu_type", "string"),
        ("cmd", "string"),
        ("number", "int"),
        ("ts_end", "time"),
    ],
    style: LogStyle::Zeek,
};

const TSN: &str = "cclink_ie_tsn";

// -- cclink-ie.log --

/// The protocol a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Control,
    Field,
    /// A field-family frame with an unknown protocol byte.
    Unknown(u8),
}

/// Node type byte, with the table of the frame's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeType {
    Control(u8),
    Field(u8),
}

impl NodeType {
    fn text(self) -> Vec<u8> {
        let known = match self {
            NodeType::Control(0x00) => Some("management node"),
            NodeType::Control(0x02) => Some("normal node"),
            NodeType::Control(0x21) => Some("master node in the Node-to-node test"),
            NodeType::Field(0x30) => Some("master node"),
            NodeType::Field(0x32) => Some("local node"),
            NodeType::Field(0x33) => Some("intelligent device node"),
            NodeType::Field(0x34) => Some("remote device node"),
            NodeType::Field(0x35) => Some("remote I/O node"),
            _ => None,
        };
        match (known, self) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, NodeType::Control(b) | NodeType::Field(b)) => {
                [b"unknownNodetype".as_slice(), &[b]].concat()
            }
        }
    }
}

/// The command of a transient frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmd {
    Named(&'static str),
    /// A named command with its request/response suffix.
    WithSuffix(&'static str, &'static str),
    UnknownCt(u8),
    UnknownCmd(u8, u8),
}

impl Cmd {
    fn text(self) -> Vec<u8> {
        match self {
            Cmd::Named(s) => s.as_bytes().to_vec(),
            Cmd::WithSuffix(a, b) => [a.as_bytes(), b.as_bytes()].concat(),
            Cmd::UnknownCt(b) => [b"unknownCt".as_slice(), &[b]].concat(),
            Cmd::UnknownCmd(c, s) => [b"unknownCmd".as_slice(), &[c, s]].concat(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IeKey {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub service: Service,
    pub frame_type: u8,
    pub cmd: Option<Cmd>,
    pub node_type: Option<NodeType>,
    pub node_id: Option<u16>,
    pub connection_info: Option<u8>,
    pub src_node_number: Option<u16>,
}

/// Header layout of a frame type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Field-family header with node id at [2-3] (token, setup, measure, cyclic data...).
    NodeId,
    /// Persuasion and test data: node type at [5].
    NodeType,
    /// setupAck, timer: nothing but the source node number.
    Reserved,
    /// myStatus: node id and node type.
    Status,
    /// Transient frames: node id and connection info at [4].
    Transient,
    /// Control-family header ("C"): source node number only.
    Control,
    /// TSN frames, for cclink-ie-tsn.log.
    Tsn,
}

fn frame_type(t: u8) -> Option<(&'static str, Layout)> {
    use Layout::*;
    Some(match t {
        0x10 => ("persuasion", NodeType),
        0x11 => ("testData", NodeType),
        0x12 => ("testDataAck", NodeType),
        0x13 => ("setup", NodeId),
        0x14 => ("setupAck", Reserved),
        0x15 => ("tokenM", NodeId),
        0x1c => ("timer", Reserved),
        0x20 => ("myStatus", Status),
        0x22 => ("transient1", Transient),
        0x23 => ("transientAck", Transient),
        0x25 => ("transient2", Transient),
        0x26 => ("ipTransient", Transient),
        0x28 => ("paramCheck", Transient),
        0x29 => ("parameter", Transient),
        0x40 => ("measure", NodeId),
        0x41 => ("measureAck", NodeId),
        0x42 => ("offset", NodeId),
        0x43 => ("update", NodeId),
        0x82 => ("cyclicDataRWw", NodeId),
        0x83 => ("cyclicDataRY", NodeId),
        0x84 => ("cyclicDataRWr", NodeId),
        0x85 => ("cyclicDataRX", NodeId),
        0x00 => ("connect", Control),
        0x01 => ("connectAck", Control),
        0x02 => ("scan", Control),
        0x03 => ("collect", Control),
        0x04 => ("select", Control),
        0x05 => ("launch", Control),
        0x06 => ("token", Control),
        0x24 => ("dummy", Control),
        0x2f => ("nTNTest", Control),
        0x80 => ("cyclicDataW", Control),
        0x81 => ("cyclicDataB", Control),
        0x8c => ("cyclicDataOut1", Control),
        0x8d => ("cyclicDataOut2", Control),
        0x8e => ("cyclicDataIn1", Control),
        0x8f => ("cyclicDataIn2", Control),
        0xc0..=0xc5 => ("", Tsn),
        _ => return None,
    })
}

/// The header both families share: frame type to HEC.
const HEADER: usize = 14;

/// What one 0x890F frame is logged as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IeFrame {
    Ie(IeKey),
    Tsn(TsnKey),
}

/// transient1's command (Field only): by data type, a ct byte at [52] or command and
/// sub-command at [30-31]. `None` for other data types.
fn transient1_cmd(p: &[u8]) -> Result<Option<Cmd>, Malformed> {
    match p[1] {
        0x05 => {
            let ct = *p.get(52).ok_or(Malformed)?;
            Ok(Some(match ct {
                0x30 => Cmd::Named("slmpTransmitRequest"),
                0xb0 => Cmd::Named("slmpTransmitResponse"),
                b => Cmd::UnknownCt(b),
            }))
        }
        dt @ (0x07 | 0x08) => {
            let (c, s) = (*p.get(30).ok_or(Malformed)?, *p.get(31).ok_or(Malformed)?);
            let name = match (dt, c) {
                (0x07, 0x01) => Some("deliverNodeInformation"),
                (0x07, 0x03) => Some("getStatisticalInformation"),
                (0x07, 0x04) => Some("acquiresDetailedNodeInformation"),
                (0x07, 0x0a) => Some("acquiresOptionalInformation"),
                (0x08, 0x01) => Some("communicationCycleSetting"),
                (0x08, 0x02) => Some("objectRead"),
                (0x08, 0x03) => Some("objectWrite"),
                _ => None,
            };
            let suffix = match s {
                0x00 => Some("Request"),
                0x80 => Some("Response"),
                _ => None,
            };
            Ok(Some(match (name, suffix) {
                (Some(n), Some(sfx)) => Cmd::WithSuffix(n, sfx),
                _ => Cmd::UnknownCmd(c, s),
            }))
        }
        _ => Ok(None),
    }
}

/// transient2's command: the ct byte at [36].
fn transient2_cmd(p: &[u8], field: bool) -> Result<Cmd, Malformed> {
    let ct = *p.get(36).ok_or(Malformed)?;
    Ok(match ct {
        0x04 => Cmd::Named("getMemoryAccessInfo"),
        0x08 => Cmd::Named("run"),
        0x09 => Cmd::Named("stop"),
        0x10 => Cmd::Named("readMemory"),
        0x12 => Cmd::Named("writeMemory"),
        0x20 if field => Cmd::Named("messageTransfer"),
        b => Cmd::UnknownCt(b),
    })
}

/// One frame of EtherType 0x890F (the bytes after the EtherType).
pub fn parse_frame(src: [u8; 6], dst: [u8; 6], p: &[u8]) -> Parsed<IeFrame> {
    let &t = p.first().ok_or(Malformed)?;
    let Some((_, layout)) = frame_type(t) else {
        return Ok(None);
    };
    if layout == Layout::Tsn {
        return parse_tsn(src, dst, p).map(|k| k.map(IeFrame::Tsn));
    }
    if p.len() < HEADER {
        return Err(Malformed);
    }
    let be = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let mut k = IeKey {
        src_mac: src,
        dst_mac: dst,
        service: Service::Control,
        frame_type: t,
        cmd: None,
        node_type: None,
        node_id: None,
        connection_info: None,
        src_node_number: Some(be(6)),
    };
    if layout == Layout::Control {
        return Ok(Some(IeFrame::Ie(k)));
    }
    let field = match p[8] {
        0x00 => false,
        0x01 => true,
        v @ (0x02 | 0x03) if matches!(t, 0x11 | 0x12) => {
            return Ok(Some(IeFrame::Tsn(TsnKey {
                src_mac: src,
                dst_mac: dst,
                service: if v == 0x02 {
                    TSN
                } else {
                    "cclink_ie_tsn&field"
                },
                cyclic: false,
                pdu: if t == 0x11 {
                    TsnPdu::Named("acyclicTestData")
                } else {
                    TsnPdu::Named("acyclicTestDataAck")
                },
                node_type: Some(TsnNode::TestMaster),
                device_type: None,
                function: None,
            })));
        }
        v => {
            k.service = Service::Unknown(v);
            k.src_node_number = None;
            return Ok(Some(IeFrame::Ie(k)));
        }
    };
    if field {
        k.service = Service::Field;
    }
    let node_id = Some(be(2));
    match layout {
        Layout::NodeId => {
            // Control's measure/offset/update/cyclic-data frames only identify the sender.
            if field || matches!(t, 0x13 | 0x15) {
                k.node_id = node_id;
            }
        }
        Layout::NodeType => {
            k.node_type = Some(if field {
                NodeType::Field(p[5])
            } else {
                NodeType::Control(p[5])
            });
        }
        Layout::Reserved => {}
        Layout::Status => {
            k.node_id = node_id;
            if field {
                k.node_type = Some(NodeType::Field(p[5]));
            }
        }
        Layout::Transient => {
            let full = field || matches!(t, 0x22 | 0x25);
            if full {
                k.node_id = node_id;
                k.connection_info = Some(p[4]);
            }
            if t == 0x22 && field {
                k.cmd = transient1_cmd(p)?;
            }
            if t == 0x25 {
                k.cmd = Some(transient2_cmd(p, field)?);
            }
        }
        Layout::Control | Layout::Tsn => {}
    }
    Ok(Some(IeFrame::Ie(k)))
}

impl OtKey for IeKey {
    fn schema() -> &'static Schema {
        &IE_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        write_mac(row, Some(self.src_mac));
        write_mac(row, Some(self.dst_mac));
        match self.service {
            Service::Control => row.string(b"cclink_ie_control"),
            Service::Field => row.string(b"cclink_ie_field"),
            Service::Unknown(b) => {
                row.string(&[b"unknownserviceVerType".as_slice(), &[b]].concat())
            }
        }
        row.string(frame_type(self.frame_type).map_or("", |f| f.0).as_bytes());
        match self.cmd {
            Some(c) => row.string(&c.text()),
            None => row.unset(),
        }
        match self.node_type {
            Some(n) => row.string(&n.text()),
            None => row.unset(),
        }
        row.count_opt(self.node_id.map(u64::from));
        match self.connection_info {
            Some(c) => row.string(format!("0x{c:02x}").as_bytes()),
            None => row.unset(),
        }
        match self.src_node_number {
            Some(n) => row.string(format!("0x{n:04x}").as_bytes()),
            None => row.unset(),
        }
        row.count(agg.count);
        row.time(agg.last);
    }
}

// -- cclink-ie-tsn.log --

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsnPdu {
    Named(&'static str),
    Detection(u8),
    DetectionAck(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsnNode {
    /// The sender of a TSN test-data frame.
    TestMaster,
    Station(u8),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TsnKey {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub service: &'static str,
    /// `cyclic` or `acyclic`.
    pub cyclic: bool,
    pub pdu: TsnPdu,
    pub node_type: Option<TsnNode>,
    pub device_type: Option<u16>,
    /// The two function bitmap bytes of a detection acknowledgement.
    pub function: Option<[u8; 2]>,
}

const DEVICE_TYPE: usize = 128;
const FUNCTIONS_1: usize = 174;
const FUNCTIONS_2: usize = 182;

fn parse_tsn(src: [u8; 6], dst: [u8; 6], p: &[u8]) -> Parsed<TsnKey> {
    let mut k = TsnKey {
        src_mac: src,
        dst_mac: dst,
        service: TSN,
        cyclic: false,
        pdu: TsnPdu::Named(""),
        node_type: None,
        device_type: None,
        function: None,
    };
    let version = |b: u8| if b <= 1 { Ok(b) } else { Err(Malformed) };
    match p[0] {
        0xc0 => k.pdu = TsnPdu::Named("acyclicPriority"),
        0xc3 => k.pdu = TsnPdu::Named("acyclicData"),
        0xc4 => {
            k.cyclic = true;
            k.pdu = TsnPdu::Named("cyclicM/cyclicMs");
        }
        0xc5 => {
            k.cyclic = true;
            k.pdu = TsnPdu::Named("cyclicS/cyclicSs");
        }
        0xc1 => k.pdu = TsnPdu::Detection(version(*p.get(4).ok_or(Malformed)?)?),
        0xc2 => {
            if p.len() <= FUNCTIONS_2 {
                return Err(Malformed);
            }
            k.pdu = TsnPdu::DetectionAck(version(p[3])?);
            k.node_type = Some(TsnNode::Station(p[2]));
            k.device_type = Some(u16::from_be_bytes([p[DEVICE_TYPE], p[DEVICE_TYPE + 1]]));
            k.function = Some([p[FUNCTIONS_1], p[FUNCTIONS_2]]);
        }
        _ => return Ok(None),
    }
    Ok(Some(k))
}

fn station_type(b: u8) -> Option<&'static str> {
    Some(match b & 0x7f {
        0x00 => "master station",
        0x01 => "slave station",
        0x02 => "managed switch",
        0x03 => "use prohibited",
        0x04 => "sub-master station",
        _ => return None,
    })
}

fn device_type(d: u16) -> Option<&'static str> {
    Some(match d {
        0x0000 => "not applicable",
        0x0001 => "PLC",
        0x0002 => "personal computer",
        0x0003 => "digital I/O",
        0x0004 => "analog I/O",
        0x0005 => "positioning controller",
        0x0006 => "temperature controller",
        0x0007 => "HMI",
        0x0008 => "ID",
        0x0009 => "serial conversion module",
        0x001d => "cc-link to cc-link/LT bridge",
        0x001f => "service converter module",
        0x0020 => "inverter",
        0x0021 => "servo",
        0x0022 => "CNC",
        0x0023 => "robot",
        0x0024 => "power distribution control device",
        0x0030 => "sensor",
        0x0031 => "actuator",
        0x0032 => "barcode reader",
        0x0033 => "indicator (weight)",
        0x0034 => "high-speed counter",
        0x0035 => "switch",
        0x0036 => "service analyzer",
        0x0037 => "space transmission module",
        0x0038 => "transport control module",
        0x0039 => "power supply control module",
        0x003b => "gas detectorr",
        0x003c => "solenoid valve",
        0x003d => "robot (general-purpose)",
        0x003e => "printer control module",
        0x003f => "motor control module",
        0x0040 => "vacuum pump",
        0x0041 => "multi-axis controller",
        0x0042 => "general-purpose VME board",
        0x0043 => "mass flow power supply module",
        0x0044 => "mass flow controller",
        0x0045 => "received power distribution device",
        0x0046 => "control center",
        0x0047 => "welding control module",
        0x0048 => "indicator (general-purpose)",
        0x0049 => "PID control module",
        0x004a => "vacuum meter",
        0x004b => "wireless module",
        0x004c => "digital/analog I/O",
        0x004d => "vacuum valve",
        0x004e => "tension controller",
        0x004f => "measuring machiner",
        0x007f => "generic Device",
        _ => return None,
    })
}

/// Function letters of a detection acknowledgement, most significant bit first.
fn function_name(f: [u8; 2]) -> Vec<u8> {
    const FIRST: [(u8, u8); 7] = [
        (0x40, b's'),
        (0x20, b'r'),
        (0x10, b'S'),
        (0x08, b'b'),
        (0x04, b'w'),
        (0x02, b'c'),
        (0x01, b'l'),
    ];
    const SECOND: [(u8, u8); 8] = [
        (0x80, b'v'),
        (0x40, b't'),
        (0x20, b'p'),
        (0x10, b'd'),
        (0x08, b'i'),
        (0x04, b'I'),
        (0x02, b'm'),
        (0x01, b'R'),
    ];
    let mut out = Vec::new();
    out.extend(FIRST.iter().filter(|(bit, _)| f[0] & bit != 0).map(|p| p.1));
    out.extend(
        SECOND
            .iter()
            .filter(|(bit, _)| f[1] & bit != 0)
            .map(|p| p.1),
    );
    out
}

impl OtKey for TsnKey {
    fn schema() -> &'static Schema {
        &TSN_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        write_mac(row, Some(self.src_mac));
        write_mac(row, Some(self.dst_mac));
        row.string(self.service.as_bytes());
        row.string(if self.cyclic { b"cyclic" } else { b"acyclic" });
        match self.pdu {
            TsnPdu::Named(s) => row.string(s.as_bytes()),
            TsnPdu::Detection(v) => row.string(format!("acyclicDetection Ver.{v}").as_bytes()),
            TsnPdu::DetectionAck(v) => {
                row.string(format!("acyclicDetectionAck Ver.{v}").as_bytes())
            }
        }
        match self.node_type {
            Some(TsnNode::TestMaster) => row.string(b"master station"),
            Some(TsnNode::Station(b)) => row.string_opt(station_type(b).map(str::as_bytes)),
            None => row.unset(),
        }
        row.string_opt(self.device_type.and_then(device_type).map(str::as_bytes));
        match self.function {
            Some(f) => row.string(&function_name(f)),
            None => row.unset(),
        }
        row.count(agg.count);
        row.time(agg.last);
    }
}

// -- cclink-ie-tsn-ptp.log --

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PtpKey {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub pdu: &'static str,
}

/// One PTP message over Ethernet (the bytes after the EtherType).
pub fn parse_ptp(src: [u8; 6], dst: [u8; 6], p: &[u8]) -> Parsed<PtpKey> {
    let b = *p.first().ok_or(Malformed)?;
    let pdu = match b & 0x0f {
        0x0 => "ptpSync",
        // Delay request/response are not in the reference's code but are in its example log,
        // spelled as here.
        0x1 => "ptpdelayReq",
        0x2 => "ptpPdelayReq",
        0x3 => "ptpPdelayResp",
        0x8 => "ptpFollowUp",
        0x9 => "ptpdelayResp",
        0xa => "ptpPdelayRespFollowUp",
        0xb => "ptpAnnounce",
        _ => return Ok(None),
    };
    Ok(Some(PtpKey {
        src_mac: src,
        dst_mac: dst,
        pdu,
    }))
}

impl OtKey for PtpKey {
    fn schema() -> &'static Schema {
        &PTP_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        write_mac(row, Some(self.src_mac));
        write_mac(row, Some(self.dst_mac));
        row.string(TSN.as_bytes());
        row.string(b"ptp");
        row.string(self.pdu.as_bytes());
        row.count(agg.count);
        row.time(agg.last);
    }
}

// -- cclink-ie-tsn-slmp.log --

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlmpKey {
    pub uid: Uid,
    pub orig: (IpAddr, u16),
    pub resp: (IpAddr, u16),
    pub pdu: &'static str,
    pub cmd: &'static str,
}

const SLMP_REQUEST: u16 = 0x6800;
const SLMP_RESPONSE: u16 = 0xe800;
const SLMP_COMMAND: usize = 18;

/// (pdu_type, request cmd, response cmd) of an SLMP command and sub-command.
fn slmp_command(
    cmd: [u8; 2],
    sub: [u8; 2],
) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    Some(match (cmd, sub) {
        ([0x90, 0x0e], [0, 0]) => (
            "slmp-networkConfigMain",
            "ReqNetworkConfigMain",
            Some("ResNetworkConfigMain"),
        ),
        ([0x90, 0x0e], [1, 0]) => (
            "slmp-networkConfigTslt",
            "ReqNetworkConfigTslt",
            Some("ResNetworkConfigTslt"),
        ),
        ([0x94, 0x0e], [0, 0]) => (
            "slmp-notification",
            "ReqNotification",
            Some("ResNotification"),
        ),
        ([0x91, 0x0e], [0, 0]) => (
            "slmp-masterConfig",
            "ReqMasterConfig",
            Some("ResMasterConfig"),
        ),
        ([0x92, 0x0e], [0, 0]) => ("slmp-slaveConfig", "ReqSlaveConfig", Some("ResSlaveConfig")),
        ([0x93, 0x0e], [0, 0]) => ("slmp-cyclicConfigMain", "ReqCyclicConfigMain", None),
        ([0x93, 0x0e], [1, 0]) => (
            "slmp-cyclicConfigTrnSubPayload",
            "ReqCyclicConfigTrnSubPayload",
            None,
        ),
        ([0x93, 0x0e], [2, 0]) => (
            "slmp-cyclicConfigRcvSubPayload",
            "ReqCyclicConfigRcvSubPayload",
            None,
        ),
        ([0x93, 0x0e], [3, 0]) => (
            "slmp-cyclicConfigRcvSrcInfo",
            "ReqCyclicConfigRcvSrcInfo",
            None,
        ),
        _ => return None,
    })
}

/// The command of an SLMP frame: (pdu_type, cmd), `None` for commands the log does not name.
pub fn parse_slmp_payload(p: &[u8]) -> Result<Option<(&'static str, &'static str)>, Malformed> {
    let kind = super::ot::be16(p, 0).ok_or(Malformed)?;
    if kind != SLMP_REQUEST && kind != SLMP_RESPONSE {
        return Ok(None);
    }
    let c = p.get(SLMP_COMMAND..SLMP_COMMAND + 4).ok_or(Malformed)?;
    let Some((pdu, req, res)) = slmp_command([c[0], c[1]], [c[2], c[3]]) else {
        return Ok(None);
    };
    Ok(if kind == SLMP_REQUEST {
        Some((pdu, req))
    } else {
        res.map(|r| (pdu, r))
    })
}

pub fn parse_slmp(v: &PacketView<'_, '_>, p: &[u8]) -> Parsed<SlmpKey> {
    Ok(parse_slmp_payload(p)?.map(|(pdu, cmd)| SlmpKey {
        uid: v.uid,
        orig: v.orig,
        resp: v.resp,
        pdu,
        cmd,
    }))
}

impl OtKey for SlmpKey {
    fn schema() -> &'static Schema {
        &SLMP_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        let mut uid = [0u8; UID_TEXT_MAX];
        let n = self.uid.render_ascii(b'C', &mut uid);
        row.string(&uid[..n]);
        row.addr(self.orig.0);
        row.port(self.orig.1);
        row.addr(self.resp.0);
        row.port(self.resp.1);
        row.string(TSN.as_bytes());
        row.string(b"ip");
        row.string(self.pdu.as_bytes());
        row.string(self.cmd.as_bytes());
        row.count(agg.count);
        row.time(agg.last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [u8; 6] = [0, 0x11, 0x11, 0x11, 0x11, 0x11];
    const D: [u8; 6] = [0, 0, 0, 0, 0, 1];

    fn ie(p: &[u8]) -> IeKey {
        match parse_frame(S, D, p) {
            Ok(Some(IeFrame::Ie(k))) => k,
            other => panic!("{other:?}"),
        }
    }

    fn frame(t: u8, data_type: u8, proto: u8) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = t;
        p[1] = data_type;
        p[2..4].copy_from_slice(&7u16.to_be_bytes());
        p[4] = 0x13;
        p[5] = 0x30;
        p[6..8].copy_from_slice(&1u16.to_be_bytes());
        p[8] = proto;
        p
    }

    #[test]
    fn field_and_control_columns() {
        let k = ie(&frame(0x42, 0, 1));
        assert_eq!(
            (k.service, k.node_id, k.src_node_number),
            (Service::Field, Some(7), Some(1))
        );
        let k = ie(&frame(0x42, 0, 0));
        assert_eq!((k.service, k.node_id), (Service::Control, None));
        let k = ie(&frame(0x1c, 0, 1));
        assert_eq!((k.node_id, k.connection_info), (None, None));
        let k = ie(&frame(0x20, 0, 1));
        assert_eq!(
            (k.node_id, k.node_type),
            (Some(7), Some(NodeType::Field(0x30)))
        );
        assert_eq!(k.node_type.unwrap().text(), b"master node");
        let k = ie(&frame(0x10, 0, 0));
        assert_eq!(k.node_type.unwrap().text(), b"unknownNodetype\x30");
        let k = ie(&frame(0x22, 0x05, 1));
        assert_eq!(
            (k.connection_info, k.cmd),
            (Some(0x13), Some(Cmd::UnknownCt(0)))
        );
        let mut p = frame(0x22, 0x08, 1);
        p[30] = 0x02;
        p[31] = 0x80;
        assert_eq!(ie(&p).cmd.unwrap().text(), b"objectReadResponse");
        let mut p = frame(0x25, 0, 1);
        p[36] = 0x20;
        assert_eq!(ie(&p).cmd.unwrap().text(), b"messageTransfer");
        let mut p = frame(0x25, 0, 0);
        p[36] = 0x20;
        assert_eq!(ie(&p).cmd.unwrap().text(), b"unknownCt\x20");
        let k = ie(&frame(0x26, 0, 0));
        assert_eq!(
            (k.node_id, k.connection_info, k.src_node_number),
            (None, None, Some(1))
        );
        let k = ie(&frame(0x04, 0, 9));
        assert_eq!((k.service, k.src_node_number), (Service::Control, Some(1)));
        let k = ie(&frame(0x15, 0, 7));
        assert_eq!(
            (k.service, k.node_id, k.src_node_number),
            (Service::Unknown(7), None, None)
        );
    }

    #[test]
    fn tsn_frames() {
        let mut p = vec![0u8; 200];
        p[0] = 0xc2;
        p[2] = 0x01;
        p[3] = 0x01;
        p[DEVICE_TYPE + 1] = 0x03;
        p[FUNCTIONS_1] = 0x66;
        p[FUNCTIONS_2] = 0xbd;
        let Ok(Some(IeFrame::Tsn(k))) = parse_frame(S, D, &p) else {
            panic!()
        };
        assert_eq!(k.pdu, TsnPdu::DetectionAck(1));
        assert_eq!(function_name(k.function.unwrap()), b"srwcvpdiIR");
        assert_eq!(device_type(k.device_type.unwrap()), Some("digital I/O"));
        assert_eq!(station_type(0x81), Some("slave station"));
        assert_eq!(parse_frame(S, D, &p[..182]), Err(Malformed));
        let Ok(Some(IeFrame::Tsn(k))) = parse_frame(S, D, &frame(0x12, 0, 3)) else {
            panic!()
        };
        assert_eq!(
            (k.service, k.pdu),
            ("cclink_ie_tsn&field", TsnPdu::Named("acyclicTestDataAck"))
        );
        assert_eq!(parse_frame(S, D, &[0xc1, 0, 0, 0, 2]), Err(Malformed));
        assert_eq!(parse_frame(S, D, &[0xc1, 0, 0]), Err(Malformed));
    }

    #[test]
    fn short_frames_and_unknown_types() {
        assert_eq!(parse_frame(S, D, &[]), Err(Malformed));
        for n in 1..HEADER {
            assert_eq!(parse_frame(S, D, &frame(0x42, 0, 1)[..n]), Err(Malformed));
        }
        assert_eq!(
            parse_frame(S, D, &frame(0x22, 0x05, 1)[..40]),
            Err(Malformed)
        );
        assert_eq!(parse_frame(S, D, &frame(0x7e, 0, 1)), Ok(None));
        assert_eq!(parse_ptp(S, D, &[]), Err(Malformed));
        assert_eq!(
            parse_ptp(S, D, &[0x1b]).unwrap().unwrap().pdu,
            "ptpAnnounce"
        );
        assert_eq!(parse_ptp(S, D, &[0x0c]), Ok(None));
    }

    #[test]
    fn slmp_commands() {
        let mut p = vec![0u8; 30];
        p[0] = 0x68;
        p[18..22].copy_from_slice(&[0x93, 0x0e, 0x03, 0]);
        assert_eq!(
            parse_slmp_payload(&p),
            Ok(Some((
                "slmp-cyclicConfigRcvSrcInfo",
                "ReqCyclicConfigRcvSrcInfo"
            )))
        );
        p[0] = 0xe8;
        assert_eq!(parse_slmp_payload(&p), Ok(None));
        p[18..22].copy_from_slice(&[0x94, 0x0e, 0, 0]);
        assert_eq!(
            parse_slmp_payload(&p),
            Ok(Some(("slmp-notification", "ResNotification")))
        );
        assert_eq!(parse_slmp_payload(&p[..20]), Err(Malformed));
        assert_eq!(parse_slmp_payload(&[0x68]), Err(Malformed));
    }
}
