/**
 * doctor's lifecycle check against a real S3 server (Ceph RGW): a bucket's lifecycle rules,
 * set as an operator sets them (PutBucketLifecycleConfiguration), read with the plugin's keys;
 * only an enabled current-object Expiration over the backup's prefix is warned of, by its id,
 * and a Transition of its objects to an archive class, by its id and the class.
 *
 * @module
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTestInDir } from "./support/shared_rgw.ts";
import { lifecycleCheck } from "../lib/cli/doctor/lifecycle_check.ts";
import { realSystem } from "../lib/cli/doctor/system.ts";
import type { CheckResult } from "../lib/cli/doctor/check.ts";

/** Sets the bucket's lifecycle rules, as its owner. */
export function putLifecycle(s: Rgw, bucket: string, rules: string): Promise<void> {
  return s.putBucketConfig(
    bucket,
    "lifecycle",
    `<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${rules}` +
      `</LifecycleConfiguration>`,
  );
}

/** A rule: its id, filter, status and action. */
const rule = (id: string, filter: string, action: string, status = "Enabled") =>
  `<Rule><ID>${id}</ID><Filter>${filter}</Filter><Status>${status}</Status>${action}</Rule>`;

const EXPIRE = "<Expiration><Days>30</Days></Expiration>";

/** An action moving current objects to `storageClass` after `days`. */
const transition = (storageClass: string, days = 30) =>
  `<Transition><Days>${days}</Days><StorageClass>${storageClass}</StorageClass></Transition>`;

/** The check on a node whose backup.lock names `url`, with the gateway's keys beside it. */
function check(s: Rgw, dir: string, url: string): Promise<CheckResult> {
  writeCredentials(dir, s.credentials);
  return lifecycleCheck(
    { dir, database: `${dir}/lightningd.sqlite3`, user: undefined, lock: { backend_url: url } },
    realSystem,
  );
}

const test = rgwTestInDir("cln-backup-s3-lifecycle-");

test(
  "doctor lifecycle: no configuration, or no rule that expires or archives the backup's objects: OK",
  async (s, dir) => {
    const bucket = await s.bucket();
    const url = s.url(bucket, "nodes/node1");
    assertEquals(await check(s, dir, url), [
      "OK",
      `no lifecycle rule of bucket "${bucket}" expires or archives ${url}`,
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
        rule("tagged", "<Tag><Key>tmp</Key><Value>1</Value></Tag>", EXPIRE) +
        // Classes read at once; an archive class for noncurrent versions only.
        rule("infrequent", "<Prefix>nodes/</Prefix>", transition("STANDARD_IA")) +
        rule("instant", "<Prefix>nodes/</Prefix>", transition("GLACIER_IR", 90)) +
        rule(
          "noncurrent-archive",
          "<Prefix>nodes/</Prefix>",
          "<NoncurrentVersionTransition><NoncurrentDays>30</NoncurrentDays>" +
            "<StorageClass>GLACIER</StorageClass></NoncurrentVersionTransition>",
        ),
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

test(
  "doctor lifecycle: a Transition of the backup's objects to an archive class is a WARN naming the rule and the class",
  async (s, dir) => {
    for (const storageClass of ["GLACIER", "DEEP_ARCHIVE"]) {
      const bucket = await s.bucket();
      const url = s.url(bucket, "nodes/node1");
      await putLifecycle(
        s,
        bucket,
        rule("instant", "<Prefix></Prefix>", transition("GLACIER_IR")) +
          rule("cold", "<Prefix>nodes/</Prefix>", transition(storageClass, 90)),
      );
      assertEquals(await check(s, dir, url), [
        "WARN",
        `the lifecycle rule "cold" of bucket "${bucket}" moves objects under "nodes/", which ` +
        `holds ${url}, to ${storageClass}: a restore or compaction then needs an hours-long ` +
        `retrieval of each first: exclude the backup's prefix from the rule, or move them to a ` +
        `class read at once (GLACIER_IR, STANDARD_IA)`,
      ]);
    }
  },
);
