//! One stream type for plain TCP and TLS: the connection code reads and writes bytes and never
//! asks which, while the socket underneath stays reachable for timeouts and shutdown.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    sync::Arc,
};

use rustls::{
    pki_types::ServerName, ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection,
    StreamOwned,
};

use crate::wire::{Deadlines, Wire};

/// The label of the keying material exported for the agency's proof (RFC 8446 §7.5).
const EXPORTER_LABEL: &[u8] = b"EXPORTER-tp0-lottery-agency-proof";

/// Bytes of exported keying material the proof is bound to.
const BINDING_LEN: usize = 32;

/// What an agency's proof on a stream is bound to (see [`crate::proof`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// Keying material exported from the TLS session (the same on both ends, different on any
    /// other session); empty on plain TCP.
    pub material: Vec<u8>,
    /// Whether the material is itself a fresh challenge, so the agency proves without asking
    /// for one: a TLS 1.3 session whose two ends agreed on session proofs
    /// ([`crate::tls::SESSION_PROOFS`], by ALPN). Its exporter derives from the whole
    /// handshake, the central's fresh random and key share included, so no proof can have been
    /// made for it before it began, nor serve on another session.
    pub fresh: bool,
}

/// A connection's byte stream: plain TCP, or TLS on either side.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, the central's side, over a socket that times records as they arrive.
    Server(Box<StreamOwned<ServerConnection, Wire>>),
    /// TLS, an agency's side.
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The central's side of a TLS connection on `socket`, handshake done: its first byte
    /// awaited for `deadlines.idle`, the whole handshake within `deadlines.frame` of that byte;
    /// afterwards each record must arrive whole within `deadlines.frame` of its first byte
    /// (see [`crate::wire`]).
    ///
    /// # Errors
    /// When the handshake fails: a peer speaking plain TCP, an old or broken TLS client, a
    /// timeout ([`protocol::LateBytes`] when the handshake began but did not end in time).
    pub fn accept_tls(
        socket: TcpStream,
        config: Arc<ServerConfig>,
        deadlines: Deadlines,
    ) -> io::Result<Stream> {
        let mut wire = Wire::for_handshake(socket, deadlines)?;
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut wire)?;
        }
        wire.handshake_done();
        Ok(Stream::Server(Box::new(StreamOwned::new(conn, wire))))
    }

    /// An agency's side of a TLS connection on `socket` to the central named `name`,
    /// handshake done (the central's certificate checked).
    ///
    /// # Errors
    /// When the handshake fails, the certificate included.
    pub fn connect_tls(
        mut socket: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Stream> {
        let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut socket)?;
        }
        Ok(Stream::Client(Box::new(StreamOwned::new(conn, socket))))
    }

    /// The TCP socket underneath.
    #[must_use]
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Server(s) => s.get_ref().socket(),
            Stream::Client(s) => s.get_ref(),
        }
    }

    /// What an agency's proof is bound to: keying material exported from the TLS session
    /// (the same on both ends, different on any other session), or nothing on plain TCP.
    ///
    /// # Errors
    /// When rustls cannot export (only before the handshake ends, which never happens here).
    pub fn binding(&self) -> io::Result<Binding> {
        match self {
            Stream::Plain(_) => Ok(Binding::default()),
            Stream::Server(s) => session_binding(&s.conn),
            Stream::Client(s) => session_binding(&s.conn),
        }
    }
}

/// A TLS session's binding, from either end. It is fresh when the ends agreed on session
/// proofs: TLS 1.3 (whose exporter no man in the middle can make alike on two sessions), and
/// [`crate::tls::SESSION_PROOFS`] negotiated.
fn session_binding<Side>(conn: &ConnectionCommon<Side>) -> io::Result<Binding> {
    let mut material = vec![0u8; BINDING_LEN];
    conn.export_keying_material(&mut material[..], EXPORTER_LABEL, None).map_err(io::Error::other)?;
    let fresh = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
        && conn.alpn_protocol() == Some(crate::tls::SESSION_PROOFS);
    Ok(Binding { material, fresh })
}

impl Stream {
    /// Frees what the transport holds for reading, if it holds nothing unread (the central's
    /// TLS read-ahead, see [`crate::wire`]); nothing on plain TCP or an agency's side.
    pub fn release_buffers(&mut self) {
        if let Stream::Server(s) = self {
            s.get_mut().release_buffers();
        }
    }

    /// Bytes the transport read from the socket that nothing above has taken yet (the
    /// central's TLS read-ahead): what a peek at the socket no longer sees.
    #[must_use]
    pub fn read_ahead(&self) -> usize {
        match self {
            Stream::Server(s) => s.get_ref().unread(),
            _ => 0,
        }
    }
}

/// Timeouts go to the socket underneath: a TLS read or write waits on it like a plain one,
/// the central's reads within its record clock too.
impl protocol::Timeouts for Stream {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Stream::Server(s) => {
                s.get_ref().set_read_timeout(timeout);
                Ok(())
            }
            _ => self.socket().set_read_timeout(timeout),
        }
    }
    fn set_write_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.socket().set_write_timeout(timeout)
    }
}

impl Stream {
    /// Tells the peer the stream ends here (TLS's `close_notify`; nothing on plain TCP), so
    /// it reads a clean end rather than a cut. Best effort: the socket is closed next anyway.
    pub fn close(&mut self) {
        match self {
            Stream::Plain(_) => {}
            Stream::Server(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            Stream::Client(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match self {
            Stream::Plain(s) => return s.read(buf),
            Stream::Server(s) => s.read(buf),
            Stream::Client(s) => s.read(buf),
        };
        match read {
            // A peer that closes its socket without TLS's close_notify: an end of stream like
            // any other. Frames carry their own lengths, so a cut inside one is still caught
            // by the framing; between two it is a close.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Server(s) => s.write(buf),
            Stream::Client(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Server(s) => s.flush(),
            Stream::Client(s) => s.flush(),
        }
    }
}
