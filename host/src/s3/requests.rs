//! Counts the S3 requests a client sends, by kind, with an `aws-sdk-s3` interceptor that sees
//! every attempt (SDK retries included) just before it goes on the wire. The exporter reports
//! them per pass ([`crate::export::ExportReport::requests`]), so tests and benchmarks can tell how many
//! round trips an export costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

/// Requests sent, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// HeadObject (and HeadBucket).
    pub head: u64,
    /// PutObject.
    pub put: u64,
    /// UploadPart.
    pub upload_part: u64,
    /// CreateMultipartUpload and CompleteMultipartUpload (every POST).
    pub multipart_control: u64,
    /// AbortMultipartUpload and other DELETEs.
    pub delete: u64,
    /// Everything else (GET, CreateBucket, ...).
    pub other: u64,
}

impl Requests {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.head + self.put + self.upload_part + self.multipart_control + self.delete + self.other
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests {
            head: self.head - earlier.head,
            put: self.put - earlier.put,
            upload_part: self.upload_part - earlier.upload_part,
            multipart_control: self.multipart_control - earlier.multipart_control,
            delete: self.delete - earlier.delete,
            other: self.other - earlier.other,
        }
    }
}

/// Shared counters, read with [`RequestCounter::snapshot`].
#[derive(Debug, Default)]
pub struct RequestCounter {
    head: AtomicU64,
    put: AtomicU64,
    upload_part: AtomicU64,
    multipart_control: AtomicU64,
    delete: AtomicU64,
    other: AtomicU64,
}

impl RequestCounter {
    /// The counts so far.
    pub fn snapshot(&self) -> Requests {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Requests {
            head: get(&self.head),
            put: get(&self.put),
            upload_part: get(&self.upload_part),
            multipart_control: get(&self.multipart_control),
            delete: get(&self.delete),
            other: get(&self.other),
        }
    }

    /// Counts one request by its method and the operation the SDK names in its `x-id` query
    /// parameter (`PutObject`, `UploadPart`, ...; not every operation has one).
    fn count(&self, method: &str, query: &str) {
        let operation = query
            .split('&')
            .find_map(|p| p.strip_prefix("x-id="))
            .unwrap_or_default();
        let counter = match (method, operation) {
            ("HEAD", _) => &self.head,
            (_, "PutObject") => &self.put,
            (_, "UploadPart") => &self.upload_part,
            // CreateMultipartUpload (`?uploads`) and CompleteMultipartUpload (`?uploadId=`).
            ("POST", _) => &self.multipart_control,
            ("DELETE", _) => &self.delete,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The interceptor: counts into a shared [`RequestCounter`].
#[derive(Debug, Clone)]
pub struct CountRequests(pub Arc<RequestCounter>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let query = request.uri().split_once('?').map_or("", |(_, q)| q);
        self.0.count(request.method(), query);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_told_apart_by_method_and_query() {
        let c = RequestCounter::default();
        c.count("HEAD", "");
        c.count("PUT", "x-id=PutObject");
        c.count("PUT", "");
        c.count("PUT", "x-id=CopyObject");
        c.count("PUT", "partNumber=1&uploadId=u&x-id=UploadPart");
        c.count("POST", "uploads");
        c.count("POST", "uploadId=u");
        c.count("DELETE", "uploadId=u&x-id=AbortMultipartUpload");
        c.count("GET", "list-type=2");
        let r = c.snapshot();
        assert_eq!(
            r,
            Requests {
                head: 1,
                put: 1,
                upload_part: 1,
                multipart_control: 2,
                delete: 1,
                other: 3
            }
        );
        assert_eq!(r.total(), 9);
        assert_eq!(r.since(&r).total(), 0);
    }
}
