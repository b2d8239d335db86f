//! Rows of one hive partition held column by column, the way the Parquet file will hold them.
//!
//! The sink buffers up to `--max-buffer` of rows. As `Vec<Value>` rows they took about 340 bytes each for a daily
//! index bar (a `Vec`, a 24-byte enum per cell, a heap `String` per symbol) and one allocation or two per row; as
//! columns they take about 100, with no allocation per row, and they sort by a permutation instead of by moving
//! rows. Encoding gathers each column in the sorted order straight into an Arrow array.

use std::sync::Arc;

use arrow::array::TimestampMillisecondArray;
use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::ArrowNativeType;

use super::layout::FileLayout;
use crate::schema::{ColumnType, Value};

/// One column's values; a null holds the type's default and is marked in `Column::valid`.
#[derive(Debug, Clone)]
enum Data {
    /// UTF-8 bytes of all values, one after the other; `ends[i]` is where value `i` ends.
    Str {
        ends: Vec<usize>,
        bytes: Vec<u8>,
    },
    Int(Vec<i64>),
    Float(Vec<f64>),
    Date(Vec<i32>),
    Timestamp(Vec<i64>),
    Bool(Vec<bool>),
}

impl Data {
    /// The placeholder under a null: an empty string, zero, false.
    fn push_default(&mut self) {
        match self {
            Data::Str { ends, bytes } => ends.push(bytes.len()),
            Data::Int(x) | Data::Timestamp(x) => x.push(0),
            Data::Float(x) => x.push(0.0),
            Data::Date(x) => x.push(0),
            Data::Bool(x) => x.push(false),
        }
    }
}

#[derive(Debug, Clone)]
struct Column {
    data: Data,
    /// Validity per row; empty while the column has no null (most columns never have one).
    valid: Vec<bool>,
}

impl Column {
    fn new(ty: ColumnType) -> Column {
        let data = match ty {
            ColumnType::String => Data::Str { ends: Vec::new(), bytes: Vec::new() },
            ColumnType::Bigint => Data::Int(Vec::new()),
            ColumnType::Double => Data::Float(Vec::new()),
            ColumnType::Date => Data::Date(Vec::new()),
            ColumnType::Timestamp => Data::Timestamp(Vec::new()),
            ColumnType::Boolean => Data::Bool(Vec::new()),
        };
        Column { data, valid: Vec::new() }
    }

    /// Appends `v` as row `n`; returns how many heap bytes the column grew by. A value of another type is stored
    /// as null (the decoder only produces values of the column's type, or null).
    fn push(&mut self, n: usize, v: &Value) -> usize {
        let before = self.heap_bytes();
        let valid = match (&mut self.data, v) {
            (Data::Str { ends, bytes }, Value::Str(s)) => {
                bytes.extend_from_slice(s.as_bytes());
                ends.push(bytes.len());
                true
            }
            (Data::Int(x), Value::Int(i)) | (Data::Timestamp(x), Value::Timestamp(i)) => {
                x.push(*i);
                true
            }
            (Data::Float(x), Value::Float(f)) => {
                x.push(*f);
                true
            }
            (Data::Date(x), Value::Date(d)) => {
                x.push(*d);
                true
            }
            (Data::Bool(x), Value::Bool(b)) => {
                x.push(*b);
                true
            }
            (data, _) => {
                data.push_default();
                false
            }
        };
        self.mark(n, valid);
        self.heap_bytes() - before
    }

    /// Heap bytes allocated (capacity, not length: what the memory budget must count).
    fn heap_bytes(&self) -> usize {
        self.valid.capacity()
            + match &self.data {
                Data::Str { ends, bytes } => ends.capacity() * 8 + bytes.capacity(),
                Data::Int(x) | Data::Timestamp(x) => x.capacity() * 8,
                Data::Float(x) => x.capacity() * 8,
                Data::Date(x) => x.capacity() * 4,
                Data::Bool(x) => x.capacity(),
            }
    }

