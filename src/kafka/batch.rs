//! Kafka's record batch (magic v2), written straight from replay's records: no per-record conversion into another
//! record type, no header map per record (replay's `ticklake.source`/`ticklake.line` headers are written from one
//! shared source and each record's line number). The compression of the records section is `kafka-protocol`'s
//! (the same codecs and framing Kafka's clients use); `kafka-protocol`'s decoder checks this encoder in the tests.
//!
//! Layout (<https://kafka.apache.org/documentation/#recordbatch>): baseOffset int64, batchLength int32,
//! partitionLeaderEpoch int32, magic int8 = 2, crc uint32 (CRC-32C of everything after it), attributes int16,
//! lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
//! baseSequence int32, records count int32, then the records, each: length varint, attributes int8,
//! timestampDelta varlong, offsetDelta varint, key (varint length, -1 = null), value, headers count varint, headers
//! (key and value, varint-length-prefixed). Varints are zigzag-encoded.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy};

use super::{Compression, Record};

/// The producer fields of a batch: (-1, -1, -1) without idempotence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl Producer {
    pub const NONE: Producer = Producer { id: -1, epoch: -1, base_sequence: -1 };
}

/// Headers every record of the batch gets: `(name, value)` shared, then `(name, the record's line)`.
#[derive(Debug, Clone, Copy)]
pub struct LineHeaders<'a> {
    pub source: (&'a str, &'a [u8]),
    pub line_name: &'a str,
    pub lines: &'a [u64],
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn put_varint(buf: &mut impl BufMut, n: i64) {
    let mut v = zigzag(n);
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn varint_len(n: i64) -> usize {
    let v = zigzag(n);
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

fn put_bytes(buf: &mut impl BufMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
    }
}

/// Writes the records section (uncompressed) into `buf`.
fn put_records(buf: &mut impl BufMut, records: &[Record], base_ts: i64, headers: Option<LineHeaders<'_>>) {
    let mut line_text = itoa::Buffer::new();
    for (i, r) in records.iter().enumerate() {
        let ts_delta = r.timestamp.timestamp_millis() - base_ts;
        let key = r.key.as_deref();
        let value = r.value.as_deref();
        let line: Option<&[u8]> = match headers {
            Some(h) => Some(line_text.format(h.lines[i]).as_bytes()),
            None => None,
        };
        let own = r.headers.len() + usize::from(headers.is_some()) * 2;
        let mut len = 1 + varint_len(ts_delta) + varint_len(i as i64) + bytes_len(key) + bytes_len(value);
        len += varint_len(own as i64);
        for (k, v) in &r.headers {
            len += bytes_len(Some(k.as_bytes())) + bytes_len(Some(v));
        }
        if let (Some(h), Some(l)) = (headers, line) {
            len += bytes_len(Some(h.source.0.as_bytes())) + bytes_len(Some(h.source.1));
            len += bytes_len(Some(h.line_name.as_bytes())) + bytes_len(Some(l));
        }
        put_varint(buf, len as i64);
        buf.put_i8(0);
        put_varint(buf, ts_delta);
        put_varint(buf, i as i64);
        put_bytes(buf, key);
        put_bytes(buf, value);
        put_varint(buf, own as i64);
        for (k, v) in &r.headers {
            put_bytes(buf, Some(k.as_bytes()));
            put_bytes(buf, Some(v));
        }
        if let (Some(h), Some(l)) = (headers, line) {
            put_bytes(buf, Some(h.source.0.as_bytes()));
            put_bytes(buf, Some(h.source.1));
            put_bytes(buf, Some(h.line_name.as_bytes()));
            put_bytes(buf, Some(l));
        }
    }
}

/// A zstd context, and buffers for the uncompressed records and the compressed frame.
type ZstdState = (zstd::bulk::Compressor<'static>, Vec<u8>, Vec<u8>);

thread_local! {
    /// Per thread: a zstd context (a fresh one per batch cost its allocation and its zeroed pages every time) and
    /// the buffers, reused.
    static ZSTD: std::cell::RefCell<Option<ZstdState>> = const { std::cell::RefCell::new(None) };
}

/// The records, zstd-compressed (level 3, Kafka's default), appended to `buf`: one frame, as Kafka's own clients
/// write. (kafka-protocol's codec streams through a growing buffer and a new context per batch: a fifth of replay's
/// CPU went to copying and to zeroing fresh pages.)
fn zstd_records(
    buf: &mut BytesMut,
    records: &[Record],
    base_ts: i64,
    headers: Option<LineHeaders<'_>>,
) -> Result<(), String> {
    ZSTD.with_borrow_mut(|state| {
        if state.is_none() {
            *state = Some((zstd::bulk::Compressor::new(3).map_err(|e| e.to_string())?, Vec::new(), Vec::new()));
        }
        let (ctx, raw, out) = state.as_mut().expect("set above");
        raw.clear();
        put_records(raw, records, base_ts, headers);
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        ctx.compress_to_buffer(raw, out).map_err(|e| e.to_string())?;
        buf.extend_from_slice(out);
        // A huge batch does not keep its buffers for the thread's life.
        if raw.capacity() > 16 << 20 {
            *raw = Vec::new();
            *out = Vec::new();
        }
        Ok(())
    })
}

/// One record batch holding `records` (at least one), as a produce request carries it.
pub fn encode(
    records: &[Record],
    headers: Option<LineHeaders<'_>>,
    producer: Producer,
    compression: Compression,
) -> Result<Bytes, String> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    if let Some(h) = headers {
        assert_eq!(h.lines.len(), records.len(), "one line per record");
    }
    let base_ts = records[0].timestamp.timestamp_millis();
    let max_ts = records.iter().map(|r| r.timestamp.timestamp_millis()).max().unwrap_or(base_ts);
    let size: usize = records.iter().map(|r| r.approximate_size() + 16).sum();
    let mut buf = BytesMut::with_capacity(61 + size / 2);
    buf.put_i64(0); // base offset: the broker assigns offsets
    buf.put_i32(0); // batch length, set below
    buf.put_i32(-1); // partition leader epoch
    buf.put_i8(2); // magic
    buf.put_u32(0); // crc, set below
    let attributes: i16 = match compression {
        Compression::NoCompression => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    };
    buf.put_i16(attributes); // create-time timestamps, not transactional, not control
    buf.put_i32(records.len() as i32 - 1);
    buf.put_i64(base_ts);
    buf.put_i64(max_ts);
    buf.put_i64(producer.id);
    buf.put_i16(producer.epoch);
    buf.put_i32(producer.base_sequence);
    buf.put_i32(records.len() as i32);
    let write = |tmp: &mut BytesMut| {
        put_records(tmp, records, base_ts, headers);
        Ok(())
    };
    let compressed = match compression {
        Compression::NoCompression => {
            put_records(&mut buf, records, base_ts, headers);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(&mut buf, write).map_err(|e| e.to_string()),
        Compression::Snappy => Snappy::compress(&mut buf, write).map_err(|e| e.to_string()),
        Compression::Lz4 => Lz4::compress(&mut buf, write).map_err(|e| e.to_string()),
        Compression::Zstd => zstd_records(&mut buf, records, base_ts, headers),
    };
    compressed.map_err(|e| format!("compressing the batch: {e}"))?;
    let batch_len = (buf.len() - 12) as i32;
    buf[8..12].copy_from_slice(&batch_len.to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::RecordBatchDecoder;

    fn record(i: u32, key: bool, header: bool) -> Record {
        Record {
            key: key.then(|| format!("K{i}").into_bytes()),
            value: Some(format!("{{\"n\":{i}}}").repeat(i as usize % 50 + 1).into_bytes()),
            headers: if header { [("h".to_string(), vec![i as u8])].into_iter().collect() } else { Default::default() },
            timestamp: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 - 1000 + i as i64 * 7).unwrap(),
        }
    }

    #[test]
    fn kafkas_decoder_reads_back_every_field_for_every_codec() {
        let records: Vec<Record> = (0..300).map(|i| record(i, i % 3 != 0, i % 5 == 0)).collect();
        let lines: Vec<u64> = (0..300).map(|i| 2 + i as u64 * 3).collect();
        let headers = LineHeaders { source: ("ticklake.source", b"ab:9:3"), line_name: "ticklake.line", lines: &lines };
        let producer = Producer { id: 77, epoch: 3, base_sequence: 1000 };
        for compression in
            [Compression::NoCompression, Compression::Zstd, Compression::Gzip, Compression::Lz4, Compression::Snappy]
        {
            let bytes = encode(&records, Some(headers), producer, compression).unwrap();
            let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
            assert_eq!(info.len(), 1, "{compression:?}: one batch");
            assert_eq!((info[0].producer_id, info[0].producer_epoch, info[0].base_sequence), (77, 3, 1000));
            assert_eq!(info[0].record_count, 300);
            let set = RecordBatchDecoder::decode(&mut bytes.clone()).unwrap();
            for (i, (got, want)) in set.records.iter().zip(&records).enumerate() {
                assert_eq!(got.key.as_deref(), want.key.as_deref(), "{compression:?} record {i}");
                assert_eq!(got.value.as_deref(), want.value.as_deref());
                assert_eq!(got.timestamp, want.timestamp.timestamp_millis());
                assert_eq!(got.offset, i as i64);
                assert_eq!(got.sequence, 1000 + i as i32);
                let h = |name: &'static str| got.headers.get(&StrBytes::from_static_str(name)).cloned().flatten();
                assert_eq!(h("ticklake.source").as_deref(), Some(&b"ab:9:3"[..]));
                assert_eq!(h("ticklake.line").as_deref(), Some(lines[i].to_string().as_bytes()));
                assert_eq!(h("h").is_some(), i % 5 == 0);
            }
        }
    }

    #[test]
    fn plain_batches_carry_no_producer_and_no_headers() {
        let records = vec![record(1, true, false)];
        let bytes = encode(&records, None, Producer::NONE, Compression::NoCompression).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
        assert_eq!((info[0].producer_id, info[0].base_sequence), (-1, -1));
        let set = RecordBatchDecoder::decode(&mut bytes.clone()).unwrap();
        assert!(set.records[0].headers.is_empty());
    }

    #[test]
    fn varints_are_zigzag() {
        for (n, want) in
            [(0i64, vec![0u8]), (-1, vec![1]), (1, vec![2]), (63, vec![126]), (64, vec![128, 1]), (-65, vec![129, 1])]
        {
            let mut b = BytesMut::new();
            put_varint(&mut b, n);
            assert_eq!(b.to_vec(), want, "{n}");
            assert_eq!(varint_len(n), want.len(), "{n}");
        }
    }
}
