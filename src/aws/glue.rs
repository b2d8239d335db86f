//! The AWS Glue Data Catalog calls ticklake makes (databases and tables: get, list, create, update, delete) over
//! Glue's JSON 1.1 protocol: a SigV4-signed `POST /` with `X-Amz-Target: AWSGlue.<Operation>` and the operation's
//! input as JSON, credentials from the process's one chain (`super::shared_chain`, refreshed before expiry),
//! throttling, server errors and lost connections retried with backoff, and a request refused for credentials
//! revoked early sent again with the next set.
//!
//! ticklake's own rather than the AWS SDK's Glue crate: that crate is the whole Glue API (hundreds of operations),
//! about 5 of a cold build's 13 minutes on 2 cores, for the 9 calls below. The signature is the SDK's own signer
//! (aws-sigv4); the shapes are Glue's, with only the members ticklake reads or writes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::{AwsCredentials, CredentialsError};

/// A missing member and a JSON `null` both read as the empty value.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    pub name: String,
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

impl Column {
    pub fn new(name: &str, r#type: &str) -> Column {
        Column { name: name.to_string(), r#type: Some(r#type.to_string()), parameters: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SerDeInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization_library: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageDescriptor {
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_info: Option<SerDeInfo>,
}

/// A Glue table: what `GetTable` returns, and (without `VersionId`, which is never sent) a `TableInput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<Column>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// The table's version, the optimistic lock of `UpdateTable`.
    #[serde(default, skip_serializing)]
    pub version_id: Option<String>,
}

/// A Glue database: what `GetDatabase` returns, and a `DatabaseInput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Database {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// A failed Glue call: the service's error code (`EntityNotFoundException`, ...) and message, or what went wrong on
/// the way (code `Transport`, `Credentials`, `Response`).
#[derive(Debug, thiserror::Error)]
#[error("glue {op}: {code}: {message}")]
pub struct GlueError {
    pub op: &'static str,
    pub code: String,
    pub message: String,
    /// Worth another try later (throttled, a server error, a lost connection): retried here already.
    pub transient: bool,
}

impl GlueError {
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
    pub fn not_found(&self) -> bool {
        self.is("EntityNotFoundException")
    }
    pub fn already_exists(&self) -> bool {
        self.is("AlreadyExistsException")
    }
    pub fn conflict(&self) -> bool {
        self.is("ConcurrentModificationException")
    }
}

/// Error codes that mean "slow down" (the SDK's standard retry mode retries the same).
const THROTTLED: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
];

/// Error codes that mean the credentials signed with are no longer good (expired, or revoked in a rotation).
const STALE_CREDENTIALS: &[&str] = &["ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException"];

/// The error code and message of a failed JSON 1.1 response: the code from the `x-amzn-ErrorType` header, else
/// the body's `__type` or `code`, without the namespace (`aws.glue#...`) or the URI after a colon.
pub fn error_of(header: Option<&str>, body: &[u8]) -> (String, String) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |names: &[&str]| names.iter().find_map(|n| parsed.get(n).and_then(Value::as_str)).map(str::to_string);
    let raw = header.map(str::to_string).or_else(|| field(&["__type", "code", "Code"])).unwrap_or_default();
    let code = raw.split(':').next().unwrap_or_default();
    let code = code.rsplit('#').next().unwrap_or_default().trim().to_string();
    let message = field(&["message", "Message", "errorMessage"])
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned());
    (code, message)
}

/// A Glue client for one region and endpoint.
#[derive(Clone)]
pub struct Glue {
    http: reqwest::Client,
    /// `https://glue.<region>.amazonaws.com/` or the configured endpoint, ending in `/`.
    endpoint: String,
    region: String,
    creds: Arc<AwsCredentials>,
}

impl std::fmt::Debug for Glue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glue").field("endpoint", &self.endpoint).field("region", &self.region).finish()
    }
}