    /// Records row `n`'s validity.
    fn mark(&mut self, n: usize, valid: bool) {
        if self.valid.is_empty() {
            if valid {
                return;
            }
            self.valid.resize(n, true);
        }
        self.valid.push(valid);
    }

    fn is_valid(&self, i: usize) -> bool {
        self.valid.is_empty() || self.valid[i]
    }

    fn str_at<'a>(ends: &[usize], bytes: &'a [u8], i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &bytes[start..ends[i]]
    }

    /// Order of rows `a` and `b` in this column: nulls last, then by value.
    fn cmp(&self, a: usize, b: usize) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        match (self.is_valid(a), self.is_valid(b)) {
            (false, false) => return Equal,
            (false, true) => return Greater,
            (true, false) => return Less,
            (true, true) => {}
        }
        match &self.data {
            Data::Str { ends, bytes } => Self::str_at(ends, bytes, a).cmp(Self::str_at(ends, bytes, b)),
            Data::Int(x) | Data::Timestamp(x) => x[a].cmp(&x[b]),
            Data::Float(x) => x[a].total_cmp(&x[b]),
            Data::Date(x) => x[a].cmp(&x[b]),
            Data::Bool(x) => x[a].cmp(&x[b]),
        }
    }

    fn nulls(&self, rows: &[u32]) -> Option<NullBuffer> {
        if self.valid.is_empty() {
            return None;
        }
        Some(NullBuffer::from(rows.iter().map(|&i| self.valid[i as usize]).collect::<Vec<bool>>()))
    }

    /// The Arrow array of rows `rows`, in that order.
    fn gather(&self, rows: &[u32]) -> ArrayRef {
        let nulls = self.nulls(rows);
        match &self.data {
            Data::Str { ends, bytes } => {
                let mut out =
                    Vec::with_capacity(rows.iter().map(|&i| Self::str_at(ends, bytes, i as usize).len()).sum());
                let mut offsets = Vec::with_capacity(rows.len() + 1);
                offsets.push(0i32);
                for &i in rows {
                    out.extend_from_slice(Self::str_at(ends, bytes, i as usize));
                    offsets.push(i32::try_from(out.len()).expect("a file's strings stay under 2 GiB (--max-rows)"));
                }
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(StringArray::new(offsets, out.into(), nulls))
            }
            Data::Int(x) => Arc::new(Int64Array::new(pick(x, rows), nulls)),
            Data::Float(x) => Arc::new(Float64Array::new(pick(x, rows), nulls)),
            Data::Date(x) => Arc::new(Date32Array::new(pick(x, rows), nulls)),
            Data::Timestamp(x) => Arc::new(TimestampMillisecondArray::new(pick(x, rows), nulls).with_timezone("UTC")),
            Data::Bool(x) => Arc::new(BooleanArray::new(rows.iter().map(|&i| x[i as usize]).collect(), nulls)),
        }
    }

    fn value(&self, i: usize) -> Value {
        if !self.is_valid(i) {
            return Value::Null;
        }
        match &self.data {
            Data::Str { ends, bytes } => Value::Str(String::from_utf8_lossy(Self::str_at(ends, bytes, i)).into_owned()),
            Data::Int(x) => Value::Int(x[i]),
            Data::Float(x) => Value::Float(x[i]),
            Data::Date(x) => Value::Date(x[i]),
            Data::Timestamp(x) => Value::Timestamp(x[i]),
            Data::Bool(x) => Value::Bool(x[i]),
        }
    }
}

fn pick<T: ArrowNativeType>(x: &[T], rows: &[u32]) -> ScalarBuffer<T> {
    ScalarBuffer::from(rows.iter().map(|&i| x[i as usize]).collect::<Vec<T>>())
}

/// Rows bound for the files of one hive partition: the file columns of the layout plus where each row came from.
#[derive(Debug, Clone)]
pub struct Columns {
    /// One per `FileLayout::columns` entry, same order.
    cols: Vec<Column>,
    /// The schema field of each of `cols` (`FileLayout::columns`: columns that live in the path are not here).
    fields: Vec<usize>,
    pub kafka_partition: i32,
    pub kafka_offset: Vec<i64>,
    /// Record timestamps, epoch ms.
    pub kafka_timestamp: Vec<i64>,
}

