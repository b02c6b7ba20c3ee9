//! A streaming tar reader with bounds: ustar, GNU long names and links (`L`/`K`), PAX
//! extended headers (`path`, `linkpath`, `size`, `mtime`) and base-256 numbers, as written by
//! GNU tar and by Jenkins' `TarArchiver` (commons-compress, POSIX mode).
//!
//! No file system here: entries and their bytes come out of any `Read`; the caller decides
//! what to do with them (`handlers::untar`). Every length is checked before anything is
//! allocated: a name may not exceed [`MAX_NAME`], a PAX header [`MAX_PAX`], so a hostile
//! archive cannot make the reader allocate more than about a megabyte.

use std::io::{self, Read};

/// Longest entry name or link target accepted (GNU `L`/`K` data, PAX `path`/`linkpath`).
pub const MAX_NAME: u64 = 64 << 10;
/// Largest PAX extended header accepted.
pub const MAX_PAX: u64 = 1 << 20;

const BLOCK: usize = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (`0`, NUL, or `7` contiguous).
    File,
    /// A hard link to `link` (`1`).
    HardLink,
    /// A symbolic link to `link` (`2`).
    Symlink,
    /// A directory (`5`).
    Dir,
    /// Anything else (devices, FIFOs, unknown types): its type byte.
    Other(u8),
}

/// One entry's header, with long names and PAX overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The entry's path as stored (bytes; not yet checked or normalised).
    pub path: Vec<u8>,
    /// The link target for links.
    pub link: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits as stored.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Bytes of data that follow.
    pub size: u64,
}

/// Reads entries one after the other; the current entry's data is read through [`Read`].
pub struct TarReader<R> {
    inner: R,
    /// Bytes of the current entry's data not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Offset in the archive, for error messages.
    offset: u64,
    done: bool,
}

fn bad(offset: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a valid tar archive at byte {offset}: {what}"),
    )
}

/// The bytes of `field` up to the first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric header field: octal text (spaces and NULs around it), or base-256 when the
/// high bit of the first byte is set.
fn number(field: &[u8], offset: u64, name: &str) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(bad(offset, format!("negative {name}")));
        }
        let mut v: u64 = (field[0] & 0x3f) as u64;
        for b in &field[1..] {
            if v >> 56 != 0 {
                return Err(bad(offset, format!("{name} too large")));
            }
            v = (v << 8) | *b as u64;
        }
        return Ok(v);
    }
    let text = cstr(field);
    let digits: Vec<u8> = text.iter().copied().filter(|b| *b != b' ').collect();
    if digits.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return Err(bad(offset, format!("{name} is not an octal number")));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add((d - b'0') as u64))
            .ok_or_else(|| bad(offset, format!("{name} too large")))?;
    }
    Ok(v)
}

/// Overrides from GNU long-name entries and PAX headers, applied to the next real entry.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<u64>,
}

