//! `ticklake topic create|list|describe|delete`.

use crate::kafka::{Error, Kafka, KafkaConfig};

pub async fn create(
    cfg: KafkaConfig,
    name: &str,
    partitions: i32,
    replication: i16,
    if_not_exists: bool,
) -> Result<String, Error> {
    if partitions < 1 {
        return Err(Error::Config("--partitions must be at least 1".into()));
    }
    let kafka = Kafka::connect(cfg).await?;
    match kafka.create_topic(name, partitions, replication).await {
        Ok(()) => Ok(format!("created topic {name} with {partitions} partition(s)")),
        Err(Error::TopicExists { .. }) if if_not_exists => Ok(format!("topic {name} already exists")),
        Err(e) => Err(e),
    }
}

pub async fn list(cfg: KafkaConfig) -> Result<String, Error> {
    let kafka = Kafka::connect(cfg).await?;
    let mut out = String::new();
    for t in kafka.list_topics().await? {
        out.push_str(&format!("{}\t{} partition(s)\n", t.name, t.partitions.len()));
    }
    Ok(out.trim_end().to_string())
}

pub async fn describe(cfg: KafkaConfig, name: &str) -> Result<String, Error> {
    let kafka = Kafka::connect(cfg).await?;
    let t = kafka.topic(name).await?;
    let mut out =
        format!("topic {name}: {} partition(s)\npartition\tearliest\thigh_watermark\trecords\n", t.partitions.len());
    for p in &t.partitions {
        let client = kafka.partition(name, *p).await?;
        let o = kafka.offsets(&client).await?;
        out.push_str(&format!("{p}\t{}\t{}\t{}\n", o.earliest, o.high_watermark, o.high_watermark - o.earliest));
    }
    Ok(out.trim_end().to_string())
}

pub async fn delete(cfg: KafkaConfig, name: &str) -> Result<String, Error> {
    let kafka = Kafka::connect(cfg).await?;
    kafka.topic(name).await?;
    kafka.delete_topic(name).await?;
    Ok(format!("deleted topic {name}"))
}
