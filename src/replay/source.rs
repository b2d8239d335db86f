//! Stage 1 of replay: CSV bytes in, `(line, cells)` out.
//!
//! Reads a file, a `.gz` file or stdin; counts the (compressed) bytes consumed so the progress bar can show an
//! ETA; picks the schema (explicit, a preset matching the header, or inferred from a sample) and keeps the
//! sample rows it looked at so none is lost.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use csv::ByteRecord;

use crate::schema::Schema;
pub use crate::schema::resolve::SchemaChoice;

/// Rows looked at to infer a schema.
pub const INFER_SAMPLE_ROWS: usize = 1000;

/// Largest CSV row accepted, in bytes: a file without line breaks, or with an unclosed quote, fails with its
/// reason instead of growing one record without bound.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// Where the CSV comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn parse(arg: &str) -> Input {
        if arg == "-" { Input::Stdin } else { Input::File(PathBuf::from(arg)) }
    }

    /// Name used in messages: the path, or `<stdin>`.
    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::File(p) => p.display().to_string(),
        }
    }

    fn is_gzip(path: &Path) -> bool {
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    }

    /// Size in bytes of what will be read (compressed size for `.gz`), if known.
    pub fn size_bytes(&self) -> Option<u64> {
        match self {
            Input::Stdin => None,
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}. Check the path and permissions")]
    Open { path: String, source: io::Error },
    #[error("{path}: cannot read the CSV header: {reason}. The first line must name the columns")]
    Header { path: String, reason: String },
    #[error("{path}: the file is empty; a header row naming the columns is required")]
    Empty { path: String },
    #[error("{path}:{line}: cannot read CSV: {reason}")]
    Read { path: String, line: u64, reason: String },
    #[error("{path}: cannot read: {reason}")]
    Io { path: String, reason: String },
}

/// A reader that counts the bytes that went through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Bounds the bytes of one CSV row. Outside quotes a line break ends a row; inside quotes it is part of the field
/// (RFC 4180: `""` inside a quoted field toggles twice, so counting quotes keeps the state right).
struct RowLimit<R> {
    inner: R,
    in_row: usize,
    in_quotes: bool,
    /// Rows ended so far (the header is row 1).
    rows: u64,
    max: usize,
}

impl<R: Read> Read for RowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut start = 0;
        // Jump between quotes and line breaks (memchr), not byte by byte: this is replay's hot path.
        for i in memchr::memchr2_iter(b'"', b'\n', &buf[..n]) {
            self.in_row += i - start;
            start = i + 1;
            if buf[i] == b'"' {
                self.in_quotes = !self.in_quotes;
                self.in_row += 1;
            } else if self.in_quotes {
                self.in_row += 1;
            } else {
                self.check()?;
                self.rows += 1;
                self.in_row = 0;
            }
            self.check()?;
        }
        self.in_row += n - start;
        self.check()?;
        Ok(n)
    }
}

impl<R> RowLimit<R> {
    fn new(inner: R) -> Self {
        RowLimit { inner, in_row: 0, in_quotes: false, rows: 0, max: MAX_ROW_BYTES }
    }

    fn check(&self) -> io::Result<()> {
        if self.in_row <= self.max {
            return Ok(());
        }
        let why = if self.in_quotes {
            "inside a quoted field: is a closing quote missing?"
        } else {
            "without a line break: is this a CSV file?"
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {} is over {} bytes, {why} Rows before it were read", self.rows + 1, self.max),
        ))
    }
}

