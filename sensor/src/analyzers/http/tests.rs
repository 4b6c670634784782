//! HTTP analyzer tests on reassembled streams: the features http.log depends on, bad input
//! (endless headers, missing line ends, huge chunk sizes, garbage) and a mutation loop.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::parser::MAX_LINE;
use super::*;
use crate::analyzers::Record;
use crate::logs::zeek::{Row, Utf8Policy};

/// Runs one connection's streams through the analyzer; returns the http.log rows as cells.
fn run_with(an: &mut HttpAnalyzer, inputs: &[StreamInput<'_>]) -> (Vec<Vec<String>>, HttpConn) {
    let mut conn = HttpConn::default();
    let mut out: Vec<Record> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        an.stream(&mut conn, Ts(i as i64 * 1000), *input, &mut out);
    }
    an.stream(&mut conn, Ts(1 << 40), StreamInput::End, &mut out);
    let rows = out
        .iter()
        .map(|r| {
            let mut buf = Vec::new();
            let mut row = Row::new(&mut buf, Utf8Policy::PassValid);
            r.as_zeek().write_row(&mut row);
            row.finish();
            String::from_utf8_lossy(&buf)
                .trim_end_matches('\n')
                .split('\t')
                .map(str::to_string)
                .collect()
        })
        .collect();
    (rows, conn)
}

fn run(inputs: &[StreamInput<'_>]) -> Vec<Vec<String>> {
    let mut an = HttpAnalyzer::new(Arc::new(Stats::default()));
    run_with(&mut an, inputs).0
}

fn req(bytes: &[u8]) -> StreamInput<'_> {
    StreamInput::Data {
        is_orig: true,
        bytes,
    }
}

fn resp(bytes: &[u8]) -> StreamInput<'_> {
    StreamInput::Data {
        is_orig: false,
        bytes,
    }
}

fn col(name: &str) -> usize {
    record::HTTP_SCHEMA
        .fields
        .iter()
        .position(|(n, _)| *n == name)
        .unwrap()
}

/// The named columns of every row, sorted by trans_depth.
fn cols(rows: &[Vec<String>], names: &[&str]) -> Vec<Vec<String>> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r[col("trans_depth")].parse::<u64>().unwrap_or(0));
    rows.iter()
        .map(|r| names.iter().map(|n| r[col(n)].clone()).collect())
        .collect()
}

#[test]
fn schema_is_the_product_column_order() {
    let names: Vec<&str> = record::HTTP_SCHEMA.fields.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names.join(" "),
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri referrer \
         version user_agent origin request_body_len response_body_len status_code status_msg \
         info_code info_msg tags username password proxied orig_l2_addr resp_l2_addr"
    );
}

