//! One folder of Zeek logs being written.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::zeek::{self, Schema, Utf8Policy, ZeekRecord};

/// Bytes of rows gathered before they go to the file in one write.
const FLUSH_AT: usize = 64 * 1024;

/// One open log. Rows are rendered straight into `buf`, which goes to the file in one write
/// once it holds [`FLUSH_AT`] bytes (a `BufWriter` would need each row rendered elsewhere
/// first and copied in).
struct LogFile {
    file: File,
    buf: Vec<u8>,
    schema: &'static Schema,
}

impl LogFile {
    /// Writes out what `buf` holds. On an error what was written is gone from `buf` and the
    /// rest stays for the next attempt, as with a `BufWriter`.
    fn flush_buf(&mut self) -> io::Result<()> {
        let mut done = 0;
        let result = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[done..]) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered rows",
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..done);
        result
    }
}

impl Drop for LogFile {
    /// Like a dropped `BufWriter`: what is buffered is written, errors are ignored.
    fn drop(&mut self) {
        let _ = self.flush_buf();
    }
}

/// The logs of one output folder: files are opened (with their header) on their first row.
pub struct LogFolder {
    dir: PathBuf,
    /// Few (one per log written); found by the schema's address, so a row costs no hashing.
    files: Vec<LogFile>,
    /// The file of the previous row: rows of one log tend to come in runs.
    last: usize,
    utf8: Utf8Policy,
    tz: chrono_tz::Tz,
}

fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl LogFolder {
    /// Creates `dir` (and parents) for writing.
    pub fn create(dir: &Path, utf8: Utf8Policy, tz: chrono_tz::Tz) -> io::Result<LogFolder> {
        fs::create_dir_all(dir)?;
        Ok(LogFolder {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            last: 0,
            utf8,
            tz,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index of the schema's file, opened with its header on first use. Schemas are
    /// statics, so one address means one schema; two schemas naming one path share a file.
    fn file_index(&mut self, schema: &'static Schema) -> io::Result<usize> {
        if let Some(f) = self.files.get(self.last) {
            if std::ptr::eq(f.schema, schema) {
                return Ok(self.last);
            }
        }
        let found = match self
            .files
            .iter()
            .position(|f| std::ptr::eq(f.schema, schema))
        {
            Some(i) => i,
            None => match self.files.iter().position(|f| f.schema.path == schema.path) {
                Some(i) => i,
                None => {
                    let path = self.dir.join(schema.file_name());
                    let mut f = LogFile {
                        file: File::create(&path)?,
                        buf: Vec::with_capacity(FLUSH_AT + 4096),
                        schema,
                    };
                    let open = zeek::stamp(wall_secs(), &self.tz);
                    zeek::write_header(&mut f.buf, schema, &open)?;
                    self.files.push(f);
                    self.files.len() - 1
                }
            },
        };
        self.last = found;
        Ok(found)
    }

    /// Appends one row to the record's log.
    pub fn write(&mut self, rec: &dyn ZeekRecord) -> io::Result<()> {
        let i = self.file_index(rec.schema())?;
        let f = &mut self.files[i];
        // Full buffers go out before the row is added, as a `BufWriter` does: when that fails
        // the row is dropped (and counted so by the caller) and the buffered rows stay for the
        // next attempt, so the buffer never grows past one flush's worth and a row.
        if f.buf.len() >= FLUSH_AT {
            f.flush_buf()?;
        }
        let mut row = zeek::Row::new(&mut f.buf, self.utf8);
        rec.write_row(&mut row);
        row.finish();
        Ok(())
    }

    /// Closes every log (footer, flush, fsync) and creates an empty file for each file name in
    /// `all_files` that got no row, so every interval holds every log.
    pub fn finish(mut self, all_files: &[&str]) -> io::Result<PathBuf> {
        let close = zeek::stamp(wall_secs(), &self.tz);
        for mut f in self.files.drain(..) {
            zeek::write_footer(&mut f.buf, f.schema, &close)?;
            f.flush_buf()?;
            f.file.sync_all()?;
        }
        for p in all_files {
            let path = self.dir.join(p);
            if !path.exists() {
                File::create(&path)?.sync_all()?;
            }
        }
        Ok(self.dir)
    }
}

/// fsyncs a directory so that renames and creations inside it survive a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::zeek::{LogStyle, Row};

    static A: Schema = Schema {
        path: "a",
        fields: &[("n", "count")],
        style: LogStyle::Zeek,
    };
    /// Another schema of the same log: its rows go to the same file.
    static A_TOO: Schema = Schema {
        path: "a",
        fields: &[("n", "count")],
        style: LogStyle::Zeek,
    };
    static B: Schema = Schema {
        path: "b",
        fields: &[("n", "count"), ("s", "string")],
        style: LogStyle::FieldsLine,
    };

    struct Rec(&'static Schema, u64);

    impl ZeekRecord for Rec {
        fn schema(&self) -> &'static Schema {
            self.0
        }
        fn write_row(&self, row: &mut Row<'_>) {
            row.count(self.1);
            if std::ptr::eq(self.0, &B) {
                row.string(&vec![b'x'; (self.1 % 300) as usize]);
            }
        }
    }

    #[test]
    fn rows_reach_their_files_in_order_across_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let mut folder =
            LogFolder::create(dir.path(), Utf8Policy::PassValid, chrono_tz::UTC).unwrap();
        let (mut want_a, mut want_b) = (String::new(), String::new());
        // Enough rows for several flushes of both buffers.
        for n in 0..40_000u64 {
            match n % 5 {
                0 | 1 => {
                    folder.write(&Rec(&B, n)).unwrap();
                    let s = "x".repeat((n % 300) as usize);
                    let s = if s.is_empty() { "(empty)".into() } else { s };
                    want_b.push_str(&format!("{n}\t{s}\n"));
                }
                2 => {
                    folder.write(&Rec(&A_TOO, n)).unwrap();
                    want_a.push_str(&format!("{n}\n"));
                }
                _ => {
                    folder.write(&Rec(&A, n)).unwrap();
                    want_a.push_str(&format!("{n}\n"));
                }
            }
        }
        folder.finish(&["a.log", "b.log", "c.log"]).unwrap();
        let a = fs::read_to_string(dir.path().join("a.log")).unwrap();
        let rows: String = a
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(rows, want_a);
        assert!(a.starts_with("#separator \\x09\n"), "{}", &a[..40]);
        assert!(a.lines().last().unwrap().starts_with("#close\t"));
        let b = fs::read_to_string(dir.path().join("b.log")).unwrap();
        assert_eq!(b, format!("#fields\tn\ts\n{want_b}"));
        assert_eq!(fs::read(dir.path().join("c.log")).unwrap(), b"");
    }
}
