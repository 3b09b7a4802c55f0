//! HTTP/1.1 client side, just what the Docker Engine API needs: requests, and a response
//! parser fed bytes as they arrive (status line, headers, `Content-Length`, chunked bodies,
//! or a body that ends when the connection closes). No I/O here.

use std::fmt;

/// Caps that keep a broken or hostile peer from growing our memory without bound.
const MAX_HEAD: usize = 64 * 1024;
const MAX_CHUNK_LINE: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    HeadTooLong,
    BadStatusLine(String),
    BadHeader(String),
    BadChunk(String),
    BodyTooLong {
        limit: usize,
    },
    /// The connection closed before the body was complete.
    Truncated,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::HeadTooLong => write!(f, "response head longer than {MAX_HEAD} bytes"),
            HttpError::BadStatusLine(l) => write!(f, "bad status line `{l}`"),
            HttpError::BadHeader(l) => write!(f, "bad header line `{l}`"),
            HttpError::BadChunk(l) => write!(f, "bad chunk: {l}"),
            HttpError::BodyTooLong { limit } => write!(f, "body longer than {limit} bytes"),
            HttpError::Truncated => write!(f, "connection closed in the middle of the response"),
        }
    }
}

/// A GET request. `Host` is required by HTTP/1.1 even on a unix socket.
pub fn get(path: &str, keep_alive: bool) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: netmgrd/{}\r\nAccept: application/json\r\n{}\r\n",
        env!("CARGO_PKG_VERSION"),
        if keep_alive { "" } else { "Connection: close\r\n" }
    )
    .into_bytes()
}

