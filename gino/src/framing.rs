//! The framing of PostgreSQL protocol messages: a type byte and a
//! big-endian length that counts itself, read from bytes that arrive in
//! pieces split anywhere.
//!
//! Uses: nothing of gino's.

/// A message's five header bytes.
pub(crate) type Header = [u8; 5];

/// The length of the body that follows `header`.
pub(crate) fn body_len(header: &Header) -> usize {
    (u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize).saturating_sub(4)
}

/// Appends the message `kind` with a body made of `parts`.
pub(crate) fn write_message(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 4;
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// The capacity a message buffer keeps once it is empty again. A
/// connection that once carried a huge message (a bulk insert's `Bind` of
/// hundreds of megabytes) would otherwise hold that much memory for the
/// rest of its life in the pool.
pub(crate) const RETAINED: usize = 64 * 1024;

/// Gives back what an empty `buf` holds beyond [`RETAINED`].
pub(crate) fn release_excess(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > RETAINED {
        buf.shrink_to(RETAINED);
    }
}

/// A C string of a message's body and what follows its terminator (all
/// of `data`, and nothing after it, when it has none).
pub(crate) fn split_cstr(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[]),
    }
}

/// Collects a header from the front of incoming bytes.
#[derive(Debug, Default)]
pub(crate) struct HeaderReader {
    bytes: Header,
    len: usize,
}

impl HeaderReader {
    /// Whether no header is half-read.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When no header is half-read and `data` starts with a whole message:
    /// its type, its body, and the bytes after it.
    pub(crate) fn whole_message<'d>(&self, data: &'d [u8]) -> Option<(u8, &'d [u8], &'d [u8])> {
        if self.len != 0 {
            return None;
        }
        let header: &Header = data.first_chunk()?;
        let (body, rest) = data[5..].split_at_checked(body_len(header))?;
        Some((header[0], body, rest))
    }

    /// Takes header bytes from the front of `data`; once five are in,
    /// returns the header and starts over for the next one.
    pub(crate) fn take(&mut self, data: &mut &[u8]) -> Option<Header> {
        let n = (5 - self.len).min(data.len());
        self.bytes[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        *data = &data[n..];
        if self.len < 5 {
            return None;
        }
        self.len = 0;
        Some(self.bytes)
    }
}

/// Follows messages split anywhere and hands each message of a kind it
/// keeps, whole, to a callback: in place when it arrived whole (nearly
/// always), else with its body collected (up to a cap) across pieces.
#[derive(Debug, Default)]
pub(crate) struct MessageReader {
    header: HeaderReader,
    /// The type of the message whose body is being read, if any.
    kind: Option<u8>,
    remaining: usize,
    body: Vec<u8>,
}

impl MessageReader {
    /// Whether no message is half-read.
    pub(crate) fn is_between_messages(&self) -> bool {
        self.kind.is_none() && self.header.is_empty()
    }

    /// Follows `data` up to the end of the message it is in (or all of
    /// it, if that message goes on): returns how much it took. A message
    /// of a kind `keep` accepts is handed to `on_message` once it is whole,
    /// its body cut at `cap` bytes.
    pub(crate) fn feed_message(
        &mut self,
        data: &[u8],
        keep: impl Fn(u8) -> bool,
        cap: usize,
        mut on_message: impl FnMut(u8, &[u8]),
    ) -> usize {
        let Some(kind) = self.kind else {
            if let Some((kind, body, rest)) = self.header.whole_message(data) {
                if keep(kind) {
                    on_message(kind, &body[..body.len().min(cap)]);
                }
                return data.len() - rest.len();
            }
            let mut rest = data;
            if let Some(header) = self.header.take(&mut rest) {
                self.kind = Some(header[0]);
                self.remaining = body_len(&header);
                self.body.clear();
                if self.remaining == 0 {
                    self.finish(keep, on_message);
                }
            }
            return data.len() - rest.len();
        };
        let n = self.remaining.min(data.len());
        if keep(kind) {
            let room = cap.saturating_sub(self.body.len());
            self.body.extend_from_slice(&data[..n.min(room)]);
        }
        self.remaining -= n;
        if self.remaining == 0 {
            self.finish(keep, on_message);
        }
        n
    }

    fn finish(&mut self, keep: impl Fn(u8) -> bool, mut on_message: impl FnMut(u8, &[u8])) {
        if let Some(kind) = self.kind.take().filter(|k| keep(*k)) {
            on_message(kind, &self.body);
        }
        self.body.clear();
        release_excess(&mut self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message collected across pieces leaves no more than
    /// [`RETAINED`] behind once it is handed on.
    #[test]
    fn a_large_message_s_buffer_is_given_back() {
        let mut message = Vec::new();
        write_message(&mut message, b'P', &[&vec![b'x'; 1 << 20]]);
        let mut reader = MessageReader::default();
        let mut seen = 0;
        for piece in message.chunks(1000) {
            let mut piece = piece;
            while !piece.is_empty() {
                let took = reader.feed_message(
                    piece,
                    |_| true,
                    usize::MAX,
                    |_, body| {
                        seen = body.len();
                    },
                );
                piece = &piece[took..];
            }
        }
        assert_eq!(seen, 1 << 20);
        assert!(
            reader.body.capacity() <= RETAINED,
            "{}",
            reader.body.capacity()
        );
    }

    #[test]
    fn whole_messages_are_read_in_place() {
        let stream = [b'C', 0, 0, 0, 6, b'O', b'K', b'Z', 0, 0, 0, 5];
        let reader = HeaderReader::default();
        let (kind, body, rest) = reader.whole_message(&stream).expect("a whole message");
        assert_eq!((kind, body, rest), (b'C', &b"OK"[..], &stream[7..]));
        assert_eq!(reader.whole_message(rest), None, "Z's body has not arrived");
        let mut half = HeaderReader::default();
        half.take(&mut &stream[..2]);
        assert_eq!(
            half.whole_message(&stream[7..]),
            None,
            "a header is half-read"
        );
    }

    #[test]
    fn headers_split_anywhere_come_out_whole() {
        let stream = [b'Z', 0, 0, 0, 5, b'I', b'1', 0, 0, 0, 4];
        for split in 0..stream.len() {
            let mut reader = HeaderReader::default();
            let mut headers = Vec::new();
            let mut at = 0;
            for mut piece in [&stream[..split], &stream[split..]] {
                while !piece.is_empty() {
                    // Bodies are the caller's: skip the one byte of `Z`'s.
                    if at == 5 {
                        piece = &piece[1..];
                        at += 1;
                        continue;
                    }
                    let before = piece.len();
                    if let Some(h) = reader.take(&mut piece) {
                        headers.push((h[0], body_len(&h)));
                    }
                    at += before - piece.len();
                }
            }
            assert_eq!(headers, [(b'Z', 1), (b'1', 0)], "split at {split}");
        }
    }
}
