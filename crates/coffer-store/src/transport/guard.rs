//! The cleartext-password guard: a relay between the driver and a server on a
//! connection that may not be encrypted, which refuses a server's request for the
//! password in cleartext before the driver sees it.
//!
//! sqlx answers a Postgres `AuthenticationCleartextPassword` request, and a MySQL
//! server naming `mysql_clear_password`, with the password itself, also over a
//! connection without TLS: a server (or anyone in the path) that asks gets it. libpq
//! has `require_auth` for this; sqlx has nothing, so coffer enforces it in the
//! protocol. The driver connects to a Unix socket in a private directory (mode 0700);
//! for each connection the guard opens TCP to the real server and relays:
//!
//! - **Postgres**: an `SSLRequest` answered `S` means TLS from then on, relayed
//!   unread. Otherwise every server message up to `ReadyForQuery` is read whole before
//!   it is passed on; an `AuthenticationCleartextPassword` request is replaced by an
//!   `ErrorResponse` (SQLSTATE 28000) and both sides are closed.
//! - **MySQL**: a client `SSLRequest` means TLS from then on. Otherwise a greeting or an
//!   `AuthSwitchRequest` naming `mysql_clear_password` is refused with an `ERR` packet
//!   (1251) and the client's answer never leaves the process.
//!
//! After authentication every byte is copied unread. The cost is one local relay hop,
//! paid only where a password meets a mode that may end without TLS (`prefer` on
//! loopback, a mode written out as weaker); `verify-full` and friends never use it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::Protocol;

/// What the guard says when it refuses: [`super::connect_failure`] recognises it.
pub const REFUSAL: &str = "coffer refused: the server asked for the password in cleartext \
                           over a connection without TLS";

/// The largest startup-phase message the guard reads whole (1 MiB).
const MAX_MESSAGE: usize = 1 << 20;
const PG_SSL_REQUEST: u32 = 80_877_103;
const PG_GSSENC_REQUEST: u32 = 80_877_104;
const PG_AUTH_CLEARTEXT: u32 = 3;
const MYSQL_CLIENT_SSL: u32 = 0x0800;
const MYSQL_CLEAR_PLUGIN: &[u8] = b"mysql_clear_password";

/// A running guard for one server. Dropping it stops accepting connections and removes
/// its socket directory; relays already running finish on their own.
#[derive(Debug)]
pub struct CleartextGuard {
    dir: tempfile::TempDir,
    socket: PathBuf,
    last_failure: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl CleartextGuard {
    /// Starts a guard in front of `host:port`. Connect the driver to
    /// [`socket_path`](Self::socket_path) (MySQL) or to the directory
    /// [`socket_dir`](Self::socket_dir) with the same `port` (Postgres: sqlx and libpq
    /// look for `.s.PGSQL.{port}` in it).
    pub fn start(protocol: Protocol, host: &str, port: u16) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("coffer-guard-").tempdir()?;
        let socket = match protocol {
            Protocol::Postgres => dir.path().join(format!(".s.PGSQL.{port}")),
            Protocol::Mysql => dir.path().join("mysqld.sock"),
        };
        let listener = UnixListener::bind(&socket)?;
        let last_failure = Arc::new(Mutex::new(None));
        let failures = Arc::clone(&last_failure);
        let host = host.trim_matches(['[', ']']).to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let host = host.clone();
                let failures = Arc::clone(&failures);
                tokio::spawn(async move {
                    let server = match TcpStream::connect((host.as_str(), port)).await {
                        Ok(s) => s,
                        Err(e) => {
                            record(&failures, format!("cannot connect: {}", e.kind()));
                            return;
                        }
                    };
                    let _ = server.set_nodelay(true);
                    let outcome = match protocol {
                        Protocol::Postgres => relay_postgres(client, server).await,
                        Protocol::Mysql => relay_mysql(client, server).await,
                    };
                    if let Err(Refused) = outcome {
                        record(&failures, REFUSAL.to_owned());
                        tracing::warn!(%host, port, "{REFUSAL}; the password was not sent");
                    }
                });
            }
        });
        Ok(Self {
            dir,
            socket,
            last_failure,
            task,
        })
    }

    /// The socket the driver connects to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The directory holding the socket (for Postgres drivers, which take a directory).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last refusal or connect failure, for an error message that says what happened.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().ok().and_then(|f| f.clone())
    }
}

impl Drop for CleartextGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(failures: &Mutex<Option<String>>, what: String) {
    if let Ok(mut f) = failures.lock() {
        *f = Some(what);
    }
}

