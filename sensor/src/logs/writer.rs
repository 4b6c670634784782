//! One folder of Zeek logs being written.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::zeek::{self, Schema, Utf8Policy, ZeekRecord};

struct LogFile {
    w: BufWriter<File>,
    schema: &'static Schema,
}

/// The logs of one output folder: files are opened (with their header) on their first row.
pub struct LogFolder {
    dir: PathBuf,
    files: HashMap<&'static str, LogFile>,
    utf8: Utf8Policy,
    tz: chrono_tz::Tz,
    row: Vec<u8>,
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
            files: HashMap::new(),
            utf8,
            tz,
            row: Vec::with_capacity(1024),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one row to the record's log.
    pub fn write(&mut self, rec: &dyn ZeekRecord) -> io::Result<()> {
        let schema = rec.schema();
        if !self.files.contains_key(schema.path) {
            let path = self.dir.join(schema.file_name());
            let mut w = BufWriter::with_capacity(64 * 1024, File::create(&path)?);
            zeek::write_header(&mut w, schema, &zeek::stamp(wall_secs(), &self.tz))?;
            self.files.insert(schema.path, LogFile { w, schema });
        }
        let f = self.files.get_mut(schema.path).expect("inserted above");
        self.row.clear();
        let mut row = zeek::Row::new(&mut self.row, self.utf8);
        rec.write_row(&mut row);
        row.finish();
        f.w.write_all(&self.row)
    }

    /// Closes every log (footer, flush, fsync) and creates an empty file for each file name in
    /// `all_files` that got no row, so every interval holds every log.
    pub fn finish(mut self, all_files: &[&str]) -> io::Result<PathBuf> {
        let close = zeek::stamp(wall_secs(), &self.tz);
        for (_, mut f) in self.files.drain() {
            zeek::write_footer(&mut f.w, f.schema, &close)?;
            f.w.flush()?;
            f.w.get_ref().sync_all()?;
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
