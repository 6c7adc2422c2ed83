//! Builds ClientHellos byte by byte, valid or broken on purpose, and re-frames them into
//! records of chosen sizes.

pub(super) const HANDSHAKE: u8 = 22;
pub(super) const EXT_SERVER_NAME: u16 = 0;
pub(super) const EXT_ALPN: u16 = 16;

/// The parts of a ClientHello body, each as raw bytes after its length prefix.
#[derive(Clone)]
pub(super) struct Hello {
    pub(super) legacy_version: u16,
    pub(super) session_id: Vec<u8>,
    pub(super) cipher_suites: Vec<u8>,
    pub(super) compression_methods: Vec<u8>,
    /// The extensions block without its length; `None` omits the block entirely.
    pub(super) extensions: Option<Vec<u8>>,
}

impl Default for Hello {
    fn default() -> Self {
        Self {
            legacy_version: 0x0303,
            session_id: vec![0x5a; 32],
            // TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256
            cipher_suites: vec![0x13, 0x01, 0x13, 0x03],
            compression_methods: vec![0],
            extensions: Some(Vec::new()),
        }
    }
}

impl Hello {
    pub(super) fn extension(mut self, ext_type: u16, data: &[u8]) -> Self {
        let block = self.extensions.get_or_insert_with(Vec::new);
        block.extend(ext_type.to_be_bytes());
        block.extend(u16_len(data.len()));
        block.extend(data);
        self
    }

    pub(super) fn sni(self, name: &[u8]) -> Self {
        self.extension(EXT_SERVER_NAME, &sni_data(name))
    }

    pub(super) fn alpn(self, names: &[&[u8]]) -> Self {
        self.extension(EXT_ALPN, &alpn_data(names))
    }

    pub(super) fn body(&self) -> Vec<u8> {
        let mut body = self.legacy_version.to_be_bytes().to_vec();
        body.extend([0x42; 32]);
        body.push(len_u8(self.session_id.len()));
        body.extend(&self.session_id);
        body.extend(u16_len(self.cipher_suites.len()));
        body.extend(&self.cipher_suites);
        body.push(len_u8(self.compression_methods.len()));
        body.extend(&self.compression_methods);
        if let Some(extensions) = &self.extensions {
            body.extend(u16_len(extensions.len()));
            body.extend(extensions);
        }
        body
    }

    /// The handshake message: type client_hello, 24-bit length, body.
    pub(super) fn message(&self) -> Vec<u8> {
        message_of_body(1, &self.body())
    }

    /// One handshake record carrying the whole hello.
    pub(super) fn wire(&self) -> Vec<u8> {
        record(HANDSHAKE, &self.message())
    }
}

pub(super) fn message_of_body(handshake_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut message = vec![handshake_type, len[1], len[2], len[3]];
    message.extend(body);
    message
}

/// A server_name extension body with one host_name entry.
pub(super) fn sni_data(name: &[u8]) -> Vec<u8> {
    let mut entry = vec![0];
    entry.extend(u16_len(name.len()));
    entry.extend(name);
    let mut data = u16_len(entry.len()).to_vec();
    data.extend(entry);
    data
}

pub(super) fn alpn_data(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(len_u8(name.len()));
        list.extend(*name);
    }
    let mut data = u16_len(list.len()).to_vec();
    data.extend(list);
    data
}

pub(super) fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut wire = vec![content_type, 0x03, 0x01];
    wire.extend(u16_len(payload.len()));
    wire.extend(payload);
    wire
}

/// Splits a handshake message into handshake records whose payload sizes cycle through
/// `sizes` (each at least 1).
pub(super) fn fragment(message: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = message;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (payload, tail) = rest.split_at(size.clamp(1, rest.len()));
        wire.extend(record(HANDSHAKE, payload));
        rest = tail;
    }
    wire
}

/// The handshake message carried by the records of a captured hello.
pub(super) fn defragment(wire: &[u8]) -> Vec<u8> {
    let mut message = Vec::new();
    let mut rest = wire;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        message.extend(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    message
}

pub(super) fn u16_len(len: usize) -> [u8; 2] {
    u16::try_from(len).unwrap().to_be_bytes()
}

fn len_u8(len: usize) -> u8 {
    u8::try_from(len).unwrap()
}
