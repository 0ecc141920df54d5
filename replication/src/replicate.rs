//! Replicating one notice: the decision, the copy, one decision log line.

use std::time::Instant;

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use serde::Serialize;

use crate::clients::RegionalClients;
use crate::copy::{Copied, CopyError, CopyPlan, CopySettings, ObjectHeaders, copy_version};
use crate::event::S3Notice;
use crate::origin::{Origin, OriginError, compare, should_copy};
use crate::s3_error::{ErrorKind, S3Error};

/// The bucket this replicator writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub region: String,
    pub bucket: String,
}

/// What was done with a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The source version was copied to the destination.
    Copied,
    /// The source object is itself a replica: copying it on would loop.
    SkippedCopy,
    /// The destination already holds this write, or one that wins over it.
    SkippedUpToDate,
    /// The notified version is no longer the source's current object
    /// (deleted, or superseded by a write that brings its own event).
    SkippedGone,
    /// A write in the function's own region landed on top of a replica that
    /// wins over it; the winner was put back on top.
    Restored,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Copied => "copied",
            Decision::SkippedCopy => "skipped_copy",
            Decision::SkippedUpToDate => "skipped_up_to_date",
            Decision::SkippedGone => "skipped_gone",
            Decision::Restored => "restored",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Bytes copied (0 unless copied).
    pub bytes: u64,
    pub millis: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error("HeadObject s3://{bucket}/{key} in {region}: {source}")]
    HeadSource {
        bucket: String,
        key: String,
        region: String,
        source: S3Error,
    },
    #[error("HeadObject s3://{bucket}/{key} in {region} (destination): {source}")]
    HeadDestination {
        bucket: String,
        key: String,
        region: String,
        source: S3Error,
    },
    #[error("s3://{bucket}/{key} in {region} has unusable origin markers: {source}")]
    Origin {
        bucket: String,
        key: String,
        region: String,
        source: OriginError,
    },
    #[error(
        "copying s3://{source_bucket}/{key} ({source_region}) to s3://{bucket} in {region}: {source}"
    )]
    Copy {
        source_bucket: String,
        source_region: String,
        bucket: String,
        key: String,
        region: String,
        source: CopyError,
    },
}

impl ReplicateError {
    /// Whether the platform should retry: throttling, 5xx, timeouts,
    /// connection failures, AccessDenied. Broken markers or a missing bucket
    /// will not heal by themselves.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReplicateError::HeadSource { source, .. }
            | ReplicateError::HeadDestination { source, .. } => source.is_retryable(),
            ReplicateError::Origin { .. } => false,
            ReplicateError::Copy { source, .. } => source.is_retryable(),
        }
    }
}

/// Replicates notices into a destination bucket.
#[derive(Debug)]
pub struct Replicator {
    clients: RegionalClients,
    settings: CopySettings,
}

/// What `decide_and_copy` settled on, before timing and logging.
struct Settled {
    decision: Decision,
    bytes: u64,
    /// The source version the decision was about.
    version_id: Option<String>,
}

impl Settled {
    fn skip(decision: Decision, version_id: Option<&str>) -> Settled {
        Settled {
            decision,
            bytes: 0,
            version_id: version_id.map(str::to_owned),
        }
    }
}

impl Replicator {
    pub fn new(clients: RegionalClients, settings: CopySettings) -> Replicator {
        Replicator { clients, settings }
    }

    pub fn settings(&self) -> &CopySettings {
        &self.settings
    }

    pub fn clients(&self) -> &RegionalClients {
        &self.clients
    }