/// A DELETE request (the connection closes after the answer).
pub fn delete(path: &str) -> Vec<u8> {
    format!(
        "DELETE {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: netmgrd/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// A POST request with a JSON body (the connection closes after the answer).
pub fn post(path: &str, json: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: netmgrd/{}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        env!("CARGO_PKG_VERSION"),
        json.len()
    )
    .into_bytes()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum BodyKind {
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body(BodyKind, Chunk),
    Done,
}

/// Parses one response. Decoded body bytes are appended to `body` (callers that stream take
/// them out as they come).
#[derive(Debug)]
pub struct Response {
    state: State,
    pending: Vec<u8>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    body_limit: usize,
    body_total: usize,
}

impl Response {
    /// `body_limit` caps the decoded body kept in `body` (streaming callers drain it).
    pub fn new(body_limit: usize) -> Response {
        Response {
            state: State::Head,
            pending: Vec::new(),
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            body_limit,
            body_total: 0,
        }
    }

    pub fn head_done(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Feeds bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        self.pending.extend_from_slice(bytes);
        loop {
            let progressed = match self.state.clone() {
                State::Head => self.parse_head()?,
                State::Body(kind, chunk) => self.parse_body(kind, chunk)?,
                State::Done => {
                    self.pending.clear();
                    false
                }
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The peer closed the connection: fine only where the body runs until close.
    pub fn eof(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::Done => Ok(()),
            State::Body(BodyKind::UntilClose, _) => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(HttpError::Truncated),
        }
    }

    fn take_line(&mut self, limit: usize, too_long: HttpError) -> Result<Option<String>, HttpError> {
        match self.pending.windows(2).position(|w| w == b"\r\n") {
            Some(pos) => {
                let line: Vec<u8> = self.pending.drain(..pos + 2).take(pos).collect();
                Ok(Some(String::from_utf8_lossy(&line).into_owned()))
            }
            None if self.pending.len() > limit => Err(too_long),
            None => Ok(None),
        }
    }

    fn parse_head(&mut self) -> Result<bool, HttpError> {
        let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.pending.len() > MAX_HEAD {
                return Err(HttpError::HeadTooLong);
            }
            return Ok(false);
        };
        if end > MAX_HEAD {
            return Err(HttpError::HeadTooLong);
        }
        let head: Vec<u8> = self.pending.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(c) if version.starts_with("HTTP/1.") && (100..600).contains(&c) => self.status = c,
            _ => return Err(HttpError::BadStatusLine(status_line.chars().take(80).collect())),
        }
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                return Err(HttpError::BadHeader(line.chars().take(80).collect()));
            };
            self.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let chunked =
            self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let kind = if chunked {
            BodyKind::Chunked
        } else if let Some(len) = self.header("content-length") {
            BodyKind::Length(len.parse().map_err(|_| HttpError::BadHeader(format!("Content-Length: {len}")))?)
        } else if self.status == 204 || self.status == 304 {
            BodyKind::Length(0)
        } else {
            BodyKind::UntilClose
        };
        self.state = match kind {
            BodyKind::Length(0) => State::Done,
            k => State::Body(k, Chunk::Size),
        };
        Ok(true)
    }

    fn push_body(&mut self, n: usize) -> Result<(), HttpError> {
        self.body_total += n;
        if self.body.len() + n > self.body_limit {
            return Err(HttpError::BodyTooLong { limit: self.body_limit });
        }
        self.body.extend(self.pending.drain(..n));
        Ok(())
    }

    fn parse_body(&mut self, kind: BodyKind, chunk: Chunk) -> Result<bool, HttpError> {
        match kind {
            BodyKind::UntilClose => {
                let n = self.pending.len();
                self.push_body(n)?;
                Ok(false)
            }
            BodyKind::Length(total) => {
                let n = self.pending.len().min(total - self.body_total);
                self.push_body(n)?;
                if self.body_total == total {
                    self.state = State::Done;
                }
                Ok(false)
            }
            BodyKind::Chunked => match chunk {
                Chunk::Size => {
                    let Some(line) =
                        self.take_line(MAX_CHUNK_LINE, HttpError::BadChunk("size line too long".into()))?
                    else {
                        return Ok(false);
                    };
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16).map_err(|_| {
                        HttpError::BadChunk(format!("size `{}`", hex.chars().take(20).collect::<String>()))
                    })?;
                    self.state = State::Body(
                        BodyKind::Chunked,
                        if size == 0 { Chunk::Trailer } else { Chunk::Data(size) },
                    );
                    Ok(true)
                }
                Chunk::Data(left) => {
                    let n = self.pending.len().min(left);
                    if n == 0 {
                        return Ok(false);
                    }
                    self.push_body(n)?;
                    self.state = State::Body(
                        BodyKind::Chunked,
                        if n == left { Chunk::DataEnd } else { Chunk::Data(left - n) },
                    );
                    Ok(true)
                }
                Chunk::DataEnd => {
                    if self.pending.len() < 2 {
                        return Ok(false);
                    }
                    if &self.pending[..2] != b"\r\n" {
                        return Err(HttpError::BadChunk("data not followed by CRLF".into()));
                    }
                    self.pending.drain(..2);
                    self.state = State::Body(BodyKind::Chunked, Chunk::Size);
                    Ok(true)
                }
                Chunk::Trailer => {
                    let Some(line) = self.take_line(MAX_HEAD, HttpError::HeadTooLong)? else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                    Ok(true)
                }
            },
        }
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], step: usize) -> Result<Response, HttpError> {
        let mut r = Response::new(1 << 20);
        for piece in bytes.chunks(step) {
            r.feed(piece)?;
        }
        Ok(r)
    }

    #[test]
    fn content_length_any_split() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nCONTENT-LENGTH: 13\r\n\r\n{\"a\":\"hello\"}";
        for step in 1..raw.len() {
            let r = feed_split(raw, step).unwrap();
            assert!(r.is_done(), "step {step}");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("Content-Type"), Some("application/json"));
            assert_eq!(r.body, b"{\"a\":\"hello\"}");
        }
    }

    #[test]
    fn chunked_any_split() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nb\r\n, world!!!!\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in 1..raw.len() {
            let r = feed_split(raw, step).unwrap();
            assert!(r.is_done(), "step {step}");
            assert_eq!(r.body, b"hello, world!!!!");
        }
    }

    #[test]
    fn until_close_and_truncation() {
        let mut r = Response::new(100);
        r.feed(b"HTTP/1.0 200 OK\r\n\r\nabc").unwrap();
        assert!(!r.is_done());
        r.eof().unwrap();
        assert_eq!(r.body, b"abc");
        let mut r = Response::new(100);
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        assert_eq!(r.eof(), Err(HttpError::Truncated));
        let mut r = Response::new(100);
        r.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").unwrap();
        assert_eq!(r.eof(), Err(HttpError::Truncated));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(feed_split(b"SSH-2.0-OpenSSH\r\n\r\n", 3), Err(HttpError::BadStatusLine(_))));
        assert!(matches!(
            feed_split(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 4),
            Err(HttpError::BadChunk(_))
        ));
        assert!(matches!(
            feed_split(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", 4),
            Err(HttpError::BadChunk(_))
        ));
        assert!(matches!(
            feed_split(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 5),
            Err(HttpError::BadHeader(_))
        ));
        assert_eq!(feed_split(&vec![b'x'; MAX_HEAD + 10], 4096).unwrap_err(), HttpError::HeadTooLong);
        let mut r = Response::new(4);
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"),
            Err(HttpError::BodyTooLong { limit: 4 })
        );
    }

    #[test]
    fn requests() {
        let r = String::from_utf8(get("/version", false)).unwrap();
        assert!(r.starts_with("GET /version HTTP/1.1\r\nHost: docker\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
        assert_eq!(url_encode("{\"type\":[\"container\"]}"), "%7B%22type%22%3A%5B%22container%22%5D%7D");
    }
}
