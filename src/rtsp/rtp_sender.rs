//! Sends one client's RTP packets over UDP, a whole run of packets per
//! system call where the kernel allows it.
//!
//! Hand-written hot path: with UDP generic segmentation offload (Linux 4.18+)
//! one `sendto` of back-to-back full-size packets (the FU-A fragments of a
//! picture) leaves as separate datagrams, so a picture costs one or two
//! system calls and trips through the network stack instead of one per
//! packet. Where the kernel or the route refuses, packets go one by one.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::net::UdpSocket;

use crate::rtp::packetizer::{MAX_PACKET, Packets};

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
    batch: Vec<u8>,
}

impl RtpSender {
    /// Sends from `socket` to `dest`, segmenting in the kernel if it can.
    pub fn new(socket: UdpSocket, dest: SocketAddr) -> Self {
        let segmentation = enable_segmentation(&socket);
        Self {
            socket,
            dest,
            segmentation,
            batch: Vec::with_capacity(MAX_SEGMENTS * MAX_PACKET),
        }
    }

    /// Sends every packet of `packets`. Loss on UDP is the client's
    /// network's business: send errors are logged at trace level and an
    /// unreachable client is reaped by the session timeout.
    pub async fn send(&mut self, mut packets: Packets<'_>) {
        let mut pkt = [0u8; MAX_PACKET];
        let mut count = 0;
        self.batch.clear();
        while let Some(n) = packets.next_into(&mut pkt) {
            self.batch.extend_from_slice(&pkt[..n]);
            count += 1;
            // A segmented send is full-size datagrams, then at most one
            // shorter one: a short packet (or a full batch) ends it.
            if !self.segmentation || n < MAX_PACKET || count == MAX_SEGMENTS {
                self.flush(count).await;
                count = 0;
            }
        }
        if count > 0 {
            self.flush(count).await;
        }
    }

    async fn flush(&mut self, count: usize) {
        let result = self.socket.send_to(&self.batch, self.dest).await;
        if let Err(e) = result {
            if count > 1 && self.segmentation {
                // The route cannot segment (no checksum offload, say): go
                // packet by packet from now on, starting with this batch.
                tracing::debug!(dest = %self.dest, "UDP segmentation refused ({e}); sending packets one by one");
                self.segmentation = false;
                for chunk in self.batch.chunks(MAX_PACKET) {
                    let _ = self.socket.send_to(chunk, self.dest).await;
                }
            } else {
                tracing::trace!(dest = %self.dest, "RTP send failed: {e}");
            }
        }
        self.batch.clear();
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
        let mut sender = RtpSender::new(socket, receiver.local_addr().unwrap());
        // SPS, PPS, a 5000-byte slice (four FU-A fragments) and a small one.
        let nals = vec![
            Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
            Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            Bytes::from(vec![0x65; 5000]),
            Bytes::from(vec![0x41; 300]),
        ];
        let au = AccessUnit::new(nals, Instant::now());
        let mut packetizer = Packetizer::new(0x1234, 100);
        sender.send(packetizer.packets(&au, 9000)).await;
        let mut sizes = Vec::new();
        let mut seqs = Vec::new();
        let mut buf = [0u8; 65536];
        while sizes.len() < 7 {
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(2), receiver.recv(&mut buf))
                    .await
                    .expect("a datagram")
                    .unwrap();
            sizes.push(n);
            seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
        }
        assert_eq!(sizes[..2], [12 + 4, 12 + 4]);
        assert_eq!(sizes[2..5], [MAX_PACKET; 3]);
        assert_eq!(sizes[5], 12 + 2 + (5000 - 1) - 3 * (MAX_PACKET - 14));
        assert_eq!(sizes[6], 12 + 300);
        assert_eq!(seqs, (100..107).collect::<Vec<u16>>());
    }
}
