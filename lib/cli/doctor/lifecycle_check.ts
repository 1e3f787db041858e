/**
 * The lifecycle check: no lifecycle rule of an `s3://` destination's bucket deletes the
 * backup's objects. Of a rule's actions only `Expiration` with `Days` or `Date` removes live
 * objects (on a versioned bucket it hides them behind a delete marker: gone to a reader too),
 * the oldest first: the backup's base, `backup-id`, its oldest packs, so it no longer
 * restores, and the plugin stops the node once it lists the loss. The others leave the backup
 * whole: `NoncurrentVersionExpiration` removes only versions already overwritten or deleted
 * (the backup overwrites nothing, and deletes only what a newer object holds),
 * `ExpiredObjectDeleteMarker` only delete markers, `AbortIncompleteMultipartUpload` only
 * uploads days old (a compaction's base takes minutes). A rule that needs a tag never applies:
 * the backup tags no object.
 *
 * @module
 */
import { lockDestinations } from "../../backends/multi/mirrors.ts";
import { S3Error } from "../../backends/s3/client.ts";
import { CREDENTIALS_FILE, loadCredentials } from "../../backends/s3/credentials.ts";
import type { S3Url } from "../../backends/s3/s3_url.ts";
import { type LifecycleRule, parseLifecycle } from "../../backends/s3/xml.ts";
import { parseBackupUrl } from "../../backends/url.ts";
import type { CheckResult, Found } from "./check.ts";
import type { DoctorSystem } from "./system.ts";

/** A rule that deletes objects under `prefix`: its prefix holds it, or lies under it. */
function deletes(rule: LifecycleRule, prefix: string): boolean {
  return rule.enabled && rule.expires && !rule.tagged &&
    (prefix.startsWith(rule.prefix) || rule.prefix.startsWith(prefix));
}

async function checkBucket(
  url: string,
  s3: S3Url,
  found: Found,
  system: DoctorSystem,
): Promise<CheckResult> {
  const bucket = `bucket "${s3.bucket}"`;
  let xml: string | undefined;
  try {
    xml = await system.lifecycle(s3, loadCredentials(found.dir));
  } catch (error) {
    if (error instanceof S3Error && error.code === "AccessDenied") {
      return [
        "WARN",
        `cannot check the lifecycle rules of ${bucket}: the keys in ${CREDENTIALS_FILE} may ` +
        `not read them: grant them s3:GetLifecycleConfiguration on the bucket (README, S3), ` +
        `or check that no rule expires objects under "${s3.prefix}"`,
      ];
    }
    return ["WARN", `cannot check the lifecycle rules of ${bucket}: ${(error as Error).message}`];
  }
  const rule = xml === undefined
    ? undefined
    : parseLifecycle(xml).find((r) => deletes(r, s3.prefix));
  if (rule === undefined) return ["OK", `no lifecycle rule of ${bucket} expires ${url}`];
  return [
    "WARN",
    `the lifecycle rule "${rule.id}" of ${bucket} expires objects under "${rule.prefix}", ` +
    `which holds ${url}: it will delete the backup, oldest objects first, and the plugin ` +
    `then stops the node: exclude the backup's prefix from the rule, or disable it`,
  ];
}

export async function lifecycleCheck(found: Found, system: DoctorSystem): Promise<CheckResult> {
  const { sync, async } = lockDestinations(found.lock!);
  const results: CheckResult[] = [];
  for (const url of [...sync, ...async]) {
    const s3 = parseBackupUrl(url);
    if (s3.scheme === "s3") results.push(await checkBucket(url, s3, found, system));
  }
  return results.find(([level]) => level === "WARN") ??
    ["OK", results.map(([, message]) => message).join("; ")];
}