    /// Decides whether `notice`'s object must be copied to `dest`, copies it
    /// if so, and logs exactly one `toastrep::decision` line.
    pub async fn replicate(
        &self,
        notice: &S3Notice,
        dest: &Destination,
    ) -> Result<Outcome, ReplicateError> {
        let started = Instant::now();
        let result = self.decide_and_copy(notice, dest).await;
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(settled) => {
                tracing::info!(
                    target: "toastrep::decision",
                    decision = settled.decision.as_str(),
                    key = %notice.key,
                    source_region = %notice.region,
                    destination_region = %dest.region,
                    source_bucket = %notice.bucket,
                    destination_bucket = %dest.bucket,
                    bytes = settled.bytes,
                    ms = millis,
                    version_id = settled.version_id.as_deref().unwrap_or(""),
                );
                Ok(Outcome {
                    decision: settled.decision,
                    bytes: settled.bytes,
                    millis,
                })
            }
            Err(error) => {
                tracing::info!(
                    target: "toastrep::decision",
                    decision = "failed",
                    key = %notice.key,
                    source_region = %notice.region,
                    destination_region = %dest.region,
                    source_bucket = %notice.bucket,
                    destination_bucket = %dest.bucket,
                    bytes = 0u64,
                    ms = millis,
                    version_id = notice.version_id.as_deref().unwrap_or(""),
                    retryable = error.is_retryable(),
                    error = %error,
                );
                Err(error)
            }
        }
    }

    async fn decide_and_copy(
        &self,
        notice: &S3Notice,
        dest: &Destination,
    ) -> Result<Settled, ReplicateError> {
        if notice.bucket == dest.bucket {
            return self.check_local_write(notice, dest).await;
        }
        let source_client = self.clients.client(&notice.region);
        let head_error = |source| ReplicateError::HeadSource {
            bucket: notice.bucket.clone(),
            key: notice.key.clone(),
            region: notice.region.clone(),
            source,
        };

        // 1. The source's *current* object: the notified version may already
        //    be superseded or deleted, and then the newer event decides.
        let Some(source) = head_current(&source_client, &notice.bucket, &notice.key)
            .await
            .map_err(head_error)?
        else {
            return Ok(Settled::skip(
                Decision::SkippedGone,
                notice.version_id.as_deref(),
            ));
        };
        let current_version = source.version_id();
        let superseded = match (&notice.version_id, &notice.etag) {
            (Some(version), _) => current_version != Some(version.as_str()),
            (None, Some(etag)) => source.e_tag().map(unquote) != Some(etag.as_str()),
            (None, None) => false,
        };
        if superseded {
            return Ok(Settled::skip(
                Decision::SkippedGone,
                notice.version_id.as_deref(),
            ));
        }

        // 2. A replica in the source is one of our own copies: stop here,
        //    or every copy would echo back and forth between regions.
        let origin = Origin::of_object(
            &notice.region,
            source.metadata(),
            source.last_modified(),
            current_version,
            source.e_tag(),
        )
        .map_err(|e| ReplicateError::Origin {
            bucket: notice.bucket.clone(),
            key: notice.key.clone(),
            region: notice.region.clone(),
            source: e,
        })?;
        if origin.region != notice.region {
            return Ok(Settled::skip(Decision::SkippedCopy, current_version));
        }

        // 3. What the destination holds now, and which write wins.
        let destination_client = self.clients.client(&dest.region);
        let existing = head_current(&destination_client, &dest.bucket, &notice.key)
            .await
            .map_err(|source| ReplicateError::HeadDestination {
                bucket: dest.bucket.clone(),
                key: notice.key.clone(),
                region: dest.region.clone(),
                source,
            })?;
        let existing_origin = existing
            .as_ref()
            .map(|d| {
                Origin::of_object(
                    &dest.region,
                    d.metadata(),
                    d.last_modified(),
                    d.version_id(),
                    d.e_tag(),
                )
            })
            .transpose()
            .map_err(|e| ReplicateError::Origin {
                bucket: dest.bucket.clone(),
                key: notice.key.clone(),
                region: dest.region.clone(),
                source: e,
            })?;
        if !should_copy(&origin, existing_origin.as_ref()) {
            return Ok(Settled::skip(Decision::SkippedUpToDate, current_version));
        }

        // 4. Copy exactly the version decided on.
        let plan = plan_copy(notice, dest, &source, &origin);
        match copy_version(&source_client, &destination_client, &plan, &self.settings).await {
            Ok(copied) => {
                let before = existing.as_ref().and_then(|d| d.version_id());
                self.restore_overtaken_write(dest, &notice.key, &origin, before, &copied)
                    .await;
                Ok(Settled {
                    decision: Decision::Copied,
                    bytes: plan.size,
                    version_id: current_version.map(str::to_owned),
                })
            }
            // Overwritten or deleted between our HeadObject and the copy:
            // the newer write's own event takes over.
            Err(e) if e.is_source_gone() => {
                Ok(Settled::skip(Decision::SkippedGone, current_version))
            }
            Err(e) => Err(ReplicateError::Copy {
                source_bucket: notice.bucket.clone(),
                source_region: notice.region.clone(),
                bucket: dest.bucket.clone(),
                key: notice.key.clone(),
                region: dest.region.clone(),
                source: e,
            }),
        }
    }
}

