//! Sends one client's RTP packets over UDP, a whole run of packets per
//! system call where the kernel allows it, straight from the stream's
//! shared packet buffer.
//!
//! Hand-written hot path: the socket is connected to the client (no route
//! lookup per send), and with UDP generic segmentation offload (Linux
//! 4.18+) one `writev` of back-to-back full-size packets (the FU-A
//! fragments of a picture), gathered from the shared buffer without a copy,
//! leaves as separate datagrams: a picture costs one or two system calls
//! instead of one per packet. Where the kernel or the route refuses
//! segmentation, packets go one by one.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::rtp::packetizer::{MAX_PACKET, RtpUnit};

/// `UDP_SEGMENT` from `<linux/udp.h>` (not exported by libc for glibc).
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams the kernel accepts in one segmented send.
const MAX_SEGMENTS: usize = 64;

/// One UDP client's RTP output.
#[derive(Debug)]
pub struct RtpSender {
    socket: UdpSocket,
    dest: SocketAddr,
    segmentation: bool,
}

impl RtpSender {
    /// Sends from `socket`, connected to `dest`, segmenting in the kernel
    /// if it can.
    pub async fn new(socket: UdpSocket, dest: SocketAddr) -> io::Result<Self> {
        socket.connect(dest).await?;
        let segmentation = enable_segmentation(&socket);
        Ok(Self {
            socket,
            dest,
            segmentation,
        })
    }

    /// Sends every packet of `unit`. Loss on UDP is the client's network's
    /// business: send errors are logged at trace level and an unreachable
    /// client is reaped by the session timeout.
    pub async fn send(&mut self, unit: &RtpUnit) {
        let mut run: [&[u8]; MAX_SEGMENTS] = [&[]; MAX_SEGMENTS];
        let mut count = 0;
        for packet in unit.packets() {
            run[count] = packet;
            count += 1;
            // A segmented send is full-size datagrams, then at most one
            // shorter one: a short packet (or a full run) ends it.
            if !self.segmentation || packet.len() < MAX_PACKET || count == MAX_SEGMENTS {
                self.flush(&run[..count]).await;
                count = 0;
            }
        }
        if count > 0 {
            self.flush(&run[..count]).await;
        }
    }

    async fn flush(&mut self, run: &[&[u8]]) {
        let fd = self.socket.as_raw_fd();
        let result = self
            .socket
            .async_io(Interest::WRITABLE, || writev(fd, run))
            .await;
        if let Err(e) = result {
            if run.len() > 1 && self.segmentation {
                // The route cannot segment (no checksum offload, say): go
                // packet by packet from now on, starting with this run.
                tracing::debug!(dest = %self.dest, "UDP segmentation refused ({e}); sending packets one by one");
                self.segmentation = false;
                for packet in run {
                    let _ = self.socket.send(packet).await;
                }
            } else {
                tracing::trace!(dest = %self.dest, "RTP send failed: {e}");
            }
        }
    }
}

/// One `writev` of `parts` on the connected socket `fd`: a single datagram,
/// which the kernel segments at [`MAX_PACKET`] when segmentation is on.
fn writev(fd: libc::c_int, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_SEGMENTS];
    for (v, part) in iov.iter_mut().zip(parts) {
        v.iov_base = part.as_ptr().cast_mut().cast();
        v.iov_len = part.len();
    }
    let count = parts.len().min(MAX_SEGMENTS) as libc::c_int;
    // SAFETY: every iovec points into a slice borrowed for this call, and
    // `count` iovecs are initialised; the kernel only reads them.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), count) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Turns on UDP segmentation at [`MAX_PACKET`] bytes for `socket`.
fn enable_segmentation(socket: &UdpSocket) -> bool {
    let size = MAX_PACKET as libc::c_int;
    // SAFETY: the descriptor is a live socket owned by `socket` for the
    // whole call, and the option value is the c_int the kernel expects.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::h264::AccessUnit;
    use crate::rtp::Packetizer;

    #[tokio::test]
    async fn every_packet_arrives_as_its_own_datagram_in_order() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut sender = RtpSender::new(socket, receiver.local_addr().unwrap())
            .await
            .unwrap();
        // SPS, PPS, a 5000-byte slice (four FU-A fragments) and a small one.
        let nals = vec![
            Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
            Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            Bytes::from(vec![0x65; 5000]),
            Bytes::from(vec![0x41; 300]),
        ];
        let au = AccessUnit::new(nals, Instant::now());
        let unit = Packetizer::new(0x1234, 100).packetize(&au, 9000);
        sender.send(&unit).await;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.len() < 7 {
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(2), receiver.recv(&mut buf))
                    .await
                    .expect("a datagram")
                    .unwrap();
            got.push(buf[..n].to_vec());
        }
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes[..2], [12 + 4, 12 + 4]);
        assert_eq!(sizes[2..5], [MAX_PACKET; 3]);
        assert_eq!(sizes[5], 12 + 2 + (5000 - 1) - 3 * (MAX_PACKET - 14));
        assert_eq!(sizes[6], 12 + 300);
        let sent: Vec<&[u8]> = unit.packets().collect();
        assert_eq!(got, sent, "the packets, byte for byte, in order");
        let seqs: Vec<u16> = got
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(seqs, (100..107).collect::<Vec<u16>>());
    }
}