impl Columns {
    pub fn new(layout: &FileLayout, kafka_partition: i32) -> Columns {
        Columns {
            cols: layout.columns.iter().map(|&i| Column::new(layout.schema.fields[i].ty)).collect(),
            fields: layout.columns.clone(),
            kafka_partition,
            kafka_offset: Vec::new(),
            kafka_timestamp: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.kafka_offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kafka_offset.is_empty()
    }

    /// Appends a row (`values` in schema order; path columns are skipped). Returns how many heap bytes the
    /// columns grew by: vector capacities, up to twice what the rows need as vectors grow by doubling. This is what
    /// `--max-buffer` counts.
    pub fn push(&mut self, values: &[Value], kafka_offset: i64, kafka_timestamp: i64) -> usize {
        let n = self.len();
        let mut grew = 0;
        for (col, &field) in self.cols.iter_mut().zip(&self.fields) {
            grew += col.push(n, &values[field]);
        }
        let kafka_cap = self.kafka_offset.capacity() + self.kafka_timestamp.capacity();
        self.kafka_offset.push(kafka_offset);
        self.kafka_timestamp.push(kafka_timestamp);
        grew + (self.kafka_offset.capacity() + self.kafka_timestamp.capacity() - kafka_cap) * 8
    }

    /// Takes the columns a newer `layout` adds (schema evolution appends fields): each starts NULL for the rows
    /// already held. Returns how many heap bytes that took.
    pub fn adopt(&mut self, layout: &FileLayout) -> usize {
        let n = self.len();
        let mut grew = 0;
        let new: Vec<usize> = layout.columns.iter().copied().filter(|f| !self.fields.contains(f)).collect();
        for field in new {
            let mut col = Column::new(layout.schema.fields[field].ty);
            for i in 0..n {
                col.data.push_default();
                col.mark(i, false);
            }
            grew += col.heap_bytes();
            self.cols.push(col);
            self.fields.push(field);
        }
        grew
    }

    /// The column of schema field `field` (`None` for a path column).
    fn col(&self, field: usize) -> Option<&Column> {
        self.fields.iter().position(|&f| f == field).map(|k| &self.cols[k])
    }

    /// Row indices ordered by the schema columns `sort` (nulls last), then by offset: a total order, so the same
    /// rows always give the same order. Path columns are constant here and skipped.
    pub fn order(&self, sort: &[usize]) -> Vec<u32> {
        let keys: Vec<&Column> = sort.iter().filter_map(|&i| self.col(i)).collect();
        let mut rows: Vec<u32> = (0..u32::try_from(self.len()).expect("under 4G rows per cut")).collect();
        rows.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            for c in &keys {
                let o = c.cmp(a, b);
                if o.is_ne() {
                    return o;
                }
            }
            self.kafka_offset[a].cmp(&self.kafka_offset[b])
        });
        rows
    }

    /// The Arrow arrays of a file holding rows `rows` in that order: the layout's columns, then the Kafka columns.
    pub fn arrays(&self, rows: &[u32]) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> = self.cols.iter().map(|c| c.gather(rows)).collect();
        out.push(Arc::new(Int32Array::from(vec![self.kafka_partition; rows.len()])));
        out.push(Arc::new(Int64Array::new(pick(&self.kafka_offset, rows), None)));
        out.push(Arc::new(
            TimestampMillisecondArray::new(pick(&self.kafka_timestamp, rows), None).with_timezone("UTC"),
        ));
        out
    }

    /// The value of schema field `field` in row `row` (`None` for a path column); for tests and inspection.
    pub fn value(&self, row: usize, field: usize) -> Option<Value> {
        self.col(field).map(|c| c.value(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::partition::PartitionSpec;
    use crate::schema::Schema;
    use arrow::array::{Array, AsArray};

    fn layout(partition_by: &str) -> FileLayout {
        let schema = Schema::indices();
        FileLayout::new(&schema, &PartitionSpec::parse(partition_by, &schema).unwrap())
    }

    fn row(sym: Option<&str>, day: i32, close: Option<f64>) -> Vec<Value> {
        let mut v = vec![sym.map_or(Value::Null, |s| Value::Str(s.into())), Value::Date(day)];
        v.extend(std::iter::repeat_n(Value::Null, 3));
        v.push(close.map_or(Value::Null, Value::Float));
        v.extend(std::iter::repeat_n(Value::Null, 3));
        v
    }

    #[test]
    fn sorts_by_columns_then_offset_with_nulls_last_and_gathers_in_that_order() {
        let l = layout("year(trade_date)");
        let mut c = Columns::new(&l, 3);
        let input = [(Some("B"), 2, Some(1.0)), (None, 1, None), (Some("A"), 2, Some(2.0)), (Some("A"), 2, None)];
        let mut grew = 0;
        for (i, (s, d, x)) in input.into_iter().enumerate() {
            grew += c.push(&row(s, d, x), 10 + i as i64, 100 + i as i64);
        }
        assert_eq!(c.len(), 4);
        assert!(grew >= 4 * (8 + 4 + 8 + 8 + 8), "every column's values are counted");
        // trade_date, then symbol (null last), then offset.
        assert_eq!(c.order(&[1, 0]), [1, 2, 3, 0]);
        // close (null last), then offset.
        assert_eq!(c.order(&[5]), [0, 2, 1, 3]);
        let order = c.order(&[1, 0]);
        let arrays = c.arrays(&order);
        assert_eq!(arrays.len(), l.arrow.fields().len());
        let sym = arrays[0].as_string::<i32>();
        assert_eq!(
            (0..4).map(|i| sym.is_valid(i).then(|| sym.value(i))).collect::<Vec<_>>(),
            [None, Some("A"), Some("A"), Some("B")]
        );
        let close = arrays[5].as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!((close.null_count(), close.value(1)), (2, 2.0));
        let offsets = arrays[l.arrow.fields().len() - 2].as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(offsets.values().to_vec(), [11, 12, 13, 10]);
        assert_eq!(c.value(0, 0), Some(Value::Str("B".into())));
        assert_eq!(c.value(1, 5), Some(Value::Null));
    }

    #[test]
    fn path_columns_are_not_stored() {
        let l = layout("symbol");
        let mut c = Columns::new(&l, 0);
        c.push(&row(Some("HSI"), 5, Some(1.5)), 7, 0);
        assert_eq!(c.value(0, 0), None, "symbol lives in the path");
        assert_eq!(c.value(0, 1), Some(Value::Date(5)));
        assert_eq!(c.order(&[0]), [0], "sorting by a path column is a no-op");
        assert_eq!(c.arrays(&[0]).len(), l.arrow.fields().len());
    }

    #[test]
    fn a_column_added_later_is_null_for_the_rows_before() {
        let l = layout("year(trade_date)");
        let mut c = Columns::new(&l, 0);
        c.push(&row(Some("HSI"), 5, Some(1.5)), 7, 0);
        let mut schema = l.schema.clone();
        schema.fields.push(crate::schema::Field::new("venue", "venue", crate::schema::ColumnType::String));
        let wider = FileLayout::new(&schema, &PartitionSpec::parse("year(trade_date)", &schema).unwrap());
        assert!(c.adopt(&wider) > 0);
        assert_eq!(c.adopt(&wider), 0, "adopting twice adds nothing");
        let mut r = row(Some("N225"), 6, None);
        r.push(Value::Str("XTKS".into()));
        c.push(&r, 8, 0);
        assert_eq!(c.value(0, 9), Some(Value::Null));
        assert_eq!(c.value(1, 9), Some(Value::Str("XTKS".into())));
        let arrays = c.arrays(&[0, 1]);
        assert_eq!(arrays.len(), wider.arrow.fields().len());
        assert_eq!(arrays[9].null_count(), 1);
    }
}
