//! The spool's file operations behind a trait, so that its fault tests can
//! tear a write or fail a rename the way a crash or a full disk would,
//! instead of hand-writing bytes into segment files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// A segment file open for appending.
pub trait SegmentFile: Send {
    /// Append all of `data` (one `write` for a record: a process crash
    /// leaves either nothing or a prefix of it).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Current length of the file: where the next append lands.
    fn end(&mut self) -> io::Result<u64>;
    fn sync(&mut self) -> io::Result<()>;
}

/// What the spool does to the file system.
pub trait SpoolIo: Send + Sync {
    /// Create `dir` (and parents), owner-only.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take the directory's exclusive lock, waiting up to `wait`; held until
    /// the returned guard is dropped.
    fn lock(&self, dir: &Path, wait: Duration) -> io::Result<Box<dyn Send + Sync>>;
    /// File names in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `len` bytes at `offset`.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Open (creating, owner-only) for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Replace `path` with `data` atomically (temp file, rename), owner-only.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsIo;

struct FsSegment(File);

impl SegmentFile for FsSegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
    fn end(&mut self) -> io::Result<u64> {
        self.0.seek(SeekFrom::End(0))
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

fn private_file(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

impl SpoolIo for FsIo {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }

    fn lock(&self, dir: &Path, wait: Duration) -> io::Result<Box<dyn Send + Sync>> {
        let f = private_file(&dir.join("lock"), true)?;
        let end = Instant::now() + wait;
        loop {
            // SAFETY: flock(2) on an fd owned by `f`.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Box::new(f));
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) || Instant::now() >= end {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        File::open(path)?.read_to_end(&mut data)?;
        Ok(data)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FsSegment(private_file(path, true)?)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.set_len(len)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut f = private_file(Path::new(&tmp), false)?;
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, path)
    }
}
