//! The container health check: `teal-mcp-filesystem --healthcheck` GETs the server's own
//! `/health` over a raw `TcpStream` (the distroless image has no curl) and exits 0 or 1.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    time::Duration,
};

/// `Ok` if `GET /health` on `addr` answers `200` within `timeout` (per connect, write and
/// read). An unspecified bind address (`0.0.0.0`, `[::]`) is checked on loopback.
pub fn check_health(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let addr = match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, v4.port())),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, v6.port())),
        other => other,
    };
    let fail = |what: &str, e: std::io::Error| format!("health check of {addr} failed to {what}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("connect", e))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| fail("configure", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| fail("configure", e))?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| fail("send", e))?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).map_err(|e| fail("read", e))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("health check of {addr} got {status_line:?}, expected status 200")),
    }
}
