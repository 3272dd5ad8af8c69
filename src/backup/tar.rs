//! Just enough of POSIX ustar to write and read backup archives as async
//! streams: regular files only, written by us or by any tar that keeps them
//! as regular files.
//!
//! Not the `tar` crate: it is synchronous (a backup is written to stdout, an
//! HTTP body or an S3 upload, all async) and swallows errors on drop. The
//! format is small enough to own: a 512-byte header, the content, zero
//! padding to the next 512 bytes, and two zero blocks at the end.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub const BLOCK: usize = 512;

/// The largest size the 11 octal digits of a ustar header hold; larger
/// members use GNU tar's base-256 size field, which every current tar reads.
const OCTAL_SIZE_LIMIT: u64 = 0o77777777777;

/// Bytes of zero padding after `size` bytes of content.
pub fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// A header for a regular file of `size` bytes, mode 0644, owned by root.
pub fn header(path: &str, size: u64, mtime: i64) -> io::Result<[u8; BLOCK]> {
    let mut block = [0u8; BLOCK];
    let (prefix, name) = split_path(path)?;
    block[..name.len()].copy_from_slice(name.as_bytes());
    block[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    octal(&mut block[100..108], 0o644);
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    if size <= OCTAL_SIZE_LIMIT {
        octal(&mut block[124..136], size);
    } else {
        block[124] = 0x80;
        block[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut block[136..148], mtime.max(0) as u64);
    block[156] = b'0';
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[265..268].copy_from_slice(b"msr");
    block[297..300].copy_from_slice(b"msr");
    let sum = checksum(&block);
    // Six octal digits, NUL, space: what GNU and BSD tar write.
    block[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    block[154] = 0;
    block[155] = b' ';
    Ok(block)
}

/// ustar keeps up to 100 bytes of name and 155 of prefix, split at a `/`.
fn split_path(path: &str) -> io::Result<(&str, &str)> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("archive path {path:?} is too long for a ustar header"),
        )
    };
    let split = path[..path.len().min(156)]
        .rfind('/')
        .ok_or_else(too_long)?;
    let (prefix, name) = (&path[..split], &path[split + 1..]);
    if name.is_empty() || name.len() > 100 {
        return Err(too_long());
    }
    Ok((prefix, name))
}

/// Zero-padded octal digits filling all but the field's last byte (a NUL).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// The header checksum: the byte sum with the checksum field as spaces.
fn checksum(block: &[u8; BLOCK]) -> u64 {
    block[..148]
        .iter()
        .chain(std::iter::repeat_n(&b' ', 8))
        .chain(&block[156..])
        .map(|&b| u64::from(b))
        .sum()
}

/// Writes members one after another; [`TarWriter::finish`] writes the end
/// marker. Dropping it without `finish` leaves an archive that every reader
/// (ours and tar) sees as truncated.
pub struct TarWriter<W> {
    inner: W,
    /// Content bytes still owed to the member being written.
    remaining: u64,
    padding: usize,
    written: u64,
}

impl<W: AsyncWrite + Unpin> TarWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            written: 0,
        }
    }

    /// Starts a member of exactly `size` bytes, to be given to `write`.
    pub async fn start(&mut self, path: &str, size: u64, mtime: i64) -> io::Result<()> {
        self.end_member().await?;
        let header = header(path, size, mtime)?;
        self.inner.write_all(&header).await?;
        self.written += BLOCK as u64;
        self.remaining = size;
        self.padding = padding(size);
        Ok(())
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 > self.remaining {
            return Err(io::Error::other(
                "member content is longer than its header says",
            ));
        }
        self.inner.write_all(bytes).await?;
        self.remaining -= bytes.len() as u64;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// A whole member at once.
    pub async fn append(&mut self, path: &str, content: &[u8], mtime: i64) -> io::Result<()> {
        self.start(path, content.len() as u64, mtime).await?;
        self.write(content).await
    }

    async fn end_member(&mut self) -> io::Result<()> {
        if self.remaining != 0 {
            return Err(io::Error::other(format!(
                "member content is {} bytes shorter than its header says",
                self.remaining
            )));
        }
        if self.padding > 0 {
            self.inner.write_all(&[0u8; BLOCK][..self.padding]).await?;
            self.written += self.padding as u64;
            self.padding = 0;
        }
        Ok(())
    }

    /// Bytes written so far, headers and padding included.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the last member, writes the two zero blocks that end an archive,
    /// flushes, and hands back the writer and the archive's size.
    pub async fn finish(mut self) -> io::Result<(W, u64)> {
        self.end_member().await?;
        self.inner.write_all(&[0u8; 2 * BLOCK]).await?;
        self.written += 2 * BLOCK as u64;
        self.inner.flush().await?;
        Ok((self.inner, self.written))
    }
}

