//! The file-system root: every read and write of /proc, /sys and /etc goes through it, and every error names the path.
//!
//! The default root is `/`. `--root DIR` points tune at another tree: a host's
//! /proc and /sys mounted into a privileged container, or a captured tree in
//! the tests. Paths given to these methods are relative to the root
//! (`proc/sys/fs/file-max`), never absolute.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a read or write under the root failed. Every variant names the full path.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{path}: does not exist")]
    Absent { path: PathBuf },
    #[error("{path}: permission denied (run as root, or leave this knob out)")]
    Denied { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl RootError {
    fn from_io(path: PathBuf, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => RootError::Absent { path },
            // EACCES: file permissions. EPERM (the kernel refusing even root, such as a
            // namespaced sysctl) stays an Io error with the kernel's own words.
            io::ErrorKind::PermissionDenied
                if source.raw_os_error() != Some(nix::errno::Errno::EPERM as i32) =>
            {
                RootError::Denied { path }
            }
            _ => RootError::Io { path, source },
        }
    }

    /// The OS error number behind this error, if any (EINVAL from a sysctl write, EROFS, ...).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            RootError::Io { source, .. } => source.raw_os_error(),
            RootError::Denied { .. } => Some(nix::errno::Errno::EACCES as i32),
            RootError::Absent { .. } => None,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            RootError::Absent { path }
            | RootError::Denied { path }
            | RootError::Io { path, .. } => path,
        }
    }
}

/// A file-system root that tune reads the kernel's state from and writes configuration under.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    /// The live host: `/`.
    pub fn host() -> Self {
        Root {
            base: PathBuf::from("/"),
        }
    }

    /// A root at `dir`, which must be a readable directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, RootError> {
        let base: PathBuf = dir.into();
        match fs::read_dir(&base) {
            Ok(_) => Ok(Root { base }),
            Err(e) => Err(RootError::from_io(base, e)),
        }
    }

    /// True when this root is the live host's `/`.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The full path of `rel` under this root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel.trim_start_matches('/'))
    }

    /// [`Root::path`] for a read or write: a `..` component, which could lead out of the root
    /// (a tampered apply record naming `../../etc/shadow`), is refused. Every method that
    /// reads or writes through the root takes its path from here.
    fn checked(&self, rel: &str) -> Result<PathBuf, RootError> {
        let path = self.path(rel);
        if Path::new(rel)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(RootError::Io {
                path,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the path has a `..` component and could leave the root; refused",
                ),
            });
        }
        Ok(path)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Reads a whole file as text.
    pub fn read(&self, rel: &str) -> Result<String, RootError> {
        let path = self.checked(rel)?;
        fs::read_to_string(&path).map_err(|e| RootError::from_io(path, e))
    }

    /// Reads a file's bytes, or `None` when it does not exist (for configuration files that may be absent).
    pub fn read_bytes_opt(&self, rel: &str) -> Result<Option<Vec<u8>>, RootError> {
        let path = self.checked(rel)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RootError::from_io(path, e)),
        }
    }

    /// Lists the file names in a directory, sorted; an absent directory lists as empty.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>, RootError> {
        let path = self.checked(rel)?;
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RootError::from_io(path, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| RootError::from_io(path.clone(), e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Writes a kernel tunable in place (files under /proc/sys and /sys cannot be renamed over).
    /// The kernel's refusal (EINVAL for a value it rejects) comes back as `RootError::Io`.
    pub fn write_in_place(&self, rel: &str, contents: &str) -> Result<(), RootError> {
        let path = self.checked(rel)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| RootError::from_io(path.clone(), e))?;
        f.write_all(contents.as_bytes())
            .map_err(|e| RootError::from_io(path.clone(), e))
    }

    /// Writes a configuration file atomically: a temporary file beside it, fsync, rename,
    /// then fsync of the directory. Creates missing parent directories.
    pub fn write_atomic(&self, rel: &str, contents: &[u8], mode: u32) -> Result<(), RootError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = self.checked(rel)?;
        let (dir, tmp) = temp_beside(&path);
        fs::create_dir_all(&dir).map_err(|e| RootError::from_io(dir.clone(), e))?;
        // The temporary file is made new (O_EXCL) and never through a symlink (O_NOFOLLOW): one
        // planted at its name cannot redirect the write. A leftover of a killed run with the same
        // pid is removed first (unlink does not follow a symlink either).
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .mode(mode)
                .open(&tmp)?;
            f.write_all(contents)?;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&dir)?.sync_all()
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            RootError::from_io(path, e)
        })
    }

    /// Removes a file; an absent file is not an error.
    pub fn remove(&self, rel: &str) -> Result<(), RootError> {
        let path = self.checked(rel)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RootError::from_io(path, e)),
        }
    }
}