/// How long a call's transient failures are retried, and the longest wait between tries.
const RETRY_FOR: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Glue {
    /// A client for `region` (else the AWS SDK's region lookup: `AWS_REGION`, the profile, the instance's) at
    /// `endpoint` (else Glue's public one for the region).
    pub async fn new(region: Option<&str>, endpoint: Option<&str>) -> Result<Glue, GlueError> {
        let fail =
            |code: &str, message: String| GlueError { op: "setup", code: code.into(), message, transient: false };
        let region = match region {
            Some(r) => r.to_string(),
            None => super::sdk_config().load().await.region().map(|r| r.to_string()).ok_or_else(|| {
                fail("NoRegion", "no AWS region for Glue: set --region or AWS_REGION (e.g. us-east-1)".into())
            })?,
        };
        let endpoint = match endpoint {
            Some(e) => format!("{}/", e.trim_end_matches('/')),
            None if region.starts_with("cn-") => format!("https://glue.{region}.amazonaws.com.cn/"),
            None => format!("https://glue.{region}.amazonaws.com/"),
        };
        let creds = super::shared_chain().await.map_err(|e| fail("Credentials", e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("ticklake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail("Setup", e.to_string()))?;
        Ok(Glue { http, endpoint, region, creds })
    }

    /// One call: `input` to `AWSGlue.<op>`, its output parsed as `T`; transient failures retried.
    async fn call<T: DeserializeOwned>(&self, op: &'static str, input: Value) -> Result<T, GlueError> {
        let body = serde_json::to_vec(&input).expect("JSON values serialise");
        // The access key of the last refusal for stale credentials: the next try fetches credentials anew.
        let stale: Mutex<Option<String>> = Mutex::new(None);
        let what = format!("glue {op}");
        crate::backoff::retry(
            &what,
            RETRY_FOR,
            MAX_BACKOFF,
            |e: &GlueError| e.transient,
            |_| async {
                let key = stale.lock().expect("not poisoned").take();
                let (code, message, transient, used) = match self.send(op, &body, key.as_deref()).await? {
                    Ok(out) => return Ok(out),
                    Err(failed) => failed,
                };
                if STALE_CREDENTIALS.contains(&code.as_str()) {
                    *stale.lock().expect("not poisoned") = Some(used);
                    return Err(GlueError { op, code, message, transient: true });
                }
                Err(GlueError { op, code, message, transient })
            },
        )
        .await
    }

    /// Sends one signed request. `Ok(Ok(output))`, `Ok(Err((code, message, transient, access key used)))` for an
    /// error answer, `Err` for a request that got no answer.
    #[allow(clippy::type_complexity)]
    async fn send<T: DeserializeOwned>(
        &self,
        op: &'static str,
        body: &[u8],
        stale: Option<&str>,
    ) -> Result<Result<T, (String, String, bool, String)>, GlueError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let creds = self.creds.get(stale).await.map_err(|e| GlueError {
            op,
            code: "Credentials".into(),
            message: e.to_string(),
            transient: matches!(e, CredentialsError::Fetch(_)),
        })?;
        let used = creds.access_key_id().to_string();
        let identity = creds.into();
        let target = format!("AWSGlue.{op}");
        let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
        let signing = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("glue")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("every signing parameter is set")
            .into();
        let local = |message: String| GlueError { op, code: "Signing".into(), message, transient: false };
        let request = SignableRequest::new("POST", &self.endpoint, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| local(e.to_string()))?;
        let (instructions, _) = sign(request, &signing).map_err(|e| local(e.to_string()))?.into_parts();
        let mut req = self.http.post(&self.endpoint).body(body.to_vec());
        for (k, v) in headers.iter().copied().chain(instructions.headers()) {
            req = req.header(k, v);
        }
        let transport = |e: reqwest::Error| {
            let causes = std::iter::successors(std::error::Error::source(&e), |c| c.source());
            let message = causes.fold(e.to_string(), |m, c| format!("{m}: {c}"));
            GlueError { op, code: "Transport".into(), message, transient: true }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let header = resp.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            let empty: &[u8] = b"{}";
            let json = if bytes.is_empty() { empty } else { &bytes };
            return serde_json::from_slice(json).map(Ok).map_err(|e| GlueError {
                op,
                code: "Response".into(),
                message: format!(
                    "unreadable answer ({e}): {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                ),
                transient: false,
            });
        }
        let (code, message) = error_of(header.as_deref(), &bytes);
        let transient = status.as_u16() == 429 || status.is_server_error() || THROTTLED.contains(&code.as_str());
        let code = if code.is_empty() { format!("HTTP {}", status.as_u16()) } else { code };
        Ok(Err((code, message, transient, used)))
    }

    pub async fn get_database(&self, name: &str) -> Result<Option<Database>, GlueError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out {
            database: Option<Database>,
        }
        match self.call::<Out>("GetDatabase", json!({ "Name": name })).await {
            Ok(out) => Ok(out.database),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every page of a list call: `input` again with each answer's `NextToken` until an answer has none.
    async fn pages<T: DeserializeOwned>(
        &self,
        op: &'static str,
        mut input: Value,
        list: &str,
    ) -> Result<Vec<T>, GlueError> {
        let mut all = Vec::new();
        loop {
            let mut out: Value = self.call(op, input.clone()).await?;
            if let Some(items) = out.get_mut(list).map(Value::take).filter(|v| !v.is_null()) {
                let items: Vec<T> = serde_json::from_value(items).map_err(|e| GlueError {
                    op,
                    code: "Response".into(),
                    message: format!("unreadable {list}: {e}"),
                    transient: false,
                })?;
                all.extend(items);
            }
            match out.get("NextToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                Some(token) => input["NextToken"] = json!(token),
                None => return Ok(all),
            }
        }
    }

    pub async fn get_databases(&self) -> Result<Vec<Database>, GlueError> {
        self.pages("GetDatabases", json!({}), "DatabaseList").await
    }

    pub async fn create_database(&self, input: &Database) -> Result<(), GlueError> {
        self.call::<Value>("CreateDatabase", json!({ "DatabaseInput": input })).await.map(drop)
    }

    pub async fn delete_database(&self, name: &str) -> Result<(), GlueError> {
        self.call::<Value>("DeleteDatabase", json!({ "Name": name })).await.map(drop)
    }

    pub async fn get_table(&self, db: &str, name: &str) -> Result<Option<Table>, GlueError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out {
            table: Option<Table>,
        }
        match self.call::<Out>("GetTable", json!({ "DatabaseName": db, "Name": name })).await {
            Ok(out) => Ok(out.table),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_tables(&self, db: &str) -> Result<Vec<Table>, GlueError> {
        self.pages("GetTables", json!({ "DatabaseName": db }), "TableList").await
    }

    pub async fn create_table(&self, db: &str, input: &Table) -> Result<(), GlueError> {
        self.call::<Value>("CreateTable", json!({ "DatabaseName": db, "TableInput": input })).await.map(drop)
    }

    /// Replaces the table with `input`; with `version`, only if Glue still holds that version (else
    /// `ConcurrentModificationException`). `skip_archive`: no archived copy of the replaced version.
    pub async fn update_table(
        &self,
        db: &str,
        input: &Table,
        version: Option<&str>,
        skip_archive: bool,
    ) -> Result<(), GlueError> {
        let mut req = json!({ "DatabaseName": db, "TableInput": input, "SkipArchive": skip_archive });
        if let Some(v) = version {
            req["VersionId"] = json!(v);
        }
        self.call::<Value>("UpdateTable", req).await.map(drop)
    }

    pub async fn delete_table(&self, db: &str, name: &str) -> Result<(), GlueError> {
        self.call::<Value>("DeleteTable", json!({ "DatabaseName": db, "Name": name })).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_header_or_the_body_without_namespace() {
        let (code, msg) = error_of(
            Some("EntityNotFoundException:http://internal.amazon.com/coral/com.amazonaws.glue/"),
            br#"{"__type":"EntityNotFoundException","Message":"Table t not found."}"#,
        );
        assert_eq!((code.as_str(), msg.as_str()), ("EntityNotFoundException", "Table t not found."));
        let (code, msg) = error_of(None, br#"{"__type":"com.amazonaws.glue#AlreadyExistsException","message":"x"}"#);
        assert_eq!((code.as_str(), msg.as_str()), ("AlreadyExistsException", "x"));
        let (code, msg) = error_of(None, b"<html>bad gateway</html>");
        assert_eq!((code.as_str(), msg.as_str()), ("", "<html>bad gateway</html>"));
    }

    #[test]
    fn a_table_is_sent_with_glues_member_names_and_read_back_with_its_version() {
        let mut t = Table { name: "t".into(), table_type: Some("EXTERNAL_TABLE".into()), ..Table::default() };
        let mut sd = StorageDescriptor { location: Some("s3://b/t".into()), ..StorageDescriptor::default() };
        sd.columns.push(Column::new("close", "double"));
        sd.serde_info = Some(SerDeInfo { serialization_library: Some("lib".into()), ..SerDeInfo::default() });
        t.storage_descriptor = Some(sd);
        t.partition_keys.push(Column::new("day", "string"));
        t.parameters.insert("table_type".into(), "ICEBERG".into());
        t.version_id = Some("7".into());
        let sent = serde_json::to_value(&t).unwrap();
        assert_eq!(
            sent,
            json!({
                "Name": "t",
                "TableType": "EXTERNAL_TABLE",
                "StorageDescriptor": {
                    "Columns": [{ "Name": "close", "Type": "double" }],
                    "Location": "s3://b/t",
                    "SerdeInfo": { "SerializationLibrary": "lib" }
                },
                "PartitionKeys": [{ "Name": "day", "Type": "string" }],
                "Parameters": { "table_type": "ICEBERG" }
            }),
            "VersionId is never part of a TableInput"
        );
        let answer = json!({
            "Name": "t", "DatabaseName": "m", "CreateTime": 1.7e9, "VersionId": "8", "Parameters": null,
            "StorageDescriptor": { "Columns": [{ "Name": "close", "Type": "double", "Parameters": null }] }
        });
        let read: Table = serde_json::from_value(answer).unwrap();
        assert_eq!(read.version_id.as_deref(), Some("8"));
        assert!(read.parameters.is_empty());
        assert_eq!(read.storage_descriptor.unwrap().columns, [Column::new("close", "double")]);
    }
}