impl Replicator {
    /// A write in the function's own region. Nothing is copied for it here:
    /// the other regions' functions copy it. One case needs this region's
    /// function: the write landed on top of a replica of a write it loses to
    /// (the same second, with the tie going to the other region). Everywhere
    /// else the winner stays, and this region would keep the loser for good,
    /// since no event brings the winner here again. So the newest replica
    /// below the write is compared with it, and put back on top if it wins.
    /// The local write stays, as a noncurrent version.
    async fn check_local_write(
        &self,
        notice: &S3Notice,
        dest: &Destination,
    ) -> Result<Settled, ReplicateError> {
        let client = self.clients.client(&dest.region);
        let head_error = |source| ReplicateError::HeadDestination {
            bucket: dest.bucket.clone(),
            key: notice.key.clone(),
            region: dest.region.clone(),
            source,
        };
        let origin_error = |source| ReplicateError::Origin {
            bucket: dest.bucket.clone(),
            key: notice.key.clone(),
            region: dest.region.clone(),
            source,
        };
        let Some(current) = head_current(&client, &dest.bucket, &notice.key)
            .await
            .map_err(head_error)?
        else {
            return Ok(Settled::skip(
                Decision::SkippedGone,
                notice.version_id.as_deref(),
            ));
        };
        let version = current.version_id();
        if notice.version_id.is_some() && version != notice.version_id.as_deref() {
            return Ok(Settled::skip(
                Decision::SkippedGone,
                notice.version_id.as_deref(),
            ));
        }
        let origin = Origin::of_object(
            &dest.region,
            current.metadata(),
            current.last_modified(),
            version,
            current.e_tag(),
        )
        .map_err(origin_error)?;
        if origin.region != dest.region {
            // One of our own copies: its origin region decided it.
            return Ok(Settled::skip(Decision::SkippedCopy, version));
        }
        let Some(ours) = version.filter(|v| *v != "null") else {
            return Ok(Settled::skip(Decision::SkippedUpToDate, version));
        };
        let listed = client
            .list_object_versions()
            .bucket(&dest.bucket)
            .prefix(&notice.key)
            .max_keys(100)
            .send()
            .await
            .map_err(|e| head_error(S3Error::from_sdk(e)))?;
        // Newest first. Below our write, older writes of this region lose to
        // it; the first replica is what this region held from elsewhere. A
        // delete marker newer than it means it was deleted, not overtaken.
        let deleted_at = listed
            .delete_markers()
            .iter()
            .filter(|m| m.key() == Some(notice.key.as_str()))
            .filter_map(|m| m.last_modified())
            .map(|t| (t.secs(), t.subsec_nanos()))
            .max();
        let below = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(notice.key.as_str()))
            .skip_while(|v| v.version_id() != Some(ours))
            .skip(1)
            .take_while(|v| {
                deleted_at.is_none_or(|d| {
                    v.last_modified()
                        .is_some_and(|t| (t.secs(), t.subsec_nanos()) > d)
                })
            })
            .filter_map(|v| v.version_id());
        for candidate in below {
            let head = client
                .head_object()
                .bucket(&dest.bucket)
                .key(&notice.key)
                .version_id(candidate)
                .send()
                .await
                .map_err(|e| head_error(S3Error::from_sdk(e)))?;
            let replica = Origin::of_object(
                &dest.region,
                head.metadata(),
                head.last_modified(),
                head.version_id(),
                head.e_tag(),
            )
            .map_err(origin_error)?;
            if replica.region == dest.region {
                continue; // An older write of this region: ours beats it.
            }
            if compare(&replica, &origin) != std::cmp::Ordering::Greater {
                break;
            }
            let plan = CopyPlan::of_head(&dest.bucket, &notice.key, &head, &replica, &dest.bucket);
            copy_version(&client, &client, &plan, &self.settings)
                .await
                .map_err(|source| ReplicateError::Copy {
                    source_bucket: dest.bucket.clone(),
                    source_region: dest.region.clone(),
                    bucket: dest.bucket.clone(),
                    key: notice.key.clone(),
                    region: dest.region.clone(),
                    source,
                })?;
            return Ok(Settled {
                decision: Decision::Restored,
                bytes: plan.size,
                version_id: Some(candidate.to_owned()),
            });
        }
        Ok(Settled::skip(Decision::SkippedUpToDate, version))
    }

    /// Closes the race between deciding and copying. The decision compared
    /// the source with the destination's current object `before`; if other
    /// writes landed in the destination after that look and before our copy,
    /// our copy now hides them, and their own events may already have been
    /// judged (skipped as superseded by our copy). If the best of them wins
    /// over what we copied, it is written again on top, with its origin
    /// markers, so the winner is current again and, through the rewrite's own
    /// event, everywhere.
    ///
    /// On AWS a destination `If-Match` on the copy would refuse to overwrite
    /// them in the first place, but ministack ignores destination conditions
    /// on CopyObject, and this check works with both. It costs one
    /// ListObjectVersions per copy. Best effort: a failure is logged, never
    /// fails the record, since the copy itself was right.
    pub async fn restore_overtaken_write(
        &self,
        dest: &Destination,
        key: &str,
        copied_origin: &Origin,
        before: Option<&str>,
        copied: &Copied,
    ) {
        let Some(ours) = copied.version_id.as_deref().filter(|v| *v != "null") else {
            // Unversioned: no history to look at.
            return;
        };
        let client = self.clients.client(&dest.region);
        let listed = client
            .list_object_versions()
            .bucket(&dest.bucket)
            .prefix(key)
            .max_keys(100)
            .send()
            .await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(bucket = %dest.bucket, key, error = %S3Error::from_sdk(e), "could not check the destination's history after a copy");
                return;
            }
        };
        // Newest first, per key; other keys sharing the prefix are skipped.
        let mut history = listed.versions().iter().filter(|v| v.key() == Some(key));
        let Some(top) = history.next() else { return };
        if top.version_id() != Some(ours) {
            // Something newer is already on top (or the listing lags):
            // that write's own replication, and its own check, decide.
            return;
        }
        // With no current object at decision time, the window starts after
        // the newest delete marker: older versions were deleted, not overtaken.
        let deleted_at = listed
            .delete_markers()
            .iter()
            .filter(|m| m.key() == Some(key))
            .filter_map(|m| m.last_modified())
            .map(|t| (t.secs(), t.subsec_nanos()))
            .max();
        let window: Vec<&str> = history
            .take_while(|v| before.is_none() || v.version_id() != before)
            .filter(|v| {
                before.is_some()
                    || deleted_at.is_none_or(|d| {
                        v.last_modified()
                            .is_some_and(|t| (t.secs(), t.subsec_nanos()) > d)
                    })
            })
            .filter_map(|v| v.version_id())
            .collect();
        let mut best: Option<(Origin, aws_sdk_s3::operation::head_object::HeadObjectOutput)> = None;
        for version in window {
            let Ok(head) = client
                .head_object()
                .bucket(&dest.bucket)
                .key(key)
                .version_id(version)
                .send()
                .await
            else {
                continue;
            };
            let Ok(origin) = Origin::of_object(
                &dest.region,
                head.metadata(),
                head.last_modified(),
                head.version_id(),
                head.e_tag(),
            ) else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|(b, _)| compare(&origin, b) == std::cmp::Ordering::Greater)
            {
                best = Some((origin, head));
            }
        }
        let Some((overtaken, head)) = best else {
            return; // Nothing came in between.
        };
        if compare(&overtaken, copied_origin) != std::cmp::Ordering::Greater {
            return; // Our copy wins over it too: all is well.
        }
        let plan = CopyPlan::of_head(&dest.bucket, key, &head, &overtaken, &dest.bucket);
        let restored = copy_version(&client, &client, &plan, &self.settings).await;
        match restored {
            Ok(_) => tracing::info!(
                target: "toastrep::decision",
                decision = "restored",
                key,
                destination_region = %dest.region,
                destination_bucket = %dest.bucket,
                origin_region = %overtaken.region,
                version_id = head.version_id().unwrap_or(""),
                "a winning write that landed during our copy was put back on top"
            ),
            Err(error) => tracing::warn!(
                bucket = %dest.bucket,
                key,
                %error,
                "could not put back a winning write that our copy overtook"
            ),
        }
    }
}

