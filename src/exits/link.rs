//! One generic netlink socket to the kernel's taskstats family: opening,
//! numbering and sending requests, resolving the family id. Shared by the
//! exit [`listener`](super::listener) and the group [`query`](super::query),
//! which differ only in what they ask and receive.

use std::time::Duration;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};
use rustix::io::Errno;

use super::listener::ListenError;
use super::record::{FAMILY_NAME, ParseError};

/// A bound and connected generic netlink socket with its receive buffer
/// and request numbering.
pub(super) struct Link {
    pub socket: Socket,
    /// The last datagram received.
    pub buf: Vec<u8>,
    seq: u32,
}

impl Link {
    /// Opens, binds (the kernel picks the port) and connects to the kernel;
    /// `capacity` is the receive buffer in this process.
    pub fn open(capacity: usize) -> Result<Self, ListenError> {
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(ListenError::Socket)?;
        socket.bind_auto().map_err(ListenError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(ListenError::Socket)?;
        Ok(Link {
            socket,
            buf: Vec::with_capacity(capacity),
            seq: 0,
        })
    }

    /// Bounds how long a receive blocks (`None`: forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ListenError> {
        rustix::net::sockopt::set_socket_timeout(
            &self.socket,
            rustix::net::sockopt::Timeout::Recv,
            timeout,
        )
        .map_err(|e| ListenError::Io(e.into()))
    }

    /// Gives `msg` the next sequence number and finalizes it for sending;
    /// returns the number.
    pub fn number<F>(&mut self, msg: &mut NetlinkMessage<F>) -> u32
    where
        F: netlink_packet_core::NetlinkSerializable,
    {
        self.seq = self.seq.wrapping_add(1);
        msg.header.sequence_number = self.seq;
        msg.finalize();
        self.seq
    }

    /// Numbers and sends one message; returns its sequence number.
    pub fn send<F>(&mut self, mut msg: NetlinkMessage<F>) -> Result<u32, ListenError>
    where
        F: netlink_packet_core::NetlinkSerializable,
    {
        self.number(&mut msg);
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        self.socket.send(&out, 0).map_err(ListenError::Io)?;
        Ok(self.seq)
    }

    /// Asks the generic netlink controller for the taskstats family id.
    pub fn resolve_family(&mut self) -> Result<u16, ListenError> {
        let mut genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_owned())],
        });
        genl.finalize();
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = NLM_F_REQUEST;
        let seq = self.send(msg)?;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if Errno::from_io_error(&e) == Some(Errno::AGAIN) => {
                    return Err(ListenError::Timeout("generic netlink controller"));
                }
                Err(e) => return Err(ListenError::Io(e)),
            }
            let msg = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&self.buf)
                .map_err(ParseError::from)?;
            if msg.header.sequence_number != seq {
                continue;
            }
            match msg.payload {
                NetlinkPayload::InnerMessage(genl) => {
                    return genl
                        .payload
                        .nlas
                        .iter()
                        .find_map(|a| match a {
                            GenlCtrlAttrs::FamilyId(id) => Some(*id),
                            _ => None,
                        })
                        .ok_or(ListenError::NoFamily);
                }
                NetlinkPayload::Error(e) if e.code.is_some() => return Err(ListenError::NoFamily),
                _ => continue,
            }
        }
    }
}