/// The relay refused the server's request for a cleartext password.
struct Refused;

/// A relay's end: refused, or finished (whatever the I/O did).
type Outcome = Result<(), Refused>;

async fn relay_postgres(mut client: UnixStream, mut server: TcpStream) -> Outcome {
    let Ok(mut head) = read_array::<8>(&mut client).await else {
        return Ok(());
    };
    // SSLRequest / GSSENCRequest: the server answers with one byte.
    loop {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len != 8 || !matches!(code, PG_SSL_REQUEST | PG_GSSENC_REQUEST) {
            break;
        }
        let answer = async {
            server.write_all(&head).await?;
            let answer = read_array::<1>(&mut server).await?;
            client.write_all(&answer).await?;
            io::Result::Ok(answer[0])
        };
        match answer.await {
            // Encrypted from here on: nothing to read, nothing a server can ask in clear.
            Ok(b'S' | b'G') => return copy_both(client, server).await,
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
        match read_array::<8>(&mut client).await {
            Ok(next) => head = next,
            Err(_) => return Ok(()),
        }
    }
    if server.write_all(&head).await.is_err() {
        return Ok(());
    }
    relay_start_up(Framing::Postgres, client, server).await
}

async fn relay_mysql(mut client: UnixStream, mut server: TcpStream) -> Outcome {
    let Ok((greeting_header, greeting)) = Framing::Mysql.read(&mut server).await else {
        return Ok(());
    };
    let clear = greeting_plugin(&greeting).is_some_and(|p| p == MYSQL_CLEAR_PLUGIN);
    if client.write_all(&greeting_header).await.is_err()
        || client.write_all(&greeting).await.is_err()
    {
        return Ok(());
    }
    let Ok((header, answer)) = Framing::Mysql.read(&mut client).await else {
        return Ok(());
    };
    let ssl_request = answer.len() == 32
        && u32::from_le_bytes([answer[0], answer[1], answer[2], answer[3]]) & MYSQL_CLIENT_SSL != 0;
    if clear && !ssl_request {
        // The answer to a clear-text plugin is the password: none of it leaves here.
        drop(server);
        let _ = client
            .write_all(&mysql_error(header[3].wrapping_add(1), REFUSAL))
            .await;
        return Err(Refused);
    }
    if server.write_all(&header).await.is_err() || server.write_all(&answer).await.is_err() {
        return Ok(());
    }
    if ssl_request {
        return copy_both(client, server).await;
    }
    relay_start_up(Framing::Mysql, client, server).await
}

/// How a protocol frames the server's start-up messages.
#[derive(Clone, Copy)]
enum Framing {
    /// A type byte and a 4-byte big-endian length that counts itself.
    Postgres,
    /// A 3-byte little-endian length and a sequence number.
    Mysql,
}

/// What the relay does with one server message during start-up.
enum Step {
    /// Pass it on and read the next.
    Forward,
    /// Pass it on: start-up is over, copy the rest unread.
    Done,
    /// A request for the password in cleartext: answer the client with this error.
    Refuse(Vec<u8>),
}

impl Framing {
    async fn read(self, r: &mut (impl AsyncRead + Unpin)) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let (header, len) = match self {
            Framing::Postgres => {
                let h = read_array::<5>(r).await?;
                let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
                if len < 4 {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                (h.to_vec(), len - 4)
            }
            Framing::Mysql => {
                let h = read_array::<4>(r).await?;
                let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
                (h.to_vec(), len)
            }
        };
        if len > MAX_MESSAGE {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).await?;
        Ok((header, body))
    }

    fn step(self, header: &[u8], body: &[u8]) -> Step {
        match self {
            Framing::Postgres => match header[0] {
                b'R' if body.get(..4) == Some(&PG_AUTH_CLEARTEXT.to_be_bytes()[..]) => {
                    Step::Refuse(pg_error(REFUSAL))
                }
                // ReadyForQuery ends the start-up; an ErrorResponse ends the connection.
                b'Z' | b'E' => Step::Done,
                _ => Step::Forward,
            },
            Framing::Mysql => match body.first() {
                Some(0xFE) if nul_terminated(&body[1..]) == MYSQL_CLEAR_PLUGIN => {
                    Step::Refuse(mysql_error(header[3], REFUSAL))
                }
                // OK ends authentication; ERR ends the connection.
                Some(0x00 | 0xFF) => Step::Done,
                _ => Step::Forward,
            },
        }
    }
}

/// The start-up after any TLS negotiation: the client's bytes copied unread (the
/// password it would send answers a request the relay saw first), every server message
/// read whole and judged before it is passed on, then both directions copied unread.
async fn relay_start_up(framing: Framing, client: UnixStream, server: TcpStream) -> Outcome {
    let (client_read, mut client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(copy_then_close(client_read, server_write));
    let mut server_read = BufReader::new(server_read);
    while let Ok((header, body)) = framing.read(&mut server_read).await {
        let step = framing.step(&header, &body);
        if let Step::Refuse(reply) = step {
            up.abort();
            let _ = client_write.write_all(&reply).await;
            let _ = client_write.shutdown().await;
            return Err(Refused);
        }
        if client_write.write_all(&header).await.is_err()
            || client_write.write_all(&body).await.is_err()
        {
            break;
        }
        if matches!(step, Step::Done) {
            copy_then_close(server_read, client_write).await;
            let _ = up.await;
            return Ok(());
        }
    }
    up.abort();
    Ok(())
}

async fn read_array<const N: usize>(r: &mut (impl AsyncRead + Unpin)) -> io::Result<[u8; N]> {
    let mut buf = [0; N];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// The auth plugin a MySQL HandshakeV10 greeting names, if it names one.
fn greeting_plugin(p: &[u8]) -> Option<&[u8]> {
    if p.first() != Some(&10) {
        return None;
    }
    let version_end = 1 + p.get(1..)?.iter().position(|&b| b == 0)? + 1;
    // connection id (4), auth data part 1 (8), filler (1), capabilities low (2),
    // charset (1), status (2), capabilities high (2), auth data length (1), reserved (10)
    let mut at = version_end + 4 + 8 + 1;
    let caps_low = u16::from_le_bytes([*p.get(at)?, *p.get(at + 1)?]);
    at += 2 + 1 + 2;
    let caps_high = u16::from_le_bytes([*p.get(at)?, *p.get(at + 1)?]);
    at += 2;
    let auth_len = usize::from(*p.get(at)?);
    at += 1 + 10;
    let caps = u32::from(caps_low) | u32::from(caps_high) << 16;
    const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
    const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
    if caps & CLIENT_SECURE_CONNECTION != 0 {
        at += auth_len.saturating_sub(8).max(13);
    }
    if caps & CLIENT_PLUGIN_AUTH == 0 {
        return None;
    }
    Some(nul_terminated(p.get(at..)?))
}

fn nul_terminated(p: &[u8]) -> &[u8] {
    p.iter().position(|&b| b == 0).map_or(p, |end| &p[..end])
}

fn pg_error(message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28000"),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(u32::try_from(fields.len() + 4).unwrap_or(u32::MAX)).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

fn mysql_error(sequence: u8, message: &str) -> Vec<u8> {
    // ER_NOT_SUPPORTED_AUTH_MODE, SQLSTATE 08004.
    let mut payload = vec![0xFF];
    payload.extend_from_slice(&1251u16.to_le_bytes());
    payload.extend_from_slice(b"#08004");
    payload.extend_from_slice(message.as_bytes());
    let len = payload.len().to_le_bytes();
    let mut out = vec![len[0], len[1], len[2], sequence];
    out.extend_from_slice(&payload);
    out
}

async fn copy_both(client: UnixStream, server: TcpStream) -> Outcome {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        copy_then_close(client_read, server_write),
        copy_then_close(server_read, client_write),
    );
    Ok(())
}

async fn copy_then_close(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_plugin_of_a_mysql_greeting() {
        let mut g = vec![10];
        g.extend_from_slice(b"10.11.6-MariaDB\0");
        g.extend_from_slice(&[1, 0, 0, 0]); // connection id
        g.extend_from_slice(&[b'a'; 8]);
        g.push(0);
        g.extend_from_slice(&0xF7FFu16.to_le_bytes()); // caps low, secure connection
        g.push(33);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0x0008u16.to_le_bytes()); // caps high: plugin auth
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(&[b'b'; 12]);
        g.push(0);
        g.extend_from_slice(b"mysql_clear_password\0");
        assert_eq!(greeting_plugin(&g), Some(MYSQL_CLEAR_PLUGIN));
        assert_eq!(greeting_plugin(&g[..20]), None);
        assert_eq!(greeting_plugin(&[]), None);
    }

    #[test]
    fn error_messages_are_well_formed() {
        let e = pg_error("x");
        assert_eq!(e[0], b'E');
        assert_eq!(
            u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize,
            e.len() - 1
        );
        let m = mysql_error(2, "x");
        assert_eq!(usize::from(m[0]), m.len() - 4);
        assert_eq!((m[3], m[4]), (2, 0xFF));
    }
}