/// What a path held, captured before tune replaces it so it can be put back bit for bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Absent,
    Regular {
        mode: u32,
        uid: u32,
        gid: u32,
        bytes: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    /// A directory, device or socket where a file is expected: tune will not replace it.
    Other {
        kind: String,
    },
}

impl Root {
    /// Captures what `rel` holds now (without following a final symlink).
    pub fn snapshot(&self, rel: &str) -> Result<FileState, RootError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.checked(rel)?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Absent),
            Err(e) => return Err(RootError::from_io(path, e)),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| RootError::from_io(path.clone(), e))?;
            Ok(FileState::Symlink { target })
        } else if ft.is_file() {
            let bytes = fs::read(&path).map_err(|e| RootError::from_io(path.clone(), e))?;
            Ok(FileState::Regular {
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                bytes,
            })
        } else {
            let kind = if ft.is_dir() {
                "a directory"
            } else {
                "a special file"
            };
            Ok(FileState::Other { kind: kind.into() })
        }
    }

    /// Puts back what [`Root::snapshot`] captured: removes the file, rewrites it atomically with its
    /// mode and owner, or recreates the symlink.
    pub fn restore(&self, rel: &str, state: &FileState) -> Result<(), RootError> {
        let path = self.checked(rel)?;
        match state {
            FileState::Absent => self.remove(rel),
            FileState::Regular {
                mode,
                uid,
                gid,
                bytes,
            } => {
                self.remove_if_symlink(rel)?;
                self.write_atomic(rel, bytes, *mode)?;
                std::os::unix::fs::chown(&path, Some(*uid), Some(*gid))
                    .map_err(|e| RootError::from_io(path.clone(), e))?;
                // chown clears set-id bits: put the mode back once more.
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                    .map_err(|e| RootError::from_io(path, e))
            }
            FileState::Symlink { target } => {
                let (_, tmp) = temp_beside(&path);
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(target, &tmp)
                    .and_then(|()| fs::rename(&tmp, &path))
                    .map_err(|e| {
                        let _ = fs::remove_file(&tmp);
                        RootError::from_io(path, e)
                    })
            }
            FileState::Other { .. } => Ok(()),
        }
    }

    /// The modification time of a regular file or directory to the nanosecond, as (seconds,
    /// nanoseconds) since the epoch; `None` when the path is absent or something else (a final
    /// symlink is not followed).
    pub fn mtime(&self, rel: &str) -> Result<Option<(i64, u32)>, RootError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.checked(rel)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() || m.is_dir() => Ok(Some((m.mtime(), m.mtime_nsec() as u32))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RootError::from_io(path, e)),
        }
    }

    /// Sets the modification time of a regular file or directory (the access time is left alone).
    pub fn set_mtime(&self, rel: &str, (sec, nsec): (i64, u32)) -> Result<(), RootError> {
        use std::time::{Duration, UNIX_EPOCH};
        let path = self.checked(rel)?;
        let t = if sec >= 0 {
            UNIX_EPOCH + Duration::new(sec.unsigned_abs(), nsec)
        } else {
            UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec.into())
        };
        // futimens needs ownership (or CAP_FOWNER), not write access: open for reading, and for
        // writing only when the mode gives its owner no read bit.
        fs::File::open(&path)
            .or_else(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => fs::OpenOptions::new().write(true).open(&path),
                _ => Err(e),
            })
            .and_then(|f| f.set_times(fs::FileTimes::new().set_modified(t)))
            .map_err(|e| RootError::from_io(path, e))
    }

    fn remove_if_symlink(&self, rel: &str) -> Result<(), RootError> {
        let path = self.checked(rel)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => self.remove(rel),
            _ => Ok(()),
        }
    }

    /// The target of a symbolic link (`proc/self/ns/net` -> `net:[4026531833]`).
    pub fn read_link(&self, rel: &str) -> Result<PathBuf, RootError> {
        let path = self.checked(rel)?;
        fs::read_link(&path).map_err(|e| RootError::from_io(path, e))
    }

    pub fn is_dir(&self, rel: &str) -> bool {
        self.path(rel).is_dir()
    }

    /// The size `stat` reports for `rel`. On procfs a `/proc/PID/fd` directory reports its
    /// number of open fds (Linux 6.2 and later) without listing them.
    pub fn size(&self, rel: &str) -> Result<u64, RootError> {
        let path = self.checked(rel)?;
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| RootError::from_io(path, e))
    }

    /// `rel` is on a procfs mount (the live /proc, not a captured copy).
    pub fn is_procfs(&self, rel: &str) -> bool {
        use nix::sys::statfs::{statfs, PROC_SUPER_MAGIC};
        statfs(&self.path(rel)).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
    }

    /// Creates one directory (its parent must exist) with mode 0755.
    pub fn create_dir(&self, rel: &str) -> Result<(), RootError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = self.checked(rel)?;
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(|e| RootError::from_io(path, e))
    }

    /// Removes a directory if it is empty; an absent or non-empty directory is left alone.
    pub fn remove_empty_dir(&self, rel: &str) -> Result<bool, RootError> {
        let path = self.checked(rel)?;
        match fs::remove_dir(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(false),
            Err(e) => Err(RootError::from_io(path, e)),
        }
    }

    /// Why `rel` cannot be written here, if it cannot: no write bit in its mode (a read-only
    /// sysctl, such as nf_conntrack_max in a child network namespace) or a read-only mount.
    /// `None` when it looks writable (the write itself may still fail).
    pub fn read_only_reason(&self, rel: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let path = self.path(rel);
        let meta = fs::metadata(&path).ok()?;
        if meta.mode() & 0o222 == 0 {
            return Some(format!(
                "{} is read-only here (mode {:o})",
                path.display(),
                meta.mode() & 0o777
            ));
        }
        match nix::sys::statvfs::statvfs(&path) {
            Ok(st) if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => {
                Some(format!("{} is on a read-only mount", path.display()))
            }
            _ => None,
        }
    }
}

