"""Every record of a topic as librdkafka reads it (confluent-kafka), independent of ticklake and rskafka, for the
exactly-once tests to compare with the CSV.

    read_topic.py --brokers HOST:PORT --topic T
prints one JSON line per record: partition, offset, key, value (text), headers (name -> text)."""

import argparse
import json

from confluent_kafka import Consumer, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    a = ap.parse_args()
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": "read-topic-check", "enable.auto.commit": False})
    meta = c.list_topics(a.topic, timeout=10).topics[a.topic]
    if meta.error is not None:
        raise SystemExit(f"topic {a.topic}: {meta.error}")
    ends = {}
    for p in meta.partitions:
        low, high = c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)
        if high > low:
            ends[p] = high
    c.assign([TopicPartition(a.topic, p, 0) for p in ends])
    done = set()
    while len(done) < len(ends):
        m = c.poll(10)
        if m is None:
            raise SystemExit(f"no record within 10 s; partitions done: {sorted(done)} of {sorted(ends)}")
        if m.error() is not None:
            raise SystemExit(f"consume: {m.error()}")
        print(json.dumps({
            "partition": m.partition(),
            "offset": m.offset(),
            "key": m.key().decode() if m.key() is not None else None,
            "value": m.value().decode() if m.value() is not None else None,
            "headers": {k: v.decode() for k, v in (m.headers() or [])},
        }))
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()


if __name__ == "__main__":
    main()