impl<R: Read> TarReader<R> {
    /// A reader of the archive in `inner`.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            offset: 0,
            done: false,
        }
    }

    /// The reader underneath (to drain what follows the end of the archive).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut have = 0;
        while have < BLOCK {
            match self.inner.read(&mut block[have..]) {
                Ok(0) if have == 0 => return Ok(false),
                Ok(0) => return Err(bad(self.offset, "the archive ends inside a header")),
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// Skips what is left of the current entry (data and padding).
    fn skip_rest(&mut self) -> io::Result<()> {
        let n = self.remaining + self.padding;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
            self.offset += copied;
            if copied < n {
                return Err(bad(self.offset, "the archive ends inside an entry"));
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    /// Reads the data of a meta entry of `size` bytes (at most `max`) into memory.
    fn read_meta(&mut self, size: u64, max: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > max {
            return Err(bad(
                self.offset,
                format!("{what} of {size} bytes (at most {max} accepted)"),
            ));
        }
        let mut data = Vec::with_capacity(size as usize);
        let n = (&mut self.inner).take(size).read_to_end(&mut data)? as u64;
        self.offset += n;
        if n < size {
            return Err(bad(
                self.offset,
                format!("the archive ends inside a {what}"),
            ));
        }
        self.remaining = 0;
        self.padding = pad(size);
        self.skip_rest()?;
        Ok(data)
    }

    /// The next entry, `None` at the end of the archive. Unread data of the previous entry is
    /// skipped.
    pub fn next_entry(&mut self) -> io::Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pending = Pending::default();
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                // EOF without the end-of-archive blocks: accepted, as Java's readers do.
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = number(&block[148..156], at, "checksum")?;
            // The checksum field counts as spaces; old writers summed signed bytes.
            let (unsigned, signed) =
                block
                    .iter()
                    .enumerate()
                    .fold((0u64, 0i64), |(u, s), (i, b)| {
                        let (bu, bs) = if (148..156).contains(&i) {
                            (32, 32)
                        } else {
                            (*b as u64, *b as i8 as i64)
                        };
                        (u + bu, s + bs)
                    });
            if stored != unsigned && stored as i64 != signed {
                return Err(bad(at, "header checksum mismatch"));
            }
            let size = number(&block[124..136], at, "size")?;
            let kind_byte = block[156];
            match kind_byte {
                b'L' | b'K' => {
                    let (what, slot) = if kind_byte == b'L' {
                        ("GNU long name", &mut pending.path)
                    } else {
                        ("GNU long link", &mut pending.link)
                    };
                    let name = self.read_meta(size, MAX_NAME, what)?;
                    *slot = Some(cstr(&name).to_vec());
                    continue;
                }
                b'x' => {
                    let pax = self.read_meta(size, MAX_PAX, "PAX header")?;
                    apply_pax(&pax, &mut pending, at)?;
                    continue;
                }
                b'g' => {
                    // Global PAX defaults: nothing the agent uses.
                    self.read_meta(size, MAX_PAX, "PAX global header")?;
                    continue;
                }
                _ => {}
            }
            let name = cstr(&block[..100]);
            let magic = &block[257..263];
            let mut path = if magic == b"ustar\0" && block[345] != 0 {
                let mut p = cstr(&block[345..500]).to_vec();
                p.push(b'/');
                p.extend_from_slice(name);
                p
            } else {
                name.to_vec()
            };
            if let Some(p) = pending.path.take() {
                path = p;
            }
            let link = pending
                .link
                .take()
                .unwrap_or_else(|| cstr(&block[157..257]).to_vec());
            let kind = match kind_byte {
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'5' => Kind::Dir,
                other => Kind::Other(other),
            };
            // Old archives mark directories with a trailing slash on a file entry.
            let kind = if kind == Kind::File && path.ends_with(b"/") {
                Kind::Dir
            } else {
                kind
            };
            let size = pending.size.unwrap_or(size);
            let header = Header {
                path,
                link,
                kind,
                mode: number(&block[100..108], at, "mode")? as u32,
                mtime: match pending.mtime {
                    Some(t) => t,
                    None => number(&block[136..148], at, "mtime")?,
                },
                // Links carry no data whatever their size field says.
                size: if matches!(kind, Kind::HardLink | Kind::Symlink) {
                    0
                } else {
                    size
                },
            };
            self.remaining = header.size;
            self.padding = pad(header.size);
            return Ok(Some(header));
        }
    }
}

fn pad(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// PAX records: `"<len> <key>=<value>\n"`, `len` counting the whole record.
fn apply_pax(pax: &[u8], pending: &mut Pending, at: u64) -> io::Result<()> {
    let mut rest = pax;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad(at, "PAX record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(at, "PAX record length is not a number"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad(at, "PAX record length does not fit"));
        }
        let record = &rest[sp + 1..len - 1];
        rest = &rest[len..];
        let Some(eq) = record.iter().position(|b| *b == b'=') else {
            return Err(bad(at, "PAX record without '='"));
        };
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let decimal = |v: &[u8]| -> io::Result<u64> {
            let int = v.split(|b| *b == b'.').next().unwrap_or_default();
            std::str::from_utf8(int)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(at, "PAX number is not a decimal"))
        };
        match key {
            b"path" => pending.path = Some(value.to_vec()),
            b"linkpath" => pending.link = Some(value.to_vec()),
            b"size" => pending.size = Some(decimal(value)?),
            // A negative mtime (before 1970) is kept as 0.
            b"mtime" if value.first() == Some(&b'-') => pending.mtime = Some(0),
            b"mtime" => pending.mtime = Some(decimal(value)?),
            _ => {}
        }
    }
    Ok(())
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad(self.offset, "the archive ends inside an entry"));
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