#[test]
fn pipelined_requests_pair_with_replies_in_order() {
    let rows = run(&[
        req(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
        resp(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\n"),
        resp(b"Content-Length: 5\r\n\r\nxy"),
        resp(b"z\r\n"),
    ]);
    assert_eq!(
        cols(
            &rows,
            &[
                "trans_depth",
                "uri",
                "status_code",
                "response_body_len",
                "version"
            ]
        ),
        vec![
            vec!["1", "/a", "200", "3", "1.1"],
            vec!["2", "/b", "404", "5", "1.1"]
        ]
    );
}

#[test]
fn informational_reply_then_final_one() {
    let rows = run(&[
        req(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
        resp(b"HTTP/1.1 100 Continue\r\n\r\n"),
        req(b"data"),
        resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(
        cols(
            &rows,
            &[
                "trans_depth",
                "request_body_len",
                "status_code",
                "status_msg",
                "info_code",
                "info_msg"
            ]
        ),
        vec![vec!["1", "4", "201", "Created", "100", "Continue"]]
    );
}

#[test]
fn chunked_gzip_and_until_close_bodies() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&[b'x'; 5000]).unwrap();
    let packed = gz.finish().unwrap();
    let mut gz_reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        packed.len()
    )
    .into_bytes();
    gz_reply.extend_from_slice(&packed);
    let rows = run(&[
        req(b"GET /c HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\nGET /e HTTP/1.1\r\n\r\n"),
        resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        resp(b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"),
        resp(&gz_reply),
        // HTTP/1.0 without length or Connection: close: lines until close, 2 bytes per line end.
        resp(b"HTTP/1.0 200 OK\r\n\r\nline one\nline two"),
        StreamInput::Eof { is_orig: false },
    ]);
    assert_eq!(
        cols(&rows, &["uri", "response_body_len"]),
        vec![vec!["/c", "21"], vec!["/g", "5000"], vec!["/e", "20"]]
    );
}

#[test]
fn multipart_body_ends_at_its_closing_delimiter() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nvalue\n--XyZ--\r\n";
    let mut post = format!(
        "POST /f HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=\"XyZ\"\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(body);
    post.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
    let rows = run(&[
        req(&post),
        resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
    ]);
    // Lines count with two bytes of line end each, the lone-LF line included (as Zeek counts).
    assert_eq!(
        cols(&rows, &["uri", "request_body_len", "response_body_len"]),
        vec![
            vec!["/f", &(body.len() + 1).to_string(), "0"],
            vec!["/next", "0", "1"]
        ]
    );
}

#[test]
fn connect_tunnel_stops_parsing() {
    let rows = run(&[
        req(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"),
        resp(b"HTTP/1.1 200 Connection established\r\n\r\n"),
        req(b"\x16\x03\x01\x00\x05hello GET / HTTP/1.1\r\n\r\n"),
        resp(b"\x16\x03\x03 HTTP/1.1 200 OK\r\n\r\n"),
    ]);
    assert_eq!(rows.len(), 1);
    let r = &cols(
        &rows,
        &[
            "method",
            "uri",
            "status_code",
            "response_body_len",
            "proxied",
        ],
    )[0];
    assert_eq!(&r[..4], ["CONNECT", "example.com:443", "200", "0"]);
    let mut proxied: Vec<&str> = r[4].split(',').collect();
    proxied.sort_unstable();
    assert_eq!(
        proxied,
        [
            "PROXY-CONNECTION -> keep-alive",
            "X-FORWARDED-FOR -> 10.0.0.1"
        ]
    );
}

#[test]
fn basic_auth_user_but_never_the_password() {
    let rows = run(&[
        req(b"GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpzZWNyZXQ=\r\nUser-Agent: t\r\nReferer: r\r\nOrigin: o\r\n\r\n"),
        resp(b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    assert_eq!(
        cols(
            &rows,
            &[
                "username",
                "password",
                "user_agent",
                "referrer",
                "origin",
                "tags"
            ]
        ),
        vec![vec!["user", "-", "t", "r", "o", "(empty)"]]
    );
    assert!(!rows[0].iter().any(|c| c.contains("secret")));
}

#[test]
fn http09_and_odd_uris() {
    let rows = run(&[
        req(b"GET /a%41%u0042%%43%zz%\n"),
        resp(b"<html>old</html>\n"),
        StreamInput::Eof { is_orig: false },
        StreamInput::Eof { is_orig: true },
    ]);
    assert_eq!(
        cols(
            &rows,
            &[
                "trans_depth",
                "method",
                "uri",
                "version",
                "status_code",
                "status_msg",
                "response_body_len"
            ]
        ),
        vec![
            vec!["1", "GET", "/aABC%zz%", "0.9", "0", "<empty>", "17"],
            // Zeek opens a second transaction when the request message ends after its reply.
            vec!["2", "-", "-", "-", "-", "-", "0"],
        ]
    );
}

#[test]
fn line_ends_split_across_segments_parse_the_same() {
    let whole = run(&[
        req(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
        resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ]);
    let text = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut inputs: Vec<StreamInput<'_>> = text.chunks(1).map(req).collect();
    inputs.extend(reply.chunks(1).map(resp));
    let split = run(&inputs);
    let names = ["method", "host", "uri", "status_code", "response_body_len"];
    assert_eq!(cols(&whole, &names), cols(&split, &names));
}

#[test]
fn content_gap_inside_a_body_is_counted_elsewhere_stops() {
    let rows = run(&[
        req(b"GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
        resp(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
        StreamInput::Gap {
            is_orig: false,
            len: 5,
        },
        resp(b"cde"),
        StreamInput::Gap {
            is_orig: false,
            len: 3,
        },
        resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
    ]);
    assert_eq!(
        cols(&rows, &["uri", "status_code", "response_body_len"]),
        vec![vec!["/x", "200", "10"], vec!["/y", "-", "0"]]
    );
}

#[test]
fn observer_sees_transactions() {
    #[derive(Default)]
    struct Seen(Vec<String>);
    struct Obs(Arc<Mutex<Seen>>);
    impl HttpObserver for Obs {
        fn request_headers(&mut self, _c: &HttpConnRef, tx: &HttpTransaction) {
            self.0.lock().unwrap().0.push(format!(
                "req {} {} host={:?} cookie={:?}",
                String::from_utf8_lossy(&tx.method),
                String::from_utf8_lossy(&tx.uri),
                tx.host.as_deref().map(String::from_utf8_lossy),
                tx.cookie.as_deref().map(String::from_utf8_lossy),
            ));
        }
        fn response_headers(&mut self, _c: &HttpConnRef, tx: &HttpTransaction) {
            self.0
                .lock()
                .unwrap()
                .0
                .push(format!("resp-headers {:?}", tx.status_code));
        }
        fn transaction_done(&mut self, _c: &HttpConnRef, tx: &HttpTransaction) {
            self.0.lock().unwrap().0.push(format!(
                "done {:?} req-body={:?} resp-body={:?} len={} headers={}",
                tx.status_code,
                String::from_utf8_lossy(&tx.request_body),
                String::from_utf8_lossy(&tx.response_body),
                tx.response_body_len,
                tx.response_headers.len(),
            ));
        }
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut an = HttpAnalyzer::new(Arc::new(Stats::default()));
    an.set_observer(Box::new(Obs(seen.clone())));
    let big = vec![b'b'; BODY_SAMPLE_MAX * 3];
    let mut reply =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
    reply.extend_from_slice(&big);
    let (rows, _) = run_with(
        &mut an,
        &[
            req(b"POST /p%20q HTTP/1.1\r\nHost: h\r\nCookie: c=1\r\nContent-Length: 3\r\n\r\nabc"),
            resp(&reply),
        ],
    );
    assert_eq!(rows.len(), 1);
    let seen = &seen.lock().unwrap().0;
    assert_eq!(
        seen[0],
        "req POST /p%20q host=Some(\"h\") cookie=Some(\"c=1\")"
    );
    assert_eq!(seen[1], "resp-headers Some(200)");
    assert!(
        seen[2].starts_with("done Some(200) req-body=\"abc\""),
        "{}",
        seen[2]
    );
    assert!(seen[2].contains(&format!("len={}", big.len())));
    let sample = "b".repeat(BODY_SAMPLE_MAX);
    assert!(seen[2].contains(&format!("resp-body={sample:?}")));
}

#[test]
fn content_detection() {
    assert!(HttpAnalyzer::looks_like_http(b"GET / HTTP/1.1\r\n", true));
    assert!(HttpAnalyzer::looks_like_http(
        b"\r\n QUERY /x HTTP/1.1",
        true
    ));
    assert!(HttpAnalyzer::looks_like_http(b"HTTP/1.0 200 OK", false));
    assert!(!HttpAnalyzer::looks_like_http(b"HTTP/x", false));
    assert!(!HttpAnalyzer::looks_like_http(b"SSH-2.0-x", true));
    assert!(!HttpAnalyzer::looks_like_http(b"GET / HTTP/1.1", false));
}

// ---- bad input ---------------------------------------------------------------------------

/// Heap held by the parser's line and header buffers.
fn parser_buffers(conn: &HttpConn) -> usize {
    conn.parser.buffered()
}

#[test]
fn endless_headers_stay_bounded() {
    let stats = Arc::new(Stats::default());
    let mut an = HttpAnalyzer::new(stats.clone());
    let mut conn = HttpConn::default();
    let mut out: Vec<Record> = Vec::new();
    an.stream(&mut conn, Ts(0), req(b"GET / HTTP/1.1\r\n"), &mut out);
    let header =
        b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(1000);
    for _ in 0..100 {
        an.stream(&mut conn, Ts(1), req(&header), &mut out);
        // A folded header that never ends grows only to the line cap.
        an.stream(&mut conn, Ts(1), req(&b" more\r\n".repeat(100)), &mut out);
    }
    assert!(
        parser_buffers(&conn) < 4 * MAX_LINE,
        "{}",
        parser_buffers(&conn)
    );
    an.stream(&mut conn, Ts(2), StreamInput::End, &mut out);
    assert_eq!(out.len(), 1, "the unanswered request is still logged");
    assert!(stats.http_weirds.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[test]
fn missing_line_ends_are_cut() {
    let stats = Arc::new(Stats::default());
    let mut an = HttpAnalyzer::new(stats.clone());
    let mut conn = HttpConn::default();
    let mut out: Vec<Record> = Vec::new();
    let chunk = vec![b'A'; 4096];
    for _ in 0..1024 {
        an.stream(&mut conn, Ts(0), req(&chunk), &mut out);
        an.stream(&mut conn, Ts(0), resp(&chunk), &mut out);
    }
    assert!(parser_buffers(&conn) < 4 * MAX_LINE);
    an.stream(&mut conn, Ts(1), StreamInput::End, &mut out);
    assert!(out.is_empty());
    assert!(stats.http_weirds.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[test]
fn huge_and_broken_chunk_sizes() {
    let rows = run(&[
        req(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
        resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n\r\n"),
        resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3fffffffffffffff\r\n"),
        resp(&[b'z'; 10000]),
    ]);
    // The unparsable size reads as the last chunk (then the trailer ends the body); the huge
    // one swallows the rest.
    assert_eq!(
        cols(&rows, &["uri", "status_code", "response_body_len"]),
        vec![vec!["/a", "200", "0"], vec!["/b", "200", "10000"]]
    );
}

/// xorshift64*: a deterministic generator without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..200 {
        let len = rng.below(3000);
        let a: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let b: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
        run(&[req(&a), resp(&b), StreamInput::Eof { is_orig: true }]);
    }
}

const SEED_EXCHANGE: (&[u8], &[u8]) = (
    b"GET /a?b=%41 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dTpw\r\nVia: x\r\nContent-Length: 2\r\n\r\nokPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nCONNECT h:1 HTTP/1.1\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: deflate\r\n\r\n4\r\nxyzw\r\n0\r\n\r\nHTTP/1.1 206 Partial\r\nContent-Range: bytes 0-3/10\r\n\r\nabcdHTTP/1.1 200 OK\r\n\r\n",
);

/// Random edits of a valid exchange, cut into random segments and shuffled out of order
/// through the reassembler, then parsed: no panic, bounded buffers.
#[test]
fn mutated_exchanges_never_panic() {
    use crate::analyzers::reassembly::{Reassembler, Segment, StreamConsumer};
    struct Into<'a> {
        an: &'a mut HttpAnalyzer,
        conn: &'a mut HttpConn,
        out: &'a mut Vec<Record>,
        is_orig: bool,
    }
    impl StreamConsumer for Into<'_> {
        fn data(&mut self, bytes: &[u8]) {
            let input = StreamInput::Data {
                is_orig: self.is_orig,
                bytes,
            };
            self.an.stream(self.conn, Ts(0), input, self.out);
        }
        fn gap(&mut self, len: u64) {
            let input = StreamInput::Gap {
                is_orig: self.is_orig,
                len,
            };
            self.an.stream(self.conn, Ts(0), input, self.out);
        }
        fn eof(&mut self) {
            let input = StreamInput::Eof {
                is_orig: self.is_orig,
            };
            self.an.stream(self.conn, Ts(0), input, self.out);
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut an = HttpAnalyzer::new(Arc::new(Stats::default()));
    for _ in 0..1500 {
        let mut streams = [SEED_EXCHANGE.0.to_vec(), SEED_EXCHANGE.1.to_vec()];
        for s in &mut streams {
            for _ in 0..rng.below(8) {
                let pos = rng.below(s.len() + 1);
                match rng.below(5) {
                    0 if pos < s.len() => s[pos] = rng.next() as u8,
                    1 => s.insert(pos, [b'\r', b'\n', b':', b' ', b'0', b'%'][rng.below(6)]),
                    2 if pos < s.len() => {
                        s.remove(pos);
                    }
                    3 => {
                        let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                        s.splice(pos..pos, junk);
                    }
                    _ => s.truncate(pos),
                }
            }
        }
        let mut conn = HttpConn::default();
        let mut out = Vec::new();
        let mut r = [Reassembler::new(256), Reassembler::new(256)];
        let mut segs: Vec<(usize, u32, Vec<u8>)> = Vec::new();
        for (d, s) in streams.iter().enumerate() {
            let mut off = 0;
            while off < s.len() {
                let n = 1 + rng.below(40).min(s.len() - off - 1);
                segs.push((d, 1000 + off as u32, s[off..off + n].to_vec()));
                off += n;
            }
            segs.push((d, 1000 + s.len() as u32, Vec::new()));
        }
        // Mild reordering and duplication, some loss.
        for i in 0..segs.len() {
            let j = (i + rng.below(4)).min(segs.len() - 1);
            segs.swap(i, j);
        }
        for (d, seq, p) in &segs {
            if rng.below(50) == 0 {
                continue;
            }
            let flags = if p.is_empty() {
                crate::decode::tcp_flags::FIN
            } else {
                0
            };
            let mut into = Into {
                an: &mut an,
                conn: &mut conn,
                out: &mut out,
                is_orig: *d == 0,
            };
            r[*d].anchor(1000);
            r[*d].push(
                Segment {
                    seq: *seq,
                    flags,
                    payload: p,
                    payload_len: p.len() as u32,
                },
                &mut into,
            );
            if rng.below(10) == 0 {
                r[*d].push(
                    Segment {
                        seq: *seq,
                        flags,
                        payload: p,
                        payload_len: p.len() as u32,
                    },
                    &mut into,
                );
            }
        }
        for (d, ra) in r.iter_mut().enumerate() {
            ra.flush(&mut Into {
                an: &mut an,
                conn: &mut conn,
                out: &mut out,
                is_orig: d == 0,
            });
        }
        assert!(parser_buffers(&conn) < 4 * MAX_LINE);
        an.stream(&mut conn, Ts(1), StreamInput::End, &mut out);
        for rec in &out {
            let mut buf = Vec::new();
            let mut row = Row::new(&mut buf, Utf8Policy::PassValid);
            rec.as_zeek().write_row(&mut row);
            assert_eq!(
                buf.iter().filter(|&&c| c == b'\t').count() + 1,
                record::HTTP_SCHEMA.fields.len()
            );
        }
    }
}

#[test]
fn method_initials_cover_every_dpd_method() {
    assert!(DPD_METHODS.iter().all(|m| METHOD_INITIALS.contains(&m[0])));
}