/// One member's header, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
}

/// Why a stream is not a well-formed archive.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The stream ended inside a header or a member.
    #[error("the archive is truncated{}", match .0 { Some(path) => format!(" in member {path}"), None => String::new() })]
    Truncated(Option<String>),
    #[error("{0}")]
    Malformed(String),
}

/// Reads members in order: [`TarReader::next`] gives a header, then
/// `read` gives its content until it returns 0.
pub struct TarReader<R> {
    inner: R,
    current: Option<String>,
    remaining: u64,
    padding: usize,
    /// Offset of the next byte, for messages.
    offset: u64,
}

impl<R: AsyncRead + Unpin> TarReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            current: None,
            remaining: 0,
            padding: 0,
            offset: 0,
        }
    }

    /// The next member's header, or `None` at the end marker. Skips what is
    /// left of the previous member's content.
    pub async fn next(&mut self) -> Result<Option<Entry>, ReadError> {
        while self.remaining > 0 {
            let mut sink = [0u8; 8192];
            if self.read(&mut sink).await? == 0 {
                break;
            }
        }
        if self.padding > 0 {
            let mut pad = [0u8; BLOCK];
            let padding = self.padding;
            self.read_exact(&mut pad[..padding]).await?;
            self.padding = 0;
        }
        self.current = None;
        let mut block = [0u8; BLOCK];
        let start = self.offset;
        let got = self.read_up_to(&mut block).await?;
        if got == 0 && start == 0 {
            return Err(ReadError::Malformed("the file is empty".into()));
        }
        if got < BLOCK {
            return Err(ReadError::Truncated(None));
        }
        if block.iter().all(|&b| b == 0) {
            // The end marker is two zero blocks; some writers stop after one.
            let mut second = [0u8; BLOCK];
            let got = self.read_up_to(&mut second).await?;
            if got != 0 && (got < BLOCK || second.iter().any(|&b| b != 0)) {
                return Err(ReadError::Malformed(format!(
                    "data after the end-of-archive marker at byte {start}"
                )));
            }
            return Ok(None);
        }
        let entry = parse_header(&block, start)?;
        self.current = Some(entry.path.clone());
        self.remaining = entry.size;
        self.padding = padding(entry.size);
        Ok(Some(entry))
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Content of the current member; 0 at its end.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..want]).await?;
        if got == 0 {
            return Err(ReadError::Truncated(self.current.clone()));
        }
        self.remaining -= got as u64;
        self.offset += got as u64;
        Ok(got)
    }

    /// The rest of the current member, refused if longer than `limit`.
    pub async fn read_to_end(&mut self, limit: u64) -> Result<Vec<u8>, ReadError> {
        if self.remaining > limit {
            return Err(ReadError::Malformed(format!(
                "member {} is {} bytes, more than the {limit} an msr archive writes",
                self.current.as_deref().unwrap_or("?"),
                self.remaining
            )));
        }
        let mut content = vec![0u8; self.remaining as usize];
        self.read_exact(&mut content).await?;
        Ok(content)
    }

    /// Whether anything follows the end marker (a well-formed archive may
    /// be padded with zeros to a record boundary, nothing else).
    pub async fn expect_eof(&mut self) -> Result<(), ReadError> {
        let mut buf = [0u8; 8192];
        loop {
            let got = self.inner.read(&mut buf).await?;
            if got == 0 {
                return Ok(());
            }
            if buf[..got].iter().any(|&b| b != 0) {
                return Err(ReadError::Malformed(
                    "data after the end-of-archive marker".into(),
                ));
            }
        }
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        let mut filled = 0;
        while filled < buf.len() {
            let got = self.inner.read(&mut buf[filled..]).await?;
            if got == 0 {
                return Err(ReadError::Truncated(self.current.clone()));
            }
            filled += got;
            self.offset += got as u64;
        }
        // Padding is read through here too; it does not count as content.
        self.remaining = self.remaining.saturating_sub(buf.len() as u64);
        Ok(())
    }

    /// Fills `buf` unless the stream ends first; returns how much it got.
    async fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut filled = 0;
        while filled < buf.len() {
            let got = self.inner.read(&mut buf[filled..]).await?;
            if got == 0 {
                break;
            }
            filled += got;
        }
        self.offset += filled as u64;
        Ok(filled)
    }
}