/// The copy of `source` (the current object of `notice`'s key) into `dest`:
/// all of its user metadata, its kept headers, and the origin markers.
fn plan_copy(
    notice: &S3Notice,
    dest: &Destination,
    source: &HeadObjectOutput,
    origin: &Origin,
) -> CopyPlan {
    let mut metadata = source.metadata().cloned().unwrap_or_default();
    metadata.extend(origin.to_markers());
    CopyPlan {
        source_bucket: notice.bucket.clone(),
        key: notice.key.clone(),
        source_version: source
            .version_id()
            .filter(|v| *v != "null")
            .map(str::to_owned),
        source_etag: source
            .e_tag()
            .map(str::to_owned)
            .or_else(|| notice.etag.as_ref().map(|e| format!("\"{e}\""))),
        size: source.content_length().unwrap_or_default().max(0) as u64,
        destination_bucket: dest.bucket.clone(),
        headers: ObjectHeaders::from_head(source),
        metadata,
    }
}

/// HeadObject of the current object; `None` when there is none (404, which
/// is also what S3 answers when the current version is a delete marker:
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeleteMarker.html>).
async fn head_current(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<HeadObjectOutput>, S3Error> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) if head.delete_marker() == Some(true) => Ok(None),
        Ok(head) => Ok(Some(head)),
        Err(e) => {
            let error = S3Error::from_sdk(e);
            if error.kind == ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}