/// A raw ustar header block for `name` (mode 0644, a fixed mtime): no checks at all, so
/// tests can write the archives tar tools refuse to make (`../x`, bad links).
#[doc(hidden)]
pub fn ustar_header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; BLOCK];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", size & 0o77777777777).as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = kind;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Reads every entry and all its data from `bytes`; what the fuzz target runs. Returns the
/// entries' headers or the first error.
pub fn scan(bytes: &[u8]) -> io::Result<Vec<Header>> {
    let mut r = TarReader::new(bytes);
    let mut out = Vec::new();
    while let Some(h) = r.next_entry()? {
        io::copy(&mut r, &mut io::sink())?;
        out.push(h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(out: &mut Vec<u8>, name: &[u8], kind: u8, data: &[u8], link: &[u8]) {
        out.extend(ustar_header(name, kind, data.len() as u64, link));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn reads_ustar_gnu_long_names_and_pax() {
        let long = vec![b'n'; 300];
        let mut t = Vec::new();
        entry(&mut t, b"a.txt", b'0', b"hello", b"");
        entry(
            &mut t,
            b"././@LongLink",
            b'L',
            &[&long[..], b"\0"].concat(),
            b"",
        );
        entry(&mut t, b"short", b'0', b"x", b"");
        let pax = b"17 path=pax/name\n19 linkpath=target\n";
        entry(&mut t, b"PaxHeader", b'x', pax, b"");
        entry(&mut t, b"ignored", b'2', b"", b"ignored-too");
        entry(&mut t, b"d/", b'5', b"", b"");
        t.resize(t.len() + 1024, 0);
        let h = scan(&t).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!((h[0].path.as_slice(), h[0].size), (&b"a.txt"[..], 5));
        assert_eq!(h[0].mtime, 0o14000000000);
        assert_eq!(h[0].mode, 0o644);
        assert_eq!((h[1].path.clone(), h[1].kind), (long, Kind::File));
        assert_eq!(h[2].path, b"pax/name");
        assert_eq!(
            (h[2].link.as_slice(), h[2].kind),
            (&b"target"[..], Kind::Symlink)
        );
        assert_eq!(h[3].kind, Kind::Dir);
    }

    #[test]
    fn data_reads_back_and_unread_data_is_skipped() {
        let mut t = Vec::new();
        entry(&mut t, b"a", b'0', &[7u8; 1000], b"");
        entry(&mut t, b"b", b'0', b"bee", b"");
        let mut r = TarReader::new(&t[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().path, b"a");
        let b = r.next_entry().unwrap().unwrap();
        assert_eq!(b.path, b"b");
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "bee");
        assert!(
            r.next_entry().unwrap().is_none(),
            "EOF without zero blocks ends it"
        );
    }

    #[test]
    fn refuses_oversized_meta_entries_before_allocating() {
        let mut t = ustar_header(b"././@LongLink", b'L', MAX_NAME + 1, b"");
        t.resize(4096, 0);
        let e = scan(&t).unwrap_err();
        assert!(e.to_string().contains("GNU long name"), "{e}");
        let mut t = ustar_header(b"PaxHeader", b'x', MAX_PAX + 1, b"");
        t.resize(4096, 0);
        assert!(scan(&t).unwrap_err().to_string().contains("PAX header"));
    }

    #[test]
    fn bad_checksums_numbers_and_truncations_are_errors() {
        let mut t = ustar_header(b"a", b'0', 3, b"");
        t[0] = b'b';
        assert!(scan(&t).unwrap_err().to_string().contains("checksum"));
        let t = ustar_header(b"a", b'0', 3, b"");
        assert!(scan(&t).unwrap_err().to_string().contains("ends inside"));
        assert!(scan(&t[..100])
            .unwrap_err()
            .to_string()
            .contains("inside a header"));
        let mut t = Vec::new();
        entry(&mut t, b"x", b'x', b"99 path=a\n", b"");
        assert!(scan(&t).unwrap_err().to_string().contains("PAX"));
    }

    fn sample() -> Vec<u8> {
        let mut t = Vec::new();
        entry(&mut t, b"a.txt", b'0', b"hello", b"");
        entry(&mut t, b"././@LongLink", b'L', &[b'n'; 200], b"");
        entry(&mut t, b"short", b'0', &[1u8; 700], b"");
        entry(
            &mut t,
            b"PaxHeader",
            b'x',
            b"17 path=pax/name\n10 size=3\n",
            b"",
        );
        entry(&mut t, b"p", b'0', b"abc", b"");
        entry(&mut t, b"l", b'2', b"", b"a.txt");
        t.resize(t.len() + 1024, 0);
        t
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let _ = scan(&data);
        }

        #[test]
        fn truncations_and_bit_flips_never_panic(cut in 0usize..5000, flip in 0usize..40_000) {
            let mut t = sample();
            let bit = flip % (t.len() * 8);
            t[bit / 8] ^= 1 << (bit % 8);
            let _ = scan(&t);
            let t = sample();
            let _ = scan(&t[..cut.min(t.len())]);
        }
    }

    #[test]
    fn the_sample_reads_whole() {
        let h = scan(&sample()).unwrap();
        let names: Vec<&[u8]> = h.iter().map(|h| h.path.as_slice()).collect();
        assert_eq!(names, [&b"a.txt"[..], &[b'n'; 200][..], b"pax/name", b"l"]);
        assert_eq!(h[2].size, 3);
    }

    #[test]
    fn base256_sizes_are_read() {
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00], 0, "size").unwrap(),
            256
        );
        assert!(number(&[0xff; 12], 0, "size").is_err());
        assert!(number(
            &[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            0,
            "size"
        )
        .is_err());
    }
}