/// An exclusive advisory lock on a directory, held until dropped.
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] nix::fcntl::Flock<fs::File>);

impl Root {
    /// Takes an exclusive lock on directory `rel` without waiting; `Ok(None)` when another process holds it.
    pub fn try_lock_dir(&self, rel: &str) -> Result<Option<DirLock>, RootError> {
        let path = self.checked(rel)?;
        let dir = fs::File::open(&path).map_err(|e| RootError::from_io(path.clone(), e))?;
        match nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(DirLock(l))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(RootError::Io {
                path,
                source: io::Error::from_raw_os_error(e as i32),
            }),
        }
    }
}

/// The directory of `path` and the temporary name beside it that a file or symlink is made
/// under before it is renamed into place (`.NAME.tune-tmp.PID`: hidden, tune's, this process's).
fn temp_beside(path: &Path) -> (PathBuf, PathBuf) {
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tune-tmp.{}", std::process::id()));
    (dir, tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_dotdot_is_refused_for_reads_and_writes() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("root")).unwrap();
        std::fs::write(outer.path().join("secret"), "x").unwrap();
        let root = Root::new(outer.path().join("root")).unwrap();
        let e = root.read("etc/../../secret").unwrap_err().to_string();
        assert!(e.contains("`..`") && e.contains("refused"), "{e}");
        assert!(root.write_atomic("../secret", b"y", 0o644).is_err());
        assert!(root.remove("etc/../../secret").is_err());
        assert!(root.restore("../secret", &FileState::Absent).is_err());
        assert_eq!(std::fs::read(outer.path().join("secret")).unwrap(), b"x");
    }

    #[test]
    fn errors_name_the_full_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let err = root.read("proc/sys/fs/file-max").unwrap_err();
        assert!(matches!(err, RootError::Absent { .. }));
        assert!(err.to_string().contains("proc/sys/fs/file-max"), "{err}");
        assert!(err.to_string().starts_with(dir.path().to_str().unwrap()));
    }

    #[test]
    fn atomic_write_creates_dirs_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        root.write_atomic("etc/sysctl.d/90-tune.conf", b"a = 1\n", 0o644)
            .unwrap();
        root.write_atomic("etc/sysctl.d/90-tune.conf", b"a = 2\n", 0o644)
            .unwrap();
        assert_eq!(root.read("etc/sysctl.d/90-tune.conf").unwrap(), "a = 2\n");
        assert_eq!(root.list_dir("etc/sysctl.d").unwrap(), vec!["90-tune.conf"]);
    }

    #[test]
    fn modification_times_to_the_nanosecond() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        assert_eq!(root.mtime("etc/a.conf").unwrap(), None);
        root.write_atomic("etc/a.conf", b"x\n", 0o600).unwrap();
        for t in [(981_173_106, 123_456_789), (-34_560_000, 1), (0, 0)] {
            root.set_mtime("etc/a.conf", t).unwrap();
            assert_eq!(root.mtime("etc/a.conf").unwrap(), Some(t));
        }
        // Directories too; a symlink has none here.
        root.set_mtime("etc", (1_000_000_000, 42)).unwrap();
        assert_eq!(root.mtime("etc").unwrap(), Some((1_000_000_000, 42)));
        std::os::unix::fs::symlink("a.conf", dir.path().join("etc/l")).unwrap();
        assert_eq!(root.mtime("etc/l").unwrap(), None);
        let err = root.set_mtime("etc/none.conf", (1, 0)).unwrap_err();
        assert!(err.to_string().contains("etc/none.conf"), "{err}");
    }

    #[test]
    fn missing_root_is_an_error_naming_it() {
        let err = Root::new("/nonexistent/tune-root").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tune-root"));
    }
}
