/**
 * The lifecycle check: no lifecycle rule of an `s3://` destination's bucket deletes the
 * backup's objects, or archives them. Of a rule's actions only `Expiration` with `Days` or
 * `Date` removes live objects (on a versioned bucket it hides them behind a delete marker:
 * gone to a reader too), the oldest first: the backup's base, `backup-id`, its oldest packs,
 * so it no longer restores, and the plugin stops the node once it lists the loss. The others
 * leave the backup whole: `NoncurrentVersionExpiration` removes only versions already overwritten or deleted
 * (the backup overwrites nothing, and deletes only what a newer object holds),
 * `ExpiredObjectDeleteMarker` only delete markers, `AbortIncompleteMultipartUpload` only
 * uploads days old (a compaction's base takes minutes). A rule that needs a tag never applies:
 * the backup tags no object.
 *
 * A `Transition` to an archive class keeps the objects but makes them unreadable until each
 * is restored, which takes hours: the base, oldest of all, first, so a restore of the node
 * waits that long. GLACIER_IR, STANDARD_IA and INTELLIGENT_TIERING are read at once (the
 * latter's archive tiers are a bucket setting of their own, opted into apart from lifecycle).
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

/** Storage classes whose objects a GET refuses until they are restored. */
const ARCHIVES = ["GLACIER", "DEEP_ARCHIVE"];

/** A rule that acts on objects under `prefix`: its prefix holds it, or lies under it. */
function applies(rule: LifecycleRule, prefix: string): boolean {
  return rule.enabled && !rule.tagged &&
    (prefix.startsWith(rule.prefix) || rule.prefix.startsWith(prefix));
}

/** The archive class a rule moves the backup's objects to, if any. */
function archive(rule: LifecycleRule): string | undefined {
  return rule.transitions.find((c) => ARCHIVES.includes(c));
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
  const rules = xml === undefined ? [] : parseLifecycle(xml).filter((r) => applies(r, s3.prefix));
  const expiring = rules.find((r) => r.expires);
  if (expiring !== undefined) {
    return [
      "WARN",
      `the lifecycle rule "${expiring.id}" of ${bucket} expires objects under ` +
      `"${expiring.prefix}", which holds ${url}: it will delete the backup, oldest objects ` +
      `first, and the plugin then stops the node: exclude the backup's prefix from the rule, ` +
      `or disable it`,
    ];
  }
  const archiving = rules.find((r) => archive(r) !== undefined);
  if (archiving !== undefined) {
    return [
      "WARN",
      `the lifecycle rule "${archiving.id}" of ${bucket} moves objects under ` +
      `"${archiving.prefix}", which holds ${url}, to ${archive(archiving)}: a restore or ` +
      `compaction then needs an hours-long retrieval of each first: exclude the backup's ` +
      `prefix from the rule, or move them to a class read at once (GLACIER_IR, STANDARD_IA)`,
    ];
  }
  return ["OK", `no lifecycle rule of ${bucket} expires or archives ${url}`];
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