fn parse_header(block: &[u8; BLOCK], offset: u64) -> Result<Entry, ReadError> {
    let not_tar = || {
        ReadError::Malformed(format!(
            "not a tar archive: no valid header at byte {offset}"
        ))
    };
    if &block[257..262] != b"ustar" {
        return Err(not_tar());
    }
    let stored = parse_octal(&block[148..156]).ok_or_else(not_tar)?;
    if stored != checksum(block) {
        return Err(ReadError::Malformed(format!(
            "damaged tar header at byte {offset} (its checksum does not match)"
        )));
    }
    let name = text(&block[..100]);
    let prefix = text(&block[345..500]);
    let path = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    match block[156] {
        b'0' | 0 => {}
        other => {
            return Err(ReadError::Malformed(format!(
                "member {path} is not a regular file (type {:?}); msr archives hold only files",
                char::from(other)
            )));
        }
    }
    let size = if block[124] & 0x80 != 0 {
        block[125..136]
            .iter()
            .fold(u64::from(block[124] & 0x7f), |acc, &b| {
                acc.saturating_mul(256).saturating_add(u64::from(b))
            })
    } else {
        parse_octal(&block[124..136]).ok_or_else(not_tar)?
    };
    Ok(Entry { path, size })
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Octal digits, optionally surrounded by spaces and NULs.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let digits: &[u8] = {
        let start = field.iter().position(|&b| b != b' ')?;
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = TarWriter::new(Vec::new());
        for (path, content) in members {
            writer.append(path, content, 1_700_000_000).await.unwrap();
        }
        writer.finish().await.unwrap().0
    }

    async fn members(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ReadError> {
        let mut reader = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(entry) = reader.next().await? {
            let content = reader.read_to_end(1 << 20).await?;
            assert_eq!(content.len() as u64, entry.size);
            out.push((entry.path, content));
        }
        reader.expect_eof().await?;
        Ok(out)
    }

    #[tokio::test]
    async fn round_trip_and_system_tar_agree() {
        let long = format!("metadata/{}/table/000001.ndjson.gz", "d".repeat(120));
        let bytes = archive(&[
            ("backup.json", b"{}"),
            ("empty", b""),
            ("exact", &[7u8; 512]),
            (&long, b"x"),
        ])
        .await;
        assert_eq!(bytes.len() % BLOCK, 0);
        let read = members(&bytes).await.unwrap();
        let paths: Vec<&str> = read.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["backup.json", "empty", "exact", long.as_str()]);
        assert_eq!(read[2].1, vec![7u8; 512]);

        // GNU tar must see the same members: the archive is for any tar.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        std::fs::write(&file, &bytes).unwrap();
        let listing = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&file)
            .output()
            .unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let listed = String::from_utf8(listing.stdout).unwrap();
        assert_eq!(listed.lines().collect::<Vec<_>>(), paths);
    }

    #[tokio::test]
    async fn reads_what_gnu_tar_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one"), b"hello").unwrap();
        let output = std::process::Command::new("tar")
            .args(["--format=ustar", "-cf", "-", "-C"])
            .arg(dir.path())
            .arg("one")
            .output()
            .unwrap();
        assert!(output.status.success());
        let read = members(&output.stdout).await.unwrap();
        assert_eq!(read, vec![("one".to_owned(), b"hello".to_vec())]);
    }

    #[test]
    fn sizes_past_the_octal_field_use_base_256() {
        let big = OCTAL_SIZE_LIMIT + 10;
        let block = header("blob", big, 0).unwrap();
        assert_eq!(parse_header(&block, 0).unwrap().size, big);
        let small = header("blob", 12345, 0).unwrap();
        assert_eq!(parse_header(&small, 0).unwrap().size, 12345);
    }

    #[tokio::test]
    async fn damage_is_named() {
        let bytes = archive(&[("a", b"content"), ("b", b"more")]).await;
        assert!(matches!(
            members(&bytes[..BLOCK + 3]).await,
            Err(ReadError::Truncated(Some(path))) if path == "a"
        ));
        assert!(matches!(
            members(&bytes[..2 * BLOCK + 100]).await,
            Err(ReadError::Truncated(None))
        ));
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        let err = members(&flipped).await.unwrap_err().to_string();
        assert!(err.contains("damaged tar header at byte 0"), "{err}");
        let err = members(b"").await.unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let err = members(&[b'x'; 1024]).await.unwrap_err().to_string();
        assert!(err.contains("not a tar archive"), "{err}");
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"junk");
        assert!(members(&trailing).await.is_err());
        let mut shorter = TarWriter::new(Vec::new());
        shorter.start("a", 10, 0).await.unwrap();
        shorter.write(b"abc").await.unwrap();
        assert!(shorter.finish().await.is_err());
    }
}
