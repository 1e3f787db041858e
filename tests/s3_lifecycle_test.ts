/**
 * doctor's lifecycle check against a real S3 server (Ceph RGW): a bucket's lifecycle rules,
 * set as an operator sets them (PutBucketLifecycleConfiguration), read with the plugin's keys;
 * only an enabled current-object Expiration over the backup's prefix is warned of, by its id.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { assertEquals, assertMatch } from "./support/assert.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTestInDir, stopSharedRgwLast } from "./support/shared_rgw.ts";
import { signRequest } from "../lib/backends/s3/sigv4.ts";
import { lifecycleCheck } from "../lib/cli/doctor/lifecycle_check.ts";
import { realSystem } from "../lib/cli/doctor/system.ts";
import type { CheckResult } from "../lib/cli/doctor/check.ts";

/** Sets the bucket's lifecycle rules, as its owner. */
export async function putLifecycle(s: Rgw, bucket: string, rules: string): Promise<void> {
  const body = new TextEncoder().encode(
    `<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${rules}` +
      `</LifecycleConfiguration>`,
  );
  const url = `${s.endpoint}/${bucket}?lifecycle=`;
  const headers = await signRequest({
    method: "PUT",
    url,
    headers: { "content-md5": createHash("md5").update(body).digest("base64") },
    payloadSha256: createHash("sha256").update(body).digest("hex"),
    keys: s.credentials,
    region: "us-east-1",
  });
  const response = await fetch(url, { method: "PUT", headers, body });
  const answer = await response.text();
  if (!response.ok) throw new Error(`PUT ?lifecycle: ${response.status} ${answer}`);
}

/** A rule: its id, filter, status and action. */
const rule = (id: string, filter: string, action: string, status = "Enabled") =>
  `<Rule><ID>${id}</ID><Filter>${filter}</Filter><Status>${status}</Status>${action}</Rule>`;

const EXPIRE = "<Expiration><Days>30</Days></Expiration>";

/** The check on a node whose backup.lock names `url`, with the gateway's keys beside it. */
function check(s: Rgw, dir: string, url: string): Promise<CheckResult> {
  writeCredentials(dir, s.credentials);
  return lifecycleCheck({ dir, user: undefined, lock: { backend_url: url } }, realSystem);
}

const test = rgwTestInDir("cln-backup-s3-lifecycle-");

test(
  "doctor lifecycle: no configuration, or no rule that expires the backup's objects: OK",
  async (s, dir) => {
    const bucket = await s.bucket();
    const url = s.url(bucket, "nodes/node1");
    assertEquals(await check(s, dir, url), [
      "OK",
      `no lifecycle rule of bucket "${bucket}" expires ${url}`,
    ]);
    await putLifecycle(
      s,
      bucket,
      // Another prefix; disabled; noncurrent versions, delete markers and old uploads only; a
      // tag the backup never sets.
      rule("other", "<Prefix>nodes/node10/</Prefix>", EXPIRE) +
        rule("off", "<Prefix>nodes/</Prefix>", EXPIRE, "Disabled") +
        rule(
          "noncurrent",
          "<Prefix></Prefix>",
          "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>" +
            "</NoncurrentVersionExpiration>",
        ) +
        rule(
          "markers",
          "<Prefix>nodes/</Prefix>",
          "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
        ) +
        rule(
          "uploads",
          "<Prefix>nodes/node1/</Prefix>",
          "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>" +
            "</AbortIncompleteMultipartUpload>",
        ) +
        rule("tagged", "<Tag><Key>tmp</Key><Value>1</Value></Tag>", EXPIRE),
    );
    assertEquals((await check(s, dir, url))[0], "OK");
  },
);

test(
  "doctor lifecycle: an Expiration over, under or around the backup's prefix is a WARN naming the rule",
  async (s, dir) => {
    for (
      const [id, filter] of [
        ["everything", ""],
        ["all-nodes", "<Prefix>nodes/</Prefix>"],
        ["old-packs", "<Prefix>nodes/node1/pack-</Prefix>"],
      ]
    ) {
      const bucket = await s.bucket();
      const url = s.url(bucket, "nodes/node1");
      await putLifecycle(
        s,
        bucket,
        rule(
          "markers",
          "<Prefix></Prefix>",
          "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
        ) + rule(id, filter, EXPIRE),
      );
      const [level, message] = await check(s, dir, url);
      assertEquals(level, "WARN");
      assertMatch(
        message,
        new RegExp(
          `^the lifecycle rule "${id}" of bucket "${bucket}" expires objects under ".*", which ` +
            `holds s3://.*: it will delete the backup, oldest objects first, and the plugin then ` +
            `stops the node: exclude the backup's prefix from the rule, or disable it$`,
        ),
      );
    }
  },
);

stopSharedRgwLast();