/// Opens the input as a byte stream, decompressing `.gz`. `consumed` counts raw bytes read from the file.
pub fn open(input: &Input, consumed: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, SourceError> {
    match input {
        Input::Stdin => Ok(Box::new(RowLimit::new(Counting { inner: io::stdin(), count: consumed }))),
        Input::File(path) => {
            let file =
                File::open(path).map_err(|source| SourceError::Open { path: path.display().to_string(), source })?;
            let buffered = BufReader::with_capacity(256 * 1024, file);
            if Input::is_gzip(path) {
                // Compressed bytes read: the best progress measure there is for a .gz.
                Ok(Box::new(RowLimit::new(flate2::read::MultiGzDecoder::new(Counting {
                    inner: buffered,
                    count: consumed,
                }))))
            } else {
                // Plain files: progress follows the rows taken (`CsvSource::tracks_position`), not read-ahead.
                Ok(Box::new(RowLimit::new(buffered)))
            }
        }
    }
}

/// A CSV stream with its header read and its schema decided.
pub struct CsvSource {
    name: String,
    reader: csv::Reader<Box<dyn Read + Send>>,
    pub header: Vec<String>,
    /// Rows read ahead for inference, handed out before the rest of the stream.
    peeked: VecDeque<(u64, ByteRecord)>,
}

impl CsvSource {
    pub fn new(input: &Input, consumed: Arc<AtomicU64>) -> Result<CsvSource, SourceError> {
        let name = input.display();
        let stream = open(input, consumed)?;
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).buffer_capacity(256 * 1024).from_reader(stream);
        let mut first = ByteRecord::new();
        match reader.read_byte_record(&mut first) {
            Ok(true) => {}
            Ok(false) => return Err(SourceError::Empty { path: name }),
            Err(e) => return Err(SourceError::Header { path: name, reason: e.to_string() }),
        }
        let header = first
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        Ok(CsvSource { name, reader, header, peeked: VecDeque::new() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// For a plain file, the byte offset of each row is the progress measure (the caller stores it).
    pub fn tracks_position(input: &Input) -> bool {
        matches!(input, Input::File(p) if !Input::is_gzip(p))
    }

    /// Next row with its 1-based line number, `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(u64, ByteRecord)>, SourceError> {
        match self.peeked.pop_front() {
            Some(r) => Ok(Some(r)),
            None => self.read_record(),
        }
    }

    /// The next record from the stream itself (not the sample), with its 1-based line number.
    fn read_record(&mut self) -> Result<Option<(u64, ByteRecord)>, SourceError> {
        let mut rec = ByteRecord::new();
        match self.reader.read_byte_record(&mut rec) {
            Ok(true) => Ok(Some((rec.position().map_or(0, |p| p.line()), rec))),
            Ok(false) => Ok(None),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                if let csv::ErrorKind::Io(io) = e.kind() {
                    // RowLimit's message names the line itself.
                    return Err(SourceError::Io { path: self.name.clone(), reason: io.to_string() });
                }
                Err(SourceError::Read { path: self.name.clone(), line, reason: e.to_string() })
            }
        }
    }

    fn sample(&mut self) -> Result<Vec<Vec<String>>, SourceError> {
        while self.peeked.len() < INFER_SAMPLE_ROWS {
            match self.read_record()? {
                Some(r) => self.peeked.push_back(r),
                None => break,
            }
        }
        Ok(self
            .peeked
            .iter()
            .map(|(_, r)| r.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect())
            .collect())
    }

    /// Decides the schema: `given`, else the preset whose columns the header carries (extra columns kept, typed
    /// by inference), else one inferred from the first rows.
    pub fn resolve_schema(&mut self, given: Option<Schema>) -> Result<(Schema, SchemaChoice), SourceError> {
        if let Some(s) = given {
            return Ok((s, SchemaChoice::Given));
        }
        let header = self.header.clone();
        let sample = self.sample()?;
        let stem = match self.name.rsplit('/').next() {
            Some(n) if n != "<stdin>" => n.split('.').next().unwrap_or("inferred").to_string(),
            _ => "inferred".into(),
        };
        Ok(crate::schema::resolve::from_header(&header, &sample, &crate::schema::normalize_column_name(&stem)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;
    use std::io::Write;

    /// Reads everything through a RowLimit of `max` bytes, in small chunks (so rows span reads).
    fn through_limit(text: &[u8], max: usize) -> Result<Vec<u8>, String> {
        struct Chunks<'a>(&'a [u8]);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = RowLimit { max, ..RowLimit::new(Chunks(text)) };
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn rows_are_bounded_and_quoted_line_breaks_are_part_of_a_row() {
        let ok = b"a,b\n\"x\ny\",2\n\"he said \"\"hi\"\"\",3\n";
        assert_eq!(through_limit(ok, 20).unwrap(), ok.to_vec(), "every row within 20 bytes passes untouched");
        let long = b"a,b\n1,2\n0123456789abcdefghijklmnop\n";
        let e = through_limit(long, 20).unwrap_err();
        assert!(e.contains("line 3 is over 20 bytes") && e.contains("without a line break"), "{e}");
        let unclosed = b"a,b\n\"never closed,\n1\n2\n3\n4\n5\n6\n7\n";
        let e = through_limit(unclosed, 16).unwrap_err();
        assert!(e.contains("line 2") && e.contains("closing quote"), "{e}");
    }

    #[test]
    fn an_over_long_line_is_a_bad_input_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("Index,Date,Close\nHSI,2020-01-02,1\n");
        text.push_str(&"x".repeat(MAX_ROW_BYTES + 10));
        let path = write(dir.path(), "long.csv", &text);
        let mut src = CsvSource::new(&Input::File(path), Arc::default()).unwrap();
        assert!(src.next_row().unwrap().is_some());
        let e = src.next_row().unwrap_err().to_string();
        assert!(e.contains("long.csv") && e.contains("line 3 is over 1048576 bytes"), "{e}");
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_plain_and_gzip_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD\nHSI,1986-12-31,1,1,1,1,1,0.0,2\n\"N225\",1987-01-02,3,3,3,3,3,10.0,4\n";
        let plain = write(dir.path(), "a.csv", text);
        let gz = dir.path().join("a.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        for path in [plain, gz] {
            let counter = Arc::new(AtomicU64::new(0));
            let mut src = CsvSource::new(&Input::File(path.clone()), counter.clone()).unwrap();
            let (schema, choice) = src.resolve_schema(None).unwrap();
            assert_eq!(schema, Schema::indices());
            assert_eq!(choice, SchemaChoice::Preset { extras: vec![] });
            let (l1, r1) = src.next_row().unwrap().unwrap();
            let (l2, r2) = src.next_row().unwrap().unwrap();
            assert_eq!((l1, l2), (2, 3));
            assert_eq!(&r1[0], b"HSI");
            assert_eq!(&r2[0], b"N225");
            assert!(src.next_row().unwrap().is_none());
            if !CsvSource::tracks_position(&Input::File(path.clone())) {
                assert_eq!(counter.load(Ordering::Relaxed), std::fs::metadata(&path).unwrap().len());
            }
        }
    }

    #[test]
    fn ticks_keep_extra_columns_and_unknown_headers_are_inferred() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.csv",
            "ts,symbol,price,size,venue,bid\n2024-01-02T09:30:00.000Z,AAPL,1.5,10,XNAS,1.4\n",
        );
        let mut src = CsvSource::new(&Input::File(p), Arc::default()).unwrap();
        let (schema, choice) = src.resolve_schema(None).unwrap();
        assert_eq!(schema.name, "ticks");
        assert_eq!(choice, SchemaChoice::Preset { extras: vec!["venue".into(), "bid".into()] });
        assert_eq!(schema.field("bid").unwrap().ty, ColumnType::Double);
        assert!(src.next_row().unwrap().is_some(), "the sampled row is still delivered");

        let p = write(dir.path(), "my-prices.csv", "Ticker,When,Px\nA,2024-01-02,1\n");
        let mut src = CsvSource::new(&Input::File(p), Arc::default()).unwrap();
        let (schema, choice) = src.resolve_schema(None).unwrap();
        assert_eq!(choice, SchemaChoice::Inferred);
        assert_eq!(schema.name, "my_prices");
        assert_eq!(schema.event_time.as_deref(), Some("when_value"));
    }

    #[test]
    fn empty_and_missing_files_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "e.csv", "");
        assert!(matches!(CsvSource::new(&Input::File(p), Arc::default()), Err(SourceError::Empty { .. })));
        let e = CsvSource::new(&Input::File(dir.path().join("nope.csv")), Arc::default()).err().unwrap();
        assert!(e.to_string().contains("nope.csv"));
    }
}
